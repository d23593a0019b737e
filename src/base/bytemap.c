/* bytemap.c - open-addressing byte-string hash map (see bytemap.h). */
#include "base/bytemap.h"

#include <string.h>

#include "base/alloc.h"
#include "base/error.h"

static uint64_t hash_bytes(const void *key, size_t len)
{
    /* 8 bytes at a time, multiply-xorshift mixing; finished with the
     * length so that prefixes padded with zeros differ. */
    const unsigned char *p = key;
    uint64_t h = 0x9e3779b97f4a7c15ull ^ (len * 0xff51afd7ed558ccdull);
    while (len >= 8) {
        uint64_t w;
        memcpy(&w, p, 8);
        h = (h ^ w) * 0xbf58476d1ce4e5b9ull;
        h ^= h >> 29;
        p += 8;
        len -= 8;
    }
    uint64_t w = 0;
    if (len)
        memcpy(&w, p, len);
    h = (h ^ w) * 0x94d049bb133111ebull;
    h ^= h >> 32;
    return h ? h : 1;
}

void fl_bytemap_init(fl_bytemap *m, size_t expected_count)
{
    size_t cap = 16;
    while (cap < expected_count * 2)
        cap *= 2;
    FL_ASSERT(cap <= ((size_t)1 << 31));
    m->slots = fl_calloc(cap, sizeof(fl_bytemap_slot));
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
    memset(m->slots, 0, ((size_t)m->mask + 1) * sizeof(fl_bytemap_slot));
    m->count = 0;
    m->keys_len = 0;
}

static fl_bytemap_slot *find_slot(const fl_bytemap *m, const void *key, size_t len, uint64_t h)
{
    for (uint32_t i = (uint32_t)h & m->mask;; i = (i + 1) & m->mask) {
        fl_bytemap_slot *s = &m->slots[i];
        if (s->hash == 0)
            return s;
        if (s->hash == h && s->key_len == len && memcmp(m->keys + s->key_off, key, len) == 0)
            return s;
    }
}

static void grow(fl_bytemap *m)
{
    fl_bytemap old = *m;
    size_t cap = ((size_t)m->mask + 1) * 2;
    FL_ASSERT(cap <= ((size_t)1 << 31));
    m->slots = fl_calloc(cap, sizeof(fl_bytemap_slot));
    m->mask = (uint32_t)(cap - 1);
    for (size_t i = 0; i <= old.mask; i++) {
        if (old.slots[i].hash == 0)
            continue;
        uint32_t j = (uint32_t)old.slots[i].hash & m->mask;
        while (m->slots[j].hash != 0)
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
    if (s->hash != 0) {
        s->value = value;
        return 0;
    }
    if (m->keys_len + len > m->keys_cap) {
        while (m->keys_len + len > m->keys_cap)
            m->keys_cap *= 2;
        m->keys = fl_realloc(m->keys, m->keys_cap);
    }
    FL_ASSERT(m->keys_len + len <= UINT32_MAX);
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
    if (s->hash == 0)
        return 0;
    *value = s->value;
    return 1;
}
