/* sampling.h - turning one row of logits into the next token, as vLLM's
 * SamplingParams describe it.
 *
 * Order, as in vLLM's sampler: min_tokens (EOS and stop ids banned until
 * enough tokens exist) and logit_bias; the repetition penalty (on prompt and
 * output tokens), presence and frequency penalties (output tokens); then the
 * draw of engine/sample_draw.h: greedy, or temperature, min-p, top-k, top-p
 * over integer weights and one value of a counter-based RNG keyed by
 * (request key, output index). The same seed gives the same tokens whatever
 * else is in the batch, after a preemption, and on the device sampler,
 * which draws the same way (this file is its reference). Logprobs are of
 * the raw logits (vLLM's default). */
#ifndef FL_SAMPLING_H
#define FL_SAMPLING_H

#include <stddef.h>
#include <stdint.h>

#include "engine/sample_draw.h"

struct fl_constraint;

typedef struct fl_logit_bias {
    int32_t token;
    float bias;
} fl_logit_bias;

typedef struct fl_sampling_params {
    int n;                      /* sequences per request (default 1) */
    fl_draw_params draw;        /* temperature, top-k, top-p, min-p */
    int has_seed;
    uint64_t seed;
    float repetition_penalty;   /* 1: off */
    float presence_penalty;     /* 0: off */
    float frequency_penalty;    /* 0: off */
    int num_logit_bias;
    fl_logit_bias *logit_bias;  /* owned */
    int num_stop_token_ids;
    int32_t *stop_token_ids;    /* owned */
    int num_stop;
    char **stop;                /* owned strings */
    int include_stop_str_in_output;
    int max_tokens;
    int min_tokens;
    int ignore_eos;
    int logprobs;               /* -1: none; else top alternatives to report */
    int has_prompt_logprobs;    /* vLLM's prompt_logprobs: for each prompt token after the
                                   first, its log-probability and rank and prompt_logprobs top
                                   alternatives (computed by the request's first sequence,
                                   which then takes no prefix-cache hits) */
    int prompt_logprobs;
    int skip_special_tokens;    /* default 1 */
    struct fl_constraint *constraint; /* structured output (grammar/token_mask.h): each
                                   sequence's tokens follow it; a reference, or NULL */
} fl_sampling_params;

/* vLLM's defaults (max_tokens 16). */
void fl_sampling_params_default(fl_sampling_params *sp);
/* A deep copy of src into dst (the constraint: another reference). */
void fl_sampling_params_copy(fl_sampling_params *dst, const fl_sampling_params *src);
void fl_sampling_params_free(fl_sampling_params *sp);

/* What the sampler needs to know of the sequence so far. */
typedef struct fl_sample_context {
    const int32_t *prompt;      /* [num_prompt] */
    int num_prompt;
    const int32_t *output;      /* [num_output] tokens generated so far */
    int num_output;
    const int32_t *eos_ids;     /* the model's EOS ids (banned by min_tokens) */
    int num_eos;
    uint64_t rng_key;           /* from the seed, or from the engine's RNG */
} fl_sample_context;

/* Top alternatives and the chosen token's log-probability. */
typedef struct fl_logprobs {
    float chosen;
    int count;
    int32_t *ids;               /* [logprobs] caller-provided */
    float *values;              /* [logprobs] caller-provided */
} fl_logprobs;

/* Samples from logits[vocab] (modified in place; vocab at most
 * FL_DRAW_MAX_VOCAB). Returns the token, or -1 when no token can be drawn:
 * after min_tokens, bias and penalties no logit is finite (every one -inf
 * or NaN, or one +inf). The draw is the one at (ctx->rng_key,
 * ctx->num_output). scratch has fl_sample_scratch_bytes(vocab) bytes,
 * zeroed once when allocated (the sampler leaves its counting part zero
 * again). If lp is not NULL, fills it from the raw logits. Token ids in sp
 * and ctx must be below vocab. */
int32_t fl_sample(const fl_sampling_params *sp, const fl_sample_context *ctx, float *logits,
                  int vocab, void *scratch, fl_logprobs *lp);

size_t fl_sample_scratch_bytes(int vocab);

/* The draw alone (sample_draw.h), as the device sampler does it: the token
 * of d from logits[vocab] (NaNs made -inf in place), or -1 if the largest
 * logit is not finite. scratch as fl_sample's. */
int32_t fl_sample_draw(const fl_draw *d, float *logits, int vocab, void *scratch);

/* lp from raw logits[vocab]: chosen's log-probability and the k most
 * likely tokens (ties to the lower id); lp's arrays hold k entries. */
void fl_logprobs_fill(const float *raw, int vocab, int32_t chosen, int k, fl_logprobs *lp);
/* token's rank in raw logits[vocab]: 1 + the tokens with a larger logit
 * (vLLM's Logprob.rank). */
int fl_logprobs_rank(const float *raw, int vocab, int32_t token);

#endif
