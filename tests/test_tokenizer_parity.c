/* test_tokenizer_parity.c TOKENIZER_DIR CASES_DIR - flashlm's tokenizer
 * against the reference (tests/js/tokenizer_parity.mjs writes CASES_DIR).
 *
 * For every case: encode with and without special tokens, decode with and
 * without skip_special_tokens, and streaming decode (one id at a time: the
 * pieces concatenate to the full decode and each is valid UTF-8). Then the
 * decodes of random id sequences. Any mismatch fails and prints the first
 * differing case. Ends with "N passed, N failed". */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/strbuf.h"
#include "base/utf8.h"
#include "tokenizer/tokenizer.h"

static int failures, passes;

static void print_escaped(const char *what, const char *s, size_t n)
{
    fprintf(stderr, "  %s (%zu bytes): \"", what, n);
    for (size_t i = 0; i < n && i < 400; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c < 0x7f && c != '"' && c != '\\')
            fputc(c, stderr);
        else
            fprintf(stderr, "\\x%02x", c);
    }
    fprintf(stderr, n > 400 ? "\"...\n" : "\"\n");
}

static void print_ids(const char *what, const int32_t *ids, size_t n)
{
    fprintf(stderr, "  %s:", what);
    for (size_t i = 0; i < n && i < 60; i++)
        fprintf(stderr, " %d", ids[i]);
    fprintf(stderr, n > 60 ? " ...\n" : "\n");
}

/* Compares ids with a JSON array; reports the first failure only. */
static int same_ids(const fl_ids *got, json_t *want)
{
    if (!json_is_array(want) || json_array_size(want) != got->len)
        return 0;
    for (size_t i = 0; i < got->len; i++)
        if (json_integer_value(json_array_get(want, i)) != got->data[i])
            return 0;
    return 1;
}

static int32_t *json_ids(json_t *arr, size_t *n)
{
    *n = json_array_size(arr);
    int32_t *ids = malloc((*n + 1) * sizeof(int32_t));
    for (size_t i = 0; i < *n; i++)
        ids[i] = (int32_t)json_integer_value(json_array_get(arr, i));
    return ids;
}

static int same_text(const fl_strbuf *got, json_t *want)
{
    return json_is_string(want) && json_string_length(want) == got->len &&
           memcmp(json_string_value(want), got->data ? got->data : "", got->len) == 0;
}

/* Streams ids one at a time; checks pieces against the full decode. */
static int stream_matches(const fl_tokenizer *t, const int32_t *ids, size_t n, int skip,
                          const fl_strbuf *full)
{
    fl_detokenizer d;
    fl_detokenizer_init(&d, t, skip);
    fl_strbuf all = { 0 }, piece = { 0 };
    int ok = 1;
    for (size_t i = 0; i <= n; i++) {
        fl_strbuf_clear(&piece);
        if (i < n)
            fl_detokenizer_push(&d, ids[i], &piece);
        else
            fl_detokenizer_finish(&d, &piece);
        ok &= fl_utf8_valid(piece.data, piece.len);
        fl_strbuf_append(&all, piece.data, piece.len);
    }
    ok &= all.len == full->len && memcmp(all.data, full->data, all.len) == 0;
    fl_strbuf_free(&all);
    fl_strbuf_free(&piece);
    fl_detokenizer_free(&d);
    return ok;
}

static void check_case(const fl_tokenizer *t, fl_tok_scratch *s, size_t index, const char *text,
                       size_t len, json_t *want)
{
    fl_ids ids = { 0 }, ids_special = { 0 };
    fl_strbuf dec = { 0 }, dec_skip = { 0 };
    fl_tokenizer_encode(t, s, text, len, 0, &ids);
    fl_tokenizer_encode(t, s, text, len, 1, &ids_special);
    fl_tokenizer_decode(t, ids.data, ids.len, 0, &dec);
    fl_tokenizer_decode(t, ids.data, ids.len, 1, &dec_skip);
    const char *what = NULL;
    if (!same_ids(&ids, json_object_get(want, "ids")))
        what = "encode";
    else if (!same_ids(&ids_special, json_object_get(want, "ids_special")))
        what = "encode with add_special_tokens";
    else if (!same_text(&dec, json_object_get(want, "text")))
        what = "decode";
    else if (!same_text(&dec_skip, json_object_get(want, "text_skip")))
        what = "decode with skip_special_tokens";
    else if (!stream_matches(t, ids.data, ids.len, 0, &dec) ||
             !stream_matches(t, ids.data, ids.len, 1, &dec_skip))
        what = "streaming decode";
    if (!what) {
        passes++;
    } else if (failures++ == 0) {
        fprintf(stderr, "case %zu: %s differs from the reference\n", index, what);
        print_escaped("input", text, len);
        print_ids("flashlm", ids.data, ids.len);
        size_t n;
        int32_t *ref = json_ids(json_object_get(want, "ids"), &n);
        print_ids("reference", ref, n);
        free(ref);
        print_escaped("flashlm decode", dec.data, dec.len);
    }
    fl_ids_free(&ids);
    fl_ids_free(&ids_special);
    fl_strbuf_free(&dec);
    fl_strbuf_free(&dec_skip);
}

static json_t *next_line(FILE *f, char **line, size_t *cap)
{
    if (getline(line, cap, f) < 0)
        return NULL;
    json_error_t jerr;
    return json_loads(*line, JSON_ALLOW_NUL, &jerr);
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: %s TOKENIZER_DIR CASES_DIR\n", argv[0]);
        return 2;
    }
    fl_tokenizer tok;
    fl_error err;
    if (fl_tokenizer_load(&tok, argv[1], &err) != 0) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    fl_tok_scratch scratch;
    fl_tok_scratch_init(&scratch, &tok);
    char path[4096];
    snprintf(path, sizeof path, "%s/corpus.bin", argv[2]);
    FILE *corpus = fopen(path, "rb");
    snprintf(path, sizeof path, "%s/expected.jsonl", argv[2]);
    FILE *expected = fopen(path, "r");
    snprintf(path, sizeof path, "%s/decode.jsonl", argv[2]);
    FILE *decodes = fopen(path, "r");
    if (!corpus || !expected || !decodes) {
        fprintf(stderr, "missing case files in %s (run tests/js/tokenizer_parity.mjs)\n", argv[2]);
        return 1;
    }
    char *line = NULL, *text = NULL;
    size_t cap = 0, text_cap = 0;
    unsigned char lenb[4];
    for (size_t i = 0; fread(lenb, 1, 4, corpus) == 4; i++) {
        size_t len = (size_t)lenb[0] | (size_t)lenb[1] << 8 | (size_t)lenb[2] << 16 |
                     (size_t)lenb[3] << 24;
        if (len + 1 > text_cap)
            text = realloc(text, text_cap = len + 1);
        json_t *want = next_line(expected, &line, &cap);
        if (fread(text, 1, len, corpus) != len || !want) {
            fprintf(stderr, "case files out of step at case %zu\n", i);
            return 1;
        }
        check_case(&tok, &scratch, i, text, len, want);
        json_decref(want);
    }
    size_t decode_cases = 0;
    json_t *want;
    while ((want = next_line(decodes, &line, &cap)) != NULL) {
        size_t n;
        int32_t *ids = json_ids(json_object_get(want, "ids"), &n);
        fl_strbuf got = { 0 };
        fl_tokenizer_decode(&tok, ids, n, 0, &got);
        if (same_text(&got, json_object_get(want, "text")) && stream_matches(&tok, ids, n, 0, &got)) {
            passes++;
        } else if (failures++ == 0) {
            fprintf(stderr, "decode case %zu differs from the reference\n", decode_cases);
            print_ids("ids", ids, n);
            print_escaped("flashlm", got.data, got.len);
        }
        decode_cases++;
        fl_strbuf_free(&got);
        free(ids);
        json_decref(want);
    }
    free(line);
    free(text);
    fclose(corpus);
    fclose(expected);
    fclose(decodes);
    fl_tok_scratch_free(&scratch);
    fl_tokenizer_free(&tok);
    printf("%d passed, %d failed\n", passes, failures);
    return failures == 0 && passes > 0 ? 0 : 1;
}
