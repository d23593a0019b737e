/* token_mask.c - the vocabulary walk, the cached automaton of a
 * constraint, and the cache of constraints (see token_mask.h). */
#include "grammar/token_mask.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "base/bytemap.h"

/* The automaton's memory (configurations, transitions, masks) past which
 * it is dropped and rebuilt from the states in use: 64 MiB holds ~3,000
 * masks of a 152k vocabulary. */
#define MAX_AUTOMATON_BYTES ((size_t)64 << 20)

#define NEXT_UNKNOWN (-1)
#define NEXT_DEAD (-2)
#define NEXT_OVERFLOW (-3)

/* ---- the vocabulary ---- */

static int cmp_tokens(const void *x, const void *y, void *ctx)
{
    const fl_token_vocab *v = ctx;
    const int a = *(const int *)x, b = *(const int *)y;
    const size_t la = v->len[a], lb = v->len[b];
    const int c = memcmp(v->bytes + v->off[a], v->bytes + v->off[b], la < lb ? la : lb);
    return c ? c : (la > lb) - (la < lb);
}

void fl_token_vocab_init(fl_token_vocab *v, const fl_tokenizer *tok, int vocab_size)
{
    memset(v, 0, sizeof *v);
    v->vocab_size = vocab_size;
    const int n = tok->num_ids < vocab_size ? tok->num_ids : vocab_size;
    size_t total = 0;
    int count = 0;
    for (int i = 0; i < n; i++)
        if (tok->id_bytes[i] && tok->id_bytes_len[i] > 0 && tok->id_bytes_len[i] <= UINT16_MAX &&
            !tok->id_special[i]) {
            total += tok->id_bytes_len[i];
            count++;
        }
    /* gathered in id order, then sorted through an index */
    uint32_t *off = fl_malloc(((size_t)count + 1) * sizeof *off);
    uint16_t *len = fl_malloc(((size_t)count + 1) * sizeof *len);
    int32_t *ids = fl_malloc(((size_t)count + 1) * sizeof *ids);
    uint8_t *bytes = fl_malloc(total + 1);
    size_t at = 0;
    int k = 0;
    for (int i = 0; i < n; i++)
        if (tok->id_bytes[i] && tok->id_bytes_len[i] > 0 && tok->id_bytes_len[i] <= UINT16_MAX &&
            !tok->id_special[i]) {
            memcpy(bytes + at, tok->id_bytes[i], tok->id_bytes_len[i]);
            off[k] = (uint32_t)at;
            len[k] = (uint16_t)tok->id_bytes_len[i];
            ids[k++] = i;
            at += tok->id_bytes_len[i];
        }
    int *order = fl_malloc(((size_t)count + 1) * sizeof *order);
    for (int i = 0; i < count; i++)
        order[i] = i;
    fl_token_vocab tmp = { .off = off, .len = len, .bytes = bytes };
    qsort_r(order, (size_t)count, sizeof *order, cmp_tokens, &tmp);
    v->num = count;
    v->ids = fl_malloc(((size_t)count + 1) * sizeof *v->ids);
    v->off = fl_malloc(((size_t)count + 1) * sizeof *v->off);
    v->len = fl_malloc(((size_t)count + 1) * sizeof *v->len);
    v->lcp = fl_malloc(((size_t)count + 1) * sizeof *v->lcp);
    v->bytes = fl_malloc(total + 1);
    v->pos_of = fl_malloc((size_t)(vocab_size > 0 ? vocab_size : 1) * sizeof *v->pos_of);
    for (int i = 0; i < vocab_size; i++)
        v->pos_of[i] = -1;
    at = 0;
    for (int i = 0; i < count; i++) {
        const int o = order[i];
        v->ids[i] = ids[o];
        v->len[i] = len[o];
        v->off[i] = (uint32_t)at;
        memcpy(v->bytes + at, bytes + off[o], len[o]);
        at += len[o];
        v->pos_of[ids[o]] = i;
        if (len[o] > v->max_len)
            v->max_len = len[o];
        uint16_t l = 0;
        if (i > 0) {
            const uint8_t *a = v->bytes + v->off[i - 1], *b = v->bytes + v->off[i];
            const uint16_t m = v->len[i - 1] < v->len[i] ? v->len[i - 1] : v->len[i];
            while (l < m && a[l] == b[l])
                l++;
        }
        v->lcp[i] = l;
    }
    free(order), free(off), free(len), free(ids), free(bytes);
}

void fl_token_vocab_free(fl_token_vocab *v)
{
    free(v->ids), free(v->off), free(v->len), free(v->lcp), free(v->bytes), free(v->pos_of);
    memset(v, 0, sizeof *v);
}

/* ---- the constraint and its automaton ---- */

typedef struct entry {
    uint32_t cfg_off, cfg_len;   /* its configuration in cfgs */
    int32_t *next;               /* [256] by byte: an entry or NEXT_*; NULL until asked */
    uint32_t *mask;              /* its mask, once computed */
} entry;

struct fl_constraint {
    _Atomic int refs;
    fl_grammar g;
    const fl_token_vocab *vocab;
    fl_u32buf initial;
    /* the automaton (one thread: the engine's) */
    fl_pda pda;
    fl_bytemap index;            /* configuration bytes -> entry */
    entry *entries;
    int num_entries, cap_entries;
    fl_u32buf cfgs;
    fl_u32buf step;              /* a step's result */
    int32_t *walk;               /* [vocab->max_len + 1] entries along the token being walked */
    size_t bytes;
    uint64_t gen;
    fl_constraint_stats stats;
};

fl_constraint *fl_constraint_create(const fl_grammar_spec *spec, const fl_token_vocab *vocab, fl_error *err)
{
    fl_constraint *c = fl_calloc(1, sizeof *c);
    if (fl_grammar_compile(spec, &c->g, err) != 0) {
        free(c);
        return NULL;
    }
    fl_pda_init(&c->pda, &c->g);
    if (fl_pda_initial(&c->pda, &c->initial) != FL_PDA_OK) {
        fl_fail(err, "the grammar is too ambiguous: more than %d parses are open at its start", FL_PDA_MAX_STACKS);
        fl_pda_free(&c->pda);
        fl_grammar_free(&c->g);
        free(c);
        return NULL;
    }
    atomic_init(&c->refs, 1);
    c->vocab = vocab;
    fl_bytemap_init(&c->index, 256);
    c->walk = fl_malloc(((size_t)vocab->max_len + 1) * sizeof *c->walk);
    return c;
}

fl_constraint *fl_constraint_ref(fl_constraint *c)
{
    atomic_fetch_add(&c->refs, 1);
    return c;
}

int fl_constraint_vocab_size(const fl_constraint *c)
{
    return c->vocab->vocab_size;
}

/* Drops the automaton: every entry, transition and mask. */
static void flush(fl_constraint *c)
{
    for (int i = 0; i < c->num_entries; i++) {
        free(c->entries[i].next);
        free(c->entries[i].mask);
    }
    c->num_entries = 0;
    c->cfgs.len = 0;
    fl_bytemap_clear(&c->index);
    c->bytes = 0;
    c->gen++;
}

void fl_constraint_unref(fl_constraint *c)
{
    if (!c || atomic_fetch_sub(&c->refs, 1) != 1)
        return;
    flush(c);
    free(c->entries);
    fl_bytemap_free(&c->index);
    fl_u32buf_free(&c->cfgs);
    fl_u32buf_free(&c->step);
    fl_u32buf_free(&c->initial);
    fl_pda_free(&c->pda);
    fl_grammar_free(&c->g);
    free(c->walk);
    free(c);
}

void fl_constraint_state_init(const fl_constraint *c, fl_constraint_state *s)
{
    memset(s, 0, sizeof *s);
    fl_u32buf_reserve(&s->cfg, c->initial.len);
    memcpy(s->cfg.data, c->initial.data, c->initial.len * sizeof(uint32_t));
    s->cfg.len = c->initial.len;
    s->entry = -1;
}

void fl_constraint_state_free(fl_constraint_state *s)
{
    fl_u32buf_free(&s->cfg);
}

int fl_constraint_can_end(const fl_constraint_state *s)
{
    return fl_pda_accepting(s->cfg.data);
}

int fl_constraint_finished(const fl_constraint_state *s)
{
    return fl_pda_finished(s->cfg.data);
}

/* The entry of configuration cfg[len] (made if new). */
static int intern(fl_constraint *c, const uint32_t *cfg, size_t len)
{
    uint64_t id;
    if (fl_bytemap_get(&c->index, cfg, len * sizeof *cfg, &id))
        return (int)id;
    if (c->num_entries == c->cap_entries) {
        c->cap_entries = c->cap_entries ? 2 * c->cap_entries : 256;
        c->entries = fl_realloc(c->entries, (size_t)c->cap_entries * sizeof *c->entries);
    }
    fl_u32buf_reserve(&c->cfgs, len);
    entry *e = &c->entries[c->num_entries];
    *e = (entry){ .cfg_off = (uint32_t)c->cfgs.len, .cfg_len = (uint32_t)len };
    memcpy(c->cfgs.data + c->cfgs.len, cfg, len * sizeof *cfg);
    c->cfgs.len += len;
    fl_bytemap_put(&c->index, cfg, len * sizeof *cfg, (uint64_t)c->num_entries);
    c->bytes += 2 * len * sizeof *cfg + sizeof *e + 32;
    return c->num_entries++;
}

/* The entry after byte from entry id, or NEXT_DEAD / NEXT_OVERFLOW. */
static int32_t transition(fl_constraint *c, int id, unsigned byte)
{
    if (!c->entries[id].next) {
        c->entries[id].next = fl_malloc(256 * sizeof(int32_t));
        for (int b = 0; b < 256; b++)
            c->entries[id].next[b] = NEXT_UNKNOWN;
        c->bytes += 256 * sizeof(int32_t);
    }
    int32_t n = c->entries[id].next[byte];
    if (n != NEXT_UNKNOWN)
        return n;
    const entry *e = &c->entries[id];
    switch (fl_pda_step(&c->pda, c->cfgs.data + e->cfg_off, e->cfg_len, byte, &c->step)) {
    case FL_PDA_OK: n = intern(c, c->step.data, c->step.len); break;
    case FL_PDA_DEAD: n = NEXT_DEAD; break;
    case FL_PDA_OVERFLOW: n = NEXT_OVERFLOW; break;
    }
    c->entries[id].next[byte] = n; /* intern may have moved the entries */
    return n;
}

/* Entry id's mask: each token in byte order, stepping only the bytes it
 * does not share with the previous one (walk[k]: the entry after its first
 * k bytes), skipping the tokens that start with a prefix found dead. */
static int compute_mask(fl_constraint *c, int id)
{
    const fl_token_vocab *v = c->vocab;
    const int words = fl_token_mask_words(v->vocab_size);
    uint32_t *mask = fl_calloc((size_t)words, sizeof *mask);
    int32_t *walk = c->walk;
    walk[0] = id;
    int known = 0;              /* walk[0..known] hold the previous token's entries */
    int dead = INT32_MAX;       /* the previous token's prefix of this length is dead */
    for (int i = 0; i < v->num; i++) {
        const int shared = v->lcp[i];
        if (shared >= dead)
            continue;
        dead = INT32_MAX;
        const uint8_t *b = v->bytes + v->off[i];
        const int len = v->len[i];
        int k = shared < known ? shared : known;
        while (k < len) {
            const int32_t n = transition(c, walk[k], b[k]);
            if (n < 0) {
                if (n == NEXT_OVERFLOW) {
                    free(mask);
                    return -1;
                }
                dead = k + 1;
                break;
            }
            walk[++k] = n;
        }
        known = k;
        if (k == len)
            mask[v->ids[i] >> 5] |= 1u << (v->ids[i] & 31);
    }
    c->entries[id].mask = mask;
    c->bytes += (size_t)words * sizeof *mask;
    c->stats.masks_computed++;
    return 0;
}

/* s's entry (interned again after a flush). */
static int state_entry(fl_constraint *c, fl_constraint_state *s)
{
    if (s->entry < 0 || s->gen != c->gen) {
        s->entry = intern(c, s->cfg.data, s->cfg.len);
        s->gen = c->gen;
    }
    return s->entry;
}

int fl_constraint_fill_mask(fl_constraint *c, fl_constraint_state *s, uint32_t *mask)
{
    if (c->bytes > MAX_AUTOMATON_BYTES) {
        flush(c);
        c->stats.flushes++;
    }
    const int id = state_entry(c, s);
    if (c->entries[id].mask)
        c->stats.masks_reused++;
    else if (compute_mask(c, id) != 0)
        return -1;
    memcpy(mask, c->entries[id].mask, (size_t)fl_token_mask_words(c->vocab->vocab_size) * sizeof *mask);
    return 0;
}

int fl_constraint_accept(fl_constraint *c, fl_constraint_state *s, int32_t token)
{
    const fl_token_vocab *v = c->vocab;
    if (token < 0 || token >= v->vocab_size || v->pos_of[token] < 0)
        return -1;
    const int p = v->pos_of[token];
    const uint8_t *b = v->bytes + v->off[p];
    int id = state_entry(c, s);
    for (int k = 0; k < v->len[p]; k++) {
        id = transition(c, id, b[k]);
        if (id < 0)
            return -1;
    }
    const entry *e = &c->entries[id];
    s->cfg.len = 0;
    fl_u32buf_reserve(&s->cfg, e->cfg_len);
    memcpy(s->cfg.data, c->cfgs.data + e->cfg_off, e->cfg_len * sizeof(uint32_t));
    s->cfg.len = e->cfg_len;
    s->entry = id;
    return 0;
}

void fl_constraint_get_stats(const fl_constraint *c, fl_constraint_stats *st)
{
    *st = c->stats;
    st->entries = c->num_entries;
    st->bytes = c->bytes;
}

/* ---- the cache of constraints ---- */

void fl_constraint_cache_init(fl_constraint_cache *cc, const fl_token_vocab *vocab)
{
    memset(cc, 0, sizeof *cc);
    pthread_mutex_init(&cc->lock, NULL);
    cc->vocab = vocab;
}

void fl_constraint_cache_free(fl_constraint_cache *cc)
{
    for (int i = 0; i < FL_CONSTRAINT_CACHE_SLOTS; i++) {
        free(cc->slots[i].key);
        fl_constraint_unref(cc->slots[i].c);
    }
    pthread_mutex_destroy(&cc->lock);
    memset(cc, 0, sizeof *cc);
}

static void key_part(fl_strbuf *k, const char *s, size_t n)
{
    fl_strbuf_append(k, &n, sizeof n);
    fl_strbuf_append(k, s ? s : "", s ? n : 0);
}

/* Everything that changes the compiled grammar. */
static void spec_key(const fl_grammar_spec *spec, fl_strbuf *k)
{
    const char head[2] = { (char)spec->kind, (char)spec->any_whitespace };
    fl_strbuf_append(k, head, 2);
    const char *ws = spec->whitespace_pattern;
    key_part(k, ws, ws ? strlen(ws) + 1 : 0);
    key_part(k, spec->text, spec->text ? spec->len : 0);
    for (int i = 0; i < spec->num_choices; i++)
        key_part(k, spec->choices[i], spec->choice_lens[i]);
}

static fl_constraint *lookup(fl_constraint_cache *cc, const fl_strbuf *k)
{
    for (int i = 0; i < FL_CONSTRAINT_CACHE_SLOTS; i++)
        if (cc->slots[i].c && cc->slots[i].len == k->len && memcmp(cc->slots[i].key, k->data, k->len) == 0) {
            cc->slots[i].used = ++cc->clock;
            return fl_constraint_ref(cc->slots[i].c);
        }
    return NULL;
}

fl_constraint *fl_constraint_cache_get(fl_constraint_cache *cc, const fl_grammar_spec *spec, fl_error *err)
{
    fl_strbuf k = { 0 };
    spec_key(spec, &k);
    pthread_mutex_lock(&cc->lock);
    fl_constraint *c = lookup(cc, &k);
    pthread_mutex_unlock(&cc->lock);
    if (c) {
        fl_strbuf_free(&k);
        return c;
    }
    /* compiled outside the lock: another request's compilation need not wait */
    fl_constraint *made = fl_constraint_create(spec, cc->vocab, err);
    if (!made) {
        fl_strbuf_free(&k);
        return NULL;
    }
    pthread_mutex_lock(&cc->lock);
    c = lookup(cc, &k); /* made meanwhile by another request: share that one */
    if (!c) {
        int victim = 0;
        for (int i = 1; i < FL_CONSTRAINT_CACHE_SLOTS; i++)
            if (cc->slots[i].used < cc->slots[victim].used)
                victim = i;
        free(cc->slots[victim].key);
        fl_constraint_unref(cc->slots[victim].c);
        cc->slots[victim].len = k.len;
        cc->slots[victim].key = fl_strbuf_take(&k);
        cc->slots[victim].c = made;
        cc->slots[victim].used = ++cc->clock;
        c = fl_constraint_ref(made);
        made = NULL;
    }
    pthread_mutex_unlock(&cc->lock);
    fl_constraint_unref(made);
    fl_strbuf_free(&k);
    return c;
}
