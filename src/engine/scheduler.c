/* scheduler.c - planning one step (see engine_internal.h).
 *
 * Running sequences come first, in admission order: each gets its next
 * decode token or prefill chunk, within the step's token budget. If a
 * sequence needs a block and none is free, the newest running sequence is
 * preempted (its blocks freed, to be recomputed) until one is. Then, if
 * nothing was preempted, waiting sequences are admitted in arrival order
 * while budget, blocks and max_num_seqs allow; an admitted sequence first
 * takes what it can without computing: the prompt blocks of its first
 * sibling (n > 1), or cached blocks of its prefix. */
#include <string.h>

#include "base/alloc.h"
#include "engine/engine_internal.h"

static void push_block(fl_seq *s, int32_t b)
{
    if (s->num_blocks == s->cap_blocks) {
        s->cap_blocks = s->cap_blocks ? 2 * s->cap_blocks : 8;
        s->blocks = fl_realloc(s->blocks, (size_t)s->cap_blocks * sizeof(int32_t));
    }
    s->blocks[s->num_blocks++] = b;
}

/* Grows s's block table to cover num_tokens tokens; -1 if the pool runs dry
 * (the blocks taken so far stay with s). */
static int ensure_blocks(fl_engine *e, fl_seq *s, int num_tokens)
{
    const int need = (num_tokens + e->pool.block_size - 1) / e->pool.block_size;
    while (s->num_blocks < need) {
        int32_t b = fl_block_pool_alloc(&e->pool);
        if (b < 0)
            return -1;
        push_block(s, b);
    }
    return 0;
}

void fl_seq_release_blocks(fl_engine *e, fl_seq *s)
{
    for (int i = s->num_blocks - 1; i >= 0; i--)
        fl_block_pool_release(&e->pool, s->blocks[i]);
    s->num_blocks = 0;
    s->num_computed = 0;
    s->num_published = 0;
    s->chain_hash = FL_BLOCK_HASH_ROOT;
}

void fl_seq_publish_blocks(fl_engine *e, fl_seq *s)
{
    if (!e->pool.prefix_caching)
        return;
    const int bs = e->pool.block_size, full = s->num_computed / bs;
    for (int k = s->num_published; k < full; k++) {
        const int32_t *ids = s->tokens.data + (size_t)k * bs;
        uint64_t h = fl_block_hash(s->chain_hash, ids, bs);
        fl_block_pool_publish(&e->pool, s->blocks[k], h, s->chain_hash, ids);
        s->chain_hash = h;
    }
    if (full > s->num_published)
        s->num_published = full;
}

static void remove_at(fl_seq **list, int *n, int i)
{
    memmove(list + i, list + i + 1, (size_t)(*n - i - 1) * sizeof(fl_seq *));
    (*n)--;
}

static void preempt(fl_engine *e, fl_seq *s)
{
    fl_seq_release_blocks(e, s);
    s->state = SEQ_WAITING;
    for (int i = 0; i < e->num_running; i++)
        if (e->running[i] == s)
            remove_at(e->running, &e->num_running, i);
    memmove(e->waiting + 1, e->waiting, (size_t)e->num_waiting * sizeof(fl_seq *));
    e->waiting[0] = s;
    e->num_waiting++;
    e->stats.preemptions++;
}

/* Cached blocks of the sequence's known tokens, leaving at least one token
 * to compute (its logits give the next token). */
static void take_prefix_hits(fl_engine *e, fl_seq *s)
{
    const int bs = e->pool.block_size, max_blocks = ((int)s->tokens.len - 1) / bs;
    e->stats.prefix_queries += (int)s->tokens.len;
    for (int k = 0; k < max_blocks; k++) {
        const int32_t *ids = s->tokens.data + (size_t)k * bs;
        uint64_t h = fl_block_hash(s->chain_hash, ids, bs);
        int32_t b = fl_block_pool_lookup(&e->pool, h, s->chain_hash, ids);
        if (b < 0)
            break;
        fl_block_pool_ref(&e->pool, b);
        push_block(s, b);
        s->chain_hash = h;
        s->num_published = k + 1;
    }
    s->num_computed = s->num_blocks * bs;
    e->stats.prefix_hits += s->num_computed;
    if (s->num_cached == 0)
        s->num_cached = s->num_computed < s->num_prompt ? s->num_computed : s->num_prompt;
}

/* Siblings of an n > 1 request share the first sibling's full prompt
 * blocks once it has computed them (all but the block of the last prompt
 * token, whose logits each sibling computes itself). */
static int fork_from_first(fl_engine *e, fl_seq *s)
{
    fl_seq *f = s->req->first;
    const int k = (s->num_prompt - 1) / e->pool.block_size;
    for (int i = 0; i < k; i++) {
        fl_block_pool_ref(&e->pool, f->blocks[i]);
        push_block(s, f->blocks[i]);
    }
    s->num_computed = k * e->pool.block_size;
    s->num_cached = s->num_computed;
    fl_seq_publish_blocks(e, s);
    return 0;
}

/* May waiting sequence s be admitted now? A sibling waits while the first
 * sibling is still working through the prompt they share. */
static int may_admit(const fl_seq *s)
{
    const fl_seq *f = s->req->first;
    return !f || f == s || f->state != SEQ_RUNNING || f->num_computed >= f->num_prompt ||
           s->num_computed > 0;
}

static void add_to_step(fl_engine *e, fl_seq *s, int count, int *n_tok, int *n_seq, int *n_rows)
{
    const int row = *n_seq;
    for (int k = 0; k < count; k++, (*n_tok)++) {
        e->ids[*n_tok] = s->tokens.data[s->num_computed + k];
        e->pos[*n_tok] = s->num_computed + k;
        e->tseq[*n_tok] = row;
    }
    memcpy(e->tables + (size_t)row * e->max_blocks_per_seq, s->blocks,
           (size_t)s->num_blocks * sizeof(int32_t));
    if (s->num_computed + count == (int)s->tokens.len) {
        e->rows[*n_rows] = *n_tok - 1;
        e->row_seqs[(*n_rows)++] = s;
    }
    s->scheduled = count;
    e->step_seqs[(*n_seq)++] = s;
}

fl_batch fl_schedule(fl_engine *e)
{
    int budget = e->cfg.max_num_batched_tokens, n_tok = 0, n_seq = 0, n_rows = 0, preempted = 0;
    for (int i = 0; i < e->num_running && budget > 0; i++) {
        fl_seq *s = e->running[i];
        int want = (int)s->tokens.len - s->num_computed;
        if (want > budget)
            want = budget;
        int self_preempted = 0;
        while (!self_preempted && ensure_blocks(e, s, s->num_computed + want) != 0) {
            fl_seq *victim = e->running[e->num_running - 1];
            preempt(e, victim);
            preempted = 1;
            self_preempted = victim == s;
        }
        if (self_preempted)
            break; /* s was the newest: nothing after it runs either */
        add_to_step(e, s, want, &n_tok, &n_seq, &n_rows);
        budget -= want;
    }
    for (int i = 0; !preempted && i < e->num_waiting && budget > 0 &&
                    e->num_running < e->cfg.max_num_seqs;) {
        fl_seq *s = e->waiting[i];
        if (!may_admit(s)) {
            i++;
            continue;
        }
        if (s->num_computed == 0) {
            fl_seq *f = s->req->first;
            if (f && f != s && f->state == SEQ_RUNNING)
                fork_from_first(e, s);
            else
                take_prefix_hits(e, s);
        }
        int want = (int)s->tokens.len - s->num_computed;
        if (want > budget)
            want = budget;
        if (ensure_blocks(e, s, s->num_computed + want) != 0) {
            fl_seq_release_blocks(e, s); /* try again when blocks are free */
            break;
        }
        remove_at(e->waiting, &e->num_waiting, i);
        s->state = SEQ_RUNNING;
        s->arrival = e->next_arrival++;
        e->running[e->num_running++] = s;
        add_to_step(e, s, want, &n_tok, &n_seq, &n_rows);
        budget -= want;
    }
    e->stats.computed_tokens += n_tok;
    return (fl_batch){
        .num_tokens = n_tok, .token_ids = e->ids, .positions = e->pos, .token_seq = e->tseq,
        .num_seqs = n_seq, .max_blocks_per_seq = e->max_blocks_per_seq, .block_tables = e->tables,
        .num_logits = n_rows, .logit_rows = e->rows,
    };
}
