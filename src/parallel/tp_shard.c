/* tp_shard.c - the ranks' slices (see tp_shard.h). */
#include "parallel/tp_shard.h"

int fl_tp_check(const fl_model_config *cfg, int size, fl_error *err)
{
    if (size < 1)
        return fl_fail(err, "--tensor-parallel-size %d: must be 1 or more", size);
    if (cfg->num_heads % size != 0)
        return fl_fail(err, "--tensor-parallel-size %d does not divide the model's %d attention heads", size,
                       cfg->num_heads);
    if (cfg->num_kv_heads % size != 0 && size % cfg->num_kv_heads != 0)
        return fl_fail(err, "--tensor-parallel-size %d neither divides nor is a multiple of the model's %d KV heads",
                       size, cfg->num_kv_heads);
    if (cfg->intermediate_size % size != 0)
        return fl_fail(err, "--tensor-parallel-size %d does not divide the model's intermediate size %d", size,
                       cfg->intermediate_size);
    return 0;
}

void fl_tp_shard_init(fl_tp_shard *s, const fl_model_config *cfg, int rank, int size)
{
    FL_ASSERT(rank >= 0 && rank < size);
    s->rank = rank;
    s->size = size;
    s->num_heads = cfg->num_heads / size;
    s->q_head0 = rank * s->num_heads;
    if (cfg->num_kv_heads >= size) {
        s->num_kv_heads = cfg->num_kv_heads / size;
        s->kv_head0 = rank * s->num_kv_heads;
    } else { /* replicated: size / num_kv_heads ranks share a head */
        s->num_kv_heads = 1;
        s->kv_head0 = rank / (size / cfg->num_kv_heads);
    }
    s->ff = cfg->intermediate_size / size;
    s->ff0 = rank * s->ff;
    s->vocab_slice = (cfg->vocab_size + size - 1) / size;
    s->vocab0 = rank * s->vocab_slice;
    const int left = cfg->vocab_size - s->vocab0;
    s->vocab = left < 0 ? 0 : left < s->vocab_slice ? left : s->vocab_slice;
}

void fl_tp_local_config(fl_model_config *local, const fl_model_config *cfg, const fl_tp_shard *s)
{
    *local = *cfg;
    local->num_heads = s->num_heads;
    local->num_kv_heads = s->num_kv_heads;
    local->intermediate_size = s->ff;
}
