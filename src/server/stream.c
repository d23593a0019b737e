/* stream.c - per-request event queues and the id registry (see stream.h). */
#include "server/stream.h"

#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "base/clock.h"

void fl_stream_registry_init(fl_stream_registry *r, int capacity)
{
    memset(r, 0, sizeof *r);
    pthread_mutex_init(&r->lock, NULL);
    fl_u64_map_init(&r->by_id, capacity);
    r->next_id = 1;
}

void fl_stream_registry_free(fl_stream_registry *r)
{
    fl_u64_map_free(&r->by_id);
    pthread_mutex_destroy(&r->lock);
}

static void unref(fl_stream *s)
{
    pthread_mutex_lock(&s->lock);
    int last = --s->refs == 0;
    pthread_mutex_unlock(&s->lock);
    if (!last)
        return;
    for (int i = 0; i < s->count; i++)
        fl_stream_event_free(&s->events[(s->head + i) % s->cap]);
    free(s->events);
    pthread_mutex_destroy(&s->lock);
    free(s);
}

fl_stream *fl_stream_open(fl_stream_registry *r, int num_prompts, int n, uint64_t *base_id,
                          void (*notify)(void *ctx, uint64_t tag), void *ctx, uint64_t tag)
{
    pthread_mutex_lock(&r->lock);
    if (r->by_id.count + num_prompts > r->by_id.capacity) {
        pthread_mutex_unlock(&r->lock);
        return NULL;
    }
    fl_stream *s = fl_calloc(1, sizeof *s);
    pthread_mutex_init(&s->lock, NULL);
    s->refs = 2;
    s->num_prompts = num_prompts;
    s->n = n;
    s->choices_left = num_prompts * n;
    s->notify = notify;
    s->notify_ctx = ctx;
    s->notify_tag = tag;
    s->base_id = r->next_id;
    r->next_id += (uint64_t)num_prompts;
    for (int p = 0; p < num_prompts; p++)
        fl_u64_map_put(&r->by_id, s->base_id + (uint64_t)p, (uint64_t)(uintptr_t)s);
    *base_id = s->base_id;
    pthread_mutex_unlock(&r->lock);
    return s;
}

void fl_stream_forget(fl_stream_registry *r, fl_stream *s)
{
    pthread_mutex_lock(&r->lock);
    for (int p = 0; p < s->num_prompts; p++)
        fl_u64_map_remove(&r->by_id, s->base_id + (uint64_t)p);
    pthread_mutex_unlock(&r->lock);
    unref(s);
}

static char *dup_text(const char *text, size_t len)
{
    char *d = fl_malloc(len + 1);
    if (len)
        memcpy(d, text, len);
    d[len] = '\0';
    return d;
}

static fl_prompt_logprobs *copy_plp(const fl_prompt_logprobs *src)
{
    const size_t cells = (size_t)src->num * (size_t)src->per;
    fl_prompt_logprobs *p = fl_malloc(sizeof *p);
    int32_t *ids = fl_malloc((cells + 1) * sizeof(int32_t)), *ranks = fl_malloc((cells + 1) * sizeof(int32_t));
    float *values = fl_malloc((cells + 1) * sizeof(float));
    if (cells) {
        memcpy(ids, src->ids, cells * sizeof(int32_t));
        memcpy(ranks, src->ranks, cells * sizeof(int32_t));
        memcpy(values, src->values, cells * sizeof(float));
    }
    *p = (fl_prompt_logprobs){ .num = src->num, .per = src->per, .ids = ids, .ranks = ranks, .values = values };
    return p;
}

static void push(fl_stream *s, const fl_stream_event *ev)
{
    if (s->count == s->cap) {
        int cap = s->cap ? s->cap * 2 : 16;
        fl_stream_event *grown = fl_malloc((size_t)cap * sizeof *grown);
        for (int i = 0; i < s->count; i++)
            grown[i] = s->events[(s->head + i) % s->cap];
        free(s->events);
        s->events = grown;
        s->head = 0;
        s->cap = cap;
    }
    s->events[(s->head + s->count++) % s->cap] = *ev;
}

void fl_stream_deliver(fl_stream_registry *r, const fl_seq_output *out)
{
    pthread_mutex_lock(&r->lock);
    uint64_t found;
    if (!fl_u64_map_get(&r->by_id, out->request_id, &found)) {
        pthread_mutex_unlock(&r->lock);
        return;
    }
    fl_stream *s = (fl_stream *)(uintptr_t)found;
    pthread_mutex_lock(&s->lock);
    const int prompt = (int)(out->request_id - s->base_id);
    int last_of_stream = 0;
    if (out->finished && --s->choices_left == 0)
        last_of_stream = 1;
    if (!s->client_gone) {
        fl_stream_event ev = {
            .choice = prompt * s->n + out->index, .token = out->token,
            .text = dup_text(out->text, out->text_len), .text_len = out->text_len,
            .finish_reason = out->finish_reason,
            .stop_string = out->stop_string ? fl_strdup(out->stop_string) : NULL,
            .stop_token = out->stop_token, .num_prompt_tokens = out->num_prompt_tokens,
            .num_cached_tokens = out->num_cached_tokens, .num_output_tokens = out->num_output_tokens,
            .time = fl_now_seconds(),
        };
        if (out->logprobs) {
            ev.has_logprob = 1;
            ev.logprob = out->logprobs->chosen;
            ev.num_top = out->logprobs->count < 20 ? out->logprobs->count : 20;
            memcpy(ev.top_ids, out->logprobs->ids, (size_t)ev.num_top * sizeof(int32_t));
            memcpy(ev.top_values, out->logprobs->values, (size_t)ev.num_top * sizeof(float));
        }
        if (out->prompt_logprobs)
            ev.plp = copy_plp(out->prompt_logprobs);
        push(s, &ev);
        if (!s->notified) {
            s->notified = 1;
            s->notify(s->notify_ctx, s->notify_tag);
        }
    }
    pthread_mutex_unlock(&s->lock);
    if (last_of_stream) {
        for (int p = 0; p < s->num_prompts; p++)
            fl_u64_map_remove(&r->by_id, s->base_id + (uint64_t)p);
    }
    pthread_mutex_unlock(&r->lock);
    if (last_of_stream)
        unref(s);
}

int fl_stream_pop(fl_stream *s, fl_stream_event *ev)
{
    pthread_mutex_lock(&s->lock);
    int got = s->count > 0;
    if (got) {
        *ev = s->events[s->head];
        s->head = (s->head + 1) % s->cap;
        s->count--;
    } else {
        s->notified = 0; /* the next event notifies again */
    }
    pthread_mutex_unlock(&s->lock);
    return got;
}

int fl_stream_done(fl_stream *s)
{
    pthread_mutex_lock(&s->lock);
    int done = s->choices_left == 0 && s->count == 0;
    pthread_mutex_unlock(&s->lock);
    return done;
}

void fl_stream_release(fl_stream *s)
{
    pthread_mutex_lock(&s->lock);
    s->client_gone = 1;
    pthread_mutex_unlock(&s->lock);
    unref(s);
}

void fl_stream_event_free(fl_stream_event *ev)
{
    free(ev->text);
    free(ev->stop_string);
    ev->text = ev->stop_string = NULL;
    if (ev->plp) {
        free((void *)ev->plp->ids);
        free((void *)ev->plp->ranks);
        free((void *)ev->plp->values);
        free(ev->plp);
        ev->plp = NULL;
    }
}
