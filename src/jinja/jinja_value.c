/* jinja_value.c - values: construction, truthiness, equality, Python-style
 * str() and JSON (tojson), and conversion from jansson. */
#include <math.h>
#include <stdio.h>
#include <string.h>

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

int jv_equal(jv a, jv b)
{
    if (jv_is_number(a) && jv_is_number(b))
        return jv_number(a) == jv_number(b);
    if (a.t != b.t)
        return 0;
    switch (a.t) {
    case JV_UNDEF:
    case JV_NONE: return 1;
    case JV_STR: return a.s.n == b.s.n && memcmp(a.s.p, b.s.p, a.s.n) == 0;
    case JV_LIST:
        if (a.l->n != b.l->n)
            return 0;
        for (size_t i = 0; i < a.l->n; i++)
            if (!jv_equal(a.l->items[i], b.l->items[i]))
                return 0;
        return 1;
    case JV_DICT:
        if (a.d->n != b.d->n)
            return 0;
        for (size_t i = 0; i < a.d->n; i++) {
            jv *other = jv_dict_find(b.d, a.d->keys[i].s.p, a.d->keys[i].s.n);
            if (!other || !jv_equal(a.d->vals[i], *other))
                return 0;
        }
        return 1;
    default: return 0;
    }
}

/* Python's repr of a float: the shortest digits that read back the same. */
static void format_float(fl_strbuf *out, double f)
{
    if (isnan(f)) {
        fl_strbuf_append_str(out, "nan");
        return;
    }
    if (isinf(f)) {
        fl_strbuf_append_str(out, f > 0 ? "inf" : "-inf");
        return;
    }
    char buf[40];
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(buf, sizeof buf, "%.*g", prec, f);
        if (strtod(buf, NULL) == f)
            break;
    }
    fl_strbuf_append_str(out, buf);
    if (!strpbrk(buf, ".eEn"))
        fl_strbuf_append_str(out, ".0");
}

static void repr_string(fl_strbuf *out, jv s)
{
    /* Python picks ' unless the string has ' and no " */
    const int dq = memchr(s.s.p, '\'', s.s.n) && !memchr(s.s.p, '"', s.s.n);
    const char q = dq ? '"' : '\'';
    fl_strbuf_append_char(out, q);
    for (size_t i = 0; i < s.s.n; i++) {
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
}

static void repr(fl_strbuf *out, jv v)
{
    if (v.t == JV_STR)
        repr_string(out, v);
    else
        jv_to_string(out, v);
}

void jv_to_string(fl_strbuf *out, jv v)
{
    switch (v.t) {
    case JV_UNDEF: return;
    case JV_NONE: fl_strbuf_append_str(out, "None"); return;
    case JV_BOOL: fl_strbuf_append_str(out, v.i ? "True" : "False"); return;
    case JV_INT: fl_strbuf_appendf(out, "%lld", (long long)v.i); return;
    case JV_FLOAT: format_float(out, v.f); return;
    case JV_STR: fl_strbuf_append(out, v.s.p, v.s.n); return;
    case JV_LIST:
        fl_strbuf_append_char(out, '[');
        for (size_t i = 0; i < v.l->n; i++) {
            if (i)
                fl_strbuf_append_str(out, ", ");
            repr(out, v.l->items[i]);
        }
        fl_strbuf_append_char(out, ']');
        return;
    case JV_DICT:
        fl_strbuf_append_char(out, '{');
        for (size_t i = 0; i < v.d->n; i++) {
            if (i)
                fl_strbuf_append_str(out, ", ");
            repr(out, v.d->keys[i]);
            fl_strbuf_append_str(out, ": ");
            repr(out, v.d->vals[i]);
        }
        fl_strbuf_append_char(out, '}');
        return;
    }
}

static void json_quote(fl_strbuf *out, jv s)
{
    fl_strbuf_append_char(out, '"');
    for (size_t i = 0; i < s.s.n; i++) {
        unsigned char c = (unsigned char)s.s.p[i];
        switch (c) {
        case '"': fl_strbuf_append_str(out, "\\\""); break;
        case '\\': fl_strbuf_append_str(out, "\\\\"); break;
        case '\n': fl_strbuf_append_str(out, "\\n"); break;
        case '\r': fl_strbuf_append_str(out, "\\r"); break;
        case '\t': fl_strbuf_append_str(out, "\\t"); break;
        case '\b': fl_strbuf_append_str(out, "\\b"); break;
        case '\f': fl_strbuf_append_str(out, "\\f"); break;
        default:
            if (c < 0x20)
                fl_strbuf_appendf(out, "\\u%04x", c);
            else
                fl_strbuf_append_char(out, (char)c);
        }
    }
    fl_strbuf_append_char(out, '"');
}

static void newline_indent(fl_strbuf *out, int indent, int depth)
{
    fl_strbuf_append_char(out, '\n');
    for (int i = 0; i < indent * depth; i++)
        fl_strbuf_append_char(out, ' ');
}

/* json.dumps(v, ensure_ascii=False, indent=indent): with no indent the
 * separators are ", " and ": "; with one, "," and ": " plus newlines. */
static void to_json(fl_strbuf *out, jv v, int indent, int depth)
{
    switch (v.t) {
    case JV_UNDEF:
    case JV_NONE: fl_strbuf_append_str(out, "null"); return;
    case JV_BOOL: fl_strbuf_append_str(out, v.i ? "true" : "false"); return;
    case JV_INT: fl_strbuf_appendf(out, "%lld", (long long)v.i); return;
    case JV_FLOAT:
        if (isnan(v.f) || isinf(v.f))
            fl_strbuf_append_str(out, isnan(v.f) ? "NaN" : v.f > 0 ? "Infinity" : "-Infinity");
        else
            format_float(out, v.f);
        return;
    case JV_STR: json_quote(out, v); return;
    case JV_LIST:
    case JV_DICT: {
        const int is_list = v.t == JV_LIST;
        const size_t n = is_list ? v.l->n : v.d->n;
        fl_strbuf_append_char(out, is_list ? '[' : '{');
        for (size_t i = 0; i < n; i++) {
            if (i)
                fl_strbuf_append_str(out, indent >= 0 ? "," : ", ");
            if (indent >= 0)
                newline_indent(out, indent, depth + 1);
            if (!is_list) {
                json_quote(out, v.d->keys[i]);
                fl_strbuf_append_str(out, ": ");
            }
            to_json(out, is_list ? v.l->items[i] : v.d->vals[i], indent, depth + 1);
        }
        if (indent >= 0 && n)
            newline_indent(out, indent, depth);
        fl_strbuf_append_char(out, is_list ? ']' : '}');
        return;
    }
    }
}

void jv_to_json(fl_strbuf *out, jv v, int indent)
{
    to_json(out, v, indent, 0);
}

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
                                         "string", "list", "dict" };
    return names[v.t];
}

size_t jv_str_chars(jv s)
{
    size_t n = 0;
    for (size_t i = 0; i < s.s.n; i++)
        n += ((unsigned char)s.s.p[i] & 0xc0) != 0x80;
    return n;
}

size_t jv_str_char_offset(jv s, size_t index)
{
    size_t i = 0;
    for (size_t k = 0; k < index && i < s.s.n; k++) {
        i++;
        while (i < s.s.n && ((unsigned char)s.s.p[i] & 0xc0) == 0x80)
            i++;
    }
    return i;
}
