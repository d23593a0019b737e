/* jinja_internal.h - what the lexer, parser and evaluator share: tokens,
 * the syntax tree and values. */
#ifndef FL_JINJA_INTERNAL_H
#define FL_JINJA_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "base/arena.h"
#include "base/error.h"
#include "jinja/jinja.h"

/* ---- limits ----
 * A chat template comes with the model files and renders the request's
 * messages, so both are input: every way a template can recurse, grow or
 * spin is bounded here, and passing a bound is a parse or render error,
 * never a crash, an abort on out-of-memory or a render that runs for
 * minutes. Real templates stay far inside all of them. */

/* Nesting: of the parser's recursion, of the syntax tree (so of the
 * evaluator's recursion) and of values (printing and comparing recurse into
 * lists and dicts, and a namespace can even hold itself). Real templates
 * nest about ten deep; 256 levels of the evaluator take well under a MiB of
 * stack. */
#define JINJA_MAX_DEPTH 256
#define JINJA_TOO_DEEP "the template nests deeper than %d levels"

/* Levels of the evaluator's recursion at render time: the tree's height
 * bounds it within one macro, and macro calls (which may call themselves)
 * add theirs on top, so the render counts them. Twice the tree's bound:
 * a real template's macros recurse a few levels (a JSON schema's nesting). */
#define JINJA_MAX_RENDER_DEPTH (2 * JINJA_MAX_DEPTH)

/* Macro calls inside macro calls: each takes some KiB of stack (its
 * arguments, scope and output), so they have a bound of their own, far
 * above a JSON schema's nesting, which is what templates recurse over.
 * With the bound above, a render's stack stays under a MiB. */
#define JINJA_MAX_CALL_DEPTH 64

/* Arguments of one call, filter or test, and parameters of one macro:
 * real templates pass up to four. */
#define JINJA_MAX_ARGS 16

/* Bytes of any string a render makes, and of its output. A prompt must fit a
 * context window, and a million tokens are about 4 MiB of text, so 64 MiB is
 * far above any real prompt and still cheap to refuse. */
#define JINJA_MAX_BYTES ((size_t)64 << 20)

/* Items of any list a render makes (range(), +, split, a string's
 * characters): 24 MiB of values. */
#define JINJA_MAX_ITEMS ((size_t)1 << 20)

/* Bytes of all the values of one render together: the render's arena frees
 * nothing before the render ends, so without this a loop that builds big
 * strings runs the process out of memory (which aborts it). Four strings
 * of the largest size; the values of a request (at most 8 MiB of JSON by
 * default) take a small part of it. */
#define JINJA_MAX_MEMORY ((size_t)256 << 20)

/* Steps of one render (an expression node, a statement, a loop iteration),
 * so that no template spins for minutes: a chat message takes some hundred
 * steps, 2^24 take about a second. */
#define JINJA_MAX_STEPS (1L << 24)
#define JINJA_TOO_MANY_STEPS "the template takes more than %ld steps"

/* tojson's indent: templates use 2 or 4, and wider ones only make
 * whitespace no model was trained on. */
#define JINJA_MAX_INDENT 64

/* ---- tokens ---- */

typedef enum jtok_kind {
    JT_TEXT,         /* literal text between tags (whitespace rules applied) */
    JT_VAR_BEGIN,    /* {{ */
    JT_VAR_END,      /* }} */
    JT_BLOCK_BEGIN,  /* {% */
    JT_BLOCK_END,    /* %} */
    JT_NAME,
    JT_STRING,       /* text holds the unescaped value */
    JT_INT,
    JT_FLOAT,
    JT_OP,           /* text holds the operator: ( ) [ ] { } . , : | ~ + - * / // % ** = == != < > <= >= */
    JT_EOF,
} jtok_kind;

typedef struct jtok {
    jtok_kind kind;
    const char *text;  /* arena copy, NUL-terminated */
    size_t len;
    int64_t ival;
    double fval;
    int line;
} jtok;

/* Splits source into tokens (in the arena). Returns the count, or -1. */
int jinja_lex(fl_arena *a, const char *src, size_t len, jtok **out, fl_error *err);

/* ---- values ---- */

typedef enum jv_type {
    JV_UNDEF, JV_NONE, JV_BOOL, JV_INT, JV_FLOAT, JV_STR, JV_LIST, JV_DICT, JV_FUNC,
} jv_type;

typedef struct jlist jlist;
typedef struct jdict jdict;
typedef struct jfunc jfunc;
typedef struct jnode jnode;

typedef struct jv {
    jv_type t;
    union {
        int64_t i;      /* JV_BOOL, JV_INT */
        double f;
        struct {
            const char *p;
            size_t n;
        } s;
        jlist *l;
        jdict *d;
        const jfunc *fn;
    };
} jv;

/* A list, or a tuple (Python's: printed in parentheses, never equal to a
 * list); both index, slice and iterate alike. */
struct jlist {
    jv *items;
    size_t n, cap;
    int is_tuple;
};

/* Insertion-ordered; namespaces are dicts whose members `set` may assign;
 * a loop's `loop` is a dict that also has the method cycle(). */
struct jdict {
    jv *keys;  /* strings */
    jv *vals;
    size_t n, cap;
    int is_namespace, is_loop;
};

/* A callable value: a built-in global function (namespace, range, ...) or
 * a macro, with the scope it was defined in, which its body sees. */
struct jfunc {
    const char *name;
    const jnode *macro;      /* a JN_MACRO, or NULL for a built-in */
    struct jframe *closure;  /* the evaluator's scope (jinja_eval.c) */
};

/* ---- syntax tree ---- */

typedef enum jnode_kind {
    /* statements */
    JN_TEXT, JN_OUTPUT, JN_IF, JN_FOR, JN_SET, JN_SET_BLOCK, JN_FILTER_BLOCK, JN_MACRO,
    JN_BREAK, JN_CONTINUE, JN_BODY,
    /* expressions */
    JN_LITERAL, JN_NAME, JN_ATTR, JN_ITEM, JN_SLICE, JN_CALL, JN_FILTER, JN_TEST,
    JN_NOT, JN_NEG, JN_BINARY, JN_AND, JN_OR, JN_COND, JN_LIST, JN_TUPLE, JN_DICT,
    JN_BLOCK_VALUE,
} jnode_kind;

/* Assignment targets (SET, SET_BLOCK, FOR) are a JN_NAME, a JN_TUPLE of
 * targets (unpacking), or for SET a JN_ATTR of a JN_NAME (ns.attr). A
 * block's output goes through a filter chain (SET_BLOCK, FILTER_BLOCK) as
 * JN_FILTER nodes whose innermost operand is a JN_BLOCK_VALUE. */
struct jnode {
    jnode_kind kind;
    int line;
    const char *name;    /* NAME, ATTR, FILTER, TEST, MACRO: the identifier; BINARY: the operator */
    int negated;         /* TEST: `is not` */
    int uses_varargs;    /* MACRO: the body reads varargs (extra positional arguments) */
    int uses_kwargs;     /* MACRO: the body reads kwargs (extra keyword arguments) */
    jv value;            /* LITERAL, TEXT */
    jnode *a, *b, *c;    /* children: operands, condition, object, slice parts;
                            SET: a value, b target; SET_BLOCK: a filters or NULL, b target;
                            FILTER_BLOCK: a filters; FOR: a sequence, b filter, c target */
    jnode **args;        /* call/filter/test arguments; list and tuple items; dict keys;
                            MACRO: parameter defaults (NULL where none) */
    int nargs;
    const char **kwnames;/* keyword argument names (kwargs follow positional args in args);
                            MACRO: the parameter names (nargs of them) */
    int nkw;
    jnode *body;         /* IF/FOR/MACRO/SET_BLOCK/FILTER_BLOCK: the body (a JN_BODY) */
    jnode *orelse;       /* IF/FOR: else body */
    jnode **stmts;       /* BODY: statements */
    int nstmts;
};

/* Parses tokens into a JN_BODY. Returns NULL with err set on error. */
jnode *jinja_parse_tokens(fl_arena *a, jtok *toks, int ntoks, fl_error *err);

#endif
