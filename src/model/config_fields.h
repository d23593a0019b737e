/* config_fields.h - reading typed config.json fields with one error per
 * bad field; shared by config.c and the architecture files. */
#ifndef FL_CONFIG_FIELDS_H
#define FL_CONFIG_FIELDS_H

#include <jansson.h>

#include "base/error.h"

/* An integer field in [lo, hi]. An absent or null field takes dflt, or is
 * an error if required; src names the file in messages. */
int fl_config_int(json_t *obj, const char *key, int required, int dflt, long long lo, long long hi,
                  int *out, const char *src, fl_error *err);
/* A number field in (lo, hi]; absent or null takes dflt (or is an error if
 * required). */
int fl_config_number(json_t *obj, const char *key, int required, double dflt, double lo, double hi,
                     double *out, const char *src, fl_error *err);
/* A boolean field; absent or null takes dflt. */
int fl_config_bool(json_t *obj, const char *key, int dflt, int *out, const char *src, fl_error *err);

#endif
