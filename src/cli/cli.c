/* cli.c - option helpers shared by the subcommands (see cli.h). */
#include "cli/cli.h"

#include "attention/backend.h"
#include "base/alloc.h"
#include "cli/cli_args.h"
#include "cli/vllm_flags.h"
#include "cpu/cpu_runner.h"
#include "parallel/tp_shard.h"
#ifdef FLASHLM_HAVE_CUDA
#include "cuda/cuda_runner.h"
#endif

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int fl_cli_int(const char *flag, const char *text, long long lo, long long hi, long long *out,
               fl_error *err)
{
    char *end;
    errno = 0;
    long long v = strtoll(text, &end, 10);
    if (errno != 0 || end == text || *end != '\0')
        return fl_fail(err, "%s: '%s' is not an integer", flag, text);
    if (v < lo || v > hi)
        return fl_fail(err, "%s: %lld is out of range [%lld, %lld]", flag, v, lo, hi);
    *out = v;
    return 0;
}

int fl_cli_human_int(const char *flag, const char *text, long long lo, long long hi, long long *out,
                     fl_error *err)
{
    const size_t n = strlen(text);
    const char last = n ? text[n - 1] : 0;
    const char *units = "kmgt", *units_bin = "KMGT";
    const char *u = last ? strchr(units, last) : NULL, *ub = last ? strchr(units_bin, last) : NULL;
    if (!u && !ub)
        return fl_cli_int(flag, text, lo, hi, out, err);
    char num[64];
    if (n - 1 == 0 || n - 1 >= sizeof num)
        return fl_fail(err, "%s: '%s' is not an integer (or one like 32k, 32K)", flag, text);
    memcpy(num, text, n - 1);
    num[n - 1] = '\0';
    char *end;
    double scale = 1;
    for (int i = 0; i <= (u ? u - units : ub - units_bin); i++)
        scale *= u ? 1000.0 : 1024.0;
    errno = 0;
    /* the binary suffixes take whole numbers only, as vLLM's */
    double v = ub ? (double)strtoll(num, &end, 10) : strtod(num, &end);
    if (errno != 0 || end == num || *end != '\0' || v != v)
        return fl_fail(err, "%s: '%s' is not an integer (or one like 32k, 32K)", flag, text);
    v *= scale;
    if (v < (double)lo || v > (double)hi)
        return fl_fail(err, "%s: %s is out of range [%lld, %lld]", flag, text, lo, hi);
    *out = (long long)v;
    return 0;
}

int fl_cli_float(const char *flag, const char *text, double lo, double hi, float *out,
                 fl_error *err)
{
    char *end;
    double v = strtod(text, &end);
    if (end == text || *end != '\0' || v != v)
        return fl_fail(err, "%s: '%s' is not a number", flag, text);
    if (v < lo || v > hi)
        return fl_fail(err, "%s: %g is out of range [%g, %g]", flag, v, lo, hi);
    *out = (float)v;
    return 0;
}

int fl_cli_int32(const char *flag, const char *text, long long lo, long long hi, int *out,
                 fl_error *err)
{
    long long v;
    if (fl_cli_int(flag, text, lo, hi, &v, err) != 0)
        return -1;
    *out = (int)v;
    return 0;
}

int fl_model_opts_take(fl_model_opts *o, int opt, const char *arg, fl_error *err)
{
    long long v;
    switch (opt) {
    case FL_OPT_MODEL:
        if (o->model && strcmp(o->model, arg) != 0)
            return fl_fail(err, "--model: given twice ('%s' and '%s')", o->model, arg);
        o->model = arg;
        return 1;
    case FL_OPT_LOAD_FORMAT:
        return fl_load_format_parse(arg, &o->format, err) == 0 ? 1 : -1;
    case FL_OPT_SEED:
        if (fl_cli_int("--seed", arg, 0, INT64_MAX, &v, err) != 0)
            return -1;
        o->seed = (uint64_t)v;
        return 1;
    default:
        return 0;
    }
}

int fl_model_opts_finish(fl_model_opts *o, int argc, char **argv, int optind_, fl_error *err)
{
    for (int i = optind_; i < argc; i++) {
        if (o->model && strcmp(o->model, argv[i]) != 0)
            return fl_fail(err, "unexpected argument '%s' (the model is already '%s')", argv[i],
                           o->model);
        o->model = argv[i];
    }
    if (!o->model)
        return fl_fail(err, "no model given (a positional MODEL or --model)");
    return 0;
}

int fl_cli_bad_option(fl_error *err, const char *cmd, int opt, char **argv, int optind_)
{
    const char *what = argv[optind_ - 1];
    if (opt == ':')
        return fl_fail(err, "option '%s' needs a value", what);
    return fl_fail(err, "unknown option '%s' (see flashlm %s --help)", what, cmd);
}

void fl_engine_opts_default(fl_engine_opts *o)
{
    fl_engine_config_default(&o->ec);
    o->ec.max_num_seqs = o->ec.max_num_batched_tokens = 0; /* fit picks them unless a flag does */
    o->block_size = 128;
    o->num_blocks = 0;
    o->gpu_memory_utilization = 0.9f;
    o->dtype = o->kv_cache_dtype = o->generation_config = "auto";
    o->max_logprobs = 20;
    o->tensor_parallel_size = 1;
}

static int one_of(const char *value, const char *const *list)
{
    for (int i = 0; list[i]; i++)
        if (strcmp(value, list[i]) == 0)
            return 1;
    return 0;
}

int fl_engine_opts_take(fl_engine_opts *o, int opt, const char *arg, fl_error *err)
{
    switch (opt) {
    case FL_OPT_BLOCK_SIZE:
        if (fl_cli_int32("--block-size", arg, 16, 128, &o->block_size, err) != 0)
            return -1;
        if (o->block_size != 16 && o->block_size != 32 && o->block_size != 64 && o->block_size != 128)
            return fl_fail(err, "--block-size: %d is not one of 16, 32, 64, 128", o->block_size);
        return 1;
    case FL_OPT_NUM_BLOCKS:
        return fl_cli_int32("--num-gpu-blocks-override", arg, 1, 1 << 24, &o->num_blocks, err) ? -1 : 1;
    case FL_OPT_MAX_SEQS:
        return fl_cli_int32("--max-num-seqs", arg, 1, 4096, &o->ec.max_num_seqs, err) ? -1 : 1;
    case FL_OPT_MAX_BATCHED:
        return fl_cli_int32("--max-num-batched-tokens", arg, 1, 1 << 20, &o->ec.max_num_batched_tokens,
                            err) ? -1 : 1;
    case FL_OPT_MAX_MODEL_LEN: {
        long long v;
        if (fl_cli_human_int("--max-model-len", arg, 2, 1 << 24, &v, err) != 0)
            return -1;
        o->ec.max_model_len = (int)v;
        return 1;
    }
    case FL_OPT_NO_PREFIX_CACHING:
        o->ec.enable_prefix_caching = 0;
        return 1;
    case FL_OPT_PREFIX_CACHING:
        o->ec.enable_prefix_caching = 1;
        return 1;
    case FL_OPT_ASYNC:
    case FL_OPT_NO_ASYNC:
        o->ec.async_scheduling = opt == FL_OPT_ASYNC;
        return 1;
    case FL_OPT_DTYPE: {
        static const char *const vllm[] = { "auto", "half", "float16", "bfloat16", "bf16", "float", "float32", NULL };
        if (!one_of(arg, vllm))
            return fl_fail(err, "--dtype: '%s' is not one of auto, half, float16, bfloat16, float, float32", arg);
        o->dtype = arg;
        return 1;
    }
    case FL_OPT_KV_DTYPE: {
        static const char *const built[] = { "auto", "bfloat16", "fp8", "fp8_e4m3", NULL };
        static const char *const other_fp8[] = { "fp8_e5m2", "fp8_inc", "fp8_ds_mla", NULL };
        if (one_of(arg, other_fp8))
            return fl_fail(err, "--kv-cache-dtype %s: only the e4m3 fp8 cache is built (fp8, fp8_e4m3)", arg);
        if (!one_of(arg, built))
            return fl_fail(err, "--kv-cache-dtype: '%s' is not one of auto, bfloat16, fp8, fp8_e4m3, "
                           "fp8_e5m2", arg);
        o->kv_cache_dtype = arg;
        return 1;
    }
    case FL_OPT_MAX_LOGPROBS: {
        long long v;
        if (fl_cli_int("--max-logprobs", arg, -1, INT32_MAX, &v, err) != 0)
            return -1;
        if (v < 0 || v > 20)
            return fl_fail(err, "--max-logprobs %s: flashlm returns at most 20 alternatives a token "
                           "(%s is not built)", arg, v < 0 ? "-1, the whole vocabulary," : "more");
        o->max_logprobs = (int)v;
        return 1;
    }
    case FL_OPT_GENERATION_CONFIG: {
        struct stat st;
        if (strcmp(arg, "auto") != 0 && strcmp(arg, "vllm") != 0 && (stat(arg, &st) != 0 || !S_ISDIR(st.st_mode)))
            return fl_fail(err, "--generation-config: '%s' is not auto, vllm or a directory", arg);
        o->generation_config = arg;
        return 1;
    }
    case FL_OPT_ATTN_BACKEND:
        o->attention_backend = arg;
        return 1;
    case FL_OPT_DEVICE:
        if (strcmp(arg, "auto") != 0 && strcmp(arg, "cuda") != 0 && strcmp(arg, "cpu") != 0)
            return fl_fail(err, "--device: '%s' is not one of auto, cuda, cpu", arg);
        o->device = arg;
        return 1;
    case FL_OPT_GPU_MEM:
        return fl_cli_float("--gpu-memory-utilization", arg, 1e-3, 1, &o->gpu_memory_utilization, err) ? -1 : 1;
    case FL_OPT_ENFORCE_EAGER:
        o->enforce_eager = 1;
        return 1;
    case FL_OPT_TP: {
        long long v;
        if (fl_cli_int("--tensor-parallel-size", arg, 1, 1024, &v, err) != 0)
            return -1;
        o->tensor_parallel_size = (int)v;
        return 1;
    }
    default:
        return 0;
    }
}

int fl_cli_device(const char *name, fl_device_kind *kind, int *cc, fl_error *err)
{
    *kind = FL_DEVICE_CPU;
    *cc = 0;
    if (name && strcmp(name, "cpu") == 0)
        return 0;
#ifdef FLASHLM_HAVE_CUDA
    fl_error why;
    if (fl_cuda_device_cc(cc, &why) == 0) {
        *kind = FL_DEVICE_CUDA;
        return 0;
    }
    if (name && strcmp(name, "cuda") == 0)
        return fl_fail(err, "--device cuda: %s", why.msg);
#else
    if (name && strcmp(name, "cuda") == 0)
        return fl_fail(err, "--device cuda: this flashlm was built without CUDA (FLASHLM_CUDA=OFF)");
#endif
    return 0;
}

fl_attn_needs fl_engine_opts_attn_needs(const fl_engine_opts *o, const fl_model_config *cfg)
{
    return fl_attn_needs_of(cfg, o->device_kind, o->cc, o->block_size, o->kv_dtype);
}

const fl_attn_backend *fl_engine_opts_select_backend(const fl_engine_opts *o, const fl_model_config *cfg,
                                                     fl_error *err)
{
    const char *name = o->attention_backend ? o->attention_backend : getenv("FLASHLM_ATTENTION_BACKEND");
    const fl_attn_needs needs = fl_engine_opts_attn_needs(o, cfg);
    return fl_attn_backend_select(name, &needs, err);
}

/* vLLM's batch defaults (EngineArgs' get_batch_defaults): on GPUs of 70
 * GiB or more that are not A100s (H100, H200 class), the API server takes
 * 8192 tokens a step and 1024 sequences, offline use 16384 and 1024; on
 * other GPUs 2048 and 256, offline 8192 and 256. (vLLM keeps A100s on
 * the small values: a large token budget lowered their throughput.) The
 * CPU runner keeps 2048 and 256: its steps are long and its KV cache is 4
 * GiB. */
static void batch_defaults(fl_engine_opts *o)
{
    int tokens = 2048, seqs = 256;
    if (o->device_kind == FL_DEVICE_CUDA) {
        size_t total = 0;
        char name[256] = "";
#ifdef FLASHLM_HAVE_CUDA
        if (fl_cuda_device_memory(&total, name, sizeof name) != 0)
            total = 0;
#endif
        for (char *c = name; *c; c++)
            *c = (char)tolower((unsigned char)*c);
        const int large = total >= ((size_t)70 << 30) && !strstr(name, "a100");
        tokens = large ? (o->usage == FL_USAGE_OFFLINE ? 16384 : 8192) : (o->usage == FL_USAGE_OFFLINE ? 8192 : 2048);
        seqs = large ? 1024 : 256;
    }
    if (o->ec.max_num_batched_tokens == 0)
        o->ec.max_num_batched_tokens = tokens;
    if (o->ec.max_num_seqs == 0)
        o->ec.max_num_seqs = seqs;
}

/* --dtype and --kv-cache-dtype against what the settled device computes
 * in: the CUDA runner bf16 (weights, activations; the KV cache bf16 or
 * float8 e4m3), the CPU runner float32. Nothing converts to another type,
 * so a flag asking for one is refused rather than ignored. Settles
 * kv_dtype. */
static int check_dtypes(fl_engine_opts *o, fl_error *err)
{
    static const char *const cuda[] = { "auto", "bfloat16", "bf16", NULL };
    static const char *const cpu[] = { "auto", "float", "float32", NULL };
    const int on_cuda = o->device_kind == FL_DEVICE_CUDA;
    if (!one_of(o->dtype, on_cuda ? cuda : cpu))
        return fl_fail(err, "--dtype %s: the %s runner computes in %s (auto, %s)", o->dtype, on_cuda ? "CUDA" : "CPU",
                       on_cuda ? "bfloat16" : "float32", on_cuda ? "bfloat16, bf16" : "float, float32");
    if (!on_cuda && strcmp(o->kv_cache_dtype, "auto") != 0)
        return fl_fail(err, "--kv-cache-dtype %s: the CPU runner's KV cache is float32 (auto)", o->kv_cache_dtype);
    o->kv_dtype = !on_cuda ? FL_F32 : strncmp(o->kv_cache_dtype, "fp8", 3) == 0 ? FL_F8_E4M3 : FL_BF16;
    return 0;
}

int fl_engine_opts_fit(fl_engine_opts *o, const fl_model_config *cfg, fl_error *err)
{
    if (o->ec.max_model_len <= 0 || o->ec.max_model_len > cfg->max_position_embeddings)
        o->ec.max_model_len = cfg->max_position_embeddings;
    if (fl_cli_device(o->device, &o->device_kind, &o->cc, err) != 0)
        return -1;
    if (check_dtypes(o, err) != 0)
        return -1;
    if (o->tensor_parallel_size > 1) {
        if (fl_tp_check(cfg, o->tensor_parallel_size, err) != 0)
            return -1;
#ifdef FLASHLM_HAVE_CUDA
        if (o->device_kind == FL_DEVICE_CUDA && fl_cuda_tp_check(o->tensor_parallel_size, err) != 0)
            return -1;
#endif
    }
    batch_defaults(o);
    if (o->max_waiting > 0)
        o->ec.max_live_seqs = o->ec.max_num_seqs + o->max_waiting;
    o->backend = fl_engine_opts_select_backend(o, cfg, err);
    return o->backend ? 0 : -1;
}

fl_cli_runner_fn fl_cli_test_runner;

int fl_cli_runner_init(const fl_engine_opts *o, const fl_model *m, fl_model_runner *runner, fl_error *err)
{
    const fl_runner_opts ro = {
        .attn = o->backend, .max_tokens = o->ec.max_num_batched_tokens, .max_context = o->ec.max_model_len,
        .max_seqs = o->ec.max_num_seqs, .block_size = o->block_size, .num_blocks = o->num_blocks,
        .gpu_memory_utilization = o->gpu_memory_utilization, .enforce_eager = o->enforce_eager,
        .kv_dtype = o->kv_dtype,
    };
    if (fl_cli_test_runner)
        return fl_cli_test_runner(m, &ro, runner, err);
#ifdef FLASHLM_HAVE_CUDA
    if (o->device_kind == FL_DEVICE_CUDA)
        return fl_cuda_runner_init_nccl(runner, &m->cfg, &m->weights, &ro, o->tensor_parallel_size, err);
#endif
    return fl_cpu_runner_init_parallel(runner, &m->cfg, &m->weights, &ro, o->tensor_parallel_size, err);
}

int fl_eos_ids(const fl_model_config *cfg, const fl_tokenizer *tok, int32_t eos[FL_MAX_EOS_IDS + 1])
{
    int n = cfg->num_eos_ids;
    memcpy(eos, cfg->eos_token_ids, (size_t)n * sizeof(int32_t));
    if (tok && tok->eos_id >= 0) {
        int known = 0;
        for (int i = 0; i < n; i++)
            known |= eos[i] == tok->eos_id;
        if (!known)
            eos[n++] = tok->eos_id;
    }
    return n;
}

/* The prepared command line of the one engine command a process runs:
 * option values point into it until exit. */
static fl_cli_args prepared;

int fl_cli_parse_engine_command(const char *cmd, const char *help, int argc, char **argv,
                                const struct option *opts, const char *const *nargs, int serve_scope,
                                fl_model_opts *model, fl_engine_opts *eng, fl_cli_take_fn take, void *ctx,
                                fl_error *err)
{
    int n = 0;
    while (opts[n].name)
        n++;
    struct option *all = fl_calloc((size_t)(n + fl_vllm_flags_count() + 2), sizeof *all);
    memcpy(all, opts, (size_t)n * sizeof *all);
    all[n++] = (struct option){ "version", no_argument, NULL, FL_OPT_VERSION };
    n = fl_vllm_flags_add_options(all, n, serve_scope ? FL_VF_SERVE : FL_VF_ENGINE);
    fl_cli_args_free(&prepared);
    int rc = fl_cli_args_prepare(&prepared, argc, argv, all, nargs, err);
    int opt;
    optind = 0;
    while (rc == 0 && (opt = getopt_long(prepared.argc, prepared.argv, ":h", all, NULL)) != -1) {
        if (opt == 'h' || opt == FL_OPT_VERSION) {
            if (opt == 'h')
                fputs(help, stdout);
            else
                printf("flashlm %s\n", FLASHLM_VERSION);
            rc = 1;
            break;
        }
        int taken = fl_model_opts_take(model, opt, optarg, err);
        if (taken == 0)
            taken = fl_engine_opts_take(eng, opt, optarg, err);
        if (taken == 0)
            taken = fl_vllm_flag_take(opt, optarg, err);
        if (taken < 0) {
            rc = -1;
            break;
        }
        if (taken)
            continue;
        int own = take(ctx, opt, optarg, err);
        if (own < 0)
            rc = -1;
        else if (own > 0)
            rc = fl_cli_bad_option(err, cmd, opt, prepared.argv, optind);
    }
    free(all);
    if (rc != 0)
        return rc;
    if (!model->model && optind >= prepared.argc && prepared.config_model)
        model->model = prepared.config_model;
    return fl_model_opts_finish(model, prepared.argc, prepared.argv, optind, err);
}
