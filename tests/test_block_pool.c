/* test_block_pool.c - the block pool against a naive model of itself.
 *
 * Random allocations, references, releases and publications, checked after
 * every operation: free counts, that every published block is found by its
 * hash (the table's backward-shift deletion must never lose an entry), that
 * no evicted or unpublished block is found, and least-recently-freed order. */
#include "test_util.h"

#include <stdlib.h>

#include "base/rng.h"
#include "engine/block_pool.h"

#define MAX_N 64
#define BS 4

/* n blocks; a small n makes probe chains and evictions frequent */
static void random_operations(int n, uint64_t seed)
{
    fl_block_pool p;
    fl_block_pool_init(&p, n, BS, 1);
    int refs[MAX_N] = { 0 };
    int published[MAX_N] = { 0 };
    int32_t ids[MAX_N][BS];
    uint64_t hashes[MAX_N];
    const uint64_t key = fl_rng_key(seed, 0);
    const int N = n;
    for (int step = 0; step < 20000; step++) {
        const uint64_t r = fl_rng_at(key, (uint64_t)step);
        const int32_t b = (int32_t)(r % N);
        switch ((r >> 8) % 5) {
        case 0: { /* allocate: the head of the free list, which must be free */
            int32_t got = fl_block_pool_alloc(&p);
            if (got < 0)
                break;
            assert_int_equal(refs[got], 0);
            refs[got] = 1;
            published[got] = 0; /* evicted */
            break;
        }
        case 1:
            if (refs[b] > 0 || published[b]) { /* a hit on a cached block, or a share */
                fl_block_pool_ref(&p, b);
                refs[b]++;
            }
            break;
        case 2:
            if (refs[b] > 0) {
                fl_block_pool_release(&p, b);
                refs[b]--;
            }
            break;
        case 3:
            if (refs[b] > 0) { /* a second release makes free blocks common */
                fl_block_pool_release(&p, b);
                refs[b]--;
            }
            break;
        default:
            if (refs[b] > 0 && !published[b]) {
                for (int k = 0; k < BS; k++)
                    ids[b][k] = (int32_t)(fl_rng_at(key, (uint64_t)step * 7 + k) % 5);
                hashes[b] = fl_block_hash(FL_BLOCK_HASH_ROOT, ids[b], BS);
                fl_block_pool_publish(&p, b, 0, hashes[b], FL_BLOCK_HASH_ROOT, ids[b]);
                /* the same contents elsewhere stay with their first block */
                int32_t owner = fl_block_pool_lookup(&p, 0, hashes[b], FL_BLOCK_HASH_ROOT, ids[b]);
                assert_true(owner >= 0);
                published[b] = owner == b;
            }
        }
        int free_count = 0;
        for (int i = 0; i < N; i++) {
            free_count += refs[i] == 0;
            assert_int_equal(p.ref_count[i], refs[i]);
            if (published[i]) {
                assert_int_equal(fl_block_pool_lookup(&p, 0, hashes[i], FL_BLOCK_HASH_ROOT, ids[i]), i);
                /* a different parent is never a hit */
                assert_int_equal(fl_block_pool_lookup(&p, 0, hashes[i], 1, ids[i]), -1);
            }
        }
        assert_int_equal(p.num_free, free_count);
    }
    assert_true(p.evictions > 100);
    fl_block_pool_free(&p);
}

static void test_random_operations(void **state)
{
    (void)state;
    random_operations(8, 5);
    random_operations(8, 6);
    random_operations(64, 7);
}

static void test_lru_order(void **state)
{
    (void)state;
    fl_block_pool p;
    fl_block_pool_init(&p, 4, BS, 1);
    int32_t a = fl_block_pool_alloc(&p), b = fl_block_pool_alloc(&p), c = fl_block_pool_alloc(&p);
    int32_t tokens[BS] = { 1, 2, 3, 4 };
    fl_block_pool_publish(&p, a, 0, 11, FL_BLOCK_HASH_ROOT, tokens);
    fl_block_pool_publish(&p, b, 0, 22, FL_BLOCK_HASH_ROOT, tokens);
    fl_block_pool_release(&p, a); /* cached blocks queue at the tail in release order */
    fl_block_pool_release(&p, b);
    fl_block_pool_release(&p, c); /* c holds nothing: reused first */
    assert_int_equal(fl_block_pool_alloc(&p), c);
    assert_int_equal(fl_block_pool_alloc(&p), 3);
    assert_int_equal(fl_block_pool_lookup(&p, 0, 11, FL_BLOCK_HASH_ROOT, tokens), a);
    assert_int_equal(fl_block_pool_alloc(&p), a); /* least recently freed cached block */
    assert_int_equal(fl_block_pool_lookup(&p, 0, 11, FL_BLOCK_HASH_ROOT, tokens), -1); /* evicted */
    assert_int_equal(fl_block_pool_lookup(&p, 0, 22, FL_BLOCK_HASH_ROOT, tokens), b);
    assert_int_equal(p.evictions, 1);
    fl_block_pool_free(&p);
}

/* One prefix in two KV cache groups: two blocks (their layers differ),
 * each found only under its own group, evicted alone. */
static void test_groups(void **state)
{
    (void)state;
    fl_block_pool p;
    fl_block_pool_init(&p, 4, BS, 1);
    const int32_t a = fl_block_pool_alloc(&p), b = fl_block_pool_alloc(&p);
    int32_t tokens[BS] = { 1, 2, 3, 4 };
    const uint64_t h = fl_block_hash(FL_BLOCK_HASH_ROOT, tokens, BS);
    fl_block_pool_publish(&p, a, 0, h, FL_BLOCK_HASH_ROOT, tokens);
    fl_block_pool_publish(&p, b, 1, h, FL_BLOCK_HASH_ROOT, tokens);
    assert_int_equal(fl_block_pool_lookup(&p, 0, h, FL_BLOCK_HASH_ROOT, tokens), a);
    assert_int_equal(fl_block_pool_lookup(&p, 1, h, FL_BLOCK_HASH_ROOT, tokens), b);
    assert_int_equal(fl_block_pool_lookup(&p, 2, h, FL_BLOCK_HASH_ROOT, tokens), -1);
    fl_block_pool_release(&p, a);
    fl_block_pool_release(&p, b);
    assert_int_equal(fl_block_pool_alloc(&p), 2); /* the never-used blocks first */
    assert_int_equal(fl_block_pool_alloc(&p), 3);
    assert_int_equal(fl_block_pool_alloc(&p), a); /* evicts group 0's block only */
    assert_int_equal(fl_block_pool_lookup(&p, 0, h, FL_BLOCK_HASH_ROOT, tokens), -1);
    assert_int_equal(fl_block_pool_lookup(&p, 1, h, FL_BLOCK_HASH_ROOT, tokens), b);
    fl_block_pool_free(&p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_random_operations),
        cmocka_unit_test(test_lru_order),
        cmocka_unit_test(test_groups),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
