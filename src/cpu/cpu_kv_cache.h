/* cpu_kv_cache.h - the paged KV cache in host memory, float32.
 *
 * Storage only: which block belongs to which sequence and group is the
 * caller's business (block tables in fl_batch). The cache is laid out as
 * the model's KV cache groups (model/kv_groups.h): layers_per_group arrays
 * of K and V, each (num_blocks, block_size, num_kv_heads, head_dim), the
 * layout vLLM's FlashAttention backends use; layer l uses array
 * groups.slot[l], at the blocks of its group's table, so a block holds a
 * group's layers and is one contiguous run per array. */
#ifndef FL_CPU_KV_CACHE_H
#define FL_CPU_KV_CACHE_H

#include <stddef.h>

#include "model/config.h"
#include "model/kv_groups.h"

typedef struct fl_cpu_kv_cache {
    fl_kv_groups groups;
    int num_blocks;
    int block_size;
    int num_kv_heads;
    int head_dim;
    size_t layer_stride;  /* floats in one of K or V of one array */
    float *data;          /* [layers_per_group][2 (K, V)][layer_stride] */
} fl_cpu_kv_cache;

/* Bytes the cache of num_blocks blocks, each of a KV cache group's layers,
 * takes (SIZE_MAX past size_t). */
size_t fl_cpu_kv_cache_bytes(const fl_model_config *cfg, int num_blocks, int block_size);
void fl_cpu_kv_cache_init(fl_cpu_kv_cache *kv, const fl_model_config *cfg, int num_blocks,
                          int block_size);
void fl_cpu_kv_cache_free(fl_cpu_kv_cache *kv);

/* Layer l's K and V arrays (those of its index within its group). */
static inline float *fl_cpu_kv_k(const fl_cpu_kv_cache *kv, int layer)
{
    return kv->data + (size_t)kv->groups.slot[layer] * 2 * kv->layer_stride;
}

static inline float *fl_cpu_kv_v(const fl_cpu_kv_cache *kv, int layer)
{
    return fl_cpu_kv_k(kv, layer) + kv->layer_stride;
}

#endif
