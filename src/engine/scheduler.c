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
 * construction.
 *
 * Every block index of a sequence takes a block in each KV cache group
 * (model/kv_groups.h), so a step that grows a table needs num_kv_groups
 * free blocks per new index; a windowed group's blocks before its window
 * go back to the pool after each step (drop_left_blocks) and come from
 * the prefix cache only as far as the window reaches. */
#include "engine/scheduler.h"

#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "base/error.h"

void fl_scheduler_init(fl_scheduler *s, const fl_engine_config *cfg, const fl_kv_groups *groups,
                       int num_blocks, int block_size)
{
    memset(s, 0, sizeof *s);
    s->max_num_seqs = cfg->max_num_seqs;
    s->max_num_batched_tokens = cfg->max_num_batched_tokens;
    s->max_blocks_per_seq = (cfg->max_model_len + block_size - 1) / block_size;
    s->groups = *groups;
    fl_block_pool_init(&s->pool, num_blocks, block_size, cfg->enable_prefix_caching);
    s->null_block = -1;
    if (fl_kv_groups_have_window(groups)) {
        /* the first block handed out: the free list starts in id order */
        s->null_block = fl_block_pool_alloc(&s->pool);
        FL_ASSERT(s->null_block == FL_KV_NULL_BLOCK);
    }
    const size_t T = (size_t)s->max_num_batched_tokens, S = (size_t)s->max_num_seqs;
    const size_t G = (size_t)groups->num_groups, B = (size_t)s->max_blocks_per_seq;
    s->running = fl_malloc(S * sizeof(fl_seq *));
    s->ids = fl_malloc(T * sizeof(int32_t));
    s->pos = fl_malloc(T * sizeof(int32_t));
    s->slots = fl_malloc(T * G * sizeof(int32_t));
    s->query_start = fl_malloc((S + 1) * sizeof(int32_t));
    s->seq_lens = fl_malloc(S * sizeof(int32_t));
    s->tables = fl_malloc(S * G * B * sizeof(int32_t));
    s->rows = fl_malloc(S * sizeof(int32_t));
    s->step_seqs = fl_malloc(S * sizeof(fl_seq *));
    s->hits = fl_malloc(B * G * sizeof(int32_t));
    s->hit_hashes = fl_malloc(B * sizeof(uint64_t));
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
    free(s->hits);
    free(s->hit_hashes);
}

int fl_scheduler_usable_blocks(const fl_scheduler *s)
{
    return s->pool.num_blocks - (s->null_block >= 0);
}

/* The first block index that a query at position p, or a later one,
 * attends to in a group of this window (0: full attention). */
static int first_needed_block(int window, int block_size, int p)
{
    return window > 0 && p - window + 1 > 0 ? (p - window + 1) / block_size : 0;
}

int fl_scheduler_seq_blocks(const fl_scheduler *s, int num_tokens)
{
    const int bs = s->pool.block_size, all = (num_tokens + bs - 1) / bs;
    int total = 0;
    for (int g = 0; g < s->groups.num_groups; g++) {
        const int w = s->groups.window[g];
        const int held = w > 0 ? (w - 1 + s->max_num_batched_tokens + bs - 1) / bs + 1 : all;
        total += held < all ? held : all;
    }
    return total;
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

/* Appends block index num_blocks to seq's tables, one entry a group, as
 * entries[num_groups]. */
static void push_blocks(fl_seq *seq, const int32_t *entries, int num_groups)
{
    if (seq->num_blocks == seq->cap_blocks) {
        seq->cap_blocks = seq->cap_blocks ? 2 * seq->cap_blocks : 8;
        seq->blocks = fl_realloc(seq->blocks, (size_t)seq->cap_blocks * num_groups * sizeof(int32_t));
    }
    memcpy(seq->blocks + (size_t)seq->num_blocks * num_groups, entries, (size_t)num_groups * sizeof(int32_t));
    seq->num_blocks++;
}

/* Grows seq's tables to cover num_tokens tokens, a block of every group
 * per index; -1 if the pool runs dry (the indices covered so far stay
 * with seq). */
static int ensure_blocks(fl_scheduler *s, fl_seq *seq, int num_tokens)
{
    const int G = s->groups.num_groups;
    const int need = (num_tokens + s->pool.block_size - 1) / s->pool.block_size;
    int32_t entries[FL_MAX_LAYERS];
    while (seq->num_blocks < need) {
        if (s->pool.num_free < G)
            return -1;
        for (int g = 0; g < G; g++)
            entries[g] = fl_block_pool_alloc(&s->pool);
        push_blocks(seq, entries, G);
    }
    return 0;
}

/* Gives seq's blocks back (last first, so its early blocks stay cached
 * longest) and forgets its progress. */
static void release_blocks(fl_scheduler *s, fl_seq *seq)
{
    const int G = s->groups.num_groups;
    for (int i = seq->num_blocks * G - 1; i >= 0; i--)
        if (seq->blocks[i] != s->null_block)
            fl_block_pool_release(&s->pool, seq->blocks[i]);
    seq->num_blocks = 0;
    seq->num_computed = 0;
    seq->num_published = 0;
    seq->chain_hash = FL_BLOCK_HASH_ROOT;
}

/* Gives back the blocks of seq's windowed groups that no query from its
 * next token on attends to, pointing their entries at the null block. The
 * entries before a null one are null already (the window only moves on). */
static void drop_left_blocks(fl_scheduler *s, fl_seq *seq)
{
    const int G = s->groups.num_groups;
    for (int g = 0; g < G; g++) {
        const int left = first_needed_block(s->groups.window[g], s->pool.block_size, seq->num_computed);
        for (int k = left - 1; k >= 0 && seq->blocks[(size_t)k * G + g] != s->null_block; k--) {
            fl_block_pool_release(&s->pool, seq->blocks[(size_t)k * G + g]);
            seq->blocks[(size_t)k * G + g] = s->null_block;
        }
    }
}

/* Publishes the hashes of seq's newly full, computed blocks, in every
 * group that still holds them. */
static void publish_blocks(fl_scheduler *s, fl_seq *seq)
{
    if (!s->pool.prefix_caching)
        return;
    const int bs = s->pool.block_size, full = seq->num_computed / bs, G = s->groups.num_groups;
    for (int k = seq->num_published; k < full; k++) {
        const int32_t *ids = seq->tokens.data + (size_t)k * bs;
        uint64_t h = fl_block_hash(seq->chain_hash, ids, bs);
        for (int g = 0; g < G; g++) {
            const int32_t b = seq->blocks[(size_t)k * G + g];
            if (b != s->null_block)
                fl_block_pool_publish(&s->pool, b, g, h, seq->chain_hash, ids);
        }
        seq->chain_hash = h;
    }
    if (full > seq->num_published)
        seq->num_published = full;
}

/* Takes, as seq's first num_blocks indices, the blocks that found[k * G +
 * g] names for a sequence whose next token is at position num_blocks *
 * block_size: all of a full group's, a windowed group's from the first
 * its window needs (the null block before it). A reference each. */
static void take_blocks(fl_scheduler *s, fl_seq *seq, const int32_t *found, int num_blocks)
{
    const int G = s->groups.num_groups, bs = s->pool.block_size;
    int32_t entries[FL_MAX_LAYERS];
    for (int k = 0; k < num_blocks; k++) {
        for (int g = 0; g < G; g++) {
            const int needed = k >= first_needed_block(s->groups.window[g], bs, num_blocks * bs);
            entries[g] = needed ? found[(size_t)k * G + g] : s->null_block;
            if (needed)
                fl_block_pool_ref(&s->pool, entries[g]);
        }
        push_blocks(seq, entries, G);
    }
}

/* Whether found (as take_blocks reads it) holds, for a hit of num_blocks
 * indices, every block each group needs: a block is missing where it is
 * -1 or the null block. */
static int hit_complete(const fl_scheduler *s, const int32_t *found, int num_blocks)
{
    const int G = s->groups.num_groups, bs = s->pool.block_size;
    for (int g = 0; g < G; g++)
        for (int k = first_needed_block(s->groups.window[g], bs, num_blocks * bs); k < num_blocks; k++)
            if (found[(size_t)k * G + g] < 0 || found[(size_t)k * G + g] == s->null_block)
                return 0;
    return 1;
}

/* Cached blocks of the sequence's known tokens, leaving at least one token
 * to compute (its logits give the next token). The hit is the longest
 * prefix whose blocks each group needs are all cached: a full group every
 * block of it, a windowed group those its window reaches from the hit's
 * end (vLLM's rule; earlier ones may long be evicted). */
static void take_prefix_hits(fl_scheduler *s, fl_seq *seq)
{
    if (fl_scheduler_wants_plp(seq))
        return; /* every prompt position's logits are wanted: nothing is skipped (as vLLM) */
    const int bs = s->pool.block_size, max_blocks = ((int)seq->tokens.len - 1) / bs, G = s->groups.num_groups;
    s->prefix_queries += (int)seq->tokens.len;
    /* look every group up, block by block, until a full group misses (its
     * hits are prefixes: a later block cannot be used without this one) */
    int looked = 0, missed = 0;
    uint64_t parent = seq->chain_hash;
    while (looked < max_blocks && !missed) {
        const int32_t *ids = seq->tokens.data + (size_t)looked * bs;
        const uint64_t h = fl_block_hash(parent, ids, bs);
        for (int g = 0; g < G; g++) {
            int32_t *b = &s->hits[(size_t)looked * G + g];
            *b = fl_block_pool_lookup(&s->pool, g, h, parent, ids);
            missed |= *b < 0 && s->groups.window[g] == 0;
        }
        s->hit_hashes[looked] = h;
        parent = h;
        looked += !missed;
    }
    int k = looked;
    while (k > 0 && !hit_complete(s, s->hits, k))
        k--;
    take_blocks(s, seq, s->hits, k);
    if (k > 0) {
        seq->chain_hash = s->hit_hashes[k - 1];
        seq->num_published = k;
    }
    seq->num_computed = k * bs;
    s->prefix_hits += seq->num_computed;
    if (seq->num_cached == 0)
        seq->num_cached = seq->num_computed < seq->num_prompt ? seq->num_computed : seq->num_prompt;
}

/* Siblings of an n > 1 request share the first sibling's full prompt
 * blocks once it has computed them (all but the block of the last prompt
 * token, whose logits each sibling computes itself). Returns 0, taking
 * nothing, if a windowed group of the first has already given back blocks
 * the sibling's window needs. */
static int fork_from_first(fl_scheduler *s, fl_seq *seq)
{
    fl_seq *f = seq->req->first;
    const int k = (seq->num_prompt - 1) / s->pool.block_size;
    if (!hit_complete(s, f->blocks, k))
        return 0;
    take_blocks(s, seq, f->blocks, k);
    seq->num_computed = k * s->pool.block_size;
    seq->num_cached = seq->num_computed;
    publish_blocks(s, seq);
    return 1;
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

int fl_scheduler_wants_plp(const fl_seq *seq)
{
    return seq->req->sp.has_prompt_logprobs && seq->index == 0 && seq->plp_done < seq->num_prompt - 1;
}

/* The logit rows seq may take this step: max_num_seqs in all, less one for
 * each of the `later` sequences that may still join it. */
static int rows_left(const fl_scheduler *s, int later)
{
    return s->max_num_seqs - s->num_rows - later;
}

/* Appends seq's next count tokens to the planned step as its next
 * sequence; a logit row if they reach its last known token, and one for
 * each prompt position whose prompt logprobs it still needs (count is at
 * most the rows left then). */
static void add_to_step(fl_scheduler *s, fl_seq *seq, int count, fl_seq **row_seqs)
{
    const int i = s->num_step_seqs, bs = s->pool.block_size, G = s->groups.num_groups;
    const int plp = fl_scheduler_wants_plp(seq);
    int t = s->query_start[i];
    for (int k = 0; k < count; k++, t++) {
        const int p = seq->num_computed + k;
        if (plp && p >= seq->plp_done && p + 1 < seq->num_prompt) {
            s->rows[s->num_rows] = t;
            row_seqs[s->num_rows++] = seq;
        }
        s->ids[t] = seq->tokens.data[p];
        s->pos[t] = p;
        for (int g = 0; g < G; g++)
            s->slots[(size_t)t * G + g] = seq->blocks[(size_t)(p / bs) * G + g] * bs + p % bs;
    }
    s->query_start[i + 1] = t;
    s->seq_lens[i] = seq->num_computed + count;
    for (int g = 0; g < G; g++) {
        int32_t *table = s->tables + ((size_t)i * G + g) * s->max_blocks_per_seq;
        for (int k = 0; k < seq->num_blocks; k++)
            table[k] = seq->blocks[(size_t)k * G + g];
    }
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
        if (seq->last_pending)
            continue; /* it ends with the token on its way */
        int want = (int)seq->tokens.len - seq->num_computed;
        if (want > budget)
            want = budget;
        if (fl_scheduler_wants_plp(seq) && want > rows_left(s, s->num_running - i - 1))
            want = rows_left(s, s->num_running - i - 1);
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
                    s->num_running < s->max_num_seqs && rows_left(s, 0) > 0;) {
        fl_seq *seq = s->waiting[i];
        if (!may_admit(seq)) {
            i++;
            continue;
        }
        if (seq->num_computed == 0) {
            fl_seq *f = seq->req->first;
            if (!(f && f != seq && f->state == SEQ_RUNNING && fork_from_first(s, seq)))
                take_prefix_hits(s, seq);
        }
        int want = (int)seq->tokens.len - seq->num_computed;
        if (want > budget)
            want = budget;
        if (fl_scheduler_wants_plp(seq) && want > rows_left(s, 0))
            want = rows_left(s, 0);
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
        .num_tokens = num_tokens, .token_ids = s->ids, .positions = s->pos,
        .num_kv_groups = s->groups.num_groups, .slots = s->slots,
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
        drop_left_blocks(s, seq);
    }
    s->num_step_seqs = 0; /* the step's sequences may finish from here on */
}
