/* http.c - libmicrohttpd glue: bodies, routing, auth, errors, streaming.
 *
 * Thread per connection: a handler may block while its request runs. A
 * streamed response is a content-reader callback that blocks until the
 * request's stream has an event, and writes SSE. When the client goes away
 * mid-stream, libmicrohttpd frees the response: the request is aborted then,
 * which frees its KV blocks at the engine's next step. */
#include "server/http.h"

#include <arpa/inet.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

#include "base/alloc.h"
#include "base/clock.h"
#include "server/openai.h"

typedef struct conn_ctx {
    fl_strbuf body;
    int too_large;
} conn_ctx;

static enum MHD_Result send_text(struct MHD_Connection *c, unsigned status, const char *type,
                                 const char *text, size_t len)
{
    struct MHD_Response *r = MHD_create_response_from_buffer(len, (void *)text, MHD_RESPMEM_MUST_COPY);
    MHD_add_response_header(r, "Content-Type", type);
    enum MHD_Result ret = MHD_queue_response(c, status, r);
    MHD_destroy_response(r);
    return ret;
}

static enum MHD_Result send_json(struct MHD_Connection *c, unsigned status, json_t *j)
{
    char *text = json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER);
    enum MHD_Result ret = send_text(c, status, "application/json", text, strlen(text));
    free(text);
    json_decref(j);
    return ret;
}

static enum MHD_Result send_error(struct MHD_Connection *c, const fl_api_error *err)
{
    return send_json(c, (unsigned)err->status, fl_api_error_json(err));
}

static enum MHD_Result fail(struct MHD_Connection *c, int status, const char *param, const char *msg)
{
    fl_api_error err;
    fl_api_fail(&err, status, param, "%s", msg);
    return send_error(c, &err);
}

/* Compares without an early exit, so the time taken says nothing of where
 * a wrong key differs. */
static int same_secret(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    unsigned char diff = (unsigned char)(la != lb);
    for (size_t i = 0; i < lb; i++)
        diff |= (unsigned char)((i < la ? a[i] : 0) ^ b[i]);
    return diff == 0;
}

/* ---- running a completion ---- */

typedef struct run_ctx {
    fl_server *srv;
    fl_api_request req;
    fl_stream *stream;
    uint64_t base_id;
    char id[64];
    double t_arrival;
    double *t_last;           /* [choices] time of the last token, 0 before the first */
    int *started;             /* [choices] a chunk was sent (chat's role delta) */
    int prompt_tokens, completion_tokens, cached_tokens;
    fl_strbuf out;            /* SSE bytes not yet written */
    size_t out_pos;
    int finished;             /* [DONE] queued */
} run_ctx;

static void run_free(run_ctx *r)
{
    atomic_fetch_sub(&r->srv->active_runs, 1);
    if (r->stream) {
        if (!fl_stream_done(r->stream)) { /* the client left early: stop the work */
            for (int p = 0; p < r->req.num_prompts; p++)
                fl_engine_abort(r->srv->engine, r->base_id + (uint64_t)p);
            fl_server_kick(r->srv);
        }
        fl_stream_release(r->stream);
    }
    fl_api_request_free(&r->req);
    fl_strbuf_free(&r->out);
    free(r->t_last);
    free(r->started);
    free(r);
}

/* Latency metrics and usage from one event. */
static void account(run_ctx *r, const fl_stream_event *ev)
{
    fl_metrics *m = &r->srv->metrics;
    if (ev->token >= 0) {
        double *last = &r->t_last[ev->choice];
        if (*last == 0)
            fl_metrics_observe(m, &m->ttft, ev->time - r->t_arrival);
        else
            fl_metrics_observe(m, &m->itl, ev->time - *last);
        *last = ev->time;
    }
    if (ev->finish_reason) {
        r->completion_tokens += ev->num_output_tokens;
        if (ev->choice % r->req.sp.n == 0) {
            r->prompt_tokens += ev->num_prompt_tokens;
            r->cached_tokens += ev->num_cached_tokens;
        }
        fl_metrics_observe(m, &m->e2e, ev->time - r->t_arrival);
    }
}

static void append_sse(fl_strbuf *out, json_t *j)
{
    char *text = json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER);
    fl_strbuf_append_str(out, "data: ");
    fl_strbuf_append_str(out, text);
    fl_strbuf_append_str(out, "\n\n");
    free(text);
    json_decref(j);
}

static ssize_t stream_reader(void *cls, uint64_t pos, char *buf, size_t max)
{
    (void)pos;
    run_ctx *r = cls;
    while (r->out_pos == r->out.len) {
        if (r->finished)
            return MHD_CONTENT_READER_END_OF_STREAM;
        r->out.len = r->out_pos = 0;
        fl_stream_event ev;
        if (fl_stream_pop(r->stream, &ev, 1000)) {
            account(r, &ev);
            json_t *chunk = fl_api_stream_chunk(r->srv, &r->req, r->id, &ev, !r->started[ev.choice]);
            if (chunk) {
                r->started[ev.choice] = 1;
                append_sse(&r->out, chunk);
            }
            fl_stream_event_free(&ev);
        } else if (!fl_stream_done(r->stream)) {
            fl_strbuf_append_str(&r->out, ": keep-alive\n\n"); /* also notices a gone client */
        }
        if (fl_stream_done(r->stream) && !r->finished) {
            if (r->req.include_usage)
                append_sse(&r->out, fl_api_usage_chunk(r->srv, &r->req, r->id, r->prompt_tokens,
                                                       r->completion_tokens, r->cached_tokens));
            fl_strbuf_append_str(&r->out, "data: [DONE]\n\n");
            r->finished = 1;
            fl_metrics_request_done(&r->srv->metrics);
        }
    }
    size_t n = r->out.len - r->out_pos < max ? r->out.len - r->out_pos : max;
    memcpy(buf, r->out.data + r->out_pos, n);
    r->out_pos += n;
    return (ssize_t)n;
}

static void stream_free(void *cls)
{
    run_free(cls);
}

static enum MHD_Result run_completion(fl_server *srv, struct MHD_Connection *c, json_t *body, int chat)
{
    run_ctx *r = fl_calloc(1, sizeof *r);
    r->srv = srv;
    atomic_fetch_add(&srv->active_runs, 1);
    r->t_arrival = fl_now_seconds();
    fl_api_error err;
    if (fl_api_parse(srv, body, chat, &r->req, &err) != 0) {
        run_free(r);
        return send_error(c, &err);
    }
    fl_engine_stats st;
    pthread_mutex_lock(&srv->metrics.lock);
    st = srv->metrics.engine;
    pthread_mutex_unlock(&srv->metrics.lock);
    if (st.num_waiting >= srv->cfg.max_waiting_requests) {
        run_free(r);
        return fail(c, 503, NULL, "the server is overloaded: too many requests are waiting");
    }
    const int choices = r->req.num_prompts * r->req.sp.n;
    r->t_last = fl_calloc((size_t)choices, sizeof(double));
    r->started = fl_calloc((size_t)choices, sizeof(int));
    r->stream = fl_stream_open(&srv->streams, r->req.num_prompts, r->req.sp.n, &r->base_id);
    if (!r->stream) {
        run_free(r);
        return fail(c, 503, NULL, "the server is overloaded: too many requests in flight");
    }
    fl_api_response_id(chat, r->base_id, r->id, sizeof r->id);
    for (int p = 0; p < r->req.num_prompts; p++) {
        fl_sampling_params sp = r->req.sp;
        if (sp.max_tokens == 0)
            sp.max_tokens = srv->max_model_len - (int)r->req.prompts[p].len;
        fl_error eerr;
        if (fl_engine_add(srv->engine, r->base_id + (uint64_t)p, r->req.prompts[p].data,
                          (int)r->req.prompts[p].len, &sp, &eerr) != 0) {
            for (int q = 0; q < p; q++)
                fl_engine_abort(srv->engine, r->base_id + (uint64_t)q);
            fl_server_kick(srv);
            if (p == 0)
                fl_stream_forget(&srv->streams, r->stream); /* nothing will report to it */
            else
                fl_stream_release(r->stream);
            r->stream = NULL;
            run_free(r);
            return fail(c, 400, "prompt", eerr.msg);
        }
    }
    fl_server_kick(srv);
    if (r->req.stream) {
        struct MHD_Response *resp = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 16384,
                                                                       stream_reader, r, stream_free);
        MHD_add_response_header(resp, "Content-Type", "text/event-stream");
        MHD_add_response_header(resp, "Cache-Control", "no-cache");
        enum MHD_Result ret = MHD_queue_response(c, MHD_HTTP_OK, resp);
        MHD_destroy_response(resp);
        return ret;
    }
    fl_api_collect col;
    fl_api_collect_init(&col, &r->req);
    while (!fl_stream_done(r->stream)) {
        fl_stream_event ev;
        if (fl_stream_pop(r->stream, &ev, 1000)) {
            account(r, &ev);
            fl_api_collect_add(srv, &col, &r->req, &ev);
            fl_stream_event_free(&ev);
        }
    }
    fl_metrics_request_done(&srv->metrics);
    json_t *resp = fl_api_collect_response(srv, &col, &r->req, r->id);
    fl_api_collect_free(&col);
    run_free(r);
    return send_json(c, MHD_HTTP_OK, resp);
}

/* ---- the other routes ---- */

static enum MHD_Result models(fl_server *srv, struct MHD_Connection *c)
{
    return send_json(c, MHD_HTTP_OK, json_pack("{s:s,s:[{s:s,s:s,s:i,s:s,s:s,s:n,s:i}]}", "object", "list",
        "data", "id", srv->cfg.served_model_name, "object", "model", "created", (int)srv->created,
        "owned_by", "flashlm", "root", srv->model_root, "parent", "max_model_len", srv->max_model_len));
}

static enum MHD_Result tokenize(fl_server *srv, struct MHD_Connection *c, json_t *body)
{
    fl_api_error err;
    if (!json_is_object(body))
        return fail(c, 400, NULL, "the request body must be a JSON object");
    json_t *prompt = json_object_get(body, "prompt"), *msgs = json_object_get(body, "messages");
    fl_ids ids = { 0 };
    if (json_is_string(prompt)) {
        int add_special = 1;
        json_t *v = json_object_get(body, "add_special_tokens");
        if (v && !json_is_boolean(v))
            return fail(c, 400, "add_special_tokens", "'add_special_tokens' must be true or false");
        if (v)
            add_special = json_is_true(v);
        fl_tok_scratch *sc = fl_server_scratch_take(srv);
        fl_tokenizer_encode(srv->tok, sc, json_string_value(prompt), json_string_length(prompt),
                            add_special, &ids);
        fl_server_scratch_give(srv, sc);
    } else if (msgs) {
        fl_api_request req;
        json_t *copy = json_deep_copy(body);
        json_object_set_new(copy, "max_tokens", json_integer(1));
        int rc = fl_api_parse(srv, copy, 1, &req, &err);
        json_decref(copy);
        if (rc != 0)
            return send_error(c, &err);
        for (size_t i = 0; i < req.prompts[0].len; i++)
            fl_ids_push(&ids, req.prompts[0].data[i]);
        fl_api_request_free(&req);
    } else {
        return fail(c, 400, "prompt", "'prompt' (a string) or 'messages' is required");
    }
    json_t *tokens = json_array();
    for (size_t i = 0; i < ids.len; i++)
        json_array_append_new(tokens, json_integer(ids.data[i]));
    json_t *resp = json_pack("{s:i,s:i,s:o,s:n}", "count", (int)ids.len, "max_model_len",
                             srv->max_model_len, "tokens", tokens, "token_strs");
    fl_ids_free(&ids);
    return send_json(c, MHD_HTTP_OK, resp);
}

static enum MHD_Result detokenize(fl_server *srv, struct MHD_Connection *c, json_t *body)
{
    json_t *tokens = json_object_get(body, "tokens");
    if (!json_is_array(tokens))
        return fail(c, 400, "tokens", "'tokens' must be a list of token ids");
    int32_t *ids = fl_malloc((json_array_size(tokens) + 1) * sizeof(int32_t));
    size_t i;
    json_t *t;
    json_array_foreach(tokens, i, t) {
        if (!json_is_integer(t) || json_integer_value(t) < 0 || json_integer_value(t) >= srv->vocab_size) {
            free(ids);
            char msg[128];
            snprintf(msg, sizeof msg, "'tokens'[%zu] is not a token id in [0, %d)", i, srv->vocab_size);
            return fail(c, 400, "tokens", msg);
        }
        ids[i] = (int32_t)json_integer_value(t);
    }
    fl_strbuf text = { 0 };
    fl_tokenizer_decode(srv->tok, ids, json_array_size(tokens), 0, &text);
    free(ids);
    json_t *resp = json_pack("{s:s%}", "prompt", text.data ? text.data : "", text.len);
    fl_strbuf_free(&text);
    return send_json(c, MHD_HTTP_OK, resp);
}

static enum MHD_Result route(fl_server *srv, struct MHD_Connection *c, const char *url,
                             const char *method, conn_ctx *ctx)
{
    const int get = strcmp(method, "GET") == 0, post = strcmp(method, "POST") == 0;
    static const char *const routes[][2] = {
        { "/health", "GET" }, { "/metrics", "GET" }, { "/v1/models", "GET" },
        { "/v1/completions", "POST" }, { "/v1/chat/completions", "POST" },
        { "/tokenize", "POST" }, { "/detokenize", "POST" },
    };
    const char *want = NULL;
    for (size_t i = 0; i < sizeof routes / sizeof routes[0]; i++)
        if (strcmp(url, routes[i][0]) == 0)
            want = routes[i][1];
    if (!want)
        return fail(c, 404, NULL, "Not Found");
    if (strcmp(method, want) != 0)
        return fail(c, 405, NULL, "Method Not Allowed");
    if (strcmp(url, "/health") == 0)
        return srv->ready ? send_text(c, MHD_HTTP_OK, "text/plain", "", 0)
                          : fail(c, 503, NULL, "the model is loading");
    if (strcmp(url, "/metrics") == 0) {
        fl_strbuf m = { 0 };
        fl_metrics_render(&srv->metrics, srv->cfg.served_model_name, &m);
        enum MHD_Result ret = send_text(c, MHD_HTTP_OK, "text/plain; version=0.0.4", m.data, m.len);
        fl_strbuf_free(&m);
        return ret;
    }
    if (srv->cfg.api_key && strncmp(url, "/v1/", 4) == 0) {
        const char *auth = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Authorization");
        if (!auth || strncmp(auth, "Bearer ", 7) != 0 || !same_secret(auth + 7, srv->cfg.api_key))
            return fail(c, 401, NULL, "Unauthorized: a valid API key is required");
    }
    if (!srv->ready || srv->stopping)
        return fail(c, 503, NULL, srv->stopping ? "the server is shutting down" : "the model is loading");
    if (get)
        return models(srv, c);
    (void)post;
    if (ctx->too_large) {
        char msg[128];
        snprintf(msg, sizeof msg, "the request body is larger than %zu bytes", srv->cfg.max_body_bytes);
        return fail(c, 413, NULL, msg);
    }
    json_error_t jerr;
    json_t *body = json_loadb(ctx->body.data ? ctx->body.data : "", ctx->body.len, 0, &jerr);
    if (!body) {
        char msg[256];
        snprintf(msg, sizeof msg, "the request body is not valid JSON: %s (byte %d)", jerr.text, jerr.position);
        return fail(c, 400, NULL, msg);
    }
    enum MHD_Result ret;
    if (strcmp(url, "/tokenize") == 0)
        ret = tokenize(srv, c, body);
    else if (strcmp(url, "/detokenize") == 0)
        ret = detokenize(srv, c, body);
    else
        ret = run_completion(srv, c, body, strcmp(url, "/v1/chat/completions") == 0);
    json_decref(body);
    return ret;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version, const char *upload,
                                  size_t *upload_size, void **con_cls)
{
    (void)version;
    fl_server *srv = cls;
    conn_ctx *ctx = *con_cls;
    if (!ctx) {
        *con_cls = fl_calloc(1, sizeof(conn_ctx));
        return MHD_YES;
    }
    if (*upload_size) {
        if (ctx->body.len + *upload_size > srv->cfg.max_body_bytes)
            ctx->too_large = 1;
        else
            fl_strbuf_append(&ctx->body, upload, *upload_size);
        *upload_size = 0;
        return MHD_YES;
    }
    return route(srv, c, url, method, ctx);
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    (void)cls, (void)c, (void)toe;
    conn_ctx *ctx = *con_cls;
    if (!ctx)
        return;
    fl_strbuf_free(&ctx->body);
    free(ctx);
    *con_cls = NULL;
}

int fl_http_start(fl_server *srv, fl_error *err)
{
    struct sockaddr_in addr = { .sin_family = AF_INET, .sin_port = htons((uint16_t)srv->cfg.port) };
    if (inet_pton(AF_INET, srv->cfg.host, &addr.sin_addr) != 1)
        return fl_fail(err, "--host: '%s' is not an IPv4 address", srv->cfg.host);
    /* no MHD_USE_ERROR_LOG: a client that leaves mid-stream is normal */
    srv->daemon = MHD_start_daemon(MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD,
                                   (uint16_t)srv->cfg.port, NULL, NULL, on_request, srv,
                                   MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&addr,
                                   MHD_OPTION_NOTIFY_COMPLETED, on_completed, srv,
                                   MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)600,
                                   MHD_OPTION_CONNECTION_LIMIT, (unsigned)2048,
                                   MHD_OPTION_END);
    if (!srv->daemon)
        return fl_fail(err, "--host %s --port %d: cannot listen (in use, or not allowed)",
                       srv->cfg.host, srv->cfg.port);
    return 0;
}

void fl_http_quiesce(fl_server *srv)
{
    MHD_quiesce_daemon(srv->daemon);
}

void fl_http_stop(fl_server *srv)
{
    MHD_stop_daemon(srv->daemon);
    srv->daemon = NULL;
}
