/* jinja.c - the public entry points: parse (lex, parse, check the names of
 * filters, tests, methods and functions against what flashlm implements
 * and the macros the template defines, so that an unsupported template
 * fails at load, not at the first request; and check the tree's height,
 * which bounds the evaluator's recursion within a macro) and render. */
#include "jinja/jinja.h"

#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "jinja/jinja_eval.h"

struct fl_jinja {
    fl_arena arena;
    jnode *root;
};

/* The names of the macros a template defines anywhere: the functions it
 * may call besides the built-in ones. */
typedef struct macro_names {
    const char **names;
    int n, cap;
} macro_names;

static void collect_macros(fl_arena *a, const jnode *n, macro_names *m)
{
    if (!n)
        return;
    if (n->kind == JN_MACRO) {
        if (m->n == m->cap) {
            m->cap = m->cap ? 2 * m->cap : 8;
            const char **grown = fl_arena_alloc(a, (size_t)m->cap * sizeof(char *));
            if (m->n)
                memcpy(grown, m->names, (size_t)m->n * sizeof(char *));
            m->names = grown;
        }
        m->names[m->n++] = n->name;
    }
    collect_macros(a, n->body, m);
    collect_macros(a, n->orelse, m);
    for (int i = 0; i < n->nstmts; i++)
        collect_macros(a, n->stmts[i], m);
}

static int is_macro(const macro_names *m, const char *name)
{
    for (int i = 0; i < m->n; i++)
        if (strcmp(m->names[i], name) == 0)
            return 1;
    return 0;
}

static int reads(const jnode *n, const char *name);

/* The name a built-in that takes one by name is given as a literal:
 * map('trim'), select('odd'), selectattr('x', 'defined'), which must name
 * a filter or test flashlm has. */
static const char *named_builtin(const jnode *n, int *is_test)
{
    if (n->kind != JN_FILTER)
        return NULL;
    const int by_attr = !strcmp(n->name, "selectattr") || !strcmp(n->name, "rejectattr");
    *is_test = by_attr || !strcmp(n->name, "select") || !strcmp(n->name, "reject");
    if (!*is_test && strcmp(n->name, "map") != 0)
        return NULL;
    const int at = by_attr ? 1 : 0;
    if (n->nargs - n->nkw <= at || n->args[at]->kind != JN_LITERAL || n->args[at]->value.t != JV_STR)
        return NULL;
    return n->args[at]->value.s.p;
}

/* depth: of n in the tree. The parser bounds its own recursion, but chains
 * it reads in a loop (x|f|g..., a.b.c..., 1 + 2 + ...) are as deep as they
 * are long, and the evaluator recurses along every edge. */
/* Also marks the macros whose bodies read varargs or kwargs, which then
 * take extra arguments. */
static int check(jnode *n, int depth, const macro_names *macros, fl_error *err)
{
    if (!n)
        return 0;
    if (depth > JINJA_MAX_DEPTH)
        return fl_fail(err, "line %d: " JINJA_TOO_DEEP, n->line, JINJA_MAX_DEPTH);
    if (n->kind == JN_MACRO) {
        n->uses_varargs = reads(n->body, "varargs");
        n->uses_kwargs = reads(n->body, "kwargs");
    }
    if (check(n->a, depth + 1, macros, err) || check(n->b, depth + 1, macros, err) ||
        check(n->c, depth + 1, macros, err) || check(n->body, depth + 1, macros, err) ||
        check(n->orelse, depth + 1, macros, err))
        return -1;
    /* dict literals keep their values after the keys */
    int nargs = n->kind == JN_DICT ? 2 * n->nargs : n->nargs;
    for (int i = 0; i < nargs; i++)
        if (check(n->args[i], depth + 1, macros, err))
            return -1;
    for (int i = 0; i < n->nstmts; i++)
        if (check(n->stmts[i], depth + 1, macros, err))
            return -1;
    /* after the children, so that a tree too deep is that error first */
    const char *bad = NULL, *what = NULL, *named;
    int named_test;
    if (n->kind == JN_FILTER && !jinja_is_filter(n->name))
        bad = n->name, what = "filter";
    else if (n->kind == JN_TEST && !jinja_is_test(n->name))
        bad = n->name, what = "test";
    else if ((named = named_builtin(n, &named_test)) &&
             !(named_test ? jinja_is_test(named) : jinja_is_filter(named)))
        bad = named, what = named_test ? "test" : "filter";
    else if (n->kind == JN_CALL && n->a->kind == JN_ATTR && !jinja_is_method(n->a->name))
        bad = n->a->name, what = "method";
    else if (n->kind == JN_CALL && n->a->kind == JN_NAME && !jinja_is_global(n->a->name) &&
             !is_macro(macros, n->a->name))
        bad = n->a->name, what = "function";
    else if (n->kind == JN_CALL && n->a->kind != JN_NAME && n->a->kind != JN_ATTR)
        bad = "(an expression)", what = "call of";
    if (bad)
        return fl_fail(err, "line %d: the %s '%s' is not supported", n->line, what, bad);
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
    if (n < 0 || !(t->root = jinja_parse_tokens(&t->arena, toks, n, err))) {
        fl_jinja_free(t);
        return NULL;
    }
    macro_names macros = { 0 };
    collect_macros(&t->arena, t->root, &macros);
    if (check(t->root, 1, &macros, err) != 0) {
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
