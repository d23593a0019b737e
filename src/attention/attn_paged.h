/* attn_paged.h - the `paged` attention backend: causal GQA attention over a
 * paged bf16 KV cache on CUDA (sm_80+), as a C API.
 *
 * One step's queries come packed: sequence s owns query rows
 * query_start[s] .. query_start[s+1]-1, which are its last q_len positions
 * of seq_lens[s] (context including the new tokens). K and V live in
 * blocks of block_size positions: position p of sequence s is at block
 * block_tables[s * max_blocks_per_seq + p / block_size], offset
 * p % block_size; each cache is (num_blocks, block_size, num_kv_heads,
 * head_dim) bf16, the layout vLLM's flash backends use.
 *
 * A step runs in at most two launches. The host first plans it
 * (fl_attn_plan_build: pure host code, no GPU): sequences whose rows fit
 * one 16-row tile (q_len x query heads per KV head <= 16: decode tokens and
 * short chunks) go to the decode kernel, which packs the query heads that
 * share a KV head into one tile and splits long contexts over several CTAs
 * (flash-decoding), the last split of each merging them all by their
 * log-sum-exp; the rest go to the prefill kernel, 128 packed rows per CTA,
 * tiled online softmax on the tensor cores: warpgroup MMAs (wgmma) fed by
 * tensor copies on Hopper for head dims 64 and 128, mma.sync bf16
 * elsewhere (FLASHLM_PAGED_PREFILL=mma.sync in the environment forces the
 * latter on Hopper too, to check it there). The plan's work list is
 * uploaded by the caller (it is part of the step's metadata) and read by
 * the kernels.
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

/* Packed rows per prefill CTA: four warps of two 16-row tiles, or of one
 * for head dim 256 (the accumulators of two would not fit in registers). */
static inline int fl_attn_prefill_rows(int head_dim)
{
    return head_dim > 128 ? 64 : 128;
}
/* The most CTAs one sequence's KV head is split over. */
#define FL_ATTN_MAX_SPLITS 64

/* The shape of one attention call (constant over a model's steps). */
typedef struct fl_attn_shape {
    int num_heads;      /* query heads */
    int num_kv_heads;   /* divides num_heads */
    int head_dim;       /* 64, 96, 128 or 256 (and 16, 32 for small test models) */
    int block_size;     /* 16, 32, 64 or 128 */
    int num_sms;        /* the GPU's multiprocessors (split heuristic) */
    int smem_per_sm;    /* bytes of shared memory per multiprocessor */
} fl_attn_shape;

/* Which shapes the kernels are built for; 0 if supported, else -1 and a
 * message in why. */
int fl_attn_paged_supports(const fl_attn_shape *shape, char *why, size_t why_len);

/* A step's plan. work holds, first, the prefill items as (seq, first packed
 * row) pairs, then the decode sequences' ids. */
typedef struct fl_attn_plan {
    int num_prefill;     /* prefill CTAs per KV head */
    int num_decode;      /* decode sequences */
    int num_splits;      /* CTAs per decode sequence and KV head */
    int work_len;        /* int32s used in work */
    int32_t *work;       /* caller's, fl_attn_plan_work_cap() entries */
} fl_attn_plan;

/* Entries work needs for a step of num_seqs sequences and num_tokens rows. */
int fl_attn_plan_work_cap(const fl_attn_shape *shape, int num_seqs, int num_tokens);

/* Plans a step from host copies of query_start[num_seqs + 1] and
 * seq_lens[num_seqs]. Splits fill the GPU: when the decode CTAs are fewer
 * than the SMs can hold at once (from the decode kernel's shared memory),
 * each is split so that one wave holds them all, capped so that each split
 * keeps at least two KV tiles of the longest context: that of the batch,
 * or max_seq_len if larger (a CUDA graph is planned once for every context
 * it will see). */
void fl_attn_plan_build(fl_attn_plan *plan, const fl_attn_shape *shape, const int32_t *query_start,
                        const int32_t *seq_lens, int num_seqs, int max_seq_len);

/* Floats of split-KV scratch the plan needs (0 without splits). */
size_t fl_attn_plan_scratch_floats(const fl_attn_plan *plan, const fl_attn_shape *shape);

/* The most scratch any plan of at most max_seqs decode sequences needs. */
size_t fl_attn_plan_scratch_floats_max(const fl_attn_shape *shape, int max_seqs);

/* The device side of one call. All pointers are device memory. */
typedef struct fl_attn_args {
    const void *q;                 /* bf16 (num_tokens, num_heads, head_dim) */
    const void *k_cache;           /* bf16 (num_blocks, block_size, num_kv_heads, head_dim) */
    const void *v_cache;
    void *out;                     /* bf16 (num_tokens, num_heads, head_dim) */
    const int32_t *query_start;    /* [num_seqs + 1] */
    const int32_t *seq_lens;       /* [num_seqs] */
    const int32_t *block_tables;   /* [num_seqs, max_blocks_per_seq] */
    const int32_t *work;           /* the plan's work list, uploaded */
    float *scratch;                /* fl_attn_plan_scratch_floats() floats */
    int32_t *split_counters;       /* one a (decode sequence, KV head): zeroed when allocated, left zero */
    int max_blocks_per_seq;
    int num_blocks;                /* blocks in each cache (bounds the decode kernel's tensor copies) */
    float scale;                   /* softmax scale */
} fl_attn_args;

/* Launches the plan's kernels on stream (a cudaStream_t). Returns 0, or a
 * CUDA error code (also for an unsupported shape). Needs no host sync:
 * only the plan's counts are read on the host. */
int fl_attn_paged_run(const fl_attn_shape *shape, const fl_attn_plan *plan, const fl_attn_args *args,
                      void *stream);

#ifdef __cplusplus
}
#endif

#endif
