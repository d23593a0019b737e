/* fuzz_http.c - request heads and chunked bodies (server/http_parse.c): a
 * head is parsed; when it is whole and chunked, the rest is decoded, once
 * whole and once a byte at a time, and both must agree. */
#include <stdint.h>
#include <string.h>

#include "base/strbuf.h"
#include "server/http_parse.h"

static void collect(void *ctx, const char *data, size_t n)
{
    fl_strbuf_append(ctx, data, n);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fl_http_head h;
    int status;
    char msg[256];
    int n = fl_http_parse_head((const char *)data, size, &h, &status, msg, sizeof msg);
    if (n < 0 && (status < 400 || status > 505 || !msg[0]))
        __builtin_trap();
    if (n <= 0 || !h.chunked)
        return 0;
    const char *rest = (const char *)data + n;
    const size_t left = size - (size_t)n;
    fl_strbuf whole = { 0 }, bytewise = { 0 };
    fl_http_chunked a = { 0 }, b = { 0 };
    int done_a = 0, done_b = 0, err_b = 0;
    long used_a = fl_http_chunked_feed(&a, rest, left, collect, &whole, &done_a, msg, sizeof msg);
    size_t used_b = 0;
    for (size_t i = 0; i < left && !done_b; i++) {
        long k = fl_http_chunked_feed(&b, rest + i, 1, collect, &bytewise, &done_b, msg, sizeof msg);
        if (k < 0) {
            err_b = 1;
            break;
        }
        used_b += (size_t)k;
    }
    if ((used_a < 0) != err_b || (used_a >= 0 && (done_a != done_b || (size_t)used_a != used_b)) ||
        whole.len != bytewise.len || (whole.len && memcmp(whole.data, bytewise.data, whole.len) != 0))
        __builtin_trap();
    fl_strbuf_free(&whole);
    fl_strbuf_free(&bytewise);
    return 0;
}
