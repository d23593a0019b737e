/* jinja.h - the Jinja2 of chat templates (Hugging Face's and the tool
 * templates vLLM users give --chat-template).
 *
 * Parses once (syntax errors and unsupported constructs are reported then,
 * with the line), renders many times against a JSON object of variables.
 * The environment is the one transformers uses for chat templates:
 * trim_blocks and lstrip_blocks on, loop controls (break/continue) on,
 * `tojson` without ASCII escaping (and with indent, separators, sort_keys),
 * Jinja's default Undefined, and the globals namespace, dict, range,
 * raise_exception and strftime_now. Supported: {{ }}, {% if/elif/else %},
 * {% for %} with tuple targets, `loop` (cycle too) and else, {% set %} of
 * names, tuples and ns.attr, {% set %}/{% filter %} blocks with filters,
 * {% macro %} with defaults, keyword arguments, varargs and kwargs,
 * {% generation %}, comments, whitespace control, the Python-like
 * operators with `%` formatting, tuples, slices, attribute and item
 * access, and the filters, tests and methods jinja_builtins.c lists. */
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
