/* model_runner.h - what the engine needs from a device: run one step.
 *
 * The engine is device-agnostic: it plans steps (fl_batch), owns block
 * accounting and sampling; a runner owns the weights and the KV memory and
 * turns a batch into logits. The CPU backend implements it now, the CUDA
 * backend next. */
#ifndef FL_MODEL_RUNNER_H
#define FL_MODEL_RUNNER_H

#include "model/batch.h"

typedef struct fl_model_runner {
    void *impl;
    int vocab_size;
    int max_tokens;      /* tokens one step may hold */
    int max_context;     /* the longest sequence it can attend over */
    int num_blocks;      /* KV cache blocks it holds */
    int block_size;
    /* Writes the K/V of b's tokens and the logits of its logit rows,
     * (num_logits, vocab_size) into logits. */
    void (*forward)(void *impl, const fl_batch *b, float *logits);
    void (*destroy)(void *impl);
} fl_model_runner;

#endif
