/* http_parse.h - HTTP/1.1 request heads and chunked bodies, parsed strictly.
 *
 * Pure functions over bytes, no sockets: the server's event loop (http.c)
 * feeds them what it has read, and the fuzz target feeds them anything.
 * Strict where leniency lets one request hide another (RFC 9112 sections
 * 6.1-6.3 and 11.2): Content-Length with Transfer-Encoding, two
 * Content-Lengths, whitespace before a colon, line folding, control bytes
 * in a value, a transfer coding other than chunked, HTTP/1.1 without
 * exactly one Host are all refused, and the server closes the connection
 * after the error response. Lines end in CRLF or a bare LF (RFC 9112 2.2
 * lets a recipient accept LF); a bare CR is an error. */
#ifndef FL_HTTP_PARSE_H
#define FL_HTTP_PARSE_H

#include <stddef.h>
#include <stdint.h>

/* h11's (uvicorn's) limit on an incomplete head; more is 431. */
#define FL_HTTP_MAX_HEAD_BYTES 16384
#define FL_HTTP_MAX_HEADERS 100

typedef struct fl_http_head {
    char method[16];
    char path[2048];          /* the target's path, percent-decoded, NUL-free */
    int minor_version;        /* HTTP/1.0 or HTTP/1.1 */
    int keep_alive;           /* from the version and Connection */
    long long content_length; /* -1: none */
    int chunked;              /* Transfer-Encoding: chunked */
    int expect_continue;      /* Expect: 100-continue */
    char authorization[512];  /* the Authorization value, or "" (longer ones are refused as 431) */
    char origin[512];         /* Origin, or "" (CORS; longer ones are refused as 431) */
    char cors_method[32];     /* Access-Control-Request-Method, or "" (a preflight's) */
    char cors_headers[1024];  /* Access-Control-Request-Headers, or "" */
} fl_http_head;

/* Parses one request head from buf[0, len). Returns the head's length in
 * bytes (> 0) when complete, 0 when more bytes are needed (len still within
 * the limit), or -1 with *status (400, 414, 417, 431, 501 or 505) and a
 * message in msg[msg_size]. */
int fl_http_parse_head(const char *buf, size_t len, fl_http_head *h, int *status, char *msg,
                       size_t msg_size);

/* Incremental decoder of a chunked body (RFC 9112 7.1): sizes in hex,
 * extensions skipped, trailers read and dropped. */
typedef struct fl_http_chunked {
    int state;
    uint64_t left;            /* bytes left in the current chunk */
    int digits;
    size_t line;              /* bytes of the current extension or trailer line */
    size_t trailers;          /* trailer bytes so far */
} fl_http_chunked;

/* Feeds in[0, len): appends body bytes through emit(ctx, data, n), returns
 * the bytes consumed (all of them unless the body ended inside in), or -1
 * on a framing error (msg says which). *done is set once the last chunk and
 * the trailers are read. */
long fl_http_chunked_feed(fl_http_chunked *c, const char *in, size_t len,
                          void (*emit)(void *ctx, const char *data, size_t n), void *ctx, int *done,
                          char *msg, size_t msg_size);

#endif
