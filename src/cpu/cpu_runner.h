/* cpu_runner.h - the CPU backend behind the model-runner interface. */
#ifndef FL_CPU_RUNNER_H
#define FL_CPU_RUNNER_H

#include "attention/backend.h"
#include "engine/model_runner.h"
#include "model/config.h"
#include "model/weights.h"

/* Bytes of host memory the CPU KV cache may take when no block count is
 * forced (vLLM's CPU backend defaults its KV space to 4 GiB as well). */
#define FL_CPU_KV_BYTES_DEFAULT ((size_t)4 << 30)

/* Builds a CPU runner: float32 weights, o->attn's CPU attention (float32
 * KV), and a KV cache of o->num_blocks blocks (0: as many as
 * FL_CPU_KV_BYTES_DEFAULT holds, at most what max_seqs full sequences
 * need). Fails when not one block fits that default, or when the whole
 * would not fit in the machine's memory. The runner keeps no pointer into
 * w. */
int fl_cpu_runner_init(fl_model_runner *r, const fl_model_config *cfg, const fl_weights *w,
                       const fl_runner_opts *o, fl_error *err);

/* The model split over tp_size ranks (tensor parallelism, vLLM's split:
 * parallel/tp_shard.h), each a CPU runner of its slice and of its KV
 * heads, threads of this process behind one runner (parallel/tp_runner.h);
 * tp_size 1: fl_cpu_runner_init. Fails naming what tp_size does not divide. */
int fl_cpu_runner_init_parallel(fl_model_runner *r, const fl_model_config *cfg, const fl_weights *w,
                                const fl_runner_opts *o, int tp_size, fl_error *err);

#endif
