/* model_kernels.cu - the decoder's element-wise, normalisation and sampling
 * kernels (see model_kernels.h). All are memory-bound: each reads its input
 * once; the per-head q/k work keeps a head in shared memory so that the norm
 * and the rotate-half pairing need no second read. */
#include "cuda/model_kernels.h"

#include <cuda_bf16.h>
#include <cuda_runtime.h>
#include <math.h>

#include "base/rng.h"

typedef __nv_bfloat16 bf16;

static __device__ __forceinline__ float to_f(uint16_t h)
{
    return __uint_as_float((uint32_t)h << 16);
}

static __device__ __forceinline__ uint16_t to_bf16(float f)
{
    bf16 b = __float2bfloat16(f);
    return *(uint16_t *)&b;
}

static __device__ __forceinline__ float warp_sum(float v)
{
#pragma unroll
    for (int o = 16; o > 0; o >>= 1)
        v += __shfl_xor_sync(0xffffffff, v, o);
    return v;
}

/* The sum over the block; every thread gets it. scratch: 32 floats. */
static __device__ float block_sum(float v, float *scratch)
{
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    v = warp_sum(v);
    __syncthreads(); /* scratch may still be read from the last call */
    if (lane == 0)
        scratch[warp] = v;
    __syncthreads();
    v = lane < (int)(blockDim.x >> 5) ? scratch[lane] : 0.f;
    return warp_sum(v);
}

static cudaStream_t as_stream(void *s)
{
    return (cudaStream_t)s;
}

/* ---- embedding, bias, RMSNorm ---- */

__global__ void embed_kernel(const uint16_t *table, const int32_t *ids, float *x, int hidden)
{
    const uint16_t *src = table + (size_t)ids[blockIdx.x] * hidden;
    float *dst = x + (size_t)blockIdx.x * hidden;
    for (int i = threadIdx.x; i < hidden; i += blockDim.x)
        dst[i] = to_f(src[i]);
}

extern "C" int fl_cuda_embed(const uint16_t *table, const int32_t *ids, float *x, int num_tokens, int hidden,
                             void *stream)
{
    embed_kernel<<<num_tokens, 256, 0, as_stream(stream)>>>(table, ids, x, hidden);
    return (int)cudaGetLastError();
}

__global__ void add_bias_kernel(float *x, const float *bias, int hidden)
{
    float *row = x + (size_t)blockIdx.x * hidden;
    for (int i = threadIdx.x; i < hidden; i += blockDim.x)
        row[i] += bias[i];
}

extern "C" int fl_cuda_add_bias(float *x, const float *bias, int num_tokens, int hidden, void *stream)
{
    add_bias_kernel<<<num_tokens, 256, 0, as_stream(stream)>>>(x, bias, hidden);
    return (int)cudaGetLastError();
}

__global__ void rmsnorm_kernel(const float *x, const int32_t *rows, const float *weight, uint16_t *out, int hidden,
                               float eps)
{
    __shared__ float scratch[32];
    const float *row = x + (size_t)(rows ? rows[blockIdx.x] : blockIdx.x) * hidden;
    float ss = 0.f;
    for (int i = threadIdx.x; i < hidden; i += blockDim.x)
        ss += row[i] * row[i];
    const float r = rsqrtf(block_sum(ss, scratch) / hidden + eps);
    uint16_t *dst = out + (size_t)blockIdx.x * hidden;
    for (int i = threadIdx.x; i < hidden; i += blockDim.x)
        dst[i] = to_bf16(row[i] * r * weight[i]);
}

extern "C" int fl_cuda_rmsnorm(const float *x, const int32_t *rows, const float *weight, uint16_t *out,
                               int num_rows, int hidden, float eps, void *stream)
{
    rmsnorm_kernel<<<num_rows, 256, 0, as_stream(stream)>>>(x, rows, weight, out, hidden, eps);
    return (int)cudaGetLastError();
}

/* ---- q/k norm, RoPE, KV-cache write: one warp per (token, head) ---- */

#define QKV_WARPS 4
#define MAX_HEAD_DIM 256

__global__ void qkv_rope_cache_kernel(fl_cuda_qkv_args a)
{
    __shared__ float head[QKV_WARPS][MAX_HEAD_DIM];
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const int t = blockIdx.x, h = blockIdx.y * QKV_WARPS + warp;
    const int D = a.head_dim, heads = a.num_heads + 2 * a.num_kv_heads;
    if (h >= heads)
        return;
    float *s = head[warp];
    const uint16_t *src = a.qkv + ((size_t)t * heads + h) * D;
    for (int i = lane; i < D; i += 32)
        s[i] = to_f(src[i]) + (a.bias ? a.bias[h * D + i] : 0.f);
    const size_t slot = (size_t)a.slots[t];
    if (h >= a.num_heads + a.num_kv_heads) { /* v: straight to the cache */
        uint16_t *dst = a.v_cache + (slot * a.num_kv_heads + (h - a.num_heads - a.num_kv_heads)) * D;
        for (int i = lane; i < D; i += 32)
            dst[i] = to_bf16(s[i]);
        return;
    }
    const bool is_q = h < a.num_heads;
    const float *norm = is_q ? a.q_norm : a.k_norm;
    float scale = 1.f;
    if (norm) {
        float ss = 0.f;
        for (int i = lane; i < D; i += 32)
            ss += s[i] * s[i];
        scale = rsqrtf(warp_sum(ss) / D + a.eps);
    }
    __syncwarp();
    const int half = D / 2;
    const float *cs = a.rope + (size_t)a.positions[t] * D; /* cos[half], sin[half] */
    uint16_t *dst = is_q ? a.q_out + ((size_t)t * a.num_heads + h) * D
                         : a.k_cache + (slot * a.num_kv_heads + (h - a.num_heads)) * D;
    for (int i = lane; i < half; i += 32) {
        float x0 = s[i] * scale, x1 = s[i + half] * scale;
        if (norm) {
            x0 *= norm[i];
            x1 *= norm[i + half];
        }
        const float c = cs[i], sn = cs[half + i];
        dst[i] = to_bf16(x0 * c - x1 * sn);
        dst[i + half] = to_bf16(x1 * c + x0 * sn);
    }
}

extern "C" int fl_cuda_qkv_rope_cache(const fl_cuda_qkv_args *a, void *stream)
{
    if (a->head_dim > MAX_HEAD_DIM || a->head_dim % 2)
        return (int)cudaErrorInvalidValue;
    const int heads = a->num_heads + 2 * a->num_kv_heads;
    dim3 grid(a->num_tokens, (heads + QKV_WARPS - 1) / QKV_WARPS);
    qkv_rope_cache_kernel<<<grid, 32 * QKV_WARPS, 0, as_stream(stream)>>>(*a);
    return (int)cudaGetLastError();
}

/* ---- SiLU x mul ---- */

__global__ void silu_mul_kernel(const uint16_t *gate_up, uint16_t *out, int inter)
{
    const uint16_t *g = gate_up + (size_t)blockIdx.x * 2 * inter;
    uint16_t *o = out + (size_t)blockIdx.x * inter;
    for (int i = threadIdx.x; i < inter; i += blockDim.x) {
        const float x = to_f(g[i]);
        o[i] = to_bf16(x / (1.f + __expf(-x)) * to_f(g[inter + i]));
    }
}

extern "C" int fl_cuda_silu_mul(const uint16_t *gate_up, uint16_t *out, int num_tokens, int inter, void *stream)
{
    silu_mul_kernel<<<num_tokens, 512, 0, as_stream(stream)>>>(gate_up, out, inter);
    return (int)cudaGetLastError();
}

/* ---- sampling: one CTA per row ---- */

#define SAMPLE_THREADS 1024

/* Float order as unsigned order. */
static __device__ __forceinline__ uint32_t order_key(float f)
{
    const uint32_t u = __float_as_uint(f);
    return (u & 0x80000000u) ? ~u : (u | 0x80000000u);
}

static __device__ __forceinline__ float key_value(uint32_t k)
{
    return __uint_as_float((k & 0x80000000u) ? (k & 0x7fffffffu) : ~k);
}

/* The block's largest value and its lowest index. */
static __device__ void block_argmax(float &v, int &idx, float *sv, int *si)
{
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) {
        const float ov = __shfl_xor_sync(0xffffffff, v, o);
        const int oi = __shfl_xor_sync(0xffffffff, idx, o);
        if (ov > v || (ov == v && oi < idx)) {
            v = ov;
            idx = oi;
        }
    }
    __syncthreads();
    if (lane == 0) {
        sv[warp] = v;
        si[warp] = idx;
    }
    __syncthreads();
    v = sv[0];
    idx = si[0];
    for (int w = 1; w < (int)(blockDim.x >> 5); w++)
        if (sv[w] > v || (sv[w] == v && si[w] < idx)) {
            v = sv[w];
            idx = si[w];
        }
}

/* The largest order key k with f(k) >= target, f decreasing in k: f(k) is
 * the count (weighted: the softmax mass) of values whose key is >= k. */
static __device__ uint32_t search_threshold(const float *row, int vocab, uint32_t floor_key, float target, bool mass,
                                            float mx, float inv_t, float *scratch)
{
    uint64_t lo = floor_key, hi = 0x100000000ull; /* f(lo) >= target > f(hi) */
    while (hi - lo > 1) {
        const uint32_t mid = (uint32_t)((lo + hi) / 2);
        float part = 0.f;
        for (int i = threadIdx.x; i < vocab; i += blockDim.x)
            if (order_key(row[i]) >= mid)
                part += mass ? __expf((row[i] - mx) * inv_t) : 1.f;
        if (block_sum(part, scratch) >= target)
            lo = mid;
        else
            hi = mid;
    }
    return (uint32_t)lo;
}

__global__ void __launch_bounds__(SAMPLE_THREADS) sample_kernel(const float *logits, int vocab,
                                                              const fl_cuda_sample_params *params, int32_t *tokens)
{
    __shared__ float sv[32];
    __shared__ int si[32];
    const float *row = logits + (size_t)blockIdx.x * vocab;
    const fl_cuda_sample_params p = params[blockIdx.x];
    float mx = -INFINITY;
    int arg = 0x7fffffff;
    for (int i = threadIdx.x; i < vocab; i += blockDim.x)
        if (row[i] > mx) {
            mx = row[i];
            arg = i;
        }
    block_argmax(mx, arg, sv, si);
    if (p.temperature <= 0.f || p.top_k == 1) {
        if (threadIdx.x == 0)
            tokens[blockIdx.x] = arg;
        return;
    }
    const float inv_t = 1.f / p.temperature;
    uint32_t floor_key = 0; /* keep values whose key >= floor_key */
    if (p.min_p > 0.f)
        floor_key = order_key(mx + p.temperature * logf(p.min_p));
    if (p.top_k > 0 && p.top_k < vocab) {
        const uint32_t k = search_threshold(row, vocab, 0, (float)p.top_k, false, mx, inv_t, sv);
        floor_key = max(floor_key, k);
    }
    if (p.top_p < 1.f) {
        float part = 0.f;
        for (int i = threadIdx.x; i < vocab; i += blockDim.x)
            if (order_key(row[i]) >= floor_key)
                part += __expf((row[i] - mx) * inv_t);
        const float total = block_sum(part, sv);
        floor_key = search_threshold(row, vocab, floor_key, p.top_p * total, true, mx, inv_t, sv);
    }
    const float floor_value = key_value(floor_key);
    float best = -INFINITY;
    int best_i = 0x7fffffff;
    for (int i = threadIdx.x; i < vocab; i += blockDim.x) {
        if (floor_key && row[i] < floor_value)
            continue;
        /* 23 bits, so that u = (bits + 1/2) / 2^23 is exact in float and
         * strictly inside (0, 1): a u rounded to 1 would score +inf */
        const uint64_t bits = fl_rng_at(p.rng_key, p.step * (uint64_t)vocab + (uint64_t)i) >> 41;
        const float u = ((float)bits + 0.5f) * (1.0f / 8388608.0f);
        const float score = (row[i] - mx) * inv_t - logf(-logf(u));
        if (score > best) {
            best = score;
            best_i = i;
        }
    }
    block_argmax(best, best_i, sv, si);
    if (threadIdx.x == 0)
        tokens[blockIdx.x] = best_i;
}

extern "C" int fl_cuda_sample(const float *logits, int num_rows, int vocab, const fl_cuda_sample_params *params,
                              int32_t *tokens, void *stream)
{
    if (num_rows > 0)
        sample_kernel<<<num_rows, SAMPLE_THREADS, 0, as_stream(stream)>>>(logits, vocab, params, tokens);
    return (int)cudaGetLastError();
}
