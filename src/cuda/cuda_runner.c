/* cuda_runner.c - one model step on the GPU (see cuda_runner.h).
 *
 * A step: the host packs the step's metadata (token ids, positions, KV
 * slots, query starts, context lengths, block tables, logit rows and the
 * attention plan) into one pinned buffer and uploads it in one copy; then
 * the layers run on one stream; the logits of the rows that need them stay
 * on the device for sampling. A step of decode tokens only is padded to a
 * batch-size bucket and replayed from a CUDA graph captured the first time
 * that bucket is seen: the host's work per step is then its planning, one
 * upload and one graph launch. Padding tokens write their K/V to a scratch
 * block past the engine's blocks and their logits are never read.
 *
 * Nothing here waits for the GPU but the tokens (cuda_sampled) and host
 * logits, so the engine can plan and launch step N + 1 while step N runs
 * (async scheduling, model_runner.h): step N + 1's token ids name the rows
 * of step N's sample, which the embedding reads on the device, and the
 * pinned buffers the host writes come in two slots, each reused only once
 * its last copy is done.
 *
 * The KV cache is laid out as the model's KV cache groups
 * (model/kv_groups.h): layers_per_group K/V arrays, layer l in array
 * slot[l] at the blocks of its group's table. The metadata holds each
 * group's slots (group-major, token_cap apart) and each sequence's tables
 * of its groups side by side, so a layer's kernels get fixed pointers (a
 * graph's) into the one upload. */
#include "cuda/cuda_runner.h"

#include <cuda_runtime.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "attention/attn_paged.h"
#include "base/alloc.h"
#include "cuda/cuda_check.h"
#include "cuda/cuda_weights.h"
#include "cuda/gemm.h"
#include "cuda/model_kernels.h"
#include "cuda/moe.h"
#include "model/rope.h"
#include "parallel/comm.h"
#include "parallel/tp_runner.h"
#include "parallel/tp_shard.h"

/* FLASHLM_STEP_TIMING's kinds of step */
typedef enum { STEP_OTHER, STEP_LARGE_DECODE, STEP_LARGE_PREFILL } step_kind;

/* Batch sizes with a decode graph: 1, 2, 4, 8, then every 16 up to 512. */
#define MAX_GRAPH_SEQS 512
#define NUM_BUCKETS (4 + MAX_GRAPH_SEQS / 16)
/* GPU memory left out of the KV cache for the CUDA context's growth and graphs. */
#define RESERVE_BYTES ((size_t)256 << 20)

typedef struct meta_layout {  /* offsets in int32s into the metadata buffer */
    size_t ids, pos, slots, query_start, seq_lens, rows, work, tables, total;
    /* slots: [num_groups, token_cap]; tables: [row_cap, num_groups, width] */
} meta_layout;

typedef struct cuda_runner {
    fl_model_config cfg;              /* the rank's: its heads and intermediate size (parallel/tp_shard.h) */
    fl_comm *comm;                    /* NULL: the whole model; else this rank's group */
    int device;                       /* the GPU: the rank's (a group over NCCL), else 0 */
    fl_tp_shard shard;
    fl_kv_groups groups;              /* the KV cache's layout */
    const fl_attn_cuda_ops *attn_ops; /* the attention backend chosen at start-up */
    int max_tokens, max_seqs, max_context, block_size, num_blocks, width;
    int enforce_eager;
    cudaStream_t stream;
    fl_gemm gemm;
    fl_cuda_weights w;
    char *kv;                /* per array (a group's layer): K then V, (num_blocks + 1, bs, Hkv, D) each */
    size_t layer_elems;
    int kv_fp8;              /* the cache is float8 e4m3 (else bf16) */
    size_t kv_elem;          /* bytes of a cache element */
    float k_scale, v_scale;  /* an fp8 cache's scales (attn_paged.h) */
    float *rope;             /* (max_context, head_dim): cos then sin */
    /* activations */
    float *x;                /* residual (max_tokens, hidden) */
    uint16_t *h, *qkv, *q, *attn, *gate_up, *act;
    float *logits;           /* (max(max_seqs, graph rows), vocab) */
    /* tensor parallelism: a row-parallel product's partial sum (token cap,
     * hidden), the rank's logits over its vocabulary slice and every
     * rank's, gathered (rows, slice) and (size, rows, slice) */
    float *part, *logits_part, *logits_all;
    /* routed experts, if any layer has them */
    fl_cuda_moe_shape moe;
    void *moe_workspace;
    float *attn_scratch;
    int32_t *split_counters; /* (row cap, KV heads), zero */
    /* step metadata: two pinned slots, so that the host packs a step while
     * the one before it may still wait for its upload (async scheduling) */
    meta_layout m;
    int32_t *meta_host, *meta_dev; /* meta_host: 2 slots of m.total */
    int32_t *meta_slot;      /* the slot of the step being packed */
    long forwards;
    cudaEvent_t uploaded[2]; /* each slot's last upload done */
    fl_attn_shape shape;
    fl_attn_plan plan;
    /* samples, at most two outstanding (model_runner.h), each with its
     * pinned slot of draws and tokens */
    fl_draw *sp_host, *sp_dev;     /* sp_host: 2 slots of row_cap */
    int32_t *tok_host, *tok_dev;   /* tok_host: 2 slots; tok_dev: the latest sample's tokens,
                                      which a forward's ids -1 - r read on the device */
    int tok_rows;                  /* rows of the latest sample */
    long started, given;           /* samples started, and given by cuda_sampled */
    cudaEvent_t drawn[4];          /* sample k's tokens on the host: drawn[k % 4] */
    /* FLASHLM_STEP_TIMING=1: the GPU's time in and between large steps of
     * each kind, printed at the end */
    struct {
        int on;
        cudaEvent_t begun[4];      /* sample k's forward reached the GPU: begun[k % 4] */
        int kind[4];               /* its step_kind */
        long steps[3];             /* by step_kind; [STEP_OTHER] unused */
        double busy[3], idle[3];   /* ms: from forward to tokens, and before the forward */
    } timing;
    /* structured output's masks, allocated with the first: (row_cap, mask words)
     * and their rows, pinned on the host for the async upload */
    uint32_t *mask_host, *mask_dev;
    int32_t *mask_rows_host, *mask_rows_dev;
    cudaEvent_t masked;      /* their last upload done */
    int num_logits;          /* rows of the last forward */
    /* decode graphs, by bucket */
    cudaGraphExec_t graphs[NUM_BUCKETS];
} cuda_runner;

/* The rank's GPU current on the calling thread: the ranks of a group over
 * NCCL run on the threads of parallel/tp_runner.c, one GPU each. */
static void select_device(const cuda_runner *r)
{
    if (r->comm)
        FL_CUDA_CHECK(cudaSetDevice(r->device));
}

static int bucket_size(int i)
{
    return i < 4 ? 1 << i : (i - 3) * 16;
}

/* The smallest bucket holding n sequences, or -1. */
static int bucket_of(int n)
{
    for (int i = 0; i < NUM_BUCKETS; i++)
        if (bucket_size(i) >= n)
            return i;
    return -1;
}

int fl_cuda_device_cc(int *cc, fl_error *err)
{
    int count = 0;
    cudaError_t e = cudaGetDeviceCount(&count);
    if (e != cudaSuccess || count == 0) {
        cudaGetLastError();
        return fl_fail(err, "no CUDA GPU is usable (%s)", e != cudaSuccess ? cudaGetErrorString(e) : "none found");
    }
    struct cudaDeviceProp p;
    if (cudaGetDeviceProperties(&p, 0) != cudaSuccess)
        return fl_fail(err, "cannot read the properties of GPU 0");
    *cc = p.major * 10 + p.minor;
    return 0;
}

int fl_cuda_device_memory(size_t *total_bytes, char *name, size_t name_len)
{
    struct cudaDeviceProp p;
    if (cudaGetDeviceProperties(&p, 0) != cudaSuccess) {
        cudaGetLastError();
        return -1;
    }
    *total_bytes = p.totalGlobalMem;
    snprintf(name, name_len, "%s", p.name);
    return 0;
}

/* Tokens and sequences a step may hold: the engine's, or a padded graph's. */
static size_t token_cap(const cuda_runner *r)
{
    return (size_t)(r->max_tokens > MAX_GRAPH_SEQS ? r->max_tokens : MAX_GRAPH_SEQS);
}

static size_t row_cap(const cuda_runner *r)
{
    return (size_t)(r->max_seqs > MAX_GRAPH_SEQS ? r->max_seqs : MAX_GRAPH_SEQS);
}

/* Layer l's K and V arrays: those of its index within its group. */
static void *k_cache(cuda_runner *r, int layer)
{
    return r->kv + (size_t)2 * r->groups.slot[layer] * r->layer_elems * r->kv_elem;
}

static void *v_cache(cuda_runner *r, int layer)
{
    return r->kv + (size_t)(2 * r->groups.slot[layer] + 1) * r->layer_elems * r->kv_elem;
}

/* Layer l's group's slots and block tables in the metadata on the device;
 * the tables' row stride is kv_table_stride(r). */
static const int32_t *kv_slots(const cuda_runner *r, int layer)
{
    return r->meta_dev + r->m.slots + (size_t)r->groups.group[layer] * token_cap(r);
}

static const int32_t *kv_tables(const cuda_runner *r, int layer)
{
    return r->meta_dev + r->m.tables + (size_t)r->groups.group[layer] * r->width;
}

static int kv_table_stride(const cuda_runner *r)
{
    return r->groups.num_groups * r->width;
}

/* x += in W^T (+ bias) for T tokens, W (hidden, k): o_proj or down_proj.
 * A rank of a tensor-parallel group holds W's columns of its heads or its
 * slice of the intermediate size: its product is a partial sum, the
 * group's all-reduce adds them, and every rank adds the sum and the bias
 * to its own copy of the residual. */
static void row_parallel(cuda_runner *r, const uint16_t *w, const uint16_t *in, int T, int k, const float *bias)
{
    const int H = r->cfg.hidden_size;
    void *s = r->stream;
    if (!r->comm) {
        fl_gemm_run(&r->gemm, w, in, r->x, T, H, k, FL_GEMM_F32_ADD, s);
        if (bias)
            FL_CUDA_CHECK(fl_cuda_add_rows(r->x, NULL, bias, T, H, s));
        return;
    }
    fl_gemm_run(&r->gemm, w, in, r->part, T, H, k, FL_GEMM_F32, s);
    r->comm->all_reduce_sum_device(r->comm, r->part, (size_t)T * H, s);
    FL_CUDA_CHECK(fl_cuda_add_rows(r->x, r->part, bias, T, H, s));
}

/* x += o_proj(attention(rope(head_norms(qkv(rmsnorm(x)))))) for T tokens,
 * writing their K/V into the cache on the way. */
static void attention_block(cuda_runner *r, int l, int T, const fl_attn_plan *plan)
{
    const fl_model_config *c = &r->cfg;
    const fl_cuda_layer *w = &r->w.layers[l];
    const int H = c->hidden_size, D = c->head_dim;
    const int qkv_n = (c->num_heads + 2 * c->num_kv_heads) * D;
    const int32_t *md = r->meta_dev;
    void *s = r->stream;
    FL_CUDA_CHECK(fl_cuda_rmsnorm(r->x, NULL, w->attn_norm, r->h, T, H, c->rms_norm_eps, s));
    fl_gemm_run(&r->gemm, w->w_qkv, r->h, r->qkv, T, qkv_n, H, FL_GEMM_BF16, s);
    const fl_cuda_qkv_args qa = {
        .qkv = r->qkv, .bias = w->b_qkv, .q_norm = w->q_norm, .k_norm = w->k_norm, .rope = r->rope,
        .positions = md + r->m.pos, .slots = kv_slots(r, l), .q_out = r->q,
        .k_cache = k_cache(r, l), .v_cache = v_cache(r, l), .num_tokens = T,
        .num_heads = c->num_heads, .num_kv_heads = c->num_kv_heads, .head_dim = D, .eps = c->rms_norm_eps,
        .kv_fp8 = r->kv_fp8, .k_scale = r->k_scale, .v_scale = r->v_scale,
    };
    FL_CUDA_CHECK(fl_cuda_qkv_rope_cache(&qa, s));
    const fl_attn_args aa = {
        .q = r->q, .k_cache = k_cache(r, l), .v_cache = v_cache(r, l), .out = r->attn,
        .k_scale = r->k_scale, .v_scale = r->v_scale,
        .query_start = md + r->m.query_start, .seq_lens = md + r->m.seq_lens,
        .block_tables = kv_tables(r, l), .work = md + r->m.work, .scratch = r->attn_scratch,
        .split_counters = r->split_counters,
        .max_blocks_per_seq = kv_table_stride(r), .num_blocks = r->num_blocks + 1, .scale = 1.f / sqrtf((float)D),
        .window = c->layers[l].window, .sinks = w->sinks,
    };
    FL_CUDA_CHECK(r->attn_ops->run(&r->shape, plan, &aa, s));
    row_parallel(r, w->w_o, r->attn, T, c->num_heads * D, w->b_o);
}

/* x += down(silu(gate(x')) * up(x')), x' = rmsnorm(x), for T tokens. */
static void dense_mlp_block(cuda_runner *r, int l, int T)
{
    const fl_model_config *c = &r->cfg;
    const fl_cuda_layer *w = &r->w.layers[l];
    const int H = c->hidden_size, I = c->intermediate_size;
    void *s = r->stream;
    FL_CUDA_CHECK(fl_cuda_rmsnorm(r->x, NULL, w->mlp_norm, r->h, T, H, c->rms_norm_eps, s));
    fl_gemm_run(&r->gemm, w->w_gate_up, r->h, r->gate_up, T, 2 * I, H, FL_GEMM_BF16, s);
    FL_CUDA_CHECK(fl_cuda_silu_mul(r->gate_up, r->act, T, I, s));
    row_parallel(r, w->w_down, r->act, T, I, NULL);
}

/* x += the routed experts of x' = rmsnorm(x), for T tokens (cuda/moe.h).
 * A rank of a tensor-parallel group holds each expert's slice of the
 * intermediate size: the block adds its partial sum into zeros, the
 * group's all-reduce adds the ranks', and every rank adds that to its own
 * residual (as row_parallel does). */
static void moe_block(cuda_runner *r, int l, int T)
{
    const fl_model_config *c = &r->cfg;
    const fl_cuda_layer *w = &r->w.layers[l];
    const int H = c->hidden_size;
    void *s = r->stream;
    FL_CUDA_CHECK(fl_cuda_rmsnorm(r->x, NULL, w->mlp_norm, r->h, T, H, c->rms_norm_eps, s));
    if (r->comm)
        FL_CUDA_CHECK(cudaMemsetAsync(r->part, 0, (size_t)T * H * sizeof(float), (cudaStream_t)s));
    const fl_cuda_moe_args a = {
        .num_tokens = T, .residual_in = r->x, .norm_weight = w->mlp_norm, .eps = c->rms_norm_eps, .x = r->h,
        .router = w->router, .router_bias = w->router_bias,
        .gate_up = w->experts_gate_up, .gate_up_bias = w->experts_gate_up_bias, .down = w->experts_down,
        .down_bias = w->experts_down_bias, .residual = r->comm ? r->part : r->x, .workspace = r->moe_workspace,
        .max_tokens = (int)token_cap(r),
    };
    FL_CUDA_CHECK(fl_cuda_moe(&r->moe, &a, s));
    if (r->comm) {
        r->comm->all_reduce_sum_device(r->comm, r->part, (size_t)T * H, s);
        FL_CUDA_CHECK(fl_cuda_add_rows(r->x, r->part, NULL, T, H, s));
    }
}

/* Enqueues the model over the metadata on the device: T tokens, logits for
 * n_logits rows; each layer runs the ops its spec names. */
static void enqueue_model(cuda_runner *r, int T, int n_logits, const fl_attn_plan *plan)
{
    const fl_model_config *c = &r->cfg;
    const int32_t *md = r->meta_dev;
    void *s = r->stream;
    FL_CUDA_CHECK(fl_cuda_embed(r->w.embed, r->shard.vocab0, r->shard.vocab, md + r->m.ids, r->tok_dev, r->x, T,
                                c->hidden_size, c->vocab_size, s));
    if (r->comm) /* each rank embedded the tokens of its slice, zeros for the rest */
        r->comm->all_reduce_sum_device(r->comm, r->x, (size_t)T * c->hidden_size, s);
    for (int l = 0; l < c->num_layers; l++) {
        attention_block(r, l, T, plan);
        switch ((fl_ffn_kind)c->layers[l].ffn) {
        case FL_FFN_DENSE_SILU: dense_mlp_block(r, l, T); break;
        case FL_FFN_MOE: moe_block(r, l, T); break;
        }
    }
    if (n_logits == 0) /* a step of prompt chunks that end no prompt */
        return;
    FL_CUDA_CHECK(fl_cuda_rmsnorm(r->x, md + r->m.rows, r->w.final_norm, r->h, n_logits, c->hidden_size,
                                  c->rms_norm_eps, s));
    if (!r->comm) {
        fl_gemm_run(&r->gemm, r->w.lm_head, r->h, r->logits, n_logits, c->vocab_size, c->hidden_size, FL_GEMM_F32, s);
        return;
    }
    /* the rank's slice of every row's logits, then every rank's: each rank
     * holds them all, and samples the same tokens */
    const fl_tp_shard *sh = &r->shard;
    const int slice = sh->vocab_slice;
    fl_gemm_run(&r->gemm, r->w.lm_head, r->h, r->logits_part, n_logits, slice, c->hidden_size, FL_GEMM_F32, s);
    r->comm->all_gather_device(r->comm, r->logits_part, (size_t)n_logits * slice, r->logits_all, s);
    for (int k = 0; k < sh->size; k++) {
        const int first = k * slice, count = c->vocab_size - first < slice ? c->vocab_size - first : slice;
        if (count > 0)
            FL_CUDA_CHECK(cudaMemcpy2DAsync(r->logits + first, (size_t)c->vocab_size * sizeof(float),
                                            r->logits_all + (size_t)k * n_logits * slice, (size_t)slice * sizeof(float),
                                            (size_t)count * sizeof(float), (size_t)n_logits, cudaMemcpyDeviceToDevice,
                                            s));
    }
}

/* Packs b into the host metadata as it is (model/batch.h's invariant is
 * what the kernels assume), padded to pad_seqs decode sequences if
 * pad_seqs > b->num_seqs: the padding sequences follow the real ones, a
 * token each in the scratch block. Returns the int32s to upload. */
static size_t pack_step(cuda_runner *r, const fl_batch *b, int pad_seqs, int max_seq_len)
{
    fl_batch_assert(b, &r->groups, r->block_size, r->num_blocks);
    int32_t *mh = r->meta_slot;
    const int S = b->num_seqs > pad_seqs ? b->num_seqs : pad_seqs;
    const int T = b->num_tokens + (S - b->num_seqs); /* one token per padding sequence */
    const int G = r->groups.num_groups;
    int32_t *qs = mh + r->m.query_start, *sl = mh + r->m.seq_lens, *tables = mh + r->m.tables;
    int32_t *slots = mh + r->m.slots;
    const int32_t scratch_block = r->num_blocks;
    const size_t token_bytes = (size_t)b->num_tokens * sizeof(int32_t);
    memcpy(mh + r->m.ids, b->token_ids, token_bytes);
    for (int t = 0; t < b->num_tokens; t++) /* -1 - r: row r of the latest sample, on the device */
        FL_ASSERT(b->token_ids[t] >= 0 || (r->started > 0 && -1 - b->token_ids[t] < r->tok_rows));
    memcpy(mh + r->m.pos, b->positions, token_bytes);
    /* the batch's slots are (token, group); each group's kernels read theirs as one array */
    for (int t = 0; t < b->num_tokens; t++)
        for (int g = 0; g < G; g++)
            slots[(size_t)g * token_cap(r) + t] = b->slots[(size_t)t * G + g];
    memcpy(qs, b->query_start, (size_t)b->num_seqs * sizeof(int32_t));
    memcpy(sl, b->seq_lens, (size_t)b->num_seqs * sizeof(int32_t));
    /* the runner's tables are r->width wide; only the blocks in use travel */
    for (int i = 0; i < b->num_seqs; i++) {
        /* the rope table and the runner's tables end at max_context */
        FL_ASSERT(sl[i] <= r->max_context);
        const int used = (sl[i] + r->block_size - 1) / r->block_size;
        for (int g = 0; g < G; g++)
            memcpy(tables + ((size_t)i * G + g) * r->width, fl_batch_table(b, i, g), (size_t)used * sizeof(int32_t));
    }
    for (int i = b->num_seqs, t = b->num_tokens; i < S; i++, t++) {
        qs[i] = t;
        mh[r->m.ids + t] = 0;
        mh[r->m.pos + t] = 0;
        sl[i] = 1;
        for (int g = 0; g < G; g++) {
            slots[(size_t)g * token_cap(r) + t] = scratch_block * r->block_size;
            tables[((size_t)i * G + g) * r->width] = scratch_block;
        }
    }
    qs[S] = T;
    if (pad_seqs > 0) {
        /* a decode step: its logit rows are all its rows in order (rows
         * increase and num_logits is num_tokens), the padding's too */
        for (int i = 0; i < S; i++)
            mh[r->m.rows + i] = i;
    } else {
        memcpy(mh + r->m.rows, b->logit_rows, (size_t)b->num_logits * sizeof(int32_t));
    }
    r->plan.work = mh + r->m.work;
    r->attn_ops->plan(&r->plan, &r->shape, qs, sl, S, max_seq_len);
    return r->m.tables + (size_t)S * G * r->width;
}

/* Takes the next pinned metadata slot for a step, once its last upload is done. */
static void begin_step(cuda_runner *r)
{
    const int slot = (int)(r->forwards % 2);
    FL_CUDA_CHECK(cudaEventSynchronize(r->uploaded[slot]));
    r->meta_slot = r->meta_host + (size_t)slot * r->m.total;
}

static void upload(cuda_runner *r, size_t count)
{
    FL_CUDA_CHECK(cudaMemcpyAsync(r->meta_dev, r->meta_slot, count * sizeof(int32_t), cudaMemcpyHostToDevice,
                                  r->stream));
    FL_CUDA_CHECK(cudaEventRecord(r->uploaded[r->forwards++ % 2], r->stream));
}

/* The graph of bucket i, captured on first use. */
static cudaGraphExec_t decode_graph(cuda_runner *r, int i, const fl_attn_plan *plan)
{
    if (r->graphs[i])
        return r->graphs[i];
    const int n = bucket_size(i);
    cudaGraph_t g;
    FL_CUDA_CHECK(cudaStreamBeginCapture(r->stream, cudaStreamCaptureModeThreadLocal));
    enqueue_model(r, n, n, plan);
    FL_CUDA_CHECK(cudaStreamEndCapture(r->stream, &g));
    FL_CUDA_CHECK(cudaGraphInstantiate(&r->graphs[i], g, 0));
    FL_CUDA_CHECK(cudaGraphDestroy(g));
    return r->graphs[i];
}

static void cuda_forward(void *impl, const fl_batch *b, float *logits)
{
    cuda_runner *r = impl;
    select_device(r);
    FL_ASSERT((size_t)b->num_tokens <= token_cap(r) && (size_t)b->num_logits <= row_cap(r) &&
              b->num_seqs <= (int)row_cap(r));
    const int decode_only = b->num_tokens == b->num_seqs && b->num_logits == b->num_seqs;
    const int bucket = decode_only && !r->enforce_eager ? bucket_of(b->num_seqs) : -1;
    if (r->timing.on) { /* this forward's sample is the next to start */
        FL_CUDA_CHECK(cudaEventRecord(r->timing.begun[r->started % 4], r->stream));
        r->timing.kind[r->started % 4] = decode_only && b->num_seqs >= 128 ? STEP_LARGE_DECODE
                                         : !decode_only && b->num_tokens >= 4096 ? STEP_LARGE_PREFILL
                                                                                 : STEP_OTHER;
    }
    begin_step(r);
    if (bucket >= 0) {
        const int n = bucket_size(bucket);
        upload(r, pack_step(r, b, n, r->max_context));
        FL_CUDA_CHECK(cudaGraphLaunch(decode_graph(r, bucket, &r->plan), r->stream));
    } else {
        upload(r, pack_step(r, b, 0, 0));
        enqueue_model(r, b->num_tokens, b->num_logits, &r->plan);
    }
    r->num_logits = b->num_logits;
    if (logits) {
        FL_CUDA_CHECK(cudaMemcpyAsync(logits, r->logits, (size_t)b->num_logits * r->cfg.vocab_size * sizeof(float),
                                      cudaMemcpyDeviceToHost, r->stream));
        FL_CUDA_CHECK(cudaStreamSynchronize(r->stream));
    }
}

static void cuda_sample(void *impl, int num_rows, const fl_draw *rows)
{
    cuda_runner *r = impl;
    select_device(r);
    FL_ASSERT(num_rows <= r->num_logits && r->started - r->given < 2);
    const size_t slot = (size_t)(r->started % 2) * row_cap(r);
    /* pinned, for the async copies; the slot's last sample, two ago, was waited for */
    memcpy(r->sp_host + slot, rows, (size_t)num_rows * sizeof *rows);
    FL_CUDA_CHECK(cudaMemcpyAsync(r->sp_dev, r->sp_host + slot, (size_t)num_rows * sizeof *r->sp_host,
                                  cudaMemcpyHostToDevice, r->stream));
    FL_CUDA_CHECK(fl_cuda_sample(r->logits, num_rows, r->cfg.vocab_size, r->sp_dev, r->tok_dev, r->stream));
    FL_CUDA_CHECK(cudaMemcpyAsync(r->tok_host + slot, r->tok_dev, (size_t)num_rows * sizeof(int32_t),
                                  cudaMemcpyDeviceToHost, r->stream));
    FL_CUDA_CHECK(cudaEventRecord(r->drawn[r->started % 4], r->stream));
    r->tok_rows = num_rows;
    r->started++;
}

/* Sample k's GPU time from its forward to its tokens, and the idle time
 * before it since sample k - 1's tokens, if both were large steps of one kind. */
static void time_step(cuda_runner *r, long k)
{
    const int i = (int)(k % 4), prev = (int)((k + 3) % 4), kind = r->timing.kind[i];
    if (kind == STEP_OTHER)
        return;
    float busy, idle = 0;
    FL_CUDA_CHECK(cudaEventElapsedTime(&busy, r->timing.begun[i], r->drawn[i]));
    if (k > 0 && r->timing.kind[prev] == kind)
        FL_CUDA_CHECK(cudaEventElapsedTime(&idle, r->drawn[prev], r->timing.begun[i]));
    r->timing.steps[kind]++;
    r->timing.busy[kind] += busy;
    r->timing.idle[kind] += idle;
}

static const int32_t *cuda_sampled(void *impl)
{
    cuda_runner *r = impl;
    select_device(r);
    FL_ASSERT(r->given < r->started);
    const long k = r->given++;
    FL_CUDA_CHECK(cudaEventSynchronize(r->drawn[k % 4]));
    if (r->timing.on)
        time_step(r, k);
    return r->tok_host + (size_t)(k % 2) * row_cap(r);
}

static void cuda_mask_logits(void *impl, int num_rows, const int32_t *rows, const uint32_t *masks)
{
    cuda_runner *r = impl;
    select_device(r);
    FL_ASSERT(num_rows <= r->num_logits);
    const size_t words = ((size_t)r->cfg.vocab_size + 31) / 32;
    if (!r->mask_host) {
        const size_t cap = row_cap(r);
        FL_CUDA_CHECK(cudaMallocHost((void **)&r->mask_host, cap * words * sizeof(uint32_t)));
        FL_CUDA_CHECK(cudaMallocHost((void **)&r->mask_rows_host, cap * sizeof(int32_t)));
        FL_CUDA_CHECK(cudaMalloc((void **)&r->mask_dev, cap * words * sizeof(uint32_t)));
        FL_CUDA_CHECK(cudaMalloc((void **)&r->mask_rows_dev, cap * sizeof(int32_t)));
    }
    FL_CUDA_CHECK(cudaEventSynchronize(r->masked)); /* the last masks' upload is done */
    memcpy(r->mask_host, masks, (size_t)num_rows * words * sizeof(uint32_t));
    memcpy(r->mask_rows_host, rows, (size_t)num_rows * sizeof(int32_t));
    FL_CUDA_CHECK(cudaMemcpyAsync(r->mask_dev, r->mask_host, (size_t)num_rows * words * sizeof(uint32_t),
                                  cudaMemcpyHostToDevice, r->stream));
    FL_CUDA_CHECK(cudaMemcpyAsync(r->mask_rows_dev, r->mask_rows_host, (size_t)num_rows * sizeof(int32_t),
                                  cudaMemcpyHostToDevice, r->stream));
    FL_CUDA_CHECK(cudaEventRecord(r->masked, r->stream));
    FL_CUDA_CHECK(fl_cuda_mask_logits(r->logits, num_rows, r->cfg.vocab_size, r->mask_rows_dev, r->mask_dev, r->stream));
}

static void cuda_read_logits(void *impl, int row, float *out)
{
    cuda_runner *r = impl;
    select_device(r);
    FL_ASSERT(row < r->num_logits);
    /* on the runner's stream: the legacy default stream would not wait for it */
    FL_CUDA_CHECK(cudaMemcpyAsync(out, r->logits + (size_t)row * r->cfg.vocab_size,
                                  r->cfg.vocab_size * sizeof(float), cudaMemcpyDeviceToHost, r->stream));
    FL_CUDA_CHECK(cudaStreamSynchronize(r->stream));
}

static void cuda_destroy(void *impl)
{
    cuda_runner *r = impl;
    select_device(r);
    if (r->stream)
        cudaStreamSynchronize(r->stream); /* a step may still run: async scheduling leaves one */
    static const char *const kinds[] = { [STEP_LARGE_DECODE] = "decode steps of 128 or more sequences",
                                         [STEP_LARGE_PREFILL] = "steps of 4096 or more tokens with prompts" };
    for (int k = STEP_LARGE_DECODE; r->timing.on && k <= STEP_LARGE_PREFILL; k++)
        if (r->timing.steps[k])
            fprintf(stderr, "INFO flashlm: GPU timing, %ld %s, per step: busy %.3f ms (forward to tokens), idle "
                    "%.3f ms before it (%.1f%% of the step)\n", r->timing.steps[k], kinds[k],
                    r->timing.busy[k] / r->timing.steps[k], r->timing.idle[k] / r->timing.steps[k],
                    100 * r->timing.idle[k] / (r->timing.busy[k] + r->timing.idle[k]));
    cudaEvent_t *events[] = { &r->uploaded[0], &r->uploaded[1], &r->masked, &r->drawn[0], &r->drawn[1],
                              &r->drawn[2], &r->drawn[3], &r->timing.begun[0], &r->timing.begun[1],
                              &r->timing.begun[2], &r->timing.begun[3] };
    for (size_t i = 0; i < sizeof events / sizeof events[0]; i++)
        if (*events[i])
            cudaEventDestroy(*events[i]);
    for (int i = 0; i < NUM_BUCKETS; i++)
        if (r->graphs[i])
            cudaGraphExecDestroy(r->graphs[i]);
    void *dev[] = { r->kv, r->rope, r->x, r->h, r->qkv, r->q, r->attn, r->gate_up, r->act, r->logits,
                    r->part, r->logits_part, r->logits_all,
                    r->moe_workspace, r->attn_scratch, r->split_counters, r->meta_dev,
                    r->sp_dev, r->tok_dev, r->mask_dev, r->mask_rows_dev };
    for (size_t i = 0; i < sizeof dev / sizeof dev[0]; i++)
        if (dev[i])
            cudaFree(dev[i]);
    if (r->meta_host)
        cudaFreeHost(r->meta_host);
    if (r->sp_host)
        cudaFreeHost(r->sp_host);
    if (r->tok_host)
        cudaFreeHost(r->tok_host);
    if (r->mask_host)
        cudaFreeHost(r->mask_host);
    if (r->mask_rows_host)
        cudaFreeHost(r->mask_rows_host);
    fl_gemm_free(&r->gemm);
    fl_cuda_weights_free(&r->w);
    if (r->stream)
        cudaStreamDestroy(r->stream);
    free(r);
}

/* cudaMalloc of bytes into *p, counted into *total; 0 or -1. */
static int dev_alloc(void *p, size_t bytes, size_t *total)
{
    *total += bytes;
    return cudaMalloc((void **)p, bytes) == cudaSuccess ? 0 : -1;
}

/* The routed experts' buffers, if any layer has them. */
static int alloc_moe(cuda_runner *r, size_t *total)
{
    if (r->moe.num_experts == 0)
        return 0;
    const size_t T = token_cap(r), bytes = fl_cuda_moe_workspace_bytes(&r->moe, (int)T);
    return dev_alloc(&r->moe_workspace, bytes, total) || cudaMemset(r->moe_workspace, 0, bytes) != cudaSuccess ? -1
                                                                                                             : 0;
}

/* A tensor-parallel rank's partial sums and logits, if it is one. */
static int alloc_parallel(cuda_runner *r, size_t *total)
{
    if (!r->comm)
        return 0;
    const size_t T = token_cap(r), rows = row_cap(r), slice = (size_t)r->shard.vocab_slice;
    return dev_alloc(&r->part, T * r->cfg.hidden_size * 4, total) ||
           dev_alloc(&r->logits_part, rows * slice * 4, total) ||
           dev_alloc(&r->logits_all, (size_t)r->shard.size * rows * slice * 4, total) ? -1 : 0;
}

static int alloc_activations(cuda_runner *r, size_t *total)
{
    const fl_model_config *c = &r->cfg;
    const size_t T = token_cap(r), rows = row_cap(r);
    const size_t H = (size_t)c->hidden_size, I = (size_t)c->intermediate_size, D = (size_t)c->head_dim;
    const size_t scratch = r->attn_ops->scratch_floats_max(&r->shape, (int)rows);
    return dev_alloc(&r->x, T * H * 4, total) || dev_alloc(&r->h, T * H * 2, total) ||
           dev_alloc(&r->qkv, T * (c->num_heads + 2 * c->num_kv_heads) * D * 2, total) ||
           dev_alloc(&r->q, T * c->num_heads * D * 2, total) || dev_alloc(&r->attn, T * c->num_heads * D * 2, total) ||
           dev_alloc(&r->gate_up, T * 2 * I * 2, total) || dev_alloc(&r->act, T * I * 2, total) ||
           dev_alloc(&r->logits, rows * c->vocab_size * 4, total) ||
           dev_alloc(&r->attn_scratch, (scratch ? scratch : 1) * 4, total) ||
           dev_alloc(&r->split_counters, rows * c->num_kv_heads * 4, total) ||
           cudaMemset(r->split_counters, 0, rows * c->num_kv_heads * 4) != cudaSuccess ||
           dev_alloc(&r->meta_dev, r->m.total * 4, total) ||
           dev_alloc(&r->sp_dev, rows * sizeof(fl_draw), total) ||
           dev_alloc(&r->tok_dev, rows * 4, total) || alloc_moe(r, total) || alloc_parallel(r, total) ? -1 : 0;
}

/* The step's events; timed ones only for FLASHLM_STEP_TIMING. 0 or -1. */
static int create_events(cuda_runner *r)
{
    const unsigned untimed = cudaEventDisableTiming, drawn = r->timing.on ? cudaEventDefault : untimed;
    int bad = cudaEventCreateWithFlags(&r->uploaded[0], untimed) || cudaEventCreateWithFlags(&r->uploaded[1], untimed) ||
              cudaEventCreateWithFlags(&r->masked, untimed);
    for (int i = 0; i < 4; i++) {
        bad = bad || cudaEventCreateWithFlags(&r->drawn[i], drawn);
        if (r->timing.on)
            bad = bad || cudaEventCreateWithFlags(&r->timing.begun[i], cudaEventDefault);
    }
    return bad ? -1 : 0;
}

static void lay_out_meta(cuda_runner *r)
{
    const size_t T = token_cap(r), S = row_cap(r);
    meta_layout *m = &r->m;
    m->ids = 0;
    m->pos = m->ids + T;
    m->slots = m->pos + T;
    m->query_start = m->slots + T * (size_t)r->groups.num_groups;
    m->seq_lens = m->query_start + S + 1;
    m->rows = m->seq_lens + S;
    m->work = m->rows + S;
    m->tables = m->work + (size_t)r->attn_ops->work_cap(&r->shape, (int)S, (int)T);
    m->total = m->tables + S * (size_t)r->groups.num_groups * r->width;
}

/* The rope table, (max_context, head_dim): each position's cos, then sin,
 * as model/rope.h defines them for both runners (scaling included). */
static void fill_rope(cuda_runner *r, float *host)
{
    const int D = r->cfg.head_dim;
    fl_rope rope;
    fl_rope_init(&rope, &r->cfg);
    for (int p = 0; p < r->max_context; p++)
        fl_rope_at(&rope, p, host + (size_t)p * D, host + (size_t)p * D + D / 2);
}

/* The routed experts' shape, if any layer has them; -1 with a message if
 * cuda/moe.h cannot run it. */
static int moe_shape(cuda_runner *r, fl_error *err)
{
    const fl_model_config *c = &r->cfg;
    int any = 0;
    for (int l = 0; l < c->num_layers; l++)
        any |= c->layers[l].ffn == FL_FFN_MOE;
    if (!any)
        return 0;
    if (c->hidden_size % 8 || c->intermediate_size % 8 || c->hidden_size > FL_CUDA_MOE_MAX_HIDDEN ||
        c->num_experts > FL_CUDA_MOE_MAX_EXPERTS || c->experts_per_token > 8)
        return fl_fail(err, "the CUDA runner's experts need hidden_size (at most %d) and intermediate_size multiples "
                       "of 8, at most %d experts and at most 8 per token (this model: %d, %d, %d, %d)",
                       FL_CUDA_MOE_MAX_HIDDEN, FL_CUDA_MOE_MAX_EXPERTS, c->hidden_size, c->intermediate_size,
                       c->num_experts, c->experts_per_token);
    r->moe = (fl_cuda_moe_shape){ .hidden = c->hidden_size, .ff = c->intermediate_size,
                                  .num_experts = c->num_experts, .top_k = c->experts_per_token,
                                  .swiglu_alpha = c->swiglu_alpha, .swiglu_limit = c->swiglu_limit };
    if (fl_cuda_moe_init() != 0)
        return fl_fail(err, "cannot set up the expert GEMM's shared memory on this GPU");
    return 0;
}

int fl_cuda_runner_init(fl_model_runner *out, const fl_model_config *cfg, const fl_weights *w,
                        const fl_runner_opts *o, fl_error *err)
{
    FL_ASSERT(o->attn && o->attn->cuda);
    fl_comm *comm = o->comm && o->comm->size > 1 ? o->comm : NULL;
    if (comm && !comm->all_reduce_sum_device)
        return fl_fail(err, "tensor parallelism on CUDA: the communicator of %d ranks has no GPU collectives "
                       "(the local group's serve at most %d ranks)", comm->size, FL_CUDA_SUM_MAX);
    if (comm && fl_tp_check(cfg, comm->size, err) != 0)
        return -1;
    struct cudaDeviceProp prop;
    int cc;
    const int device = comm && comm->device >= 0 ? comm->device : 0;
    if (fl_cuda_device_cc(&cc, err) != 0)
        return -1;
    if (cudaSetDevice(device) != cudaSuccess || cudaGetDeviceProperties(&prop, device) != cudaSuccess) {
        cudaGetLastError();
        return fl_fail(err, "cannot use GPU %d", device);
    }
    cc = prop.major * 10 + prop.minor;
    char unsupported[256];
    if (o->kv_dtype != FL_DTYPE_INVALID && o->kv_dtype != FL_BF16 && o->kv_dtype != FL_F8_E4M3)
        return fl_fail(err, "the CUDA runner's KV cache is bf16 or float8 e4m3, not %s", fl_dtype_name(o->kv_dtype));
    const fl_dtype kv_dtype = o->kv_dtype == FL_F8_E4M3 ? FL_F8_E4M3 : FL_BF16;
    const fl_attn_needs needs = fl_attn_needs_of(cfg, FL_DEVICE_CUDA, cc, o->block_size, kv_dtype);
    if (fl_attn_backend_unsupported(o->attn, &needs, unsupported, sizeof unsupported))
        return fl_fail(err, "attention backend '%s' cannot run this model: %s", o->attn->name, unsupported);
    cuda_runner *r = fl_calloc(1, sizeof *r);
    r->comm = comm;
    r->device = device;
    fl_tp_shard_init(&r->shard, cfg, comm ? comm->rank : 0, comm ? comm->size : 1);
    fl_tp_local_config(&r->cfg, cfg, &r->shard);
    fl_kv_groups_init(&r->groups, cfg);
    r->attn_ops = o->attn->cuda;
    r->max_tokens = o->max_tokens;
    r->max_seqs = o->max_seqs;
    r->max_context = o->max_context;
    r->block_size = o->block_size;
    r->enforce_eager = o->enforce_eager || (comm && !comm->device_capturable);
    r->width = (o->max_context + o->block_size - 1) / o->block_size;
    r->kv_fp8 = kv_dtype == FL_F8_E4M3;
    r->kv_elem = fl_dtype_size(kv_dtype);
    /* vLLM's scales for a checkpoint that has none (without
     * --calculate-kv-scales): 1.0, the cache holding K and V as they are */
    r->k_scale = r->v_scale = 1.f;
    r->shape = (fl_attn_shape){ .num_heads = r->cfg.num_heads, .num_kv_heads = r->cfg.num_kv_heads,
                                .head_dim = cfg->head_dim, .block_size = o->block_size,
                                .num_sms = prop.multiProcessorCount,
                                .smem_per_sm = (int)prop.sharedMemPerMultiprocessor, .cc = cc,
                                .kv_type = r->kv_fp8 ? FL_ATTN_KV_FP8_E4M3 : FL_ATTN_KV_BF16 };
    char why[160];
    if (r->attn_ops->supports(&r->shape, why, sizeof why) != 0) {
        free(r);
        return fl_fail(err, "attention backend %s: unsupported %s", o->attn->name, why);
    }
    if (cudaStreamCreateWithFlags(&r->stream, cudaStreamNonBlocking) != cudaSuccess) {
        free(r);
        return fl_fail(err, "cannot create a CUDA stream");
    }
    const char *timing = getenv("FLASHLM_STEP_TIMING");
    r->timing.on = timing && strcmp(timing, "1") == 0;
    if (create_events(r) != 0) {
        cuda_destroy(r);
        return fl_fail(err, "cannot create CUDA events");
    }
    if (moe_shape(r, err) != 0 || fl_gemm_init(&r->gemm, err) != 0 || fl_cuda_weights_init(&r->w, cfg, w, &r->shard, err) != 0) {
        cuda_destroy(r);
        return -1;
    }
    lay_out_meta(r);
    size_t act_bytes = 0;
    float *rope_host = fl_malloc((size_t)r->max_context * cfg->head_dim * sizeof(float));
    fill_rope(r, rope_host);
    if (alloc_activations(r, &act_bytes) != 0 ||
        dev_alloc(&r->rope, (size_t)r->max_context * cfg->head_dim * 4, &act_bytes) != 0 ||
        cudaMemcpy(r->rope, rope_host, (size_t)r->max_context * cfg->head_dim * 4, cudaMemcpyHostToDevice) !=
            cudaSuccess ||
        cudaMallocHost((void **)&r->meta_host, 2 * r->m.total * 4) != cudaSuccess ||
        cudaMallocHost((void **)&r->sp_host, 2 * row_cap(r) * sizeof(fl_draw)) != cudaSuccess ||
        cudaMallocHost((void **)&r->tok_host, 2 * row_cap(r) * sizeof(int32_t)) != cudaSuccess) {
        free(rope_host);
        cudaGetLastError();
        cuda_destroy(r);
        return fl_fail(err, "not enough GPU memory for the activations of %d tokens (%.2f GiB): lower "
                       "--max-num-batched-tokens or --max-num-seqs", r->max_tokens, (double)act_bytes / (1 << 30));
    }
    free(rope_host);
    /* the KV cache: what is left of the budget, in blocks of a group's layers */
    const int arrays = r->groups.layers_per_group;
    const size_t block_bytes = (size_t)2 * arrays * o->block_size * r->cfg.num_kv_heads * cfg->head_dim * r->kv_elem;
    size_t free_b, total_b;
    FL_CUDA_CHECK(cudaMemGetInfo(&free_b, &total_b));
    const double budget = o->gpu_memory_utilization * (double)total_b - (double)(total_b - free_b) - RESERVE_BYTES;
    long blocks = o->num_blocks > 0 ? o->num_blocks : (long)(budget / (double)block_bytes);
    if (blocks < 1 || (double)blocks * block_bytes > (double)free_b - RESERVE_BYTES) {
        cuda_destroy(r);
        return fl_fail(err, "no GPU memory left for the KV cache: %.2f GiB of %.2f GiB in use after weights "
                       "(%.2f GiB) and activations (%.2f GiB); raise --gpu-memory-utilization (now %.2f) or lower "
                       "--max-num-batched-tokens", (double)(total_b - free_b) / (1 << 30), (double)total_b / (1 << 30),
                       (double)r->w.bytes / (1 << 30), (double)act_bytes / (1 << 30), o->gpu_memory_utilization);
    }
    r->num_blocks = (int)(blocks > (1 << 30) / o->block_size ? (1 << 30) / o->block_size : blocks);
    r->layer_elems = (size_t)(r->num_blocks + 1) * o->block_size * r->cfg.num_kv_heads * cfg->head_dim;
    /* zeroed, as vLLM's: the null block (kv_groups.h), whose keys the
     * windowed kernels read and mask, must hold finite values, or a masked
     * score times its value would be NaN */
    const size_t kv_bytes = r->layer_elems * 2 * arrays * r->kv_elem;
    if (cudaMalloc((void **)&r->kv, kv_bytes) != cudaSuccess || cudaMemset(r->kv, 0, kv_bytes) != cudaSuccess) {
        cudaGetLastError();
        cuda_destroy(r);
        return fl_fail(err, "cannot allocate the KV cache (%d blocks)", r->num_blocks);
    }
    if (comm)
        fprintf(stderr, "INFO flashlm: tensor-parallel rank %d of %d: %d of %d query heads, %d KV heads, "
                "intermediate %d, vocabulary rows %d..%d\n", comm->rank, comm->size, r->cfg.num_heads, cfg->num_heads,
                r->cfg.num_kv_heads, r->cfg.intermediate_size, r->shard.vocab0, r->shard.vocab0 + r->shard.vocab);
    fprintf(stderr, "INFO flashlm: GPU %s (sm_%d, %d SMs): weights %.2f GiB, activations %.2f GiB, KV cache %.2f GiB "
            "%s (%d blocks of %d tokens), CUDA graphs %s\n", prop.name, cc, prop.multiProcessorCount,
            (double)r->w.bytes / (1 << 30), (double)act_bytes / (1 << 30), (double)kv_bytes / (1 << 30),
            r->kv_fp8 ? "fp8 e4m3, scales 1.0" : "bf16", r->num_blocks, o->block_size,
            !r->enforce_eager ? "on for decode steps" : o->enforce_eager ? "off (--enforce-eager)"
                                                                      : "off (the local group's collectives)");
    *out = (fl_model_runner){
        .impl = r, .attn_backend = o->attn->name, .vocab_size = cfg->vocab_size, .max_tokens = o->max_tokens, .max_context = o->max_context,
        .kv_groups = &r->groups, .num_blocks = r->num_blocks, .block_size = o->block_size, .forward = cuda_forward,
        .sample = cuda_sample, .sampled = cuda_sampled, .mask_logits = cuda_mask_logits, .read_logits = cuda_read_logits, .destroy = cuda_destroy,
    };
    return 0;
}

int fl_cuda_runner_init_parallel(fl_model_runner *r, const fl_model_config *cfg, const fl_weights *w,
                                 const fl_runner_opts *o, int tp_size, fl_error *err)
{
    return fl_tp_runner_init_ranks(r, tp_size, NULL, fl_cuda_runner_init, cfg, w, o, err);
}

int fl_cuda_tp_check(int tp_size, fl_error *err)
{
    if (fl_comm_nccl_check(err) != 0)
        return -1;
    int count = 0;
    if (cudaGetDeviceCount(&count) != cudaSuccess) {
        cudaGetLastError();
        count = 0;
    }
    if (count < tp_size)
        return fl_fail(err, "--tensor-parallel-size %d needs %d GPUs, and %d %s visible", tp_size, tp_size, count,
                       count == 1 ? "is" : "are");
    return 0;
}

int fl_cuda_runner_init_nccl(fl_model_runner *r, const fl_model_config *cfg, const fl_weights *w,
                             const fl_runner_opts *o, int tp_size, fl_error *err)
{
    if (tp_size <= 1)
        return fl_cuda_runner_init(r, cfg, w, o, err);
    if (fl_tp_check(cfg, tp_size, err) != 0 || fl_cuda_tp_check(tp_size, err) != 0)
        return -1;
    fl_comm_set comms;
    if (fl_comm_nccl_set(tp_size, &comms, err) != 0)
        return -1;
    return fl_tp_runner_init_ranks(r, tp_size, &comms, fl_cuda_runner_init, cfg, w, o, err);
}
