/* attn_paged.h - the CUDA attention kernels: causal GQA attention over a
 * paged bf16 KV cache, with sliding windows and sinks, as a C API. Two
 * kernel sets run them, each a backend of the registry
 * (attention/backend.c), chosen by the caller:
 * - FL_ATTN_HOPPER (backend `hopper`, compute capability 9.0 only): prefill
 *   on warpgroup MMAs (wgmma) fed by tensor copies (TMA) from a producer
 *   warp, for head dims 64, 96, 128 and 256 (the portable prefill for 16 and 32),
 *   and decode K/V tiles by tensor copies.
 * - FL_ATTN_PORTABLE (backend `paged`, 8.0 to 9.0): prefill on mma.sync
 *   with a cp.async ring, decode K/V tiles by cp.async. Built into the
 *   sm_90a code as well, so it stays runnable, and checked, on Hopper.
 *
 * One step's queries come packed: sequence s owns query rows
 * query_start[s] .. query_start[s+1]-1, which are its last q_len positions
 * of seq_lens[s] (context including the new tokens). K and V live in
 * blocks of block_size positions: position p of sequence s is at block
 * block_tables[s * max_blocks_per_seq + p / block_size], offset
 * p % block_size; each cache is (num_blocks, block_size, num_kv_heads,
 * head_dim), the layout vLLM's flash backends use, of bf16 or of float8
 * e4m3 with one scale per cache (the value is the byte's times the scale,
 * vLLM's k_scale and v_scale).
 *
 * An fp8 cache is read as it is stored, half the bytes of bf16: its tiles
 * land in shared memory as bytes, widened to float16 (e4m3 is exact in
 * float16; Hopper converts e4m3 pairs to float16 pairs in one instruction,
 * to bf16 not at all) by the prefill in shared memory and by the decode in
 * registers, and the tensor cores take float16 Q, K, P and V; the scales
 * join the softmax scale (K) and the output (V), so no element is
 * multiplied. Both kernel sets copy
 * fp8 tiles with cp.async, and the Hopper set's prefill runs the portable
 * kernel for an fp8 cache (its wgmma path reads bf16 only).
 *
 * Each call is one layer, and two of its properties are per call: a
 * sliding window W (the query at position p attends keys max(0, p - W + 1)
 * .. p, HF transformers' sliding_window; 0: all keys up to p) and sinks
 * (one logit per query head that joins the softmax denominator and adds no
 * value: p_j = e^{s_j} / (e^{sink} + sum_k e^{s_k}), s the scaled scores).
 * With a window the kernels read only the KV tiles that hold keys of the
 * window: the first may start up to a tile (64 keys; 128 in Hopper's
 * prefill) before the window, its keys read and masked. So a table entry
 * of a block before the window must still name a block of the cache: an
 * engine that frees the blocks a window has left points their entries at
 * one spare block (vLLM's null block), never at nothing.
 *
 * A step runs in at most two launches. The host first plans it
 * (fl_attn_plan_build: pure host code, no GPU; a plan for one kernel set,
 * whose prefill CTAs may take more rows than the other's): sequences whose
 * rows fit one 16-row tile (q_len x query heads per KV head <= 16: decode
 * tokens and short chunks) go to the decode kernel, which packs the query
 * heads that share a KV head into one tile and splits long contexts over
 * several CTAs (flash-decoding), the last split of each merging them all
 * by their log-sum-exp; the rest go to the prefill kernel,
 * fl_attn_prefill_rows packed rows per CTA, tiled online softmax on the
 * tensor cores. The plan's work list is uploaded by the caller (it is part
 * of the step's metadata) and read by the kernels.
 *
 * The library reads no environment and queries no device: the caller
 * names the kernel set and gives the device's facts in the shape.
 *
 * This header is also the ABI of libflashlm_attn.so, which tools/attn_check.py
 * loads with ctypes: device pointers are passed as plain pointers. */
#ifndef FL_ATTN_PAGED_H
#define FL_ATTN_PAGED_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Rows of the decode kernel's tile, keys per KV tile, pipeline stages. */
#define FL_ATTN_DECODE_ROWS 16
#define FL_ATTN_DECODE_TILE 64
#define FL_ATTN_DECODE_STAGES 2

/* Shared memory of one decode CTA (the split heuristic counts how many
 * fit an SM): the stages of K and V tiles, in panels of 64 columns by
 * 128-byte rows, aligned to 1 KiB (the slack reserved), and its Q tile,
 * rows padded by 8 elements. */
static inline int fl_attn_decode_smem(int head_dim)
{
    return 1024 + 2 * FL_ATTN_DECODE_STAGES * ((head_dim + 63) / 64) * FL_ATTN_DECODE_TILE * 128 +
           FL_ATTN_DECODE_ROWS * (head_dim + 8) * 2;
}

/* The most CTAs one sequence's KV head is split over. */
#define FL_ATTN_MAX_SPLITS 64

/* The kernel sets (see the top). */
typedef enum fl_attn_kernel_set {
    FL_ATTN_PORTABLE,
    FL_ATTN_HOPPER,
} fl_attn_kernel_set;

/* The element type of a KV cache. */
typedef enum fl_attn_kv_type {
    FL_ATTN_KV_BF16,
    FL_ATTN_KV_FP8_E4M3,
} fl_attn_kv_type;

/* What the kernels are built for, listed once: the registry's CUDA
 * backends declare these (attention/backend.c) and fl_attn_paged_supports
 * checks a shape against them. Both kernel sets take every head dim (16
 * and 32 are for small test models) and block size; the compute
 * capabilities (x10) are each set's machine code: sm_80 SASS runs on 8.x,
 * sm_90a on 9.0 only, and there is no PTX for later GPUs. The caches are
 * bf16 or float8 e4m3 (base/dtype.h's FL_BF16 and FL_F8_E4M3, for the
 * registry's kv_dtypes). */
#define FL_ATTN_PAGED_HEAD_DIMS 16, 32, 64, 96, 128, 256
#define FL_ATTN_PAGED_BLOCK_SIZES 16, 32, 64, 128
#define FL_ATTN_PAGED_KV_DTYPES FL_BF16, FL_F8_E4M3
#define FL_ATTN_PORTABLE_MIN_CC 80
#define FL_ATTN_PORTABLE_MAX_CC 90
#define FL_ATTN_HOPPER_MIN_CC 90
#define FL_ATTN_HOPPER_MAX_CC 90
/* The model features both sets run (attention/backend.h's bits): causal
 * attention, with a sliding window and sinks per call (fl_attn_args). */
#define FL_ATTN_PAGED_FEATURES (FL_ATTN_CAUSAL | FL_ATTN_SLIDING_WINDOW | FL_ATTN_SINKS)

/* The shape of one attention call (constant over a model's steps). */
typedef struct fl_attn_shape {
    int num_heads;      /* query heads */
    int num_kv_heads;   /* divides num_heads */
    int head_dim;       /* one of FL_ATTN_PAGED_HEAD_DIMS */
    int block_size;     /* one of FL_ATTN_PAGED_BLOCK_SIZES */
    int num_sms;        /* the GPU's multiprocessors (split heuristic) */
    int smem_per_sm;    /* bytes of shared memory per multiprocessor */
    int cc;             /* the GPU's compute capability x10 (90 = 9.0): which kernel sets run */
    fl_attn_kv_type kv_type; /* the cache's elements */
} fl_attn_shape;

/* Packed rows per prefill CTA of a kernel set. The portable prefill's four
 * warps take two 16-row tiles each, or one at head dim 256 (the
 * accumulators of two would not fit in registers). Hopper's wgmma prefill
 * (a bf16 cache at head dims 64, 96, 128, 256, the listed ones from 64 up;
 * the portable one otherwise) has a consumer warpgroup per 64 rows: three
 * (FA3's 192-row tile), two at head dim 256 (attn_prefill_sm90.cu). The
 * kernels refuse a plan made for another set's tiles. */
static inline int fl_attn_prefill_rows(const fl_attn_shape *s, fl_attn_kernel_set kernels)
{
    const int wgmma = kernels == FL_ATTN_HOPPER && s->kv_type == FL_ATTN_KV_BF16 && s->head_dim >= 64;
    if (s->head_dim > 128)
        return wgmma ? 128 : 64;
    return wgmma ? 192 : 128;
}

/* Whether the kernel set runs shape (on its GPU); 0 if so, else -1 and a
 * message in why. */
int fl_attn_paged_supports(const fl_attn_shape *shape, fl_attn_kernel_set kernels, char *why, size_t why_len);

/* A step's plan, one for all its layers. work holds, first, the prefill
 * items as (seq, first packed row) pairs, then the decode sequences' ids. */
typedef struct fl_attn_plan {
    int prefill_rows;    /* packed rows per prefill CTA: fl_attn_prefill_rows of the plan's kernel set */
    int num_prefill;     /* prefill CTAs per KV head */
    int num_decode;      /* decode sequences */
    int num_splits;      /* CTAs per decode sequence and KV head of a layer without a window */
    int decode_rows;     /* the most packed rows (query tokens x group) of a decode sequence */
    int work_len;        /* int32s used in work */
    int32_t *work;       /* caller's, fl_attn_plan_work_cap() entries */
} fl_attn_plan;

/* Entries work needs for a step of num_seqs sequences and num_tokens rows,
 * under either kernel set. */
int fl_attn_plan_work_cap(const fl_attn_shape *shape, int num_seqs, int num_tokens);

/* Plans a step for a kernel set from host copies of query_start[num_seqs +
 * 1] and seq_lens[num_seqs]. Splits fill the GPU: when the decode CTAs are fewer
 * than the SMs can hold at once (from the decode kernel's shared memory),
 * each is split so that one wave holds them all, capped so that each split
 * keeps at least two KV tiles of the longest range of keys a decode CTA
 * reads: for a layer without a window, the longest context, that of the
 * batch or max_seq_len if larger (a CUDA graph is planned once for every
 * context it will see). */
void fl_attn_plan_build(fl_attn_plan *plan, const fl_attn_shape *shape, fl_attn_kernel_set kernels,
                        const int32_t *query_start, const int32_t *seq_lens, int num_seqs, int max_seq_len);

/* The decode CTAs per sequence and KV head of a layer with this window (0:
 * none) under the plan: num_splits, or for a window the same rule over the
 * most keys a decode CTA reads there (the window, the later rows of its
 * tile, the first tile's keys before the window), at most num_splits. A
 * function of the plan and the window only, so a CUDA graph's plan gives
 * its windowed layers the same count at every replay, and the plan's
 * scratch holds them. */
int fl_attn_plan_splits(const fl_attn_plan *plan, const fl_attn_shape *shape, int window);

/* Floats of split-KV scratch the plan needs (0 without splits). */
size_t fl_attn_plan_scratch_floats(const fl_attn_plan *plan, const fl_attn_shape *shape);

/* The most scratch any plan of at most max_seqs decode sequences needs. */
size_t fl_attn_plan_scratch_floats_max(const fl_attn_shape *shape, int max_seqs);

/* The device side of one call. All pointers are device memory. */
typedef struct fl_attn_args {
    const void *q;                 /* bf16 (num_tokens, num_heads, head_dim) */
    const void *k_cache;           /* the shape's kv_type (num_blocks, block_size, num_kv_heads, head_dim) */
    const void *v_cache;
    float k_scale, v_scale;        /* an fp8 cache's element is its byte's value times these (unread for bf16) */
    void *out;                     /* bf16 (num_tokens, num_heads, head_dim) */
    const int32_t *query_start;    /* [num_seqs + 1] */
    const int32_t *seq_lens;       /* [num_seqs] */
    const int32_t *block_tables;   /* [num_seqs, max_blocks_per_seq] */
    const int32_t *work;           /* the plan's work list, uploaded */
    float *scratch;                /* fl_attn_plan_scratch_floats() floats */
    int32_t *split_counters;       /* one a (decode sequence, KV head): zeroed when allocated, left zero */
    int max_blocks_per_seq;
    int num_blocks;                /* blocks in each cache (bounds the Hopper kernels' tensor copies) */
    float scale;                   /* softmax scale */
    int window;                    /* this layer's sliding window (see the top), >= 0; 0: none */
    const float *sinks;            /* float32 [num_heads], this layer's sink logits, in the units of the
                                      scaled scores; NULL: none */
} fl_attn_args;

/* Launches the plan's kernels of the kernel set `kernels` on stream (a
 * cudaStream_t). Returns 0, or a CUDA error code (cudaErrorInvalidValue
 * for what fl_attn_paged_supports refuses, a plan built for the other
 * kernel set's prefill tiles, or a negative window). Needs
 * no host sync: only the plan's counts are read on the host. */
int fl_attn_paged_run(const fl_attn_shape *shape, fl_attn_kernel_set kernels, const fl_attn_plan *plan,
                      const fl_attn_args *args, void *stream);

#ifdef __cplusplus
}
#endif

#endif
