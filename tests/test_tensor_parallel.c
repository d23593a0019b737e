/* test_tensor_parallel.c - the model split over ranks equals the whole.
 *
 * For each tiny fixture (Qwen3 with q/k norms, Llama with one KV head
 * (replicated over the ranks), Qwen2 with biases, gpt-oss with experts,
 * sinks and windows) at 2 and 4 ranks (threads of this process, the local
 * communicator): the golden prompts as one batch, logits at every
 * position, must equal the unsharded CPU runner's within float32 rounding
 * of the reordered sums (1e-5 x the largest logit; also with a vocabulary
 * the ranks do not divide, the last slice short or empty) and HF's float32
 * logits within the forward test's 1e-3, and the runner's read_logits,
 * mask_logits and greedy sample must agree with them; then greedy
 * generation through the engine, with whole prompts and with chunked,
 * mixed steps (and so async scheduling's placeholders on every rank), must
 * reproduce HF's continuations. A size that does not divide the heads, the
 * KV heads or the intermediate size is refused naming it, and a rank that
 * cannot be built (memory) fails the group naming the rank. */
#include "test_util.h"

#include "golden.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cpu/cpu_runner.h"
#include "model/model.h"
#include "parallel/tp_shard.h"

#define MAX_CONTEXT 256
#define BLOCK_SIZE 16

static fl_runner_opts opts(int step_budget)
{
    return (fl_runner_opts){ .attn = tu_attention("cpu"), .max_tokens = step_budget, .max_context = MAX_CONTEXT,
                             .block_size = BLOCK_SIZE,
                             .num_blocks = TU_GOLDEN_PROMPTS * (MAX_CONTEXT / BLOCK_SIZE + 1) + 1,
                             .max_seqs = TU_GOLDEN_PROMPTS };
}

/* The prompts' logits, every position, from a runner of tp ranks over cfg
 * (the fixture's, or one with a shorter vocabulary); on the way, the
 * runner's other reads of them: read_logits gives the forward's rows, a
 * mask sets its cleared tokens to -inf, and a greedy sample draws the
 * masked row's largest. */
static float *prefill_logits(const fl_model_config *cfg, const fl_weights *w, const int32_t *const *prompts,
                             const int *lens, int tp, size_t *count)
{
    fl_model_runner r;
    fl_error err;
    const fl_runner_opts o = opts(256);
    assert_int_equal(fl_cpu_runner_init_parallel(&r, cfg, w, &o, tp, &err), 0);
    tu_prefill step;
    tu_prefill_init(&step, r.kv_groups, BLOCK_SIZE, TU_GOLDEN_PROMPTS, prompts, lens);
    assert_true(step.num_blocks <= r.num_blocks);
    const int vocab = cfg->vocab_size, last = step.batch.num_logits - 1;
    *count = (size_t)step.batch.num_tokens * vocab;
    float *logits = malloc(*count * sizeof(float)), *row = malloc((size_t)vocab * sizeof(float));
    const float *want = logits + (size_t)last * vocab;
    r.forward(r.impl, &step.batch, logits);
    r.read_logits(r.impl, last, row);
    assert_memory_equal(row, want, (size_t)vocab * sizeof(float));
    uint32_t *mask = calloc((size_t)(vocab + 31) / 32, sizeof(uint32_t));
    int best = -1;
    for (int t = 1; t < vocab; t += 2) { /* odd tokens only */
        mask[t / 32] |= 1u << (t % 32);
        if (best < 0 || want[t] > want[best])
            best = t;
    }
    r.mask_logits(r.impl, 1, &last, mask);
    r.read_logits(r.impl, last, row);
    for (int t = 0; t < vocab; t++)
        assert_true(t % 2 ? row[t] == want[t] : isinf(row[t]) && row[t] < 0);
    fl_draw *greedy = calloc((size_t)step.batch.num_logits, sizeof(fl_draw)); /* temperature 0 */
    r.sample(r.impl, step.batch.num_logits, greedy);
    if (best >= 0)
        assert_int_equal(r.sampled(r.impl)[last], best);
    free(greedy);
    free(mask);
    free(row);
    tu_prefill_free(&step);
    r.destroy(r.impl);
    return logits;
}

/* max |a - b| over n; *mag: max |b|. */
static double max_diff(const float *a, const float *b, size_t n, double *mag)
{
    double d = 0;
    *mag = 0;
    for (size_t i = 0; i < n; i++) {
        assert_false(isnan(a[i]));
        d = fmax(d, fabs((double)a[i] - b[i]));
        *mag = fmax(*mag, fabs(b[i]));
    }
    return d;
}

/* A vocabulary the ranks do not divide evenly (the fixture's first `vocab`
 * rows: the last slice short; 3 tokens at 4 ranks: one slice empty): the
 * same logits as the whole model. */
static void check_short_vocabulary(const fl_model *model, const tu_golden *g, int vocab)
{
    fl_model_config cfg = model->cfg;
    cfg.vocab_size = vocab;
    int32_t *prompts[TU_GOLDEN_PROMPTS];
    for (int s = 0; s < TU_GOLDEN_PROMPTS; s++) {
        prompts[s] = malloc((size_t)g->len[s] * sizeof(int32_t));
        for (int k = 0; k < g->len[s]; k++)
            prompts[s][k] = g->prompt[s][k] % vocab;
    }
    const int32_t *const *p = (const int32_t *const *)prompts;
    size_t n, n_tp;
    float *whole = prefill_logits(&cfg, &model->weights, p, g->len, 1, &n);
    for (int tp = 2; tp <= 4; tp *= 2) {
        float *split = prefill_logits(&cfg, &model->weights, p, g->len, tp, &n_tp);
        assert_int_equal(n_tp, n);
        double mag;
        const double d = max_diff(split, whole, n, &mag);
        print_message("vocabulary %d, tp %d: max error against tp 1 %.3g (max |logit| %.3g)\n", vocab, tp, d, mag);
        assert_true(d > 0 && d <= 1e-5 * mag);
        free(split);
    }
    free(whole);
    for (int s = 0; s < TU_GOLDEN_PROMPTS; s++)
        free(prompts[s]);
}

static void check_fixture(const char *name)
{
    fl_model model;
    fl_error err;
    tu_golden g;
    tu_golden_fixture(name, &model, &g);
    size_t n;
    float *whole = prefill_logits(&model.cfg, &model.weights, g.prompt, g.len, 1, &n);
    for (int tp = 2; tp <= 4; tp *= 2) {
        size_t n_tp;
        float *split = prefill_logits(&model.cfg, &model.weights, g.prompt, g.len, tp, &n_tp);
        assert_int_equal(n_tp, n);
        /* the ranks' partial sums round differently from the whole
         * product's: 0 would mean the model was not split */
        double mag, err_hf = 0;
        const double err_whole = max_diff(split, whole, n, &mag);
        size_t at = 0;
        for (int s = 0; s < TU_GOLDEN_PROMPTS; s++)
            for (size_t k = 0; k < (size_t)g.len[s] * model.cfg.vocab_size; k++, at++)
                err_hf = fmax(err_hf, fabs(split[at] - g.logits[s][k]));
        print_message("%s tp %d: max |logit| %.3g, max error against tp 1 %.3g, against HF float32 %.3g\n", name, tp,
                      mag, err_whole, err_hf);
        assert_true(err_whole > 0 && err_whole <= 1e-5 * mag);
        assert_true(err_hf <= 1e-3 * mag);
        free(split);
        for (int budget = 256; budget >= 7; budget = budget == 256 ? 7 : 0) {
            fl_model_runner r;
            const fl_runner_opts o = opts(budget);
            assert_int_equal(fl_cpu_runner_init_parallel(&r, &model.cfg, &model.weights, &o, tp, &err), 0);
            int32_t tokens[TU_GOLDEN_PROMPTS][TU_GOLDEN_TOKENS];
            tu_golden_generate(&g, &r, budget, -1, tokens);
            for (int s = 0; s < TU_GOLDEN_PROMPTS; s++)
                for (int k = 0; k < TU_GOLDEN_TOKENS; k++)
                    if (tokens[s][k] != g.greedy[s][k]) {
                        print_error("%s tp %d budget %d prompt %d: token %d is %d, HF has %d\n", name, tp, budget, s,
                                    k, tokens[s][k], g.greedy[s][k]);
                        fail();
                    }
        }
    }
    free(whole);
    check_short_vocabulary(&model, &g, model.cfg.vocab_size - 3);
    check_short_vocabulary(&model, &g, 3);
    tu_golden_free(&g);
    fl_model_free(&model);
}

static void test_fixture(void **state)
{
    check_fixture(*state);
}

/* Sizes the model's shapes do not allow, each refused naming what. */
static void test_refusals(void **state)
{
    (void)state;
    fl_model model;
    fl_error err;
    assert_int_equal(fl_model_load(&model, tu_fixture("tiny-qwen3"), FL_LOAD_AUTO, 0, &err), 0);
    assert_int_equal(fl_tp_check(&model.cfg, 3, &err), -1); /* 4 heads */
    assert_msg_contains(err.msg, "does not divide the model's 4 attention heads");
    fl_model_config odd = model.cfg;
    odd.num_heads = 6;
    odd.num_kv_heads = 3; /* 2 ranks: neither divides nor is a multiple */
    assert_int_equal(fl_tp_check(&odd, 2, &err), -1);
    assert_msg_contains(err.msg, "neither divides nor is a multiple of the model's 3 KV heads");
    odd = model.cfg;
    odd.intermediate_size = 162;
    assert_int_equal(fl_tp_check(&odd, 4, &err), -1);
    assert_msg_contains(err.msg, "does not divide the model's intermediate size 162");
    fl_model_runner r;
    const fl_runner_opts o = opts(64);
    assert_int_equal(fl_cpu_runner_init_parallel(&r, &model.cfg, &model.weights, &o, 8, &err), -1);
    assert_msg_contains(err.msg, "--tensor-parallel-size 8 does not divide");
    /* a rank that cannot be built: the group is taken down, naming the rank */
    fl_runner_opts huge = opts(64);
    huge.num_blocks = 1 << 30;
    assert_int_equal(fl_cpu_runner_init_parallel(&r, &model.cfg, &model.weights, &huge, 2, &err), -1);
    assert_msg_contains(err.msg, "tensor-parallel rank 0 of 2: ");
    assert_msg_contains(err.msg, "all ranks");
    fl_model_free(&model);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_prestate(test_fixture, (void *)"tiny-qwen3"),
        cmocka_unit_test_prestate(test_fixture, (void *)"tiny-llama"),
        cmocka_unit_test_prestate(test_fixture, (void *)"tiny-qwen2"),
        cmocka_unit_test_prestate(test_fixture, (void *)"tiny-gpt-oss"),
        cmocka_unit_test(test_refusals),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
