/* server.h - `flashlm serve`: the OpenAI-compatible HTTP API over the engine.
 *
 * Threads: one HTTP event loop holds every connection (http.c); a few
 * worker threads parse, render and tokenize requests and add them to the
 * engine; the event loop answers each from its stream. One engine thread
 * steps the engine while there is work and sleeps on a condition variable
 * when there is none. */
#ifndef FL_SERVER_H
#define FL_SERVER_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include "engine/engine.h"
#include "model/generation_config.h"
#include "server/metrics.h"
#include "server/stream.h"
#include "tokenizer/chat_template.h"
#include "tokenizer/harmony.h"
#include "tokenizer/tokenizer.h"

typedef struct fl_server_config {
    const char *host;
    int port;
    const char *api_key;          /* NULL: no auth */
    const char *served_model_name; /* the first of the names: the one responses report */
    const char *const *served_model_names; /* [num_served_model_names]: a request may name any */
    int num_served_model_names;    /* 0: served_model_name alone */
    int max_logprobs;              /* --max-logprobs: logprobs/top_logprobs at most this (<= FL_STREAM_MAX_TOP) */
    /* CORS, as vLLM's (Starlette's CORSMiddleware): lists of allowed origins,
     * methods and request headers ("*": any); NULL lists are ["*"] */
    const char *const *cors_origins, *const *cors_methods, *const *cors_headers; /* NULL-terminated */
    int cors_credentials;          /* --allow-credentials */
    size_t max_body_bytes;
    size_t max_unauthenticated_body_bytes; /* with api_key: /tokenize, /detokenize without it */
    int max_connections;          /* open at once (at most the descriptors allow) */
    int max_connections_per_client; /* from one IP address */
    int disable_log_stats;        /* vLLM's --disable-log-stats: no periodic stat line */
    int enable_log_requests;      /* vLLM's --enable-log-requests: a line as each request
                                     arrives and as it ends */
    const char *generation_config; /* vLLM's --generation-config: NULL or "auto" reads the
                                      model directory's generation_config.json, "vllm" none,
                                      else a directory holding one (fl_api_load_defaults) */
    int enable_auto_tool_choice;  /* vLLM's --enable-auto-tool-choice: tool_choice "auto" */
    const char *tool_call_parser; /* --tool-call-parser: "hermes" (server/tool_parser.h) or NULL */
    const char *reasoning_parser; /* --reasoning-parser: "qwen3" (server/reasoning_parser.h) or NULL */
    int exclude_tools_when_tool_choice_none; /* tool_choice "none" keeps tools out of the prompt */
} fl_server_config;

/* Encoding state for HTTP threads, lent out one at a time. */
typedef struct fl_scratch_pool {
    pthread_mutex_t lock;
    fl_tok_scratch **free;
    int num_free, cap;
} fl_scratch_pool;

typedef struct fl_server {
    fl_server_config cfg;
    fl_engine *engine;
    const char *model_root;        /* the MODEL argument, for /v1/models */
    const fl_tokenizer *tok;
    const fl_chat_template *chat;  /* NULL: chat completions answer 400 (unless harmony) */
    const fl_harmony *harmony;     /* non-NULL: chat is in the harmony format (gpt-oss) */
    int max_model_len;
    int vocab_size;
    fl_generation_defaults defaults; /* sampling defaults for fields a request leaves unset */
    fl_stream_registry streams;
    fl_scratch_pool scratch;
    fl_metrics metrics;
    long created;
    volatile int ready;           /* 503 until the model is loaded */
    volatile int stopping;
    pthread_mutex_t work_lock;    /* the engine thread sleeps on work */
    pthread_cond_t work;
    int pending;
    pthread_t engine_thread;
    _Atomic int active_runs;      /* completions the HTTP side is still answering */
    /* structured output (server/structured.c): the vocabulary as byte strings
     * and the compiled constraints, made with the first request that asks */
    pthread_mutex_t structured_lock;
    struct fl_token_vocab *vocab;
    struct fl_constraint_cache *constraints;
    struct fl_http *http;         /* the HTTP side (http.c) */
} fl_server;

/* The stat line comes every 10 s (vLLM's interval) unless cfg disables it;
 * FLASHLM_LOG_STATS_INTERVAL (seconds, > 0) changes the interval: for the
 * tests, which cannot wait 10 s a line. */
void fl_server_init(fl_server *s, const fl_server_config *cfg);
void fl_server_free(fl_server *s);
/* The engine output callback that routes to the streams (ctx: the server). */
fl_output_fn fl_server_output_fn(void);
void fl_server_start_engine(fl_server *s);
/* Aborts every request in flight (their streams end with "abort"). */
void fl_server_abort_all(fl_server *s);
/* Lets the engine finish what it has, then joins its thread. */
void fl_server_stop_engine(fl_server *s);
/* Waits (at most timeout_ms) until every completion's response has been
 * written out: stopping the HTTP daemon closes sockets, so it must come
 * after the last [DONE]. */
void fl_server_wait_runs(fl_server *s, int timeout_ms);

fl_tok_scratch *fl_server_scratch_take(fl_server *s);
void fl_server_scratch_give(fl_server *s, fl_tok_scratch *sc);

/* Whether a request's "model" names this server: one of the served names. */
int fl_server_serves_model(const fl_server *s, const char *name);

/* Wakes the engine thread (a request was added or aborted). */
void fl_server_kick(fl_server *s);

#endif
