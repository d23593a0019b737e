/* greedy_runner.h - batched greedy generation on the CPU model.
 *
 * The smallest loop that drives the forward pass the way a serving engine
 * does: all sequences share each step, a step packs at most the model's
 * max_tokens tokens, long prompts are split across steps (chunked prefill)
 * and decodes ride along, and KV blocks are taken from the cache's pool as
 * sequences grow. The engine's scheduler (issue 4) supersedes it. */
#ifndef FL_GREEDY_RUNNER_H
#define FL_GREEDY_RUNNER_H

#include <stdint.h>

#include "cpu/cpu_kv_cache.h"
#include "cpu/cpu_model.h"

/* Blocks the cache needs for these sequences: the sum over prompts of
 * ceil((prompt_len + max_new_tokens) / block_size). */
int fl_greedy_blocks_needed(int num_prompts, const int *prompt_lens, int max_new_tokens,
                            int block_size);

/* Generates max_new_tokens greedy tokens after each prompt into
 * outputs[i][0..max_new_tokens). kv must have fl_greedy_blocks_needed()
 * blocks; prompt ids must be valid, and prompt_len + max_new_tokens at most
 * the model's max_context (checked by assertion: the caller validates user
 * input). */
void fl_greedy_generate(fl_cpu_model *m, fl_cpu_kv_cache *kv, int num_prompts,
                        const int32_t *const *prompts, const int *prompt_lens,
                        int max_new_tokens, int32_t *const *outputs);

#endif
