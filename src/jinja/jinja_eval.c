/* jinja_eval.c - rendering a syntax tree: scopes, statements, operators,
 * and the built-in filters, tests, methods and globals.
 *
 * Errors (raise_exception, type errors) set the context's error once and
 * make every later step a no-op, so evaluation unwinds without longjmp. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <utf8proc.h>

#include "base/utf8.h"
#include "jinja/jinja_eval.h"
#include "jinja/jinja_value.h"

typedef struct frame {
    const char **names;
    jv *vals;
    int n, cap;
    struct frame *parent;
} frame;

typedef struct ctx {
    fl_arena *a;
    fl_strbuf *out;
    fl_error *err;
    int failed;
    frame *scope;
    int loop_ctl; /* 1 break, 2 continue */
} ctx;

static const jv undef = { .t = JV_UNDEF };

static jv fail(ctx *c, const jnode *n, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static jv fail(ctx *c, const jnode *n, const char *fmt, ...)
{
    if (!c->failed) {
        char msg[512];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(msg, sizeof msg, fmt, ap);
        va_end(ap);
        fl_fail(c->err, "line %d: %s", n->line, msg);
    }
    c->failed = 1;
    return undef;
}

/* ---- scopes ---- */

static jv *lookup(ctx *c, const char *name)
{
    for (frame *f = c->scope; f; f = f->parent)
        for (int i = f->n - 1; i >= 0; i--)
            if (strcmp(f->names[i], name) == 0)
                return &f->vals[i];
    return NULL;
}

static void assign(ctx *c, const char *name, jv v)
{
    frame *f = c->scope;
    for (int i = 0; i < f->n; i++) {
        if (strcmp(f->names[i], name) == 0) {
            f->vals[i] = v;
            return;
        }
    }
    if (f->n == f->cap) {
        f->cap = f->cap ? f->cap * 2 : 8;
        const char **names = fl_arena_alloc(c->a, (size_t)f->cap * sizeof(char *));
        jv *vals = fl_arena_alloc(c->a, (size_t)f->cap * sizeof(jv));
        if (f->n) {
            memcpy(names, f->names, (size_t)f->n * sizeof(char *));
            memcpy(vals, f->vals, (size_t)f->n * sizeof(jv));
        }
        f->names = names;
        f->vals = vals;
    }
    f->names[f->n] = name;
    f->vals[f->n++] = v;
}

static jv eval(ctx *c, const jnode *n);

/* ---- helpers ---- */

static jv concat(ctx *c, jv a, jv b)
{
    fl_strbuf s = { 0 };
    jv_to_string(&s, a);
    jv_to_string(&s, b);
    jv r = jv_str(c->a, s.data ? s.data : "", s.len);
    fl_strbuf_free(&s);
    return r;
}

static jv to_str(ctx *c, jv v)
{
    return v.t == JV_STR ? v : concat(c, v, undef);
}

/* Python's index rules: negative counts from the end; -1 if out of range. */
static int64_t py_index(int64_t i, size_t n)
{
    if (i < 0)
        i += (int64_t)n;
    return i >= 0 && i < (int64_t)n ? i : -1;
}

static jv get_item(ctx *c, const jnode *n, jv obj, jv key)
{
    if (obj.t == JV_DICT && key.t == JV_STR) {
        jv *v = jv_dict_find(obj.d, key.s.p, key.s.n);
        return v ? *v : undef;
    }
    if (obj.t == JV_LIST && (key.t == JV_INT || key.t == JV_BOOL)) {
        int64_t i = py_index(key.i, obj.l->n);
        return i < 0 ? undef : obj.l->items[i];
    }
    if (obj.t == JV_STR && key.t == JV_INT) {
        int64_t i = py_index(key.i, jv_str_chars(obj));
        if (i < 0)
            return undef;
        size_t from = jv_str_char_offset(obj, (size_t)i), to = jv_str_char_offset(obj, (size_t)i + 1);
        return jv_str(c->a, obj.s.p + from, to - from);
    }
    if (obj.t == JV_UNDEF)
        return fail(c, n, "cannot index an undefined value");
    return undef;
}

/* Python slice bounds for length n. */
static void slice_bounds(int64_t n, jv start, jv stop, int64_t step, int64_t *lo, int64_t *hi)
{
    int64_t s, e;
    if (step > 0) {
        s = start.t == JV_INT ? start.i : 0;
        e = stop.t == JV_INT ? stop.i : n;
        if (s < 0) s += n;
        if (e < 0) e += n;
        s = s < 0 ? 0 : s > n ? n : s;
        e = e < 0 ? 0 : e > n ? n : e;
    } else {
        s = start.t == JV_INT ? start.i : n - 1;
        e = stop.t == JV_INT ? stop.i : -n - 1;
        if (s < 0) s += n;
        if (e < 0) e += n;
        s = s < -1 ? -1 : s > n - 1 ? n - 1 : s;
        e = e < -1 ? -1 : e > n - 1 ? n - 1 : e;
    }
    *lo = s;
    *hi = e;
}

static jv slice(ctx *c, const jnode *n, jv obj, jv start, jv stop, jv stepv)
{
    int64_t step = stepv.t == JV_INT ? stepv.i : 1;
    if (step == 0)
        return fail(c, n, "slice step cannot be zero");
    if (obj.t == JV_LIST) {
        int64_t lo, hi;
        slice_bounds((int64_t)obj.l->n, start, stop, step, &lo, &hi);
        jv r = jv_list(c->a);
        for (int64_t i = lo; step > 0 ? i < hi : i > hi; i += step)
            jv_list_push(c->a, r.l, obj.l->items[i]);
        return r;
    }
    if (obj.t == JV_STR) {
        int64_t lo, hi, chars = (int64_t)jv_str_chars(obj);
        slice_bounds(chars, start, stop, step, &lo, &hi);
        fl_strbuf s = { 0 };
        for (int64_t i = lo; step > 0 ? i < hi : i > hi; i += step) {
            size_t from = jv_str_char_offset(obj, (size_t)i), to = jv_str_char_offset(obj, (size_t)i + 1);
            fl_strbuf_append(&s, obj.s.p + from, to - from);
        }
        jv r = jv_str(c->a, s.data ? s.data : "", s.len);
        fl_strbuf_free(&s);
        return r;
    }
    return fail(c, n, "cannot slice a %s", jv_type_name(obj));
}

static int contains(jv hay, jv needle)
{
    if (hay.t == JV_STR && needle.t == JV_STR)
        return needle.s.n == 0 || (needle.s.n <= hay.s.n &&
               memmem(hay.s.p, hay.s.n, needle.s.p, needle.s.n) != NULL);
    if (hay.t == JV_LIST) {
        for (size_t i = 0; i < hay.l->n; i++)
            if (jv_equal(hay.l->items[i], needle))
                return 1;
        return 0;
    }
    if (hay.t == JV_DICT && needle.t == JV_STR)
        return jv_dict_find(hay.d, needle.s.p, needle.s.n) != NULL;
    return 0;
}

static int compare(ctx *c, const jnode *n, jv a, jv b)
{
    if (jv_is_number(a) && jv_is_number(b)) {
        double x = jv_number(a), y = jv_number(b);
        return x < y ? -1 : x > y;
    }
    if (a.t == JV_STR && b.t == JV_STR) {
        size_t m = a.s.n < b.s.n ? a.s.n : b.s.n;
        int r = memcmp(a.s.p, b.s.p, m);
        return r ? (r < 0 ? -1 : 1) : (a.s.n > b.s.n) - (a.s.n < b.s.n);
    }
    fail(c, n, "cannot compare %s with %s", jv_type_name(a), jv_type_name(b));
    return 0;
}

static jv arith(ctx *c, const jnode *n, const char *op, jv a, jv b)
{
    if (op[0] == '+' && a.t == JV_STR && b.t == JV_STR)
        return concat(c, a, b);
    if (op[0] == '+' && a.t == JV_LIST && b.t == JV_LIST) {
        jv r = jv_list(c->a);
        for (size_t i = 0; i < a.l->n; i++)
            jv_list_push(c->a, r.l, a.l->items[i]);
        for (size_t i = 0; i < b.l->n; i++)
            jv_list_push(c->a, r.l, b.l->items[i]);
        return r;
    }
    if (op[0] == '*' && op[1] == 0 && ((a.t == JV_STR && b.t == JV_INT) || (a.t == JV_INT && b.t == JV_STR))) {
        jv s = a.t == JV_STR ? a : b;
        int64_t times = a.t == JV_INT ? a.i : b.i;
        fl_strbuf r = { 0 };
        for (int64_t i = 0; i < times; i++)
            fl_strbuf_append(&r, s.s.p, s.s.n);
        jv out = jv_str(c->a, r.data ? r.data : "", r.len);
        fl_strbuf_free(&r);
        return out;
    }
    if (!jv_is_number(a) || !jv_is_number(b))
        return fail(c, n, "unsupported operand types for %s: %s and %s", op, jv_type_name(a),
                    jv_type_name(b));
    const int ints = a.t != JV_FLOAT && b.t != JV_FLOAT;
    const double x = jv_number(a), y = jv_number(b);
    if ((op[0] == '/' || op[0] == '%') && y == 0)
        return fail(c, n, "division by zero");
    switch (op[0]) {
    case '+': return ints ? (jv){ .t = JV_INT, .i = a.i + b.i } : (jv){ .t = JV_FLOAT, .f = x + y };
    case '-': return ints ? (jv){ .t = JV_INT, .i = a.i - b.i } : (jv){ .t = JV_FLOAT, .f = x - y };
    case '*':
        if (op[1] == '*')
            return ints && b.i >= 0 ? (jv){ .t = JV_INT, .i = (int64_t)llround(pow(x, y)) }
                                    : (jv){ .t = JV_FLOAT, .f = pow(x, y) };
        return ints ? (jv){ .t = JV_INT, .i = a.i * b.i } : (jv){ .t = JV_FLOAT, .f = x * y };
    case '/':
        if (op[1] == '/')
            return ints ? (jv){ .t = JV_INT, .i = (int64_t)floor(x / y) }
                        : (jv){ .t = JV_FLOAT, .f = floor(x / y) };
        return (jv){ .t = JV_FLOAT, .f = x / y };
    default: /* % with Python's sign rule */
        if (ints) {
            int64_t m = a.i % b.i;
            return (jv){ .t = JV_INT, .i = (m != 0 && ((m < 0) != (b.i < 0))) ? m + b.i : m };
        }
        return (jv){ .t = JV_FLOAT, .f = x - y * floor(x / y) };
    }
}

static jv binary(ctx *c, const jnode *n)
{
    jv a = eval(c, n->a), b = eval(c, n->b);
    if (c->failed)
        return undef;
    const char *op = n->name;
    if (strcmp(op, "==") == 0) return (jv){ .t = JV_BOOL, .i = jv_equal(a, b) };
    if (strcmp(op, "!=") == 0) return (jv){ .t = JV_BOOL, .i = !jv_equal(a, b) };
    if (strcmp(op, "<") == 0) return (jv){ .t = JV_BOOL, .i = compare(c, n, a, b) < 0 };
    if (strcmp(op, ">") == 0) return (jv){ .t = JV_BOOL, .i = compare(c, n, a, b) > 0 };
    if (strcmp(op, "<=") == 0) return (jv){ .t = JV_BOOL, .i = compare(c, n, a, b) <= 0 };
    if (strcmp(op, ">=") == 0) return (jv){ .t = JV_BOOL, .i = compare(c, n, a, b) >= 0 };
    if (strcmp(op, "in") == 0) return (jv){ .t = JV_BOOL, .i = contains(b, a) };
    if (strcmp(op, "not in") == 0) return (jv){ .t = JV_BOOL, .i = !contains(b, a) };
    if (strcmp(op, "~") == 0) return concat(c, a, b);
    if (a.t == JV_UNDEF || b.t == JV_UNDEF)
        return fail(c, n, "undefined value in '%s'", op);
    return arith(c, n, op, a, b);
}

/* ---- arguments ---- */

typedef struct args {
    jv pos[8];
    int npos;
    const char *kwname[8];
    jv kw[8];
    int nkw;
} args;

static int eval_args(ctx *c, const jnode *n, args *out)
{
    memset(out, 0, sizeof *out);
    const int npos = n->nargs - n->nkw;
    if (npos > 8 || n->nkw > 8) {
        fail(c, n, "too many arguments");
        return -1;
    }
    for (int i = 0; i < npos; i++)
        out->pos[out->npos++] = eval(c, n->args[i]);
    for (int i = 0; i < n->nkw; i++) {
        out->kwname[out->nkw] = n->kwnames[i];
        out->kw[out->nkw++] = eval(c, n->args[npos + i]);
    }
    return c->failed ? -1 : 0;
}

/* Positional argument i, else keyword `name`, else dflt. */
static jv arg(const args *a, int i, const char *name, jv dflt)
{
    if (i < a->npos)
        return a->pos[i];
    for (int k = 0; name && k < a->nkw; k++)
        if (strcmp(a->kwname[k], name) == 0)
            return a->kw[k];
    return dflt;
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
static jv strip(ctx *c, jv s, jv chars, int which)
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

static jv split(ctx *c, const jnode *n, jv s, jv sep, jv maxv)
{
    jv r = jv_list(c->a);
    int64_t max = maxv.t == JV_INT ? maxv.i : -1;
    if (sep.t == JV_STR) {
        if (sep.s.n == 0)
            return fail(c, n, "empty separator");
        const char *p = s.s.p, *end = s.s.p + s.s.n;
        for (;;) {
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
        jv_list_push(c->a, r.l, jv_str(c->a, s.s.p + i, j - i));
        i = j;
    }
    return r;
}

static jv replace(ctx *c, jv s, jv old, jv new_)
{
    if (old.t != JV_STR || new_.t != JV_STR || old.s.n == 0)
        return s;
    fl_strbuf r = { 0 };
    const char *p = s.s.p, *end = s.s.p + s.s.n, *hit;
    while ((hit = memmem(p, (size_t)(end - p), old.s.p, old.s.n)) != NULL) {
        fl_strbuf_append(&r, p, (size_t)(hit - p));
        fl_strbuf_append(&r, new_.s.p, new_.s.n);
        p = hit + old.s.n;
    }
    fl_strbuf_append(&r, p, (size_t)(end - p));
    jv out = jv_str(c->a, r.data ? r.data : "", r.len);
    fl_strbuf_free(&r);
    return out;
}

/* upper/lower (title_like 0), capitalize-style (1: first character up) or
 * title (2: each word's first character up), code point by code point. */
static jv change_case(ctx *c, jv s, int upper, int title_like)
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
    jv out = jv_str(c->a, r.data ? r.data : "", r.len);
    fl_strbuf_free(&r);
    return out;
}

static int starts_or_ends(jv s, jv x, int ends)
{
    if (x.t == JV_LIST) {
        for (size_t i = 0; i < x.l->n; i++)
            if (starts_or_ends(s, x.l->items[i], ends))
                return 1;
        return 0;
    }
    if (x.t != JV_STR || x.s.n > s.s.n)
        return 0;
    return memcmp(s.s.p + (ends ? s.s.n - x.s.n : 0), x.s.p, x.s.n) == 0;
}

static jv join(ctx *c, jv list, jv sep)
{
    fl_strbuf r = { 0 };
    for (size_t i = 0; list.t == JV_LIST && i < list.l->n; i++) {
        if (i && sep.t == JV_STR)
            fl_strbuf_append(&r, sep.s.p, sep.s.n);
        jv_to_string(&r, list.l->items[i]);
    }
    jv out = jv_str(c->a, r.data ? r.data : "", r.len);
    fl_strbuf_free(&r);
    return out;
}

static jv dict_view(ctx *c, jv d, int what) /* 0 keys, 1 values, 2 items */
{
    jv r = jv_list(c->a);
    for (size_t i = 0; i < d.d->n; i++) {
        if (what == 2) {
            jv pair = jv_list(c->a);
            jv_list_push(c->a, pair.l, d.d->keys[i]);
            jv_list_push(c->a, pair.l, d.d->vals[i]);
            jv_list_push(c->a, r.l, pair);
        } else {
            jv_list_push(c->a, r.l, what ? d.d->vals[i] : d.d->keys[i]);
        }
    }
    return r;
}

static jv call_method(ctx *c, const jnode *n, jv obj, const char *m, const args *a)
{
    if (obj.t == JV_STR) {
        if (!strcmp(m, "startswith")) return (jv){ .t = JV_BOOL, .i = starts_or_ends(obj, arg(a, 0, NULL, undef), 0) };
        if (!strcmp(m, "endswith")) return (jv){ .t = JV_BOOL, .i = starts_or_ends(obj, arg(a, 0, NULL, undef), 1) };
        if (!strcmp(m, "strip")) return strip(c, obj, arg(a, 0, "chars", undef), 3);
        if (!strcmp(m, "lstrip")) return strip(c, obj, arg(a, 0, "chars", undef), 1);
        if (!strcmp(m, "rstrip")) return strip(c, obj, arg(a, 0, "chars", undef), 2);
        if (!strcmp(m, "split")) return split(c, n, obj, arg(a, 0, "sep", undef), arg(a, 1, "maxsplit", undef));
        if (!strcmp(m, "replace")) return replace(c, obj, arg(a, 0, NULL, undef), arg(a, 1, NULL, undef));
        if (!strcmp(m, "upper")) return change_case(c, obj, 1, 0);
        if (!strcmp(m, "lower")) return change_case(c, obj, 0, 0);
        if (!strcmp(m, "capitalize")) return change_case(c, change_case(c, obj, 0, 0), 1, 1);
        if (!strcmp(m, "title")) return change_case(c, obj, 0, 2);
        if (!strcmp(m, "join")) return join(c, arg(a, 0, NULL, undef), obj);
    } else if (obj.t == JV_DICT) {
        if (!strcmp(m, "get")) {
            jv key = arg(a, 0, NULL, undef), *v = key.t == JV_STR ? jv_dict_find(obj.d, key.s.p, key.s.n) : NULL;
            return v ? *v : arg(a, 1, "default", (jv){ .t = JV_NONE });
        }
        if (!strcmp(m, "keys")) return dict_view(c, obj, 0);
        if (!strcmp(m, "values")) return dict_view(c, obj, 1);
        if (!strcmp(m, "items")) return dict_view(c, obj, 2);
    }
    return fail(c, n, "%s has no method '%s'", jv_type_name(obj), m);
}

/* ---- globals ---- */

static jv call_global(ctx *c, const jnode *n, const char *name, const args *a)
{
    if (!strcmp(name, "namespace")) {
        jv ns = jv_dict(c->a);
        ns.d->is_namespace = 1;
        for (int i = 0; i < a->nkw; i++)
            jv_dict_set(c->a, ns.d, jv_cstr(a->kwname[i]), a->kw[i]);
        return ns;
    }
    if (!strcmp(name, "raise_exception")) {
        fl_strbuf msg = { 0 };
        jv_to_string(&msg, arg(a, 0, NULL, undef));
        fail(c, n, "the chat template raised an error: %s", msg.data ? msg.data : "");
        fl_strbuf_free(&msg);
        return undef;
    }
    if (!strcmp(name, "range")) {
        jv x = arg(a, 0, NULL, undef), y = arg(a, 1, NULL, undef), s = arg(a, 2, NULL, undef);
        int64_t lo = a->npos > 1 ? x.i : 0, hi = a->npos > 1 ? y.i : x.i, step = a->npos > 2 ? s.i : 1;
        if (step == 0 || (hi - lo) / step > 1000000)
            return fail(c, n, "range() arguments out of bounds");
        jv r = jv_list(c->a);
        for (int64_t i = lo; step > 0 ? i < hi : i > hi; i += step)
            jv_list_push(c->a, r.l, (jv){ .t = JV_INT, .i = i });
        return r;
    }
    if (!strcmp(name, "strftime_now")) {
        jv fmt = arg(a, 0, NULL, undef);
        char buf[256];
        time_t now = time(NULL);
        struct tm tm;
        localtime_r(&now, &tm);
        size_t len = fmt.t == JV_STR ? strftime(buf, sizeof buf, fmt.s.p, &tm) : 0;
        return jv_str(c->a, buf, len);
    }
    return fail(c, n, "'%s' is not a function", name);
}

/* ---- filters and tests ---- */

static jv length_of(jv v)
{
    int64_t n = v.t == JV_STR ? (int64_t)jv_str_chars(v) : v.t == JV_LIST ? (int64_t)v.l->n
              : v.t == JV_DICT ? (int64_t)v.d->n : 0;
    return (jv){ .t = JV_INT, .i = n };
}

static jv apply_filter(ctx *c, const jnode *n, jv v, const args *a)
{
    const char *f = n->name;
    if (!strcmp(f, "length") || !strcmp(f, "count")) return length_of(v);
    if (!strcmp(f, "trim")) return v.t == JV_STR ? strip(c, v, arg(a, 0, "chars", undef), 3) : v;
    if (!strcmp(f, "string")) return to_str(c, v);
    if (!strcmp(f, "lower") || !strcmp(f, "upper"))
        return change_case(c, to_str(c, v), f[0] == 'u', 0);
    if (!strcmp(f, "capitalize")) return change_case(c, change_case(c, to_str(c, v), 0, 0), 1, 1);
    if (!strcmp(f, "title")) return change_case(c, to_str(c, v), 0, 2);
    if (!strcmp(f, "replace")) return replace(c, to_str(c, v), arg(a, 0, NULL, undef), arg(a, 1, NULL, undef));
    if (!strcmp(f, "default") || !strcmp(f, "d")) {
        int use = v.t == JV_UNDEF || (jv_truthy(arg(a, 1, "boolean", undef)) && !jv_truthy(v));
        return use ? arg(a, 0, "default_value", jv_cstr("")) : v;
    }
    if (!strcmp(f, "first") || !strcmp(f, "last")) {
        if (v.t == JV_LIST)
            return v.l->n ? v.l->items[f[0] == 'f' ? 0 : v.l->n - 1] : undef;
        if (v.t == JV_STR && v.s.n)
            return get_item(c, n, v, (jv){ .t = JV_INT, .i = f[0] == 'f' ? 0 : -1 });
        return undef;
    }
    if (!strcmp(f, "join")) return join(c, v, arg(a, 0, "d", jv_cstr("")));
    if (!strcmp(f, "list")) {
        if (v.t == JV_LIST) return v;
        if (v.t == JV_DICT) return dict_view(c, v, 0);
        jv r = jv_list(c->a);
        for (size_t i = 0; v.t == JV_STR && i < jv_str_chars(v); i++)
            jv_list_push(c->a, r.l, get_item(c, n, v, (jv){ .t = JV_INT, .i = (int64_t)i }));
        return r;
    }
    if (!strcmp(f, "items")) return v.t == JV_DICT ? dict_view(c, v, 2) : jv_list(c->a);
    if (!strcmp(f, "int")) {
        if (v.t == JV_STR) return (jv){ .t = JV_INT, .i = strtoll(v.s.p, NULL, 10) };
        return (jv){ .t = JV_INT, .i = jv_is_number(v) ? (int64_t)jv_number(v) : 0 };
    }
    if (!strcmp(f, "abs"))
        return v.t == JV_FLOAT ? (jv){ .t = JV_FLOAT, .f = fabs(v.f) }
                               : (jv){ .t = JV_INT, .i = v.i < 0 ? -v.i : v.i };
    if (!strcmp(f, "tojson")) {
        jv indent = arg(a, 0, "indent", undef);
        fl_strbuf s = { 0 };
        jv_to_json(&s, v, indent.t == JV_INT ? (int)indent.i : -1);
        jv r = jv_str(c->a, s.data ? s.data : "", s.len);
        fl_strbuf_free(&s);
        return r;
    }
    return fail(c, n, "unknown filter '%s'", f);
}

static int apply_test(ctx *c, const jnode *n, jv v, const args *a)
{
    const char *t = n->name;
    if (!strcmp(t, "defined")) return v.t != JV_UNDEF;
    if (!strcmp(t, "undefined")) return v.t == JV_UNDEF;
    if (!strcmp(t, "none")) return v.t == JV_NONE;
    if (!strcmp(t, "string")) return v.t == JV_STR;
    if (!strcmp(t, "number")) return v.t == JV_INT || v.t == JV_FLOAT;
    if (!strcmp(t, "integer")) return v.t == JV_INT;
    if (!strcmp(t, "float")) return v.t == JV_FLOAT;
    if (!strcmp(t, "boolean")) return v.t == JV_BOOL;
    if (!strcmp(t, "true")) return v.t == JV_BOOL && v.i;
    if (!strcmp(t, "false")) return v.t == JV_BOOL && !v.i;
    if (!strcmp(t, "mapping")) return v.t == JV_DICT;
    if (!strcmp(t, "sequence")) return v.t == JV_LIST || v.t == JV_STR;
    if (!strcmp(t, "iterable")) return v.t == JV_LIST || v.t == JV_STR || v.t == JV_DICT;
    if (!strcmp(t, "odd") || !strcmp(t, "even"))
        return v.t == JV_INT && (v.i % 2 != 0) == (t[0] == 'o');
    if (!strcmp(t, "eq") || !strcmp(t, "equalto") || !strcmp(t, "sameas"))
        return jv_equal(v, arg(a, 0, NULL, undef));
    if (!strcmp(t, "ne")) return !jv_equal(v, arg(a, 0, NULL, undef));
    fail(c, n, "unknown test '%s'", t);
    return 0;
}

/* ---- expressions ---- */

static jv eval_call(ctx *c, const jnode *n)
{
    args a;
    if (n->a->kind == JN_ATTR) {
        jv obj = eval(c, n->a->a);
        if (eval_args(c, n, &a) != 0)
            return undef;
        return call_method(c, n, obj, n->a->name, &a);
    }
    if (n->a->kind != JN_NAME)
        return fail(c, n, "this expression cannot be called");
    if (eval_args(c, n, &a) != 0)
        return undef;
    return call_global(c, n, n->a->name, &a);
}

static jv eval(ctx *c, const jnode *n)
{
    if (c->failed)
        return undef;
    switch (n->kind) {
    case JN_LITERAL:
        return n->value;
    case JN_NAME: {
        jv *v = lookup(c, n->name);
        return v ? *v : undef;
    }
    case JN_ATTR: {
        jv obj = eval(c, n->a);
        if (obj.t == JV_DICT) {
            jv *v = jv_dict_find(obj.d, n->name, strlen(n->name));
            return v ? *v : undef;
        }
        if (obj.t == JV_UNDEF)
            return fail(c, n, "'%s' of an undefined value", n->name);
        return undef;
    }
    case JN_ITEM: {
        jv obj = eval(c, n->a), key = eval(c, n->b);
        return c->failed ? undef : get_item(c, n, obj, key);
    }
    case JN_SLICE: {
        jv obj = eval(c, n->a);
        jv lo = n->b ? eval(c, n->b) : undef, hi = n->c ? eval(c, n->c) : undef;
        jv step = n->args[0] ? eval(c, n->args[0]) : undef;
        return c->failed ? undef : slice(c, n, obj, lo, hi, step);
    }
    case JN_CALL:
        return eval_call(c, n);
    case JN_FILTER: {
        jv v = eval(c, n->a);
        args a;
        if (eval_args(c, n, &a) != 0)
            return undef;
        return apply_filter(c, n, v, &a);
    }
    case JN_TEST: {
        jv v = eval(c, n->a);
        args a;
        if (eval_args(c, n, &a) != 0)
            return undef;
        int r = apply_test(c, n, v, &a);
        return (jv){ .t = JV_BOOL, .i = n->negated ? !r : r };
    }
    case JN_NOT:
        return (jv){ .t = JV_BOOL, .i = !jv_truthy(eval(c, n->a)) };
    case JN_NEG: {
        jv v = eval(c, n->a);
        if (v.t == JV_FLOAT)
            return (jv){ .t = JV_FLOAT, .f = -v.f };
        if (v.t == JV_INT || v.t == JV_BOOL)
            return (jv){ .t = JV_INT, .i = -v.i };
        return fail(c, n, "cannot negate a %s", jv_type_name(v));
    }
    case JN_AND: {
        jv l = eval(c, n->a);
        return jv_truthy(l) ? eval(c, n->b) : l;
    }
    case JN_OR: {
        jv l = eval(c, n->a);
        return jv_truthy(l) ? l : eval(c, n->b);
    }
    case JN_BINARY:
        return binary(c, n);
    case JN_COND:
        return jv_truthy(eval(c, n->b)) ? eval(c, n->a) : n->c ? eval(c, n->c) : undef;
    case JN_LIST: {
        jv l = jv_list(c->a);
        for (int i = 0; i < n->nargs; i++)
            jv_list_push(c->a, l.l, eval(c, n->args[i]));
        return l;
    }
    case JN_DICT: {
        jv d = jv_dict(c->a);
        for (int i = 0; i < n->nargs; i++) {
            jv k = eval(c, n->args[i]);
            if (k.t != JV_STR)
                return fail(c, n, "dict keys must be strings");
            jv_dict_set(c->a, d.d, k, eval(c, n->args[n->nargs + i]));
        }
        return d;
    }
    default:
        return fail(c, n, "not an expression");
    }
}

/* ---- statements ---- */

static void exec(ctx *c, const jnode *n);

static void exec_body(ctx *c, const jnode *body)
{
    for (int i = 0; body && i < body->nstmts && !c->failed && !c->loop_ctl; i++)
        exec(c, body->stmts[i]);
}

static jv loop_info(ctx *c, size_t i, size_t len)
{
    jv d = jv_dict(c->a);
    static const char *const keys[] = { "index", "index0", "revindex", "revindex0", "first",
                                        "last", "length" };
    const int64_t vals[] = { (int64_t)i + 1, (int64_t)i, (int64_t)(len - i), (int64_t)(len - i - 1),
                             i == 0, i + 1 == len, (int64_t)len };
    for (int k = 0; k < 7; k++)
        jv_dict_set(c->a, d.d, jv_cstr(keys[k]),
                    (jv){ .t = (k == 4 || k == 5) ? JV_BOOL : JV_INT, .i = vals[k] });
    return d;
}

static void exec_for(ctx *c, const jnode *n)
{
    jv seq = eval(c, n->a);
    if (c->failed)
        return;
    if (seq.t == JV_DICT)
        seq = dict_view(c, seq, n->name2 ? 2 : 0);
    else if (seq.t == JV_STR) {
        jv chars = jv_list(c->a);
        for (size_t i = 0; i < jv_str_chars(seq); i++)
            jv_list_push(c->a, chars.l, get_item(c, n, seq, (jv){ .t = JV_INT, .i = (int64_t)i }));
        seq = chars;
    } else if (seq.t == JV_UNDEF || seq.t == JV_NONE) {
        seq = jv_list(c->a);
    } else if (seq.t != JV_LIST) {
        fail(c, n, "cannot loop over a %s", jv_type_name(seq));
        return;
    }
    /* The loop filter (`for x in y if cond`) selects items first, so `loop`
     * counts only the selected ones, as in Jinja. */
    frame f = { .parent = c->scope };
    c->scope = &f;
    jv items = seq;
    if (n->b) {
        items = jv_list(c->a);
        for (size_t i = 0; i < seq.l->n && !c->failed; i++) {
            f.n = 0;
            assign(c, n->name, seq.l->items[i]);
            if (jv_truthy(eval(c, n->b)))
                jv_list_push(c->a, items.l, seq.l->items[i]);
        }
    }
    for (size_t i = 0; i < items.l->n && !c->failed; i++) {
        f.n = 0; /* a fresh scope for each iteration */
        jv item = items.l->items[i];
        if (n->name2) {
            if (item.t != JV_LIST || item.l->n != 2) {
                fail(c, n, "cannot unpack a %s into two loop variables", jv_type_name(item));
                break;
            }
            assign(c, n->name, item.l->items[0]);
            assign(c, n->name2, item.l->items[1]);
        } else {
            assign(c, n->name, item);
        }
        assign(c, "loop", loop_info(c, i, items.l->n));
        exec_body(c, n->body);
        int ctl = c->loop_ctl;
        c->loop_ctl = 0;
        if (ctl == 1)
            break;
    }
    c->scope = f.parent;
    if (items.l->n == 0 && n->orelse)
        exec_body(c, n->orelse);
}

static void exec(ctx *c, const jnode *n)
{
    switch (n->kind) {
    case JN_TEXT:
        fl_strbuf_append(c->out, n->value.s.p, n->value.s.n);
        return;
    case JN_OUTPUT: {
        jv v = eval(c, n->a);
        if (!c->failed)
            jv_to_string(c->out, v);
        return;
    }
    case JN_IF:
        exec_body(c, jv_truthy(eval(c, n->a)) ? n->body : n->orelse);
        return;
    case JN_FOR:
        exec_for(c, n);
        return;
    case JN_SET: {
        jv v = eval(c, n->a);
        if (c->failed)
            return;
        if (!n->name2) {
            assign(c, n->name, v);
            return;
        }
        jv *ns = lookup(c, n->name);
        if (!ns || ns->t != JV_DICT || !ns->d->is_namespace) {
            fail(c, n, "'%s' is not a namespace; only namespace() objects take attributes", n->name);
            return;
        }
        jv_dict_set(c->a, ns->d, jv_cstr(n->name2), v);
        return;
    }
    case JN_BREAK:
        c->loop_ctl = 1;
        return;
    case JN_CONTINUE:
        c->loop_ctl = 2;
        return;
    case JN_BODY:
        exec_body(c, n);
        return;
    default:
        fail(c, n, "not a statement");
    }
}

int jinja_render_tree(const jnode *root, json_t *vars, fl_strbuf *out, fl_error *err)
{
    fl_arena arena = { 0 };
    frame globals = { 0 };
    ctx c = { .a = &arena, .out = out, .err = err, .scope = &globals };
    const char *key;
    json_t *val;
    json_object_foreach(vars, key, val) {
        assign(&c, fl_arena_strndup(&arena, key, strlen(key)), jv_from_json(&arena, val));
    }
    frame locals = { .parent = &globals }; /* the template's own top-level sets */
    c.scope = &locals;
    exec_body(&c, root);
    fl_arena_free(&arena);
    return c.failed ? -1 : 0;
}
