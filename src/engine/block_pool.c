/* block_pool.c - reference-counted blocks, LRU free list, prefix table
 * (see block_pool.h). */
#include "engine/block_pool.h"

#include <string.h>

#include "base/alloc.h"
#include "base/error.h"
#include "base/rng.h"

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
    p->group = fl_calloc((size_t)num_blocks, sizeof(int16_t));
    p->tokens = prefix_caching ? fl_malloc((size_t)num_blocks * block_size * sizeof(int32_t)) : NULL;
    fl_u64_map_init(&p->table, num_blocks); /* at most one entry a block */
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
    free(p->group);
    free(p->tokens);
    fl_u64_map_free(&p->table);
    memset(p, 0, sizeof *p);
}

/* The prefix table's key of a group's block: the hash itself in group 0
 * (so a cache of one group keys as it would without groups), mixed with
 * the group in the others. */
static uint64_t table_key(int group, uint64_t hash)
{
    return group == 0 ? hash : fl_rng_mix(hash ^ ((uint64_t)group * 0x94d049bb133111ebull));
}

static void unpublish(fl_block_pool *p, int32_t b)
{
    fl_u64_map_remove(&p->table, table_key(p->group[b], p->hash[b])); /* a block is hashed only if it owns its entry */
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

int32_t fl_block_pool_lookup(const fl_block_pool *p, int group, uint64_t hash, uint64_t parent,
                             const int32_t *ids)
{
    if (!p->prefix_caching)
        return -1;
    uint64_t found;
    if (!fl_u64_map_get(&p->table, table_key(group, hash), &found))
        return -1;
    const int32_t b = (int32_t)found;
    if (!p->hashed[b] || p->group[b] != group || p->hash[b] != hash || p->parent_hash[b] != parent ||
        memcmp(p->tokens + (size_t)b * p->block_size, ids, (size_t)p->block_size * sizeof(int32_t)) != 0)
        return -1;
    return b;
}

void fl_block_pool_publish(fl_block_pool *p, int32_t b, int group, uint64_t hash, uint64_t parent,
                           const int32_t *ids)
{
    if (!p->prefix_caching || p->hashed[b])
        return;
    const uint64_t key = table_key(group, hash);
    if (fl_u64_map_get(&p->table, key, NULL))
        return; /* another block caches this prefix already */
    fl_u64_map_put(&p->table, key, (uint64_t)b);
    p->hashed[b] = 1;
    p->group[b] = (int16_t)group;
    p->hash[b] = hash;
    p->parent_hash[b] = parent;
    memcpy(p->tokens + (size_t)b * p->block_size, ids, (size_t)p->block_size * sizeof(int32_t));
}
