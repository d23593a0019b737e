/* cli_args.h - a command line rewritten into the one form getopt_long
 * parses, the way vLLM's FlexibleArgumentParser reads its own.
 *
 * vLLM takes each flag in two spellings (`--max_model_len` and
 * `--max-model-len`), a few short aliases (`-tp N`), flags with several
 * values (`--served-model-name a b`), and `--config FILE.yaml`, a YAML
 * mapping of flag names to values that the command line overrides. This
 * module turns all of those into `--long-name value` elements, so each
 * command's option table and take() function sees one spelling. */
#ifndef FL_CLI_ARGS_H
#define FL_CLI_ARGS_H

#include <getopt.h>

#include "base/error.h"

/* The suffix of the hidden option that carries the second and later values
 * of a several-values flag: `--served-model-name a b` becomes
 * `--served-model-name a --served-model-name+ b`. */
#define FL_CLI_MORE_SUFFIX "+"

typedef struct fl_cli_args {
    int argc;
    char **argv;              /* [argc + 1], NULL-terminated; strings owned */
    const char *config_model; /* `model:` of --config's file, NULL if none: the
                               * command line's MODEL wins over it */
    const char *config_file;  /* the --config path, NULL if none */
} fl_cli_args;

/* Rewrites argv[1..] (argv[0] is the command) against opts, the command's
 * full getopt_long table: underscores in a flag's name become dashes (up to
 * `=`), `-tp`/`-pp`/`-dp`/`-q` become their long names, the values after a
 * flag named in nargs (NULL-terminated) go to its FL_CLI_MORE_SUFFIX twin,
 * and `--config FILE` is replaced by the file's flags, put first so the
 * command line overrides them. A YAML `true` of a flag without a value
 * becomes the flag, `false` its `--no-` form if opts has one (else nothing:
 * the default); a list gives a several-values flag its values. Returns 0,
 * or -1 with err naming the file and line (bad YAML, not a mapping, a key
 * that is no flag of the command, a list for a one-value flag). */
int fl_cli_args_prepare(fl_cli_args *out, int argc, char **argv, const struct option *opts,
                        const char *const *nargs, fl_error *err);

void fl_cli_args_free(fl_cli_args *a);

#endif
