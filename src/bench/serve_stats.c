/* serve_stats.c - benchmark statistics (see serve_stats.h). */
#include "bench/serve_stats.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"

static int compare_doubles(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* numpy.percentile's default: linear between the two nearest ranks. */
static double percentile(const double *sorted, size_t n, double p)
{
    double rank = p / 100.0 * (double)(n - 1);
    size_t lo = (size_t)floor(rank), hi = (size_t)ceil(rank);
    return sorted[lo] + (sorted[hi] - sorted[lo]) * (rank - (double)lo);
}

void fl_summarize(double *x, size_t n, const double *pcts, int num_pcts, fl_summary *out)
{
    memset(out, 0, sizeof *out);
    if (n == 0)
        return;
    qsort(x, n, sizeof(double), compare_doubles);
    double sum = 0;
    for (size_t i = 0; i < n; i++)
        sum += x[i];
    out->mean = sum / (double)n;
    double var = 0;
    for (size_t i = 0; i < n; i++)
        var += (x[i] - out->mean) * (x[i] - out->mean);
    out->std = sqrt(var / (double)n);
    out->median = percentile(x, n, 50);
    for (int i = 0; i < num_pcts && i < 8; i++)
        out->percentiles[i] = percentile(x, n, pcts[i]);
}

double fl_tpot(const fl_request_timing *r)
{
    return r->output_len > 1 ? (r->latency - r->ttft) / (double)(r->output_len - 1) : 0;
}

double fl_peak_output_throughput(const fl_request_timing *r, size_t n)
{
    double end = 0;
    for (size_t i = 0; i < n; i++)
        if (r[i].success && r[i].start + r[i].latency > end)
            end = r[i].start + r[i].latency;
    const size_t buckets = (size_t)floor(end) + 1;
    double *count = fl_calloc(buckets, sizeof(double));
    for (size_t i = 0; i < n; i++) {
        if (!r[i].success)
            continue;
        double t = r[i].start + r[i].ttft;
        count[(size_t)floor(t)]++;
        for (int k = 0; k < r[i].num_itl; k++) {
            t += r[i].itl[k];
            count[(size_t)floor(t) < buckets ? (size_t)floor(t) : buckets - 1]++;
        }
    }
    double peak = 0;
    for (size_t b = 0; b < buckets; b++)
        if (count[b] > peak)
            peak = count[b];
    free(count);
    return peak;
}

typedef struct edge {
    double t;
    int delta;
} edge;

static int compare_edges(const void *a, const void *b)
{
    const edge *x = a, *y = b;
    if (x->t != y->t)
        return x->t < y->t ? -1 : 1;
    return x->delta - y->delta; /* an end before a start at the same instant */
}

double fl_peak_concurrency(const fl_request_timing *r, size_t n)
{
    edge *e = fl_malloc((2 * n + 1) * sizeof(edge));
    size_t m = 0;
    for (size_t i = 0; i < n; i++) {
        if (!r[i].success)
            continue;
        e[m++] = (edge){ r[i].start, +1 };
        e[m++] = (edge){ r[i].start + r[i].latency, -1 };
    }
    qsort(e, m, sizeof(edge), compare_edges);
    int now = 0, peak = 0;
    for (size_t i = 0; i < m; i++)
        if ((now += e[i].delta) > peak)
            peak = now;
    free(e);
    return peak;
}
