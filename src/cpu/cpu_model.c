/* cpu_model.c - the float32 CPU forward pass (see cpu_model.h).
 *
 * The runner implements ops (the attention block, the dense MLP block, the
 * routed-experts block, the norms), each reading its layer's spec; the
 * model's plan (cfg->layers) says which op each layer runs. Then
 * logits = lm_head(rmsnorm(x)) for the requested rows only. */
#include "cpu/cpu_model.h"

#include <cblas.h>
#include <math.h>
#include <omp.h>
#include <string.h>

#include "base/alloc.h"
#include "parallel/comm.h"

/* Products run in chunks of exactly ROW_CHUNK rows, the last chunk padded
 * (run-state buffers have room for it), so that every row goes through the
 * same BLAS kernel whatever else is in the batch: a sequence gets
 * bit-identical logits alone or among others (batch invariance, which the
 * engine's tests rely on). OpenBLAS 0.3.21 happened to be row-invariant
 * for any height in those tests too; the chunks make it a property of
 * flashlm rather than of one BLAS build, at little cost (a small-height
 * sgemm is dominated by packing the weights either way). */
#define ROW_CHUNK 16

static int padded_rows(int rows)
{
    return (rows + ROW_CHUNK - 1) / ROW_CHUNK * ROW_CHUNK;
}

/* ---- weights ---- */

/* Bump allocator over one float32 block. */
typedef struct carve {
    float *base;
    size_t used;
} carve;

static float *carve_take(carve *c, size_t n)
{
    float *p = c->base ? c->base + c->used : NULL;
    c->used += (n + 15) / 16 * 16; /* keep 64-byte alignment */
    return p;
}

/* Rows [first, first + count) of a tensor: a row is its last dimension
 * (a 1-D tensor's rows are its elements). */
typedef struct rows_of {
    const fl_tensor *t;
    int64_t first, count;
} rows_of;

static int64_t row_width(const fl_tensor *t)
{
    return t->ndim == 1 ? 1 : t->shape[t->ndim - 1];
}

static rows_of all_rows(const fl_tensor *t)
{
    return (rows_of){ t, 0, fl_tensor_numel(t) / row_width(t) };
}

/* Converts the concatenation of parts (rows of the same width) into one
 * float32 block taken from c; NULL while sizing. */
static float *put_parts(carve *c, const rows_of *parts, int num_parts)
{
    size_t n = 0;
    for (int i = 0; i < num_parts; i++) {
        const fl_tensor *t = parts[i].t;
        const int64_t width = row_width(t);
        FL_ASSERT(parts[i].first >= 0 && (parts[i].first + parts[i].count) * width <= fl_tensor_numel(t));
        n += (size_t)(parts[i].count * width);
    }
    float *dst = carve_take(c, n);
    for (size_t i = 0, at = 0; dst && i < (size_t)num_parts; i++) {
        const fl_tensor *t = parts[i].t;
        const size_t width = (size_t)row_width(t), m = (size_t)parts[i].count * width;
        fl_convert_to_f32(dst + at, (const char *)t->data + (size_t)parts[i].first * width * fl_dtype_size(t->dtype),
                          t->dtype, m);
        at += m;
    }
    return dst;
}

static float *put1(carve *c, const fl_tensor *t)
{
    const rows_of all = all_rows(t);
    return put_parts(c, &all, 1);
}

static float *put_rows(carve *c, const fl_tensor *t, int64_t first, int64_t count)
{
    const rows_of part = { t, first, count };
    return put_parts(c, &part, 1);
}

/* Columns [first, first + count) of every row of a 2-D tensor, as a
 * (rows, count) block: a row-parallel matrix's slice. */
static float *put_cols(carve *c, const fl_tensor *t, int64_t first, int64_t count)
{
    FL_ASSERT(t->ndim == 2 && first >= 0 && first + count <= t->shape[1]);
    const int64_t rows = t->shape[0], width = t->shape[1];
    float *dst = carve_take(c, (size_t)(rows * count));
    const size_t elem = fl_dtype_size(t->dtype);
    for (int64_t r = 0; dst && r < rows; r++)
        fl_convert_to_f32(dst + (size_t)(r * count), (const char *)t->data + (size_t)(r * width + first) * elem,
                          t->dtype, (size_t)count);
    return dst;
}

/* The attention op's weights, the rank's heads: q/k/v fused into one
 * matrix (one GEMM), o_proj's columns of those heads. */
static void place_attention(fl_cpu_layer *l, const fl_layer_spec *spec, const fl_tensor *t, const fl_tp_shard *sh,
                            int head_dim, carve *c)
{
    const int64_t D = head_dim, q0 = sh->q_head0 * D, nq = sh->num_heads * D;
    const int64_t k0 = sh->kv_head0 * D, nk = sh->num_kv_heads * D;
    const rows_of qkv[3] = { { &t[FL_WQ], q0, nq }, { &t[FL_WK], k0, nk }, { &t[FL_WV], k0, nk } };
    const rows_of bias[3] = { { &t[FL_BQ], q0, nq }, { &t[FL_BK], k0, nk }, { &t[FL_BV], k0, nk } };
    l->attn_norm = put1(c, &t[FL_ATTN_NORM]);
    l->wqkv = put_parts(c, qkv, 3);
    l->bqkv = spec->qkv_bias ? put_parts(c, bias, 3) : NULL;
    l->q_norm = spec->qk_norm ? put1(c, &t[FL_Q_NORM]) : NULL;
    l->k_norm = spec->qk_norm ? put1(c, &t[FL_K_NORM]) : NULL;
    l->wo = put_cols(c, &t[FL_WO], q0, nq);
    l->bo = spec->o_bias ? put1(c, &t[FL_BO]) : NULL;
    l->sinks = spec->sinks ? put_rows(c, &t[FL_SINKS], sh->q_head0, sh->num_heads) : NULL;
}

/* The dense SiLU MLP op's weights, the rank's slice of the intermediate
 * size: gate/up fused into one matrix. */
static void place_dense_mlp(fl_cpu_layer *l, const fl_tensor *t, const fl_tp_shard *sh, carve *c)
{
    const rows_of gate_up[2] = { { &t[FL_W_GATE], sh->ff0, sh->ff }, { &t[FL_W_UP], sh->ff0, sh->ff } };
    l->mlp_norm = put1(c, &t[FL_MLP_NORM]);
    l->w_gate_up = put_parts(c, gate_up, 2);
    l->w_down = put_cols(c, &t[FL_W_DOWN], sh->ff0, sh->ff);
}

/* The output column j of an expert's gate/up matrix lands in row
 * gate_up_row(j, width): HF interleaves gate (even columns) and up (odd);
 * the runner keeps gate rows, then up rows, as the dense MLP does. */
static int64_t gate_up_row(int64_t j, int64_t width)
{
    return j % 2 ? width / 2 + j / 2 : j / 2;
}

/* The rank's row of the de-interleaved gate/up row d (gate rows [0, ff),
 * up rows [ff, 2 ff)): its slice [ff0, ff0 + n) of each, gate then up; -1
 * if another rank's. */
static int64_t local_gate_up_row(int64_t d, int64_t ff, const fl_tp_shard *sh)
{
    const int64_t f = d % ff - sh->ff0;
    return f >= 0 && f < sh->ff ? (d / ff) * sh->ff + f : -1;
}

/* An expert stack t (E, in, out), x @ W per expert, as float32 in the
 * (out, in) form matmul takes: gate/up (E, 2 ff, hidden) de-interleaved,
 * the rank's rows of gate and of up; down (E, hidden, ff), the rank's
 * columns. NULL while sizing. */
static float *put_experts(carve *c, const fl_tensor *t, int gate_up, const fl_tp_shard *sh)
{
    const int64_t E = t->shape[0], in = t->shape[1], out = t->shape[2];
    const int64_t out_local = gate_up ? 2 * sh->ff : out, in_local = gate_up ? in : sh->ff;
    float *dst = carve_take(c, (size_t)(E * in_local * out_local));
    if (!dst)
        return NULL;
    const size_t row_bytes = (size_t)out * fl_dtype_size(t->dtype);
#pragma omp parallel
    {
        float *row = fl_malloc((size_t)out * sizeof(float));
#pragma omp for schedule(static)
        for (int64_t r = 0; r < E * in; r++) {
            const int64_t col = gate_up ? r % in : r % in - sh->ff0; /* down: its intermediate index */
            if (col < 0 || col >= in_local)
                continue;
            fl_convert_to_f32(row, (const char *)t->data + (size_t)r * row_bytes, t->dtype, (size_t)out);
            float *d = dst + (size_t)(r / in) * out_local * in_local + col;
            for (int64_t j = 0; j < out; j++) {
                const int64_t to = gate_up ? local_gate_up_row(gate_up_row(j, out), out / 2, sh) : j;
                if (to >= 0)
                    d[(size_t)to * in_local] = row[j];
            }
        }
        free(row);
    }
    return dst;
}

/* An expert stack's gate/up biases (E, 2 * ff) as gate biases, then up:
 * the rank's slice of each. */
static float *put_gate_up_bias(carve *c, const fl_tensor *t, const fl_tp_shard *sh)
{
    const int64_t E = t->shape[0], width = t->shape[1], local = 2 * sh->ff;
    float *dst = carve_take(c, (size_t)(E * local));
    if (!dst)
        return NULL;
    float *row = fl_malloc((size_t)width * sizeof(float));
    const size_t row_bytes = (size_t)width * fl_dtype_size(t->dtype);
    for (int64_t e = 0; e < E; e++) {
        fl_convert_to_f32(row, (const char *)t->data + (size_t)e * row_bytes, t->dtype, (size_t)width);
        for (int64_t j = 0; j < width; j++) {
            const int64_t to = local_gate_up_row(gate_up_row(j, width), width / 2, sh);
            if (to >= 0)
                dst[e * local + to] = row[j];
        }
    }
    free(row);
    return dst;
}

/* The routed experts' weights: each expert in the dense MLP's form, the
 * rank's slice of its intermediate size; the router whole. */
static void place_moe(fl_cpu_layer *l, const fl_tensor *t, const fl_tp_shard *sh, carve *c)
{
    l->mlp_norm = put1(c, &t[FL_MLP_NORM]);
    l->router = put1(c, &t[FL_ROUTER]);
    l->router_bias = put1(c, &t[FL_ROUTER_BIAS]);
    l->experts_gate_up = put_experts(c, &t[FL_EXPERTS_GATE_UP], 1, sh);
    l->experts_gate_up_bias = put_gate_up_bias(c, &t[FL_EXPERTS_GATE_UP_BIAS], sh);
    l->experts_down = put_experts(c, &t[FL_EXPERTS_DOWN], 0, sh);
    l->experts_down_bias = put1(c, &t[FL_EXPERTS_DOWN_BIAS]);
}

/* The rank's rows of the embedding or lm_head, [vocab0, vocab0 + vocab),
 * as vocab_slice rows: the last rank's short slice padded with zeros. */
static float *put_vocab_rows(carve *c, const fl_tensor *t, const fl_tp_shard *sh)
{
    const int64_t hidden = t->shape[1];
    float *dst = carve_take(c, (size_t)(sh->vocab_slice * hidden));
    if (!dst)
        return NULL;
    fl_convert_to_f32(dst, (const char *)t->data + (size_t)(sh->vocab0 * hidden) * fl_dtype_size(t->dtype), t->dtype,
                      (size_t)(sh->vocab * hidden));
    memset(dst + (size_t)(sh->vocab * hidden), 0, (size_t)((sh->vocab_slice - sh->vocab) * hidden) * sizeof(float));
    return dst;
}

/* Lays out and (when c->base is set) fills the rank's float32 weights, op
 * by op as the plan says. Called twice: once to size the block, once to
 * fill it. */
static void place_weights(fl_cpu_model *m, const fl_weights *w, carve *c)
{
    const fl_model_config *cfg = &m->cfg;
    const fl_tp_shard *sh = &m->shard;
    m->embed = put_vocab_rows(c, &w->model[FL_EMBED], sh);
    m->final_norm = put1(c, &w->model[FL_FINAL_NORM]);
    m->lm_head = cfg->tie_word_embeddings ? m->embed : put_vocab_rows(c, &w->model[FL_LM_HEAD], sh);
    for (int i = 0; i < cfg->num_layers; i++) {
        place_attention(&m->layers[i], &cfg->layers[i], w->layers[i].t, sh, cfg->head_dim, c);
        switch ((fl_ffn_kind)cfg->layers[i].ffn) {
        case FL_FFN_DENSE_SILU: place_dense_mlp(&m->layers[i], w->layers[i].t, sh, c); break;
        case FL_FFN_MOE: place_moe(&m->layers[i], w->layers[i].t, sh, c); break;
        }
    }
}

/* Lays out the run state in c, like place_weights. */
static void place_state(fl_cpu_model *m, carve *c)
{
    const fl_model_config *cfg = &m->cfg;
    const size_t t = (size_t)padded_rows(m->max_tokens), h = cfg->hidden_size, hd = cfg->head_dim;
    const size_t q = (size_t)cfg->num_heads * hd, kv = (size_t)cfg->num_kv_heads * hd;
    const size_t ff = cfg->intermediate_size;
    m->x = carve_take(c, t * h);
    m->xn = carve_take(c, t * h);
    m->qkv = carve_take(c, t * (q + 2 * kv));
    m->attn = carve_take(c, t * q);
    m->gate_up = carve_take(c, t * 2 * ff);
    m->ffn = carve_take(c, t * ff);
    m->router_logits = carve_take(c, t * cfg->num_experts);
    m->expert_in = carve_take(c, t * h);
    m->expert_out = carve_take(c, t * h);
    m->moe_sum = carve_take(c, t * h);
    m->route_weight = carve_take(c, t * cfg->experts_per_token);
    m->scores = carve_take(c, (size_t)m->num_threads * m->scores_per_thread);
    m->logits_tail = carve_take(c, (size_t)ROW_CHUNK * cfg->vocab_size);
    if (m->comm) { /* a chunk of rows' logits over the rank's slice, then every rank's */
        m->logits_part = carve_take(c, (size_t)ROW_CHUNK * m->shard.vocab_slice);
        m->logits_all = carve_take(c, (size_t)m->shard.size * ROW_CHUNK * m->shard.vocab_slice);
    }
}

int fl_cpu_model_init(fl_cpu_model *m, const fl_model_config *cfg, const fl_weights *w,
                      const fl_attn_backend *attn, int max_tokens, int max_context, fl_error *err)
{
    return fl_cpu_model_init_rank(m, cfg, w, attn, max_tokens, max_context, NULL, err);
}

int fl_cpu_model_init_rank(fl_cpu_model *m, const fl_model_config *cfg, const fl_weights *w,
                           const fl_attn_backend *attn, int max_tokens, int max_context, fl_comm *comm,
                           fl_error *err)
{
    FL_ASSERT(attn->cpu);
    memset(m, 0, sizeof *m);
    if (comm && comm->size == 1)
        comm = NULL; /* the whole model: no collectives */
    FL_ASSERT(!comm || fl_tp_check(cfg, comm->size, err) == 0);
    m->comm = comm;
    fl_tp_shard_init(&m->shard, cfg, comm ? comm->rank : 0, comm ? comm->size : 1);
    fl_tp_local_config(&m->cfg, cfg, &m->shard);
    m->attn_backend = attn;
    m->scores_per_thread = attn->cpu->scratch_floats(max_context);
    m->max_tokens = max_tokens;
    m->max_context = max_context;
    m->num_threads = omp_get_max_threads();
    m->layers = fl_calloc((size_t)cfg->num_layers, sizeof(fl_cpu_layer));
    /* Both blocks are sized before either is allocated; the config bounds
     * every dimension (config.c), so the sizes cannot overflow. */
    carve weights = { 0 }, state = { 0 };
    place_weights(m, w, &weights);
    place_state(m, &state);
    m->bytes = (weights.used + state.used) * sizeof(float);
    /* every rank of a group holds a slice of this size (replicated tensors included) in the same memory */
    if (fl_memory_check(fl_size_mul(m->bytes, (size_t)m->shard.size),
                        m->shard.size > 1 ? "the CPU runner's float32 weights and run state, all ranks"
                                          : "the CPU runner's float32 weights and run state",
                        err) != 0) {
        fl_cpu_model_free(m);
        return -1;
    }
    m->weight_storage = fl_malloc_aligned(weights.used * sizeof(float));
    weights = (carve){ m->weight_storage, 0 };
    place_weights(m, w, &weights);
    m->state_storage = fl_malloc_aligned(state.used * sizeof(float));
    state = (carve){ m->state_storage, 0 };
    place_state(m, &state);

    /* the routes: each token's experts, then the (token, slot) pairs by expert */
    const size_t pairs = (size_t)max_tokens * cfg->experts_per_token;
    m->route_storage = fl_malloc((2 * pairs + 2 * (size_t)cfg->num_experts + 1) * sizeof(int32_t));
    m->route_expert = m->route_storage;
    m->expert_rows = m->route_expert + pairs;
    m->expert_start = m->expert_rows + pairs;
    fl_rope_init(&m->rope, cfg);
    openblas_set_num_threads(1); /* BLAS runs inside our OpenMP threads */
    return 0;
}

void fl_cpu_model_free(fl_cpu_model *m)
{
    free(m->weight_storage);
    free(m->state_storage);
    free(m->layers);
    free(m->route_storage);
    memset(m, 0, sizeof *m);
}

/* ---- the forward pass ---- */

/* y = x * w^T (+ beta * y): x (rows, in), w (out, in), y (rows, out), with
 * rows a multiple of ROW_CHUNK. The output features are split over the
 * OpenMP threads, each calling single-threaded BLAS on its slice: one
 * thread pool, no oversubscription between OpenMP and BLAS threads. */
static void matmul(float *y, const float *x, const float *w, int rows, int in, int out, float beta)
{
    FL_ASSERT(rows % ROW_CHUNK == 0);
#pragma omp parallel
    {
        const int nt = omp_get_num_threads(), t = omp_get_thread_num();
        const int per = (out + nt - 1) / nt, lo = t * per, n = out - lo < per ? out - lo : per;
        for (int r = 0; n > 0 && r < rows; r += ROW_CHUNK)
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, ROW_CHUNK, n, in, 1.0f,
                        x + (size_t)r * in, in, w + (size_t)lo * in, in, beta,
                        y + (size_t)r * out + lo, out);
    }
}

static void rmsnorm_row(float *out, const float *x, const float *weight, int n, float eps)
{
    float ss = 0.0f;
    for (int i = 0; i < n; i++)
        ss += x[i] * x[i];
    const float r = 1.0f / sqrtf(ss / (float)n + eps);
    for (int i = 0; i < n; i++)
        out[i] = x[i] * r * weight[i];
}

/* out[row] = rmsnorm(x[row]) for rows (stride = n). */
static void rmsnorm_rows(float *out, const float *x, const float *weight, int rows, int n, float eps)
{
#pragma omp parallel for schedule(static)
    for (int r = 0; r < rows; r++)
        rmsnorm_row(out + (size_t)r * n, x + (size_t)r * n, weight, n, eps);
}

static void add_bias(float *y, const float *bias, int rows, int n)
{
#pragma omp parallel for schedule(static)
    for (int r = 0; r < rows; r++)
        for (int i = 0; i < n; i++)
            y[(size_t)r * n + i] += bias[i];
}

/* Rotates the pairs (i, i + d/2) of one head, the "rotate_half" convention
 * of the HF Llama family. */
static void rope_head(float *x, const float *cos_t, const float *sin_t, int half)
{
    for (int i = 0; i < half; i++) {
        const float a = x[i], b = x[i + half];
        x[i] = a * cos_t[i] - b * sin_t[i];
        x[i + half] = b * cos_t[i] + a * sin_t[i];
    }
}

/* Per-head q/k norm (Qwen3), rotary embedding, and the write of K and V
 * into the token's cache slot. */
static void qk_rope_and_cache(fl_cpu_model *m, const fl_cpu_layer *l, fl_cpu_kv_cache *kv,
                              int layer, const fl_batch *b)
{
    const fl_model_config *c = &m->cfg;
    const int hd = c->head_dim, half = hd / 2;
    const int q_dim = c->num_heads * hd, kv_dim = c->num_kv_heads * hd;
    const int stride = q_dim + 2 * kv_dim;
    float *k_cache = fl_cpu_kv_k(kv, layer), *v_cache = fl_cpu_kv_v(kv, layer);
    const int G = b->num_kv_groups, group = kv->groups.group[layer];
#pragma omp parallel for schedule(static)
    for (int t = 0; t < b->num_tokens; t++) {
        float cos_t[FL_ROPE_MAX_PAIRS], sin_t[FL_ROPE_MAX_PAIRS];
        fl_rope_at(&m->rope, b->positions[t], cos_t, sin_t);
        float *row = m->qkv + (size_t)t * stride;
        for (int h = 0; h < c->num_heads + c->num_kv_heads; h++) {
            float *x = row + (size_t)h * hd;
            if (l->q_norm)
                rmsnorm_row(x, x, h < c->num_heads ? l->q_norm : l->k_norm, hd, c->rms_norm_eps);
            rope_head(x, cos_t, sin_t, half);
        }
        const size_t at = (size_t)b->slots[(size_t)t * G + group] * kv_dim;
        memcpy(k_cache + at, row + q_dim, (size_t)kv_dim * sizeof(float));
        memcpy(v_cache + at, row + q_dim + kv_dim, (size_t)kv_dim * sizeof(float));
    }
}

static void silu_mul(float *out, const float *gate_up, int rows, int ff)
{
#pragma omp parallel for schedule(static)
    for (int r = 0; r < rows; r++) {
        const float *g = gate_up + (size_t)r * 2 * ff, *u = g + ff;
        float *o = out + (size_t)r * ff;
        for (int i = 0; i < ff; i++)
            o[i] = g[i] / (1.0f + expf(-g[i])) * u[i];
    }
}

/* The batch's invariant (model/batch.h), then what it leaves to the model:
 * sizes, token ids, the longest context. */
static void check_batch(const fl_cpu_model *m, const fl_cpu_kv_cache *kv, const fl_batch *b)
{
    fl_batch_assert(b, &kv->groups, kv->block_size, kv->num_blocks);
    FL_ASSERT(b->num_tokens <= m->max_tokens);
    FL_ASSERT(kv->groups.num_layers == m->cfg.num_layers && kv->num_kv_heads == m->cfg.num_kv_heads &&
              kv->head_dim == m->cfg.head_dim);
    for (int t = 0; t < b->num_tokens; t++)
        FL_ASSERT(b->token_ids[t] >= 0 && b->token_ids[t] < m->cfg.vocab_size);
    for (int i = 0; i < b->num_seqs; i++)
        FL_ASSERT(b->seq_lens[i] <= m->max_context);
}

/* x += part (n rows of hidden), summed over the ranks first if there are
 * several: a row-parallel product's partial sums. */
static void add_over_ranks(fl_cpu_model *m, float *part, int n)
{
    const size_t count = (size_t)n * m->cfg.hidden_size;
    if (m->comm)
        m->comm->all_reduce_sum(m->comm, part, count);
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < count; i++)
        m->x[i] += part[i];
}

/* x += o_proj(attention(rope(head_norms(qkv(rmsnorm(x)))))), writing the
 * step's K/V into the cache on the way. */
static void attention_block(fl_cpu_model *m, fl_cpu_kv_cache *kv, const fl_batch *b, int li)
{
    const fl_model_config *c = &m->cfg;
    const fl_cpu_layer *l = &m->layers[li];
    const int n = b->num_tokens, np = padded_rows(n), h = c->hidden_size, hd = c->head_dim;
    const int q_dim = c->num_heads * hd, qkv_dim = q_dim + 2 * c->num_kv_heads * hd;
    rmsnorm_rows(m->xn, m->x, l->attn_norm, n, h, c->rms_norm_eps);
    matmul(m->qkv, m->xn, l->wqkv, np, h, qkv_dim, 0.0f);
    if (l->bqkv)
        add_bias(m->qkv, l->bqkv, n, qkv_dim);
    qk_rope_and_cache(m, l, kv, li, b);
    fl_attn_cpu_args attn = {
        .batch = b, .kv_group = kv->groups.group[li], .q = m->qkv, .q_stride = qkv_dim,
        .k_cache = fl_cpu_kv_k(kv, li), .v_cache = fl_cpu_kv_v(kv, li),
        .block_size = kv->block_size, .num_heads = c->num_heads,
        .num_kv_heads = c->num_kv_heads, .head_dim = hd,
        .scale = 1.0f / sqrtf((float)hd), .window = c->layers[li].window, .sinks = l->sinks,
        .out = m->attn,
        .scratch = m->scores, .scratch_per_thread = (int)m->scores_per_thread,
    };
    m->attn_backend->cpu->run(&attn);
    if (!m->comm) {
        matmul(m->x, m->attn, l->wo, np, q_dim, h, 1.0f); /* x += attn * wo^T */
        if (l->bo)
            add_bias(m->x, l->bo, n, h);
        return;
    }
    /* the rank's heads' share of o_proj (the bias once), summed over the ranks */
    matmul(m->xn, m->attn, l->wo, np, q_dim, h, 0.0f);
    if (l->bo && m->shard.rank == 0)
        add_bias(m->xn, l->bo, n, h);
    add_over_ranks(m, m->xn, n);
}

/* x += down(silu(gate(x')) * up(x')), x' = rmsnorm(x). */
static void dense_mlp_block(fl_cpu_model *m, int li, int n)
{
    const fl_model_config *c = &m->cfg;
    const fl_cpu_layer *l = &m->layers[li];
    const int np = padded_rows(n), h = c->hidden_size, ff = c->intermediate_size;
    rmsnorm_rows(m->xn, m->x, l->mlp_norm, n, h, c->rms_norm_eps);
    matmul(m->gate_up, m->xn, l->w_gate_up, np, h, 2 * ff, 0.0f);
    silu_mul(m->ffn, m->gate_up, n, ff);
    if (!m->comm) {
        matmul(m->x, m->ffn, l->w_down, np, ff, h, 1.0f); /* x += ffn * down^T */
        return;
    }
    matmul(m->xn, m->ffn, l->w_down, np, ff, h, 0.0f); /* the rank's slice's share */
    add_over_ranks(m, m->xn, n);
}

/* Each token's experts: the experts_per_token largest router logits (ties
 * to the lower index), weighted by the softmax of those logits alone; then
 * the (token, slot) pairs grouped by expert, in token order. */
static void route(fl_cpu_model *m, int n)
{
    const int E = m->cfg.num_experts, k = m->cfg.experts_per_token;
#pragma omp parallel for schedule(static)
    for (int t = 0; t < n; t++) {
        const float *logit = m->router_logits + (size_t)t * E;
        int32_t *chosen = m->route_expert + (size_t)t * k;
        float *w = m->route_weight + (size_t)t * k;
        for (int s = 0; s < k; s++) {
            int best = -1;
            for (int e = 0; e < E; e++) {
                int taken = 0;
                for (int q = 0; q < s; q++)
                    taken |= chosen[q] == e;
                if (!taken && (best < 0 || logit[e] > logit[best]))
                    best = e;
            }
            chosen[s] = best;
            w[s] = logit[best];
        }
        const float max = w[0];
        float sum = 0.0f;
        for (int s = 0; s < k; s++) {
            w[s] = expf(w[s] - max);
            sum += w[s];
        }
        for (int s = 0; s < k; s++)
            w[s] /= sum;
    }
    int32_t *start = m->expert_start, *fill = start + E + 1;
    memset(start, 0, (size_t)(E + 1) * sizeof(int32_t));
    for (int i = 0; i < n * k; i++)
        start[m->route_expert[i] + 1]++;
    for (int e = 0; e < E; e++)
        start[e + 1] += start[e];
    memcpy(fill, start, (size_t)E * sizeof(int32_t));
    for (int i = 0; i < n * k; i++)
        m->expert_rows[fill[m->route_expert[i]]++] = i;
}

/* gate/up (rows, 2 * ff, gate then up) plus bias into act (rows, ff):
 * gpt-oss's clamped SwiGLU. NaN passes through the clamps, as torch's. */
static void clamped_swiglu(float *act, const float *gate_up, const float *bias, int rows, int ff, float alpha,
                           float limit)
{
#pragma omp parallel for schedule(static)
    for (int r = 0; r < rows; r++) {
        const float *gu = gate_up + (size_t)r * 2 * ff;
        float *o = act + (size_t)r * ff;
        for (int i = 0; i < ff; i++) {
            float g = gu[i] + bias[i], u = gu[ff + i] + bias[ff + i];
            g = g > limit ? limit : g;
            u = u > limit ? limit : u < -limit ? -limit : u;
            o[i] = g / (1.0f + expf(-alpha * g)) * (u + 1.0f);
        }
    }
}

/* x += sum over the token's experts of weight * expert(x'), x' = rmsnorm(x).
 * The experts run one at a time, in index order, each on its rows alone
 * (gathered, padded to whole row chunks): a row's products never see
 * another token, and every token's sum runs in expert order, as HF's
 * loop over experts adds them. */
static void moe_block(fl_cpu_model *m, int li, int n)
{
    const fl_model_config *c = &m->cfg;
    const fl_cpu_layer *l = &m->layers[li];
    const int np = padded_rows(n), h = c->hidden_size, ff = c->intermediate_size;
    const int E = c->num_experts, k = c->experts_per_token;
    rmsnorm_rows(m->xn, m->x, l->mlp_norm, n, h, c->rms_norm_eps);
    matmul(m->router_logits, m->xn, l->router, np, h, E, 0.0f);
    add_bias(m->router_logits, l->router_bias, n, E);
    route(m, n);
    memset(m->moe_sum, 0, (size_t)n * h * sizeof(float));
    for (int e = 0; e < E; e++) {
        const int32_t *pair = m->expert_rows + m->expert_start[e];
        const int rows = m->expert_start[e + 1] - m->expert_start[e], rp = padded_rows(rows);
        if (rows == 0)
            continue;
#pragma omp parallel for schedule(static)
        for (int r = 0; r < rp; r++) {
            float *dst = m->expert_in + (size_t)r * h;
            if (r < rows)
                memcpy(dst, m->xn + (size_t)(pair[r] / k) * h, (size_t)h * sizeof(float));
            else
                memset(dst, 0, (size_t)h * sizeof(float));
        }
        matmul(m->gate_up, m->expert_in, l->experts_gate_up + (size_t)e * 2 * ff * h, rp, h, 2 * ff, 0.0f);
        clamped_swiglu(m->ffn, m->gate_up, l->experts_gate_up_bias + (size_t)e * 2 * ff, rp, ff,
                       c->swiglu_alpha, c->swiglu_limit);
        matmul(m->expert_out, m->ffn, l->experts_down + (size_t)e * h * ff, rp, ff, h, 0.0f);
        /* the down bias once over the ranks: rank 0's */
        const float *bias = m->shard.rank == 0 ? l->experts_down_bias + (size_t)e * h : NULL;
#pragma omp parallel for schedule(static)
        for (int r = 0; r < rows; r++) { /* a token meets an expert once: rows are distinct tokens */
            const float w = m->route_weight[pair[r]], *out = m->expert_out + (size_t)r * h;
            float *sum = m->moe_sum + (size_t)(pair[r] / k) * h;
            for (int i = 0; i < h; i++)
                sum[i] += (out[i] + (bias ? bias[i] : 0.0f)) * w;
        }
    }
    add_over_ranks(m, m->moe_sum, n);
}

/* logits (rows, vocab) = lm_head(xn) by chunks of ROW_CHUNK rows: each
 * rank's slice of the vocabulary, then every rank's, gathered. */
static void gather_logits(fl_cpu_model *m, int rows, float *logits)
{
    const fl_tp_shard *sh = &m->shard;
    const int h = m->cfg.hidden_size, vocab = m->cfg.vocab_size, slice = sh->vocab_slice;
    for (int r0 = 0; r0 < rows; r0 += ROW_CHUNK) {
        matmul(m->logits_part, m->xn + (size_t)r0 * h, m->lm_head, ROW_CHUNK, h, slice, 0.0f);
        m->comm->all_gather(m->comm, m->logits_part, (size_t)ROW_CHUNK * slice, m->logits_all);
        for (int r = r0; r < rows && r < r0 + ROW_CHUNK; r++)
            for (int k = 0; k < sh->size; k++) {
                const int first = k * slice, count = vocab - first < slice ? vocab - first : slice;
                if (count > 0)
                    memcpy(logits + (size_t)r * vocab + first,
                           m->logits_all + ((size_t)k * ROW_CHUNK + (size_t)(r - r0)) * slice,
                           (size_t)count * sizeof(float));
            }
    }
}

void fl_cpu_model_forward(fl_cpu_model *m, fl_cpu_kv_cache *kv, const fl_batch *b, float *logits)
{
    check_batch(m, kv, b);
    const fl_model_config *c = &m->cfg;
    const int n = b->num_tokens, h = c->hidden_size;
    const int np = padded_rows(n);
    const fl_tp_shard *sh = &m->shard;
    for (int t = 0; t < n; t++) { /* the rank's rows of the vocabulary; the other ranks' tokens 0 */
        const int64_t row = (int64_t)b->token_ids[t] - sh->vocab0;
        if (row >= 0 && row < sh->vocab)
            memcpy(m->x + (size_t)t * h, m->embed + (size_t)row * h, (size_t)h * sizeof(float));
        else
            memset(m->x + (size_t)t * h, 0, (size_t)h * sizeof(float));
    }
    if (m->comm) /* one rank's row and zeros: the sum is exact */
        m->comm->all_reduce_sum(m->comm, m->x, (size_t)n * h);
    /* padding rows start from zero each step, so they stay finite */
    memset(m->x + (size_t)n * h, 0, (size_t)(np - n) * h * sizeof(float));

    for (int li = 0; li < c->num_layers; li++) {
        attention_block(m, kv, b, li);
        switch ((fl_ffn_kind)c->layers[li].ffn) {
        case FL_FFN_DENSE_SILU: dense_mlp_block(m, li, n); break;
        case FL_FFN_MOE: moe_block(m, li, n); break;
        }
    }

    if (b->num_logits == 0)
        return;
    for (int r = 0; r < b->num_logits; r++)
        rmsnorm_row(m->xn + (size_t)r * h, m->x + (size_t)b->logit_rows[r] * h, m->final_norm, h,
                    c->rms_norm_eps);
    if (m->comm) {
        gather_logits(m, b->num_logits, logits);
        return;
    }
    /* whole chunks straight into logits, the last partial one via a bounce
     * buffer (the caller's logits have exactly num_logits rows) */
    const int whole = b->num_logits / ROW_CHUNK * ROW_CHUNK, rest = b->num_logits - whole;
    if (whole)
        matmul(logits, m->xn, m->lm_head, whole, h, c->vocab_size, 0.0f);
    if (rest) {
        matmul(m->logits_tail, m->xn + (size_t)whole * h, m->lm_head, ROW_CHUNK, h, c->vocab_size, 0.0f);
        memcpy(logits + (size_t)whole * c->vocab_size, m->logits_tail,
               (size_t)rest * c->vocab_size * sizeof(float));
    }
}
