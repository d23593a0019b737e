/* stream.h - where the engine's outputs for one HTTP request wait for the
 * connection that serves it.
 *
 * The engine thread pushes events (new text, tokens, the end) through the
 * registry by request id and calls the stream's notify function when the
 * queue turns non-empty; the HTTP event loop then pops every event there
 * is. A stream is reference-counted by its two users: the registry (until
 * every sequence of the request has finished) and the HTTP side (until the
 * response is done or the client has gone). When the client goes first,
 * the request is aborted and later events are dropped. */
#ifndef FL_STREAM_H
#define FL_STREAM_H

#include <pthread.h>
#include <stdint.h>

#include "base/strbuf.h"
#include "base/u64_map.h"
#include "engine/engine.h"
#include "tokenizer/tokenizer.h"

/* The most alternatives a token's event carries (vLLM's default
 * --max-logprobs; the flag may lower it, not raise it). */
#define FL_STREAM_MAX_TOP 20

/* One token (or the end) of one choice. */
typedef struct fl_stream_event {
    int choice;               /* prompt_index * n + sequence index */
    int32_t token;            /* -1 for none */
    char *text;               /* owned, NUL-terminated */
    size_t text_len;
    int has_logprob;
    float logprob;
    int num_top;
    int32_t top_ids[FL_STREAM_MAX_TOP];
    float top_values[FL_STREAM_MAX_TOP];
    fl_prompt_logprobs *plp;  /* owned (with its arrays), or NULL: the prompt's
                                 prompt_logprobs, on the first event of its first choice */
    const char *finish_reason;/* static string, or NULL */
    char *stop_string;        /* owned, or NULL */
    int32_t stop_token;
    int num_prompt_tokens, num_cached_tokens, num_output_tokens;
    double time;              /* fl_now_seconds() when pushed */
} fl_stream_event;

typedef struct fl_stream {
    pthread_mutex_t lock;
    fl_stream_event *events;
    int head, count, cap;
    int refs;
    int choices_left;         /* choices not yet finished */
    int num_prompts, n;       /* request ids base .. base + num_prompts - 1 */
    uint64_t base_id;
    int client_gone;
    void (*notify)(void *ctx, uint64_t tag); /* the queue turned non-empty */
    void *notify_ctx;
    uint64_t notify_tag;
    int notified;             /* notify called, queue not yet emptied */
} fl_stream;

typedef struct fl_stream_registry {
    pthread_mutex_t lock;
    fl_u64_map by_id;         /* request id -> its fl_stream */
    uint64_t next_id;
} fl_stream_registry;

void fl_stream_registry_init(fl_stream_registry *r, int capacity);
void fl_stream_registry_free(fl_stream_registry *r);

/* A stream for num_prompts prompts of n choices each, registered under
 * fresh consecutive request ids (returned in *base_id). refs = 2. notify
 * (ctx, tag) runs on the engine thread, under the stream's lock, each time
 * an event lands in an empty queue. Returns NULL if the registry is full. */
fl_stream *fl_stream_open(fl_stream_registry *r, int num_prompts, int n, uint64_t *base_id,
                          void (*notify)(void *ctx, uint64_t tag), void *ctx, uint64_t tag);

/* Engine thread: routes one output to its stream (or drops it). */
void fl_stream_deliver(fl_stream_registry *r, const fl_seq_output *out);

/* Unregisters the request ids of a stream whose engine requests were not
 * added (drops the registry's reference). */
void fl_stream_forget(fl_stream_registry *r, fl_stream *s);

/* HTTP side: 1 and the next event (caller frees it with
 * fl_stream_event_free), or 0 when none is queued; never blocks. */
int fl_stream_pop(fl_stream *s, fl_stream_event *ev);

/* 1 once every choice has finished and every event was popped. */
int fl_stream_done(fl_stream *s);

/* HTTP side is finished with the stream (marks the client gone). */
void fl_stream_release(fl_stream *s);

void fl_stream_event_free(fl_stream_event *ev);

#endif
