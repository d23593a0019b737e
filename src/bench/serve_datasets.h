/* serve_datasets.h - the prompts of `flashlm bench serve`: vLLM's datasets
 * (vllm/benchmarks/datasets.py) sampled as vLLM samples them: random,
 * sharegpt, sonnet, prefix_repetition, and flashlm's custom JSONL. Token
 * counts come from a counter the caller gives (the server's /tokenize,
 * falling back to the local tokenizer), so prompts are measured as the
 * server will measure them.
 *
 * Where it differs from vLLM: random draws (shuffles, sonnet lines,
 * oversampling, random ids) are base/rng's, not Python's or numpy's, so a
 * seed gives other prompts than vLLM's; the random dataset's ids are
 * random, not vLLM's consecutive run from an offset; custom is flashlm's
 * (an optional "output_tokens" a line, no chat template, no shuffle). */
#ifndef FL_SERVE_DATASETS_H
#define FL_SERVE_DATASETS_H

#include <stdint.h>

#include "base/error.h"
#include "tokenizer/tokenizer.h"

typedef struct fl_serve_prompt {
    char *text;         /* what is sent: the prompt, or the user message's text for chat */
    int len;            /* its tokens (the dataset's count, as vLLM's prompt_len) */
    int max_tokens;     /* the expected output length */
} fl_serve_prompt;

/* Counts text's tokens into ids and returns how many. */
typedef int (*fl_serve_count_fn)(void *ud, const fl_tokenizer *tok, fl_tok_scratch *s, const char *text, fl_ids *ids);

typedef struct fl_serve_dataset_opts {
    const char *dataset;                    /* random, sharegpt, sonnet, prefix_repetition, custom */
    const char *dataset_path;
    int num_prompts;
    long long seed;
    int chat;                               /* sonnet: the plain text for openai-chat, else the formatted */
    int no_oversample, disable_shuffle;
    int input_len, output_len, prefix_len;  /* random (output_len also custom's default) */
    float range_ratio;
    int sharegpt_output_len;                /* -1: each conversation's */
    int sonnet_input_len, sonnet_output_len, sonnet_prefix_len;
    int rep_prefix_len, rep_suffix_len, rep_num_prefixes, rep_output_len;
    fl_serve_count_fn count;                /* set by fl_serve_build_prompts */
    void *count_ud;
} fl_serve_dataset_opts;

/* vLLM's defaults: random 1024:128, 1000 prompts, sonnet 550/150/200,
 * prefix_repetition 256 + 256 in 10 prefixes, 128 out. */
void fl_serve_dataset_defaults(fl_serve_dataset_opts *o);

/* Samples the prompts into *out (an array of num_prompts entries the
 * caller frees with each text): returns how many (fewer than num_prompts
 * for a short dataset with no_oversample, or prefix_repetition's
 * num_prefixes * (num_prompts / num_prefixes)). On error -1 with err
 * naming the flag or file; *out is then still the caller's to free. */
int fl_serve_build_prompts(fl_serve_dataset_opts *o, const fl_tokenizer *tok, fl_serve_count_fn count, void *ud,
                           fl_serve_prompt **out, fl_error *err);

#endif
