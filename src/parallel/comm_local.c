/* comm_local.c - the collectives among threads of one process (see comm.h).
 *
 * Each collective: every rank publishes its buffer, a barrier, then the
 * work split over the ranks (a reduce: rank r sums the r-th piece of the
 * elements over all ranks, in rank order, into the group's scratch), a
 * barrier, then each copies the result out, and a last barrier before any
 * buffer or the scratch is reused. */
#include "parallel/comm.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "base/error.h"

struct fl_comm_local_group {
    int size;
    pthread_barrier_t barrier;
    const float **in;      /* [size] the buffers of the collective under way */
    size_t n;              /* its length (every rank's: asserted) */
    float *scratch;        /* the reduced elements */
    size_t cap;
    fl_comm *ranks;        /* [size] */
};

static void wait_all(fl_comm_local_group *g)
{
    const int rc = pthread_barrier_wait(&g->barrier);
    FL_ASSERT(rc == 0 || rc == PTHREAD_BARRIER_SERIAL_THREAD);
}

/* Publishes in and n, rank 0 sizing the scratch for n first. */
static void publish(fl_comm_local_group *g, int rank, const float *in, size_t n)
{
    if (rank == 0) {
        g->n = n;
        if (n > g->cap) {
            free(g->scratch);
            g->scratch = fl_malloc(n * sizeof(float));
            g->cap = n;
        }
    }
    g->in[rank] = in;
    wait_all(g);
    FL_ASSERT(g->n == n); /* the ranks call the same collective */
}

static void local_all_reduce_sum(fl_comm *c, float *buf, size_t n)
{
    fl_comm_local_group *g = c->impl;
    publish(g, c->rank, buf, n);
    const size_t per = (n + (size_t)g->size - 1) / (size_t)g->size;
    const size_t lo = per * (size_t)c->rank, hi = lo + per < n ? lo + per : n;
    for (size_t i = lo; i < hi; i++) {
        float sum = g->in[0][i];
        for (int r = 1; r < g->size; r++)
            sum += g->in[r][i];
        g->scratch[i] = sum;
    }
    wait_all(g);
    memcpy(buf, g->scratch, n * sizeof(float));
    wait_all(g);
}

static void local_all_gather(fl_comm *c, const float *in, size_t n, float *out)
{
    fl_comm_local_group *g = c->impl;
    publish(g, c->rank, in, n);
    for (int r = 0; r < g->size; r++)
        memcpy(out + (size_t)r * n, g->in[r], n * sizeof(float));
    wait_all(g);
}

fl_comm_local_group *fl_comm_local_group_new(int size)
{
    FL_ASSERT(size >= 1);
    fl_comm_local_group *g = fl_calloc(1, sizeof *g);
    g->size = size;
    FL_ASSERT(pthread_barrier_init(&g->barrier, NULL, (unsigned)size) == 0);
    g->in = fl_calloc((size_t)size, sizeof *g->in);
    g->ranks = fl_calloc((size_t)size, sizeof *g->ranks);
    for (int r = 0; r < size; r++)
        g->ranks[r] = (fl_comm){ .rank = r, .size = size, .impl = g, .all_reduce_sum = local_all_reduce_sum,
                                 .all_gather = local_all_gather };
    return g;
}

void fl_comm_local_group_free(fl_comm_local_group *g)
{
    if (!g)
        return;
    pthread_barrier_destroy(&g->barrier);
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
