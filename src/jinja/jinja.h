/* jinja.h - a Jinja2 subset, enough for Hugging Face chat templates.
 *
 * Parses once (syntax errors and unsupported tags are reported then, with
 * the line), renders many times against a JSON object of variables. The
 * environment is the one transformers uses for chat templates: trim_blocks
 * and lstrip_blocks on, loop controls (break/continue) on, `tojson` without
 * ASCII escaping, and the globals `namespace`, `raise_exception`, `range`
 * and `strftime_now`. Supported: {{ }}, {% if/elif/else %}, {% for %} with
 * `loop` and else, {% set %} (also ns.attr), {% generation %}, comments,
 * whitespace control (-), the Python-like operators, slices, attribute and
 * item access, filters, tests and the common string/dict methods. */
#ifndef FL_JINJA_H
#define FL_JINJA_H

#include <jansson.h>

#include "base/error.h"
#include "base/strbuf.h"

typedef struct fl_jinja fl_jinja;

/* Parses a template. On error returns NULL with "line N: ..." in err. */
fl_jinja *fl_jinja_parse(const char *source, size_t len, fl_error *err);

/* Renders with the members of vars (a JSON object) as variables, appending
 * to out. On error (raise_exception, a type error, ...) returns -1 with the
 * message and line in err; out may hold partial output. */
int fl_jinja_render(const fl_jinja *t, json_t *vars, fl_strbuf *out, fl_error *err);

/* 1 if an expression of the template names the variable, in any branch (a
 * local the template sets under that name counts too); 0 if no render can
 * see a value given under that name. */
int fl_jinja_reads(const fl_jinja *t, const char *name);

void fl_jinja_free(fl_jinja *t);

#endif
