/* pyjson.h - scalars written as Python's json.dumps(ensure_ascii=False)
 * writes them.
 *
 * vLLM re-serializes a tool call's arguments with json.dumps, and chat
 * templates write values with tojson (transformers' json.dumps), so what a
 * client or a prompt sees is Python's spelling: floats by repr(), the
 * shortest digits that read back to the same double, positional when the
 * decimal exponent is in [-4, 16) ("100.0", "0.0001", "1e-05", "1e+16"),
 * ".0" on a whole number; strings with ", \, \b \f \n \r \t and the other
 * control characters escaped (\u001f) and every other byte as it is. */
#ifndef FL_PYJSON_H
#define FL_PYJSON_H

#include <stddef.h>

#include "base/strbuf.h"

/* Appends repr(f) to out; nan, inf and -inf as json.dumps writes them
 * (NaN, Infinity, -Infinity). */
void fl_pyjson_float(fl_strbuf *out, double f);

/* Appends the bytes s[0..n) of a string's text as they stand between the
 * quotes of json.dumps: escaped where Python escapes, UTF-8 as it is. */
void fl_pyjson_string_bytes(fl_strbuf *out, const char *s, size_t n);

#endif
