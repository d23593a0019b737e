/* prom.h - histograms and the Prometheus text exposition format (0.0.4),
 * what /metrics is written in: a metric family is a "# HELP" and a
 * "# TYPE" line, then one sample a line, `name{label="value",...} value`.
 * A histogram's samples are cumulative `_bucket` series with an `le`
 * label (the bucket's upper bound, inclusive; the last is "+Inf" and
 * equals `_count`), then `_sum` and `_count`: what PromQL's
 * histogram_quantile reads. No locking here: the caller's (metrics.c). */
#ifndef FL_PROM_H
#define FL_PROM_H

#include <stdint.h>

#include "base/strbuf.h"

#define FL_PROM_MAX_BOUNDS 40

typedef struct fl_histogram {
    double bounds[FL_PROM_MAX_BOUNDS];   /* increasing upper bounds; +Inf is implicit */
    int num_bounds;
    uint64_t counts[FL_PROM_MAX_BOUNDS + 1]; /* per bucket, not cumulative; the last is +Inf's */
    double sum;
    uint64_t count;
} fl_histogram;

/* Sets h's bounds (num at most FL_PROM_MAX_BOUNDS, increasing: asserted)
 * and zeroes its counts. */
void fl_histogram_init(fl_histogram *h, const double *bounds, int num);

/* Counts v in the first bucket whose bound is >= v (Prometheus's `le`). */
void fl_histogram_observe(fl_histogram *h, double v);

/* vLLM's build_1_2_5_buckets: 1, 2, 5, 10, 20, 50, ... while <= max_value
 * (max_value 100: 1 2 5 10 20 50 100). Writes at most cap; returns the
 * count. */
int fl_prom_1_2_5_bounds(double max_value, double *out, int cap);

/* The "# HELP" and "# TYPE" lines of a family (type: "counter", "gauge",
 * "histogram"). */
void fl_prom_family(fl_strbuf *o, const char *name, const char *type, const char *help);

/* One sample: name{labels} v. labels is the inside of the braces, already
 * escaped (`model_name="m",engine="0"`), or "" for none. */
void fl_prom_sample(fl_strbuf *o, const char *name, const char *labels, double v);

/* A histogram's samples under labels (not the family lines): every
 * bucket, +Inf, _sum, _count. */
void fl_prom_histogram(fl_strbuf *o, const char *name, const char *labels, const fl_histogram *h);

/* Appends s as a label value: backslash, double quote and line feed
 * escaped as the format requires. */
void fl_prom_label_value(fl_strbuf *o, const char *s);

#endif
