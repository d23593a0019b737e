/* bench_serve.c - `flashlm bench serve`: vLLM's serving benchmark
 * (vllm/benchmarks/serve.py, lib/endpoint_request_func.py) in C.
 *
 * Builds the prompts of one of vLLM's datasets (serve_datasets, counting
 * tokens through the server's /tokenize), checks the server is ready with
 * the first one, sends warm-ups, then every prompt as a streamed
 * completion or chat completion with vLLM's body (all at t = 0, or with
 * gamma-distributed gaps; optionally at most N in flight) over libcurl's
 * multi interface, times every SSE event, prints vLLM's result block and
 * saves vLLM's JSON. A request with a non-200 status or no token event is
 * a failure: counted, its error kept, left out of every latency figure,
 * and the run exits 1.
 *
 * Where it differs from vLLM (serve_datasets.h says it for the datasets):
 * the gamma gaps are base/rng's, not numpy's; the status lines vLLM prints
 * before the block (ready check, warm-ups, traffic) go to stderr, so
 * stdout is the block alone; "Failed requests:" is printed only when
 * there are failures, as the seed's blocks have no such line. */
#include <curl/curl.h>
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "base/alloc.h"
#include "base/clock.h"
#include "base/rng.h"
#include "base/strbuf.h"
#include "bench/bench.h"
#include "bench/bench_print.h"
#include "bench/serve_datasets.h"
#include "bench/serve_stats.h"
#include "cli/cli.h"
#include "tokenizer/tokenizer.h"

enum { GOOD_TTFT = 1, GOOD_TPOT = 2, GOOD_E2EL = 4 };

typedef struct bench_opts {
    char base_url[512];
    fl_serve_dataset_opts d;                            /* which prompts */
    const char *host, *endpoint, *model, *served_name, *tokenizer_dir;
    const char *backend, *label, *request_id_prefix, *result_dir;
    const char *percentile_metrics, *metric_percentiles, *result_filename;
    int port, max_concurrency, save_result, save_detailed;
    int ignore_eos, num_warmups, ready_timeout, disable_tqdm;
    float request_rate, burstiness;
    double goodput[3];                                  /* ttft, tpot, e2el in ms */
    int goodput_set;                                    /* GOOD_* bits */
    json_t *extra_body;                                 /* sampling flags, then --extra-body over them */
    json_t *metadata;                                   /* --metadata KEY=VALUE pairs */
    json_t *headers;                                    /* --header KEY=VALUE pairs */
} bench_opts;

typedef fl_serve_prompt prompt;

typedef struct request {
    fl_request_timing t;
    fl_strbuf sse;             /* bytes of an unfinished SSE event */
    fl_strbuf body;            /* the whole response, for error messages */
    fl_strbuf generated;
    double last;               /* time of the last token event */
    int num_itl_cap;
    int chat;                  /* delta.content events, not text */
    char *error;
    char *payload;
    struct curl_slist *headers;
} request;

static double bench_t0;

/* ---- HTTP helpers ---- */

static size_t append_body(char *p, size_t size, size_t n, void *ud)
{
    fl_strbuf_append(ud, p, size * n);
    return size * n;
}

/* POSTs body (taking ownership of it) and parses the reply; NULL on any
 * failure. */
static json_t *post_json(const bench_opts *o, const char *path, json_t *body)
{
    CURL *c = curl_easy_init();
    char url[1024];
    snprintf(url, sizeof url, "%s%s", o->base_url, path);
    char *data = json_dumps(body, JSON_COMPACT);
    fl_strbuf out = { 0 };
    struct curl_slist *h = curl_slist_append(NULL, "Content-Type: application/json");
    const char *key = getenv("OPENAI_API_KEY");
    char auth[512];
    if (key) {
        snprintf(auth, sizeof auth, "Authorization: Bearer %s", key);
        h = curl_slist_append(h, auth);
    }
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, data);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, append_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &out);
    long status = 0;
    json_t *reply = NULL;
    if (curl_easy_perform(c) == CURLE_OK && curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status) == CURLE_OK &&
        status == 200) {
        json_error_t jerr;
        reply = json_loadb(out.data ? out.data : "", out.len, 0, &jerr);
    }
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
    free(data);
    json_decref(body);
    fl_strbuf_free(&out);
    return reply;
}

/* The prompt's length as the server counts it (its /tokenize), or as the
 * local tokenizer does when the server has none: the datasets' counter
 * (ud is the bench_opts). */
static int count_tokens(void *ud, const fl_tokenizer *tok, fl_tok_scratch *s, const char *text, fl_ids *ids)
{
    const bench_opts *o = ud;
    json_t *reply = post_json(o, "/tokenize", json_pack("{s:s,s:s}", "model", o->model, "prompt", text));
    ids->len = 0;
    if (reply && json_is_array(json_object_get(reply, "tokens"))) {
        size_t i;
        json_t *t;
        json_array_foreach(json_object_get(reply, "tokens"), i, t) {
            fl_ids_push(ids, (int32_t)json_integer_value(t));
        }
    } else {
        fl_tokenizer_encode(tok, s, text, strlen(text), 1, ids);
    }
    json_decref(reply);
    return (int)ids->len;
}

/* ---- streaming ---- */

/* One SSE data line. As vLLM's request functions: any event with non-empty
 * choices is a token event (the first gives TTFT, later ones an ITL each);
 * the text is choices[0].text (completions) or choices[0].delta.content
 * (chat); the usage event gives the output length. For chat, vLLM's
 * latency runs to the last event of any kind, usage included. */
static void on_event(request *r, const char *data, size_t len)
{
    if (len == 6 && memcmp(data, "[DONE]", 6) == 0)
        return;
    json_error_t jerr;
    json_t *j = json_loadb(data, len, 0, &jerr);
    json_t *choices = json_object_get(j, "choices");
    const double t = fl_now_seconds() - bench_t0;
    if (json_is_array(choices) && json_array_size(choices) > 0) {
        if (r->t.ttft == 0 && r->last == 0) {
            r->t.ttft = t - r->t.start;
        } else {
            if (r->t.num_itl == r->num_itl_cap) {
                r->num_itl_cap = r->num_itl_cap ? 2 * r->num_itl_cap : 64;
                r->t.itl = fl_realloc(r->t.itl, (size_t)r->num_itl_cap * sizeof(double));
            }
            r->t.itl[r->t.num_itl++] = t - r->last;
        }
        r->last = t;
        json_t *c0 = json_array_get(choices, 0);
        json_t *text = r->chat ? json_object_get(json_object_get(c0, "delta"), "content") : json_object_get(c0, "text");
        if (json_is_string(text))
            fl_strbuf_append(&r->generated, json_string_value(text), json_string_length(text));
    } else if (j && r->chat && r->last != 0) {
        r->last = t;
    }
    json_t *usage = json_object_get(j, "usage");
    if (json_is_object(usage))
        r->t.output_len = (int)json_integer_value(json_object_get(usage, "completion_tokens"));
    json_decref(j);
}

static size_t on_data(char *p, size_t size, size_t n, void *ud)
{
    request *r = ud;
    const size_t len = size * n;
    if (r->body.len < 4096)
        fl_strbuf_append(&r->body, p, len);
    fl_strbuf_append(&r->sse, p, len);
    char *start = r->sse.data, *end;
    while ((end = strstr(start, "\n\n")) != NULL) {
        for (char *line = start; line < end;) {
            char *nl = memchr(line, '\n', (size_t)(end - line));
            char *line_end = nl ? nl : end;
            if (line_end - line > 6 && strncmp(line, "data: ", 6) == 0)
                on_event(r, line + 6, (size_t)(line_end - line - 6));
            line = line_end + 1;
        }
        start = end + 2;
    }
    size_t rest = r->sse.len - (size_t)(start - r->sse.data);
    memmove(r->sse.data, start, rest);
    r->sse.len = rest;
    r->sse.data[rest] = '\0';
    return len;
}

/* The request body as vLLM's openai (completions) or openai-chat request
 * function builds it, then ignore_eos when asked, then the sampling flags
 * (temperature 0 unless given) and --extra-body over them. */
static json_t *request_body(const bench_opts *o, const prompt *p)
{
    const char *model = o->served_name ? o->served_name : o->model;
    json_t *body;
    if (o->d.chat)
        body = json_pack("{s:s,s:[{s:s,s:[{s:s,s:s}]}],s:f,s:i,s:b,s:{s:b}}", "model", model, "messages", "role",
                         "user", "content", "type", "text", "text", p->text, "temperature", 0.0,
                         "max_completion_tokens", p->max_tokens, "stream", 1, "stream_options", "include_usage", 1);
    else
        body = json_pack("{s:s,s:s,s:f,s:f,s:i,s:n,s:b,s:{s:b}}", "model", model, "prompt", p->text, "temperature",
                         0.0, "repetition_penalty", 1.0, "max_tokens", p->max_tokens, "logprobs", "stream", 1,
                         "stream_options", "include_usage", 1);
    if (o->ignore_eos)
        json_object_set_new(body, "ignore_eos", json_true());
    json_object_update(body, o->extra_body);
    return body;
}

/* id: the x-request-id header's value, or NULL for none (the ready check
 * and the warm-ups, as vLLM). */
static CURL *make_handle(const bench_opts *o, request *r, const prompt *p, const char *auth, const char *id)
{
    CURL *c = curl_easy_init();
    json_t *body = request_body(o, p);
    r->payload = json_dumps(body, JSON_COMPACT);
    r->chat = o->d.chat;
    json_decref(body);
    r->headers = curl_slist_append(NULL, "Content-Type: application/json");
    if (auth)
        r->headers = curl_slist_append(r->headers, auth);
    const char *k;
    json_t *v;
    json_object_foreach(o->headers, k, v) {
        char h[1024];
        snprintf(h, sizeof h, "%s: %s", k, json_string_value(v));
        r->headers = curl_slist_append(r->headers, h);
    }
    if (id) {
        char h[700];
        snprintf(h, sizeof h, "x-request-id: %s", id);
        r->headers = curl_slist_append(r->headers, h);
    }
    char url[1024];
    snprintf(url, sizeof url, "%s%s", o->base_url, o->endpoint);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, r->headers);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, r->payload);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, r);
    curl_easy_setopt(c, CURLOPT_PRIVATE, r);
    return c;
}

static void request_free(request *r)
{
    free(r->t.itl);
    free(r->error);
    free(r->payload);
    curl_slist_free_all(r->headers);
    fl_strbuf_free(&r->sse);
    fl_strbuf_free(&r->body);
    fl_strbuf_free(&r->generated);
    memset(r, 0, sizeof *r);
}

/* Runs every request (p[i] as reqs[i]; with ids, prefix + i as its
 * x-request-id); returns the benchmark duration. */
static double run_requests(const bench_opts *o, prompt *p, int n, request *reqs, int with_ids, double rate)
{
    char auth[512];
    const char *key = getenv("OPENAI_API_KEY");
    if (key)
        snprintf(auth, sizeof auth, "Authorization: Bearer %s", key);
    /* send times: all at 0 for rate inf, else gamma gaps with mean 1/rate,
     * rescaled (as vLLM) so the last is sent at n / rate */
    double *send_at = fl_calloc((size_t)n, sizeof(double));
    if (isfinite(rate)) {
        const uint64_t key2 = fl_rng_key((uint64_t)o->d.seed, 99);
        double t = 0;
        for (int i = 0; i < n; i++) {
            /* gamma(k = burstiness, theta = 1 / (rate k)) as a sum/scale of exponentials
             * (exact for integer k; Marsaglia-Tsang would cover the rest) */
            const double k = o->burstiness, theta = 1.0 / (rate * k);
            double g = 0;
            int whole = (int)k;
            for (int j = 0; j < whole; j++)
                g -= log(1.0 - fl_rng_uniform(key2, (uint64_t)(i * 64 + j)));
            double frac = k - whole;
            if (frac > 0)
                g -= frac * log(1.0 - fl_rng_uniform(key2, (uint64_t)(i * 64 + 63)));
            t += g * theta;
            send_at[i] = t;
        }
        if (send_at[n - 1] > 0)
            for (int i = 0; i < n; i++)
                send_at[i] *= (n / rate) / send_at[n - 1];
    }
    CURLM *m = curl_multi_init();
    int next = 0, running = 0, done = 0;
    bench_t0 = fl_now_seconds();
    while (done < n) {
        const double t = fl_now_seconds() - bench_t0;
        while (next < n && send_at[next] <= t && (o->max_concurrency <= 0 || running < o->max_concurrency)) {
            char id[600];
            snprintf(id, sizeof id, "%s%d", o->request_id_prefix, next);
            reqs[next].t.start = fl_now_seconds() - bench_t0;
            reqs[next].t.prompt_len = p[next].len;
            curl_multi_add_handle(m, make_handle(o, &reqs[next], &p[next], key ? auth : NULL, with_ids ? id : NULL));
            next++;
            running++;
        }
        int still;
        curl_multi_perform(m, &still);
        CURLMsg *msg;
        int left;
        while ((msg = curl_multi_info_read(m, &left)) != NULL) {
            if (msg->msg != CURLMSG_DONE)
                continue;
            request *r;
            long status = 0;
            curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&r);
            curl_easy_getinfo(msg->easy_handle, CURLINFO_RESPONSE_CODE, &status);
            r->t.latency = r->last - r->t.start;
            if (msg->data.result != CURLE_OK)
                r->error = fl_strdup(curl_easy_strerror(msg->data.result));
            else if (status != 200) {
                char e[600];
                snprintf(e, sizeof e, "HTTP %ld: %.500s", status, r->body.data ? r->body.data : "");
                r->error = fl_strdup(e);
            } else if (r->last == 0)
                r->error = fl_strdup("no token event in the response");
            r->t.success = r->error == NULL;
            curl_multi_remove_handle(m, msg->easy_handle);
            curl_easy_cleanup(msg->easy_handle);
            running--;
            if (!o->disable_tqdm)
                fl_bench_progress(++done, n);
            else
                ++done;
        }
        double wait_ms = 50;
        if (next < n && (o->max_concurrency <= 0 || running < o->max_concurrency))
            wait_ms = fmin(wait_ms, fmax(0, (send_at[next] - (fl_now_seconds() - bench_t0)) * 1000));
        curl_multi_poll(m, NULL, 0, (int)wait_ms, NULL);
    }
    curl_multi_cleanup(m);
    free(send_at);
    return fl_now_seconds() - bench_t0;
}

/* vLLM's ready check: the first prompt as a request, again every 5 s (or
 * what is left of the timeout) until it succeeds or --ready-check-timeout-sec
 * has passed. 0 when it succeeded; else -1 with the last error in err. */
static int ready_check(const bench_opts *o, prompt *first, fl_error *err)
{
    const double t0 = fl_now_seconds();
    bench_opts quiet = *o;
    quiet.disable_tqdm = 1;
    for (;;) {
        request r = { 0 };
        run_requests(&quiet, first, 1, &r, 0, INFINITY);
        const int ok = r.t.success;
        if (!ok)
            fl_fail(err, "%s", r.error ? r.error : "no reply");
        request_free(&r);
        if (ok)
            return 0;
        const double left = o->ready_timeout - (fl_now_seconds() - t0);
        if (left <= 0)
            return -1;
        const double nap = fmin(5.0, left);
        struct timespec ts = { (time_t)nap, (long)((nap - floor(nap)) * 1e9) };
        nanosleep(&ts, NULL);
    }
}

/* ---- results ---- */

typedef struct metric_def {
    const char *key, *title, *name;
} metric_def;

static const metric_def metric_defs[] = {
    { "ttft", "Time to First Token", "TTFT" },
    { "tpot", "Time per Output Token (excl. 1st token)", "TPOT" },
    { "itl", "Inter-token Latency", "ITL" },
    { "e2el", "End-to-end Latency", "E2EL" },
};

static int parse_list(const char *text, double *out, int max)
{
    int n = 0;
    for (const char *p = text; *p;) {
        char *end;
        double v = strtod(p, &end);
        if (end == p || n == max || !(v >= 0 && v <= 100))
            return -1;
        out[n++] = v;
        p = *end == ',' ? end + 1 : end;
        if (*end && *end != ',')
            return -1;
    }
    return n;
}

/* 1 if name is one of the comma-separated words of list. */
static int in_list(const char *list, const char *name)
{
    const size_t len = strlen(name);
    for (const char *p = list; *p;) {
        const char *end = strchr(p, ',');
        const size_t n = end ? (size_t)(end - p) : strlen(p);
        if (n == len && strncmp(p, name, len) == 0)
            return 1;
        p += n + (end != NULL);
    }
    return 0;
}

/* The number of requests that meet every --goodput objective (as vLLM: a
 * request of one output token has TPOT 0 here). Pure. */
static int good_requests(const bench_opts *o, const fl_request_timing *t, int n)
{
    int good = 0;
    for (int i = 0; i < n; i++) {
        if (!t[i].success)
            continue;
        const double tpot = t[i].output_len > 1 ? fl_tpot(&t[i]) : 0;
        if (((o->goodput_set & GOOD_TTFT) && t[i].ttft * 1000 > o->goodput[0]) ||
            ((o->goodput_set & GOOD_TPOT) && tpot * 1000 > o->goodput[1]) ||
            ((o->goodput_set & GOOD_E2EL) && t[i].latency * 1000 > o->goodput[2]))
            continue;
        good++;
    }
    return good;
}

/* Prints vLLM's result block and returns its result dict, keys in vLLM's
 * order; the per-request arrays only with --save-detailed. */
static json_t *report(const bench_opts *o, request *reqs, int n, double duration, const double *pcts,
                      int num_pcts)
{
    fl_request_timing *t = fl_malloc((size_t)n * sizeof *t);
    int ok = 0;
    long long in_tokens = 0, out_tokens = 0;
    size_t num_itl = 0;
    for (int i = 0; i < n; i++) {
        t[i] = reqs[i].t;
        if (!t[i].success)
            continue;
        ok++;
        in_tokens += t[i].prompt_len;
        out_tokens += t[i].output_len;
        num_itl += (size_t)t[i].num_itl;
    }
    double *vals[4];
    size_t counts[4] = { 0 };
    for (int k = 0; k < 4; k++)
        vals[k] = fl_malloc((num_itl + (size_t)n + 1) * sizeof(double));
    for (int i = 0; i < n; i++) {
        if (!t[i].success)
            continue;
        vals[0][counts[0]++] = t[i].ttft * 1000;
        if (t[i].output_len > 1)
            vals[1][counts[1]++] = fl_tpot(&t[i]) * 1000;
        for (int k = 0; k < t[i].num_itl; k++)
            vals[2][counts[2]++] = t[i].itl[k] * 1000;
        vals[3][counts[3]++] = t[i].latency * 1000;
    }
    const double goodput = good_requests(o, t, n) / duration;
    json_t *result = json_object();
    fl_bench_header(" Serving Benchmark Result ", '=');
    fl_bench_line_i("Successful requests:", ok);
    if (ok < n)
        fl_bench_line_i("Failed requests:", n - ok);
    if (o->max_concurrency > 0)
        fl_bench_line_i("Maximum request concurrency:", o->max_concurrency);
    fl_bench_line_f("Benchmark duration (s):", duration);
    fl_bench_line_i("Total input tokens:", in_tokens);
    fl_bench_line_i("Total generated tokens:", out_tokens);
    fl_bench_line_f("Request throughput (req/s):", ok / duration);
    if (o->goodput_set)
        fl_bench_line_f("Request goodput (req/s):", goodput);
    fl_bench_line_f("Output token throughput (tok/s):", out_tokens / duration);
    const double peak_tps = fl_peak_output_throughput(t, (size_t)n), peak_conc = fl_peak_concurrency(t, (size_t)n);
    fl_bench_line_f("Peak output token throughput (tok/s):", peak_tps);
    fl_bench_line_f("Peak concurrent requests:", peak_conc);
    fl_bench_line_f("Total Token throughput (tok/s):", (in_tokens + out_tokens) / duration);
    json_object_set_new(result, "duration", json_real(duration));
    json_object_set_new(result, "completed", json_integer(ok));
    json_object_set_new(result, "failed", json_integer(n - ok));
    json_object_set_new(result, "total_input_tokens", json_integer(in_tokens));
    json_object_set_new(result, "total_output_tokens", json_integer(out_tokens));
    json_object_set_new(result, "request_throughput", json_real(ok / duration));
    json_object_set_new(result, "request_goodput", o->goodput_set ? json_real(goodput) : json_null());
    json_object_set_new(result, "output_throughput", json_real(out_tokens / duration));
    json_object_set_new(result, "total_token_throughput", json_real((in_tokens + out_tokens) / duration));
    if (o->save_detailed) {
        json_t *in_lens = json_array(), *out_lens = json_array(), *ttfts = json_array(), *itls = json_array(),
               *texts = json_array(), *errors = json_array();
        for (int i = 0; i < n; i++) {
            json_array_append_new(in_lens, json_integer(reqs[i].t.prompt_len));
            json_array_append_new(out_lens, json_integer(reqs[i].t.success ? reqs[i].t.output_len : 0));
            json_array_append_new(ttfts, json_real(reqs[i].t.ttft));
            json_t *itl = json_array();
            for (int k = 0; k < reqs[i].t.num_itl; k++)
                json_array_append_new(itl, json_real(reqs[i].t.itl[k]));
            json_array_append_new(itls, itl);
            json_array_append_new(texts, json_stringn(reqs[i].generated.data ? reqs[i].generated.data : "",
                                                      reqs[i].generated.len));
            json_array_append_new(errors, json_string(reqs[i].error ? reqs[i].error : ""));
        }
        json_object_set_new(result, "input_lens", in_lens);
        json_object_set_new(result, "output_lens", out_lens);
        json_object_set_new(result, "ttfts", ttfts);
        json_object_set_new(result, "itls", itls);
        json_object_set_new(result, "generated_texts", texts);
        json_object_set_new(result, "errors", errors);
    }
    json_object_set_new(result, "max_output_tokens_per_s", json_real(peak_tps));
    json_object_set_new(result, "max_concurrent_requests", json_integer((json_int_t)peak_conc));
    for (int k = 0; k < 4; k++) {
        const metric_def *d = &metric_defs[k];
        if (!in_list(o->percentile_metrics, d->key))
            continue;
        fl_summary s;
        fl_summarize(vals[k], counts[k], pcts, num_pcts, &s);
        char key[64], label[80];
        fl_bench_header(d->title, '-');
        snprintf(label, sizeof label, "Mean %s (ms):", d->name);
        fl_bench_line_f(label, s.mean);
        snprintf(label, sizeof label, "Median %s (ms):", d->name);
        fl_bench_line_f(label, s.median);
        snprintf(key, sizeof key, "mean_%s_ms", d->key);
        json_object_set_new(result, key, json_real(s.mean));
        snprintf(key, sizeof key, "median_%s_ms", d->key);
        json_object_set_new(result, key, json_real(s.median));
        snprintf(key, sizeof key, "std_%s_ms", d->key);
        json_object_set_new(result, key, json_real(s.std));
        for (int i = 0; i < num_pcts; i++) {
            snprintf(label, sizeof label, "P%g %s (ms):", pcts[i], d->name);
            fl_bench_line_f(label, s.percentiles[i]);
            snprintf(key, sizeof key, "p%g_%s_ms", pcts[i], d->key);
            json_object_set_new(result, key, json_real(s.percentiles[i]));
        }
    }
    fl_bench_header("", '=');
    for (int k = 0; k < 4; k++)
        free(vals[k]);
    free(t);
    return result;
}

/* Python's str() of a float as vLLM puts it in file names: 10.0, 2.5, inf. */
static void py_float(double v, char *buf, size_t size)
{
    if (!isfinite(v))
        snprintf(buf, size, "inf");
    else if (v == floor(v) && fabs(v) < 1e16)
        snprintf(buf, size, "%.1f", v);
    else
        for (int digits = 15; digits <= 17; digits++) { /* the shortest that reads back, as repr */
            snprintf(buf, size, "%.*g", digits, v);
            if (strtod(buf, NULL) == v)
                break;
        }
}

/* vLLM's result JSON: the run's setup, --metadata, the traffic, then the
 * benchmark's result. Written to --result-dir/--result-filename, or to
 * vLLM's {label}-{rate}qps[-concurrency{N}]-{model}-{date}.json. 0, or -1
 * with err. */
static int save_result(const bench_opts *o, const char *tokenizer_id, json_t *bench_result, fl_error *err)
{
    char date[32], rate[64];
    time_t now_t = time(NULL);
    strftime(date, sizeof date, "%Y%m%d-%H%M%S", localtime(&now_t));
    json_t *r = json_object();
    json_object_set_new(r, "date", json_string(date));
    json_object_set_new(r, "endpoint_type", json_string(o->backend));
    json_object_set_new(r, "backend", json_string(o->backend));
    json_object_set_new(r, "label", o->label ? json_string(o->label) : json_null());
    json_object_set_new(r, "model_id", json_string(o->model));
    json_object_set_new(r, "tokenizer_id", json_string(tokenizer_id));
    json_object_set_new(r, "num_prompts", json_integer(o->d.num_prompts));
    json_object_update(r, o->metadata);
    json_object_set_new(r, "request_rate", isfinite(o->request_rate) ? json_real(o->request_rate) : json_string("inf"));
    json_object_set_new(r, "burstiness", json_real(o->burstiness));
    json_object_set_new(r, "max_concurrency", o->max_concurrency > 0 ? json_integer(o->max_concurrency) : json_null());
    json_object_update(r, bench_result);
    char name[1024], file[2048], conc[48] = "";
    if (o->result_filename) {
        snprintf(name, sizeof name, "%s", o->result_filename);
    } else {
        const char *base = strrchr(o->model, '/') ? strrchr(o->model, '/') + 1 : o->model;
        py_float(o->request_rate, rate, sizeof rate);
        if (o->max_concurrency > 0)
            snprintf(conc, sizeof conc, "-concurrency%d", o->max_concurrency);
        snprintf(name, sizeof name, "%s-%sqps%s-%s-%s.json", o->label ? o->label : o->backend, rate, conc, base, date);
    }
    int rc = 0;
    if (o->result_dir) {
        if (mkdir(o->result_dir, 0777) != 0 && errno != EEXIST)
            rc = fl_fail(err, "--result-dir: cannot create '%s': %s", o->result_dir, strerror(errno));
        snprintf(file, sizeof file, "%s/%s", o->result_dir, name);
    } else {
        snprintf(file, sizeof file, "%s", name);
    }
    if (rc == 0 && json_dump_file(r, file, JSON_PRESERVE_ORDER) != 0)
        rc = fl_fail(err, "cannot write the result to '%s'", file);
    json_decref(r);
    return rc;
}

/* ---- the command ---- */

enum {
    OPT_BASE_URL = 1, OPT_HOST, OPT_PORT, OPT_ENDPOINT, OPT_MODEL, OPT_TOKENIZER, OPT_DATASET,
    OPT_DATASET_PATH, OPT_IN, OPT_OUT, OPT_RATIO, OPT_PREFIX, OPT_NUM, OPT_SEED, OPT_RATE,
    OPT_BURST, OPT_CONC, OPT_PMETRICS, OPT_PCTS, OPT_SAVE, OPT_FILE, OPT_BACKEND, OPT_LABEL,
    OPT_SERVED, OPT_IGNORE_EOS, OPT_TEMP, OPT_TOP_P, OPT_TOP_K, OPT_MIN_P, OPT_FREQ, OPT_PRES, OPT_REP,
    OPT_EXTRA, OPT_GOODPUT, OPT_WARMUPS, OPT_RID, OPT_READY, OPT_NO_TQDM, OPT_DETAILED, OPT_DIR,
    OPT_METADATA, OPT_HEADER, OPT_SHAREGPT_OUT, OPT_SONNET_IN, OPT_SONNET_OUT, OPT_SONNET_PREFIX,
    OPT_REP_PREFIX, OPT_REP_SUFFIX, OPT_REP_NUM, OPT_REP_OUT, OPT_NO_OVERSAMPLE, OPT_NO_SHUFFLE,
};

static const char usage[] =
    "usage: flashlm bench serve --model NAME [--backend openai|vllm|openai-chat] [--base-url URL | --host H --port P]\n"
    "  [--endpoint PATH (/v1/completions; /v1/chat/completions for openai-chat)] [--served-model-name NAME]\n"
    "  [--tokenizer DIR] [--dataset-name random|sharegpt|sonnet|prefix_repetition|custom] [--dataset-path FILE]\n"
    "  [--num-prompts N] [--seed N] [--no-oversample] [--disable-shuffle]\n"
    "  random: [--random-input-len 1024] [--random-output-len 128] [--random-range-ratio 0] [--random-prefix-len 0]\n"
    "  sharegpt: [--sharegpt-output-len N]\n"
    "  sonnet: [--sonnet-input-len 550] [--sonnet-output-len 150] [--sonnet-prefix-len 200]\n"
    "  prefix_repetition: [--prefix-repetition-prefix-len 256] [--prefix-repetition-suffix-len 256]\n"
    "    [--prefix-repetition-num-prefixes 10] [--prefix-repetition-output-len 128]\n"
    "  custom: one {\"prompt\": ..., \"output_tokens\": N} a line; N defaults to --random-output-len\n"
    "  [--request-rate R|inf] [--burstiness B] [--max-concurrency N] [--num-warmups N]\n"
    "  [--ready-check-timeout-sec 600 (0 skips it)] [--request-id-prefix P] [--header KEY=VALUE ...]\n"
    "  [--temperature T (0 unless given)] [--top-p P] [--top-k K] [--min-p P] [--frequency-penalty F]\n"
    "  [--presence-penalty P] [--repetition-penalty R] [--ignore-eos (always on for random)] [--extra-body JSON]\n"
    "  [--goodput KEY:MS ... (ttft, tpot, e2el)] [--percentile-metrics ttft,tpot,itl] [--metric-percentiles 99]\n"
    "  [--disable-tqdm] [--save-result] [--save-detailed] [--result-dir DIR] [--result-filename F]\n"
    "  [--label L] [--metadata KEY=VALUE ...]   (API key from OPENAI_API_KEY)";

/* Sets a sampling parameter of the request body from a float flag. */
static int sampling_float(bench_opts *o, const char *flag, const char *key, const char *text, double lo, double hi,
                          fl_error *err)
{
    float v;
    if (fl_cli_float(flag, text, lo, hi, &v, err) != 0)
        return -1;
    json_object_set_new(o->extra_body, key, json_real(v));
    return 0;
}

/* --goodput's KEY:VALUE pair (vLLM's names, milliseconds, not negative). */
static int parse_goodput(bench_opts *o, const char *pair, fl_error *err)
{
    static const char *names[] = { "ttft", "tpot", "e2el" };
    const char *colon = strchr(pair, ':');
    char *end;
    double v = colon ? strtod(colon + 1, &end) : 0;
    if (!colon || end == colon + 1 || *end || strchr(colon + 1, ':'))
        return fl_fail(err, "--goodput: '%s' is not KEY:VALUE (a metric name and milliseconds)", pair);
    for (int i = 0; i < 3; i++) {
        if ((size_t)(colon - pair) == strlen(names[i]) && strncmp(pair, names[i], strlen(names[i])) == 0) {
            if (!(v >= 0))
                return fl_fail(err, "--goodput: '%s': the objective must be non-negative", pair);
            o->goodput[i] = v;
            o->goodput_set |= 1 << i;
            return 0;
        }
    }
    return fl_fail(err, "--goodput: '%.*s' is not one of ttft, tpot, e2el", (int)(colon - pair), pair);
}

/* KEY=VALUE into obj (keys and values stripped, as vLLM). */
static int parse_pair(json_t *obj, const char *flag, const char *pair, fl_error *err)
{
    const char *eq = strchr(pair, '=');
    if (!eq)
        return fl_fail(err, "%s: '%s' is not KEY=VALUE", flag, pair);
    const char *k = pair, *ke = eq, *v = eq + 1, *ve = pair + strlen(pair);
    while (k < ke && (*k == ' ' || *k == '\t'))
        k++;
    while (ke > k && (ke[-1] == ' ' || ke[-1] == '\t'))
        ke--;
    while (v < ve && (*v == ' ' || *v == '\t'))
        v++;
    while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t'))
        ve--;
    char *key = fl_malloc((size_t)(ke - k) + 1);
    memcpy(key, k, (size_t)(ke - k));
    key[ke - k] = '\0';
    json_object_set_new(obj, key, json_stringn(v, (size_t)(ve - v)));
    free(key);
    return 0;
}

/* A flag of vLLM's that takes one or more values (argparse's nargs): optarg
 * and the arguments after it up to the next one starting with '-'. */
static int multi_values(int argc, char **argv, int (*each)(void *, const char *, fl_error *), void *ud,
                        fl_error *err)
{
    if (each(ud, optarg, err) != 0)
        return -1;
    while (optind < argc && argv[optind][0] != '-')
        if (each(ud, argv[optind++], err) != 0)
            return -1;
    return 0;
}

typedef struct pair_target {
    json_t *obj;
    const char *flag;
} pair_target;

static int each_goodput(void *ud, const char *v, fl_error *err) { return parse_goodput(ud, v, err); }
static int each_pair(void *ud, const char *v, fl_error *err)
{
    pair_target *t = ud;
    return parse_pair(t->obj, t->flag, v, err);
}

static int parse(bench_opts *o, int argc, char **argv, fl_error *err)
{
    static const struct option opts[] = {
        { "base-url", required_argument, NULL, OPT_BASE_URL }, { "host", required_argument, NULL, OPT_HOST },
        { "port", required_argument, NULL, OPT_PORT }, { "endpoint", required_argument, NULL, OPT_ENDPOINT },
        { "model", required_argument, NULL, OPT_MODEL }, { "tokenizer", required_argument, NULL, OPT_TOKENIZER },
        { "served-model-name", required_argument, NULL, OPT_SERVED },
        { "backend", required_argument, NULL, OPT_BACKEND }, { "label", required_argument, NULL, OPT_LABEL },
        { "dataset-name", required_argument, NULL, OPT_DATASET },
        { "dataset-path", required_argument, NULL, OPT_DATASET_PATH },
        { "random-input-len", required_argument, NULL, OPT_IN },
        { "random-output-len", required_argument, NULL, OPT_OUT },
        { "random-range-ratio", required_argument, NULL, OPT_RATIO },
        { "random-prefix-len", required_argument, NULL, OPT_PREFIX },
        { "sharegpt-output-len", required_argument, NULL, OPT_SHAREGPT_OUT },
        { "sonnet-input-len", required_argument, NULL, OPT_SONNET_IN },
        { "sonnet-output-len", required_argument, NULL, OPT_SONNET_OUT },
        { "sonnet-prefix-len", required_argument, NULL, OPT_SONNET_PREFIX },
        { "prefix-repetition-prefix-len", required_argument, NULL, OPT_REP_PREFIX },
        { "prefix-repetition-suffix-len", required_argument, NULL, OPT_REP_SUFFIX },
        { "prefix-repetition-num-prefixes", required_argument, NULL, OPT_REP_NUM },
        { "prefix-repetition-output-len", required_argument, NULL, OPT_REP_OUT },
        { "no-oversample", no_argument, NULL, OPT_NO_OVERSAMPLE },
        { "disable-shuffle", no_argument, NULL, OPT_NO_SHUFFLE },
        { "num-prompts", required_argument, NULL, OPT_NUM }, { "seed", required_argument, NULL, OPT_SEED },
        { "request-rate", required_argument, NULL, OPT_RATE }, { "burstiness", required_argument, NULL, OPT_BURST },
        { "max-concurrency", required_argument, NULL, OPT_CONC },
        { "num-warmups", required_argument, NULL, OPT_WARMUPS },
        { "ready-check-timeout-sec", required_argument, NULL, OPT_READY },
        { "request-id-prefix", required_argument, NULL, OPT_RID },
        { "header", required_argument, NULL, OPT_HEADER },
        { "ignore-eos", no_argument, NULL, OPT_IGNORE_EOS },
        { "temperature", required_argument, NULL, OPT_TEMP }, { "top-p", required_argument, NULL, OPT_TOP_P },
        { "top-k", required_argument, NULL, OPT_TOP_K }, { "min-p", required_argument, NULL, OPT_MIN_P },
        { "frequency-penalty", required_argument, NULL, OPT_FREQ },
        { "presence-penalty", required_argument, NULL, OPT_PRES },
        { "repetition-penalty", required_argument, NULL, OPT_REP },
        { "extra-body", required_argument, NULL, OPT_EXTRA }, { "goodput", required_argument, NULL, OPT_GOODPUT },
        { "percentile-metrics", required_argument, NULL, OPT_PMETRICS },
        { "metric-percentiles", required_argument, NULL, OPT_PCTS },
        { "disable-tqdm", no_argument, NULL, OPT_NO_TQDM },
        { "save-result", no_argument, NULL, OPT_SAVE }, { "save-detailed", no_argument, NULL, OPT_DETAILED },
        { "result-dir", required_argument, NULL, OPT_DIR }, { "result-filename", required_argument, NULL, OPT_FILE },
        { "metadata", required_argument, NULL, OPT_METADATA },
        { "help", no_argument, NULL, 'h' }, { 0 },
    };
    int opt, rc = 0, temperature_given = 0;
    json_t *extra = NULL;
    optind = 0;
    while (rc == 0 && (opt = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        switch (opt) {
        case 'h': puts(usage); return 1;
        case OPT_BASE_URL: snprintf(o->base_url, sizeof o->base_url, "%s", optarg); break;
        case OPT_HOST: o->host = optarg; break;
        case OPT_PORT: rc = fl_cli_int32("--port", optarg, 1, 65535, &o->port, err); break;
        case OPT_ENDPOINT: o->endpoint = optarg; break;
        case OPT_MODEL: o->model = optarg; break;
        case OPT_SERVED: o->served_name = optarg; break;
        case OPT_TOKENIZER: o->tokenizer_dir = optarg; break;
        case OPT_BACKEND:
            /* vLLM's names of its two OpenAI-compatible text request functions */
            if (strcmp(optarg, "openai") == 0 || strcmp(optarg, "vllm") == 0 || strcmp(optarg, "openai-chat") == 0)
                o->backend = optarg;
            else
                rc = fl_fail(err, "--backend: '%s' is not one of openai, vllm, openai-chat", optarg);
            break;
        case OPT_LABEL: o->label = optarg; break;
        case OPT_DATASET:
            o->d.dataset = optarg;
            if (strcmp(optarg, "random") != 0 && strcmp(optarg, "custom") != 0 && strcmp(optarg, "sharegpt") != 0 &&
                strcmp(optarg, "sonnet") != 0 && strcmp(optarg, "prefix_repetition") != 0)
                rc = fl_fail(err, "--dataset-name: '%s' is not one of random, sharegpt, sonnet, prefix_repetition, "
                             "custom", optarg);
            break;
        case OPT_DATASET_PATH: o->d.dataset_path = optarg; break;
        case OPT_IN: rc = fl_cli_int32("--random-input-len", optarg, 1, 1 << 20, &o->d.input_len, err); break;
        case OPT_OUT: rc = fl_cli_int32("--random-output-len", optarg, 1, 1 << 20, &o->d.output_len, err); break;
        case OPT_RATIO: rc = fl_cli_float("--random-range-ratio", optarg, 0, 0.999, &o->d.range_ratio, err); break;
        case OPT_PREFIX: rc = fl_cli_int32("--random-prefix-len", optarg, 0, 1 << 20, &o->d.prefix_len, err); break;
        case OPT_SHAREGPT_OUT:
            rc = fl_cli_int32("--sharegpt-output-len", optarg, 1, 1 << 20, &o->d.sharegpt_output_len, err);
            break;
        case OPT_SONNET_IN: rc = fl_cli_int32("--sonnet-input-len", optarg, 1, 1 << 20, &o->d.sonnet_input_len, err); break;
        case OPT_SONNET_OUT:
            rc = fl_cli_int32("--sonnet-output-len", optarg, 1, 1 << 20, &o->d.sonnet_output_len, err);
            break;
        case OPT_SONNET_PREFIX:
            rc = fl_cli_int32("--sonnet-prefix-len", optarg, 0, 1 << 20, &o->d.sonnet_prefix_len, err);
            break;
        case OPT_REP_PREFIX:
            rc = fl_cli_int32("--prefix-repetition-prefix-len", optarg, 0, 1 << 20, &o->d.rep_prefix_len, err);
            break;
        case OPT_REP_SUFFIX:
            rc = fl_cli_int32("--prefix-repetition-suffix-len", optarg, 0, 1 << 20, &o->d.rep_suffix_len, err);
            break;
        case OPT_REP_NUM:
            rc = fl_cli_int32("--prefix-repetition-num-prefixes", optarg, 1, 1 << 20, &o->d.rep_num_prefixes, err);
            break;
        case OPT_REP_OUT:
            rc = fl_cli_int32("--prefix-repetition-output-len", optarg, 1, 1 << 20, &o->d.rep_output_len, err);
            break;
        case OPT_NO_OVERSAMPLE: o->d.no_oversample = 1; break;
        case OPT_NO_SHUFFLE: o->d.disable_shuffle = 1; break;
        case OPT_NUM: rc = fl_cli_int32("--num-prompts", optarg, 1, 1 << 20, &o->d.num_prompts, err); break;
        case OPT_SEED: rc = fl_cli_int("--seed", optarg, 0, INT64_MAX, &o->d.seed, err); break;
        case OPT_RATE:
            if (strcmp(optarg, "inf") == 0)
                o->request_rate = INFINITY;
            else
                rc = fl_cli_float("--request-rate", optarg, 1e-6, 1e9, &o->request_rate, err);
            break;
        case OPT_BURST: rc = fl_cli_float("--burstiness", optarg, 1e-3, 1e3, &o->burstiness, err); break;
        case OPT_CONC: rc = fl_cli_int32("--max-concurrency", optarg, 1, 1 << 20, &o->max_concurrency, err); break;
        case OPT_WARMUPS: rc = fl_cli_int32("--num-warmups", optarg, 0, 1 << 20, &o->num_warmups, err); break;
        case OPT_READY:
            rc = fl_cli_int32("--ready-check-timeout-sec", optarg, 0, 1 << 24, &o->ready_timeout, err);
            break;
        case OPT_RID: o->request_id_prefix = optarg; break;
        case OPT_HEADER: {
            pair_target t = { o->headers, "--header" };
            rc = multi_values(argc, argv, each_pair, &t, err);
            break;
        }
        case OPT_IGNORE_EOS: o->ignore_eos = 1; break;
        case OPT_TEMP:
            rc = sampling_float(o, "--temperature", "temperature", optarg, 0, 100, err);
            temperature_given = 1;
            break;
        case OPT_TOP_P: rc = sampling_float(o, "--top-p", "top_p", optarg, 1e-9, 1, err); break;
        case OPT_TOP_K: {
            int k;
            rc = fl_cli_int32("--top-k", optarg, -1, 1 << 24, &k, err);
            if (rc == 0)
                json_object_set_new(o->extra_body, "top_k", json_integer(k));
            break;
        }
        case OPT_MIN_P: rc = sampling_float(o, "--min-p", "min_p", optarg, 0, 1, err); break;
        case OPT_FREQ: rc = sampling_float(o, "--frequency-penalty", "frequency_penalty", optarg, -2, 2, err); break;
        case OPT_PRES: rc = sampling_float(o, "--presence-penalty", "presence_penalty", optarg, -2, 2, err); break;
        case OPT_REP: rc = sampling_float(o, "--repetition-penalty", "repetition_penalty", optarg, 1e-6, 100, err); break;
        case OPT_EXTRA: {
            json_error_t jerr;
            json_decref(extra);
            extra = json_loads(optarg, 0, &jerr);
            if (!json_is_object(extra))
                rc = fl_fail(err, "--extra-body: '%s' is not a JSON object", optarg);
            break;
        }
        case OPT_GOODPUT: rc = multi_values(argc, argv, each_goodput, o, err); break;
        case OPT_PMETRICS: o->percentile_metrics = optarg; break;
        case OPT_PCTS: o->metric_percentiles = optarg; break;
        case OPT_NO_TQDM: o->disable_tqdm = 1; break;
        case OPT_SAVE: o->save_result = 1; break;
        case OPT_DETAILED: o->save_detailed = 1; break;
        case OPT_DIR: o->result_dir = optarg; break;
        case OPT_FILE: o->result_filename = optarg; break;
        case OPT_METADATA: {
            pair_target t = { o->metadata, "--metadata" };
            rc = multi_values(argc, argv, each_pair, &t, err);
            break;
        }
        default: rc = fl_cli_bad_option(err, "bench serve", opt, argv, optind);
        }
    }
    if (rc == 0 && optind < argc)
        rc = fl_fail(err, "bench serve: unexpected argument '%s'", argv[optind]);
    o->d.chat = strcmp(o->backend, "openai-chat") == 0;
    /* vLLM: temperature 0 (greedy) unless given; --extra-body over the sampling flags */
    if (!temperature_given)
        json_object_set_new(o->extra_body, "temperature", json_real(0.0));
    if (extra)
        json_object_update(o->extra_body, extra);
    json_decref(extra);
    /* vLLM: the random dataset always ignores EOS, so outputs run to length */
    if (strcmp(o->d.dataset, "random") == 0)
        o->ignore_eos = 1;
    if (!o->endpoint)
        o->endpoint = o->d.chat ? "/v1/chat/completions" : "/v1/completions";
    if (rc == 0 && !o->model)
        rc = fl_fail(err, "--model is required (the served model name)");
    if (rc == 0) {
        /* vLLM's check of the URL against the backend */
        const char *want = o->d.chat ? "chat/completions" : "completions";
        const size_t el = strlen(o->endpoint), wl = strlen(want);
        if (el < wl || strcmp(o->endpoint + el - wl, want) != 0)
            rc = fl_fail(err, "--endpoint: '%s' does not end with '%s', which --backend %s needs", o->endpoint, want,
                         o->backend);
    }
    if (rc == 0 && strcmp(o->d.dataset, "random") != 0 && strcmp(o->d.dataset, "prefix_repetition") != 0 &&
        !o->d.dataset_path)
        rc = fl_fail(err, "--dataset-name %s needs --dataset-path", o->d.dataset);
    if (rc == 0 && strcmp(o->d.dataset, "random") == 0 && o->d.dataset_path)
        rc = fl_fail(err, "--dataset-path: the random dataset takes none (name its dataset with --dataset-name)");
    if (rc == 0 && strcmp(o->d.dataset, "prefix_repetition") == 0 && o->d.num_prompts < o->d.rep_num_prefixes)
        rc = fl_fail(err, "--num-prompts: %d is fewer than --prefix-repetition-num-prefixes %d", o->d.num_prompts,
                     o->d.rep_num_prefixes);
    if (rc == 0 && o->save_detailed && !o->save_result)
        rc = fl_fail(err, "--save-detailed: only with --save-result");
    if (rc == 0) {
        static const char *names[] = { "ttft", "tpot", "itl", "e2el" };
        for (const char *p = o->percentile_metrics; rc == 0 && *p;) {
            const char *end = strchr(p, ',');
            const size_t n = end ? (size_t)(end - p) : strlen(p);
            int known = 0;
            for (int i = 0; i < 4; i++)
                known |= n == strlen(names[i]) && strncmp(p, names[i], n) == 0;
            if (!known)
                rc = fl_fail(err, "--percentile-metrics: '%.*s' is not one of ttft, tpot, itl, e2el", (int)n, p);
            p += n + (end != NULL);
        }
    }
    if (rc == 0 && !o->base_url[0])
        snprintf(o->base_url, sizeof o->base_url, "http://%s:%d", o->host, o->port);
    return rc;
}

int fl_bench_serve(int argc, char **argv)
{
    char rid[32];
    const uint64_t r = fl_rng_at(fl_rng_key((uint64_t)time(NULL), (uint64_t)getpid()), 0);
    snprintf(rid, sizeof rid, "bench-%08x-", (unsigned)(r >> 32));
    bench_opts o = { .host = "127.0.0.1", .port = 8000, .backend = "openai", .percentile_metrics = "ttft,tpot,itl",
                     .metric_percentiles = "99", .request_rate = INFINITY, .burstiness = 1.0f,
                     .request_id_prefix = rid, .ready_timeout = 600, .extra_body = json_object(),
                     .metadata = json_object(), .headers = json_object() };
    fl_serve_dataset_defaults(&o.d);
    fl_error err;
    int rc = parse(&o, argc, argv, &err), exit_code = 1;
    fl_tokenizer tok = { 0 };
    int tok_loaded = 0, n = 0;
    prompt *p = NULL;
    request *reqs = NULL;
    json_t *result = NULL;
    if (rc > 0) {
        exit_code = 0;
        goto out;
    }
    double pcts[8];
    int num_pcts = rc == 0 ? parse_list(o.metric_percentiles, pcts, 8) : 0;
    if (rc == 0 && num_pcts <= 0)
        rc = fl_fail(&err, "--metric-percentiles: '%s' is not a list of up to 8 numbers in [0, 100]",
                     o.metric_percentiles);
    const char *tdir = o.tokenizer_dir ? o.tokenizer_dir : o.model;
    if (rc == 0 && fl_tokenizer_load(&tok, tdir, &err) != 0)
        rc = fl_fail_prefix(&err, "--tokenizer");
    tok_loaded = rc == 0;
    curl_global_init(CURL_GLOBAL_DEFAULT);
    if (rc == 0 && (n = fl_serve_build_prompts(&o.d, &tok, count_tokens, &o, &p, &err)) < 0)
        rc = -1;
    if (rc == 0 && o.ready_timeout > 0) {
        fprintf(stderr, "Starting initial single prompt test run...\n");
        if (ready_check(&o, &p[0], &err) != 0)
            rc = fl_fail_prefix(&err, "Initial test run failed - Please make sure benchmark arguments are "
                                "correctly specified (waited --ready-check-timeout-sec %d)", o.ready_timeout);
        else
            fprintf(stderr, "Initial test run completed.\n");
    } else if (rc == 0) {
        fprintf(stderr, "Skipping endpoint ready check.\n");
    }
    if (rc != 0) {
        fprintf(stderr, "flashlm bench serve: %s\n", err.msg);
        goto out;
    }
    if (o.num_warmups > 0) {
        fprintf(stderr, "Warming up with %d requests...\n", o.num_warmups);
        prompt *w = fl_malloc((size_t)o.num_warmups * sizeof *w);
        request *wr = fl_calloc((size_t)o.num_warmups, sizeof *wr);
        for (int i = 0; i < o.num_warmups; i++)
            w[i] = p[0];
        run_requests(&o, w, o.num_warmups, wr, 0, INFINITY);
        for (int i = 0; i < o.num_warmups; i++)
            request_free(&wr[i]);
        free(wr);
        free(w);
        fprintf(stderr, "Warmup run completed.\n");
    }
    fprintf(stderr, "Starting main benchmark run...\n");
    char rate[64], burst[64];
    py_float(o.request_rate, rate, sizeof rate);
    py_float(o.burstiness, burst, sizeof burst);
    fprintf(stderr, "Traffic request rate: %s\nBurstiness factor: %s (%s)\n", rate, burst,
            o.burstiness == 1.0f ? "Poisson process" : "Gamma distribution");
    if (o.max_concurrency > 0)
        fprintf(stderr, "Maximum request concurrency: %d\n", o.max_concurrency);
    else
        fprintf(stderr, "Maximum request concurrency: None\n");
    reqs = fl_calloc((size_t)n, sizeof(request));
    const double duration = run_requests(&o, p, n, reqs, 1, o.request_rate);
    result = report(&o, reqs, n, duration, pcts, num_pcts);
    int failed = 0;
    for (int i = 0; i < n; i++)
        if (reqs[i].error && failed++ < 3)
            fprintf(stderr, "request %d failed: %s\n", i, reqs[i].error);
    exit_code = failed > 0;
    if (failed == n)
        fprintf(stderr, "All requests failed. This is likely due to a misconfiguration on the benchmark "
                "arguments.\n");
    if (o.save_result && save_result(&o, tdir, result, &err) != 0) {
        fprintf(stderr, "flashlm bench serve: %s\n", err.msg);
        exit_code = 1;
    }
out:
    json_decref(result);
    for (int i = 0; p && i < n; i++)
        free(p[i].text);
    for (int i = 0; reqs && i < n; i++)
        request_free(&reqs[i]);
    free(reqs);
    free(p);
    if (tok_loaded)
        fl_tokenizer_free(&tok);
    curl_global_cleanup();
    json_decref(o.extra_body);
    json_decref(o.metadata);
    json_decref(o.headers);
    return exit_code;
}
