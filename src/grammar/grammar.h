/* grammar.h - structured output's constraints as one byte-level grammar.
 *
 * Every kind of constraint a request can give (vLLM's structured_outputs:
 * a JSON schema, any JSON object, a regex, a choice of strings, an EBNF
 * grammar) is compiled into the same form: a context-free grammar over
 * bytes, its rules a list of alternatives, each alternative a sequence of
 * byte sets and rule references. Working in bytes, not characters, is what
 * lets a token whose bytes end inside a UTF-8 character (byte-level BPE has
 * many) be checked like any other: a character class becomes the UTF-8
 * byte sequences of its code points. grammar/pda.h runs the grammar;
 * grammar/token_mask.h turns its states into masks over a vocabulary.
 *
 * The flat form is read-only once compiled and shared by every sequence
 * the constraint governs. */
#ifndef FL_GRAMMAR_H
#define FL_GRAMMAR_H

#include <stddef.h>
#include <stdint.h>

#include "base/error.h"

typedef enum fl_grammar_kind {
    FL_GRAMMAR_JSON_SCHEMA,  /* text: a JSON schema */
    FL_GRAMMAR_JSON_OBJECT,  /* any JSON object (text unused) */
    FL_GRAMMAR_REGEX,        /* text: a regex the whole output matches */
    FL_GRAMMAR_CHOICE,       /* choices: the output is one of them exactly */
    FL_GRAMMAR_EBNF,         /* text: rules in xgrammar's EBNF (GBNF), root "root" */
} fl_grammar_kind;

/* What a request asks for. */
typedef struct fl_grammar_spec {
    fl_grammar_kind kind;
    const char *text;
    size_t len;
    const char *const *choices;    /* FL_GRAMMAR_CHOICE: [num_choices] strings */
    const size_t *choice_lens;     /* [num_choices] (a choice may hold NUL bytes) */
    int num_choices;
    /* JSON kinds: whitespace between tokens. any_whitespace is xgrammar's
     * default, [ \n\t]* anywhere JSON allows it; else compact, with ", " and
     * ": " as separators (xgrammar's). whitespace_pattern (a regex, or
     * NULL) replaces [ \n\t]* where any_whitespace puts it. */
    int any_whitespace;
    const char *whitespace_pattern;
} fl_grammar_spec;

/* An element of the flat form: kind in the top two bits. */
#define FL_G_BYTES 0u  /* arg: index of a byte set */
#define FL_G_REF 1u    /* arg: a rule */
#define FL_G_END 2u    /* the end of an alternative */
#define FL_G_KIND(e) ((e) >> 30)
#define FL_G_ARG(e) ((e) & 0x3fffffffu)
#define FL_G_ELEM(kind, arg) ((uint32_t)(kind) << 30 | (uint32_t)(arg))

typedef struct fl_grammar {
    uint32_t *elems;          /* [num_elems] alternatives back to back, each ending in FL_G_END */
    int num_elems;
    uint64_t (*sets)[4];      /* [num_sets] 256-bit byte sets */
    int num_sets;
    int32_t *alt_start;       /* [num_alts] each alternative's first element */
    int32_t *rule_alts;       /* [num_rules + 1] rule r's alternatives: alt_start[rule_alts[r] ..
                                 rule_alts[r + 1]) */
    int num_rules;
    int root;
} fl_grammar;

/* Limits that bound what a request can make the server build. */
#define FL_GRAMMAR_MAX_ELEMS (1 << 21)   /* elements of the flat form */
#define FL_GRAMMAR_MAX_REPEAT 10000      /* the largest count in x{n,m} or a length bound */

/* Compiles spec into g. Returns 0, or -1 with err naming what is wrong or
 * unsupported (a keyword, a construct, a rule), and g empty. */
int fl_grammar_compile(const fl_grammar_spec *spec, fl_grammar *g, fl_error *err);
void fl_grammar_free(fl_grammar *g);

static inline int fl_grammar_has_byte(const fl_grammar *g, int set, unsigned byte)
{
    return (int)(g->sets[set][byte >> 6] >> (byte & 63) & 1);
}

#endif
