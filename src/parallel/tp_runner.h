/* tp_runner.h - one model runner over the ranks of a tensor-parallel group.
 *
 * The engine plans each step once and sees one runner, as vLLM's
 * scheduler does; every rank runs the same step on its slice of the model
 * (parallel/tp_shard.h) at the same time, a thread each (the caller's
 * thread is rank 0), their collectives meeting in the group's
 * communicator. Each rank samples the same rows with the same draws, so
 * each holds the tokens its next forward's placeholders name (async
 * scheduling); rank 0's tokens and logits are the runner's. */
#ifndef FL_TP_RUNNER_H
#define FL_TP_RUNNER_H

#include "base/error.h"
#include "engine/model_runner.h"
#include "model/config.h"
#include "model/weights.h"
#include "parallel/comm.h"

/* Builds rank `rank`'s runner with collectives through comm; num_blocks
 * 0 for rank 0, rank 0's count for the others (every rank holds the same
 * blocks, of its own KV heads). */
typedef int (*fl_tp_rank_init_fn)(void *ctx, fl_comm *comm, int num_blocks, fl_model_runner *out, fl_error *err);

/* A runner over `size` ranks (size >= 2) that share this process, each
 * built by init, their communicators comms (taken over, freed with the
 * runner or on failure), or NULL: the local group of parallel/comm.h. */
int fl_tp_runner_init(fl_model_runner *r, int size, fl_comm_set *comms, fl_tp_rank_init_fn init, void *ctx,
                      fl_error *err);

/* A runner's constructor (the CPU's, CUDA's). */
typedef int (*fl_runner_init_fn)(fl_model_runner *r, const fl_model_config *cfg, const fl_weights *w,
                                 const fl_runner_opts *o, fl_error *err);

/* fl_tp_runner_init with every rank built by init from o, its comm the
 * rank's and, after rank 0, num_blocks rank 0's; size 1: init alone (comms
 * freed). The size is checked against the model's shapes first
 * (fl_tp_check). */
int fl_tp_runner_init_ranks(fl_model_runner *r, int size, fl_comm_set *comms, fl_runner_init_fn init,
                            const fl_model_config *cfg, const fl_weights *w, const fl_runner_opts *o, fl_error *err);

#endif
