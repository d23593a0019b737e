/* jinja.c - the public entry points: parse (lex, parse, check the names of
 * filters, tests, methods and functions against what flashlm implements,
 * so that an unsupported template fails at load, not at the first request;
 * and check the tree's height, which bounds the evaluator's recursion) and
 * render. */
#include "jinja/jinja.h"

#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "jinja/jinja_eval.h"
#include "jinja/jinja_internal.h"

struct fl_jinja {
    fl_arena arena;
    jnode *root;
};

static int known(const char *name, const char *const *list)
{
    for (; *list; list++)
        if (strcmp(name, *list) == 0)
            return 1;
    return 0;
}

static const char *const filters[] = { "length", "count", "trim", "string", "lower", "upper",
    "capitalize", "title", "replace", "default", "d", "first", "last", "join", "list", "items",
    "int", "abs", "tojson", NULL };
static const char *const tests[] = { "defined", "undefined", "none", "string", "number", "integer",
    "float", "boolean", "true", "false", "mapping", "sequence", "iterable", "odd", "even", "eq",
    "equalto", "sameas", "ne", NULL };
static const char *const methods[] = { "startswith", "endswith", "strip", "lstrip", "rstrip",
    "split", "replace", "upper", "lower", "capitalize", "title", "join", "get", "keys", "values",
    "items", NULL };
static const char *const functions[] = { "namespace", "raise_exception", "range", "strftime_now",
    NULL };

/* depth: of n in the tree. The parser bounds its own recursion, but chains
 * it reads in a loop (x|f|g..., a.b.c..., 1 + 2 + ...) are as deep as they
 * are long, and the evaluator recurses along every edge. */
static int check(const jnode *n, int depth, fl_error *err)
{
    if (!n)
        return 0;
    if (depth > JINJA_MAX_DEPTH)
        return fl_fail(err, "line %d: " JINJA_TOO_DEEP, n->line, JINJA_MAX_DEPTH);
    const char *bad = NULL, *what = NULL;
    if (n->kind == JN_FILTER && !known(n->name, filters))
        bad = n->name, what = "filter";
    else if (n->kind == JN_TEST && !known(n->name, tests))
        bad = n->name, what = "test";
    else if (n->kind == JN_CALL && n->a->kind == JN_ATTR && !known(n->a->name, methods))
        bad = n->a->name, what = "method";
    else if (n->kind == JN_CALL && n->a->kind == JN_NAME && !known(n->a->name, functions))
        bad = n->a->name, what = "function";
    if (bad)
        return fl_fail(err, "line %d: the %s '%s' is not supported", n->line, what, bad);
    if (check(n->a, depth + 1, err) || check(n->b, depth + 1, err) || check(n->c, depth + 1, err) ||
        check(n->body, depth + 1, err) || check(n->orelse, depth + 1, err))
        return -1;
    /* dict literals keep their values after the keys */
    int nargs = n->kind == JN_DICT ? 2 * n->nargs : n->nargs;
    for (int i = 0; i < nargs; i++)
        if (check(n->args[i], depth + 1, err))
            return -1;
    for (int i = 0; i < n->nstmts; i++)
        if (check(n->stmts[i], depth + 1, err))
            return -1;
    return 0;
}

static int reads(const jnode *n, const char *name)
{
    if (!n)
        return 0;
    if (n->kind == JN_NAME && strcmp(n->name, name) == 0)
        return 1;
    if (reads(n->a, name) || reads(n->b, name) || reads(n->c, name) || reads(n->body, name) ||
        reads(n->orelse, name))
        return 1;
    int nargs = n->kind == JN_DICT ? 2 * n->nargs : n->nargs;
    for (int i = 0; i < nargs; i++)
        if (reads(n->args[i], name))
            return 1;
    for (int i = 0; i < n->nstmts; i++)
        if (reads(n->stmts[i], name))
            return 1;
    return 0;
}

int fl_jinja_reads(const fl_jinja *t, const char *name)
{
    return reads(t->root, name);
}

fl_jinja *fl_jinja_parse(const char *source, size_t len, fl_error *err)
{
    fl_jinja *t = fl_calloc(1, sizeof *t);
    jtok *toks;
    int n = jinja_lex(&t->arena, source, len, &toks, err);
    if (n < 0 || !(t->root = jinja_parse_tokens(&t->arena, toks, n, err)) || check(t->root, 1, err)) {
        fl_jinja_free(t);
        return NULL;
    }
    return t;
}

int fl_jinja_render(const fl_jinja *t, json_t *vars, fl_strbuf *out, fl_error *err)
{
    return jinja_render_tree(t->root, vars, out, err);
}

void fl_jinja_free(fl_jinja *t)
{
    if (!t)
        return;
    fl_arena_free(&t->arena);
    free(t);
}
