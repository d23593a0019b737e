/* cmd_tokenize.c - `flashlm tokenize DIR`: text on stdin to ids, or back.
 *
 * DIR is a model or tokenizer directory (tokenizer.json). Encoding prints a
 * JSON array of ids; --decode reads a JSON array of ids and prints the text.
 * Scripts and tests use it to check flashlm's tokenizer against others. */
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>

#include "base/strbuf.h"
#include "cli/cli.h"
#include "tokenizer/tokenizer.h"

static const char tokenize_help[] =
    "usage: flashlm tokenize DIR [options] < input\n"
    "Encodes text from stdin with DIR/tokenizer.json and prints a JSON array of ids.\n\n"
    "  --add-special-tokens   apply the post-processor template (e.g. a BOS token)\n"
    "  --decode               read a JSON array of ids instead and print their text\n"
    "  --skip-special-tokens  with --decode: leave special tokens out\n";

enum { OPT_ADD_SPECIAL = 1, OPT_DECODE, OPT_SKIP_SPECIAL };

static void read_stdin(fl_strbuf *in)
{
    char buf[65536];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, stdin)) > 0)
        fl_strbuf_append(in, buf, n);
}

static int decode_ids(const fl_tokenizer *tok, const fl_strbuf *in, int skip_special,
                      fl_error *err)
{
    json_error_t jerr;
    json_t *arr = json_loadb(in->data ? in->data : "", in->len, 0, &jerr);
    if (!json_is_array(arr)) {
        json_decref(arr);
        return fl_fail(err, "--decode: stdin is not a JSON array of ids");
    }
    int32_t *ids = malloc((json_array_size(arr) + 1) * sizeof(int32_t));
    size_t i;
    json_t *v;
    json_array_foreach(arr, i, v) {
        if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) > INT32_MAX) {
            free(ids);
            json_decref(arr);
            return fl_fail(err, "--decode: element %zu is not a token id", i);
        }
        ids[i] = (int32_t)json_integer_value(v);
    }
    fl_strbuf text = { 0 };
    fl_tokenizer_decode(tok, ids, json_array_size(arr), skip_special, &text);
    fwrite(text.data ? text.data : "", 1, text.len, stdout);
    fl_strbuf_free(&text);
    free(ids);
    json_decref(arr);
    return 0;
}

static void encode_text(const fl_tokenizer *tok, const fl_strbuf *in, int add_special)
{
    fl_tok_scratch scratch;
    fl_tok_scratch_init(&scratch, tok);
    fl_ids ids = { 0 };
    fl_tokenizer_encode(tok, &scratch, in->data ? in->data : "", in->len, add_special, &ids);
    putchar('[');
    for (size_t i = 0; i < ids.len; i++)
        printf(i ? ", %d" : "%d", ids.data[i]);
    puts("]");
    fl_ids_free(&ids);
    fl_tok_scratch_free(&scratch);
}

int fl_cmd_tokenize(int argc, char **argv)
{
    static const struct option opts[] = {
        { "add-special-tokens", no_argument, NULL, OPT_ADD_SPECIAL },
        { "decode", no_argument, NULL, OPT_DECODE },
        { "skip-special-tokens", no_argument, NULL, OPT_SKIP_SPECIAL },
        { "help", no_argument, NULL, 'h' },
        { 0 },
    };
    int add_special = 0, decode = 0, skip_special = 0, opt;
    fl_error err;
    optind = 0;
    while ((opt = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        switch (opt) {
        case 'h':
            fputs(tokenize_help, stdout);
            return 0;
        case OPT_ADD_SPECIAL: add_special = 1; break;
        case OPT_DECODE: decode = 1; break;
        case OPT_SKIP_SPECIAL: skip_special = 1; break;
        default:
            fl_cli_bad_option(&err, "tokenize", opt, argv, optind);
            goto fail;
        }
    }
    if (optind + 1 != argc) {
        fl_fail(&err, "give exactly one tokenizer or model directory");
        goto fail;
    }
    fl_tokenizer tok;
    if (fl_tokenizer_load(&tok, argv[optind], &err) != 0)
        goto fail;
    fl_strbuf in = { 0 };
    read_stdin(&in);
    int rc = 0;
    if (decode)
        rc = decode_ids(&tok, &in, skip_special, &err);
    else
        encode_text(&tok, &in, add_special);
    fl_strbuf_free(&in);
    fl_tokenizer_free(&tok);
    if (rc == 0)
        return 0;
fail:
    fprintf(stderr, "flashlm tokenize: %s\n", err.msg);
    return 1;
}
