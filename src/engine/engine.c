/* engine.c - the engine's API, its step, and what happens to each new
 * token: sampling, stop conditions, text (see engine.h). Which sequences
 * run, their queues and their blocks are the scheduler's (scheduler.h). */
#include "engine/engine.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "base/clock.h"
#include "base/rng.h"
#include "base/u64_map.h"
#include "engine/engine_internal.h"
#include "grammar/token_mask.h"

void fl_engine_config_default(fl_engine_config *c)
{
    memset(c, 0, sizeof *c);
    c->max_num_seqs = 256;
    c->max_num_batched_tokens = 2048;
    c->enable_prefix_caching = 1;
    c->async_scheduling = 1;
}

fl_engine *fl_engine_create(const fl_engine_config *cfg, fl_model_runner *runner,
                            const fl_tokenizer *tok, const int32_t *eos_ids, int num_eos,
                            fl_output_fn on_output, void *ctx)
{
    fl_engine *e = fl_calloc(1, sizeof *e);
    e->cfg = *cfg;
    e->runner = *runner;
    if (e->cfg.max_model_len <= 0 || e->cfg.max_model_len > runner->max_context)
        e->cfg.max_model_len = runner->max_context;
    if (e->cfg.max_num_batched_tokens > runner->max_tokens)
        e->cfg.max_num_batched_tokens = runner->max_tokens;
    e->tok = tok;
    e->num_eos = num_eos;
    e->eos_ids = fl_malloc((size_t)(num_eos + 1) * sizeof(int32_t));
    if (num_eos)
        memcpy(e->eos_ids, eos_ids, (size_t)num_eos * sizeof(int32_t));
    e->on_output = on_output;
    e->ctx = ctx;
    fl_scheduler_init(&e->sched, &e->cfg, runner->kv_groups, runner->num_blocks, runner->block_size);
    const char *timing = getenv("FLASHLM_STEP_TIMING");
    e->timing.on = timing && strcmp(timing, "1") == 0;
    pthread_mutex_init(&e->lock, NULL);
    const size_t S = (size_t)e->cfg.max_num_seqs;
    const size_t V = (size_t)runner->vocab_size;
    e->row_seqs = fl_malloc(S * sizeof(fl_seq *));
    e->async = cfg->async_scheduling && runner->sample;
    if (e->async)
        e->flight.seqs = fl_malloc(S * sizeof(fl_seq *));
    e->logits = fl_malloc((runner->sample ? 1 : S) * V * sizeof(float));
    if (runner->sample)
        e->dev_rows = fl_malloc(S * sizeof *e->dev_rows);
    e->sample_scratch = fl_calloc(1, fl_sample_scratch_bytes((int)V));
    e->lp_ids = fl_malloc((V < 64 ? V : 64) * sizeof(int32_t));
    e->lp_values = fl_malloc((V < 64 ? V : 64) * sizeof(float));
    return e;
}

static void free_seq(fl_engine *e, fl_seq *s)
{
    atomic_fetch_sub(&e->num_live, 1);
    fl_ids_free(&s->tokens);
    free(s->blocks);
    fl_detokenizer_free(&s->detok);
    fl_strbuf_free(&s->text);
    free(s->plp_ids);
    free(s->plp_ranks);
    free(s->plp_values);
    if (s->grammar) {
        fl_constraint_state_free(s->grammar);
        free(s->grammar);
        atomic_fetch_sub(&e->num_constrained, 1);
    }
    fl_request *r = s->req;
    if (r->first == s)
        r->first = NULL;
    if (--r->live == 0) {
        fl_sampling_params_free(&r->sp);
        free(r);
    }
    free(s);
}

/* The large decode steps' phases on the host (FLASHLM_STEP_TIMING), per
 * step: planning, launching (pack, upload, graph and sampler launch), the
 * wait for tokens, and their handling. Without async scheduling the GPU
 * idles through all but the wait; with it, the host's work for the next
 * step overlaps the GPU's step (the CUDA runner's line says how much the
 * GPU still idles). */
static void print_step_timing(const fl_engine *e)
{
    const long n = e->timing.steps;
    if (!e->timing.on || n == 0)
        return;
    const double total = e->timing.plan + e->timing.launch + e->timing.wait + e->timing.tokens;
    fprintf(stderr, "INFO flashlm: step timing (async scheduling %s), %ld decode steps of 128 or more sequences, "
            "per step: plan %.3f ms, launch (pack, upload, launch) %.3f ms, wait for tokens %.3f ms, tokens %.3f ms; "
            "host work %.1f%% of the step\n", e->async ? "on" : "off", n, 1e3 * e->timing.plan / n,
            1e3 * e->timing.launch / n, 1e3 * e->timing.wait / n, 1e3 * e->timing.tokens / n,
            100 * (total - e->timing.wait) / total);
}

/* Row r of a launched step is handled: its sequence's count drops; one
 * that finished meanwhile (aborted, or ended by the step before) is freed
 * once no row refers to it, and the row has nothing more to do (1). */
static int release_row(fl_engine *e, fl_seq *s);

void fl_engine_destroy(fl_engine *e)
{
    print_step_timing(e);
    for (int r = 0; e->flight.active && r < e->flight.num_rows; r++)
        release_row(e, e->flight.seqs[r]); /* the rest are on the queues */
    for (int i = 0; i < e->sched.num_running; i++)
        free_seq(e, e->sched.running[i]);
    for (int i = 0; i < e->sched.num_waiting; i++)
        free_seq(e, e->sched.waiting[i]);
    for (int i = 0; i < e->num_inbox; i++)
        free_seq(e, e->inbox[i]);
    e->runner.destroy(e->runner.impl);
    fl_scheduler_free(&e->sched);
    pthread_mutex_destroy(&e->lock);
    free(e->eos_ids);
    free(e->row_seqs);
    free(e->flight.seqs);
    free(e->logits);
    free(e->sample_scratch);
    free(e->dev_rows);
    free(e->lp_ids);
    free(e->lp_values);
    free(e->masks);
    free(e->mask_rows);
    free(e->mask_of_row);
    free(e->inbox);
    free(e->aborts);
    free(e);
}

/* ---- adding and aborting ---- */

/* Does min_tokens ban every token (EOS and stop ids cover the vocabulary)?
 * Then no token could be sampled. */
static int bans_every_token(const fl_engine *e, const fl_sampling_params *sp)
{
    const int vocab = e->runner.vocab_size;
    const int num_eos = sp->ignore_eos ? 0 : e->num_eos;
    if (sp->min_tokens == 0 || sp->num_stop_token_ids + num_eos < vocab)
        return 0;
    uint8_t *banned = fl_calloc((size_t)vocab, 1);
    int count = 0;
    for (int i = 0; i < sp->num_stop_token_ids + num_eos; i++) {
        const int32_t t = i < num_eos ? e->eos_ids[i] : sp->stop_token_ids[i - num_eos];
        count += !banned[t];
        banned[t] = 1;
    }
    free(banned);
    return count == vocab;
}

static int check_request(const fl_engine *e, const int32_t *prompt, int num_prompt,
                         const fl_sampling_params *sp, fl_error *err)
{
    const int vocab = e->runner.vocab_size;
    if (num_prompt < 1)
        return fl_fail(err, "the prompt is empty");
    for (int i = 0; i < num_prompt; i++)
        if (prompt[i] < 0 || prompt[i] >= vocab)
            return fl_fail(err, "prompt token %d is %d, outside the vocabulary [0, %d)", i,
                           prompt[i], vocab);
    const long long total = (long long)num_prompt + sp->max_tokens;
    if (total > e->cfg.max_model_len)
        return fl_fail(err, "this request needs %lld tokens (%d prompt + %d max_tokens), more than "
                       "max_model_len %d", total, num_prompt, sp->max_tokens, e->cfg.max_model_len);
    const int blocks = fl_scheduler_seq_blocks(&e->sched, (int)total);
    if (blocks > fl_scheduler_usable_blocks(&e->sched))
        return fl_fail(err, "this request needs %d KV blocks, more than the %d the cache holds",
                       blocks, fl_scheduler_usable_blocks(&e->sched));
    return 0;
}

/* What every prompt of a request shares. */
static int check_params(const fl_engine *e, const fl_sampling_params *sp, fl_error *err)
{
    const int vocab = e->runner.vocab_size;
    for (int i = 0; i < sp->num_logit_bias; i++)
        if (sp->logit_bias[i].token < 0 || sp->logit_bias[i].token >= vocab)
            return fl_fail(err, "logit_bias token %d is outside the vocabulary [0, %d)",
                           sp->logit_bias[i].token, vocab);
    for (int i = 0; i < sp->num_stop_token_ids; i++)
        if (sp->stop_token_ids[i] < 0 || sp->stop_token_ids[i] >= vocab)
            return fl_fail(err, "stop_token_ids holds %d, outside the vocabulary [0, %d)",
                           sp->stop_token_ids[i], vocab);
    if (sp->num_stop > 0 && !e->tok)
        return fl_fail(err, "stop strings need a tokenizer");
    if (sp->has_prompt_logprobs && (sp->prompt_logprobs < 0 || sp->prompt_logprobs > 20))
        return fl_fail(err, "prompt_logprobs must be in [0, 20]");
    if (sp->n < 1 || sp->max_tokens < 1)
        return fl_fail(err, "n and max_tokens must be at least 1");
    if (sp->min_tokens > sp->max_tokens)
        return fl_fail(err, "min_tokens (%d) is more than max_tokens (%d)", sp->min_tokens,
                       sp->max_tokens);
    if (sp->constraint && fl_constraint_vocab_size(sp->constraint) != vocab)
        return fl_fail(err, "the constraint was compiled for a vocabulary of %d tokens, not the model's %d",
                       fl_constraint_vocab_size(sp->constraint), vocab);
    if (bans_every_token(e, sp))
        return fl_fail(err, "min_tokens %d with these stop_token_ids bans every token of the "
                       "vocabulary: no token could be generated", sp->min_tokens);
    return 0;
}

/* Takes num_seqs more live sequences if max_live_seqs allows. */
static int admit(fl_engine *e, long long num_seqs, fl_error *err)
{
    const int limit = e->cfg.max_live_seqs;
    if (limit <= 0) {
        atomic_fetch_add(&e->num_live, (int)num_seqs);
        return 0;
    }
    if (num_seqs > limit)
        return fl_fail(err, "this request has %lld sequences (prompts x n), more than the %d the "
                       "server holds at once", num_seqs, limit);
    int live = atomic_load(&e->num_live);
    do {
        if (live + num_seqs > limit) {
            fl_fail(err, "the server is overloaded: %d sequences are running or waiting (at most %d)",
                    live, limit);
            return FL_ENGINE_BUSY;
        }
    } while (!atomic_compare_exchange_weak(&e->num_live, &live, live + (int)num_seqs));
    return 0;
}

int fl_engine_add_prompts(fl_engine *e, uint64_t base_id, int num_prompts,
                          const int32_t *const *prompts, const int *lens,
                          const fl_sampling_params *sp, fl_error *err)
{
    if (num_prompts < 1)
        return fl_fail(err, "no prompt");
    if (check_params(e, sp, err) != 0)
        return -1;
    for (int p = 0; p < num_prompts; p++)
        if (check_request(e, prompts[p], lens[p], sp, err) != 0)
            return num_prompts > 1 ? fl_fail_prefix(err, "prompt %d", p) : -1;
    const int rc = admit(e, (long long)num_prompts * sp->n, err);
    if (rc != 0)
        return rc;
    pthread_mutex_lock(&e->lock);
    if (e->closed) {
        pthread_mutex_unlock(&e->lock);
        atomic_fetch_sub(&e->num_live, num_prompts * sp->n);
        fl_fail(err, "the server is shutting down");
        return FL_ENGINE_BUSY;
    }
    const int more = num_prompts * sp->n;
    if (e->num_inbox + more > e->cap_inbox) {
        e->cap_inbox = (e->num_inbox + more) * 2;
        e->inbox = fl_realloc(e->inbox, (size_t)e->cap_inbox * sizeof(fl_seq *));
    }
    const double now = fl_now_seconds();
    for (int p = 0; p < num_prompts; p++) {
        const uint64_t request_id = base_id + (uint64_t)p;
        fl_request *r = fl_calloc(1, sizeof *r);
        r->id = request_id;
        fl_sampling_params_copy(&r->sp, sp);
        r->live = sp->n;
        for (int i = 0; i < sp->n; i++) {
            fl_seq *s = fl_calloc(1, sizeof *s);
            s->req = r;
            s->index = i;
            s->num_prompt = lens[p];
            s->t_arrival = now;
            for (int k = 0; k < lens[p]; k++)
                fl_ids_push(&s->tokens, prompts[p][k]);
            /* seeded: the seed alone decides; else the engine seed and the
             * request id do */
            s->rng_key = sp->has_seed ? fl_rng_key(sp->seed, (uint64_t)i)
                                      : fl_rng_key(e->cfg.seed ^ fl_rng_mix(request_id), (uint64_t)i);
            if (e->tok)
                fl_detokenizer_init(&s->detok, e->tok, sp->skip_special_tokens);
            if (sp->constraint) {
                s->grammar = fl_malloc(sizeof *s->grammar);
                fl_constraint_state_init(sp->constraint, s->grammar);
                atomic_fetch_add(&e->num_constrained, 1);
            }
            if (i == 0 && sp->has_prompt_logprobs && lens[p] > 1) {
                const size_t cells = (size_t)(lens[p] - 1) * (size_t)(1 + sp->prompt_logprobs);
                s->plp_ids = fl_malloc(cells * sizeof(int32_t));
                s->plp_ranks = fl_malloc(cells * sizeof(int32_t));
                s->plp_values = fl_malloc(cells * sizeof(float));
            }
            if (i == 0)
                r->first = s;
            e->inbox[e->num_inbox++] = s;
        }
    }
    pthread_mutex_unlock(&e->lock);
    return 0;
}

int fl_engine_add(fl_engine *e, uint64_t request_id, const int32_t *prompt, int num_prompt,
                  const fl_sampling_params *sp, fl_error *err)
{
    return fl_engine_add_prompts(e, request_id, 1, &prompt, &num_prompt, sp, err);
}

void fl_engine_close(fl_engine *e)
{
    pthread_mutex_lock(&e->lock);
    e->closed = 1;
    pthread_mutex_unlock(&e->lock);
}

void fl_engine_abort(fl_engine *e, uint64_t request_id)
{
    pthread_mutex_lock(&e->lock);
    if (e->num_aborts == e->cap_aborts) {
        e->cap_aborts = e->cap_aborts ? 2 * e->cap_aborts : 16;
        e->aborts = fl_realloc(e->aborts, (size_t)e->cap_aborts * sizeof(uint64_t));
    }
    e->aborts[e->num_aborts++] = request_id;
    pthread_mutex_unlock(&e->lock);
}

/* ---- finishing and reporting ---- */

/* Reports the sequence's new text (all of it if finished, else all but
 * what could still turn out to start a stop string) and token. */
static void report(fl_engine *e, fl_seq *s, int32_t token, const fl_logprobs *lp,
                   const char *finish_reason, const char *stop_string, int32_t stop_token)
{
    size_t end = s->text.len;
    if (!finish_reason) {
        size_t hold = 0;
        for (int i = 0; i < s->req->sp.num_stop; i++) {
            size_t n = strlen(s->req->sp.stop[i]);
            if (n - 1 > hold)
                hold = n - 1;
        }
        end = end > s->text_sent + hold ? end - hold : s->text_sent;
        while (end > s->text_sent && ((unsigned char)s->text.data[end] & 0xc0) == 0x80)
            end--; /* never split a character */
    }
    fl_seq_output out = {
        .request_id = s->req->id, .index = s->index, .token = token,
        .text = s->text.data ? s->text.data + s->text_sent : "", .text_len = end - s->text_sent,
        .logprobs = lp, .finished = finish_reason != NULL, .finish_reason = finish_reason,
        .stop_string = stop_string, .stop_token = stop_token,
        .num_prompt_tokens = s->num_prompt, .num_cached_tokens = s->num_cached,
        .num_output_tokens = (int)s->tokens.len - s->num_prompt,
        .arrival_time = s->t_arrival, .scheduled_time = s->t_scheduled,
        .first_token_time = s->t_first_token, .last_token_time = s->t_last_token,
        .prev_token_time = s->t_prev_token, .params = &s->req->sp,
    };
    fl_prompt_logprobs plp;
    if (s->index == 0 && s->req->sp.has_prompt_logprobs && !s->plp_sent &&
        s->plp_done == s->num_prompt - 1) {
        plp = (fl_prompt_logprobs){ .num = s->num_prompt - 1, .per = 1 + s->req->sp.prompt_logprobs,
                                    .ids = s->plp_ids, .ranks = s->plp_ranks, .values = s->plp_values };
        out.prompt_logprobs = &plp;
        s->plp_sent = 1;
    }
    s->text_sent = end;
    e->on_output(e->ctx, &out);
}

/* Reports the end of s and frees it; the scheduler has already taken it
 * off its queue and taken its blocks back. */
static void retire(fl_engine *e, fl_seq *s, int32_t token, const fl_logprobs *lp,
                   const char *reason, const char *stop_string, int32_t stop_token)
{
    /* the held-back bytes of an unfinished character end a normal finish;
     * an abort or an error reports only what was complete */
    if (s->pending) { /* aborted or failed with its token on its way: that token is not output */
        s->tokens.len--;
        s->pending = s->last_pending = 0;
    }
    if (e->tok && !stop_string && (strcmp(reason, "stop") == 0 || strcmp(reason, "length") == 0))
        fl_detokenizer_finish(&s->detok, &s->text);
    report(e, s, token, lp, reason, stop_string, stop_token);
    s->finished = 1;
    if (s->rows_in_flight == 0)
        free_seq(e, s);
}

static int release_row(fl_engine *e, fl_seq *s)
{
    s->rows_in_flight--;
    if (!s->finished)
        return 0;
    if (s->rows_in_flight == 0)
        free_seq(e, s);
    return 1;
}

static void finish(fl_engine *e, fl_seq *s, int32_t token, const fl_logprobs *lp,
                   const char *reason, const char *stop_string, int32_t stop_token)
{
    fl_scheduler_finish(&e->sched, s);
    retire(e, s, token, lp, reason, stop_string, stop_token);
}

/* fl_scheduler_finish_requests' retire for aborted requests. */
static void retire_aborted(void *ctx, fl_seq *s)
{
    retire(ctx, s, -1, NULL, "abort", NULL, -1);
}

/* The earliest stop string in the text that is new enough to matter;
 * truncates the text there. Returns the string, or NULL. */
static const char *find_stop(fl_seq *s, size_t old_len)
{
    const fl_sampling_params *sp = &s->req->sp;
    const char *hit = NULL;
    size_t at = 0;
    for (int i = 0; i < sp->num_stop; i++) {
        const size_t n = strlen(sp->stop[i]);
        if (n == 0 || s->text.len < n)
            continue;
        size_t from = old_len >= n - 1 ? old_len - (n - 1) : 0;
        const char *p = memmem(s->text.data + from, s->text.len - from, sp->stop[i], n);
        if (p && (!hit || (size_t)(p - s->text.data) < at)) {
            hit = sp->stop[i];
            at = (size_t)(p - s->text.data);
        }
    }
    if (hit) {
        s->text.len = at + (sp->include_stop_str_in_output ? strlen(hit) : 0);
        s->text.data[s->text.len] = '\0';
    }
    return hit;
}

static int is_in(int32_t t, const int32_t *ids, int n)
{
    for (int i = 0; i < n; i++)
        if (ids[i] == t)
            return 1;
    return 0;
}

/* Appends a sampled token and ends the sequence if it should end. */
static void accept_token(fl_engine *e, fl_seq *s, int32_t token, const fl_logprobs *lp)
{
    const fl_sampling_params *sp = &s->req->sp;
    if (s->pending) /* its placeholder holds the token already */
        s->pending = s->last_pending = 0;
    else
        fl_ids_push(&s->tokens, token);
    e->stats.generation_tokens++;
    s->t_prev_token = s->t_last_token;
    s->t_last_token = e->step_time;
    if (s->t_first_token == 0)
        s->t_first_token = e->step_time;
    const size_t old_len = s->text.len;
    if (e->tok)
        fl_detokenizer_push(&s->detok, token, &s->text);
    const int num_output = (int)s->tokens.len - s->num_prompt;
    if (num_output >= sp->min_tokens) {
        if (!sp->ignore_eos && is_in(token, e->eos_ids, e->num_eos)) {
            finish(e, s, token, lp, "stop", NULL, -1);
            return;
        }
        if (is_in(token, sp->stop_token_ids, sp->num_stop_token_ids)) {
            finish(e, s, token, lp, "stop", NULL, token);
            return;
        }
        const char *stop = e->tok ? find_stop(s, old_len) : NULL;
        if (stop) {
            finish(e, s, token, lp, "stop", stop, -1);
            return;
        }
    }
    /* a grammar that is complete forces the end: an end token where there
     * is one (the mask allows only those), else the stop here */
    if (s->grammar && fl_constraint_finished(s->grammar) && e->num_eos + sp->num_stop_token_ids == 0) {
        finish(e, s, token, lp, "stop", NULL, -1);
        return;
    }
    if (num_output >= sp->max_tokens || (int)s->tokens.len >= e->cfg.max_model_len) {
        finish(e, s, token, lp, "length", NULL, -1);
        return;
    }
    report(e, s, token, lp, NULL, NULL, -1);
}

/* ---- the step ---- */

static void take_inbox(fl_engine *e)
{
    pthread_mutex_lock(&e->lock);
    for (int i = 0; i < e->num_inbox; i++)
        e->stats.prompt_tokens += e->inbox[i]->num_prompt;
    fl_scheduler_add(&e->sched, e->inbox, e->num_inbox);
    e->num_inbox = 0;
    /* the aborted ids are taken whole (the set is built outside the lock)
     * and made a set, so one pass over the queues finds and removes them
     * all (a client that leaves mid-stream, or 250,000 sequences at once,
     * costs one pass, not one per id) */
    uint64_t *ids = e->aborts;
    const int n = e->num_aborts;
    e->aborts = NULL;
    e->num_aborts = e->cap_aborts = 0;
    pthread_mutex_unlock(&e->lock);
    if (!n) {
        free(ids);
        return;
    }
    fl_u64_map aborted;
    fl_u64_map_init(&aborted, n);
    for (int k = 0; k < n; k++)
        fl_u64_map_put(&aborted, ids[k], 0);
    free(ids);
    fl_scheduler_finish_requests(&e->sched, &aborted, retire_aborted, e);
    fl_u64_map_free(&aborted);
}

/* Can the device sample for s? Not with what needs the host sampler:
 * penalties, logit bias, logprobs, or EOS still banned by min_tokens. (A
 * row drawn on the host gets the token the device would have drawn from
 * the same logits: sample_draw.h.) */
static int device_samples(const fl_seq *s)
{
    const fl_sampling_params *sp = &s->req->sp;
    return sp->logprobs < 0 && sp->repetition_penalty == 1.f && sp->presence_penalty == 0.f &&
           sp->frequency_penalty == 0.f && sp->num_logit_bias == 0 &&
           (int)s->tokens.len - s->num_prompt >= sp->min_tokens;
}

/* Starts the device's draw of every row (rows it cannot do are drawn
 * again here), each at the output index fl_sample would use (a placeholder
 * counts: its token precedes this one). */
static void sample_on_device(fl_engine *e, int num_rows)
{
    for (int r = 0; r < num_rows; r++) {
        const fl_seq *s = e->row_seqs[r];
        e->dev_rows[r] = (fl_draw){
            .params = s->req->sp.draw, .rng_key = s->rng_key,
            .index = (uint64_t)((int)s->tokens.len - s->num_prompt),
        };
    }
    e->runner.sample(e->runner.impl, num_rows, e->dev_rows);
}

/* Fills s's prompt_logprobs entry for position pos (its logits predict
 * prompt token pos + 1) from the row's raw logits. Rows come in position
 * order; one already filled (a preempted sequence recomputes) is skipped. */
static void record_prompt_row(fl_engine *e, fl_seq *s, int pos, const float *logits)
{
    if (pos != s->plp_done)
        return;
    const int V = e->runner.vocab_size, k = s->req->sp.prompt_logprobs, per = 1 + k;
    const int32_t token = s->tokens.data[pos + 1];
    fl_logprobs lp = { .ids = e->lp_ids, .values = e->lp_values };
    fl_logprobs_fill(logits, V, token, k, &lp);
    int32_t *ids = s->plp_ids + (size_t)pos * per, *ranks = s->plp_ranks + (size_t)pos * per;
    float *values = s->plp_values + (size_t)pos * per;
    ids[0] = token;
    values[0] = lp.chosen;
    ranks[0] = fl_logprobs_rank(logits, V, token);
    for (int j = 0; j < k; j++) { /* a vocabulary smaller than k: -1 ids past its end */
        ids[1 + j] = j < lp.count ? lp.ids[j] : -1;
        values[1 + j] = j < lp.count ? lp.values[j] : 0.f;
        ranks[1 + j] = j + 1;
    }
    s->plp_done++;
}

/* ---- structured output ---- */

/* The tokens that end a sequence: the model's EOS ids and the request's
 * stop ids. A constraint allows them where its grammar may end. */
static int is_end_token(const fl_engine *e, const fl_sampling_params *sp, int32_t t)
{
    return is_in(t, e->eos_ids, e->num_eos) || is_in(t, sp->stop_token_ids, sp->num_stop_token_ids);
}

/* The masks of the step's constrained rows (sampling rows of sequences with
 * a constraint), end tokens added where the grammar may end; on the device
 * they are applied to its logits here, before it samples. A mask the
 * grammar cannot give (pda.h's bound) allows nothing: the row then has
 * nothing to draw and its sequence ends in error. */
static void constrain_rows(fl_engine *e, const fl_batch *b)
{
    const int V = e->runner.vocab_size, words = fl_token_mask_words(V);
    int n = 0;
    for (int r = 0; r < b->num_logits; r++) {
        fl_seq *s = e->row_seqs[r];
        const int sampling = b->positions[b->logit_rows[r]] == (int)s->tokens.len - 1;
        if (!s->grammar || !sampling) {
            if (e->mask_of_row)
                e->mask_of_row[r] = -1;
            continue;
        }
        if (!e->masks) {
            const size_t S = (size_t)e->cfg.max_num_seqs;
            e->masks = fl_malloc(S * (size_t)words * sizeof *e->masks);
            e->mask_rows = fl_malloc(S * sizeof *e->mask_rows);
            e->mask_of_row = fl_malloc(S * sizeof *e->mask_of_row);
            for (int k = 0; k < r; k++)
                e->mask_of_row[k] = -1;
        }
        const fl_sampling_params *sp = &s->req->sp;
        uint32_t *m = e->masks + (size_t)n * words;
        if (fl_constraint_fill_mask(sp->constraint, s->grammar, m) != 0) {
            memset(m, 0, (size_t)words * sizeof *m);
        } else if (fl_constraint_can_end(s->grammar)) {
            for (int i = 0; i < e->num_eos + sp->num_stop_token_ids; i++) {
                const int32_t t = i < e->num_eos ? e->eos_ids[i] : sp->stop_token_ids[i - e->num_eos];
                m[t >> 5] |= 1u << (t & 31);
            }
        }
        e->mask_of_row[r] = n;
        e->mask_rows[n++] = r;
    }
    if (n && e->runner.sample)
        e->runner.mask_logits(e->runner.impl, n, e->mask_rows, e->masks);
}

/* The tokens of the oldest sample on its way, waited for (timed). */
static const int32_t *wait_tokens(fl_engine *e)
{
    const double t = fl_now_seconds();
    const int32_t *tokens = e->runner.sampled(e->runner.impl);
    e->step_time = fl_now_seconds();
    e->timing.waited += e->step_time - t;
    return tokens;
}

/* Handles logit row r of the step just run, of sequence s: a prompt
 * position's logprobs (prompt_pos >= 0), or its next token, drawn on the
 * device (drawn[r], if drawn is not NULL and the device could) or here. */
static void handle_row(fl_engine *e, fl_seq *s, int r, int prompt_pos, const int32_t *drawn)
{
    const int V = e->runner.vocab_size, on_device = e->runner.sample != NULL;
    const fl_sampling_params *sp = &s->req->sp;
    if (prompt_pos >= 0) { /* prompt_logprobs */
        float *logits = e->logits + (on_device ? 0 : (size_t)r * V);
        if (on_device)
            e->runner.read_logits(e->runner.impl, r, logits);
        record_prompt_row(e, s, prompt_pos, logits);
        return;
    }
    fl_logprobs lp = { .ids = e->lp_ids, .values = e->lp_values };
    int32_t token;
    if (drawn && device_samples(s)) {
        token = drawn[r];
    } else {
        float *logits = e->logits + (on_device ? 0 : (size_t)r * V);
        if (on_device)
            e->runner.read_logits(e->runner.impl, r, logits); /* masked on the device */
        else if (s->grammar && e->mask_of_row[r] >= 0)
            fl_token_mask_apply(logits, V, e->masks + (size_t)e->mask_of_row[r] * fl_token_mask_words(V));
        fl_sample_context ctx = {
            .prompt = s->tokens.data, .num_prompt = s->num_prompt,
            .output = s->tokens.data + s->num_prompt,
            .num_output = (int)s->tokens.len - s->num_prompt,
            .eos_ids = e->eos_ids, .num_eos = e->num_eos, .rng_key = s->rng_key,
        };
        fl_sampling_params capped = *sp;
        if (capped.logprobs > 64)
            capped.logprobs = 64;
        token = fl_sample(&capped, &ctx, logits, V, e->sample_scratch, sp->logprobs >= 0 ? &lp : NULL);
    }
    if (token < 0 || token >= V) /* the sampler found no candidate (see fl_sample) */
        finish(e, s, -1, NULL, "error", NULL, -1);
    else if (s->grammar && !is_end_token(e, sp, token) && fl_constraint_accept(sp->constraint, s->grammar, token) != 0)
        finish(e, s, -1, NULL, "error", NULL, -1); /* never: the mask allowed only what it takes */
    else
        accept_token(e, s, token, sp->logprobs >= 0 ? &lp : NULL);
}

/* May step b's tokens stay on their way while the next step is planned?
 * Only if the device draws every row and nothing the next plan or mask
 * reads depends on them: sampling rows only (no prompt logprobs), drawn
 * on the device, no grammar. */
static int may_fly(const fl_engine *e, const fl_batch *b)
{
    for (int r = 0; r < b->num_logits; r++) {
        const fl_seq *s = e->row_seqs[r];
        if (s->finished)
            continue;
        if (b->positions[b->logit_rows[r]] != (int)s->tokens.len - 1 || !device_samples(s) || s->grammar)
            return 0;
    }
    return 1;
}

/* Step b's tokens stay on their way: each sequence gets its placeholder,
 * and the rows become the flight's. */
static void take_off(fl_engine *e, const fl_batch *b)
{
    for (int r = 0; r < b->num_logits; r++) {
        fl_seq *s = e->row_seqs[r];
        if (s->finished)
            continue;
        fl_ids_push(&s->tokens, -1 - r);
        s->pending = 1;
        s->last_pending = (int)s->tokens.len - s->num_prompt >= s->req->sp.max_tokens ||
                          (int)s->tokens.len >= e->cfg.max_model_len;
    }
    fl_seq **t = e->flight.seqs;
    e->flight.seqs = e->row_seqs;
    e->row_seqs = t;
    e->flight.num_rows = b->num_logits;
    e->flight.active = 1;
}

/* The flight's tokens, waited for, go into their placeholders (before the
 * scheduler's commit hashes the blocks that hold them). */
static const int32_t *land(fl_engine *e)
{
    const int32_t *tokens = wait_tokens(e);
    for (int r = 0; r < e->flight.num_rows; r++) {
        fl_seq *s = e->flight.seqs[r];
        if (!s->finished)
            s->tokens.data[s->tokens.len - 1] = tokens[r];
    }
    return tokens;
}

/* Then they are handled as any step's. */
static void handle_flight(fl_engine *e, const int32_t *tokens)
{
    for (int r = 0; r < e->flight.num_rows; r++) {
        fl_seq *s = e->flight.seqs[r];
        if (!release_row(e, s))
            handle_row(e, s, r, -1, tokens);
    }
    e->flight.active = 0;
}

int fl_engine_step(fl_engine *e)
{
    const double t_start = fl_now_seconds();
    e->timing.waited = 0;
    take_inbox(e);
    fl_batch b = fl_scheduler_plan(&e->sched, e->row_seqs);
    if (b.num_tokens == 0) {
        if (e->flight.active)
            handle_flight(e, land(e));
    } else {
        const double planned = fl_now_seconds();
        for (int i = 0; i < e->sched.num_step_seqs; i++)
            if (e->sched.step_seqs[i]->t_scheduled == 0)
                e->sched.step_seqs[i]->t_scheduled = planned;
        const int on_device = e->runner.sample != NULL;
        e->runner.forward(e->runner.impl, &b, on_device ? NULL : e->logits);
        e->step_time = fl_now_seconds(); /* the tokens' time without a sampler; else when they arrive */
        e->stats.steps++;
        for (int r = 0; r < b.num_logits; r++)
            e->row_seqs[r]->rows_in_flight++;
        if (atomic_load(&e->num_constrained)) /* nothing to do for requests without a grammar */
            constrain_rows(e, &b);
        if (on_device && b.num_logits)
            sample_on_device(e, b.num_logits);
        const double launched = fl_now_seconds();
        /* the step before, if its tokens are still on their way, ran
         * before this one: they arrive now, and go into their sequences
         * before this step's blocks are hashed, and are handled before
         * this step's tokens */
        const int32_t *landed = e->flight.active ? land(e) : NULL;
        fl_scheduler_commit(&e->sched);
        if (landed) {
            handle_flight(e, landed);
            e->stats.overlapped_steps++;
        }
        if (e->async && b.num_logits && may_fly(e, &b)) {
            take_off(e, &b);
        } else {
            const int32_t *drawn = on_device && b.num_logits ? wait_tokens(e) : NULL;
            for (int r = 0; r < b.num_logits; r++) {
                fl_seq *s = e->row_seqs[r];
                const int pos = b.positions[b.logit_rows[r]];
                if (!release_row(e, s))
                    handle_row(e, s, r, pos < (int)s->tokens.len - 1 ? pos : -1, drawn);
            }
        }
        if (e->timing.on && b.num_seqs >= 128 && b.num_tokens == b.num_seqs) {
            const double end = fl_now_seconds();
            e->timing.steps++;
            e->timing.plan += planned - t_start;
            e->timing.launch += launched - planned;
            e->timing.wait += e->timing.waited;
            e->timing.tokens += end - launched - e->timing.waited;
        }
    }
    pthread_mutex_lock(&e->lock);
    int pending = e->num_inbox + e->num_aborts;
    pthread_mutex_unlock(&e->lock);
    return e->sched.num_running + e->sched.num_waiting + pending + e->flight.active;
}

void fl_engine_describe_kv(const fl_engine *e, int num_tokens, char *out, size_t len)
{
    const fl_scheduler *s = &e->sched;
    char groups[256];
    fl_kv_groups_describe(&s->groups, groups, sizeof groups);
    const int usable = fl_scheduler_usable_blocks(s), per_seq = fl_scheduler_seq_blocks(s, num_tokens);
    snprintf(out, len, "KV cache: %s, %d blocks of %d tokens; a sequence of %d tokens holds at most %d blocks: "
             "maximum concurrency %.2fx", groups, usable, s->pool.block_size, num_tokens, per_seq,
             (double)usable / per_seq);
}

void fl_engine_get_stats(fl_engine *e, fl_engine_stats *s)
{
    const fl_scheduler *sch = &e->sched;
    *s = e->stats;
    s->num_running = sch->num_running;
    s->num_waiting = sch->num_waiting;
    s->num_blocks = fl_scheduler_usable_blocks(sch);
    s->num_free_blocks = sch->pool.num_free;
    s->prefix_queries = sch->prefix_queries;
    s->prefix_hits = sch->prefix_hits;
    s->preemptions = sch->preemptions;
    s->computed_tokens = sch->computed_tokens;
    s->block_size = sch->pool.block_size;
    s->enable_prefix_caching = e->cfg.enable_prefix_caching;
}
