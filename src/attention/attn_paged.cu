/* attn_paged.cu - the paged attention kernels but Hopper's prefill, and
 * the launch of a step by either kernel set (see attn_paged.h): the Hopper
 * set runs attn_prefill_sm90.cu's prefill for head dims 64, 96, 128 and 256 and this
 * file's prefill for the others; the sets differ here only in how decode
 * K/V tiles arrive.
 *
 * Both kernels here share one warp routine: one or two 16-row tiles of packed
 * query rows against a run of keys in shared memory, S = QK^T and O += PV
 * on the tensor cores (mma.sync m16n8k16 bf16, fp32 accumulators), online
 * softmax in base 2 (softmax_step, attn_device.cuh); the decode of an fp8
 * cache computes the transposes instead (fp8_attend).
 * A packed row r of a sequence with G query heads per KV head is query
 * token r / G, head kv_head * G + r % G, so the heads of a group share
 * every K/V tile they read.
 *
 * - prefill: a CTA is 128 packed rows of one sequence and KV head (64 for
 *   head dim 256); its four warps take two 16-row tiles each (one), so
 *   every K/V fragment read from shared memory feeds two MMAs, and walk the
 *   keys up to the causal limit in tiles through a ring of cp.async stages,
 *   from the tile that holds the first row's window start (0 without one).
 * - decode: a CTA is one 16-row tile (a decode token, or a short chunk) of
 *   one sequence, KV head and split; its four warps take a quarter of each
 *   KV tile and are merged by log-sum-exp at the end; the splits share the
 *   tiles from the one holding the window start of the first row, and with
 *   several the last split to finish merges the others' partial results,
 *   adding the sinks once. Its K/V
 *   tiles come through a ring of mbarrier-announced slots, filled by
 *   tensor copies (TMA) in the Hopper set and by cp.async in the portable
 *   one (both built for sm_90a, so both run on Hopper).
 *
 * Prefill's shared-memory rows are padded by 16 bytes: a row is an odd
 * number of 16-byte chunks, so ldmatrix's eight row reads hit eight
 * distinct bank groups for every head dim; V's padding holds ones (row
 * sums, see warp_state). Decode's tiles are swizzled instead (the layout
 * the tensor copies write, panel_offset). Keys past the context are zeroes
 * in V (masked scores times garbage V would be NaN). */
#include "attention/attn_device.cuh"
#include "cuda/cuda_check.h"

#include <string.h>

#define NUM_THREADS 128
#define NUM_WARPS 4

/* ---- shared pieces ---- */

/* Loads packed query rows [row0, row0 + nrows) into q_smem (zeros past rows). */
template <int D>
static __device__ __forceinline__ void load_q(bf16 *q_smem, const step_params &p, int q0, int rows, int row0,
                                              int nrows, int kv_head)
{
    constexpr int LD = D + 8, CH = D / 8;
    for (int c = threadIdx.x; c < nrows * CH; c += NUM_THREADS) {
        const int j = c / CH, part = c % CH, r = row0 + j;
        const uint32_t dst = smem_addr(q_smem + j * LD + part * 8);
        if (r < rows) {
            cp_async16(dst, p.q + row_offset(p, q0, r, kv_head, D) + part * 8, 16);
        } else {
            cp_async16(dst, p.q, 0);
        }
    }
}

/* Loads keys [key0, key0 + BN) of one sequence and KV head into k/v smem;
 * block is tile_block() of the tile. */
template <int D, int BN>
static __device__ __forceinline__ void load_kv(bf16 *k_smem, bf16 *v_smem, const step_params &p,
                                               const int32_t *table, int key0, int kv_len, int kv_head, int block)
{
    constexpr int LD = D + 8, CH = D / 8;
    const int mask = (1 << p.block_shift) - 1;
    const bool whole = one_block<BN>(p);
    const size_t tile_base = (size_t)block * (mask + 1);
    /* threads tile whole rows (not for head dim 96: 12 chunks a row) */
    constexpr int ROWS_PER_PASS = NUM_THREADS / CH;
    constexpr bool rows_tile = NUM_THREADS % CH == 0 && (ROWS_PER_PASS >= BN || BN % ROWS_PER_PASS == 0);
    if (rows_tile && whole && key0 + BN <= kv_len) {
        /* the common case, a full tile inside one block: row j of the
         * tile is at a fixed stride, and a thread's chunks step by whole
         * rows, so each copy is two adds (no per-chunk index arithmetic,
         * table read or bounds test: the issue slots are the MMAs') */
        const size_t stride = (size_t)p.num_kv_heads * D;
        const int j0 = threadIdx.x / CH, part = threadIdx.x % CH;
        const size_t src0 = ((tile_base + (key0 & mask) + j0) * p.num_kv_heads + kv_head) * D + part * 8;
        const bf16 *ks = p.k_cache + src0, *vs = p.v_cache + src0;
        uint32_t dk = smem_addr(k_smem + j0 * LD + part * 8), dv = smem_addr(v_smem + j0 * LD + part * 8);
        if (NUM_THREADS >= CH * BN && threadIdx.x >= CH * BN)
            return;
#pragma unroll
        for (int j = 0; j < BN; j += ROWS_PER_PASS) {
            cp_async16(dk, ks, 16);
            cp_async16(dv, vs, 16);
            ks += ROWS_PER_PASS * stride;
            vs += ROWS_PER_PASS * stride;
            dk += ROWS_PER_PASS * LD * 2;
            dv += ROWS_PER_PASS * LD * 2;
        }
        return;
    }
#pragma unroll 2
    for (int c = threadIdx.x; c < BN * CH; c += NUM_THREADS) {
        const int j = c / CH, part = c % CH, key = key0 + j;
        const uint32_t dk = smem_addr(k_smem + j * LD + part * 8);
        const uint32_t dv = smem_addr(v_smem + j * LD + part * 8);
        if (key < kv_len) {
            const size_t slot = whole ? tile_base + (key & mask)
                                      : (size_t)table[key >> p.block_shift] * (mask + 1) + (key & mask);
            const size_t off = (slot * p.num_kv_heads + kv_head) * D + part * 8;
            cp_async16(dk, p.k_cache + off, 16);
            cp_async16(dv, p.v_cache + off, 16);
        } else {
            cp_async16(dk, p.k_cache, 0);
            cp_async16(dv, p.v_cache, 0);
        }
    }
}

/* Where byte a of a decode fp8 tile (rows of D bytes) lies: its 16-byte
 * chunk XORed with its 128-byte line's index mod 8, so that the decode's
 * 16-byte loads of K and of V (fp8_attend) hit every bank once per phase
 * at head dim 128. A slot starts at a multiple of 1 KiB and a pass of
 * load_kv_fp8's rows is 2 KiB, so neither moves the pattern. The
 * prefill's tiles are plain rows. */
__device__ __forceinline__ uint32_t fp8_swizzle(uint32_t a)
{
    return a ^ (((a >> 7) & 7) << 4);
}

/* load_kv for an fp8 cache: the tile's rows as D bytes each (SWIZZLED:
 * fp8_swizzle, the decode's), zeros past kv_len; block is tile_block() of
 * the tile. A full tile whose rows a pass of the threads covers evenly
 * (head dims 32 to 256 but 96) takes the same chunk of every pass's rows:
 * its addresses step by whole passes, with no per-chunk index arithmetic
 * (the decode kernel is bound by its issue slots). */
template <int D, int BN, bool SWIZZLED>
static __device__ __forceinline__ void load_kv_fp8(uint8_t *k_smem, uint8_t *v_smem, const step_params &p,
                                                   const int32_t *table, int key0, int kv_len, int kv_head, int block)
{
    constexpr int CH = D / 16, ROWS_PER_PASS = NUM_THREADS / CH; /* a pass: 128 x 16 bytes, 2 KiB */
    constexpr bool PASSES = NUM_THREADS % CH == 0 && BN % ROWS_PER_PASS == 0;
    const int mask = (1 << p.block_shift) - 1;
    const bool whole = one_block<BN>(p);
    const uint8_t *kc = (const uint8_t *)p.k_cache, *vc = (const uint8_t *)p.v_cache;
    if (PASSES && key0 + BN <= kv_len) {
        const int j0 = threadIdx.x / CH, part = threadIdx.x % CH;
        const uint32_t at = SWIZZLED ? fp8_swizzle(j0 * D + part * 16) : j0 * D + part * 16;
        const uint32_t dk = smem_addr(k_smem) + at, dv = smem_addr(v_smem) + at;
        const size_t pass = (size_t)ROWS_PER_PASS * p.num_kv_heads * D; /* cache elements a pass of rows spans */
#pragma unroll
        for (int i = 0; i < BN / ROWS_PER_PASS; i++) {
            const int key = key0 + j0 + i * ROWS_PER_PASS;
            /* a tile in one block: one address, stepped by passes; else each pass's block */
            const size_t off = whole ? ((((size_t)block << p.block_shift) + ((key0 + j0) & mask)) * p.num_kv_heads +
                                        kv_head) * D + part * 16 + i * pass
                                     : ((((size_t)table[key >> p.block_shift] << p.block_shift) + (key & mask)) *
                                        p.num_kv_heads + kv_head) * D + part * 16;
            cp_async16(dk + i * ROWS_PER_PASS * D, kc + off, 16);
            cp_async16(dv + i * ROWS_PER_PASS * D, vc + off, 16);
        }
        return;
    }
    for (int c = threadIdx.x; c < BN * CH; c += NUM_THREADS) {
        const int j = c / CH, part = c % CH, key = key0 + j;
        const uint32_t at = SWIZZLED ? fp8_swizzle(j * D + part * 16) : j * D + part * 16;
        const uint32_t dk = smem_addr(k_smem) + at, dv = smem_addr(v_smem) + at;
        if (key < kv_len) {
            const size_t blk = whole ? (size_t)block : (size_t)table[key >> p.block_shift];
            const size_t off = ((blk * (mask + 1) + (key & mask)) * p.num_kv_heads + kv_head) * D + part * 16;
            cp_async16(dk, kc + off, 16);
            cp_async16(dv, vc + off, 16);
        } else {
            cp_async16(dk, kc, 0);
            cp_async16(dv, vc, 0);
        }
    }
}

/* A ring slot's size in bf16 elements: a tile of padded bf16 rows, or of
 * fp8 rows of D bytes. */
template <int D, int BN, bool FP8> static constexpr __host__ __device__ int ring_slot_elems(void)
{
    return FP8 ? BN * D / 2 : BN * (D + 8);
}

template <int D, int BN, bool FP8>
static __device__ __forceinline__ void ring_load(bf16 *k_slot, bf16 *v_slot, const step_params &p,
                                                 const int32_t *table, int key0, int kv_len, int kv_head, int block)
{
    if (FP8)
        load_kv_fp8<D, BN, false>((uint8_t *)k_slot, (uint8_t *)v_slot, p, table, key0, kv_len, kv_head, block);
    else
        load_kv<D, BN>(k_slot, v_slot, p, table, key0, kv_len, kv_head, block);
}

/* An S-stage ring of KV tiles [first, end) in k/v smem ([S] slots of
 * ring_slot_elems: padded bf16 rows, or an fp8 cache's bytes):
 * tile t lives in slot (t - first) % S. ring_start issues the first S - 1
 * tiles (one cp.async group each, Q's loads joining the first) and returns
 * the block id of the next tile to issue; ring_next, at the top of each
 * tile, makes the tile ready, has the tile S - 1 ahead in flight, and
 * returns the tile's slot; ring_release ends the tile.
 * - S >= 3: wait, one barrier, then refill the slot the previous tile used
 *   (every thread has passed the barrier, so it is free).
 * - S = 2: refill first, then wait: the next tile is in flight while the
 *   current one lands; the slot refilled is free only after the trailing
 *   barrier of ring_release. Two stages keep the decode CTA small enough
 *   for 3 (head dim 128) to 5 (64) CTAs per SM, which matters more to a
 *   bandwidth-bound kernel than a third stage did (measured: docs/PERF.md). */
template <int D, int BN, int S, bool FP8>
static __device__ __forceinline__ int ring_start(bf16 *k_smem, bf16 *v_smem, const step_params &p,
                                                 const int32_t *table, int first, int end, int kv_len, int kv_head)
{
    constexpr int SLOT = ring_slot_elems<D, BN, FP8>();
#pragma unroll
    for (int i = 0; i < S - 1; i++) {
        const int t = first + i;
        if (t < end)
            ring_load<D, BN, FP8>(k_smem + i * SLOT, v_smem + i * SLOT, p, table, t * BN, kv_len, kv_head,
                                  tile_block<BN>(p, table, t * BN, kv_len));
        cp_async_commit();
    }
    return first + S - 1 < end ? tile_block<BN>(p, table, (first + S - 1) * BN, kv_len) : 0;
}

template <int D, int BN, int S, bool FP8>
static __device__ __forceinline__ void ring_issue(bf16 *k_smem, bf16 *v_smem, const step_params &p,
                                                  const int32_t *table, int first, int ahead, int end, int kv_len,
                                                  int kv_head, int &block)
{
    constexpr int SLOT = ring_slot_elems<D, BN, FP8>();
    if (ahead < end) {
        const int slot = (ahead - first) % S;
        ring_load<D, BN, FP8>(k_smem + slot * SLOT, v_smem + slot * SLOT, p, table, ahead * BN, kv_len, kv_head,
                              block);
        /* the block id one further lands while this tile computes */
        block = ahead + 1 < end ? tile_block<BN>(p, table, (ahead + 1) * BN, kv_len) : 0;
    }
    cp_async_commit();
}

template <int D, int BN, int S, bool FP8>
static __device__ __forceinline__ int ring_next(bf16 *k_smem, bf16 *v_smem, const step_params &p,
                                                const int32_t *table, int first, int tile, int end, int kv_len,
                                                int kv_head, int &block)
{
    if (S == 2) {
        ring_issue<D, BN, S, FP8>(k_smem, v_smem, p, table, first, tile + 1, end, kv_len, kv_head, block);
        cp_async_wait<1>();
        __syncthreads();
    } else {
        cp_async_wait<S - 2>();
        __syncthreads();
        ring_issue<D, BN, S, FP8>(k_smem, v_smem, p, table, first, tile + S - 1, end, kv_len, kv_head, block);
    }
    return (tile - first) % S;
}

template <int S> static __device__ __forceinline__ void ring_release(void)
{
    if (S == 2)
        __syncthreads();
}

/* The warp routine: the warp's MT x 16 rows (q at q_base) against NK keys
 * (k and v at k_base, v_base: padded rows, or panel_offset<TILE_ROWS> if
 * PANELS) whose first position is key0. Row sums come from the tensor cores
 * (warp_state) if SUMS_BY_MMA, with padded tiles only: panels have no
 * column of ones. The warp's
 * first row is packed row wrow; packed row r may see keys up to position
 * first_pos + r / group, and from its window's start on (need_mask and
 * window: softmax_step). Each K and V fragment read
 * from shared memory feeds MT tiles: with MT = 2 the tensor cores, not
 * ldmatrix bandwidth, bound the loop. F16: Q, K and V are float16 (an fp8
 * cache widened), and so is P. */
template <int D, int NK, int MT, bool SUMS_BY_MMA, bool PANELS = false, int TILE_ROWS = 0, bool F16 = false>
static __device__ __forceinline__ void warp_attend(warp_state<D, MT> &st, uint32_t q_base, uint32_t k_base,
                                                   uint32_t v_base, int key0, int first_pos, int wrow, int group,
                                                   bool need_mask, int window, float scale_log2)
{
    constexpr int LD = D + 8;
    static_assert(!(SUMS_BY_MMA && PANELS), "panels have no column of ones");
    const int lane = threadIdx.x & 31;
    float s[MT][NK / 8][4];
#pragma unroll
    for (int mt = 0; mt < MT; mt++)
#pragma unroll
        for (int i = 0; i < NK / 8; i++)
            s[mt][i][0] = s[mt][i][1] = s[mt][i][2] = s[mt][i][3] = 0.f;
#pragma unroll
    for (int ks = 0; ks < D / 16; ks++) {
        uint32_t a[MT][4];
#pragma unroll
        for (int mt = 0; mt < MT; mt++)
            ldmatrix_x4(a[mt], q_base + ((mt * 16 + (lane & 15)) * LD + ks * 16 + (lane >> 4) * 8) * 2);
#pragma unroll
        for (int nt = 0; nt < NK / 16; nt++) {
            uint32_t b[4];
            const int row = nt * 16 + (lane & 7) + ((lane >> 4) << 3);
            ldmatrix_x4(b, k_base + (PANELS ? panel_offset<TILE_ROWS>(row, ks * 2 + ((lane >> 3) & 1))
                                            : (row * LD + ks * 16 + ((lane >> 3) & 1) * 8) * 2));
#pragma unroll
            for (int mt = 0; mt < MT; mt++) {
                mma_16816<F16>(s[mt][2 * nt], a[mt], b[0], b[1]);
                mma_16816<F16>(s[mt][2 * nt + 1], a[mt], b[2], b[3]);
            }
        }
    }
    softmax_step<D, NK, MT, SUMS_BY_MMA>(st, s, key0, first_pos, wrow, group, need_mask, window, scale_log2);
#pragma unroll
    for (int kk = 0; kk < NK / 16; kk++) {
        uint32_t a[MT][4];
#pragma unroll
        for (int mt = 0; mt < MT; mt++)
            pack_p<F16>(a[mt], s[mt][2 * kk], s[mt][2 * kk + 1]);
#pragma unroll
        for (int dt = 0; dt < D / 16; dt++) {
            uint32_t b[4];
            const int row = kk * 16 + (lane & 7) + ((lane >> 3) & 1) * 8;
            ldmatrix_x4_trans(b, v_base + (PANELS ? panel_offset<TILE_ROWS>(row, dt * 2 + (lane >> 4))
                                                  : (row * LD + dt * 16 + (lane >> 4) * 8) * 2));
#pragma unroll
            for (int mt = 0; mt < MT; mt++) {
                mma_16816<F16>(st.o[mt][2 * dt], a[mt], b[0], b[1]);
                mma_16816<F16>(st.o[mt][2 * dt + 1], a[mt], b[2], b[3]);
            }
        }
        if (SUMS_BY_MMA) {
            uint32_t ones[2]; /* V's padding columns */
            ldmatrix_x2_trans(ones, v_base + ((kk * 16 + (lane & 7) + ((lane >> 3) & 1) * 8) * LD + D) * 2);
#pragma unroll
            for (int mt = 0; mt < MT; mt++)
                mma_16816<F16>(st.lsum[mt], a[mt], ones[0], ones[1]);
        }
    }
}

/* Fills the padding columns of V's rows (rows of all stages) with ones
 * (float16 if F16, else bf16), once: the copies never write them, and P times them gives the row
 * sums (warp_state). Ordered before use by the pipeline's first barrier. */
template <int D, bool F16>
static __device__ __forceinline__ void fill_ones(bf16 *v_smem, int num_rows)
{
    constexpr int LD = D + 8;
    constexpr uint32_t one = F16 ? 0x3c003c00u : 0x3f803f80u; /* float16's 1.0 pair, or bf16's */
    const uint4 ones = make_uint4(one, one, one, one);
    for (int j = threadIdx.x; j < num_rows; j += NUM_THREADS)
        *(uint4 *)(v_smem + j * LD + D) = ones;
}

/* ---- prefill: 64 x MT packed rows per CTA ---- */

/* WINDOW: the layer has a sliding window (p.window > 0). A compile-time
 * choice because head dim 128 uses all 255 registers: the window's tile
 * bounds and masks in the loop spilled it, so the kernel of the plain
 * causal case is built without them, and the windowed one adds its row
 * sums (the tensor cores' row sums keep 4 more accumulators live on
 * sm_90, which the mask needs; about 2% of the plain kernel's speed,
 * docs/PERF.md step 11, and Hopper runs the windowed prefill of head
 * dims 64 to 256 on wgmma anyway). */
template <int D, int BN, int MT, int S, bool WINDOW, bool FP8>
__global__ void __launch_bounds__(NUM_THREADS) prefill_kernel(step_params p)
{
    constexpr int LD = D + 8, ROWS = NUM_WARPS * 16 * MT, SLOT = ring_slot_elems<D, BN, FP8>();
    constexpr bool SUMS_BY_MMA = ROW_SUMS_BY_MMA && !WINDOW;
    extern __shared__ uint4 smem_raw[];
    bf16 *q_smem = (bf16 *)smem_raw;
    bf16 *k_smem = q_smem + ROWS * LD; /* [S][SLOT] */
    bf16 *v_smem = k_smem + S * SLOT;
    /* FP8: the tile in use, widened to float16 in padded rows */
    bf16 *k16 = v_smem + S * SLOT, *v16 = k16 + BN * LD;

    const int seq = p.work[2 * blockIdx.x], row0 = p.work[2 * blockIdx.x + 1];
    const int kv_head = blockIdx.y;
    const int q0 = p.query_start[seq], q_len = p.query_start[seq + 1] - q0;
    const int ctx = p.seq_lens[seq], rows = q_len * p.group;
    const int32_t *table = p.block_tables + (size_t)seq * p.max_blocks_per_seq;
    const int last_row = min(row0 + ROWS, rows) - 1;
    const int kv_end = ctx - q_len + last_row / p.group + 1;
    if (WINDOW) /* launched only then (launch); one mask loop, not two, and fewer registers */
        __builtin_assume(p.window > 0);
    /* tiles before the one holding the first row's window start hold no key any row sees */
    const int first = WINDOW ? window_start(p, ctx - q_len + row0 / p.group) / BN : 0;
    const int num_tiles = (kv_end + BN - 1) / BN;

    if (SUMS_BY_MMA)
        fill_ones<D, FP8>(FP8 ? v16 : v_smem, FP8 ? BN : S * BN);
    load_q<D>(q_smem, p, q0, rows, row0, ROWS, kv_head);
    int block = ring_start<D, BN, S, FP8>(k_smem, v_smem, p, table, first, num_tiles, kv_end, kv_head);
    if (FP8) { /* Q landed with the first tile: float16, before the loop needs the registers */
        cp_async_wait<0>();
        __syncthreads();
        q_to_f16<D>(q_smem, ROWS, NUM_THREADS);
    }

    const int warp = threadIdx.x >> 5;
    const int wrow = row0 + warp * 16 * MT;
    const int warp_min_limit = ctx - q_len + wrow / p.group;
    const int warp_max_limit = ctx - q_len + (wrow + 16 * MT - 1) / p.group;
    warp_state<D, MT> st;
    state_init<D, MT>(st);
    const uint32_t q_base = smem_addr(q_smem + warp * 16 * MT * LD);
    for (int tile = first; tile < num_tiles; tile++) {
        const int slot =
            ring_next<D, BN, S, FP8>(k_smem, v_smem, p, table, first, tile, num_tiles, kv_end, kv_head, block);
        const int key0 = tile * BN;
        if (FP8) { /* every warp is past the previous tile (ring_next's barrier): widen this one */
            widen_fp8_rows<D>((char *)k16, (const uint8_t *)(k_smem + slot * SLOT), 0, BN, threadIdx.x, NUM_THREADS);
            widen_fp8_rows<D>((char *)v16, (const uint8_t *)(v_smem + slot * SLOT), 0, BN, threadIdx.x, NUM_THREADS);
            __syncthreads();
        }
        /* else every key is past this warp's rows, or before their windows */
        if (key0 <= warp_max_limit && (!WINDOW || key0 + BN > window_start(p, warp_min_limit)))
            warp_attend<D, BN, MT, SUMS_BY_MMA, false, 0, FP8>(
                st, q_base, smem_addr(FP8 ? k16 : k_smem + slot * SLOT), smem_addr(FP8 ? v16 : v_smem + slot * SLOT),
                key0, ctx - q_len, wrow, p.group,
                key0 + BN - 1 > warp_min_limit || (WINDOW && before_window(p, key0, warp_max_limit)),
                WINDOW ? p.window : 0, p.scale_log2);
        ring_release<S>();
    }
    row_sums_finish<D, MT, SUMS_BY_MMA>(st);
    store_rows<D, MT>(p, st, q0, rows, wrow, kv_head);
}

/* Shared memory of prefill_kernel: Q, the ring, and for an fp8 cache the
 * widened tile. */
template <int D, int BN, int MT, int S, bool FP8> static constexpr size_t prefill_smem_bytes(void)
{
    return (size_t)(NUM_WARPS * 16 * MT * (D + 8) + 2 * S * ring_slot_elems<D, BN, FP8>() +
                    (FP8 ? 2 * BN * (D + 8) : 0)) *
           sizeof(bf16);
}

/* Panels of 64 columns in a decode K/V tile (panel_offset). */
template <int D> static constexpr __host__ __device__ int decode_panels(void)
{
    return (D + 63) / 64;
}

/* The decode ring's stages: 2 of bf16 tiles (attn_paged.h), 3 of an fp8
 * cache's half-size ones. */
template <bool FP8> static constexpr __host__ __device__ int decode_stages(void)
{
    return FP8 ? 3 : FL_ATTN_DECODE_STAGES;
}

static constexpr __host__ __device__ int max_int(int a, int b)
{
    return a > b ? a : b;
}

/* Bytes of a decode CTA's K/V region: its ring, which the merges reuse
 * (the warps' O, m and l; the splits' weights, the sums and at least one
 * split's partial, merge_splits). bf16: what fl_attn_decode_smem counts. */
template <int D, bool FP8> static constexpr __host__ __device__ int decode_kv_bytes(void)
{
    constexpr int ROWS = FL_ATTN_DECODE_ROWS, BN = FL_ATTN_DECODE_TILE;
    return FP8 ? max_int(2 * decode_stages<true>() * BN * D,
                         max_int(4 * (4 * ROWS * D + 8 * ROWS), 4 * (ROWS * FL_ATTN_MAX_SPLITS + 2 * ROWS * D)))
               : 2 * FL_ATTN_DECODE_STAGES * decode_panels<D>() * BN * 128;
}

/* Shared memory of a decode CTA: bf16 as fl_attn_decode_smem (the split
 * heuristic's count), fp8 the slack, its K/V region, and no Q tile (its Q
 * is in registers). */
template <int D, bool FP8> static constexpr __host__ __device__ int decode_smem_bytes(void)
{
    return 1024 + decode_kv_bytes<D, FP8>() + (FP8 ? 0 : FL_ATTN_DECODE_ROWS * (D + 8) * 2);
}

/* The last split's merge of a (sequence, KV head)'s num_splits partials:
 * each split's rows x D outputs (normalised) at scratch row (first + split)
 * x ROWS, and its log-sum-exp. Every load is issued before any is used
 * (the partials are copied to shared memory in as few chunks as fit, the
 * weights computed while they fly): a loop of L2 reads, eight in flight,
 * made this tail ~5 us at B1 L32k (docs/PERF.md, step 13). Its loops stay
 * rolled, and the sums of a chunk wait in shared memory, not in unrolled
 * registers: one CTA a (sequence, KV head) runs this code once, at the end
 * of the kernel, with nothing to hide its instruction fetches. Unrolled
 * for 16 rows it took 7.5 us of B1 L32k's kernel after an L2 flush, rolled
 * (a quarter of the PTX) 3.3, for the same loads (docs/PERF.md, "The split
 * merge's code").
 * parts and lse are the sequence and KV head's first split's; smem is
 * the CTA's K/V slots: the weights [ROWS][FL_ATTN_MAX_SPLITS], the sums
 * [rows * D], then partials; out is the output of packed row 0, whose query
 * head is head0. A row's sink joins its denominator here, once, beside the
 * splits' sums. */
template <int D, bool FP8>
static __device__ __forceinline__ void merge_splits(const step_params &p, const float *parts, const float *lse,
                                                    float *smem, int num_splits, int rows, int head0, bf16 *out)
{
    constexpr int ROWS = FL_ATTN_DECODE_ROWS;
    constexpr int stage_floats = decode_kv_bytes<D, FP8>() / 4 - ROWS * FL_ATTN_MAX_SPLITS - ROWS * D;
    static_assert(stage_floats >= ROWS * D, "a split's partial fits beside the sums");
    float *weight = smem, *sums = smem + ROWS * FL_ATTN_MAX_SPLITS, *stage = sums + ROWS * D;
    const int n = rows * D, chunk = min(num_splits, stage_floats / n);
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    for (int e = threadIdx.x; e < n; e += NUM_THREADS)
        sums[e] = 0.f;
#pragma unroll 1
    for (int c0 = 0; c0 < num_splits; c0 += chunk) {
        const int cn = min(chunk, num_splits - c0);
        /* a warp a split: no index division in the issue loop */
        for (int sp = warp; sp < cn; sp += NUM_WARPS)
            for (int off = 4 * lane; off < n; off += 128)
                cp_async16(smem_addr(stage + sp * n + off), parts + (size_t)(c0 + sp) * ROWS * D + off, 16);
        cp_async_commit();
        if (c0 == 0) /* the weights, while the copies fly: a warp a row */
            for (int row = warp; row < rows; row += NUM_WARPS) {
                float lw[FL_ATTN_MAX_SPLITS / 32], mx = -INFINITY;
#pragma unroll
                for (int k = 0; k < FL_ATTN_MAX_SPLITS / 32; k++) {
                    const int sp = lane + 32 * k;
                    lw[k] = sp < num_splits ? __ldcg(lse + sp * ROWS + row) : -INFINITY;
                    mx = fmaxf(mx, lw[k]);
                }
#pragma unroll
                for (int o = 16; o > 0; o >>= 1)
                    mx = fmaxf(mx, __shfl_xor_sync(0xffffffff, mx, o));
                float den = 0.f;
#pragma unroll
                for (int k = 0; k < FL_ATTN_MAX_SPLITS / 32; k++)
                    den += lw[k] = exp2f(lw[k] - mx);
#pragma unroll
                for (int o = 16; o > 0; o >>= 1)
                    den += __shfl_xor_sync(0xffffffff, den, o);
                den = with_sink(p, den, head0 + row % p.group, mx);
#pragma unroll
                for (int k = 0; k < FL_ATTN_MAX_SPLITS / 32; k++)
                    weight[row * FL_ATTN_MAX_SPLITS + lane + 32 * k] = lw[k] / den;
            }
        cp_async_wait<0>();
        __syncthreads();
        const bool last = c0 + cn == num_splits;
#pragma unroll 1
        for (int e = threadIdx.x; e < n; e += NUM_THREADS) {
            const float *w = weight + (e / D) * FL_ATTN_MAX_SPLITS + c0, *x = stage + e;
            float acc = sums[e];
#pragma unroll 4
            for (int sp = 0; sp < cn; sp++)
                acc += w[sp] * x[sp * n];
            if (last)
                out[row_offset(p, 0, e / D, 0, D) + e % D] = __float2bfloat16(acc * p.v_scale);
            else
                sums[e] = acc; /* a thread's own elements: no barrier before the next chunk's */
        }
        __syncthreads(); /* the stage is refilled */
    }
}

/* ---- decode from an fp8 cache: keys on the MMA's 16-row side ----
 *
 * The bf16 decode puts a tile's packed query rows on the 16-row side of
 * m16n8k16, and a decode token of a GQA group of 2 fills 2 of its 16. The
 * fp8 decode computes the transposes, S^T = K Q^T and O^T = V^T P^T: keys
 * and head-dim columns take the 16-row side, the query rows the 8-wide one
 * (NT n-tiles: 1 for up to 8 rows, 2 for 16). That halves the MMAs a key
 * and the accumulators of O. The kernel is bound by its issue slots (ncu:
 * an instruction in 63% of the schedulers' cycles with rows on the 16 side,
 * docs/PERF.md), so each thread loads its own fragments' bytes from shared
 * memory with loads as wide as 16 bytes and converts them in registers
 * (widening tiles in shared memory first bound the kernel there):
 * - K, the A of S^T: thread t holds bytes [t D/4, (t + 1) D/4) of keys g
 *   and g + 8; k-step ks takes bytes 4 ks .. 4 ks + 3 of them as the MMA's
 *   columns 2t, 2t+1, 2t+8, 2t+9. Which columns pair up in a dot product
 *   does not matter so long as Q's B fragment agrees (fp8_q_fragments).
 * - P^T, the B of O^T, is S^T's accumulator transposed by movmatrix.
 * - V, the A of O^T: thread g holds columns [g D/8, (g + 1) D/8) of keys
 *   2t, 2t+1, 2t+8, 2t+9, key pairs side by side by byte permutes; MMA
 *   mt's rows g and g + 8 are columns g D/8 + 2 mt and + 1, so each thread
 *   ends with contiguous columns of O.
 * Tiles are fp8_swizzle'd rows: at head dim 128 the 16-byte loads of K
 * (keys g, chunks 2t, 2t + 1) and of V (keys 2t.., chunk g) hit every bank
 * once per phase of 8 lanes. Rows past the context are copied as zeros
 * (load_kv_fp8). */

/* One warp's state: O^T[mt][nt] (accumulator of MMA mt, n-tile nt),
 * m the raw-score maxima and l this thread's part of the sums of P (keys
 * g, g + 8) of query rows 8 (i >> 1) + 2t + (i & 1). */
template <int D, int NT> struct fp8_state {
    float o[D / 16][NT][4];
    float m[2 * NT];
    float l[2 * NT];
};

/* The shared-memory offsets of a thread's fragment bytes in a tile
 * (fp8_swizzle), the same for every tile: K's pieces of keys g and g + 8,
 * V's of keys 2t, 2t + 1, 2t + 8, 2t + 9 (from the warp's first row). With
 * lines of whole rows (head dims 128, 256) key r + 8 is swizzled as key r,
 * 8 D bytes on, which a load's immediate offset adds: half the registers. */
static constexpr __host__ __device__ int fp8_piece(int bytes, int widest)
{
    return bytes % widest == 0 ? widest : bytes % 8 == 0 ? 8 : bytes % 4 == 0 ? 4 : 2;
}
template <int D> struct fp8_offsets {
    static constexpr int KB = D / 4, VB = D / 8; /* bytes a thread reads per row of K, of V */
    /* load widths: 16 bytes, 8 at head dim 256 (whose two n-tiles spilled with 16) */
    static constexpr int KP = fp8_piece(KB, D >= 256 ? 8 : 16), VP = fp8_piece(VB, D >= 256 ? 8 : 16);
    static constexpr int ROWS_8_ON = D % 128 == 0; /* key r + 8 from key r's offset */
    uint32_t k[ROWS_8_ON ? 1 : 2][KB / KP], v[ROWS_8_ON ? 2 : 4][VB / VP];

    /* piece i of key g + 8 h (K), of key 2t + (k & 1) + 8 (k >> 1) (V) */
    __device__ __forceinline__ uint32_t key(int h, int i) const { return ROWS_8_ON ? k[0][i] + 8 * D * h : k[h][i]; }
    __device__ __forceinline__ uint32_t value(int k4, int i) const
    {
        return ROWS_8_ON ? v[k4 & 1][i] + 8 * D * (k4 >> 1) : v[k4][i];
    }
};

template <int D> __device__ __forceinline__ void fp8_offsets_init(fp8_offsets<D> &off, int wrow0)
{
    using O = fp8_offsets<D>;
    const int lane = threadIdx.x & 31, g = lane >> 2, t = lane & 3;
#pragma unroll
    for (int h = 0; h < (O::ROWS_8_ON ? 1 : 2); h++)
#pragma unroll
        for (int i = 0; i < O::KB / O::KP; i++)
            off.k[h][i] = fp8_swizzle((wrow0 + g + 8 * h) * D + t * O::KB + i * O::KP);
#pragma unroll
    for (int k = 0; k < (O::ROWS_8_ON ? 2 : 4); k++)
#pragma unroll
        for (int i = 0; i < O::VB / O::VP; i++)
            off.v[k][i] = fp8_swizzle((wrow0 + 2 * t + (k & 1) + 8 * (k >> 1)) * D + g * O::VB + i * O::VP);
}

/* A piece of P bytes at `at` as words (P = 2: one word, in its low half). */
template <int P> __device__ __forceinline__ void fp8_piece_words(uint32_t *w, const uint8_t *at)
{
    if (P == 16) {
        const uint4 x = *(const uint4 *)at;
        w[0] = x.x, w[1] = x.y, w[2] = x.z, w[3] = x.w;
    } else if (P == 8) {
        const uint2 x = *(const uint2 *)at;
        w[0] = x.x, w[1] = x.y;
    } else if (P == 4) {
        w[0] = *(const uint32_t *)at;
    } else {
        w[0] = *(const uint16_t *)at;
    }
}

/* float16 of a bf16 pair, saturated at float16's largest (a query beyond
 * it would overflow). */
__device__ __forceinline__ uint32_t bf16x2_to_f16x2_sat(uint32_t v)
{
    const float2 f = __bfloat1622float2(*(const __nv_bfloat162 *)&v);
    return pack_f16(fminf(fmaxf(f.x, -65504.f), 65504.f), fminf(fmaxf(f.y, -65504.f), 65504.f));
}

/* The warp's Q, the B fragments of S^T (zeros past rows), in float16: for
 * k-step ks and n-tile nt, row 8 nt + g, columns t D/4 + 4 ks .. + 3. */
template <int D, int NT>
static __device__ __forceinline__ void fp8_q_fragments(uint32_t (&qb)[D / 16][NT][2], const step_params &p, int q0,
                                                       int rows, int kv_head)
{
    const int lane = threadIdx.x & 31, g = lane >> 2, t = lane & 3;
#pragma unroll
    for (int nt = 0; nt < NT; nt++) {
        const int row = g + 8 * nt;
        const bf16 *src = p.q + row_offset(p, q0, row < rows ? row : 0, kv_head, D) + t * (D / 4);
#pragma unroll
        for (int ks = 0; ks < D / 16; ks++) {
            const uint2 v = row < rows ? *(const uint2 *)(src + 4 * ks) : make_uint2(0, 0);
            qb[ks][nt][0] = bf16x2_to_f16x2_sat(v.x); /* MMA k 2t, 2t + 1 */
            qb[ks][nt][1] = bf16x2_to_f16x2_sat(v.y); /* 2t + 8, 2t + 9 */
        }
    }
}

__device__ __forceinline__ uint32_t movmatrix_trans(uint32_t x)
{
    uint32_t y;
    asm("movmatrix.sync.aligned.m8n8.trans.b16 %0, %1;" : "=r"(y) : "r"(x));
    return y;
}

/* The online softmax of S^T (s[nt]: keys g, g + 8 by query rows 2t, 2t + 1
 * of n-tile nt), as softmax_step does it for the bf16 kernel's layout. */
template <int D, int NT>
__device__ __forceinline__ void fp8_softmax(fp8_state<D, NT> &st, float (&s)[NT][4], int key0, int first_pos,
                                            int group, bool need_mask, int window, float scale_log2)
{
    const int lane = threadIdx.x & 31, g = lane >> 2, t = lane & 3;
    if (need_mask)
#pragma unroll
        for (int nt = 0; nt < NT; nt++)
#pragma unroll
            for (int j = 0; j < 4; j++) {
                const int key = key0 + g + 8 * (j >> 1), limit = first_pos + (8 * nt + 2 * t + (j & 1)) / group;
                if (window > 0 ? (unsigned)(limit - key) >= (unsigned)window : key > limit)
                    s[nt][j] = -INFINITY;
            }
    float base[2 * NT], alpha[2 * NT];
    bool grew = false;
#pragma unroll
    for (int i = 0; i < 2 * NT; i++) {
        float mx = fmaxf(st.m[i], fmaxf(s[i >> 1][i & 1], s[i >> 1][2 + (i & 1)]));
#pragma unroll
        for (int o = 4; o < 32; o <<= 1)
            mx = fmaxf(mx, __shfl_xor_sync(0xffffffff, mx, o));
        grew |= raise_max(st.m[i], mx, scale_log2, base[i], alpha[i]);
    }
    if (__any_sync(0xffffffff, grew)) {
#pragma unroll
        for (int mt = 0; mt < D / 16; mt++)
#pragma unroll
            for (int nt = 0; nt < NT; nt++)
#pragma unroll
                for (int j = 0; j < 4; j++)
                    st.o[mt][nt][j] *= alpha[2 * nt + (j & 1)];
#pragma unroll
        for (int i = 0; i < 2 * NT; i++)
            st.l[i] *= alpha[i];
    }
#pragma unroll
    for (int nt = 0; nt < NT; nt++)
#pragma unroll
        for (int j = 0; j < 4; j++) {
            s[nt][j] = fast_exp2(fmaf(s[nt][j], scale_log2, -base[2 * nt + (j & 1)]));
            st.l[2 * nt + (j & 1)] += s[nt][j];
        }
}

/* The warp's 16 keys from key0 (rows at off of the tiles) against its
 * query rows (qb). */
template <int D, int NT>
static __device__ __forceinline__ void fp8_attend(fp8_state<D, NT> &st, const uint32_t (&qb)[D / 16][NT][2],
                                                  const uint8_t *k_tile, const uint8_t *v_tile,
                                                  const fp8_offsets<D> &off, int key0, int first_pos, int group,
                                                  bool need_mask, int window, float scale_log2)
{
    using O = fp8_offsets<D>;
    constexpr int KW = O::KP / 4, VW = (O::VP + 3) / 4; /* words a piece */
    float s[NT][4] = {};
    /* a piece of K at a time (both keys' bytes): its k-steps */
#pragma unroll
    for (int i = 0; i < O::KB / O::KP; i++) {
        uint32_t kw[2][KW];
        fp8_piece_words<O::KP>(kw[0], k_tile + off.key(0, i));
        fp8_piece_words<O::KP>(kw[1], k_tile + off.key(1, i));
#pragma unroll
        for (int w = 0; w < KW; w++) {
            const int ks = i * KW + w;
            uint32_t a[4];
            e4m3x4_to_f16x4(kw[0][w], a[0], a[2]);
            e4m3x4_to_f16x4(kw[1][w], a[1], a[3]);
#pragma unroll
            for (int nt = 0; nt < NT; nt++)
                mma_f16(s[nt], a, qb[ks][nt][0], qb[ks][nt][1]);
        }
    }
    fp8_softmax<D, NT>(st, s, key0, first_pos, group, need_mask, window, scale_log2);
    uint32_t pb[NT][2];
#pragma unroll
    for (int nt = 0; nt < NT; nt++) {
        pb[nt][0] = movmatrix_trans(pack_f16(s[nt][0], s[nt][1])); /* keys 2t, 2t + 1 of row g */
        pb[nt][1] = movmatrix_trans(pack_f16(s[nt][2], s[nt][3])); /* keys 2t + 8, 2t + 9 */
    }
    /* a piece of V at a time (the four keys' bytes): word w gives MMAs 2w
     * (its bytes 0, 1 of both keys of a pair, side by side) and 2w + 1
     * (bytes 2, 3) */
#pragma unroll
    for (int i = 0; i < O::VB / O::VP; i++) {
        uint32_t vw[4][VW];
#pragma unroll
        for (int k = 0; k < 4; k++)
            fp8_piece_words<O::VP>(vw[k], v_tile + off.value(k, i));
#pragma unroll
        for (int h = 0; h < 2 * VW && (i * VW * 2 + h) < D / 16; h++) {
            const int mt = i * VW * 2 + h, w = h / 2;
            const uint32_t sel = h & 1 ? 0x7362 : 0x5140;
            uint32_t a[4];
            e4m3x4_to_f16x4(__byte_perm(vw[0][w], vw[1][w], sel), a[0], a[1]);
            e4m3x4_to_f16x4(__byte_perm(vw[2][w], vw[3][w], sel), a[2], a[3]);
#pragma unroll
            for (int nt = 0; nt < NT; nt++)
                mma_f16(st.o[mt][nt], a, pb[nt][0], pb[nt][1]);
        }
    }
}

/* Leaves the warp's O (unnormalised, columns in order), m and l in the
 * merge buffers (rows of D floats, ROWS rows a warp): rows below `rows`. */
template <int D, int NT>
static __device__ __forceinline__ void fp8_state_store(fp8_state<D, NT> &st, float *o_buf, float *m_buf, float *l_buf,
                                                       int rows)
{
    constexpr int ROWS = FL_ATTN_DECODE_ROWS;
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, t = lane & 3;
#pragma unroll
    for (int i = 0; i < 2 * NT; i++)
#pragma unroll
        for (int o = 4; o < 32; o <<= 1)
            st.l[i] += __shfl_xor_sync(0xffffffff, st.l[i], o);
#pragma unroll
    for (int i = 0; i < 2 * NT; i++) {
        const int row = 8 * (i >> 1) + 2 * t + (i & 1);
        if (row >= rows)
            continue;
        float *o_row = o_buf + (warp * ROWS + row) * D + g * (D / 8);
#pragma unroll
        for (int mt = 0; mt < D / 16; mt++)
            *(float2 *)(o_row + 2 * mt) = make_float2(st.o[mt][i >> 1][i & 1], st.o[mt][i >> 1][2 + (i & 1)]);
        if (g == 0) {
            m_buf[warp * ROWS + row] = st.m[i];
            l_buf[warp * ROWS + row] = st.l[i];
        }
    }
}

/* ---- decode: one 16-row tile per CTA, keys split over warps and CTAs ---- */

/* The decode K/V ring: S slots, each a K and a V tile of BN rows in
 * panels (panel_offset), filled whole and announced by the slot's mbarrier.
 * With TMA (the Hopper set) one thread fills a slot with tensor copies, a
 * box of 64 columns by the rows of one cache block per panel: streaming the
 * B256 cache that way took 371 us where 16-byte copies from every thread
 * took 396 (docs/PERF.md, step 14). Without (the portable set) every
 * thread copies 16-byte chunks and its cp.async arrives on the barrier.
 * Rows past the context are not copied: the tile's user zeroes V there
 * (their scores are masked, but zero times stale V could be NaN). */

/* Fills a slot (k_tile, v_tile) with keys [key0, key0 + BN) of the
 * sequence (table) for kv_head; block is tile_block() of the tile (read
 * ahead by the filling threads: the tensor copies', every thread for fp8). */
template <int D, bool TMA, bool FP8>
static __device__ __forceinline__ void decode_fill(bf16 *k_tile, bf16 *v_tile, uint64_t *bar, const step_params &p,
                                                   const CUtensorMap *tk, const CUtensorMap *tv,
                                                   const int32_t *table, int key0, int ctx, int kv_head, int block)
{
    constexpr int BN = FL_ATTN_DECODE_TILE;
    if (FP8) { /* rows of bytes, each chunk's block id from the table */
        load_kv_fp8<D, BN, true>((uint8_t *)k_tile, (uint8_t *)v_tile, p, table, key0, ctx, kv_head, block);
        asm volatile("cp.async.mbarrier.arrive.noinc.shared.b64 [%0];\n" ::"r"(smem_addr(bar)) : "memory");
        return;
    }
    if (TMA) {
#if ARCH_SM90 /* the sm_80 build of the TMA kernel is empty (decode_kernel) */
        if (threadIdx.x == 0)
            tma_fill<D, BN>(k_tile, v_tile, bar, p, tk, tv, table, key0, ctx, kv_head, block);
#endif
        return;
    }
    constexpr int CH = D / 8;
    const int mask = (1 << p.block_shift) - 1;
    for (int c = threadIdx.x; c < BN * CH; c += NUM_THREADS) {
        const int j = c / CH, part = c % CH, key = key0 + j;
        const uint32_t off = panel_offset<BN>(j, part);
        if (key < ctx) {
            const size_t slot = (size_t)table[key >> p.block_shift] * (mask + 1) + (key & mask);
            const size_t src = (slot * p.num_kv_heads + kv_head) * D + part * 8;
            cp_async16(smem_addr(k_tile) + off, p.k_cache + src, 16);
            cp_async16(smem_addr(v_tile) + off, p.v_cache + src, 16);
        }
    }
    asm volatile("cp.async.mbarrier.arrive.noinc.shared.b64 [%0];\n" ::"r"(smem_addr(bar)) : "memory");
}

/* TMA: K/V tiles by tensor copies (the Hopper set; sm_90), else by
 * cp.async (the portable set). FP8: an fp8 cache, by fp8_attend over NT
 * n-tiles of query rows (1: a tile of at most 8 rows). */
template <int D, bool TMA, bool FP8, int NT = 2>
/* fp8: 4 CTAs an SM (128 registers), 3 with two n-tiles (their accumulators spilled at 4) */
__global__ void __launch_bounds__(NUM_THREADS, FP8 && D <= 128 ? (NT == 1 ? 4 : 3) : 1)
    decode_kernel(step_params p, int work_offset, int num_splits, const __grid_constant__ CUtensorMap k_map,
                  const __grid_constant__ CUtensorMap v_map)
{
    static_assert(!(TMA && FP8), "fp8 tiles come by cp.async");
    if (TMA && !ARCH_SM90) /* no tensor copies before sm_90: its sm_80 build is empty, never launched */
        return;
    constexpr int BN = FL_ATTN_DECODE_TILE, ROWS = FL_ATTN_DECODE_ROWS, NK = BN / NUM_WARPS;
    constexpr int S = decode_stages<FP8>(), TILE_BYTES = decode_panels<D>() * BN * 128;
    /* a ring slot's K or V tile: bf16 panels, or an fp8 cache's rows of D bytes */
    constexpr int SLOT_BYTES = FP8 ? BN * D : TILE_BYTES;
    extern __shared__ uint4 smem_raw[];
    __shared__ uint64_t full[S];
    /* the tensor copies' 128-byte swizzle repeats every 1 KiB: slots start
     * at 1 KiB boundaries (fl_attn_decode_smem reserves the slack) */
    char *kv_smem = (char *)smem_raw + ((1024 - (smem_addr(smem_raw) & 1023)) & 1023); /* [S][K, V] */
    bf16 *q_smem = (bf16 *)(kv_smem + 2 * S * TILE_BYTES); /* bf16 only: the fp8 kernel's Q is in registers */

    const int item = blockIdx.x, kv_head = blockIdx.y, split = blockIdx.z;
    const int seq = p.work[work_offset + item];
    const int q0 = p.query_start[seq], q_len = p.query_start[seq + 1] - q0;
    const int ctx = p.seq_lens[seq], rows = q_len * p.group;
    const int32_t *table = p.block_tables + (size_t)seq * p.max_blocks_per_seq;
    /* the splits share the tiles from the one holding the first row's window start */
    const int first_tile = window_start(p, ctx - q_len) / BN, num_tiles = (ctx + BN - 1) / BN;
    const int per_split = (num_tiles - first_tile + num_splits - 1) / num_splits;
    const int tile0 = first_tile + split * per_split, tile1 = min(num_tiles, tile0 + per_split);

    if (threadIdx.x == 0) {
        for (int i = 0; i < S; i++)
            mbar_init(&full[i], TMA ? 1 : NUM_THREADS);
#if ARCH_SM90
        if (TMA)
            asm volatile("fence.mbarrier_init.release.cluster;\n" ::: "memory"); /* for the tensor copies */
#endif
    }
    if (!FP8) /* the fp8 kernel reads its Q fragments into registers */
        load_q<D>(q_smem, p, q0, rows, 0, ROWS, kv_head);
    cp_async_commit();
    __syncthreads(); /* the barriers are initialised */
    auto k_slot = [&](int i) { return (bf16 *)(kv_smem + 2 * i * SLOT_BYTES); };
    auto v_slot = [&](int i) { return (bf16 *)(kv_smem + (2 * i + 1) * SLOT_BYTES); };
    /* a tile's block id, read only by the threads that fill slots with it */
    auto fill_block = [&](int t) {
        return (FP8 || (TMA && threadIdx.x == 0)) && t < tile1 ? tile_block<BN>(p, table, t * BN, ctx) : 0;
    };
    for (int i = 0; i < S && tile0 + i < tile1; i++)
        decode_fill<D, TMA, FP8>(k_slot(i), v_slot(i), &full[i], p, &k_map, &v_map, table, (tile0 + i) * BN, ctx,
                                 kv_head, fill_block(tile0 + i));
    /* the block id of the next tile to fill lands while tiles compute */
    int block = fill_block(tile0 + S);
    cp_async_wait<0>(); /* Q */
    __syncthreads();

    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const int min_limit = ctx - q_len;
    warp_state<D, 1> st; /* the bf16 kernel's state, */
    fp8_state<D, NT> st8; /* the fp8 kernel's, and its Q and fragment offsets */
    uint32_t qb[D / 16][NT][2];
    fp8_offsets<D> off8;
    if (FP8) {
        for (int i = 0; i < 2 * NT; i++)
            st8.m[i] = -INFINITY, st8.l[i] = 0.f;
        for (int mt = 0; mt < D / 16; mt++)
            for (int nt = 0; nt < NT; nt++)
                st8.o[mt][nt][0] = st8.o[mt][nt][1] = st8.o[mt][nt][2] = st8.o[mt][nt][3] = 0.f;
        fp8_q_fragments<D, NT>(qb, p, q0, rows, kv_head);
        fp8_offsets_init<D>(off8, warp * NK);
    } else {
        state_init<D, 1>(st);
    }
    const uint32_t q_base = smem_addr(q_smem);
    for (int tile = tile0; tile < tile1; tile++) {
        const int i = tile - tile0, slot = i % S;
        mbar_wait(&full[slot], (i / S) & 1);
        const int key0 = tile * BN + warp * NK;
        const bool need_mask = key0 + NK - 1 > min_limit || before_window(p, key0, ctx - 1);
        if (FP8) { /* rows past the context were copied as zeros */
            fp8_attend<D, NT>(st8, qb, (const uint8_t *)k_slot(slot), (const uint8_t *)v_slot(slot), off8, key0,
                              ctx - q_len, p.group, need_mask, p.window, p.scale_log2);
        } else {
            if (tile * BN + BN > ctx) {
                zero_v_rows<D, BN, NUM_THREADS>((char *)v_slot(slot), ctx - tile * BN);
                __syncthreads();
            }
            warp_attend<D, NK, 1, false, true, BN>(st, q_base, smem_addr(k_slot(slot)) + warp * NK * 128,
                                                   smem_addr(v_slot(slot)) + warp * NK * 128, key0, ctx - q_len, 0,
                                                   p.group, need_mask, p.window, p.scale_log2);
        }
        __syncthreads(); /* the slot is free */
        if (tile + S < tile1) {
            decode_fill<D, TMA, FP8>(k_slot(slot), v_slot(slot), &full[slot], p, &k_map, &v_map, table,
                                     (tile + S) * BN, ctx, kv_head, block);
            block = fill_block(tile + S + 1);
        }
    }

    /* merge the four warps: each leaves its O (unnormalised), m and l;
     * only the tile's real rows (a decode token of a GQA group of 2 fills
     * 2 of 16) */
    float *o_buf = (float *)kv_smem;                /* [NUM_WARPS][ROWS][D] */
    float *m_buf = o_buf + NUM_WARPS * ROWS * D;    /* [NUM_WARPS][ROWS] */
    float *l_buf = m_buf + NUM_WARPS * ROWS;
    if (FP8) {
        fp8_state_store<D, NT>(st8, o_buf, m_buf, l_buf, rows);
    } else {
        row_sums_finish<D, 1, false>(st);
        const int t = lane & 3;
#pragma unroll
        for (int r = 0; r < 2; r++) {
            const int row = (lane >> 2) + 8 * r;
            if (row >= rows)
                continue;
            float *o_row = o_buf + (warp * ROWS + row) * D;
#pragma unroll
            for (int dt = 0; dt < D / 8; dt++) {
                o_row[dt * 8 + 2 * t] = st.o[0][dt][2 * r];
                o_row[dt * 8 + 2 * t + 1] = st.o[0][dt][2 * r + 1];
            }
            if (t == 0) {
                m_buf[warp * ROWS + row] = st.m[r];
                l_buf[warp * ROWS + row] = row_sum(st, r);
            }
        }
    }
    __syncthreads();
    const size_t first = ((size_t)item * p.num_kv_heads + kv_head) * num_splits;
    float *o_part = p.scratch + (first + split) * ROWS * D;
    float *lse = p.scratch + (size_t)gridDim.x * p.num_kv_heads * num_splits * ROWS * D;
    for (int e = threadIdx.x; e < rows * D; e += NUM_THREADS) {
        const int row = e / D, col = e % D;
        float mx = -INFINITY;
#pragma unroll
        for (int w = 0; w < NUM_WARPS; w++)
            mx = fmaxf(mx, m_buf[w * ROWS + row]);
        float l = 0.f, o = 0.f;
        if (mx != -INFINITY) {
#pragma unroll
            for (int w = 0; w < NUM_WARPS; w++) {
                const float f = exp2f((m_buf[w * ROWS + row] - mx) * p.scale_log2);
                l += l_buf[w * ROWS + row] * f;
                o += o_buf[(w * ROWS + row) * D + col] * f;
            }
        }
        if (num_splits == 1) {
            p.out[row_offset(p, q0, row, kv_head, D) + col] = __float2bfloat16(
                o * p.v_scale / with_sink(p, l, kv_head * p.group + row % p.group, mx * p.scale_log2));
        } else {
            o_part[e] = l > 0.f ? o / l : 0.f;
            if (col == 0)
                lse[(first + split) * ROWS + row] = l > 0.f ? mx * p.scale_log2 + log2f(l) : -INFINITY;
        }
    }
    if (num_splits == 1)
        return;

    /* The last split to finish merges them all (no combine launch): the
     * partials are made visible, a counter per (sequence, KV head) counts
     * the splits, and the one that completes it resets it for the next
     * launch and reads the others' partials past L1. */
    __shared__ int is_last;
    __threadfence();
    __syncthreads();
    if (threadIdx.x == 0) {
        int32_t *counter = p.split_counters + (size_t)item * p.num_kv_heads + kv_head;
        is_last = atomicAdd(counter, 1) == num_splits - 1;
        if (is_last)
            *counter = 0;
    }
    __syncthreads();
    if (!is_last)
        return;
    __threadfence();
    merge_splits<D, FP8>(p, p.scratch + first * ROWS * D, lse + first * ROWS, (float *)kv_smem, num_splits, rows,
                    kv_head * p.group, p.out + row_offset(p, q0, 0, kv_head, D));
}

/* ---- launch ---- */

/* The prefill's keys per tile for an fp8 cache: head dim 128's bf16
 * kernel uses all 255 registers, and the widening spilled it at 64 keys a
 * tile; 32 keys free the scores' 32 registers. */
template <int D, int BN> static constexpr int fp8_prefill_tile(void)
{
    return D == 128 ? 32 : BN;
}

/* The kernels of one head dim need their shared memory allowed once. */
template <int D, int BN, int MT, int S> static cudaError_t configure(void)
{
    constexpr int FP8_BN = fp8_prefill_tile<D, BN>();
    const int decode_smem = decode_smem_bytes<D, false>(), decode_fp8_smem = decode_smem_bytes<D, true>();
    const int prefill_smem = (int)prefill_smem_bytes<D, BN, MT, S, false>();
    const int prefill_fp8_smem = (int)prefill_smem_bytes<D, FP8_BN, MT, S, true>();
    const void *prefills[4] = { (const void *)prefill_kernel<D, BN, MT, S, false, false>,
                                (const void *)prefill_kernel<D, BN, MT, S, true, false>,
                                (const void *)prefill_kernel<D, FP8_BN, MT, S, false, true>,
                                (const void *)prefill_kernel<D, FP8_BN, MT, S, true, true> };
    const void *decodes[4] = { (const void *)decode_kernel<D, false, false>, (const void *)decode_kernel<D, true, false>,
                               (const void *)decode_kernel<D, false, true, 1>, (const void *)decode_kernel<D, false, true, 2> };
    cudaError_t e = cudaSuccess;
    for (int i = 0; i < 4 && e == cudaSuccess; i++)
        e = cudaFuncSetAttribute(prefills[i], cudaFuncAttributeMaxDynamicSharedMemorySize,
                                 i < 2 ? prefill_smem : prefill_fp8_smem);
    for (int i = 0; i < 4 && e == cudaSuccess; i++)
        e = cudaFuncSetAttribute(decodes[i], cudaFuncAttributeMaxDynamicSharedMemorySize,
                                 i < 2 ? decode_smem : decode_fp8_smem);
    return e;
}

/* D: head dim; BN: prefill keys per tile; MT: 16-row tiles per prefill
 * warp; S: prefill pipeline stages. hopper: the Hopper set (its prefill
 * kernel where it is built for D and the cache is bf16, decode of a bf16
 * cache by tensor copies). fp8: the cache is float8 e4m3. splits: the
 * decode CTAs per sequence and KV head (fl_attn_plan_splits). */
template <int D, int BN, int MT, int S>
static cudaError_t launch(const step_params &p, const fl_attn_plan *plan, int splits, const CUtensorMap maps[2],
                          bool hopper, bool fp8, cudaStream_t stream)
{
    constexpr int FP8_BN = fp8_prefill_tile<D, BN>();
    static unsigned configured; /* a bit per GPU */
    if (fl_cuda_first_on_device(&configured)) {
        const cudaError_t e = configure<D, BN, MT, S>();
        if (e != cudaSuccess)
            return e;
        fl_cuda_mark_device(&configured);
    }
    if (plan->num_prefill > 0) {
        const dim3 grid(plan->num_prefill, p.num_kv_heads);
        const bool sm90 = hopper && !fp8 && prefill_sm90_supports(D);
        if (plan->prefill_rows != (sm90 ? prefill_sm90_rows(D) : NUM_WARPS * MT * 16))
            return cudaErrorInvalidValue; /* fl_attn_prefill_rows and the kernels disagree */
        if (sm90) {
            const cudaError_t e = prefill_sm90_launch(D, grid, p, maps, stream);
            if (e != cudaSuccess)
                return e;
        } else {
            const bool w = p.window > 0;
            const auto prefill = fp8 ? (w ? prefill_kernel<D, FP8_BN, MT, S, true, true> : prefill_kernel<D, FP8_BN, MT, S, false, true>)
                                     : (w ? prefill_kernel<D, BN, MT, S, true, false> : prefill_kernel<D, BN, MT, S, false, false>);
            const size_t smem = fp8 ? prefill_smem_bytes<D, FP8_BN, MT, S, true>() : prefill_smem_bytes<D, BN, MT, S, false>();
            prefill<<<grid, NUM_THREADS, smem, stream>>>(p);
        }
    }
    if (plan->num_decode > 0) {
        const int offset = 2 * plan->num_prefill;
        /* fp8: one n-tile of query rows when every decode tile has at most 8 */
        const auto decode = fp8 ? (plan->decode_rows <= 8 ? decode_kernel<D, false, true, 1> : decode_kernel<D, false, true, 2>)
                                : hopper ? decode_kernel<D, true, false> : decode_kernel<D, false, false>;
        const size_t smem = fp8 ? decode_smem_bytes<D, true>() : decode_smem_bytes<D, false>();
        decode<<<dim3(plan->num_decode, p.num_kv_heads, splits), NUM_THREADS, smem, stream>>>(
            p, offset, splits, maps[0], maps[1]);
    }
    return cudaGetLastError();
}

/* The tensor maps of the Hopper set's copies (tma_fill): each cache as
 * (tokens, KV heads, head dim), boxes of 64 columns by the rows of one
 * cache block (at most TMA_BOX_ROWS), 128-byte swizzle. The encoder is
 * the driver's, reached through cudart: nothing links libcuda. */
static cudaError_t kv_tensor_maps(const fl_attn_shape *s, const fl_attn_args *a, CUtensorMap maps[2])
{
    static PFN_cuTensorMapEncodeTiled_v12000 encode;
    if (!encode) {
        cudaDriverEntryPointQueryResult found;
        const cudaError_t e = cudaGetDriverEntryPointByVersion("cuTensorMapEncodeTiled", (void **)&encode, 12000,
                                                               cudaEnableDefault, &found);
        if (e != cudaSuccess || found != cudaDriverEntryPointSuccess) {
            encode = NULL;
            return e != cudaSuccess ? e : cudaErrorNotSupported;
        }
    }
    const cuuint64_t dims[3] = { (cuuint64_t)s->head_dim, (cuuint64_t)s->num_kv_heads,
                                 (cuuint64_t)a->num_blocks * s->block_size };
    const cuuint64_t strides[2] = { (cuuint64_t)s->head_dim * 2, (cuuint64_t)s->num_kv_heads * s->head_dim * 2 };
    const cuuint32_t box[3] = { 64, 1, (cuuint32_t)(s->block_size < FL_ATTN_DECODE_TILE ? s->block_size
                                                                                       : FL_ATTN_DECODE_TILE) };
    const cuuint32_t steps[3] = { 1, 1, 1 };
    const void *caches[2] = { a->k_cache, a->v_cache };
    for (int i = 0; i < 2; i++)
        if (encode(&maps[i], CU_TENSOR_MAP_DATA_TYPE_BFLOAT16, 3, (void *)caches[i], dims, strides, box, steps,
                   CU_TENSOR_MAP_INTERLEAVE_NONE, CU_TENSOR_MAP_SWIZZLE_128B, CU_TENSOR_MAP_L2_PROMOTION_NONE,
                   CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE) != CUDA_SUCCESS)
            return cudaErrorInvalidValue;
    return cudaSuccess;
}

extern "C" int fl_attn_paged_run(const fl_attn_shape *shape, fl_attn_kernel_set kernels, const fl_attn_plan *plan,
                                 const fl_attn_args *a, void *stream)
{
    char why[128];
    const bool fp8 = shape->kv_type == FL_ATTN_KV_FP8_E4M3;
    if (fl_attn_paged_supports(shape, kernels, why, sizeof why) != 0 || a->window < 0 ||
        (fp8 && !(a->k_scale > 0.f && a->v_scale > 0.f)) ||
        (plan->num_prefill > 0 && plan->prefill_rows != fl_attn_prefill_rows(shape, kernels)))
        return (int)cudaErrorInvalidValue; /* the last: a plan made for the other kernel set */
    step_params p;
    p.q = (const bf16 *)a->q;
    p.k_cache = (const bf16 *)a->k_cache;
    p.v_cache = (const bf16 *)a->v_cache;
    p.out = (bf16 *)a->out;
    p.query_start = a->query_start;
    p.seq_lens = a->seq_lens;
    p.block_tables = a->block_tables;
    p.work = a->work;
    p.scratch = a->scratch;
    p.split_counters = a->split_counters;
    p.sinks = a->sinks;
    p.max_blocks_per_seq = a->max_blocks_per_seq;
    p.num_heads = shape->num_heads;
    p.num_kv_heads = shape->num_kv_heads;
    p.group = shape->num_heads / shape->num_kv_heads;
    p.block_shift = __builtin_ctz((unsigned)shape->block_size);
    p.window = a->window;
    p.scale_log2 = a->scale * (fp8 ? a->k_scale : 1.f) * LOG2E;
    p.v_scale = fp8 ? a->v_scale : 1.f;
    const bool hopper = kernels == FL_ATTN_HOPPER;
    CUtensorMap maps[2];
    memset(maps, 0, sizeof maps); /* unread by the portable set: it copies without them */
    const bool maps_read = hopper && !fp8 &&
                           (plan->num_decode > 0 || (plan->num_prefill > 0 && prefill_sm90_supports(shape->head_dim)));
    if (maps_read) {
        const cudaError_t e = kv_tensor_maps(shape, a, maps);
        if (e != cudaSuccess)
            return (int)e;
    }
    cudaStream_t s = (cudaStream_t)stream;
    const int splits = fl_attn_plan_splits(plan, shape, a->window);
    switch (shape->head_dim) {
    /* MT: fl_attn_prefill_rows() of the portable set over 64 */
    case 16: return (int)launch<16, 16, 2, 3>(p, plan, splits, maps, hopper, fp8, s);
    case 32: return (int)launch<32, 32, 2, 3>(p, plan, splits, maps, hopper, fp8, s);
    case 64: return (int)launch<64, 64, 2, 3>(p, plan, splits, maps, hopper, fp8, s);
    case 96: return (int)launch<96, 32, 2, 3>(p, plan, splits, maps, hopper, fp8, s);
    case 128: return (int)launch<128, 64, 2, 2>(p, plan, splits, maps, hopper, fp8, s);
    default: return (int)launch<256, 32, 1, 2>(p, plan, splits, maps, hopper, fp8, s);
    }
}
