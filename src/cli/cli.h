/* cli.h - the `flashlm` subcommands and the option helpers they share.
 *
 * Each subcommand parses its own flags with getopt_long (so `--flag value`
 * and `--flag=value` both work, as in vLLM) and returns the process exit
 * code. Start-up errors print one line, "flashlm <cmd>: <message>", and
 * return 1; --help returns 0. */
#ifndef FL_CLI_H
#define FL_CLI_H

#include <getopt.h>
#include <stdint.h>

#include "attention/backend.h"
#include "base/error.h"
#include "engine/engine.h"
#include "engine/model_runner.h"
#include "model/model.h"
#include "tokenizer/tokenizer.h"

int fl_cmd_info(int argc, char **argv);
int fl_cmd_generate(int argc, char **argv);
int fl_cmd_tokenize(int argc, char **argv);
int fl_cmd_bench(int argc, char **argv);
int fl_cmd_serve(int argc, char **argv);

/* Parses an integer flag value in [lo, hi]; the error names the flag. */
int fl_cli_int(const char *flag, const char *text, long long lo, long long hi, long long *out,
               fl_error *err);

/* The same for a float flag in [lo, hi], and an int flag stored as int. */
int fl_cli_float(const char *flag, const char *text, double lo, double hi, float *out,
                 fl_error *err);
int fl_cli_int32(const char *flag, const char *text, long long lo, long long hi, int *out,
                 fl_error *err);

/* The model options every subcommand that loads a model takes. */
typedef struct fl_model_opts {
    const char *model;      /* positional MODEL or --model */
    fl_load_format format;  /* --load-format */
    uint64_t seed;          /* --seed: dummy weights (and later sampling) */
} fl_model_opts;

#define FL_MODEL_OPTS_HELP                                                       \
    "  MODEL, --model MODEL   a Hugging Face model directory, or a built-in name\n" \
    "                         (Qwen/Qwen3-0.6B) with --load-format dummy\n"      \
    "  --load-format FORMAT   auto | safetensors | dummy (random weights from --seed)\n" \
    "  --seed N               seed for dummy weights (default 0)\n"

/* Option ids of the shared options, for getopt_long tables. */
enum {
    FL_OPT_MODEL = 1000, FL_OPT_LOAD_FORMAT, FL_OPT_SEED,
    FL_OPT_BLOCK_SIZE, FL_OPT_NUM_BLOCKS, FL_OPT_MAX_SEQS, FL_OPT_MAX_BATCHED, FL_OPT_MAX_MODEL_LEN,
    FL_OPT_NO_PREFIX_CACHING, FL_OPT_ATTN_BACKEND, FL_OPT_DEVICE, FL_OPT_GPU_MEM, FL_OPT_ENFORCE_EAGER,
    FL_OPT_PREFIX_CACHING, FL_OPT_DTYPE, FL_OPT_KV_DTYPE, FL_OPT_MAX_LOGPROBS, FL_OPT_GENERATION_CONFIG,
    FL_OPT_ASYNC, FL_OPT_NO_ASYNC, FL_OPT_TP, FL_OPT_VERSION, FL_OPT_FIRST_OWN,
};

/* The getopt_long entries of the model options. */
#define FL_MODEL_OPTS_LONG                                        \
    { "model", required_argument, NULL, FL_OPT_MODEL },           \
    { "load-format", required_argument, NULL, FL_OPT_LOAD_FORMAT }, \
    { "seed", required_argument, NULL, FL_OPT_SEED }

/* The engine options of every subcommand that runs the engine (vLLM's). */
/* Whose defaults the batch sizes take (vLLM's usage contexts). */
typedef enum fl_usage { FL_USAGE_API_SERVER, FL_USAGE_OFFLINE } fl_usage;

typedef struct fl_engine_opts {
    fl_engine_config ec;     /* max_num_seqs, max_num_batched_tokens: 0 until the flag or fit sets them */
    fl_usage usage;          /* serve: the API server's defaults; generate: offline */
    int max_waiting;         /* admission: sequences waiting beyond the running ones (0: no limit) */
    int block_size;          /* default 128 */
    int num_blocks;          /* --num-gpu-blocks-override; 0: from memory */
    const char *attention_backend; /* --attention-backend, else $FLASHLM_ATTENTION_BACKEND, else auto */
    const char *device;      /* --device: auto (default), cuda, cpu */
    float gpu_memory_utilization; /* default 0.9 */
    int enforce_eager;       /* no CUDA graphs */
    int tensor_parallel_size; /* --tensor-parallel-size, -tp: ranks (1: the whole model on one device) */
    const char *dtype;       /* --dtype: checked against the device's compute type by _fit */
    const char *kv_cache_dtype; /* --kv-cache-dtype: the same for the KV cache */
    fl_dtype kv_dtype;       /* settled by _fit: the KV cache's element type */
    int max_logprobs;        /* --max-logprobs: the most alternatives a token a request may ask (20) */
    const char *generation_config; /* --generation-config: auto (default), vllm, or a directory;
                              * stored for the server's request defaults, read by no code yet */
    /* settled by fl_engine_opts_fit */
    fl_device_kind device_kind;
    int cc;                  /* CUDA compute capability x10 */
    const fl_attn_backend *backend; /* the chosen attention backend: the runner runs it */
} fl_engine_opts;

#define FL_ENGINE_OPTS_LONG                                                           \
    { "block-size", required_argument, NULL, FL_OPT_BLOCK_SIZE },                     \
    { "num-gpu-blocks-override", required_argument, NULL, FL_OPT_NUM_BLOCKS },        \
    { "max-num-seqs", required_argument, NULL, FL_OPT_MAX_SEQS },                     \
    { "max-num-batched-tokens", required_argument, NULL, FL_OPT_MAX_BATCHED },        \
    { "max-model-len", required_argument, NULL, FL_OPT_MAX_MODEL_LEN },               \
    { "no-enable-prefix-caching", no_argument, NULL, FL_OPT_NO_PREFIX_CACHING },        \
    { "attention-backend", required_argument, NULL, FL_OPT_ATTN_BACKEND },                \
    { "device", required_argument, NULL, FL_OPT_DEVICE },                             \
    { "gpu-memory-utilization", required_argument, NULL, FL_OPT_GPU_MEM },            \
    { "enforce-eager", no_argument, NULL, FL_OPT_ENFORCE_EAGER },                      \
    { "enable-prefix-caching", no_argument, NULL, FL_OPT_PREFIX_CACHING },            \
    { "dtype", required_argument, NULL, FL_OPT_DTYPE },                               \
    { "kv-cache-dtype", required_argument, NULL, FL_OPT_KV_DTYPE },                   \
    { "max-logprobs", required_argument, NULL, FL_OPT_MAX_LOGPROBS },                 \
    { "generation-config", required_argument, NULL, FL_OPT_GENERATION_CONFIG },       \
    { "async-scheduling", no_argument, NULL, FL_OPT_ASYNC },                          \
    { "no-async-scheduling", no_argument, NULL, FL_OPT_NO_ASYNC },                    \
    { "tensor-parallel-size", required_argument, NULL, FL_OPT_TP }

#define FL_ENGINE_OPTS_HELP                                                                      \
    "engine:\n"                                                                                   \
    "  --device D             auto (default: CUDA if a GPU is usable, else the CPU), cuda, cpu\n" \
    "  --max-model-len N      context length (default: the model's)\n"                           \
    "  --max-num-seqs N       sequences in the running batch (default: vLLM's, see below)\n"     \
    "  --max-num-batched-tokens N  tokens per step (default: vLLM's for the GPU: serve 8192\n"     \
    "                         and 1024 sequences on GPUs of 70 GiB or more but A100s, generate\n" \
    "                         16384 and 1024; else serve 2048 and 256, generate 8192 and 256;\n"  \
    "                         on the CPU 2048 and 256)\n"                                        \
    "  --block-size N         KV block size: 16, 32, 64, 128 (default 128)\n"                    \
    "  --num-gpu-blocks-override N  KV blocks, whatever the memory\n"                            \
    "  --gpu-memory-utilization F   share of GPU memory for weights, activations and KV\n"       \
    "                         (default 0.9; the CPU backend budgets 4 GiB instead)\n"            \
    "  --enforce-eager        no CUDA graphs for decode steps\n"                                 \
    "  --attention-backend B  auto (default; or FLASHLM_ATTENTION_BACKEND) or a backend\n"       \
    "                         that `flashlm info` lists\n"                                        \
    "  --enable-prefix-caching, --no-enable-prefix-caching  (default on)\n"                    \
    "  --async-scheduling, --no-async-scheduling  plan and launch a step before the last\n"    \
    "                         one's tokens are handled (default on, as vLLM's)\n"             \
    "  --dtype T              auto; the CUDA runner computes in bfloat16 (bfloat16, bf16), the\n" \
    "                         CPU runner in float32 (float, float32); others are refused\n"      \
    "  --kv-cache-dtype T     auto (bf16 on CUDA, float32 on the CPU), bfloat16, or fp8 and\n"   \
    "                         fp8_e4m3 (float8 e4m3, scale 1.0 as vLLM's default) on CUDA\n"       \
    "  --max-logprobs N       most logprobs/top_logprobs a request may ask (default 20, at most 20)\n" \
    "  --generation-config G  auto (default: the model's generation_config.json gives unset\n" \
    "                         sampling fields their defaults), vllm (none), or a directory\n"   \
    "  --tensor-parallel-size N, -tp N  ranks the model is split over (default 1): on the CPU\n" \
    "                         (--device cpu), threads of this process; NCCL over GPUs is not\n"   \
    "                         built yet\n"                                                          \
    "vLLM's spellings: --flag_name as --flag-name, --flag=value, --config FILE.yaml (a mapping\n" \
    "of flag names to values; the command line wins). Other vLLM flags are accepted with the\n" \
    "reason they change nothing here (--trust-remote-code, --swap-space, --disable-log-requests,\n" \
    "...) or refused naming why: docs/vllm_flags.md lists each. --version prints the version.\n"

void fl_engine_opts_default(fl_engine_opts *o);
/* Like fl_model_opts_take, for the engine options. */
int fl_engine_opts_take(fl_engine_opts *o, int opt, const char *arg, fl_error *err);
/* A command's own options: 0 taken, 1 not its option, -1 bad value. */
typedef int (*fl_cli_take_fn)(void *ctx, int opt, const char *arg, fl_error *err);

/* The option loop of a command that runs a model through the engine, with
 * vLLM's spellings (cli_args.h: --flag_name, -tp, several values for the
 * flags in nargs (NULL-terminated, may be NULL), --config FILE.yaml) and
 * vLLM's flags of scope (vllm_flags.h: accepted with a reason or refused):
 * --help prints help and --version the version, and return 1; the shared
 * model and engine options, then the command's own (take), then the
 * positional MODEL (else --config's `model:`). Option values stay valid
 * until the process exits. Returns 0, or -1 with err. */
int fl_cli_parse_engine_command(const char *cmd, const char *help, int argc, char **argv,
                                const struct option *opts, const char *const *nargs, int serve_scope,
                                fl_model_opts *model, fl_engine_opts *eng, fl_cli_take_fn take, void *ctx,
                                fl_error *err);

/* vLLM's human_readable_int: "32768", "32k" (x1000), "32K" (x1024), "1m",
 * "1M", ... ("25.6k": a decimal with the lower-case suffixes); the error
 * names the flag. */
int fl_cli_human_int(const char *flag, const char *text, long long lo, long long hi, long long *out,
                     fl_error *err);

/* Settles max_model_len against the model (at most its positions), the
 * device, and the attention backend for both; -1 with one message if the
 * device is not usable or the chosen backend cannot run the model. */
int fl_engine_opts_fit(fl_engine_opts *o, const fl_model_config *cfg, fl_error *err);

/* The device --device names (auto: CUDA if usable, else the CPU). */
int fl_cli_device(const char *name, fl_device_kind *kind, int *cc, fl_error *err);

/* What attention the runner for o's device asks of for cfg. */
fl_attn_needs fl_engine_opts_attn_needs(const fl_engine_opts *o, const fl_model_config *cfg);

/* The attention backend for o's device and cfg: --attention-backend, else
 * $FLASHLM_ATTENTION_BACKEND, else auto; NULL with err if it cannot run. */
const fl_attn_backend *fl_engine_opts_select_backend(const fl_engine_opts *o, const fl_model_config *cfg,
                                                     fl_error *err);

/* Builds the runner of the settled device for model m (after _fit). */
int fl_cli_runner_init(const fl_engine_opts *o, const fl_model *m, fl_model_runner *runner,
                       fl_error *err);

/* Tests only: a runner that fl_cli_runner_init builds instead of the
 * device's. NULL in flashlm; tests/parrot_serve.c, a test binary that runs
 * `serve` over a scripted model, sets it before it calls fl_cmd_serve. */
typedef int (*fl_cli_runner_fn)(const fl_model *m, const fl_runner_opts *ro, fl_model_runner *runner,
                                fl_error *err);
extern fl_cli_runner_fn fl_cli_test_runner;
/* The ids that end a sequence: the model config's EOS ids plus the
 * tokenizer's eos_token (tok may be NULL). Returns the count. */
int fl_eos_ids(const fl_model_config *cfg, const fl_tokenizer *tok, int32_t eos[FL_MAX_EOS_IDS + 1]);

/* Handles one of the shared options (opt is getopt's return value). Returns
 * 1 if handled, 0 if opt is not a shared option, -1 on a bad value. */
int fl_model_opts_take(fl_model_opts *o, int opt, const char *arg, fl_error *err);

/* Takes the positional MODEL (argv[optind..]) after option parsing; the
 * only positional allowed. Errors if missing, repeated, or different from
 * --model. */
int fl_model_opts_finish(fl_model_opts *o, int argc, char **argv, int optind_, fl_error *err);

/* The error for a getopt failure in command cmd: opt is getopt's ':'
 * (missing value; the optstring starts with ':') or '?' (unknown option).
 * Returns -1. */
int fl_cli_bad_option(fl_error *err, const char *cmd, int opt, char **argv, int optind_);

#endif
