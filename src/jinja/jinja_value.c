/* jinja_value.c - values: construction, truthiness, equality and order,
 * Python-style str() and repr(), JSON (tojson), and conversion from
 * jansson.
 *
 * Equality, str() and JSON recurse into lists and dicts, and values can nest
 * deeper than the template does (a namespace can hold itself), so they stop
 * at JINJA_MAX_DEPTH; str() and JSON also stop at their caller's length. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "base/pyjson.h"
#include "base/utf8.h"
#include "jinja/jinja_value.h"

jv jv_str(fl_arena *a, const char *s, size_t n)
{
    return (jv){ .t = JV_STR, .s = { fl_arena_strndup(a, s, n), n } };
}

jv jv_cstr(const char *s)
{
    return (jv){ .t = JV_STR, .s = { s, strlen(s) } };
}

jv jv_list(fl_arena *a)
{
    return (jv){ .t = JV_LIST, .l = fl_arena_alloc(a, sizeof(jlist)) };
}

jv jv_dict(fl_arena *a)
{
    return (jv){ .t = JV_DICT, .d = fl_arena_alloc(a, sizeof(jdict)) };
}

void jv_list_push(fl_arena *a, jlist *l, jv v)
{
    if (l->n == l->cap) {
        l->cap = l->cap ? l->cap * 2 : 8;
        jv *grown = fl_arena_alloc(a, l->cap * sizeof(jv));
        if (l->n)
            memcpy(grown, l->items, l->n * sizeof(jv));
        l->items = grown;
    }
    l->items[l->n++] = v;
}

jv *jv_dict_find(const jdict *d, const char *key, size_t n)
{
    for (size_t i = 0; i < d->n; i++)
        if (d->keys[i].s.n == n && memcmp(d->keys[i].s.p, key, n) == 0)
            return &d->vals[i];
    return NULL;
}

void jv_dict_set(fl_arena *a, jdict *d, jv key, jv val)
{
    jv *slot = jv_dict_find(d, key.s.p, key.s.n);
    if (slot) {
        *slot = val;
        return;
    }
    if (d->n == d->cap) {
        d->cap = d->cap ? d->cap * 2 : 8;
        jv *keys = fl_arena_alloc(a, d->cap * sizeof(jv)), *vals = fl_arena_alloc(a, d->cap * sizeof(jv));
        if (d->n) {
            memcpy(keys, d->keys, d->n * sizeof(jv));
            memcpy(vals, d->vals, d->n * sizeof(jv));
        }
        d->keys = keys;
        d->vals = vals;
    }
    d->keys[d->n] = key;
    d->vals[d->n++] = val;
}

int jv_truthy(jv v)
{
    switch (v.t) {
    case JV_FUNC: return 1;
    case JV_BOOL:
    case JV_INT: return v.i != 0;
    case JV_FLOAT: return v.f != 0.0;
    case JV_STR: return v.s.n != 0;
    case JV_LIST: return v.l->n != 0;
    case JV_DICT: return v.d->n != 0 || v.d->is_namespace;
    default: return 0;
    }
}

int jv_is_number(jv v)
{
    return v.t == JV_INT || v.t == JV_FLOAT || v.t == JV_BOOL;
}

double jv_number(jv v)
{
    return v.t == JV_FLOAT ? v.f : (double)v.i;
}

static int too_deep(fl_error *err)
{
    return fl_fail(err, "a value nests deeper than %d levels", JINJA_MAX_DEPTH);
}

uint64_t jv_range_len(int64_t from, int64_t to, int64_t step)
{
    /* the distance in unsigned arithmetic, since to - from can overflow,
     * and so can stepping past the last item when step is large */
    if (step > 0)
        return from < to ? ((uint64_t)to - (uint64_t)from - 1) / (uint64_t)step + 1 : 0;
    return from > to ? ((uint64_t)from - (uint64_t)to - 1) / (0 - (uint64_t)step) + 1 : 0;
}

int jv_room(size_t have, size_t add, size_t max, fl_error *err)
{
    if (add <= max && have <= max - add)
        return 0;
    return fl_fail(err, "the text would be longer than %zu MiB", JINJA_MAX_BYTES >> 20);
}

/* Lists can share items, so a shallow value can hold exponentially many
 * paths (x = [x, x] n times): each pair of containers is a step. */
static int equal(jv a, jv b, int depth, long *steps, fl_error *err)
{
    if (jv_is_number(a) && jv_is_number(b))
        return jv_number(a) == jv_number(b);
    if (a.t != b.t || (a.t == JV_LIST && a.l->is_tuple != b.l->is_tuple))
        return 0;
    if ((a.t == JV_LIST || a.t == JV_DICT) && depth > JINJA_MAX_DEPTH)
        return too_deep(err);
    if ((a.t == JV_LIST || a.t == JV_DICT) && ++*steps > JINJA_MAX_STEPS)
        return fl_fail(err, JINJA_TOO_MANY_STEPS, JINJA_MAX_STEPS);
    switch (a.t) {
    case JV_UNDEF:
    case JV_NONE: return 1;
    case JV_STR: return a.s.n == b.s.n && memcmp(a.s.p, b.s.p, a.s.n) == 0;
    case JV_LIST:
        if (a.l->n != b.l->n)
            return 0;
        for (size_t i = 0; i < a.l->n; i++) {
            int eq = equal(a.l->items[i], b.l->items[i], depth + 1, steps, err);
            if (eq != 1)
                return eq;
        }
        return 1;
    case JV_DICT:
        if (a.d->n != b.d->n)
            return 0;
        for (size_t i = 0; i < a.d->n; i++) {
            jv *other = jv_dict_find(b.d, a.d->keys[i].s.p, a.d->keys[i].s.n);
            int eq = other ? equal(a.d->vals[i], *other, depth + 1, steps, err) : 0;
            if (eq != 1)
                return eq;
        }
        return 1;
    case JV_FUNC: return a.fn == b.fn;
    default: return 0;
    }
}

int jv_equal(jv a, jv b, long *steps, fl_error *err)
{
    return equal(a, b, 1, steps, err);
}

static int cmp_str(jv a, jv b)
{
    size_t m = a.s.n < b.s.n ? a.s.n : b.s.n;
    int r = memcmp(a.s.p, b.s.p, m); /* UTF-8's byte order is its code points' */
    return r ? (r < 0 ? -1 : 1) : (a.s.n > b.s.n) - (a.s.n < b.s.n);
}

static int compare(jv a, jv b, int *r, int depth, long *steps, fl_error *err)
{
    *r = 0;
    if (jv_is_number(a) && jv_is_number(b)) {
        double x = jv_number(a), y = jv_number(b);
        *r = x < y ? -1 : x > y;
        return 0;
    }
    if (a.t == JV_STR && b.t == JV_STR) {
        *r = cmp_str(a, b);
        return 0;
    }
    if (a.t != JV_LIST || b.t != JV_LIST || a.l->is_tuple != b.l->is_tuple)
        return fl_fail(err, "'<' is not supported between a %s and a %s", jv_type_name(a),
                       jv_type_name(b));
    if (depth > JINJA_MAX_DEPTH)
        return too_deep(err);
    if (++*steps > JINJA_MAX_STEPS)
        return fl_fail(err, JINJA_TOO_MANY_STEPS, JINJA_MAX_STEPS);
    /* the first items that differ decide, else the shorter is less */
    for (size_t i = 0; i < a.l->n && i < b.l->n; i++) {
        int eq = equal(a.l->items[i], b.l->items[i], depth + 1, steps, err);
        if (eq < 0)
            return -1;
        if (!eq)
            return compare(a.l->items[i], b.l->items[i], r, depth + 1, steps, err);
    }
    *r = (a.l->n > b.l->n) - (a.l->n < b.l->n);
    return 0;
}

int jv_compare(jv a, jv b, int *r, long *steps, fl_error *err)
{
    return compare(a, b, r, 1, steps, err);
}

/* Where str() and JSON write: out, which must stay within max bytes. */
typedef struct printer {
    fl_strbuf *out;
    size_t max;
    fl_error *err;
} printer;

static int too_long(const printer *pr)
{
    return jv_room(pr->out->len, 0, pr->max, pr->err);
}

/* str(f) as Python writes it: repr's shortest round-trip digits,
 * positional for decimal exponents in [-4, 16) ("10.0", "1e-05"). */
static void format_float(fl_strbuf *out, double f)
{
    if (isnan(f) || isinf(f))
        fl_strbuf_append_str(out, isnan(f) ? "nan" : f > 0 ? "inf" : "-inf");
    else
        fl_pyjson_float(out, f);
}

/* Escapes make a string up to four times longer, so the length is checked
 * as it grows. */
static int repr_string(const printer *pr, jv s)
{
    fl_strbuf *out = pr->out;
    /* Python picks ' unless the string has ' and no " */
    const int dq = memchr(s.s.p, '\'', s.s.n) && !memchr(s.s.p, '"', s.s.n);
    const char q = dq ? '"' : '\'';
    fl_strbuf_append_char(out, q);
    for (size_t i = 0; i < s.s.n; i++) {
        if (too_long(pr) != 0)
            return -1;
        unsigned char c = (unsigned char)s.s.p[i];
        if (c == '\\' || c == (unsigned char)q)
            fl_strbuf_appendf(out, "\\%c", c);
        else if (c == '\n')
            fl_strbuf_append_str(out, "\\n");
        else if (c == '\t')
            fl_strbuf_append_str(out, "\\t");
        else if (c == '\r')
            fl_strbuf_append_str(out, "\\r");
        else if (c < 0x20 || c == 0x7f)
            fl_strbuf_appendf(out, "\\x%02x", c);
        else
            fl_strbuf_append_char(out, (char)c);
    }
    fl_strbuf_append_char(out, q);
    return 0;
}

static int to_string(const printer *pr, jv v, int depth);

static int repr(const printer *pr, jv v, int depth)
{
    if (v.t == JV_UNDEF) { /* Jinja's Undefined has this repr, and str() "" */
        fl_strbuf_append_str(pr->out, "Undefined");
        return 0;
    }
    return v.t == JV_STR ? repr_string(pr, v) : to_string(pr, v, depth);
}

/* depth: of v in the value being printed. Each item checks the length
 * first, so a long list stops as soon as the text is too long. */
static int to_string(const printer *pr, jv v, int depth)
{
    fl_strbuf *out = pr->out;
    if (too_long(pr) != 0)
        return -1;
    switch (v.t) {
    case JV_UNDEF: return 0;
    case JV_NONE: fl_strbuf_append_str(out, "None"); return 0;
    case JV_BOOL: fl_strbuf_append_str(out, v.i ? "True" : "False"); return 0;
    case JV_INT: fl_strbuf_appendf(out, "%lld", (long long)v.i); return 0;
    case JV_FLOAT: format_float(out, v.f); return 0;
    case JV_STR:
        if (jv_room(out->len, v.s.n, pr->max, pr->err) != 0)
            return -1;
        fl_strbuf_append(out, v.s.p, v.s.n);
        return 0;
    case JV_FUNC:
        if (v.fn->macro)
            fl_strbuf_appendf(out, "<Macro '%s'>", v.fn->name);
        else
            fl_strbuf_appendf(out, "<function %s>", v.fn->name);
        return 0;
    case JV_LIST:
        if (depth > JINJA_MAX_DEPTH)
            return too_deep(pr->err);
        fl_strbuf_append_char(out, v.l->is_tuple ? '(' : '[');
        for (size_t i = 0; i < v.l->n; i++) {
            if (i)
                fl_strbuf_append_str(out, ", ");
            if (repr(pr, v.l->items[i], depth + 1) != 0)
                return -1;
        }
        /* (1,) */
        fl_strbuf_append_str(out, !v.l->is_tuple ? "]" : v.l->n == 1 ? ",)" : ")");
        return 0;
    case JV_DICT:
        if (depth > JINJA_MAX_DEPTH)
            return too_deep(pr->err);
        fl_strbuf_append_char(out, '{');
        for (size_t i = 0; i < v.d->n; i++) {
            if (i)
                fl_strbuf_append_str(out, ", ");
            if (repr(pr, v.d->keys[i], depth + 1) != 0)
                return -1;
            fl_strbuf_append_str(out, ": ");
            if (repr(pr, v.d->vals[i], depth + 1) != 0)
                return -1;
        }
        fl_strbuf_append_char(out, '}');
        return 0;
    }
    return 0;
}

int jv_to_string(fl_strbuf *out, jv v, size_t max, fl_error *err)
{
    const printer pr = { out, max, err };
    return to_string(&pr, v, 1) != 0 || too_long(&pr) != 0 ? -1 : 0;
}

int jv_to_repr(fl_strbuf *out, jv v, size_t max, fl_error *err)
{
    const printer pr = { out, max, err };
    return repr(&pr, v, 1) != 0 || too_long(&pr) != 0 ? -1 : 0;
}

/* Escapes make a string up to twelve times longer (a surrogate pair for
 * four bytes): checked as it grows. */
static int json_quote(const printer *pr, jv s, int ensure_ascii)
{
    fl_strbuf *out = pr->out;
    fl_strbuf_append_char(out, '"');
    for (size_t i = 0; i < s.s.n;) {
        if (too_long(pr) != 0)
            return -1;
        unsigned char c = (unsigned char)s.s.p[i];
        if (c >= 0x80 && ensure_ascii) {
            size_t len = 1;
            int32_t cp = fl_utf8_next((const unsigned char *)s.s.p + i, s.s.n - i, &len);
            if (cp < 0)
                cp = 0xfffd; /* a Python string holds no invalid UTF-8: what decoding makes of it */
            if (cp >= 0x10000)
                fl_strbuf_appendf(out, "\\u%04x\\u%04x", 0xd800 + ((cp - 0x10000) >> 10),
                                  0xdc00 + ((cp - 0x10000) & 0x3ff));
            else
                fl_strbuf_appendf(out, "\\u%04x", cp);
            i += len;
            continue;
        }
        switch (c) {
        case '"': fl_strbuf_append_str(out, "\\\""); break;
        case '\\': fl_strbuf_append_str(out, "\\\\"); break;
        case '\n': fl_strbuf_append_str(out, "\\n"); break;
        case '\r': fl_strbuf_append_str(out, "\\r"); break;
        case '\t': fl_strbuf_append_str(out, "\\t"); break;
        case '\b': fl_strbuf_append_str(out, "\\b"); break;
        case '\f': fl_strbuf_append_str(out, "\\f"); break;
        default:
            if (c < 0x20 || (c == 0x7f && ensure_ascii))
                fl_strbuf_appendf(out, "\\u%04x", c);
            else
                fl_strbuf_append_char(out, (char)c);
        }
        i++;
    }
    fl_strbuf_append_char(out, '"');
    return 0;
}

static int newline_indent(const printer *pr, int indent, int depth)
{
    const size_t spaces = (size_t)indent * (size_t)depth;
    if (jv_room(pr->out->len, 1 + spaces, pr->max, pr->err) != 0)
        return -1;
    fl_strbuf_append_char(pr->out, '\n');
    for (size_t i = 0; i < spaces; i++)
        fl_strbuf_append_char(pr->out, ' ');
    return 0;
}

typedef struct json_writer {
    printer pr;
    jv_json_style style; /* with its separators filled in */
} json_writer;

static int by_key(const void *a, const void *b, void *keys)
{
    const jv *k = keys;
    return cmp_str(k[*(const size_t *)a], k[*(const size_t *)b]);
}

/* json.dumps(v, ...): with no indent the separators default to ", " and
 * ": "; with one, to "," and ": " plus newlines. depth: the nesting around
 * v (0 at the top), which indents its items. */
static int to_json(const json_writer *w, jv v, int depth)
{
    const printer *pr = &w->pr;
    fl_strbuf *out = pr->out;
    const int indent = w->style.indent;
    if (too_long(pr) != 0)
        return -1;
    switch (v.t) {
    case JV_UNDEF:
    case JV_FUNC:
        return fl_fail(pr->err, "Object of type %s is not JSON serializable",
                       v.t == JV_UNDEF ? "Undefined" : "function");
    case JV_NONE: fl_strbuf_append_str(out, "null"); return 0;
    case JV_BOOL: fl_strbuf_append_str(out, v.i ? "true" : "false"); return 0;
    case JV_INT: fl_strbuf_appendf(out, "%lld", (long long)v.i); return 0;
    case JV_FLOAT:
        if (isnan(v.f) || isinf(v.f))
            fl_strbuf_append_str(out, isnan(v.f) ? "NaN" : v.f > 0 ? "Infinity" : "-Infinity");
        else
            format_float(out, v.f);
        return 0;
    case JV_STR: return json_quote(pr, v, w->style.ensure_ascii);
    case JV_LIST:
    case JV_DICT: {
        if (depth >= JINJA_MAX_DEPTH)
            return too_deep(pr->err);
        const int is_list = v.t == JV_LIST;
        const size_t n = is_list ? v.l->n : v.d->n;
        size_t *order = NULL; /* sort_keys: the dict's items in key order */
        if (!is_list && w->style.sort_keys && n > 1) {
            order = fl_malloc(n * sizeof *order);
            for (size_t i = 0; i < n; i++)
                order[i] = i;
            qsort_r(order, n, sizeof *order, by_key, v.d->keys);
        }
        int rc = 0;
        fl_strbuf_append_char(out, is_list ? '[' : '{');
        for (size_t k = 0; k < n && rc == 0; k++) {
            const size_t i = order ? order[k] : k;
            if (k)
                fl_strbuf_append_str(out, w->style.item_sep);
            if (indent >= 0 && (rc = newline_indent(pr, indent, depth + 1)) != 0)
                break;
            if (!is_list) {
                if ((rc = json_quote(pr, v.d->keys[i], w->style.ensure_ascii)) != 0)
                    break;
                fl_strbuf_append_str(out, w->style.key_sep);
            }
            rc = to_json(w, is_list ? v.l->items[i] : v.d->vals[i], depth + 1);
        }
        free(order);
        if (rc != 0 || (indent >= 0 && n && newline_indent(pr, indent, depth) != 0))
            return -1;
        fl_strbuf_append_char(out, is_list ? ']' : '}');
        return 0;
    }
    }
    return 0;
}

int jv_to_json(fl_strbuf *out, jv v, const jv_json_style *style, size_t max, fl_error *err)
{
    json_writer w = { { out, max, err }, *style };
    if (!w.style.item_sep)
        w.style.item_sep = style->indent >= 0 ? "," : ", ";
    if (!w.style.key_sep)
        w.style.key_sep = ": ";
    return to_json(&w, v, 0) != 0 || too_long(&w.pr) != 0 ? -1 : 0;
}

/* Recurses as deep as j nests: request data comes from jansson's parser,
 * which refuses more than JSON_PARSER_MAX_DEPTH (2048) levels. */
jv jv_from_json(fl_arena *a, json_t *j)
{
    switch (json_typeof(j)) {
    case JSON_OBJECT: {
        jv d = jv_dict(a);
        const char *key;
        json_t *val;
        json_object_foreach(j, key, val) {
            jv_dict_set(a, d.d, jv_str(a, key, strlen(key)), jv_from_json(a, val));
        }
        return d;
    }
    case JSON_ARRAY: {
        jv l = jv_list(a);
        size_t i;
        json_t *val;
        json_array_foreach(j, i, val) {
            jv_list_push(a, l.l, jv_from_json(a, val));
        }
        return l;
    }
    case JSON_STRING: return jv_str(a, json_string_value(j), json_string_length(j));
    case JSON_INTEGER: return (jv){ .t = JV_INT, .i = json_integer_value(j) };
    case JSON_REAL: return (jv){ .t = JV_FLOAT, .f = json_real_value(j) };
    case JSON_TRUE: return (jv){ .t = JV_BOOL, .i = 1 };
    case JSON_FALSE: return (jv){ .t = JV_BOOL, .i = 0 };
    default: return (jv){ .t = JV_NONE };
    }
}

const char *jv_type_name(jv v)
{
    static const char *const names[] = { "undefined", "none", "boolean", "integer", "float",
                                         "string", "list", "dict", "function" };
    return v.t == JV_LIST && v.l->is_tuple ? "tuple" : names[v.t];
}

/* Whether byte i of s continues a UTF-8 sequence. */
static int continues(jv s, size_t i)
{
    return ((unsigned char)s.s.p[i] & 0xc0) == 0x80;
}

size_t jv_str_chars(jv s)
{
    size_t n = 0;
    for (size_t i = 0; i < s.s.n; i++)
        n += !continues(s, i);
    return n;
}

size_t jv_str_next(jv s, size_t i)
{
    for (i++; i < s.s.n && continues(s, i); i++)
        ;
    return i;
}

size_t jv_str_prev(jv s, size_t i)
{
    for (i--; i > 0 && continues(s, i); i--)
        ;
    return i;
}

size_t jv_str_char_offset(jv s, size_t index)
{
    size_t i = 0;
    for (size_t k = 0; k < index && i < s.s.n; k++)
        i = jv_str_next(s, i);
    return i;
}
