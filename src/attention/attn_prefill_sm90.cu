/* attn_prefill_sm90.cu - the prefill kernel for Hopper (sm_90a): warpgroup
 * MMAs (wgmma) fed by tensor copies, for head dims 64 and 128; the
 * portable mma.sync prefill of attn_paged.cu runs everywhere else.
 *
 * A CTA is the same 128 packed rows as the portable prefill's: two
 * consumer warpgroups of 64 rows and one producer warp. The producer
 * fills a ring of WG_STAGES slots of 128 keys by tensor copies; each
 * warpgroup computes S = QK^T with Q and K read by the tensor cores from
 * shared memory (wgmma m64n128k16), the softmax step in registers (the
 * accumulators have mma.sync's fragment layout, so softmax_step serves
 * both), and O += PV with P from registers and V read as N-major
 * (m64n64k16 per 64 columns of V). The warpgroups release a slot through
 * the slot's `empty` barrier and run a slot apart at most, so one's
 * softmax overlaps the other's MMAs. With a sliding window the ring starts
 * at the tile holding the first row's window start. */
#include "attention/attn_device.cuh"
#include "cuda/cuda_check.h"

#define WG_KEYS 128
#define WG_STAGES 2
#define WG_THREADS (2 * 128 + 32)

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

/* d (64 x 128, fp32) = a (64 x 16, K-major, shared) * b (16 x 128, K-major,
 * shared), plus d if accumulate. */
static __device__ __forceinline__ void wgmma_qk(float (&d)[16][4], uint64_t a, uint64_t b, int accumulate)
{
    asm volatile("{\n.reg .pred acc;\nsetp.ne.b32 acc, %66, 0;\n"
                 "wgmma.mma_async.sync.aligned.m64n128k16.f32.bf16.bf16 {"
                 "%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, "
                 "%16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, "
                 "%32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, "
                 "%48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63}, %64, %65, acc, 1, 1, 0, 0;\n}\n"
                 : "+f"(d[0][0]), "+f"(d[0][1]), "+f"(d[0][2]), "+f"(d[0][3]),
                   "+f"(d[1][0]), "+f"(d[1][1]), "+f"(d[1][2]), "+f"(d[1][3]),
                   "+f"(d[2][0]), "+f"(d[2][1]), "+f"(d[2][2]), "+f"(d[2][3]),
                   "+f"(d[3][0]), "+f"(d[3][1]), "+f"(d[3][2]), "+f"(d[3][3]),
                   "+f"(d[4][0]), "+f"(d[4][1]), "+f"(d[4][2]), "+f"(d[4][3]),
                   "+f"(d[5][0]), "+f"(d[5][1]), "+f"(d[5][2]), "+f"(d[5][3]),
                   "+f"(d[6][0]), "+f"(d[6][1]), "+f"(d[6][2]), "+f"(d[6][3]),
                   "+f"(d[7][0]), "+f"(d[7][1]), "+f"(d[7][2]), "+f"(d[7][3]),
                   "+f"(d[8][0]), "+f"(d[8][1]), "+f"(d[8][2]), "+f"(d[8][3]),
                   "+f"(d[9][0]), "+f"(d[9][1]), "+f"(d[9][2]), "+f"(d[9][3]),
                   "+f"(d[10][0]), "+f"(d[10][1]), "+f"(d[10][2]), "+f"(d[10][3]),
                   "+f"(d[11][0]), "+f"(d[11][1]), "+f"(d[11][2]), "+f"(d[11][3]),
                   "+f"(d[12][0]), "+f"(d[12][1]), "+f"(d[12][2]), "+f"(d[12][3]),
                   "+f"(d[13][0]), "+f"(d[13][1]), "+f"(d[13][2]), "+f"(d[13][3]),
                   "+f"(d[14][0]), "+f"(d[14][1]), "+f"(d[14][2]), "+f"(d[14][3]),
                   "+f"(d[15][0]), "+f"(d[15][1]), "+f"(d[15][2]), "+f"(d[15][3])
                 : "l"(a), "l"(b), "r"(accumulate));
}

/* d (64 x 64, fp32) += a (64 x 16, registers) * b (16 x 64, N-major, shared). */
static __device__ __forceinline__ void wgmma_pv(float (*d)[4], const uint32_t a[4], uint64_t b)
{
    asm volatile("wgmma.mma_async.sync.aligned.m64n64k16.f32.bf16.bf16 {"
                 "%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, "
                 "%16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31}, {%32, %33, %34, %35}, %36, 1, 1, 1, 1;\n"
                 : "+f"(d[0][0]), "+f"(d[0][1]), "+f"(d[0][2]), "+f"(d[0][3]),
                   "+f"(d[1][0]), "+f"(d[1][1]), "+f"(d[1][2]), "+f"(d[1][3]),
                   "+f"(d[2][0]), "+f"(d[2][1]), "+f"(d[2][2]), "+f"(d[2][3]),
                   "+f"(d[3][0]), "+f"(d[3][1]), "+f"(d[3][2]), "+f"(d[3][3]),
                   "+f"(d[4][0]), "+f"(d[4][1]), "+f"(d[4][2]), "+f"(d[4][3]),
                   "+f"(d[5][0]), "+f"(d[5][1]), "+f"(d[5][2]), "+f"(d[5][3]),
                   "+f"(d[6][0]), "+f"(d[6][1]), "+f"(d[6][2]), "+f"(d[6][3]),
                   "+f"(d[7][0]), "+f"(d[7][1]), "+f"(d[7][2]), "+f"(d[7][3])
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

/* Named barrier of the n threads from warp 0 up. */
static __device__ __forceinline__ void bar_sync(int id, int n)
{
    asm volatile("bar.sync %0, %1;\n" ::"r"(id), "r"(n) : "memory");
}

#endif

template <int D>
__global__ void __launch_bounds__(WG_THREADS, 1)
    prefill_sm90_kernel(step_params p, const __grid_constant__ CUtensorMap k_map,
                         const __grid_constant__ CUtensorMap v_map)
{
#if ARCH_SM90
    constexpr int BN = WG_KEYS, S = WG_STAGES, ROWS = 128, PANELS = D / 64;
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
            mbar_init(&empty[i], 8); /* a consumer warp each */
        }
        asm volatile("fence.mbarrier_init.release.cluster;\n" ::: "memory");
    }
    __syncthreads();

    if (warp == 8) { /* the producer */
        if (lane == 0)
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
             * NaN; both warpgroups zero and wait (the last tile only) */
            zero_v_rows<D, BN, 256>(kv_smem + (2 * slot + 1) * TILE_BYTES, kv_end - key0);
            asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory");
            bar_sync(3, 256);
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
                wgmma_qk(s[0], wg_desc(q_base + off, 0),
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
                for (int pn = 0; pn < PANELS; pn++)
                    wgmma_pv(st.o[0] + 8 * pn, a[kk], wg_desc(v_base + pn * BN * 128 + kk * 16 * 128, BN * 128));
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

/* Shared memory of a CTA: Q, the ring, 1 KiB alignment. */
static constexpr size_t prefill_sm90_smem(int D)
{
    return 1024 + (size_t)(D / 64) * 128 * 128 * (1 + 2 * WG_STAGES);
}

template <int D>
static cudaError_t launch_prefill(dim3 grid, const step_params &p, const CUtensorMap maps[2], cudaStream_t stream)
{
    static unsigned configured; /* a bit per GPU */
    if (fl_cuda_first_on_device(&configured)) {
        const cudaError_t e = cudaFuncSetAttribute(prefill_sm90_kernel<D>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                                   (int)prefill_sm90_smem(D));
        if (e != cudaSuccess)
            return e;
        fl_cuda_mark_device(&configured);
    }
    prefill_sm90_kernel<D><<<grid, WG_THREADS, prefill_sm90_smem(D), stream>>>(p, maps[0], maps[1]);
    return cudaSuccess;
}

bool prefill_sm90_supports(int head_dim)
{
    return head_dim == 64 || head_dim == 128;
}

cudaError_t prefill_sm90_launch(int head_dim, dim3 grid, const step_params &p, const CUtensorMap maps[2],
                                cudaStream_t stream)
{
    switch (head_dim) {
    case 64: return launch_prefill<64>(grid, p, maps, stream);
    case 128: return launch_prefill<128>(grid, p, maps, stream);
    default: return cudaErrorNotSupported;
    }
}
