/* jinja_value.h - operations on template values (see jinja_internal.h for
 * the type). Containers and strings live in the render's arena. */
#ifndef FL_JINJA_VALUE_H
#define FL_JINJA_VALUE_H

#include <jansson.h>

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
/* 0 if a text of have bytes can take add more and stay within max; else -1
 * with the message in err. */
int jv_room(size_t have, size_t add, size_t max, fl_error *err);
/* Python's str(v) appended to out; undefined is "". Returns -1 with the
 * message in err (out then holds a part) if v nests deeper than
 * JINJA_MAX_DEPTH or out would grow past max bytes. */
int jv_to_string(fl_strbuf *out, jv v, size_t max, fl_error *err);
/* json.dumps(v, ensure_ascii=False, indent=indent), indent < 0 for none;
 * fails as jv_to_string does. */
int jv_to_json(fl_strbuf *out, jv v, int indent, size_t max, fl_error *err);
jv jv_from_json(fl_arena *a, json_t *j);
const char *jv_type_name(jv v);
/* Strings index by code point, as Python's do. */
size_t jv_str_chars(jv s);
size_t jv_str_char_offset(jv s, size_t index);
/* The byte offset of the character after (before) the one at byte i. */
size_t jv_str_next(jv s, size_t i);
size_t jv_str_prev(jv s, size_t i);

#endif
