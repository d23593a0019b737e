/* comm_local.c - the collectives among threads of one process (see comm.h).
 *
 * Each collective: every rank publishes its buffer, a barrier, then the
 * work split over the ranks (a reduce: rank r sums the r-th piece of the
 * elements over all ranks, in rank order, into the group's scratch), a
 * barrier, then each copies the result out, and a last barrier before any
 * buffer or the scratch is reused.
 *
 * The device collectives (with CUDA; ranks on one GPU) keep that shape on
 * the ranks' streams: each rank publishes its buffer and records `ready`
 * on its stream; after a barrier every stream waits for every rank's
 * `ready` and the rank sums (or copies) all the buffers itself, in rank
 * order, into its own scratch; it records `read`, and after a barrier
 * waits for every rank's `read` before writing its buffer; a last barrier
 * before the events are recorded again. The host waits for nothing on the
 * GPU. */
#include "parallel/comm.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "base/barrier.h"
#include "base/error.h"

#ifdef FLASHLM_HAVE_CUDA
#include <cuda_runtime.h>

#include "cuda/cuda_check.h"
#include "cuda/model_kernels.h"

typedef struct device_rank {
    cudaEvent_t ready, read;   /* created at the rank's first device collective */
    float *scratch;            /* its result before it lands in its buffer */
    size_t cap;
} device_rank;
#endif

struct fl_comm_local_group {
    int size;
    pthread_barrier_t barrier;
    const float **in;      /* [size] the buffers of the collective under way */
    size_t n;              /* its length (every rank's: asserted) */
    float *scratch;        /* the reduced elements */
    size_t cap;
    fl_comm *ranks;        /* [size] */
#ifdef FLASHLM_HAVE_CUDA
    cudaEvent_t *ready;    /* [size] each rank's, for the others to wait on */
    cudaEvent_t *read;
    device_rank *device;   /* [size] */
#endif
};

/* Publishes in and n, rank 0 sizing the host scratch for n first (a host
 * all-reduce's; the device collectives have their own). */
static void publish(fl_comm_local_group *g, int rank, const float *in, size_t n, int host_scratch)
{
    if (rank == 0) {
        g->n = n;
        if (host_scratch && n > g->cap) {
            free(g->scratch);
            g->scratch = fl_malloc(n * sizeof(float));
            g->cap = n;
        }
    }
    g->in[rank] = in;
    fl_barrier_wait(&g->barrier);
    FL_ASSERT(g->n == n); /* the ranks call the same collective */
}

static void local_all_reduce_sum(fl_comm *c, float *buf, size_t n)
{
    fl_comm_local_group *g = c->impl;
    publish(g, c->rank, buf, n, 1);
    const size_t per = (n + (size_t)g->size - 1) / (size_t)g->size;
    const size_t lo = per * (size_t)c->rank, hi = lo + per < n ? lo + per : n;
    for (size_t i = lo; i < hi; i++) {
        float sum = g->in[0][i];
        for (int r = 1; r < g->size; r++)
            sum += g->in[r][i];
        g->scratch[i] = sum;
    }
    fl_barrier_wait(&g->barrier);
    memcpy(buf, g->scratch, n * sizeof(float));
    fl_barrier_wait(&g->barrier);
}

static void local_all_gather(fl_comm *c, const float *in, size_t n, float *out)
{
    fl_comm_local_group *g = c->impl;
    publish(g, c->rank, in, n, 0);
    for (int r = 0; r < g->size; r++)
        memcpy(out + (size_t)r * n, g->in[r], n * sizeof(float));
    fl_barrier_wait(&g->barrier);
}

#ifdef FLASHLM_HAVE_CUDA
/* Rank c's events and a scratch of n floats, made on first use; its
 * stream waits until no rank's earlier collective reads the old scratch. */
static device_rank *device_of(fl_comm *c, size_t n, cudaStream_t s)
{
    fl_comm_local_group *g = c->impl;
    device_rank *d = &g->device[c->rank];
    if (!d->ready) {
        FL_CUDA_CHECK(cudaEventCreateWithFlags(&d->ready, cudaEventDisableTiming));
        FL_CUDA_CHECK(cudaEventCreateWithFlags(&d->read, cudaEventDisableTiming));
        g->ready[c->rank] = d->ready;
        g->read[c->rank] = d->read;
    }
    if (n > d->cap) {
        FL_CUDA_CHECK(cudaStreamSynchronize(s)); /* its last use is done */
        if (d->scratch)
            FL_CUDA_CHECK(cudaFree(d->scratch));
        FL_CUDA_CHECK(cudaMalloc((void **)&d->scratch, n * sizeof(float)));
        d->cap = n;
    }
    return d;
}

/* This rank's stream waits for every rank's event in events. */
static void wait_events(fl_comm_local_group *g, cudaEvent_t *events, cudaStream_t s)
{
    for (int r = 0; r < g->size; r++)
        FL_CUDA_CHECK(cudaStreamWaitEvent(s, events[r], 0));
}

static void local_all_reduce_sum_device(fl_comm *c, float *buf, size_t n, void *stream)
{
    fl_comm_local_group *g = c->impl;
    cudaStream_t s = stream;
    device_rank *d = device_of(c, n, s);
    FL_CUDA_CHECK(cudaEventRecord(d->ready, s));
    publish(g, c->rank, buf, n, 0);
    wait_events(g, g->ready, s);
    FL_CUDA_CHECK(fl_cuda_sum(g->in, g->size, d->scratch, n, s));
    FL_CUDA_CHECK(cudaEventRecord(d->read, s));
    fl_barrier_wait(&g->barrier);
    wait_events(g, g->read, s); /* no rank reads buf any more */
    FL_CUDA_CHECK(cudaMemcpyAsync(buf, d->scratch, n * sizeof(float), cudaMemcpyDeviceToDevice, s));
    fl_barrier_wait(&g->barrier);
}

static void local_all_gather_device(fl_comm *c, const float *in, size_t n, float *out, void *stream)
{
    fl_comm_local_group *g = c->impl;
    cudaStream_t s = stream;
    device_rank *d = device_of(c, 0, s);
    FL_CUDA_CHECK(cudaEventRecord(d->ready, s));
    publish(g, c->rank, in, n, 0);
    wait_events(g, g->ready, s);
    for (int r = 0; r < g->size; r++)
        FL_CUDA_CHECK(cudaMemcpyAsync(out + (size_t)r * n, g->in[r], n * sizeof(float), cudaMemcpyDeviceToDevice, s));
    FL_CUDA_CHECK(cudaEventRecord(d->read, s));
    fl_barrier_wait(&g->barrier);
    wait_events(g, g->read, s); /* no rank reads in any more */
    fl_barrier_wait(&g->barrier);
}
#endif

fl_comm_local_group *fl_comm_local_group_new(int size)
{
    FL_ASSERT(size >= 1);
    fl_comm_local_group *g = fl_calloc(1, sizeof *g);
    g->size = size;
    FL_ASSERT(pthread_barrier_init(&g->barrier, NULL, (unsigned)size) == 0);
    g->in = fl_calloc((size_t)size, sizeof *g->in);
    g->ranks = fl_calloc((size_t)size, sizeof *g->ranks);
    for (int r = 0; r < size; r++)
        g->ranks[r] = (fl_comm){ .rank = r, .size = size, .device = -1, .impl = g,
                                 .all_reduce_sum = local_all_reduce_sum,
                                 .all_gather = local_all_gather };
#ifdef FLASHLM_HAVE_CUDA
    g->ready = fl_calloc((size_t)size, sizeof *g->ready);
    g->read = fl_calloc((size_t)size, sizeof *g->read);
    g->device = fl_calloc((size_t)size, sizeof *g->device);
    for (int r = 0; r < size && size <= FL_CUDA_SUM_MAX; r++) { /* fl_cuda_sum's inputs */
        g->ranks[r].all_reduce_sum_device = local_all_reduce_sum_device;
        g->ranks[r].all_gather_device = local_all_gather_device;
    }
#endif
    return g;
}

void fl_comm_local_group_free(fl_comm_local_group *g)
{
    if (!g)
        return;
    pthread_barrier_destroy(&g->barrier);
#ifdef FLASHLM_HAVE_CUDA
    for (int r = 0; r < g->size; r++) {
        device_rank *d = &g->device[r];
        if (d->ready) {
            cudaEventDestroy(d->ready);
            cudaEventDestroy(d->read);
        }
        if (d->scratch)
            cudaFree(d->scratch);
    }
    free(g->ready);
    free(g->read);
    free(g->device);
#endif
    free(g->in);
    free(g->scratch);
    free(g->ranks);
    free(g);
}

fl_comm *fl_comm_local_rank(fl_comm_local_group *g, int r)
{
    FL_ASSERT(r >= 0 && r < g->size);
    return &g->ranks[r];
}

/* The set's owner: the group and the array of its ranks. */
typedef struct local_set {
    fl_comm_local_group *group;
    fl_comm **ranks;
} local_set;

static void free_local_set(void *owner)
{
    local_set *s = owner;
    fl_comm_local_group_free(s->group);
    free(s->ranks);
    free(s);
}

void fl_comm_local_set(int size, fl_comm_set *out)
{
    local_set *s = fl_calloc(1, sizeof *s);
    s->group = fl_comm_local_group_new(size);
    s->ranks = fl_calloc((size_t)size, sizeof *s->ranks);
    for (int r = 0; r < size; r++)
        s->ranks[r] = fl_comm_local_rank(s->group, r);
    *out = (fl_comm_set){ .size = size, .ranks = s->ranks, .owner = s, .free = free_local_set };
}

void fl_comm_set_free(fl_comm_set *s)
{
    if (s->free)
        s->free(s->owner);
    memset(s, 0, sizeof *s);
}
