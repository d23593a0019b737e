/* cpu_model.h - the whole forward pass on the CPU, in float32.
 *
 * The oracle for every GPU test and what CI runs. Weights are converted once
 * to float32 (q/k/v fused into one matrix, gate/up into another, each
 * expert's matrices transposed to the same (out, in) form); GEMMs go
 * through OpenBLAS in fixed chunks of rows (batch-invariant: a row's result
 * does not depend on the other rows), the rest is OpenMP loops. All run
 * state is allocated at init for at most max_tokens tokens per step: a step
 * allocates nothing. */
#ifndef FL_CPU_MODEL_H
#define FL_CPU_MODEL_H

#include "attention/backend.h"
#include "cpu/cpu_kv_cache.h"
#include "model/batch.h"
#include "model/config.h"
#include "model/rope.h"
#include "model/weights.h"
#include "parallel/tp_shard.h"

typedef struct fl_cpu_layer {
    float *attn_norm;  /* (hidden) */
    float *wqkv;       /* (q_dim + 2 * kv_dim, hidden): rows of q, then k, then v */
    float *bqkv;       /* (q_dim + 2 * kv_dim), or NULL */
    float *q_norm;     /* (head_dim), or NULL */
    float *k_norm;     /* (head_dim), or NULL */
    float *wo;         /* (hidden, q_dim) */
    float *bo;         /* (hidden), or NULL */
    float *mlp_norm;   /* (hidden) */
    float *w_gate_up;  /* (2 * intermediate, hidden): rows of gate, then up */
    float *w_down;     /* (hidden, intermediate) */
    float *sinks;      /* (num_heads), or NULL */
    /* FL_FFN_MOE (E experts, ff = intermediate) */
    float *router;     /* (E, hidden) */
    float *router_bias;/* (E) */
    float *experts_gate_up;      /* (E, 2 * ff, hidden): per expert rows of gate, then up */
    float *experts_gate_up_bias; /* (E, 2 * ff): gate, then up */
    float *experts_down;         /* (E, hidden, ff) */
    float *experts_down_bias;    /* (E, hidden) */
} fl_cpu_layer;

typedef struct fl_cpu_model {
    fl_model_config cfg;   /* the rank's (parallel/tp_shard.h): its heads and intermediate size */
    fl_tp_shard shard;     /* its slice of the model (rank 0 of 1: all of it) */
    struct fl_comm *comm;  /* its tensor-parallel group, or NULL (one rank) */
    const fl_attn_backend *attn_backend; /* its CPU attention runs every layer */
    float *embed;          /* (vocab, hidden) */
    float *final_norm;     /* (hidden) */
    float *lm_head;        /* (vocab, hidden); == embed when tied */
    fl_cpu_layer *layers;  /* [num_layers] */
    fl_rope rope;          /* cos and sin of each position */
    int max_tokens;        /* tokens per step the run state holds */
    int max_context;       /* longest sequence attention may see */
    /* run state, all (max_tokens rounded up to the row chunk, ...) */
    float *x;              /* (max_tokens, hidden) residual stream */
    float *xn;             /* (max_tokens, hidden) normalised input of a block */
    float *qkv;            /* (max_tokens, q_dim + 2 * kv_dim) */
    float *attn;           /* (max_tokens, q_dim) */
    float *gate_up;        /* (max_tokens, 2 * intermediate) */
    float *ffn;            /* (max_tokens, intermediate) */
    /* FL_FFN_MOE: one expert's rows at a time (at most max_tokens) */
    float *router_logits;  /* (max_tokens, E) */
    float *expert_in;      /* (max_tokens, hidden) the rows routed to the expert */
    float *expert_out;     /* (max_tokens, hidden) */
    float *moe_sum;        /* (max_tokens, hidden) the weighted sum over a token's experts */
    float *route_weight;   /* (max_tokens, experts_per_token) */
    int32_t *route_expert; /* (max_tokens, experts_per_token) */
    int32_t *expert_rows;  /* (max_tokens * experts_per_token) (token, slot) pairs by expert */
    int32_t *expert_start; /* (E + 1) where each expert's pairs begin */
    float *scores;         /* (threads, scores_per_thread) attention scratch */
    size_t scores_per_thread;
    float *logits_tail;    /* (16, vocab) the last, partial chunk of logits */
    float *logits_part;    /* with comm: (16, vocab_slice) a chunk's logits over the rank's vocabulary */
    float *logits_all;     /* with comm: (ranks, 16, vocab_slice) every rank's */
    int num_threads;
    size_t bytes;          /* of weight_storage and state_storage together */
    float *weight_storage; /* owns every float32 weight above */
    float *state_storage;  /* owns the run state */
    int32_t *route_storage;/* owns route_expert, expert_rows, expert_start */
} fl_cpu_model;

/* Converts w to float32 and plans run state for max_tokens tokens per step
 * and contexts of up to max_context tokens, attention by attn (a CPU
 * backend). Fails (m left empty) when that would not fit in the machine's
 * memory. The model keeps no pointer into w. */
int fl_cpu_model_init(fl_cpu_model *m, const fl_model_config *cfg, const fl_weights *w,
                      const fl_attn_backend *attn, int max_tokens, int max_context, fl_error *err);
/* Rank comm->rank of comm->size of the model (tensor parallelism: the
 * slice parallel/tp_shard.h says, its collectives through comm; size 1 or
 * comm NULL: the whole model). fl_tp_check(cfg, size) must have passed. */
int fl_cpu_model_init_rank(fl_cpu_model *m, const fl_model_config *cfg, const fl_weights *w,
                           const fl_attn_backend *attn, int max_tokens, int max_context, struct fl_comm *comm,
                           fl_error *err);
void fl_cpu_model_free(fl_cpu_model *m);

/* Runs one step: writes the K/V of every token of b into kv, and the logits
 * of b's logit_rows into logits (num_logits, vocab). b must hold at most
 * max_tokens tokens, valid token ids, positions under max_context, and
 * block tables whose blocks exist in kv (checked: violations are bugs). */
void fl_cpu_model_forward(fl_cpu_model *m, fl_cpu_kv_cache *kv, const fl_batch *b,
                          float *logits);

#endif
