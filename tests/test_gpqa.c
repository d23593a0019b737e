/* test_gpqa.c - the pure half of `flashlm bench eval`: RFC 4180 CSV,
 * the GPQA columns, the shuffle, the prompt, the answer extraction (the
 * expected letters are what gpt-oss's extract_abcd returns, worked out by
 * running it) and the score (by hand). */
#include "test_util.h"

#include <math.h>

#include "base/csv.h"
#include "bench/gpqa.h"

static void expect_field(const fl_csv *c, size_t r, size_t col, const char *want, size_t want_len)
{
    size_t len;
    const char *got = fl_csv_field(c, r, col, &len);
    assert_int_equal(len, want_len);
    assert_memory_equal(got, want, want_len);
    assert_int_equal(got[len], '\0');
}
#define EXPECT_FIELD(c, r, col, lit) expect_field(c, r, col, lit, sizeof(lit) - 1)

static void test_csv(void **state)
{
    (void)state;
    /* a BOM, CRLF records, a blank line, quoted commas, LF and CRLF inside
     * quotes, doubled quotes, empty fields, a last record with no line break */
    static const char data[] = "\xef\xbb\xbfname,\"text, quoted\",n\r\n"
                               "plain,\"a, b\",1\r\n"
                               "\r\n"
                               "q2,\"line one\nline two\r\nline \"\"three\"\"\",\n"
                               "\"\",,\"\"\"\"";
    fl_csv c;
    fl_error err;
    assert_int_equal(fl_csv_parse(&c, data, sizeof data - 1, &err), 0);
    assert_int_equal(c.num_cols, 3);
    assert_int_equal(c.num_rows, 3);
    EXPECT_FIELD(&c, 0, 0, "name");
    EXPECT_FIELD(&c, 0, 1, "text, quoted");
    EXPECT_FIELD(&c, 1, 1, "a, b");
    EXPECT_FIELD(&c, 1, 2, "1");
    EXPECT_FIELD(&c, 2, 1, "line one\nline two\r\nline \"three\"");
    EXPECT_FIELD(&c, 2, 2, "");
    EXPECT_FIELD(&c, 3, 0, "");
    EXPECT_FIELD(&c, 3, 1, "");
    EXPECT_FIELD(&c, 3, 2, "\"");
    assert_int_equal(c.line[0], 1);
    assert_int_equal(c.line[1], 2);
    assert_int_equal(c.line[2], 4);
    assert_int_equal(c.line[3], 7); /* after the two line breaks inside the quotes */
    assert_int_equal(fl_csv_column(&c, "n"), 2);
    assert_int_equal(fl_csv_column(&c, "text"), -1);
    fl_csv_free(&c);

    /* a trailing comma is one more (empty) field; a final line break ends the file */
    assert_int_equal(fl_csv_parse(&c, "a,b\nx,\n", 7, &err), 0);
    assert_int_equal(c.num_rows, 1);
    EXPECT_FIELD(&c, 1, 1, "");
    fl_csv_free(&c);
    /* a NUL is a byte like another */
    assert_int_equal(fl_csv_parse(&c, "a\n\"x\0y\"\n", 8, &err), 0);
    expect_field(&c, 1, 0, "x\0y", 3);
    fl_csv_free(&c);
}

static void expect_csv_error(const char *data, const char *needle)
{
    fl_csv c;
    fl_error err;
    assert_int_equal(fl_csv_parse(&c, data, strlen(data), &err), -1);
    assert_msg_contains(err.msg, needle);
    assert_null(c.bytes);
    fl_csv_free(&c);
}

static void test_csv_errors(void **state)
{
    (void)state;
    expect_csv_error("", "line 1: no header");
    expect_csv_error("\n\r\n", "line 1: no header");
    expect_csv_error("a,b\n\"x\ny,z\n", "line 2: the quoted field 1 that starts here never ends");
    expect_csv_error("a,b\n\"x\"y,z\n", "line 2: text after the closing quote of field 1");
    expect_csv_error("a,b\nx,y\"z\n", "line 2: a quote inside the unquoted field 2");
    expect_csv_error("a,b\nx\ry\n", "line 2: a CR that is not part of a CRLF");
    expect_csv_error("a,b\n\"1\n2\",3\nx\n", "line 4: 1 fields, but the header has 2");
    expect_csv_error("a,b\nx,y,z\n", "line 2: 3 fields, but the header has 2");
}

/* A GPQA-format file: more columns than the five, in another order. */
static const char gpqa_csv[] =
    "Record ID,Incorrect Answer 1,Question,Incorrect Answer 3,Correct Answer,Incorrect Answer 2,Notes\n"
    "r1,wrong 1,\"What is 2+2?\nShow work.\",wrong 3,4,wrong 2,\n"
    "r2,same,Pick the right one,x,same,y,\"a, b\"\n";

static void test_gpqa_load(void **state)
{
    (void)state;
    fl_gpqa g;
    fl_error err;
    assert_int_equal(fl_gpqa_load(&g, gpqa_csv, sizeof gpqa_csv - 1, &err), 0);
    assert_int_equal(g.num_questions, 2);
    assert_string_equal(g.q[0].text, "What is 2+2?\nShow work.");
    assert_string_equal(g.q[0].choices[0], "4");
    assert_string_equal(g.q[0].choices[1], "wrong 1");
    assert_string_equal(g.q[0].choices[2], "wrong 2");
    assert_string_equal(g.q[0].choices[3], "wrong 3");
    assert_int_equal(g.q[0].line, 2);
    assert_int_equal(g.q[1].line, 4);

    /* the letter of the correct answer; with an incorrect answer of the
     * same text, the earlier of the two letters */
    const int id[4] = { 0, 1, 2, 3 }, rev[4] = { 3, 2, 1, 0 }, mid[4] = { 2, 0, 3, 1 };
    assert_int_equal(fl_gpqa_correct_letter(&g.q[0], id), 'A');
    assert_int_equal(fl_gpqa_correct_letter(&g.q[0], rev), 'D');
    assert_int_equal(fl_gpqa_correct_letter(&g.q[0], mid), 'B');
    assert_int_equal(fl_gpqa_correct_letter(&g.q[1], rev), 'C'); /* choices[1] "same" at C, choices[0] at D */

    fl_strbuf p = { 0 };
    fl_gpqa_prompt(&g.q[0], mid, &p);
    assert_string_equal(p.data, "What is 2+2?\nShow work.\n\n(A) wrong 2\n(B) 4\n(C) wrong 3\n(D) wrong 1\n\n"
                                "Express your final answer as the corresponding option 'A', 'B', 'C', or 'D'.");
    fl_strbuf_free(&p);
    fl_gpqa_free(&g);
}

static void expect_gpqa_error(const char *data, size_t len, const char *needle)
{
    fl_gpqa g;
    fl_error err;
    assert_int_equal(fl_gpqa_load(&g, data, len, &err), -1);
    assert_msg_contains(err.msg, needle);
    assert_null(g.q);
    fl_gpqa_free(&g);
}
#define EXPECT_GPQA_ERROR(lit, needle) expect_gpqa_error(lit, sizeof(lit) - 1, needle)

static void test_gpqa_errors(void **state)
{
    (void)state;
    EXPECT_GPQA_ERROR("Question,Correct Answer,Incorrect Answer 1,Incorrect Answer 2\nq,a,b,c\n",
                      "line 1: no column 'Incorrect Answer 3'");
    EXPECT_GPQA_ERROR("Question,Correct Answer,Incorrect Answer 1,Incorrect Answer 2,Incorrect Answer 3\n",
                      "no questions");
    EXPECT_GPQA_ERROR("Question,Correct Answer,Incorrect Answer 1,Incorrect Answer 2,Incorrect Answer 3\n"
                      "q,a,b,c,d\n\"q\n2\",a,,c,d\n",
                      "line 3: column 'Incorrect Answer 1' is empty");
    EXPECT_GPQA_ERROR("Question,Correct Answer,Incorrect Answer 1,Incorrect Answer 2,Incorrect Answer 3\n"
                      "q,a\xff,b,c,d\n",
                      "line 2: column 'Correct Answer' is not valid UTF-8 (at byte 1)");
    EXPECT_GPQA_ERROR("Question,Correct Answer,Incorrect Answer 1,Incorrect Answer 2,Incorrect Answer 3\n"
                      "q\0,a,b,c,d\n",
                      "line 2: column 'Question' holds a NUL byte");
    EXPECT_GPQA_ERROR("Question,Correct Answer\n\"q,a\n", "line 2: the quoted field 1");
}

static void test_permutation(void **state)
{
    (void)state;
    /* each of the 24 orders, and each letter for the correct answer, about
     * equally often: 24,000 samples, 1,000 expected each (sd ~31), 6,000
     * each letter (sd ~67) */
    int orders[256] = { 0 }, letter[4] = { 0 };
    for (size_t q = 0; q < 1000; q++) {
        for (int r = 0; r < 24; r++) {
            int p[4], again[4], seen = 0;
            fl_gpqa_permutation(7, q, r, p);
            fl_gpqa_permutation(7, q, r, again);
            assert_memory_equal(p, again, sizeof p);
            for (int k = 0; k < 4; k++) {
                assert_true(p[k] >= 0 && p[k] < 4);
                seen |= 1 << p[k];
                if (p[k] == 0)
                    letter[k]++;
            }
            assert_int_equal(seen, 15);
            orders[p[0] * 64 + p[1] * 16 + p[2] * 4 + p[3]]++;
        }
    }
    int distinct = 0;
    for (int i = 0; i < 256; i++) {
        if (!orders[i])
            continue;
        distinct++;
        assert_true(orders[i] > 850 && orders[i] < 1150);
    }
    assert_int_equal(distinct, 24);
    for (int k = 0; k < 4; k++)
        assert_true(letter[k] > 5650 && letter[k] < 6350);
    /* the seed, the question and the repeat each change it */
    int a[4], b[4], same_seed = 0, same_q = 0, same_r = 0;
    for (int r = 0; r < 50; r++) {
        fl_gpqa_permutation(0, 3, r, a);
        fl_gpqa_permutation(1, 3, r, b);
        same_seed += memcmp(a, b, sizeof a) == 0;
        fl_gpqa_permutation(0, 4, r, b);
        same_q += memcmp(a, b, sizeof a) == 0;
        fl_gpqa_permutation(0, 3, r + 1, b);
        same_r += memcmp(a, b, sizeof a) == 0;
    }
    assert_true(same_seed < 10 && same_q < 10 && same_r < 10); /* 1 in 24 by chance */
}

static void test_extract(void **state)
{
    (void)state;
    /* what gpt-oss's extract_abcd gives each (0: none, or a character that
     * never scores) */
    static const struct {
        const char *text;
        char want;
    } cases[] = {
        { "A", 'A' },
        { "b", 0 },                                   /* lower case alone: its fallback's 'b' */
        { "", 0 },
        { "**Answer:** C", 'C' },
        { "Answer: (D)", 'D' },
        { "The answer is B", 0 },                     /* "is" sits between: nothing matches */
        { "\\boxed{\\textbf{C}}", 'C' },
        { "\\textbf{B}", 'B' },
        { "so the answer:\n\n**D) 42 kJ**", 'D' },
        { "Answer: A\nAfter checking, Answer: B", 'A' }, /* the first declaration */
        { "Choice: c", 'C' },
        { "Option E", 0 },
        { "I think (B) is right", 'B' },
        { "All of them", 'A' },                       /* any line that starts with A to D */
        { "Reasoning first.\nD", 'D' },
        { "answer\xe2\x80\x93 b", 'B' },              /* an en dash */
        { "Answer:\xc2\xa0" "C", 'C' },               /* NBSP is Python whitespace */
        { "Answer:\x1c" "C", 'C' },                   /* so is U+001C */
        { "Answer:\xe1\xa0\x8e" "C", 'A' },           /* U+180E is not: the line's A wins */
        { "**Answer** **b**", 'B' },
        { "the options: *A* or __C__", 'A' },
        { "Opt\xc4\xb0on: d", 'D' },                  /* U+0130 folds to i in Python */
        { "ANSWERS - D", 'D' },
        { "answer: E", 0 },
        { "(A) and [B]", 'A' },
        { "final: [ C ]", 'C' },
        { "x(A)", 0 },
        { "\xc3\xa9(A)", 'A' },                       /* the look-behind is ASCII only */
        { "B. Because", 'B' },
        { "  **C**  ", 'C' },
        { "\xff" "A", 0 },                            /* not UTF-8: nothing matches */
    };
    fl_abcd_extractor *x = fl_abcd_extractor_new();
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char got = fl_abcd_extract(x, cases[i].text, strlen(cases[i].text));
        if (got != cases[i].want) {
            print_error("extract(\"%s\") = %d, want %d\n", cases[i].text, got, cases[i].want);
            fail();
        }
    }
    fl_abcd_extractor_free(x);
}

static void test_score(void **state)
{
    (void)state;
    /* 3 questions x 2 repeats, repeat-major: question means 1, 0.5, 0.5 */
    const unsigned char c[6] = { 1, 0, 1, 1, 1, 0 };
    fl_eval_score s;
    fl_eval_score_of(c, 3, 2, &s);
    assert_true(fabs(s.accuracy - 4.0 / 6) < 1e-12);
    /* var(1, .5, .5; ddof 1) = (1/9 + 1/36 + 1/36) / 2 = 1/12; / 3 questions = 1/36 */
    assert_true(fabs(s.std_error - 1.0 / 6) < 1e-12);
    assert_true(fabs(s.sample_std - sqrt(2.0) / 3) < 1e-12); /* sqrt(p (1 - p)) */
    /* every question always right or always wrong: the error is the spread of the questions */
    const unsigned char d[4] = { 1, 0, 1, 0 };
    fl_eval_score_of(d, 2, 2, &s);
    assert_true(fabs(s.accuracy - 0.5) < 1e-12 && fabs(s.std_error - 0.5) < 1e-12);
    fl_eval_score_of(d, 1, 4, &s);
    assert_true(fabs(s.accuracy - 0.5) < 1e-12 && isnan(s.std_error));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_csv),         cmocka_unit_test(test_csv_errors),
        cmocka_unit_test(test_gpqa_load),   cmocka_unit_test(test_gpqa_errors),
        cmocka_unit_test(test_permutation), cmocka_unit_test(test_extract),
        cmocka_unit_test(test_score),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
