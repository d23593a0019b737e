/* model_kernels.cu - the decoder's element-wise, normalisation and sampling
 * kernels (see model_kernels.h). All are memory-bound: each reads its input
 * once; the per-head q/k work keeps a head in shared memory so that the norm
 * and the rotate-half pairing need no second read. */
#include "cuda/model_kernels.h"

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

__global__ void embed_kernel(const uint16_t *table, const int32_t *ids, const int32_t *sampled, float *x,
                             int hidden, int vocab)
{
    int32_t id = ids[blockIdx.x];
    if (id < 0) {
        id = sampled[-1 - id];
        id = id < vocab ? id : 0; /* no draw: its sequence ends in error, the row is not read */
    }
    const uint16_t *src = table + (size_t)id * hidden;
    float *dst = x + (size_t)blockIdx.x * hidden;
    for (int i = threadIdx.x; i < hidden; i += blockDim.x)
        dst[i] = to_f(src[i]);
}

extern "C" int fl_cuda_embed(const uint16_t *table, const int32_t *ids, const int32_t *sampled, float *x,
                             int num_tokens, int hidden, int vocab, void *stream)
{
    embed_kernel<<<num_tokens, 256, 0, as_stream(stream)>>>(table, ids, sampled, x, hidden, vocab);
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

/* The row is read once, 16 bytes a thread a load, into shared memory (if
 * it fits: `staged`); each thread then sums the same elements in the same
 * order as from global memory, so the same bits either way. Loads of 4
 * bytes ran at half of copy speed on 8192-token prefills (docs/PERF.md). */
#define RMSNORM_STAGED_MAX 8192 /* floats of a staged row: 32 KiB */

__global__ void rmsnorm_kernel(const float *x, const int32_t *rows, const float *weight, uint16_t *out, int hidden,
                               float eps, int staged)
{
    __shared__ float scratch[32];
    extern __shared__ float4 stage[];
    const float *row = x + (size_t)(rows ? rows[blockIdx.x] : blockIdx.x) * hidden;
    if (staged) {
        for (int i = threadIdx.x; i < hidden / 4; i += blockDim.x)
            stage[i] = ((const float4 *)row)[i];
        __syncthreads();
        row = (const float *)stage;
    }
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
    const int staged = hidden % 4 == 0 && hidden <= RMSNORM_STAGED_MAX;
    rmsnorm_kernel<<<num_rows, 256, staged ? hidden * sizeof(float) : 0, as_stream(stream)>>>(x, rows, weight, out,
                                                                                               hidden, eps, staged);
    return (int)cudaGetLastError();
}

/* ---- q/k norm, RoPE, KV-cache write: one warp per (token, head) ---- */

#define QKV_WARPS 4
#define MAX_HEAD_DIM 256

/* Element i of a cache row: bf16, or e4m3 of v * inv_scale. */
static __device__ __forceinline__ void cache_store(void *row, int i, float v, int fp8, float inv_scale)
{
    if (fp8)
        ((__nv_fp8_storage_t *)row)[i] = __nv_cvt_float_to_fp8(v * inv_scale, __NV_SATFINITE, __NV_E4M3);
    else
        ((uint16_t *)row)[i] = to_bf16(v);
}

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
    if (D % 4 == 0) { /* 8 bytes a lane a load (rows 8-byte aligned); the same values */
        for (int i = 4 * lane; i < D; i += 128) {
            const uint2 v = *(const uint2 *)(src + i);
            const uint16_t *e = (const uint16_t *)&v;
#pragma unroll
            for (int j = 0; j < 4; j++)
                s[i + j] = to_f(e[j]) + (a.bias ? a.bias[h * D + i + j] : 0.f);
        }
    } else {
        for (int i = lane; i < D; i += 32)
            s[i] = to_f(src[i]) + (a.bias ? a.bias[h * D + i] : 0.f);
    }
    __syncwarp(); /* lanes read each other's elements from here on */
    const size_t slot = (size_t)a.slots[t];
    const size_t elem = a.kv_fp8 ? 1 : 2;
    if (h >= a.num_heads + a.num_kv_heads) { /* v: straight to the cache */
        void *dst = (char *)a.v_cache + (slot * a.num_kv_heads + (h - a.num_heads - a.num_kv_heads)) * D * elem;
        const float inv = 1.f / a.v_scale;
        for (int i = lane; i < D; i += 32)
            cache_store(dst, i, s[i], a.kv_fp8, inv);
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
    /* q is always bf16; k goes to the cache */
    void *dst = is_q ? (void *)(a.q_out + ((size_t)t * a.num_heads + h) * D)
                     : (char *)a.k_cache + (slot * a.num_kv_heads + (h - a.num_heads)) * D * elem;
    const int fp8 = !is_q && a.kv_fp8;
    const float inv = 1.f / a.k_scale;
    for (int i = lane; i < half; i += 32) {
        float x0 = s[i] * scale, x1 = s[i + half] * scale;
        if (norm) {
            x0 *= norm[i];
            x1 *= norm[i + half];
        }
        const float c = cs[i], sn = cs[half + i];
        cache_store(dst, i, x0 * c - x1 * sn, fp8, inv);
        cache_store(dst, i + half, x1 * c + x0 * sn, fp8, inv);
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

typedef struct sample_smem {
    /* a bin's sum is hi * 2^32 + lo: shared atomics add 32 bits natively,
     * so the adds to lo that wrap carry into hi */
    uint32_t lo[SAMPLE_BINS], hi[SAMPLE_BINS];
    uint64_t part[SAMPLE_WARPS];
    float best_value[SAMPLE_WARPS];
    int best_index[SAMPLE_WARPS];
    uint64_t found_above; /* a selection's sum above the chosen bin; the descent's rank left */
    int found;
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

/* A row and what its weights need. */
typedef struct row_weights {
    const float *x;
    int n;
    float max, inv_t;
} row_weights;

static __device__ __forceinline__ uint64_t weight_at(const row_weights &r, int i)
{
    return fl_draw_weight(r.x[i], r.max, r.inv_t);
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
        for (int i = threadIdx.x; i < r.n; i += SAMPLE_THREADS) {
            const uint64_t w = weight_at(r, i);
            if (w < least)
                continue;
            if (shift < 0)
                bin_add(sm, coarse_key(w), mass ? w : 1);
            else if ((w >> shift) == prefix)
                bin_add(sm, (int)((w >> (shift - bits)) & ((1u << bits) - 1)), mass ? w : 1);
        }
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
    row_weights r = { logits + (size_t)blockIdx.x * vocab, vocab, -INFINITY, 0.f };
    int arg = 0x7fffffff;
    for (int i = threadIdx.x; i < vocab; i += blockDim.x)
        if (r.x[i] > r.max) { /* NaN never wins */
            r.max = r.x[i];
            arg = i;
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
    if (d.params.top_k > 0 && d.params.top_k < vocab)
        least = select_weight(r, least, d, SELECT_TOP_K, &above, &point, sm);
    if (d.params.top_p < 1.0f)
        least = select_weight(r, least, d, SELECT_TOP_P, &above, &point, sm);
    const uint64_t value = select_weight(r, least, d, SELECT_DRAW, &above, &point, sm);
    const int token = find_tie(r, value, (point - above) / value, sm);
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
