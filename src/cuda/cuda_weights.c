/* cuda_weights.c - converting the checkpoint's tensors to the CUDA layout
 * and uploading them (see cuda_weights.h). The host builds each tensor in
 * its device dtype in a staging buffer, one tensor at a time, so peak host
 * memory is one tensor beyond the checkpoint mapping. */
#include "cuda/cuda_weights.h"

#include <cuda_runtime.h>
#include <string.h>

#include "base/alloc.h"
#include "base/dtype.h"

/* Lays out (pass 0: sizes; pass 1: copies) every device tensor in order. */
typedef struct upload {
    int pass;
    char *dev;            /* base of the device allocation (pass 1) */
    size_t at;            /* bytes used so far */
    void *stage;          /* host staging, the largest tensor */
    size_t stage_bytes;
} upload;

/* Rows [first, first + count) of a tensor (its first dimension's), all of
 * them: count -1. */
typedef struct rows_of {
    const fl_tensor *t;
    int64_t first, count;
} rows_of;

static size_t row_width(const fl_tensor *t)
{
    size_t n = 1;
    for (int i = 1; i < t->ndim; i++)
        n *= (size_t)t->shape[i];
    return n;
}

static size_t rows_count(const rows_of *p)
{
    return p->count < 0 ? (size_t)p->t->shape[0] : (size_t)p->count;
}

/* Converts m elements at src (dtype) into dst as bf16 or float32. */
static char *convert(char *dst, const void *src, fl_dtype dtype, size_t m, int as_f32, float **tmp)
{
    if (as_f32) {
        fl_convert_to_f32((float *)dst, src, dtype, m);
        return dst + m * sizeof(float);
    }
    if (dtype == FL_BF16) {
        memcpy(dst, src, m * sizeof(uint16_t));
    } else {
        *tmp = fl_realloc(*tmp, m * sizeof(float));
        fl_convert_to_f32(*tmp, src, dtype, m);
        fl_convert_from_f32(dst, FL_BF16, *tmp, m);
    }
    return dst + m * sizeof(uint16_t);
}

/* Reserves bytes at the next 256-byte boundary; the offset, or (size_t)-1
 * while sizing (pass 0, which only grows the staging buffer). */
static size_t reserve(upload *u, size_t bytes)
{
    const size_t off = (u->at + 255) & ~(size_t)255;
    u->at = off + bytes;
    if (u->pass == 0) {
        if (bytes > u->stage_bytes)
            u->stage_bytes = bytes;
        return (size_t)-1;
    }
    return off;
}

static const void *send(upload *u, size_t off, size_t bytes)
{
    if (cudaMemcpy(u->dev + off, u->stage, bytes, cudaMemcpyHostToDevice) != cudaSuccess)
        return NULL;
    return u->dev + off;
}

/* Appends the concatenation of parts (rows of the same width), then
 * pad_rows rows of zeros, as bf16 or float32; returns the device address
 * (pass 1) or NULL. */
static const void *put_padded(upload *u, const rows_of *parts, int num_parts, int64_t pad_rows, int as_f32)
{
    const size_t width = row_width(parts[0].t), esize = as_f32 ? sizeof(float) : sizeof(uint16_t);
    size_t rows = (size_t)pad_rows;
    for (int i = 0; i < num_parts; i++)
        rows += rows_count(&parts[i]);
    const size_t bytes = rows * width * esize, off = reserve(u, bytes);
    if (off == (size_t)-1)
        return NULL;
    float *tmp = NULL;
    char *dst = u->stage;
    for (int i = 0; i < num_parts; i++) {
        const fl_tensor *t = parts[i].t;
        const size_t first = parts[i].count < 0 ? 0 : (size_t)parts[i].first, rows_i = rows_count(&parts[i]);
        if (rows_i == 0)
            continue; /* a last rank's empty slice of a small vocabulary starts past the end */
        FL_ASSERT(row_width(t) == width && first + rows_i <= (size_t)t->shape[0]);
        dst = convert(dst, (const char *)t->data + first * width * fl_dtype_size(t->dtype), t->dtype, rows_i * width,
                      as_f32, &tmp);
    }
    memset(dst, 0, (size_t)pad_rows * width * esize);
    free(tmp);
    return send(u, off, bytes);
}

static const void *put(upload *u, const rows_of *parts, int num_parts, int as_f32)
{
    return put_padded(u, parts, num_parts, 0, as_f32);
}

static const void *put1(upload *u, const fl_tensor *t, int as_f32)
{
    const rows_of all = { t, 0, -1 };
    return put(u, &all, 1, as_f32);
}

/* Columns [first, first + count) of every row of a tensor (its last
 * dimension's), as bf16 or float32: a row-parallel matrix's slice (o_proj,
 * down_proj), or a slice of each expert's gate/up columns. */
static const void *put_cols(upload *u, const fl_tensor *t, int64_t first, int64_t count, int as_f32)
{
    const int64_t cols = t->shape[t->ndim - 1];
    FL_ASSERT(first >= 0 && first + count <= cols);
    const size_t esize = as_f32 ? sizeof(float) : sizeof(uint16_t);
    const size_t rows = row_width(t) * (size_t)t->shape[0] / (size_t)cols;
    const size_t bytes = rows * (size_t)count * esize, off = reserve(u, bytes);
    if (off == (size_t)-1)
        return NULL;
    float *tmp = NULL;
    char *dst = u->stage;
    const size_t elem = fl_dtype_size(t->dtype);
    for (size_t r = 0; r < rows; r++)
        dst = convert(dst, (const char *)t->data + (r * (size_t)cols + (size_t)first) * elem, t->dtype,
                      (size_t)count, as_f32, &tmp);
    free(tmp);
    return send(u, off, bytes);
}

/* Rows [first, first + count) of each matrix of a stack t (E, n, m), bf16:
 * each expert's slice of the down projection's input rows. */
static const void *put_stack_rows(upload *u, const fl_tensor *t, int64_t first, int64_t count)
{
    FL_ASSERT(t->ndim == 3 && first >= 0 && first + count <= t->shape[1]);
    fl_tensor flat = *t; /* (E n, m) */
    flat.ndim = 2;
    flat.shape[0] = t->shape[0] * t->shape[1];
    flat.shape[1] = t->shape[2];
    const int64_t E = t->shape[0];
    rows_of *parts = fl_malloc((size_t)E * sizeof *parts);
    for (int64_t e = 0; e < E; e++)
        parts[e] = (rows_of){ &flat, e * t->shape[1] + first, count };
    const void *dev = put(u, parts, (int)E, 0);
    free(parts);
    return dev;
}

/* The attention op's tensors, the shard's heads: q/k/v fused into one
 * matrix (one GEMM), o_proj's columns of those heads. */
static void lay_out_attention(upload *u, fl_cuda_layer *d, const fl_layer_spec *spec, const fl_tensor *t,
                              const fl_tp_shard *sh, int head_dim)
{
    const int64_t D = head_dim, q0 = sh->q_head0 * D, nq = sh->num_heads * D;
    const int64_t k0 = sh->kv_head0 * D, nk = sh->num_kv_heads * D;
    const rows_of qkv[3] = { { &t[FL_WQ], q0, nq }, { &t[FL_WK], k0, nk }, { &t[FL_WV], k0, nk } };
    const rows_of bias[3] = { { &t[FL_BQ], q0, nq }, { &t[FL_BK], k0, nk }, { &t[FL_BV], k0, nk } };
    d->w_qkv = put(u, qkv, 3, 0);
    d->w_o = sh->size > 1 ? put_cols(u, &t[FL_WO], q0, nq, 0) : put1(u, &t[FL_WO], 0);
    d->attn_norm = put1(u, &t[FL_ATTN_NORM], 1);
    if (spec->qkv_bias)
        d->b_qkv = put(u, bias, 3, 1);
    if (spec->o_bias)
        d->b_o = put1(u, &t[FL_BO], 1);
    if (spec->qk_norm) {
        d->q_norm = put1(u, &t[FL_Q_NORM], 1);
        d->k_norm = put1(u, &t[FL_K_NORM], 1);
    }
    if (spec->sinks) {
        const rows_of sinks = { &t[FL_SINKS], sh->q_head0, sh->num_heads };
        d->sinks = put(u, &sinks, 1, 1);
    }
}

/* The dense SiLU MLP op's tensors, the shard's slice of the intermediate
 * size: gate/up fused into one matrix. */
static void lay_out_dense_mlp(upload *u, fl_cuda_layer *d, const fl_tensor *t, const fl_tp_shard *sh)
{
    const rows_of gate_up[2] = { { &t[FL_W_GATE], sh->ff0, sh->ff }, { &t[FL_W_UP], sh->ff0, sh->ff } };
    d->w_gate_up = put(u, gate_up, 2, 0);
    d->w_down = sh->size > 1 ? put_cols(u, &t[FL_W_DOWN], sh->ff0, sh->ff, 0) : put1(u, &t[FL_W_DOWN], 0);
    d->mlp_norm = put1(u, &t[FL_MLP_NORM], 1);
}

/* The routed experts' tensors, in the layouts cuda/moe.h reads: the
 * checkpoint's own, the router in float32, each expert's slice of the
 * intermediate size: HF interleaves gate and up columns (gate in even
 * ones), so the slice [ff0, ff0 + ff) is one run of 2 ff columns of
 * gate/up and its biases, and ff rows of down. The down biases are added
 * once, by rank 0 (cuda/moe.h's NULL on the other ranks): they are
 * weighted per expert, before the group's all-reduce. */
static void lay_out_moe(upload *u, fl_cuda_layer *d, const fl_tensor *t, const fl_tp_shard *sh)
{
    d->mlp_norm = put1(u, &t[FL_MLP_NORM], 1);
    d->router = put1(u, &t[FL_ROUTER], 1);
    d->router_bias = put1(u, &t[FL_ROUTER_BIAS], 1);
    if (sh->size == 1) {
        d->experts_gate_up = put1(u, &t[FL_EXPERTS_GATE_UP], 0);
        d->experts_gate_up_bias = put1(u, &t[FL_EXPERTS_GATE_UP_BIAS], 1);
        d->experts_down = put1(u, &t[FL_EXPERTS_DOWN], 0);
    } else {
        d->experts_gate_up = put_cols(u, &t[FL_EXPERTS_GATE_UP], 2 * (int64_t)sh->ff0, 2 * (int64_t)sh->ff, 0);
        d->experts_gate_up_bias = put_cols(u, &t[FL_EXPERTS_GATE_UP_BIAS], 2 * (int64_t)sh->ff0,
                                           2 * (int64_t)sh->ff, 1);
        d->experts_down = put_stack_rows(u, &t[FL_EXPERTS_DOWN], sh->ff0, sh->ff);
    }
    d->experts_down_bias = sh->rank == 0 ? put1(u, &t[FL_EXPERTS_DOWN_BIAS], 1) : NULL;
}

/* The shard's rows of the embedding or lm_head, [vocab0, vocab0 + vocab),
 * as vocab_slice rows: the last rank's short slice padded with zeros. */
static const void *put_vocab_rows(upload *u, const fl_tensor *t, const fl_tp_shard *sh)
{
    const rows_of rows = { t, sh->vocab0, sh->vocab };
    return put_padded(u, &rows, 1, sh->vocab_slice - sh->vocab, 0);
}

/* Every device tensor, op by op as the plan says. */
static void lay_out(upload *u, fl_cuda_weights *cw, const fl_model_config *cfg, const fl_weights *w,
                    const fl_tp_shard *sh)
{
    cw->embed = put_vocab_rows(u, &w->model[FL_EMBED], sh);
    cw->lm_head = cfg->tie_word_embeddings ? cw->embed : put_vocab_rows(u, &w->model[FL_LM_HEAD], sh);
    cw->final_norm = put1(u, &w->model[FL_FINAL_NORM], 1);
    for (int i = 0; i < cfg->num_layers; i++) {
        lay_out_attention(u, &cw->layers[i], &cfg->layers[i], w->layers[i].t, sh, cfg->head_dim);
        switch ((fl_ffn_kind)cfg->layers[i].ffn) {
        case FL_FFN_DENSE_SILU: lay_out_dense_mlp(u, &cw->layers[i], w->layers[i].t, sh); break;
        case FL_FFN_MOE: lay_out_moe(u, &cw->layers[i], w->layers[i].t, sh); break;
        }
    }
}

int fl_cuda_weights_init(fl_cuda_weights *cw, const fl_model_config *cfg, const fl_weights *w,
                         const fl_tp_shard *shard, fl_error *err)
{
    fl_tp_shard whole;
    if (!shard) {
        fl_tp_shard_init(&whole, cfg, 0, 1);
        shard = &whole;
    }
    memset(cw, 0, sizeof *cw);
    cw->num_layers = cfg->num_layers;
    cw->layers = fl_calloc((size_t)cfg->num_layers, sizeof *cw->layers);
    upload u = { 0 };
    lay_out(&u, cw, cfg, w, shard);
    cw->bytes = u.at;
    if (cudaMalloc(&cw->base, cw->bytes) != cudaSuccess) {
        cudaGetLastError();
        fl_cuda_weights_free(cw);
        return fl_fail(err, "the weights need %.2f GiB of GPU memory, which the GPU does not have free",
                       (double)u.at / (1 << 30));
    }
    u = (upload){ .pass = 1, .dev = cw->base, .stage = fl_malloc(u.stage_bytes), .stage_bytes = u.stage_bytes };
    lay_out(&u, cw, cfg, w, shard);
    free(u.stage);
    if (cudaGetLastError() != cudaSuccess) {
        fl_cuda_weights_free(cw);
        return fl_fail(err, "uploading the weights to the GPU failed");
    }
    return 0;
}

void fl_cuda_weights_free(fl_cuda_weights *cw)
{
    if (cw->base)
        cudaFree(cw->base);
    free(cw->layers);
    memset(cw, 0, sizeof *cw);
}
