/* test_forward_golden.c - the CPU forward pass against HF transformers.
 *
 * For each tiny fixture (Qwen3, Llama with llama3 rope and MQA, Qwen2 with
 * bias) and each KV block size, the five golden prompts (1 to 150 tokens)
 * run as ONE mixed-length batch with logits at every position; each must
 * match HF's float32 logits within 1e-3 x their largest magnitude. Then
 * greedy generation through the engine, all prompts at once, must reproduce
 * HF's 32-token continuations, both with whole prompts in one step and with
 * a small step budget that chunks the prompts and mixes prefill with
 * decode. Block tables are scattered
 * (blocks handed out in reverse, interleaved between sequences) so a paging
 * bug cannot hide behind contiguous blocks. */
#include "test_util.h"

#include <math.h>
#include <stdlib.h>

#include "cpu/cpu_model.h"
#include "cpu/cpu_runner.h"
#include "engine/engine.h"
#include "model/model.h"

#define NUM_PROMPTS 5
#define GREEDY_TOKENS 32
#define MAX_CONTEXT 256

static const int block_sizes[] = { 16, 32, 64, 128 };

typedef struct golden {
    fl_safetensors file;
    const int32_t *prompt[NUM_PROMPTS];
    int len[NUM_PROMPTS];
    const float *logits[NUM_PROMPTS]; /* (len, vocab) */
    const int32_t *greedy[NUM_PROMPTS];
} golden;

static const fl_tensor *golden_tensor(golden *g, const char *what, int i, fl_dtype dtype)
{
    char name[64];
    snprintf(name, sizeof name, "%s_%d", what, i);
    const fl_tensor *t = fl_safetensors_find(&g->file, name);
    assert_non_null(t);
    assert_int_equal(t->dtype, dtype);
    return t;
}

static void golden_load(golden *g, const char *dir, int vocab)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/golden.safetensors", dir);
    fl_error err;
    assert_int_equal(fl_safetensors_open_file(&g->file, path, &err), 0);
    for (int i = 0; i < NUM_PROMPTS; i++) {
        const fl_tensor *p = golden_tensor(g, "prompt", i, FL_I32);
        const fl_tensor *l = golden_tensor(g, "logits", i, FL_F32);
        const fl_tensor *gr = golden_tensor(g, "greedy", i, FL_I32);
        g->prompt[i] = p->data;
        g->len[i] = (int)p->shape[0];
        g->logits[i] = l->data;
        assert_int_equal(l->shape[0], g->len[i]);
        assert_int_equal(l->shape[1], vocab);
        g->greedy[i] = gr->data;
        assert_int_equal(gr->shape[0], GREEDY_TOKENS);
    }
}

/* All prompts in one batch, logits at every position, blocks scattered. */
static void check_logits(fl_cpu_model *m, const golden *g, int block_size, const char *name)
{
    const int vocab = m->cfg.vocab_size;
    int total = 0, max_blocks = 0, num_blocks = 0;
    for (int i = 0; i < NUM_PROMPTS; i++) {
        int nb = (g->len[i] + block_size - 1) / block_size;
        total += g->len[i];
        num_blocks += nb;
        if (nb > max_blocks)
            max_blocks = nb;
    }
    fl_cpu_kv_cache kv;
    fl_cpu_kv_cache_init(&kv, &m->cfg, num_blocks, block_size);
    int32_t *ids = malloc(total * sizeof(int32_t)), *pos = malloc(total * sizeof(int32_t));
    int32_t *seq = malloc(total * sizeof(int32_t)), *rows = malloc(total * sizeof(int32_t));
    int32_t *tables = malloc(NUM_PROMPTS * max_blocks * sizeof(int32_t));
    /* Block k of sequence s: handed out round-robin from the top down. */
    int next = num_blocks - 1;
    for (int k = 0; k < max_blocks; k++)
        for (int s = 0; s < NUM_PROMPTS; s++)
            if (k * block_size < g->len[s])
                tables[s * max_blocks + k] = next--;
    assert_int_equal(next, -1);
    int n = 0;
    for (int s = 0; s < NUM_PROMPTS; s++)
        for (int p = 0; p < g->len[s]; p++, n++) {
            ids[n] = g->prompt[s][p];
            pos[n] = p;
            seq[n] = s;
            rows[n] = n;
        }
    fl_batch b = { .num_tokens = total, .token_ids = ids, .positions = pos, .token_seq = seq,
                   .num_seqs = NUM_PROMPTS, .max_blocks_per_seq = max_blocks,
                   .block_tables = tables, .num_logits = total, .logit_rows = rows };
    float *logits = malloc((size_t)total * vocab * sizeof(float));
    fl_cpu_model_forward(m, &kv, &b, logits);
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
    free(ids), free(pos), free(seq), free(rows), free(tables), free(logits);
    fl_cpu_kv_cache_free(&kv);
}

typedef struct greedy_out {
    int32_t tokens[NUM_PROMPTS][GREEDY_TOKENS];
    int count[NUM_PROMPTS];
} greedy_out;

static void collect(void *ctx, const fl_seq_output *out)
{
    greedy_out *g = ctx;
    if (out->token >= 0 && g->count[out->request_id] < GREEDY_TOKENS)
        g->tokens[out->request_id][g->count[out->request_id]++] = out->token;
}

/* All prompts through the engine at once, greedy: each must equal HF's
 * continuation. step_budget tokens a step (small: prompts are chunked and
 * decodes share steps with other prompts' chunks). */
static void check_greedy(const fl_model *model, const golden *g, int block_size, int step_budget,
                         const char *name)
{
    fl_model_runner runner;
    fl_cpu_runner_init(&runner, &model->cfg, &model->weights, step_budget, MAX_CONTEXT, block_size,
                       NUM_PROMPTS * (MAX_CONTEXT / block_size + 1), NUM_PROMPTS);
    fl_engine_config ec;
    fl_engine_config_default(&ec);
    ec.max_num_batched_tokens = step_budget;
    greedy_out out = { 0 };
    fl_engine *e = fl_engine_create(&ec, &runner, NULL, NULL, 0, collect, &out);
    fl_sampling_params sp;
    fl_sampling_params_default(&sp);
    sp.temperature = 0;
    sp.max_tokens = GREEDY_TOKENS;
    sp.ignore_eos = 1;
    fl_error err;
    for (int i = 0; i < NUM_PROMPTS; i++)
        assert_int_equal(fl_engine_add(e, (uint64_t)i, g->prompt[i], g->len[i], &sp, &err), 0);
    while (fl_engine_step(e) > 0)
        ;
    fl_engine_destroy(e);
    for (int s = 0; s < NUM_PROMPTS; s++) {
        assert_int_equal(out.count[s], GREEDY_TOKENS);
        for (int k = 0; k < GREEDY_TOKENS; k++) {
            if (out.tokens[s][k] != g->greedy[s][k]) {
                print_error("%s block %d step budget %d prompt %d: token %d is %d, HF has %d\n",
                            name, block_size, step_budget, s, k, out.tokens[s][k], g->greedy[s][k]);
                fail();
            }
        }
    }
}

static void check_fixture(const char *name)
{
    fl_model model;
    fl_error err;
    const char *dir = tu_fixture(name);
    assert_int_equal(fl_model_load(&model, dir, FL_LOAD_AUTO, 0, &err), 0);
    golden g;
    golden_load(&g, dir, model.cfg.vocab_size);
    for (size_t i = 0; i < sizeof block_sizes / sizeof block_sizes[0]; i++) {
        fl_cpu_model whole;
        fl_cpu_model_init(&whole, &model.cfg, &model.weights, 256, MAX_CONTEXT);
        check_logits(&whole, &g, block_sizes[i], name);
        fl_cpu_model_free(&whole);
        check_greedy(&model, &g, block_sizes[i], 256, name);
        /* 7 tokens a step: every prompt but the first is chunked, and
         * decodes share steps with other prompts' chunks. */
        check_greedy(&model, &g, block_sizes[i], 7, name);
    }
    fl_safetensors_free(&g.file);
    fl_model_free(&model);
}

static void test_qwen3(void **state) { (void)state; check_fixture("tiny-qwen3"); }
static void test_llama(void **state) { (void)state; check_fixture("tiny-llama"); }
static void test_qwen2(void **state) { (void)state; check_fixture("tiny-qwen2"); }

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_qwen3),
        cmocka_unit_test(test_llama),
        cmocka_unit_test(test_qwen2),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
