/* jinja_value.h - operations on template values (see jinja_internal.h for
 * the type). Containers and strings live in the render's arena. */
#ifndef FL_JINJA_VALUE_H
#define FL_JINJA_VALUE_H

#include <jansson.h>
#include <stdint.h>

#include "base/strbuf.h"
#include "jinja/jinja_internal.h"

jv jv_str(fl_arena *a, const char *s, size_t n);   /* copies s */
jv jv_cstr(const char *s);                          /* refers to a static string */
jv jv_list(fl_arena *a);
jv jv_dict(fl_arena *a);
void jv_list_push(fl_arena *a, jlist *l, jv v);
jv *jv_dict_find(const jdict *d, const char *key, size_t n);
void jv_dict_set(fl_arena *a, jdict *d, jv key, jv val);
int jv_truthy(jv v);
int jv_is_number(jv v);      /* int, float or bool */
double jv_number(jv v);
/* 1 if equal, 0 if not; -1 with the message in err if they nest deeper
 * than JINJA_MAX_DEPTH or *steps passes JINJA_MAX_STEPS (each compared
 * pair of lists or dicts adds one). */
int jv_equal(jv a, jv b, long *steps, fl_error *err);
/* Python's ordering for sorting and < > <= >=: numbers, strings (by code
 * point), lists and tuples (item by item, each with its own kind). *r is
 * -1, 0 or 1; returns -1 with the message in err for kinds Python does not
 * order, and as jv_equal does for nesting and steps. */
int jv_compare(jv a, jv b, int *r, long *steps, fl_error *err);
/* The length of Python's range(from, to, step), step != 0. */
uint64_t jv_range_len(int64_t from, int64_t to, int64_t step);
/* 0 if a text of have bytes can take add more and stay within max; else -1
 * with the message in err. */
int jv_room(size_t have, size_t add, size_t max, fl_error *err);
/* Python's repr(v) (of a string: quoted and escaped; else as str). */
int jv_to_repr(fl_strbuf *out, jv v, size_t max, fl_error *err);
/* Python's str(v) appended to out; undefined is "" (inside a list or dict
 * "Undefined", as Jinja's repr of it), a tuple is in parentheses, a macro
 * <Macro 'name'>. Returns -1 with the message in err (out then holds a
 * part) if v nests deeper than JINJA_MAX_DEPTH or out would grow past max
 * bytes. */
int jv_to_string(fl_strbuf *out, jv v, size_t max, fl_error *err);
/* How tojson writes: json.dumps's indent (< 0 for none), separators (NULL
 * for its defaults, which depend on the indent), sort_keys, ensure_ascii. */
typedef struct jv_json_style {
    int indent;
    const char *item_sep, *key_sep;
    int sort_keys, ensure_ascii;
} jv_json_style;
/* json.dumps(v, ...) in style; fails as jv_to_string does, and for values
 * JSON has no form for (undefined, a function), as Python's json does. */
int jv_to_json(fl_strbuf *out, jv v, const jv_json_style *style, size_t max, fl_error *err);
/* fmt % args (Python's printf-style formatting: %s %r %d %i %u %f %F %e %E
 * %g %G %x %X %o %c %a %%, flags, width, precision, %(key)s with a dict),
 * appended to out within max bytes; -1 with Python's message in err for a
 * bad format, missing or surplus arguments, or a wrong argument kind. */
int jv_format(fl_strbuf *out, jv fmt, jv args, size_t max, fl_error *err);
jv jv_from_json(fl_arena *a, json_t *j);
const char *jv_type_name(jv v);
/* Strings index by code point, as Python's do. */
size_t jv_str_chars(jv s);
size_t jv_str_char_offset(jv s, size_t index);
/* The byte offset of the character after (before) the one at byte i. */
size_t jv_str_next(jv s, size_t i);
size_t jv_str_prev(jv s, size_t i);

#endif
