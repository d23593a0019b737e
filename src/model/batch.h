/* batch.h - what one model step computes: the per-step batch struct that the
 * engine's scheduler builds and every runner reads as it is. No hidden
 * state: all a forward pass needs to know about the sequences is here, in
 * the form the runners consume (so no runner rebuilds or reorders it).
 *
 * Tokens of several sequences are packed in one list; a sequence may bring
 * a whole prompt, a chunk of one, or a single decode token. A token at
 * position p attends to positions 0..p of its own sequence (or the last
 * `window` of them, in a windowed layer), read through the sequence's
 * block table of the layer's KV cache group (model/kv_groups.h): position p
 * lives in block table[p / block_size] at offset p % block_size. A model of
 * one attention type has one group, so one table a sequence.
 *
 * The invariant (the producer guarantees it, fl_batch_check tests it):
 *  1. A step holds at least one sequence, and each sequence at least one
 *     token.
 *  2. Each sequence's tokens are contiguous, sequences in order: sequence i
 *     is rows query_start[i] .. query_start[i + 1] - 1, query_start[0] is 0
 *     and query_start[num_seqs] is num_tokens.
 *  3. A sequence's tokens are the last of its context after the step, at
 *     consecutive positions: row query_start[i] + k is at position
 *     seq_lens[i] - n + k, where n is the sequence's token count. (Its
 *     earlier positions' K/V are already in the cache: the one promise
 *     no check of the batch can see.)
 *  4. Each of sequence i's tables covers its context: its first
 *     ceil(seq_lens[i] / block_size) entries (at most max_blocks_per_seq)
 *     are block ids of the cache, in [0, num_blocks). In a layout with a
 *     windowed group, FL_KV_NULL_BLOCK is the null block: a windowed
 *     group's entries of the blocks wholly before the window of the
 *     sequence's first row of the step (positions below
 *     first - window + 1) may name it, the blocks the window has left;
 *     every other entry in use names a block of its own.
 *  5. slots[t * num_kv_groups + g] is where row t's K/V go in group g:
 *     block * block_size + offset of its position, through the sequence's
 *     table of group g.
 *  6. logit_rows are rows of the step in increasing order, at most one a
 *     row (so num_logits <= num_tokens).
 * Token ids and the longest context are the model's to check. */
#ifndef FL_BATCH_H
#define FL_BATCH_H

#include <stddef.h>
#include <stdint.h>

#include "model/kv_groups.h"

typedef struct fl_batch {
    int num_tokens;
    const int32_t *token_ids;     /* [num_tokens] */
    const int32_t *positions;     /* [num_tokens] position of each token in its sequence */
    int num_kv_groups;            /* the model's KV cache groups (model/kv_groups.h) */
    const int32_t *slots;         /* [num_tokens, num_kv_groups] cache slot of each token's K/V per group */
    int num_seqs;
    const int32_t *query_start;   /* [num_seqs + 1] first row of each sequence, then num_tokens */
    const int32_t *seq_lens;      /* [num_seqs] context length after the step (new tokens included) */
    int max_blocks_per_seq;
    const int32_t *block_tables;  /* [num_seqs, num_kv_groups, max_blocks_per_seq] KV block ids:
                                     each sequence's tables of its groups, side by side */
    int num_logits;
    const int32_t *logit_rows;    /* [num_logits] rows of the tokens whose logits are wanted */
} fl_batch;

/* Where position p's K/V live, through a sequence's block table (rule 5). */
static inline int32_t fl_batch_slot(const int32_t *table, int block_size, int p)
{
    return table[p / block_size] * block_size + p % block_size;
}

/* Sequence i's block table of group g. */
static inline const int32_t *fl_batch_table(const fl_batch *b, int i, int g)
{
    return b->block_tables + ((size_t)i * b->num_kv_groups + g) * b->max_blocks_per_seq;
}

/* Tests the invariant above for a cache laid out as groups, of num_blocks
 * blocks of block_size tokens. Returns 0 if b holds it; else -1 with the
 * first violation described in why. */
int fl_batch_check(const fl_batch *b, const fl_kv_groups *groups, int block_size, int num_blocks, char *why,
                   size_t why_len);

/* A runner's guard: aborts, naming the first violation, if b breaks the
 * invariant (a bug in whatever built b, never bad input). */
void fl_batch_assert(const fl_batch *b, const fl_kv_groups *groups, int block_size, int num_blocks);

#endif
