/* weights.c - the tensors a model's plan needs, and the two ways of filling
 * them (checkpoint files or dummy values).
 *
 * One walk, walk_tensors(), reads the plan and the architecture's tables
 * (model/arch.h) for every tensor's name, slot and expected shape;
 * loading, dummy filling, counting and visiting all go through it. A
 * tensor an MXFP4 checkpoint stores as blocks and scales is dequantized to
 * bfloat16 at load, into memory the weights own, so that every consumer
 * sees the same logical tensors in either form of the checkpoint. */
#include "model/weights.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "base/alloc.h"
#include "base/rng.h"
#include "model/mxfp4.h"

/* One tensor the plan needs: its name, shape and kind, and whether the
 * checkpoint stores it as MXFP4 (name_blocks and name_scales). */
typedef struct expected {
    const char *name;
    int ndim;
    int64_t shape[FL_ROLE_MAX_DIMS];
    fl_tensor_kind kind;
    int mxfp4;
} expected;

/* Called for each expected tensor with the slot it fills. */
typedef int (*walk_fn)(const expected *e, fl_tensor *slot, void *ctx);

static int walk_model_role(fl_weights *w, const fl_model_config *c, fl_model_role role, walk_fn fn,
                           void *ctx)
{
    expected e = { .name = c->arch->names->model[role], .kind = fl_model_role_kind(role) };
    e.ndim = fl_model_role_shape(c, role, e.shape);
    return fn(&e, &w->model[role], ctx);
}

static int walk_layer(fl_weights *w, const fl_model_config *c, int layer, walk_fn fn, void *ctx)
{
    for (int r = 0; r < FL_NUM_LAYER_ROLES; r++) {
        const fl_layer_role role = (fl_layer_role)r;
        if (!fl_layer_role_needed(&c->layers[layer], role))
            continue;
        FL_ASSERT(c->arch->names->layer[role]); /* an architecture names every role its plans use */
        char name[160];
        snprintf(name, sizeof name, c->arch->names->layer[role], layer);
        expected e = { .name = name, .kind = fl_layer_role_kind(role),
                       .mxfp4 = c->experts_mxfp4 && fl_layer_role_mxfp4(role) };
        e.ndim = fl_layer_role_shape(c, role, e.shape);
        const int rc = fn(&e, &w->layers[layer].t[role], ctx);
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

static int64_t numel(const expected *e)
{
    int64_t n = 1;
    for (int i = 0; i < e->ndim; i++)
        n *= e->shape[i];
    return n;
}

static void alloc_layers(fl_weights *w, const fl_model_config *cfg)
{
    memset(w, 0, sizeof *w);
    w->num_layers = cfg->num_layers;
    w->layers = fl_calloc((size_t)cfg->num_layers, sizeof(fl_layer_weights));
}

/* Adds the element count of one expected tensor to *(int64_t *)ctx. */
static int count_params(const expected *e, fl_tensor *slot, void *ctx)
{
    (void)slot;
    *(int64_t *)ctx += numel(e);
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
    int sizing;       /* only adding up the dequantized tensors' bytes */
    char *owned;      /* the dequantized tensors' memory */
    size_t offset;
} load_ctx;

/* 0 if t's dtype is allowed (dtype_ok; dtypes_msg says which are) and its
 * shape is want; else an error naming the file and the tensor. */
static int check_tensor(load_ctx *ctx, const fl_tensor *t, const char *dtypes_msg, int dtype_ok, int ndim,
                        const int64_t *want)
{
    if (!dtype_ok)
        return fl_fail(ctx->err, "%s: tensor '%s' has dtype %s (expected %s)", t->file, t->name,
                       fl_dtype_name(t->dtype), dtypes_msg);
    int same = t->ndim == ndim;
    for (int i = 0; same && i < ndim; i++)
        same = t->shape[i] == want[i];
    if (!same) {
        char got[96], expect[96];
        format_shape(got, sizeof got, t->ndim, t->shape);
        format_shape(expect, sizeof expect, ndim, want);
        return fl_fail(ctx->err, "%s: tensor '%s' has shape %s, expected %s for this config", t->file, t->name,
                       got, expect);
    }
    return 0;
}

/* An MXFP4 expert stack of logical shape (E, in, out): NAME_blocks (U8,
 * E x out x in/32 x 16) and NAME_scales (U8, E x out x in/32), dequantized
 * to bfloat16 into the weights' own memory. */
static int load_mxfp4(load_ctx *ctx, const expected *e, fl_tensor *slot)
{
    const int64_t E = e->shape[0], in = e->shape[1], out = e->shape[2];
    const size_t bytes = (size_t)numel(e) * sizeof(uint16_t);
    const size_t at = ctx->offset;
    ctx->offset += (bytes + 63) / 64 * 64;
    if (ctx->sizing)
        return 0;
    char *dst = ctx->owned + at;
    char name[2][200];
    const fl_tensor *part[2];
    static const char *const suffix[2] = { "_blocks", "_scales" };
    for (int i = 0; i < 2; i++) {
        snprintf(name[i], sizeof name[i], "%s%s", e->name, suffix[i]);
        part[i] = fl_safetensors_find(ctx->files, name[i]);
        if (!part[i])
            return fl_fail(ctx->err, "%s: tensor '%s' is missing from the checkpoint (config.json's "
                           "quantization_config says mxfp4)%s", ctx->dir, name[i],
                           fl_safetensors_find(ctx->files, e->name) ? "; it holds the unquantized form instead"
                                                                    : "");
        const int64_t want[4] = { E, out, in / 32, 16 };
        if (check_tensor(ctx, part[i], "U8", part[i]->dtype == FL_U8, 4 - i, want) != 0)
            return -1;
    }
    int64_t bad;
    if (fl_mxfp4_dequantize(part[0]->data, part[1]->data, E, out, in, (uint16_t *)dst, &bad) != 0) {
        const int64_t col = bad % in, row = bad / in % out, expert = bad / in / out;
        return fl_fail(ctx->err, "%s: tensor '%s': expert %lld, output row %lld, input %lld: scale %u makes the "
                       "value NaN or too large for bfloat16", part[0]->file, name[0], (long long)expert,
                       (long long)row, (long long)col,
                       ((const uint8_t *)part[1]->data)[(expert * out + row) * (in / 32) + col / 32]);
    }
    *slot = (fl_tensor){ .name = part[0]->name, .dtype = FL_BF16, .ndim = 3, .shape = { E, in, out },
                         .data = dst, .nbytes = bytes, .file = part[0]->file };
    return 0;
}

static int load_tensor(const expected *e, fl_tensor *slot, void *vctx)
{
    load_ctx *ctx = vctx;
    if (e->mxfp4)
        return load_mxfp4(ctx, e, slot);
    if (ctx->sizing) /* only the MXFP4 tensors take memory */
        return 0;
    const fl_tensor *t = fl_safetensors_find(ctx->files, e->name);
    if (!t)
        return fl_fail(ctx->err, "%s: tensor '%s' is missing from the checkpoint", ctx->dir, e->name);
    if (check_tensor(ctx, t, "F32, F16 or BF16", fl_dtype_is_float_weight(t->dtype), e->ndim, e->shape) != 0)
        return -1;
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
    /* Sized first: the dequantized experts live in memory the weights own,
     * one block, checked against the machine before it is taken. */
    load_ctx ctx = { .files = &w->files, .dir = dir, .err = err, .sizing = 1 };
    walk_tensors(w, cfg, load_tensor, &ctx);
    if (ctx.offset && fl_memory_check(ctx.offset, "the dequantized MXFP4 experts", err) != 0) {
        fl_weights_free(w);
        return -1;
    }
    w->owned = ctx.offset ? fl_malloc_aligned(ctx.offset) : NULL;
    ctx = (load_ctx){ .files = &w->files, .dir = dir, .err = err, .owned = w->owned };
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

static int place_dummy(const expected *e, fl_tensor *slot, void *vctx)
{
    dummy_ctx *ctx = vctx;
    memset(slot, 0, sizeof *slot);
    slot->dtype = ctx->dtype;
    slot->ndim = e->ndim;
    memcpy(slot->shape, e->shape, (size_t)e->ndim * sizeof(int64_t));
    slot->nbytes = (size_t)fl_tensor_numel(slot) * fl_dtype_size(ctx->dtype);
    slot->file = "dummy";
    if (ctx->base) {
        slot->data = ctx->base + ctx->offset;
        /* an (out, in) matrix or an (E, in, out) expert stack: fan-in shape[1] */
        fill_dummy(slot, e->kind, e->ndim >= 2 ? e->shape[1] : 1, ctx->seed, ctx->stream);
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
    w->owned = fl_malloc_aligned(ctx.offset);
    ctx.base = w->owned;
    ctx.offset = 0;
    ctx.stream = 0;
    walk_tensors(w, cfg, place_dummy, &ctx);
    finish_weights(w, cfg);
    return 0;
}

void fl_weights_free(fl_weights *w)
{
    fl_safetensors_free(&w->files);
    free(w->owned);
    free(w->layers);
    memset(w, 0, sizeof *w);
}

/* ---- visiting ---- */

typedef struct visit_ctx {
    fl_weights_visit_fn fn;
    void *ctx;
} visit_ctx;

static int visit_one(const expected *e, fl_tensor *slot, void *vctx)
{
    visit_ctx *v = vctx;
    return v->fn(e->name, slot, v->ctx);
}

int fl_weights_visit(const fl_weights *w, const fl_model_config *cfg, fl_weights_visit_fn fn,
                     void *ctx)
{
    visit_ctx v = { fn, ctx };
    return walk_tensors((fl_weights *)w, cfg, visit_one, &v);
}
