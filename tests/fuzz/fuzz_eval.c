/* fuzz_eval.c - what `flashlm bench eval` reads from outside: a CSV file
 * (base/csv.c, then the GPQA columns of bench/gpqa.c) and a reply's text
 * (the answer extraction). Any bytes give records or an error, never a
 * crash; records written back as RFC 4180 (every field quoted) parse to
 * the same fields; an extracted answer is one of A to D or none. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/csv.h"
#include "base/strbuf.h"
#include "bench/gpqa.h"

static void round_trip(const fl_csv *c)
{
    fl_strbuf out = { 0 };
    for (size_t r = 0; r <= c->num_rows; r++) {
        for (size_t k = 0; k < c->num_cols; k++) {
            size_t len;
            const char *f = fl_csv_field(c, r, k, &len);
            fl_strbuf_append_str(&out, k ? ",\"" : "\"");
            for (size_t i = 0; i < len; i++)
                fl_strbuf_append(&out, f[i] == '"' ? "\"\"" : &f[i], f[i] == '"' ? 2 : 1);
            fl_strbuf_append_char(&out, '"');
        }
        fl_strbuf_append_str(&out, r % 2 ? "\r\n" : "\n");
    }
    fl_csv again;
    fl_error err;
    if (fl_csv_parse(&again, out.data, out.len, &err) != 0 || again.num_rows != c->num_rows ||
        again.num_cols != c->num_cols)
        __builtin_trap();
    for (size_t r = 0; r <= c->num_rows; r++) {
        for (size_t k = 0; k < c->num_cols; k++) {
            size_t a, b;
            const char *x = fl_csv_field(c, r, k, &a), *y = fl_csv_field(&again, r, k, &b);
            if (a != b || memcmp(x, y, a) != 0 || x[a] != '\0')
                __builtin_trap();
        }
    }
    fl_csv_free(&again);
    fl_strbuf_free(&out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static fl_abcd_extractor *x;
    if (!x)
        x = fl_abcd_extractor_new();
    const char c = fl_abcd_extract(x, (const char *)data, size);
    if (c != 0 && (c < 'A' || c > 'D'))
        __builtin_trap();

    fl_csv csv;
    fl_error err;
    if (fl_csv_parse(&csv, (const char *)data, size, &err) == 0) {
        round_trip(&csv);
        fl_csv_free(&csv);
    } else if (strncmp(err.msg, "line ", 5) != 0) {
        __builtin_trap(); /* every CSV error names its line */
    }

    fl_gpqa g;
    if (fl_gpqa_load(&g, (const char *)data, size, &err) == 0) {
        fl_strbuf p = { 0 };
        for (size_t q = 0; q < g.num_questions; q++) {
            int perm[4];
            fl_gpqa_permutation(1, q, 0, perm);
            const char letter = fl_gpqa_correct_letter(&g.q[q], perm);
            if (letter < 'A' || letter > 'D')
                __builtin_trap();
            fl_strbuf_clear(&p);
            fl_gpqa_prompt(&g.q[q], perm, &p);
        }
        fl_strbuf_free(&p);
        fl_gpqa_free(&g);
    }
    return 0;
}
