/* generation_config.c - generation_config.json's sampling defaults (see
 * generation_config.h). */
#include "model/generation_config.h"

#include <jansson.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "base/json_file.h"

/* A number key in [lo, hi]: 1 and *out, 0 when absent or null, -1 on a bad value. */
static int read_number(json_t *j, const char *key, double lo, double hi, double *out,
                       const char *path, fl_error *err)
{
    json_t *v = json_object_get(j, key);
    if (!v || json_is_null(v))
        return 0;
    if (!json_is_number(v) || !(json_number_value(v) >= lo && json_number_value(v) <= hi))
        return fl_fail(err, "%s: '%s' must be a number in [%g, %g]", path, key, lo, hi);
    *out = json_number_value(v);
    return 1;
}

int fl_generation_defaults_load(const char *dir, fl_generation_defaults *d, fl_error *err)
{
    memset(d, 0, sizeof *d);
    if (!dir)
        return 0;
    char path[4096];
    snprintf(path, sizeof path, "%s/generation_config.json", dir);
    struct stat st;
    if (stat(path, &st) != 0)
        return 0;
    json_t *j = fl_json_load_file(path, 0, err);
    if (!j)
        return -1;
    int rc = -1;
    double x;
    int got;
    if (!json_is_object(j)) {
        fl_fail(err, "%s: not a JSON object", path);
        goto out;
    }
    /* vLLM's SamplingParams ranges */
    if ((got = read_number(j, "temperature", 0, 1e6, &x, path, err)) < 0)
        goto out;
    if ((d->has_temperature = got))
        d->temperature = (float)x;
    if ((got = read_number(j, "top_p", 1e-9, 1, &x, path, err)) < 0)
        goto out;
    if ((d->has_top_p = got))
        d->top_p = (float)x;
    if ((got = read_number(j, "min_p", 0, 1, &x, path, err)) < 0)
        goto out;
    if ((d->has_min_p = got))
        d->min_p = (float)x;
    if ((got = read_number(j, "repetition_penalty", 1e-6, 1e6, &x, path, err)) < 0)
        goto out;
    if ((d->has_repetition_penalty = got))
        d->repetition_penalty = (float)x;
    json_t *k = json_object_get(j, "top_k");
    if (k && !json_is_null(k)) {
        if (!json_is_integer(k) || json_integer_value(k) < -1 || json_integer_value(k) > (1 << 24)) {
            fl_fail(err, "%s: 'top_k' must be an integer, -1 or more", path);
            goto out;
        }
        d->has_top_k = 1;
        d->top_k = (int)json_integer_value(k);
    }
    json_t *m = json_object_get(j, "max_new_tokens");
    if (m && !json_is_null(m)) {
        if (!json_is_integer(m) || json_integer_value(m) < 1 || json_integer_value(m) > (1 << 30)) {
            fl_fail(err, "%s: 'max_new_tokens' must be a positive integer", path);
            goto out;
        }
        d->max_tokens = (int)json_integer_value(m);
    }
    rc = 0;
out:
    json_decref(j);
    return rc;
}

int fl_generation_defaults_describe(const fl_generation_defaults *d, char *out, size_t len)
{
    int n = 0;
    size_t at = 0;
    out[0] = '\0';
#define ADD(cond, ...)                                                                   \
    do {                                                                                 \
        if ((cond) && at < len) {                                                        \
            at += (size_t)snprintf(out + at, len - at, "%s", n ? ", " : "");             \
            if (at < len)                                                                \
                at += (size_t)snprintf(out + at, len - at, __VA_ARGS__);                 \
            n++;                                                                         \
        }                                                                                \
    } while (0)
    ADD(d->has_repetition_penalty, "repetition_penalty=%g", d->repetition_penalty);
    ADD(d->has_temperature, "temperature=%g", d->temperature);
    ADD(d->has_top_k, "top_k=%d", d->top_k);
    ADD(d->has_top_p, "top_p=%g", d->top_p);
    ADD(d->has_min_p, "min_p=%g", d->min_p);
    ADD(d->max_tokens > 0, "max_tokens=%d", d->max_tokens);
#undef ADD
    return n;
}
