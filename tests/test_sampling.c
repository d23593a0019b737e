/* test_sampling.c - the sampler against independent arithmetic.
 *
 * Distributions: for a fixed logit vector and several temperature / top-k /
 * top-p / min-p settings, 40,000 seeded draws are compared with the
 * truncated softmax computed here from the definitions (a chi-square test at
 * alpha = 0.001; tokens the truncation removes must never appear). Then the
 * exact effect of greedy, logit_bias, min_tokens, the repetition, presence
 * and frequency penalties, and seed reproducibility. */
#include "test_util.h"

#include <math.h>
#include <stdlib.h>

#include "base/rng.h"
#include "engine/sampling.h"

#define V 8
static const float base_logits[V] = { 2.0f, 1.5f, 1.0f, 0.5f, 0.0f, -0.5f, -1.0f, -2.0f };

static void expected_dist(const fl_sampling_params *sp, double *p)
{
    tu_truncated_softmax(base_logits, V, sp->temperature, sp->top_k, sp->top_p, sp->min_p, p);
}

static int32_t draw(const fl_sampling_params *sp, uint64_t key, int num_output, void *scratch)
{
    float logits[V];
    memcpy(logits, base_logits, sizeof logits);
    fl_sample_context c = { .rng_key = key, .num_output = num_output };
    return fl_sample(sp, &c, logits, V, scratch, NULL);
}

static void test_distributions(void **state)
{
    (void)state;
    static const struct { float t; int k; float p, min_p; } cases[] = {
        { 1.0f, 0, 1.0f, 0 }, { 0.7f, 4, 1.0f, 0 }, { 1.0f, 0, 0.8f, 0 }, { 1.0f, 0, 1.0f, 0.2f },
        { 1.3f, 6, 0.9f, 0.05f }, { 2.0f, 3, 0.5f, 0 },
    };
    void *scratch = calloc(1, fl_sample_scratch_bytes(V));
    const int draws = 40000;
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        fl_sampling_params sp;
        fl_sampling_params_default(&sp);
        sp.temperature = cases[c].t;
        sp.top_k = cases[c].k;
        sp.top_p = cases[c].p;
        sp.min_p = cases[c].min_p;
        double want[V];
        expected_dist(&sp, want);
        int count[V] = { 0 };
        for (int i = 0; i < draws; i++)
            count[draw(&sp, fl_rng_key((uint64_t)i, 0), 0, scratch)]++;
        char what[32];
        snprintf(what, sizeof what, "case %zu", c);
        tu_check_draws(what, want, count, V, draws);
    }
    free(scratch);
}

static void test_exact_effects(void **state)
{
    (void)state;
    void *scratch = calloc(1, fl_sample_scratch_bytes(V));
    fl_sampling_params sp;
    fl_sampling_params_default(&sp);
    sp.temperature = 0;
    float logits[V];
    fl_sample_context c = { 0 };
    memcpy(logits, base_logits, sizeof logits);
    assert_int_equal(fl_sample(&sp, &c, logits, V, scratch, NULL), 0);

    /* logit_bias moves the argmax */
    fl_logit_bias bias = { 5, 3.0f };
    sp.logit_bias = &bias;
    sp.num_logit_bias = 1;
    memcpy(logits, base_logits, sizeof logits);
    assert_int_equal(fl_sample(&sp, &c, logits, V, scratch, NULL), 5);
    assert_true(logits[5] == 2.5f);
    sp.num_logit_bias = 0;

    /* min_tokens bans EOS and the stop ids until enough tokens exist */
    int32_t eos = 0, stop = 1;
    sp.min_tokens = 2;
    sp.stop_token_ids = &stop;
    sp.num_stop_token_ids = 1;
    c.eos_ids = &eos;
    c.num_eos = 1;
    memcpy(logits, base_logits, sizeof logits);
    assert_int_equal(fl_sample(&sp, &c, logits, V, scratch, NULL), 2);
    int32_t out2[2] = { 4, 4 };
    c.output = out2;
    c.num_output = 2;
    memcpy(logits, base_logits, sizeof logits);
    assert_int_equal(fl_sample(&sp, &c, logits, V, scratch, NULL), 0);
    sp.min_tokens = 0;
    sp.num_stop_token_ids = 0;
    c.num_eos = 0;

    /* repetition penalty: positive logits divided, negative multiplied,
     * once per distinct token of prompt and output */
    int32_t prompt[3] = { 0, 0, 6 }, output[1] = { 6 };
    c.prompt = prompt;
    c.num_prompt = 3;
    c.output = output;
    c.num_output = 1;
    sp.repetition_penalty = 2.0f;
    memcpy(logits, base_logits, sizeof logits);
    assert_int_equal(fl_sample(&sp, &c, logits, V, scratch, NULL), 1);
    assert_true(logits[0] == 1.0f && logits[6] == -2.0f && logits[1] == 1.5f);
    sp.repetition_penalty = 1.0f;

    /* presence once per token, frequency per occurrence, output tokens only */
    int32_t output3[3] = { 1, 1, 2 };
    c.output = output3;
    c.num_output = 3;
    sp.presence_penalty = 0.5f;
    sp.frequency_penalty = 0.25f;
    memcpy(logits, base_logits, sizeof logits);
    fl_sample(&sp, &c, logits, V, scratch, NULL);
    assert_true(logits[0] == 2.0f);                    /* in the prompt only: untouched */
    assert_true(fabsf(logits[1] - (1.5f - 0.5f - 0.5f)) < 1e-6f);
    assert_true(fabsf(logits[2] - (1.0f - 0.5f - 0.25f)) < 1e-6f);
    free(scratch);
}

static void test_seeds(void **state)
{
    (void)state;
    void *scratch = calloc(1, fl_sample_scratch_bytes(V));
    fl_sampling_params sp;
    fl_sampling_params_default(&sp);
    int same = 1, differ = 0;
    for (int k = 0; k < 64; k++) {
        int32_t a = draw(&sp, fl_rng_key(42, 0), k, scratch);
        int32_t b = draw(&sp, fl_rng_key(42, 0), k, scratch);
        int32_t c = draw(&sp, fl_rng_key(43, 0), k, scratch);
        same &= a == b;
        differ |= a != c;
    }
    assert_true(same);
    assert_true(differ);
    /* logprobs: of the raw logits, sorted, summing to <= 1 */
    int32_t ids[3];
    float values[3];
    fl_logprobs lp = { .ids = ids, .values = values };
    sp.logprobs = 3;
    float logits[V];
    memcpy(logits, base_logits, sizeof logits);
    fl_sample_context c = { .rng_key = 1 };
    int32_t t = fl_sample(&sp, &c, logits, V, scratch, &lp);
    double z = 0;
    for (int i = 0; i < V; i++)
        z += exp(base_logits[i]);
    assert_int_equal(lp.count, 3);
    assert_int_equal(ids[0], 0);
    assert_int_equal(ids[2], 2);
    assert_true(fabs(values[1] - (1.5 - log(z))) < 1e-5);
    assert_true(fabs(lp.chosen - (base_logits[t] - log(z))) < 1e-5);
    free(scratch);
}

/* No finite logit left: -1, whatever the settings (greedy, temperature,
 * top-k, logprobs); NaN logits are never drawn. */
static void test_no_candidate(void **state)
{
    (void)state;
    void *scratch = calloc(1, fl_sample_scratch_bytes(V));
    int32_t ids[4];
    float values[4];
    for (int mode = 0; mode < 3; mode++) {
        fl_sampling_params sp;
        fl_sampling_params_default(&sp);
        sp.temperature = mode == 0 ? 0.f : 0.7f;
        sp.top_k = mode == 2 ? 3 : 0;
        sp.logprobs = mode == 2 ? 4 : -1;
        fl_logprobs lp = { .ids = ids, .values = values };
        fl_sample_context c = { .rng_key = 1 };
        float logits[V];
        for (int i = 0; i < V; i++)
            logits[i] = -INFINITY;
        assert_int_equal(fl_sample(&sp, &c, logits, V, scratch, mode == 2 ? &lp : NULL), -1);
        for (int i = 0; i < V; i++)
            logits[i] = NAN;
        assert_int_equal(fl_sample(&sp, &c, logits, V, scratch, mode == 2 ? &lp : NULL), -1);
        memcpy(logits, base_logits, sizeof logits);
        logits[3] = INFINITY;
        assert_int_equal(fl_sample(&sp, &c, logits, V, scratch, mode == 2 ? &lp : NULL), -1);
        for (uint64_t k = 0; k < 200; k++) {
            memcpy(logits, base_logits, sizeof logits);
            logits[0] = logits[2] = NAN; /* the two most likely are broken */
            c.rng_key = k;
            const int32_t t = fl_sample(&sp, &c, logits, V, scratch, mode == 2 ? &lp : NULL);
            assert_true(t >= 0 && t < V && t != 0 && t != 2);
            if (mode == 2)
                for (int j = 0; j < lp.count; j++)
                    assert_true(isfinite(lp.values[j]) || lp.values[j] == -INFINITY);
        }
    }
    free(scratch);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_distributions),
        cmocka_unit_test(test_exact_effects),
        cmocka_unit_test(test_seeds),
        cmocka_unit_test(test_no_candidate),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
