/* json_rewrite.h - a JSON value read a byte at a time and written again as
 * Python's json.dumps(value, ensure_ascii=False) writes it.
 *
 * vLLM's tool parsers json.loads a call's arguments from the model's text
 * and json.dumps them into the reply, so a client sees {"city": "Paris"}
 * however the model spaced or escaped it. Reading a byte at a time, the
 * rewrite is written as the value comes (a number once it ends), so the
 * argument fragments of a streamed reply concatenate to the arguments of
 * the same reply whole, and a value that turns out malformed is caught at
 * the byte that breaks it.
 *
 * As strict as json.loads: RFC 8259 (no comments, trailing commas, raw
 * control characters in strings, leading zeros); Python's NaN and Infinity
 * literals are not taken. Written as json.dumps: ", " and ": " separators,
 * integers as their digits, floats as repr() (base/pyjson.h), strings
 * with ", \, \b \f \n \r \t and other control characters escaped and all
 * else as UTF-8. Where it differs: every member of an object is written,
 * a duplicate key too (Python keeps the last value, at the first key's
 * place), and a lone surrogate escape stays an escape (Python would write
 * a code unit that is not UTF-8). Containers nest at most
 * FL_JSON_MAX_DEPTH deep. */
#ifndef FL_JSON_REWRITE_H
#define FL_JSON_REWRITE_H

#include <stdint.h>

#include "base/strbuf.h"

#define FL_JSON_MAX_DEPTH 128

typedef enum fl_json_status {
    FL_JSON_MORE,         /* the value goes on */
    FL_JSON_DONE,         /* the byte ended the value */
    FL_JSON_DONE_BEFORE,  /* the value (a number) ended before the byte, which is not read */
    FL_JSON_ERROR,        /* the byte breaks the value */
} fl_json_status;

typedef struct fl_json_rewrite {
    int decode;                     /* a string whose value, not JSON, goes out */
    int state;
    int depth;
    char open[FL_JSON_MAX_DEPTH];   /* '{' or '[' of each container around the byte */
    int in_key;                     /* the string being read is an object's key */
    int esc;                        /* 0, 1 after a backslash, 2..5 \u's hex digits read + 2 */
    uint32_t unit;                  /* the \u code unit being read */
    uint32_t high;                  /* a high surrogate waiting for its low half, or 0 */
    int num;                        /* the number's grammar state */
    fl_strbuf digits;               /* the number's text */
    const char *word;               /* the literal being matched (true, false, null) */
    int word_at;
} fl_json_rewrite;

void fl_json_rewrite_init(fl_json_rewrite *r);
/* Begins a value; with decode, it must be a string and out gets its text
 * (UTF-8; a lone surrogate as U+FFFD), else out gets the rewritten JSON. */
void fl_json_rewrite_start(fl_json_rewrite *r, int decode);
/* Reads byte c, appending what it completes to out. After DONE,
 * DONE_BEFORE or ERROR the value is over: start another. */
fl_json_status fl_json_rewrite_byte(fl_json_rewrite *r, char c, fl_strbuf *out);
void fl_json_rewrite_free(fl_json_rewrite *r);

#endif
