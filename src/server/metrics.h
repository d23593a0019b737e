/* metrics.h - what the server measures and how it reports it: GET /metrics
 * in the Prometheus text format under vLLM's names, types, labels and
 * buckets (vllm/v1/metrics/loggers.py's PrometheusStatLogger, so vLLM's
 * Grafana dashboards read flashlm as they read vLLM), vLLM's periodic
 * stat log line (LoggingStatLogger) and its per-request log lines
 * (--enable-log-requests).
 *
 * Every family has the labels model_name (the served name) and engine
 * ("0"); vllm:request_success_total has finished_reason too. Families:
 *   gauges:   vllm:num_requests_running, vllm:num_requests_waiting,
 *             vllm:kv_cache_usage_perc, vllm:gpu_cache_usage_perc (its
 *             older name, which dashboards still read), vllm:cache_config_info
 *   counters: vllm:prompt_tokens_total, vllm:generation_tokens_total,
 *             vllm:request_success_total{finished_reason}, vllm:num_preemptions_total,
 *             vllm:prefix_cache_queries_total, vllm:prefix_cache_hits_total
 *             (in tokens), vllm:gpu_prefix_cache_queries_total/_hits_total (older)
 *   histograms (seconds): time_to_first_token, inter_token_latency (per
 *             token) and time_per_output_token (its older name, the same
 *             observations), request_time_per_output_token (per request),
 *             e2e_request_latency, request_queue_time, request_inference_time,
 *             request_prefill_time, request_decode_time
 *   histograms (counts): request_prompt_tokens, request_generation_tokens,
 *             request_params_max_tokens, request_params_n, iteration_tokens_total
 * A request here is one sequence (a choice: vLLM runs n > 1 as n child
 * requests); request_params_n is observed once per n.
 *
 * Threads: the engine thread reports outputs and stats; the HTTP loop
 * renders; one mutex. */
#ifndef FL_METRICS_H
#define FL_METRICS_H

#include <pthread.h>
#include <stdint.h>
#include <stdio.h>

#include "base/strbuf.h"
#include "engine/engine.h"
#include "server/prom.h"

enum { FL_FINISH_STOP, FL_FINISH_LENGTH, FL_FINISH_ABORT, FL_FINISH_ERROR, FL_NUM_FINISH };

typedef struct fl_metrics {
    pthread_mutex_t lock;
    fl_engine_stats engine;      /* the engine's counters after its latest step */
    int max_model_len;           /* sizes the token-count buckets (0: not configured) */
    uint64_t success[FL_NUM_FINISH];
    fl_histogram ttft, itl, request_tpot, e2e, queue, inference, prefill, decode;
    fl_histogram prompt_tokens, generation_tokens, max_tokens, n, iteration_tokens;
    int64_t iteration_mark;      /* prompt + generation tokens at the latest step observed */
    int64_t steps_seen;
    int64_t generation_seen;     /* generation tokens at the latest step observed */
    /* the periodic log line: interval 0 is off */
    double log_interval;
    double log_since;            /* the start of the current interval */
    int64_t log_prompt_mark, log_generation_mark; /* the counters at its start */
    double last_prompt_tps, last_generation_tps;  /* the previous line's */
} fl_metrics;

/* Empty metrics; log_interval seconds between stat log lines (0: none). */
void fl_metrics_init(fl_metrics *m, double log_interval);
void fl_metrics_free(fl_metrics *m);

/* Once the model is loaded: the token-count histograms' buckets are
 * vLLM's 1-2-5 series up to max_model_len. Until then they have +Inf only. */
void fl_metrics_configure(fl_metrics *m, int max_model_len);

/* Engine thread, after each step: the gauges and counters, and the step's
 * tokens (prompt tokens admitted plus tokens generated since the previous
 * step) into iteration_tokens_total; a step that only handled the last
 * one's tokens (async scheduling) is one too. */
void fl_metrics_set_engine(fl_metrics *m, const fl_engine_stats *st);

/* Engine thread, for every output the engine reports (now: fl_now_seconds()):
 * a token's time to first token or inter-token latency; a finish's reason
 * and its request's latencies and sizes. */
void fl_metrics_on_output(fl_metrics *m, const fl_seq_output *out, double now);

/* Appends the Prometheus text for model_name. */
void fl_metrics_render(fl_metrics *m, const char *model_name, fl_strbuf *out);

/* Engine thread: writes vLLM's stat line to f ("INFO flashlm: Engine 000:
 * Avg prompt throughput: 12.3 tokens/s, ...", the throughputs over the
 * interval, the prefix cache hit rate over all queries so far) when an
 * interval has passed and it, or the line before, saw tokens (an idle
 * server stays quiet, as vLLM's demotes those lines to DEBUG). Returns
 * when the next line is due (fl_now_seconds() time) if one will be
 * whether or not more work comes (the interval saw tokens), else 0: the
 * engine thread may sleep until then, or until work comes. */
double fl_metrics_log_tick(fl_metrics *m, double now, FILE *f);

/* The per-request lines of --enable-log-requests, vLLM's wording:
 * "Received request ID: prompt_token_ids: [...], params: SamplingParams(...)."
 * once per prompt and "Finished request ID." / "Aborted request ID." */
void fl_metrics_log_received(FILE *f, const char *id, int prompt_index, const int32_t *ids, int len,
                             const fl_sampling_params *sp);
void fl_metrics_log_finished(FILE *f, const char *id, int aborted);

#endif
