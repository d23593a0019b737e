/* model_kernels.cu - the decoder's element-wise, normalisation and sampling
 * kernels (see model_kernels.h). All are memory-bound: each reads its input
 * once; the per-head q/k work keeps a head in shared memory so that the norm
 * and the rotate-half pairing need no second read. */
#include "cuda/model_kernels.h"

#include "cuda/cuda_check.h"

#include <cuda_bf16.h>
#include <cuda_fp8.h>
#include <cuda_runtime.h>
#include <math.h>

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

__global__ void embed_kernel(const uint16_t *table, int first, int rows, const int32_t *ids, const int32_t *sampled,
                             float *x, int hidden, int vocab)
{
    int32_t id = ids[blockIdx.x];
    if (id < 0) {
        id = sampled[-1 - id];
        id = id < vocab ? id : 0; /* no draw: its sequence ends in error, the row is not read */
    }
    float *dst = x + (size_t)blockIdx.x * hidden;
    const bool here = id >= first && id - first < rows;
    const uint16_t *src = table + (size_t)(here ? id - first : 0) * hidden;
    for (int i = threadIdx.x; i < hidden; i += blockDim.x)
        dst[i] = here ? to_f(src[i]) : 0.f;
}

extern "C" int fl_cuda_embed(const uint16_t *table, int first, int rows, const int32_t *ids, const int32_t *sampled,
                             float *x, int num_tokens, int hidden, int vocab, void *stream)
{
    embed_kernel<<<num_tokens, 256, 0, as_stream(stream)>>>(table, first, rows, ids, sampled, x, hidden, vocab);
    return (int)cudaGetLastError();
}

__global__ void add_rows_kernel(float *x, const float *part, const float *bias, int hidden)
{
    float *row = x + (size_t)blockIdx.x * hidden;
    const float *p = part ? part + (size_t)blockIdx.x * hidden : NULL;
    for (int i = threadIdx.x; i < hidden; i += blockDim.x)
        row[i] += (p ? p[i] : 0.f) + (bias ? bias[i] : 0.f);
}

extern "C" int fl_cuda_add_rows(float *x, const float *part, const float *bias, int num_tokens, int hidden,
                                void *stream)
{
    add_rows_kernel<<<num_tokens, 256, 0, as_stream(stream)>>>(x, part, bias, hidden);
    return (int)cudaGetLastError();
}

typedef struct sum_inputs {
    const float *in[FL_CUDA_SUM_MAX];
} sum_inputs;

__global__ void sum_kernel(sum_inputs in, int num, float *out, size_t n)
{
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
        float s = in.in[0][i];
        for (int k = 1; k < num; k++)
            s += in.in[k][i];
        out[i] = s;
    }
}

extern "C" int fl_cuda_sum(const float *const *in, int num, float *out, size_t n, void *stream)
{
    if (num < 1 || num > FL_CUDA_SUM_MAX)
        return (int)cudaErrorInvalidValue;
    sum_inputs s;
    for (int k = 0; k < num; k++)
        s.in[k] = in[k];
    const size_t blocks = (n + 255) / 256;
    sum_kernel<<<(unsigned)(blocks < 1024 ? (blocks ? blocks : 1) : 1024), 256, 0, as_stream(stream)>>>(s, num, out, n);
    return (int)cudaGetLastError();
}

/* The row and the weight are read at once, 16 bytes a thread a load, into
 * shared memory (if they fit: `staged`); each thread then sums the same
 * elements in the same order as from global memory (t, t + blockDim, ...),
 * so the same bits either way, and writes 4 consecutive outputs a store
 * (element-wise: any thread may). Loads of 4 bytes ran at half of copy
 * speed on 8192-token prefills (docs/PERF.md). */
#define RMSNORM_STAGED_MAX 8192 /* floats of a staged row and of its weight: 64 KiB */

__global__ void rmsnorm_kernel(const float *x, const int32_t *rows, const float *weight, uint16_t *out, int hidden,
                               float eps, int staged)
{
    __shared__ float scratch[32];
    extern __shared__ float4 stage[];
    const float *row = x + (size_t)(rows ? rows[blockIdx.x] : blockIdx.x) * hidden;
    uint16_t *dst = out + (size_t)blockIdx.x * hidden;
    if (staged) {
        float4 *w4 = stage + hidden / 4;
        for (int i = threadIdx.x; i < hidden / 4; i += blockDim.x) {
            stage[i] = ((const float4 *)row)[i];
            w4[i] = ((const float4 *)weight)[i];
        }
        __syncthreads();
        const float *srow = (const float *)stage;
        float ss = 0.f;
        for (int i = threadIdx.x; i < hidden; i += blockDim.x)
            ss += srow[i] * srow[i];
        const float r = rsqrtf(block_sum(ss, scratch) / hidden + eps);
        for (int i = threadIdx.x; i < hidden / 4; i += blockDim.x) {
            const float4 v = stage[i], w = w4[i];
            uint2 o;
            o.x = (uint32_t)to_bf16(v.x * r * w.x) | (uint32_t)to_bf16(v.y * r * w.y) << 16;
            o.y = (uint32_t)to_bf16(v.z * r * w.z) | (uint32_t)to_bf16(v.w * r * w.w) << 16;
            ((uint2 *)dst)[i] = o;
        }
        return;
    }
    float ss = 0.f;
    for (int i = threadIdx.x; i < hidden; i += blockDim.x)
        ss += row[i] * row[i];
    const float r = rsqrtf(block_sum(ss, scratch) / hidden + eps);
    for (int i = threadIdx.x; i < hidden; i += blockDim.x)
        dst[i] = to_bf16(row[i] * r * weight[i]);
}

extern "C" int fl_cuda_rmsnorm(const float *x, const int32_t *rows, const float *weight, uint16_t *out,
                               int num_rows, int hidden, float eps, void *stream)
{
    static unsigned smem_set; /* above the default 48 KiB, once per GPU */
    if (fl_cuda_first_on_device(&smem_set)) {
        const cudaError_t e = cudaFuncSetAttribute(rmsnorm_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                                   2 * RMSNORM_STAGED_MAX * (int)sizeof(float));
        if (e != cudaSuccess)
            return (int)e;
        fl_cuda_mark_device(&smem_set);
    }
    /* 16-byte rows and weight (cudaMalloc'd buffers, hidden % 4 == 0) */
    const int staged = hidden % 4 == 0 && hidden <= RMSNORM_STAGED_MAX && (uintptr_t)weight % 16 == 0;
    rmsnorm_kernel<<<num_rows, 256, staged ? 2 * hidden * sizeof(float) : 0, as_stream(stream)>>>(
        x, rows, weight, out, hidden, eps, staged);
    return (int)cudaGetLastError();
}

/* ---- q/k norm, RoPE, KV-cache write ----
 * One CTA per (token, group of up to QKV_HEADS heads), a warp a head at a
 * time (groups of 8 heads, a head a warp, were slower on decode steps of
 * 256 tokens: each CTA stages the norms and the rope row). Every global
 * read of the CTA is issued at once, 16 bytes a thread a load where rows
 * allow it, into shared memory: the heads' bf16 row, the position's
 * cos/sin row and the two norm weights. Lane l holds the rotate-
 * half pairs (p, p + D/2) for p = l, l + 32, ... below D/2 in registers, so
 * a head needs no exchange between lanes but the norm's sum. One warp per
 * (token, head) reading its 256 bytes and then, one after another, the norm
 * weights and the rope row, through a shared row per warp, ran at a third
 * of copy speed on 8192-token prefills (docs/PERF.md). Where D % 64 == 0 a
 * lane's elements are l, l + 32, ... in order, as the sum's order was: the
 * same bits as that kernel. */

#define QKV_WARPS 8
#define QKV_HEADS 32
#define MAX_HEAD_DIM 256
#define QKV_PAIRS (MAX_HEAD_DIM / 64) /* pairs a lane at most */

/* Element i of a cache row: bf16, or e4m3 of v * inv_scale. */
static __device__ __forceinline__ void cache_store(void *row, int i, float v, int fp8, float inv_scale)
{
    if (fp8)
        ((__nv_fp8_storage_t *)row)[i] = __nv_cvt_float_to_fp8(v * inv_scale, __NV_SATFINITE, __NV_E4M3);
    else
        ((uint16_t *)row)[i] = to_bf16(v);
}

/* n bytes from src to dst by the CTA's threads, 16 a load when both are
 * 16-byte aligned and n a multiple of 16, else 4 (n is). */
static __device__ __forceinline__ void stage_bytes(void *dst, const void *src, int n)
{
    if (((uintptr_t)src | (uintptr_t)dst | (uintptr_t)n) % 16 == 0) {
        for (int i = threadIdx.x; i < n / 16; i += blockDim.x)
            ((uint4 *)dst)[i] = ((const uint4 *)src)[i];
    } else {
        for (int i = threadIdx.x; i < n / 4; i += blockDim.x)
            ((uint32_t *)dst)[i] = ((const uint32_t *)src)[i];
    }
}

/* Dynamic shared memory of a CTA: the heads' row (bf16, QKV_HEADS * D),
 * cos/sin (D floats), q_norm and k_norm (D floats each). */
static size_t qkv_smem_bytes(int D)
{
    return (size_t)QKV_HEADS * D * 2 + (size_t)3 * D * sizeof(float);
}

__global__ void __launch_bounds__(32 * QKV_WARPS) qkv_rope_cache_kernel(fl_cuda_qkv_args a)
{
    extern __shared__ float4 qkv_smem[];
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const int t = blockIdx.x, D = a.head_dim, half = D / 2, heads = a.num_heads + 2 * a.num_kv_heads;
    const int h0 = blockIdx.y * QKV_HEADS, nh = min(QKV_HEADS, heads - h0);
    uint16_t *row = (uint16_t *)qkv_smem;
    float *cs = (float *)(row + QKV_HEADS * D); /* cos[D/2], sin[D/2] */
    float *qn = cs + D, *kn = qn + D;
    const size_t slot = (size_t)a.slots[t];
    /* D * 4 bytes each, a multiple of 8 (D is even) */
    stage_bytes(row, a.qkv + ((size_t)t * heads + h0) * D, nh * D * 2);
    stage_bytes(cs, a.rope + (size_t)a.positions[t] * D, D * 4);
    if (a.q_norm)
        stage_bytes(qn, a.q_norm, D * 4);
    if (a.k_norm)
        stage_bytes(kn, a.k_norm, D * 4);
    __syncthreads();
    const size_t elem = a.kv_fp8 ? 1 : 2;
    for (int j = warp; j < nh; j += QKV_WARPS) {
        const int h = h0 + j;
        const uint16_t *src = row + (size_t)j * D;
        float lo[QKV_PAIRS], hi[QKV_PAIRS]; /* elements p and p + half, p = lane + 32 m */
#pragma unroll
        for (int m = 0; m < QKV_PAIRS; m++) {
            const int p = lane + 32 * m;
            if (p < half) {
                lo[m] = to_f(src[p]) + (a.bias ? a.bias[h * D + p] : 0.f);
                hi[m] = to_f(src[p + half]) + (a.bias ? a.bias[h * D + p + half] : 0.f);
            }
        }
        if (h >= a.num_heads + a.num_kv_heads) { /* v: straight to the cache */
            void *dst = (char *)a.v_cache + (slot * a.num_kv_heads + (h - a.num_heads - a.num_kv_heads)) * D * elem;
            const float inv = 1.f / a.v_scale;
#pragma unroll
            for (int m = 0; m < QKV_PAIRS; m++) {
                const int p = lane + 32 * m;
                if (p < half) {
                    cache_store(dst, p, lo[m], a.kv_fp8, inv);
                    cache_store(dst, p + half, hi[m], a.kv_fp8, inv);
                }
            }
            continue;
        }
        const bool is_q = h < a.num_heads;
        const float *norm = is_q ? (a.q_norm ? qn : NULL) : (a.k_norm ? kn : NULL);
        float scale = 1.f;
        if (norm) {
            float ss = 0.f;
#pragma unroll
            for (int m = 0; m < QKV_PAIRS; m++)
                if (lane + 32 * m < half)
                    ss += lo[m] * lo[m];
#pragma unroll
            for (int m = 0; m < QKV_PAIRS; m++)
                if (lane + 32 * m < half)
                    ss += hi[m] * hi[m];
            scale = rsqrtf(warp_sum(ss) / D + a.eps);
        }
        /* q is always bf16; k goes to the cache */
        void *dst = is_q ? (void *)(a.q_out + ((size_t)t * a.num_heads + h) * D)
                         : (char *)a.k_cache + (slot * a.num_kv_heads + (h - a.num_heads)) * D * elem;
        const int fp8 = !is_q && a.kv_fp8;
        const float inv = 1.f / a.k_scale;
#pragma unroll
        for (int m = 0; m < QKV_PAIRS; m++) {
            const int p = lane + 32 * m;
            if (p >= half)
                continue;
            float x0 = lo[m] * scale, x1 = hi[m] * scale;
            if (norm) {
                x0 *= norm[p];
                x1 *= norm[p + half];
            }
            const float c = cs[p], sn = cs[half + p];
            cache_store(dst, p, x0 * c - x1 * sn, fp8, inv);
            cache_store(dst, p + half, x1 * c + x0 * sn, fp8, inv);
        }
    }
}

extern "C" int fl_cuda_qkv_rope_cache(const fl_cuda_qkv_args *a, void *stream)
{
    if (a->head_dim > MAX_HEAD_DIM || a->head_dim % 2)
        return (int)cudaErrorInvalidValue;
    const int heads = a->num_heads + 2 * a->num_kv_heads;
    dim3 grid(a->num_tokens, (heads + QKV_HEADS - 1) / QKV_HEADS);
    qkv_rope_cache_kernel<<<grid, 32 * QKV_WARPS, qkv_smem_bytes(a->head_dim), as_stream(stream)>>>(*a);
    return (int)cudaGetLastError();
}

/* ---- SiLU x mul ---- */

static __device__ __forceinline__ uint16_t silu_mul(uint16_t gate, uint16_t up)
{
    const float x = to_f(gate);
    return to_bf16(x / (1.f + __expf(-x)) * to_f(up));
}

/* 16 bytes (8 elements) a thread a load where rows allow it: element-wise,
 * so the same bits either way; the loads of 2 bytes ran at a third of copy
 * speed on 8192-token prefills (docs/PERF.md). */
__global__ void silu_mul_kernel(const uint16_t *gate_up, uint16_t *out, int inter)
{
    const uint16_t *g = gate_up + (size_t)blockIdx.x * 2 * inter;
    uint16_t *o = out + (size_t)blockIdx.x * inter;
    if (inter % 8 == 0) { /* rows 16-byte aligned (the buffers are cudaMalloc's) */
        for (int i = 8 * threadIdx.x; i < inter; i += 8 * blockDim.x) {
            const uint4 gv = *(const uint4 *)(g + i), uv = *(const uint4 *)(g + inter + i);
            const uint16_t *ga = (const uint16_t *)&gv, *ua = (const uint16_t *)&uv;
            uint4 ov;
            uint16_t *oa = (uint16_t *)&ov;
#pragma unroll
            for (int j = 0; j < 8; j++)
                oa[j] = silu_mul(ga[j], ua[j]);
            *(uint4 *)(o + i) = ov;
        }
        return;
    }
    for (int i = threadIdx.x; i < inter; i += blockDim.x)
        o[i] = silu_mul(g[i], g[inter + i]);
}
extern "C" int fl_cuda_silu_mul(const uint16_t *gate_up, uint16_t *out, int num_tokens, int inter, void *stream)
{
    silu_mul_kernel<<<num_tokens, 256, 0, as_stream(stream)>>>(gate_up, out, inter);
    return (int)cudaGetLastError();
}

/* ---- structured output: the grammar's masks ----
 * Row rows[i]'s tokens whose bit is clear in masks[i] to -inf: a grid of
 * (rows, 16) CTAs, each thread a token at a time (the 32 threads of a warp
 * read one mask word). */
__global__ void mask_logits_kernel(float *logits, int vocab, const int32_t *rows, const uint32_t *masks, int words)
{
    float *row = logits + (size_t)rows[blockIdx.x] * vocab;
    const uint32_t *m = masks + (size_t)blockIdx.x * words;
    for (int t = blockIdx.y * blockDim.x + threadIdx.x; t < vocab; t += gridDim.y * blockDim.x)
        if (!(m[t >> 5] >> (t & 31) & 1u))
            row[t] = -INFINITY;
}

extern "C" int fl_cuda_mask_logits(float *logits, int num_rows, int vocab, const int32_t *rows, const uint32_t *masks,
                                   void *stream)
{
    if (num_rows > 0)
        mask_logits_kernel<<<dim3(num_rows, 16), 512, 0, as_stream(stream)>>>(logits, vocab, rows, masks,
                                                                              (vocab + 31) / 32);
    return (int)cudaGetLastError();
}

/* ---- sampling: one CTA per row, the draw of engine/sample_draw.h ----
 *
 * The host sampler's token, by other means over the same integer weights
 * (recomputed from the logits in each pass rather than stored: a row of
 * 152k weights does not fit on chip). Three selections of the same kind,
 * by radix, one histogram pass a digit: the top-k threshold (a count), the
 * top-p threshold and the drawn weight (masses); then the drawn weight's
 * tie of the drawn rank in index order, by a descent that splits the row
 * into one segment a warp, keeps the segment where the count passes the
 * rank, and splits again. A selection takes at most 1 + 3 passes (weights
 * are below 2^39: a coarse 11-bit key, then digits of 11 bits), the descent
 * a little over one, the max one: 6 passes for a row with temperature
 * only, 14 with top-k and top-p. */

#define SAMPLE_THREADS 1024
#define SAMPLE_WARPS (SAMPLE_THREADS / 32)
#define SAMPLE_BINS 2048 /* 2 a thread: 11-bit digits */
#define DIGIT_BITS 11
#define SAMPLE_KEPT_MAX 1024 /* tokens kept by top-k that the later passes read from shared memory */

typedef struct sample_smem {
    /* a bin's sum is hi * 2^32 + lo: shared atomics add 32 bits natively,
     * so the adds to lo that wrap carry into hi */
    uint32_t lo[SAMPLE_BINS], hi[SAMPLE_BINS];
    uint64_t part[SAMPLE_WARPS];
    float best_value[SAMPLE_WARPS];
    int best_index[SAMPLE_WARPS];
    uint64_t found_above; /* a selection's sum above the chosen bin; the descent's rank left */
    int found;
    /* the kept tokens after top-k: unordered as found, then in index order */
    int num_kept;
    uint64_t found_weight[SAMPLE_KEPT_MAX], kept_weight[SAMPLE_KEPT_MAX];
    int found_index[SAMPLE_KEPT_MAX], kept_index[SAMPLE_KEPT_MAX];
} sample_smem;

/* The block's largest value and its lowest index. */
static __device__ __forceinline__ void block_argmax(float &v, int &idx, float *sv, int *si)
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

static __device__ __forceinline__ uint64_t warp_inclusive_sum_u64(uint64_t v)
{
    const int lane = threadIdx.x & 31;
#pragma unroll
    for (int o = 1; o < 32; o <<= 1) {
        const uint64_t n = __shfl_up_sync(0xffffffff, v, o);
        if (lane >= o)
            v += n;
    }
    return v;
}

/* The sum of v over the threads before this one; *total: over all. */
static __device__ __forceinline__ uint64_t block_exclusive_sum_u64(uint64_t v, uint64_t *part, uint64_t *total)
{
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const uint64_t incl = warp_inclusive_sum_u64(v);
    __syncthreads(); /* part may still be read from the last call */
    if (lane == 31)
        part[warp] = incl;
    __syncthreads();
    /* every warp scans the warp totals: no third barrier */
    const uint64_t w = part[lane], w_incl = warp_inclusive_sum_u64(w);
    *total = __shfl_sync(0xffffffff, w_incl, 31);
    return __shfl_sync(0xffffffff, w_incl - w, warp) + incl - v;
}

/* A row and what its weights need: the logits x, or (x NULL) the weights
 * and token ids of the tokens kept so far, in index order. */
typedef struct row_weights {
    const float *x;
    const uint64_t *kept_weight;
    const int *kept_index;
    int n;
    float max, inv_t;
} row_weights;

static __device__ __forceinline__ uint64_t weight_at(const row_weights &r, int i)
{
    return r.x ? fl_draw_weight(r.x[i], r.max, r.inv_t) : r.kept_weight[i];
}

/* f(i, weight of token i) for each of r's tokens, each thread its own (in
 * increasing order); a row's logits 16 bytes a load when its length allows
 * (rows start 16-byte aligned then): with 4-byte loads a pass over a row of
 * 152k logits took ~6 us, the row's one CTA not keeping enough bytes in
 * flight. */
template <typename F>
static __device__ __forceinline__ void for_each_weight(const row_weights &r, F f)
{
    if (r.x && r.n % 4 == 0) {
        for (int j = threadIdx.x; j < r.n / 4; j += SAMPLE_THREADS) {
            const float4 v = ((const float4 *)r.x)[j];
            f(4 * j, fl_draw_weight(v.x, r.max, r.inv_t));
            f(4 * j + 1, fl_draw_weight(v.y, r.max, r.inv_t));
            f(4 * j + 2, fl_draw_weight(v.z, r.max, r.inv_t));
            f(4 * j + 3, fl_draw_weight(v.w, r.max, r.inv_t));
        }
        return;
    }
    for (int i = threadIdx.x; i < r.n; i += SAMPLE_THREADS)
        f(i, weight_at(r, i));
}

/* r's tokens of weight least or more, in index order, into shared memory,
 * and r reads them from there: the selections after top-k see the same
 * weights in the same order, so the same token, without reading the row
 * again (a row of 152k logits took ~6 us a pass; 2 waves of 256 rows).
 * False, and r as it was, if more than SAMPLE_KEPT_MAX (ties). */
static __device__ bool keep_at_least(row_weights &r, uint64_t least, sample_smem &sm)
{
    if (threadIdx.x == 0)
        sm.num_kept = 0;
    __syncthreads();
    for_each_weight(r, [&](int i, uint64_t w) {
        if (w >= least) {
            const int at = atomicAdd(&sm.num_kept, 1);
            if (at < SAMPLE_KEPT_MAX) {
                sm.found_weight[at] = w;
                sm.found_index[at] = i;
            }
        }
    });
    __syncthreads();
    const int n = sm.num_kept;
    if (n > SAMPLE_KEPT_MAX)
        return false;
    for (int j = threadIdx.x; j < n; j += SAMPLE_THREADS) { /* each one's place: the ids below it */
        const int id = sm.found_index[j];
        int place = 0;
        for (int q = 0; q < n; q++)
            place += sm.found_index[q] < id;
        sm.kept_weight[place] = sm.found_weight[j];
        sm.kept_index[place] = id;
    }
    __syncthreads();
    r.x = NULL;
    r.kept_weight = sm.kept_weight;
    r.kept_index = sm.kept_index;
    r.n = n;
    return true;
}

/* An order-keeping 11-bit key of a weight w in [1, 2^39): below 64, w; else
 * its top 6 bits and their shift (a float's exponent and 5 mantissa bits),
 * shift * 32 + (w >> shift), at most 33 * 32 + 63. Weights spread over it by
 * magnitude, so the first pass has no crowded bin for atomics to queue on
 * (w's own top bits would put most of a row into bin 0). */
static __device__ __forceinline__ int coarse_key(uint64_t w)
{
    const int top = 63 - __clzll((long long)w), shift = top > 5 ? top - 5 : 0;
    return shift * 32 + (int)(w >> shift);
}

static __device__ __forceinline__ void bin_add(sample_smem &sm, int bin, uint64_t v)
{
    const uint32_t low = (uint32_t)v, old = atomicAdd(&sm.lo[bin], low);
    const uint32_t high = (uint32_t)(v >> 32) + (old + low < old ? 1u : 0u);
    if (high)
        atomicAdd(&sm.hi[bin], high);
}

static __device__ __forceinline__ uint64_t bin_sum(const sample_smem &sm, int bin)
{
    return (uint64_t)sm.hi[bin] << 32 | sm.lo[bin];
}

typedef enum { SELECT_TOP_K, SELECT_TOP_P, SELECT_DRAW } select_goal;

/* The largest weight t >= least at which F(t), the sum of g(w) over the
 * row's weights w >= t, reaches a target set by F(least), the total: for
 * top-k g(w) = 1 and the target top_k (least itself when the total is
 * below it: no more tokens kept than k); for top-p g(w) = w and the top-p
 * target of the kept mass; for the draw g(w) = w and the target one more
 * than the draw's point in the kept mass (*point), so t is the weight whose
 * group of ties holds the point. *above: F over the weights above t.
 * Each pass histograms F over the next digit of the weights that share the
 * digits chosen so far; going down from the top bin, the bin where the sum
 * reaches the target is chosen. The first pass's digit is the coarse key,
 * whose bin fixes the top bits and the shift below them. */
static __device__ __forceinline__ uint64_t select_weight(const row_weights &r, uint64_t least, const fl_draw &d,
                                                         select_goal goal, uint64_t *above_out, uint64_t *point,
                                                         sample_smem &sm)
{
    const bool mass = goal != SELECT_TOP_K;
    const int top_bin = SAMPLE_BINS - 1 - 2 * (int)threadIdx.x; /* thread 0: the two highest */
    int shift = -1; /* the first pass; then the bits below the chosen prefix */
    uint64_t prefix = 0, target = 0, above = 0;
    do {
        const int bits = shift < 0 ? DIGIT_BITS : min(shift, DIGIT_BITS);
        sm.lo[top_bin] = sm.lo[top_bin - 1] = sm.hi[top_bin] = sm.hi[top_bin - 1] = 0;
        __syncthreads();
        for_each_weight(r, [&](int, uint64_t w) {
            if (w < least)
                return;
            if (shift < 0)
                bin_add(sm, coarse_key(w), mass ? w : 1);
            else if ((w >> shift) == prefix)
                bin_add(sm, (int)((w >> (shift - bits)) & ((1u << bits) - 1)), mass ? w : 1);
        });
        __syncthreads();
        const uint64_t a = bin_sum(sm, top_bin), b = bin_sum(sm, top_bin - 1);
        uint64_t total;
        const uint64_t before = block_exclusive_sum_u64(a + b, sm.part, &total);
        if (shift < 0) {
            if (goal == SELECT_TOP_K) {
                target = (uint64_t)d.params.top_k;
                if (total < target)
                    return least;
            } else if (goal == SELECT_TOP_P) {
                target = fl_draw_top_p_target(d.params.top_p, total);
            } else {
                *point = fl_draw_point(&d, total); /* < total */
                target = *point + 1;
            }
        }
        const uint64_t need = target - above; /* in [1, this pass's total]: one bin holds it */
        if (before < need && need <= before + a) {
            sm.found = top_bin;
            sm.found_above = above + before;
        } else if (before + a < need && need <= before + a + b) {
            sm.found = top_bin - 1;
            sm.found_above = above + before + a;
        }
        __syncthreads();
        const int found = sm.found;
        above = sm.found_above;
        if (shift < 0) {
            shift = found < 64 ? 0 : found / 32 - 1;
            prefix = (uint64_t)(found - 32 * shift);
        } else {
            shift -= bits;
            prefix = prefix << bits | (uint64_t)found;
        }
    } while (shift > 0);
    *above_out = above;
    return prefix;
}

/* The index of the token of weight value with rank tokens of that weight
 * before it, found by narrowing [lo, lo + n) to the warp segment where the
 * count of such tokens passes the rank until one token is left. */
static __device__ __forceinline__ int find_tie(const row_weights &r, uint64_t value, uint64_t rank, sample_smem &sm)
{
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    int lo = 0, n = r.n;
    while (n > 1) {
        const int piece = (n + SAMPLE_WARPS - 1) / SAMPLE_WARPS;
        const int start = lo + warp * piece, end = min(lo + n, start + piece);
        int count = 0;
        for (int i = start + lane; i < end; i += 32)
            count += weight_at(r, i) == value;
        count = __reduce_add_sync(0xffffffff, count);
        __syncthreads(); /* the last round's reads of part and found are done */
        if (lane == 0)
            sm.part[warp] = (uint64_t)count;
        __syncthreads();
        if (threadIdx.x == 0) { /* the rank is below the segments' count: one passes it */
            int k = 0;
            while (sm.part[k] <= rank)
                rank -= sm.part[k++];
            sm.found = k;
            sm.found_above = rank;
        }
        __syncthreads();
        const int k = sm.found;
        rank = sm.found_above;
        lo += k * piece;
        n = min(piece, n - k * piece);
    }
    return lo;
}

/* One CTA an SM, so up to 64 registers a thread: the weight's float steps
 * beside the 64-bit sums need more than the 32 of two CTAs (ptxas spilled). */
__global__ void __launch_bounds__(SAMPLE_THREADS, 1) sample_kernel(const float *logits, int vocab, const fl_draw *draws,
                                                              int32_t *tokens)
{
    __shared__ sample_smem sm;
    const fl_draw d = draws[blockIdx.x];
    row_weights r = { logits + (size_t)blockIdx.x * vocab, NULL, NULL, vocab, -INFINITY, 0.f };
    int arg = 0x7fffffff;
    const auto take = [&](float v, int i) {
        if (v > r.max) { /* NaN never wins; each thread's indices increase: the first of ties */
            r.max = v;
            arg = i;
        }
    };
    if (vocab % 4 == 0) { /* 16 bytes a load, as for_each_weight */
        for (int j = threadIdx.x; j < vocab / 4; j += blockDim.x) {
            const float4 v = ((const float4 *)r.x)[j];
            take(v.x, 4 * j);
            take(v.y, 4 * j + 1);
            take(v.z, 4 * j + 2);
            take(v.w, 4 * j + 3);
        }
    } else {
        for (int i = threadIdx.x; i < vocab; i += blockDim.x)
            take(r.x[i], i);
    }
    block_argmax(r.max, arg, sm.best_value, sm.best_index);
    if (!isfinite(r.max)) { /* nothing to draw: fl_sample's -1 */
        if (threadIdx.x == 0)
            tokens[blockIdx.x] = vocab;
        return;
    }
    if (fl_draw_is_greedy(&d.params)) {
        if (threadIdx.x == 0)
            tokens[blockIdx.x] = arg;
        return;
    }
    r.inv_t = fl_draw_inv_temperature(d.params.temperature);
    uint64_t least = fl_draw_min_weight(d.params.min_p), above, point;
    if (d.params.top_k > 0 && d.params.top_k < vocab) {
        least = select_weight(r, least, d, SELECT_TOP_K, &above, &point, sm);
        if (d.params.top_k <= SAMPLE_KEPT_MAX)
            keep_at_least(r, least, sm);
    }
    if (d.params.top_p < 1.0f)
        least = select_weight(r, least, d, SELECT_TOP_P, &above, &point, sm);
    const uint64_t value = select_weight(r, least, d, SELECT_DRAW, &above, &point, sm);
    const int at = find_tie(r, value, (point - above) / value, sm), token = r.x ? at : r.kept_index[at];
    if (threadIdx.x == 0)
        tokens[blockIdx.x] = token;
}

extern "C" int fl_cuda_sample(const float *logits, int num_rows, int vocab, const fl_draw *draws, int32_t *tokens,
                              void *stream)
{
    if (vocab > FL_DRAW_MAX_VOCAB)
        return (int)cudaErrorInvalidValue;
    if (num_rows > 0)
        sample_kernel<<<num_rows, SAMPLE_THREADS, 0, as_stream(stream)>>>(logits, vocab, draws, tokens);
    return (int)cudaGetLastError();
}
