/* bytemap.h - a hash map from byte strings to 64-bit values.
 *
 * Open addressing with linear probing; the map owns copies of its keys in
 * one growing buffer. For keys of at most 8 bytes the hash is a bijection of
 * the key, so a lookup compares hashes and never reads the key buffer: one
 * memory access per probe, which is what BPE's merge lookups are bound by. The tokenizer's vocabulary (token -> id), merges
 * ((id, id) -> rank and result) and word cache all use it: one small table
 * instead of a general container library. */
#ifndef FL_BYTEMAP_H
#define FL_BYTEMAP_H

#include <stddef.h>
#include <stdint.h>

typedef struct fl_bytemap_slot {
    uint64_t hash;
    uint64_t value;
    uint32_t key_off;
    uint32_t key_len;  /* FL_BYTEMAP_EMPTY marks an empty slot */
} fl_bytemap_slot;

#define FL_BYTEMAP_EMPTY UINT32_MAX

typedef struct fl_bytemap {
    fl_bytemap_slot *slots;  /* [mask + 1] */
    uint32_t mask;
    uint32_t count;
    char *keys;              /* all keys, back to back */
    size_t keys_len;
    size_t keys_cap;
} fl_bytemap;

void fl_bytemap_init(fl_bytemap *m, size_t expected_count);
void fl_bytemap_free(fl_bytemap *m);
/* Removes every entry, keeping the allocations. */
void fl_bytemap_clear(fl_bytemap *m);

/* Sets key -> value. Returns 1 if the key was new, 0 if it was replaced. */
int fl_bytemap_put(fl_bytemap *m, const void *key, size_t len, uint64_t value);

/* Returns 1 and stores the value in *value if key is present, else 0. */
int fl_bytemap_get(const fl_bytemap *m, const void *key, size_t len, uint64_t *value);

/* Bytes held by the keys (to bound caches). */
static inline size_t fl_bytemap_key_bytes(const fl_bytemap *m) { return m->keys_len; }

#endif
