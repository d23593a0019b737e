/* cpu_runner.c - fl_model_runner over cpu_model and cpu_kv_cache. */
#include "cpu/cpu_runner.h"

#include <stdio.h>

#include "base/alloc.h"
#include "cpu/cpu_kv_cache.h"
#include "cpu/cpu_model.h"

typedef struct cpu_runner {
    fl_cpu_model model;
    fl_cpu_kv_cache kv;
} cpu_runner;

static void cpu_forward(void *impl, const fl_batch *b, float *logits)
{
    cpu_runner *r = impl;
    fl_cpu_model_forward(&r->model, &r->kv, b, logits);
}

static void cpu_destroy(void *impl)
{
    cpu_runner *r = impl;
    fl_cpu_kv_cache_free(&r->kv);
    fl_cpu_model_free(&r->model);
    free(r);
}

int fl_cpu_runner_init(fl_model_runner *r, const fl_model_config *cfg, const fl_weights *w,
                       const fl_runner_opts *o, fl_error *err)
{
    FL_ASSERT(o->attn && o->attn->cpu);
    /* start-up selected it for this model; a caller that picks its own is held to the same */
    char unsupported[256];
    const fl_attn_needs needs = fl_attn_needs_of(cfg, FL_DEVICE_CPU, 0, o->block_size, FL_F32);
    if (fl_attn_backend_unsupported(o->attn, &needs, unsupported, sizeof unsupported))
        return fl_fail(err, "attention backend '%s' cannot run this model: %s", o->attn->name, unsupported);
    const int max_tokens = o->max_tokens, max_context = o->max_context, block_size = o->block_size;
    const int max_seqs = o->max_seqs;
    int num_blocks = o->num_blocks;
    if (num_blocks <= 0) {
        const size_t per_block = fl_cpu_kv_cache_bytes(cfg, 1, block_size);
        const size_t by_memory = FL_CPU_KV_BYTES_DEFAULT / per_block;
        fl_kv_groups groups;
        fl_kv_groups_init(&groups, cfg);
        /* every group's blocks for max_seqs whole contexts, and the null block */
        const size_t by_need = (size_t)max_seqs * ((size_t)(max_context + block_size - 1) / block_size) *
                               (size_t)groups.num_groups + (size_t)fl_kv_groups_have_window(&groups);
        if (by_memory == 0)
            return fl_fail(err, "one KV cache block (%zu bytes) exceeds the CPU KV cache's "
                           "%zu bytes (give --num-gpu-blocks-override)", per_block,
                           FL_CPU_KV_BYTES_DEFAULT);
        num_blocks = (int)(by_memory < by_need ? by_memory : by_need);
    }
    cpu_runner *c = fl_calloc(1, sizeof *c);
    char what[128];
    snprintf(what, sizeof what, "the CPU runner (float32 weights, run state and %d KV cache blocks)",
             num_blocks);
    if (fl_cpu_model_init(&c->model, cfg, w, o->attn, max_tokens, max_context, err) != 0 ||
        fl_memory_check(fl_size_add(c->model.bytes, fl_cpu_kv_cache_bytes(cfg, num_blocks, block_size)),
                        what, err) != 0) {
        cpu_destroy(c);
        return -1;
    }
    fl_cpu_kv_cache_init(&c->kv, cfg, num_blocks, block_size);
    *r = (fl_model_runner){
        .impl = c, .attn_backend = o->attn->name, .vocab_size = cfg->vocab_size, .max_tokens = max_tokens,
        .max_context = max_context, .kv_groups = &c->kv.groups, .num_blocks = num_blocks, .block_size = block_size,
        .forward = cpu_forward, .destroy = cpu_destroy,
    };
    return 0;
}
