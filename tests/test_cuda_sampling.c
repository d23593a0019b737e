/* test_cuda_sampling.c - the GPU sampler against the host sampler (GPU only).
 *
 * The host sampler (engine/sampling.c, which test_sampling checks against
 * the definitions and the truncated softmax) is the reference, token for
 * token. 200 seeded requests, each with its own parameters (greedy, or a
 * temperature with top-k, top-p and min-p combinations) and vocabulary
 * (151,936 tokens as Qwen's, or small ones down to 1), draw 4 output
 * indices each from rows of logits of their own (narrow and wide spreads,
 * values on a grid so that weights tie, spikes, NaN and -inf sprinkled,
 * rows with nothing to draw); every row of a vocabulary goes in one launch.
 * The device's token must be fl_sample's, with and without logprobs (-1
 * there, vocab or more on the device, when nothing can be drawn). Greedy
 * rows of coarse random logits must give the first argmax. Then the
 * engine: seeded requests through the CUDA runner (tiny Qwen3 fixture; a
 * random Qwen3 of the real vocabulary) must give the same tokens, hence the
 * same text, whether they ask for logprobs or min_tokens (rows read back
 * and drawn on the host) or neither (drawn on the device), all of a kind
 * or mixed in one batch. Structured output: the mask kernel against the
 * host's masking, bit for bit, then the draw from the masked rows against
 * fl_sample's; and constrained requests through the engine, drawn on the
 * device or (with logprobs) on the host from the device-masked logits, give
 * the same tokens, each one the grammar takes. */
#include "test_util.h"

#include <cuda_runtime.h>
#include <math.h>
#include <stdlib.h>

#include "attention/backend.h"
#include "base/rng.h"
#include "cuda/cuda_runner.h"
#include "cuda/model_kernels.h"
#include "engine/engine.h"
#include "engine/sampling.h"
#include "grammar/token_mask.h"
#include "model/model.h"

#define CHECK(call) assert_int_equal((int)(call), 0)

/* The device's tokens for rows rows of vocab logits (host memory). */
static int32_t *device_draw(const float *logits, int rows, int vocab, const fl_draw *draws)
{
    float *d_logits;
    fl_draw *d_draws;
    int32_t *d_tokens, *tokens = malloc((size_t)rows * sizeof(int32_t));
    CHECK(cudaMalloc((void **)&d_logits, (size_t)rows * vocab * sizeof(float)));
    CHECK(cudaMalloc((void **)&d_draws, (size_t)rows * sizeof *draws));
    CHECK(cudaMalloc((void **)&d_tokens, (size_t)rows * sizeof(int32_t)));
    CHECK(cudaMemcpy(d_logits, logits, (size_t)rows * vocab * sizeof(float), cudaMemcpyHostToDevice));
    CHECK(cudaMemcpy(d_draws, draws, (size_t)rows * sizeof *draws, cudaMemcpyHostToDevice));
    CHECK(cudaMemset(d_tokens, 0xff, (size_t)rows * sizeof(int32_t)));
    CHECK(fl_cuda_sample(d_logits, rows, vocab, d_draws, d_tokens, NULL));
    CHECK(cudaMemcpy(tokens, d_tokens, (size_t)rows * sizeof(int32_t), cudaMemcpyDeviceToHost));
    cudaFree(d_logits), cudaFree(d_draws), cudaFree(d_tokens);
    return tokens;
}

/* A row of logits of one of several kinds, from key. */
static void fill_row(float *row, int vocab, uint64_t key)
{
    const uint64_t kind = fl_rng_at(key, 0) % 10;
    const float width = (float[]){ 0.5f, 3.f, 12.f, 60.f }[fl_rng_at(key, 1) % 4];
    for (int i = 0; i < vocab; i++) {
        const uint64_t base = 4 * (uint64_t)i + 8;
        /* about normal: a sum of three uniforms */
        float x = (fl_rng_uniform(key, base) + fl_rng_uniform(key, base + 1) + fl_rng_uniform(key, base + 2) - 1.5f) *
                  width;
        const uint64_t r = fl_rng_at(key, base + 3);
        switch (kind) {
        case 0: /* on a grid: many equal weights */
            x = roundf(x * 2.f) / 2.f;
            break;
        case 1: /* a few tokens far above the rest */
            x = r % 997 == 0 ? 10.f + x : -20.f + x / 10.f;
            break;
        case 2: /* flat */
            x = 1.f;
            break;
        case 3: /* nothing to draw, one way or another */
            x = (float[]){ -INFINITY, NAN, i == vocab / 2 ? INFINITY : 0.f }[fl_rng_at(key, 2) % 3];
            break;
        default:
            break;
        }
        if (kind != 3 && r % 401 == 0)
            x = r % 2 ? NAN : -INFINITY;
        row[i] = x;
    }
}

/* A request's parameters, from key: greedy a fifth of the time. */
static fl_draw_params random_params(uint64_t key, int vocab)
{
    static const float temps[] = { 0.f, 0.05f, 0.3f, 0.7f, 1.f, 1.f, 1.3f, 2.f, 5.f, -1 };
    static const float top_ps[] = { 1.f, 1.f, 1.f, 0.95f, 0.9f, 0.5f, 0.1f, 1e-6f, -1 };
    static const float min_ps[] = { 0.f, 0.f, 0.f, 0.01f, 0.1f, 0.5f, 1.f, -1 };
    const int top_ks[] = { 0, 0, 0, -1, 1, 2, 5, 50, 1000, vocab, vocab + 7 };
    fl_draw_params p = {
        .temperature = temps[fl_rng_at(key, 0) % 10],
        .top_k = top_ks[fl_rng_at(key, 1) % 11],
        .top_p = top_ps[fl_rng_at(key, 2) % 9],
        .min_p = min_ps[fl_rng_at(key, 3) % 8],
    };
    if (p.temperature < 0) /* -1: a random value */
        p.temperature = 0.01f + 3.f * fl_rng_uniform(key, 4);
    if (p.top_p < 0)
        p.top_p = fl_rng_uniform(key, 5) + 1e-3f > 1.f ? 1.f : fl_rng_uniform(key, 5) + 1e-3f;
    if (p.min_p < 0)
        p.min_p = 0.3f * fl_rng_uniform(key, 6);
    return p;
}

/* fl_sample's token for d from a copy of row (it changes its logits),
 * with logprobs or without. */
static int32_t host_draw(const fl_draw *d, const float *row, int vocab, float *copy, void *scratch, int logprobs)
{
    memcpy(copy, row, (size_t)vocab * sizeof(float));
    fl_sampling_params sp;
    fl_sampling_params_default(&sp);
    sp.draw = d->params;
    sp.logprobs = logprobs ? 2 : -1;
    int32_t ids[2];
    float values[2];
    fl_logprobs lp = { .ids = ids, .values = values };
    fl_sample_context c = { .rng_key = d->rng_key, .num_output = (int)d->index };
    return fl_sample(&sp, &c, copy, vocab, scratch, logprobs ? &lp : NULL);
}

#define REQUESTS 200
#define INDICES 4

static void test_matches_host(void **state)
{
    (void)state;
    static const int vocabs[] = { 151936, 1, 7, 384, 5000, 32000 };
    const uint64_t key = fl_rng_key(2024, 14);
    int compared = 0, drawn = 0, none = 0, mismatches = 0;
    for (size_t v = 0; v < sizeof vocabs / sizeof vocabs[0]; v++) {
        const int vocab = vocabs[v];
        /* request q has vocabulary vocabs[q % 6]: every sixth the full one */
        int rows = 0;
        for (int q = (int)v; q < REQUESTS; q += 6)
            rows += INDICES;
        float *logits = malloc((size_t)rows * vocab * sizeof(float)), *copy = malloc((size_t)vocab * sizeof(float));
        fl_draw *draws = malloc((size_t)rows * sizeof *draws);
        int *request = malloc((size_t)rows * sizeof(int));
        void *scratch = calloc(1, fl_sample_scratch_bytes(vocab));
        int r = 0;
        for (int q = (int)v; q < REQUESTS; q += 6) {
            const fl_draw_params p = random_params(fl_rng_at(key, (uint64_t)q), vocab);
            for (int j = 0; j < INDICES; j++, r++) {
                fill_row(logits + (size_t)r * vocab, vocab, fl_rng_key((uint64_t)q, (uint64_t)j + 1));
                draws[r] = (fl_draw){ .params = p, .rng_key = fl_rng_key((uint64_t)q, 0),
                                      .index = (uint64_t)(j * j * 5 + q % 3) };
                request[r] = q;
            }
        }
        int32_t *tokens = device_draw(logits, rows, vocab, draws);
        for (r = 0; r < rows; r++) {
            const float *row = logits + (size_t)r * vocab;
            const int32_t want = host_draw(&draws[r], row, vocab, copy, scratch, 0);
            const int32_t with_lp = host_draw(&draws[r], row, vocab, copy, scratch, 1);
            const int same = want < 0 ? tokens[r] >= vocab : tokens[r] == want;
            if (!same || with_lp != want) {
                const fl_draw_params *p = &draws[r].params;
                if (mismatches++ < 10)
                    print_error("request %d (vocab %d) index %llu, T %g top_k %d top_p %g min_p %g: device %d, "
                                "host %d, host with logprobs %d\n", request[r], vocab,
                                (unsigned long long)draws[r].index, p->temperature, p->top_k, p->top_p, p->min_p,
                                tokens[r], want, with_lp);
            }
            compared++;
            none += want < 0;
            drawn += want >= 0 && !fl_draw_is_greedy(&draws[r].params);
        }
        free(tokens), free(scratch), free(request), free(draws), free(copy), free(logits);
    }
    printf("  %d rows of %d requests: %d drawn, %d greedy, %d with nothing to draw; %d mismatches\n", compared,
           REQUESTS, drawn, compared - drawn - none, none, mismatches);
    assert_int_equal(mismatches, 0);
}

static void test_greedy(void **state)
{
    (void)state;
    const int rows = 64, vocab = 151936;
    float *logits = malloc((size_t)rows * vocab * sizeof(float));
    fl_draw *draws = calloc(rows, sizeof *draws);
    uint64_t key = fl_rng_key(7, 7);
    for (size_t i = 0; i < (size_t)rows * vocab; i++) /* coarse values: ties happen */
        logits[i] = (float)(int)(fl_rng_uniform(key, i) * 2000.f) / 100.f;
    for (int r = 0; r < rows; r++) { /* temperature 0, or top_k 1 at temperature 1: both greedy */
        draws[r].params.top_k = r % 2;
        draws[r].params.temperature = (float)(r % 2);
    }
    int32_t *tokens = device_draw(logits, rows, vocab, draws);
    for (int r = 0; r < rows; r++) {
        const float *row = logits + (size_t)r * vocab;
        int best = 0;
        for (int i = 1; i < vocab; i++)
            if (row[i] > row[best])
                best = i;
        assert_int_equal(tokens[r], best);
    }
    free(tokens), free(draws), free(logits);
}

/* ---- structured output's masks ---- */

/* Random rows (some of them masked, by masks of every density, an empty
 * one included) masked on the device and on the host: the same logits, bit
 * for bit, and the same draws. */
static void test_mask_matches_host(void **state)
{
    (void)state;
    static const int vocabs[] = { 151936, 33, 5000 };
    const uint64_t key = fl_rng_key(31, 7);
    int mismatches = 0, rows_checked = 0;
    for (size_t v = 0; v < sizeof vocabs / sizeof vocabs[0]; v++) {
        const int vocab = vocabs[v], rows = 24, words = fl_token_mask_words(vocab);
        float *logits = malloc((size_t)rows * vocab * sizeof(float)), *host = malloc((size_t)rows * vocab * sizeof(float));
        uint32_t *masks = calloc((size_t)rows * words, sizeof *masks);
        int32_t rows_of[24];
        int n = 0;
        for (int r = 0; r < rows; r++) {
            fill_row(logits + (size_t)r * vocab, vocab, fl_rng_key(v, (uint64_t)r));
            if (r % 3 == 1)
                continue; /* unmasked rows stay as they are */
            const uint64_t density = fl_rng_at(key, (uint64_t)r) % 5; /* 0: nothing allowed */
            for (int t = 0; t < vocab; t++)
                if (density && fl_rng_at(key, ((uint64_t)r << 32) + (uint64_t)t) % 8 < 2 * density - 1)
                    masks[(size_t)n * words + (t >> 5)] |= 1u << (t & 31);
            rows_of[n++] = r;
        }
        memcpy(host, logits, (size_t)rows * vocab * sizeof(float));
        for (int i = 0; i < n; i++)
            for (int t = 0; t < vocab; t++)
                if (!(masks[(size_t)i * words + (t >> 5)] >> (t & 31) & 1))
                    host[(size_t)rows_of[i] * vocab + t] = -INFINITY;
        float *d_logits;
        uint32_t *d_masks;
        int32_t *d_rows;
        CHECK(cudaMalloc((void **)&d_logits, (size_t)rows * vocab * sizeof(float)));
        CHECK(cudaMalloc((void **)&d_masks, (size_t)n * words * sizeof(uint32_t)));
        CHECK(cudaMalloc((void **)&d_rows, (size_t)n * sizeof(int32_t)));
        CHECK(cudaMemcpy(d_logits, logits, (size_t)rows * vocab * sizeof(float), cudaMemcpyHostToDevice));
        CHECK(cudaMemcpy(d_masks, masks, (size_t)n * words * sizeof(uint32_t), cudaMemcpyHostToDevice));
        CHECK(cudaMemcpy(d_rows, rows_of, (size_t)n * sizeof(int32_t), cudaMemcpyHostToDevice));
        CHECK(fl_cuda_mask_logits(d_logits, n, vocab, d_rows, d_masks, NULL));
        CHECK(cudaMemcpy(logits, d_logits, (size_t)rows * vocab * sizeof(float), cudaMemcpyDeviceToHost));
        cudaFree(d_logits), cudaFree(d_masks), cudaFree(d_rows);
        if (memcmp(logits, host, (size_t)rows * vocab * sizeof(float)) != 0) {
            print_error("vocab %d: the device's masked logits differ from the host's\n", vocab);
            fail();
        }
        /* the draws from the masked rows, device against host */
        fl_draw *draws = calloc(rows, sizeof *draws);
        for (int r = 0; r < rows; r++)
            draws[r] = (fl_draw){ .params = random_params(fl_rng_at(key, 1000 + (uint64_t)r), vocab),
                                  .rng_key = fl_rng_key(v, 1000 + (uint64_t)r), .index = (uint64_t)r };
        int32_t *tokens = device_draw(host, rows, vocab, draws);
        float *copy = malloc((size_t)vocab * sizeof(float));
        void *scratch = calloc(1, fl_sample_scratch_bytes(vocab));
        for (int r = 0; r < rows; r++) {
            const int32_t want = host_draw(&draws[r], host + (size_t)r * vocab, vocab, copy, scratch, 0);
            if (want < 0 ? tokens[r] < vocab : tokens[r] != want)
                mismatches++;
            if (want >= 0 && host[(size_t)r * vocab + want] == -INFINITY)
                mismatches++; /* a token the mask left out */
            rows_checked++;
        }
        free(tokens), free(copy), free(scratch), free(draws), free(masks), free(host), free(logits);
    }
    printf("  %d masked and unmasked rows: logits bit for bit, %d draw mismatches\n", rows_checked, mismatches);
    assert_int_equal(mismatches, 0);
}

/* ---- the engine: the same tokens whichever sampler draws them ---- */

#define ENGINE_REQUESTS 8
#define ENGINE_TOKENS 24

typedef struct outputs {
    int32_t tokens[ENGINE_REQUESTS][ENGINE_TOKENS];
    int count[ENGINE_REQUESTS];
    int errors;
} outputs;

static void collect(void *ctx, const fl_seq_output *out)
{
    outputs *o = ctx;
    if (out->finish_reason && strcmp(out->finish_reason, "error") == 0)
        o->errors++;
    if (out->token >= 0 && o->count[out->request_id] < ENGINE_TOKENS)
        o->tokens[out->request_id][o->count[out->request_id]++] = out->token;
}

typedef enum { ON_DEVICE, LOGPROBS, MIN_TOKENS, MIXED, CONSTRAINED, CONSTRAINED_LOGPROBS } run_kind;

static fl_constraint *engine_constraint; /* the CONSTRAINED runs' */

static void engine_run(const fl_model *m, run_kind kind, outputs *out)
{
    static const fl_draw_params params[ENGINE_REQUESTS] = {
        { 0.8f, 0, 0.9f, 0.f }, { 1.f, 0, 1.f, 0.f }, { 0.7f, 50, 0.95f, 0.05f }, { 1.5f, 20, 1.f, 0.f },
        { 1.f, 0, 0.5f, 0.f }, { 0.3f, 0, 1.f, 0.1f }, { 1.2f, 100, 0.8f, 0.02f }, { 0.f, 0, 1.f, 0.f },
    };
    const int block_size = 16, max_context = 256;
    fl_error err;
    int cc;
    assert_int_equal(fl_cuda_device_cc(&cc, &err), 0);
    const fl_attn_needs needs = fl_attn_needs_of(&m->cfg, FL_DEVICE_CUDA, cc, block_size, FL_BF16);
    const fl_attn_backend *attn = fl_attn_backend_select(NULL, &needs, &err);
    assert_non_null(attn);
    const fl_runner_opts o = { .attn = attn, .max_tokens = 512, .max_context = max_context, .max_seqs = 256,
                               .block_size = block_size,
                               .num_blocks = ENGINE_REQUESTS * (max_context / block_size + 1),
                               .gpu_memory_utilization = 0.9f };
    fl_model_runner runner;
    if (fl_cuda_runner_init(&runner, &m->cfg, &m->weights, &o, &err) != 0) {
        print_error("%s\n", err.msg);
        fail();
    }
    fl_engine_config ec;
    fl_engine_config_default(&ec);
    ec.max_num_batched_tokens = 512;
    memset(out, 0, sizeof *out);
    fl_engine *e = fl_engine_create(&ec, &runner, NULL, m->cfg.eos_token_ids, m->cfg.num_eos_ids, collect, out);
    const uint64_t key = fl_rng_key(99, 0);
    for (int q = 0; q < ENGINE_REQUESTS; q++) {
        int32_t prompt[32];
        const int len = 3 + q * 3;
        for (int i = 0; i < len; i++)
            prompt[i] = (int32_t)(fl_rng_at(key, (uint64_t)(q * 64 + i)) % (uint64_t)m->cfg.vocab_size);
        fl_sampling_params sp;
        fl_sampling_params_default(&sp);
        sp.draw = params[q];
        sp.has_seed = 1;
        sp.seed = 1000 + (uint64_t)q;
        sp.max_tokens = ENGINE_TOKENS;
        sp.ignore_eos = 1; /* so min_tokens bans nothing: it only sends rows to the host */
        if (kind == LOGPROBS || (kind == MIXED && q % 2))
            sp.logprobs = 2;
        if (kind == MIN_TOKENS || (kind == MIXED && q % 3 == 0))
            sp.min_tokens = kind == MIXED ? ENGINE_TOKENS / 2 : ENGINE_TOKENS;
        if (kind == CONSTRAINED || kind == CONSTRAINED_LOGPROBS)
            sp.constraint = engine_constraint; /* borrowed: the engine copies it with a reference */
        if (kind == CONSTRAINED_LOGPROBS)
            sp.logprobs = 2;
        assert_int_equal(fl_engine_add(e, (uint64_t)q, prompt, len, &sp, &err), 0);
    }
    while (fl_engine_step(e) > 0)
        ;
    fl_engine_destroy(e);
    assert_int_equal(out->errors, 0);
    for (int q = 0; q < ENGINE_REQUESTS; q++)
        assert_int_equal(out->count[q], ENGINE_TOKENS);
}

static void check_engine(const char *fixture, fl_load_format format)
{
    fl_model m;
    fl_error err;
    assert_int_equal(fl_model_load(&m, tu_fixture(fixture), format, 0, &err), 0);
    outputs *base = malloc(sizeof *base), *other = malloc(sizeof *other);
    engine_run(&m, ON_DEVICE, base);
    static const char *names[] = { "on the device", "with logprobs", "with min_tokens", "mixed" };
    for (run_kind k = LOGPROBS; k <= MIXED; k++) {
        engine_run(&m, k, other);
        for (int q = 0; q < ENGINE_REQUESTS; q++)
            for (int t = 0; t < ENGINE_TOKENS; t++)
                if (other->tokens[q][t] != base->tokens[q][t]) {
                    print_error("%s: request %d token %d is %d %s, %d on the device\n", fixture, q, t,
                                other->tokens[q][t], names[k], base->tokens[q][t]);
                    fail();
                }
    }
    int distinct = 0; /* the sampled requests are not all one repeated token */
    for (int q = 0; q < ENGINE_REQUESTS; q++)
        for (int t = 1; t < ENGINE_TOKENS; t++)
            distinct += base->tokens[q][t] != base->tokens[q][t - 1];
    printf("  %s: %d requests x %d tokens the same in all four runs (%d changes of token)\n", fixture,
           ENGINE_REQUESTS, ENGINE_TOKENS, distinct);
    assert_true(distinct > 0); /* a sampler stuck on one token would agree with itself too */
    free(base), free(other);
    fl_model_free(&m);
}

static void test_engine(void **state)
{
    (void)state;
    check_engine("tiny-qwen3", FL_LOAD_AUTO);
    check_engine("tiny-qwen3-realvocab", FL_LOAD_DUMMY);
}

/* Constrained requests (a regex over a vocabulary of JSON-ish pieces that
 * never has to end) on the device sampler and on the host's, from the
 * device-masked logits: the same tokens, each taken by the grammar. */
static void test_engine_constrained(void **state)
{
    (void)state;
    fl_model m;
    fl_error err;
    assert_int_equal(fl_model_load(&m, tu_fixture("tiny-qwen3"), FL_LOAD_AUTO, 0, &err), 0);
    static const char *const pieces[] = { "a", "b", "ab", "1", "12", "-", ",", "x", "ba", "-1", ",a" };
    const int V = m.cfg.vocab_size, P = (int)(sizeof pieces / sizeof pieces[0]);
    fl_tokenizer tok = { .num_ids = V };
    tok.id_bytes = calloc((size_t)V, sizeof(char *));
    tok.id_bytes_len = calloc((size_t)V, sizeof(uint32_t));
    tok.id_special = calloc((size_t)V, 1);
    for (int i = 0; i < V; i++) {
        tok.id_bytes[i] = (char *)pieces[i % P];
        tok.id_bytes_len[i] = (uint32_t)strlen(pieces[i % P]);
    }
    fl_token_vocab vocab;
    fl_token_vocab_init(&vocab, &tok, V);
    const char *regex = "(ab|a)+-[0-9]{1,4}(,(a|b)+)*";
    const fl_grammar_spec spec = { .kind = FL_GRAMMAR_REGEX, .text = regex, .len = strlen(regex) };
    engine_constraint = fl_constraint_create(&spec, &vocab, &err);
    assert_non_null(engine_constraint);
    outputs *dev = malloc(sizeof *dev), *host = malloc(sizeof *host);
    engine_run(&m, CONSTRAINED, dev);
    engine_run(&m, CONSTRAINED_LOGPROBS, host);
    fl_constraint_state s;
    for (int q = 0; q < ENGINE_REQUESTS; q++) {
        fl_constraint_state_init(engine_constraint, &s);
        for (int t = 0; t < ENGINE_TOKENS; t++) {
            assert_int_equal(dev->tokens[q][t], host->tokens[q][t]);
            assert_int_equal(fl_constraint_accept(engine_constraint, &s, dev->tokens[q][t]), 0);
        }
        fl_constraint_state_free(&s);
    }
    printf("  %d constrained requests x %d tokens: the same on both samplers, all taken by the grammar\n",
           ENGINE_REQUESTS, ENGINE_TOKENS);
    fl_constraint_unref(engine_constraint);
    fl_token_vocab_free(&vocab);
    free(tok.id_bytes), free(tok.id_bytes_len), free(tok.id_special);
    free(dev), free(host);
    fl_model_free(&m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_matches_host),
        cmocka_unit_test(test_greedy),
        cmocka_unit_test(test_engine),
        cmocka_unit_test(test_mask_matches_host),
        cmocka_unit_test(test_engine_constrained),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
