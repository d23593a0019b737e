/* test_sampling.c - the sampler against independent arithmetic.
 *
 * The draw's pieces (engine/sample_draw.h): weights against exp in double,
 * the 64-bit point and the top-p target against 128-bit integers. The
 * draw: on random and crafted rows (ties, NaN, -inf, coarse and wide
 * values) with random parameters, every token equals a brute-force
 * reference written from the definitions (a weight is kept if fewer than k
 * kept weights are larger, and if the larger ones left by top-k sum below
 * the top-p target; the walk takes the kept tokens by repeated selection
 * of the largest, lowest index first); crafted rows check the kept sets by name (ties with
 * the k-th and at the top-p boundary stay; min_p 1 keeps exactly the
 * largest). Distributions: for a fixed logit vector and several
 * temperature / top-k / top-p / min-p settings, 40,000 seeded draws are
 * compared with the truncated softmax computed here from the definitions
 * (a chi-square test at alpha = 0.001; tokens the truncation removes must
 * never appear). Then greedy ties, the exact effect of logit_bias,
 * min_tokens, the repetition, presence and frequency penalties, seed
 * reproducibility, and rows with nothing to draw. */
#include "test_util.h"

#include <math.h>
#include <stdlib.h>

#include "base/rng.h"
#include "engine/sampling.h"

#define V 8
static const float base_logits[V] = { 2.0f, 1.5f, 1.0f, 0.5f, 0.0f, -0.5f, -1.0f, -2.0f };

static void expected_dist(const fl_sampling_params *sp, double *p)
{
    tu_truncated_softmax(base_logits, V, sp->draw.temperature, sp->draw.top_k, sp->draw.top_p,
                         sp->draw.min_p, p);
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
        sp.draw = (fl_draw_params){ .temperature = cases[c].t, .top_k = cases[c].k, .top_p = cases[c].p,
                                    .min_p = cases[c].min_p };
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

/* Weights: the largest logit weighs FL_DRAW_ONE; others floor(exp(s) 2^38)
 * within float's error; nothing below 2^-38, NaN or -inf. The integer
 * helpers against 128-bit arithmetic. */
static void test_draw_arithmetic(void **state)
{
    (void)state;
    const uint64_t key = fl_rng_key(11, 0);
    double worst = 0;
    for (uint64_t i = 0; i < 200000; i++) {
        const float max = (fl_rng_uniform(key, 4 * i) - 0.5f) * 200.f;
        const float inv_t = 1.0f / (0.01f + fl_rng_uniform(key, 4 * i + 1) * 5.f);
        assert_true(fl_draw_weight(max, max, inv_t) == FL_DRAW_ONE);
        const float x = -fl_rng_uniform(key, 4 * i + 2) * 27.f; /* max 0, inv_t 1: s = x */
        const double want = exp((double)x) * (double)FL_DRAW_ONE;
        const uint64_t w = fl_draw_weight(x, 0.f, 1.f);
        assert_true(w <= FL_DRAW_ONE);
        /* float's rounding of s, r and the Horner steps: a few ulps */
        const double err = fabs((double)w - want);
        assert_true(err <= want * 3e-7 + 1);
        if (want > 1e9 && err / want > worst)
            worst = err / want;
        if (x < -26.4f)
            assert_true(w <= 1);
    }
    printf("  weights: largest relative error %.2e\n", worst);
    assert_true(fl_draw_weight(NAN, 0.f, 1.f) == 0);
    assert_true(fl_draw_weight(-INFINITY, 0.f, 1.f) == 0);
    assert_true(fl_draw_weight(-1e30f, 1e30f, 1e5f) == 0);
    assert_true(fl_draw_weight(-26.6f, 0.f, 1.f) == 0);
    assert_true(fl_draw_min_weight(0.f) == 1);
    assert_true(fl_draw_min_weight(1.f) == FL_DRAW_ONE);
    assert_true(fl_draw_min_weight(0.5f) == FL_DRAW_ONE / 2);
    for (uint64_t i = 0; i < 100000; i++) {
        const uint64_t a = fl_rng_at(key, 2 * i), b = fl_rng_at(key, 2 * i + 1) >> (i % 64);
        assert_true(fl_draw_mulhi(a, b) == (uint64_t)(((unsigned __int128)a * b) >> 64));
        const uint64_t mass = b >> 1; /* a row's mass is below 2^63 */
        const float top_p = i % 3 ? fl_rng_uniform(key, i) : ldexpf(fl_rng_uniform(key, i), -(int)(i % 40));
        if (top_p == 0)
            continue;
        const unsigned __int128 p = (unsigned __int128)ceil((double)top_p * 16777216.0);
        const unsigned __int128 t = (p * mass + 16777215) >> 24;
        assert_true(fl_draw_top_p_target(top_p, mass) == (t ? (uint64_t)t : 1));
    }
    assert_true(fl_draw_mulhi(UINT64_MAX, UINT64_MAX) == UINT64_MAX - 1);
    assert_true(fl_draw_top_p_target(1.f, 12345) == 12345);
}

/* The draw from its definitions, by brute force: quadratic, for short
 * rows. NaN logits are never candidates. */
static int32_t reference_draw(const fl_draw *d, const float *x, int n)
{
    int32_t best = -1;
    for (int i = 0; i < n; i++)
        if (!isnan(x[i]) && (best < 0 || x[i] > x[best]))
            best = i;
    if (best < 0 || !isfinite(x[best]))
        return -1;
    if (fl_draw_is_greedy(&d->params))
        return best;
    const fl_draw_params *p = &d->params;
    uint64_t w[64];
    int kept[64];
    const float inv_t = 1.0f / p->temperature;
    for (int i = 0; i < n; i++) {
        w[i] = fl_draw_weight(x[i], x[best], inv_t);
        kept[i] = w[i] >= fl_draw_min_weight(p->min_p); /* never weight 0 */
    }
    if (p->top_k > 0) {
        int larger[64];
        for (int i = 0; i < n; i++) {
            larger[i] = 0;
            for (int j = 0; j < n; j++)
                larger[i] += kept[j] && w[j] > w[i];
        }
        for (int i = 0; i < n; i++)
            kept[i] = kept[i] && larger[i] < p->top_k;
    }
    if (p->top_p < 1.0f) {
        uint64_t mass = 0, above[64];
        for (int i = 0; i < n; i++)
            mass += kept[i] ? w[i] : 0;
        const uint64_t target = fl_draw_top_p_target(p->top_p, mass);
        for (int i = 0; i < n; i++) {
            above[i] = 0;
            for (int j = 0; j < n; j++)
                above[i] += kept[j] && w[j] > w[i] ? w[j] : 0;
        }
        for (int i = 0; i < n; i++)
            kept[i] = kept[i] && above[i] < target;
    }
    uint64_t mass = 0, acc = 0;
    for (int i = 0; i < n; i++)
        mass += kept[i] ? w[i] : 0;
    const uint64_t u = fl_draw_point(d, mass);
    /* the kept tokens by weight, largest first, then by index: each next
     * one is the first kept token not yet taken that no other beats */
    int taken[64] = { 0 };
    for (;;) {
        int next = -1;
        for (int i = 0; i < n; i++)
            if (kept[i] && !taken[i] && (next < 0 || w[i] > w[next]))
                next = i;
        if (next < 0)
            break;
        taken[next] = 1;
        if ((acc += w[next]) > u)
            return next;
    }
    fail_msg("the reference walk passed its mass");
    return -1;
}

/* fl_sample's token for row x[n] (copied: it cleans in place). */
static int32_t sample_row(const fl_draw *d, const float *x, int n, void *scratch)
{
    float copy[64];
    memcpy(copy, x, (size_t)n * sizeof(float));
    fl_sampling_params sp;
    fl_sampling_params_default(&sp);
    sp.draw = d->params;
    fl_sample_context c = { .rng_key = d->rng_key, .num_output = (int)d->index };
    return fl_sample(&sp, &c, copy, n, scratch, NULL);
}

static void test_draw_matches_definitions(void **state)
{
    (void)state;
    void *scratch = calloc(1, fl_sample_scratch_bytes(64));
    const uint64_t key = fl_rng_key(12, 0);
    static const float scales[] = { 0.05f, 1.f, 4.f, 40.f };
    static const float temps[] = { 0.f, 0.1f, 0.7f, 1.f, 1.5f, 3.f };
    static const int ks[] = { 0, 0, 1, 2, 3, 10, 64 };
    static const float ps[] = { 1.f, 1.f, 0.95f, 0.6f, 0.3f, 1e-6f };
    static const float min_ps[] = { 0.f, 0.f, 0.01f, 0.2f, 0.9f, 1.f };
    uint64_t q = 0;
    for (int row = 0; row < 3000; row++) {
        const int n = 1 + (int)(fl_rng_at(key, q++) % 64);
        const float scale = scales[fl_rng_at(key, q++) % 4];
        const int coarse = fl_rng_at(key, q++) % 2; /* values on a grid: ties */
        float x[64];
        for (int i = 0; i < n; i++) {
            const uint64_t r = fl_rng_at(key, q++);
            x[i] = (fl_rng_uniform(key, q++) - 0.5f) * 2.f * scale;
            if (coarse)
                x[i] = roundf(x[i] * 2.f / scale) * scale / 2.f;
            if (r % 50 == 0)
                x[i] = NAN;
            else if (r % 50 == 1)
                x[i] = -INFINITY;
        }
        fl_draw d = { .rng_key = fl_rng_key((uint64_t)row, 1) };
        d.params = (fl_draw_params){
            .temperature = temps[fl_rng_at(key, q++) % 6], .top_k = ks[fl_rng_at(key, q++) % 7],
            .top_p = ps[fl_rng_at(key, q++) % 6], .min_p = min_ps[fl_rng_at(key, q++) % 6],
        };
        for (uint64_t idx = 0; idx < 5; idx++) {
            d.index = idx * 31;
            const int32_t want = reference_draw(&d, x, n), got = sample_row(&d, x, n, scratch);
            if (got != want) {
                print_error("row %d (n %d) index %llu, T %g k %d p %g min_p %g: fl_sample %d, the "
                            "definitions %d\n", row, n, (unsigned long long)d.index, d.params.temperature,
                            d.params.top_k, d.params.top_p, d.params.min_p, got, want);
                fail();
            }
        }
    }
    free(scratch);
}

/* The tokens drawn from x[n] over 4,000 keys, as a bit set. */
static uint64_t drawn_set(const fl_draw_params *p, const float *x, int n, void *scratch)
{
    uint64_t set = 0;
    for (uint64_t k = 0; k < 4000; k++) {
        const fl_draw d = { .params = *p, .rng_key = fl_rng_key(k, 2), .index = k % 5 };
        const int32_t t = sample_row(&d, x, n, scratch);
        assert_true(t >= 0 && t < n);
        set |= 1ull << t;
    }
    return set;
}

static void test_thresholds(void **state)
{
    (void)state;
    void *scratch = calloc(1, fl_sample_scratch_bytes(10));
    /* relative weights 1, 1, e^-1 (x 3), e^-2, e^-3, 0, 0, e^-4: mass 3.307 */
    const float x[10] = { 3, 3, 2, 2, 2, 1, 0, -INFINITY, NAN, -1 };
    static const struct { fl_draw_params p; uint64_t set; } cases[] = {
        { { 1.f, 0, 1.f, 0.f }, 0x27f },   /* everything finite */
        { { 1.f, 3, 1.f, 0.f }, 0x1f },    /* the third's ties stay */
        { { 1.f, 2, 1.f, 0.f }, 0x3 },
        { { 1.f, 6, 1.f, 0.f }, 0x3f },
        { { 1.f, 0, 0.7f, 0.f }, 0x1f },   /* target 2.31: the group of 2s stays whole */
        { { 1.f, 0, 0.6f, 0.f }, 0x3 },    /* target 1.98: the two maxima reach it */
        { { 1.f, 0, 0.95f, 0.f }, 0x3f },  /* target 3.14 */
        { { 1.f, 0, 1e-9f, 0.f }, 0x3 },   /* the top group always */
        { { 1.f, 0, 1.f, 1.f }, 0x3 },     /* min_p 1: exactly the weights of FL_DRAW_ONE */
        { { 1.f, 0, 1.f, 0.3f }, 0x1f },
        { { 1.f, 0, 1.f, 0.4f }, 0x3 },
        { { 1.f, 4, 0.8f, 0.1f }, 0x1f },  /* min-p leaves 6, top-k 5 (ties), top-p all 5 */
        { { 0.5f, 0, 0.9f, 0.f }, 0x1f },  /* T 1/2: 1, 1, e^-2 (x 3), ...: target 2.18 within the 2s */
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        const uint64_t set = drawn_set(&cases[c].p, x, 10, scratch);
        if (set != cases[c].set) {
            print_error("case %zu: drew the set %#llx, want %#llx\n", c, (unsigned long long)set,
                        (unsigned long long)cases[c].set);
            fail();
        }
    }
    /* four equal logits: any top-p keeps all four */
    const float flat[6] = { 0, 0, -INFINITY, 0, 0, -30 };
    const fl_draw_params flat_p = { 1.f, 0, 0.3f, 0.f };
    assert_true(drawn_set(&flat_p, flat, 6, scratch) == 0x1b);
    free(scratch);
}

/* Greedy: the first of the largest, NaN never, whether temperature 0 or
 * top_k 1 asks for it. */
static void test_greedy_ties(void **state)
{
    (void)state;
    void *scratch = calloc(1, fl_sample_scratch_bytes(6));
    const float x[6] = { NAN, 1, 5, 2, 5, NAN };
    const fl_draw_params greedy[] = { { 0.f, 0, 1.f, 0.f }, { 1e-6f, 0, 1.f, 0.f }, { 1.f, 1, 0.5f, 0.f } };
    for (size_t c = 0; c < 3; c++)
        for (uint64_t k = 0; k < 50; k++) {
            const fl_draw d = { .params = greedy[c], .rng_key = k, .index = k };
            assert_int_equal(sample_row(&d, x, 6, scratch), 2);
        }
    free(scratch);
}

static void test_exact_effects(void **state)
{
    (void)state;
    void *scratch = calloc(1, fl_sample_scratch_bytes(V));
    fl_sampling_params sp;
    fl_sampling_params_default(&sp);
    sp.draw.temperature = 0;
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
        sp.draw.temperature = mode == 0 ? 0.f : 0.7f;
        sp.draw.top_k = mode == 2 ? 3 : 0;
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
        cmocka_unit_test(test_draw_arithmetic),
        cmocka_unit_test(test_draw_matches_definitions),
        cmocka_unit_test(test_thresholds),
        cmocka_unit_test(test_greedy_ties),
        cmocka_unit_test(test_exact_effects),
        cmocka_unit_test(test_seeds),
        cmocka_unit_test(test_no_candidate),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
