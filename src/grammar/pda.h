/* pda.h - running a grammar (grammar.h) byte by byte: a pushdown
 * automaton whose state is the set of parse stacks that the bytes so far
 * leave open.
 *
 * A stack is a list of positions in the flat grammar, the bottom first:
 * its top is the byte set to match next, the frames below it where to go
 * on when the rule above ends. After each byte the stacks are expanded
 * until every top is a byte set (entering rules, leaving finished ones);
 * an emptied stack means the root rule is complete: the output may end
 * there. A reference that ends its alternative replaces its frame instead
 * of pushing one, so repetition (x*: s ::= x s | "") keeps the stacks flat
 * and a string's states repeat, which is what lets token_mask.h cache them.
 *
 * A configuration is serialized canonically (the stacks sorted), so equal
 * states are equal arrays: [flags, number of stacks, then each stack as
 * its length and its positions]. Left recursion is refused when a grammar
 * is compiled, so the expansion always ends; a nondeterministic grammar can
 * still hold many stacks at once, and past FL_PDA_MAX_STACKS the step
 * reports an overflow rather than grow without bound. Stacks deeper than
 * FL_PDA_MAX_DEPTH frames are not followed (nesting deeper than that is not
 * generated, as xgrammar's recursion limit). */
#ifndef FL_PDA_H
#define FL_PDA_H

#include <stddef.h>
#include <stdint.h>

#include "grammar/grammar.h"

#define FL_PDA_MAX_STACKS 1024
#define FL_PDA_MAX_DEPTH 1024
#define FL_PDA_ACCEPTING 1u /* flags: the root rule may be complete here */

typedef struct fl_u32buf {
    uint32_t *data;
    size_t len, cap;
} fl_u32buf;

void fl_u32buf_reserve(fl_u32buf *b, size_t n);
void fl_u32buf_free(fl_u32buf *b);

typedef enum { FL_PDA_OK = 0, FL_PDA_DEAD = 1, FL_PDA_OVERFLOW = 2 } fl_pda_status;

/* One step's scratch over a grammar (one thread at a time). */
typedef struct fl_pda {
    const fl_grammar *g;
    fl_u32buf pool;              /* stacks being built: [length, positions...] each */
    fl_u32buf work;              /* offsets in pool still to expand */
    fl_u32buf ready;             /* offsets of stacks whose top is a byte set */
    uint64_t *seen_hash;         /* the visited set: open addressing over pool offsets */
    uint32_t *seen_off;
    size_t seen_cap, seen_count;
    int accepting;
} fl_pda;

void fl_pda_init(fl_pda *p, const fl_grammar *g);
void fl_pda_free(fl_pda *p);

/* The configuration before any byte, into out (replaced). FL_PDA_OK, or
 * FL_PDA_OVERFLOW. */
fl_pda_status fl_pda_initial(fl_pda *p, fl_u32buf *out);
/* The configuration after byte from cfg[len], into out (replaced):
 * FL_PDA_OK, FL_PDA_DEAD (no stack takes the byte; out is left as the dead
 * configuration) or FL_PDA_OVERFLOW. */
fl_pda_status fl_pda_step(fl_pda *p, const uint32_t *cfg, size_t len, unsigned byte, fl_u32buf *out);

static inline int fl_pda_accepting(const uint32_t *cfg)
{
    return (int)(cfg[0] & FL_PDA_ACCEPTING);
}

/* No stack is left: nothing but the end can follow. */
static inline int fl_pda_finished(const uint32_t *cfg)
{
    return cfg[1] == 0;
}

#endif
