/* golden.c - see golden.h. */
#include "golden.h"

#include "engine/engine.h"
#include "test_util.h"

static const fl_tensor *golden_tensor(tu_golden *g, const char *what, int i, fl_dtype dtype)
{
    char name[64];
    snprintf(name, sizeof name, "%s_%d", what, i);
    const fl_tensor *t = fl_safetensors_find(&g->file, name);
    assert_non_null(t);
    assert_int_equal(t->dtype, dtype);
    return t;
}

void tu_golden_load(tu_golden *g, const char *dir, int vocab)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/golden.safetensors", dir);
    fl_error err;
    assert_int_equal(fl_safetensors_open_file(&g->file, path, &err), 0);
    for (int i = 0; i < TU_GOLDEN_PROMPTS; i++) {
        const fl_tensor *p = golden_tensor(g, "prompt", i, FL_I32);
        const fl_tensor *l = golden_tensor(g, "logits", i, FL_F32);
        const fl_tensor *gr = golden_tensor(g, "greedy", i, FL_I32);
        g->prompt[i] = p->data;
        g->len[i] = (int)p->shape[0];
        g->logits[i] = l->data;
        assert_int_equal(l->shape[0], g->len[i]);
        assert_int_equal(l->shape[1], vocab);
        g->greedy[i] = gr->data;
        assert_int_equal(gr->shape[0], TU_GOLDEN_TOKENS);
    }
}

void tu_golden_free(tu_golden *g)
{
    fl_safetensors_free(&g->file);
}

typedef struct collected {
    int32_t (*tokens)[TU_GOLDEN_TOKENS];
    int count[TU_GOLDEN_PROMPTS];
} collected;

static void collect(void *ctx, const fl_seq_output *out)
{
    collected *c = ctx;
    if (out->token >= 0 && c->count[out->request_id] < TU_GOLDEN_TOKENS)
        c->tokens[out->request_id][c->count[out->request_id]++] = out->token;
}

void tu_golden_generate(const tu_golden *g, fl_model_runner *runner, int step_budget, int logprobs,
                        int32_t tokens[TU_GOLDEN_PROMPTS][TU_GOLDEN_TOKENS])
{
    fl_engine_config ec;
    fl_engine_config_default(&ec);
    ec.max_num_batched_tokens = step_budget;
    collected c = { .tokens = tokens };
    fl_engine *e = fl_engine_create(&ec, runner, NULL, NULL, 0, collect, &c);
    fl_sampling_params sp;
    fl_sampling_params_default(&sp);
    sp.draw.temperature = 0;
    sp.max_tokens = TU_GOLDEN_TOKENS;
    sp.ignore_eos = 1;
    sp.logprobs = logprobs;
    fl_error err;
    for (int i = 0; i < TU_GOLDEN_PROMPTS; i++)
        assert_int_equal(fl_engine_add(e, (uint64_t)i, g->prompt[i], g->len[i], &sp, &err), 0);
    while (fl_engine_step(e) > 0)
        ;
    fl_engine_destroy(e);
    for (int i = 0; i < TU_GOLDEN_PROMPTS; i++)
        assert_int_equal(c.count[i], TU_GOLDEN_TOKENS);
}
