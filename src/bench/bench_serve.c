/* bench_serve.c - `flashlm bench serve`: vLLM's serving benchmark in C.
 *
 * Builds the prompts (random token ids of the model's tokenizer, special
 * tokens excluded, decoded and checked through the server's /tokenize so
 * each has exactly the intended length; or one prompt a line from a JSONL
 * file), sends them as streamed completions (all at t = 0, or with
 * gamma-distributed gaps; optionally at most N in flight) over libcurl's
 * multi interface, times every SSE event, and prints vLLM's result block.
 * A request with a non-200 status or no token event is a failure: counted,
 * its error kept, and left out of every latency figure. */
#include <curl/curl.h>
#include <getopt.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/alloc.h"
#include "base/clock.h"
#include "base/rng.h"
#include "base/strbuf.h"
#include "bench/bench.h"
#include "bench/bench_print.h"
#include "bench/serve_stats.h"
#include "cli/cli.h"
#include "tokenizer/tokenizer.h"

typedef struct bench_opts {
    char base_url[512];
    const char *host, *endpoint, *model, *tokenizer_dir, *dataset, *dataset_path;
    const char *percentile_metrics, *metric_percentiles, *result_filename;
    int port, input_len, output_len, prefix_len, num_prompts, max_concurrency, save_result;
    float range_ratio, request_rate, burstiness;
    long long seed;
} bench_opts;

typedef struct prompt {
    char *text;
    int len, max_tokens;
} prompt;

typedef struct request {
    fl_request_timing t;
    fl_strbuf sse;             /* bytes of an unfinished SSE event */
    fl_strbuf body;            /* the whole response, for error messages */
    fl_strbuf generated;
    double last;               /* time of the last token event */
    int num_itl_cap;
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
 * local tokenizer does when the server has none. */
static int count_tokens(const bench_opts *o, const fl_tokenizer *tok, fl_tok_scratch *s,
                        const char *text, fl_ids *ids)
{
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

/* ---- workload ---- */

static char *decode(const fl_tokenizer *tok, const int32_t *ids, size_t n)
{
    fl_strbuf s = { 0 };
    fl_tokenizer_decode(tok, ids, n, 0, &s);
    return fl_strbuf_take(&s);
}

/* Random ids of non-special tokens, decoded; then re-counted and trimmed or
 * topped up until the prompt is exactly `len` tokens (a few rounds; the
 * last text is kept if they do not converge). */
static prompt random_prompt(const bench_opts *o, const fl_tokenizer *tok, fl_tok_scratch *s,
                            const int32_t *prefix, int len, uint64_t key)
{
    fl_ids ids = { 0 }, counted = { 0 };
    uint64_t draw = 0;
    for (int i = 0; i < o->prefix_len && i < len; i++)
        fl_ids_push(&ids, prefix[i]);
    char *text = NULL;
    for (int round = 0; round < 10; round++) {
        while ((int)ids.len < len) {
            int32_t id = (int32_t)(fl_rng_at(key, draw++) % (uint64_t)tok->num_ids);
            if (tok->id_bytes[id] && !tok->id_special[id])
                fl_ids_push(&ids, id);
        }
        free(text);
        text = decode(tok, ids.data, ids.len);
        int n = count_tokens(o, tok, s, text, &counted);
        if (n == len)
            break;
        /* continue from what the text really encodes to, cut to length */
        ids.len = 0;
        for (int i = 0; i < n && i < len; i++)
            fl_ids_push(&ids, counted.data[i]);
    }
    prompt p = { .text = text, .len = count_tokens(o, tok, s, text, &counted) };
    fl_ids_free(&ids);
    fl_ids_free(&counted);
    return p;
}

static int build_prompts(const bench_opts *o, const fl_tokenizer *tok, prompt **out, fl_error *err)
{
    fl_tok_scratch s;
    fl_tok_scratch_init(&s, tok);
    prompt *p = fl_calloc((size_t)o->num_prompts, sizeof(prompt));
    int n = 0, rc = 0;
    fl_ids tmp = { 0 };
    if (strcmp(o->dataset, "custom") == 0) {
        FILE *f = fopen(o->dataset_path, "r");
        if (!f) {
            rc = fl_fail(err, "--dataset-path: cannot open '%s'", o->dataset_path ? o->dataset_path : "");
        } else {
            char *line = NULL;
            size_t cap = 0;
            for (int lineno = 1; n < o->num_prompts && getline(&line, &cap, f) > 0; lineno++) {
                json_error_t jerr;
                json_t *j = json_loads(line, 0, &jerr);
                json_t *text = json_object_get(j, "prompt");
                if (!json_is_string(text)) {
                    rc = fl_fail(err, "%s:%d: a line must be {\"prompt\": \"...\"}", o->dataset_path, lineno);
                    json_decref(j);
                    break;
                }
                json_t *out_len = json_object_get(j, "output_tokens");
                p[n].text = fl_strdup(json_string_value(text));
                p[n].len = count_tokens(o, tok, &s, p[n].text, &tmp);
                p[n].max_tokens = json_is_integer(out_len) ? (int)json_integer_value(out_len) : o->output_len;
                n++;
                json_decref(j);
            }
            free(line);
            fclose(f);
        }
    } else {
        const uint64_t key = fl_rng_key((uint64_t)o->seed, 0);
        int32_t *prefix = fl_malloc((size_t)(o->prefix_len + 1) * sizeof(int32_t));
        for (int i = 0, d = 0; i < o->prefix_len; d++) {
            int32_t id = (int32_t)(fl_rng_at(key, (uint64_t)d) % (uint64_t)tok->num_ids);
            if (tok->id_bytes[id] && !tok->id_special[id])
                prefix[i++] = id;
        }
        const int in_lo = (int)(o->input_len * (1 - o->range_ratio)), in_hi = (int)(o->input_len * (1 + o->range_ratio));
        const int out_lo = (int)(o->output_len * (1 - o->range_ratio)), out_hi = (int)(o->output_len * (1 + o->range_ratio));
        for (; n < o->num_prompts; n++) {
            const uint64_t r = fl_rng_at(key, 1000000 + (uint64_t)n);
            int len = o->prefix_len + in_lo + (int)(r % (uint64_t)(in_hi - in_lo + 1));
            p[n] = random_prompt(o, tok, &s, prefix, len < 1 ? 1 : len, fl_rng_key((uint64_t)o->seed, 1 + (uint64_t)n));
            p[n].max_tokens = out_lo + (int)((r >> 32) % (uint64_t)(out_hi - out_lo + 1));
            if (p[n].max_tokens < 1)
                p[n].max_tokens = 1;
        }
        free(prefix);
    }
    fl_ids_free(&tmp);
    fl_tok_scratch_free(&s);
    *out = p;
    if (rc == 0 && n == 0)
        rc = fl_fail(err, "no prompts");
    return rc == 0 ? n : -1;
}

/* ---- streaming ---- */

static void on_event(request *r, const char *data, size_t len)
{
    if (len == 6 && memcmp(data, "[DONE]", 6) == 0)
        return;
    json_error_t jerr;
    json_t *j = json_loadb(data, len, 0, &jerr);
    json_t *choices = json_object_get(j, "choices");
    if (json_is_array(choices) && json_array_size(choices) > 0) {
        const double t = fl_now_seconds() - bench_t0;
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
        json_t *text = json_object_get(json_array_get(choices, 0), "text");
        if (json_is_string(text))
            fl_strbuf_append(&r->generated, json_string_value(text), json_string_length(text));
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

static CURL *make_handle(const bench_opts *o, request *r, const prompt *p, const char *auth)
{
    CURL *c = curl_easy_init();
    json_t *body = json_pack("{s:s,s:s,s:i,s:f,s:b,s:b,s:{s:b}}", "model", o->model, "prompt", p->text,
                             "max_tokens", p->max_tokens, "temperature", 0.0, "ignore_eos", 1,
                             "stream", 1, "stream_options", "include_usage", 1);
    r->payload = json_dumps(body, JSON_COMPACT);
    json_decref(body);
    r->headers = curl_slist_append(NULL, "Content-Type: application/json");
    if (auth)
        r->headers = curl_slist_append(r->headers, auth);
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

/* Runs every request; returns the benchmark duration. */
static double run_requests(const bench_opts *o, prompt *p, int n, request *reqs)
{
    char auth[512];
    const char *key = getenv("OPENAI_API_KEY");
    if (key)
        snprintf(auth, sizeof auth, "Authorization: Bearer %s", key);
    /* send times: all at 0 for rate inf, else gamma gaps with mean 1/rate */
    double *send_at = fl_calloc((size_t)n, sizeof(double));
    if (isfinite(o->request_rate)) {
        const uint64_t key2 = fl_rng_key((uint64_t)o->seed, 99);
        double t = 0;
        for (int i = 0; i < n; i++) {
            send_at[i] = t;
            /* gamma(k = burstiness, theta = 1 / (rate k)) as a sum/scale of exponentials
             * (exact for integer k; Marsaglia-Tsang would cover the rest) */
            const double k = o->burstiness, theta = 1.0 / (o->request_rate * k);
            double g = 0;
            int whole = (int)k;
            for (int j = 0; j < whole; j++)
                g -= log(1.0 - fl_rng_uniform(key2, (uint64_t)(i * 64 + j)));
            double frac = k - whole;
            if (frac > 0)
                g -= frac * log(1.0 - fl_rng_uniform(key2, (uint64_t)(i * 64 + 63)));
            t += g * theta;
        }
    }
    CURLM *m = curl_multi_init();
    int next = 0, running = 0, done = 0;
    bench_t0 = fl_now_seconds();
    while (done < n) {
        const double t = fl_now_seconds() - bench_t0;
        while (next < n && send_at[next] <= t && (o->max_concurrency <= 0 || running < o->max_concurrency)) {
            reqs[next].t.start = fl_now_seconds() - bench_t0;
            reqs[next].t.prompt_len = p[next].len;
            curl_multi_add_handle(m, make_handle(o, &reqs[next], &p[next], key ? auth : NULL));
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
            fl_bench_progress(++done, n);
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
    for (const char *p = text; *p && n < max;) {
        char *end;
        double v = strtod(p, &end);
        if (end == p)
            return -1;
        out[n++] = v;
        p = *end == ',' ? end + 1 : end;
        if (*end && *end != ',')
            return -1;
    }
    return n;
}

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
    json_object_set_new(result, "output_throughput", json_real(out_tokens / duration));
    json_object_set_new(result, "total_token_throughput", json_real((in_tokens + out_tokens) / duration));
    json_object_set_new(result, "max_output_tokens_per_s", json_real(peak_tps));
    json_object_set_new(result, "max_concurrent_requests", json_real(peak_conc));
    for (int k = 0; k < 4; k++) {
        fl_summary s;
        fl_summarize(vals[k], counts[k], pcts, num_pcts, &s);
        const metric_def *d = &metric_defs[k];
        char key[64];
        snprintf(key, sizeof key, "mean_%s_ms", d->key);
        json_object_set_new(result, key, json_real(s.mean));
        snprintf(key, sizeof key, "median_%s_ms", d->key);
        json_object_set_new(result, key, json_real(s.median));
        snprintf(key, sizeof key, "std_%s_ms", d->key);
        json_object_set_new(result, key, json_real(s.std));
        for (int i = 0; i < num_pcts; i++) {
            snprintf(key, sizeof key, "p%g_%s_ms", pcts[i], d->key);
            json_object_set_new(result, key, json_real(s.percentiles[i]));
        }
        if (!strstr(o->percentile_metrics, d->key))
            continue;
        fl_bench_header(d->title, '-');
        char label[80];
        snprintf(label, sizeof label, "Mean %s (ms):", d->name);
        fl_bench_line_f(label, s.mean);
        snprintf(label, sizeof label, "Median %s (ms):", d->name);
        fl_bench_line_f(label, s.median);
        for (int i = 0; i < num_pcts; i++) {
            snprintf(label, sizeof label, "P%g %s (ms):", pcts[i], d->name);
            fl_bench_line_f(label, s.percentiles[i]);
        }
    }
    fl_bench_header("", '=');
    for (int k = 0; k < 4; k++)
        free(vals[k]);
    free(t);
    return result;
}

/* ---- the command ---- */

enum {
    OPT_BASE_URL = 1, OPT_HOST, OPT_PORT, OPT_ENDPOINT, OPT_MODEL, OPT_TOKENIZER, OPT_DATASET,
    OPT_DATASET_PATH, OPT_IN, OPT_OUT, OPT_RATIO, OPT_PREFIX, OPT_NUM, OPT_SEED, OPT_RATE,
    OPT_BURST, OPT_CONC, OPT_PMETRICS, OPT_PCTS, OPT_SAVE, OPT_FILE,
};

static int parse(bench_opts *o, int argc, char **argv, fl_error *err)
{
    static const struct option opts[] = {
        { "base-url", required_argument, NULL, OPT_BASE_URL }, { "host", required_argument, NULL, OPT_HOST },
        { "port", required_argument, NULL, OPT_PORT }, { "endpoint", required_argument, NULL, OPT_ENDPOINT },
        { "model", required_argument, NULL, OPT_MODEL }, { "tokenizer", required_argument, NULL, OPT_TOKENIZER },
        { "dataset-name", required_argument, NULL, OPT_DATASET },
        { "dataset-path", required_argument, NULL, OPT_DATASET_PATH },
        { "random-input-len", required_argument, NULL, OPT_IN },
        { "random-output-len", required_argument, NULL, OPT_OUT },
        { "random-range-ratio", required_argument, NULL, OPT_RATIO },
        { "random-prefix-len", required_argument, NULL, OPT_PREFIX },
        { "num-prompts", required_argument, NULL, OPT_NUM }, { "seed", required_argument, NULL, OPT_SEED },
        { "request-rate", required_argument, NULL, OPT_RATE }, { "burstiness", required_argument, NULL, OPT_BURST },
        { "max-concurrency", required_argument, NULL, OPT_CONC },
        { "percentile-metrics", required_argument, NULL, OPT_PMETRICS },
        { "metric-percentiles", required_argument, NULL, OPT_PCTS },
        { "save-result", no_argument, NULL, OPT_SAVE }, { "result-filename", required_argument, NULL, OPT_FILE },
        { "help", no_argument, NULL, 'h' }, { 0 },
    };
    int opt, rc = 0;
    optind = 0;
    while (rc == 0 && (opt = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        switch (opt) {
        case 'h':
            puts("usage: flashlm bench serve --model NAME [--base-url URL | --host H --port P]\n"
                 "  [--endpoint /v1/completions] [--tokenizer DIR] [--dataset-name random|custom]\n"
                 "  [--dataset-path FILE.jsonl] [--random-input-len N] [--random-output-len N]\n"
                 "  [--random-range-ratio R] [--random-prefix-len N] [--num-prompts N] [--seed N]\n"
                 "  [--request-rate R|inf] [--burstiness B] [--max-concurrency N]\n"
                 "  [--percentile-metrics ttft,tpot,itl,e2el] [--metric-percentiles 99]\n"
                 "  [--save-result [--result-filename F]]   (API key from OPENAI_API_KEY)");
            return 1;
        case OPT_BASE_URL: snprintf(o->base_url, sizeof o->base_url, "%s", optarg); break;
        case OPT_HOST: o->host = optarg; break;
        case OPT_PORT: rc = fl_cli_int32("--port", optarg, 1, 65535, &o->port, err); break;
        case OPT_ENDPOINT: o->endpoint = optarg; break;
        case OPT_MODEL: o->model = optarg; break;
        case OPT_TOKENIZER: o->tokenizer_dir = optarg; break;
        case OPT_DATASET:
            o->dataset = optarg;
            if (strcmp(optarg, "random") != 0 && strcmp(optarg, "custom") != 0)
                rc = fl_fail(err, "--dataset-name: '%s' is not one of random, custom", optarg);
            break;
        case OPT_DATASET_PATH: o->dataset_path = optarg; break;
        case OPT_IN: rc = fl_cli_int32("--random-input-len", optarg, 1, 1 << 20, &o->input_len, err); break;
        case OPT_OUT: rc = fl_cli_int32("--random-output-len", optarg, 1, 1 << 20, &o->output_len, err); break;
        case OPT_RATIO: rc = fl_cli_float("--random-range-ratio", optarg, 0, 0.999, &o->range_ratio, err); break;
        case OPT_PREFIX: rc = fl_cli_int32("--random-prefix-len", optarg, 0, 1 << 20, &o->prefix_len, err); break;
        case OPT_NUM: rc = fl_cli_int32("--num-prompts", optarg, 1, 1 << 20, &o->num_prompts, err); break;
        case OPT_SEED: rc = fl_cli_int("--seed", optarg, 0, INT64_MAX, &o->seed, err); break;
        case OPT_RATE:
            if (strcmp(optarg, "inf") == 0)
                o->request_rate = INFINITY;
            else
                rc = fl_cli_float("--request-rate", optarg, 1e-6, 1e9, &o->request_rate, err);
            break;
        case OPT_BURST: rc = fl_cli_float("--burstiness", optarg, 1e-3, 1e3, &o->burstiness, err); break;
        case OPT_CONC: rc = fl_cli_int32("--max-concurrency", optarg, 1, 1 << 20, &o->max_concurrency, err); break;
        case OPT_PMETRICS: o->percentile_metrics = optarg; break;
        case OPT_PCTS: o->metric_percentiles = optarg; break;
        case OPT_SAVE: o->save_result = 1; break;
        case OPT_FILE: o->result_filename = optarg; break;
        default: rc = fl_cli_bad_option(err, "bench serve", opt, argv, optind);
        }
    }
    if (rc == 0 && !o->model)
        rc = fl_fail(err, "--model is required (the served model name)");
    if (rc == 0 && strcmp(o->dataset, "custom") == 0 && !o->dataset_path)
        rc = fl_fail(err, "--dataset-name custom needs --dataset-path");
    if (rc == 0 && !o->base_url[0])
        snprintf(o->base_url, sizeof o->base_url, "http://%s:%d", o->host, o->port);
    return rc;
}

int fl_bench_serve(int argc, char **argv)
{
    bench_opts o = { .host = "127.0.0.1", .port = 8000, .endpoint = "/v1/completions", .dataset = "random",
                     .percentile_metrics = "ttft,tpot,itl", .metric_percentiles = "99", .input_len = 1024,
                     .output_len = 128, .num_prompts = 1000, .request_rate = INFINITY, .burstiness = 1.0f };
    fl_error err;
    int rc = parse(&o, argc, argv, &err);
    if (rc > 0)
        return 0;
    double pcts[8];
    int num_pcts = rc == 0 ? parse_list(o.metric_percentiles, pcts, 8) : 0;
    if (rc == 0 && num_pcts <= 0)
        rc = fl_fail(&err, "--metric-percentiles: '%s' is not a list of numbers", o.metric_percentiles);
    fl_tokenizer tok;
    const char *tdir = o.tokenizer_dir ? o.tokenizer_dir : o.model;
    if (rc == 0 && fl_tokenizer_load(&tok, tdir, &err) != 0)
        rc = fl_fail_prefix(&err, "--tokenizer");
    if (rc != 0) {
        fprintf(stderr, "flashlm bench serve: %s\n", err.msg);
        return 1;
    }
    curl_global_init(CURL_GLOBAL_DEFAULT);
    prompt *p;
    int n = build_prompts(&o, &tok, &p, &err);
    if (n < 0) {
        fprintf(stderr, "flashlm bench serve: %s\n", err.msg);
        fl_tokenizer_free(&tok);
        return 1;
    }
    request *reqs = fl_calloc((size_t)n, sizeof(request));
    const double duration = run_requests(&o, p, n, reqs);
    json_t *result = report(&o, reqs, n, duration, pcts, num_pcts);
    int failed = 0;
    json_t *errors = json_array(), *in_lens = json_array(), *out_lens = json_array(), *ttfts = json_array(),
           *itls = json_array(), *texts = json_array();
    for (int i = 0; i < n; i++) {
        json_array_append_new(errors, json_string(reqs[i].error ? reqs[i].error : ""));
        json_array_append_new(in_lens, json_integer(reqs[i].t.prompt_len));
        json_array_append_new(out_lens, json_integer(reqs[i].t.success ? reqs[i].t.output_len : 0));
        json_array_append_new(ttfts, json_real(reqs[i].t.success ? reqs[i].t.ttft : 0));
        json_t *itl = json_array();
        for (int k = 0; k < reqs[i].t.num_itl; k++)
            json_array_append_new(itl, json_real(reqs[i].t.itl[k]));
        json_array_append_new(itls, itl);
        json_array_append_new(texts, json_stringn(reqs[i].generated.data ? reqs[i].generated.data : "",
                                                  reqs[i].generated.len));
        if (reqs[i].error && failed++ < 3)
            fprintf(stderr, "request %d failed: %s\n", i, reqs[i].error);
    }
    if (o.save_result) {
        char date[32], name[512];
        time_t now_t = time(NULL);
        strftime(date, sizeof date, "%Y%m%d-%H%M%S", localtime(&now_t));
        json_object_set_new(result, "date", json_string(date));
        json_object_set_new(result, "backend", json_string("openai"));
        json_object_set_new(result, "model_id", json_string(o.model));
        json_object_set_new(result, "tokenizer_id", json_string(tdir));
        json_object_set_new(result, "num_prompts", json_integer(n));
        json_object_set_new(result, "request_rate", isfinite(o.request_rate) ? json_real(o.request_rate) : json_string("inf"));
        json_object_set_new(result, "burstiness", json_real(o.burstiness));
        json_object_set_new(result, "max_concurrency", o.max_concurrency > 0 ? json_integer(o.max_concurrency) : json_null());
        json_object_set(result, "input_lens", in_lens);
        json_object_set(result, "output_lens", out_lens);
        json_object_set(result, "ttfts", ttfts);
        json_object_set(result, "itls", itls);
        json_object_set(result, "generated_texts", texts);
        json_object_set(result, "errors", errors);
        if (o.result_filename)
            snprintf(name, sizeof name, "%s", o.result_filename);
        else
            snprintf(name, sizeof name, "openai-infqps-%s.json", date);
        if (json_dump_file(result, name, JSON_INDENT(1) | JSON_PRESERVE_ORDER) != 0)
            fprintf(stderr, "flashlm bench serve: cannot write %s\n", name);
    }
    json_decref(errors), json_decref(in_lens), json_decref(out_lens), json_decref(ttfts), json_decref(itls);
    json_decref(texts);
    json_decref(result);
    for (int i = 0; i < n; i++) {
        free(p[i].text);
        free(reqs[i].t.itl);
        free(reqs[i].error);
        free(reqs[i].payload);
        curl_slist_free_all(reqs[i].headers);
        fl_strbuf_free(&reqs[i].sse);
        fl_strbuf_free(&reqs[i].body);
        fl_strbuf_free(&reqs[i].generated);
    }
    free(reqs);
    free(p);
    fl_tokenizer_free(&tok);
    curl_global_cleanup();
    return 0;
}
