/* attn_plan.c - the host half of the CUDA attention kernels (both kernel
 * sets): which shapes they run, which sequences take the decode kernel, the
 * prefill CTAs, and the split-KV count (see attn_paged.h). Pure host code,
 * tested without a GPU. */
#include "attention/attn_paged.h"

#include <limits.h>
#include <stdio.h>

static int listed(const int *list, int n, int x)
{
    for (int i = 0; i < n; i++)
        if (list[i] == x)
            return 1;
    return 0;
}

/* "what x (supported: a, b, c)" into why. */
static void refuse(char *why, size_t len, const char *what, int x, const int *list, int n)
{
    size_t at = (size_t)snprintf(why, len, "%s %d (supported:", what, x);
    for (int i = 0; i < n && at < len; i++)
        at += (size_t)snprintf(why + at, len - at, "%s %d", i ? "," : "", list[i]);
    if (at < len)
        snprintf(why + at, len - at, ")");
}

int fl_attn_paged_supports(const fl_attn_shape *s, fl_attn_kernel_set kernels, char *why, size_t len)
{
    static const struct { const char *name; int min_cc, max_cc; } sets[] = {
        [FL_ATTN_PORTABLE] = { "portable", FL_ATTN_PORTABLE_MIN_CC, FL_ATTN_PORTABLE_MAX_CC },
        [FL_ATTN_HOPPER] = { "Hopper", FL_ATTN_HOPPER_MIN_CC, FL_ATTN_HOPPER_MAX_CC },
    };
    static const int head_dims[] = { FL_ATTN_PAGED_HEAD_DIMS }, block_sizes[] = { FL_ATTN_PAGED_BLOCK_SIZES };
    const int n_dims = (int)(sizeof head_dims / sizeof head_dims[0]);
    const int n_blocks = (int)(sizeof block_sizes / sizeof block_sizes[0]);
    if ((unsigned)kernels >= sizeof sets / sizeof sets[0]) { /* through the ABI, any int */
        snprintf(why, len, "unknown kernel set %d", (int)kernels);
        return -1;
    }
    const int min_cc = sets[kernels].min_cc, max_cc = sets[kernels].max_cc;
    if (s->cc < min_cc || s->cc > max_cc) {
        char upto[32] = " only";
        if (max_cc != min_cc)
            snprintf(upto, sizeof upto, " to %d.%d", max_cc / 10, max_cc % 10);
        snprintf(why, len, "compute capability %d.%d (the %s kernels run on %d.%d%s)", s->cc / 10, s->cc % 10,
                 sets[kernels].name, min_cc / 10, min_cc % 10, upto);
        return -1;
    }
    if (!listed(head_dims, n_dims, s->head_dim)) {
        refuse(why, len, "head dim", s->head_dim, head_dims, n_dims);
        return -1;
    }
    if (!listed(block_sizes, n_blocks, s->block_size)) {
        refuse(why, len, "block size", s->block_size, block_sizes, n_blocks);
        return -1;
    }
    if (s->kv_type != FL_ATTN_KV_BF16 && s->kv_type != FL_ATTN_KV_FP8_E4M3) { /* through the ABI, any int */
        snprintf(why, len, "unknown KV cache type %d", (int)s->kv_type);
        return -1;
    }
    if (s->num_kv_heads <= 0 || s->num_heads % s->num_kv_heads != 0) {
        snprintf(why, len, "%d query heads over %d KV heads", s->num_heads, s->num_kv_heads);
        return -1;
    }
    if (s->num_heads / s->num_kv_heads > FL_ATTN_DECODE_ROWS) {
        /* the prefill kernel would take them, but decode tiles pack a group */
        snprintf(why, len, "GQA group of %d query heads (at most %d)", s->num_heads / s->num_kv_heads,
                 FL_ATTN_DECODE_ROWS);
        return -1;
    }
    return 0;
}

int fl_attn_plan_work_cap(const fl_attn_shape *s, int num_seqs, int num_tokens)
{
    const int group = s->num_heads / s->num_kv_heads;
    const long rows = (long)num_tokens * group;
    /* each prefill sequence wastes at most one partial tile; the portable
     * set's tiles are the smaller, so its count holds for both sets */
    return (int)(2 * (rows / fl_attn_prefill_rows(s, FL_ATTN_PORTABLE) + num_seqs) + num_seqs);
}

static int ceil_div(long a, long b)
{
    return (int)((a + b - 1) / b);
}

/* The decode CTAs an SM is planned to hold when the batch is split: two
 * already keep its loads in flight (docs/PERF.md: a third adds 0.6% at
 * B256), and splitting for more only adds partial sums and shortens each
 * CTA's stream (B1 L32k: 2.64 TB/s at 33 splits, 2.55 at the 49 that
 * three CTAs an SM asked for). */
#define SPLIT_CTAS_PER_SM 2

/* Splits per decode CTA when the longest range of keys one reads is
 * `longest` (see attn_paged.h). */
static int split_count(const fl_attn_shape *s, int num_decode, int longest)
{
    if (num_decode == 0)
        return 1;
    int per_sm = s->smem_per_sm / (fl_attn_decode_smem(s->head_dim) + 1024); /* 1 KiB reserved per CTA */
    if (per_sm > SPLIT_CTAS_PER_SM)
        per_sm = SPLIT_CTAS_PER_SM;
    if (per_sm < 1)
        per_sm = 1;
    const long ctas = (long)num_decode * s->num_kv_heads, slots = (long)per_sm * s->num_sms;
    int splits = ctas >= slots ? 1 : (int)(slots / ctas);
    const int by_length = ceil_div(longest, FL_ATTN_DECODE_TILE) / 2;
    if (splits > by_length)
        splits = by_length;
    if (splits > FL_ATTN_MAX_SPLITS)
        splits = FL_ATTN_MAX_SPLITS;
    return splits < 1 ? 1 : splits;
}

void fl_attn_plan_build(fl_attn_plan *p, const fl_attn_shape *s, fl_attn_kernel_set kernels,
                        const int32_t *query_start, const int32_t *seq_lens, int num_seqs, int max_seq_len)
{
    const int group = s->num_heads / s->num_kv_heads, tile = fl_attn_prefill_rows(s, kernels);
    p->prefill_rows = tile;
    int n = 0;
    for (int i = 0; i < num_seqs; i++) {
        const int rows = (query_start[i + 1] - query_start[i]) * group;
        if (rows <= FL_ATTN_DECODE_ROWS)
            continue;
        /* last rows first: under the causal mask they see the most keys,
         * so the longest CTAs start in the first wave */
        for (int r = (rows - 1) / tile * tile; r >= 0; r -= tile) {
            p->work[n++] = i;
            p->work[n++] = r;
        }
    }
    p->num_prefill = n / 2;
    int longest = max_seq_len;
    p->decode_rows = 0;
    for (int i = 0; i < num_seqs; i++) {
        const int rows = (query_start[i + 1] - query_start[i]) * group;
        if (rows > 0 && rows <= FL_ATTN_DECODE_ROWS) {
            p->work[n++] = i;
            if (seq_lens[i] > longest)
                longest = seq_lens[i];
            if (rows > p->decode_rows)
                p->decode_rows = rows;
        }
    }
    p->num_decode = n - 2 * p->num_prefill;
    p->work_len = n;
    p->num_splits = split_count(s, p->num_decode, longest);
}

int fl_attn_plan_splits(const fl_attn_plan *p, const fl_attn_shape *s, int window)
{
    if (window <= 0)
        return p->num_splits;
    /* the window of a tile's first row, the positions of its later rows
     * (up to a tile of 16 query tokens), the first KV tile's keys before
     * the window: a bound from the window alone, not the batch's contexts
     * (a graph replays the count); shorter contexts are in num_splits */
    const long keys = (long)window + (FL_ATTN_DECODE_ROWS - 1) + (FL_ATTN_DECODE_TILE - 1);
    const int n = split_count(s, p->num_decode, keys < INT_MAX ? (int)keys : INT_MAX);
    return n < p->num_splits ? n : p->num_splits;
}

size_t fl_attn_plan_scratch_floats(const fl_attn_plan *p, const fl_attn_shape *s)
{
    if (p->num_splits <= 1)
        return 0;
    /* per (decode seq, KV head, split, row): head_dim outputs and one LSE */
    return (size_t)p->num_decode * s->num_kv_heads * p->num_splits * FL_ATTN_DECODE_ROWS *
           (size_t)(s->head_dim + 1);
}

size_t fl_attn_plan_scratch_floats_max(const fl_attn_shape *s, int max_seqs)
{
    size_t most = 0;
    for (int d = 1; d <= max_seqs; d++) {
        const fl_attn_plan p = { .num_decode = d, .num_splits = split_count(s, d, 1 << 30) };
        const size_t f = fl_attn_plan_scratch_floats(&p, s);
        if (f > most)
            most = f;
    }
    return most;
}
