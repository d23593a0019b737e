/* u64_map.c - the fixed-capacity u64 -> u64 hash map (see u64_map.h). */
#include "base/u64_map.h"

#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "base/rng.h"

void fl_u64_map_init(fl_u64_map *m, int capacity)
{
    memset(m, 0, sizeof *m);
    uint32_t size = 16;
    while (size < 2u * (uint32_t)capacity)
        size *= 2;
    m->mask = size - 1;
    m->capacity = capacity;
    m->keys = fl_malloc(size * sizeof(uint64_t));
    m->vals = fl_malloc(size * sizeof(uint64_t));
    m->used = fl_calloc(size, 1);
}

void fl_u64_map_free(fl_u64_map *m)
{
    free(m->keys);
    free(m->vals);
    free(m->used);
    memset(m, 0, sizeof *m);
}

static uint32_t home(const fl_u64_map *m, uint64_t key)
{
    return (uint32_t)fl_rng_mix(key) & m->mask;
}

/* key's slot, or the empty slot that ends its probe path */
static uint32_t slot_of(const fl_u64_map *m, uint64_t key)
{
    uint32_t i = home(m, key);
    while (m->used[i] && m->keys[i] != key)
        i = (i + 1) & m->mask;
    return i;
}

int fl_u64_map_get(const fl_u64_map *m, uint64_t key, uint64_t *val)
{
    const uint32_t i = slot_of(m, key);
    if (!m->used[i])
        return 0;
    if (val)
        *val = m->vals[i];
    return 1;
}

int fl_u64_map_put(fl_u64_map *m, uint64_t key, uint64_t val)
{
    const uint32_t i = slot_of(m, key);
    if (!m->used[i]) {
        if (m->count == m->capacity)
            return -1;
        m->used[i] = 1;
        m->keys[i] = key;
        m->count++;
    }
    m->vals[i] = val;
    return 0;
}

int fl_u64_map_remove(fl_u64_map *m, uint64_t key)
{
    uint32_t i = slot_of(m, key);
    if (!m->used[i])
        return 0;
    m->used[i] = 0;
    m->count--;
    /* move back each later entry whose probe path ran through the hole */
    for (uint32_t j = (i + 1) & m->mask; m->used[j]; j = (j + 1) & m->mask) {
        const uint32_t want = home(m, m->keys[j]);
        if (i <= j ? (want <= i || want > j) : (want <= i && want > j)) {
            m->keys[i] = m->keys[j];
            m->vals[i] = m->vals[j];
            m->used[i] = 1;
            m->used[j] = 0;
            i = j;
        }
    }
    return 1;
}

int fl_u64_map_next(const fl_u64_map *m, uint32_t *at, uint64_t *key, uint64_t *val)
{
    for (uint32_t i = *at; i <= m->mask; i++)
        if (m->used[i]) {
            *at = i + 1;
            *key = m->keys[i];
            *val = m->vals[i];
            return 1;
        }
    *at = m->mask + 1;
    return 0;
}
