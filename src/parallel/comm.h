/* comm.h - the collectives tensor parallelism needs, behind one interface.
 *
 * A rank's model code calls them at the same points on every rank (twice a
 * layer, at the embedding and at the logits). Two implementations: the
 * local group below, whose ranks are threads of one process (the CPU
 * runner's ranks, and what proves the sharding in CI), and NCCL's
 * (docs/architecture.md says what is built of it). */
#ifndef FL_COMM_H
#define FL_COMM_H

#include <stddef.h>

#include "base/error.h"

typedef struct fl_comm {
    int rank, size;
    int device;            /* the rank's GPU; -1: the caller's current one (the local group's ranks share it) */
    void *impl;
    /* buf (n floats) becomes the sum of every rank's buf, the same bits on
     * every rank (the local group adds in rank order, whatever the
     * timing); NULL where the communicator has no host side (NCCL's) */
    void (*all_reduce_sum)(struct fl_comm *c, float *buf, size_t n);
    /* out (size * n floats) becomes every rank's in, in rank order */
    void (*all_gather)(struct fl_comm *c, const float *in, size_t n, float *out);
    /* the same two on GPU buffers, enqueued on stream (a cudaStream_t)
     * after the rank's work before them, the rank's later work after them;
     * NULL where the communicator has no GPU side (a build without CUDA) */
    void (*all_reduce_sum_device)(struct fl_comm *c, float *buf, size_t n, void *stream);
    void (*all_gather_device)(struct fl_comm *c, const float *in, size_t n, float *out, void *stream);
    /* whether the device collectives can be captured into a CUDA graph
     * (NCCL's can; the local group's order the ranks' streams through
     * events and host barriers, which cannot) */
    int device_capturable;
} fl_comm;

/* Every rank's communicator of one group in this process, and what frees
 * them (with the group). */
typedef struct fl_comm_set {
    int size;
    fl_comm **ranks;       /* [size] */
    void *owner;
    void (*free)(void *owner);
} fl_comm_set;

void fl_comm_set_free(fl_comm_set *s);

/* size ranks that are threads of this process, each calling the
 * collectives on its own fl_comm (fl_comm_local_rank) from its own thread.
 * With CUDA its device collectives serve ranks that share one GPU (what
 * checks the CUDA runner's sharding on a machine of one GPU): each rank's
 * stream waits for every rank's buffer through events, then sums or copies
 * them itself, in rank order. */
typedef struct fl_comm_local_group fl_comm_local_group;

fl_comm_local_group *fl_comm_local_group_new(int size);
void fl_comm_local_group_free(fl_comm_local_group *g);
/* Rank r's communicator (owned by the group). */
fl_comm *fl_comm_local_rank(fl_comm_local_group *g, int r);

/* A new local group of size ranks as a set. */
void fl_comm_local_set(int size, fl_comm_set *out);

#ifdef FLASHLM_HAVE_CUDA
/* NCCL's device collectives (parallel/comm_nccl.c), a rank per GPU of this
 * process: 0, or -1 saying why NCCL cannot be loaded. */
int fl_comm_nccl_check(fl_error *err);
/* size ranks on GPUs 0..size-1, joined by NCCL; no host collectives. 0 or
 * -1 with the reason (NCCL missing, a GPU it cannot join). */
int fl_comm_nccl_set(int size, fl_comm_set *out, fl_error *err);
#endif

#endif
