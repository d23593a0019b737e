/* engine.h - the serving engine: requests in, tokens out.
 *
 * Continuous batching over a paged KV cache: each step packs decode tokens
 * and prefill chunks of many sequences (up to max_num_batched_tokens, at
 * most max_num_seqs running), takes KV blocks as sequences grow, reuses
 * cached prefixes, preempts the newest sequence when blocks run out (it is
 * recomputed later and produces the same tokens), samples, detokenizes,
 * applies stop conditions, and reports each new token through a callback.
 *
 * Threads: fl_engine_add and fl_engine_abort may be called from any thread;
 * fl_engine_step, and with it the output callback, runs on one engine thread.
 * Aborting frees the request's blocks at the next step. */
#ifndef FL_ENGINE_H
#define FL_ENGINE_H

#include <pthread.h>
#include <stdint.h>

#include "base/error.h"
#include "engine/block_pool.h"
#include "engine/model_runner.h"
#include "engine/sampling.h"
#include "tokenizer/tokenizer.h"

typedef struct fl_engine_config {
    int max_num_seqs;             /* default 256 */
    int max_num_batched_tokens;   /* default 2048 */
    int max_model_len;            /* 0: the runner's max_context */
    int enable_prefix_caching;    /* default 1 */
    uint64_t seed;                /* for requests without a seed */
    int max_live_seqs;            /* 0: no limit; else the most unfinished sequences
                                     (running and waiting) fl_engine_add admits */
    int async_scheduling;         /* default 1: plan and launch step N + 1 before handling
                                     step N's tokens (with a runner that samples) */
} fl_engine_config;

void fl_engine_config_default(fl_engine_config *c);

/* A prompt's prompt_logprobs: entry j (prompt token j + 1) is per = 1 + k
 * triples, the token's (id, log-probability, rank) and then the k most
 * likely tokens'. */
typedef struct fl_prompt_logprobs {
    int num;                      /* the prompt's length - 1 */
    int per;
    const int32_t *ids, *ranks;   /* [num, per] */
    const float *values;          /* [num, per] */
} fl_prompt_logprobs;

/* One new token (or the end) of one sequence of one request. */
typedef struct fl_seq_output {
    uint64_t request_id;
    int index;                    /* which of the request's n sequences */
    int32_t token;                /* -1 when there is none (abort) */
    const char *text;             /* new text for the client (stop strings held back) */
    size_t text_len;
    const fl_logprobs *logprobs;  /* NULL unless asked for */
    const fl_prompt_logprobs *prompt_logprobs; /* with the first report of sequence 0 of a
                                     request that asked (sp.prompt_logprobs); else NULL */
    int finished;
    const char *finish_reason;    /* "stop", "length", "abort", or "error" (the model gave no
                                     token that can be sampled: every logit -inf or NaN) */
    const char *stop_string;      /* the stop string matched, or NULL */
    int32_t stop_token;           /* the stop token id matched, or -1 */
    int num_prompt_tokens;
    int num_cached_tokens;        /* prompt tokens served by the prefix cache */
    int num_output_tokens;
    /* for the metrics: fl_now_seconds() when the sequence was added, first
     * scheduled, got its first token, its latest token (this output's, if
     * it has one) and the token before that; 0 where it has not happened
     * (a sequence aborted while waiting was never scheduled). A step's
     * tokens share the time its forward pass ended. */
    double arrival_time, scheduled_time, first_token_time, last_token_time, prev_token_time;
    const fl_sampling_params *params; /* the request's, valid during the callback */
} fl_seq_output;

typedef void (*fl_output_fn)(void *ctx, const fl_seq_output *out);

typedef struct fl_engine_stats {
    int num_running, num_waiting;
    int num_blocks, num_free_blocks;  /* the pool's blocks but the null block (model/kv_groups.h);
                                         free includes cached-but-unused blocks */
    int64_t prefix_queries, prefix_hits;  /* in tokens, as vLLM counts them */
    int64_t preemptions;
    int64_t prompt_tokens, generation_tokens;
    int64_t computed_tokens;          /* tokens the model actually ran */
    int64_t steps;
    int64_t overlapped_steps;         /* steps whose tokens were handled after the next step launched */
    int block_size;                   /* tokens a KV block holds */
    int enable_prefix_caching;
} fl_engine_stats;

typedef struct fl_engine fl_engine;

/* Takes ownership of runner. tok may be NULL (ids only: no text, no stop
 * strings). eos_ids end sequences unless ignore_eos. */
fl_engine *fl_engine_create(const fl_engine_config *cfg, fl_model_runner *runner,
                            const fl_tokenizer *tok, const int32_t *eos_ids, int num_eos,
                            fl_output_fn on_output, void *ctx);
void fl_engine_destroy(fl_engine *e);

/* fl_engine_add's answer when the engine already holds max_live_seqs. */
#define FL_ENGINE_BUSY (-2)

/* Queues num_prompts requests with ids base_id, base_id + 1, ..., each of
 * sp->n sequences (copies prompts and params): all of them or none. Returns
 * 0; -1 with a message naming the problem if one can never run (an empty
 * prompt, a token id or logit_bias or stop id outside the vocabulary,
 * min_tokens banning every token, prompt + max_tokens over max_model_len or
 * over the whole KV pool, stop strings without a tokenizer, more sequences
 * than max_live_seqs); or FL_ENGINE_BUSY (err says so) when admitting them
 * would pass max_live_seqs now. Thread-safe. */
int fl_engine_add_prompts(fl_engine *e, uint64_t base_id, int num_prompts,
                          const int32_t *const *prompts, const int *lens,
                          const fl_sampling_params *sp, fl_error *err);
/* One prompt: fl_engine_add_prompts with num_prompts 1. */
int fl_engine_add(fl_engine *e, uint64_t request_id, const int32_t *prompt, int num_prompt,
                  const fl_sampling_params *sp, fl_error *err);

/* Admits no more requests: fl_engine_add then answers FL_ENGINE_BUSY, so
 * that nothing joins after a shutdown's abort of everything. Thread-safe. */
void fl_engine_close(fl_engine *e);

/* Ends a request: its sequences report finish_reason "abort" at the next
 * step and free their blocks. Unknown ids are ignored. Thread-safe; the
 * step takes any number of aborts in time linear in the queues. */
void fl_engine_abort(fl_engine *e, uint64_t request_id);

/* One step on the engine thread: takes queued adds and aborts, runs the
 * model once if anything is schedulable, reports outputs. Returns the
 * number of unfinished sequences. */
int fl_engine_step(fl_engine *e);

/* Writes the KV cache's layout into out: "KV cache: 2 groups of 12 layers
 * (window 128; full), 9000 blocks of 128 tokens; a sequence of
 * num_tokens tokens holds at most 1033 blocks: maximum concurrency 8.71x"
 * (a windowed group holds only its window's blocks, model/kv_groups.h). */
void fl_engine_describe_kv(const fl_engine *e, int num_tokens, char *out, size_t len);

/* Snapshot of the counters (engine thread, or after it stops). */
void fl_engine_get_stats(fl_engine *e, fl_engine_stats *s);

#endif
