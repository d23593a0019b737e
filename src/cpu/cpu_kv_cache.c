/* cpu_kv_cache.c - allocation of the host KV cache (see cpu_kv_cache.h). */
#include "cpu/cpu_kv_cache.h"

#include <string.h>

#include "base/alloc.h"

size_t fl_cpu_kv_cache_bytes(const fl_model_config *cfg, int num_blocks, int block_size)
{
    fl_kv_groups groups;
    fl_kv_groups_init(&groups, cfg);
    return fl_size_mul((size_t)num_blocks * (size_t)block_size,
                       (size_t)fl_model_config_kv_bytes_per_token(cfg, FL_F32) / (size_t)groups.num_groups);
}

void fl_cpu_kv_cache_init(fl_cpu_kv_cache *kv, const fl_model_config *cfg, int num_blocks,
                          int block_size)
{
    fl_kv_groups_init(&kv->groups, cfg);
    kv->num_blocks = num_blocks;
    kv->block_size = block_size;
    kv->num_kv_heads = cfg->num_kv_heads;
    kv->head_dim = cfg->head_dim;
    kv->layer_stride = (size_t)num_blocks * block_size * cfg->num_kv_heads * cfg->head_dim;
    kv->data = fl_malloc_aligned(fl_cpu_kv_cache_bytes(cfg, num_blocks, block_size));
}

void fl_cpu_kv_cache_free(fl_cpu_kv_cache *kv)
{
    free(kv->data);
    memset(kv, 0, sizeof *kv);
}
