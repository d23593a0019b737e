/* golden.c - see golden.h. */
#include "golden.h"

#include <stdlib.h>

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

void tu_golden_fixture(const char *name, fl_model *model, tu_golden *g)
{
    fl_error err;
    const char *dir = tu_fixture(name);
    assert_int_equal(fl_model_load(model, dir, FL_LOAD_AUTO, 0, &err), 0);
    tu_golden_load(g, dir, model->cfg.vocab_size);
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

void tu_prefill_init(tu_prefill *p, const fl_kv_groups *groups, int block_size, int num_seqs,
                     const int32_t *const *seqs, const int *lens)
{
    const int G = groups->num_groups;
    int total = 0, max_blocks = 0, num_blocks = 0;
    for (int s = 0; s < num_seqs; s++) {
        const int nb = (lens[s] + block_size - 1) / block_size;
        total += lens[s];
        num_blocks += nb * G;
        max_blocks = nb > max_blocks ? nb : max_blocks;
    }
    const int reserved = fl_kv_groups_have_window(groups); /* block 0, handed out last */
    num_blocks += reserved;
    p->num_blocks = num_blocks;
    p->storage = malloc(((size_t)total * (3 + G) + 2 * (size_t)num_seqs + 1 +
                         (size_t)num_seqs * G * max_blocks) * sizeof(int32_t));
    int32_t *ids = p->storage, *pos = ids + total, *rows = pos + total, *slots = rows + total;
    int32_t *query_start = slots + (size_t)total * G, *seq_lens = query_start + num_seqs + 1;
    int32_t *tables = seq_lens + num_seqs;
    int next = num_blocks - 1;
    for (int k = 0; k < max_blocks; k++)
        for (int s = 0; s < num_seqs; s++)
            for (int g = 0; g < G; g++)
                if (k * block_size < lens[s])
                    tables[((size_t)s * G + g) * max_blocks + k] = next--;
    assert_int_equal(next, reserved - 1);
    int n = 0;
    for (int s = 0; s < num_seqs; s++) {
        query_start[s] = n;
        seq_lens[s] = lens[s];
        for (int q = 0; q < lens[s]; q++, n++) {
            ids[n] = seqs[s][q];
            pos[n] = q;
            rows[n] = n;
            for (int g = 0; g < G; g++)
                slots[(size_t)n * G + g] =
                    fl_batch_slot(tables + ((size_t)s * G + g) * max_blocks, block_size, q);
        }
    }
    query_start[num_seqs] = n;
    p->batch = (fl_batch){
        .num_tokens = total, .token_ids = ids, .positions = pos, .num_kv_groups = G, .slots = slots,
        .num_seqs = num_seqs, .query_start = query_start, .seq_lens = seq_lens,
        .max_blocks_per_seq = max_blocks, .block_tables = tables, .num_logits = total, .logit_rows = rows,
    };
}

void tu_prefill_free(tu_prefill *p)
{
    free(p->storage);
    memset(p, 0, sizeof *p);
}

int tu_golden_outliers_allowed(const fl_model *m, int len)
{
    for (int l = 0; l < m->cfg.num_layers; l++)
        if (m->cfg.layers[l].ffn == FL_FFN_MOE)
            return (len * 2 + 99) / 100;
    return 0;
}
