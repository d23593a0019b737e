/* attn_device.cuh - device pieces the paged attention kernels share
 * (attn_paged.cu: the kernels but Hopper's prefill, and the launch;
 * attn_prefill_sm90.cu: Hopper's prefill): PTX wrappers, the step's
 * parameters, a warp's online softmax, the swizzled tile layout, tensor
 * copies and mbarriers.
 * Functions are inline, not static: each kernel file uses a different part. */
#ifndef FL_ATTN_DEVICE_CUH
#define FL_ATTN_DEVICE_CUH

#include "attention/attn_paged.h"

#include <cuda.h> /* CUtensorMap and its enums only: the encoder comes through cudart */
#include <cudaTypedefs.h>
#include <cuda_bf16.h>
#include <cuda_runtime.h>
#include <math.h>

#include "cuda/mma_sync.cuh"

typedef __nv_bfloat16 bf16;

/* Compiling for Hopper: tensor copies, mbarrier try_wait, and wgmma, which
 * needs the sm_90a target (CMakeLists.txt builds 90a). */
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
#define ARCH_SM90 1
#if !defined(__CUDA_ARCH_FEAT_SM90_ALL)
#error "the paged attention kernels need sm_90a, not sm_90 (wgmma)"
#endif
#else
#define ARCH_SM90 0
#endif

/* ---- PTX wrappers (the mma.sync ones: cuda/mma_sync.cuh) ---- */

/* 2^x in one MUFU op: flush-to-zero is fine for softmax weights, and
 * exp2f's denormal handling costs instructions per score. */
__device__ __forceinline__ float fast_exp2(float x)
{
    float y;
    asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(y) : "f"(x));
    return y;
}

/* ---- the step, a warp's softmax ---- */

#define LOG2E 1.4426950408889634f

/* Everything a kernel reads about the step (and the layer). */
struct step_params {
    const bf16 *q, *k_cache, *v_cache;
    bf16 *out;
    const int32_t *query_start, *seq_lens, *block_tables, *work;
    float *scratch;
    int32_t *split_counters;
    const float *sinks; /* [num_heads] sink logits, scaled-score units; NULL: none */
    int max_blocks_per_seq;
    int num_heads, num_kv_heads, group, block_shift;
    int window;         /* sliding window (attn_paged.h); 0: none */
    float scale_log2;   /* softmax scale * log2(e), times an fp8 cache's K scale */
    float v_scale;      /* multiplies every output: an fp8 cache's V scale, 1 for bf16 */
};

/* The first key the query at position pos attends. */
__device__ __forceinline__ int window_start(const step_params &p, int pos)
{
    return p.window > 0 ? max(0, pos - p.window + 1) : 0;
}

/* Whether key key0 is before the window of the query at last_pos (so a
 * tile from key0 needs the mask for rows up to last_pos). */
__device__ __forceinline__ bool before_window(const step_params &p, int key0, int last_pos)
{
    return p.window > 0 && key0 < last_pos - p.window + 1;
}

/* Row sum l of query head `head`, taken relative to 2^base2 (base2: the
 * row's maximum scaled score, in base 2), with the head's sink added if
 * the layer has sinks. A sink so far above the scores that its term
 * overflows makes the row's output 0, the limit of p_j. */
__device__ __forceinline__ float with_sink(const step_params &p, float l, int head, float base2)
{
    return p.sinks ? l + exp2f(p.sinks[head] * LOG2E - base2) : l;
}

/* One warp's running softmax state for its MT 16-row tiles: in tile mt
 * this thread holds rows g = lane / 4 and g + 8, columns 2 * (lane % 4) +
 * {0, 1} of each 8-wide tile; its row slot i = 2 mt + (0 or 1). m is the
 * raw-score maximum. lsum holds the row sums of P. On sm_90 they come from
 * the tensor cores: V's padding columns hold ones, so P times them is an
 * 8-wide tile whose every column is the row sum; no per-score add (the
 * issue slots went to MMAs: 328 -> 335 TFLOP/s). On sm_80, where the extra
 * accumulators spill, each thread adds its scores into lsum[mt][2r] and
 * row_sums_finish sums the four threads of a row. */
#define ROW_SUMS_BY_MMA ARCH_SM90
template <int D, int MT> struct warp_state {
    float o[MT][D / 8][4];
    float lsum[MT][4];
    float m[2 * MT];
};

/* Row slot i's sum of P (after row_sums_finish). */
template <int D, int MT> __device__ __forceinline__ float row_sum(const warp_state<D, MT> &st, int i)
{
    return st.lsum[i >> 1][2 * (i & 1)];
}

template <int D, int MT, bool BY_MMA>
__device__ __forceinline__ void row_sums_finish(warp_state<D, MT> &st)
{
    if (!BY_MMA)
#pragma unroll
        for (int i = 0; i < 2 * MT; i++) {
            float &l = st.lsum[i >> 1][2 * (i & 1)];
            l += __shfl_xor_sync(0xffffffff, l, 1);
            l += __shfl_xor_sync(0xffffffff, l, 2);
        }
}

template <int D, int MT> __device__ __forceinline__ void state_init(warp_state<D, MT> &st)
{
#pragma unroll
    for (int mt = 0; mt < MT; mt++)
#pragma unroll
        for (int i = 0; i < D / 8; i++)
            st.o[mt][i][0] = st.o[mt][i][1] = st.o[mt][i][2] = st.o[mt][i][3] = 0.f;
#pragma unroll
    for (int mt = 0; mt < MT; mt++)
        st.lsum[mt][0] = st.lsum[mt][1] = st.lsum[mt][2] = st.lsum[mt][3] = 0.f;
#pragma unroll
    for (int i = 0; i < 2 * MT; i++)
        st.m[i] = -INFINITY;
}

/* Does a KV tile of BN keys lie in one cache block (block_size >= BN; tiles
 * start at multiples of BN)? Then its block id is read once, ahead of time:
 * a table read in front of the copies puts a dependent global load on the
 * pipeline's critical path. */
template <int BN> __device__ __forceinline__ bool one_block(const step_params &p)
{
    return (BN >> p.block_shift) <= 1;
}

/* The block id of the tile at key0, or 0 if the tile spans blocks or is
 * past the context. */
template <int BN>
__device__ __forceinline__ int tile_block(const step_params &p, const int32_t *table, int key0, int kv_len)
{
    return one_block<BN>(p) && key0 < kv_len ? table[key0 >> p.block_shift] : 0;
}

/* Where 16-byte chunk c of row r of a swizzled tile lies, in bytes from
 * the tile (the portable prefill's tiles have padded rows instead). Decode
 * tiles and all of Hopper's prefill tiles are what the tensor copies write
 * with 128-byte swizzling, and what wgmma reads: the tile's columns
 * in panels of 64, each panel TILE_ROWS rows of 128 bytes, chunk c of row
 * r at chunk (c ^ r) % 8 of its row, so ldmatrix's eight rows still hit
 * eight bank groups. r & 7 is the same relative to any 8-row boundary, so
 * a warp may start at its own first row. */
template <int TILE_ROWS> __device__ __forceinline__ uint32_t panel_offset(int r, int c)
{
    return (c >> 3) * TILE_ROWS * 128 + r * 128 + (((c & 7) ^ (r & 7)) << 4);
}

/* Raises a row's running raw-score maximum m to mx (the tile's, m
 * included): base is the new maximum in scaled base-2 units (0 for a row
 * that has seen only masked keys: exp2(-inf) = 0), alpha the factor that
 * rescales what was summed under the old one. Returns whether it grew. */
__device__ __forceinline__ bool raise_max(float &m, float mx, float scale_log2, float &base, float &alpha)
{
    base = mx == -INFINITY ? 0.f : mx * scale_log2;
    alpha = fast_exp2(fmaf(m, scale_log2, -base));
    const bool grew = mx != m;
    m = mx;
    return grew;
}

/* Sets to -inf a warp's scores s (as in softmax_step) of the keys past
 * each row's position and, with window > 0, of those before its window:
 * a key is seen iff 0 <= position - key < window, one unsigned compare, as
 * few registers as the causal test (a second test spilled head dim 128's
 * prefill). */
template <int NK, int MT>
__device__ __forceinline__ void mask_scores(float (&s)[MT][NK / 8][4], int key0, int first_pos, int wrow, int group,
                                            int window)
{
    const int lane = threadIdx.x & 31;
    const int t = lane & 3;
    int limit[2 * MT];
#pragma unroll
    for (int i = 0; i < 2 * MT; i++)
        limit[i] = first_pos + (wrow + (i >> 1) * 16 + (lane >> 2) + 8 * (i & 1)) / group;
    if (window > 0) {
#pragma unroll
        for (int mt = 0; mt < MT; mt++)
#pragma unroll
            for (int nt = 0; nt < NK / 8; nt++)
#pragma unroll
                for (int e = 0; e < 4; e++)
                    if ((unsigned)(limit[2 * mt + (e >> 1)] - (key0 + nt * 8 + 2 * t + (e & 1))) >= (unsigned)window)
                        s[mt][nt][e] = -INFINITY;
    } else {
#pragma unroll
        for (int mt = 0; mt < MT; mt++)
#pragma unroll
            for (int nt = 0; nt < NK / 8; nt++)
#pragma unroll
                for (int e = 0; e < 4; e++)
                    if (key0 + nt * 8 + 2 * t + (e & 1) > limit[2 * mt + (e >> 1)])
                        s[mt][nt][e] = -INFINITY;
    }
}

/* The online-softmax step of one warp's scores s (MT x 16 rows by NK keys
 * in the mma fragment layout, which wgmma's accumulators share): masks
 * the keys outside each row's window (need_mask: some key of the tile is
 * past a row's position, or before its window; window: the layer's, 0 for
 * causal attention over all keys), raises the running maxima, rescales O
 * and the row sums, and turns s into P. Row sums are added here unless the
 * tensor cores make them (SUMS_BY_MMA). */
template <int D, int NK, int MT, bool SUMS_BY_MMA>
__device__ __forceinline__ void softmax_step(warp_state<D, MT> &st, float (&s)[MT][NK / 8][4], int key0,
                                             int first_pos, int wrow, int group, bool need_mask, int window,
                                             float scale_log2)
{
    if (need_mask)
        mask_scores<NK, MT>(s, key0, first_pos, wrow, group, window);
    float base[2 * MT], alpha[2 * MT];
    bool grew = false;
#pragma unroll
    for (int mt = 0; mt < MT; mt++)
#pragma unroll
        for (int r = 0; r < 2; r++) {
            const int i = 2 * mt + r;
            float mx = st.m[i];
#pragma unroll
            for (int nt = 0; nt < NK / 8; nt++)
                mx = fmaxf(mx, fmaxf(s[mt][nt][2 * r], s[mt][nt][2 * r + 1]));
            mx = fmaxf(mx, __shfl_xor_sync(0xffffffff, mx, 1));
            mx = fmaxf(mx, __shfl_xor_sync(0xffffffff, mx, 2));
            grew |= raise_max(st.m[i], mx, scale_log2, base[i], alpha[i]);
        }
    /* the maxima settle after the first tiles: skip the rescale of O when no
     * row of the warp grew (alpha is then exactly 1) */
    if (__any_sync(0xffffffff, grew)) {
#pragma unroll
        for (int mt = 0; mt < MT; mt++) {
#pragma unroll
            for (int dt = 0; dt < D / 8; dt++)
#pragma unroll
                for (int e = 0; e < 4; e++)
                    st.o[mt][dt][e] *= alpha[2 * mt + (e >> 1)];
#pragma unroll
            for (int e = 0; e < 4; e++)
                st.lsum[mt][e] *= alpha[2 * mt + (e >> 1)];
        }
    }
#pragma unroll
    for (int mt = 0; mt < MT; mt++)
#pragma unroll
        for (int nt = 0; nt < NK / 8; nt++)
#pragma unroll
            for (int e = 0; e < 4; e++) {
                s[mt][nt][e] = fast_exp2(fmaf(s[mt][nt][e], scale_log2, -base[2 * mt + (e >> 1)]));
                if (!SUMS_BY_MMA)
                    st.lsum[mt][2 * (e >> 1)] += s[mt][nt][e];
            }
}

/* Where packed row `row` of the sequence whose first token is q0 lies,
 * in elements, in q and in out (both (tokens, query heads, head dim)). */
__device__ __forceinline__ size_t row_offset(const step_params &p, int q0, int row, int kv_head, int D)
{
    return ((size_t)(q0 + row / p.group) * p.num_heads + kv_head * p.group + row % p.group) * D;
}

/* Writes a warp's finished rows (its first is packed row wrow; rows at
 * and past `rows` are padding), each divided by its row sum and sink. */
template <int D, int MT>
__device__ __forceinline__ void store_rows(const step_params &p, const warp_state<D, MT> &st, int q0, int rows,
                                           int wrow, int kv_head)
{
    const int lane = threadIdx.x & 31, t = lane & 3;
#pragma unroll
    for (int i = 0; i < 2 * MT; i++) {
        const int row = wrow + (i >> 1) * 16 + (lane >> 2) + 8 * (i & 1);
        if (row >= rows)
            continue;
        const float inv =
            p.v_scale / with_sink(p, row_sum(st, i), kv_head * p.group + row % p.group, st.m[i] * p.scale_log2);
        bf16 *dst = p.out + row_offset(p, q0, row, kv_head, D);
        const int mt = i >> 1, r = i & 1;
#pragma unroll
        for (int dt = 0; dt < D / 8; dt++)
            *(__nv_bfloat162 *)(dst + dt * 8 + 2 * t) =
                __floats2bfloat162_rn(st.o[mt][dt][2 * r] * inv, st.o[mt][dt][2 * r + 1] * inv);
    }
}

/* P of 16 keys (kk-th pair of 8-wide tiles) as the A fragment of an MMA
 * (float16 if F16, else bf16): the accumulator layout of S is the A layout
 * of m16n8k16 and of wgmma's register operand, two 8-wide tiles side by
 * side. */
template <bool F16 = false>
__device__ __forceinline__ void pack_p(uint32_t a[4], const float (&lo)[4], const float (&hi)[4])
{
    a[0] = F16 ? pack_f16(lo[0], lo[1]) : pack_bf16(lo[0], lo[1]);
    a[1] = F16 ? pack_f16(lo[2], lo[3]) : pack_bf16(lo[2], lo[3]);
    a[2] = F16 ? pack_f16(hi[0], hi[1]) : pack_bf16(hi[0], hi[1]);
    a[3] = F16 ? pack_f16(hi[2], hi[3]) : pack_bf16(hi[2], hi[3]);
}

/* ---- an fp8 cache (attn_paged.h): tiles of bytes, widened in shared memory ---- */

/* Four e4m3 bytes (low byte first) as four float16s in two pairs (lo:
 * bytes 0 and 1), exactly: e4m3's 3 mantissa bits and exponents 2^-9 ..
 * 2^8 all lie in float16. sm_89 and later convert a pair in one
 * instruction; sm_80 moves the bits (sign to bit 15, exponent and mantissa
 * 7 places up: the value over 2^8) and multiplies by 2^8, exact,
 * subnormals included. */
__device__ __forceinline__ void e4m3x4_to_f16x4(uint32_t four, uint32_t &lo, uint32_t &hi)
{
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 890
    asm("{\n.reg .b16 a, b;\nmov.b32 {a, b}, %2;\ncvt.rn.f16x2.e4m3x2 %0, a;\ncvt.rn.f16x2.e4m3x2 %1, b;\n}"
        : "=r"(lo), "=r"(hi)
        : "r"(four));
#else
    const __half2 two8 = __floats2half2_rn(256.f, 256.f);
    uint32_t out[2];
    for (int k = 0; k < 2; k++) {
        const uint32_t x = ((four >> (16 * k)) & 0xffu) | (((four >> (16 * k)) & 0xff00u) << 8);
        const uint32_t bits = ((x << 8) & 0x80008000u) | ((x << 7) & 0x3f803f80u);
        const __half2 v = __hmul2(*(const __half2 *)&bits, two8);
        out[k] = *(const uint32_t *)&v;
    }
    lo = out[0];
    hi = out[1];
#endif
}

/* Widens rows [row0, row0 + nrows) of an fp8 tile (rows of D bytes at src)
 * to float16 rows of D + 8 elements at dst (the portable prefill's padded
 * rows), from `threads` threads of which this is thread `tid`. */
template <int D>
__device__ __forceinline__ void widen_fp8_rows(char *dst, const uint8_t *src, int row0, int nrows, int tid,
                                               int threads)
{
    constexpr int CH = D / 16; /* 16-byte chunks of a row of bytes */
    for (int i = tid; i < nrows * CH; i += threads) {
        const int r = row0 + i / CH, c = i % CH;
        const uint4 in = *(const uint4 *)(src + r * D + c * 16);
        uint4 lo, hi;
        e4m3x4_to_f16x4(in.x, lo.x, lo.y);
        e4m3x4_to_f16x4(in.y, lo.z, lo.w);
        e4m3x4_to_f16x4(in.z, hi.x, hi.y);
        e4m3x4_to_f16x4(in.w, hi.z, hi.w);
        *(uint4 *)(dst + (r * (D + 8) + c * 16) * 2) = lo;
        *(uint4 *)(dst + (r * (D + 8) + c * 16 + 8) * 2) = hi;
    }
}

/* Rewrites rows [0, nrows) of a bf16 Q tile (rows of D + 8 elements) as
 * float16 in place, from all `threads` threads (the caller syncs before
 * and after). Queries beyond float16's range saturate at its largest
 * value rather than overflow. */
template <int D> __device__ __forceinline__ void q_to_f16(bf16 *q, int nrows, int threads)
{
    constexpr int LD = D + 8;
    for (int i = threadIdx.x; i < nrows * D / 2; i += threads) {
        uint32_t *pair = (uint32_t *)(q + (i / (D / 2)) * LD + 2 * (i % (D / 2)));
        const float2 f = __bfloat1622float2(*(const __nv_bfloat162 *)pair);
        *pair = pack_f16(fminf(fmaxf(f.x, -65504.f), 65504.f), fminf(fmaxf(f.y, -65504.f), 65504.f));
    }
}

/* Zeroes rows [first_row, BN) of a swizzled V tile of BN rows in panels
 * (a tile that ends past the keys its users may see: their scores are
 * masked, but zero times stale V could be NaN), from THREADS threads; the
 * caller syncs before the rows are read. */
template <int D, int BN, int THREADS> __device__ __forceinline__ void zero_v_rows(char *v_tile, int first_row)
{
    constexpr int PANELS = (D + 63) / 64;
    const int chunks = (BN - first_row) * 8;
    for (int c = threadIdx.x; c < PANELS * chunks; c += THREADS) {
        const int pn = c / chunks, r = first_row + (c % chunks) / 8, part = c % 8;
        *(uint4 *)(v_tile + (pn * BN + r) * 128 + part * 16) = make_uint4(0, 0, 0, 0);
    }
}

/* ---- tensor copies and barriers ---- */

/* In the Hopper kernel set a slot of K and V tiles is filled by tensor
 * copies (TMA), announced by the slot's mbarrier with the bytes to expect;
 * consumers wait on the barrier's phase (the portable decode's cp.async
 * copies arrive on the same kind of barrier). */

__device__ __forceinline__ void mbar_init(uint64_t *bar, int count)
{
    asm volatile("mbarrier.init.shared.b64 [%0], %1;\n" ::"r"(smem_addr(bar)), "r"(count));
}

__device__ __forceinline__ void mbar_wait(uint64_t *bar, int parity)
{
#if ARCH_SM90
#define MBAR_WAIT_OP "mbarrier.try_wait.parity.shared.b64"
#else
#define MBAR_WAIT_OP "mbarrier.test_wait.parity.shared.b64"
#endif
    asm volatile("{\n.reg .pred done;\nwait:\n" MBAR_WAIT_OP " done, [%0], %1;\n"
                 "@!done bra wait;\n}\n" ::"r"(smem_addr(bar)),
                 "r"(parity)
                 : "memory");
#undef MBAR_WAIT_OP
}

/* Issues the tensor copies (TMA) of keys [key0, key0 + BN) of a sequence
 * (table) for kv_head, stopping at the box holding key end - 1, into a
 * slot of K and V tiles of BN rows in panels (panel_offset), announced on
 * bar with their byte count. A box is 64 columns by the rows of one cache
 * block, at most TMA_BOX_ROWS (kv_tensor_maps); block is tile_block<BN>()
 * of the tile, read ahead by the caller when the tile lies in one block.
 * Called by one thread. */
#define TMA_BOX_ROWS FL_ATTN_DECODE_TILE
template <int D, int BN>
__device__ __forceinline__ void tma_fill(bf16 *k_tile, bf16 *v_tile, uint64_t *bar, const step_params &p,
                                         const CUtensorMap *tk, const CUtensorMap *tv, const int32_t *table,
                                         int key0, int end, int kv_head, int block)
{
    constexpr int PANELS = (D + 63) / 64;
    const int mask = (1 << p.block_shift) - 1;
    const int box_rows = min(TMA_BOX_ROWS, mask + 1), boxes = min(BN, end - key0 + box_rows - 1) / box_rows;
    asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory"); /* after the generic accesses of the slot */
    asm volatile("mbarrier.arrive.expect_tx.shared.b64 _, [%0], %1;\n" ::"r"(smem_addr(bar)),
                 "r"(2 * PANELS * boxes * box_rows * 128)
                 : "memory");
    for (int g = 0; g < boxes; g++) {
        const int key = key0 + g * box_rows;
        const int blk = one_block<BN>(p) ? block : table[key >> p.block_shift];
        const int row = (blk << p.block_shift) + (key & mask);
        for (int pn = 0; pn < PANELS; pn++) {
            const uint32_t off = (pn * BN + g * box_rows) * 128;
            asm volatile("cp.async.bulk.tensor.3d.shared::cluster.global.tile.mbarrier::complete_tx::bytes"
                         " [%0], [%1, {%2, %3, %4}], [%5];\n" ::"r"(smem_addr(k_tile) + off),
                         "l"((uint64_t)tk), "r"(pn * 64), "r"(kv_head), "r"(row), "r"(smem_addr(bar))
                         : "memory");
            asm volatile("cp.async.bulk.tensor.3d.shared::cluster.global.tile.mbarrier::complete_tx::bytes"
                         " [%0], [%1, {%2, %3, %4}], [%5];\n" ::"r"(smem_addr(v_tile) + off),
                         "l"((uint64_t)tv), "r"(pn * 64), "r"(kv_head), "r"(row), "r"(smem_addr(bar))
                         : "memory");
        }
    }
}

__device__ __forceinline__ void mbar_arrive(uint64_t *bar)
{
    asm volatile("mbarrier.arrive.shared.b64 _, [%0];\n" ::"r"(smem_addr(bar)) : "memory");
}

/* attn_prefill_sm90.cu: whether Hopper's prefill kernel is built for
 * head_dim, the packed rows of its CTA there, and its launch over grid
 * (the plan's prefill CTAs, KV heads).
 * Hidden: libflashlm_attn.so exports only the C API of attn_paged.h. */
__attribute__((visibility("hidden"))) bool prefill_sm90_supports(int head_dim);
__attribute__((visibility("hidden"))) int prefill_sm90_rows(int head_dim);
__attribute__((visibility("hidden"))) cudaError_t prefill_sm90_launch(int head_dim, dim3 grid, const step_params &p,
                                                                      const CUtensorMap maps[2], cudaStream_t stream);

#endif
