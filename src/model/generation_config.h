/* generation_config.h - the sampling defaults a model's creator recommends
 * in generation_config.json, which vLLM applies to requests that do not
 * set them (its `--generation-config auto`, the default).
 *
 * vLLM reads these keys only (get_diff_sampling_param): temperature,
 * top_p, top_k, min_p, repetition_penalty, and max_new_tokens as the most
 * tokens a request generates. Other keys (eos_token_id, do_sample, ...)
 * are not sampling defaults here. */
#ifndef FL_GENERATION_CONFIG_H
#define FL_GENERATION_CONFIG_H

#include <stddef.h>

#include "base/error.h"

typedef struct fl_generation_defaults {
    int has_temperature, has_top_p, has_top_k, has_min_p, has_repetition_penalty;
    float temperature, top_p, min_p, repetition_penalty;
    int top_k;
    int max_tokens;             /* max_new_tokens; 0: none */
} fl_generation_defaults;

/* Reads DIR/generation_config.json into d (zeroed first). A directory
 * without the file, or NULL (a built-in dummy model), gives no defaults.
 * Returns 0, or -1 with err naming the file and the key (a value of the
 * wrong type or out of vLLM's range). */
int fl_generation_defaults_load(const char *dir, fl_generation_defaults *d, fl_error *err);

/* Writes "temperature=0.6, top_k=20, ..." into out ("" when none); returns
 * the number of defaults. */
int fl_generation_defaults_describe(const fl_generation_defaults *d, char *out, size_t len);

#endif
