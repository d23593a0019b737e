/* strbuf.c - growable byte buffer (see strbuf.h). */
#include "base/strbuf.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"

char *fl_strbuf_reserve(fl_strbuf *b, size_t n)
{
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 64;
        while (b->len + n + 1 > cap)
            cap *= 2;
        b->data = fl_realloc(b->data, cap);
        b->cap = cap;
    }
    return b->data + b->len;
}

void fl_strbuf_append(fl_strbuf *b, const void *data, size_t n)
{
    char *at = fl_strbuf_reserve(b, n);
    if (n)
        memcpy(at, data, n);
    b->len += n;
    b->data[b->len] = '\0';
}

void fl_strbuf_append_str(fl_strbuf *b, const char *s)
{
    fl_strbuf_append(b, s, strlen(s));
}

void fl_strbuf_append_char(fl_strbuf *b, char c)
{
    fl_strbuf_append(b, &c, 1);
}

void fl_strbuf_appendf(fl_strbuf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n <= 0)
        return;
    char *at = fl_strbuf_reserve(b, (size_t)n);
    va_start(ap, fmt);
    vsnprintf(at, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

void fl_strbuf_clear(fl_strbuf *b)
{
    b->len = 0;
    if (b->data)
        b->data[0] = '\0';
}

void fl_strbuf_free(fl_strbuf *b)
{
    free(b->data);
    memset(b, 0, sizeof *b);
}

char *fl_strbuf_take(fl_strbuf *b)
{
    char *d = b->data ? b->data : fl_strdup("");
    memset(b, 0, sizeof *b);
    return d;
}
