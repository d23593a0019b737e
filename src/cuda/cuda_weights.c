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

static size_t elements(const fl_tensor *t)
{
    size_t n = 1;
    for (int i = 0; i < t->ndim; i++)
        n *= (size_t)t->shape[i];
    return n;
}

/* Appends the concatenation of parts (rows of the same width) as bf16 or
 * float32; returns the device address (pass 1) or NULL. */
static const void *put(upload *u, const fl_tensor *const *parts, int num_parts, int as_f32)
{
    size_t n = 0;
    for (int i = 0; i < num_parts; i++)
        n += elements(parts[i]);
    const size_t bytes = n * (as_f32 ? sizeof(float) : sizeof(uint16_t));
    const size_t off = (u->at + 255) & ~(size_t)255;
    u->at = off + bytes;
    if (u->pass == 0) {
        if (bytes > u->stage_bytes)
            u->stage_bytes = bytes;
        return NULL;
    }
    float *tmp = NULL;
    char *dst = u->stage;
    for (int i = 0; i < num_parts; i++) {
        const fl_tensor *t = parts[i];
        const size_t m = elements(t);
        if (as_f32) {
            fl_convert_to_f32((float *)dst, t->data, t->dtype, m);
            dst += m * sizeof(float);
        } else if (t->dtype == FL_BF16) {
            memcpy(dst, t->data, m * sizeof(uint16_t));
            dst += m * sizeof(uint16_t);
        } else {
            tmp = fl_realloc(tmp, m * sizeof(float));
            fl_convert_to_f32(tmp, t->data, t->dtype, m);
            fl_convert_from_f32(dst, FL_BF16, tmp, m);
            dst += m * sizeof(uint16_t);
        }
    }
    free(tmp);
    if (cudaMemcpy(u->dev + off, u->stage, bytes, cudaMemcpyHostToDevice) != cudaSuccess)
        return NULL;
    return u->dev + off;
}

static const void *put1(upload *u, const fl_tensor *t, int as_f32)
{
    return put(u, &t, 1, as_f32);
}

/* The attention op's tensors: q/k/v fused into one matrix (one GEMM). */
static void lay_out_attention(upload *u, fl_cuda_layer *d, const fl_layer_spec *spec, const fl_tensor *t)
{
    const fl_tensor *qkv[3] = { &t[FL_WQ], &t[FL_WK], &t[FL_WV] };
    const fl_tensor *bias[3] = { &t[FL_BQ], &t[FL_BK], &t[FL_BV] };
    d->w_qkv = put(u, qkv, 3, 0);
    d->w_o = put1(u, &t[FL_WO], 0);
    d->attn_norm = put1(u, &t[FL_ATTN_NORM], 1);
    if (spec->qkv_bias)
        d->b_qkv = put(u, bias, 3, 1);
    if (spec->o_bias)
        d->b_o = put1(u, &t[FL_BO], 1);
    if (spec->qk_norm) {
        d->q_norm = put1(u, &t[FL_Q_NORM], 1);
        d->k_norm = put1(u, &t[FL_K_NORM], 1);
    }
    if (spec->sinks)
        d->sinks = put1(u, &t[FL_SINKS], 1);
}

/* The dense SiLU MLP op's tensors: gate/up fused into one matrix. */
static void lay_out_dense_mlp(upload *u, fl_cuda_layer *d, const fl_tensor *t)
{
    const fl_tensor *gate_up[2] = { &t[FL_W_GATE], &t[FL_W_UP] };
    d->w_gate_up = put(u, gate_up, 2, 0);
    d->w_down = put1(u, &t[FL_W_DOWN], 0);
    d->mlp_norm = put1(u, &t[FL_MLP_NORM], 1);
}

/* The routed experts' tensors, in the layouts cuda/moe.h reads: the
 * checkpoint's own, the router in float32. */
static void lay_out_moe(upload *u, fl_cuda_layer *d, const fl_tensor *t)
{
    d->mlp_norm = put1(u, &t[FL_MLP_NORM], 1);
    d->router = put1(u, &t[FL_ROUTER], 1);
    d->router_bias = put1(u, &t[FL_ROUTER_BIAS], 1);
    d->experts_gate_up = put1(u, &t[FL_EXPERTS_GATE_UP], 0);
    d->experts_gate_up_bias = put1(u, &t[FL_EXPERTS_GATE_UP_BIAS], 1);
    d->experts_down = put1(u, &t[FL_EXPERTS_DOWN], 0);
    d->experts_down_bias = put1(u, &t[FL_EXPERTS_DOWN_BIAS], 1);
}

/* Every device tensor, op by op as the plan says. */
static void lay_out(upload *u, fl_cuda_weights *cw, const fl_model_config *cfg, const fl_weights *w)
{
    cw->embed = put1(u, &w->model[FL_EMBED], 0);
    cw->lm_head = cfg->tie_word_embeddings ? cw->embed : put1(u, &w->model[FL_LM_HEAD], 0);
    cw->final_norm = put1(u, &w->model[FL_FINAL_NORM], 1);
    for (int i = 0; i < cfg->num_layers; i++) {
        lay_out_attention(u, &cw->layers[i], &cfg->layers[i], w->layers[i].t);
        switch ((fl_ffn_kind)cfg->layers[i].ffn) {
        case FL_FFN_DENSE_SILU: lay_out_dense_mlp(u, &cw->layers[i], w->layers[i].t); break;
        case FL_FFN_MOE: lay_out_moe(u, &cw->layers[i], w->layers[i].t); break;
        }
    }
}

int fl_cuda_weights_init(fl_cuda_weights *cw, const fl_model_config *cfg, const fl_weights *w, fl_error *err)
{
    memset(cw, 0, sizeof *cw);
    cw->num_layers = cfg->num_layers;
    cw->layers = fl_calloc((size_t)cfg->num_layers, sizeof *cw->layers);
    upload u = { 0 };
    lay_out(&u, cw, cfg, w);
    cw->bytes = u.at;
    if (cudaMalloc(&cw->base, cw->bytes) != cudaSuccess) {
        cudaGetLastError();
        fl_cuda_weights_free(cw);
        return fl_fail(err, "the weights need %.2f GiB of GPU memory, which the GPU does not have free",
                       (double)u.at / (1 << 30));
    }
    u = (upload){ .pass = 1, .dev = cw->base, .stage = fl_malloc(u.stage_bytes), .stage_bytes = u.stage_bytes };
    lay_out(&u, cw, cfg, w);
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
