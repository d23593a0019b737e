/* batch.c - the batch invariant's test (see batch.h). It reads every field
 * once, so a runner can afford it on every step. */
#include "model/batch.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

/* Writes the violation into why and returns -1. */
static int __attribute__((format(printf, 3, 4))) violation(char *why, size_t why_len, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, why_len, fmt, ap);
    va_end(ap);
    return -1;
}

/* Rule 4 for sequence i's table of group g: the first `used` entries are
 * blocks of the cache, the null block only where the window has left them
 * (the blocks wholly before position first - window + 1). */
static int check_table(const fl_batch *b, const fl_kv_groups *groups, int i, int g, int first, int used,
                       int block_size, int num_blocks, char *why, size_t why_len)
{
    const int32_t *table = fl_batch_table(b, i, g);
    const int window = groups->window[g];
    const int left = window > 0 && first - window + 1 > 0 ? (first - window + 1) / block_size : 0;
    const int null_block = fl_kv_groups_have_window(groups) ? FL_KV_NULL_BLOCK : -1;
    for (int k = 0; k < used; k++) {
        if (table[k] < 0 || table[k] >= num_blocks)
            return violation(why, why_len, "sequence %d: group %d's block table entry %d is %d, outside [0, %d)",
                             i, g, k, table[k], num_blocks);
        if (table[k] == null_block && k >= left)
            return violation(why, why_len, "sequence %d: group %d's block table entry %d is the null block %d, "
                             "but its first row (position %d) attends to the block (window %d)", i, g, k,
                             table[k], first, window);
    }
    return 0;
}

/* Rules 3 to 5 for sequence i, whose rows are [first, end). */
static int check_seq(const fl_batch *b, const fl_kv_groups *groups, int i, int first, int end, int block_size,
                     int num_blocks, char *why, size_t why_len)
{
    const int len = b->seq_lens[i], n = end - first;
    if (len < n)
        return violation(why, why_len, "sequence %d has %d tokens but seq_lens %d", i, n, len);
    const int used = (len + block_size - 1) / block_size;
    if (used > b->max_blocks_per_seq)
        return violation(why, why_len, "sequence %d: seq_lens %d needs %d blocks, more than "
                         "max_blocks_per_seq %d", i, len, used, b->max_blocks_per_seq);
    for (int g = 0; g < b->num_kv_groups; g++)
        if (check_table(b, groups, i, g, len - n, used, block_size, num_blocks, why, why_len) != 0)
            return -1;
    for (int t = first; t < end; t++) {
        const int p = len - n + (t - first);
        if (b->positions[t] != p)
            return violation(why, why_len, "row %d (sequence %d) is at position %d, not %d: a "
                             "sequence's rows are the last %d positions of seq_lens %d", t, i,
                             b->positions[t], p, n, len);
        for (int g = 0; g < b->num_kv_groups; g++) {
            const int32_t *table = fl_batch_table(b, i, g);
            const int32_t slot = fl_batch_slot(table, block_size, p);
            if (b->slots[(size_t)t * b->num_kv_groups + g] != slot)
                return violation(why, why_len, "row %d (sequence %d, position %d) has slot %d in group %d, "
                                 "not %d (block %d, offset %d)", t, i, p,
                                 b->slots[(size_t)t * b->num_kv_groups + g], g, slot, table[p / block_size],
                                 p % block_size);
        }
    }
    return 0;
}

int fl_batch_check(const fl_batch *b, const fl_kv_groups *groups, int block_size, int num_blocks, char *why,
                   size_t why_len)
{
    if (b->num_kv_groups != groups->num_groups)
        return violation(why, why_len, "num_kv_groups is %d, but the cache has %d groups", b->num_kv_groups,
                         groups->num_groups);
    if (b->num_seqs < 1)
        return violation(why, why_len, "num_seqs is %d: a step holds at least one sequence", b->num_seqs);
    if (b->query_start[0] != 0)
        return violation(why, why_len, "query_start[0] is %d, not 0", b->query_start[0]);
    if (b->query_start[b->num_seqs] != b->num_tokens)
        return violation(why, why_len, "query_start[%d] is %d, not num_tokens %d", b->num_seqs,
                         b->query_start[b->num_seqs], b->num_tokens);
    for (int i = 0; i < b->num_seqs; i++)
        if (b->query_start[i + 1] <= b->query_start[i])
            return violation(why, why_len, "query_start[%d] is %d and query_start[%d] %d: sequence "
                             "%d has no tokens, or sequences are out of order", i, b->query_start[i],
                             i + 1, b->query_start[i + 1], i);
    for (int i = 0; i < b->num_seqs; i++)
        if (check_seq(b, groups, i, b->query_start[i], b->query_start[i + 1], block_size, num_blocks, why,
                      why_len) != 0)
            return -1;
    if (b->num_logits < 0 || b->num_logits > b->num_tokens)
        return violation(why, why_len, "num_logits is %d, outside [0, num_tokens %d]", b->num_logits,
                         b->num_tokens);
    for (int r = 0; r < b->num_logits; r++) {
        const int lo = r > 0 ? b->logit_rows[r - 1] + 1 : 0;
        if (b->logit_rows[r] < lo || b->logit_rows[r] >= b->num_tokens)
            return violation(why, why_len, "logit_rows[%d] is %d, outside [%d, %d): rows increase and "
                             "are rows of the step", r, b->logit_rows[r], lo, b->num_tokens);
    }
    return 0;
}

void fl_batch_assert(const fl_batch *b, const fl_kv_groups *groups, int block_size, int num_blocks)
{
    char why[256];
    if (fl_batch_check(b, groups, block_size, num_blocks, why, sizeof why) != 0) {
        fprintf(stderr, "flashlm: internal error: the batch breaks its invariant (model/batch.h): %s\n", why);
        abort();
    }
}
