/* test_attn_plan.c - the host half of the paged attention backend: which
 * sequences take which kernel, the prefill CTAs, the split count and the
 * scratch it needs, against the rules in attn_paged.h worked out here. */
#include "test_util.h"

#include <stdlib.h>

#include "attention/attn_paged.h"

static fl_attn_shape h100(int hq, int hkv, int d)
{
    return (fl_attn_shape){ .num_heads = hq, .num_kv_heads = hkv, .head_dim = d, .block_size = 128,
                            .num_sms = 132, .smem_per_sm = 228 * 1024, .cc = 90 };
}

/* Plans q_lens/seq_lens for a kernel set and checks the work list covers
 * every sequence's packed rows exactly once, in the right kernel, in tiles
 * of the set's prefill rows. */
static fl_attn_plan plan_for(const fl_attn_shape *s, fl_attn_kernel_set kernels, int n, const int *q_lens,
                             const int *seq_lens, int max_len, int32_t **work)
{
    int32_t *qs = malloc((n + 1) * sizeof(int32_t));
    qs[0] = 0;
    for (int i = 0; i < n; i++)
        qs[i + 1] = qs[i] + q_lens[i];
    *work = malloc(fl_attn_plan_work_cap(s, n, qs[n]) * sizeof(int32_t));
    fl_attn_plan p = { .work = *work };
    fl_attn_plan_build(&p, s, kernels, qs, seq_lens, n, max_len);
    assert_true(p.work_len <= fl_attn_plan_work_cap(s, n, qs[n]));
    assert_int_equal(p.work_len, 2 * p.num_prefill + p.num_decode);
    const int group = s->num_heads / s->num_kv_heads, tile = p.prefill_rows;
    assert_int_equal(tile, fl_attn_prefill_rows(s, kernels));
    int decode_rows = 0; /* the fp8 decode kernel's n-tiles are chosen by the most */
    for (int i = 0; i < n; i++) {
        const int rows = q_lens[i] * group;
        int covered = 0, decode = 0, last = 1 << 30;
        for (int k = 0; k < p.num_prefill; k++)
            if (p.work[2 * k] == i) {
                const int r = p.work[2 * k + 1];
                assert_int_equal(r % tile, 0);
                assert_true(r < last); /* the last rows (the longest CTAs) first */
                last = r;
                covered += rows - r < tile ? rows - r : tile;
            }
        for (int k = 0; k < p.num_decode; k++)
            decode += p.work[2 * p.num_prefill + k] == i;
        if (rows > FL_ATTN_DECODE_ROWS) {
            assert_int_equal(covered, rows);
            assert_int_equal(decode, 0);
        } else {
            assert_int_equal(covered, 0);
            assert_int_equal(decode, rows > 0);
            if (rows > decode_rows)
                decode_rows = rows;
        }
    }
    assert_int_equal(p.decode_rows, decode_rows);
    free(qs);
    return p;
}

/* The splits and the decode side do not depend on the kernel set. */
static fl_attn_plan plan(const fl_attn_shape *s, int n, const int *q_lens, const int *seq_lens, int max_len,
                         int32_t **work)
{
    return plan_for(s, FL_ATTN_PORTABLE, n, q_lens, seq_lens, max_len, work);
}

static void test_mixed_batch(void **state)
{
    (void)state;
    const fl_attn_shape s = h100(16, 8, 128); /* group 2: up to 8 tokens take the decode kernel */
    const int q_lens[] = { 1, 8, 9, 300, 1, 0, 64 }, seq_lens[] = { 40, 100, 9, 300, 5000, 7, 700 };
    int32_t *work;
    const fl_attn_plan p = plan(&s, 7, q_lens, seq_lens, 0, &work);
    assert_int_equal(p.num_decode, 3);
    assert_int_equal(p.decode_rows, 16); /* 8 tokens of 2 heads */
    assert_int_equal(p.num_prefill, 1 + 5 + 1); /* 18, 600 and 128 rows in 128-row CTAs */
    free(work);
}

/* Prefill tiles per kernel set: the portable prefill's 128 rows, 64 at head
 * dim 256; Hopper's wgmma prefill's 192 at head dims 64, 96 and 128, 128 at
 * 256 (a bf16 cache only: an fp8 cache's prefill is the portable kernel on
 * either set). */
static void test_prefill_tiles(void **state)
{
    (void)state;
    const int q_lens[] = { 1000, 24, 25, 2 }, seq_lens[] = { 1000, 500, 25, 90 };
    int32_t *work;
    fl_attn_shape s = h100(64, 8, 64); /* gpt-oss: group 8, 8 packed rows a token */
    fl_attn_plan p = plan_for(&s, FL_ATTN_HOPPER, 4, q_lens, seq_lens, 0, &work);
    assert_int_equal(p.prefill_rows, 192);
    assert_int_equal(p.num_prefill, 42 + 1 + 2); /* 8000, 192 and 200 rows; 16 take the decode kernel */
    assert_int_equal(p.num_decode, 1);
    free(work);
    p = plan_for(&s, FL_ATTN_PORTABLE, 4, q_lens, seq_lens, 0, &work);
    assert_int_equal(p.prefill_rows, 128);
    assert_int_equal(p.num_prefill, 63 + 2 + 2);
    free(work);
    /* the tile alone, per head dim, set and cache */
    static const struct {
        int num_heads, head_dim;
        fl_attn_kernel_set kernels;
        fl_attn_kv_type kv;
        int rows;
    } tiles[] = {
        { 64, 64, FL_ATTN_HOPPER, FL_ATTN_KV_FP8_E4M3, 128 },
        { 16, 128, FL_ATTN_HOPPER, FL_ATTN_KV_BF16, 192 },
        { 16, 128, FL_ATTN_PORTABLE, FL_ATTN_KV_BF16, 128 },
        { 16, 96, FL_ATTN_HOPPER, FL_ATTN_KV_BF16, 192 },
        { 16, 32, FL_ATTN_HOPPER, FL_ATTN_KV_BF16, 128 }, /* the portable prefill on either set */
        { 16, 256, FL_ATTN_HOPPER, FL_ATTN_KV_BF16, 128 },
        { 16, 256, FL_ATTN_PORTABLE, FL_ATTN_KV_BF16, 64 },
    };
    for (size_t i = 0; i < sizeof tiles / sizeof tiles[0]; i++) {
        s = h100(tiles[i].num_heads, 8, tiles[i].head_dim);
        s.kv_type = tiles[i].kv;
        assert_int_equal(plan_for(&s, tiles[i].kernels, 4, q_lens, seq_lens, 0, &work).prefill_rows, tiles[i].rows);
        free(work);
    }
}

/* The decode CTAs an SM the splits are planned for: what its shared
 * memory holds, at most two (attn_plan.c says why). */
static int split_ctas_per_sm(const fl_attn_shape *s)
{
    const int fit = s->smem_per_sm / (fl_attn_decode_smem(s->head_dim) + 1024);
    return fit < 2 ? fit : 2;
}

static void test_splits(void **state)
{
    (void)state;
    const fl_attn_shape s = h100(16, 8, 128);
    const int per_sm = split_ctas_per_sm(&s);
    int32_t *work;
    int ones[256], lens[256];
    for (int i = 0; i < 256; i++)
        ones[i] = 1, lens[i] = 32768;
    /* one sequence, long context: splits fill one wave of resident CTAs */
    fl_attn_plan p = plan(&s, 1, ones, lens, 0, &work);
    assert_int_equal(p.num_splits, per_sm * 132 / 8);
    assert_int_equal(fl_attn_plan_scratch_floats(&p, &s), (size_t)8 * p.num_splits * 16 * 129);
    assert_true(fl_attn_plan_scratch_floats(&p, &s) <= fl_attn_plan_scratch_floats_max(&s, 256));
    free(work);
    /* a batch that fills the GPU by itself: no splits, no scratch */
    p = plan(&s, 256, ones, lens, 0, &work);
    assert_int_equal(p.num_splits, 1);
    assert_int_equal(fl_attn_plan_scratch_floats(&p, &s), 0);
    free(work);
    /* a short context keeps two KV tiles a split */
    lens[0] = 300;
    p = plan(&s, 1, ones, lens, 0, &work);
    assert_int_equal(p.num_splits, 2);
    free(work);
    /* ... unless the plan is for a longer context (a CUDA graph's) */
    p = plan(&s, 1, ones, lens, 32768, &work);
    assert_int_equal(p.num_splits, per_sm * 132 / 8 > FL_ATTN_MAX_SPLITS ? FL_ATTN_MAX_SPLITS : per_sm * 132 / 8);
    free(work);
}

/* A windowed layer's decode splits follow the same rule over the keys a
 * decode CTA reads there (the window, 15 more rows' positions, up to 63
 * keys of the first tile before the window), never more than the plan's. */
static void test_window_splits(void **state)
{
    (void)state;
    const fl_attn_shape s = h100(16, 8, 128);
    const int wave = split_ctas_per_sm(&s) * 132 / 8;
    int32_t *work;
    int ones[256], lens[256];
    for (int i = 0; i < 256; i++)
        ones[i] = 1, lens[i] = 32768;
    fl_attn_plan p = plan(&s, 1, ones, lens, 0, &work);
    assert_int_equal(fl_attn_plan_splits(&p, &s, 0), p.num_splits);
    assert_int_equal(fl_attn_plan_splits(&p, &s, 128), 2); /* 206 keys, 4 tiles */
    assert_int_equal(fl_attn_plan_splits(&p, &s, 1), 1);
    assert_true(wave > 17);
    assert_int_equal(fl_attn_plan_splits(&p, &s, 2048), 17); /* 2126 keys, 34 tiles */
    assert_int_equal(fl_attn_plan_splits(&p, &s, 1 << 20), p.num_splits);
    free(work);
    /* a context shorter than the window: the plan's count, from the context */
    lens[0] = 300;
    p = plan(&s, 1, ones, lens, 0, &work);
    assert_int_equal(fl_attn_plan_splits(&p, &s, 4096), 2);
    free(work);
    /* a graph's plan (for every context up to 32k) gives its windowed layers the same small count */
    p = plan(&s, 1, ones, lens, 32768, &work);
    assert_int_equal(fl_attn_plan_splits(&p, &s, 128), 2);
    free(work);
    /* a batch that fills the GPU: one split either way */
    p = plan(&s, 256, ones, lens, 0, &work);
    assert_int_equal(fl_attn_plan_splits(&p, &s, 4096), 1);
    free(work);
}

static void test_supports(void **state)
{
    (void)state;
    char why[128];
    fl_attn_shape s = h100(16, 8, 128);
    assert_int_equal(fl_attn_paged_supports(&s, FL_ATTN_HOPPER, why, sizeof why), 0);
    assert_int_equal(fl_attn_paged_supports(&s, FL_ATTN_PORTABLE, why, sizeof why), 0);
    s.head_dim = 80;
    assert_int_equal(fl_attn_paged_supports(&s, FL_ATTN_PORTABLE, why, sizeof why), -1);
    assert_msg_contains(why, "head dim 80 (supported: 16, 32, 64, 96, 128, 256)");
    s = h100(64, 2, 128);
    assert_int_equal(fl_attn_paged_supports(&s, FL_ATTN_PORTABLE, why, sizeof why), -1);
    assert_msg_contains(why, "GQA group of 32");
    s = h100(16, 8, 128);
    s.block_size = 48;
    assert_int_equal(fl_attn_paged_supports(&s, FL_ATTN_HOPPER, why, sizeof why), -1);
    assert_msg_contains(why, "block size 48 (supported: 16, 32, 64, 128)");
    s = h100(16, 8, 128);
    s.kv_type = (fl_attn_kv_type)7; /* through the ABI, any int */
    assert_int_equal(fl_attn_paged_supports(&s, FL_ATTN_HOPPER, why, sizeof why), -1);
    assert_msg_contains(why, "unknown KV cache type 7");
}

/* Each kernel set runs where its machine code does: the portable one on
 * 8.x and 9.0, the Hopper one on 9.0 alone; a value that is neither set
 * (through the ABI) is refused. */
static void test_supports_cc(void **state)
{
    (void)state;
    char why[128];
    fl_attn_shape s = h100(16, 8, 128);
    for (s.cc = 80; s.cc <= 90; s.cc++)
        assert_int_equal(fl_attn_paged_supports(&s, FL_ATTN_PORTABLE, why, sizeof why), 0);
    s.cc = 89;
    assert_int_equal(fl_attn_paged_supports(&s, FL_ATTN_HOPPER, why, sizeof why), -1);
    assert_msg_contains(why, "compute capability 8.9 (the Hopper kernels run on 9.0 only)");
    s.cc = 100;
    assert_int_equal(fl_attn_paged_supports(&s, FL_ATTN_PORTABLE, why, sizeof why), -1);
    assert_msg_contains(why, "compute capability 10.0 (the portable kernels run on 8.0 to 9.0)");
    s.cc = 75;
    assert_int_equal(fl_attn_paged_supports(&s, FL_ATTN_PORTABLE, why, sizeof why), -1);
    s.cc = 90;
    assert_int_equal(fl_attn_paged_supports(&s, (fl_attn_kernel_set)2, why, sizeof why), -1);
    assert_msg_contains(why, "unknown kernel set 2");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_mixed_batch),
        cmocka_unit_test(test_prefill_tiles),
        cmocka_unit_test(test_splits),
        cmocka_unit_test(test_window_splits),
        cmocka_unit_test(test_supports),
        cmocka_unit_test(test_supports_cc),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
