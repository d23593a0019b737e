/* test_batch.c - fl_batch_check against the invariant of model/batch.h.
 *
 * One valid batch (a prompt chunk mid-sequence, a decode token, a whole
 * short prompt, block tables out of order) must pass; then each rule is
 * broken alone, in each way a producer could break it, and the check must
 * refuse the batch naming that rule. Then a cache of two KV cache groups
 * (a window and full attention): the null block where the window has left
 * the blocks, and nowhere else. */
#include "test_util.h"

#include "model/batch.h"

#define BS 4
#define NUM_BLOCKS 16
#define MAX_BLOCKS 3

/* The batch's arrays, copied per case so a case can break one field. */
typedef struct arrays {
    int num_tokens, num_seqs, num_logits, max_blocks;
    int32_t ids[8], pos[8], slots[8], query_start[4], seq_lens[3], tables[3 * MAX_BLOCKS], rows[8];
} arrays;

/* Sequence 0: positions 5..7 of a prompt (its chunk ends at seq_lens 8,
 * no logits); sequence 1: a decode token at position 9; sequence 2: a whole
 * prompt of 2 tokens. */
static arrays valid(void)
{
    return (arrays){
        .num_tokens = 6, .num_seqs = 3, .num_logits = 2, .max_blocks = MAX_BLOCKS,
        .ids = { 11, 12, 13, 21, 31, 32 },
        .pos = { 5, 6, 7, 9, 0, 1 },
        .slots = { 9 * BS + 1, 9 * BS + 2, 9 * BS + 3, 2 * BS + 1, 15 * BS, 15 * BS + 1 },
        .query_start = { 0, 3, 4, 6 },
        .seq_lens = { 8, 10, 2 },
        .tables = { 3, 9, -1, /* */ 0, 1, 2, /* */ 15, -1, -1 },
        .rows = { 3, 5 },
    };
}

/* One group of full attention: tables and slots as without groups. */
static const fl_kv_groups one_group = { .num_groups = 1, .layers_per_group = 1, .num_layers = 1 };

static fl_batch batch_of(const arrays *a)
{
    return (fl_batch){
        .num_tokens = a->num_tokens, .token_ids = a->ids, .positions = a->pos, .num_kv_groups = 1, .slots = a->slots,
        .num_seqs = a->num_seqs, .query_start = a->query_start, .seq_lens = a->seq_lens,
        .max_blocks_per_seq = a->max_blocks, .block_tables = a->tables,
        .num_logits = a->num_logits, .logit_rows = a->rows,
    };
}

static void expect_refused(const arrays *a, const char *needle)
{
    char why[256] = "";
    const fl_batch b = batch_of(a);
    if (fl_batch_check(&b, &one_group, BS, NUM_BLOCKS, why, sizeof why) != -1) {
        print_error("a batch that should break \"%s\" passed\n", needle);
        fail();
    }
    assert_msg_contains(why, needle);
}

static void test_valid(void **state)
{
    (void)state;
    arrays a = valid();
    fl_batch b = batch_of(&a);
    char why[256] = "";
    assert_int_equal(fl_batch_check(&b, &one_group, BS, NUM_BLOCKS, why, sizeof why), 0);
    /* no logits at all is a step too (prompt chunks that end no prompt) */
    a.num_logits = 0;
    b = batch_of(&a);
    assert_int_equal(fl_batch_check(&b, &one_group, BS, NUM_BLOCKS, why, sizeof why), 0);
    /* a context that fills its table to the last slot */
    arrays one = { .num_tokens = 1, .num_seqs = 1, .num_logits = 1, .max_blocks = 1,
                   .ids = { 7 }, .pos = { 3 }, .slots = { 5 * BS + 3 }, .query_start = { 0, 1 },
                   .seq_lens = { 4 }, .tables = { 5 }, .rows = { 0 } };
    b = batch_of(&one);
    assert_int_equal(fl_batch_check(&b, &one_group, BS, NUM_BLOCKS, why, sizeof why), 0);
}

static void test_sequences(void **state)
{
    (void)state;
    arrays a = valid();
    a.num_seqs = 0;
    a.query_start[0] = a.num_tokens = 0;
    expect_refused(&a, "at least one sequence");

    a = valid();
    a.query_start[0] = 1;
    expect_refused(&a, "query_start[0] is 1");

    a = valid();
    a.query_start[3] = 5; /* one row left over */
    expect_refused(&a, "not num_tokens 6");

    a = valid();
    a.query_start[2] = 3; /* sequence 1 empty */
    expect_refused(&a, "sequence 1 has no tokens");

    a = valid();
    a.query_start[1] = 5; /* starts out of order */
    a.query_start[2] = 4;
    expect_refused(&a, "out of order");
}

static void test_positions(void **state)
{
    (void)state;
    arrays a = valid();
    a.pos[1] = 7, a.pos[2] = 6; /* out of order within the sequence */
    expect_refused(&a, "row 1 (sequence 0) is at position 7, not 6");

    a = valid();
    a.seq_lens[0] = 7; /* the rows are not the last of the context */
    expect_refused(&a, "row 0 (sequence 0) is at position 5, not 4");

    a = valid();
    a.seq_lens[2] = 1; /* fewer positions than tokens */
    expect_refused(&a, "sequence 2 has 2 tokens but seq_lens 1");

    /* two sequences' tokens interleaved (what a per-token sequence index
     * would allow): their rows are no longer their last positions */
    a = valid();
    a.ids[2] = 21, a.ids[3] = 13;
    a.pos[2] = 9, a.pos[3] = 7;
    expect_refused(&a, "row 2 (sequence 0) is at position 9, not 7");
}

static void test_blocks(void **state)
{
    (void)state;
    arrays a = valid();
    a.tables[1] = NUM_BLOCKS;
    expect_refused(&a, "sequence 0: group 0's block table entry 1 is 16, outside [0, 16)");

    a = valid();
    a.tables[6] = -1;
    expect_refused(&a, "sequence 2: group 0's block table entry 0 is -1");

    a = valid();
    a.seq_lens[1] = 13, a.pos[3] = 12; /* 4 blocks, the table holds 3 */
    a.slots[3] = 0; /* never reached */
    expect_refused(&a, "needs 4 blocks, more than max_blocks_per_seq 3");

    a = valid();
    a.slots[2] = 3 * BS + 3; /* block 0 of the table instead of block 1 */
    expect_refused(&a, "row 2 (sequence 0, position 7) has slot 15 in group 0, not 39");

    a = valid();
    fl_batch b = batch_of(&a);
    b.num_kv_groups = 2;
    char why[256] = "";
    assert_int_equal(fl_batch_check(&b, &one_group, BS, NUM_BLOCKS, why, sizeof why), -1);
    assert_msg_contains(why, "num_kv_groups is 2, but the cache has 1 groups");
}

/* Group 0 of layer 0 over a window of 4, group 1 of layer 1 full. */
static const fl_kv_groups two_groups = {
    .num_groups = 2, .layers_per_group = 1, .num_layers = 2, .window = { 4, 0 }, .group = { 0, 1 },
};

/* One sequence, n rows ending at position 9 (seq_lens 10), its tables of
 * the two groups side by side; slots through them. */
typedef struct windowed {
    int32_t ids[4], pos[4], slots[4 * 2], query_start[2], seq_lens[1], tables[2 * MAX_BLOCKS], rows[1];
} windowed;

static fl_batch windowed_batch(windowed *w, int n, const int32_t tables[2 * MAX_BLOCKS])
{
    memcpy(w->tables, tables, sizeof w->tables);
    for (int k = 0; k < n; k++) {
        const int p = 10 - n + k;
        w->ids[k] = 1;
        w->pos[k] = p;
        for (int g = 0; g < 2; g++)
            w->slots[k * 2 + g] = fl_batch_slot(w->tables + g * MAX_BLOCKS, BS, p);
    }
    w->query_start[0] = 0, w->query_start[1] = n, w->seq_lens[0] = 10, w->rows[0] = n - 1;
    return (fl_batch){
        .num_tokens = n, .token_ids = w->ids, .positions = w->pos, .num_kv_groups = 2, .slots = w->slots,
        .num_seqs = 1, .query_start = w->query_start, .seq_lens = w->seq_lens, .max_blocks_per_seq = MAX_BLOCKS,
        .block_tables = w->tables, .num_logits = 1, .logit_rows = w->rows,
    };
}

static int check_windowed(windowed *w, int n, const int32_t tables[2 * MAX_BLOCKS], char *why)
{
    const fl_batch b = windowed_batch(w, n, tables);
    return fl_batch_check(&b, &two_groups, BS, NUM_BLOCKS, why, 256);
}

static void test_null_block(void **state)
{
    (void)state;
    windowed w;
    char why[256] = "";
    /* a decode at 9 attends to 6..9: block 0 (0..3) is left, null */
    const int32_t left[] = { FL_KV_NULL_BLOCK, 5, 6, /* full: */ 1, 2, 3 };
    assert_int_equal(check_windowed(&w, 1, left, why), 0);
    /* a real block there is fine too (not yet given back) */
    const int32_t kept[] = { 4, 5, 6, 1, 2, 3 };
    assert_int_equal(check_windowed(&w, 1, kept, why), 0);
    /* block 1 holds 6 and 7, which the window still sees */
    const int32_t too_far[] = { FL_KV_NULL_BLOCK, FL_KV_NULL_BLOCK, 6, 1, 2, 3 };
    assert_int_equal(check_windowed(&w, 1, too_far, why), -1);
    assert_msg_contains(why, "group 0's block table entry 1 is the null block 0, but its first row "
                             "(position 9) attends to the block (window 4)");
    /* full attention never leaves a block */
    const int32_t full_null[] = { FL_KV_NULL_BLOCK, 5, 6, FL_KV_NULL_BLOCK, 2, 3 };
    assert_int_equal(check_windowed(&w, 1, full_null, why), -1);
    assert_msg_contains(why, "group 1's block table entry 0 is the null block");
    /* a chunk of 6..9: its first row attends to 3, in block 0 */
    assert_int_equal(check_windowed(&w, 4, left, why), -1);
    assert_msg_contains(why, "group 0's block table entry 0 is the null block 0, but its first row (position 6)");
    /* a slot through the other group's table */
    const fl_batch b = windowed_batch(&w, 1, kept);
    w.slots[1] = w.slots[0];
    assert_int_equal(fl_batch_check(&b, &two_groups, BS, NUM_BLOCKS, why, sizeof why), -1);
    assert_msg_contains(why, "row 0 (sequence 0, position 9) has slot 25 in group 1, not 13");
}

static void test_logit_rows(void **state)
{
    (void)state;
    arrays a = valid();
    a.rows[0] = 5, a.rows[1] = 3;
    expect_refused(&a, "logit_rows[1] is 3, outside [6, 6)");

    a = valid();
    a.rows[0] = 5; /* twice */
    expect_refused(&a, "logit_rows[1] is 5");

    a = valid();
    a.rows[1] = 6;
    expect_refused(&a, "logit_rows[1] is 6");

    a = valid();
    a.rows[0] = -1;
    expect_refused(&a, "logit_rows[0] is -1");

    a = valid();
    a.num_logits = 7;
    expect_refused(&a, "num_logits is 7");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_valid),
        cmocka_unit_test(test_sequences),
        cmocka_unit_test(test_positions),
        cmocka_unit_test(test_blocks),
        cmocka_unit_test(test_logit_rows),
        cmocka_unit_test(test_null_block),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
