/* http_parse.c - strict HTTP/1.1 request heads and chunked bodies (see
 * http_parse.h). */
#include "server/http_parse.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

static int refuse(int *status, int code, char *msg, size_t msg_size, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

static int refuse(int *status, int code, char *msg, size_t msg_size, const char *fmt, ...)
{
    *status = code;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, msg_size, fmt, ap);
    va_end(ap);
    return -1;
}

/* RFC 9110 5.6.2: the bytes of a token (methods, header names). */
static int is_tchar(unsigned char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           (c && strchr("!#$%&'*+-.^_`|~", c));
}

/* RFC 9110 5.5: field-vchar, SP, HTAB and obs-text; no other control byte. */
static int is_value_byte(unsigned char c)
{
    return c == '\t' || (c >= 0x20 && c != 0x7f);
}

static int hex_value(unsigned char c)
{
    return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10
         : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

/* The line starting at pos: its length without the line end in *n and the
 * position after it in *next. 1: a whole line, 0: not all here yet, -1: a
 * CR that does not end the line. */
static int next_line(const char *buf, size_t len, size_t pos, size_t *n, size_t *next)
{
    for (size_t i = pos; i < len; i++) {
        if (buf[i] == '\n') {
            *n = i - pos;
            *next = i + 1;
            return 1;
        }
        if (buf[i] == '\r') {
            if (i + 1 == len)
                return 0;
            if (buf[i + 1] != '\n')
                return -1;
            *n = i - pos;
            *next = i + 2;
            return 1;
        }
    }
    return 0;
}

/* The target's path, percent-decoded; the query is not read by any route. */
static int parse_target(const char *t, size_t n, const char *method, fl_http_head *h, int *status,
                        char *msg, size_t msg_size)
{
    if (n == 1 && t[0] == '*') {
        if (strcmp(method, "OPTIONS") != 0)
            return refuse(status, 400, msg, msg_size, "the request target '*' is only for OPTIONS");
        strcpy(h->path, "*");
        return 0;
    }
    /* absolute-form (RFC 9112 3.2.2): the path starts after the authority */
    static const char *const schemes[] = { "http://", "https://" };
    for (int s = 0; s < 2; s++) {
        size_t k = strlen(schemes[s]);
        if (n >= k && strncasecmp(t, schemes[s], k) == 0) {
            const char *slash = memchr(t + k, '/', n - k);
            if (!slash)
                return refuse(status, 400, msg, msg_size, "the request target has no path");
            n -= (size_t)(slash - t);
            t = slash;
            break;
        }
    }
    if (t[0] != '/')
        return refuse(status, 400, msg, msg_size, "the request target must start with '/'");
    size_t out = 0;
    for (size_t i = 0; i < n && t[i] != '?'; i++) {
        unsigned char c = (unsigned char)t[i];
        if (c == '#')
            return refuse(status, 400, msg, msg_size, "a request target holds no fragment ('#')");
        if (c == '%') {
            int hi = i + 2 < n ? hex_value((unsigned char)t[i + 1]) : -1;
            int lo = i + 2 < n ? hex_value((unsigned char)t[i + 2]) : -1;
            if (hi < 0 || lo < 0)
                return refuse(status, 400, msg, msg_size, "the request target has a bad '%%' escape");
            c = (unsigned char)(hi * 16 + lo);
            if (c == 0)
                return refuse(status, 400, msg, msg_size, "the request target holds '%%00'");
            i += 2;
        }
        if (out + 1 >= sizeof h->path)
            return refuse(status, 414, msg, msg_size, "the request target is longer than %zu bytes",
                          sizeof h->path - 1);
        h->path[out++] = (char)c;
    }
    h->path[out] = '\0';
    return 0;
}

static int parse_request_line(const char *l, size_t n, fl_http_head *h, int *status, char *msg,
                              size_t msg_size)
{
    size_t m = 0;
    while (m < n && is_tchar((unsigned char)l[m]))
        m++;
    if (m == 0 || m >= n || l[m] != ' ')
        return refuse(status, 400, msg, msg_size, "the request line is not 'METHOD TARGET HTTP/1.x'");
    if (m >= sizeof h->method)
        return refuse(status, 501, msg, msg_size, "the method is not implemented");
    memcpy(h->method, l, m);
    h->method[m] = '\0';
    const char *t = l + m + 1;
    size_t tn = 0;
    while (t + tn < l + n && (unsigned char)t[tn] > 0x20 && (unsigned char)t[tn] < 0x7f)
        tn++;
    const char *v = t + tn;
    const size_t vn = (size_t)(l + n - v);
    if (tn == 0 || vn != 9 || v[0] != ' ')
        return refuse(status, 400, msg, msg_size, "the request line is not 'METHOD TARGET HTTP/1.x'");
    if (memcmp(v + 1, "HTTP/", 5) != 0 || v[7] != '.' || v[6] < '0' || v[6] > '9' || v[8] < '0' ||
        v[8] > '9')
        return refuse(status, 400, msg, msg_size, "the request line does not end in an HTTP version");
    if (v[6] != '1' || v[8] > '1')
        return refuse(status, 505, msg, msg_size, "HTTP/%c.%c is not supported (HTTP/1.0 and 1.1 are)",
                      v[6], v[8]);
    h->minor_version = v[8] - '0';
    h->keep_alive = h->minor_version == 1;
    return parse_target(t, tn, h->method, h, status, msg, msg_size);
}

/* Does the comma-separated list v[0, n) hold token (case-insensitively)? */
static int list_has(const char *v, size_t n, const char *token)
{
    const size_t k = strlen(token);
    size_t i = 0;
    while (i < n) {
        while (i < n && (v[i] == ' ' || v[i] == '\t' || v[i] == ','))
            i++;
        size_t start = i;
        while (i < n && v[i] != ',')
            i++;
        size_t end = i;
        while (end > start && (v[end - 1] == ' ' || v[end - 1] == '\t'))
            end--;
        if (end - start == k && strncasecmp(v + start, token, k) == 0)
            return 1;
    }
    return 0;
}

typedef struct seen {
    int content_length, transfer_encoding, host;
} seen;

static int parse_field(const char *l, size_t n, fl_http_head *h, seen *s, int *status, char *msg,
                       size_t msg_size)
{
    if (l[0] == ' ' || l[0] == '\t')
        return refuse(status, 400, msg, msg_size, "header line folding is not accepted");
    size_t k = 0;
    while (k < n && is_tchar((unsigned char)l[k]))
        k++;
    if (k == 0 || k >= n || l[k] != ':')
        return refuse(status, 400, msg, msg_size, "a header line is not 'Name: value' (no space before "
                      "the colon)");
    const char *name = l;
    size_t vs = k + 1, ve = n;
    while (vs < ve && (l[vs] == ' ' || l[vs] == '\t'))
        vs++;
    while (ve > vs && (l[ve - 1] == ' ' || l[ve - 1] == '\t'))
        ve--;
    for (size_t i = vs; i < ve; i++)
        if (!is_value_byte((unsigned char)l[i]))
            return refuse(status, 400, msg, msg_size, "header '%.*s' holds a control byte", (int)k, name);
    const char *v = l + vs;
    const size_t vn = ve - vs;
#define IS(field) (k == sizeof field - 1 && strncasecmp(name, field, k) == 0)
    if (IS("content-length")) {
        if (s->content_length++)
            return refuse(status, 400, msg, msg_size, "more than one Content-Length");
        if (vn == 0 || vn > 18)
            return refuse(status, 400, msg, msg_size, "Content-Length is not a length");
        long long x = 0;
        for (size_t i = 0; i < vn; i++) {
            if (v[i] < '0' || v[i] > '9')
                return refuse(status, 400, msg, msg_size, "Content-Length is not a length");
            x = x * 10 + (v[i] - '0');
        }
        h->content_length = x;
    } else if (IS("transfer-encoding")) {
        if (s->transfer_encoding++)
            return refuse(status, 400, msg, msg_size, "more than one Transfer-Encoding");
        if (vn != 7 || strncasecmp(v, "chunked", 7) != 0)
            return refuse(status, 501, msg, msg_size, "Transfer-Encoding '%.*s' is not implemented "
                          "(only 'chunked' is)", (int)(vn < 64 ? vn : 64), v);
        h->chunked = 1;
    } else if (IS("host")) {
        s->host++;
    } else if (IS("connection")) {
        if (list_has(v, vn, "close"))
            h->keep_alive = 0;
        else if (list_has(v, vn, "keep-alive"))
            h->keep_alive = 1;
    } else if (IS("expect")) {
        if (vn != 12 || strncasecmp(v, "100-continue", 12) != 0)
            return refuse(status, 417, msg, msg_size, "Expect '%.*s' cannot be met", (int)(vn < 64 ? vn : 64), v);
        h->expect_continue = 1;
    } else if (IS("authorization")) {
        if (vn >= sizeof h->authorization)
            return refuse(status, 431, msg, msg_size, "the Authorization header is too long");
        memcpy(h->authorization, v, vn);
        h->authorization[vn] = '\0';
    } else if (IS("origin") || IS("access-control-request-method") || IS("access-control-request-headers")) {
        char *dst = IS("origin") ? h->origin : IS("access-control-request-method") ? h->cors_method : h->cors_headers;
        const size_t cap = IS("origin") ? sizeof h->origin : IS("access-control-request-method")
                                                            ? sizeof h->cors_method : sizeof h->cors_headers;
        if (vn >= cap)
            return refuse(status, 431, msg, msg_size, "a CORS header is too long");
        memcpy(dst, v, vn);
        dst[vn] = '\0';
    }
#undef IS
    return 0;
}

int fl_http_parse_head(const char *buf, size_t len, fl_http_head *h, int *status, char *msg,
                       size_t msg_size)
{
    memset(h, 0, sizeof *h);
    h->content_length = -1;
    size_t pos = 0, n, next;
    int rc;
    /* RFC 9112 2.2: empty lines before a request line are ignored */
    while ((rc = next_line(buf, len, pos, &n, &next)) == 1 && n == 0 && pos < 8)
        pos = next;
    if (rc == 1 && n == 0)
        return refuse(status, 400, msg, msg_size, "empty lines instead of a request line");
    int lines = 0;
    seen s = { 0 };
    for (;;) {
        rc = next_line(buf, len, pos, &n, &next);
        if (rc < 0)
            return refuse(status, 400, msg, msg_size, "a bare CR in the request head");
        if (rc == 0 || next > FL_HTTP_MAX_HEAD_BYTES) {
            if (len <= FL_HTTP_MAX_HEAD_BYTES && rc == 0)
                return 0;
            return refuse(status, lines == 0 ? 414 : 431, msg, msg_size, "the request head is larger than "
                          "%d bytes", FL_HTTP_MAX_HEAD_BYTES);
        }
        const char *line = buf + pos;
        pos = next;
        if (lines == 0) {
            if (parse_request_line(line, n, h, status, msg, msg_size) != 0)
                return -1;
        } else if (n == 0) {
            break;
        } else if (lines > FL_HTTP_MAX_HEADERS) {
            return refuse(status, 431, msg, msg_size, "more than %d header fields", FL_HTTP_MAX_HEADERS);
        } else if (parse_field(line, n, h, &s, status, msg, msg_size) != 0) {
            return -1;
        }
        lines++;
    }
    if (s.transfer_encoding && s.content_length)
        return refuse(status, 400, msg, msg_size, "both Content-Length and Transfer-Encoding");
    if (s.transfer_encoding && h->minor_version == 0)
        return refuse(status, 400, msg, msg_size, "Transfer-Encoding in an HTTP/1.0 request");
    if (s.host > 1 || (h->minor_version == 1 && s.host == 0))
        return refuse(status, 400, msg, msg_size, "an HTTP/1.1 request needs exactly one Host header");
    return (int)pos;
}

enum {
    C_SIZE, C_SIZE_WS, C_EXT, C_SIZE_LF, C_DATA, C_DATA_CR, C_DATA_LF, C_TRAILER, C_TRAILER_LINE,
    C_TRAILER_LINE_LF, C_END_LF, C_DONE,
};

/* Longest chunk extension or trailer line accepted. */
#define CHUNK_LINE_MAX 4096
/* All trailers together: the head's limit. */
#define CHUNK_TRAILERS_MAX FL_HTTP_MAX_HEAD_BYTES

long fl_http_chunked_feed(fl_http_chunked *c, const char *in, size_t len,
                          void (*emit)(void *ctx, const char *data, size_t n), void *ctx, int *done,
                          char *msg, size_t msg_size)
{
    int status;
    size_t i = 0;
    while (i < len && c->state != C_DONE) {
        const unsigned char b = (unsigned char)in[i];
        switch (c->state) {
        case C_SIZE: {
            int x = hex_value(b);
            if (x >= 0) {
                if (++c->digits > 15)
                    return refuse(&status, 400, msg, msg_size, "a chunk size is too large");
                c->left = c->left * 16 + (uint64_t)x;
                i++;
                continue;
            }
            if (c->digits == 0)
                return refuse(&status, 400, msg, msg_size, "a chunk does not start with its size");
            if (b == ';') {
                c->state = C_EXT;
                c->line = 0;
            } else if (b == ' ' || b == '\t') {
                c->state = C_SIZE_WS; /* BWS, then only ';' or the line's end (RFC 9112 7.1.1) */
            } else if (b == '\r') {
                c->state = C_SIZE_LF;
            } else if (b == '\n') {
                c->state = c->left ? C_DATA : C_TRAILER;
            } else {
                return refuse(&status, 400, msg, msg_size, "a chunk size is not hexadecimal");
            }
            i++;
            continue;
        }
        case C_SIZE_WS:
            if (b == ';') {
                c->state = C_EXT;
                c->line = 0;
            } else if (b == '\r') {
                c->state = C_SIZE_LF;
            } else if (b == '\n') {
                c->state = c->left ? C_DATA : C_TRAILER;
            } else if (b != ' ' && b != '\t') {
                return refuse(&status, 400, msg, msg_size, "a chunk size is followed by more than an extension");
            }
            i++;
            continue;
        case C_EXT:
            if (b == '\r')
                c->state = C_SIZE_LF;
            else if (b == '\n')
                c->state = c->left ? C_DATA : C_TRAILER;
            else if (!is_value_byte(b) || ++c->line > CHUNK_LINE_MAX)
                return refuse(&status, 400, msg, msg_size, "a bad chunk extension");
            i++;
            continue;
        case C_SIZE_LF:
            if (b != '\n')
                return refuse(&status, 400, msg, msg_size, "a chunk size line does not end in CRLF");
            c->state = c->left ? C_DATA : C_TRAILER;
            i++;
            continue;
        case C_DATA: {
            size_t n = len - i < c->left ? len - i : (size_t)c->left;
            emit(ctx, in + i, n);
            c->left -= n;
            i += n;
            if (c->left == 0)
                c->state = C_DATA_CR;
            continue;
        }
        case C_DATA_CR:
        case C_DATA_LF:
            if (b == '\r' && c->state == C_DATA_CR)
                c->state = C_DATA_LF;
            else if (b == '\n')
                c->state = C_SIZE, c->digits = 0;
            else
                return refuse(&status, 400, msg, msg_size, "chunk data does not end in CRLF");
            i++;
            continue;
        case C_TRAILER:
            if (++c->trailers > CHUNK_TRAILERS_MAX)
                return refuse(&status, 400, msg, msg_size, "the trailers are too long");
            c->state = b == '\r' ? C_END_LF : b == '\n' ? C_DONE : C_TRAILER_LINE;
            c->line = 1;
            i++;
            continue;
        case C_TRAILER_LINE:
            if (b == '\r')
                c->state = C_TRAILER_LINE_LF;
            else if (b == '\n')
                c->state = C_TRAILER;
            else if (!is_value_byte(b) || ++c->line > CHUNK_LINE_MAX || ++c->trailers > CHUNK_TRAILERS_MAX)
                return refuse(&status, 400, msg, msg_size, "a bad trailer line");
            i++;
            continue;
        case C_TRAILER_LINE_LF:
        case C_END_LF:
            if (b != '\n')
                return refuse(&status, 400, msg, msg_size, "a trailer line does not end in CRLF");
            c->state = c->state == C_END_LF ? C_DONE : C_TRAILER;
            i++;
            continue;
        }
    }
    *done = c->state == C_DONE;
    return (long)i;
}
