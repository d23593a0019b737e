/* metrics.c - Prometheus text for GET /metrics (see metrics.h). */
#include "server/metrics.h"

#include <string.h>

/* Bucket bounds in seconds, as vLLM uses for these latencies. */
static const double latency_bounds[FL_HIST_BUCKETS] = {
    0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
};

void fl_metrics_init(fl_metrics *m)
{
    memset(m, 0, sizeof *m);
    pthread_mutex_init(&m->lock, NULL);
    m->ttft.bounds = m->itl.bounds = m->e2e.bounds = latency_bounds;
}

void fl_metrics_free(fl_metrics *m)
{
    pthread_mutex_destroy(&m->lock);
}

void fl_metrics_observe(fl_metrics *m, fl_histogram *h, double seconds)
{
    pthread_mutex_lock(&m->lock);
    int b = 0;
    while (b < FL_HIST_BUCKETS && seconds > h->bounds[b])
        b++;
    h->counts[b]++;
    h->sum += seconds;
    h->total++;
    pthread_mutex_unlock(&m->lock);
}

void fl_metrics_set_engine(fl_metrics *m, const fl_engine_stats *st)
{
    pthread_mutex_lock(&m->lock);
    m->engine = *st;
    pthread_mutex_unlock(&m->lock);
}

void fl_metrics_request_done(fl_metrics *m)
{
    pthread_mutex_lock(&m->lock);
    m->requests_success++;
    pthread_mutex_unlock(&m->lock);
}

static void gauge(fl_strbuf *o, const char *name, const char *help, const char *model, double v)
{
    fl_strbuf_appendf(o, "# HELP flashlm:%s %s\n# TYPE flashlm:%s gauge\nflashlm:%s{model_name=\"%s\"} %.17g\n",
                      name, help, name, name, model, v);
}

static void counter(fl_strbuf *o, const char *name, const char *help, const char *model, double v)
{
    fl_strbuf_appendf(o, "# HELP flashlm:%s %s\n# TYPE flashlm:%s counter\nflashlm:%s{model_name=\"%s\"} %.17g\n",
                      name, help, name, name, model, v);
}

static void histogram(fl_strbuf *o, const char *name, const char *help, const char *model,
                      const fl_histogram *h)
{
    fl_strbuf_appendf(o, "# HELP flashlm:%s %s\n# TYPE flashlm:%s histogram\n", name, help, name);
    uint64_t cumulative = 0;
    for (int b = 0; b < FL_HIST_BUCKETS; b++) {
        cumulative += h->counts[b];
        fl_strbuf_appendf(o, "flashlm:%s_bucket{le=\"%g\",model_name=\"%s\"} %llu\n", name,
                          h->bounds[b], model, (unsigned long long)cumulative);
    }
    fl_strbuf_appendf(o, "flashlm:%s_bucket{le=\"+Inf\",model_name=\"%s\"} %llu\n", name, model,
                      (unsigned long long)h->total);
    fl_strbuf_appendf(o, "flashlm:%s_sum{model_name=\"%s\"} %.17g\n", name, model, h->sum);
    fl_strbuf_appendf(o, "flashlm:%s_count{model_name=\"%s\"} %llu\n", name, model,
                      (unsigned long long)h->total);
}

void fl_metrics_render(fl_metrics *m, const char *model, fl_strbuf *o)
{
    pthread_mutex_lock(&m->lock);
    const fl_engine_stats *e = &m->engine;
    const double used = e->num_blocks ? (double)(e->num_blocks - e->num_free_blocks) / e->num_blocks : 0;
    gauge(o, "num_requests_running", "Sequences in the running batch.", model, e->num_running);
    gauge(o, "num_requests_waiting", "Sequences waiting to be scheduled.", model, e->num_waiting);
    gauge(o, "kv_cache_usage_perc", "Fraction of KV cache blocks in use (1 = 100%).", model, used);
    counter(o, "prefix_cache_queries_total", "Tokens looked up in the prefix cache.", model,
            (double)e->prefix_queries);
    counter(o, "prefix_cache_hits_total", "Tokens served by the prefix cache.", model,
            (double)e->prefix_hits);
    counter(o, "num_preemptions_total", "Preemptions of running sequences.", model,
            (double)e->preemptions);
    counter(o, "prompt_tokens_total", "Prompt tokens received.", model, (double)e->prompt_tokens);
    counter(o, "generation_tokens_total", "Tokens generated.", model, (double)e->generation_tokens);
    counter(o, "request_success_total", "Requests that finished.", model,
            (double)m->requests_success);
    histogram(o, "time_to_first_token_seconds", "Time to the first token.", model, &m->ttft);
    histogram(o, "inter_token_latency_seconds", "Time between tokens.", model, &m->itl);
    histogram(o, "e2e_request_latency_seconds", "Time from arrival to the last token.", model, &m->e2e);
    pthread_mutex_unlock(&m->lock);
}
