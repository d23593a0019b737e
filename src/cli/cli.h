/* cli.h - the `flashlm` subcommands and the option helpers they share.
 *
 * Each subcommand parses its own flags with getopt_long (so `--flag value`
 * and `--flag=value` both work, as in vLLM) and returns the process exit
 * code. Start-up errors print one line, "flashlm <cmd>: <message>", and
 * return 1; --help returns 0. */
#ifndef FL_CLI_H
#define FL_CLI_H

#include <stdint.h>

#include "base/error.h"
#include "model/model.h"

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

/* Option ids for the shared model options, for getopt_long tables. */
enum { FL_OPT_MODEL = 1000, FL_OPT_LOAD_FORMAT, FL_OPT_SEED, FL_OPT_FIRST_OWN };

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
