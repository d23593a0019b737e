/* attn_cpu.c - the reference paged attention (see attn_cpu.h). */
#include "attention/attn_cpu.h"

#include <math.h>
#include <omp.h>
#include <string.h>

#include "base/error.h"

/* The sequence of row t: the last i with query_start[i] <= t (the batch's
 * sequences are contiguous and in order, so query_start increases). */
static int seq_of_row(const fl_batch *b, int t)
{
    int lo = 0, hi = b->num_seqs - 1;
    while (lo < hi) {
        const int mid = (lo + hi + 1) / 2;
        if (b->query_start[mid] <= t)
            lo = mid;
        else
            hi = mid - 1;
    }
    return lo;
}

void fl_attn_cpu(const fl_attn_cpu_args *a)
{
    const fl_batch *b = a->batch;
    const int group = a->num_heads / a->num_kv_heads;
    const int hd = a->head_dim, bs = a->block_size;
    const size_t token_stride = (size_t)a->num_kv_heads * hd;
    const int work = b->num_tokens * a->num_heads;
#pragma omp parallel for schedule(dynamic, 4)
    for (int item = 0; item < work; item++) {
        const int t = item / a->num_heads, h = item % a->num_heads, kvh = h / group;
        const int ctx = b->positions[t] + 1;
        const int first = a->window > 0 && ctx > a->window ? ctx - a->window : 0;
        FL_ASSERT(ctx - first <= a->scratch_per_thread);
        const int32_t *table = fl_batch_table(b, seq_of_row(b, t), a->kv_group);
        const float *q = a->q + (size_t)t * a->q_stride + (size_t)h * hd;
        float *scores = a->scratch + (size_t)omp_get_thread_num() * a->scratch_per_thread;
        /* the sink joins the maximum and the denominator, never the values */
        float max_score = a->sinks ? a->sinks[h] : -INFINITY;
        for (int j = first; j < ctx; j++) {
            const float *k = a->k_cache + (size_t)fl_batch_slot(table, bs, j) * token_stride +
                             (size_t)kvh * hd;
            float dot = 0.0f;
            for (int d = 0; d < hd; d++)
                dot += q[d] * k[d];
            scores[j - first] = dot * a->scale;
            if (scores[j - first] > max_score)
                max_score = scores[j - first];
        }
        float *out = a->out + (size_t)t * a->num_heads * hd + (size_t)h * hd;
        memset(out, 0, (size_t)hd * sizeof(float));
        float sum = a->sinks ? expf(a->sinks[h] - max_score) : 0.0f;
        for (int j = first; j < ctx; j++) {
            const float p = expf(scores[j - first] - max_score);
            sum += p;
            const float *v = a->v_cache + (size_t)fl_batch_slot(table, bs, j) * token_stride +
                             (size_t)kvh * hd;
            for (int d = 0; d < hd; d++)
                out[d] += p * v[d];
        }
        const float inv = 1.0f / sum;
        for (int d = 0; d < hd; d++)
            out[d] *= inv;
    }
}
