/* serve_stats.h - the statistics of `flashlm bench serve`, as vLLM's
 * benchmark defines them, as pure functions over recorded timings. */
#ifndef FL_SERVE_STATS_H
#define FL_SERVE_STATS_H

#include <stddef.h>

/* What one request recorded (seconds, relative to the benchmark start). */
typedef struct fl_request_timing {
    int success;
    int prompt_len;
    int output_len;         /* from the usage event */
    double start;           /* just before the request was sent */
    double ttft;            /* first event with non-empty choices, minus start */
    double latency;         /* last such event, minus start */
    double *itl;            /* gaps between later such events */
    int num_itl;
} fl_request_timing;

typedef struct fl_summary {
    double mean, median, std;
    double percentiles[8];  /* at the requested percentiles, in order */
} fl_summary;

/* Mean, median, population std and linear-interpolated percentiles (numpy's
 * default) of x[0..n); all 0 when n is 0. x is sorted in place. */
void fl_summarize(double *x, size_t n, const double *pcts, int num_pcts, fl_summary *out);

/* TPOT of one request: (latency - ttft) / (output_len - 1); 0 for one token. */
double fl_tpot(const fl_request_timing *r);

/* The most tokens finished in any one-second bucket (bucket = floor of the
 * time since the start), counting the first token at start + ttft and each
 * later one at the running sum of itl; and the most requests in flight at
 * any start or end. */
double fl_peak_output_throughput(const fl_request_timing *r, size_t n);
double fl_peak_concurrency(const fl_request_timing *r, size_t n);

#endif
