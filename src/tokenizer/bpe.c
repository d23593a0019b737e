/* bpe.c - BPE merges with a heap (see bpe.h).
 *
 * A word starts as one symbol per byte, linked in a list. Every adjacent pair
 * that has a merge goes into a min-heap keyed by (rank, left position). The
 * top entry is merged if it is still current (both symbols alive and still
 * that pair); the new symbol's pairs with its neighbours are pushed. This is
 * O(n log n), so a 10,000-byte run of one character costs no more than it
 * must, and it picks merges in exactly HF's order. */
#include "tokenizer/bpe.h"

#include <string.h>

#include "base/alloc.h"
#include "base/utf8.h"
#include "tokenizer/byte_level.h"

/* Words up to this long are cached; the cache is emptied when full. */
#define CACHE_MAX_WORD 256

/* Recent merge lookups, direct-mapped: 2^14 x 16 bytes = 256 KiB, which
 * stays in L2. Pair frequencies are Zipfian, and most pairs have no merge,
 * so caching both answers spares most trips to the 151k-entry table, each a
 * likely cache miss. */
#define PAIR_CACHE_BITS 14

typedef struct pair_entry {
    uint64_t pair;   /* left << 32 | right, + 1 (0: empty) */
    uint64_t merge;  /* merge_of's answer, 0 for none */
} pair_entry;

typedef struct bpe_work {
    pair_entry pairs[1 << PAIR_CACHE_BITS];
    int32_t *id;    /* [cap] symbol ids; -1 once merged into its left neighbour */
    int32_t *prev;  /* [cap] */
    int32_t *next;  /* [cap] -1 at the end */
    uint64_t *heap; /* [3 * cap] rank << 32 | position */
} bpe_work;

static bpe_work *work_for(fl_tok_scratch *s, size_t n)
{
    if (n > s->bpe_cap) {
        fl_bpe_scratch_free(s);
        size_t cap = n < 64 ? 64 : n * 2;
        bpe_work *w = fl_calloc(1, sizeof *w);
        w->id = fl_malloc(cap * sizeof(int32_t));
        w->prev = fl_malloc(cap * sizeof(int32_t));
        w->next = fl_malloc(cap * sizeof(int32_t));
        w->heap = fl_malloc(3 * cap * sizeof(uint64_t));
        s->bpe = w;
        s->bpe_cap = cap;
    }
    return s->bpe;
}

void fl_bpe_scratch_free(fl_tok_scratch *s)
{
    bpe_work *w = s->bpe;
    if (w) {
        free(w->id);
        free(w->prev);
        free(w->next);
        free(w->heap);
        free(w);
    }
    s->bpe = NULL;
    s->bpe_cap = 0;
}

/* (rank + 1) << 32 | merged id of the pair (a, b), or 0 if there is no merge. */
static uint64_t merge_of(const fl_tokenizer *t, bpe_work *w, int32_t a, int32_t b)
{
    const uint64_t pair = ((uint64_t)(uint32_t)a << 32 | (uint32_t)b) + 1;
    pair_entry *e = &w->pairs[(pair * 0x9e3779b97f4a7c15ull) >> (64 - PAIR_CACHE_BITS)];
    if (e->pair == pair)
        return e->merge;
    int32_t key[2] = { a, b };
    uint64_t v;
    e->pair = pair;
    e->merge = fl_bytemap_get(&t->merges, key, sizeof key, &v) ? v : 0;
    return e->merge;
}

static void heap_push(uint64_t *heap, size_t *len, uint64_t v)
{
    size_t i = (*len)++;
    while (i > 0 && heap[(i - 1) / 2] > v) {
        heap[i] = heap[(i - 1) / 2];
        i = (i - 1) / 2;
    }
    heap[i] = v;
}

static uint64_t heap_pop(uint64_t *heap, size_t *len)
{
    uint64_t top = heap[0], last = heap[--*len];
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= *len)
            break;
        if (c + 1 < *len && heap[c + 1] < heap[c])
            c++;
        if (heap[c] >= last)
            break;
        heap[i] = heap[c];
        i = c;
    }
    heap[i] = last;
    return top;
}

/* Merges are stored with rank + 1 so that 0 means "none". */
static void push_pair(const fl_tokenizer *t, bpe_work *w, size_t *hlen, int32_t pos)
{
    int32_t nx = w->next[pos];
    if (nx < 0)
        return;
    uint64_t m = merge_of(t, w, w->id[pos], w->id[nx]);
    if (m)
        heap_push(w->heap, hlen, (m & 0xffffffff00000000ull) | (uint32_t)pos);
}

static void merge_word(const fl_tokenizer *t, fl_tok_scratch *s, const unsigned char *word,
                       size_t n, fl_ids *out)
{
    bpe_work *w = work_for(s, n);
    for (size_t i = 0; i < n; i++) {
        w->id[i] = t->byte_token[word[i]];
        w->prev[i] = (int32_t)i - 1;
        w->next[i] = i + 1 < n ? (int32_t)i + 1 : -1;
    }
    size_t hlen = 0;
    for (size_t i = 0; i + 1 < n; i++)
        push_pair(t, w, &hlen, (int32_t)i);
    while (hlen > 0) {
        uint64_t top = heap_pop(w->heap, &hlen);
        int32_t pos = (int32_t)(uint32_t)top, nx = w->next[pos];
        if (w->id[pos] < 0 || nx < 0)
            continue;
        uint64_t m = merge_of(t, w, w->id[pos], w->id[nx]);
        if (!m || (m >> 32) != (top >> 32))
            continue; /* stale: this pair changed since it was pushed */
        w->id[pos] = (int32_t)(uint32_t)m;
        w->id[nx] = -1;
        w->next[pos] = w->next[nx];
        if (w->next[nx] >= 0)
            w->prev[w->next[nx]] = pos;
        if (w->prev[pos] >= 0)
            push_pair(t, w, &hlen, w->prev[pos]);
        push_pair(t, w, &hlen, pos);
    }
    for (int32_t i = 0; i >= 0; i = w->next[i])
        fl_ids_push(out, w->id[i]);
}

/* With ignore_merges, a word that is itself a vocab entry is that token. */
static int whole_word_token(const fl_tokenizer *t, fl_tok_scratch *s, const unsigned char *word,
                            size_t n, int32_t *id)
{
    fl_strbuf_clear(&s->word);
    char *at = fl_strbuf_reserve(&s->word, 2 * n);
    size_t len = 0;
    for (size_t i = 0; i < n; i++)
        len += (size_t)fl_utf8_encode(fl_byte_level_char(word[i]), at + len);
    uint64_t v;
    if (!fl_bytemap_get(&t->vocab, at, len, &v))
        return 0;
    *id = (int32_t)v;
    return 1;
}

void fl_bpe_word(const fl_tokenizer *t, fl_tok_scratch *s, const unsigned char *word, size_t n,
                 fl_ids *out)
{
    uint64_t hit;
    if (n <= CACHE_MAX_WORD && fl_bytemap_get(&s->cache, word, n, &hit)) {
        for (uint32_t i = 0; i < (uint32_t)hit; i++)
            fl_ids_push(out, s->cache_ids.data[(hit >> 32) + i]);
        return;
    }
    const size_t start = out->len;
    int32_t id;
    if (t->ignore_merges && whole_word_token(t, s, word, n, &id))
        fl_ids_push(out, id);
    else
        merge_word(t, s, word, n, out);
    if (n > CACHE_MAX_WORD)
        return;
    if (s->cache.count >= CACHE_WORDS) {
        fl_bytemap_clear(&s->cache);
        s->cache_ids.len = 0;
    }
    const uint64_t off = s->cache_ids.len, count = out->len - start;
    for (size_t i = start; i < out->len; i++)
        fl_ids_push(&s->cache_ids, out->data[i]);
    fl_bytemap_put(&s->cache, word, n, off << 32 | count);
}
