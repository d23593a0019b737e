/* bytemap.c - open-addressing byte-string hash map (see bytemap.h). */
#include "base/bytemap.h"

#include <string.h>

#include "base/alloc.h"
#include "base/error.h"

/* SplitMix64's finalizer: a bijection on 64-bit words. */
static uint64_t mix64(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* For len <= 8 a bijection of the (zero-padded) key for each length; longer
 * keys fold 8 bytes at a time. */
static uint64_t hash_bytes(const void *key, size_t len)
{
    const unsigned char *p = key;
    uint64_t w = 0;
    if (len <= 8) {
        if (len)
            memcpy(&w, p, len);
        return mix64(w ^ (len * 0x9e3779b97f4a7c15ull));
    }
    uint64_t h = len * 0xff51afd7ed558ccdull;
    for (; len >= 8; p += 8, len -= 8) {
        memcpy(&w, p, 8);
        h = mix64(h ^ w);
    }
    w = 0;
    if (len)
        memcpy(&w, p, len);
    return mix64(h ^ w ^ 0x632be59bd9b4e019ull);
}

static int is_empty(const fl_bytemap_slot *s)
{
    return s->key_len == FL_BYTEMAP_EMPTY;
}

static void mark_all_empty(fl_bytemap_slot *slots, size_t n)
{
    for (size_t i = 0; i < n; i++)
        slots[i].key_len = FL_BYTEMAP_EMPTY;
}

void fl_bytemap_init(fl_bytemap *m, size_t expected_count)
{
    size_t cap = 16;
    while (cap < expected_count * 2)
        cap *= 2;
    FL_ASSERT(cap <= ((size_t)1 << 31));
    m->slots = fl_malloc(cap * sizeof(fl_bytemap_slot));
    mark_all_empty(m->slots, cap);
    m->mask = (uint32_t)(cap - 1);
    m->count = 0;
    m->keys_cap = expected_count * 8 + 64;
    m->keys = fl_malloc(m->keys_cap);
    m->keys_len = 0;
}

void fl_bytemap_free(fl_bytemap *m)
{
    free(m->slots);
    free(m->keys);
    memset(m, 0, sizeof *m);
}

void fl_bytemap_clear(fl_bytemap *m)
{
    mark_all_empty(m->slots, (size_t)m->mask + 1);
    m->count = 0;
    m->keys_len = 0;
}

static fl_bytemap_slot *find_slot(const fl_bytemap *m, const void *key, size_t len, uint64_t h)
{
    for (uint32_t i = (uint32_t)h & m->mask;; i = (i + 1) & m->mask) {
        fl_bytemap_slot *s = &m->slots[i];
        if (is_empty(s))
            return s;
        if (s->hash == h && s->key_len == len &&
            (len <= 8 || memcmp(m->keys + s->key_off, key, len) == 0))
            return s;
    }
}

static void grow(fl_bytemap *m)
{
    fl_bytemap old = *m;
    size_t cap = ((size_t)m->mask + 1) * 2;
    FL_ASSERT(cap <= ((size_t)1 << 31));
    m->slots = fl_malloc(cap * sizeof(fl_bytemap_slot));
    mark_all_empty(m->slots, cap);
    m->mask = (uint32_t)(cap - 1);
    for (size_t i = 0; i <= old.mask; i++) {
        if (is_empty(&old.slots[i]))
            continue;
        uint32_t j = (uint32_t)old.slots[i].hash & m->mask;
        while (!is_empty(&m->slots[j]))
            j = (j + 1) & m->mask;
        m->slots[j] = old.slots[i];
    }
    free(old.slots);
}

int fl_bytemap_put(fl_bytemap *m, const void *key, size_t len, uint64_t value)
{
    if ((size_t)(m->count + 1) * 4 > ((size_t)m->mask + 1) * 3)
        grow(m);
    uint64_t h = hash_bytes(key, len);
    fl_bytemap_slot *s = find_slot(m, key, len, h);
    if (!is_empty(s)) {
        s->value = value;
        return 0;
    }
    if (m->keys_len + len > m->keys_cap) {
        while (m->keys_len + len > m->keys_cap)
            m->keys_cap *= 2;
        m->keys = fl_realloc(m->keys, m->keys_cap);
    }
    FL_ASSERT(m->keys_len + len <= UINT32_MAX && len < FL_BYTEMAP_EMPTY);
    if (len)
        memcpy(m->keys + m->keys_len, key, len);
    s->hash = h;
    s->value = value;
    s->key_off = (uint32_t)m->keys_len;
    s->key_len = (uint32_t)len;
    m->keys_len += len;
    m->count++;
    return 1;
}

int fl_bytemap_get(const fl_bytemap *m, const void *key, size_t len, uint64_t *value)
{
    const fl_bytemap_slot *s = find_slot(m, key, len, hash_bytes(key, len));
    if (is_empty(s))
        return 0;
    *value = s->value;
    return 1;
}
