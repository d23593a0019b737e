/* test_forward_golden.c [FIXTURE...] - the CPU forward pass against HF
 * transformers.
 *
 * For each tiny fixture named (by default Qwen3, Llama with llama3 rope and
 * MQA, Qwen2 with bias; gpt-oss's bf16 and MXFP4 fixtures run as a ctest
 * of their own) and each KV block size, the five golden prompts (1 to 150
 * tokens) run as ONE mixed-length batch with logits at every position; each must
 * match HF's float32 logits within 1e-3 x their largest magnitude. Then
 * greedy generation through the engine, all prompts at once, must reproduce
 * HF's 32-token continuations, both with whole prompts in one step and with
 * a small step budget that chunks the prompts and mixes prefill with
 * decode. Block tables are scattered
 * (blocks handed out in reverse, interleaved between sequences) so a paging
 * bug cannot hide behind contiguous blocks. */
#include "test_util.h"

#include "golden.h"

#include <math.h>
#include <stdlib.h>

#include "cpu/cpu_model.h"
#include "cpu/cpu_runner.h"
#include "engine/engine.h"
#include "model/model.h"

#define NUM_PROMPTS TU_GOLDEN_PROMPTS
#define GREEDY_TOKENS TU_GOLDEN_TOKENS
#define MAX_CONTEXT 256

static const int block_sizes[] = { 16, 32, 64, 128 };

/* All prompts in one batch, logits at every position, blocks scattered. */
static void check_logits(fl_cpu_model *m, const tu_golden *g, int block_size, const char *name)
{
    const int vocab = m->cfg.vocab_size;
    fl_kv_groups groups;
    fl_kv_groups_init(&groups, &m->cfg);
    tu_prefill step;
    tu_prefill_init(&step, &groups, block_size, NUM_PROMPTS, g->prompt, g->len);
    fl_cpu_kv_cache kv;
    fl_cpu_kv_cache_init(&kv, &m->cfg, step.num_blocks, block_size);
    float *logits = malloc((size_t)step.batch.num_tokens * vocab * sizeof(float));
    fl_cpu_model_forward(m, &kv, &step.batch, logits);
    const float *row = logits;
    for (int s = 0; s < NUM_PROMPTS; s++) {
        double max_err = 0, max_mag = 0;
        for (size_t k = 0; k < (size_t)g->len[s] * vocab; k++) {
            double ref = g->logits[s][k];
            assert_false(isnan(row[k]));
            max_err = fmax(max_err, fabs(row[k] - ref));
            max_mag = fmax(max_mag, fabs(ref));
        }
        if (max_err >= 1e-3 * max_mag) {
            print_error("%s block %d prompt %d (%d tokens): max abs error %.3g, max |logit| %.3g\n",
                        name, block_size, s, g->len[s], max_err, max_mag);
            fail();
        }
        row += (size_t)g->len[s] * vocab;
    }
    free(logits);
    tu_prefill_free(&step);
    fl_cpu_kv_cache_free(&kv);
}

/* All prompts through the engine at once, greedy: each must equal HF's
 * continuation. step_budget tokens a step (small: prompts are chunked and
 * decodes share steps with other prompts' chunks). */
static void check_greedy(const fl_model *model, const tu_golden *g, int block_size, int step_budget,
                         const char *name)
{
    fl_model_runner runner;
    fl_error err;
    const fl_runner_opts ro = { .attn = tu_attention("cpu"), .max_tokens = step_budget,
                                .max_context = MAX_CONTEXT, .block_size = block_size,
                                .num_blocks = NUM_PROMPTS * (MAX_CONTEXT / block_size + 1),
                                .max_seqs = NUM_PROMPTS };
    assert_int_equal(fl_cpu_runner_init(&runner, &model->cfg, &model->weights, &ro, &err), 0);
    int32_t tokens[NUM_PROMPTS][GREEDY_TOKENS];
    tu_golden_generate(g, &runner, step_budget, -1, tokens);
    for (int s = 0; s < NUM_PROMPTS; s++) {
        for (int k = 0; k < GREEDY_TOKENS; k++) {
            if (tokens[s][k] != g->greedy[s][k]) {
                print_error("%s block %d step budget %d prompt %d: token %d is %d, HF has %d\n",
                            name, block_size, step_budget, s, k, tokens[s][k], g->greedy[s][k]);
                fail();
            }
        }
    }
}

static void check_fixture(const char *name)
{
    fl_model model;
    fl_error err;
    tu_golden g;
    tu_golden_fixture(name, &model, &g);
    for (size_t i = 0; i < sizeof block_sizes / sizeof block_sizes[0]; i++) {
        fl_cpu_model whole;
        assert_int_equal(fl_cpu_model_init(&whole, &model.cfg, &model.weights, tu_attention("cpu"), 256,
                                           MAX_CONTEXT, &err), 0);
        check_logits(&whole, &g, block_sizes[i], name);
        fl_cpu_model_free(&whole);
        check_greedy(&model, &g, block_sizes[i], 256, name);
        /* 7 tokens a step: every prompt but the first is chunked, and
         * decodes share steps with other prompts' chunks. */
        check_greedy(&model, &g, block_sizes[i], 7, name);
    }
    tu_golden_free(&g);
    fl_model_free(&model);
}

static void test_fixture(void **state)
{
    check_fixture(*state);
}

/* The fixtures named on the command line, or the dense ones. */
int main(int argc, char **argv)
{
    static const char *const dense[] = { "tiny-qwen3", "tiny-llama", "tiny-qwen2" };
    enum { MAX_FIXTURES = 16 };
    struct CMUnitTest tests[MAX_FIXTURES];
    const int n = argc > 1 ? argc - 1 : 3;
    assert_true(n <= MAX_FIXTURES);
    for (int i = 0; i < n; i++) {
        const char *name = argc > 1 ? argv[i + 1] : dense[i];
        tests[i] = (struct CMUnitTest){ .name = name, .test_func = test_fixture, .initial_state = (void *)name };
    }
    return _cmocka_run_group_tests("forward_golden", tests, (size_t)n, NULL, NULL);
}
