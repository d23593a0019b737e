/* scheduler.c - the queues, the blocks, and planning one step (see
 * scheduler.h).
 *
 * Running sequences come first, in admission order: each gets its next
 * decode token or prefill chunk, within the step's token budget. If a
 * sequence needs a block and none is free, the newest running sequence is
 * preempted (its blocks freed, to be recomputed) until one is. Then, if
 * nothing was preempted, waiting sequences are admitted in arrival order
 * while budget, blocks and max_num_seqs allow; an admitted sequence first
 * takes what it can without computing: the prompt blocks of its first
 * sibling (n > 1), or cached blocks of its prefix. Sequences enter the
 * batch in the order they are planned, so each one's tokens are
 * contiguous and the batch's invariant (model/batch.h) holds by
 * construction. */
#include "engine/scheduler.h"

#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"

void fl_scheduler_init(fl_scheduler *s, const fl_engine_config *cfg, int num_blocks, int block_size)
{
    memset(s, 0, sizeof *s);
    s->max_num_seqs = cfg->max_num_seqs;
    s->max_num_batched_tokens = cfg->max_num_batched_tokens;
    s->max_blocks_per_seq = (cfg->max_model_len + block_size - 1) / block_size;
    fl_block_pool_init(&s->pool, num_blocks, block_size, cfg->enable_prefix_caching);
    const size_t T = (size_t)s->max_num_batched_tokens, S = (size_t)s->max_num_seqs;
    s->running = fl_malloc(S * sizeof(fl_seq *));
    s->ids = fl_malloc(T * sizeof(int32_t));
    s->pos = fl_malloc(T * sizeof(int32_t));
    s->slots = fl_malloc(T * sizeof(int32_t));
    s->query_start = fl_malloc((S + 1) * sizeof(int32_t));
    s->seq_lens = fl_malloc(S * sizeof(int32_t));
    s->tables = fl_malloc(S * (size_t)s->max_blocks_per_seq * sizeof(int32_t));
    s->rows = fl_malloc(S * sizeof(int32_t));
    s->step_seqs = fl_malloc(S * sizeof(fl_seq *));
}

void fl_scheduler_free(fl_scheduler *s)
{
    fl_block_pool_free(&s->pool);
    free(s->running);
    free(s->waiting);
    free(s->ids);
    free(s->pos);
    free(s->slots);
    free(s->query_start);
    free(s->seq_lens);
    free(s->tables);
    free(s->rows);
    free(s->step_seqs);
}

void fl_scheduler_add(fl_scheduler *s, fl_seq *const *seqs, int n)
{
    const int live = s->num_waiting + s->num_running + n;
    if (live > s->cap_waiting) {
        s->cap_waiting = live * 2;
        s->waiting = fl_realloc(s->waiting, (size_t)s->cap_waiting * sizeof(fl_seq *));
    }
    for (int i = 0; i < n; i++) {
        seqs[i]->state = SEQ_WAITING;
        seqs[i]->chain_hash = FL_BLOCK_HASH_ROOT;
        s->waiting[s->num_waiting++] = seqs[i];
    }
}

/* ---- blocks ---- */

static void push_block(fl_seq *s, int32_t b)
{
    if (s->num_blocks == s->cap_blocks) {
        s->cap_blocks = s->cap_blocks ? 2 * s->cap_blocks : 8;
        s->blocks = fl_realloc(s->blocks, (size_t)s->cap_blocks * sizeof(int32_t));
    }
    s->blocks[s->num_blocks++] = b;
}

/* Grows seq's block table to cover num_tokens tokens; -1 if the pool runs
 * dry (the blocks taken so far stay with seq). */
static int ensure_blocks(fl_scheduler *s, fl_seq *seq, int num_tokens)
{
    const int need = (num_tokens + s->pool.block_size - 1) / s->pool.block_size;
    while (seq->num_blocks < need) {
        int32_t b = fl_block_pool_alloc(&s->pool);
        if (b < 0)
            return -1;
        push_block(seq, b);
    }
    return 0;
}

/* Gives seq's blocks back (last first, so its early blocks stay cached
 * longest) and forgets its progress. */
static void release_blocks(fl_scheduler *s, fl_seq *seq)
{
    for (int i = seq->num_blocks - 1; i >= 0; i--)
        fl_block_pool_release(&s->pool, seq->blocks[i]);
    seq->num_blocks = 0;
    seq->num_computed = 0;
    seq->num_published = 0;
    seq->chain_hash = FL_BLOCK_HASH_ROOT;
}

/* Publishes the hashes of seq's newly full, computed blocks. */
static void publish_blocks(fl_scheduler *s, fl_seq *seq)
{
    if (!s->pool.prefix_caching)
        return;
    const int bs = s->pool.block_size, full = seq->num_computed / bs;
    for (int k = seq->num_published; k < full; k++) {
        const int32_t *ids = seq->tokens.data + (size_t)k * bs;
        uint64_t h = fl_block_hash(seq->chain_hash, ids, bs);
        fl_block_pool_publish(&s->pool, seq->blocks[k], h, seq->chain_hash, ids);
        seq->chain_hash = h;
    }
    if (full > seq->num_published)
        seq->num_published = full;
}

/* Cached blocks of the sequence's known tokens, leaving at least one token
 * to compute (its logits give the next token). */
static void take_prefix_hits(fl_scheduler *s, fl_seq *seq)
{
    const int bs = s->pool.block_size, max_blocks = ((int)seq->tokens.len - 1) / bs;
    s->prefix_queries += (int)seq->tokens.len;
    for (int k = 0; k < max_blocks; k++) {
        const int32_t *ids = seq->tokens.data + (size_t)k * bs;
        uint64_t h = fl_block_hash(seq->chain_hash, ids, bs);
        int32_t b = fl_block_pool_lookup(&s->pool, h, seq->chain_hash, ids);
        if (b < 0)
            break;
        fl_block_pool_ref(&s->pool, b);
        push_block(seq, b);
        seq->chain_hash = h;
        seq->num_published = k + 1;
    }
    seq->num_computed = seq->num_blocks * bs;
    s->prefix_hits += seq->num_computed;
    if (seq->num_cached == 0)
        seq->num_cached = seq->num_computed < seq->num_prompt ? seq->num_computed : seq->num_prompt;
}

/* Siblings of an n > 1 request share the first sibling's full prompt
 * blocks once it has computed them (all but the block of the last prompt
 * token, whose logits each sibling computes itself). */
static void fork_from_first(fl_scheduler *s, fl_seq *seq)
{
    fl_seq *f = seq->req->first;
    const int k = (seq->num_prompt - 1) / s->pool.block_size;
    for (int i = 0; i < k; i++) {
        fl_block_pool_ref(&s->pool, f->blocks[i]);
        push_block(seq, f->blocks[i]);
    }
    seq->num_computed = k * s->pool.block_size;
    seq->num_cached = seq->num_computed;
    publish_blocks(s, seq);
}

/* ---- the queues ---- */

static void remove_at(fl_seq **list, int *n, int i)
{
    memmove(list + i, list + i + 1, (size_t)(*n - i - 1) * sizeof(fl_seq *));
    (*n)--;
}

static void remove_seq(fl_seq **list, int *n, const fl_seq *seq)
{
    for (int i = 0; i < *n; i++) {
        if (list[i] == seq) {
            remove_at(list, n, i);
            return;
        }
    }
}

static void preempt(fl_scheduler *s, fl_seq *seq)
{
    release_blocks(s, seq);
    seq->state = SEQ_WAITING;
    remove_seq(s->running, &s->num_running, seq);
    memmove(s->waiting + 1, s->waiting, (size_t)s->num_waiting * sizeof(fl_seq *));
    s->waiting[0] = seq;
    s->num_waiting++;
    s->preemptions++;
}

void fl_scheduler_finish(fl_scheduler *s, fl_seq *seq)
{
    if (seq->state == SEQ_RUNNING)
        remove_seq(s->running, &s->num_running, seq);
    else
        remove_seq(s->waiting, &s->num_waiting, seq);
    release_blocks(s, seq);
}

void fl_scheduler_finish_requests(fl_scheduler *s, const fl_u64_map *request_ids,
                                  void (*retire)(void *ctx, fl_seq *seq), void *ctx)
{
    for (int pass = 0; pass < 2; pass++) {
        fl_seq **list = pass ? s->waiting : s->running;
        int *count = pass ? &s->num_waiting : &s->num_running;
        int kept = 0; /* the queue compacted in place, order kept */
        for (int i = 0; i < *count; i++) {
            fl_seq *seq = list[i];
            if (fl_u64_map_get(request_ids, seq->req->id, NULL)) {
                release_blocks(s, seq);
                retire(ctx, seq);
            } else {
                list[kept++] = seq;
            }
        }
        *count = kept;
    }
}

/* ---- planning ---- */

/* May waiting sequence seq be admitted now? A sibling waits while the
 * first sibling is still working through the prompt they share. */
static int may_admit(const fl_seq *seq)
{
    const fl_seq *f = seq->req->first;
    return !f || f == seq || f->state != SEQ_RUNNING || f->num_computed >= f->num_prompt ||
           seq->num_computed > 0;
}

/* Appends seq's next count tokens to the planned step as its next
 * sequence; a logit row if they reach its last known token. */
static void add_to_step(fl_scheduler *s, fl_seq *seq, int count, fl_seq **row_seqs)
{
    const int i = s->num_step_seqs, bs = s->pool.block_size;
    int t = s->query_start[i];
    for (int k = 0; k < count; k++, t++) {
        const int p = seq->num_computed + k;
        s->ids[t] = seq->tokens.data[p];
        s->pos[t] = p;
        s->slots[t] = fl_batch_slot(seq->blocks, bs, p);
    }
    s->query_start[i + 1] = t;
    s->seq_lens[i] = seq->num_computed + count;
    memcpy(s->tables + (size_t)i * s->max_blocks_per_seq, seq->blocks,
           (size_t)seq->num_blocks * sizeof(int32_t));
    if (s->seq_lens[i] == (int)seq->tokens.len) {
        s->rows[s->num_rows] = t - 1;
        row_seqs[s->num_rows++] = seq;
    }
    seq->scheduled = count;
    s->step_seqs[s->num_step_seqs++] = seq;
}

fl_batch fl_scheduler_plan(fl_scheduler *s, fl_seq **row_seqs)
{
    int budget = s->max_num_batched_tokens, preempted = 0;
    s->num_step_seqs = s->num_rows = 0;
    s->query_start[0] = 0;
    for (int i = 0; i < s->num_running && budget > 0; i++) {
        fl_seq *seq = s->running[i];
        int want = (int)seq->tokens.len - seq->num_computed;
        if (want > budget)
            want = budget;
        int self_preempted = 0;
        while (!self_preempted && ensure_blocks(s, seq, seq->num_computed + want) != 0) {
            fl_seq *victim = s->running[s->num_running - 1];
            preempt(s, victim);
            preempted = 1;
            self_preempted = victim == seq;
        }
        if (self_preempted)
            break; /* seq was the newest: nothing after it runs either */
        add_to_step(s, seq, want, row_seqs);
        budget -= want;
    }
    for (int i = 0; !preempted && i < s->num_waiting && budget > 0 &&
                    s->num_running < s->max_num_seqs;) {
        fl_seq *seq = s->waiting[i];
        if (!may_admit(seq)) {
            i++;
            continue;
        }
        if (seq->num_computed == 0) {
            fl_seq *f = seq->req->first;
            if (f && f != seq && f->state == SEQ_RUNNING)
                fork_from_first(s, seq);
            else
                take_prefix_hits(s, seq);
        }
        int want = (int)seq->tokens.len - seq->num_computed;
        if (want > budget)
            want = budget;
        if (ensure_blocks(s, seq, seq->num_computed + want) != 0) {
            release_blocks(s, seq); /* try again when blocks are free */
            break;
        }
        remove_at(s->waiting, &s->num_waiting, i);
        seq->state = SEQ_RUNNING;
        s->running[s->num_running++] = seq;
        add_to_step(s, seq, want, row_seqs);
        budget -= want;
    }
    const int num_tokens = s->query_start[s->num_step_seqs];
    s->computed_tokens += num_tokens;
    return (fl_batch){
        .num_tokens = num_tokens, .token_ids = s->ids, .positions = s->pos, .slots = s->slots,
        .num_seqs = s->num_step_seqs, .query_start = s->query_start, .seq_lens = s->seq_lens,
        .max_blocks_per_seq = s->max_blocks_per_seq, .block_tables = s->tables,
        .num_logits = s->num_rows, .logit_rows = s->rows,
    };
}

void fl_scheduler_commit(fl_scheduler *s)
{
    for (int i = 0; i < s->num_step_seqs; i++) {
        fl_seq *seq = s->step_seqs[i];
        seq->num_computed += seq->scheduled;
        publish_blocks(s, seq);
    }
    s->num_step_seqs = 0; /* the step's sequences may finish from here on */
}
