/* block_pool.h - the KV cache's blocks: who holds them, and which ones hold
 * a reusable prefix.
 *
 * Every block has a reference count. A block whose count falls to 0 goes on
 * the free list, but keeps its contents and, if it was full, its prefix hash:
 * until it is handed out again, a new request with the same prefix takes it
 * back (a prefix-cache hit). The free list is least-recently-freed first,
 * intrusive and doubly linked, so a hit removes a block from its middle in
 * O(1). Block hashes chain: hash(parent's hash, the block's token ids); a
 * hit is confirmed against the stored ids, parent hash and KV cache group
 * (model/kv_groups.h: the blocks of one prefix in two groups hold different
 * layers), so a hash collision can never serve wrong KV. Device-agnostic:
 * ids only. */
#ifndef FL_BLOCK_POOL_H
#define FL_BLOCK_POOL_H

#include <stdint.h>

#include "base/u64_map.h"

typedef struct fl_block_pool {
    int num_blocks;
    int block_size;
    int prefix_caching;
    int num_free;           /* blocks with ref_count 0 (cached or not) */
    int32_t *ref_count;     /* [num_blocks] */
    int32_t *prev, *next;   /* [num_blocks] free list links; -1 ends */
    int32_t free_head, free_tail;
    uint8_t *hashed;        /* [num_blocks] 1 if the block is in the prefix table */
    uint64_t *hash;         /* [num_blocks] its chained hash */
    uint64_t *parent_hash;  /* [num_blocks] the hash it was chained from */
    int16_t *group;         /* [num_blocks] the KV cache group whose layers it holds */
    int32_t *tokens;        /* [num_blocks, block_size] ids, to confirm hits */
    fl_u64_map table;       /* prefix table: hash -> block id */
    int64_t evictions;      /* cached blocks handed out for new contents */
} fl_block_pool;

/* The hash the chain starts from (the "parent" of a sequence's first block). */
#define FL_BLOCK_HASH_ROOT 0x6c62272e07bb0142ull

void fl_block_pool_init(fl_block_pool *p, int num_blocks, int block_size, int prefix_caching);
void fl_block_pool_free(fl_block_pool *p);

/* Takes the least recently freed block (evicting its cached prefix, if it
 * had one) with ref_count 1. Returns -1 if none is free. */
int32_t fl_block_pool_alloc(fl_block_pool *p);

/* Takes one more reference to a block (a prefix hit or a shared prompt
 * block); a free block leaves the free list. */
void fl_block_pool_ref(fl_block_pool *p, int32_t block);

/* Drops one reference; at 0 the block joins the free list's tail (if it holds
 * a cached prefix) or head (if not: nothing worth keeping). */
void fl_block_pool_release(fl_block_pool *p, int32_t block);

/* The hash of a full block of ids chained after parent. */
uint64_t fl_block_hash(uint64_t parent, const int32_t *ids, int n);

/* The cached block of KV cache group `group` with this hash, parent hash
 * and ids, or -1. */
int32_t fl_block_pool_lookup(const fl_block_pool *p, int group, uint64_t hash, uint64_t parent,
                             const int32_t *ids);

/* Records that block now holds group's layers of the full block of ids
 * with this hash (its KV written). A (group, hash) already cached by
 * another block is left as it is. */
void fl_block_pool_publish(fl_block_pool *p, int32_t block, int group, uint64_t hash, uint64_t parent,
                           const int32_t *ids);

#endif
