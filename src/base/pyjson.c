/* pyjson.c - Python's json.dumps of floats and strings (see pyjson.h). */
#include "base/pyjson.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void fl_pyjson_float(fl_strbuf *out, double f)
{
    if (isnan(f) || isinf(f)) {
        fl_strbuf_append_str(out, isnan(f) ? "NaN" : f > 0 ? "Infinity" : "-Infinity");
        return;
    }
    /* the shortest round-tripping digits: "d.ddde[+-]X" from %.*e, 1 to 17
     * significant digits (17 always round-trips a double) */
    char sci[40];
    for (int prec = 0; prec <= 16; prec++) {
        snprintf(sci, sizeof sci, "%.*e", prec, f);
        if (strtod(sci, NULL) == f)
            break;
    }
    const char *p = sci;
    if (*p == '-') {
        fl_strbuf_append_char(out, '-');
        p++;
    }
    char digits[24];
    size_t nd = 0;
    for (; *p && *p != 'e'; p++)
        if (*p != '.')
            digits[nd++] = *p;
    while (nd > 1 && digits[nd - 1] == '0')
        nd--;
    const int exp = atoi(p + 1); /* value = d.ddd x 10^exp */
    if (exp < -4 || exp >= 16) {
        fl_strbuf_append_char(out, digits[0]);
        if (nd > 1) {
            fl_strbuf_append_char(out, '.');
            fl_strbuf_append(out, digits + 1, nd - 1);
        }
        fl_strbuf_appendf(out, "e%c%02d", exp < 0 ? '-' : '+', exp < 0 ? -exp : exp);
        return;
    }
    if (exp < 0) { /* 0.000ddd */
        fl_strbuf_append_str(out, "0.");
        for (int i = 0; i < -exp - 1; i++)
            fl_strbuf_append_char(out, '0');
        fl_strbuf_append(out, digits, nd);
        return;
    }
    const size_t whole = (size_t)exp + 1; /* digits before the point */
    for (size_t i = 0; i < whole; i++)
        fl_strbuf_append_char(out, i < nd ? digits[i] : '0');
    fl_strbuf_append_char(out, '.');
    if (nd > whole)
        fl_strbuf_append(out, digits + whole, nd - whole);
    else
        fl_strbuf_append_char(out, '0');
}

void fl_pyjson_string_bytes(fl_strbuf *out, const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        const unsigned char c = (unsigned char)s[i];
        switch (c) {
        case '"': fl_strbuf_append_str(out, "\\\""); break;
        case '\\': fl_strbuf_append_str(out, "\\\\"); break;
        case '\b': fl_strbuf_append_str(out, "\\b"); break;
        case '\f': fl_strbuf_append_str(out, "\\f"); break;
        case '\n': fl_strbuf_append_str(out, "\\n"); break;
        case '\r': fl_strbuf_append_str(out, "\\r"); break;
        case '\t': fl_strbuf_append_str(out, "\\t"); break;
        default:
            if (c < 0x20)
                fl_strbuf_appendf(out, "\\u%04x", c);
            else
                fl_strbuf_append_char(out, (char)c);
        }
    }
}
