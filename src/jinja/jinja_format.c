/* jinja_format.c - `fmt % args`, Python's printf-style string formatting,
 * which Jinja's `%` on a string (and the format filter) is.
 *
 * Python's rules: a tuple gives one argument per conversion; any other
 * value is the one argument, and a dict (or list: anything Python sees as
 * a mapping) also answers %(key)s and is never "not all converted".
 * Widths and precisions count code points. Everything is checked against
 * the caller's byte limit before it is written, widths included. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "base/utf8.h"
#include "jinja/jinja_value.h"

typedef struct spec {
    int left, plus, space, alt, zero;  /* the flags - + space # 0 */
    int64_t width, prec;               /* -1: not given */
    char conv;
} spec;

typedef struct formatter {
    fl_strbuf *out;
    size_t max;
    fl_error *err;
    const jv *args;   /* the positional arguments */
    size_t nargs, next;
    jv mapping;       /* for %(key): the dict, else undefined */
} formatter;

static int room(const formatter *f, size_t add)
{
    return jv_room(f->out->len, add, f->max, f->err);
}

static size_t chars(const char *s, size_t n)
{
    jv v = { .t = JV_STR, .s = { s, n } };
    return jv_str_chars(v);
}

/* Appends s[0..n) padded to the width with fill (on the right for '-'). */
static int pad(const formatter *f, const spec *sp, const char *s, size_t n, char fill)
{
    const size_t len = chars(s, n);
    const size_t gap = sp->width > 0 && (uint64_t)sp->width > len ? (size_t)sp->width - len : 0;
    if (room(f, n + gap) != 0)
        return -1;
    for (size_t i = 0; !sp->left && i < gap; i++)
        fl_strbuf_append_char(f->out, fill);
    fl_strbuf_append(f->out, s, n);
    for (size_t i = 0; sp->left && i < gap; i++)
        fl_strbuf_append_char(f->out, ' ');
    return 0;
}

/* ascii(): repr with everything past ASCII escaped as Python does. */
static void ascii_escape(fl_strbuf *out, const char *s, size_t n)
{
    for (size_t i = 0; i < n;) {
        size_t len = 1;
        int32_t cp = (unsigned char)s[i] < 0x80 ? (unsigned char)s[i]
                   : fl_utf8_next((const unsigned char *)s + i, n - i, &len);
        if (cp < 0)
            cp = 0xfffd;
        if (cp < 0x80)
            fl_strbuf_append_char(out, (char)cp);
        else if (cp < 0x100)
            fl_strbuf_appendf(out, "\\x%02x", cp);
        else if (cp < 0x10000)
            fl_strbuf_appendf(out, "\\u%04x", cp);
        else
            fl_strbuf_appendf(out, "\\U%08x", cp);
        i += len;
    }
}

/* %s %r %a: the text of v, cut to the precision, padded to the width. */
static int format_text(const formatter *f, const spec *sp, jv v)
{
    fl_strbuf text = { 0 };
    int rc = sp->conv == 's' ? jv_to_string(&text, v, f->max, f->err)
                             : jv_to_repr(&text, v, f->max, f->err);
    if (rc == 0 && sp->conv == 'a') {
        fl_strbuf escaped = { 0 };
        ascii_escape(&escaped, text.data ? text.data : "", text.len);
        fl_strbuf_free(&text);
        text = escaped;
    }
    size_t n = text.len;
    if (rc == 0 && sp->prec >= 0) {
        jv s = { .t = JV_STR, .s = { text.data ? text.data : "", text.len } };
        n = jv_str_char_offset(s, (size_t)sp->prec);
    }
    if (rc == 0)
        rc = pad(f, sp, text.data ? text.data : "", n, ' ');
    fl_strbuf_free(&text);
    return rc;
}

/* %d %i %u %x %X %o of an integer: sign, prefix, digits (at least the
 * precision's), zero-padded after the sign for the 0 flag. */
static int format_int(const formatter *f, const spec *sp, int64_t i)
{
    const uint64_t mag = i < 0 ? 0 - (uint64_t)i : (uint64_t)i;
    char digits[32];
    const char conv = sp->conv == 'i' || sp->conv == 'u' ? 'd' : sp->conv;
    snprintf(digits, sizeof digits, conv == 'd' ? "%llu" : conv == 'o' ? "%llo" : conv == 'x' ? "%llx" : "%llX",
             (unsigned long long)mag);
    const char *sign = i < 0 ? "-" : sp->plus ? "+" : sp->space ? " " : "";
    const char *prefix = !sp->alt || conv == 'd' ? "" : conv == 'o' ? "0o" : conv == 'x' ? "0x" : "0X";
    const size_t ndigits = strlen(digits);
    size_t zeros = sp->prec > 0 && (uint64_t)sp->prec > ndigits ? (size_t)sp->prec - ndigits : 0;
    const size_t body = strlen(sign) + strlen(prefix) + zeros + ndigits;
    if (sp->zero && !sp->left && sp->width > 0 && (uint64_t)sp->width > body)
        zeros += (size_t)sp->width - body;
    if (room(f, zeros) != 0)
        return -1;
    fl_strbuf text = { 0 };
    fl_strbuf_append_str(&text, sign);
    fl_strbuf_append_str(&text, prefix);
    for (size_t k = 0; k < zeros; k++)
        fl_strbuf_append_char(&text, '0');
    fl_strbuf_append_str(&text, digits);
    int rc = pad(f, sp, text.data, text.len, ' ');
    fl_strbuf_free(&text);
    return rc;
}

/* %e %E %f %F %g %G: C's printf formats these as Python does, but for
 * NaN's sign, which Python never prints. */
static int format_float(const formatter *f, const spec *sp, double x)
{
    if (isnan(x))
        x = NAN;
    char cfmt[32];
    snprintf(cfmt, sizeof cfmt, "%%%s%s%s%s%s*.*%c", sp->left ? "-" : "", sp->plus ? "+" : "",
             sp->space ? " " : "", sp->alt ? "#" : "", sp->zero ? "0" : "", sp->conv);
    const int width = sp->width > 0 ? (int)sp->width : 0; /* the caller bounds both */
    const int prec = sp->prec >= 0 ? (int)sp->prec : 6;
    const int len = snprintf(NULL, 0, cfmt, width, prec, x);
    if (len < 0 || room(f, (size_t)len) != 0)
        return len < 0 ? fl_fail(f->err, "cannot format %g", x) : -1;
    char *at = fl_strbuf_reserve(f->out, (size_t)len + 1);
    snprintf(at, (size_t)len + 1, cfmt, width, prec, x);
    f->out->len += (size_t)len;
    return 0;
}

static int format_one(const formatter *f, const spec *sp, jv v)
{
    switch (sp->conv) {
    case 's': case 'r': case 'a':
        return format_text(f, sp, v);
    case 'd': case 'i': case 'u':
        if (v.t == JV_FLOAT) {
            if (!(v.f >= -0x1p63 && v.f < 0x1p63))
                return fl_fail(f->err, "integer overflow in '%%%c'", sp->conv);
            return format_int(f, sp, (int64_t)v.f);
        }
        if (v.t != JV_INT && v.t != JV_BOOL)
            return fl_fail(f->err, "%%%c format: a real number is required, not %s", sp->conv,
                           jv_type_name(v));
        return format_int(f, sp, v.i);
    case 'x': case 'X': case 'o':
        if (v.t != JV_INT && v.t != JV_BOOL)
            return fl_fail(f->err, "%%%c format: an integer is required, not %s", sp->conv,
                           jv_type_name(v));
        return format_int(f, sp, v.i);
    case 'e': case 'E': case 'f': case 'F': case 'g': case 'G':
        if (!jv_is_number(v))
            return fl_fail(f->err, "must be real number, not %s", jv_type_name(v));
        return format_float(f, sp, jv_number(v));
    case 'c': {
        char buf[4];
        if (v.t == JV_STR && jv_str_chars(v) == 1)
            return pad(f, sp, v.s.p, v.s.n, ' ');
        if (v.t != JV_INT && v.t != JV_BOOL)
            return fl_fail(f->err, "%%c requires an int or a unicode character, not %s", jv_type_name(v));
        if (v.i < 0 || v.i > 0x10ffff)
            return fl_fail(f->err, "%%c arg not in range(0x110000)");
        return pad(f, sp, buf, (size_t)fl_utf8_encode((uint32_t)v.i, buf), ' ');
    }
    default:
        return 0; /* the caller checked the conversion */
    }
}

/* The next positional argument, for a conversion or a '*'. */
static int next_arg(formatter *f, jv *v)
{
    if (f->next >= f->nargs)
        return fl_fail(f->err, "not enough arguments for format string");
    *v = f->args[f->next++];
    return 0;
}

/* A width or precision: digits, '*' (the next argument, an int; *negative
 * is set if it was below 0, and its magnitude is kept), or nothing (-1).
 * At most the byte limit, since a width writes that many bytes. */
static int read_number(formatter *f, const char *s, size_t n, size_t *i, int64_t *out, int *negative)
{
    *out = -1;
    if (*i < n && s[*i] == '*') {
        (*i)++;
        jv v = { .t = JV_UNDEF };
        if (next_arg(f, &v) != 0)
            return -1;
        if (v.t != JV_INT && v.t != JV_BOOL)
            return fl_fail(f->err, "* wants int");
        *negative = v.i < 0;
        *out = v.i == INT64_MIN ? INT64_MAX : v.i < 0 ? -v.i : v.i;
    } else if (*i < n && s[*i] >= '0' && s[*i] <= '9') {
        for (*out = 0; *i < n && s[*i] >= '0' && s[*i] <= '9' && *out <= (int64_t)f->max; (*i)++)
            *out = *out * 10 + (s[*i] - '0');
    }
    if (*out > (int64_t)f->max)
        return fl_fail(f->err, "the text would be longer than %zu MiB", (size_t)JINJA_MAX_BYTES >> 20);
    return 0;
}

int jv_format(fl_strbuf *out, jv fmt, jv args, size_t max, fl_error *err)
{
    const int tuple = args.t == JV_LIST && args.l->is_tuple;
    formatter f = { .out = out, .max = max, .err = err, .args = tuple ? args.l->items : &args,
                    .nargs = tuple ? args.l->n : 1,
                    .mapping = args.t == JV_DICT ? args : (jv){ .t = JV_UNDEF } };
    /* Python takes any non-tuple with item access (a dict, a list, Jinja's
     * undefined) for a mapping, which is never "not all converted" */
    const int mapping_like = !tuple && (args.t == JV_DICT || args.t == JV_LIST || args.t == JV_UNDEF);
    const char *s = fmt.s.p;
    const size_t n = fmt.s.n;
    for (size_t i = 0; i < n;) {
        if (s[i] != '%') {
            const char *pct = memchr(s + i, '%', n - i);
            const size_t run = pct ? (size_t)(pct - (s + i)) : n - i;
            if (room(&f, run) != 0)
                return -1;
            fl_strbuf_append(out, s + i, run);
            i += run;
            continue;
        }
        i++;
        spec sp = { .width = -1, .prec = -1 };
        jv v = { .t = JV_UNDEF };
        int keyed = 0;
        if (i < n && s[i] == '(') { /* %(key)s, the key's parentheses nesting */
            size_t from = ++i;
            for (int depth = 1; i < n && (depth > 1 || s[i] != ')'); i++)
                depth += s[i] == '(' ? 1 : s[i] == ')' ? -1 : 0;
            if (i >= n)
                return fl_fail(err, "incomplete format key");
            if (f.mapping.t != JV_DICT)
                return fl_fail(err, "format requires a mapping");
            const jv *hit = jv_dict_find(f.mapping.d, s + from, i - from);
            if (!hit)
                return fl_fail(err, "KeyError: '%.*s'", (int)(i - from > 200 ? 200 : i - from), s + from);
            v = *hit;
            keyed = 1;
            f.next = f.nargs; /* after a key, Python has no positional arguments left */
            i++;
        }
        for (; i < n && s[i] && strchr("-+ #0", s[i]); i++) {
            sp.left |= s[i] == '-';
            sp.plus |= s[i] == '+';
            sp.space |= s[i] == ' ';
            sp.alt |= s[i] == '#';
            sp.zero |= s[i] == '0';
        }
        int negative = 0;
        if (read_number(&f, s, n, &i, &sp.width, &negative) != 0)
            return -1;
        sp.left |= negative; /* a negative '*' width aligns left */
        if (i < n && s[i] == '.') {
            i++;
            if (read_number(&f, s, n, &i, &sp.prec, &negative) != 0)
                return -1;
            sp.prec = negative || sp.prec < 0 ? 0 : sp.prec; /* '.' alone and '.*' below 0 are 0 */
        }
        while (i < n && (s[i] == 'h' || s[i] == 'l' || s[i] == 'L')) /* accepted and ignored */
            i++;
        if (i >= n)
            return fl_fail(err, "incomplete format");
        sp.conv = s[i++];
        if (sp.conv == '%') {
            if (room(&f, 1) != 0)
                return -1;
            fl_strbuf_append_char(out, '%');
            continue;
        }
        if (!strchr("sradiuxXoeEfFgGc", sp.conv))
            return fl_fail(err, "unsupported format character '%c' (0x%x) at index %zu",
                           sp.conv >= 0x20 && sp.conv < 0x7f ? sp.conv : '?', (unsigned char)sp.conv,
                           chars(s, i - 1));
        if (!keyed && next_arg(&f, &v) != 0)
            return -1;
        if (format_one(&f, &sp, v) != 0)
            return -1;
    }
    if (f.next < f.nargs && !mapping_like)
        return fl_fail(err, "not all arguments converted during string formatting");
    return 0;
}
