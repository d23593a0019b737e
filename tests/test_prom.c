/* test_prom.c - server/prom (histograms, the Prometheus text format) and
 * server/metrics' arithmetic. Bucket counts are checked against a brute
 * count of the observations at or under each bound, read back from the
 * rendered text with sscanf; vLLM's 1-2-5 buckets against its docstring's
 * example; the phase latencies and the stat line against numbers worked
 * by hand from the timestamps fed in. */
#include "test_util.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "base/rng.h"
#include "server/metrics.h"
#include "server/prom.h"

static void test_1_2_5(void **state)
{
    (void)state;
    double b[FL_PROM_MAX_BOUNDS];
    const double want100[] = { 1, 2, 5, 10, 20, 50, 100 }; /* vLLM: build_1_2_5_buckets(100) */
    assert_int_equal(fl_prom_1_2_5_bounds(100, b, FL_PROM_MAX_BOUNDS), 7);
    for (int i = 0; i < 7; i++)
        assert_true(b[i] == want100[i]);
    assert_int_equal(fl_prom_1_2_5_bounds(512, b, FL_PROM_MAX_BOUNDS), 9); /* ... 200 500 */
    assert_true(b[8] == 500);
    assert_int_equal(fl_prom_1_2_5_bounds(0, b, FL_PROM_MAX_BOUNDS), 0);
    assert_int_equal(fl_prom_1_2_5_bounds(1e9, b, 4), 4); /* capped */
}

/* Reads back name_bucket{...,le="X"} N lines, checking each against a
 * brute count of vals <= X, then +Inf, _count and _sum. */
static void check_rendered(const char *text, const char *name, const double *bounds, int nb,
                           const double *vals, int nv)
{
    const char *p = text;
    for (int b = 0; b <= nb; b++) {
        char want_prefix[128];
        snprintf(want_prefix, sizeof want_prefix, "%s_bucket{m=\"x\",le=\"", name);
        assert_memory_equal(p, want_prefix, strlen(want_prefix));
        p += strlen(want_prefix);
        char le[64];
        double count;
        assert_int_equal(sscanf(p, "%63[^\"]\"} %lf", le, &count), 2);
        const double bound = strcmp(le, "+Inf") == 0 ? INFINITY : strtod(le, NULL);
        assert_true(b == nb ? isinf(bound) : bound == bounds[b]);
        int brute = 0;
        for (int i = 0; i < nv; i++)
            brute += vals[i] <= bound;
        assert_int_equal((int)count, brute);
        p = strchr(p, '\n') + 1;
    }
    double count, sum = 0, brute_sum = 0;
    char fmt[160];
    snprintf(fmt, sizeof fmt, "%s_count{m=\"x\"} %%lf\n%s_sum{m=\"x\"} %%lf", name, name);
    assert_int_equal(sscanf(p, fmt, &count, &sum), 2);
    assert_int_equal((int)count, nv);
    for (int i = 0; i < nv; i++)
        brute_sum += vals[i];
    assert_true(fabs(sum - brute_sum) <= 1e-12 * fabs(brute_sum) + 1e-15);
}

static void test_histogram_edges(void **state)
{
    (void)state;
    const double bounds[] = { 1, 2, 5 };
    const double vals[] = { 0.5, 1, 1.0000001, 2, 5, 6, -1, 1e300 };
    fl_histogram h;
    fl_histogram_init(&h, bounds, 3);
    for (int i = 0; i < 8; i++)
        fl_histogram_observe(&h, vals[i]);
    fl_strbuf o = { 0 };
    fl_prom_histogram(&o, "t", "m=\"x\"", &h);
    assert_non_null(strstr(o.data, "t_bucket{m=\"x\",le=\"1.0\"} 3.0\n")); /* 0.5, 1 and -1: le is inclusive */
    assert_non_null(strstr(o.data, "t_bucket{m=\"x\",le=\"+Inf\"} 8.0\n"));
    check_rendered(o.data, "t", bounds, 3, vals, 8);
    fl_strbuf_free(&o);
}

static void test_histogram_random(void **state)
{
    (void)state;
    const double bounds[] = { 0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5 };
    enum { N = 3000 };
    static double vals[N];
    fl_histogram h;
    fl_histogram_init(&h, bounds, 13);
    for (int i = 0; i < N; i++) {
        /* log-uniform over 1e-4 .. 10, and some exactly on a bound */
        const double u = fl_rng_uniform(fl_rng_key(7, 0), (uint64_t)i);
        vals[i] = i % 10 == 0 ? bounds[i % 13] : pow(10, -4 + 5 * u);
        fl_histogram_observe(&h, vals[i]);
    }
    fl_strbuf o = { 0 };
    fl_prom_histogram(&o, "r", "m=\"x\"", &h);
    check_rendered(o.data, "r", bounds, 13, vals, N);
    fl_strbuf_free(&o);
}

static void test_text(void **state)
{
    (void)state;
    fl_strbuf o = { 0 };
    fl_prom_family(&o, "a:b_total", "counter", "Help.");
    fl_prom_sample(&o, "a:b_total", "k=\"v\"", 3);
    fl_prom_sample(&o, "g", "", 0.001);
    fl_prom_sample(&o, "g", "", 0.1 + 0.2);
    fl_prom_sample(&o, "g", "", 1e20);
    fl_strbuf_append_str(&o, "L=");
    fl_prom_label_value(&o, "a\"b\\c\nd");
    assert_string_equal(o.data, "# HELP a:b_total Help.\n# TYPE a:b_total counter\n"
                                "a:b_total{k=\"v\"} 3.0\ng 0.001\ng 0.30000000000000004\ng 1e+20\n"
                                "L=a\\\"b\\\\c\\nd");
    fl_strbuf_free(&o);
}

/* One sequence's outputs: arrives at 100, scheduled 100.5, tokens at
 * 101, 101.25, 101.75; the finish is reported at 102. */
static void test_phases(void **state)
{
    (void)state;
    fl_metrics m;
    fl_metrics_init(&m, 0);
    fl_metrics_configure(&m, 512);
    fl_sampling_params sp;
    fl_sampling_params_default(&sp);
    sp.max_tokens = 3;
    const double tok[3] = { 101, 101.25, 101.75 };
    for (int i = 0; i < 3; i++) {
        fl_seq_output out = { .token = 7, .finished = i == 2, .finish_reason = i == 2 ? "length" : NULL,
                              .num_prompt_tokens = 9, .num_output_tokens = i + 1, .arrival_time = 100,
                              .scheduled_time = 100.5, .first_token_time = 101, .last_token_time = tok[i],
                              .prev_token_time = i ? tok[i - 1] : 0, .params = &sp };
        fl_metrics_on_output(&m, &out, i == 2 ? 102 : tok[i]);
    }
    assert_true(m.ttft.count == 1 && m.ttft.sum == 1.0);
    assert_true(m.itl.count == 2 && m.itl.sum == 0.75);
    assert_true(m.e2e.count == 1 && m.e2e.sum == 2.0);
    assert_true(m.queue.sum == 0.5 && m.prefill.sum == 0.5 && m.decode.sum == 0.75);
    assert_true(m.inference.sum == 1.25 && m.request_tpot.sum == 0.375);
    assert_true(m.prompt_tokens.sum == 9 && m.generation_tokens.sum == 3 && m.max_tokens.sum == 3);
    assert_true(m.success[FL_FINISH_LENGTH] == 1 && m.success[FL_FINISH_STOP] == 0);
    /* aborted while waiting: never scheduled, no token */
    fl_seq_output ab = { .token = -1, .finished = 1, .finish_reason = "abort", .num_prompt_tokens = 4,
                         .arrival_time = 200, .params = &sp };
    fl_metrics_on_output(&m, &ab, 203);
    assert_true(m.success[FL_FINISH_ABORT] == 1 && m.queue.sum == 3.5 && m.prefill.sum == 0.5);
    assert_true(m.ttft.count == 1 && m.request_tpot.count == 1);
    fl_strbuf o = { 0 };
    fl_metrics_render(&m, "my \"model\"", &o);
    assert_non_null(strstr(o.data, "vllm:request_success_total{model_name=\"my \\\"model\\\"\",engine=\"0\","
                                   "finished_reason=\"length\"} 1.0\n"));
    assert_non_null(strstr(o.data, "vllm:e2e_request_latency_seconds_sum{model_name=\"my \\\"model\\\"\","
                                   "engine=\"0\"} 5.0\n"));
    fl_strbuf_free(&o);
    fl_sampling_params_free(&sp);
    fl_metrics_free(&m);
}

/* The stat line: tokens over the interval, and one line of zeros after
 * work stops, then quiet. */
static void test_log_tick(void **state)
{
    (void)state;
    fl_metrics m;
    fl_metrics_init(&m, 2.0);
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    fl_engine_stats st = { .num_blocks = 100, .num_free_blocks = 75 };
    fl_metrics_set_engine(&m, &st);
    assert_true(fl_metrics_log_tick(&m, 10, f) == 0); /* idle */
    st.prompt_tokens = 30;
    st.generation_tokens = 5;
    st.num_running = 2;
    st.prefix_queries = 40;
    st.prefix_hits = 10;
    st.steps = 1;
    fl_metrics_set_engine(&m, &st);
    assert_true(fl_metrics_log_tick(&m, 11, f) == 12); /* the interval began at 10 */
    fflush(f);
    assert_int_equal(len, 0);
    assert_true(fl_metrics_log_tick(&m, 12, f) == 14);
    assert_true(fl_metrics_log_tick(&m, 14, f) == 0); /* nothing new: the zeros line, then quiet */
    assert_true(fl_metrics_log_tick(&m, 16, f) == 0);
    fclose(f);
    assert_string_equal(text,
        "INFO flashlm: Engine 000: Avg prompt throughput: 15.0 tokens/s, Avg generation throughput: 2.5 tokens/s, "
        "Running: 2 reqs, Waiting: 0 reqs, GPU KV cache usage: 25.0%, Prefix cache hit rate: 25.0%\n"
        "INFO flashlm: Engine 000: Avg prompt throughput: 0.0 tokens/s, Avg generation throughput: 0.0 tokens/s, "
        "Running: 2 reqs, Waiting: 0 reqs, GPU KV cache usage: 25.0%, Prefix cache hit rate: 25.0%\n");
    /* iteration tokens: the second step's 35 */
    assert_true(m.iteration_tokens.count == 1 && m.iteration_tokens.sum == 35);
    free(text);
    fl_metrics_free(&m);
}

/* --enable-log-requests' lines, in vLLM's words. */
static void test_request_lines(void **state)
{
    (void)state;
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    fl_sampling_params sp;
    fl_sampling_params_default(&sp);
    sp.has_seed = 1;
    sp.seed = 5;
    const int32_t ids[3] = { 9, 8, 7 };
    fl_metrics_log_received(f, "cmpl-1", 0, ids, 3, &sp);
    fl_metrics_log_received(f, "cmpl-1", 1, ids, 1, &sp);
    fl_metrics_log_finished(f, "cmpl-1", 0);
    fl_metrics_log_finished(f, "cmpl-2", 1);
    fclose(f);
    assert_non_null(strstr(text, "INFO flashlm: Received request cmpl-1: prompt_token_ids: [9, 8, 7], params: "
                                 "SamplingParams(n=1, "));
    assert_non_null(strstr(text, "seed=5, stop=[], ignore_eos=False, max_tokens=16, min_tokens=0, logprobs=None).\n"
                                 "INFO flashlm: Received request cmpl-1-1: prompt_token_ids: [9], "));
    assert_non_null(strstr(text, ").\nINFO flashlm: Finished request cmpl-1.\nINFO flashlm: Aborted request cmpl-2.\n"));
    free(text);
    fl_sampling_params_free(&sp);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_1_2_5),         cmocka_unit_test(test_histogram_edges),
        cmocka_unit_test(test_histogram_random), cmocka_unit_test(test_text),
        cmocka_unit_test(test_phases),        cmocka_unit_test(test_log_tick),
        cmocka_unit_test(test_request_lines),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
