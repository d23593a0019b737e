/* jinja_lex.c - template source to tokens.
 *
 * Text between tags becomes JT_TEXT after the whitespace rules, applied in
 * Jinja's order: lstrip_blocks (spaces and tabs before a {% or {# that
 * starts its line), then `-` (all whitespace next to a tag that asks), then
 * trim_blocks (the first newline after a %} or #}). Inside tags the usual
 * names, numbers, strings and operators. Comments produce nothing. */
#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "base/utf8.h"
#include "jinja/jinja_internal.h"

typedef struct lexer {
    fl_arena *arena;
    const char *src;
    size_t len;
    jtok *toks;
    int n, cap;
    int line;
    fl_error *err;
} lexer;

/* Jinja writes every newline of template text and string literals as
 * "\n" (its newline_sequence), so "\r\n" and "\r" become "\n". */
static size_t normalize_newlines(char *s, size_t n)
{
    size_t w = 0;
    for (size_t r = 0; r < n; r++) {
        if (s[r] == '\r') {
            s[w++] = '\n';
            if (r + 1 < n && s[r + 1] == '\n')
                r++;
        } else {
            s[w++] = s[r];
        }
    }
    s[w] = '\0';
    return w;
}

static jtok *push(lexer *lx, jtok_kind kind, const char *text, size_t len)
{
    if (lx->n == lx->cap) {
        lx->cap = lx->cap ? lx->cap * 2 : 256;
        jtok *grown = fl_arena_alloc(lx->arena, (size_t)lx->cap * sizeof(jtok));
        if (lx->n)
            memcpy(grown, lx->toks, (size_t)lx->n * sizeof(jtok));
        lx->toks = grown;
    }
    jtok *t = &lx->toks[lx->n++];
    memset(t, 0, sizeof *t);
    t->kind = kind;
    char *copy = fl_arena_strndup(lx->arena, text, len);
    t->len = kind == JT_TEXT || kind == JT_STRING ? normalize_newlines(copy, len) : len;
    t->text = copy;
    t->line = lx->line;
    return t;
}

static int count_lines(const char *s, size_t n)
{
    int lines = 0;
    for (size_t i = 0; i < n; i++)
        lines += s[i] == '\n';
    return lines;
}

/* A tag found in the source: its kind ('{', '%' or '#'), where it starts and
 * ends, and its whitespace modifiers. */
typedef struct tag {
    char kind;
    size_t start, inner, inner_end, end;
    int strip_before, strip_after, keep_lstrip;
} tag;

/* Finds the next tag at or after pos; returns 0 if there is none, -1 if one
 * is not closed. */
static int find_tag(lexer *lx, size_t pos, tag *t)
{
    const char *s = lx->src;
    for (size_t i = pos; i + 1 < lx->len; i++) {
        if (s[i] != '{' || (s[i + 1] != '{' && s[i + 1] != '%' && s[i + 1] != '#'))
            continue;
        memset(t, 0, sizeof *t);
        t->kind = s[i + 1];
        t->start = i;
        t->inner = i + 2;
        if (t->inner < lx->len && s[t->inner] == '-')
            t->strip_before = 1, t->inner++;
        else if (t->inner < lx->len && s[t->inner] == '+')
            t->keep_lstrip = 1, t->inner++;
        const char close[3] = { t->kind == '{' ? '}' : t->kind, '}', 0 };
        /* The closing delimiter outside string literals and brackets, as
         * Jinja's lexer finds it: {{ {'a': {'b': 1}} }} ends at the last
         * }} (comments have neither). */
        char quote = 0;
        size_t open = 0;
        for (size_t j = t->inner; j + 1 < lx->len; j++) {
            if (t->kind != '#' && quote) {
                if (s[j] == '\\')
                    j++;
                else if (s[j] == quote)
                    quote = 0;
                continue;
            }
            if (t->kind != '#' && (s[j] == '\'' || s[j] == '"')) {
                quote = s[j];
                continue;
            }
            if (t->kind != '#' && (s[j] == '(' || s[j] == '[' || s[j] == '{')) {
                open++;
                continue;
            }
            if (open && (s[j] == ')' || s[j] == ']' || s[j] == '}')) {
                open--;
                continue;
            }
            if (s[j] == close[0] && s[j + 1] == close[1]) {
                t->inner_end = j;
                if (j > t->inner && s[j - 1] == '-')
                    t->strip_after = 1, t->inner_end--;
                t->end = j + 2;
                return 1;
            }
        }
        lx->line += count_lines(s + pos, i - pos);
        return fl_fail(lx->err, "line %d: a '{%c' that is never closed", lx->line, t->kind);
    }
    return 0;
}

static int is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

/* Emits the text src[a, b) between prev (or the start) and next (or EOF). */
static void emit_text(lexer *lx, size_t a, size_t b, const tag *prev, const tag *next)
{
    const char *s = lx->src;
    if (next && next->kind != '{' && !next->keep_lstrip && !next->strip_before) {
        size_t p = b;
        while (p > a && (s[p - 1] == ' ' || s[p - 1] == '\t'))
            p--;
        if (p == 0 || (p > a && s[p - 1] == '\n'))
            b = p;
    }
    if (next && next->strip_before)
        while (b > a && is_space(s[b - 1]))
            b--;
    if (prev && prev->strip_after) {
        while (a < b && is_space(s[a]))
            a++;
    } else if (prev && prev->kind != '{') {
        if (a < b && s[a] == '\n')
            a++;
        else if (a + 1 < b && s[a] == '\r' && s[a + 1] == '\n')
            a += 2;
    }
    if (b > a)
        push(lx, JT_TEXT, s + a, b - a);
}

static int lex_string(lexer *lx, const char *s, size_t n, size_t *i)
{
    const char quote = s[*i];
    fl_strbuf v = { 0 };
    size_t j = *i + 1;
    for (; j < n && s[j] != quote; j++) {
        char c = s[j];
        if (c == '\\' && j + 1 < n) {
            c = s[++j];
            switch (c) {
            case 'n': c = '\n'; break;
            case 't': c = '\t'; break;
            case 'r': c = '\r'; break;
            case '0': c = '\0'; break;
            default: break; /* \\ \' \" and unknown escapes keep the character */
            }
        }
        fl_strbuf_append(&v, &c, 1);
    }
    if (j >= n) {
        fl_strbuf_free(&v);
        return fl_fail(lx->err, "line %d: unterminated string", lx->line);
    }
    push(lx, JT_STRING, v.data ? v.data : "", v.len);
    fl_strbuf_free(&v);
    *i = j + 1;
    return 0;
}

static int lex_inner(lexer *lx, const char *s, size_t n)
{
    static const char *const ops[] = { "//", "**", "==", "!=", "<=", ">=", "(", ")", "[", "]",
                                       "{", "}", ".", ",", ":", "|", "~", "+", "-", "*", "/",
                                       "%", "=", "<", ">" };
    for (size_t i = 0; i < n;) {
        char c = s[i];
        if (is_space(c)) {
            lx->line += c == '\n';
            i++;
        } else if (isalpha((unsigned char)c) || c == '_') {
            size_t j = i;
            while (j < n && (isalnum((unsigned char)s[j]) || s[j] == '_'))
                j++;
            push(lx, JT_NAME, s + i, j - i);
            i = j;
        } else if (isdigit((unsigned char)c)) {
            size_t j = i;
            while (j < n && isdigit((unsigned char)s[j]))
                j++;
            int is_float = j + 1 < n && s[j] == '.' && isdigit((unsigned char)s[j + 1]);
            if (is_float)
                for (j++; j < n && isdigit((unsigned char)s[j]); j++)
                    ;
            if (j < n && (s[j] == 'e' || s[j] == 'E')) { /* 1e3, 2.5e-3 */
                size_t k = j + 1;
                if (k < n && (s[k] == '+' || s[k] == '-'))
                    k++;
                if (k < n && isdigit((unsigned char)s[k])) {
                    for (j = k; j < n && isdigit((unsigned char)s[j]); j++)
                        ;
                    is_float = 1;
                }
            }
            jtok *t = push(lx, is_float ? JT_FLOAT : JT_INT, s + i, j - i);
            if (is_float) {
                t->fval = strtod(t->text, NULL); /* too large is inf, as in Python */
            } else {
                errno = 0;
                t->ival = strtoll(t->text, NULL, 10);
                if (errno == ERANGE) /* Python's ints have no bound; these have 64 bits */
                    return fl_fail(lx->err, "line %d: the integer %.24s%s does not fit in 64 bits",
                                   lx->line, t->text, t->len > 24 ? "..." : "");
            }
            i = j;
        } else if (c == '\'' || c == '"') {
            if (lex_string(lx, s, n, &i) != 0)
                return -1;
        } else {
            size_t k = 0;
            while (k < sizeof ops / sizeof ops[0] && strncmp(s + i, ops[k], strlen(ops[k])) != 0)
                k++;
            if (k == sizeof ops / sizeof ops[0])
                return fl_fail(lx->err, "line %d: unexpected character '%c'", lx->line, c);
            push(lx, JT_OP, ops[k], strlen(ops[k]));
            i += strlen(ops[k]);
        }
    }
    return 0;
}

int jinja_lex(fl_arena *a, const char *src, size_t len, jtok **out, fl_error *err)
{
    /* keep_trailing_newline is off in Jinja: one final newline is dropped */
    if (len >= 2 && src[len - 2] == '\r' && src[len - 1] == '\n')
        len -= 2;
    else if (len >= 1 && (src[len - 1] == '\n' || src[len - 1] == '\r'))
        len -= 1;
    lexer lx = { .arena = a, .src = src, .len = len, .line = 1, .err = err };
    tag prev, next;
    int have_prev = 0;
    size_t pos = 0;
    for (;;) {
        int found = find_tag(&lx, pos, &next);
        if (found < 0)
            return -1;
        size_t text_end = found ? next.start : len;
        emit_text(&lx, pos, text_end, have_prev ? &prev : NULL, found ? &next : NULL);
        lx.line += count_lines(src + pos, text_end - pos);
        if (!found)
            break;
        if (next.kind != '#') {
            push(&lx, next.kind == '{' ? JT_VAR_BEGIN : JT_BLOCK_BEGIN, "", 0);
            if (lex_inner(&lx, src + next.inner, next.inner_end - next.inner) != 0)
                return -1;
            push(&lx, next.kind == '{' ? JT_VAR_END : JT_BLOCK_END, "", 0);
        } else {
            lx.line += count_lines(src + next.inner, next.inner_end - next.inner);
        }
        prev = next;
        have_prev = 1;
        pos = next.end;
    }
    push(&lx, JT_EOF, "", 0);
    *out = lx.toks;
    return lx.n;
}
