/* metrics.c - /metrics, the stat log line and the request log lines (see
 * metrics.h). */
#include "server/metrics.h"

#include <string.h>

/* vLLM's buckets (PrometheusStatLogger), in seconds. */
static const double ttft_bounds[] = {
    0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75,
    1.0, 2.5, 5.0, 7.5, 10.0, 20.0, 40.0, 80.0, 160.0, 640.0, 2560.0,
};
static const double tpot_bounds[] = {
    0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5,
    0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 20.0, 40.0, 80.0,
};
static const double request_latency_bounds[] = {
    0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0,
    30.0, 40.0, 50.0, 60.0, 120.0, 240.0, 480.0, 960.0, 1920.0, 7680.0,
};
static const double iteration_bounds[] = { 1, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384 };
static const double n_bounds[] = { 1, 2, 5, 10, 20 };

#define COUNT(a) ((int)(sizeof(a) / sizeof((a)[0])))

static const char *const finish_names[FL_NUM_FINISH] = { "stop", "length", "abort", "error" };

void fl_metrics_init(fl_metrics *m, double log_interval)
{
    memset(m, 0, sizeof *m);
    pthread_mutex_init(&m->lock, NULL);
    fl_histogram_init(&m->ttft, ttft_bounds, COUNT(ttft_bounds));
    fl_histogram_init(&m->itl, tpot_bounds, COUNT(tpot_bounds));
    fl_histogram_init(&m->request_tpot, tpot_bounds, COUNT(tpot_bounds));
    fl_histogram *latencies[] = { &m->e2e, &m->queue, &m->inference, &m->prefill, &m->decode };
    for (int i = 0; i < COUNT(latencies); i++)
        fl_histogram_init(latencies[i], request_latency_bounds, COUNT(request_latency_bounds));
    fl_histogram_init(&m->iteration_tokens, iteration_bounds, COUNT(iteration_bounds));
    fl_histogram_init(&m->n, n_bounds, COUNT(n_bounds));
    m->log_interval = log_interval;
}

void fl_metrics_free(fl_metrics *m)
{
    pthread_mutex_destroy(&m->lock);
}

void fl_metrics_configure(fl_metrics *m, int max_model_len)
{
    double b[FL_PROM_MAX_BOUNDS];
    const int nb = fl_prom_1_2_5_bounds(max_model_len, b, FL_PROM_MAX_BOUNDS);
    pthread_mutex_lock(&m->lock);
    m->max_model_len = max_model_len;
    fl_histogram_init(&m->prompt_tokens, b, nb);
    fl_histogram_init(&m->generation_tokens, b, nb);
    fl_histogram_init(&m->max_tokens, b, nb);
    pthread_mutex_unlock(&m->lock);
}

void fl_metrics_set_engine(fl_metrics *m, const fl_engine_stats *st)
{
    pthread_mutex_lock(&m->lock);
    m->engine = *st;
    const int64_t tokens = st->prompt_tokens + st->generation_tokens;
    /* a step that ran the model, or one that only handled the tokens of the
     * last (async scheduling's final step): new generated tokens */
    if (st->steps > m->steps_seen || st->generation_tokens > m->generation_seen) {
        fl_histogram_observe(&m->iteration_tokens, (double)(tokens - m->iteration_mark));
        m->iteration_mark = tokens;
        m->steps_seen = st->steps;
        m->generation_seen = st->generation_tokens;
    }
    pthread_mutex_unlock(&m->lock);
}

static int finish_index(const char *reason)
{
    for (int i = 0; i < FL_NUM_FINISH; i++)
        if (strcmp(reason, finish_names[i]) == 0)
            return i;
    return FL_FINISH_ERROR;
}

void fl_metrics_on_output(fl_metrics *m, const fl_seq_output *out, double now)
{
    pthread_mutex_lock(&m->lock);
    if (out->token >= 0) {
        if (out->prev_token_time == 0)
            fl_histogram_observe(&m->ttft, out->last_token_time - out->arrival_time);
        else
            fl_histogram_observe(&m->itl, out->last_token_time - out->prev_token_time);
    }
    if (out->finished) {
        /* vLLM's phases: queued until first scheduled, prefill until the
         * first token, decode until the last; inference is both */
        const double scheduled = out->scheduled_time ? out->scheduled_time : now;
        const double first = out->first_token_time ? out->first_token_time : now;
        const double last = out->last_token_time ? out->last_token_time : now;
        m->success[finish_index(out->finish_reason)]++;
        fl_histogram_observe(&m->e2e, now - out->arrival_time);
        fl_histogram_observe(&m->queue, scheduled - out->arrival_time);
        fl_histogram_observe(&m->prefill, first - scheduled);
        fl_histogram_observe(&m->decode, last - first);
        fl_histogram_observe(&m->inference, last - scheduled);
        if (out->num_output_tokens > 1)
            fl_histogram_observe(&m->request_tpot, (last - first) / (out->num_output_tokens - 1));
        fl_histogram_observe(&m->prompt_tokens, out->num_prompt_tokens);
        fl_histogram_observe(&m->generation_tokens, out->num_output_tokens);
        if (out->params) {
            fl_histogram_observe(&m->max_tokens, out->params->max_tokens);
            if (out->index == 0)
                fl_histogram_observe(&m->n, out->params->n);
        }
    }
    pthread_mutex_unlock(&m->lock);
}

/* ---- /metrics ---- */

static void gauge(fl_strbuf *o, const char *labels, const char *name, const char *help, double v)
{
    fl_prom_family(o, name, "gauge", help);
    fl_prom_sample(o, name, labels, v);
}

/* name without "_total", which the exposition adds (as prometheus_client
 * writes vLLM's counters). */
static void counter(fl_strbuf *o, const char *labels, const char *name, const char *help, double v)
{
    char total[128];
    snprintf(total, sizeof total, "%s_total", name);
    fl_prom_family(o, total, "counter", help);
    fl_prom_sample(o, total, labels, v);
}

static void histogram(fl_strbuf *o, const char *labels, const char *name, const char *help,
                      const fl_histogram *h)
{
    fl_prom_family(o, name, "histogram", help);
    fl_prom_histogram(o, name, labels, h);
}

void fl_metrics_render(fl_metrics *m, const char *model, fl_strbuf *o)
{
    fl_strbuf lb = { 0 };
    fl_strbuf_append_str(&lb, "model_name=\"");
    fl_prom_label_value(&lb, model);
    fl_strbuf_append_str(&lb, "\",engine=\"0\"");
    const char *labels = lb.data;

    pthread_mutex_lock(&m->lock);
    const fl_engine_stats *e = &m->engine;
    const double used = e->num_blocks ? (double)(e->num_blocks - e->num_free_blocks) / e->num_blocks : 0;
    gauge(o, labels, "vllm:num_requests_running", "Number of requests in model execution batches.",
          e->num_running);
    gauge(o, labels, "vllm:num_requests_waiting", "Number of requests waiting to be processed.",
          e->num_waiting);
    gauge(o, labels, "vllm:gpu_cache_usage_perc",
          "GPU KV-cache usage. 1 means 100 percent usage. DEPRECATED: Use vllm:kv_cache_usage_perc instead.",
          used);
    gauge(o, labels, "vllm:kv_cache_usage_perc", "KV-cache usage. 1 means 100 percent usage.", used);
    counter(o, labels, "vllm:gpu_prefix_cache_queries",
            "GPU prefix cache queries, in terms of number of queried tokens. DEPRECATED: Use "
            "vllm:prefix_cache_queries instead.", (double)e->prefix_queries);
    counter(o, labels, "vllm:gpu_prefix_cache_hits",
            "GPU prefix cache hits, in terms of number of cached tokens. DEPRECATED: Use "
            "vllm:prefix_cache_hits instead.", (double)e->prefix_hits);
    counter(o, labels, "vllm:prefix_cache_queries",
            "Prefix cache queries, in terms of number of queried tokens.", (double)e->prefix_queries);
    counter(o, labels, "vllm:prefix_cache_hits", "Prefix cache hits, in terms of number of cached tokens.",
            (double)e->prefix_hits);
    counter(o, labels, "vllm:num_preemptions", "Cumulative number of preemption from the engine.",
            (double)e->preemptions);
    counter(o, labels, "vllm:prompt_tokens", "Number of prefill tokens processed.", (double)e->prompt_tokens);
    counter(o, labels, "vllm:generation_tokens", "Number of generation tokens processed.",
            (double)e->generation_tokens);

    fl_prom_family(o, "vllm:request_success_total", "counter", "Count of successfully processed requests.");
    for (int i = 0; i < FL_NUM_FINISH; i++) {
        char l[512];
        snprintf(l, sizeof l, "%s,finished_reason=\"%s\"", labels, finish_names[i]);
        fl_prom_sample(o, "vllm:request_success_total", l, (double)m->success[i]);
    }

    histogram(o, labels, "vllm:request_prompt_tokens", "Number of prefill tokens processed.", &m->prompt_tokens);
    histogram(o, labels, "vllm:request_generation_tokens", "Number of generation tokens processed.",
              &m->generation_tokens);
    histogram(o, labels, "vllm:iteration_tokens_total", "Histogram of number of tokens per engine_step.",
              &m->iteration_tokens);
    histogram(o, labels, "vllm:request_params_n", "Histogram of the n request parameter.", &m->n);
    histogram(o, labels, "vllm:request_params_max_tokens", "Histogram of the max_tokens request parameter.",
              &m->max_tokens);
    histogram(o, labels, "vllm:time_to_first_token_seconds", "Histogram of time to first token in seconds.",
              &m->ttft);
    histogram(o, labels, "vllm:inter_token_latency_seconds", "Histogram of inter-token latency in seconds.",
              &m->itl);
    histogram(o, labels, "vllm:time_per_output_token_seconds",
              "Histogram of time per output token in seconds. DEPRECATED: Use "
              "vllm:inter_token_latency_seconds instead.", &m->itl);
    histogram(o, labels, "vllm:request_time_per_output_token_seconds",
              "Histogram of time_per_output_token_seconds per request.", &m->request_tpot);
    histogram(o, labels, "vllm:e2e_request_latency_seconds", "Histogram of e2e request latency in seconds.",
              &m->e2e);
    histogram(o, labels, "vllm:request_queue_time_seconds",
              "Histogram of time spent in WAITING phase for request.", &m->queue);
    histogram(o, labels, "vllm:request_inference_time_seconds",
              "Histogram of time spent in RUNNING phase for request.", &m->inference);
    histogram(o, labels, "vllm:request_prefill_time_seconds",
              "Histogram of time spent in PREFILL phase for request.", &m->prefill);
    histogram(o, labels, "vllm:request_decode_time_seconds",
              "Histogram of time spent in DECODE phase for request.", &m->decode);

    /* an info metric: a gauge of 1 whose labels are the cache's configuration */
    fl_prom_family(o, "vllm:cache_config_info", "gauge", "Information of the LLMEngine CacheConfig");
    char l[512];
    snprintf(l, sizeof l, "block_size=\"%d\",cache_dtype=\"auto\",enable_prefix_caching=\"%s\",engine=\"0\","
             "num_gpu_blocks=\"%d\"", e->block_size, e->enable_prefix_caching ? "True" : "False", e->num_blocks);
    fl_prom_sample(o, "vllm:cache_config_info", l, 1);
    pthread_mutex_unlock(&m->lock);
    fl_strbuf_free(&lb);
}

/* ---- the log lines ---- */

double fl_metrics_log_tick(fl_metrics *m, double now, FILE *f)
{
    if (m->log_interval <= 0)
        return 0;
    pthread_mutex_lock(&m->lock);
    const fl_engine_stats *e = &m->engine;
    const int64_t prompt = e->prompt_tokens - m->log_prompt_mark;
    const int64_t generation = e->generation_tokens - m->log_generation_mark;
    double due = 0;
    if (prompt == 0 && generation == 0 && m->last_prompt_tps == 0 && m->last_generation_tps == 0) {
        m->log_since = now; /* idle: the next interval starts when work does */
    } else if (now - m->log_since >= m->log_interval) {
        const double dt = now - m->log_since;
        const double ptps = prompt / dt, gtps = generation / dt;
        const double used = e->num_blocks ? (double)(e->num_blocks - e->num_free_blocks) / e->num_blocks : 0;
        const double hit = e->prefix_queries ? (double)e->prefix_hits / e->prefix_queries : 0;
        fprintf(f, "INFO flashlm: Engine 000: Avg prompt throughput: %.1f tokens/s, Avg generation throughput: "
                "%.1f tokens/s, Running: %d reqs, Waiting: %d reqs, GPU KV cache usage: %.1f%%, "
                "Prefix cache hit rate: %.1f%%\n", ptps, gtps, e->num_running, e->num_waiting, used * 100,
                hit * 100);
        fflush(f);
        m->last_prompt_tps = ptps;
        m->last_generation_tps = gtps;
        m->log_prompt_mark = e->prompt_tokens;
        m->log_generation_mark = e->generation_tokens;
        m->log_since = now;
        if (ptps != 0 || gtps != 0)
            due = now + m->log_interval; /* one more line, of zeros if work stops */
    } else {
        due = m->log_since + m->log_interval;
    }
    pthread_mutex_unlock(&m->lock);
    return due;
}

void fl_metrics_log_received(FILE *f, const char *id, int prompt_index, const int32_t *ids, int len,
                             const fl_sampling_params *sp)
{
    fl_strbuf b = { 0 };
    fl_strbuf_appendf(&b, "INFO flashlm: Received request %s", id);
    if (prompt_index > 0)
        fl_strbuf_appendf(&b, "-%d", prompt_index);
    fl_strbuf_append_str(&b, ": prompt_token_ids: [");
    for (int i = 0; i < len; i++)
        fl_strbuf_appendf(&b, i ? ", %d" : "%d", ids[i]);
    const fl_draw_params *d = &sp->draw;
    fl_strbuf_appendf(&b, "], params: SamplingParams(n=%d, presence_penalty=%g, frequency_penalty=%g, "
                      "repetition_penalty=%g, temperature=%g, top_p=%g, top_k=%d, min_p=%g, seed=",
                      sp->n, sp->presence_penalty, sp->frequency_penalty, sp->repetition_penalty,
                      d->temperature, d->top_p, d->top_k, d->min_p);
    if (sp->has_seed)
        fl_strbuf_appendf(&b, "%llu", (unsigned long long)sp->seed);
    else
        fl_strbuf_append_str(&b, "None");
    fl_strbuf_appendf(&b, ", stop=[");
    for (int i = 0; i < sp->num_stop; i++)
        fl_strbuf_appendf(&b, i ? ", '%s'" : "'%s'", sp->stop[i]);
    fl_strbuf_appendf(&b, "], ignore_eos=%s, max_tokens=%d, min_tokens=%d, logprobs=", sp->ignore_eos ? "True" : "False",
                      sp->max_tokens, sp->min_tokens);
    if (sp->logprobs >= 0)
        fl_strbuf_appendf(&b, "%d", sp->logprobs);
    else
        fl_strbuf_append_str(&b, "None");
    fl_strbuf_append_str(&b, ").\n");
    fputs(b.data, f);
    fflush(f);
    fl_strbuf_free(&b);
}

void fl_metrics_log_finished(FILE *f, const char *id, int aborted)
{
    fprintf(f, "INFO flashlm: %s request %s.\n", aborted ? "Aborted" : "Finished", id);
    fflush(f);
}
