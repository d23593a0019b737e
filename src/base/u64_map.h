/* u64_map.h - a hash map from 64-bit keys to 64-bit values with a fixed
 * capacity: open addressing with linear probing over a table of at least
 * twice the capacity (a power of two), and backward-shift deletion, so no
 * tombstones build up however many keys come and go. Its owners (the block
 * pool's prefix table, the server's request-id registry) know the most
 * entries they hold. Not thread-safe. */
#ifndef FL_U64_MAP_H
#define FL_U64_MAP_H

#include <stdint.h>

typedef struct fl_u64_map {
    uint64_t *keys, *vals;
    uint8_t *used;          /* [mask + 1] */
    uint32_t mask;
    int count, capacity;
} fl_u64_map;

void fl_u64_map_init(fl_u64_map *m, int capacity);
void fl_u64_map_free(fl_u64_map *m);

/* 1 and the value in *val (if val) when key is present, else 0. */
int fl_u64_map_get(const fl_u64_map *m, uint64_t key, uint64_t *val);

/* Adds key, or replaces its value: 0, or -1 when key is new and the map
 * already holds its capacity. */
int fl_u64_map_put(fl_u64_map *m, uint64_t key, uint64_t val);

/* Removes key: 1 if it was present, else 0. */
int fl_u64_map_remove(fl_u64_map *m, uint64_t key);

/* Visits every entry once while the map is unchanged:
 *   for (uint32_t at = 0; fl_u64_map_next(m, &at, &key, &val);) ... */
int fl_u64_map_next(const fl_u64_map *m, uint32_t *at, uint64_t *key, uint64_t *val);

#endif
