/* bench_eval.c - `flashlm bench eval`: GPQA as openai/gpt-oss's evals run
 * it (gpt_oss/evals: gpqa_eval.py with its chat_completions sampler),
 * against any OpenAI-compatible server.
 *
 * What is the same: the dataset's columns; every question asked --repeats
 * times (gpt-oss: 8), each time with its four choices in a fresh random
 * order; the user message (no system message) and the chat-completions
 * request: model, messages, reasoning_effort, temperature (gpt-oss: 1.0),
 * max_tokens (gpt-oss: 32768); the answer read from the message's content
 * by gpt-oss's patterns, a sample scoring 1 when it is the correct letter;
 * the accuracy, the mean over all samples; all requests in flight at once
 * unless capped (gpt-oss: 1584 threads, GPQA diamond's 198 x 8).
 *
 * What differs, and why:
 * - The shuffle (gpqa.h): gpt-oss draws the orders from Python's
 *   random.Random(0) in sample order, this from base/rng by (seed,
 *   question, repeat). Either way each sample's order is uniformly random
 *   and independent of the model and of the other samples, so the expected
 *   accuracy and its spread are the same; a model's preference for a
 *   letter averages out the same way. What is lost is sample-for-sample
 *   identity with a gpt-oss run (the same question shows other orders
 *   there), which sampling at temperature 1 takes away anyway; comparing
 *   single outputs with gpt-oss's at temperature 0 would need Python's
 *   Mersenne Twister and random.sample reproduced.
 * - Failures: gpt-oss retries a failed request forever with exponential
 *   backoff (an empty content too), except a 400, which it scores as the
 *   answer "No response (bad request).". Here a request that fails (an
 *   HTTP error, no answer within --request-timeout, a reply that is not a
 *   chat completion or has no content) is not retried: it is counted,
 *   kept with its error, and scores 0, so a broken server shows in the
 *   count rather than hanging the run or being left out of the accuracy.
 * - The error bar: gpt-oss reports the spread of the sample scores
 *   ("score:std"); this reports that too, and the standard error of the
 *   accuracy with the questions as the unit (gpqa.h says why). */
#include <curl/curl.h>
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "base/alloc.h"
#include "base/clock.h"
#include "base/mapped_file.h"
#include "base/strbuf.h"
#include "base/utf8.h"
#include "bench/bench.h"
#include "bench/bench_print.h"
#include "bench/gpqa.h"
#include "cli/cli.h"

/* A reply larger than this is junk, not an answer (32768 tokens of text
 * are some 150 KB), and is cut off rather than held in memory. */
#define MAX_REPLY_BYTES ((size_t)64 << 20)

typedef struct eval_opts {
    char base_url[512];
    const char *host, *endpoint, *model, *dataset, *reasoning_effort, *output;
    int port, repeats, max_concurrency, max_tokens;
    double temperature, request_timeout;
    long long seed;
} eval_opts;

enum outcome { OUT_CORRECT, OUT_WRONG, OUT_NO_ANSWER, OUT_FAILED };

typedef struct sample {
    size_t question;
    int repeat, perm[4];
    char correct_letter, extracted; /* extracted: 0 when none */
    enum outcome outcome;
    char *payload;
    fl_strbuf body;
    int body_too_big;
    char *response;                 /* choices[0].message.content (UTF-8, NULs allowed) */
    size_t response_len;
    char *finish_reason;
    long long completion_tokens;    /* -1 when the reply has no usage */
    double start, latency;
    char *error;
} sample;

/* ---- requests ---- */

static size_t on_body(char *p, size_t size, size_t n, void *ud)
{
    sample *s = ud;
    if (s->body.len + size * n > MAX_REPLY_BYTES) {
        s->body_too_big = 1;
        return 0; /* curl ends the transfer with a write error */
    }
    fl_strbuf_append(&s->body, p, size * n);
    return size * n;
}

static CURL *make_handle(const eval_opts *o, sample *s, const char *prompt, struct curl_slist *headers)
{
    json_t *body = json_pack("{s:s,s:[{s:s,s:s}],s:f,s:i}", "model", o->model, "messages", "role", "user",
                             "content", prompt, "temperature", o->temperature, "max_tokens", o->max_tokens);
    if (o->reasoning_effort)
        json_object_set_new(body, "reasoning_effort", json_string(o->reasoning_effort));
    s->payload = json_dumps(body, JSON_COMPACT);
    json_decref(body);
    CURL *c = curl_easy_init();
    fl_strbuf url = { 0 };
    fl_strbuf_appendf(&url, "%s%s", o->base_url, o->endpoint);
    curl_easy_setopt(c, CURLOPT_URL, url.data); /* curl keeps a copy */
    fl_strbuf_free(&url);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, s->payload);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, s);
    curl_easy_setopt(c, CURLOPT_PRIVATE, s);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)(o->request_timeout * 1000));
    return c;
}

/* An error message, cleaned to UTF-8: it quotes the start of a reply,
 * which is any bytes (and may be cut inside a character), and goes into
 * the JSON. */
static char *fail_msg(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static char *fail_msg(const char *fmt, ...)
{
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    fl_strbuf b = { 0 };
    fl_utf8_append_lossy(&b, (const unsigned char *)buf, strlen(buf), 1);
    return fl_strbuf_take(&b);
}

/* The reply of a finished request: its content and what else it says, or
 * the error that makes it a failure. */
static void read_reply(const eval_opts *o, sample *s, CURLcode rc, long status)
{
    if (s->body_too_big) {
        s->error = fail_msg("the reply passed %zu MiB", MAX_REPLY_BYTES >> 20);
        return;
    }
    if (rc == CURLE_OPERATION_TIMEDOUT) {
        s->error = fail_msg("no complete reply within --request-timeout (%g s)", o->request_timeout);
        return;
    }
    if (rc != CURLE_OK) {
        s->error = fail_msg("%s", curl_easy_strerror(rc));
        return;
    }
    const char *text = s->body.data ? s->body.data : "";
    json_error_t jerr;
    /* a model may write a NUL (byte-level tokens have one): it is text */
    json_t *j = status == 200 ? json_loadb(text, s->body.len, JSON_ALLOW_NUL, &jerr) : NULL;
    json_t *choice = json_array_get(json_object_get(j, "choices"), 0);
    json_t *content = json_object_get(json_object_get(choice, "message"), "content");
    json_t *finish = json_object_get(choice, "finish_reason");
    json_t *tokens = json_object_get(json_object_get(j, "usage"), "completion_tokens");
    if (json_is_string(finish))
        s->finish_reason = fl_strdup(json_string_value(finish));
    if (json_is_integer(tokens))
        s->completion_tokens = json_integer_value(tokens);
    if (status != 200)
        s->error = fail_msg("HTTP %ld: %.500s", status, text);
    else if (!j)
        s->error = fail_msg("the reply is not JSON (%s): %.200s", jerr.text, text);
    else if (!json_is_object(choice))
        s->error = fail_msg("the reply has no choices[0]: %.200s", text);
    else if (!json_is_string(content) || json_string_length(content) == 0)
        s->error = fail_msg("the reply has no answer text (choices[0].message.content is %s; finish_reason %s)",
                            !content                   ? "missing"
                            : json_is_string(content) ? "empty"
                            : json_is_null(content)   ? "null"
                                                      : "not a string",
                            s->finish_reason ? s->finish_reason : "missing");
    else {
        s->response_len = json_string_length(content);
        s->response = fl_malloc(s->response_len + 1);
        memcpy(s->response, json_string_value(content), s->response_len + 1);
    }
    json_decref(j);
}

/* How many requests may be in flight: --max-concurrency (or all), but
 * under the descriptor limit, raised to its hard value first: each is a
 * socket, and one past the limit would fail to connect instead of waiting
 * its turn. */
static int in_flight_cap(const eval_opts *o, size_t n)
{
    struct rlimit rl;
    getrlimit(RLIMIT_NOFILE, &rl);
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
    getrlimit(RLIMIT_NOFILE, &rl);
    long long cap = o->max_concurrency > 0 ? o->max_concurrency : (long long)n;
    const long long spare = 64; /* stdio, curl's own descriptors, the output file */
    if (rl.rlim_cur != RLIM_INFINITY && cap > (long long)rl.rlim_cur - spare) {
        cap = (long long)rl.rlim_cur - spare > 1 ? (long long)rl.rlim_cur - spare : 1;
        fprintf(stderr, "flashlm bench eval: at most %lld requests in flight (the open-file limit is %lld)\n", cap,
                (long long)rl.rlim_cur);
    }
    return (int)cap;
}

/* Runs every sample, at most cap in flight, in sample order; returns the
 * duration. */
static double run(const eval_opts *o, const fl_gpqa *g, sample *s, size_t n, int cap)
{
    struct curl_slist *headers = curl_slist_append(NULL, "Content-Type: application/json");
    const char *key = getenv("OPENAI_API_KEY");
    if (key) {
        fl_strbuf auth = { 0 };
        fl_strbuf_appendf(&auth, "Authorization: Bearer %s", key);
        headers = curl_slist_append(headers, auth.data);
        fl_strbuf_free(&auth);
    }
    CURLM *m = curl_multi_init();
    size_t next = 0, done = 0;
    int running = 0;
    fl_strbuf prompt = { 0 };
    const double t0 = fl_now_seconds();
    while (done < n) {
        while (next < n && running < cap) {
            fl_strbuf_clear(&prompt);
            fl_gpqa_prompt(&g->q[s[next].question], s[next].perm, &prompt);
            s[next].start = fl_now_seconds() - t0;
            curl_multi_add_handle(m, make_handle(o, &s[next], prompt.data, headers));
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
            sample *r;
            long status = 0;
            curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&r);
            curl_easy_getinfo(msg->easy_handle, CURLINFO_RESPONSE_CODE, &status);
            r->latency = fl_now_seconds() - t0 - r->start;
            read_reply(o, r, msg->data.result, status);
            fl_strbuf_free(&r->body); /* all that is kept of it is read */
            curl_multi_remove_handle(m, msg->easy_handle);
            curl_easy_cleanup(msg->easy_handle);
            free(r->payload);
            r->payload = NULL;
            running--;
            fl_bench_progress((int)++done, (int)n);
        }
        curl_multi_poll(m, NULL, 0, 100, NULL);
    }
    fl_strbuf_free(&prompt);
    curl_multi_cleanup(m);
    curl_slist_free_all(headers);
    return fl_now_seconds() - t0;
}

/* ---- results ---- */

static json_t *json_letter(char c)
{
    const char s[2] = { c, '\0' };
    return c ? json_string(s) : json_null();
}

static json_t *sample_json(const fl_gpqa *g, const sample *s, size_t i)
{
    json_t *perm = json_array();
    for (int k = 0; k < 4; k++)
        json_array_append_new(perm, json_integer(s->perm[k]));
    json_t *j = json_object();
    json_object_set_new(j, "sample", json_integer((json_int_t)i));
    json_object_set_new(j, "question", json_integer((json_int_t)s->question));
    json_object_set_new(j, "line", json_integer(g->q[s->question].line));
    json_object_set_new(j, "repeat", json_integer(s->repeat));
    json_object_set_new(j, "permutation", perm);
    json_object_set_new(j, "correct_letter", json_letter(s->correct_letter));
    json_object_set_new(j, "extracted", json_letter(s->extracted));
    json_object_set_new(j, "correct", json_boolean(s->outcome == OUT_CORRECT));
    json_object_set_new(j, "finish_reason", s->finish_reason ? json_string(s->finish_reason) : json_null());
    json_object_set_new(j, "completion_tokens",
                        s->completion_tokens >= 0 ? json_integer(s->completion_tokens) : json_null());
    json_object_set_new(j, "latency", json_real(s->latency));
    json_object_set_new(j, "response", s->response ? json_stringn(s->response, s->response_len) : json_null());
    json_object_set_new(j, "error", s->error ? json_string(s->error) : json_null());
    return j;
}

/* A flag's text as a JSON string: argv is any bytes, JSON is UTF-8. */
static json_t *json_text(const char *s)
{
    fl_strbuf b = { 0 };
    fl_utf8_append_lossy(&b, (const unsigned char *)s, strlen(s), 1);
    json_t *j = json_stringn(b.data ? b.data : "", b.len);
    fl_strbuf_free(&b);
    return j;
}

static json_t *json_number_or_null(double v)
{
    return isfinite(v) ? json_real(v) : json_null();
}

/* Prints the result block and returns the whole result as JSON. */
static json_t *report(const eval_opts *o, const fl_gpqa *g, const sample *s, size_t n, double duration)
{
    long long count[4] = { 0 };
    unsigned char *correct = fl_malloc(n);
    for (size_t i = 0; i < n; i++) {
        count[s[i].outcome]++;
        correct[i] = s[i].outcome == OUT_CORRECT;
    }
    fl_eval_score score;
    fl_eval_score_of(correct, g->num_questions, o->repeats, &score);
    free(correct);

    fl_bench_header(" GPQA Eval Result ", '=');
    fl_bench_line("Model:", o->model);
    fl_bench_line("Reasoning effort:", o->reasoning_effort ? o->reasoning_effort : "(not sent)");
    fl_bench_line_i("Questions:", (long long)g->num_questions);
    fl_bench_line_i("Repeats:", o->repeats);
    fl_bench_line_i("Samples:", (long long)n);
    fl_bench_line_i("Correct:", count[OUT_CORRECT]);
    fl_bench_line_i("Wrong answer:", count[OUT_WRONG]);
    fl_bench_line_i("No answer found:", count[OUT_NO_ANSWER]);
    fl_bench_line_i("Failed requests:", count[OUT_FAILED]);
    if (o->max_concurrency > 0)
        fl_bench_line_i("Maximum request concurrency:", o->max_concurrency);
    char value[64];
    if (isfinite(score.std_error))
        snprintf(value, sizeof value, "%.2f \u00b1 %.2f", 100 * score.accuracy, 100 * score.std_error);
    else
        snprintf(value, sizeof value, "%.2f \u00b1 n/a", 100 * score.accuracy);
    fl_bench_line("Accuracy (%):", value);
    fl_bench_line_f("Benchmark duration (s):", duration);
    fl_bench_header("", '=');

    json_t *r = json_object();
    json_object_set_new(r, "eval", json_string("gpqa"));
    json_object_set_new(r, "dataset", json_text(o->dataset));
    json_object_set_new(r, "base_url", json_text(o->base_url));
    json_object_set_new(r, "endpoint", json_text(o->endpoint));
    json_object_set_new(r, "model", json_string(o->model));
    json_object_set_new(r, "reasoning_effort", o->reasoning_effort ? json_string(o->reasoning_effort) : json_null());
    json_object_set_new(r, "temperature", json_real(o->temperature));
    json_object_set_new(r, "max_tokens", json_integer(o->max_tokens));
    json_object_set_new(r, "seed", json_integer(o->seed));
    json_object_set_new(r, "repeats", json_integer(o->repeats));
    json_object_set_new(r, "max_concurrency", o->max_concurrency > 0 ? json_integer(o->max_concurrency) : json_null());
    json_object_set_new(r, "num_questions", json_integer((json_int_t)g->num_questions));
    json_object_set_new(r, "num_samples", json_integer((json_int_t)n));
    json_object_set_new(r, "correct", json_integer(count[OUT_CORRECT]));
    json_object_set_new(r, "wrong", json_integer(count[OUT_WRONG]));
    json_object_set_new(r, "no_answer", json_integer(count[OUT_NO_ANSWER]));
    json_object_set_new(r, "failed", json_integer(count[OUT_FAILED]));
    json_object_set_new(r, "accuracy", json_real(score.accuracy));
    json_object_set_new(r, "std_error", json_number_or_null(score.std_error));
    json_object_set_new(r, "score_std", json_real(score.sample_std));
    json_object_set_new(r, "duration", json_real(duration));
    json_t *results = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(results, sample_json(g, &s[i], i));
    json_object_set_new(r, "results", results);
    return r;
}

/* ---- the command ---- */

enum {
    OPT_BASE_URL = 1, OPT_HOST, OPT_PORT, OPT_ENDPOINT, OPT_MODEL, OPT_DATASET, OPT_REPEATS, OPT_EFFORT,
    OPT_SEED, OPT_CONC, OPT_OUTPUT, OPT_TEMPERATURE, OPT_MAX_TOKENS, OPT_TIMEOUT,
};

static const char usage[] =
    "usage: flashlm bench eval --model NAME --dataset FILE.csv [--base-url URL | --host H --port P]\n"
    "  GPQA as openai/gpt-oss's evals run it, against an OpenAI-compatible server's chat completions.\n"
    "  --dataset FILE.csv       a GPQA-format CSV (columns 'Question', 'Correct Answer',\n"
    "                           'Incorrect Answer 1', '... 2', '... 3'), e.g. gpqa_diamond.csv\n"
    "  --model NAME             the served model name\n"
    "  --base-url URL           the server (default http://HOST:PORT); --endpoint is appended\n"
    "  --host H, --port P       default 127.0.0.1, 8000\n"
    "  --endpoint PATH          default /v1/chat/completions\n"
    "  --repeats N              each question N times, the choices shuffled each time (default 8)\n"
    "  --seed S                 the shuffle's seed (default 0)\n"
    "  --reasoning-effort E     low, medium (default), high; none sends no reasoning_effort\n"
    "  --temperature T          default 1.0\n"
    "  --max-tokens N           default 32768\n"
    "  --max-concurrency C      requests in flight at most (default: all at once)\n"
    "  --request-timeout S      seconds a request may take before it counts as failed\n"
    "                           (default 86400, gpt-oss's client's)\n"
    "  --output FILE.json       the summary and every sample's result as JSON\n"
    "  The API key, if any, from OPENAI_API_KEY.";

static int parse(eval_opts *o, int argc, char **argv, fl_error *err)
{
    static const struct option opts[] = {
        { "base-url", required_argument, NULL, OPT_BASE_URL }, { "host", required_argument, NULL, OPT_HOST },
        { "port", required_argument, NULL, OPT_PORT }, { "endpoint", required_argument, NULL, OPT_ENDPOINT },
        { "model", required_argument, NULL, OPT_MODEL }, { "dataset", required_argument, NULL, OPT_DATASET },
        { "repeats", required_argument, NULL, OPT_REPEATS },
        { "reasoning-effort", required_argument, NULL, OPT_EFFORT },
        { "seed", required_argument, NULL, OPT_SEED },
        { "max-concurrency", required_argument, NULL, OPT_CONC },
        { "output", required_argument, NULL, OPT_OUTPUT },
        { "temperature", required_argument, NULL, OPT_TEMPERATURE },
        { "max-tokens", required_argument, NULL, OPT_MAX_TOKENS },
        { "request-timeout", required_argument, NULL, OPT_TIMEOUT },
        { "help", no_argument, NULL, 'h' }, { 0 },
    };
    int opt, rc = 0;
    float f;
    optind = 0;
    while (rc == 0 && (opt = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        switch (opt) {
        case 'h': puts(usage); return 1;
        case OPT_BASE_URL:
            if (strlen(optarg) >= sizeof o->base_url)
                rc = fl_fail(err, "--base-url: longer than %zu bytes", sizeof o->base_url - 1);
            else
                snprintf(o->base_url, sizeof o->base_url, "%s", optarg);
            break;
        case OPT_HOST: o->host = optarg; break;
        case OPT_PORT: rc = fl_cli_int32("--port", optarg, 1, 65535, &o->port, err); break;
        case OPT_ENDPOINT: o->endpoint = optarg; break;
        case OPT_MODEL: o->model = optarg; break;
        case OPT_DATASET: o->dataset = optarg; break;
        case OPT_REPEATS: rc = fl_cli_int32("--repeats", optarg, 1, 1000, &o->repeats, err); break;
        case OPT_EFFORT:
            if (strcmp(optarg, "none") == 0)
                o->reasoning_effort = NULL;
            else if (strcmp(optarg, "low") == 0 || strcmp(optarg, "medium") == 0 || strcmp(optarg, "high") == 0)
                o->reasoning_effort = optarg;
            else
                rc = fl_fail(err, "--reasoning-effort: '%s' is not one of low, medium, high, none", optarg);
            break;
        case OPT_SEED: rc = fl_cli_int("--seed", optarg, 0, INT64_MAX, &o->seed, err); break;
        case OPT_CONC: rc = fl_cli_int32("--max-concurrency", optarg, 1, 1 << 20, &o->max_concurrency, err); break;
        case OPT_OUTPUT: o->output = optarg; break;
        /* checked as a float flag, kept as the double the text spells, so
         * the request carries 0.7, not 0.699999988 */
        case OPT_TEMPERATURE:
            if ((rc = fl_cli_float("--temperature", optarg, 0, 100, &f, err)) == 0)
                o->temperature = strtod(optarg, NULL);
            break;
        case OPT_MAX_TOKENS: rc = fl_cli_int32("--max-tokens", optarg, 1, 1 << 24, &o->max_tokens, err); break;
        case OPT_TIMEOUT:
            if ((rc = fl_cli_float("--request-timeout", optarg, 0.001, 1e7, &f, err)) == 0)
                o->request_timeout = strtod(optarg, NULL);
            break;
        default: rc = fl_cli_bad_option(err, "bench eval", opt, argv, optind);
        }
    }
    if (rc == 0 && optind < argc)
        rc = fl_fail(err, "unexpected argument '%s' (see flashlm bench eval --help)", argv[optind]);
    if (rc == 0 && !o->model)
        rc = fl_fail(err, "--model is required (the served model name)");
    json_t *name = rc == 0 ? json_string(o->model) : NULL; /* NULL unless UTF-8: it goes into every request */
    if (rc == 0 && !name)
        rc = fl_fail(err, "--model: not valid UTF-8");
    json_decref(name);
    if (rc == 0 && !o->dataset)
        rc = fl_fail(err, "--dataset is required (a GPQA-format CSV, e.g. gpqa_diamond.csv)");
    if (rc == 0 && !o->base_url[0])
        snprintf(o->base_url, sizeof o->base_url, "http://%s:%d", o->host, o->port);
    return rc;
}

static void free_samples(sample *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(s[i].response);
        free(s[i].finish_reason);
        free(s[i].error);
    }
    free(s);
}

int fl_bench_eval(int argc, char **argv)
{
    eval_opts o = { .host = "127.0.0.1", .port = 8000, .endpoint = "/v1/chat/completions", .repeats = 8,
                    .reasoning_effort = "medium", .max_tokens = 32768, .temperature = 1.0,
                    .request_timeout = 86400 };
    fl_error err;
    int rc = parse(&o, argc, argv, &err);
    if (rc > 0)
        return 0;
    fl_gpqa g = { 0 };
    size_t size = 0;
    char *data = rc == 0 ? fl_read_text_file(o.dataset, &size, &err) : NULL;
    if (rc == 0 && !data)
        rc = fl_fail_prefix(&err, "--dataset");
    if (rc == 0 && fl_gpqa_load(&g, data, size, &err) != 0)
        rc = fl_fail_prefix(&err, "--dataset %s", o.dataset);
    free(data);
    /* opened now, so a path that cannot be written fails before the run */
    FILE *out = NULL;
    if (rc == 0 && o.output && !(out = fopen(o.output, "w")))
        rc = fl_fail(&err, "--output: cannot open '%s' for writing: %s", o.output, strerror(errno));
    if (rc != 0) {
        fprintf(stderr, "flashlm bench eval: %s\n", err.msg);
        fl_gpqa_free(&g);
        return 1;
    }

    const size_t n = g.num_questions * (size_t)o.repeats;
    sample *s = fl_calloc(n, sizeof *s);
    for (size_t i = 0; i < n; i++) {
        s[i].question = i % g.num_questions;
        s[i].repeat = (int)(i / g.num_questions);
        s[i].completion_tokens = -1;
        fl_gpqa_permutation((uint64_t)o.seed, s[i].question, s[i].repeat, s[i].perm);
        s[i].correct_letter = fl_gpqa_correct_letter(&g.q[s[i].question], s[i].perm);
    }
    curl_global_init(CURL_GLOBAL_DEFAULT);
    const double duration = run(&o, &g, s, n, in_flight_cap(&o, n));
    curl_global_cleanup();

    fl_abcd_extractor *x = fl_abcd_extractor_new();
    int shown = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i].error) {
            s[i].outcome = OUT_FAILED;
            if (shown++ < 3)
                fprintf(stderr, "sample %zu (question %zu, repeat %d) failed: %s\n", i, s[i].question, s[i].repeat,
                        s[i].error);
            continue;
        }
        s[i].extracted = fl_abcd_extract(x, s[i].response, s[i].response_len);
        s[i].outcome = !s[i].extracted ? OUT_NO_ANSWER
                       : s[i].extracted == s[i].correct_letter ? OUT_CORRECT
                                                               : OUT_WRONG;
    }
    fl_abcd_extractor_free(x);

    json_t *result = report(&o, &g, s, n, duration);
    rc = 0;
    if (out) {
        if (json_dumpf(result, out, JSON_INDENT(1) | JSON_PRESERVE_ORDER) != 0 || fputc('\n', out) == EOF)
            rc = 1;
        if (fclose(out) != 0)
            rc = 1;
        if (rc)
            fprintf(stderr, "flashlm bench eval: --output: cannot write '%s'\n", o.output);
    }
    json_decref(result);
    free_samples(s, n);
    fl_gpqa_free(&g);
    return rc;
}
