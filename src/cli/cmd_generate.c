/* cmd_generate.c - `flashlm generate`: offline greedy generation on the CPU.
 *
 * Prompts are token ids, from --prompt-ids (repeatable) and/or a file with
 * one prompt a line; all run together in one batch, and each prompt's new
 * ids are printed as a JSON array on its own line, in input order. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "cli/cli.h"
#include "cpu/cpu_kv_cache.h"
#include "cpu/cpu_model.h"
#include "engine/greedy_runner.h"

static const char generate_help[] =
    "usage: flashlm generate MODEL [options]\n"
    "Greedy generation from token ids; prints one JSON array of new ids per prompt.\n\n"
    FL_MODEL_OPTS_HELP
    "  --prompt-ids IDS       a prompt as token ids: \"1,2,3\" or \"[1, 2, 3]\" (repeatable)\n"
    "  --prompts-file FILE    one prompt of token ids a line (blank lines skipped)\n"
    "  --max-tokens N         new tokens per prompt (default 16)\n"
    "  --block-size N         KV cache block size: 16, 32, 64 or 128 (default 128)\n"
    "  --max-num-batched-tokens N\n"
    "                         tokens per model step; longer prompts are chunked\n"
    "                         (default 2048)\n";

enum { OPT_PROMPT_IDS = FL_OPT_FIRST_OWN, OPT_PROMPTS_FILE, OPT_MAX_TOKENS, OPT_BLOCK_SIZE,
       OPT_MAX_BATCHED };

typedef struct prompt_list {
    int count;
    int32_t **ids;
    int *lens;
} prompt_list;

/* Parses integers separated by commas, spaces or brackets. Returns the count
 * (0 for a blank line) or -1 with an error naming where. */
static int parse_ids(const char *text, const char *where, prompt_list *pl, fl_error *err)
{
    int cap = 16, n = 0;
    int32_t *ids = fl_malloc((size_t)cap * sizeof(int32_t));
    for (const char *p = text; *p;) {
        if (strchr(" \t\r\n,[]", *p)) {
            p++;
            continue;
        }
        char *end;
        errno = 0;
        long long v = strtoll(p, &end, 10);
        if (end == p || errno != 0 || v < 0 || v > INT32_MAX) {
            free(ids);
            return fl_fail(err, "%s: '%.*s' is not a token id", where,
                           (int)strcspn(p, " \t\r\n,[]"), p);
        }
        if (n == cap)
            ids = fl_realloc(ids, (size_t)(cap *= 2) * sizeof(int32_t));
        ids[n++] = (int32_t)v;
        p = end;
    }
    if (n == 0) {
        free(ids);
        return 0;
    }
    pl->ids = fl_realloc(pl->ids, (size_t)(pl->count + 1) * sizeof(int32_t *));
    pl->lens = fl_realloc(pl->lens, (size_t)(pl->count + 1) * sizeof(int));
    pl->ids[pl->count] = ids;
    pl->lens[pl->count++] = n;
    return n;
}

static int read_prompts_file(const char *path, prompt_list *pl, fl_error *err)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return fl_fail(err, "--prompts-file: %s: %s", path, strerror(errno));
    char *line = NULL;
    size_t cap = 0;
    int lineno = 0, rc = 0;
    while (rc == 0 && getline(&line, &cap, f) != -1) {
        char where[512];
        snprintf(where, sizeof where, "%s:%d", path, ++lineno);
        rc = parse_ids(line, where, pl, err) < 0 ? -1 : 0;
    }
    free(line);
    fclose(f);
    return rc;
}

static void free_prompts(prompt_list *pl)
{
    for (int i = 0; i < pl->count; i++)
        free(pl->ids[i]);
    free(pl->ids);
    free(pl->lens);
}

typedef struct generate_opts {
    fl_model_opts model;
    prompt_list prompts;
    int max_tokens;
    int block_size;
    int max_batched;
} generate_opts;

static int parse_args(generate_opts *o, int argc, char **argv, fl_error *err)
{
    static const struct option opts[] = {
        { "model", required_argument, NULL, FL_OPT_MODEL },
        { "load-format", required_argument, NULL, FL_OPT_LOAD_FORMAT },
        { "seed", required_argument, NULL, FL_OPT_SEED },
        { "prompt-ids", required_argument, NULL, OPT_PROMPT_IDS },
        { "prompts-file", required_argument, NULL, OPT_PROMPTS_FILE },
        { "max-tokens", required_argument, NULL, OPT_MAX_TOKENS },
        { "block-size", required_argument, NULL, OPT_BLOCK_SIZE },
        { "max-num-batched-tokens", required_argument, NULL, OPT_MAX_BATCHED },
        { "help", no_argument, NULL, 'h' },
        { 0 },
    };
    long long v;
    int opt;
    optind = 0;
    while ((opt = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        int taken = fl_model_opts_take(&o->model, opt, optarg, err);
        if (taken < 0)
            return -1;
        if (taken)
            continue;
        switch (opt) {
        case 'h':
            fputs(generate_help, stdout);
            return 1;
        case OPT_PROMPT_IDS:
            if (parse_ids(optarg, "--prompt-ids", &o->prompts, err) < 0)
                return -1;
            break;
        case OPT_PROMPTS_FILE:
            if (read_prompts_file(optarg, &o->prompts, err) != 0)
                return -1;
            break;
        case OPT_MAX_TOKENS:
            if (fl_cli_int("--max-tokens", optarg, 1, 1 << 20, &v, err) != 0)
                return -1;
            o->max_tokens = (int)v;
            break;
        case OPT_BLOCK_SIZE:
            if (fl_cli_int("--block-size", optarg, 16, 128, &v, err) != 0)
                return -1;
            if (v != 16 && v != 32 && v != 64 && v != 128)
                return fl_fail(err, "--block-size: %lld is not one of 16, 32, 64, 128", v);
            o->block_size = (int)v;
            break;
        case OPT_MAX_BATCHED:
            if (fl_cli_int("--max-num-batched-tokens", optarg, 1, 1 << 20, &v, err) != 0)
                return -1;
            o->max_batched = (int)v;
            break;
        default:
            return fl_cli_bad_option(err, "generate", opt, argv, optind);
        }
    }
    if (fl_model_opts_finish(&o->model, argc, argv, optind, err) != 0)
        return -1;
    if (o->prompts.count == 0)
        return fl_fail(err, "no prompts (give --prompt-ids or --prompts-file)");
    return 0;
}

/* Checks the prompts against the model; returns the longest context. */
static int check_prompts(const generate_opts *o, const fl_model_config *cfg, int *max_context,
                         fl_error *err)
{
    *max_context = 0;
    for (int i = 0; i < o->prompts.count; i++) {
        for (int k = 0; k < o->prompts.lens[i]; k++)
            if (o->prompts.ids[i][k] >= cfg->vocab_size)
                return fl_fail(err, "prompt %d: token id %d is not below the vocab size %d", i + 1,
                               o->prompts.ids[i][k], cfg->vocab_size);
        int ctx = o->prompts.lens[i] + o->max_tokens;
        if (ctx > cfg->max_position_embeddings)
            return fl_fail(err, "prompt %d: %d tokens + --max-tokens %d exceed the model's "
                           "max_position_embeddings %d", i + 1, o->prompts.lens[i], o->max_tokens,
                           cfg->max_position_embeddings);
        if (ctx > *max_context)
            *max_context = ctx;
    }
    return 0;
}

static void print_ids(const int32_t *ids, int n)
{
    putchar('[');
    for (int i = 0; i < n; i++)
        printf(i ? ", %d" : "%d", ids[i]);
    puts("]");
}

int fl_cmd_generate(int argc, char **argv)
{
    generate_opts o = { .max_tokens = 16, .block_size = 128, .max_batched = 2048 };
    fl_error err = { "" };
    fl_model m = { 0 };
    int rc = parse_args(&o, argc, argv, &err), max_context = 0;
    if (rc == 0 && fl_model_load(&m, o.model.model, o.model.format, o.model.seed, &err) != 0)
        rc = -1;
    if (rc == 0)
        rc = check_prompts(&o, &m.cfg, &max_context, &err);
    if (rc != 0) {
        if (rc < 0)
            fprintf(stderr, "flashlm generate: %s\n", err.msg);
        fl_model_free(&m);
        free_prompts(&o.prompts);
        return rc < 0 ? 1 : 0;
    }
    fl_cpu_model cpu;
    fl_cpu_model_init(&cpu, &m.cfg, &m.weights, o.max_batched, max_context);
    fl_model_free(&m); /* the CPU model holds its own float32 copy */
    fl_cpu_kv_cache kv;
    fl_cpu_kv_cache_init(&kv, &cpu.cfg,
                         fl_greedy_blocks_needed(o.prompts.count, o.prompts.lens, o.max_tokens,
                                                 o.block_size),
                         o.block_size);
    int32_t **outputs = fl_malloc((size_t)o.prompts.count * sizeof(int32_t *));
    for (int i = 0; i < o.prompts.count; i++)
        outputs[i] = fl_malloc((size_t)o.max_tokens * sizeof(int32_t));
    fl_greedy_generate(&cpu, &kv, o.prompts.count, (const int32_t *const *)o.prompts.ids,
                       o.prompts.lens, o.max_tokens, outputs);
    for (int i = 0; i < o.prompts.count; i++) {
        print_ids(outputs[i], o.max_tokens);
        free(outputs[i]);
    }
    free(outputs);
    fl_cpu_kv_cache_free(&kv);
    fl_cpu_model_free(&cpu);
    free_prompts(&o.prompts);
    return 0;
}
