/* utf8.h - UTF-8 decoding with the standard treatment of bad bytes.
 *
 * Invalid input becomes U+FFFD, one per "maximal subpart" (the practice of
 * Unicode ch. 3, WHATWG's TextDecoder, Python's errors="replace" and Rust's
 * from_utf8_lossy), so flashlm cleans bytes exactly as HF's stack does. */
#ifndef FL_UTF8_H
#define FL_UTF8_H

#include <stddef.h>
#include <stdint.h>

#include "base/strbuf.h"

#define FL_UTF8_INVALID (-1)     /* *len bytes form an invalid maximal subpart */
#define FL_UTF8_INCOMPLETE (-2)  /* the input ends inside a valid-so-far sequence */

/* Decodes the sequence at s (n > 0 bytes available): returns the code point
 * and sets *len, or returns FL_UTF8_INVALID / FL_UTF8_INCOMPLETE. */
int32_t fl_utf8_next(const unsigned char *s, size_t n, size_t *len);

/* Whether s[0..n) is well-formed UTF-8 throughout (no invalid or
 * incomplete sequence). */
int fl_utf8_valid(const char *s, size_t n);

/* Appends s[0..n) to out with invalid subparts replaced by U+FFFD. If final
 * is 0, a trailing incomplete sequence is not consumed (it may complete with
 * later bytes). Returns the number of bytes consumed. */
size_t fl_utf8_append_lossy(fl_strbuf *out, const unsigned char *s, size_t n, int final);

/* Encodes cp as UTF-8 into buf (4 bytes of room); returns the length. */
int fl_utf8_encode(uint32_t cp, char *buf);

#endif
