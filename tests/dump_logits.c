/* dump_logits.c - the CUDA runner's logits at chosen positions of one prompt
 * (GPU only), for tools/model_parity.py to compare with HF transformers.
 *
 * usage: dump_logits [--chunk N] [--decode N] [--block-size B] [--positions FILE]
 *                    [--attention-backend NAME] [--kv-cache-dtype bf16|fp8]
 *                    [--tensor-parallel-size N] MODEL_DIR IDS_FILE OUT_FILE
 *
 * IDS_FILE holds the prompt as raw int32. All but its last --decode positions
 * run as chunked prefill over the paged cache, --chunk tokens a step, each
 * chunk asking logits only for the listed positions it holds; the last
 * --decode positions then run one token a step, as serving runs decode: a
 * step of one token, one sequence and one logit row is replayed from the
 * runner's CUDA decode graph. KV blocks are handed out last block first, so
 * a paging bug cannot hide behind contiguous blocks. FILE lists the
 * positions (raw int32, ascending) whose logits OUT_FILE gets, as
 * (listed positions, vocab) float32 in position order; without it, every
 * position. --attention-backend names the CUDA backend (default auto).
 * --tensor-parallel-size N splits the model over N ranks sharing GPU 0
 * (fl_cuda_runner_init_parallel: the local group, so no CUDA graphs, the
 * decode steps run eagerly), which checks the sharding at full width on a
 * machine of one GPU. Only
 * the runner's public API is used, so a change to the forward pass behind
 * it is judged by the same tool. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "attention/backend.h"
#include "base/mapped_file.h"
#include "cuda/cuda_runner.h"
#include "model/model.h"

static const char usage[] =
    "usage: dump_logits [--chunk N] [--decode N] [--block-size B] [--positions FILE]\n"
    "                   [--attention-backend NAME] [--kv-cache-dtype bf16|fp8] [--tensor-parallel-size N]\n"
    "                   MODEL_DIR IDS_FILE OUT_FILE\n"
    "  --chunk N         prefill chunk size in tokens (default 256)\n"
    "  --decode N        run the last N positions as one-token decode steps (default 0)\n"
    "  --block-size B    KV cache block size (default 128)\n"
    "  --positions FILE  raw int32 positions, ascending, whose logits to write (default: all)\n"
    "  --attention-backend NAME  the CUDA attention backend (default auto)\n"
    "  --kv-cache-dtype T  the KV cache: bf16 (default) or fp8 (float8 e4m3, scales 1.0)\n"
    "  --tensor-parallel-size N  the model split over N ranks on GPU 0 (default 1)\n";

/* Longest prompt (and position list): the longest context a config may declare. */
#define MAX_ENTRIES (1 << 24)

typedef struct args {
    int chunk, decode, block_size, tp;
    const char *positions, *model, *ids, *out;
    const char *backend; /* the CUDA attention backend, or auto */
    fl_dtype kv_dtype;   /* the KV cache's */
} args;

/* text as an int in [lo, hi]: 0, or -1 with a message naming the flag. */
static int parse_int(const char *flag, const char *text, long lo, long hi, int *out)
{
    char *end;
    errno = 0;
    const long v = strtol(text, &end, 10);
    if (errno != 0 || end == text || *end != '\0' || v < lo || v > hi) {
        fprintf(stderr, "dump_logits: %s must be an integer in [%ld, %ld], not '%s'\n", flag, lo, hi, text);
        return -1;
    }
    *out = (int)v;
    return 0;
}

static int parse_args(args *a, int argc, char **argv)
{
    static const struct option opts[] = {
        { "chunk", required_argument, NULL, 'c' },
        { "decode", required_argument, NULL, 'd' },
        { "block-size", required_argument, NULL, 'b' },
        { "positions", required_argument, NULL, 'p' },
        { "attention-backend", required_argument, NULL, 'a' },
        { "kv-cache-dtype", required_argument, NULL, 'k' },
        { "tensor-parallel-size", required_argument, NULL, 't' },
        { 0 },
    };
    *a = (args){ .chunk = 256, .block_size = 128, .tp = 1, .kv_dtype = FL_BF16 };
    int opt;
    while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        int bad = 0;
        if (opt == 'c')
            bad = parse_int("--chunk", optarg, 1, 1 << 20, &a->chunk);
        else if (opt == 'd')
            bad = parse_int("--decode", optarg, 0, INT32_MAX, &a->decode);
        else if (opt == 'b')
            bad = parse_int("--block-size", optarg, 1, 1 << 16, &a->block_size);
        else if (opt == 't')
            bad = parse_int("--tensor-parallel-size", optarg, 1, 64, &a->tp);
        else if (opt == 'p')
            a->positions = optarg;
        else if (opt == 'a')
            a->backend = optarg;
        else if (opt == 'k' && (strcmp(optarg, "bf16") == 0 || strcmp(optarg, "fp8") == 0))
            a->kv_dtype = optarg[0] == 'f' ? FL_F8_E4M3 : FL_BF16;
        else if (opt == 'k') {
            fprintf(stderr, "dump_logits: --kv-cache-dtype is bf16 or fp8, not '%s'\n", optarg);
            bad = -1;
        }
        else
            bad = -1; /* getopt_long has named the option */
        if (bad)
            return -1;
    }
    if (argc - optind != 3) {
        fprintf(stderr, "dump_logits: expected MODEL_DIR IDS_FILE OUT_FILE\n");
        return -1;
    }
    a->model = argv[optind];
    a->ids = argv[optind + 1];
    a->out = argv[optind + 2];
    return 0;
}

/* Maps path as a non-empty array of int32; its length goes to *len. */
static const int32_t *map_int32s(fl_mapped_file *f, const char *path, int *len)
{
    fl_error err;
    if (fl_mapped_file_open(f, path, &err) != 0) {
        fprintf(stderr, "dump_logits: %s\n", err.msg);
        return NULL;
    }
    if (f->size == 0 || f->size % sizeof(int32_t) != 0 || f->size / sizeof(int32_t) > MAX_ENTRIES) {
        fprintf(stderr, "dump_logits: %s: %zu bytes is not an array of 1 to %d int32\n", path, f->size,
                MAX_ENTRIES);
        fl_mapped_file_close(f);
        return NULL;
    }
    *len = (int)(f->size / sizeof(int32_t));
    return f->data;
}

static int check_ids(const char *path, const int32_t *ids, int len, int vocab)
{
    for (int i = 0; i < len; i++)
        if (ids[i] < 0 || ids[i] >= vocab) {
            fprintf(stderr, "dump_logits: %s: id %d at position %d is outside the vocabulary (%d)\n", path, ids[i],
                    i, vocab);
            return -1;
        }
    return 0;
}

static int check_positions(const char *path, const int32_t *listed, int n, int len)
{
    for (int i = 0; i < n; i++)
        if (listed[i] < 0 || listed[i] >= len || (i > 0 && listed[i] <= listed[i - 1])) {
            fprintf(stderr, "dump_logits: %s: entry %d (%d) is not ascending within the %d-token prompt\n", path, i,
                    listed[i], len);
            return -1;
        }
    return 0;
}

/* The most listed positions one prefill chunk holds: the logit rows a step asks. */
static int max_rows_per_chunk(const int32_t *listed, int n, int prefill, int chunk)
{
    int most = 0;
    for (int i = 0, at = 0; at < prefill; at += chunk) {
        int rows = 0;
        for (; i < n && listed[i] < at + chunk && listed[i] < prefill; i++)
            rows++;
        most = rows > most ? rows : most;
    }
    return most;
}

static int write_rows(FILE *out, const float *logits, int rows, int vocab, const char *path)
{
    if (fwrite(logits, sizeof(float) * (size_t)vocab, (size_t)rows, out) != (size_t)rows) {
        fprintf(stderr, "dump_logits: cannot write %s\n", path);
        return -1;
    }
    return 0;
}

/* Runs the prompt as described at the top and writes the listed rows. */
static int run(fl_model_runner *r, const args *a, const int32_t *ids, int len, const int32_t *listed,
               int num_listed, int max_rows, int num_blocks, FILE *out)
{
    const int vocab = r->vocab_size, prefill = len - a->decode, G = r->kv_groups->num_groups;
    int32_t *table = malloc((size_t)num_blocks * G * sizeof(int32_t)); /* [G, num_blocks]: one per group */
    int32_t *pos = malloc((size_t)a->chunk * sizeof(int32_t)), *slots = malloc((size_t)a->chunk * G * sizeof(int32_t));
    int32_t query_start[2] = { 0, 0 }, seq_len[1];
    int32_t *rows = malloc((size_t)(max_rows > 0 ? max_rows : 1) * sizeof(int32_t));
    float *logits = malloc((size_t)(max_rows > 0 ? max_rows : 1) * vocab * sizeof(float));
    /* blocks 1 .. num_blocks G, last first: block 0 is the null block of
     * a windowed group (model/batch.h), never a sequence's */
    for (int g = 0; g < G; g++)
        for (int i = 0; i < num_blocks; i++)
            table[g * num_blocks + i] = num_blocks * G - (i * G + g);
    const int bs = a->block_size;
    fl_batch b = { .num_kv_groups = G, .slots = slots, .num_seqs = 1, .query_start = query_start, .seq_lens = seq_len,
                   .max_blocks_per_seq = num_blocks, .block_tables = table, .positions = pos, .logit_rows = rows };
    int next = 0, rc = 0;
    for (int at = 0; at < prefill && rc == 0; at += a->chunk) {
        const int n = prefill - at < a->chunk ? prefill - at : a->chunk;
        b.num_tokens = n;
        b.token_ids = ids + at;
        for (int i = 0; i < n; i++) {
            pos[i] = at + i;
            for (int g = 0; g < G; g++)
                slots[i * G + g] = fl_batch_slot(table + g * num_blocks, bs, at + i);
        }
        query_start[1] = n;
        seq_len[0] = at + n;
        b.num_logits = 0;
        for (; next < num_listed && listed[next] < at + n; next++)
            rows[b.num_logits++] = listed[next] - at;
        r->forward(r->impl, &b, logits);
        rc = write_rows(out, logits, b.num_logits, vocab, a->out);
    }
    /* decode steps: the one row is always computed, as a served decode's is */
    b.num_tokens = b.num_logits = 1;
    rows[0] = 0;
    for (int p = prefill; p < len && rc == 0; p++) {
        b.token_ids = ids + p;
        pos[0] = p;
        for (int g = 0; g < G; g++)
            slots[g] = fl_batch_slot(table + g * num_blocks, bs, p);
        query_start[1] = 1;
        seq_len[0] = p + 1;
        r->forward(r->impl, &b, logits);
        if (next < num_listed && listed[next] == p) {
            rc = write_rows(out, logits, 1, vocab, a->out);
            next++;
        }
    }
    if (rc == 0)
        fprintf(stderr, "dump_logits: %d tokens: prefill of %d in chunks of %d, %d decode steps, block size %d; "
                "%d rows of %d logits written\n", len, prefill, a->chunk, len - prefill, a->block_size, num_listed,
                vocab);
    free(table), free(pos), free(slots), free(rows), free(logits);
    return rc;
}

/* Loads the model and runs the prompt into a.out: 0, or 1 with a message. */
static int dump(const args *a, const int32_t *ids, int len, const int32_t *listed, int num_listed)
{
    fl_error err;
    fl_model m;
    if (fl_model_load(&m, a->model, FL_LOAD_AUTO, 0, &err) != 0) {
        fprintf(stderr, "dump_logits: %s\n", err.msg);
        return 1;
    }
    int rc = 1;
    const int bs = a->block_size, num_blocks = (len + bs - 1) / bs, prefill = len - a->decode;
    fl_kv_groups groups;
    fl_kv_groups_init(&groups, &m.cfg);
    const int max_rows = max_rows_per_chunk(listed, num_listed, prefill, a->chunk);
    int cc;
    const fl_attn_backend *attn = NULL;
    if (fl_cuda_device_cc(&cc, &err) == 0) {
        const fl_attn_needs needs = fl_attn_needs_of(&m.cfg, FL_DEVICE_CUDA, cc, bs, a->kv_dtype);
        attn = fl_attn_backend_select(a->backend, &needs, &err);
    }
    const fl_runner_opts o = {
        .attn = attn, .max_tokens = prefill == 0 ? 1 : prefill < a->chunk ? prefill : a->chunk, .max_context = num_blocks * bs,
        .max_seqs = max_rows > 0 ? max_rows : 1, .block_size = bs, .num_blocks = num_blocks * groups.num_groups + 1,
        .gpu_memory_utilization = 0.9f, .kv_dtype = a->kv_dtype,
    };
    fl_model_runner r;
    FILE *out;
    if (check_ids(a->ids, ids, len, m.cfg.vocab_size) != 0) {
        rc = 2;
    } else if (!attn) {
        fprintf(stderr, "dump_logits: %s\n", err.msg);
    } else if (fl_cuda_runner_init_parallel(&r, &m.cfg, &m.weights, &o, a->tp, &err) != 0) {
        fprintf(stderr, "dump_logits: %s\n", err.msg);
    } else {
        if (!(out = fopen(a->out, "wb"))) {
            fprintf(stderr, "dump_logits: cannot create %s: %s\n", a->out, strerror(errno));
        } else {
            rc = run(&r, a, ids, len, listed, num_listed, max_rows, num_blocks, out);
            if (fclose(out) != 0 && rc == 0) {
                fprintf(stderr, "dump_logits: cannot write %s\n", a->out);
                rc = 1;
            }
        }
        r.destroy(r.impl);
    }
    fl_model_free(&m);
    return rc;
}

int main(int argc, char **argv)
{
    args a;
    if (parse_args(&a, argc, argv) != 0) {
        fputs(usage, stderr);
        return 2;
    }
    fl_mapped_file ids_file, pos_file;
    int len, num_listed = 0;
    const int32_t *ids = map_int32s(&ids_file, a.ids, &len), *listed = NULL;
    if (!ids)
        return 2;
    if (a.positions && !(listed = map_int32s(&pos_file, a.positions, &num_listed))) {
        fl_mapped_file_close(&ids_file);
        return 2;
    }
    int32_t *all = NULL;
    if (!listed) {
        all = malloc((size_t)len * sizeof(int32_t));
        for (int i = 0; i < len; i++)
            all[i] = i;
        listed = all;
        num_listed = len;
    }
    int rc = 2;
    if (a.decode > len)
        fprintf(stderr, "dump_logits: --decode %d exceeds the %d-token prompt\n", a.decode, len);
    else if (check_positions(a.positions ? a.positions : "positions", listed, num_listed, len) == 0)
        rc = dump(&a, ids, len, listed, num_listed);
    free(all);
    if (a.positions)
        fl_mapped_file_close(&pos_file);
    fl_mapped_file_close(&ids_file);
    return rc;
}
