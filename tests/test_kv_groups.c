/* test_kv_groups.c - KV cache groups (model/kv_groups.h) and what the
 * engine does with a windowed group.
 *
 * The partition of layers for one-type models, gpt-oss-20b, the tiny
 * gpt-oss fixture and a mix of unequal counts. The scheduler's prefix hit
 * on a windowed group, from blocks published by hand: the longest prefix
 * whose window is cached, not the longest cached prefix. Then the engine
 * on tiny gpt-oss (layers: window 12, full, window 12; so groups of one
 * layer) at block size 16, in steps of 7 tokens (chunked prefill): a long
 * generation keeps at most 2 blocks per windowed group between steps and
 * gives the rest back, its tokens are those a single pass over the whole
 * sequence (nothing freed) predicts; requests under preemption give the
 * tokens they give alone; aborts, preemption and the end give every block
 * back; prefix caching and n > 1 serve the same tokens. */
#include "test_util.h"

#include "golden.h"

#include <stdlib.h>

#include "cpu/cpu_model.h"
#include "cpu/cpu_runner.h"
#include "engine/engine.h"
#include "engine/engine_internal.h"
#include "model/model.h"

#define BS 16
#define BUDGET 7
#define MAX_CONTEXT 512
#define MAX_SEQS 8
#define MAX_OUT 400

static fl_model gpt_oss;

/* ---- the partition ---- */

static void expect_layer(const fl_kv_groups *g, int layer, int group, int slot)
{
    assert_int_equal(g->group[layer], group);
    assert_int_equal(g->slot[layer], slot);
}

static void expect_describe(const fl_kv_groups *g, const char *want)
{
    char got[256];
    fl_kv_groups_describe(g, got, sizeof got);
    assert_string_equal(got, want);
}

static void test_partition(void **state)
{
    (void)state;
    static fl_model_config cfg;
    fl_kv_groups g;
    fl_error err;
    assert_int_equal(fl_model_config_load_dir(&cfg, tu_fixture("tiny-qwen3"), &err), 0);
    fl_kv_groups_init(&g, &cfg);
    assert_int_equal(g.num_groups, 1);
    assert_int_equal(g.layers_per_group, cfg.num_layers);
    assert_false(fl_kv_groups_have_window(&g));
    for (int l = 0; l < cfg.num_layers; l++)
        expect_layer(&g, l, 0, l); /* the cache of one group is the cache without groups */
    expect_describe(&g, "1 group of 2 layers (full)");

    assert_int_equal(fl_model_config_parse(&cfg, fl_builtin_config_json("openai/gpt-oss-20b"), "gpt-oss-20b",
                                           &err), 0);
    fl_kv_groups_init(&g, &cfg);
    assert_int_equal(g.num_groups, 2);
    assert_int_equal(g.layers_per_group, 12);
    assert_int_equal(g.window[0], 128);
    assert_int_equal(g.window[1], 0);
    expect_layer(&g, 0, 0, 0);
    expect_layer(&g, 1, 1, 0);
    expect_layer(&g, 22, 0, 11);
    expect_layer(&g, 23, 1, 11);
    expect_describe(&g, "2 groups of 12 layers (window 128; full)");

    fl_kv_groups_init(&g, &gpt_oss.cfg);
    assert_int_equal(g.num_groups, 3);
    assert_int_equal(g.layers_per_group, 1);
    expect_layer(&g, 0, 0, 0);
    expect_layer(&g, 2, 1, 0);
    expect_layer(&g, 1, 2, 0);
    expect_describe(&g, "3 groups of 1 layer (window 12 x2; full)");

    /* 4 windowed and 2 full layers: groups of gcd(4, 2) = 2 */
    memset(&cfg, 0, sizeof cfg);
    cfg.num_layers = 6;
    static const int windows[6] = { 8, 8, 0, 8, 8, 0 };
    for (int l = 0; l < 6; l++)
        cfg.layers[l].window = windows[l];
    fl_kv_groups_init(&g, &cfg);
    assert_int_equal(g.num_groups, 3);
    assert_int_equal(g.layers_per_group, 2);
    expect_layer(&g, 0, 0, 0);
    expect_layer(&g, 1, 0, 1);
    expect_layer(&g, 3, 1, 0);
    expect_layer(&g, 4, 1, 1);
    expect_layer(&g, 2, 2, 0);
    expect_layer(&g, 5, 2, 1);
    expect_describe(&g, "3 groups of 2 layers (window 8 x2; full)");
}

/* ---- the scheduler's prefix hit with a window ---- */

enum { HIT_BS = 4, HIT_WINDOW = 8, HIT_PROMPT = 27 };

/* Group 0 over a window of 8, group 1 full; a pool of 64 blocks of 4
 * in which prompt's blocks k of group g are cached where cached[g][k]. */
static fl_scheduler *cached_prompt(const int32_t *prompt, const int cached[2][6])
{
    static const fl_kv_groups groups = { .num_groups = 2, .layers_per_group = 1, .num_layers = 2,
                                         .window = { HIT_WINDOW, 0 }, .group = { 0, 1 } };
    fl_engine_config ec;
    fl_engine_config_default(&ec);
    ec.max_num_seqs = 2;
    ec.max_model_len = 64;
    ec.max_num_batched_tokens = 64;
    fl_scheduler *s = calloc(1, sizeof *s);
    fl_scheduler_init(s, &ec, &groups, 64, HIT_BS);
    uint64_t parent = FL_BLOCK_HASH_ROOT;
    for (int k = 0; k < 6; k++) {
        const uint64_t h = fl_block_hash(parent, prompt + k * HIT_BS, HIT_BS);
        for (int g = 0; g < 2; g++) {
            if (!cached[g][k])
                continue;
            const int32_t b = fl_block_pool_alloc(&s->pool);
            fl_block_pool_publish(&s->pool, b, g, h, parent, prompt + k * HIT_BS);
            fl_block_pool_release(&s->pool, b);
        }
        parent = h;
    }
    return s;
}

/* The prompt's hit in s: the tokens admission takes from the cache. */
static int hit_of(fl_scheduler *s, const int32_t *prompt)
{
    fl_request req = { .live = 1 };
    fl_seq seq = { .req = &req, .num_prompt = HIT_PROMPT };
    for (int i = 0; i < HIT_PROMPT; i++)
        fl_ids_push(&seq.tokens, prompt[i]);
    fl_seq *list[1] = { &seq }, *rows[2];
    fl_scheduler_add(s, list, 1);
    const fl_batch b = fl_scheduler_plan(s, rows);
    char why[256];
    assert_int_equal(fl_batch_check(&b, &s->groups, HIT_BS, s->pool.num_blocks, why, sizeof why), 0);
    const int hit = seq.num_computed;
    assert_int_equal(b.num_tokens, HIT_PROMPT - hit);
    /* a windowed entry is null exactly where the hit's window has left it */
    for (int k = 0; k < hit / HIT_BS; k++)
        assert_int_equal(fl_batch_table(&b, 0, 0)[k] == FL_KV_NULL_BLOCK, (k + 1) * HIT_BS <= hit - HIT_WINDOW + 1);
    fl_scheduler_commit(s);
    fl_scheduler_finish(s, &seq);
    assert_int_equal(s->pool.num_free, fl_scheduler_usable_blocks(s));
    fl_ids_free(&seq.tokens);
    free(seq.blocks);
    fl_scheduler_free(s);
    free(s);
    return hit;
}

static void test_prefix_hit_window(void **state)
{
    (void)state;
    int32_t prompt[HIT_PROMPT];
    for (int i = 0; i < HIT_PROMPT; i++)
        prompt[i] = 100 + i;
    /* all cached: 6 blocks (the last token is always computed) */
    const int all[2][6] = { { 1, 1, 1, 1, 1, 1 }, { 1, 1, 1, 1, 1, 1 } };
    assert_int_equal(hit_of(cached_prompt(prompt, all), prompt), 24);
    /* the window of position 24 is 17..24: blocks 4 and 5; the rest may be gone */
    const int window_only[2][6] = { { 0, 0, 0, 0, 1, 1 }, { 1, 1, 1, 1, 1, 1 } };
    assert_int_equal(hit_of(cached_prompt(prompt, window_only), prompt), 24);
    /* block 4 gone: position 24's window misses it; 16's (9..16: blocks 2, 3) is cached */
    const int gap[2][6] = { { 1, 1, 1, 1, 0, 1 }, { 1, 1, 1, 1, 1, 1 } };
    assert_int_equal(hit_of(cached_prompt(prompt, gap), prompt), 16);
    /* the full group's prefix bounds the hit, the window cached or not */
    const int full_short[2][6] = { { 1, 1, 1, 1, 1, 1 }, { 1, 1, 0, 1, 1, 1 } };
    assert_int_equal(hit_of(cached_prompt(prompt, full_short), prompt), 8);
    /* nothing of the window: no hit */
    const int no_window[2][6] = { { 0, 0, 0, 0, 0, 0 }, { 1, 1, 1, 1, 1, 1 } };
    assert_int_equal(hit_of(cached_prompt(prompt, no_window), prompt), 0);
}

/* ---- the engine on tiny gpt-oss ---- */

typedef struct outputs {
    int32_t tokens[MAX_SEQS][3][MAX_OUT];
    int count[MAX_SEQS][3];
    int cached[MAX_SEQS];
} outputs;

static void collect(void *ctx, const fl_seq_output *o)
{
    outputs *out = ctx;
    if (o->token >= 0)
        out->tokens[o->request_id][o->index][out->count[o->request_id][o->index]++] = o->token;
    out->cached[o->request_id] = o->num_cached_tokens;
}

static fl_engine *make_engine(int num_blocks, int prefix_caching, outputs *out)
{
    fl_model_runner runner;
    fl_error err;
    const fl_runner_opts ro = { .attn = tu_attention("cpu"), .max_tokens = BUDGET, .max_context = MAX_CONTEXT,
                                .block_size = BS, .num_blocks = num_blocks, .max_seqs = MAX_SEQS };
    assert_int_equal(fl_cpu_runner_init(&runner, &gpt_oss.cfg, &gpt_oss.weights, &ro, &err), 0);
    fl_engine_config ec;
    fl_engine_config_default(&ec);
    ec.max_num_seqs = MAX_SEQS;
    ec.max_num_batched_tokens = BUDGET;
    ec.enable_prefix_caching = prefix_caching;
    memset(out, 0, sizeof *out);
    return fl_engine_create(&ec, &runner, NULL, NULL, 0, collect, out);
}

static void make_prompt(int32_t *prompt, int len, uint64_t seed)
{
    for (int i = 0; i < len; i++) {
        seed = seed * 6364136223846793005ull + 1442695040888963407ull;
        prompt[i] = 3 + (int32_t)((seed >> 33) % 380);
    }
}

static void add(fl_engine *e, uint64_t id, const int32_t *prompt, int len, int max_tokens, int n)
{
    fl_sampling_params sp;
    fl_sampling_params_default(&sp);
    sp.draw.temperature = 0;
    sp.max_tokens = max_tokens;
    sp.ignore_eos = 1;
    sp.n = n;
    fl_error err;
    assert_int_equal(fl_engine_add(e, id, prompt, len, &sp, &err), 0);
}

/* The blocks seq holds in group g. */
static int held(const fl_scheduler *s, const fl_seq *seq, int g)
{
    int n = 0;
    for (int k = 0; k < seq->num_blocks; k++)
        n += seq->blocks[k * s->groups.num_groups + g] != s->null_block;
    return n;
}

/* Between steps: each running sequence holds every block of its full
 * group, at most ceil((12 - 1) / 16) + 1 = 2 of each windowed one, and the
 * pool's blocks in use are exactly those the sequences hold (no sharing
 * here). Returns the most a windowed group held. */
static int check_holdings(const fl_engine *e)
{
    const fl_scheduler *s = &e->sched;
    int in_use = 0, most = 0;
    for (int i = 0; i < s->num_running; i++) {
        const fl_seq *seq = s->running[i];
        for (int g = 0; g < s->groups.num_groups; g++) {
            const int h = held(s, seq, g);
            in_use += h;
            if (s->groups.window[g] == 0) {
                assert_int_equal(h, seq->num_blocks);
            } else {
                assert_true(h <= (12 - 1 + BS - 1) / BS + 1);
                most = h > most ? h : most;
            }
        }
    }
    assert_int_equal(fl_scheduler_usable_blocks(s) - s->pool.num_free, in_use);
    return most;
}

static void expect_all_free(fl_engine *e)
{
    fl_engine_stats st;
    fl_engine_get_stats(e, &st);
    assert_int_equal(st.num_free_blocks, st.num_blocks);
    assert_int_equal(st.num_blocks, e->sched.pool.num_blocks - 1); /* the null block is never free */
}

/* One prompt of 20 tokens and 380 greedy ones (32 windows) in chunks of 7. */
static void test_long_generation(void **state)
{
    (void)state;
    enum { PROMPT = 20, OUT = 380 };
    static outputs out;
    fl_engine *e = make_engine(200, 0, &out);
    int32_t seq[PROMPT + OUT];
    make_prompt(seq, PROMPT, 1);
    add(e, 0, seq, PROMPT, OUT, 1);
    int most = 0;
    while (fl_engine_step(e) > 0) {
        const int m = check_holdings(e);
        most = m > most ? m : most;
    }
    /* at the end the full group held 25 blocks, each windowed one 2 */
    assert_int_equal(out.count[0][0], OUT);
    assert_int_equal(most, 2);
    expect_all_free(e);
    fl_engine_destroy(e);

    /* the whole sequence in one pass, nothing freed: each generated token
     * is the argmax of the logits before it */
    memcpy(seq + PROMPT, out.tokens[0][0], OUT * sizeof(int32_t));
    fl_cpu_model m;
    fl_error err;
    assert_int_equal(fl_cpu_model_init(&m, &gpt_oss.cfg, &gpt_oss.weights, tu_attention("cpu"), PROMPT + OUT,
                                       MAX_CONTEXT, &err), 0);
    fl_kv_groups groups;
    fl_kv_groups_init(&groups, &gpt_oss.cfg);
    const int32_t *seqs[1] = { seq };
    const int lens[1] = { PROMPT + OUT };
    tu_prefill step;
    tu_prefill_init(&step, &groups, BS, 1, seqs, lens);
    fl_cpu_kv_cache kv;
    fl_cpu_kv_cache_init(&kv, &gpt_oss.cfg, step.num_blocks, BS);
    const int V = gpt_oss.cfg.vocab_size;
    float *logits = malloc((size_t)(PROMPT + OUT) * V * sizeof(float));
    fl_cpu_model_forward(&m, &kv, &step.batch, logits);
    for (int p = PROMPT - 1; p < PROMPT + OUT - 1; p++) {
        const float *row = logits + (size_t)p * V;
        int best = 0;
        for (int v = 1; v < V; v++)
            best = row[v] > row[best] ? v : best;
        if (best != seq[p + 1]) {
            print_error("generated token %d is %d; one pass over the sequence predicts %d\n", p + 1 - PROMPT,
                        seq[p + 1], best);
            fail();
        }
    }
    free(logits);
    fl_cpu_kv_cache_free(&kv);
    tu_prefill_free(&step);
    fl_cpu_model_free(&m);
}

/* Six requests together in a pool too small for all: preempted ones are
 * recomputed and give the tokens they give alone. Then an abort in
 * decode, past several windows, gives its blocks back at once. */
static void test_preemption_and_abort(void **state)
{
    (void)state;
    enum { N = 6, OUT = 120 };
    static outputs alone;
    static int32_t prompts[N][100], ref[N][OUT];
    static const int lens[N] = { 5, 40, 17, 90, 64, 33 };
    for (int i = 0; i < N; i++) {
        make_prompt(prompts[i], lens[i], 10 + (uint64_t)i);
        fl_engine *e = make_engine(40, 0, &alone);
        add(e, 0, prompts[i], lens[i], OUT, 1);
        while (fl_engine_step(e) > 0)
            ;
        assert_int_equal(alone.count[0][0], OUT);
        memcpy(ref[i], alone.tokens[0][0], OUT * sizeof(int32_t));
        fl_engine_destroy(e);
    }
    /* a sequence of 210 tokens holds 14 + 2 x 2 blocks: 40 hold two */
    static outputs run;
    fl_engine *e = make_engine(41, 0, &run);
    for (int i = 0; i < N; i++)
        add(e, (uint64_t)i, prompts[i], lens[i], OUT, 1);
    while (fl_engine_step(e) > 0)
        check_holdings(e);
    fl_engine_stats st;
    fl_engine_get_stats(e, &st);
    assert_true(st.preemptions > 0);
    for (int i = 0; i < N; i++) {
        assert_int_equal(run.count[i][0], OUT);
        assert_memory_equal(run.tokens[i][0], ref[i], OUT * sizeof(int32_t));
    }
    expect_all_free(e);
    fl_engine_destroy(e);

    e = make_engine(200, 0, &run);
    add(e, 0, prompts[3], lens[3], OUT, 1);
    add(e, 1, prompts[4], lens[4], OUT, 1);
    while (run.count[0][0] < 60)
        fl_engine_step(e);
    fl_engine_abort(e, 0);
    fl_engine_step(e);
    assert_int_equal(e->sched.num_running, 1);
    check_holdings(e);
    fl_engine_abort(e, 1);
    fl_engine_step(e);
    expect_all_free(e);
    fl_engine_destroy(e);
}

/* A prompt run twice with prefix caching: the second is served its full
 * blocks, as far as the windowed groups' last blocks reach, and gives the
 * same tokens; n = 3 siblings share the first's prompt blocks and give
 * the same greedy tokens. */
static void test_prefix_caching(void **state)
{
    (void)state;
    enum { PROMPT = 100, OUT = 30 };
    static outputs out;
    int32_t prompt[PROMPT];
    make_prompt(prompt, PROMPT, 7);
    fl_engine *e = make_engine(200, 1, &out);
    add(e, 0, prompt, PROMPT, OUT, 1);
    while (fl_engine_step(e) > 0)
        ;
    add(e, 1, prompt, PROMPT, OUT, 1);
    while (fl_engine_step(e) > 0)
        ;
    assert_int_equal(out.cached[0], 0);
    assert_int_equal(out.cached[1], 96); /* 6 blocks; position 96's window (85..96) is in block 5 */
    assert_memory_equal(out.tokens[1][0], out.tokens[0][0], OUT * sizeof(int32_t));
    expect_all_free(e);
    fl_engine_destroy(e);

    static outputs siblings;
    e = make_engine(200, 0, &siblings);
    add(e, 0, prompt, PROMPT, OUT, 3);
    while (fl_engine_step(e) > 0)
        ;
    for (int i = 0; i < 3; i++)
        assert_memory_equal(siblings.tokens[0][i], out.tokens[0][0], OUT * sizeof(int32_t));
    expect_all_free(e);
    fl_engine_destroy(e);
}

static int setup(void **state)
{
    (void)state;
    fl_error err;
    return fl_model_load(&gpt_oss, tu_fixture("tiny-gpt-oss"), FL_LOAD_AUTO, 0, &err);
}

static int teardown(void **state)
{
    (void)state;
    fl_model_free(&gpt_oss);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_partition),
        cmocka_unit_test(test_prefix_hit_window),
        cmocka_unit_test(test_long_generation),
        cmocka_unit_test(test_preemption_and_abort),
        cmocka_unit_test(test_prefix_caching),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
