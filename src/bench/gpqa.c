/* gpqa.c - GPQA's dataset, shuffle, prompt, answer extraction and score
 * (see gpqa.h). */
#include "bench/gpqa.h"

#include <math.h>
#include <pcre2.h>
#include <string.h>

#include "base/alloc.h"
#include "base/rng.h"
#include "base/utf8.h"

/* ---- the dataset ---- */

static const char *const column_names[5] = {
    "Question", "Correct Answer", "Incorrect Answer 1", "Incorrect Answer 2", "Incorrect Answer 3",
};

static int check_text(const char *s, size_t len, int line, const char *column, fl_error *err)
{
    if (len == 0)
        return fl_fail(err, "line %d: column '%s' is empty", line, column);
    for (size_t i = 0; i < len;) {
        size_t n;
        if (s[i] == '\0')
            return fl_fail(err, "line %d: column '%s' holds a NUL byte", line, column);
        if (fl_utf8_next((const unsigned char *)s + i, len - i, &n) < 0)
            return fl_fail(err, "line %d: column '%s' is not valid UTF-8 (at byte %zu)", line, column, i);
        i += n;
    }
    return 0;
}

int fl_gpqa_load(fl_gpqa *g, const char *data, size_t size, fl_error *err)
{
    memset(g, 0, sizeof *g);
    if (fl_csv_parse(&g->csv, data, size, err) != 0)
        return -1;
    long col[5];
    for (int k = 0; k < 5; k++) {
        if ((col[k] = fl_csv_column(&g->csv, column_names[k])) < 0) {
            fl_gpqa_free(g);
            return fl_fail(err, "line 1: no column '%s' in the header (a GPQA CSV has 'Question', "
                           "'Correct Answer', 'Incorrect Answer 1', '... 2', '... 3')", column_names[k]);
        }
    }
    if (g->csv.num_rows == 0) {
        fl_gpqa_free(g);
        return fl_fail(err, "no questions after the header");
    }
    g->num_questions = g->csv.num_rows;
    g->q = fl_calloc(g->num_questions, sizeof *g->q);
    for (size_t i = 0; i < g->num_questions; i++) {
        fl_gpqa_question *q = &g->q[i];
        q->line = g->csv.line[i + 1];
        for (int k = 0; k < 5; k++) {
            size_t len;
            const char *s = fl_csv_field(&g->csv, i + 1, (size_t)col[k], &len);
            if (check_text(s, len, q->line, column_names[k], err) != 0) {
                fl_gpqa_free(g);
                return -1;
            }
            if (k == 0) {
                q->text = s;
                q->text_len = len;
            } else {
                q->choices[k - 1] = s;
                q->len[k - 1] = len;
            }
        }
    }
    return 0;
}

void fl_gpqa_free(fl_gpqa *g)
{
    fl_csv_free(&g->csv);
    free(g->q);
    memset(g, 0, sizeof *g);
}

/* ---- shuffle and prompt ---- */

void fl_gpqa_permutation(uint64_t seed, size_t question, int repeat, int perm[4])
{
    const uint64_t key = fl_rng_key(seed, (uint64_t)question);
    for (int k = 0; k < 4; k++)
        perm[k] = k;
    /* Three draws a sample. A 64-bit value modulo 4 or 2 is exactly uniform
     * and modulo 3 off by at most 2^-63, far below anything measurable. */
    for (int k = 3; k > 0; k--) {
        const int j = (int)(fl_rng_at(key, (uint64_t)repeat * 3 + (uint64_t)(3 - k)) % (uint64_t)(k + 1));
        const int t = perm[k];
        perm[k] = perm[j];
        perm[j] = t;
    }
}

char fl_gpqa_correct_letter(const fl_gpqa_question *q, const int perm[4])
{
    for (int k = 0; k < 4; k++)
        if (q->len[perm[k]] == q->len[0] && memcmp(q->choices[perm[k]], q->choices[0], q->len[0]) == 0)
            return (char)('A' + k);
    FL_ASSERT(0); /* perm holds 0, whose text is choices[0] */
    return 0;
}

void fl_gpqa_prompt(const fl_gpqa_question *q, const int perm[4], fl_strbuf *out)
{
    fl_strbuf_append(out, q->text, q->text_len);
    fl_strbuf_append_str(out, "\n");
    for (int k = 0; k < 4; k++) {
        fl_strbuf_appendf(out, "\n(%c) ", 'A' + k);
        fl_strbuf_append(out, q->choices[perm[k]], q->len[perm[k]]);
    }
    fl_strbuf_append_str(out, "\n\nExpress your final answer as the corresponding option 'A', 'B', 'C', or 'D'.");
}

/* ---- answer extraction ---- */

/* gpt-oss's patterns are Python `re` patterns on str. PCRE2 in UTF mode
 * with Unicode properties (UCP) runs them the same way (backtracking,
 * leftmost match, the first alternative first, Unicode \b), but for two
 * things spelled out here: \s is WS, Python's str.isspace() set (PCRE2's
 * Unicode \s lacks U+001C..U+001F and has U+180E), and a caseless i is
 * I_, which Python also matches to the Turkish U+0130 and U+0131 and PCRE2
 * does not (the other letters of the words fold alike in both: s with
 * U+017F too). */
#define WS "[\\t\\n\\x{0b}\\x{0c}\\r\\x{1c}-\\x{20}\\x{85}\\x{a0}\\x{1680}\\x{2000}-\\x{200a}" \
           "\\x{2028}\\x{2029}\\x{202f}\\x{205f}\\x{3000}]"
#define I_ "[i\\x{130}\\x{131}]"
#define WRAP "(?:\\*{1,2}|_{1,2})"         /* markdown's * ** _ __ */
#define SEP "[:\\-\\x{2013}]"               /* : - or an en dash */
#define NOT_ALNUM_BEFORE "(?<![A-Za-z0-9])"
#define NOT_ALNUM_AFTER "(?![A-Za-z0-9])"

/* In gpt-oss's order. Its list also has two \boxed patterns for
 * \boxed{\textbf{X}} and \boxed{\text{X}} after the plain \boxed one; they
 * are left out because they can never decide: any text they match has a
 * \boxed{ followed, before its first }, by a letter, which the plain
 * pattern (ahead of them in priority) then matches. */
static const char *const patterns[] = {
    /* **Answer:** C, *Answers* - B: a wrapped "Answer" and a bare letter */
    "(?i)" WRAP "answers?" WS "*" SEP "?" WRAP WS "*([ABCD])\\b",
    /* a line that starts "Answer: C", "**Answer** **C**", ... */
    "(?im)^" WS "*" WRAP "?answer:?" WRAP "?" WS "*:?" WS "*" WRAP "?([ABCD])" WRAP "?" WS "*",
    /* Answer: (C) */
    "(?i)\\banswers?\\b" WS "*" SEP "?" WS "*\\(" WS "*([ABCD])" WS "*\\)",
    /* Answer: C, Answers - D */
    "(?i)\\banswers?\\b" WS "*" SEP "?" WS "*([ABCD])\\b",
    /* Option B, Choice: C */
    "(?i)\\b(?:opt" I_ "on|cho" I_ "ce)\\b" WS "*" SEP "?" WS "*([ABCD])\\b",
    /* LaTeX \boxed{...C...}: the first letter before the first } */
    "\\\\boxed\\{[^}]*?([ABCD])[^}]*\\}",
    /* (A), [B] on their own */
    NOT_ALNUM_BEFORE "[(\\[]" WS "*([ABCD])" WS "*[)\\]]" NOT_ALNUM_AFTER,
    /* *A*, **B**, _C_, __D__ */
    NOT_ALNUM_BEFORE WRAP "([ABCD])" WRAP NOT_ALNUM_AFTER,
    /* LaTeX \textbf{...C...} */
    "\\\\textbf\\{[^}]*?([ABCD])[^}]*\\}",
    /* **D) the text of the choice** */
    NOT_ALNUM_BEFORE WRAP WS "*([ABCD])\\)[^*_\\n]+?" WRAP NOT_ALNUM_AFTER,
    /* last: any line that starts with a capital A to D, wrapped or not */
    "(?m)^" WS "*" WRAP "?([ABCD])" WRAP "?" WS "*[.)\\-\\x{2013}:]?" WS "*.*$",
};
#define NUM_PATTERNS (sizeof patterns / sizeof patterns[0])

struct fl_abcd_extractor {
    pcre2_code *re[NUM_PATTERNS];
    pcre2_match_data *match;
};

fl_abcd_extractor *fl_abcd_extractor_new(void)
{
    fl_abcd_extractor *x = fl_calloc(1, sizeof *x);
    /* Python's . and $ know one line break, \n */
    pcre2_compile_context *cc = pcre2_compile_context_create(NULL);
    pcre2_set_newline(cc, PCRE2_NEWLINE_LF);
    for (size_t i = 0; i < NUM_PATTERNS; i++) {
        int code;
        PCRE2_SIZE offset;
        x->re[i] = pcre2_compile((PCRE2_SPTR)patterns[i], PCRE2_ZERO_TERMINATED, PCRE2_UTF | PCRE2_UCP, &code,
                                 &offset, cc);
        FL_ASSERT(x->re[i] != NULL);
        pcre2_jit_compile(x->re[i], PCRE2_JIT_COMPLETE); /* falls back to the interpreter */
    }
    pcre2_compile_context_free(cc);
    x->match = pcre2_match_data_create(2, NULL);
    return x;
}

void fl_abcd_extractor_free(fl_abcd_extractor *x)
{
    if (!x)
        return;
    for (size_t i = 0; i < NUM_PATTERNS; i++)
        pcre2_code_free(x->re[i]);
    pcre2_match_data_free(x->match);
    free(x);
}

char fl_abcd_extract(fl_abcd_extractor *x, const char *text, size_t len)
{
    /* gpt-oss searches with every pattern and sorts the hits by (priority,
     * length); one hit a pattern makes that the first pattern that hits.
     * When none does, it returns the text's first character (after a
     * leading "**"); that is never a capital A to D, which the last
     * pattern would have taken, so it never scores, and is 0 here. A match
     * error (bad UTF-8, PCRE2's backtracking limit) counts as no match. */
    for (size_t i = 0; i < NUM_PATTERNS; i++) {
        if (pcre2_match(x->re[i], (PCRE2_SPTR)text, len, 0, 0, x->match, NULL) > 1) {
            const PCRE2_SIZE *ov = pcre2_get_ovector_pointer(x->match);
            const char c = text[ov[2]];
            return (char)(c >= 'a' ? c - ('a' - 'A') : c);
        }
    }
    return 0;
}

/* ---- the score ---- */

void fl_eval_score_of(const unsigned char *correct, size_t num_questions, int repeats, fl_eval_score *out)
{
    const size_t n = num_questions * (size_t)repeats;
    double sum = 0;
    for (size_t i = 0; i < n; i++)
        sum += correct[i];
    out->accuracy = n ? sum / (double)n : 0;
    out->sample_std = sqrt(out->accuracy * (1 - out->accuracy)); /* 0/1 values: E[x^2] = E[x] */
    if (num_questions < 2) {
        out->std_error = NAN;
        return;
    }
    double var = 0;
    for (size_t q = 0; q < num_questions; q++) {
        double m = 0;
        for (int r = 0; r < repeats; r++)
            m += correct[(size_t)r * num_questions + q];
        m /= repeats;
        var += (m - out->accuracy) * (m - out->accuracy);
    }
    var /= (double)(num_questions - 1);
    out->std_error = sqrt(var / (double)num_questions);
}
