/* golden.h - the HF goldens of the tiny fixtures, shared by the CPU and
 * GPU forward tests: the five prompts, HF's float32 logits at every
 * position, and HF's 32-token greedy continuations; the run of all
 * prompts through an engine, greedy; and a one-step prefill batch with
 * scattered blocks. */
#ifndef FL_TEST_GOLDEN_H
#define FL_TEST_GOLDEN_H

#include <stdint.h>

#include "engine/model_runner.h"
#include "model/kv_groups.h"
#include "model/model.h"
#include "model/safetensors.h"

#define TU_GOLDEN_PROMPTS 5
#define TU_GOLDEN_TOKENS 32

typedef struct tu_golden {
    fl_safetensors file;
    const int32_t *prompt[TU_GOLDEN_PROMPTS];
    int len[TU_GOLDEN_PROMPTS];
    const float *logits[TU_GOLDEN_PROMPTS]; /* (len, vocab) */
    const int32_t *greedy[TU_GOLDEN_PROMPTS];
} tu_golden;

/* Reads DIR/golden.safetensors, checking names, dtypes and shapes. */
void tu_golden_load(tu_golden *g, const char *dir, int vocab);
/* Loads fixture `name` (tu_fixture) into model and its goldens into g. */
void tu_golden_fixture(const char *name, fl_model *model, tu_golden *g);
void tu_golden_free(tu_golden *g);

/* Positions of a prompt of len tokens a bf16 run may have outside the
 * tolerance of HF's float32 logits: none for a dense model. With routed
 * experts, a token whose k-th and next router logits nearly tie can take
 * another expert under bf16 rounding anywhere before the router (HF's own
 * bf16 run of tiny-gpt-oss does so at 2 of prompt 4's 150 positions,
 * errors of half the largest logit): 2% of the positions, rounded up. The
 * per-bucket accuracy rule at full width is tools/model_parity.py's. */
int tu_golden_outliers_allowed(const fl_model *m, int len);

/* Every prompt through an engine over runner at once, greedy, EOS ignored,
 * step_budget tokens a step, logprobs top alternatives reported (-1:
 * none); tokens[i] gets prompt i's continuation. The engine destroys the
 * runner. */
void tu_golden_generate(const tu_golden *g, fl_model_runner *runner, int step_budget, int logprobs,
                        int32_t tokens[TU_GOLDEN_PROMPTS][TU_GOLDEN_TOKENS]);

/* One step that prefills whole sequences (from position 0), logits at
 * every row, for a cache laid out as groups: the blocks handed out from the
 * top down, round-robin over block indices, sequences and groups, so a
 * paging bug cannot hide behind contiguous blocks. num_blocks is what the
 * cache must hold: every block is used, but for the null block
 * (FL_KV_NULL_BLOCK, kept out as the engine keeps it) in a layout with a
 * window. */
typedef struct tu_prefill {
    fl_batch batch;
    int num_blocks;
    int32_t *storage;
} tu_prefill;

void tu_prefill_init(tu_prefill *p, const fl_kv_groups *groups, int block_size, int num_seqs,
                     const int32_t *const *seqs, const int *lens);
void tu_prefill_free(tu_prefill *p);

#endif
