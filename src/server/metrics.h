/* metrics.h - the counters and histograms behind GET /metrics, in the
 * Prometheus text format, with vLLM's metric names under "flashlm:". */
#ifndef FL_METRICS_H
#define FL_METRICS_H

#include <pthread.h>
#include <stdint.h>

#include "base/strbuf.h"
#include "engine/engine.h"

#define FL_HIST_BUCKETS 14

typedef struct fl_histogram {
    const double *bounds;        /* [FL_HIST_BUCKETS] upper bounds, seconds */
    uint64_t counts[FL_HIST_BUCKETS + 1];
    double sum;
    uint64_t total;
} fl_histogram;

typedef struct fl_metrics {
    pthread_mutex_t lock;
    fl_engine_stats engine;      /* copied by the engine thread after each step */
    fl_histogram ttft, itl, e2e;
    uint64_t requests_success;
} fl_metrics;

void fl_metrics_init(fl_metrics *m);
void fl_metrics_free(fl_metrics *m);
/* Records one observation (seconds). */
void fl_metrics_observe(fl_metrics *m, fl_histogram *h, double seconds);
void fl_metrics_set_engine(fl_metrics *m, const fl_engine_stats *st);
void fl_metrics_request_done(fl_metrics *m);
/* Appends the Prometheus text for model_name. */
void fl_metrics_render(fl_metrics *m, const char *model_name, fl_strbuf *out);

#endif
