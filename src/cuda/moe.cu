/* moe.cu - gpt-oss's routed experts (see moe.h).
 *
 * The grouped GEMM: a CTA computes one 128 x 128 tile of one expert's
 * output, from a 128-row tile of the expert's group of (token, slot) pairs;
 * the tile list (built on the device by the permutation kernel) has at
 * most ceil(pairs / 128) + E entries, so the grid is fixed by the step's
 * token count and the CTAs past the list's end exit at once. Eight warps in
 * a 2 x 4 grid take 64 x 32 each, mma.sync m16n8k16 (bf16, float32
 * accumulators), through a three-stage cp.async ring of 64-deep K slices.
 * A tile's rows past its group's end are zeros that are never loaded, and
 * the warps whose rows are all such skip their MMAs: at decode an expert
 * has a few rows and the weights' bytes are the cost, read once per
 * (expert, column tile). Shared memory is swizzled in 16-byte chunks
 * (chunk c of row r at c ^ (r % 8) within its 128 bytes), so ldmatrix's
 * eight row reads hit eight bank groups. */
#include "cuda/moe.h"

#include <cuda_bf16.h>
#include <cuda_runtime.h>
#include <math.h>

#include "cuda/mma_sync.cuh"

typedef __nv_bfloat16 bf16;

#define BM 128
#define BN 128
#define BK 64
#define STAGES 3
#define THREADS 256
#define TILE_A_ELEMS (BM * BK)
#define TILE_B_ELEMS (BK * BN)
#define SMEM_BYTES (STAGES * (TILE_A_ELEMS + TILE_B_ELEMS) * 2)

/* ---- the workspace ---- */

typedef struct workspace {
    float *logits;        /* [T, E] the router's, bias not added */
    int32_t *counts;      /* [E] pairs per expert; zero between calls */
    int32_t *start;       /* [E + 1] first row of each expert's group */
    int32_t *num_tiles;   /* [1] */
    int32_t *tile_expert; /* [max_tiles] */
    int32_t *tile_row;    /* [max_tiles] first row of the tile in its group */
    int32_t *pair_expert; /* [P] pair p = token * top_k + slot */
    int32_t *pair_rank;   /* [P] its place in its expert's group */
    int32_t *pair_row;    /* [P] its row in the grouped order */
    int32_t *row_token;   /* [P] the token of each grouped row */
    int32_t *row_pair;    /* [P] the pair of each grouped row */
    float *pair_weight;   /* [P] its router weight */
    bf16 *act;            /* [P, ff] the SwiGLU output of each grouped row */
    float *out;           /* [P, hidden] each grouped row's expert output, weighted */
} workspace;

static int max_tiles(int pairs, int num_experts)
{
    return (pairs + BM - 1) / BM + num_experts;
}

static size_t align256(size_t n)
{
    return (n + 255) & ~(size_t)255;
}

/* Carves the workspace at base (NULL: sizes only); returns its bytes. */
static size_t carve(workspace *w, char *base, const fl_cuda_moe_shape *s, int max_tokens)
{
    const size_t P = (size_t)max_tokens * s->top_k, E = (size_t)s->num_experts;
    const size_t tiles = (size_t)max_tiles((int)P, s->num_experts);
    size_t at = 0;
#define TAKE(field, type, n)                                                                                  \
    do {                                                                                                      \
        w->field = (type *)(base ? base + at : NULL);                                                         \
        at = align256(at + (n) * sizeof(type));                                                               \
    } while (0)
    TAKE(logits, float, (size_t)max_tokens * E);
    TAKE(counts, int32_t, E);
    TAKE(start, int32_t, E + 1);
    TAKE(num_tiles, int32_t, 1);
    TAKE(tile_expert, int32_t, tiles);
    TAKE(tile_row, int32_t, tiles);
    TAKE(pair_expert, int32_t, P);
    TAKE(pair_rank, int32_t, P);
    TAKE(pair_row, int32_t, P);
    TAKE(row_token, int32_t, P);
    TAKE(row_pair, int32_t, P);
    TAKE(pair_weight, float, P);
    TAKE(act, bf16, P * s->ff);
    TAKE(out, float, P * s->hidden);
#undef TAKE
    return at;
}

/* ---- routing and permutation ---- */

#define ROUTER_TOKENS 4 /* tokens a CTA: each router row read from L2 serves four */

/* The router's logits of ROUTER_TOKENS tokens a CTA, float32 throughout:
 * the CTA norms the tokens' residual rows into shared memory (RMSNorm as
 * the CPU runner: sum of squares, x * rsqrt(mean + eps) * weight), then
 * warp w takes experts w, w + 8, ...: each lane sums a strided share of
 * the features for the four tokens, and the warp adds the lanes' sums in a
 * fixed tree. */
__global__ void __launch_bounds__(THREADS) router_kernel(const float *x, const float *norm_weight, float eps,
                                                         const float *router, int num_tokens, int H, int E,
                                                         workspace w)
{
    extern __shared__ float xn[]; /* [ROUTER_TOKENS][H] */
    __shared__ float partial[THREADS / 32];
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, t0 = blockIdx.x * ROUTER_TOKENS;
    const int tokens = min(ROUTER_TOKENS, num_tokens - t0);
    for (int q = 0; q < ROUTER_TOKENS; q++) {
        const float *row = x + (size_t)(t0 + q) * H;
        float ss = 0.f;
        if (q < tokens)
            for (int i = threadIdx.x; i < H; i += THREADS)
                ss += row[i] * row[i];
#pragma unroll
        for (int o = 16; o > 0; o >>= 1)
            ss += __shfl_xor_sync(0xffffffff, ss, o);
        if (lane == 0)
            partial[warp] = ss;
        __syncthreads();
        ss = 0.f;
#pragma unroll
        for (int i = 0; i < THREADS / 32; i++)
            ss += partial[i];
        const float inv = rsqrtf(ss / H + eps);
        for (int i = threadIdx.x; i < H; i += THREADS)
            xn[q * H + i] = q < tokens ? row[i] * inv * norm_weight[i] : 0.f;
        __syncthreads(); /* partial is reused */
    }
    for (int e = warp; e < E; e += THREADS / 32) {
        const float *wr = router + (size_t)e * H;
        float acc[ROUTER_TOKENS] = {};
#pragma unroll 4
        for (int i = lane; i < H; i += 32) {
            const float wv = wr[i];
#pragma unroll
            for (int q = 0; q < ROUTER_TOKENS; q++)
                acc[q] = fmaf(xn[q * H + i], wv, acc[q]);
        }
#pragma unroll
        for (int q = 0; q < ROUTER_TOKENS; q++) {
#pragma unroll
            for (int o = 16; o > 0; o >>= 1)
                acc[q] += __shfl_xor_sync(0xffffffff, acc[q], o);
            if (lane == 0 && q < tokens)
                w.logits[(size_t)(t0 + q) * E + e] = acc[q];
        }
    }
}

/* One warp per token: the top_k largest biased logits (ties to the lower
 * expert, as the CPU runner and torch.topk's order), softmaxed among
 * themselves; each pair takes its place in its expert's group. */
__global__ void route_kernel(const float *bias, int num_tokens, int E, int k, workspace w)
{
    const int lane = threadIdx.x & 31, t = blockIdx.x * (THREADS / 32) + (threadIdx.x >> 5);
    if (t >= num_tokens)
        return;
    float v[FL_CUDA_MOE_MAX_EXPERTS / 32];
#pragma unroll
    for (int j = 0; j < FL_CUDA_MOE_MAX_EXPERTS / 32; j++) {
        const int e = lane + 32 * j;
        v[j] = e < E ? w.logits[(size_t)t * E + e] + bias[e] : 0.f;
    }
    uint32_t taken = 0; /* bit j: expert lane + 32 j is chosen */
    int my_e = -1;
    float my_v = 0.f;
    for (int s = 0; s < k; s++) {
        int best = -1;
        float best_v = 0.f;
#pragma unroll
        for (int j = 0; j < FL_CUDA_MOE_MAX_EXPERTS / 32; j++) {
            const int e = lane + 32 * j;
            if (e < E && !(taken >> j & 1) && (best < 0 || v[j] > best_v)) {
                best = e;
                best_v = v[j];
            }
        }
#pragma unroll
        for (int o = 16; o > 0; o >>= 1) {
            const int oe = __shfl_xor_sync(0xffffffff, best, o);
            const float ov = __shfl_xor_sync(0xffffffff, best_v, o);
            if (oe >= 0 && (best < 0 || ov > best_v || (ov == best_v && oe < best))) {
                best = oe;
                best_v = ov;
            }
        }
        if ((best & 31) == lane)
            taken |= 1u << (best >> 5);
        if (lane == s) {
            my_e = best;
            my_v = best_v;
        }
    }
    const float top = __shfl_sync(0xffffffff, my_v, 0);
    float ex = lane < k ? expf(my_v - top) : 0.f;
    float sum = ex;
#pragma unroll
    for (int o = 16; o > 0; o >>= 1)
        sum += __shfl_xor_sync(0xffffffff, sum, o);
    if (lane < k) {
        const size_t p = (size_t)t * k + lane;
        w.pair_expert[p] = my_e;
        w.pair_weight[p] = ex / sum;
        w.pair_rank[p] = atomicAdd(&w.counts[my_e], 1);
    }
}

/* One CTA: each expert's group start and its tiles (warp 0, 32 experts at
 * a time), then every pair's grouped row. Leaves the counts zero. */
__global__ void permute_kernel(int num_pairs, int E, int k, workspace w)
{
    __shared__ int32_t start[FL_CUDA_MOE_MAX_EXPERTS + 1];
    const int lane = threadIdx.x & 31;
    if (threadIdx.x < 32) {
        int rows_before = 0, tiles_before = 0;
        for (int e0 = 0; e0 < E; e0 += 32) {
            const int e = e0 + lane;
            const int count = e < E ? w.counts[e] : 0, tiles = (count + BM - 1) / BM;
            int rows_incl = count, tiles_incl = tiles;
#pragma unroll
            for (int o = 1; o < 32; o <<= 1) {
                const int r = __shfl_up_sync(0xffffffff, rows_incl, o), q = __shfl_up_sync(0xffffffff, tiles_incl, o);
                if (lane >= o) {
                    rows_incl += r;
                    tiles_incl += q;
                }
            }
            if (e < E) {
                start[e] = rows_before + rows_incl - count;
                const int first_tile = tiles_before + tiles_incl - tiles;
                for (int i = 0; i < tiles; i++) {
                    w.tile_expert[first_tile + i] = e;
                    w.tile_row[first_tile + i] = i * BM;
                }
                w.counts[e] = 0;
            }
            rows_before += __shfl_sync(0xffffffff, rows_incl, 31);
            tiles_before += __shfl_sync(0xffffffff, tiles_incl, 31);
        }
        if (lane == 0) {
            start[E] = rows_before;
            *w.num_tiles = tiles_before;
        }
    }
    __syncthreads();
    for (int i = threadIdx.x; i <= E; i += blockDim.x)
        w.start[i] = start[i];
    for (int p = threadIdx.x; p < num_pairs; p += blockDim.x) {
        const int row = start[w.pair_expert[p]] + w.pair_rank[p];
        w.pair_row[p] = row;
        w.row_token[row] = p / k;
        w.row_pair[row] = p;
    }
}

/* ---- the grouped GEMM ---- */

struct gemm_params {
    const bf16 *a;         /* GATE_UP: x (T, K), rows gathered by token; else act (P, K) */
    const bf16 *w;         /* (E, K, N) */
    const float *bias;     /* (E, N); NULL: none */
    int K, N;
    workspace ws;
    float alpha, limit;    /* the clamped SwiGLU (GATE_UP) */
};

/* Where 16-byte chunk c of row r of a tile with 128-byte-or-wider rows
 * lies, in bytes, rows of row_bytes. */
__device__ __forceinline__ uint32_t swizzled(int r, int c, int row_bytes)
{
    return r * row_bytes + (((c & ~7) | ((c & 7) ^ (r & 7))) << 4);
}

/* gpt-oss's clamped SwiGLU; NaN passes the clamps, as in torch. */
__device__ __forceinline__ float clamped_swiglu(float g, float u, float alpha, float limit)
{
    g = g > limit ? limit : g;
    u = u > limit ? limit : u < -limit ? -limit : u;
    return g / (1.f + expf(-alpha * g)) * (u + 1.f);
}

/* Issues this thread's copies of K slice kt into ring stage `stage`: A
 * rows tid / 8 + 32 j at chunk tid % 8 (a_row[j]: NULL past the group), B
 * rows (of K) tid / 16 + 16 j at chunk tid % 16; zeros past K and N. */
__device__ __forceinline__ void load_stage(const gemm_params &p, const bf16 *const a_row[4], const bf16 *w,
                                           uint32_t base, int stage, int kt)
{
    const int tid = threadIdx.x, a_chunk = tid % 8, b_chunk = tid % 16, b_n = blockIdx.y * BN + b_chunk * 8;
    const uint32_t a_tile = base + stage * TILE_A_ELEMS * 2;
    const uint32_t b_tile = base + (STAGES * TILE_A_ELEMS + stage * TILE_B_ELEMS) * 2;
    const int ka = kt * BK + a_chunk * 8;
#pragma unroll
    for (int j = 0; j < 4; j++) {
        const bool ok = a_row[j] && ka < p.K;
        cp_async16(a_tile + swizzled(tid / 8 + 32 * j, a_chunk, BK * 2), ok ? a_row[j] + ka : p.a, ok ? 16 : 0);
    }
#pragma unroll
    for (int j = 0; j < 4; j++) {
        const int r = tid / 16 + 16 * j, kb = kt * BK + r;
        const bool ok = kb < p.K && b_n < p.N;
        cp_async16(b_tile + swizzled(r, b_chunk, BN * 2), ok ? w + (size_t)kb * p.N + b_n : p.w, ok ? 16 : 0);
    }
}

template <bool GATE_UP>
__global__ void __launch_bounds__(THREADS) grouped_gemm_kernel(gemm_params p)
{
    const int tile = blockIdx.x;
    if (tile >= *p.ws.num_tiles)
        return;
    extern __shared__ __align__(128) char smem[];
    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
    const int e = p.ws.tile_expert[tile];
    const int row0 = p.ws.start[e] + p.ws.tile_row[tile];
    const int rows = min(BM, p.ws.start[e + 1] - row0);
    const int n0 = blockIdx.y * BN, K = p.K, N = p.N;
    const bf16 *w = p.w + (size_t)e * K * N;

    const bf16 *a_row[4]; /* this thread's A rows (load_stage) */
#pragma unroll
    for (int j = 0; j < 4; j++) {
        const int r = tid / 8 + 32 * j;
        a_row[j] = r >= rows ? NULL
                   : GATE_UP ? p.a + (size_t)p.ws.row_token[row0 + r] * K
                             : p.a + (size_t)(row0 + r) * K;
    }
    const uint32_t base = smem_addr(smem);
    const int warp_m = warp >> 2, warp_n = warp & 3;
    /* 16-row slices of this warp that hold rows of the group */
    const int live_mt = min(4, max(0, (rows - warp_m * 64 + 15) / 16));
    float acc[4][4][4];
#pragma unroll
    for (int mt = 0; mt < 4; mt++)
#pragma unroll
        for (int nt = 0; nt < 4; nt++)
            acc[mt][nt][0] = acc[mt][nt][1] = acc[mt][nt][2] = acc[mt][nt][3] = 0.f;

    const int KT = (K + BK - 1) / BK;
#pragma unroll
    for (int s = 0; s < STAGES - 1; s++) {
        if (s < KT)
            load_stage(p, a_row, w, base, s, s);
        cp_async_commit();
    }
    for (int kt = 0; kt < KT; kt++) {
        cp_async_wait<STAGES - 2>();
        __syncthreads(); /* tile kt is in; every warp is done with the stage refilled next */
        if (kt + STAGES - 1 < KT)
            load_stage(p, a_row, w, base, (kt + STAGES - 1) % STAGES, kt + STAGES - 1);
        cp_async_commit();
        if (live_mt == 0)
            continue;
        const int stage = kt % STAGES;
        const uint32_t a_tile = base + stage * TILE_A_ELEMS * 2;
        const uint32_t b_tile = base + (STAGES * TILE_A_ELEMS + stage * TILE_B_ELEMS) * 2;
#pragma unroll
        for (int kk = 0; kk < BK / 16; kk++) {
            uint32_t a[4][4], b[4][2];
#pragma unroll
            for (int mt = 0; mt < 4; mt++)
                if (mt < live_mt) {
                    const int r = warp_m * 64 + mt * 16 + (lane & 15);
                    ldmatrix_x4(a[mt], a_tile + swizzled(r, kk * 2 + (lane >> 4), BK * 2));
                }
#pragma unroll
            for (int np = 0; np < 2; np++) {
                const int j = lane >> 3, r = kk * 16 + (j & 1) * 8 + (lane & 7);
                uint32_t f[4];
                ldmatrix_x4_trans(f, b_tile + swizzled(r, warp_n * 4 + np * 2 + (j >> 1), BN * 2));
                b[2 * np][0] = f[0];
                b[2 * np][1] = f[1];
                b[2 * np + 1][0] = f[2];
                b[2 * np + 1][1] = f[3];
            }
#pragma unroll
            for (int mt = 0; mt < 4; mt++)
                if (mt < live_mt)
#pragma unroll
                    for (int nt = 0; nt < 4; nt++)
                        mma_bf16(acc[mt][nt], a[mt], b[nt][0], b[nt][1]);
        }
    }
    cp_async_wait<0>();

    /* the epilogue: this thread holds rows lane / 4 (+ 8) and the column
     * pair 2 (lane % 4) of each 8-wide tile: a gate and its up */
    const float *bias = p.bias ? p.bias + (size_t)e * N : NULL;
#pragma unroll
    for (int mt = 0; mt < 4; mt++)
#pragma unroll
        for (int h = 0; h < 2; h++) {
            const int r = warp_m * 64 + mt * 16 + (lane >> 2) + 8 * h;
            if (r >= rows)
                continue;
            const int row = row0 + r;
#pragma unroll
            for (int nt = 0; nt < 4; nt++) {
                const int c = n0 + warp_n * 32 + nt * 8 + 2 * (lane & 3);
                if (c >= N)
                    continue;
                const float lo = acc[mt][nt][2 * h] + (bias ? bias[c] : 0.f),
                            hi = acc[mt][nt][2 * h + 1] + (bias ? bias[c + 1] : 0.f);
                if (GATE_UP) {
                    p.ws.act[(size_t)row * (N / 2) + c / 2] = __float2bfloat16(clamped_swiglu(lo, hi, p.alpha, p.limit));
                } else {
                    const float rw = p.ws.pair_weight[p.ws.row_pair[row]];
                    *(float2 *)(p.ws.out + (size_t)row * N + c) = make_float2(lo * rw, hi * rw);
                }
            }
        }
}

/* ---- the combine ---- */

/* residual[t] += the token's weighted expert outputs, in slot order. */
__global__ void combine_kernel(float *residual, int hidden, int k, workspace w)
{
    const int t = blockIdx.x;
    for (int i = threadIdx.x * 4; i < hidden; i += blockDim.x * 4) {
        float4 sum = make_float4(0.f, 0.f, 0.f, 0.f);
        for (int s = 0; s < k; s++) {
            const float4 o = *(const float4 *)(w.out + (size_t)w.pair_row[(size_t)t * k + s] * hidden + i);
            sum.x += o.x;
            sum.y += o.y;
            sum.z += o.z;
            sum.w += o.w;
        }
        float4 *x = (float4 *)(residual + (size_t)t * hidden + i);
        float4 v = *x;
        v.x += sum.x;
        v.y += sum.y;
        v.z += sum.z;
        v.w += sum.w;
        *x = v;
    }
}

/* ---- the launcher ---- */

extern "C" size_t fl_cuda_moe_workspace_bytes(const fl_cuda_moe_shape *s, int max_tokens)
{
    workspace w;
    return carve(&w, NULL, s, max_tokens);
}

extern "C" int fl_cuda_moe_init(void)
{
    cudaError_t e = cudaFuncSetAttribute(router_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                         ROUTER_TOKENS * FL_CUDA_MOE_MAX_HIDDEN * (int)sizeof(float));
    if (e == cudaSuccess)
        e = cudaFuncSetAttribute(grouped_gemm_kernel<true>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                         SMEM_BYTES);
    if (e == cudaSuccess)
        e = cudaFuncSetAttribute(grouped_gemm_kernel<false>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                 SMEM_BYTES);
    return (int)e;
}

extern "C" int fl_cuda_moe(const fl_cuda_moe_shape *s, const fl_cuda_moe_args *a, void *stream)
{
    const int T = a->num_tokens, k = s->top_k, E = s->num_experts;
    if (T <= 0 || T > a->max_tokens || k < 1 || k > 8 || k > E || E > FL_CUDA_MOE_MAX_EXPERTS ||
        s->hidden % 8 || s->ff % 8 || s->hidden > FL_CUDA_MOE_MAX_HIDDEN)
        return (int)cudaErrorInvalidValue;
    cudaStream_t st = (cudaStream_t)stream;
    workspace w;
    carve(&w, (char *)a->workspace, s, a->max_tokens);
    const int pairs = T * k;
    router_kernel<<<(T + ROUTER_TOKENS - 1) / ROUTER_TOKENS, THREADS, ROUTER_TOKENS * s->hidden * sizeof(float),
                    st>>>(
        a->residual_in, a->norm_weight, a->eps, a->router, T, s->hidden, E, w);
    route_kernel<<<(T + THREADS / 32 - 1) / (THREADS / 32), THREADS, 0, st>>>(a->router_bias, T, E, k, w);
    permute_kernel<<<1, 1024, 0, st>>>(pairs, E, k, w);
    const dim3 grid_gate_up(max_tiles(pairs, E), (2 * s->ff + BN - 1) / BN);
    const gemm_params gate_up = { (const bf16 *)a->x, (const bf16 *)a->gate_up, a->gate_up_bias, s->hidden,
                                  2 * s->ff, w, s->swiglu_alpha, s->swiglu_limit };
    grouped_gemm_kernel<true><<<grid_gate_up, THREADS, SMEM_BYTES, st>>>(gate_up);
    const dim3 grid_down(max_tiles(pairs, E), (s->hidden + BN - 1) / BN);
    const gemm_params down = { w.act, (const bf16 *)a->down, a->down_bias, s->ff, s->hidden, w, 0.f, 0.f };
    grouped_gemm_kernel<false><<<grid_down, THREADS, SMEM_BYTES, st>>>(down);
    combine_kernel<<<T, 256, 0, st>>>(a->residual, s->hidden, k, w);
    return (int)cudaGetLastError();
}
