/* model_runner.h - what the engine needs from a device: run one step.
 *
 * The engine is device-agnostic: it plans steps (fl_batch), owns block
 * accounting and sampling; a runner owns the weights and the KV memory and
 * turns a batch into logits. A runner on a GPU can also sample there, so
 * that only token ids cross to the host; the engine then fetches logits
 * only for rows whose sampling the device does not do (penalties, logit
 * bias, logprobs, min_tokens). Both draw the same token (sample_draw.h). */
#ifndef FL_MODEL_RUNNER_H
#define FL_MODEL_RUNNER_H

#include "base/dtype.h"
#include "engine/sample_draw.h"
#include "model/batch.h"

/* What a runner is built for: the same options on every device. */
typedef struct fl_runner_opts {
    const struct fl_attn_backend *attn; /* chosen at start-up: the attention code the runner calls */
    int max_tokens;                     /* tokens one step may hold */
    int max_context;                    /* max_model_len */
    int max_seqs;
    int block_size;
    int num_blocks;                     /* 0: from the memory budget */
    float gpu_memory_utilization;       /* CUDA: the share of GPU memory to use */
    int enforce_eager;                  /* CUDA: no decode graphs */
    fl_dtype kv_dtype;                  /* CUDA: the KV cache's elements, FL_BF16 or FL_F8_E4M3;
                                           FL_DTYPE_INVALID (0) is bf16. The CPU's are float32 */
    struct fl_comm *comm;               /* tensor parallelism (parallel/tp_runner.h): the runner is
                                           rank comm->rank of comm->size, its slice of the model and
                                           of the KV heads; NULL: the whole model */
} fl_runner_opts;

typedef struct fl_model_runner {
    void *impl;
    const char *attn_backend; /* the name of the attention backend it runs */
    int vocab_size;
    int max_tokens;      /* tokens one step may hold */
    int max_context;     /* the longest sequence it can attend over */
    const fl_kv_groups *kv_groups; /* how its KV cache is laid out (the runner's, for its life) */
    int num_blocks;      /* KV cache blocks it holds, each of kv_groups->layers_per_group layers */
    int block_size;
    /* Writes the K/V of b's tokens and the logits of its logit rows,
     * (num_logits, vocab_size) into logits; with logits NULL (only if
     * sample is set) they stay on the device for sample/read_logits. With
     * sample, a token id -1 - r stands for the token that the latest
     * sample started before this forward draws for its row r (async
     * scheduling: the engine plans a step before the last one's tokens
     * reach the host, and the token goes from the sampler to the
     * embedding without them). The forward may return before the step has
     * run. */
    void (*forward)(void *impl, const fl_batch *b, float *logits);
    /* Optional: starts drawing a token from each logit row i of the last
     * forward as rows[i] says (rows is read before it returns); `sampled`
     * gives them. At most two samples are outstanding (started, not yet
     * given). */
    void (*sample)(void *impl, int num_rows, const fl_draw *rows);
    /* With sample: waits for the oldest outstanding sample and returns its
     * tokens, [num_rows]: vocab_size or more where a row has nothing to
     * draw (fl_sample's -1). They stay valid until the second sample
     * after it starts (the engine handles step N's tokens after step N +
     * 1's sample has started). */
    const int32_t *(*sampled)(void *impl);
    /* With sample: sets logit row rows[i] of the last forward to -inf for
     * each token whose bit is clear in masks[i] (grammar/token_mask.h's
     * layout, (vocab_size + 31) / 32 words a row), before sample and
     * read_logits see it. */
    void (*mask_logits)(void *impl, int num_rows, const int32_t *rows, const uint32_t *masks);
    /* With sample: copies logit row `row` of the last forward into out. */
    void (*read_logits)(void *impl, int row, float *out);
    void (*destroy)(void *impl);
} fl_model_runner;

#endif
