/* test_bench_stats.c - the serving benchmark's statistics against values
 * worked out by hand here. */
#include "test_util.h"

#include <math.h>

#include "bench/serve_stats.h"

static void test_summary(void **state)
{
    (void)state;
    double x[5] = { 10, 2, 4, 1, 3 };
    const double pcts[3] = { 99, 50, 25 };
    fl_summary s;
    fl_summarize(x, 5, pcts, 3, &s);
    assert_true(fabs(s.mean - 4.0) < 1e-12);
    assert_true(fabs(s.median - 3.0) < 1e-12);
    assert_true(fabs(s.std - sqrt(10.0)) < 1e-12);     /* (9 + 4 + 1 + 0 + 36) / 5 */
    assert_true(fabs(s.percentiles[0] - 9.76) < 1e-12); /* rank 3.96: 4 + 0.96 * (10 - 4) */
    assert_true(fabs(s.percentiles[1] - 3.0) < 1e-12);
    assert_true(fabs(s.percentiles[2] - 2.0) < 1e-12);  /* rank 1 */
    fl_summarize(x, 0, pcts, 3, &s);
    assert_true(s.mean == 0 && s.percentiles[0] == 0);
}

static void test_tpot_and_peaks(void **state)
{
    (void)state;
    double itl_a[3] = { 0.3, 0.3, 0.3 }, itl_b[2] = { 0.05, 0.05 }, itl_c[1] = { 0.0 };
    fl_request_timing r[4] = {
        /* A: tokens at 0.5, 0.8, 1.1, 1.4 */
        { .success = 1, .output_len = 4, .start = 0.0, .ttft = 0.5, .latency = 1.4, .itl = itl_a, .num_itl = 3 },
        /* B: tokens at 0.9, 0.95, 1.0 */
        { .success = 1, .output_len = 3, .start = 0.2, .ttft = 0.7, .latency = 0.8, .itl = itl_b, .num_itl = 2 },
        /* D: one token at 0.55, in flight 0.5 to 0.6 */
        { .success = 1, .output_len = 1, .start = 0.5, .ttft = 0.05, .latency = 0.1, .itl = NULL, .num_itl = 0 },
        /* a failure counts nowhere */
        { .success = 0, .output_len = 99, .start = 0.1, .ttft = 0.1, .latency = 5.0, .itl = itl_c, .num_itl = 1 },
    };
    assert_true(fabs(fl_tpot(&r[0]) - 0.3) < 1e-12);  /* (1.4 - 0.5) / 3 */
    assert_true(fabs(fl_tpot(&r[1]) - 0.05) < 1e-12); /* (0.8 - 0.7) / 2 */
    assert_true(fl_tpot(&r[2]) == 0);
    /* second 0: A 0.5, 0.8; B 0.9, 0.95; D 0.55 -> 5; second 1: A 1.1, 1.4; B 1.0 -> 3 */
    assert_true(fl_peak_output_throughput(r, 4) == 5);
    /* A [0, 1.4], B [0.2, 1.0], D [0.5, 0.6]: three at 0.5 */
    assert_true(fl_peak_concurrency(r, 4) == 3);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_summary),
        cmocka_unit_test(test_tpot_and_peaks),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
