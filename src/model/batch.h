/* batch.h - what one model step computes: the per-step batch struct that the
 * engine builds and every backend reads. No hidden state: all a forward pass
 * needs to know about the sequences is here.
 *
 * Tokens of several sequences are packed in one list; a sequence may bring
 * a whole prompt, a chunk of one, or a single decode token. A token at
 * position p attends to positions 0..p of its own sequence, read through the
 * sequence's block table: position p lives in block
 * block_tables[seq][p / block_size] at offset p % block_size. */
#ifndef FL_BATCH_H
#define FL_BATCH_H

#include <stdint.h>

typedef struct fl_batch {
    int num_tokens;
    const int32_t *token_ids;     /* [num_tokens] */
    const int32_t *positions;     /* [num_tokens] position of each token in its sequence */
    const int32_t *token_seq;     /* [num_tokens] each token's sequence, in [0, num_seqs) */
    int num_seqs;
    int max_blocks_per_seq;
    const int32_t *block_tables;  /* [num_seqs, max_blocks_per_seq] KV block ids */
    int num_logits;
    const int32_t *logit_rows;    /* [num_logits] rows of the tokens whose logits are wanted */
} fl_batch;

#endif
