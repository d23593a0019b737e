/* model_kernels.h - the CUDA kernels of the decoder besides GEMMs and
 * attention, as C launchers. Activations: the residual stream is float32
 * (more precise than HF's bf16; parity is judged against float32), GEMM
 * inputs and outputs bf16 (uint16_t here), logits float32. Each launcher
 * enqueues on stream and returns a CUDA error code (0: fine). */
#ifndef FL_CUDA_MODEL_KERNELS_H
#define FL_CUDA_MODEL_KERNELS_H

#include <stddef.h>
#include <stdint.h>

#include "engine/sample_draw.h"

#ifdef __cplusplus
extern "C" {
#endif

/* x[t] = the embedding of token ids[t] as float32; an id -1 - r is
 * sampled[r], a token the sampler left on the device (model_runner.h's
 * async scheduling), token 0 if it is vocab or more (the sampler found
 * nothing to draw). table holds the rows of tokens [first, first + rows)
 * (a tensor-parallel rank's slice of the vocabulary; 0 and vocab for the
 * whole); other tokens' rows are zeros, which the ranks' all-reduce fills. */
int fl_cuda_embed(const uint16_t *table, int first, int rows, const int32_t *ids, const int32_t *sampled, float *x,
                  int num_tokens, int hidden, int vocab, void *stream);

/* x[t] += part[t] + bias for every t; part or bias may be NULL (an o_proj
 * bias alone; a tensor-parallel rank's all-reduced partial sum). */
int fl_cuda_add_rows(float *x, const float *part, const float *bias, int num_tokens, int hidden, void *stream);

/* out = in[0] + in[1] + ... + in[num - 1], n floats each, added in that
 * order (a local group's all-reduce: the same bits on every rank); num at
 * most FL_CUDA_SUM_MAX. */
#define FL_CUDA_SUM_MAX 8
int fl_cuda_sum(const float *const *in, int num, float *out, size_t n, void *stream);

/* out[i] = rmsnorm(x[rows[i]]) * weight, bf16; rows NULL: row i. */
int fl_cuda_rmsnorm(const float *x, const int32_t *rows, const float *weight, uint16_t *out, int num_rows,
                    int hidden, float eps, void *stream);

/* The attention input of one layer. qkv (T, (Hq + 2 Hkv) * D) bf16 from the
 * fused projection; bias (NULL if none) adds to it; q_norm/k_norm (NULL if
 * none) are Qwen3's per-head RMSNorms; then RoPE (rotate-half, HF's layout)
 * from rope[pos] = (cos[D/2], sin[D/2]). q goes to q_out (T, Hq, D); k and v
 * to the caches at slots[t] = block * block_size + offset, as bf16, or with
 * kv_fp8 as float8 e4m3 of the value over the cache's scale (rounded to
 * nearest from float32, saturated at e4m3's largest, 448). */
typedef struct fl_cuda_qkv_args {
    const uint16_t *qkv;
    const float *bias, *q_norm, *k_norm, *rope;
    const int32_t *positions, *slots;
    uint16_t *q_out;
    void *k_cache, *v_cache;
    int num_tokens, num_heads, num_kv_heads, head_dim;
    float eps;
    int kv_fp8;
    float k_scale, v_scale; /* kv_fp8's scales */
} fl_cuda_qkv_args;
int fl_cuda_qkv_rope_cache(const fl_cuda_qkv_args *a, void *stream);

/* out[t][i] = silu(gate_up[t][i]) * gate_up[t][inter + i], bf16. */
int fl_cuda_silu_mul(const uint16_t *gate_up, uint16_t *out, int num_tokens, int inter, void *stream);

/* Structured output: in logits row rows[i] (device memory, like masks), each
 * token whose bit is clear in masks[i] ((vocab + 31) / 32 words a row, bit
 * t % 32 of word t / 32) becomes -inf. */
int fl_cuda_mask_logits(float *logits, int num_rows, int vocab, const int32_t *rows, const uint32_t *masks,
                        void *stream);

/* tokens[i] = the draw d[i] from logits row i (engine/sample_draw.h: the
 * host sampler's token, bit for bit), or vocab when the row has no finite
 * largest logit (every one -inf or NaN, or one +inf). vocab at most
 * FL_DRAW_MAX_VOCAB. */
int fl_cuda_sample(const float *logits, int num_rows, int vocab, const fl_draw *d, int32_t *tokens, void *stream);

#ifdef __cplusplus
}
#endif

#endif
