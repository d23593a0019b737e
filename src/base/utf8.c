/* utf8.c - UTF-8 decoding and lossy cleaning (see utf8.h). */
#include "base/utf8.h"

int32_t fl_utf8_next(const unsigned char *s, size_t n, size_t *len)
{
    const unsigned char b = s[0];
    if (b < 0x80) {
        *len = 1;
        return b;
    }
    int need;
    unsigned char lo = 0x80, hi = 0xbf; /* allowed range of the second byte */
    int32_t cp;
    if (b >= 0xc2 && b <= 0xdf) {
        need = 1;
        cp = b & 0x1f;
    } else if (b >= 0xe0 && b <= 0xef) {
        need = 2;
        cp = b & 0x0f;
        if (b == 0xe0)
            lo = 0xa0; /* no overlongs */
        if (b == 0xed)
            hi = 0x9f; /* no surrogates */
    } else if (b >= 0xf0 && b <= 0xf4) {
        need = 3;
        cp = b & 0x07;
        if (b == 0xf0)
            lo = 0x90;
        if (b == 0xf4)
            hi = 0x8f; /* nothing past U+10FFFF */
    } else {
        *len = 1;
        return FL_UTF8_INVALID;
    }
    for (int i = 1; i <= need; i++) {
        if ((size_t)i >= n) {
            *len = (size_t)i;
            return FL_UTF8_INCOMPLETE;
        }
        const unsigned char c = s[i];
        if (c < (i == 1 ? lo : 0x80) || c > (i == 1 ? hi : 0xbf)) {
            *len = (size_t)i; /* the maximal subpart ends before c */
            return FL_UTF8_INVALID;
        }
        cp = (cp << 6) | (c & 0x3f);
    }
    *len = (size_t)need + 1;
    return cp;
}

size_t fl_utf8_append_lossy(fl_strbuf *out, const unsigned char *s, size_t n, int final)
{
    if (n == 0) { /* s may be NULL (an empty buffer's data): no pointer arithmetic on it */
        fl_strbuf_append(out, "", 0);
        return 0;
    }
    size_t i = 0, run = 0; /* s[run..i) is valid and not yet appended */
    while (i < n) {
        size_t len;
        int32_t cp = fl_utf8_next(s + i, n - i, &len);
        if (cp >= 0) {
            i += len;
            continue;
        }
        if (cp == FL_UTF8_INCOMPLETE && !final)
            break;
        fl_strbuf_append(out, s + run, i - run);
        fl_strbuf_append(out, "\xef\xbf\xbd", 3);
        i += len;
        run = i;
    }
    fl_strbuf_append(out, s + run, i - run);
    return i;
}

int fl_utf8_encode(uint32_t cp, char *buf)
{
    if (cp < 0x80) {
        buf[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        buf[0] = (char)(0xc0 | (cp >> 6));
        buf[1] = (char)(0x80 | (cp & 0x3f));
        return 2;
    }
    if (cp < 0x10000) {
        buf[0] = (char)(0xe0 | (cp >> 12));
        buf[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
        buf[2] = (char)(0x80 | (cp & 0x3f));
        return 3;
    }
    buf[0] = (char)(0xf0 | (cp >> 18));
    buf[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
    buf[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
    buf[3] = (char)(0x80 | (cp & 0x3f));
    return 4;
}

int fl_utf8_valid(const char *s, size_t n)
{
    for (size_t i = 0; i < n;) {
        size_t len;
        if (fl_utf8_next((const unsigned char *)s + i, n - i, &len) < 0)
            return 0;
        i += len;
    }
    return 1;
}
