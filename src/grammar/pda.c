/* pda.c - the grammar's stacks, expanded and stepped (see pda.h). */
#include "grammar/pda.h"

#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"

/* Each expansion may visit at most this many stacks (a bound on the time a
 * pathological grammar can take per byte). */
#define MAX_VISITS (64 * FL_PDA_MAX_STACKS)

void fl_u32buf_reserve(fl_u32buf *b, size_t n)
{
    if (b->len + n <= b->cap)
        return;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < b->len + n)
        cap *= 2;
    b->data = fl_realloc(b->data, cap * sizeof(uint32_t));
    b->cap = cap;
}

void fl_u32buf_free(fl_u32buf *b)
{
    free(b->data);
    memset(b, 0, sizeof *b);
}

static void push(fl_u32buf *b, uint32_t v)
{
    fl_u32buf_reserve(b, 1);
    b->data[b->len++] = v;
}

void fl_pda_init(fl_pda *p, const fl_grammar *g)
{
    memset(p, 0, sizeof *p);
    p->g = g;
}

void fl_pda_free(fl_pda *p)
{
    fl_u32buf_free(&p->pool);
    fl_u32buf_free(&p->work);
    fl_u32buf_free(&p->ready);
    free(p->seen_hash);
    free(p->seen_off);
    memset(p, 0, sizeof *p);
}

static uint64_t hash_stack(const uint32_t *s)
{
    uint64_t h = 0x9e3779b97f4a7c15ull ^ s[0];
    for (uint32_t i = 1; i <= s[0]; i++) {
        h ^= s[i];
        h *= 0xff51afd7ed558ccdull;
        h ^= h >> 32;
    }
    return h;
}

static void reset(fl_pda *p)
{
    p->pool.len = p->work.len = p->ready.len = 0;
    p->accepting = 0;
    if (p->seen_count)
        memset(p->seen_off, 0xff, p->seen_cap * sizeof *p->seen_off);
    p->seen_count = 0;
}

static void seen_grow(fl_pda *p)
{
    const size_t old_cap = p->seen_cap;
    uint64_t *oh = p->seen_hash;
    uint32_t *oo = p->seen_off;
    p->seen_cap = old_cap ? 2 * old_cap : 256;
    p->seen_hash = fl_malloc(p->seen_cap * sizeof *p->seen_hash);
    p->seen_off = fl_malloc(p->seen_cap * sizeof *p->seen_off);
    memset(p->seen_off, 0xff, p->seen_cap * sizeof *p->seen_off);
    for (size_t i = 0; i < old_cap; i++) {
        if (oo[i] == UINT32_MAX)
            continue;
        size_t j = oh[i] & (p->seen_cap - 1);
        while (p->seen_off[j] != UINT32_MAX)
            j = (j + 1) & (p->seen_cap - 1);
        p->seen_hash[j] = oh[i];
        p->seen_off[j] = oo[i];
    }
    free(oh);
    free(oo);
}

/* Adds the stack at pool offset off to the visited set; 0 if it was there. */
static int visit(fl_pda *p, uint32_t off)
{
    if (2 * (p->seen_count + 1) > p->seen_cap)
        seen_grow(p);
    const uint32_t *s = p->pool.data + off;
    const uint64_t h = hash_stack(s);
    size_t j = h & (p->seen_cap - 1);
    while (p->seen_off[j] != UINT32_MAX) {
        const uint32_t *t = p->pool.data + p->seen_off[j];
        if (p->seen_hash[j] == h && t[0] == s[0] && memcmp(t + 1, s + 1, s[0] * sizeof *s) == 0)
            return 0;
        j = (j + 1) & (p->seen_cap - 1);
    }
    p->seen_hash[j] = h;
    p->seen_off[j] = off;
    p->seen_count++;
    return 1;
}

/* A new stack in the pool: the first keep frames of the stack at src, then
 * top (if top >= 0). Returns its offset. */
static uint32_t new_stack(fl_pda *p, uint32_t src, uint32_t keep, int64_t top)
{
    const uint32_t len = keep + (top >= 0);
    fl_u32buf_reserve(&p->pool, (size_t)len + 1);
    const uint32_t off = (uint32_t)p->pool.len;
    uint32_t *d = p->pool.data + off;
    d[0] = len;
    memcpy(d + 1, p->pool.data + src + 1, keep * sizeof *d);
    if (top >= 0)
        d[len] = (uint32_t)top;
    p->pool.len += (size_t)len + 1;
    return off;
}

/* Expands the stacks in the work list until each top is a byte set (into
 * ready) or the stack is empty (accepting). */
static fl_pda_status expand(fl_pda *p)
{
    const fl_grammar *g = p->g;
    size_t visits = 0;
    while (p->work.len) {
        const uint32_t off = p->work.data[--p->work.len];
        if (!visit(p, off))
            continue;
        if (++visits > MAX_VISITS)
            return FL_PDA_OVERFLOW;
        const uint32_t len = p->pool.data[off];
        if (len == 0) {
            p->accepting = 1;
            continue;
        }
        const uint32_t pos = p->pool.data[off + len];
        const uint32_t e = g->elems[pos];
        switch (FL_G_KIND(e)) {
        case FL_G_BYTES:
            if (p->ready.len >= FL_PDA_MAX_STACKS)
                return FL_PDA_OVERFLOW;
            push(&p->ready, off);
            break;
        case FL_G_END: /* the rule is done: back to the frame below */
            push(&p->work, new_stack(p, off, len - 1, -1));
            break;
        default: { /* FL_G_REF: enter each alternative; a tail reference replaces the frame */
            const int tail = FL_G_KIND(g->elems[pos + 1]) == FL_G_END;
            const uint32_t keep = tail ? len - 1 : len;
            if (keep + 1 > FL_PDA_MAX_DEPTH)
                break;
            const int r = (int)FL_G_ARG(e);
            for (int a = g->rule_alts[r + 1] - 1; a >= g->rule_alts[r]; a--) {
                const uint32_t s = new_stack(p, off, keep, g->alt_start[a]);
                if (!tail)
                    p->pool.data[s + keep] = pos + 1; /* the return address */
                push(&p->work, s);
            }
            break;
        }
        }
    }
    return FL_PDA_OK;
}

static int cmp_stacks(const void *x, const void *y, void *ctx)
{
    const uint32_t *pool = ctx;
    const uint32_t *a = pool + *(const uint32_t *)x, *b = pool + *(const uint32_t *)y;
    if (a[0] != b[0])
        return a[0] < b[0] ? -1 : 1;
    for (uint32_t i = 1; i <= a[0]; i++)
        if (a[i] != b[i])
            return a[i] < b[i] ? -1 : 1;
    return 0;
}

/* The ready stacks, sorted, into out. */
static void serialize(fl_pda *p, fl_u32buf *out)
{
    if (p->ready.len > 1)
        qsort_r(p->ready.data, p->ready.len, sizeof(uint32_t), cmp_stacks, p->pool.data);
    out->len = 0;
    push(out, p->accepting ? FL_PDA_ACCEPTING : 0);
    push(out, (uint32_t)p->ready.len);
    for (size_t i = 0; i < p->ready.len; i++) {
        const uint32_t *s = p->pool.data + p->ready.data[i];
        fl_u32buf_reserve(out, (size_t)s[0] + 1);
        memcpy(out->data + out->len, s, ((size_t)s[0] + 1) * sizeof *s);
        out->len += (size_t)s[0] + 1;
    }
}

fl_pda_status fl_pda_initial(fl_pda *p, fl_u32buf *out)
{
    reset(p);
    const fl_grammar *g = p->g;
    for (int a = g->rule_alts[g->root + 1] - 1; a >= g->rule_alts[g->root]; a--) {
        fl_u32buf_reserve(&p->pool, 2);
        const uint32_t off = (uint32_t)p->pool.len;
        p->pool.data[p->pool.len++] = 1;
        p->pool.data[p->pool.len++] = (uint32_t)g->alt_start[a];
        push(&p->work, off);
    }
    const fl_pda_status st = expand(p);
    if (st == FL_PDA_OK)
        serialize(p, out);
    return st;
}

fl_pda_status fl_pda_step(fl_pda *p, const uint32_t *cfg, size_t len, unsigned byte, fl_u32buf *out)
{
    (void)len;
    reset(p);
    const fl_grammar *g = p->g;
    const uint32_t n = cfg[1];
    const uint32_t *s = cfg + 2;
    for (uint32_t i = 0; i < n; i++, s += s[0] + 1) {
        const uint32_t pos = s[s[0]];
        if (!fl_grammar_has_byte(g, (int)FL_G_ARG(g->elems[pos]), byte))
            continue;
        fl_u32buf_reserve(&p->pool, (size_t)s[0] + 1);
        const uint32_t off = (uint32_t)p->pool.len;
        memcpy(p->pool.data + off, s, ((size_t)s[0] + 1) * sizeof *s);
        p->pool.data[off + s[0]] = pos + 1;
        p->pool.len += (size_t)s[0] + 1;
        push(&p->work, off);
    }
    const fl_pda_status st = expand(p);
    if (st != FL_PDA_OK)
        return st;
    serialize(p, out);
    return p->ready.len || p->accepting ? FL_PDA_OK : FL_PDA_DEAD;
}
