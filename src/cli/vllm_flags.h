/* vllm_flags.h - the vLLM flags flashlm takes without a feature behind them.
 *
 * A flag of `vllm serve` is honoured (the commands' own option tables),
 * accepted with the written reason it changes nothing here (logged at
 * start-up: "--trust-remote-code changes nothing here: ..."), or refused
 * with one error naming it and why. This table holds the last two kinds,
 * so no flag vLLM has is ever an "unknown option"; docs/vllm_flags.md is
 * the whole list. */
#ifndef FL_VLLM_FLAGS_H
#define FL_VLLM_FLAGS_H

#include <getopt.h>

#include "base/error.h"

typedef enum { FL_VF_ENGINE, FL_VF_SERVE } fl_vf_scope; /* generate and serve, or serve only */

typedef struct fl_vllm_flag {
    const char *name;
    int has_arg;          /* no_argument or required_argument */
    fl_vf_scope scope;
    const char *accept;   /* values accepted, '|'-separated; "*": any; NULL: the flag is refused
                           * (with a value: refused whatever the value) */
    const char *accept_why; /* why an accepted value changes nothing here */
    const char *refuse_why; /* why the flag (or a value not in accept) is refused */
} fl_vllm_flag;

/* getopt_long ids of the table's entries: FL_VF_OPT_BASE + index. */
#define FL_VF_OPT_BASE 3000

/* Appends the entries to opts, which has room, skipping names opts already
 * has; returns the new count. Those of the server are refused by
 * fl_vllm_flag_take when scope is FL_VF_ENGINE (generate). */
int fl_vllm_flags_add_options(struct option *opts, int count, fl_vf_scope scope);

/* The number of entries, for sizing an option table. */
int fl_vllm_flags_count(void);

/* Handles option id opt: 1 accepted (its reason logged), 0 not an entry of
 * the table, -1 refused (err names the flag and why). */
int fl_vllm_flag_take(int opt, const char *arg, fl_error *err);

#endif
