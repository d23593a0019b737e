/* test_u64_map.c - the fixed-capacity hash map against a plain array of
 * (key, value) pairs: random puts, gets and removes over a small key set
 * and a table of 16 slots, so probe chains wrap and backward-shift
 * deletion runs constantly; every key is checked after every operation,
 * and iteration must visit exactly the live entries. */
#include "test_util.h"

#include "base/rng.h"
#include "base/u64_map.h"

#define KEYS 24

static void check_all(const fl_u64_map *m, const uint64_t *keys, const int *present, const uint64_t *vals)
{
    int live = 0;
    for (int k = 0; k < KEYS; k++) {
        uint64_t v = 0;
        assert_int_equal(fl_u64_map_get(m, keys[k], &v), present[k]);
        if (present[k]) {
            assert_true(v == vals[k]);
            live++;
        }
    }
    assert_int_equal(m->count, live);
    int seen = 0;
    uint64_t key, val;
    for (uint32_t at = 0; fl_u64_map_next(m, &at, &key, &val);) {
        int k = 0;
        while (k < KEYS && keys[k] != key)
            k++;
        assert_true(k < KEYS && present[k] && vals[k] == val);
        seen++;
    }
    assert_int_equal(seen, live);
}

static void test_random_operations(void **state)
{
    (void)state;
    for (uint64_t seed = 1; seed <= 20; seed++) {
        const uint64_t rk = fl_rng_key(seed, 0);
        uint64_t keys[KEYS], vals[KEYS] = { 0 };
        int present[KEYS] = { 0 };
        for (int k = 0; k < KEYS; k++)
            keys[k] = k < 4 ? (uint64_t)k : fl_rng_at(rk, (uint64_t)k); /* 0 is a key like any other */
        fl_u64_map m;
        fl_u64_map_init(&m, 8); /* 16 slots */
        int live = 0;
        for (int step = 0; step < 5000; step++) {
            const uint64_t r = fl_rng_at(rk, 1000 + (uint64_t)step);
            const int k = (int)(r % KEYS);
            switch ((r >> 8) % 3) {
            case 0: {
                const uint64_t v = r >> 16;
                const int rc = fl_u64_map_put(&m, keys[k], v);
                if (!present[k] && live == 8) {
                    assert_int_equal(rc, -1); /* full: a new key is refused */
                } else {
                    assert_int_equal(rc, 0);
                    live += !present[k];
                    present[k] = 1;
                    vals[k] = v;
                }
                break;
            }
            case 1:
                assert_int_equal(fl_u64_map_remove(&m, keys[k]), present[k]);
                live -= present[k];
                present[k] = 0;
                break;
            default:
                break;
            }
            check_all(&m, keys, present, vals);
        }
        fl_u64_map_free(&m);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_random_operations),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
