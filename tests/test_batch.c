/* test_batch.c - fl_batch_check against the invariant of model/batch.h.
 *
 * One valid batch (a prompt chunk mid-sequence, a decode token, a whole
 * short prompt, block tables out of order) must pass; then each rule is
 * broken alone, in each way a producer could break it, and the check must
 * refuse the batch naming that rule. */
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

static fl_batch batch_of(const arrays *a)
{
    return (fl_batch){
        .num_tokens = a->num_tokens, .token_ids = a->ids, .positions = a->pos, .slots = a->slots,
        .num_seqs = a->num_seqs, .query_start = a->query_start, .seq_lens = a->seq_lens,
        .max_blocks_per_seq = a->max_blocks, .block_tables = a->tables,
        .num_logits = a->num_logits, .logit_rows = a->rows,
    };
}

static void expect_refused(const arrays *a, const char *needle)
{
    char why[256] = "";
    const fl_batch b = batch_of(a);
    if (fl_batch_check(&b, BS, NUM_BLOCKS, why, sizeof why) != -1) {
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
    assert_int_equal(fl_batch_check(&b, BS, NUM_BLOCKS, why, sizeof why), 0);
    /* no logits at all is a step too (prompt chunks that end no prompt) */
    a.num_logits = 0;
    b = batch_of(&a);
    assert_int_equal(fl_batch_check(&b, BS, NUM_BLOCKS, why, sizeof why), 0);
    /* a context that fills its table to the last slot */
    arrays one = { .num_tokens = 1, .num_seqs = 1, .num_logits = 1, .max_blocks = 1,
                   .ids = { 7 }, .pos = { 3 }, .slots = { 5 * BS + 3 }, .query_start = { 0, 1 },
                   .seq_lens = { 4 }, .tables = { 5 }, .rows = { 0 } };
    b = batch_of(&one);
    assert_int_equal(fl_batch_check(&b, BS, NUM_BLOCKS, why, sizeof why), 0);
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
    expect_refused(&a, "sequence 0: block table entry 1 is 16, outside [0, 16)");

    a = valid();
    a.tables[6] = -1;
    expect_refused(&a, "sequence 2: block table entry 0 is -1");

    a = valid();
    a.seq_lens[1] = 13, a.pos[3] = 12; /* 4 blocks, the table holds 3 */
    a.slots[3] = 0; /* never reached */
    expect_refused(&a, "needs 4 blocks, more than max_blocks_per_seq 3");

    a = valid();
    a.slots[2] = 3 * BS + 3; /* block 0 of the table instead of block 1 */
    expect_refused(&a, "row 2 (sequence 0, position 7) has slot 15, not 39");
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
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
