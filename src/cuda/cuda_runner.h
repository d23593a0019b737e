/* cuda_runner.h - the model on an NVIDIA GPU behind the model-runner
 * interface: bf16 weights and KV cache, cuBLASLt GEMMs, attention by a
 * CUDA backend's kernels (`hopper` or `paged`), sampling on the device, and
 * CUDA graphs for decode steps. */
#ifndef FL_CUDA_RUNNER_H
#define FL_CUDA_RUNNER_H

#include "attention/backend.h"
#include "base/error.h"
#include "engine/model_runner.h"
#include "model/config.h"
#include "model/weights.h"

/* 0 and the compute capability (x10) of GPU 0 if there is a usable one;
 * else -1 with the reason. */
int fl_cuda_device_cc(int *cc, fl_error *err);

/* GPU 0's total memory in bytes and its name; 0, or -1 if it has none. */
int fl_cuda_device_memory(size_t *total_bytes, char *name, size_t name_len);

/* Uploads w, sizes the KV cache like vLLM (what is left of
 * gpu_memory_utilization x total memory after weights and activations),
 * runs attention by o->attn (a CUDA backend, bf16 KV) and logs the plan.
 * The runner keeps no pointer into w. */
int fl_cuda_runner_init(fl_model_runner *r, const fl_model_config *cfg, const fl_weights *w,
                        const fl_runner_opts *o, fl_error *err);

/* tp_size ranks of the model (parallel/tp_shard.h's slices) that share
 * GPU 0, threads of this process meeting in the local communicator
 * (parallel/tp_runner.h): what checks the CUDA runner's sharding on a
 * machine of one GPU; no CUDA graphs (the local group's collectives cannot
 * be captured). With o->num_blocks 0 rank 0 sizes the KV cache by
 * gpu_memory_utilization as if it were alone, so give the block count.
 * tp_size 1: fl_cuda_runner_init. */
int fl_cuda_runner_init_parallel(fl_model_runner *r, const fl_model_config *cfg, const fl_weights *w,
                                 const fl_runner_opts *o, int tp_size, fl_error *err);

/* Whether tp_size ranks can run a GPU each: NCCL loads (parallel/comm.h)
 * and that many GPUs are visible. 0, or -1 saying which is missing. */
int fl_cuda_tp_check(int tp_size, fl_error *err);

/* tp_size ranks on GPUs 0..tp_size-1 joined by NCCL, threads of this
 * process, CUDA graphs on every rank (--tensor-parallel-size on CUDA);
 * rank 0 sizes the KV cache and every rank holds as many blocks of its own
 * KV heads. tp_size 1: fl_cuda_runner_init. */
int fl_cuda_runner_init_nccl(fl_model_runner *r, const fl_model_config *cfg, const fl_weights *w,
                             const fl_runner_opts *o, int tp_size, fl_error *err);

#endif
