/* jinja_builtins.c - the built-in filters, tests, methods and global
 * functions, with Jinja2's semantics in transformers' environment (tojson
 * without ASCII escaping and with indent, separators, sort_keys;
 * raise_exception; strftime_now).
 *
 * The tables of filters and tests are both the dispatch and the list of
 * names checked at load, so that a template naming anything else fails
 * when it is loaded, not at the first request. */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <utf8proc.h>

#include "base/alloc.h"
#include "base/utf8.h"
#include "jinja/jinja_eval.h"

static const jv undef = { .t = JV_UNDEF };

static jv bool_v(int b)
{
    return (jv){ .t = JV_BOOL, .i = b != 0 };
}

/* ---- string methods ---- */

static int in_set(char ch, jv chars)
{
    return chars.t == JV_STR ? memchr(chars.s.p, ch, chars.s.n) != NULL
                             : (ch == ' ' || ch == '\t' || ch == '\n' || ch == '\r' || ch == '\v' ||
                                ch == '\f');
}

/* strip/lstrip/rstrip: which = 1 left, 2 right, 3 both. Characters are
 * bytes here: the templates strip ASCII whitespace and markers. */
static jv strip(jctx *c, jv s, jv chars, int which)
{
    size_t a = 0, b = s.s.n;
    if (which & 1)
        while (a < b && in_set(s.s.p[a], chars))
            a++;
    if (which & 2)
        while (b > a && in_set(s.s.p[b - 1], chars))
            b--;
    return jv_str(c->a, s.s.p + a, b - a);
}

static jv split(jctx *c, const jnode *n, jv s, jv sep, jv maxv)
{
    jv r = jv_list(c->a);
    int64_t max = maxv.t == JV_INT ? maxv.i : -1;
    if (sep.t == JV_STR) {
        if (sep.s.n == 0)
            return jinja_fail(c, n, "empty separator");
        const char *p = s.s.p, *end = s.s.p + s.s.n;
        for (;;) {
            if (jinja_items_room(c, n, r.l->n + 1) != 0)
                return undef;
            const char *hit = max != 0 ? memmem(p, (size_t)(end - p), sep.s.p, sep.s.n) : NULL;
            if (!hit) {
                jv_list_push(c->a, r.l, jv_str(c->a, p, (size_t)(end - p)));
                return r;
            }
            jv_list_push(c->a, r.l, jv_str(c->a, p, (size_t)(hit - p)));
            p = hit + sep.s.n;
            if (max > 0)
                max--;
        }
    }
    /* no separator: runs of whitespace, empty pieces dropped */
    size_t i = 0;
    while (i < s.s.n) {
        while (i < s.s.n && in_set(s.s.p[i], undef))
            i++;
        if (i == s.s.n)
            break;
        size_t j = i;
        while (j < s.s.n && !in_set(s.s.p[j], undef))
            j++;
        if (jinja_items_room(c, n, r.l->n + 1) != 0)
            return undef;
        jv_list_push(c->a, r.l, jv_str(c->a, s.s.p + i, j - i));
        i = j;
    }
    return r;
}

static jv replace(jctx *c, const jnode *n, jv s, jv old, jv new_)
{
    if (old.t != JV_STR || new_.t != JV_STR || old.s.n == 0)
        return s;
    fl_strbuf r = { 0 };
    const char *p = s.s.p, *end = s.s.p + s.s.n, *hit;
    while ((hit = memmem(p, (size_t)(end - p), old.s.p, old.s.n)) != NULL) {
        if (jinja_room(c, n, r.len, (size_t)(hit - p) + new_.s.n, JINJA_MAX_BYTES) != 0)
            break;
        fl_strbuf_append(&r, p, (size_t)(hit - p));
        fl_strbuf_append(&r, new_.s.p, new_.s.n);
        p = hit + old.s.n;
    }
    fl_strbuf_append(&r, p, (size_t)(end - p));
    return jinja_take_str(c, n, &r);
}

/* upper/lower (title_like 0), capitalize-style (1: first character up) or
 * title (2: each word's first character up), code point by code point. */
static jv change_case(jctx *c, const jnode *n, jv s, int upper, int title_like)
{
    fl_strbuf r = { 0 };
    int word_start = 1;
    for (size_t i = 0; i < s.s.n;) {
        size_t len = 1;
        int32_t cp = fl_utf8_next((const unsigned char *)s.s.p + i, s.s.n - i, &len);
        if (cp < 0) {
            fl_strbuf_append(&r, s.s.p + i, len);
            i += len;
            continue;
        }
        int up = title_like ? word_start : upper;
        int32_t mapped = up ? utf8proc_toupper(cp) : utf8proc_tolower(cp);
        char buf[4];
        fl_strbuf_append(&r, buf, (size_t)fl_utf8_encode((uint32_t)mapped, buf));
        const int cat = utf8proc_category(cp);
        const int letter = cat >= UTF8PROC_CATEGORY_LU && cat <= UTF8PROC_CATEGORY_LO;
        word_start = title_like == 2 ? !letter : 0;
        i += len;
    }
    return jinja_take_str(c, n, &r);
}

static int has_affix(jv s, jv x, int ends)
{
    return x.t == JV_STR && x.s.n <= s.s.n &&
           memcmp(s.s.p + (ends ? s.s.n - x.s.n : 0), x.s.p, x.s.n) == 0;
}

/* x: a string or a list of strings (Python's tuple, which does not nest). */
static int starts_or_ends(jv s, jv x, int ends)
{
    if (x.t != JV_LIST)
        return has_affix(s, x, ends);
    for (size_t i = 0; i < x.l->n; i++)
        if (has_affix(s, x.l->items[i], ends))
            return 1;
    return 0;
}

static jv join(jctx *c, const jnode *n, jv list, jv sep)
{
    fl_strbuf r = { 0 };
    for (size_t i = 0; list.t == JV_LIST && i < list.l->n; i++) {
        if (i && sep.t == JV_STR) {
            if (jinja_room(c, n, r.len, sep.s.n, JINJA_MAX_BYTES) != 0)
                break;
            fl_strbuf_append(&r, sep.s.p, sep.s.n);
        }
        if (jinja_print(c, n, &r, list.l->items[i], JINJA_MAX_BYTES) != 0)
            break;
    }
    return jinja_take_str(c, n, &r);
}

static jv dict_view(jctx *c, jv d, int what) /* 0 keys, 1 values, 2 items (tuples) */
{
    jv r = jv_list(c->a);
    for (size_t i = 0; i < d.d->n; i++) {
        if (what == 2) {
            jv pair = jv_list(c->a);
            pair.l->is_tuple = 1;
            jv_list_push(c->a, pair.l, d.d->keys[i]);
            jv_list_push(c->a, pair.l, d.d->vals[i]);
            jv_list_push(c->a, r.l, pair);
        } else {
            jv_list_push(c->a, r.l, what ? d.d->vals[i] : d.d->keys[i]);
        }
    }
    return r;
}

static const char *const methods[] = { "startswith", "endswith", "strip", "lstrip", "rstrip",
    "split", "replace", "upper", "lower", "capitalize", "title", "join", "get", "keys", "values",
    "items", "cycle", NULL };

static int listed(const char *const *list, const char *name)
{
    for (; *list; list++)
        if (strcmp(*list, name) == 0)
            return 1;
    return 0;
}

int jinja_is_method(const char *name)
{
    return listed(methods, name);
}

jv jinja_call_method(jctx *c, const jnode *n, jv obj, const char *m, const jargs *a)
{
    if (obj.t == JV_STR) {
        if (!strcmp(m, "startswith")) return bool_v(starts_or_ends(obj, jinja_arg(a, 0, NULL, undef), 0));
        if (!strcmp(m, "endswith")) return bool_v(starts_or_ends(obj, jinja_arg(a, 0, NULL, undef), 1));
        if (!strcmp(m, "strip")) return strip(c, obj, jinja_arg(a, 0, "chars", undef), 3);
        if (!strcmp(m, "lstrip")) return strip(c, obj, jinja_arg(a, 0, "chars", undef), 1);
        if (!strcmp(m, "rstrip")) return strip(c, obj, jinja_arg(a, 0, "chars", undef), 2);
        if (!strcmp(m, "split")) return split(c, n, obj, jinja_arg(a, 0, "sep", undef), jinja_arg(a, 1, "maxsplit", undef));
        if (!strcmp(m, "replace")) return replace(c, n, obj, jinja_arg(a, 0, NULL, undef), jinja_arg(a, 1, NULL, undef));
        if (!strcmp(m, "upper")) return change_case(c, n, obj, 1, 0);
        if (!strcmp(m, "lower")) return change_case(c, n, obj, 0, 0);
        if (!strcmp(m, "capitalize")) return change_case(c, n, change_case(c, n, obj, 0, 0), 1, 1);
        if (!strcmp(m, "title")) return change_case(c, n, obj, 0, 2);
        if (!strcmp(m, "join")) return join(c, n, jinja_arg(a, 0, NULL, undef), obj);
    } else if (obj.t == JV_DICT && obj.d->is_loop) {
        if (!strcmp(m, "cycle")) { /* loop.cycle(a, b, ...): the one for this iteration */
            if (a->npos == 0)
                return jinja_fail(c, n, "no items for cycling given");
            jv *i = jv_dict_find(obj.d, "index0", 6);
            return a->pos[i->i % a->npos];
        }
    } else if (obj.t == JV_DICT && !obj.d->is_namespace) {
        if (!strcmp(m, "get")) {
            jv key = jinja_arg(a, 0, NULL, undef), *v = key.t == JV_STR ? jv_dict_find(obj.d, key.s.p, key.s.n) : NULL;
            return v ? *v : jinja_arg(a, 1, "default", (jv){ .t = JV_NONE });
        }
        if (!strcmp(m, "keys")) return dict_view(c, obj, 0);
        if (!strcmp(m, "values")) return dict_view(c, obj, 1);
        if (!strcmp(m, "items")) return dict_view(c, obj, 2);
    }
    if (obj.t == JV_UNDEF)
        return jinja_fail(c, n, "'%s' of an undefined value", m);
    return jinja_fail(c, n, "%s has no method '%s'", jv_type_name(obj), m);
}

/* Dict methods as values: `d.items` without a call, which Jinja finds
 * before an item of that key (see jinja_get_attr). */
const jfunc *jinja_dict_method(const char *name)
{
    static const jfunc dict_methods[] = { { "keys", NULL, NULL }, { "values", NULL, NULL }, { "items", NULL, NULL }, { "get", NULL, NULL },
        { "pop", NULL, NULL }, { "copy", NULL, NULL }, { "update", NULL, NULL }, { "clear", NULL, NULL }, { "setdefault", NULL, NULL }, { "popitem", NULL, NULL },
        { "fromkeys", NULL, NULL } };
    for (size_t i = 0; i < sizeof dict_methods / sizeof dict_methods[0]; i++)
        if (strcmp(dict_methods[i].name, name) == 0)
            return &dict_methods[i];
    return NULL;
}

/* ---- global functions ---- */

static const jfunc globals[] = { { "namespace", NULL, NULL }, { "raise_exception", NULL, NULL }, { "range", NULL, NULL },
                                 { "strftime_now", NULL, NULL }, { "dict", NULL, NULL } };

const jfunc *jinja_global(const char *name)
{
    for (size_t i = 0; i < sizeof globals / sizeof globals[0]; i++)
        if (strcmp(globals[i].name, name) == 0)
            return &globals[i];
    return NULL;
}

int jinja_is_global(const char *name)
{
    return jinja_global(name) != NULL;
}

jv jinja_call_global(jctx *c, const jnode *n, const jfunc *fn, const jargs *a)
{
    const char *name = fn->name;
    if (!strcmp(name, "namespace") || !strcmp(name, "dict")) {
        /* dict(mapping, **kw), as namespace() takes them too */
        jv d = jv_dict(c->a);
        d.d->is_namespace = name[0] == 'n';
        if (a->npos > 1 || (a->npos == 1 && a->pos[0].t != JV_DICT))
            return jinja_fail(c, n, "%s() takes one dict and keyword arguments", name);
        for (size_t i = 0; a->npos && i < a->pos[0].d->n; i++)
            jv_dict_set(c->a, d.d, a->pos[0].d->keys[i], a->pos[0].d->vals[i]);
        for (int i = 0; i < a->nkw; i++)
            jv_dict_set(c->a, d.d, jv_cstr(a->kwname[i]), a->kw[i]);
        return d;
    }
    if (!strcmp(name, "raise_exception")) {
        fl_strbuf msg = { 0 };
        if (jinja_print(c, n, &msg, jinja_arg(a, 0, NULL, undef), JINJA_MAX_BYTES) == 0)
            jinja_fail(c, n, "the chat template raised an error: %s", msg.data ? msg.data : "");
        fl_strbuf_free(&msg);
        return undef;
    }
    if (!strcmp(name, "range")) {
        int ints = a->npos >= 1 && a->npos <= 3 && a->nkw == 0;
        for (int i = 0; ints && i < a->npos; i++)
            ints = a->pos[i].t == JV_INT || a->pos[i].t == JV_BOOL;
        if (!ints)
            return jinja_fail(c, n, "range() takes one to three integers");
        const int64_t lo = a->npos > 1 ? a->pos[0].i : 0, hi = a->npos > 1 ? a->pos[1].i : a->pos[0].i;
        const int64_t step = a->npos > 2 ? a->pos[2].i : 1;
        if (step == 0)
            return jinja_fail(c, n, "range() step must not be zero");
        const uint64_t count = jv_range_len(lo, hi, step);
        if (jinja_items_room(c, n, count) != 0)
            return undef;
        jv r = jv_list(c->a);
        /* lo + k * step lies between lo and hi, but k * step alone may not fit */
        for (uint64_t k = 0; k < count; k++)
            jv_list_push(c->a, r.l, (jv){ .t = JV_INT, .i = (int64_t)((uint64_t)lo + k * (uint64_t)step) });
        return r;
    }
    if (!strcmp(name, "strftime_now")) {
        jv fmt = jinja_arg(a, 0, NULL, undef);
        char buf[256];
        time_t now = time(NULL);
        struct tm tm;
        localtime_r(&now, &tm);
        size_t len = fmt.t == JV_STR ? strftime(buf, sizeof buf, fmt.s.p, &tm) : 0;
        return jv_str(c->a, buf, len);
    }
    return jinja_fail(c, n, "'%s' cannot be called here", name);
}

/* ---- attribute paths and sorting (map, select, sort, ...) ---- */

/* Jinja's attribute paths: "a.b.0" looks up a, then b, then item 0 (a
 * part of digits is an index); past a missing part, dflt if given, else
 * undefined; undefined itself has no parts (an error). */
static jv follow(jctx *c, const jnode *n, jv item, jv path, jv dflt)
{
    if (path.t != JV_STR)
        return path.t == JV_INT ? jinja_get_item(c, n, item, path) : jinja_fail(c, n, "an attribute must be a string");
    for (size_t at = 0; at <= path.s.n && !c->failed;) {
        const char *dot = memchr(path.s.p + at, '.', path.s.n - at);
        const size_t end = dot ? (size_t)(dot - path.s.p) : path.s.n;
        jv part = jv_str(c->a, path.s.p + at, end - at);
        int digits = end > at;
        for (size_t i = at; i < end; i++)
            digits &= path.s.p[i] >= '0' && path.s.p[i] <= '9';
        if (digits) {
            errno = 0;
            part = (jv){ .t = JV_INT, .i = strtoll(part.s.p, NULL, 10) };
            if (errno == ERANGE)
                return jinja_fail(c, n, "the index %.*s is too large", (int)(end - at), path.s.p + at);
        }
        if (item.t == JV_UNDEF)
            return jinja_fail(c, n, "an attribute of an undefined value");
        item = jinja_get_item(c, n, item, part);
        if (item.t == JV_UNDEF && dflt.t != JV_UNDEF)
            item = dflt;
        at = end + 1;
    }
    return item;
}

/* A sort key: case-insensitive keys are lowercased strings, as Jinja's
 * ignore_case makes them. */
static jv fold_case(jctx *c, const jnode *n, jv v, int case_sensitive)
{
    return v.t == JV_STR && !case_sensitive ? change_case(c, n, v, 0, 0) : v;
}

typedef struct keyed {
    jv key, value;
} keyed;

/* A stable merge sort by key (Python's sort is stable, and sorting in
 * reverse keeps equal items in their order too); stops comparing after an
 * error (keys Python does not order). */
static void sort_keyed(jctx *c, const jnode *n, keyed *v, keyed *tmp, size_t count, int reverse)
{
    if (count < 2)
        return;
    const size_t half = count / 2;
    sort_keyed(c, n, v, tmp, half, reverse);
    sort_keyed(c, n, v + half, tmp, count - half, reverse);
    size_t i = 0, j = half, k = 0;
    while (i < half && j < count) {
        int cmp = c->failed ? 0 : jinja_compare(c, n, v[j].key, v[i].key);
        tmp[k++] = (reverse ? cmp > 0 : cmp < 0) ? v[j++] : v[i++];
    }
    while (i < half)
        tmp[k++] = v[i++];
    while (j < count)
        tmp[k++] = v[j++];
    memcpy(v, tmp, count * sizeof *v);
}

/* The values of items sorted by their keys, as a list. */
static jv sorted(jctx *c, const jnode *n, keyed *items, size_t count, int reverse)
{
    keyed *tmp = fl_malloc((count ? count : 1) * sizeof *tmp);
    sort_keyed(c, n, items, tmp, count, reverse);
    free(tmp);
    jv r = jv_list(c->a);
    for (size_t i = 0; i < count && !c->failed; i++)
        jv_list_push(c->a, r.l, items[i].value);
    return c->failed ? undef : r;
}

/* The items of v (a sequence; undefined has none) keyed by attribute (or
 * themselves), case-folded unless case_sensitive. */
static keyed *keyed_items(jctx *c, const jnode *n, jv v, jv attribute, int case_sensitive, size_t *count)
{
    jv items = jinja_iterate(c, n, v);
    if (c->failed)
        return NULL;
    *count = items.l->n;
    keyed *k = fl_arena_alloc(c->a, (*count ? *count : 1) * sizeof *k);
    for (size_t i = 0; i < *count && !c->failed; i++) {
        jv key = attribute.t == JV_UNDEF ? items.l->items[i] : follow(c, n, items.l->items[i], attribute, undef);
        k[i] = (keyed){ fold_case(c, n, key, case_sensitive), items.l->items[i] };
    }
    return c->failed ? NULL : k;
}

/* ---- filters ---- */

/* Arguments past the first skip of a: map('f', x) passes x to f. */
static jargs shifted(const jargs *a, int skip)
{
    jargs r = *a;
    r.npos = a->npos > skip ? a->npos - skip : 0;
    for (int i = 0; i < r.npos; i++)
        r.pos[i] = a->pos[i + skip];
    return r;
}

static jv length_of(jctx *c, const jnode *n, jv v)
{
    switch (v.t) {
    case JV_STR: return (jv){ .t = JV_INT, .i = (int64_t)jv_str_chars(v) };
    case JV_LIST: return (jv){ .t = JV_INT, .i = (int64_t)v.l->n };
    case JV_DICT: return (jv){ .t = JV_INT, .i = (int64_t)v.d->n };
    case JV_UNDEF: return (jv){ .t = JV_INT, .i = 0 };
    default: return jinja_fail(c, n, "a %s has no length", jv_type_name(v));
    }
}

/* Python's int() of a string: an optional sign and digits (with single
 * underscores between them), spaces around; 1 if s is one. */
static int parse_int(jv s, int64_t *out, int *overflow)
{
    const char *p = s.s.p, *end = s.s.p + s.s.n;
    while (p < end && strchr(" \t\n\r\v\f", *p) && *p)
        p++;
    while (end > p && strchr(" \t\n\r\v\f", end[-1]) && end[-1])
        end--;
    char digits[32];
    size_t nd = 0;
    int neg = 0;
    if (p < end && (*p == '+' || *p == '-'))
        neg = *p++ == '-';
    for (const char *q = p; q < end; q++) {
        if (*q == '_' && q > p && q + 1 < end && q[-1] != '_' && q[1] >= '0' && q[1] <= '9')
            continue;
        if (*q < '0' || *q > '9')
            return 0;
        if (nd + 1 < sizeof digits)
            digits[nd++] = *q;
        else
            *overflow = 1;
    }
    if (nd == 0)
        return 0;
    digits[nd] = 0;
    errno = 0;
    unsigned long long mag = strtoull(digits, NULL, 10);
    if (errno == ERANGE || mag > (unsigned long long)INT64_MAX + neg)
        *overflow = 1;
    *out = neg ? (int64_t)(0 - mag) : (int64_t)mag;
    return 1;
}

/* Python's float() of a string; 1 if s is one. */
static int parse_float(jv s, double *out)
{
    char *end;
    const char *p = s.s.p;
    errno = 0;
    *out = strtod(p, &end);
    if (end == p)
        return 0;
    while (*end && strchr(" \t\n\r\v\f", *end))
        end++;
    return end == s.s.p + s.s.n;
}

/* The int filter: int(value), else int(float(value)), else the default;
 * NaN is not a number, too large ones are refused (Python's ints grow). */
static jv to_int(jctx *c, const jnode *n, jv v, jv dflt)
{
    double f;
    int64_t i;
    int overflow = 0;
    switch (v.t) {
    case JV_UNDEF: return jinja_fail(c, n, "int of an undefined value");
    case JV_INT:
    case JV_BOOL: return (jv){ .t = JV_INT, .i = v.i };
    case JV_STR:
        if (parse_int(v, &i, &overflow)) {
            if (overflow)
                return jinja_fail(c, n, "integer overflow in 'int'");
            return (jv){ .t = JV_INT, .i = i };
        }
        if (!parse_float(v, &f))
            return dflt;
        break;
    case JV_FLOAT: f = v.f; break;
    default: return dflt;
    }
    if (isnan(f))
        return dflt;
    if (!(f >= -0x1p63 && f < 0x1p63))
        return jinja_fail(c, n, "integer overflow in 'int'");
    return (jv){ .t = JV_INT, .i = (int64_t)f };
}

static jv to_float(jctx *c, const jnode *n, jv v, jv dflt)
{
    double f;
    if (v.t == JV_UNDEF)
        return jinja_fail(c, n, "float of an undefined value");
    if (jv_is_number(v))
        return (jv){ .t = JV_FLOAT, .f = jv_number(v) };
    return v.t == JV_STR && parse_float(v, &f) ? (jv){ .t = JV_FLOAT, .f = f } : dflt;
}

static jv f_length(jctx *c, const jnode *n, jv v, const jargs *a)
{
    (void)a;
    return length_of(c, n, v);
}

static jv f_trim(jctx *c, const jnode *n, jv v, const jargs *a)
{
    return strip(c, jinja_to_str(c, n, v), jinja_arg(a, 0, "chars", undef), 3);
}

static jv f_string(jctx *c, const jnode *n, jv v, const jargs *a)
{
    (void)a;
    return jinja_to_str(c, n, v);
}

static jv f_lower(jctx *c, const jnode *n, jv v, const jargs *a)
{
    (void)a;
    return change_case(c, n, jinja_to_str(c, n, v), 0, 0);
}

static jv f_upper(jctx *c, const jnode *n, jv v, const jargs *a)
{
    (void)a;
    return change_case(c, n, jinja_to_str(c, n, v), 1, 0);
}

static jv f_capitalize(jctx *c, const jnode *n, jv v, const jargs *a)
{
    (void)a;
    return change_case(c, n, change_case(c, n, jinja_to_str(c, n, v), 0, 0), 1, 1);
}

static jv f_title(jctx *c, const jnode *n, jv v, const jargs *a)
{
    (void)a;
    return change_case(c, n, jinja_to_str(c, n, v), 0, 2);
}

static jv f_replace(jctx *c, const jnode *n, jv v, const jargs *a)
{
    return replace(c, n, jinja_to_str(c, n, v), jinja_arg(a, 0, "old", undef), jinja_arg(a, 1, "new", undef));
}

static jv f_default(jctx *c, const jnode *n, jv v, const jargs *a)
{
    (void)c, (void)n;
    int use = v.t == JV_UNDEF || (jv_truthy(jinja_arg(a, 1, "boolean", undef)) && !jv_truthy(v));
    return use ? jinja_arg(a, 0, "default_value", jv_cstr("")) : v;
}

static jv f_first(jctx *c, const jnode *n, jv v, const jargs *a)
{
    (void)a;
    jv items = jinja_iterate(c, n, v);
    return !c->failed && items.l->n ? items.l->items[0] : undef;
}

static jv f_last(jctx *c, const jnode *n, jv v, const jargs *a)
{
    (void)a;
    jv items = jinja_iterate(c, n, v);
    return !c->failed && items.l->n ? items.l->items[items.l->n - 1] : undef;
}

static jv f_join(jctx *c, const jnode *n, jv v, const jargs *a)
{
    jv items = jinja_iterate(c, n, v), attribute = jinja_arg(a, 1, "attribute", undef);
    if (c->failed)
        return undef;
    if (attribute.t != JV_UNDEF) {
        jv mapped = jv_list(c->a);
        for (size_t i = 0; i < items.l->n && !c->failed; i++)
            jv_list_push(c->a, mapped.l, follow(c, n, items.l->items[i], attribute, undef));
        items = mapped;
    }
    return join(c, n, items, jinja_arg(a, 0, "d", jv_cstr("")));
}

static jv f_list(jctx *c, const jnode *n, jv v, const jargs *a)
{
    (void)a;
    jv items = jinja_iterate(c, n, v);
    if (c->failed || !items.l->is_tuple)
        return items;
    jv r = jv_list(c->a);
    for (size_t i = 0; i < items.l->n; i++)
        jv_list_push(c->a, r.l, items.l->items[i]);
    return r;
}

static jv f_items(jctx *c, const jnode *n, jv v, const jargs *a)
{
    (void)a;
    if (v.t == JV_UNDEF)
        return jv_list(c->a);
    if (v.t != JV_DICT)
        return jinja_fail(c, n, "can only get item pairs from a mapping, not a %s", jv_type_name(v));
    return dict_view(c, v, 2);
}

static jv f_int(jctx *c, const jnode *n, jv v, const jargs *a)
{
    return to_int(c, n, v, jinja_arg(a, 0, "default", (jv){ .t = JV_INT, .i = 0 }));
}

static jv f_float(jctx *c, const jnode *n, jv v, const jargs *a)
{
    return to_float(c, n, v, jinja_arg(a, 0, "default", (jv){ .t = JV_FLOAT, .f = 0 }));
}

static jv f_abs(jctx *c, const jnode *n, jv v, const jargs *a)
{
    (void)a;
    if (v.t == JV_FLOAT)
        return (jv){ .t = JV_FLOAT, .f = fabs(v.f) };
    if (v.t != JV_INT && v.t != JV_BOOL)
        return jinja_fail(c, n, "abs() of a %s", jv_type_name(v));
    if (v.i == INT64_MIN)
        return jinja_fail(c, n, "integer overflow in 'abs'");
    return (jv){ .t = JV_INT, .i = v.i < 0 ? -v.i : v.i };
}

/* round(value, precision, method): Python's round (to even) or floor/ceil
 * at that many decimals; an integer stays one for the common method. */
static jv f_round(jctx *c, const jnode *n, jv v, const jargs *a)
{
    jv prec = jinja_arg(a, 0, "precision", (jv){ .t = JV_INT, .i = 0 });
    jv method = jinja_arg(a, 1, "method", jv_cstr("common"));
    const int common = method.t == JV_STR && !strcmp(method.s.p, "common");
    if (!common && !(method.t == JV_STR && (!strcmp(method.s.p, "floor") || !strcmp(method.s.p, "ceil"))))
        return jinja_fail(c, n, "method must be common, ceil or floor");
    if (!jv_is_number(v) || (prec.t != JV_INT && prec.t != JV_BOOL))
        return jinja_fail(c, n, "round() of a %s", jv_type_name(v));
    if (v.t != JV_FLOAT && common && prec.i >= 0)
        return (jv){ .t = JV_INT, .i = v.i };
    const double scale = pow(10.0, (double)(prec.i > 300 ? 300 : prec.i < -300 ? -300 : prec.i));
    const double x = jv_number(v) * scale;
    const double r = common ? nearbyint(x) : method.s.p[0] == 'f' ? floor(x) : ceil(x);
    return (jv){ .t = JV_FLOAT, .f = isfinite(x) ? r / scale : jv_number(v) };
}

static jv f_tojson(jctx *c, const jnode *n, jv v, const jargs *a)
{
    jv indent = jinja_arg(a, 1, "indent", undef), seps = jinja_arg(a, 2, "separators", undef);
    if (indent.t == JV_INT && indent.i > JINJA_MAX_INDENT)
        return jinja_fail(c, n, "tojson's indent must be at most %d", JINJA_MAX_INDENT);
    /* a negative indent is 0, as in Python (newlines, no spaces) */
    jv_json_style style = { .indent = indent.t == JV_INT ? (indent.i < 0 ? 0 : (int)indent.i) : -1,
                            .ensure_ascii = jv_truthy(jinja_arg(a, 0, "ensure_ascii", bool_v(0))),
                            .sort_keys = jv_truthy(jinja_arg(a, 3, "sort_keys", bool_v(0))) };
    if (seps.t == JV_LIST) {
        if (seps.l->n != 2 || seps.l->items[0].t != JV_STR || seps.l->items[1].t != JV_STR)
            return jinja_fail(c, n, "tojson's separators must be two strings");
        style.item_sep = seps.l->items[0].s.p;
        style.key_sep = seps.l->items[1].s.p;
    } else if (seps.t != JV_UNDEF && seps.t != JV_NONE) {
        return jinja_fail(c, n, "tojson's separators must be two strings");
    }
    fl_strbuf s = { 0 };
    fl_error e;
    if (jv_to_json(&s, v, &style, JINJA_MAX_BYTES, &e) != 0)
        jinja_fail_as(c, n, &e);
    return jinja_take_str(c, n, &s);
}

/* map(attribute='a.b', default=x) or map('filter', args...): a list, where
 * Jinja makes an iterator (which templates only join or list). */
static jv f_map(jctx *c, const jnode *n, jv v, const jargs *a)
{
    jv attribute = jinja_arg(a, -1, "attribute", undef), dflt = jinja_arg(a, -1, "default", undef);
    jv filter = jinja_arg(a, 0, NULL, undef);
    if (attribute.t == JV_UNDEF && filter.t != JV_STR)
        return jinja_fail(c, n, "map() needs a filter name or attribute=");
    jv r = jv_list(c->a);
    if (!jv_truthy(v)) /* Jinja maps nothing over a false value */
        return r;
    jv items = jinja_iterate(c, n, v);
    const jargs rest = shifted(a, 1);
    for (size_t i = 0; !c->failed && i < items.l->n; i++)
        jv_list_push(c->a, r.l, attribute.t != JV_UNDEF ? follow(c, n, items.l->items[i], attribute, dflt)
                                : jinja_apply_filter(c, n, filter.s.p, items.l->items[i], &rest));
    return c->failed ? undef : r;
}

/* select/reject(test, args...) and selectattr/rejectattr(attr, test,
 * args...); without a test, truthiness. */
static jv select_items(jctx *c, const jnode *n, jv v, const jargs *a, int by_attr, int keep)
{
    jv attribute = by_attr ? jinja_arg(a, 0, NULL, undef) : undef;
    jv test = jinja_arg(a, by_attr, NULL, undef);
    if ((by_attr && attribute.t == JV_UNDEF) || (a->npos > by_attr && test.t != JV_STR))
        return jinja_fail(c, n, "%s() needs %sa test name", n->name, by_attr ? "an attribute and " : "");
    if (test.t == JV_STR && !jinja_is_test(test.s.p))
        return jinja_fail(c, n, "no test named '%s'", test.s.p);
    jv r = jv_list(c->a), items = v.t == JV_UNDEF ? r : jinja_iterate(c, n, v);
    const jargs rest = shifted(a, by_attr + 1);
    for (size_t i = 0; !c->failed && i < items.l->n; i++) {
        jv x = by_attr ? follow(c, n, items.l->items[i], attribute, undef) : items.l->items[i];
        int hit = test.t == JV_STR ? jinja_apply_test(c, n, test.s.p, x, &rest) : jv_truthy(x);
        if (!c->failed && hit == keep)
            jv_list_push(c->a, r.l, items.l->items[i]);
    }
    return c->failed ? undef : r;
}

static jv f_select(jctx *c, const jnode *n, jv v, const jargs *a)
{
    return select_items(c, n, v, a, 0, 1);
}

static jv f_reject(jctx *c, const jnode *n, jv v, const jargs *a)
{
    return select_items(c, n, v, a, 0, 0);
}

static jv f_selectattr(jctx *c, const jnode *n, jv v, const jargs *a)
{
    return select_items(c, n, v, a, 1, 1);
}

static jv f_rejectattr(jctx *c, const jnode *n, jv v, const jargs *a)
{
    return select_items(c, n, v, a, 1, 0);
}

/* dictsort(case_sensitive=false, by='key', reverse=false): (key, value)
 * tuples. */
static jv f_dictsort(jctx *c, const jnode *n, jv v, const jargs *a)
{
    const int case_sensitive = jv_truthy(jinja_arg(a, 0, "case_sensitive", bool_v(0)));
    jv by = jinja_arg(a, 1, "by", jv_cstr("key"));
    const int reverse = jv_truthy(jinja_arg(a, 2, "reverse", bool_v(0)));
    if (v.t != JV_DICT)
        return jinja_fail(c, n, "dictsort of a %s", jv_type_name(v));
    if (by.t != JV_STR || (strcmp(by.s.p, "key") != 0 && strcmp(by.s.p, "value") != 0))
        return jinja_fail(c, n, "you can only sort by either \"key\" or \"value\"");
    jv pairs = dict_view(c, v, 2);
    keyed *k = fl_arena_alloc(c->a, (pairs.l->n ? pairs.l->n : 1) * sizeof *k);
    for (size_t i = 0; i < pairs.l->n; i++)
        k[i] = (keyed){ fold_case(c, n, pairs.l->items[i].l->items[by.s.p[0] == 'v'], case_sensitive),
                        pairs.l->items[i] };
    return sorted(c, n, k, pairs.l->n, reverse);
}

/* sort(reverse=false, case_sensitive=false, attribute=none) */
static jv f_sort(jctx *c, const jnode *n, jv v, const jargs *a)
{
    const int reverse = jv_truthy(jinja_arg(a, 0, "reverse", bool_v(0)));
    const int case_sensitive = jv_truthy(jinja_arg(a, 1, "case_sensitive", bool_v(0)));
    size_t count;
    keyed *k = keyed_items(c, n, v, jinja_arg(a, 2, "attribute", undef), case_sensitive, &count);
    return k ? sorted(c, n, k, count, reverse) : undef;
}

/* unique(case_sensitive=false, attribute=none): the first of each */
static jv f_unique(jctx *c, const jnode *n, jv v, const jargs *a)
{
    size_t count;
    keyed *k = keyed_items(c, n, v, jinja_arg(a, 1, "attribute", undef),
                           jv_truthy(jinja_arg(a, 0, "case_sensitive", bool_v(0))), &count);
    jv r = jv_list(c->a);
    for (size_t i = 0; k && i < count && !c->failed; i++) {
        size_t j = 0;
        while (j < i && !jinja_equal(c, n, k[j].key, k[i].key))
            j++;
        if (j == i)
            jv_list_push(c->a, r.l, k[i].value);
    }
    return c->failed ? undef : r;
}

/* min/max(case_sensitive=false, attribute=none); undefined if empty */
static jv extreme(jctx *c, const jnode *n, jv v, const jargs *a, int want)
{
    size_t count;
    keyed *k = keyed_items(c, n, v, jinja_arg(a, 1, "attribute", undef),
                           jv_truthy(jinja_arg(a, 0, "case_sensitive", bool_v(0))), &count);
    if (!k || count == 0)
        return undef;
    size_t best = 0;
    for (size_t i = 1; i < count && !c->failed; i++)
        if (jinja_compare(c, n, k[i].key, k[best].key) == want)
            best = i;
    return c->failed ? undef : k[best].value;
}

static jv f_min(jctx *c, const jnode *n, jv v, const jargs *a)
{
    return extreme(c, n, v, a, -1);
}

static jv f_max(jctx *c, const jnode *n, jv v, const jargs *a)
{
    return extreme(c, n, v, a, 1);
}

/* sum(attribute=none, start=0), with + as the template's + does it */
static jv f_sum(jctx *c, const jnode *n, jv v, const jargs *a)
{
    jv items = jinja_iterate(c, n, v), attribute = jinja_arg(a, 0, "attribute", undef);
    jv total = jinja_arg(a, 1, "start", (jv){ .t = JV_INT, .i = 0 });
    for (size_t i = 0; !c->failed && i < items.l->n; i++) {
        jv x = attribute.t == JV_UNDEF ? items.l->items[i] : follow(c, n, items.l->items[i], attribute, undef);
        if (!jv_is_number(total) || !jv_is_number(x))
            return jinja_fail(c, n, "sum() of a %s", jv_type_name(jv_is_number(x) ? total : x));
        if (total.t == JV_FLOAT || x.t == JV_FLOAT)
            total = (jv){ .t = JV_FLOAT, .f = jv_number(total) + jv_number(x) };
        else if (__builtin_add_overflow(total.i, x.i, &total.i))
            return jinja_fail(c, n, "integer overflow in 'sum'");
        else
            total.t = JV_INT;
    }
    return c->failed ? undef : total;
}

static jv f_reverse(jctx *c, const jnode *n, jv v, const jargs *a)
{
    (void)a;
    jv items = jinja_iterate(c, n, v);
    if (c->failed)
        return undef;
    if (v.t == JV_STR) {
        fl_strbuf s = { 0 };
        for (size_t i = items.l->n; i > 0; i--)
            fl_strbuf_append(&s, items.l->items[i - 1].s.p, items.l->items[i - 1].s.n);
        return jinja_take_str(c, n, &s);
    }
    jv r = jv_list(c->a);
    for (size_t i = items.l->n; i > 0; i--)
        jv_list_push(c->a, r.l, items.l->items[i - 1]);
    return r;
}

/* format(*args) or format(**kwargs): value % args */
static jv f_format(jctx *c, const jnode *n, jv v, const jargs *a)
{
    if (a->npos && a->nkw)
        return jinja_fail(c, n, "format() takes positional or keyword arguments, not both");
    jv args = a->nkw ? jv_dict(c->a) : jv_list(c->a);
    for (int i = 0; i < a->nkw; i++)
        jv_dict_set(c->a, args.d, jv_cstr(a->kwname[i]), a->kw[i]);
    if (!a->nkw) {
        args.l->is_tuple = 1;
        for (int i = 0; i < a->npos; i++)
            jv_list_push(c->a, args.l, a->pos[i]);
    }
    fl_strbuf s = { 0 };
    fl_error e;
    if (jv_format(&s, jinja_to_str(c, n, v), args, JINJA_MAX_BYTES, &e) != 0) {
        fl_strbuf_free(&s);
        return jinja_fail_as(c, n, &e);
    }
    return jinja_take_str(c, n, &s);
}

static jv f_safe(jctx *c, const jnode *n, jv v, const jargs *a)
{
    (void)c, (void)n, (void)a;
    return v; /* autoescape is off: safe text prints as it is */
}

/* indent(width=4, first=false, blank=false): every line after the first
 * (and the first with first=true), blank ones only with blank=true. */
static jv f_indent(jctx *c, const jnode *n, jv v, const jargs *a)
{
    jv width = jinja_arg(a, 0, "width", (jv){ .t = JV_INT, .i = 4 });
    const int first = jv_truthy(jinja_arg(a, 1, "first", bool_v(0)));
    const int blank = jv_truthy(jinja_arg(a, 2, "blank", bool_v(0)));
    if (v.t == JV_UNDEF)
        return jinja_fail(c, n, "indent of an undefined value");
    jv s = jinja_to_str(c, n, v);
    fl_strbuf pad = { 0 };
    if (width.t == JV_STR)
        fl_strbuf_append(&pad, width.s.p, width.s.n);
    else if ((width.t == JV_INT || width.t == JV_BOOL) && width.i > 0 &&
             jinja_room(c, n, 0, (size_t)width.i, JINJA_MAX_BYTES) == 0)
        for (int64_t i = 0; i < width.i; i++)
            fl_strbuf_append_char(&pad, ' ');
    fl_strbuf r = { 0 };
    if (first)
        fl_strbuf_append(&r, pad.data, pad.len);
    /* Python's splitlines on s + "\n": lines end at \n, \r\n or \r */
    for (size_t at = 0, line = 0; !c->failed && at < s.s.n; line++) {
        size_t end = at;
        while (end < s.s.n && s.s.p[end] != '\n' && s.s.p[end] != '\r')
            end++;
        if (line && (end > at || blank) && jinja_room(c, n, r.len, pad.len, JINJA_MAX_BYTES) == 0)
            fl_strbuf_append(&r, pad.data, pad.len);
        fl_strbuf_append(&r, s.s.p + at, end - at);
        at = end + (end + 1 < s.s.n && s.s.p[end] == '\r' && s.s.p[end + 1] == '\n' ? 2 : 1);
        if (at <= s.s.n && end < s.s.n)
            fl_strbuf_append_char(&r, '\n');
    }
    if (blank && s.s.n && (s.s.p[s.s.n - 1] == '\n' || s.s.p[s.s.n - 1] == '\r'))
        fl_strbuf_append(&r, pad.data, pad.len);
    fl_strbuf_free(&pad);
    return jinja_take_str(c, n, &r);
}

typedef jv (*filter_fn)(jctx *c, const jnode *n, jv v, const jargs *a);

static const struct {
    const char *name;
    filter_fn fn;
} filters[] = {
    { "length", f_length }, { "count", f_length }, { "trim", f_trim }, { "string", f_string },
    { "lower", f_lower }, { "upper", f_upper }, { "capitalize", f_capitalize },
    { "title", f_title }, { "replace", f_replace }, { "default", f_default }, { "d", f_default },
    { "first", f_first }, { "last", f_last }, { "join", f_join }, { "list", f_list },
    { "items", f_items }, { "int", f_int }, { "float", f_float }, { "abs", f_abs },
    { "round", f_round }, { "tojson", f_tojson }, { "map", f_map }, { "select", f_select },
    { "reject", f_reject }, { "selectattr", f_selectattr }, { "rejectattr", f_rejectattr },
    { "dictsort", f_dictsort }, { "sort", f_sort }, { "unique", f_unique }, { "min", f_min },
    { "max", f_max }, { "sum", f_sum }, { "reverse", f_reverse }, { "format", f_format },
    { "safe", f_safe }, { "indent", f_indent },
};

static filter_fn find_filter(const char *name)
{
    for (size_t i = 0; i < sizeof filters / sizeof filters[0]; i++)
        if (strcmp(filters[i].name, name) == 0)
            return filters[i].fn;
    return NULL;
}

int jinja_is_filter(const char *name)
{
    return find_filter(name) != NULL;
}

jv jinja_apply_filter(jctx *c, const jnode *n, const char *name, jv v, const jargs *a)
{
    filter_fn fn = find_filter(name);
    return fn ? fn(c, n, v, a) : jinja_fail(c, n, "no filter named '%s'", name);
}

/* ---- tests ---- */

typedef int (*test_fn)(jctx *c, const jnode *n, jv v, jv arg);

static int t_defined(jctx *c, const jnode *n, jv v, jv x) { (void)c, (void)n, (void)x; return v.t != JV_UNDEF; }
static int t_undefined(jctx *c, const jnode *n, jv v, jv x) { (void)c, (void)n, (void)x; return v.t == JV_UNDEF; }
static int t_none(jctx *c, const jnode *n, jv v, jv x) { (void)c, (void)n, (void)x; return v.t == JV_NONE; }
static int t_string(jctx *c, const jnode *n, jv v, jv x) { (void)c, (void)n, (void)x; return v.t == JV_STR; }
/* bool is a Number in Python, not an integer for Jinja */
static int t_number(jctx *c, const jnode *n, jv v, jv x) { (void)c, (void)n, (void)x; return jv_is_number(v); }
static int t_integer(jctx *c, const jnode *n, jv v, jv x) { (void)c, (void)n, (void)x; return v.t == JV_INT; }
static int t_float(jctx *c, const jnode *n, jv v, jv x) { (void)c, (void)n, (void)x; return v.t == JV_FLOAT; }
static int t_boolean(jctx *c, const jnode *n, jv v, jv x) { (void)c, (void)n, (void)x; return v.t == JV_BOOL; }
static int t_true(jctx *c, const jnode *n, jv v, jv x) { (void)c, (void)n, (void)x; return v.t == JV_BOOL && v.i; }
static int t_false(jctx *c, const jnode *n, jv v, jv x) { (void)c, (void)n, (void)x; return v.t == JV_BOOL && !v.i; }
/* Jinja's Undefined has __call__ (which raises), so it is callable */
static int t_callable(jctx *c, const jnode *n, jv v, jv x)
{
    (void)c, (void)n, (void)x;
    return v.t == JV_FUNC || v.t == JV_UNDEF;
}
static int t_mapping(jctx *c, const jnode *n, jv v, jv x)
{
    (void)c, (void)n, (void)x;
    return v.t == JV_DICT && !v.d->is_namespace && !v.d->is_loop;
}
static int t_sequence(jctx *c, const jnode *n, jv v, jv x)
{
    (void)c, (void)n, (void)x;
    return v.t == JV_LIST || v.t == JV_STR || v.t == JV_DICT;
}
/* undefined iterates (as empty) */
static int t_iterable(jctx *c, const jnode *n, jv v, jv x)
{
    (void)c, (void)n, (void)x;
    return v.t == JV_LIST || v.t == JV_STR || v.t == JV_DICT || v.t == JV_UNDEF;
}

/* value % 2 (or % arg) == 0 on integers */
static int divides(jctx *c, const jnode *n, jv v, int64_t by, int64_t want)
{
    if (v.t != JV_INT && v.t != JV_BOOL) {
        jinja_fail(c, n, "a %s is not an integer", jv_type_name(v));
        return 0;
    }
    if (by == 0) {
        jinja_fail(c, n, "division by zero");
        return 0;
    }
    int64_t r = by == -1 ? 0 : v.i % by;
    if (r != 0 && (r < 0) != (by < 0))
        r += by;
    return r == want;
}
static int t_odd(jctx *c, const jnode *n, jv v, jv x) { (void)x; return divides(c, n, v, 2, 1); }
static int t_even(jctx *c, const jnode *n, jv v, jv x) { (void)x; return divides(c, n, v, 2, 0); }
static int t_divisibleby(jctx *c, const jnode *n, jv v, jv x)
{
    if (x.t != JV_INT && x.t != JV_BOOL) {
        jinja_fail(c, n, "divisibleby takes an integer");
        return 0;
    }
    return divides(c, n, v, x.i, 0);
}
static int t_eq(jctx *c, const jnode *n, jv v, jv x) { return jinja_equal(c, n, v, x); }
static int t_ne(jctx *c, const jnode *n, jv v, jv x) { return !jinja_equal(c, n, v, x); }
static int t_lt(jctx *c, const jnode *n, jv v, jv x) { return jinja_compare(c, n, v, x) < 0; }
static int t_le(jctx *c, const jnode *n, jv v, jv x) { return jinja_compare(c, n, v, x) <= 0; }
static int t_gt(jctx *c, const jnode *n, jv v, jv x) { return jinja_compare(c, n, v, x) > 0; }
static int t_ge(jctx *c, const jnode *n, jv v, jv x) { return jinja_compare(c, n, v, x) >= 0; }
static int t_in(jctx *c, const jnode *n, jv v, jv x) { return jinja_contains(c, n, x, v); }
/* Python's `is`: the same container, or equal scalars of one kind */
static int t_sameas(jctx *c, const jnode *n, jv v, jv x)
{
    if (v.t != x.t)
        return 0;
    if (v.t == JV_LIST || v.t == JV_DICT)
        return v.t == JV_LIST ? v.l == x.l : v.d == x.d;
    return jinja_equal(c, n, v, x);
}
/* str.islower()/isupper(): some cased character, and none of the other case */
static int cased(jctx *c, const jnode *n, jv v, int upper)
{
    jv s = jinja_to_str(c, n, v);
    int any = 0;
    for (size_t i = 0; i < s.s.n;) {
        size_t len = 1;
        int32_t cp = fl_utf8_next((const unsigned char *)s.s.p + i, s.s.n - i, &len);
        i += len;
        if (cp < 0)
            continue;
        if (utf8proc_tolower(cp) != cp || utf8proc_toupper(cp) != cp) {
            if ((upper ? utf8proc_toupper(cp) : utf8proc_tolower(cp)) != cp)
                return 0;
            any = 1;
        }
    }
    return any;
}
static int t_lower(jctx *c, const jnode *n, jv v, jv x) { (void)x; return cased(c, n, v, 0); }
static int t_upper(jctx *c, const jnode *n, jv v, jv x) { (void)x; return cased(c, n, v, 1); }

static const struct {
    const char *name;
    test_fn fn;
} tests[] = {
    { "defined", t_defined }, { "undefined", t_undefined }, { "none", t_none },
    { "string", t_string }, { "number", t_number }, { "integer", t_integer },
    { "float", t_float }, { "boolean", t_boolean }, { "true", t_true }, { "false", t_false },
    { "callable", t_callable }, { "mapping", t_mapping }, { "sequence", t_sequence },
    { "iterable", t_iterable }, { "odd", t_odd }, { "even", t_even },
    { "divisibleby", t_divisibleby }, { "eq", t_eq }, { "equalto", t_eq }, { "==", t_eq },
    { "ne", t_ne }, { "!=", t_ne }, { "lt", t_lt }, { "lessthan", t_lt }, { "<", t_lt },
    { "le", t_le }, { "<=", t_le }, { "gt", t_gt }, { "greaterthan", t_gt }, { ">", t_gt },
    { "ge", t_ge }, { ">=", t_ge }, { "in", t_in }, { "sameas", t_sameas },
    { "lower", t_lower }, { "upper", t_upper },
};

static test_fn find_test(const char *name)
{
    for (size_t i = 0; i < sizeof tests / sizeof tests[0]; i++)
        if (strcmp(tests[i].name, name) == 0)
            return tests[i].fn;
    return NULL;
}

int jinja_is_test(const char *name)
{
    return find_test(name) != NULL;
}

int jinja_apply_test(jctx *c, const jnode *n, const char *name, jv v, const jargs *a)
{
    test_fn fn = find_test(name);
    if (!fn) {
        jinja_fail(c, n, "no test named '%s'", name);
        return 0;
    }
    return fn(c, n, v, jinja_arg(a, 0, NULL, undef));
}
