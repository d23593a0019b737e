/* cpu_kv_cache.h - the paged KV cache in host memory, float32.
 *
 * Storage only: which block belongs to which sequence is the caller's
 * business (block tables in fl_batch). Each layer holds K and V as
 * (num_blocks, block_size, num_kv_heads, head_dim), the layout vLLM's
 * FlashAttention backends use, so a block is one contiguous run per layer. */
#ifndef FL_CPU_KV_CACHE_H
#define FL_CPU_KV_CACHE_H

#include <stddef.h>

#include "model/config.h"

typedef struct fl_cpu_kv_cache {
    int num_layers;
    int num_blocks;
    int block_size;
    int num_kv_heads;
    int head_dim;
    size_t layer_stride;  /* floats in one of K or V of one layer */
    float *data;          /* [num_layers][2 (K, V)][layer_stride] */
} fl_cpu_kv_cache;

/* Bytes the cache of num_blocks blocks takes (SIZE_MAX past size_t). */
size_t fl_cpu_kv_cache_bytes(const fl_model_config *cfg, int num_blocks, int block_size);
void fl_cpu_kv_cache_init(fl_cpu_kv_cache *kv, const fl_model_config *cfg, int num_blocks,
                          int block_size);
void fl_cpu_kv_cache_free(fl_cpu_kv_cache *kv);

static inline float *fl_cpu_kv_k(const fl_cpu_kv_cache *kv, int layer)
{
    return kv->data + (size_t)layer * 2 * kv->layer_stride;
}

static inline float *fl_cpu_kv_v(const fl_cpu_kv_cache *kv, int layer)
{
    return fl_cpu_kv_k(kv, layer) + kv->layer_stride;
}

#endif
