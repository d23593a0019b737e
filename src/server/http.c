/* http.c - the HTTP/1.1 server: connections, routing, auth, responses.
 *
 * One event-loop thread holds every connection over epoll, so idle and
 * slow clients cost a descriptor and a small struct, not a thread, and
 * there is no select() limit. Requests whose handling takes CPU (JSON
 * bodies, chat templates, tokenizing, adding to the engine) go to a few
 * worker threads and come back as a whole response or as a completion
 * admitted to the engine; the loop then answers that completion from its
 * stream, which notifies the loop when the engine pushes events. The loop
 * alone touches a connection's socket and buffers.
 *
 * Hostile clients: a head must arrive within HEAD_TIMEOUT of its first
 * byte and a body must keep moving (BODY_IDLE_TIMEOUT); an idle keep-alive
 * connection closes after uvicorn's 5 s; connections are capped in all and
 * per client address; the API key is checked before the route and before
 * any body is read; heads are parsed strictly (http_parse.h) and any error
 * closes the connection. A client that leaves (EOF, reset) aborts its
 * completion, streamed or not. */
#include "server/http.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "base/alloc.h"
#include "base/clock.h"
#include "base/error.h"
#include "base/rng.h"
#include "server/http_parse.h"
#include "server/openai.h"

#define KEEPALIVE_TIMEOUT 5.0   /* uvicorn's timeout_keep_alive, vLLM's default */
#define HEAD_TIMEOUT 10.0       /* a whole head, from its first byte (slow-header clients) */
#define BODY_IDLE_TIMEOUT 30.0  /* no body byte for this long */
#define WRITE_IDLE_TIMEOUT 60.0 /* a client that reads nothing of its response */
#define BODY_TIMEOUT 300.0      /* a whole body (8 MiB at 28 kB/s): a byte every 29 s is not a body */
#define MAX_PENDING_OUT (16u << 20) /* stream bytes a client may leave unread */
#define KEEP_OUT_CAP 65536      /* a drained output buffer larger than this is freed */
#define LINGER_TIMEOUT 2.0     /* reading what a refused client still sends */
#define SWEEP_INTERVAL 0.25     /* seconds between timeout sweeps */
#define READ_CHUNK 65536
#define READS_PER_EVENT 4       /* then the loop serves the others */
#define ACCEPTS_PER_EVENT 256
#define ACCEPT_PAUSE 0.1        /* out of descriptors or memory: the listener rests */

typedef enum {
    C_IDLE,   /* between requests: nothing of the next one read */
    C_HEAD,   /* part of a head read */
    C_BODY,   /* reading the body */
    C_WORK,   /* a worker has the request */
    C_RUN,    /* answering a completion from its stream */
    C_WRITE,  /* a whole response queued, writing it */
    C_LINGER, /* answered and shut down for writing; what the client still sends is read and
                 dropped, so that closing does not reset the answer away (RFC 9112 9.6) */
} conn_state;

typedef enum { R_HEALTH, R_VERSION, R_METRICS, R_MODELS, R_COMPLETIONS, R_CHAT, R_TOKENIZE, R_DETOKENIZE } route_kind;

static const struct route {
    const char *path, *method;
    route_kind kind;
} routes[] = {
    { "/health", "GET", R_HEALTH }, { "/ping", "GET", R_HEALTH }, { "/version", "GET", R_VERSION },
    { "/metrics", "GET", R_METRICS }, { "/v1/models", "GET", R_MODELS },
    { "/v1/completions", "POST", R_COMPLETIONS }, { "/v1/chat/completions", "POST", R_CHAT },
    { "/tokenize", "POST", R_TOKENIZE }, { "/detokenize", "POST", R_DETOKENIZE },
};

/* A completion being answered: its request, stream and what was sent. */
typedef struct run_ctx {
    fl_server *srv;
    fl_api_request req;
    fl_stream *stream;
    uint64_t base_id;
    char id[FL_API_ID_MAX];
    int *started;             /* [choices] a chunk was sent (chat's role delta) */
    int prompt_tokens, completion_tokens, cached_tokens;
    int model_error;          /* a choice ended "error": no token could be sampled */
    fl_api_collect col;       /* non-streamed: the answer so far */
    fl_api_channels ch;       /* the events' text, per choice */
} run_ctx;

typedef struct conn {
    int fd;                   /* -1 once closed (the slot may wait for a worker) */
    uint32_t gen;             /* bumped when the slot is reused: stale tags are ignored */
    conn_state state;
    uint64_t client;          /* the peer address's key in the per-client counts */
    uint32_t events;          /* epoll mask now */
    fl_strbuf in;             /* read, not yet consumed */
    fl_strbuf out;            /* to write; out_pos bytes of it written */
    size_t out_pos;
    fl_http_head head;
    fl_strbuf body;
    fl_http_chunked chunked;
    long long body_left;      /* Content-Length bytes still to read */
    size_t body_limit;
    int authed;               /* a valid API key (or none configured) */
    int close_after;          /* close once out is written */
    int chunked_out;          /* the response is in chunked transfer coding */
    int job_out;              /* a worker holds this connection's request */
    double deadline;          /* the state's timeout; 0 for none */
    double body_deadline;     /* the whole body's */
    size_t head_scanned;      /* bytes of in searched for the head's end */
    double last_write;
    run_ctx *run;
    const fl_server_config *cfg; /* the server's (CORS) */
} conn;

typedef struct http_job {
    uint32_t slot, gen;
    route_kind route;
    fl_strbuf body;
    int authed;
    /* the answer: a whole response, or a completion admitted to the engine */
    int status;
    const char *type;
    fl_strbuf reply;
    run_ctx *run;
    struct http_job *next;
} http_job;

typedef struct job_queue {
    pthread_mutex_t lock;
    pthread_cond_t ready;
    http_job *head, *tail;
} job_queue;

typedef struct fl_http {
    fl_server *srv;
    int epoll_fd, listen_fd, wake_fd;
    pthread_t loop_thread;
    pthread_t *workers;
    int num_workers;
    conn *conns;              /* [max_conns] slots */
    int max_conns, num_conns;
    int *free_slots, num_free;
    fl_u64_map per_client;    /* client key -> open connections */
    job_queue jobs, results;
    int jobs_closed;          /* workers exit when jobs are drained */
    pthread_mutex_t ready_lock; /* streams with events, as (gen << 32 | slot) tags */
    uint64_t *ready;
    int num_ready, cap_ready;
    _Atomic int quiesce, stop;
    double listen_paused_until; /* accept failed for want of resources */
} fl_http;

static void stream_ready(void *ctx, uint64_t tag);

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

static void wake(fl_http *h)
{
    const uint64_t one = 1;
    ssize_t rc = write(h->wake_fd, &one, sizeof one);
    (void)rc; /* a full counter still wakes the loop */
}

static void queue_push(job_queue *q, http_job *j)
{
    j->next = NULL;
    pthread_mutex_lock(&q->lock);
    if (q->tail)
        q->tail->next = j;
    else
        q->head = j;
    q->tail = j;
    pthread_cond_signal(&q->ready);
    pthread_mutex_unlock(&q->lock);
}

/* ---- responses ---- */

static const char *reason_phrase(int status)
{
    switch (status) {
    case 100: return "Continue";
    case 200: return "OK";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 413: return "Content Too Large";
    case 414: return "URI Too Long";
    case 417: return "Expectation Failed";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 503: return "Service Unavailable";
    case 505: return "HTTP Version Not Supported";
    default: return "Unknown";
    }
}

static void error_body(int status, const char *param, const char *msg, fl_strbuf *out)
{
    fl_api_error err;
    fl_api_fail(&err, status, param, "%s", msg);
    json_t *j = fl_api_error_json(&err);
    char *text = json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER);
    fl_strbuf_append_str(out, text);
    free(text);
    json_decref(j);
}

static void json_body(json_t *j, fl_strbuf *out)
{
    char *text = json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER);
    fl_strbuf_append_str(out, text);
    free(text);
    json_decref(j);
}

/* ---- CORS (vLLM's: Starlette's CORSMiddleware, everything allowed by default) ---- */

static const char *const cors_any[] = { "*", NULL };

static int cors_listed(const char *const *list, const char *v, int nocase)
{
    for (int i = 0; list[i]; i++)
        if (strcmp(list[i], "*") == 0 || (nocase ? strcasecmp(list[i], v) : strcmp(list[i], v)) == 0)
            return 1;
    return 0;
}

/* Whether the list allows anything ("*"). */
static int cors_any_of(const char *const *list)
{
    for (int i = 0; list[i]; i++)
        if (strcmp(list[i], "*") == 0)
            return 1;
    return 0;
}

/* The CORS lines of a response to a request with an Origin: nothing for an
 * origin not allowed; "*" when any is, without credentials; else the origin
 * itself, with Vary. */
static void cors_lines(const conn *c, fl_strbuf *out)
{
    const fl_server_config *cfg = c->cfg;
    if (!cfg || !c->head.origin[0])
        return;
    const char *const *origins = cfg->cors_origins ? cfg->cors_origins : cors_any;
    if (!cors_listed(origins, c->head.origin, 0))
        return;
    if (cors_any_of(origins) && !cfg->cors_credentials)
        fl_strbuf_append_str(out, "access-control-allow-origin: *\r\n");
    else
        fl_strbuf_appendf(out, "access-control-allow-origin: %s\r\nvary: Origin\r\n", c->head.origin);
    if (cfg->cors_credentials)
        fl_strbuf_append_str(out, "access-control-allow-credentials: true\r\n");
}

static void queue_head(conn *c, int status, const char *type, long long length)
{
    fl_strbuf_appendf(&c->out, "HTTP/1.%d %d %s\r\n", c->head.minor_version ? 1 : 0, status,
                      reason_phrase(status));
    if (type)
        fl_strbuf_appendf(&c->out, "content-type: %s\r\n", type);
    if (length >= 0) {
        fl_strbuf_appendf(&c->out, "content-length: %lld\r\n", length);
    } else if (c->head.minor_version) {
        fl_strbuf_append_str(&c->out, "transfer-encoding: chunked\r\n");
        c->chunked_out = 1;
    } else {
        c->close_after = 1; /* HTTP/1.0: the end of the body is the end of the connection */
    }
    if (!c->head.keep_alive)
        c->close_after = 1;
    cors_lines(c, &c->out);
    if (c->close_after)
        fl_strbuf_append_str(&c->out, "connection: close\r\n");
    else if (c->head.minor_version == 0)
        fl_strbuf_append_str(&c->out, "connection: keep-alive\r\n"); /* 1.0 closes unless told */
    fl_strbuf_append_str(&c->out, "\r\n");
}

/* A whole response; the connection then waits for it to be written. */
static void respond(conn *c, int status, const char *type, const char *body, size_t len)
{
    queue_head(c, status, type, (long long)len);
    fl_strbuf_append(&c->out, body, len);
    c->state = C_WRITE;
    c->last_write = fl_now_seconds();
}

static void respond_error(conn *c, int status, const char *param, const char *msg)
{
    fl_strbuf b = { 0 };
    error_body(status, param, msg, &b);
    respond(c, status, "application/json", b.data, b.len);
    fl_strbuf_free(&b);
}

/* A piece of a streamed body. */
static void queue_body(conn *c, const char *data, size_t len)
{
    if (len == 0)
        return;
    if (c->chunked_out)
        fl_strbuf_appendf(&c->out, "%zx\r\n", len);
    fl_strbuf_append(&c->out, data, len);
    if (c->chunked_out)
        fl_strbuf_append_str(&c->out, "\r\n");
}

/* ---- completions ---- */

static void run_free(run_ctx *r)
{
    atomic_fetch_sub(&r->srv->active_runs, 1);
    if (r->stream) {
        if (!fl_stream_done(r->stream)) { /* the client left early: stop the work */
            if (r->srv->cfg.enable_log_requests)
                fl_metrics_log_finished(stderr, r->id, 1);
            for (int p = 0; p < r->req.num_prompts; p++)
                fl_engine_abort(r->srv->engine, r->base_id + (uint64_t)p);
            fl_server_kick(r->srv);
        }
        fl_stream_release(r->stream);
    }
    if (!r->req.stream && r->col.text)
        fl_api_collect_free(&r->col);
    fl_api_channels_free(&r->ch);
    fl_api_request_free(&r->req);
    free(r->started);
    free(r);
}

/* Usage from one event (the metrics come from the engine's outputs:
 * server.c). */
static void account(run_ctx *r, const fl_stream_event *ev)
{
    if (ev->finish_reason) {
        r->completion_tokens += ev->num_output_tokens;
        if (ev->choice % r->req.sp.n == 0) {
            r->prompt_tokens += ev->num_prompt_tokens;
            r->cached_tokens += ev->num_cached_tokens;
        }
        if (strcmp(ev->finish_reason, "error") == 0)
            r->model_error = 1;
    }
}

static const char model_error_msg[] = "the model produced no token that can be sampled (every "
                                      "logit -inf or NaN): the weights or the request's bans";

static void append_sse(fl_strbuf *out, json_t *j)
{
    char *text = json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER);
    fl_strbuf_append_str(out, "data: ");
    fl_strbuf_append_str(out, text);
    fl_strbuf_append_str(out, "\n\n");
    free(text);
    json_decref(j);
}

/* Worker: validates, tokenizes and admits a completion. 0 and *out, or -1
 * with the error response in job. */
static int start_completion(fl_http *h, http_job *job, json_t *body, int chat)
{
    fl_server *srv = h->srv;
    run_ctx *r = fl_calloc(1, sizeof *r);
    r->srv = srv;
    atomic_fetch_add(&srv->active_runs, 1);
    fl_api_error err;
    if (fl_api_parse(srv, body, chat ? FL_API_CHAT : FL_API_COMPLETION, &r->req, &err) != 0) {
        run_free(r);
        job->status = err.status;
        error_body(err.status, err.param, err.message, &job->reply);
        return -1;
    }
    const int choices = r->req.num_prompts * r->req.sp.n;
    fl_api_channels_init(&r->ch, srv, &r->req);
    r->started = fl_calloc((size_t)choices, sizeof(int));
    r->stream = fl_stream_open(&srv->streams, r->req.num_prompts, r->req.sp.n, &r->base_id,
                               stream_ready, h, (uint64_t)job->gen << 32 | job->slot);
    if (!r->stream) {
        run_free(r);
        job->status = 503;
        error_body(503, NULL, "the server is overloaded: too many requests in flight", &job->reply);
        return -1;
    }
    fl_api_response_id(&r->req, r->id, sizeof r->id);
    const int32_t **prompts = fl_malloc((size_t)r->req.num_prompts * sizeof *prompts);
    int *lens = fl_malloc((size_t)r->req.num_prompts * sizeof *lens);
    for (int p = 0; p < r->req.num_prompts; p++) {
        prompts[p] = r->req.prompts[p].data;
        lens[p] = (int)r->req.prompts[p].len;
    }
    /* max_tokens 0 (chat's default, one prompt) is the rest of the context */
    fl_sampling_params sp = r->req.sp;
    if (sp.max_tokens == 0) {
        FL_ASSERT(r->req.num_prompts == 1);
        sp.max_tokens = srv->max_model_len - lens[0];
    }
    fl_error eerr;
    const int rc = fl_engine_add_prompts(srv->engine, r->base_id, r->req.num_prompts, prompts, lens,
                                         &sp, &eerr);
    free(prompts);
    free(lens);
    if (rc != 0) { /* nothing was added: both references go */
        fl_stream_forget(&srv->streams, r->stream);
        fl_stream_release(r->stream);
        r->stream = NULL;
        run_free(r);
        job->status = rc == FL_ENGINE_BUSY ? 503 : 400;
        error_body(job->status, rc == FL_ENGINE_BUSY ? NULL : "prompt", eerr.msg, &job->reply);
        return -1;
    }
    if (srv->cfg.enable_log_requests)
        for (int p = 0; p < r->req.num_prompts; p++)
            fl_metrics_log_received(stderr, r->id, p, r->req.prompts[p].data, (int)r->req.prompts[p].len, &sp);
    if (!r->req.stream)
        fl_api_collect_init(&r->col, &r->req);
    fl_server_kick(srv);
    job->run = r;
    return 0;
}

/* Loop: every event the stream has; the end of the response once it is
 * done. */
static void drain_run(conn *c)
{
    run_ctx *r = c->run;
    fl_server *srv = r->srv;
    fl_strbuf sse = { 0 };
    fl_stream_event ev;
    while (fl_stream_pop(r->stream, &ev)) {
        account(r, &ev);
        if (r->req.stream) {
            json_t *chunk = fl_api_stream_chunk(srv, &r->req, &r->ch, r->id, &ev,
                                                !r->started[ev.choice]);
            if (chunk) {
                r->started[ev.choice] = 1;
                append_sse(&sse, chunk);
            }
        } else {
            fl_api_collect_add(srv, &r->col, &r->req, &r->ch, &ev);
        }
        fl_stream_event_free(&ev);
    }
    const int done = fl_stream_done(r->stream);
    if (r->req.stream) {
        if (done) {
            if (r->model_error) {
                fl_strbuf_append_str(&sse, "data: ");
                error_body(500, NULL, model_error_msg, &sse);
                fl_strbuf_append_str(&sse, "\n\n");
            }
            if (r->req.include_usage)
                append_sse(&sse, fl_api_usage_chunk(srv, &r->req, r->id, r->prompt_tokens,
                                                    r->completion_tokens, r->cached_tokens));
            fl_strbuf_append_str(&sse, "data: [DONE]\n\n");
        }
        queue_body(c, sse.data, sse.len);
        if (done && c->chunked_out)
            fl_strbuf_append_str(&c->out, "0\r\n\r\n");
        if (done) {
            c->state = C_WRITE;
            c->last_write = fl_now_seconds();
        }
    } else if (done) {
        if (r->model_error) {
            respond_error(c, 500, NULL, model_error_msg);
        } else {
            fl_strbuf b = { 0 };
            json_body(fl_api_collect_response(srv, &r->col, &r->req, r->id), &b);
            respond(c, 200, "application/json", b.data, b.len);
            fl_strbuf_free(&b);
        }
    }
    fl_strbuf_free(&sse);
    if (done) {
        if (srv->cfg.enable_log_requests)
            fl_metrics_log_finished(stderr, r->id, 0);
        run_free(r);
        c->run = NULL;
    }
}

/* ---- the other routes (workers) ---- */

static void tokenize(fl_server *srv, json_t *body, http_job *job)
{
    json_t *prompt = json_object_get(body, "prompt"), *msgs = json_object_get(body, "messages");
    fl_ids ids = { 0 };
    if (json_is_string(prompt)) {
        int add_special = 1;
        json_t *v = json_object_get(body, "add_special_tokens");
        if (v && !json_is_boolean(v)) {
            job->status = 400;
            error_body(400, "add_special_tokens", "'add_special_tokens' must be true or false", &job->reply);
            return;
        }
        if (v)
            add_special = json_is_true(v);
        fl_tok_scratch *sc = fl_server_scratch_take(srv);
        fl_tokenizer_encode(srv->tok, sc, json_string_value(prompt), json_string_length(prompt),
                            add_special, &ids);
        fl_server_scratch_give(srv, sc);
    } else if (msgs) {
        fl_api_request req;
        fl_api_error err;
        json_t *copy = json_deep_copy(body);
        json_object_set_new(copy, "max_tokens", json_integer(1));
        int rc = fl_api_parse(srv, copy, FL_API_TOKENIZE_CHAT, &req, &err);
        json_decref(copy);
        if (rc != 0) {
            job->status = err.status;
            error_body(err.status, err.param, err.message, &job->reply);
            return;
        }
        for (size_t i = 0; i < req.prompts[0].len; i++)
            fl_ids_push(&ids, req.prompts[0].data[i]);
        fl_api_request_free(&req);
    } else {
        job->status = 400;
        error_body(400, "prompt", "'prompt' (a string) or 'messages' is required", &job->reply);
        return;
    }
    json_t *tokens = json_array();
    for (size_t i = 0; i < ids.len; i++)
        json_array_append_new(tokens, json_integer(ids.data[i]));
    job->status = 200;
    json_body(json_pack("{s:i,s:i,s:o,s:n}", "count", (int)ids.len, "max_model_len", srv->max_model_len,
                        "tokens", tokens, "token_strs"), &job->reply);
    fl_ids_free(&ids);
}

static void detokenize(fl_server *srv, json_t *body, http_job *job)
{
    json_t *tokens = json_object_get(body, "tokens");
    job->status = 400;
    if (!json_is_array(tokens)) {
        error_body(400, "tokens", "'tokens' must be a list of token ids", &job->reply);
        return;
    }
    int32_t *ids = fl_malloc((json_array_size(tokens) + 1) * sizeof(int32_t));
    size_t i;
    json_t *t;
    json_array_foreach(tokens, i, t) {
        if (!json_is_integer(t) || json_integer_value(t) < 0 || json_integer_value(t) >= srv->vocab_size) {
            free(ids);
            char msg[128];
            snprintf(msg, sizeof msg, "'tokens'[%zu] is not a token id in [0, %d)", i, srv->vocab_size);
            error_body(400, "tokens", msg, &job->reply);
            return;
        }
        ids[i] = (int32_t)json_integer_value(t);
    }
    fl_strbuf text = { 0 };
    fl_tokenizer_decode(srv->tok, ids, json_array_size(tokens), 0, &text);
    free(ids);
    job->status = 200;
    json_body(json_pack("{s:s%}", "prompt", text.data ? text.data : "", text.len), &job->reply);
    fl_strbuf_free(&text);
}

static void handle_job(fl_http *h, http_job *job)
{
    fl_server *srv = h->srv;
    job->type = "application/json";
    if (!srv->ready || srv->stopping) {
        job->status = 503;
        error_body(503, NULL, srv->stopping ? "the server is shutting down" : "the model is loading",
                   &job->reply);
        return;
    }
    json_error_t jerr;
    json_t *body = json_loadb(job->body.data ? job->body.data : "", job->body.len, 0, &jerr);
    fl_strbuf_free(&job->body);
    if (!body) {
        char msg[256];
        snprintf(msg, sizeof msg, "the request body is not valid JSON: %s (byte %d)", jerr.text, jerr.position);
        job->status = 400;
        error_body(400, NULL, msg, &job->reply);
        return;
    }
    if (!json_is_object(body)) {
        job->status = 400;
        error_body(400, NULL, "the request body must be a JSON object", &job->reply);
    } else if (job->route == R_TOKENIZE) {
        tokenize(srv, body, job);
    } else if (job->route == R_DETOKENIZE) {
        detokenize(srv, body, job);
    } else {
        start_completion(h, job, body, job->route == R_CHAT);
    }
    json_decref(body);
}

static void *worker_main(void *arg)
{
    fl_http *h = arg;
    job_queue *q = &h->jobs;
    for (;;) {
        pthread_mutex_lock(&q->lock);
        while (!q->head && !h->jobs_closed)
            pthread_cond_wait(&q->ready, &q->lock);
        http_job *job = q->head;
        if (job) {
            q->head = job->next;
            if (!q->head)
                q->tail = NULL;
        }
        pthread_mutex_unlock(&q->lock);
        if (!job)
            return NULL;
        handle_job(h, job);
        queue_push(&h->results, job);
        wake(h);
    }
}

/* Engine thread (under the stream's lock): the connection behind tag has
 * events to send. */
static void stream_ready(void *ctx, uint64_t tag)
{
    fl_http *h = ctx;
    pthread_mutex_lock(&h->ready_lock);
    if (h->num_ready == h->cap_ready) {
        h->cap_ready = h->cap_ready ? 2 * h->cap_ready : 256;
        h->ready = fl_realloc(h->ready, (size_t)h->cap_ready * sizeof(uint64_t));
    }
    h->ready[h->num_ready++] = tag;
    pthread_mutex_unlock(&h->ready_lock);
    wake(h);
}

/* ---- connections ---- */

static void set_events(fl_http *h, conn *c)
{
    if (c->fd < 0)
        return;
    /* reading stops while a request is answered and a pipelined one waits
     * in full; EPOLLRDHUP still says when the client leaves */
    const int busy = c->state == C_WORK || c->state == C_RUN || c->state == C_WRITE;
    uint32_t ev = EPOLLRDHUP;
    if (!(busy && c->in.len > FL_HTTP_MAX_HEAD_BYTES))
        ev |= EPOLLIN;
    if (c->out_pos < c->out.len)
        ev |= EPOLLOUT;
    if (ev != c->events) {
        struct epoll_event e = { .events = ev, .data.u32 = (uint32_t)(c - h->conns) };
        epoll_ctl(h->epoll_fd, EPOLL_CTL_MOD, c->fd, &e);
        c->events = ev;
    }
}

static void release_slot(fl_http *h, conn *c)
{
    fl_strbuf_free(&c->in);
    fl_strbuf_free(&c->out);
    fl_strbuf_free(&c->body);
    uint64_t n = 0;
    fl_u64_map_get(&h->per_client, c->client, &n);
    if (n <= 1)
        fl_u64_map_remove(&h->per_client, c->client);
    else
        fl_u64_map_put(&h->per_client, c->client, n - 1);
    const uint32_t gen = c->gen + 1;
    memset(c, 0, sizeof *c);
    c->fd = -1;
    c->gen = gen;
    h->free_slots[h->num_free++] = (int)(c - h->conns);
    h->num_conns--;
}

/* Closes the socket; a completion in flight is aborted. The slot waits for
 * a worker that still holds the request. */
static void close_conn(fl_http *h, conn *c)
{
    if (c->fd >= 0) {
        close(c->fd); /* also leaves the epoll set */
        c->fd = -1;
    }
    if (c->run) {
        run_free(c->run);
        c->run = NULL;
    }
    if (!c->job_out)
        release_slot(h, c);
}

static void parse_input(fl_http *h, conn *c);

static void flush_out(fl_http *h, conn *c)
{
    while (c->out_pos < c->out.len) {
        ssize_t n = send(c->fd, c->out.data + c->out_pos, c->out.len - c->out_pos, MSG_NOSIGNAL);
        if (n > 0) {
            c->out_pos += (size_t)n;
            c->last_write = fl_now_seconds();
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            break;
        close_conn(h, c); /* the client is gone */
        return;
    }
    if (c->out_pos == c->out.len) {
        if (c->out.cap > KEEP_OUT_CAP)
            fl_strbuf_free(&c->out); /* one big answer does not pin its buffer */
        else
            fl_strbuf_clear(&c->out);
        c->out_pos = 0;
    } else if (c->state == C_RUN && c->out.len - c->out_pos > MAX_PENDING_OUT) {
        close_conn(h, c); /* it reads nothing of a stream that keeps coming */
        return;
    }
    set_events(h, c);
}

/* After reading or answering: write what is queued; once a whole response
 * is out, close or take the next request (pipelined ones loop here, not
 * recurse). */
static void after_io(fl_http *h, conn *c)
{
    while (c->fd >= 0) {
        if (c->out_pos < c->out.len) {
            flush_out(h, c);
            if (c->fd < 0 || c->out_pos < c->out.len)
                return;
        }
        if (c->state != C_WRITE) {
            set_events(h, c);
            return;
        }
        if (c->close_after) {
            shutdown(c->fd, SHUT_WR);
            c->state = C_LINGER;
            c->deadline = fl_now_seconds() + LINGER_TIMEOUT;
            fl_strbuf_free(&c->in);
            set_events(h, c);
            return;
        }
        fl_strbuf_free(&c->body);
        memset(&c->head, 0, sizeof c->head);
        c->chunked_out = 0;
        c->state = C_IDLE;
        c->deadline = fl_now_seconds() + KEEPALIVE_TIMEOUT;
        if (c->in.len == 0)
            fl_strbuf_free(&c->in); /* idle connections hold no buffers */
        parse_input(h, c);
    }
}

/* An error found in the request itself: answered, then the connection is
 * closed (what follows cannot be trusted to be a request). */
static void refuse(conn *c, int status, const char *msg)
{
    c->close_after = 1;
    respond_error(c, status, NULL, msg);
}

static void body_bytes(void *ctx, const char *data, size_t n)
{
    conn *c = ctx;
    if (c->body.len + n <= c->body_limit)
        fl_strbuf_append(&c->body, data, n);
    else
        c->body_limit = 0; /* marks it too large; the rest is decoded and dropped */
}

static const struct route *find_route(const char *path)
{
    for (size_t i = 0; i < sizeof routes / sizeof routes[0]; i++)
        if (strcmp(path, routes[i].path) == 0)
            return &routes[i];
    return NULL;
}

/* Cheap routes answer on the loop; the rest go to a worker. */
static void dispatch(fl_http *h, conn *c)
{
    fl_server *srv = h->srv;
    const struct route *rt = find_route(c->head.path);
    if (rt->kind == R_HEALTH) {
        if (srv->ready)
            respond(c, 200, "text/plain", "", 0);
        else
            respond_error(c, 503, NULL, "the model is loading");
        return;
    }
    if (rt->kind == R_VERSION) { /* vLLM's {"version": ...} */
        static const char version[] = "{\"version\":\"" FLASHLM_VERSION "\"}";
        respond(c, 200, "application/json", version, sizeof version - 1);
        return;
    }
    if (rt->kind == R_METRICS) {
        fl_strbuf m = { 0 };
        fl_metrics_render(&srv->metrics, srv->cfg.served_model_name, &m);
        respond(c, 200, "text/plain; version=0.0.4", m.data ? m.data : "", m.len);
        fl_strbuf_free(&m);
        return;
    }
    if (!srv->ready || srv->stopping) {
        respond_error(c, 503, NULL, srv->stopping ? "the server is shutting down" : "the model is loading");
        return;
    }
    if (rt->kind == R_MODELS) {
        fl_strbuf b = { 0 };
        /* one entry a served name, the first first, as vLLM lists them */
        json_t *data = json_array();
        const int names = srv->cfg.num_served_model_names ? srv->cfg.num_served_model_names : 1;
        for (int i = 0; i < names; i++)
            json_array_append_new(data, json_pack("{s:s,s:s,s:i,s:s,s:s,s:n,s:i}", "id",
                                  srv->cfg.num_served_model_names ? srv->cfg.served_model_names[i]
                                                                  : srv->cfg.served_model_name,
                                  "object", "model", "created", (int)srv->created, "owned_by", "flashlm",
                                  "root", srv->model_root, "parent", "max_model_len", srv->max_model_len));
        json_body(json_pack("{s:s,s:o}", "object", "list", "data", data), &b);
        respond(c, 200, "application/json", b.data, b.len);
        fl_strbuf_free(&b);
        return;
    }
    http_job *job = fl_calloc(1, sizeof *job);
    job->slot = (uint32_t)(c - h->conns);
    job->gen = c->gen;
    job->route = rt->kind;
    job->body = c->body;
    job->authed = c->authed;
    memset(&c->body, 0, sizeof c->body);
    c->state = C_WORK;
    c->deadline = 0;
    c->job_out = 1;
    queue_push(&h->jobs, job);
}

/* A CORS preflight (OPTIONS with Origin and Access-Control-Request-Method),
 * answered before the API key as vLLM's middleware does: 200 with what is
 * allowed, or 400 naming what is not. */
static void preflight(conn *c)
{
    const fl_server_config *cfg = c->cfg;
    const fl_http_head *hd = &c->head;
    const char *const *origins = cfg->cors_origins ? cfg->cors_origins : cors_any;
    const char *const *methods = cfg->cors_methods ? cfg->cors_methods : cors_any;
    const char *const *headers = cfg->cors_headers ? cfg->cors_headers : cors_any;
    fl_strbuf why = { 0 };
    if (!cors_listed(origins, hd->origin, 0))
        fl_strbuf_append_str(&why, "origin");
    if (!cors_listed(methods, hd->cors_method, 0))
        fl_strbuf_appendf(&why, "%smethod", why.len ? ", " : "");
    if (!cors_any_of(headers)) {
        char list[sizeof hd->cors_headers];
        memcpy(list, hd->cors_headers, sizeof list);
        for (char *save, *t = strtok_r(list, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
            while (*t == ' ' || *t == '\t')
                t++;
            size_t n = strlen(t);
            while (n && (t[n - 1] == ' ' || t[n - 1] == '\t'))
                t[--n] = '\0';
            static const char *const safelisted[] = { "accept", "accept-language", "content-language",
                                                      "content-type", NULL };
            if (n && !cors_listed(headers, t, 1) && !cors_listed(safelisted, t, 1)) {
                fl_strbuf_appendf(&why, "%sheaders", why.len ? ", " : "");
                break;
            }
        }
    }
    if (why.len) {
        fl_strbuf body = { 0 };
        fl_strbuf_appendf(&body, "Disallowed CORS %s", why.data);
        c->cfg = NULL; /* no CORS lines on a refusal */
        respond(c, 400, "text/plain; charset=utf-8", body.data, body.len);
        c->cfg = cfg;
        fl_strbuf_free(&body);
        fl_strbuf_free(&why);
        return;
    }
    fl_strbuf_free(&why);
    fl_strbuf_appendf(&c->out, "HTTP/1.%d 200 OK\r\ncontent-type: text/plain; charset=utf-8\r\n"
                      "content-length: 2\r\naccess-control-max-age: 600\r\n", hd->minor_version ? 1 : 0);
    if (cors_any_of(methods)) {
        fl_strbuf_append_str(&c->out, "access-control-allow-methods: DELETE, GET, HEAD, OPTIONS, PATCH, POST, PUT\r\n");
    } else {
        fl_strbuf_append_str(&c->out, "access-control-allow-methods: ");
        for (int i = 0; methods[i]; i++)
            fl_strbuf_appendf(&c->out, "%s%s", i ? ", " : "", methods[i]);
        fl_strbuf_append_str(&c->out, "\r\n");
    }
    if (cors_any_of(headers) && hd->cors_headers[0]) {
        fl_strbuf_appendf(&c->out, "access-control-allow-headers: %s\r\n", hd->cors_headers);
    } else if (!cors_any_of(headers)) {
        fl_strbuf_append_str(&c->out, "access-control-allow-headers: Accept, Accept-Language, Content-Language, Content-Type");
        for (int i = 0; headers[i]; i++)
            fl_strbuf_appendf(&c->out, ", %s", headers[i]);
        fl_strbuf_append_str(&c->out, "\r\n");
    }
    if (!hd->keep_alive || c->close_after) {
        c->close_after = 1;
        fl_strbuf_append_str(&c->out, "connection: close\r\n");
    }
    /* the origin lines: "*", or the origin itself when the list is explicit or credentials are allowed */
    if (!cors_any_of(origins) || cfg->cors_credentials)
        fl_strbuf_appendf(&c->out, "access-control-allow-origin: %s\r\nvary: Origin\r\n", hd->origin);
    else
        fl_strbuf_append_str(&c->out, "access-control-allow-origin: *\r\n");
    if (cfg->cors_credentials)
        fl_strbuf_append_str(&c->out, "access-control-allow-credentials: true\r\n");
    fl_strbuf_append_str(&c->out, "\r\nOK");
    c->state = C_WRITE;
    c->last_write = fl_now_seconds();
}

/* A head has arrived: route, key, limits, then the body or the answer. */
static void start_request(fl_http *h, conn *c)
{
    fl_server *srv = h->srv;
    const fl_http_head *hd = &c->head;
    const int has_body = hd->chunked || hd->content_length > 0;
    if (has_body)
        c->close_after = 1; /* until the body is read: an early answer closes */
    if (strcmp(hd->method, "OPTIONS") == 0 && hd->origin[0] && hd->cors_method[0]) {
        preflight(c);
        return;
    }
    const char *key = srv->cfg.api_key;
    const int is_api = strncmp(hd->path, "/v1/", 4) == 0 || strcmp(hd->path, "/v1") == 0;
    c->authed = !key || (strncmp(hd->authorization, "Bearer ", 7) == 0 &&
                         same_secret(hd->authorization + 7, key));
    if (is_api && !c->authed) {
        respond_error(c, 401, NULL, "Unauthorized: a valid API key is required");
        return;
    }
    const struct route *rt = find_route(hd->path);
    if (!rt) {
        respond_error(c, 404, NULL, "Not Found");
        return;
    }
    const int post_ping = strcmp(hd->path, "/ping") == 0 && strcmp(hd->method, "POST") == 0; /* as vLLM */
    if (strcmp(hd->method, rt->method) != 0 && !post_ping) {
        respond_error(c, 405, NULL, "Method Not Allowed");
        return;
    }
    /* /tokenize and /detokenize need no key (as vLLM's); without one, what
     * they may cost is small */
    c->body_limit = c->authed ? srv->cfg.max_body_bytes : srv->cfg.max_unauthenticated_body_bytes;
    if (hd->content_length > (long long)c->body_limit) {
        char msg[160];
        snprintf(msg, sizeof msg, "the request body is larger than %zu bytes%s", c->body_limit,
                 c->authed ? "" : " (without the API key)");
        respond_error(c, 413, NULL, msg);
        return;
    }
    if (!has_body) {
        c->close_after = 0;
        dispatch(h, c);
        return;
    }
    if (hd->expect_continue && hd->minor_version == 1) /* no 1xx to an HTTP/1.0 client */
        fl_strbuf_append_str(&c->out, "HTTP/1.1 100 Continue\r\n\r\n");
    memset(&c->chunked, 0, sizeof c->chunked);
    c->body_left = hd->chunked ? -1 : hd->content_length;
    c->state = C_BODY;
    c->deadline = fl_now_seconds() + BODY_IDLE_TIMEOUT;
    c->body_deadline = fl_now_seconds() + BODY_TIMEOUT;
}

static void consume_in(conn *c, size_t n)
{
    c->head_scanned = 0;
    if (n == c->in.len) {
        fl_strbuf_free(&c->in); /* a connection between reads holds no buffer */
        return;
    }
    memmove(c->in.data, c->in.data + n, c->in.len - n);
    c->in.len -= n;
    c->in.data[c->in.len] = '\0';
}

/* Has the head's blank line arrived? Searches only the new bytes, so a head
 * sent a byte at a time costs linear time, not quadratic. */
static int head_complete(conn *c)
{
    size_t from = c->head_scanned > 3 ? c->head_scanned - 3 : 0;
    for (size_t i = from; i + 1 < c->in.len; i++)
        if (c->in.data[i] == '\n' && (c->in.data[i + 1] == '\n' ||
                                       (c->in.data[i + 1] == '\r' && i + 2 < c->in.len &&
                                        c->in.data[i + 2] == '\n')))
            return 1;
    c->head_scanned = c->in.len;
    return c->in.len > FL_HTTP_MAX_HEAD_BYTES; /* the parser answers 431 */
}

/* Moves the connection on with the bytes it has read. */
static void parse_input(fl_http *h, conn *c)
{
    for (;;) {
        if (c->fd < 0)
            return;
        if ((c->state == C_IDLE || c->state == C_HEAD) && c->in.len > 0) {
            if (c->state == C_IDLE) {
                c->state = C_HEAD;
                c->deadline = fl_now_seconds() + HEAD_TIMEOUT;
            }
            if (!head_complete(c))
                break;
            int status;
            char msg[256];
            int n = fl_http_parse_head(c->in.data, c->in.len, &c->head, &status, msg, sizeof msg);
            if (n == 0) { /* the blank line was a leading one: search on from here */
                c->head_scanned = c->in.len;
                break;
            }
            if (n < 0) {
                refuse(c, status, msg);
                break;
            }
            consume_in(c, (size_t)n);
            start_request(h, c);
            continue;
        }
        if (c->state == C_BODY && c->in.len > 0) {
            size_t used;
            int done;
            if (c->body_left >= 0) {
                used = (size_t)c->body_left < c->in.len ? (size_t)c->body_left : c->in.len;
                body_bytes(c, c->in.data, used);
                c->body_left -= (long long)used;
                done = c->body_left == 0;
            } else {
                char msg[128];
                long k = fl_http_chunked_feed(&c->chunked, c->in.data, c->in.len, body_bytes, c, &done,
                                              msg, sizeof msg);
                if (k < 0) {
                    refuse(c, 400, msg);
                    break;
                }
                used = (size_t)k;
            }
            consume_in(c, used);
            c->deadline = fl_now_seconds() + BODY_IDLE_TIMEOUT;
            if (c->deadline > c->body_deadline)
                c->deadline = c->body_deadline;
            if (c->body_limit == 0) {
                refuse(c, 413, "the request body is too large");
                break;
            }
            if (!done)
                break;
            c->close_after = 0;
            dispatch(h, c);
            continue;
        }
        break;
    }
}

static void on_readable(fl_http *h, conn *c)
{
    if (c->state == C_LINGER) {
        char drop[READ_CHUNK];
        ssize_t n;
        while ((n = recv(c->fd, drop, sizeof drop, 0)) > 0)
            ;
        if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR))
            close_conn(h, c);
        return;
    }
    const int busy = c->state == C_WORK || c->state == C_RUN || c->state == C_WRITE;
    for (int reads = 0; reads < READS_PER_EVENT; reads++) {
        if (busy && c->in.len > FL_HTTP_MAX_HEAD_BYTES)
            break; /* a pipelined request waits; set_events stops reading */
        char buf[READ_CHUNK]; /* only what arrived is kept: a slow client holds bytes, not 64 KiB */
        ssize_t n = recv(c->fd, buf, sizeof buf, 0);
        if (n > 0) {
            fl_strbuf_append(&c->in, buf, (size_t)n);
            if ((c->state == C_IDLE || c->state == C_HEAD) && c->in.len > FL_HTTP_MAX_HEAD_BYTES)
                break; /* enough to refuse */
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            break;
        close_conn(h, c); /* EOF or reset: the client has gone */
        return;
    }
    parse_input(h, c);
    after_io(h, c);
}

/* ---- the loop ---- */

static uint64_t client_key(const struct sockaddr_storage *a)
{
    if (a->ss_family == AF_INET)
        return (uint64_t)((const struct sockaddr_in *)a)->sin_addr.s_addr | (1ull << 32);
    const uint8_t *b = ((const struct sockaddr_in6 *)a)->sin6_addr.s6_addr;
    uint64_t hi, lo;
    memcpy(&hi, b, 8);
    memcpy(&lo, b + 8, 8);
    return fl_rng_mix(hi ^ fl_rng_mix(lo)) | (1ull << 63);
}

/* Over a limit: a 503 written once, best effort, then closed. */
static void turn_away(int fd, const char *msg)
{
    char buf[512];
    fl_strbuf b = { 0 };
    error_body(503, NULL, msg, &b);
    int n = snprintf(buf, sizeof buf, "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\n"
                     "content-length: %zu\r\nconnection: close\r\n\r\n%s", b.len, b.data);
    fl_strbuf_free(&b);
    if (n > 0 && (size_t)n < sizeof buf && send(fd, buf, (size_t)n, MSG_NOSIGNAL | MSG_DONTWAIT) < 0) {
        /* the client is gone already */
    }
    close(fd);
}

static void listener_events(fl_http *h, uint32_t events)
{
    struct epoll_event e = { .events = events, .data.u32 = UINT32_MAX - 1 };
    epoll_ctl(h->epoll_fd, EPOLL_CTL_MOD, h->listen_fd, &e);
}

static void accept_all(fl_http *h)
{
    for (int k = 0; k < ACCEPTS_PER_EVENT; k++) {
        struct sockaddr_storage addr;
        socklen_t len = sizeof addr;
        int fd = accept4(h->listen_fd, (struct sockaddr *)&addr, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
                /* the listener stays readable: rest it rather than spin */
                listener_events(h, 0);
                h->listen_paused_until = fl_now_seconds() + ACCEPT_PAUSE;
            }
            return;
        }
        const uint64_t key = client_key(&addr);
        uint64_t n = 0;
        fl_u64_map_get(&h->per_client, key, &n);
        if (h->num_free == 0) {
            turn_away(fd, "the server holds as many connections as it allows");
            continue;
        }
        if ((int)n >= h->srv->cfg.max_connections_per_client) {
            turn_away(fd, "this client holds as many connections as the server allows one client");
            continue;
        }
        fl_u64_map_put(&h->per_client, key, n + 1);
        conn *c = &h->conns[h->free_slots[--h->num_free]];
        h->num_conns++;
        c->fd = fd;
        c->cfg = &h->srv->cfg;
        c->client = key;
        c->state = C_IDLE;
        c->deadline = fl_now_seconds() + KEEPALIVE_TIMEOUT;
        c->events = EPOLLIN | EPOLLRDHUP;
        struct epoll_event e = { .events = c->events, .data.u32 = (uint32_t)(c - h->conns) };
        epoll_ctl(h->epoll_fd, EPOLL_CTL_ADD, fd, &e);
    }
}

static conn *by_tag(fl_http *h, uint64_t tag)
{
    const uint32_t slot = (uint32_t)tag, gen = (uint32_t)(tag >> 32);
    if (slot >= (uint32_t)h->max_conns || h->conns[slot].gen != gen)
        return NULL;
    return &h->conns[slot];
}

/* Workers' answers: a response to write, or a completion to follow. */
static void take_results(fl_http *h)
{
    pthread_mutex_lock(&h->results.lock);
    http_job *list = h->results.head;
    h->results.head = h->results.tail = NULL;
    pthread_mutex_unlock(&h->results.lock);
    while (list) {
        http_job *job = list;
        list = job->next;
        conn *c = by_tag(h, (uint64_t)job->gen << 32 | job->slot);
        FL_ASSERT(c && c->job_out);
        c->job_out = 0;
        if (c->fd < 0) { /* the client left while the worker had it */
            if (job->run)
                run_free(job->run);
            release_slot(h, c);
        } else if (job->run) {
            c->run = job->run;
            c->state = C_RUN;
            if (c->run->req.stream)
                queue_head(c, 200, "text/event-stream", -1);
            drain_run(c); /* events that came before the loop knew the run */
            after_io(h, c);
        } else {
            respond(c, job->status, job->type, job->reply.data ? job->reply.data : "", job->reply.len);
            after_io(h, c);
        }
        fl_strbuf_free(&job->reply);
        fl_strbuf_free(&job->body);
        free(job);
    }
}

static void take_ready(fl_http *h)
{
    pthread_mutex_lock(&h->ready_lock);
    uint64_t *tags = h->ready;
    const int n = h->num_ready;
    h->ready = NULL;
    h->num_ready = h->cap_ready = 0;
    pthread_mutex_unlock(&h->ready_lock);
    for (int i = 0; i < n; i++) {
        conn *c = by_tag(h, tags[i]);
        if (c && c->fd >= 0 && c->run) {
            drain_run(c);
            after_io(h, c);
        }
    }
    free(tags);
}

static void sweep(fl_http *h, double now)
{
    for (int i = 0; i < h->max_conns; i++) {
        conn *c = &h->conns[i];
        if (c->fd < 0)
            continue;
        const int writing = c->out_pos < c->out.len;
        if (writing && now - c->last_write > WRITE_IDLE_TIMEOUT) {
            close_conn(h, c);
        } else if (c->deadline && now > c->deadline) {
            if (c->state == C_IDLE || c->state == C_LINGER) {
                close_conn(h, c);
            } else if (!writing) {
                refuse(c, 408, c->state == C_HEAD ? "the request head took too long"
                                                     : "the request body stopped arriving");
                c->deadline = 0;
                after_io(h, c);
            }
        } else if (atomic_load(&h->stop) && c->state == C_IDLE) {
            close_conn(h, c);
        }
    }
}

static int busy_conns(fl_http *h)
{
    int n = 0;
    for (int i = 0; i < h->max_conns; i++)
        n += h->conns[i].fd >= 0 && h->conns[i].state != C_IDLE;
    return n;
}

static void *loop_main(void *arg)
{
    fl_http *h = arg;
    struct epoll_event events[256];
    double last_sweep = 0, stop_since = 0;
    for (;;) {
        int n = epoll_wait(h->epoll_fd, events, 256, (int)(SWEEP_INTERVAL * 1000));
        for (int i = 0; i < n; i++) {
            const uint32_t id = events[i].data.u32, ev = events[i].events;
            if (id == UINT32_MAX - 1) {
                accept_all(h);
                continue;
            }
            if (id == UINT32_MAX) {
                uint64_t count;
                ssize_t rc = read(h->wake_fd, &count, sizeof count);
                (void)rc;
                continue;
            }
            conn *c = &h->conns[id];
            if (c->fd < 0)
                continue;
            if (ev & (EPOLLRDHUP | EPOLLHUP | EPOLLERR))
                close_conn(h, c); /* the client closed or reset: it has gone */
            else if (ev & EPOLLIN)
                on_readable(h, c);
            if (c->fd >= 0 && (ev & EPOLLOUT))
                after_io(h, c);
        }
        take_results(h);
        take_ready(h);
        if (h->listen_paused_until && fl_now_seconds() > h->listen_paused_until && h->listen_fd >= 0) {
            listener_events(h, EPOLLIN);
            h->listen_paused_until = 0;
        }
        if (atomic_load(&h->quiesce) && h->listen_fd >= 0) {
            close(h->listen_fd);
            h->listen_fd = -1;
        }
        const double now = fl_now_seconds();
        if (now - last_sweep >= SWEEP_INTERVAL || atomic_load(&h->stop)) {
            sweep(h, now);
            last_sweep = now;
        }
        if (atomic_load(&h->stop)) {
            if (stop_since == 0)
                stop_since = now;
            /* what is being written gets a few seconds to reach its client */
            if (busy_conns(h) == 0 || now - stop_since > 5.0)
                break;
        }
    }
    for (int i = 0; i < h->max_conns; i++)
        if (h->conns[i].fd >= 0)
            close_conn(h, &h->conns[i]);
    return NULL;
}

/* ---- start and stop ---- */

static int listen_on(const fl_server_config *cfg, fl_error *err)
{
    char port[16];
    snprintf(port, sizeof port, "%d", cfg->port);
    struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE };
    struct addrinfo *list;
    int rc = getaddrinfo(cfg->host, port, &hints, &list);
    if (rc != 0)
        return fl_fail(err, "--host %s: not an address or a known host name (%s)", cfg->host,
                       gai_strerror(rc));
    int fd = -1;
    for (struct addrinfo *a = list; a && fd < 0; a = a->ai_next) {
        fd = socket(a->ai_family, a->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, a->ai_protocol);
        if (fd < 0)
            continue;
        const int one = 1;
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        if (bind(fd, a->ai_addr, a->ai_addrlen) != 0 || listen(fd, 4096) != 0) {
            close(fd);
            fd = -1;
        }
    }
    freeaddrinfo(list);
    if (fd < 0)
        return fl_fail(err, "--host %s --port %d: cannot listen (in use, or not allowed)", cfg->host,
                       cfg->port);
    return fd;
}

int fl_http_start(fl_server *srv, fl_error *err)
{
    const int listen_fd = listen_on(&srv->cfg, err);
    if (listen_fd < 0)
        return -1;
    /* every connection is a descriptor: take the hard limit, keep some for
     * the model's files and the rest of the process */
    struct rlimit rl;
    getrlimit(RLIMIT_NOFILE, &rl);
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
    getrlimit(RLIMIT_NOFILE, &rl);
    fl_http *h = fl_calloc(1, sizeof *h);
    h->srv = srv;
    h->listen_fd = listen_fd;
    h->max_conns = srv->cfg.max_connections;
    if (rl.rlim_cur != RLIM_INFINITY && (long long)rl.rlim_cur - 128 < h->max_conns)
        h->max_conns = (int)rl.rlim_cur - 128 > 16 ? (int)rl.rlim_cur - 128 : 16;
    h->conns = fl_calloc((size_t)h->max_conns, sizeof(conn));
    h->free_slots = fl_malloc((size_t)h->max_conns * sizeof(int));
    for (int i = 0; i < h->max_conns; i++) {
        h->conns[i].fd = -1;
        h->free_slots[h->num_free++] = h->max_conns - 1 - i;
    }
    fl_u64_map_init(&h->per_client, h->max_conns);
    pthread_mutex_init(&h->jobs.lock, NULL);
    pthread_cond_init(&h->jobs.ready, NULL);
    pthread_mutex_init(&h->results.lock, NULL);
    pthread_cond_init(&h->results.ready, NULL);
    pthread_mutex_init(&h->ready_lock, NULL);
    h->epoll_fd = epoll_create1(EPOLL_CLOEXEC);
    h->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    struct epoll_event e = { .events = EPOLLIN, .data.u32 = UINT32_MAX - 1 };
    epoll_ctl(h->epoll_fd, EPOLL_CTL_ADD, listen_fd, &e);
    e.data.u32 = UINT32_MAX;
    epoll_ctl(h->epoll_fd, EPOLL_CTL_ADD, h->wake_fd, &e);
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    h->num_workers = cpus < 2 ? 2 : cpus > 8 ? 8 : (int)cpus;
    h->workers = fl_malloc((size_t)h->num_workers * sizeof(pthread_t));
    for (int i = 0; i < h->num_workers; i++)
        pthread_create(&h->workers[i], NULL, worker_main, h);
    pthread_create(&h->loop_thread, NULL, loop_main, h);
    srv->http = h;
    return 0;
}

void fl_http_quiesce(fl_server *srv)
{
    atomic_store(&srv->http->quiesce, 1);
    wake(srv->http);
}

void fl_http_stop(fl_server *srv)
{
    fl_http *h = srv->http;
    atomic_store(&h->quiesce, 1);
    atomic_store(&h->stop, 1);
    wake(h);
    pthread_join(h->loop_thread, NULL);
    pthread_mutex_lock(&h->jobs.lock);
    h->jobs_closed = 1;
    pthread_cond_broadcast(&h->jobs.ready);
    pthread_mutex_unlock(&h->jobs.lock);
    for (int i = 0; i < h->num_workers; i++)
        pthread_join(h->workers[i], NULL);
    /* answers that came back after the loop ended */
    for (http_job *j = h->results.head, *next; j; j = next) {
        next = j->next;
        if (j->run)
            run_free(j->run);
        fl_strbuf_free(&j->reply);
        fl_strbuf_free(&j->body);
        free(j);
    }
    if (h->listen_fd >= 0)
        close(h->listen_fd);
    close(h->epoll_fd);
    close(h->wake_fd);
    fl_u64_map_free(&h->per_client);
    pthread_mutex_destroy(&h->jobs.lock);
    pthread_cond_destroy(&h->jobs.ready);
    pthread_mutex_destroy(&h->results.lock);
    pthread_cond_destroy(&h->results.ready);
    pthread_mutex_destroy(&h->ready_lock);
    free(h->ready);
    free(h->conns);
    free(h->free_slots);
    free(h->workers);
    free(h);
    srv->http = NULL;
}
