/* attn_prefill_sm90.cu - the prefill kernel for Hopper (sm_90a): warpgroup
 * MMAs (wgmma) fed by tensor copies, for head dims 64, 96, 128 and 256; the
 * portable mma.sync prefill of attn_paged.cu runs everywhere else.
 *
 * A CTA is fl_attn_prefill_rows packed rows: consumer warpgroups of 64
 * rows, three (FA3's 192-row tile; with two, the kernel waited on its
 * softmax's latencies: the third gave +9-19%, docs/PERF.md) or two at head
 * dim 256 (128 accumulators a thread), and a producer warp, or a producer
 * warpgroup that hands its registers to the consumers (wg_consumer_regs).
 * The producer fills a ring of WG_STAGES slots of keys by tensor copies
 * (128 keys; 64 at head dim 256, whose tiles are twice as wide, and with
 * a sliding window);
 * each warpgroup computes S = QK^T with Q and K read by the tensor cores
 * from shared memory (wgmma m64nBNk16), the softmax step in registers (the
 * accumulators have mma.sync's fragment layout, so softmax_step serves
 * both), and O += PV with P from registers and V read as N-major (m64n64k16
 * per 64 columns of V; m64n32k16 for head dim 96's last 32). Head dim 96
 * lies in two 64-column panels whose last 32 columns the copies fill with
 * zeros (outside the cache's rows): QK^T reads 96 columns, PV writes 96.
 * The warpgroups release a slot through the slot's `empty` barrier and run
 * a slot apart at most, so one's softmax overlaps the others' MMAs. With a
 * sliding window the ring starts at the tile holding the first row's
 * window start. */
#include "attention/attn_device.cuh"
#include "cuda/cuda_check.h"

#define WG_STAGES 2

/* Consumer warpgroups of a CTA (its rows over 64: fl_attn_prefill_rows),
 * keys per ring tile (WG_WINDOW_KEYS with a sliding window). */
static constexpr __host__ __device__ int wg_groups(int D)
{
    return D > 128 ? 2 : 3;
}
static constexpr __host__ __device__ int wg_keys(int D)
{
    return D > 128 ? 64 : 128;
}
/* A window's first and last tiles are mostly keys outside it: gpt-oss's
 * windowed prefill (W128, B4 S8k) took 776 us in 128-key tiles, 710 in
 * 64-key ones (docs/PERF.md). The choice is by window > 0 alone: only W128
 * was measured, and a window of thousands of keys, whose edge tiles are a
 * small share, may run slower in 64-key tiles (without a window they lose
 * 6-13%); a threshold on the window's size needs that measurement. */
#define WG_WINDOW_KEYS 64
/* Registers a consumer thread takes from the producer (setmaxnreg), 0 for
 * none. A CTA of three consumer warpgroups and a producer warp starts at
 * 128 registers a thread, which spilled head dims 96 and 128 (276 and 620
 * bytes); theirs have a producer warpgroup instead that drops to 24 so the
 * consumers run at 160 (24 x 128 + 160 x 384 = 64,512 of 65,536), FA3's
 * split for three. Head dim 256's two consumer warpgroups take 240 (24 x
 * 128 + 240 x 256), as FA3's two do; one warpgroup of 64 rows alone (255
 * registers, no producer warpgroup) ran at 0.64x cuDNN, two at 0.86x. */
static constexpr __host__ __device__ int wg_consumer_regs(int D)
{
    return D == 96 || D == 128 ? 160 : D == 256 ? 240 : 0;
}
#define WG_PRODUCER_REGS 24
/* Threads: the consumers, and a producer warp or warpgroup. */
static constexpr __host__ __device__ int wg_threads(int D)
{
    return wg_groups(D) * 128 + (wg_consumer_regs(D) ? 128 : 32);
}

#if ARCH_SM90
/* The descriptor of a wgmma operand in the panels of panel_offset (128-byte
 * swizzle, 1 KiB-aligned atoms): start address; lbo, the step between 64
 * columns of an N-major operand (unused for K-major ones); 8-row groups
 * 1 KiB apart. */
static __device__ __forceinline__ uint64_t wg_desc(uint32_t addr, uint32_t lbo)
{
    return (uint64_t)((addr & 0x3FFFF) >> 4) | (uint64_t)((lbo & 0x3FFFF) >> 4) << 16 |
           (uint64_t)(1024 >> 4) << 32 | 1ull << 62;
}

/* The accumulator operands of a wgmma: N / 8 fragments of 4 floats. */
#define WG_ACC4(d, i) "+f"(d[i][0]), "+f"(d[i][1]), "+f"(d[i][2]), "+f"(d[i][3])
#define WG_ACC16(d, i) WG_ACC4(d, i), WG_ACC4(d, i + 1), WG_ACC4(d, i + 2), WG_ACC4(d, i + 3)
#define WG_ACC32(d) WG_ACC16(d, 0), WG_ACC16(d, 4)
#define WG_REGS16 "%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15"
#define WG_REGS32 WG_REGS16 ", %16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31"

/* d (64 x N, fp32) = a (64 x 16, K-major, shared) * b (16 x N, K-major,
 * shared), plus d if accumulate; N is 128 or 64. */
template <int N>
static __device__ __forceinline__ void wgmma_qk(float (*d)[4], uint64_t a, uint64_t b, int accumulate)
{
    if constexpr (N == 128)
        asm volatile("{\n.reg .pred acc;\nsetp.ne.b32 acc, %66, 0;\n"
                     "wgmma.mma_async.sync.aligned.m64n128k16.f32.bf16.bf16 {" WG_REGS32
                     ", %32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, "
                     "%48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63}, %64, %65, acc, 1, 1, 0, 0;\n}\n"
                     : WG_ACC32(d), WG_ACC32((d + 8))
                     : "l"(a), "l"(b), "r"(accumulate));
    else
        asm volatile("{\n.reg .pred acc;\nsetp.ne.b32 acc, %34, 0;\n"
                     "wgmma.mma_async.sync.aligned.m64n64k16.f32.bf16.bf16 {" WG_REGS32 "}, %32, %33, acc, 1, 1, 0, 0;\n}\n"
                     : WG_ACC32(d)
                     : "l"(a), "l"(b), "r"(accumulate));
}

/* d (64 x N, fp32) += a (64 x 16, registers) * b (16 x N, N-major, shared);
 * N is 64 or 32. */
template <int N>
static __device__ __forceinline__ void wgmma_pv(float (*d)[4], const uint32_t a[4], uint64_t b)
{
    if constexpr (N == 64)
        asm volatile("wgmma.mma_async.sync.aligned.m64n64k16.f32.bf16.bf16 {" WG_REGS32
                     "}, {%32, %33, %34, %35}, %36, 1, 1, 1, 1;\n"
                     : WG_ACC32(d)
                     : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(b));
    else
        asm volatile("wgmma.mma_async.sync.aligned.m64n32k16.f32.bf16.bf16 {" WG_REGS16
                     "}, {%16, %17, %18, %19}, %20, 1, 1, 1, 1;\n"
                     : WG_ACC16(d, 0)
                     : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(b));
}

static __device__ __forceinline__ void wgmma_fence(void)
{
    asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory");
}

/* Ends a batch of wgmmas and waits for it. */
static __device__ __forceinline__ void wgmma_commit_wait(void)
{
    asm volatile("wgmma.commit_group.sync.aligned;\nwgmma.wait_group.sync.aligned 0;\n" ::: "memory");
}

/* Pins registers an asynchronous MMA reads or writes at this point of the
 * program: the compiler may not move their other uses across it. */
template <int N> static __device__ __forceinline__ void hold_registers(float (*d)[4])
{
#pragma unroll
    for (int i = 0; i < N; i++)
        asm volatile("" : "+f"(d[i][0]), "+f"(d[i][1]), "+f"(d[i][2]), "+f"(d[i][3])::"memory");
}

/* Sets this warpgroup's registers a thread (setmaxnreg): the producer
 * gives up what the consumers take. */
template <int N> static __device__ __forceinline__ void registers_dec(void)
{
    asm volatile("setmaxnreg.dec.sync.aligned.u32 %0;\n" ::"n"(N));
}
template <int N> static __device__ __forceinline__ void registers_inc(void)
{
    asm volatile("setmaxnreg.inc.sync.aligned.u32 %0;\n" ::"n"(N));
}

/* Named barrier of the n threads from warp 0 up. */
static __device__ __forceinline__ void bar_sync(int id, int n)
{
    asm volatile("bar.sync %0, %1;\n" ::"r"(id), "r"(n) : "memory");
}

#endif

template <int D, int BN>
__global__ void __launch_bounds__(wg_threads(D), 1)
    prefill_sm90_kernel(step_params p, const __grid_constant__ CUtensorMap k_map,
                         const __grid_constant__ CUtensorMap v_map)
{
#if ARCH_SM90
    constexpr int S = WG_STAGES, GROUPS = wg_groups(D), ROWS = 64 * GROUPS, PANELS = (D + 63) / 64;
    constexpr int TILE_BYTES = PANELS * BN * 128, Q_BYTES = PANELS * ROWS * 128;
    extern __shared__ uint4 smem_raw[];
    __shared__ uint64_t full[S], empty[S];
    char *q_smem = (char *)smem_raw + ((1024 - (smem_addr(smem_raw) & 1023)) & 1023);
    char *kv_smem = q_smem + Q_BYTES; /* [S][K, V] */

    const int seq = p.work[2 * blockIdx.x], row0 = p.work[2 * blockIdx.x + 1];
    const int kv_head = blockIdx.y;
    const int q0 = p.query_start[seq], q_len = p.query_start[seq + 1] - q0;
    const int ctx = p.seq_lens[seq], rows = q_len * p.group;
    const int32_t *table = p.block_tables + (size_t)seq * p.max_blocks_per_seq;
    const int kv_end = ctx - q_len + (min(row0 + ROWS, rows) - 1) / p.group + 1;
    /* tiles before the one holding the first row's window start hold no key any row sees */
    const int first = window_start(p, ctx - q_len + row0 / p.group) / BN;
    const int num_tiles = (kv_end + BN - 1) / BN;
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;

    if (threadIdx.x == 0) {
        for (int i = 0; i < S; i++) {
            mbar_init(&full[i], 1);
            mbar_init(&empty[i], 4 * GROUPS); /* a consumer warp each */
        }
        asm volatile("fence.mbarrier_init.release.cluster;\n" ::: "memory");
    }
    __syncthreads();

    constexpr int CONSUMER_REGS = wg_consumer_regs(D);
    if (warp >= 4 * GROUPS) { /* the producer: its first thread issues the copies */
        if constexpr (CONSUMER_REGS != 0)
            registers_dec<WG_PRODUCER_REGS>();
        if (warp == 4 * GROUPS && lane == 0)
            for (int tile = first; tile < num_tiles; tile++) {
                const int n = tile - first, slot = n % S; /* n: the tile's place in the ring */
                if (n >= S)
                    mbar_wait(&empty[slot], (n / S - 1) & 1);
                char *k_tile = kv_smem + 2 * slot * TILE_BYTES;
                tma_fill<D, BN>((bf16 *)k_tile, (bf16 *)(k_tile + TILE_BYTES), &full[slot], p, &k_map, &v_map,
                                table, tile * BN, kv_end, kv_head, tile_block<BN>(p, table, tile * BN, kv_end));
            }
        return;
    }

    if constexpr (CONSUMER_REGS != 0)
        registers_inc<CONSUMER_REGS>();
    /* this warpgroup's 64 rows of Q, swizzled like the tensor copies write */
    const int wg = warp >> 2, wg_row0 = row0 + 64 * wg;
    for (int c = threadIdx.x & 127; c < 64 * (D / 8); c += 128) {
        const int j = c / (D / 8), part = c % (D / 8), r = wg_row0 + j;
        const uint32_t dst = smem_addr(q_smem) + panel_offset<ROWS>(64 * wg + j, part);
        if (r < rows)
            cp_async16(dst, p.q + row_offset(p, q0, r, kv_head, D) + part * 8, 16);
        else
            cp_async16(dst, p.q, 0);
    }
    cp_async_commit();
    cp_async_wait<0>();
    asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory"); /* for the tensor cores */
    bar_sync(1 + wg, 128);

    const int wrow = wg_row0 + 16 * (warp & 3);
    const int wg_min_limit = ctx - q_len + wg_row0 / p.group;
    const int wg_max_limit = ctx - q_len + (wg_row0 + 63) / p.group;
    const uint32_t q_base = smem_addr(q_smem) + 64 * wg * 128;
    warp_state<D, 1> st;
    state_init<D, 1>(st);
    for (int tile = first; tile < num_tiles; tile++) {
        const int n = tile - first, slot = n % S, key0 = tile * BN;
        const uint32_t k_base = smem_addr(kv_smem) + 2 * slot * TILE_BYTES, v_base = k_base + TILE_BYTES;
        mbar_wait(&full[slot], (n / S) & 1);
        if (key0 + BN > kv_end) {
            /* keys past the end: masked, but zero times stale V could be
             * NaN; the warpgroups zero and wait (the last tile only) */
            zero_v_rows<D, BN, 128 * GROUPS>(kv_smem + (2 * slot + 1) * TILE_BYTES, kv_end - key0);
            asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory");
            bar_sync(1 + GROUPS, 128 * GROUPS); /* 1 .. GROUPS: each warpgroup's own */
        }
        /* else every key is past this warpgroup's rows, or before their windows */
        if (wg_row0 < rows && key0 <= wg_max_limit && key0 + BN > window_start(p, wg_min_limit)) {
            float s[1][BN / 8][4];
#pragma unroll
            for (int i = 0; i < BN / 8; i++)
                s[0][i][0] = s[0][i][1] = s[0][i][2] = s[0][i][3] = 0.f;
            hold_registers<BN / 8>(s[0]);
            wgmma_fence();
#pragma unroll
            for (int ks = 0; ks < D / 16; ks++) {
                const uint32_t off = (ks / 4) * ROWS * 128 + (ks % 4) * 32;
                wgmma_qk<BN>(s[0], wg_desc(q_base + off, 0),
                         wg_desc(k_base + (ks / 4) * BN * 128 + (ks % 4) * 32, 0), ks > 0);
            }
            wgmma_commit_wait();
            hold_registers<BN / 8>(s[0]);
            softmax_step<D, BN, 1, false>(st, s, key0, ctx - q_len, wrow, p.group,
                                          key0 + BN - 1 > wg_min_limit || before_window(p, key0, wg_max_limit),
                                          p.window, p.scale_log2);
            uint32_t a[BN / 16][4];
#pragma unroll
            for (int kk = 0; kk < BN / 16; kk++)
                pack_p(a[kk], s[0][2 * kk], s[0][2 * kk + 1]);
            hold_registers<D / 8>(st.o[0]);
            wgmma_fence();
#pragma unroll
            for (int kk = 0; kk < BN / 16; kk++)
#pragma unroll
                for (int pn = 0; pn < PANELS; pn++) {
                    const uint64_t v = wg_desc(v_base + pn * BN * 128 + kk * 16 * 128, BN * 128);
                    if (64 * pn + 64 <= D)
                        wgmma_pv<64>(st.o[0] + 8 * pn, a[kk], v);
                    else
                        wgmma_pv<32>(st.o[0] + 8 * pn, a[kk], v);
                }
            wgmma_commit_wait();
            hold_registers<D / 8>(st.o[0]);
        }
        __syncwarp();
        if (lane == 0)
            mbar_arrive(&empty[slot]);
    }
    row_sums_finish<D, 1, false>(st);
    store_rows<D, 1>(p, st, q0, rows, wrow, kv_head);
#endif
}

/* Shared memory of a CTA: Q, the ring of BN-key tiles, 1 KiB alignment. */
static constexpr size_t prefill_sm90_smem(int D, int BN)
{
    return 1024 + (size_t)((D + 63) / 64) * 128 * (64 * wg_groups(D) + 2 * WG_STAGES * BN);
}

template <int D>
static cudaError_t launch_prefill(dim3 grid, const step_params &p, const CUtensorMap maps[2], cudaStream_t stream)
{
    constexpr int BN = wg_keys(D), WINDOW_BN = BN < WG_WINDOW_KEYS ? BN : WG_WINDOW_KEYS;
    static unsigned configured; /* a bit per GPU */
    if (fl_cuda_first_on_device(&configured)) {
        cudaError_t e = cudaFuncSetAttribute(prefill_sm90_kernel<D, BN>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                             (int)prefill_sm90_smem(D, BN));
        if (e == cudaSuccess)
            e = cudaFuncSetAttribute(prefill_sm90_kernel<D, WINDOW_BN>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                     (int)prefill_sm90_smem(D, WINDOW_BN));
        if (e != cudaSuccess)
            return e;
        fl_cuda_mark_device(&configured);
    }
    if (p.window > 0)
        prefill_sm90_kernel<D, WINDOW_BN><<<grid, wg_threads(D), prefill_sm90_smem(D, WINDOW_BN), stream>>>(p, maps[0], maps[1]);
    else
        prefill_sm90_kernel<D, BN><<<grid, wg_threads(D), prefill_sm90_smem(D, BN), stream>>>(p, maps[0], maps[1]);
    return cudaSuccess;
}

bool prefill_sm90_supports(int head_dim)
{
    return head_dim == 64 || head_dim == 96 || head_dim == 128 || head_dim == 256;
}

int prefill_sm90_rows(int head_dim)
{
    return 64 * wg_groups(head_dim);
}

cudaError_t prefill_sm90_launch(int head_dim, dim3 grid, const step_params &p, const CUtensorMap maps[2],
                                cudaStream_t stream)
{
    switch (head_dim) {
    case 64: return launch_prefill<64>(grid, p, maps, stream);
    case 96: return launch_prefill<96>(grid, p, maps, stream);
    case 128: return launch_prefill<128>(grid, p, maps, stream);
    case 256: return launch_prefill<256>(grid, p, maps, stream);
    default: return cudaErrorNotSupported;
    }
}
