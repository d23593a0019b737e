/* weights.c - the tensors a model's plan needs, and the two ways of filling
 * them (checkpoint files or dummy values).
 *
 * One walk, walk_tensors(), reads the plan and the architecture's tables
 * (model/arch.h) for every tensor's name, slot and expected shape;
 * loading, dummy filling, counting and visiting all go through it. */
#include "model/weights.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "base/alloc.h"
#include "base/rng.h"

/* Called for each expected tensor: its name, slot, expected shape, kind. */
typedef int (*walk_fn)(const char *name, fl_tensor *slot, int ndim, const int64_t *shape,
                       fl_tensor_kind kind, void *ctx);

static int walk_model_role(fl_weights *w, const fl_model_config *c, fl_model_role role, walk_fn fn,
                           void *ctx)
{
    int64_t shape[2];
    const int ndim = fl_model_role_shape(c, role, shape);
    return fn(c->arch->names->model[role], &w->model[role], ndim, shape, fl_model_role_kind(role), ctx);
}

static int walk_layer(fl_weights *w, const fl_model_config *c, int layer, walk_fn fn, void *ctx)
{
    for (int r = 0; r < FL_NUM_LAYER_ROLES; r++) {
        const fl_layer_role role = (fl_layer_role)r;
        if (!fl_layer_role_needed(&c->layers[layer], role))
            continue;
        char name[160];
        int64_t shape[2];
        snprintf(name, sizeof name, c->arch->names->layer[role], layer);
        const int ndim = fl_layer_role_shape(c, role, shape);
        const int rc = fn(name, &w->layers[layer].t[role], ndim, shape, fl_layer_role_kind(role), ctx);
        if (rc != 0)
            return rc;
    }
    return 0;
}

/* Every tensor cfg's plan needs, in checkpoint order (which also orders
 * the dummy values' RNG streams): the embedding, each layer's tensors in
 * role order, the final norm, the lm_head unless tied. */
static int walk_tensors(fl_weights *w, const fl_model_config *c, walk_fn fn, void *ctx)
{
    int rc = walk_model_role(w, c, FL_EMBED, fn, ctx);
    for (int i = 0; rc == 0 && i < c->num_layers; i++)
        rc = walk_layer(w, c, i, fn, ctx);
    if (rc == 0)
        rc = walk_model_role(w, c, FL_FINAL_NORM, fn, ctx);
    if (rc == 0 && !c->tie_word_embeddings)
        rc = walk_model_role(w, c, FL_LM_HEAD, fn, ctx);
    return rc;
}

static void alloc_layers(fl_weights *w, const fl_model_config *cfg)
{
    memset(w, 0, sizeof *w);
    w->num_layers = cfg->num_layers;
    w->layers = fl_calloc((size_t)cfg->num_layers, sizeof(fl_layer_weights));
}

/* Adds the element count of one expected tensor to *(int64_t *)ctx. */
static int count_params(const char *name, fl_tensor *slot, int ndim, const int64_t *shape,
                        fl_tensor_kind kind, void *ctx)
{
    (void)name, (void)slot, (void)kind;
    int64_t n = 1;
    for (int i = 0; i < ndim; i++)
        n *= shape[i];
    *(int64_t *)ctx += n;
    return 0;
}

static void finish_weights(fl_weights *w, const fl_model_config *cfg)
{
    if (cfg->tie_word_embeddings)
        w->model[FL_LM_HEAD] = w->model[FL_EMBED];
    w->num_params = 0;
    walk_tensors(w, cfg, count_params, &w->num_params);
}

/* ---- loading from a checkpoint ---- */

static void format_shape(char *buf, size_t n, int ndim, const int64_t *shape)
{
    size_t at = (size_t)snprintf(buf, n, "[");
    for (int i = 0; i < ndim && at < n; i++)
        at += (size_t)snprintf(buf + at, n - at, i ? ", %lld" : "%lld", (long long)shape[i]);
    if (at < n)
        snprintf(buf + at, n - at, "]");
}

typedef struct load_ctx {
    const fl_safetensors *files;
    const char *dir;
    fl_error *err;
} load_ctx;

static int load_tensor(const char *name, fl_tensor *slot, int ndim, const int64_t *shape,
                       fl_tensor_kind kind, void *vctx)
{
    (void)kind;
    load_ctx *ctx = vctx;
    const fl_tensor *t = fl_safetensors_find(ctx->files, name);
    if (!t)
        return fl_fail(ctx->err, "%s: tensor '%s' is missing from the checkpoint", ctx->dir, name);
    if (!fl_dtype_is_float_weight(t->dtype))
        return fl_fail(ctx->err, "%s: tensor '%s' has dtype %s (expected F32, F16 or BF16)",
                       t->file, name, fl_dtype_name(t->dtype));
    int same = t->ndim == ndim;
    for (int i = 0; same && i < ndim; i++)
        same = t->shape[i] == shape[i];
    if (!same) {
        char got[96], want[96];
        format_shape(got, sizeof got, t->ndim, t->shape);
        format_shape(want, sizeof want, ndim, shape);
        return fl_fail(ctx->err, "%s: tensor '%s' has shape %s, expected %s for this config",
                       t->file, name, got, want);
    }
    *slot = *t;
    return 0;
}

int fl_weights_load(fl_weights *w, const fl_model_config *cfg, const char *dir, fl_error *err)
{
    alloc_layers(w, cfg);
    if (fl_safetensors_open_dir(&w->files, dir, err) != 0) {
        fl_weights_free(w);
        return -1;
    }
    load_ctx ctx = { &w->files, dir, err };
    if (walk_tensors(w, cfg, load_tensor, &ctx) != 0) {
        fl_weights_free(w);
        return -1;
    }
    finish_weights(w, cfg);
    return 0;
}

/* ---- dummy weights ---- */

typedef struct dummy_ctx {
    fl_dtype dtype;
    uint64_t seed;
    char *base;      /* NULL while sizing */
    size_t offset;
    uint64_t stream; /* tensor index: each tensor draws its own stream */
} dummy_ctx;

static void fill_dummy(fl_tensor *t, fl_tensor_kind kind, int64_t fan_in, uint64_t seed,
                       uint64_t stream)
{
    const int64_t n = fl_tensor_numel(t);
    /* Uniform on [-a, a] has variance a^2/3: a = sqrt(3/fan_in) keeps
     * activations near unit scale through every matrix. */
    const float scale = kind == FL_KIND_MATRIX ? sqrtf(3.0f / (float)fan_in) : 0.1f;
    const float center = kind == FL_KIND_NORM ? 1.0f : 0.0f;
    const uint64_t key = fl_rng_key(seed, stream);
    const int64_t chunk = 4096;
#pragma omp parallel for schedule(static)
    for (int64_t c0 = 0; c0 < n; c0 += chunk) {
        float buf[4096];
        int64_t m = n - c0 < chunk ? n - c0 : chunk;
        for (int64_t i = 0; i < m; i++)
            buf[i] = center + scale * (2.0f * fl_rng_uniform(key, (uint64_t)(c0 + i)) - 1.0f);
        fl_convert_from_f32((char *)t->data + (size_t)c0 * fl_dtype_size(t->dtype), t->dtype, buf,
                            (size_t)m);
    }
}

static int place_dummy(const char *name, fl_tensor *slot, int ndim, const int64_t *shape,
                       fl_tensor_kind kind, void *vctx)
{
    dummy_ctx *ctx = vctx;
    (void)name;
    memset(slot, 0, sizeof *slot);
    slot->dtype = ctx->dtype;
    slot->ndim = ndim;
    memcpy(slot->shape, shape, (size_t)ndim * sizeof(int64_t));
    slot->nbytes = (size_t)fl_tensor_numel(slot) * fl_dtype_size(ctx->dtype);
    slot->file = "dummy";
    if (ctx->base) {
        slot->data = ctx->base + ctx->offset;
        fill_dummy(slot, kind, ndim == 2 ? shape[1] : 1, ctx->seed, ctx->stream);
    }
    ctx->offset += (slot->nbytes + 63) / 64 * 64;
    ctx->stream++;
    return 0;
}

void fl_weights_init_shapes(fl_weights *w, const fl_model_config *cfg)
{
    alloc_layers(w, cfg);
    dummy_ctx ctx = { .dtype = cfg->dtype };
    walk_tensors(w, cfg, place_dummy, &ctx);
    finish_weights(w, cfg);
}

int fl_weights_init_dummy(fl_weights *w, const fl_model_config *cfg, uint64_t seed,
                          fl_error *err)
{
    alloc_layers(w, cfg);
    dummy_ctx ctx = { .dtype = cfg->dtype, .seed = seed };
    walk_tensors(w, cfg, place_dummy, &ctx); /* sizes only */
    if (fl_memory_check(ctx.offset, "--load-format dummy: the weights", err) != 0) {
        fl_weights_free(w);
        return -1;
    }
    w->dummy_data = fl_malloc_aligned(ctx.offset);
    ctx.base = w->dummy_data;
    ctx.offset = 0;
    ctx.stream = 0;
    walk_tensors(w, cfg, place_dummy, &ctx);
    finish_weights(w, cfg);
    return 0;
}

void fl_weights_free(fl_weights *w)
{
    fl_safetensors_free(&w->files);
    free(w->dummy_data);
    free(w->layers);
    memset(w, 0, sizeof *w);
}

/* ---- visiting ---- */

typedef struct visit_ctx {
    fl_weights_visit_fn fn;
    void *ctx;
} visit_ctx;

static int visit_one(const char *name, fl_tensor *slot, int ndim, const int64_t *shape,
                     fl_tensor_kind kind, void *vctx)
{
    (void)ndim, (void)shape, (void)kind;
    visit_ctx *v = vctx;
    return v->fn(name, slot, v->ctx);
}

int fl_weights_visit(const fl_weights *w, const fl_model_config *cfg, fl_weights_visit_fn fn,
                     void *ctx)
{
    visit_ctx v = { fn, ctx };
    return walk_tensors((fl_weights *)w, cfg, visit_one, &v);
}
