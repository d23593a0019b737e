/* gpqa.h - the pure half of `flashlm bench eval`: GPQA as openai/gpt-oss's
 * evals run it (gpt_oss/evals/gpqa_eval.py for the dataset, the shuffle
 * and the prompt; abcd_grader.py for the answer; report.py for the
 * score), with no I/O, so each piece is tested on its own.
 *
 * A sample is one (question, repeat). gpt-oss lays the samples out
 * repeat-major (its examples list is the questions repeated N times), and
 * so does everything here: sample i is question i % Q of repeat i / Q. */
#ifndef FL_GPQA_H
#define FL_GPQA_H

#include <stddef.h>
#include <stdint.h>

#include "base/csv.h"
#include "base/error.h"
#include "base/strbuf.h"

typedef struct fl_gpqa_question {
    const char *text;        /* column "Question" */
    const char *choices[4];  /* "Correct Answer", "Incorrect Answer 1", "... 2", "... 3" */
    size_t len[4], text_len;
    int line;                /* where its record starts in the CSV */
} fl_gpqa_question;

typedef struct fl_gpqa {
    fl_csv csv;              /* owns the bytes the questions point into */
    fl_gpqa_question *q;
    size_t num_questions;
} fl_gpqa;

/* Reads a GPQA-format CSV (GPQA's own files have some 30 columns; only the
 * five above are read, by their header names, the first column of a name
 * if two share it). Each of the five must be non-empty UTF-8 without NUL
 * bytes (text a JSON request can carry); errors name the line and column.
 * Fields are taken verbatim. (pandas, which gpt-oss reads the file with,
 * would make a field that is exactly "NA", "None", "null" and the like a
 * NaN, shown as "nan"; that is a quirk of its reader, not of GPQA.) */
int fl_gpqa_load(fl_gpqa *g, const char *data, size_t size, fl_error *err);
void fl_gpqa_free(fl_gpqa *g);

/* The order in which (question, repeat) shows its choices: letter "ABCD"[k]
 * shows choices[perm[k]] (gpt-oss's "permutation" field, same meaning).
 * A Fisher-Yates shuffle driven by base/rng's counter-based values, so it
 * depends only on (seed, question, repeat): not on the order requests are
 * made in, the number of repeats or the other questions. gpt-oss draws its
 * permutations from one random.Random(0) in sample order, so for the same
 * question the orders differ from its; see bench_eval.c for why that does
 * not change what is measured. */
void fl_gpqa_permutation(uint64_t seed, size_t question, int repeat, int perm[4]);

/* The letter the correct answer is shown under: the first letter whose
 * text equals choices[0]. Where an incorrect answer has the same text as
 * the correct one, that is the earlier of the two letters, as gpt-oss's
 * choices.index(correct) decides. */
char fl_gpqa_correct_letter(const fl_gpqa_question *q, const int perm[4]);

/* The user message, gpt-oss's QUERY_TEMPLATE_MULTICHOICE filled in: the
 * question, a blank line, "(A) ..." to "(D) ...", a blank line, and the
 * instruction to answer with the letter. Appended to out. */
void fl_gpqa_prompt(const fl_gpqa_question *q, const int perm[4], fl_strbuf *out);

/* gpt-oss's extract_abcd: its answer patterns in its order of priority,
 * the first that matches anywhere deciding. Compiled once (the patterns
 * are fixed; failing to compile them is a bug, and asserts). */
typedef struct fl_abcd_extractor fl_abcd_extractor;
fl_abcd_extractor *fl_abcd_extractor_new(void);
void fl_abcd_extractor_free(fl_abcd_extractor *x);

/* 'A', 'B', 'C' or 'D', or 0 when no pattern matches text[0..len) (UTF-8,
 * as a JSON string is; bytes that are not UTF-8 match nothing). */
char fl_abcd_extract(fl_abcd_extractor *x, const char *text, size_t len);

typedef struct fl_eval_score {
    double accuracy;     /* correct samples / all samples */
    double std_error;    /* of the accuracy, with the questions as the unit (NaN for one question) */
    double sample_std;   /* population std of the 0/1 sample scores: gpt-oss's "score:std" */
} fl_eval_score;

/* The score of num_questions x repeats samples, correct[i] 1 or 0 for
 * sample i (repeat-major, as above). The standard error treats the
 * questions as the sample drawn and each question's mean over its repeats
 * as one observation: sqrt(var(question means, ddof 1) / num_questions).
 * The repeats of one question are not independent draws (a hard question
 * is hard every time), so dividing the 0/1 spread by sqrt(all samples)
 * would understate the error by up to sqrt(repeats). */
void fl_eval_score_of(const unsigned char *correct, size_t num_questions, int repeats, fl_eval_score *out);

#endif
