/* tp_shard.h - which slice of a model one tensor-parallel rank holds.
 *
 * vLLM's split (Megatron's): query heads and KV heads over the ranks (KV
 * heads replicated when there are fewer of them than ranks: rank r takes
 * head r / (size / num_kv_heads)), q/k/v and gate/up by output rows
 * (column-parallel), o_proj and down_proj by input columns (row-parallel,
 * their partial sums all-reduced), each expert's intermediate dimension
 * like the dense MLP's, the embedding and lm_head over the vocabulary
 * (equal slices of ceil(vocab / size) rows, the last one short). Norms,
 * the router and the rope tables are replicated. */
#ifndef FL_TP_SHARD_H
#define FL_TP_SHARD_H

#include "base/error.h"
#include "model/config.h"

typedef struct fl_tp_shard {
    int rank, size;
    int q_head0, num_heads;   /* the rank's query heads */
    int kv_head0, num_kv_heads;
    int ff0, ff;              /* its slice of intermediate_size (each expert's, for MoE) */
    int vocab0, vocab;        /* its rows of the embedding and lm_head: [vocab0, vocab0 + vocab) */
    int vocab_slice;          /* ceil(vocab_size / size): every rank's slice, padded */
} fl_tp_shard;

/* 0, or -1 naming what does not divide: size must divide the query heads
 * and the intermediate size, and divide or be a multiple of the KV heads. */
int fl_tp_check(const fl_model_config *cfg, int size, fl_error *err);

/* Rank `rank` of `size` (fl_tp_check passed). */
void fl_tp_shard_init(fl_tp_shard *s, const fl_model_config *cfg, int rank, int size);

/* The configuration the rank computes: cfg with its heads and intermediate
 * size (the vocabulary stays whole: logits are gathered). */
void fl_tp_local_config(fl_model_config *local, const fl_model_config *cfg, const fl_tp_shard *s);

#endif
