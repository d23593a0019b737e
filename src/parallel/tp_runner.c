/* tp_runner.c - the ranks of a tensor-parallel group behind one runner (see
 * tp_runner.h). Worker threads 1..size-1 wait at a barrier for a forward,
 * run it on their rank and meet again at a second barrier; only forwards
 * hold collectives, so sample, sampled and mask_logits go to each rank in
 * turn from the caller's thread. */
#include "parallel/tp_runner.h"

#include <omp.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "base/barrier.h"
#include "parallel/tp_shard.h"

typedef struct tp_runner tp_runner;

typedef struct tp_worker {
    tp_runner *tp;
    int rank;
    pthread_t thread;
} tp_worker;

struct tp_runner {
    int size;
    fl_comm_set comms;        /* the ranks' communicators, owned */
    fl_model_runner *ranks;   /* [size] */
    tp_worker *workers;       /* [size]; [0] unused (the caller's thread) */
    int num_started;          /* worker threads running */
    pthread_barrier_t go, done;
    const fl_batch *batch;    /* the forward under way */
    int quit;
    int threads_per_rank;     /* OpenMP threads each rank's parallel loops use */
};

static void *worker_main(void *arg)
{
    tp_worker *w = arg;
    tp_runner *tp = w->tp;
    omp_set_num_threads(tp->threads_per_rank); /* this thread's own teams */
    for (;;) {
        fl_barrier_wait(&tp->go);
        if (tp->quit)
            return NULL;
        const fl_model_runner *r = &tp->ranks[w->rank];
        r->forward(r->impl, tp->batch, NULL); /* its logits stay in the rank for sample */
        fl_barrier_wait(&tp->done);
    }
}

static void tp_forward(void *impl, const fl_batch *b, float *logits)
{
    tp_runner *tp = impl;
    tp->batch = b;
    const int threads = omp_get_max_threads();
    omp_set_num_threads(tp->threads_per_rank);
    fl_barrier_wait(&tp->go);
    tp->ranks[0].forward(tp->ranks[0].impl, b, logits);
    fl_barrier_wait(&tp->done);
    omp_set_num_threads(threads);
}

static void tp_sample(void *impl, int num_rows, const fl_draw *rows)
{
    tp_runner *tp = impl;
    for (int k = 0; k < tp->size; k++) /* the same logits and draws: the same tokens on every rank */
        tp->ranks[k].sample(tp->ranks[k].impl, num_rows, rows);
}

static const int32_t *tp_sampled(void *impl)
{
    tp_runner *tp = impl;
    for (int k = 1; k < tp->size; k++)
        tp->ranks[k].sampled(tp->ranks[k].impl);
    return tp->ranks[0].sampled(tp->ranks[0].impl);
}

static void tp_mask_logits(void *impl, int num_rows, const int32_t *rows, const uint32_t *masks)
{
    tp_runner *tp = impl;
    for (int k = 0; k < tp->size; k++)
        tp->ranks[k].mask_logits(tp->ranks[k].impl, num_rows, rows, masks);
}

static void tp_read_logits(void *impl, int row, float *out)
{
    tp_runner *tp = impl;
    tp->ranks[0].read_logits(tp->ranks[0].impl, row, out);
}

static void tp_destroy(void *impl)
{
    tp_runner *tp = impl;
    if (tp->num_started == tp->size - 1) {
        tp->quit = 1;
        fl_barrier_wait(&tp->go);
    }
    for (int k = 1; k <= tp->num_started; k++)
        pthread_join(tp->workers[k].thread, NULL);
    for (int k = 0; k < tp->size; k++)
        if (tp->ranks[k].destroy)
            tp->ranks[k].destroy(tp->ranks[k].impl);
    pthread_barrier_destroy(&tp->go);
    pthread_barrier_destroy(&tp->done);
    fl_comm_set_free(&tp->comms);
    free(tp->ranks);
    free(tp->workers);
    free(tp);
}

int fl_tp_runner_init(fl_model_runner *r, int size, fl_comm_set *comms, fl_tp_rank_init_fn init, void *ctx,
                      fl_error *err)
{
    FL_ASSERT(size >= 2 && (!comms || comms->size == size));
    tp_runner *tp = fl_calloc(1, sizeof *tp);
    tp->size = size;
    if (comms)
        tp->comms = *comms;
    else
        fl_comm_local_set(size, &tp->comms);
    tp->ranks = fl_calloc((size_t)size, sizeof *tp->ranks);
    tp->workers = fl_calloc((size_t)size, sizeof *tp->workers);
    const int threads = omp_get_max_threads();
    tp->threads_per_rank = threads / size > 0 ? threads / size : 1;
    FL_ASSERT(pthread_barrier_init(&tp->go, NULL, (unsigned)size) == 0);
    FL_ASSERT(pthread_barrier_init(&tp->done, NULL, (unsigned)size) == 0);
    for (int k = 0; k < size; k++) {
        if (init(ctx, tp->comms.ranks[k], k ? tp->ranks[0].num_blocks : 0, &tp->ranks[k], err) != 0) {
            tp->num_started = -1; /* no workers yet: nothing to stop */
            for (int j = 0; j < k; j++)
                tp->ranks[j].destroy(tp->ranks[j].impl);
            memset(tp->ranks, 0, (size_t)size * sizeof *tp->ranks);
            tp_destroy(tp);
            return fl_fail_prefix(err, "tensor-parallel rank %d of %d", k, size);
        }
        FL_ASSERT(tp->ranks[k].sample && tp->ranks[k].num_blocks == tp->ranks[0].num_blocks);
    }
    for (int k = 1; k < size; k++) {
        tp->workers[k] = (tp_worker){ .tp = tp, .rank = k };
        FL_ASSERT(pthread_create(&tp->workers[k].thread, NULL, worker_main, &tp->workers[k]) == 0);
        tp->num_started = k;
    }
    *r = tp->ranks[0]; /* its sizes, KV groups and block count: the same on every rank */
    r->impl = tp;
    r->forward = tp_forward;
    r->sample = tp_sample;
    r->sampled = tp_sampled;
    r->mask_logits = tp_mask_logits;
    r->read_logits = tp_read_logits;
    r->destroy = tp_destroy;
    return 0;
}

/* A rank of fl_tp_runner_init_ranks's group. */
typedef struct rank_ctx {
    fl_runner_init_fn init;
    const fl_model_config *cfg;
    const fl_weights *w;
    fl_runner_opts o;
} rank_ctx;

static int rank_init(void *ctx, fl_comm *comm, int num_blocks, fl_model_runner *out, fl_error *err)
{
    const rank_ctx *c = ctx;
    fl_runner_opts o = c->o;
    o.comm = comm;
    if (num_blocks > 0)
        o.num_blocks = num_blocks;
    return c->init(out, c->cfg, c->w, &o, err);
}

int fl_tp_runner_init_ranks(fl_model_runner *r, int size, fl_comm_set *comms, fl_runner_init_fn init,
                            const fl_model_config *cfg, const fl_weights *w, const fl_runner_opts *o, fl_error *err)
{
    int rc;
    if (size <= 1)
        rc = init(r, cfg, w, o, err);
    else if (fl_tp_check(cfg, size, err) != 0)
        rc = -1;
    else {
        rank_ctx ctx = { init, cfg, w, *o };
        return fl_tp_runner_init(r, size, comms, rank_init, &ctx, err); /* it owns comms now */
    }
    if (comms)
        fl_comm_set_free(comms);
    return rc;
}
