/* attn_cpu.h - causal GQA attention over a paged KV cache, on the CPU,
 * optionally over a sliding window and with attention sinks.
 *
 * The reference attention: plain float32 loops, two passes (scores, then the
 * softmax-weighted sum of V). Every GPU attention backend is checked against
 * the same function of the same inputs. */
#ifndef FL_ATTN_CPU_H
#define FL_ATTN_CPU_H

#include "model/batch.h"

typedef struct fl_attn_cpu_args {
    const fl_batch *batch;
    int kv_group;          /* the layer's KV cache group: which of each sequence's tables it reads */
    const float *q;        /* row t, head h at q + t * q_stride + h * head_dim */
    int q_stride;
    const float *k_cache;  /* (num_blocks, block_size, num_kv_heads, head_dim) */
    const float *v_cache;  /* same layout as k_cache */
    int block_size;
    int num_heads;
    int num_kv_heads;
    int head_dim;
    float scale;           /* softmax scale, usually head_dim^-0.5 */
    int window;            /* > 0: position p attends to max(0, p - window + 1) .. p only */
    const float *sinks;    /* (num_heads) or NULL: head h's softmax denominator gains
                              e^sinks[h], a logit with no value */
    float *out;            /* (num_tokens, num_heads * head_dim) */
    float *scratch;        /* (num_threads, scratch_per_thread) */
    int scratch_per_thread;/* at least the longest context in the batch */
} fl_attn_cpu_args;

/* Computes out for every token of the batch. The positions each token
 * attends to (0..p, or its window) must already be in the cache. */
void fl_attn_cpu(const fl_attn_cpu_args *a);

#endif
