/* grammar_regex.c - a regex as a grammar expression (grammar_build.h).
 *
 * The syntax of Python's re and JavaScript's RegExp that structured output
 * uses (vLLM hands xgrammar the same): literals (UTF-8), `.` (any
 * character but a newline), classes [a-z], [^...], the escapes \d \w \s
 * and their negations (ASCII, as xgrammar), \n \t \r \f \v \0 \xHH \uHHHH
 * \u{H...}, an escaped punctuation character, groups (...), (?:...),
 * (?P<name>...) and (?<name>...), alternation, and the quantifiers * + ?
 * {n} {n,} {n,m} {,m}, lazy or not (the same language). ^ at the start and
 * $ at the end are accepted: the whole output matches either way.
 * Backreferences, lookaround, word boundaries, possessive quantifiers and
 * inline flags have no grammar here and are refused by name.
 *
 * json_string mode writes each character as it appears inside a JSON
 * string: a quote, a backslash and the controls as their escapes (\", \\,
 * \n, ..., \u001f), so a JSON schema's pattern yields valid JSON. */
#include <stdio.h>
#include <string.h>

#include "base/alloc.h"
#include "base/utf8.h"
#include "grammar/grammar_build.h"

#define MAX_NESTING 256

typedef struct rx {
    fl_gb *b;
    const unsigned char *s;
    size_t n, at;
    int json;
    int depth;
    const char *what;    /* "regex", or "grammar" for the EBNF front end's classes and escapes */
    fl_error *err;
} rx;

static int fail_at(rx *r, const char *what)
{
    return fl_fail(r->err, "%s: %s at offset %zu", r->what, what, r->at);
}

/* A growing list of code point ranges. */
typedef struct ranges {
    fl_cp_range *r;
    int n, cap;
} ranges;

static void add_range(ranges *rs, uint32_t lo, uint32_t hi)
{
    if (rs->n == rs->cap) {
        rs->cap = rs->cap ? 2 * rs->cap : 16;
        rs->r = fl_realloc(rs->r, (size_t)rs->cap * sizeof *rs->r);
    }
    rs->r[rs->n++] = (fl_cp_range){ lo, hi };
}

/* The characters of rs (negated: all others) as an expression. */
static fl_gx *char_set(rx *r, ranges *rs, int negate)
{
    fl_cp_range *set = rs->r;
    int n = rs->n;
    fl_cp_range *comp = NULL;
    if (negate) {
        comp = fl_malloc(((size_t)n + 1) * sizeof *comp);
        n = fl_cp_complement(rs->r, n, comp);
        set = comp;
    }
    fl_gx *e;
    if (!r->json) {
        e = fl_gx_codepoints(r->b, set, n);
    } else {
        /* the characters written as they are, then the escaped ones */
        ranges plain = { 0 };
        uint8_t special[0x5d] = { 0 };
        for (int i = 0; i < n; i++) {
            uint32_t lo = set[i].lo;
            const uint32_t hi = set[i].hi;
            for (; lo <= hi && lo <= 0x5c; lo++) {
                if (lo < 0x20 || lo == '"' || lo == '\\')
                    special[lo] = 1;
                else
                    add_range(&plain, lo, lo);
            }
            if (lo <= hi)
                add_range(&plain, lo, hi);
        }
        fl_gx *alt = fl_gx_alt(r->b);
        fl_gx_add(alt, fl_gx_codepoints(r->b, plain.r, plain.n));
        for (unsigned c = 0; c < sizeof special; c++) {
            if (!special[c])
                continue;
            char esc[8];
            const char *named = c == '"' ? "\\\"" : c == '\\' ? "\\\\" : c == '\n' ? "\\n" : c == '\r' ? "\\r"
                              : c == '\t' ? "\\t" : c == '\b' ? "\\b" : c == '\f' ? "\\f" : NULL;
            if (!named) {
                snprintf(esc, sizeof esc, "\\u%04x", c);
                named = esc;
            }
            fl_gx_add(alt, fl_gx_literal(r->b, named, strlen(named)));
        }
        free(plain.r);
        e = alt;
    }
    free(comp);
    return e;
}

static fl_gx *one_char(rx *r, uint32_t c)
{
    ranges rs = { 0 };
    add_range(&rs, c, c);
    fl_gx *e = char_set(r, &rs, 0);
    free(rs.r);
    return e;
}

static int hex_digits(rx *r, int count, uint32_t *out)
{
    uint32_t v = 0;
    for (int i = 0; i < count; i++) {
        if (r->at >= r->n)
            return fail_at(r, "a hex escape ends early");
        const int c = r->s[r->at++];
        const int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10
                    : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
        if (d < 0)
            return fail_at(r, "a hex escape has a non-hex digit");
        v = v * 16 + (uint32_t)d;
    }
    *out = v;
    return 0;
}

/* The next character of the pattern (UTF-8). */
static int next_char(rx *r, uint32_t *c)
{
    size_t len;
    const int32_t cp = fl_utf8_next(r->s + r->at, r->n - r->at, &len);
    if (cp < 0)
        return fail_at(r, "the pattern is not valid UTF-8");
    r->at += len;
    *c = (uint32_t)cp;
    return 0;
}

/* A class escape (\d \w \s, negated or not) into rs; 1 if it was one. */
static int class_escape(int c, ranges *rs, int *negated)
{
    *negated = c == 'D' || c == 'W' || c == 'S';
    switch (c | 0x20) {
    case 'd': add_range(rs, '0', '9'); return 1;
    case 'w':
        add_range(rs, '0', '9'), add_range(rs, 'A', 'Z'), add_range(rs, 'a', 'z'), add_range(rs, '_', '_');
        return 1;
    case 's': add_range(rs, ' ', ' '), add_range(rs, '\t', '\r'); return 1;
    default: return 0;
    }
}

/* The character of an escape after its backslash (not a class escape). */
static int escape_char(rx *r, uint32_t *out)
{
    if (r->at >= r->n)
        return fail_at(r, "the pattern ends in a backslash");
    const int c = r->s[r->at++];
    switch (c) {
    case 'n': *out = '\n'; return 0;
    case 't': *out = '\t'; return 0;
    case 'r': *out = '\r'; return 0;
    case 'f': *out = '\f'; return 0;
    case 'v': *out = '\v'; return 0;
    case '0': *out = 0; return 0;
    case 'x': return hex_digits(r, 2, out);
    case 'u':
        if (r->at < r->n && r->s[r->at] == '{') {
            r->at++;
            uint32_t v = 0;
            int digits = 0;
            while (r->at < r->n && r->s[r->at] != '}') {
                uint32_t d;
                if (digits++ == 6 || hex_digits(r, 1, &d) != 0)
                    return fail_at(r, "a \\u{...} escape is not 1 to 6 hex digits");
                v = v * 16 + d;
            }
            if (r->at >= r->n || digits == 0 || v > FL_CP_MAX)
                return fail_at(r, "a \\u{...} escape is not a code point");
            r->at++;
            *out = v;
            return 0;
        }
        return hex_digits(r, 4, out);
    case 'U':
        if (hex_digits(r, 8, out) != 0)
            return -1;
        return *out > FL_CP_MAX ? fail_at(r, "a \\U escape is not a code point") : 0;
    case 'b': case 'B': return fail_at(r, "word boundaries (\\b, \\B) are not supported");
    case 'A': case 'Z': case 'z': case 'G': return fail_at(r, "anchors other than ^ and $ are not supported");
    default:
        if (c >= '1' && c <= '9')
            return fail_at(r, "backreferences are not supported");
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'))
            return fail_at(r, "an unknown escape");
        r->at--;
        return next_char(r, out); /* an escaped punctuation or other character: itself */
    }
}

static int parse_class(rx *r, fl_gx **out)
{
    ranges rs = { 0 };
    int negate = 0;
    if (r->at < r->n && r->s[r->at] == '^') {
        negate = 1;
        r->at++;
    }
    int first = 1;
    for (;;) {
        if (r->at >= r->n) {
            free(rs.r);
            return fail_at(r, "a character class is not closed");
        }
        if (r->s[r->at] == ']' && !first) {
            r->at++;
            break;
        }
        first = 0;
        uint32_t lo = 0;
        if (r->s[r->at] == '\\') {
            r->at++;
            int neg;
            ranges sub = { 0 };
            if (r->at < r->n && class_escape(r->s[r->at], &sub, &neg)) {
                r->at++;
                if (neg) {
                    fl_cp_range *comp = fl_malloc(((size_t)sub.n + 1) * sizeof *comp);
                    const int m = fl_cp_complement(sub.r, sub.n, comp);
                    for (int i = 0; i < m; i++)
                        add_range(&rs, comp[i].lo, comp[i].hi);
                    free(comp);
                } else {
                    for (int i = 0; i < sub.n; i++)
                        add_range(&rs, sub.r[i].lo, sub.r[i].hi);
                }
                free(sub.r);
                continue;
            }
            free(sub.r);
            if (r->at < r->n && r->s[r->at] == 'b') { /* \b in a class is a backspace */
                r->at++;
                lo = '\b';
            } else if (escape_char(r, &lo) != 0) {
                free(rs.r);
                return -1;
            }
        } else if (next_char(r, &lo) != 0) {
            free(rs.r);
            return -1;
        }
        uint32_t hi = lo;
        if (r->at + 1 < r->n && r->s[r->at] == '-' && r->s[r->at + 1] != ']') {
            r->at++;
            if (r->s[r->at] == '\\') {
                r->at++;
                if (escape_char(r, &hi) != 0) {
                    free(rs.r);
                    return -1;
                }
            } else if (next_char(r, &hi) != 0) {
                free(rs.r);
                return -1;
            }
            if (hi < lo) {
                free(rs.r);
                return fail_at(r, "a class range is out of order");
            }
        }
        add_range(&rs, lo, hi);
    }
    *out = char_set(r, &rs, negate);
    free(rs.r);
    return 0;
}

static int parse_alt(rx *r, fl_gx **out);

static int parse_number(rx *r, int *v)
{
    if (r->at >= r->n || r->s[r->at] < '0' || r->s[r->at] > '9')
        return 0;
    long x = 0;
    while (r->at < r->n && r->s[r->at] >= '0' && r->s[r->at] <= '9') {
        x = x * 10 + (r->s[r->at++] - '0');
        if (x > FL_GRAMMAR_MAX_REPEAT)
            return fail_at(r, "a repetition count is over the limit of 10000");
    }
    *v = (int)x;
    return 1;
}

/* A {n}, {n,}, {n,m} or {,m} at r->at ('{' already seen); 0 if the brace
 * is a literal (no valid counts follow, as Python reads it). */
static int parse_braces(rx *r, int *min, int *max)
{
    const size_t save = r->at;
    r->at++;
    int lo = 0, hi = FL_GX_INF, got_lo, got_hi = 0;
    if ((got_lo = parse_number(r, &lo)) < 0)
        return -1;
    if (r->at < r->n && r->s[r->at] == ',') {
        r->at++;
        if ((got_hi = parse_number(r, &hi)) < 0)
            return -1;
        if (!got_hi)
            hi = FL_GX_INF;
    } else {
        hi = lo;
        got_hi = got_lo;
    }
    if ((!got_lo && !got_hi) || r->at >= r->n || r->s[r->at] != '}') {
        r->at = save;
        return 0;
    }
    r->at++;
    if (hi != FL_GX_INF && hi < lo)
        return fail_at(r, "a repetition's bounds are out of order");
    *min = lo;
    *max = hi;
    return 1;
}

static int parse_atom(rx *r, fl_gx **out)
{
    const int c = r->s[r->at];
    if (c == '(') {
        r->at++;
        if (r->at < r->n && r->s[r->at] == '?') {
            r->at++;
            if (r->at < r->n && r->s[r->at] == ':') {
                r->at++;
            } else if (r->at < r->n && (r->s[r->at] == 'P' || r->s[r->at] == '<') &&
                       !(r->s[r->at] == '<' && r->at + 1 < r->n && (r->s[r->at + 1] == '=' || r->s[r->at + 1] == '!'))) {
                if (r->s[r->at] == 'P')
                    r->at++;
                if (r->at >= r->n || r->s[r->at] != '<')
                    return fail_at(r, "a (?P...) group is not a named group");
                while (r->at < r->n && r->s[r->at] != '>')
                    r->at++;
                if (r->at >= r->n)
                    return fail_at(r, "a group name is not closed");
                r->at++;
            } else {
                return fail_at(r, "lookaround, inline flags and other (?...) groups are not supported");
            }
        }
        if (++r->depth > MAX_NESTING)
            return fail_at(r, "groups nest too deeply");
        if (parse_alt(r, out) != 0)
            return -1;
        r->depth--;
        if (r->at >= r->n || r->s[r->at] != ')')
            return fail_at(r, "a group is not closed");
        r->at++;
        return 0;
    }
    if (c == '[') {
        r->at++;
        return parse_class(r, out);
    }
    if (c == '.') {
        r->at++;
        ranges rs = { 0 };
        add_range(&rs, '\n', '\n');
        *out = char_set(r, &rs, 1);
        free(rs.r);
        return 0;
    }
    if (c == '\\') {
        r->at++;
        ranges rs = { 0 };
        int neg;
        if (r->at < r->n && class_escape(r->s[r->at], &rs, &neg)) {
            r->at++;
            *out = char_set(r, &rs, neg);
            free(rs.r);
            return 0;
        }
        free(rs.r);
        uint32_t ch;
        if (escape_char(r, &ch) != 0)
            return -1;
        *out = one_char(r, ch);
        return 0;
    }
    if (c == '*' || c == '+' || c == '?')
        return fail_at(r, "a quantifier follows nothing");
    uint32_t ch;
    if (next_char(r, &ch) != 0)
        return -1;
    *out = one_char(r, ch);
    return 0;
}

static int parse_seq(rx *r, fl_gx **out)
{
    fl_gx *seq = fl_gx_seq(r->b);
    while (r->at < r->n && r->s[r->at] != '|' && r->s[r->at] != ')') {
        const int c = r->s[r->at];
        if (c == '^' && r->at == 0) { /* anchors at the ends: the match is whole anyway */
            r->at++;
            continue;
        }
        if (c == '$' && r->at + 1 == r->n) {
            r->at++;
            continue;
        }
        if (c == '^' || c == '$')
            return fail_at(r, "^ and $ are only supported at the pattern's ends");
        fl_gx *atom;
        if (parse_atom(r, &atom) != 0)
            return -1;
        for (;;) { /* quantifiers, possibly stacked: a{2}{3} */
            int min = 0, max = 0;
            if (r->at >= r->n)
                break;
            const int q = r->s[r->at];
            if (q == '*' || q == '+' || q == '?') {
                r->at++;
                min = q == '+';
                max = q == '?' ? 1 : FL_GX_INF;
            } else if (q == '{') {
                const int got = parse_braces(r, &min, &max);
                if (got < 0)
                    return -1;
                if (!got)
                    break;
            } else {
                break;
            }
            if (r->at < r->n && r->s[r->at] == '?')
                r->at++; /* lazy: the same strings */
            else if (r->at < r->n && r->s[r->at] == '+')
                return fail_at(r, "possessive quantifiers are not supported");
            atom = fl_gx_repeat(r->b, atom, min, max);
        }
        fl_gx_add(seq, atom);
    }
    *out = seq;
    return 0;
}

static int parse_alt(rx *r, fl_gx **out)
{
    fl_gx *first;
    if (parse_seq(r, &first) != 0)
        return -1;
    if (r->at >= r->n || r->s[r->at] != '|') {
        *out = first;
        return 0;
    }
    fl_gx *alt = fl_gx_add(fl_gx_alt(r->b), first);
    while (r->at < r->n && r->s[r->at] == '|') {
        r->at++;
        fl_gx *next;
        if (parse_seq(r, &next) != 0)
            return -1;
        fl_gx_add(alt, next);
    }
    *out = alt;
    return 0;
}

int fl_regex_build(fl_gb *b, const char *pattern, size_t len, int json_string, fl_gx **out, fl_error *err)
{
    rx r = { .b = b, .s = (const unsigned char *)pattern, .n = len, .json = json_string, .what = "regex", .err = err };
    if (parse_alt(&r, out) != 0)
        return -1;
    if (r.at < r.n)
        return fail_at(&r, "an unmatched ')'");
    return 0;
}

int fl_gx_parse_class(fl_gb *b, const char *s, size_t n, size_t *at, fl_gx **out, fl_error *err)
{
    rx r = { .b = b, .s = (const unsigned char *)s, .n = n, .at = *at, .what = "grammar", .err = err };
    const int rc = parse_class(&r, out);
    *at = r.at;
    return rc;
}

int fl_gx_parse_escape(const char *s, size_t n, size_t *at, uint32_t *cp, fl_error *err)
{
    rx r = { .s = (const unsigned char *)s, .n = n, .at = *at, .what = "grammar", .err = err };
    const int rc = escape_char(&r, cp);
    *at = r.at;
    return rc;
}
