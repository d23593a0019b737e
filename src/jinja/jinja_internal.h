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
    JV_UNDEF, JV_NONE, JV_BOOL, JV_INT, JV_FLOAT, JV_STR, JV_LIST, JV_DICT,
} jv_type;

typedef struct jlist jlist;
typedef struct jdict jdict;

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
    };
} jv;

struct jlist {
    jv *items;
    size_t n, cap;
};

/* Insertion-ordered; namespaces are dicts whose members `set` may assign. */
struct jdict {
    jv *keys;  /* strings */
    jv *vals;
    size_t n, cap;
    int is_namespace;
};

/* ---- syntax tree ---- */

typedef enum jnode_kind {
    /* statements */
    JN_TEXT, JN_OUTPUT, JN_IF, JN_FOR, JN_SET, JN_BREAK, JN_CONTINUE, JN_BODY,
    /* expressions */
    JN_LITERAL, JN_NAME, JN_ATTR, JN_ITEM, JN_SLICE, JN_CALL, JN_FILTER, JN_TEST,
    JN_NOT, JN_NEG, JN_BINARY, JN_AND, JN_OR, JN_COND, JN_LIST, JN_DICT,
} jnode_kind;

typedef struct jnode jnode;

struct jnode {
    jnode_kind kind;
    int line;
    const char *name;    /* NAME, ATTR, FILTER, TEST: the identifier; BINARY: the operator;
                            SET: the variable; FOR: the first loop variable */
    const char *name2;   /* SET: the attribute of ns.attr; FOR: the second loop variable */
    int negated;         /* TEST: `is not` */
    jv value;            /* LITERAL, TEXT */
    jnode *a, *b, *c;    /* children: operands, condition, object, slice parts */
    jnode **args;        /* call/filter/test arguments; list items; dict keys */
    int nargs;
    const char **kwnames;/* keyword argument names (kwargs follow positional args in args) */
    int nkw;
    jnode *body;         /* IF/FOR: then/loop body (a JN_BODY) */
    jnode *orelse;       /* IF/FOR: else body */
    jnode **stmts;       /* BODY: statements */
    int nstmts;
};

/* Parses tokens into a JN_BODY. Returns NULL with err set on error. */
jnode *jinja_parse_tokens(fl_arena *a, jtok *toks, int ntoks, fl_error *err);

#endif
