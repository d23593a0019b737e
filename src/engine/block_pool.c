/* block_pool.c - reference-counted blocks, LRU free list, prefix table
 * (see block_pool.h). */
#include "engine/block_pool.h"

#include <string.h>

#include "base/alloc.h"
#include "base/error.h"
#include "base/rng.h"

/* ---- prefix table: at most one entry per block, so its size is fixed;
 * linear probing with backward-shift deletion (no tombstones). ---- */

static uint32_t home(const fl_block_pool *p, uint64_t h)
{
    return (uint32_t)(fl_rng_mix(h) & p->table_mask);
}

static uint32_t table_find(const fl_block_pool *p, uint64_t h)
{
    uint32_t i = home(p, h);
    while (p->table_block[i] >= 0 && p->table_hash[i] != h)
        i = (i + 1) & p->table_mask;
    return i;
}

static void table_remove(fl_block_pool *p, uint64_t h)
{
    uint32_t i = table_find(p, h);
    if (p->table_block[i] < 0)
        return;
    p->table_block[i] = -1;
    /* Shift back later entries whose probe path ran through the hole. */
    for (uint32_t j = (i + 1) & p->table_mask; p->table_block[j] >= 0; j = (j + 1) & p->table_mask) {
        uint32_t want = home(p, p->table_hash[j]);
        int passes_hole = i <= j ? (want <= i || want > j) : (want <= i && want > j);
        if (passes_hole) {
            p->table_hash[i] = p->table_hash[j];
            p->table_block[i] = p->table_block[j];
            p->table_block[j] = -1;
            i = j;
        }
    }
}

static void unlink_free(fl_block_pool *p, int32_t b)
{
    if (p->prev[b] >= 0)
        p->next[p->prev[b]] = p->next[b];
    else
        p->free_head = p->next[b];
    if (p->next[b] >= 0)
        p->prev[p->next[b]] = p->prev[b];
    else
        p->free_tail = p->prev[b];
    p->prev[b] = p->next[b] = -1;
    p->num_free--;
}

static void link_free(fl_block_pool *p, int32_t b, int at_tail)
{
    if (at_tail) {
        p->prev[b] = p->free_tail;
        p->next[b] = -1;
        if (p->free_tail >= 0)
            p->next[p->free_tail] = b;
        else
            p->free_head = b;
        p->free_tail = b;
    } else {
        p->next[b] = p->free_head;
        p->prev[b] = -1;
        if (p->free_head >= 0)
            p->prev[p->free_head] = b;
        else
            p->free_tail = b;
        p->free_head = b;
    }
    p->num_free++;
}

void fl_block_pool_init(fl_block_pool *p, int num_blocks, int block_size, int prefix_caching)
{
    memset(p, 0, sizeof *p);
    p->num_blocks = num_blocks;
    p->block_size = block_size;
    p->prefix_caching = prefix_caching;
    p->ref_count = fl_calloc((size_t)num_blocks, sizeof(int32_t));
    p->prev = fl_malloc((size_t)num_blocks * sizeof(int32_t));
    p->next = fl_malloc((size_t)num_blocks * sizeof(int32_t));
    p->hashed = fl_calloc((size_t)num_blocks, 1);
    p->hash = fl_calloc((size_t)num_blocks, sizeof(uint64_t));
    p->parent_hash = fl_calloc((size_t)num_blocks, sizeof(uint64_t));
    p->tokens = prefix_caching ? fl_malloc((size_t)num_blocks * block_size * sizeof(int32_t)) : NULL;
    uint32_t cap = 16;
    while (cap < 2u * (uint32_t)num_blocks)
        cap *= 2;
    p->table_mask = cap - 1;
    p->table_hash = fl_malloc(cap * sizeof(uint64_t));
    p->table_block = fl_malloc(cap * sizeof(int32_t));
    for (uint32_t i = 0; i < cap; i++)
        p->table_block[i] = -1;
    p->free_head = p->free_tail = -1;
    for (int32_t b = 0; b < num_blocks; b++)
        link_free(p, b, 1);
}

void fl_block_pool_free(fl_block_pool *p)
{
    free(p->ref_count);
    free(p->prev);
    free(p->next);
    free(p->hashed);
    free(p->hash);
    free(p->parent_hash);
    free(p->tokens);
    free(p->table_hash);
    free(p->table_block);
    memset(p, 0, sizeof *p);
}

static void unpublish(fl_block_pool *p, int32_t b)
{
    table_remove(p, p->hash[b]); /* a block is hashed only if it owns its entry */
    p->hashed[b] = 0;
}

int32_t fl_block_pool_alloc(fl_block_pool *p)
{
    int32_t b = p->free_head;
    if (b < 0)
        return -1;
    unlink_free(p, b);
    if (p->hashed[b]) {
        unpublish(p, b);
        p->evictions++;
    }
    p->ref_count[b] = 1;
    return b;
}

void fl_block_pool_ref(fl_block_pool *p, int32_t b)
{
    FL_ASSERT(b >= 0 && b < p->num_blocks);
    if (p->ref_count[b]++ == 0)
        unlink_free(p, b);
}

void fl_block_pool_release(fl_block_pool *p, int32_t b)
{
    FL_ASSERT(b >= 0 && b < p->num_blocks && p->ref_count[b] > 0);
    if (--p->ref_count[b] == 0)
        link_free(p, b, p->hashed[b]);
}

uint64_t fl_block_hash(uint64_t parent, const int32_t *ids, int n)
{
    uint64_t h = fl_rng_mix(parent ^ 0x9e3779b97f4a7c15ull);
    for (int i = 0; i < n; i++)
        h = fl_rng_mix(h ^ ((uint64_t)(uint32_t)ids[i] * 0xbf58476d1ce4e5b9ull + (uint64_t)i));
    return h;
}

int32_t fl_block_pool_lookup(const fl_block_pool *p, uint64_t hash, uint64_t parent,
                             const int32_t *ids)
{
    if (!p->prefix_caching)
        return -1;
    int32_t b = p->table_block[table_find(p, hash)];
    if (b < 0 || !p->hashed[b] || p->hash[b] != hash || p->parent_hash[b] != parent ||
        memcmp(p->tokens + (size_t)b * p->block_size, ids, (size_t)p->block_size * sizeof(int32_t)) != 0)
        return -1;
    return b;
}

void fl_block_pool_publish(fl_block_pool *p, int32_t b, uint64_t hash, uint64_t parent,
                           const int32_t *ids)
{
    if (!p->prefix_caching || p->hashed[b])
        return;
    uint32_t slot = table_find(p, hash);
    if (p->table_block[slot] >= 0)
        return; /* another block caches this prefix already */
    p->table_hash[slot] = hash;
    p->table_block[slot] = b;
    p->hashed[b] = 1;
    p->hash[b] = hash;
    p->parent_hash[b] = parent;
    memcpy(p->tokens + (size_t)b * p->block_size, ids, (size_t)p->block_size * sizeof(int32_t));
}
