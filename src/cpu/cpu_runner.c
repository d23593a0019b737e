/* cpu_runner.c - fl_model_runner over cpu_model and cpu_kv_cache. */
#include "cpu/cpu_runner.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "base/alloc.h"
#include "cpu/cpu_kv_cache.h"
#include "cpu/cpu_model.h"
#include "engine/sampling.h"
#include "grammar/token_mask.h"
#include "parallel/comm.h"
#include "parallel/tp_runner.h"
#include "parallel/tp_shard.h"

/* The runner samples too (model_runner.h), on the host as the GPU's does
 * on the device, so that the engine's device-sampling path, async
 * scheduling included, runs and is tested on the CPU: the same draw
 * (fl_sample_draw), hence the same tokens as the host sampler's. */
typedef struct cpu_runner {
    fl_cpu_model model;
    fl_cpu_kv_cache kv;
    int vocab;
    float *logits;             /* the last forward's logit rows, (num_logits, vocab) */
    int num_logits, cap_logits;
    int32_t *ids;              /* a step's token ids, the sampled ones in place */
    int cap_ids;
    struct {                   /* the two latest samples' tokens */
        int32_t *tokens;
        int num, cap;
    } samples[2];
    long started, given;       /* samples started, and given by cpu_sampled */
    void *scratch;             /* fl_sample_draw's */
    float *row;                /* [vocab] the row it draws from (it cleans NaNs in place) */
} cpu_runner;

static void *grow(void *p, int *cap, int need, size_t elem)
{
    if (need <= *cap)
        return p;
    *cap = need;
    return fl_realloc(p, (size_t)need * elem);
}

static void cpu_forward(void *impl, const fl_batch *b, float *logits)
{
    cpu_runner *r = impl;
    fl_batch step = *b;
    r->ids = grow(r->ids, &r->cap_ids, b->num_tokens, sizeof *r->ids);
    for (int t = 0; t < b->num_tokens; t++) {
        int32_t id = b->token_ids[t];
        if (id < 0) { /* -1 - row of the latest sample */
            FL_ASSERT(r->started > 0);
            const int slot = (int)((r->started - 1) % 2), row = -1 - id;
            FL_ASSERT(row < r->samples[slot].num);
            id = r->samples[slot].tokens[row];
            id = id < r->vocab ? id : 0; /* no draw: its sequence ends in error, the row is not read */
        }
        r->ids[t] = id;
    }
    step.token_ids = r->ids;
    /* its own copy too, for sample, mask_logits and read_logits */
    r->logits = grow(r->logits, &r->cap_logits, b->num_logits, (size_t)r->vocab * sizeof(float));
    r->num_logits = b->num_logits;
    fl_cpu_model_forward(&r->model, &r->kv, &step, r->logits);
    if (logits)
        memcpy(logits, r->logits, (size_t)b->num_logits * r->vocab * sizeof(float));
}

static void cpu_sample(void *impl, int num_rows, const fl_draw *rows)
{
    cpu_runner *r = impl;
    FL_ASSERT(num_rows <= r->num_logits && r->started - r->given < 2);
    const int slot = (int)(r->started % 2);
    r->samples[slot].tokens = grow(r->samples[slot].tokens, &r->samples[slot].cap, num_rows, sizeof(int32_t));
    for (int i = 0; i < num_rows; i++) {
        memcpy(r->row, r->logits + (size_t)i * r->vocab, (size_t)r->vocab * sizeof(float));
        const int32_t t = fl_sample_draw(&rows[i], r->row, r->vocab, r->scratch);
        r->samples[slot].tokens[i] = t < 0 ? r->vocab : t;
    }
    r->samples[slot].num = num_rows;
    r->started++;
}

static const int32_t *cpu_sampled(void *impl)
{
    cpu_runner *r = impl;
    FL_ASSERT(r->given < r->started);
    return r->samples[r->given++ % 2].tokens;
}

static void cpu_mask_logits(void *impl, int num_rows, const int32_t *rows, const uint32_t *masks)
{
    cpu_runner *r = impl;
    const size_t words = fl_token_mask_words(r->vocab);
    for (int i = 0; i < num_rows; i++) {
        FL_ASSERT(rows[i] < r->num_logits);
        fl_token_mask_apply(r->logits + (size_t)rows[i] * r->vocab, r->vocab, masks + (size_t)i * words);
    }
}

static void cpu_read_logits(void *impl, int row, float *out)
{
    cpu_runner *r = impl;
    FL_ASSERT(row < r->num_logits);
    memcpy(out, r->logits + (size_t)row * r->vocab, (size_t)r->vocab * sizeof(float));
}

static void cpu_destroy(void *impl)
{
    cpu_runner *r = impl;
    fl_cpu_kv_cache_free(&r->kv);
    fl_cpu_model_free(&r->model);
    free(r->logits);
    free(r->ids);
    free(r->samples[0].tokens);
    free(r->samples[1].tokens);
    free(r->scratch);
    free(r->row);
    free(r);
}

int fl_cpu_runner_init(fl_model_runner *r, const fl_model_config *cfg, const fl_weights *w,
                       const fl_runner_opts *o, fl_error *err)
{
    FL_ASSERT(o->attn && o->attn->cpu);
    if (o->comm && fl_tp_check(cfg, o->comm->size, err) != 0)
        return -1;
    const fl_model_config *whole = cfg;
    fl_model_config local; /* the rank's heads: its KV cache's */
    fl_tp_shard shard;
    fl_tp_shard_init(&shard, cfg, o->comm ? o->comm->rank : 0, o->comm ? o->comm->size : 1);
    fl_tp_local_config(&local, cfg, &shard);
    cfg = &local;
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
    char what[160];
    snprintf(what, sizeof what, "the CPU runner (float32 weights, run state and %d KV cache blocks%s)", num_blocks,
             shard.size > 1 ? ", all ranks" : "");
    /* the ranks of a group share this machine's memory, each with a slice of this size */
    if (fl_cpu_model_init_rank(&c->model, whole, w, o->attn, max_tokens, max_context, o->comm, err) != 0 ||
        fl_memory_check(fl_size_mul(fl_size_add(c->model.bytes, fl_cpu_kv_cache_bytes(cfg, num_blocks, block_size)),
                                    (size_t)shard.size),
                        what, err) != 0) {
        cpu_destroy(c);
        return -1;
    }
    fl_cpu_kv_cache_init(&c->kv, cfg, num_blocks, block_size);
    c->vocab = cfg->vocab_size;
    c->scratch = fl_calloc(1, fl_sample_scratch_bytes(cfg->vocab_size));
    c->row = fl_malloc((size_t)cfg->vocab_size * sizeof(float));
    *r = (fl_model_runner){
        .impl = c, .attn_backend = o->attn->name, .vocab_size = cfg->vocab_size, .max_tokens = max_tokens,
        .max_context = max_context, .kv_groups = &c->kv.groups, .num_blocks = num_blocks, .block_size = block_size,
        .forward = cpu_forward, .sample = cpu_sample, .sampled = cpu_sampled, .mask_logits = cpu_mask_logits,
        .read_logits = cpu_read_logits, .destroy = cpu_destroy,
    };
    return 0;
}

int fl_cpu_runner_init_parallel(fl_model_runner *r, const fl_model_config *cfg, const fl_weights *w,
                                const fl_runner_opts *o, int tp_size, fl_error *err)
{
    return fl_tp_runner_init_ranks(r, tp_size, NULL, fl_cpu_runner_init, cfg, w, o, err);
}
