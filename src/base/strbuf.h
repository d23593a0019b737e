/* strbuf.h - a growable byte buffer, always NUL-terminated. */
#ifndef FL_STRBUF_H
#define FL_STRBUF_H

#include <stddef.h>

typedef struct fl_strbuf {
    char *data;   /* NUL-terminated; NULL until the first append */
    size_t len;
    size_t cap;
} fl_strbuf;

void fl_strbuf_append(fl_strbuf *b, const void *data, size_t n);
void fl_strbuf_append_str(fl_strbuf *b, const char *s);
void fl_strbuf_append_char(fl_strbuf *b, char c);
void fl_strbuf_appendf(fl_strbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Makes room for n more bytes and returns where they go (len unchanged). */
char *fl_strbuf_reserve(fl_strbuf *b, size_t n);
void fl_strbuf_clear(fl_strbuf *b);
void fl_strbuf_free(fl_strbuf *b);
/* Hands the buffer to the caller (free() it) and empties b. Never NULL. */
char *fl_strbuf_take(fl_strbuf *b);

#endif
