/* jinja_parse.c - tokens to a syntax tree, by recursive descent.
 *
 * Expression precedence follows Jinja2's parser, loosest first:
 * `x if c else y`, or, and, not, comparisons (== != < > <= >= in, not in),
 * + -, ~, * / // %, **, unary -, then primaries with their postfixes
 * (.attr, [index], [a:b:c], (call)) and filters/tests (| f, is t), which
 * therefore bind tighter than any binary operator.
 *
 * Each parenthesis, list, call argument, operand of `not` or unary minus,
 * elif and block body is one more level of recursion, so the parser counts
 * them and stops at JINJA_MAX_DEPTH before the stack runs out. Chains that
 * it reads in a loop (a.b.c, x|f|g, 1 + 2 + 3) do not recurse here but make
 * a tree as deep as they are long: jinja.c bounds the tree's height.
 *
 * Tuples are read where Jinja reads them: `a, b` in {{ }}, a set's value
 * and a for loop's sequence, `(a, b)` and `()` anywhere, and as targets
 * of set and for (names, nested in parentheses). Statements: if, for,
 * set (and its block form), filter blocks, macros, break and continue
 * (inside a loop of the same macro or block only, as Jinja compiles
 * them), generation. */
#include <stdlib.h>
#include <string.h>

#include "jinja/jinja_internal.h"

typedef struct parser {
    fl_arena *arena;
    jtok *t;
    int pos, n;
    fl_error *err;
    int failed;
    int depth;  /* levels of recursion the current token is inside */
    int loops;  /* for loops around the current token, within its macro or block */
} parser;

static jtok *peek(parser *p) { return &p->t[p->pos]; }
static jtok *next_tok(parser *p) { return &p->t[p->pos < p->n - 1 ? p->pos++ : p->pos]; }

static int is_op(parser *p, const char *op)
{
    jtok *t = peek(p);
    return t->kind == JT_OP && strcmp(t->text, op) == 0;
}

static int is_name(parser *p, const char *name)
{
    jtok *t = peek(p);
    return t->kind == JT_NAME && strcmp(t->text, name) == 0;
}

static jnode *fail_at(parser *p, const char *what)
{
    if (!p->failed) {
        jtok *t = peek(p);
        fl_fail(p->err, "line %d: %s (at '%s')", t->line, what,
                t->kind == JT_EOF ? "end of template" : t->kind == JT_BLOCK_END ? "%}"
                : t->kind == JT_VAR_END ? "}}" : t->text);
    }
    p->failed = 1;
    return NULL;
}

static int expect_op(parser *p, const char *op)
{
    if (!is_op(p, op)) {
        char msg[64];
        snprintf(msg, sizeof msg, "expected '%s'", op);
        fail_at(p, msg);
        return -1;
    }
    next_tok(p);
    return 0;
}

/* Enters one more level of recursion; -1 past JINJA_MAX_DEPTH. The caller
 * leaves it (depth--) when it returns without an error. */
static int descend(parser *p)
{
    if (++p->depth <= JINJA_MAX_DEPTH)
        return 0;
    char msg[64];
    snprintf(msg, sizeof msg, JINJA_TOO_DEEP, JINJA_MAX_DEPTH);
    fail_at(p, msg);
    return -1;
}

static jnode *node(parser *p, jnode_kind kind)
{
    jnode *n = fl_arena_alloc(p->arena, sizeof *n);
    n->kind = kind;
    n->line = peek(p)->line;
    return n;
}

/* A growable array of nodes in the arena. */
static void append(parser *p, jnode ***arr, int *n, int *cap, jnode *x)
{
    if (*n == *cap) {
        *cap = *cap ? *cap * 2 : 8;
        jnode **grown = fl_arena_alloc(p->arena, (size_t)*cap * sizeof(jnode *));
        if (*n)
            memcpy(grown, *arr, (size_t)*n * sizeof(jnode *));
        *arr = grown;
    }
    (*arr)[(*n)++] = x;
}

static jnode *parse_expr(parser *p);
static jnode *parse_unary(parser *p, int with_filter);
static jnode *parse_tuple(parser *p, jnode *(*item)(parser *), int in_parens);

/* (args, kw=args) after the '(' was seen; fills n->args/kwnames. */
static int parse_call_args(parser *p, jnode *n)
{
    int cap = 0, kwcap = 0, nkw = 0;
    const char **kw = NULL;
    jnode **pos_args = NULL, **kw_args = NULL;
    int npos = 0, cap2 = 0;
    while (!is_op(p, ")")) {
        if (peek(p)->kind == JT_NAME && p->t[p->pos + 1].kind == JT_OP &&
            strcmp(p->t[p->pos + 1].text, "=") == 0) {
            const char *name = next_tok(p)->text;
            next_tok(p);
            jnode *v = parse_expr(p);
            if (!v)
                return -1;
            if (nkw == kwcap) {
                kwcap = kwcap ? kwcap * 2 : 4;
                const char **grown = fl_arena_alloc(p->arena, (size_t)kwcap * sizeof(char *));
                if (nkw)
                    memcpy(grown, kw, (size_t)nkw * sizeof(char *));
                kw = grown;
            }
            kw[nkw] = name;
            append(p, &kw_args, &nkw, &cap2, v);
        } else {
            if (nkw) {
                fail_at(p, "a positional argument after a keyword argument");
                return -1;
            }
            jnode *v = parse_expr(p);
            if (!v)
                return -1;
            append(p, &pos_args, &npos, &cap, v);
        }
        if (!is_op(p, ","))
            break;
        next_tok(p);
    }
    if (expect_op(p, ")") != 0)
        return -1;
    if (npos > JINJA_MAX_ARGS || nkw > JINJA_MAX_ARGS) {
        char msg[64];
        snprintf(msg, sizeof msg, "more than %d arguments", JINJA_MAX_ARGS);
        fail_at(p, msg);
        return -1;
    }
    n->nargs = npos + nkw;
    n->nkw = nkw;
    n->kwnames = kw;
    n->args = fl_arena_alloc(p->arena, (size_t)(n->nargs + 1) * sizeof(jnode *));
    for (int i = 0; i < npos; i++)
        n->args[i] = pos_args[i];
    for (int i = 0; i < nkw; i++)
        n->args[npos + i] = kw_args[i];
    return 0;
}

static jnode *parse_primary(parser *p)
{
    jtok *t = peek(p);
    jnode *n;
    if (t->kind == JT_STRING) {
        n = node(p, JN_LITERAL);
        n->value = (jv){ .t = JV_STR, .s = { t->text, t->len } };
        next_tok(p);
        /* adjacent literals concatenate, as in Jinja; copied once, since
         * joining them pairwise is quadratic in their number */
        int end = p->pos;
        size_t len = t->len;
        for (; p->t[end].kind == JT_STRING; end++)
            len += p->t[end].len;
        if (end > p->pos) {
            char *joined = fl_arena_alloc(p->arena, len + 1);
            memcpy(joined, t->text, t->len);
            for (size_t at = t->len; p->pos < end; p->pos++) {
                memcpy(joined + at, p->t[p->pos].text, p->t[p->pos].len);
                at += p->t[p->pos].len;
            }
            n->value.s.p = joined;
            n->value.s.n = len;
        }
        return n;
    }
    if (t->kind == JT_INT || t->kind == JT_FLOAT) {
        n = node(p, JN_LITERAL);
        n->value = t->kind == JT_INT ? (jv){ .t = JV_INT, .i = t->ival }
                                     : (jv){ .t = JV_FLOAT, .f = t->fval };
        next_tok(p);
        return n;
    }
    if (t->kind == JT_NAME) {
        static const struct { const char *name; jv value; } consts[] = {
            { "true", { .t = JV_BOOL, .i = 1 } }, { "True", { .t = JV_BOOL, .i = 1 } },
            { "false", { .t = JV_BOOL, .i = 0 } }, { "False", { .t = JV_BOOL, .i = 0 } },
            { "none", { .t = JV_NONE } }, { "None", { .t = JV_NONE } },
        };
        for (size_t i = 0; i < sizeof consts / sizeof consts[0]; i++) {
            if (strcmp(t->text, consts[i].name) == 0) {
                n = node(p, JN_LITERAL);
                n->value = consts[i].value;
                next_tok(p);
                return n;
            }
        }
        n = node(p, JN_NAME);
        n->name = t->text;
        next_tok(p);
        return n;
    }
    if (is_op(p, "(")) {
        next_tok(p);
        n = parse_tuple(p, parse_expr, 1);
        return n && expect_op(p, ")") == 0 ? n : NULL;
    }
    if (is_op(p, "[")) {
        n = node(p, JN_LIST);
        next_tok(p);
        int cap = 0;
        while (!is_op(p, "]")) {
            jnode *item = parse_expr(p);
            if (!item)
                return NULL;
            append(p, &n->args, &n->nargs, &cap, item);
            if (!is_op(p, ","))
                break;
            next_tok(p);
        }
        return expect_op(p, "]") == 0 ? n : NULL;
    }
    if (is_op(p, "{")) {
        /* {k: v, ...}: keys in args[0..n), values in args[n..2n) via a second list */
        n = node(p, JN_DICT);
        next_tok(p);
        jnode **keys = NULL, **vals = NULL;
        int nk = 0, nv = 0, capk = 0, capv = 0;
        while (!is_op(p, "}")) {
            jnode *k = parse_expr(p);
            if (!k || expect_op(p, ":") != 0)
                return NULL;
            jnode *v = parse_expr(p);
            if (!v)
                return NULL;
            append(p, &keys, &nk, &capk, k);
            append(p, &vals, &nv, &capv, v);
            if (!is_op(p, ","))
                break;
            next_tok(p);
        }
        if (expect_op(p, "}") != 0)
            return NULL;
        n->nargs = nk;
        n->args = fl_arena_alloc(p->arena, (size_t)(2 * nk + 1) * sizeof(jnode *));
        for (int i = 0; i < nk; i++) {
            n->args[i] = keys[i];
            n->args[nk + i] = vals[i];
        }
        return n;
    }
    return fail_at(p, "expected an expression");
}

/* [index] or [start:stop:step] after the '['. */
static jnode *parse_subscript(parser *p, jnode *obj)
{
    jnode *parts[3] = { NULL, NULL, NULL };
    int colons = 0;
    for (;;) {
        if (is_op(p, ":")) {
            if (++colons > 2)
                return fail_at(p, "too many ':' in a slice");
            next_tok(p);
            continue;
        }
        if (is_op(p, "]"))
            break;
        if (parts[colons])
            return fail_at(p, "expected ']'");
        if (!(parts[colons] = parse_expr(p)))
            return NULL;
    }
    next_tok(p);
    jnode *n = node(p, colons ? JN_SLICE : JN_ITEM);
    n->a = obj;
    if (colons) {
        n->b = parts[0];
        n->c = parts[1];
        n->args = fl_arena_alloc(p->arena, sizeof(jnode *));
        n->args[0] = parts[2];
        n->nargs = 1;
    } else {
        if (!parts[0])
            return fail_at(p, "empty subscript");
        n->b = parts[0];
    }
    return n;
}

static jnode *parse_postfix(parser *p, jnode *n)
{
    while (n) {
        if (is_op(p, ".")) {
            next_tok(p);
            if (peek(p)->kind != JT_NAME && peek(p)->kind != JT_INT)
                return fail_at(p, "expected an attribute name");
            jnode *a = node(p, JN_ATTR);
            a->a = n;
            a->name = next_tok(p)->text;
            n = a;
        } else if (is_op(p, "[")) {
            next_tok(p);
            n = parse_subscript(p, n);
        } else if (is_op(p, "(")) {
            next_tok(p);
            jnode *c = node(p, JN_CALL);
            c->a = n;
            if (parse_call_args(p, c) != 0)
                return NULL;
            n = c;
        } else {
            break;
        }
    }
    return n;
}

/* A filter's name and arguments, after its '|', applied to n. */
static jnode *parse_filter(parser *p, jnode *n)
{
    if (peek(p)->kind != JT_NAME)
        return fail_at(p, "expected a filter name");
    jnode *f = node(p, JN_FILTER);
    f->a = n;
    f->name = next_tok(p)->text;
    if (is_op(p, "(")) {
        next_tok(p);
        if (parse_call_args(p, f) != 0)
            return NULL;
    }
    return f;
}

/* Whether a test's single argument may follow without parentheses (`is
 * divisibleby 3`, `is sameas none`, `is in [1, 2]`): Jinja's rule. */
static int bare_test_arg(parser *p)
{
    jtok *t = peek(p);
    if (t->kind == JT_NAME)
        return !is_name(p, "else") && !is_name(p, "or") && !is_name(p, "and") && !is_name(p, "is");
    return t->kind == JT_STRING || t->kind == JT_INT || t->kind == JT_FLOAT || is_op(p, "(") ||
           is_op(p, "[") || is_op(p, "{");
}

/* | filter(args) and `is [not] test(arg)` chains. */
static jnode *parse_filters(parser *p, jnode *n)
{
    while (n) {
        if (is_op(p, "|")) {
            next_tok(p);
            n = parse_filter(p, n);
        } else if (is_name(p, "is")) {
            next_tok(p);
            jnode *t = node(p, JN_TEST);
            t->a = n;
            if (is_name(p, "not")) {
                t->negated = 1;
                next_tok(p);
            }
            if (peek(p)->kind != JT_NAME)
                return fail_at(p, "expected a test name");
            t->name = next_tok(p)->text;
            if (is_op(p, "(")) {
                next_tok(p);
                if (parse_call_args(p, t) != 0)
                    return NULL;
            } else if (bare_test_arg(p)) {
                t->args = fl_arena_alloc(p->arena, sizeof(jnode *));
                if (!(t->args[0] = parse_postfix(p, parse_primary(p))))
                    return NULL;
                t->nargs = 1;
            }
            n = t;
        } else {
            break;
        }
    }
    return n;
}

static jnode *binary(parser *p, const char *op, jnode *l, jnode *r)
{
    if (!l || !r)
        return NULL;
    jnode *n = node(p, strcmp(op, "and") == 0 ? JN_AND : strcmp(op, "or") == 0 ? JN_OR : JN_BINARY);
    n->name = op;
    n->a = l;
    n->b = r;
    return n;
}

static jnode *parse_unary(parser *p, int with_filter)
{
    jnode *n;
    if (is_op(p, "-")) {
        next_tok(p);
        n = node(p, JN_NEG);
        if (descend(p) != 0 || !(n->a = parse_unary(p, 0)))
            return NULL;
        p->depth--;
    } else if (is_op(p, "+")) {
        next_tok(p);
        if (descend(p) != 0 || !(n = parse_unary(p, 0)))
            return NULL;
        p->depth--;
    } else {
        n = parse_postfix(p, parse_primary(p));
    }
    return with_filter ? parse_filters(p, n) : n;
}

static jnode *parse_pow(parser *p)
{
    jnode *l = parse_unary(p, 1);
    while (l && is_op(p, "**")) {
        next_tok(p);
        l = binary(p, "**", l, parse_unary(p, 1));
    }
    return l;
}

static jnode *parse_math2(parser *p)
{
    jnode *l = parse_pow(p);
    while (l && (is_op(p, "*") || is_op(p, "/") || is_op(p, "//") || is_op(p, "%"))) {
        const char *op = next_tok(p)->text;
        l = binary(p, op, l, parse_pow(p));
    }
    return l;
}

static jnode *parse_concat(parser *p)
{
    jnode *l = parse_math2(p);
    while (l && is_op(p, "~")) {
        next_tok(p);
        l = binary(p, "~", l, parse_math2(p));
    }
    return l;
}

static jnode *parse_math1(parser *p)
{
    jnode *l = parse_concat(p);
    while (l && (is_op(p, "+") || is_op(p, "-"))) {
        const char *op = next_tok(p)->text;
        l = binary(p, op, l, parse_concat(p));
    }
    return l;
}

static jnode *parse_compare(parser *p)
{
    jnode *l = parse_math1(p);
    for (;;) {
        if (!l)
            return NULL;
        if (is_op(p, "==") || is_op(p, "!=") || is_op(p, "<") || is_op(p, ">") || is_op(p, "<=") ||
            is_op(p, ">=") || is_name(p, "in")) {
            const char *op = next_tok(p)->text;
            l = binary(p, op, l, parse_math1(p));
        } else if (is_name(p, "not") && p->t[p->pos + 1].kind == JT_NAME &&
                   strcmp(p->t[p->pos + 1].text, "in") == 0) {
            next_tok(p);
            next_tok(p);
            l = binary(p, "not in", l, parse_math1(p));
        } else {
            return l;
        }
    }
}

static jnode *parse_not(parser *p)
{
    if (is_name(p, "not")) {
        next_tok(p);
        jnode *n = node(p, JN_NOT);
        if (descend(p) != 0 || !(n->a = parse_not(p)))
            return NULL;
        p->depth--;
        return n;
    }
    return parse_compare(p);
}

static jnode *parse_and(parser *p)
{
    jnode *l = parse_not(p);
    while (l && is_name(p, "and")) {
        next_tok(p);
        l = binary(p, "and", l, parse_not(p));
    }
    return l;
}

static jnode *parse_or(parser *p)
{
    jnode *l = parse_and(p);
    while (l && is_name(p, "or")) {
        next_tok(p);
        l = binary(p, "or", l, parse_and(p));
    }
    return l;
}

/* `x if c else y`: the loosest expression. */
static jnode *parse_cond(parser *p)
{
    jnode *n = parse_or(p);
    if (n && is_name(p, "if")) {
        next_tok(p);
        jnode *c = node(p, JN_COND);
        c->a = n;
        c->b = parse_or(p);
        if (!c->b)
            return NULL;
        if (is_name(p, "else")) {
            next_tok(p);
            if (!(c->c = parse_expr(p)))
                return NULL;
        }
        return c;
    }
    return n;
}

/* Every nested expression (parentheses, items, arguments, subscripts)
 * starts here, so this is where expressions count their depth. */
static jnode *parse_expr(parser *p)
{
    if (descend(p) != 0)
        return NULL;
    jnode *n = parse_cond(p);
    if (n)
        p->depth--;
    return n;
}

/* Where a tuple without parentheses ends: at the end of the tag, a ')'
 * or the `in` of a for loop's targets. */
static int tuple_end(parser *p)
{
    return peek(p)->kind == JT_VAR_END || peek(p)->kind == JT_BLOCK_END || is_op(p, ")") ||
           is_name(p, "in");
}

/* `a, b, ...` as Jinja reads it where one expression may be a tuple: an
 * expression alone is itself, with a comma (a trailing one too) it is a
 * tuple; in parentheses, `()` is the empty tuple. */
static jnode *parse_tuple(parser *p, jnode *(*item)(parser *), int in_parens)
{
    jnode *t = node(p, JN_TUPLE);
    int cap = 0, comma = 0;
    while (!tuple_end(p)) {
        jnode *x = item(p);
        if (!x)
            return NULL;
        append(p, &t->args, &t->nargs, &cap, x);
        if (!is_op(p, ","))
            break;
        next_tok(p);
        comma = 1;
    }
    if (t->nargs == 0 && !in_parens)
        return fail_at(p, "expected an expression");
    return t->nargs == 1 && !comma ? t->args[0] : t;
}

static int assignable(parser *p)
{
    static const char *const consts[] = { "true", "True", "false", "False", "none", "None", NULL };
    if (peek(p)->kind != JT_NAME)
        return 0;
    for (int i = 0; consts[i]; i++)
        if (is_name(p, consts[i]))
            return 0;
    return 1;
}

/* An assignment target: a name, or names and parenthesized targets
 * separated by commas (unpacking, which may nest). */
static jnode *parse_target(parser *p)
{
    jnode *t = node(p, JN_TUPLE);
    int cap = 0;
    for (;;) {
        jnode *x;
        if (is_op(p, "(")) {
            next_tok(p);
            if (descend(p) != 0 || !(x = parse_target(p)) || expect_op(p, ")") != 0)
                return NULL;
            p->depth--;
        } else if (assignable(p)) {
            x = node(p, JN_NAME);
            x->name = next_tok(p)->text;
        } else {
            return fail_at(p, "expected a variable name");
        }
        append(p, &t->args, &t->nargs, &cap, x);
        if (!is_op(p, ","))
            break;
        next_tok(p);
    }
    return t->nargs == 1 ? t->args[0] : t;
}

/* ---- statements ---- */

static jnode *parse_body(parser *p, const char *const *enders, const char **ended_by);

static int expect_block_end(parser *p)
{
    if (peek(p)->kind != JT_BLOCK_END) {
        fail_at(p, "expected '%}'");
        return -1;
    }
    next_tok(p);
    return 0;
}

static jnode *parse_if(parser *p)
{
    jnode *n = node(p, JN_IF);
    n->a = parse_expr(p);
    if (!n->a || expect_block_end(p) != 0)
        return NULL;
    static const char *const enders[] = { "elif", "else", "endif", NULL };
    const char *ended;
    if (!(n->body = parse_body(p, enders, &ended)))
        return NULL;
    if (strcmp(ended, "elif") == 0) {
        jnode *body = node(p, JN_BODY);
        body->stmts = fl_arena_alloc(p->arena, sizeof(jnode *));
        if (descend(p) != 0 || !(body->stmts[0] = parse_if(p)))
            return NULL;
        p->depth--;
        body->nstmts = 1;
        n->orelse = body;
        return n; /* the nested if consumed the endif */
    }
    if (strcmp(ended, "else") == 0) {
        static const char *const end_only[] = { "endif", NULL };
        if (expect_block_end(p) != 0 || !(n->orelse = parse_body(p, end_only, &ended)))
            return NULL;
    }
    return expect_block_end(p) == 0 ? n : NULL;
}

static jnode *parse_for(parser *p)
{
    jnode *n = node(p, JN_FOR);
    if (!(n->c = parse_target(p)))
        return NULL;
    if (!is_name(p, "in"))
        return fail_at(p, "expected 'in'");
    next_tok(p);
    n->a = parse_tuple(p, parse_or, 0); /* not parse_expr: `if` here filters the loop */
    if (!n->a)
        return NULL;
    if (is_name(p, "if")) {
        next_tok(p);
        if (!(n->b = parse_expr(p)))
            return NULL;
    }
    if (is_name(p, "recursive"))
        return fail_at(p, "recursive loops are not supported");
    if (expect_block_end(p) != 0)
        return NULL;
    static const char *const enders[] = { "else", "endfor", NULL };
    const char *ended;
    p->loops++;
    n->body = parse_body(p, enders, &ended);
    p->loops--;
    if (!n->body)
        return NULL;
    if (strcmp(ended, "else") == 0) {
        static const char *const end_only[] = { "endfor", NULL };
        if (expect_block_end(p) != 0 || !(n->orelse = parse_body(p, end_only, &ended)))
            return NULL;
    }
    return expect_block_end(p) == 0 ? n : NULL;
}

/* The body of a macro, {% set %} or {% filter %} block up to its end tag:
 * a body of its own, out of any loop around it, so break and continue in
 * it are refused, as Jinja refuses them. */
static jnode *parse_block_body(parser *p, const char *end_tag)
{
    const char *const enders[] = { end_tag, NULL };
    const char *ended;
    const int loops = p->loops;
    p->loops = 0;
    jnode *body = parse_body(p, enders, &ended);
    p->loops = loops;
    return body && expect_block_end(p) == 0 ? body : NULL;
}

/* The filters of a {% filter %} or {% set x | f %} block, applied to its
 * rendered body (a JN_BLOCK_VALUE); the first has no '|' in a filter tag. */
static jnode *parse_block_filters(parser *p, int first_has_pipe)
{
    jnode *n = node(p, JN_BLOCK_VALUE);
    if (!first_has_pipe)
        n = parse_filter(p, n);
    while (n && is_op(p, "|")) {
        next_tok(p);
        n = parse_filter(p, n);
    }
    return n;
}

/* {% set target = value %}, {% set ns.attr = value %}, or the block form
 * {% set target | filters %}...{% endset %}. */
static jnode *parse_set(parser *p)
{
    jnode *n = node(p, JN_SET);
    if (peek(p)->kind == JT_NAME && p->t[p->pos + 1].kind == JT_OP &&
        strcmp(p->t[p->pos + 1].text, ".") == 0) {
        n->b = node(p, JN_ATTR);
        n->b->a = node(p, JN_NAME);
        n->b->a->name = next_tok(p)->text;
        next_tok(p);
        if (peek(p)->kind != JT_NAME)
            return fail_at(p, "expected an attribute name");
        n->b->name = next_tok(p)->text;
    } else if (!(n->b = parse_target(p))) {
        return NULL;
    }
    if (is_op(p, "=")) {
        next_tok(p);
        n->a = parse_tuple(p, parse_expr, 0);
        return n->a && expect_block_end(p) == 0 ? n : NULL;
    }
    n->kind = JN_SET_BLOCK;
    if (is_op(p, "|") && !(n->a = parse_block_filters(p, 1)))
        return NULL;
    if (expect_block_end(p) != 0)
        return NULL;
    return (n->body = parse_block_body(p, "endset")) ? n : NULL;
}

static jnode *parse_filter_block(parser *p)
{
    jnode *n = node(p, JN_FILTER_BLOCK);
    if (!(n->a = parse_block_filters(p, 0)) || expect_block_end(p) != 0)
        return NULL;
    return (n->body = parse_block_body(p, "endfilter")) ? n : NULL;
}

/* {% macro name(param, param=default, ...) %}...{% endmacro %}: the
 * parameter names in kwnames, their defaults (or NULL) in args. */
static jnode *parse_macro(parser *p)
{
    jnode *n = node(p, JN_MACRO);
    if (!assignable(p))
        return fail_at(p, "expected a macro name");
    n->name = next_tok(p)->text;
    if (expect_op(p, "(") != 0)
        return NULL;
    n->kwnames = fl_arena_alloc(p->arena, JINJA_MAX_ARGS * sizeof(char *));
    n->args = fl_arena_alloc(p->arena, JINJA_MAX_ARGS * sizeof(jnode *));
    while (!is_op(p, ")")) {
        if (n->nargs == JINJA_MAX_ARGS) {
            char msg[64];
            snprintf(msg, sizeof msg, "more than %d parameters", JINJA_MAX_ARGS);
            return fail_at(p, msg);
        }
        if (!assignable(p))
            return fail_at(p, "expected a parameter name");
        n->kwnames[n->nargs] = next_tok(p)->text;
        if (is_op(p, "=")) {
            next_tok(p);
            if (!(n->args[n->nargs] = parse_expr(p)))
                return NULL;
        } else if (n->nargs > 0 && n->args[n->nargs - 1]) {
            return fail_at(p, "a parameter without a default after one with a default");
        }
        n->nargs++;
        if (!is_op(p, ","))
            break;
        next_tok(p);
    }
    if (expect_op(p, ")") != 0 || expect_block_end(p) != 0)
        return NULL;
    return (n->body = parse_block_body(p, "endmacro")) ? n : NULL;
}

/* Parses statements until one of enders (NULL-terminated) or EOF (enders
 * NULL). The ending tag's name is left in *ended_by, its %} unconsumed. */
static jnode *parse_body(parser *p, const char *const *enders, const char **ended_by)
{
    if (descend(p) != 0)
        return NULL;
    jnode *body = node(p, JN_BODY);
    int cap = 0;
    for (;;) {
        jtok *t = peek(p);
        if (t->kind == JT_EOF) {
            if (enders)
                return fail_at(p, "a block is not closed");
            p->depth--;
            return body;
        }
        if (t->kind == JT_TEXT) {
            jnode *n = node(p, JN_TEXT);
            n->value = (jv){ .t = JV_STR, .s = { t->text, t->len } };
            next_tok(p);
            append(p, &body->stmts, &body->nstmts, &cap, n);
            continue;
        }
        if (t->kind == JT_VAR_BEGIN) {
            next_tok(p);
            jnode *n = node(p, JN_OUTPUT);
            if (!(n->a = parse_tuple(p, parse_expr, 0)))
                return NULL;
            if (peek(p)->kind != JT_VAR_END)
                return fail_at(p, "expected '}}'");
            next_tok(p);
            append(p, &body->stmts, &body->nstmts, &cap, n);
            continue;
        }
        if (t->kind != JT_BLOCK_BEGIN)
            return fail_at(p, "unexpected token");
        next_tok(p);
        jtok *kw = peek(p);
        if (kw->kind != JT_NAME)
            return fail_at(p, "expected a tag name");
        for (int i = 0; enders && enders[i]; i++) {
            if (strcmp(kw->text, enders[i]) == 0) {
                next_tok(p);
                *ended_by = enders[i];
                p->depth--;
                return body;
            }
        }
        next_tok(p);
        jnode *n;
        if (strcmp(kw->text, "if") == 0) {
            n = parse_if(p);
        } else if (strcmp(kw->text, "for") == 0) {
            n = parse_for(p);
        } else if (strcmp(kw->text, "set") == 0) {
            n = parse_set(p);
        } else if (strcmp(kw->text, "filter") == 0) {
            n = parse_filter_block(p);
        } else if (strcmp(kw->text, "macro") == 0) {
            n = parse_macro(p);
        } else if (strcmp(kw->text, "break") == 0 || strcmp(kw->text, "continue") == 0) {
            if (!p->loops) {
                p->pos--;
                return fail_at(p, "break and continue belong inside a for loop");
            }
            n = node(p, kw->text[0] == 'b' ? JN_BREAK : JN_CONTINUE);
            if (expect_block_end(p) != 0)
                return NULL;
        } else if (strcmp(kw->text, "generation") == 0) {
            /* transformers' assistant-mask marker: renders its body */
            static const char *const end_only[] = { "endgeneration", NULL };
            const char *ended;
            if (expect_block_end(p) != 0 || !(n = parse_body(p, end_only, &ended)) ||
                expect_block_end(p) != 0)
                return NULL;
        } else {
            p->pos--;
            return fail_at(p, "unsupported or unexpected tag");
        }
        if (!n)
            return NULL;
        append(p, &body->stmts, &body->nstmts, &cap, n);
    }
}

jnode *jinja_parse_tokens(fl_arena *a, jtok *toks, int ntoks, fl_error *err)
{
    parser p = { .arena = a, .t = toks, .n = ntoks, .err = err };
    const char *ended;
    return parse_body(&p, NULL, &ended);
}
