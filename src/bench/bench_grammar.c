/* bench_grammar.c - `flashlm bench grammar TOKENIZER_DIR`: the host's cost
 * of structured output per token, what the engine adds to a constrained
 * sequence's step: the mask (grammar/token_mask.h: a cached mask copied
 * into the step's buffer, or computed by the vocabulary walk on a miss) and
 * the grammar's step past the sampled token.
 *
 * A batch of --batch sequences follows one JSON schema of 20 properties
 * (strings with maxLength, integer ranges, booleans, enums, a nested
 * object, an array), each step taking a token drawn uniformly among the
 * allowed ones (the draw is not timed), until --requests sequences have
 * finished. The first batch finds the automaton empty (cold: its masks are
 * computed); the later ones share the cache, as requests with one schema do
 * in the server (warm). Printed: microseconds per token cold and warm, and
 * per step of the batch warm, to hold against a TPOT. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "base/clock.h"
#include "base/rng.h"
#include "bench/bench.h"
#include "cli/cli.h"
#include "grammar/token_mask.h"

static const char schema20[] =
    "{\"type\":\"object\",\"properties\":{"
    "\"id\":{\"type\":\"integer\",\"minimum\":0,\"maximum\":999999},"
    "\"name\":{\"type\":\"string\",\"maxLength\":24},"
    "\"email\":{\"type\":\"string\",\"maxLength\":32},"
    "\"age\":{\"type\":\"integer\",\"minimum\":0,\"maximum\":130},"
    "\"active\":{\"type\":\"boolean\"},"
    "\"role\":{\"enum\":[\"admin\",\"editor\",\"viewer\",\"guest\"]},"
    "\"score\":{\"type\":\"integer\",\"minimum\":-100,\"maximum\":100},"
    "\"country\":{\"type\":\"string\",\"maxLength\":16},"
    "\"city\":{\"type\":\"string\",\"maxLength\":16},"
    "\"zip\":{\"type\":\"string\",\"pattern\":\"[0-9]{5}\"},"
    "\"verified\":{\"type\":\"boolean\"},"
    "\"plan\":{\"enum\":[\"free\",\"pro\",\"team\"]},"
    "\"logins\":{\"type\":\"integer\",\"minimum\":0,\"maximum\":100000},"
    "\"tags\":{\"type\":\"array\",\"items\":{\"type\":\"string\",\"maxLength\":8},\"maxItems\":4},"
    "\"address\":{\"type\":\"object\",\"properties\":{\"street\":{\"type\":\"string\",\"maxLength\":20},"
    "\"number\":{\"type\":\"integer\",\"minimum\":1,\"maximum\":9999}},\"required\":[\"street\",\"number\"]},"
    "\"language\":{\"enum\":[\"en\",\"fr\",\"de\",\"ja\"]},"
    "\"newsletter\":{\"type\":\"boolean\"},"
    "\"notes\":{\"anyOf\":[{\"type\":\"string\",\"maxLength\":20},{\"type\":\"null\"}]},"
    "\"level\":{\"type\":\"integer\",\"minimum\":1,\"maximum\":10},"
    "\"theme\":{\"enum\":[\"light\",\"dark\"]}"
    "},\"required\":[\"id\",\"name\",\"email\",\"age\",\"active\",\"role\",\"score\",\"country\",\"city\",\"zip\","
    "\"verified\",\"plan\",\"logins\",\"tags\",\"address\",\"language\",\"newsletter\",\"level\",\"theme\"]}";

/* A token among the mask's, uniformly (reservoir), or -1 if none. */
static int32_t pick(const uint32_t *mask, int vocab, uint64_t key, uint64_t at)
{
    int32_t chosen = -1;
    uint64_t seen = 0;
    for (int w = 0; w < fl_token_mask_words(vocab); w++)
        for (uint32_t bits = mask[w]; bits; bits &= bits - 1) {
            const int32_t t = w * 32 + __builtin_ctz(bits);
            const uint64_t r = fl_rng_at(key, at * 131 + seen);
            if (r % ++seen == 0)
                chosen = t;
        }
    return chosen;
}

typedef struct tally {
    double secs;
    long tokens;
} tally;

/* Runs one batch of sequences to their ends; adds their timed work to t. */
static void run_batch(fl_constraint *c, int vocab, int batch, uint64_t key, uint32_t *masks, tally *t)
{
    const int words = fl_token_mask_words(vocab);
    fl_constraint_state *s = fl_malloc((size_t)batch * sizeof *s);
    int *live = fl_malloc((size_t)batch * sizeof *live);
    for (int i = 0; i < batch; i++) {
        fl_constraint_state_init(c, &s[i]);
        live[i] = 1;
    }
    for (int step = 0, left = batch; left > 0 && step < 4096; step++) {
        int32_t *tokens = fl_malloc((size_t)batch * sizeof *tokens);
        double t0 = fl_now_seconds();
        for (int i = 0; i < batch; i++)
            if (live[i] && fl_constraint_fill_mask(c, &s[i], masks + (size_t)i * words) != 0)
                live[i] = 0, left--;
        t->secs += fl_now_seconds() - t0;
        for (int i = 0; i < batch; i++) {
            tokens[i] = -1;
            if (!live[i])
                continue;
            tokens[i] = fl_constraint_finished(&s[i]) ? -1
                                                      : pick(masks + (size_t)i * words, vocab, key,
                                                             (uint64_t)step * 4096 + (uint64_t)i);
            if (tokens[i] < 0)
                live[i] = 0, left--;
        }
        t0 = fl_now_seconds();
        for (int i = 0; i < batch; i++)
            if (tokens[i] >= 0) {
                FL_ASSERT(fl_constraint_accept(c, &s[i], tokens[i]) == 0);
                t->tokens++;
            }
        t->secs += fl_now_seconds() - t0;
        free(tokens);
    }
    for (int i = 0; i < batch; i++)
        fl_constraint_state_free(&s[i]);
    free(s);
    free(live);
}

int fl_bench_grammar(int argc, char **argv)
{
    static const struct option opts[] = {
        { "batch", required_argument, NULL, 'b' },
        { "requests", required_argument, NULL, 'r' },
        { "vocab-size", required_argument, NULL, 'v' },
        { "any-whitespace", no_argument, NULL, 'w' },
        { "help", no_argument, NULL, 'h' },
        { 0 },
    };
    fl_error err;
    long long batch = 64, requests = 256, vocab = 151936;
    int any_ws = 0, opt;
    optind = 0;
    while ((opt = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        if (opt == 'h') {
            puts("usage: flashlm bench grammar TOKENIZER_DIR [--batch N] [--requests N] [--vocab-size N]\n"
                 "                             [--any-whitespace]");
            return 0;
        }
        if ((opt == 'b' && fl_cli_int("--batch", optarg, 1, 4096, &batch, &err) != 0) ||
            (opt == 'r' && fl_cli_int("--requests", optarg, 1, 1 << 20, &requests, &err) != 0) ||
            (opt == 'v' && fl_cli_int("--vocab-size", optarg, 1, 1 << 24, &vocab, &err) != 0))
            goto fail;
        if (opt == 'w')
            any_ws = 1;
        else if (opt != 'b' && opt != 'r' && opt != 'v') {
            fl_cli_bad_option(&err, "bench grammar", opt, argv, optind);
            goto fail;
        }
    }
    if (optind + 1 != argc) {
        fl_fail(&err, "give a tokenizer directory");
        goto fail;
    }
    fl_tokenizer tok;
    if (fl_tokenizer_load(&tok, argv[optind], &err) != 0)
        goto fail;
    double t0 = fl_now_seconds();
    fl_token_vocab v;
    fl_token_vocab_init(&v, &tok, (int)vocab);
    const double vocab_secs = fl_now_seconds() - t0;
    const fl_grammar_spec spec = { .kind = FL_GRAMMAR_JSON_SCHEMA, .text = schema20, .len = sizeof schema20 - 1,
                                   .any_whitespace = any_ws };
    t0 = fl_now_seconds();
    fl_constraint *c = fl_constraint_create(&spec, &v, &err);
    const double compile_secs = fl_now_seconds() - t0;
    if (!c) {
        fl_token_vocab_free(&v);
        fl_tokenizer_free(&tok);
        goto fail;
    }
    uint32_t *masks = fl_malloc((size_t)batch * fl_token_mask_words((int)vocab) * sizeof *masks);
    const uint64_t key = fl_rng_key(2025, 20);
    tally cold = { 0 }, warm = { 0 };
    run_batch(c, (int)vocab, (int)batch, key, masks, &cold);
    fl_constraint_stats after_cold;
    fl_constraint_get_stats(c, &after_cold);
    for (long long done = batch, k = 1; done < requests; done += batch, k++)
        run_batch(c, (int)vocab, (int)batch, fl_rng_key(2025, 20 + (uint64_t)k), masks, &warm);
    fl_constraint_stats st;
    fl_constraint_get_stats(c, &st);
    printf("flashlm: vocabulary of %d tokens (%d with bytes) sorted in %.1f ms; the 20-property schema compiled in "
           "%.2f ms (%s)\n", (int)vocab, v.num, vocab_secs * 1e3, compile_secs * 1e3,
           any_ws ? "any whitespace" : "compact");
    printf("cold (first batch of %lld): %ld tokens, %.1f us/token (%lld masks computed)\n", batch, cold.tokens,
           cold.tokens ? cold.secs / (double)cold.tokens * 1e6 : 0.0, (long long)after_cold.masks_computed);
    if (warm.tokens)
        printf("warm (%lld more sequences): %ld tokens, %.2f us/token, %.1f us per step of %lld sequences "
               "(%lld masks computed, %lld reused; automaton %.1f MiB, %d entries, %lld flushes)\n",
               requests - batch, warm.tokens, warm.secs / (double)warm.tokens * 1e6,
               warm.secs / (double)warm.tokens * 1e6 * (double)batch, batch,
               (long long)(st.masks_computed - after_cold.masks_computed), (long long)st.masks_reused,
               (double)st.bytes / (1 << 20), st.entries, (long long)st.flushes);
    free(masks);
    fl_constraint_unref(c);
    fl_token_vocab_free(&v);
    fl_tokenizer_free(&tok);
    return 0;
fail:
    fprintf(stderr, "flashlm bench grammar: %s\n", err.msg);
    return 1;
}
