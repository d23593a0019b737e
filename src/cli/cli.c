/* cli.c - option helpers shared by the subcommands (see cli.h). */
#include "cli/cli.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
