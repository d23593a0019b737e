/* server.c - the server's engine thread and shared state (see server.h). */
#include "server/server.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/alloc.h"
#include "base/clock.h"
#include "server/openai.h"

fl_tok_scratch *fl_server_scratch_take(fl_server *s)
{
    fl_scratch_pool *p = &s->scratch;
    pthread_mutex_lock(&p->lock);
    fl_tok_scratch *sc = p->num_free ? p->free[--p->num_free] : NULL;
    pthread_mutex_unlock(&p->lock);
    if (!sc) {
        sc = fl_malloc(sizeof *sc);
        fl_tok_scratch_init(sc, s->tok);
    }
    return sc;
}

void fl_server_scratch_give(fl_server *s, fl_tok_scratch *sc)
{
    fl_scratch_pool *p = &s->scratch;
    pthread_mutex_lock(&p->lock);
    if (p->num_free == p->cap) {
        p->cap = p->cap ? 2 * p->cap : 8;
        p->free = fl_realloc(p->free, (size_t)p->cap * sizeof(fl_tok_scratch *));
    }
    p->free[p->num_free++] = sc;
    pthread_mutex_unlock(&p->lock);
}

int fl_server_serves_model(const fl_server *s, const char *name)
{
    if (s->cfg.num_served_model_names == 0)
        return strcmp(name, s->cfg.served_model_name) == 0;
    for (int i = 0; i < s->cfg.num_served_model_names; i++)
        if (strcmp(name, s->cfg.served_model_names[i]) == 0)
            return 1;
    return 0;
}

void fl_server_kick(fl_server *s)
{
    pthread_mutex_lock(&s->work_lock);
    s->pending++;
    pthread_cond_signal(&s->work);
    pthread_mutex_unlock(&s->work_lock);
}

static void *engine_main(void *arg)
{
    fl_server *s = arg;
    for (;;) {
        int left = fl_engine_step(s->engine);
        fl_engine_stats st;
        fl_engine_get_stats(s->engine, &st);
        fl_metrics_set_engine(&s->metrics, &st);
        const double now = fl_now_seconds();
        const double log_due = fl_metrics_log_tick(&s->metrics, now, stderr);
        pthread_mutex_lock(&s->work_lock);
        if (s->stopping && left == 0) {
            pthread_mutex_unlock(&s->work_lock);
            return NULL;
        }
        if (left == 0 && s->pending == 0 && !s->stopping && log_due > 0) {
            /* idle with a stat line still due: sleep until it (or work) */
            struct timespec until;
            clock_gettime(CLOCK_REALTIME, &until);
            const double wait = log_due - now;
            until.tv_sec += (time_t)wait;
            until.tv_nsec += (long)((wait - (double)(time_t)wait) * 1e9);
            if (until.tv_nsec >= 1000000000L) {
                until.tv_sec++;
                until.tv_nsec -= 1000000000L;
            }
            if (pthread_cond_timedwait(&s->work, &s->work_lock, &until) == ETIMEDOUT) {
                pthread_mutex_unlock(&s->work_lock);
                continue;
            }
        }
        while (left == 0 && s->pending == 0 && !s->stopping)
            pthread_cond_wait(&s->work, &s->work_lock);
        s->pending = 0;
        pthread_mutex_unlock(&s->work_lock);
    }
}

static void on_output(void *ctx, const fl_seq_output *out)
{
    fl_server *s = ctx;
    fl_metrics_on_output(&s->metrics, out, fl_now_seconds());
    fl_stream_deliver(&s->streams, out);
}

void fl_server_init(fl_server *s, const fl_server_config *cfg)
{
    s->cfg = *cfg;
    pthread_mutex_init(&s->scratch.lock, NULL);
    pthread_mutex_init(&s->work_lock, NULL);
    pthread_mutex_init(&s->structured_lock, NULL);
    pthread_cond_init(&s->work, NULL);
    fl_stream_registry_init(&s->streams, 65536);
    double interval = 10.0;
    const char *env = getenv("FLASHLM_LOG_STATS_INTERVAL");
    if (env && strtod(env, NULL) > 0)
        interval = strtod(env, NULL);
    fl_metrics_init(&s->metrics, cfg->disable_log_stats ? 0 : interval);
}

fl_output_fn fl_server_output_fn(void)
{
    return on_output;
}

void fl_server_start_engine(fl_server *s)
{
    fl_metrics_configure(&s->metrics, s->max_model_len);
    pthread_create(&s->engine_thread, NULL, engine_main, s);
}

void fl_server_abort_all(fl_server *s)
{
    pthread_mutex_lock(&s->streams.lock);
    uint64_t id, stream;
    for (uint32_t at = 0; fl_u64_map_next(&s->streams.by_id, &at, &id, &stream);)
        fl_engine_abort(s->engine, id);
    pthread_mutex_unlock(&s->streams.lock);
    fl_server_kick(s);
}

void fl_server_stop_engine(fl_server *s)
{
    pthread_mutex_lock(&s->work_lock);
    s->stopping = 1;
    pthread_cond_signal(&s->work);
    pthread_mutex_unlock(&s->work_lock);
    pthread_join(s->engine_thread, NULL);
}

void fl_server_wait_runs(fl_server *s, int timeout_ms)
{
    for (int waited = 0; atomic_load(&s->active_runs) > 0 && waited < timeout_ms; waited += 10)
        nanosleep(&(struct timespec){ .tv_nsec = 10 * 1000 * 1000 }, NULL);
}

void fl_server_free(fl_server *s)
{
    for (int i = 0; i < s->scratch.num_free; i++) {
        fl_tok_scratch_free(s->scratch.free[i]);
        free(s->scratch.free[i]);
    }
    free(s->scratch.free);
    pthread_mutex_destroy(&s->scratch.lock);
    pthread_mutex_destroy(&s->work_lock);
    fl_api_structured_free(s);
    pthread_mutex_destroy(&s->structured_lock);
    pthread_cond_destroy(&s->work);
    fl_stream_registry_free(&s->streams);
    fl_metrics_free(&s->metrics);
}
