/* grammar_ebnf.c - a grammar in the EBNF that vLLM's default backend
 * (xgrammar) takes, GBNF's syntax (llama.cpp's grammars/README.md):
 *
 *   root ::= "{" ws pair ("," ws pair)* "}"    # the rule named root is the whole output
 *   pair ::= [a-z]+ ":" ws ( num | "null" )
 *   num  ::= "-"? [0-9]{1,6}
 *   ws   ::= [ \t\n]*
 *
 * Rules `name ::= body`, a body running until the next `name ::=`;
 * strings "..." (escapes \n \t \r \\ \" \xHH \uHHHH \UHHHHHHHH), character
 * classes [...] and [^...] over code points, `.` (any character),
 * references, groups, alternation |, and the quantifiers * + ? {n} {n,}
 * {n,m}; # comments. xgrammar's lookahead assertions (= ...) and Lark
 * grammars (no ::= at all; vLLM converts those) are refused by name. */
#include <string.h>

#include "grammar/grammar_build.h"

#define MAX_NESTING 256

typedef struct ebnf {
    fl_gb *b;
    const char *s;
    size_t n, at;
    int depth;
    fl_error *err;
} ebnf;

/* The line of offset at, for messages. */
static int line_of(const ebnf *p, size_t at)
{
    int line = 1;
    for (size_t i = 0; i < at && i < p->n; i++)
        line += p->s[i] == '\n';
    return line;
}

static int fail_here(ebnf *p, const char *what)
{
    return fl_fail(p->err, "grammar: %s (line %d)", what, line_of(p, p->at));
}

static void skip_space(ebnf *p)
{
    while (p->at < p->n) {
        const char c = p->s[p->at];
        if (c == '#') {
            while (p->at < p->n && p->s[p->at] != '\n')
                p->at++;
        } else if (c == ' ' || c == '\t' || c == '\n' || c == '\r') {
            p->at++;
        } else {
            break;
        }
    }
}

static int name_char(char c, int first)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
           (!first && ((c >= '0' && c <= '9') || c == '-' || c == '.'));
}

static size_t name_len(const ebnf *p, size_t at)
{
    size_t k = at;
    while (k < p->n && name_char(p->s[k], k == at))
        k++;
    return k - at;
}

/* Whether a rule definition (name ::=) starts at offset at. */
static int rule_starts(const ebnf *p, size_t at)
{
    const size_t len = name_len(p, at);
    if (!len)
        return 0;
    size_t k = at + len;
    while (k < p->n && (p->s[k] == ' ' || p->s[k] == '\t'))
        k++;
    return k + 3 <= p->n && memcmp(p->s + k, "::=", 3) == 0;
}

static int parse_alt(ebnf *p, fl_gx **out);

static int parse_string(ebnf *p, fl_gx **out)
{
    fl_gx *seq = fl_gx_seq(p->b);
    p->at++; /* the opening quote */
    for (;;) {
        if (p->at >= p->n || p->s[p->at] == '\n')
            return fail_here(p, "a string is not closed");
        const char c = p->s[p->at++];
        if (c == '"')
            break;
        if (c != '\\') {
            fl_gx_add(seq, fl_gx_byte_range(p->b, (unsigned char)c, (unsigned char)c));
            continue;
        }
        uint32_t cp;
        if (fl_gx_parse_escape(p->s, p->n, &p->at, &cp, p->err) != 0)
            return -1;
        const fl_cp_range one = { cp, cp };
        fl_gx_add(seq, fl_gx_codepoints(p->b, &one, 1));
    }
    *out = seq;
    return 0;
}

static int parse_count(ebnf *p, int *v)
{
    long x = 0;
    int digits = 0;
    while (p->at < p->n && p->s[p->at] >= '0' && p->s[p->at] <= '9') {
        x = x * 10 + (p->s[p->at++] - '0');
        digits++;
        if (x > FL_GRAMMAR_MAX_REPEAT)
            return fail_here(p, "a repetition count is over the limit of 10000");
    }
    *v = (int)x;
    return digits ? 1 : 0;
}

static int parse_primary(ebnf *p, fl_gx **out)
{
    const char c = p->s[p->at];
    if (c == '"')
        return parse_string(p, out);
    if (c == '[') {
        p->at++;
        return fl_gx_parse_class(p->b, p->s, p->n, &p->at, out, p->err);
    }
    if (c == '.') {
        p->at++;
        const fl_cp_range all = { 0, FL_CP_MAX };
        *out = fl_gx_codepoints(p->b, &all, 1);
        return 0;
    }
    if (c == '(') {
        p->at++;
        skip_space(p);
        if (p->at < p->n && p->s[p->at] == '=')
            return fail_here(p, "lookahead assertions (= ...) are not supported");
        if (++p->depth > MAX_NESTING)
            return fail_here(p, "groups nest too deeply");
        if (parse_alt(p, out) != 0)
            return -1;
        p->depth--;
        skip_space(p);
        if (p->at >= p->n || p->s[p->at] != ')')
            return fail_here(p, "a group is not closed");
        p->at++;
        return 0;
    }
    const size_t len = name_len(p, p->at);
    if (!len)
        return fail_here(p, "expected a string, a class, a group or a rule name");
    *out = fl_gx_ref(p->b, fl_gb_rule(p->b, p->s + p->at, len));
    p->at += len;
    return 0;
}

static int parse_seq(ebnf *p, fl_gx **out)
{
    fl_gx *seq = fl_gx_seq(p->b);
    for (;;) {
        skip_space(p);
        if (p->at >= p->n || p->s[p->at] == '|' || p->s[p->at] == ')' || rule_starts(p, p->at))
            break;
        fl_gx *item;
        if (parse_primary(p, &item) != 0)
            return -1;
        for (;;) {
            if (p->at >= p->n)
                break;
            const char q = p->s[p->at];
            int min = 0, max = 0;
            if (q == '*' || q == '+' || q == '?') {
                p->at++;
                min = q == '+';
                max = q == '?' ? 1 : FL_GX_INF;
            } else if (q == '{') {
                p->at++;
                skip_space(p);
                const int got_min = parse_count(p, &min);
                if (got_min < 0)
                    return -1;
                skip_space(p);
                max = min;
                if (p->at < p->n && p->s[p->at] == ',') {
                    p->at++;
                    skip_space(p);
                    const int got_max = parse_count(p, &max);
                    if (got_max < 0)
                        return -1;
                    if (!got_max)
                        max = FL_GX_INF;
                } else if (!got_min) {
                    return fail_here(p, "a repetition {...} needs a count");
                }
                skip_space(p);
                if (p->at >= p->n || p->s[p->at] != '}')
                    return fail_here(p, "a repetition {...} is not closed");
                p->at++;
                if (max != FL_GX_INF && max < min)
                    return fail_here(p, "a repetition's bounds are out of order");
            } else {
                break;
            }
            item = fl_gx_repeat(p->b, item, min, max);
        }
        fl_gx_add(seq, item);
    }
    *out = seq;
    return 0;
}

static int parse_alt(ebnf *p, fl_gx **out)
{
    fl_gx *first;
    if (parse_seq(p, &first) != 0)
        return -1;
    skip_space(p);
    if (p->at >= p->n || p->s[p->at] != '|') {
        *out = first;
        return 0;
    }
    fl_gx *alt = fl_gx_add(fl_gx_alt(p->b), first);
    while (p->at < p->n && p->s[p->at] == '|') {
        p->at++;
        fl_gx *next;
        if (parse_seq(p, &next) != 0)
            return -1;
        fl_gx_add(alt, next);
        skip_space(p);
    }
    *out = alt;
    return 0;
}

int fl_ebnf_build(fl_gb *b, const char *text, size_t len, int *root, fl_error *err)
{
    ebnf p = { .b = b, .s = text, .n = len, .err = err };
    if (!memmem(text, len, "::=", 3))
        return fl_fail(err, "the grammar has no rule (name ::= ...): give it in EBNF as xgrammar takes it (Lark "
                       "grammars are not supported)");
    if (memchr(text, '\0', len))
        return fl_fail(err, "the grammar holds a NUL byte");
    for (;;) {
        skip_space(&p);
        if (p.at >= p.n)
            break;
        if (!rule_starts(&p, p.at))
            return fail_here(&p, "expected a rule (name ::= ...)");
        const size_t nlen = name_len(&p, p.at);
        const int rule = fl_gb_rule(b, text + p.at, nlen);
        p.at += nlen;
        skip_space(&p);
        p.at += 3; /* ::= */
        fl_gx *body;
        if (parse_alt(&p, &body) != 0)
            return -1;
        skip_space(&p);
        if (p.at < p.n && !rule_starts(&p, p.at))
            return fail_here(&p, p.s[p.at] == ')' ? "an unmatched ')'" : "unexpected text");
        if (fl_gb_define(b, rule, body, err) != 0)
            return -1;
    }
    uint64_t r;
    if (!fl_bytemap_get(&b->by_name, "root", 4, &r) || !b->defs[r])
        return fl_fail(err, "the grammar has no rule named 'root' (the rule the whole output matches)");
    *root = (int)r;
    return 0;
}
