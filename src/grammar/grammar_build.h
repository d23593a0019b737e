/* grammar_build.h - what the front ends (EBNF, regex, JSON schema) build:
 * named rules whose bodies are expression trees, lowered by fl_gb_finish
 * into the flat form of grammar.h.
 *
 * Expressions live in the builder's arena; a node has one parent (its
 * `next` links it among its siblings), so a front end makes a new node for
 * each use and shares structure through rules (fl_gx_ref). */
#ifndef FL_GRAMMAR_BUILD_H
#define FL_GRAMMAR_BUILD_H

#include "base/arena.h"
#include "base/bytemap.h"
#include "grammar/grammar.h"

typedef enum { FL_GX_EMPTY, FL_GX_BYTES, FL_GX_SEQ, FL_GX_ALT, FL_GX_REF, FL_GX_REPEAT } fl_gx_kind;

#define FL_GX_INF (-1) /* a repeat without an upper bound */

typedef struct fl_gx fl_gx;
struct fl_gx {
    fl_gx_kind kind;
    fl_gx *kid, *last, *next; /* SEQ, ALT: the children; REPEAT: kid, the repeated one */
    uint64_t bits[4];         /* BYTES: the bytes it matches (one of them) */
    int rule;                 /* REF */
    int min, max;             /* REPEAT: max FL_GX_INF for none */
};

typedef struct fl_gb {
    fl_arena arena;
    int num_rules, cap_rules;
    const char **names;       /* [num_rules] for messages */
    fl_gx **defs;             /* [num_rules] NULL until defined */
    fl_bytemap by_name;       /* name -> rule */
    int fresh;                /* the counter of fl_gb_fresh_rule's names */
} fl_gb;

/* A code point range for fl_gx_codepoints. */
typedef struct fl_cp_range {
    uint32_t lo, hi;
} fl_cp_range;

#define FL_CP_MAX 0x10ffffu

void fl_gb_init(fl_gb *b);
void fl_gb_free(fl_gb *b);

/* The rule called name (made, undefined, the first time it is named). */
int fl_gb_rule(fl_gb *b, const char *name, size_t len);
/* A new rule of its own, named from hint (for messages). */
int fl_gb_fresh_rule(fl_gb *b, const char *hint);
/* Gives rule its body; -1 with err if it has one already. */
int fl_gb_define(fl_gb *b, int rule, fl_gx *body, fl_error *err);

fl_gx *fl_gx_empty(fl_gb *b);
fl_gx *fl_gx_byte_range(fl_gb *b, unsigned lo, unsigned hi);
fl_gx *fl_gx_literal(fl_gb *b, const char *s, size_t n);
fl_gx *fl_gx_seq(fl_gb *b);
fl_gx *fl_gx_alt(fl_gb *b);
/* Appends kid to a SEQ or ALT; returns parent. */
fl_gx *fl_gx_add(fl_gx *parent, fl_gx *kid);
fl_gx *fl_gx_ref(fl_gb *b, int rule);
/* kid repeated min to max times (max FL_GX_INF: no bound); the caller
 * keeps 0 <= min <= max <= FL_GRAMMAR_MAX_REPEAT. */
fl_gx *fl_gx_repeat(fl_gb *b, fl_gx *kid, int min, int max);
/* One character of the union of ranges[n] (code points, surrogates left
 * out), as the UTF-8 byte sequences that encode them. NULL-free: an empty
 * union is a BYTES node of no byte, which matches nothing. */
fl_gx *fl_gx_codepoints(fl_gb *b, const fl_cp_range *ranges, int n);
/* The complement of ranges[n] within [0, FL_CP_MAX], sorted and merged,
 * into out (room for n + 1); returns the count. ranges is sorted in place. */
int fl_cp_complement(fl_cp_range *ranges, int n, fl_cp_range *out);

/* Lowers the rules reachable from root into g, checking that every rule
 * used is defined, that root can match something, that no rule recurses on
 * its left (the matcher's stacks would grow without consuming a byte), and
 * the size limits. Returns 0, or -1 with err and g empty. */
int fl_gb_finish(fl_gb *b, int root, fl_grammar *g, fl_error *err);

/* The front ends: each fills b's rules and sets *root. */
int fl_ebnf_build(fl_gb *b, const char *text, size_t len, int *root, fl_error *err);
/* A regex over characters; json_string: the characters as they are
 * written inside a JSON string (quote, backslash and controls escaped). */
int fl_regex_build(fl_gb *b, const char *pattern, size_t len, int json_string, fl_gx **out, fl_error *err);
/* For the EBNF front end, in the regex syntax: a class body (its '[' at
 * *at - 1) and an escape (its backslash at *at - 1); *at moves past them. */
int fl_gx_parse_class(fl_gb *b, const char *s, size_t n, size_t *at, fl_gx **out, fl_error *err);
int fl_gx_parse_escape(const char *s, size_t n, size_t *at, uint32_t *cp, fl_error *err);
int fl_json_schema_build(fl_gb *b, const fl_grammar_spec *spec, int *root, fl_error *err);

#endif
