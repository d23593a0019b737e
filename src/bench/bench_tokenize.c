/* bench_tokenize.c - `flashlm bench tokenize DIR CORPUS`: encoding speed.
 *
 * Encodes every document of CORPUS (u32 little-endian length + bytes
 * records) on one thread and prints MB/s of input. Each pass starts with a
 * fresh scratch (an empty word cache), so no pass profits from the one
 * before; the best of --passes is reported. Compare with
 * tests/js/bench_tokenize.mjs on the same file (tools/bench_tokenize.sh). */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "base/clock.h"
#include "base/mapped_file.h"
#include "bench/bench.h"
#include "cli/cli.h"
#include "tokenizer/tokenizer.h"

/* One pass over the corpus; returns seconds, adds up bytes and tokens. */
static double encode_pass(const fl_tokenizer *tok, const fl_mapped_file *f, size_t *docs,
                          size_t *bytes, size_t *tokens)
{
    fl_tok_scratch s;
    fl_tok_scratch_init(&s, tok);
    fl_ids ids = { 0 };
    const unsigned char *p = f->data;
    *docs = *bytes = *tokens = 0;
    double start = fl_now_seconds();
    for (size_t at = 0; at + 4 <= f->size;) {
        size_t n = (size_t)p[at] | (size_t)p[at + 1] << 8 | (size_t)p[at + 2] << 16 |
                   (size_t)p[at + 3] << 24;
        if (n > f->size - at - 4)
            break;
        ids.len = 0;
        fl_tokenizer_encode(tok, &s, (const char *)p + at + 4, n, 0, &ids);
        *tokens += ids.len;
        *bytes += n;
        (*docs)++;
        at += 4 + n;
    }
    double secs = fl_now_seconds() - start;
    fl_ids_free(&ids);
    fl_tok_scratch_free(&s);
    return secs;
}

int fl_bench_tokenize(int argc, char **argv)
{
    static const struct option opts[] = {
        { "passes", required_argument, NULL, 'p' },
        { "help", no_argument, NULL, 'h' },
        { 0 },
    };
    fl_error err;
    long long passes = 3;
    int opt;
    optind = 0;
    while ((opt = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        if (opt == 'h') {
            puts("usage: flashlm bench tokenize TOKENIZER_DIR CORPUS [--passes N]");
            return 0;
        }
        if (opt != 'p') {
            fl_cli_bad_option(&err, "bench tokenize", opt, argv, optind);
            goto fail;
        }
        if (fl_cli_int("--passes", optarg, 1, 1000, &passes, &err) != 0)
            goto fail;
    }
    if (optind + 2 != argc) {
        fl_fail(&err, "give a tokenizer directory and a corpus file");
        goto fail;
    }
    fl_tokenizer tok;
    if (fl_tokenizer_load(&tok, argv[optind], &err) != 0)
        goto fail;
    fl_mapped_file corpus;
    if (fl_mapped_file_open(&corpus, argv[optind + 1], &err) != 0) {
        fl_tokenizer_free(&tok);
        goto fail;
    }
    double best = 1e30;
    size_t docs = 0, bytes = 0, tokens = 0;
    for (long long i = 0; i < passes; i++) {
        double secs = encode_pass(&tok, &corpus, &docs, &bytes, &tokens);
        if (secs < best)
            best = secs;
    }
    printf("flashlm: %zu documents, %.2f MB, %zu tokens, %.3f s, %.2f MB/s (best of %lld passes)\n",
           docs, (double)bytes / 1e6, tokens, best, (double)bytes / 1e6 / best, passes);
    fl_mapped_file_close(&corpus);
    fl_tokenizer_free(&tok);
    return 0;
fail:
    fprintf(stderr, "flashlm bench tokenize: %s\n", err.msg);
    return 1;
}
