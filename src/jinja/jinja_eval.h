/* jinja_eval.h - rendering a parsed template: what the evaluator
 * (jinja_eval.c: scopes, expressions, statements, macros) and the built-ins
 * (jinja_builtins.c: filters, tests, methods, global functions) share.
 *
 * Errors set the context's error once and make every later step a no-op,
 * so evaluation unwinds without longjmp; each helper that can fail returns
 * undefined (or -1) after setting it. */
#ifndef FL_JINJA_EVAL_H
#define FL_JINJA_EVAL_H

#include "jinja/jinja_internal.h"
#include "jinja/jinja_value.h"

/* A scope: a for loop's iteration, a macro call, a block, the template's
 * top level, the render's variables. In the render's arena, since a macro
 * keeps the scope it was defined in. */
typedef struct jframe {
    const char **names;
    jv *vals;
    int n, cap;
    struct jframe *parent;
} jframe;

typedef struct jctx {
    fl_arena *a;
    fl_strbuf *out;
    fl_error *err;
    int failed;
    jframe *scope;
    int loop_ctl;   /* 1 break, 2 continue */
    size_t out_max; /* out may grow to this length: JINJA_MAX_BYTES more than it had */
    long steps;
    int depth;      /* levels of eval/exec recursion, macro calls included */
    int calls;      /* macro calls inside macro calls */
    jv block_value; /* what JN_BLOCK_VALUE stands for: a block's rendered body */
} jctx;

/* The evaluated arguments of a call, filter or test. */
typedef struct jargs {
    jv pos[JINJA_MAX_ARGS];
    int npos;
    const char *kwname[JINJA_MAX_ARGS];
    jv kw[JINJA_MAX_ARGS];
    int nkw;
} jargs;

int jinja_render_tree(const jnode *root, json_t *vars, fl_strbuf *out, fl_error *err);

/* ---- for the built-ins (jinja_eval.c) ---- */

/* Sets the error "line N: ..." at n (once); returns undefined. */
jv jinja_fail(jctx *c, const jnode *n, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
jv jinja_fail_as(jctx *c, const jnode *n, const fl_error *e);
/* 0 if a text of have bytes can take add more within max, else fails. */
int jinja_room(jctx *c, const jnode *n, size_t have, size_t add, size_t max);
/* 0 if a list may have items items, else fails. */
int jinja_items_room(jctx *c, const jnode *n, size_t items);
/* str(v) appended to out, which must stay within max bytes; -1 if failed. */
int jinja_print(jctx *c, const jnode *n, fl_strbuf *out, jv v, size_t max);
/* The string built in s as a value (s is freed); undefined after an error. */
jv jinja_take_str(jctx *c, const jnode *n, fl_strbuf *s);
jv jinja_to_str(jctx *c, const jnode *n, jv v);
int jinja_equal(jctx *c, const jnode *n, jv a, jv b);
/* Python's a < b (-1), == (0), > (1) for sorting; fails on types Python
 * does not order. */
int jinja_compare(jctx *c, const jnode *n, jv a, jv b);
/* obj[key] / obj.attr as Jinja looks them up (undefined if missing). */
jv jinja_get_item(jctx *c, const jnode *n, jv obj, jv key);
jv jinja_get_attr(jctx *c, const jnode *n, jv obj, const char *name);
/* The items `for x in v` visits (a string's characters, a dict's keys,
 * none for undefined and none); fails for other types. */
jv jinja_iterate(jctx *c, const jnode *n, jv v);
/* needle in hay, as Python's `in` (a substring, an item, a key). */
int jinja_contains(jctx *c, const jnode *n, jv hay, jv needle);
/* Calls a macro or a built-in function. */
jv jinja_call(jctx *c, const jnode *n, jv fn, const jargs *a);
/* Positional argument i (-1: none), else keyword `name`, else dflt. */
jv jinja_arg(const jargs *a, int i, const char *name, jv dflt);

/* ---- the built-ins (jinja_builtins.c) ---- */

/* Whether flashlm implements a filter, test, method or global function of
 * that name: the template's names are checked at load. */
int jinja_is_filter(const char *name);
int jinja_is_test(const char *name);
int jinja_is_method(const char *name);
int jinja_is_global(const char *name);
/* The built-in global function of that name, or NULL. */
const jfunc *jinja_global(const char *name);
/* A dict method of that name as a value (d.items without a call), or NULL. */
const jfunc *jinja_dict_method(const char *name);

jv jinja_apply_filter(jctx *c, const jnode *n, const char *name, jv v, const jargs *a);
int jinja_apply_test(jctx *c, const jnode *n, const char *name, jv v, const jargs *a);
jv jinja_call_method(jctx *c, const jnode *n, jv obj, const char *name, const jargs *a);
jv jinja_call_global(jctx *c, const jnode *n, const jfunc *fn, const jargs *a);

#endif
