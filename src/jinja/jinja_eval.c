/* jinja_eval.c - rendering a syntax tree: scopes, statements, operators,
 * and the built-in filters, tests, methods and globals.
 *
 * Errors (raise_exception, type errors) set the context's error once and
 * make every later step a no-op, so evaluation unwinds without longjmp.
 * Passing a limit of jinja_internal.h is such an error too: every step
 * counts against a budget of steps and memory, every string and list that
 * can grow is checked before it does, and integers do not overflow. */
#include <errno.h>
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
    size_t out_max; /* out may grow to this length: JINJA_MAX_BYTES more than it had */
    long steps;
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

/* Fails at n with the value layer's message. */
static jv fail_as(ctx *c, const jnode *n, const fl_error *e)
{
    return fail(c, n, "%s", e->msg);
}

/* Counts one step against the render's budgets: of steps, so that no loop
 * spins for minutes, and of memory, since the arena keeps every value until
 * the render ends. */
static int step(ctx *c, const jnode *n)
{
    if (++c->steps > JINJA_MAX_STEPS)
        fail(c, n, JINJA_TOO_MANY_STEPS, JINJA_MAX_STEPS);
    else if (c->a->bytes > JINJA_MAX_MEMORY)
        fail(c, n, "the template's values take more than %zu MiB", JINJA_MAX_MEMORY >> 20);
    return c->failed ? -1 : 0;
}

/* 0 if a text of have bytes can take add more within max, else fails. */
static int room(ctx *c, const jnode *n, size_t have, size_t add, size_t max)
{
    fl_error e;
    if (jv_room(have, add, max, &e) == 0)
        return 0;
    fail_as(c, n, &e);
    return -1;
}

static int items_room(ctx *c, const jnode *n, size_t items)
{
    if (items <= JINJA_MAX_ITEMS)
        return 0;
    fail(c, n, "a list would have more than %zu items", JINJA_MAX_ITEMS);
    return -1;
}

/* str(v) appended to out, which must stay within max bytes. */
static int print(ctx *c, const jnode *n, fl_strbuf *out, jv v, size_t max)
{
    fl_error e;
    if (jv_to_string(out, v, max, &e) == 0)
        return 0;
    fail_as(c, n, &e);
    return -1;
}

/* The string built in s as a value (s is freed); undefined after an error. */
static jv take_str(ctx *c, const jnode *n, fl_strbuf *s)
{
    jv r = !c->failed && room(c, n, s->len, 0, JINJA_MAX_BYTES) == 0
         ? jv_str(c->a, s->data ? s->data : "", s->len) : undef;
    fl_strbuf_free(s);
    return r;
}

static int equal(ctx *c, const jnode *n, jv a, jv b)
{
    fl_error e;
    int eq = jv_equal(a, b, &c->steps, &e);
    if (eq < 0)
        fail_as(c, n, &e);
    return eq > 0;
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

static jv concat(ctx *c, const jnode *n, jv a, jv b)
{
    fl_strbuf s = { 0 };
    if (print(c, n, &s, a, JINJA_MAX_BYTES) == 0)
        print(c, n, &s, b, JINJA_MAX_BYTES);
    return take_str(c, n, &s);
}

static jv to_str(ctx *c, const jnode *n, jv v)
{
    return v.t == JV_STR ? v : concat(c, n, v, undef);
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

/* The length of Python's range(from, to, step), step != 0: the distance in
 * unsigned arithmetic, since to - from can overflow, and so can stepping
 * past the last item when step is large. */
static uint64_t range_len(int64_t from, int64_t to, int64_t step)
{
    if (step > 0)
        return from < to ? ((uint64_t)to - (uint64_t)from - 1) / (uint64_t)step + 1 : 0;
    return from > to ? ((uint64_t)from - (uint64_t)to - 1) / (0 - (uint64_t)step) + 1 : 0;
}

static jv slice(ctx *c, const jnode *n, jv obj, jv start, jv stop, jv stepv)
{
    int64_t step = stepv.t == JV_INT ? stepv.i : 1;
    if (step == 0)
        return fail(c, n, "slice step cannot be zero");
    if (obj.t != JV_LIST && obj.t != JV_STR)
        return fail(c, n, "cannot slice a %s", jv_type_name(obj));
    int64_t lo, hi;
    slice_bounds(obj.t == JV_LIST ? (int64_t)obj.l->n : (int64_t)jv_str_chars(obj), start, stop,
                 step, &lo, &hi);
    const uint64_t count = range_len(lo, hi, step); /* lo and hi are in [-1, length] */
    if (obj.t == JV_LIST) {
        jv r = jv_list(c->a);
        for (uint64_t k = 0; k < count; k++)
            jv_list_push(c->a, r.l, obj.l->items[lo + (int64_t)k * step]);
        return r;
    }
    /* one walk over the characters: finding each from the start is quadratic */
    fl_strbuf s = { 0 };
    size_t at = count ? jv_str_char_offset(obj, (size_t)lo) : 0;
    for (uint64_t k = 0; k < count; k++) {
        fl_strbuf_append(&s, obj.s.p + at, jv_str_next(obj, at) - at);
        for (int64_t j = 0; k + 1 < count && j < step; j++)
            at = jv_str_next(obj, at);
        for (int64_t j = 0; k + 1 < count && j > step; j--)
            at = jv_str_prev(obj, at);
    }
    return take_str(c, n, &s);
}

static int contains(ctx *c, const jnode *n, jv hay, jv needle)
{
    if (hay.t == JV_STR && needle.t == JV_STR)
        return needle.s.n == 0 || (needle.s.n <= hay.s.n &&
               memmem(hay.s.p, hay.s.n, needle.s.p, needle.s.n) != NULL);
    if (hay.t == JV_LIST) {
        for (size_t i = 0; i < hay.l->n && !c->failed; i++)
            if (equal(c, n, hay.l->items[i], needle))
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

/* s * times, as in Python (empty for times <= 0), each copy doubling what
 * is written, so a long repeat takes few copies. */
static jv repeat(ctx *c, const jnode *n, jv s, int64_t times)
{
    if (times <= 0 || s.s.n == 0)
        return jv_cstr("");
    size_t len;
    if (__builtin_mul_overflow(s.s.n, (uint64_t)times, &len))
        len = SIZE_MAX;
    if (room(c, n, 0, len, JINJA_MAX_BYTES) != 0)
        return undef;
    char *p = fl_arena_alloc(c->a, len + 1);
    memcpy(p, s.s.p, s.s.n);
    for (size_t done = s.s.n; done < len; done *= 2)
        memcpy(p + done, p, done < len - done ? done : len - done);
    return (jv){ .t = JV_STR, .s = { p, len } };
}

/* b ** e for e >= 0 by squaring; nonzero if it overflows. The last
 * squaring is skipped: it may overflow where the result does not. */
static int pow_overflows(int64_t b, int64_t e, int64_t *r)
{
    for (*r = 1;; e >>= 1) {
        if ((e & 1) && __builtin_mul_overflow(*r, b, r))
            return 1;
        if (e <= 1)
            return 0;
        if (__builtin_mul_overflow(b, b, &b))
            return 1;
    }
}

/* Integer + - * // % and ** (b >= 0), with Python's rounding and sign
 * rules; b is not 0 for // and %. Nonzero if the result does not fit: Python's ints
 * would grow, these are 64-bit and refuse. */
static int int_overflows(const char *op, int64_t a, int64_t b, int64_t *r)
{
    switch (op[0]) {
    case '+': return __builtin_add_overflow(a, b, r);
    case '-': return __builtin_sub_overflow(a, b, r);
    case '*': return op[1] == '*' ? pow_overflows(a, b, r) : __builtin_mul_overflow(a, b, r);
    case '/': /* floor division */
        if (a == INT64_MIN && b == -1)
            return 1;
        *r = a / b - (a % b != 0 && (a < 0) != (b < 0));
        return 0;
    default: /* % takes the divisor's sign; INT64_MIN % -1 would trap */
        *r = b == -1 ? 0 : a % b;
        if (*r != 0 && (*r < 0) != (b < 0))
            *r += b;
        return 0;
    }
}

static jv arith(ctx *c, const jnode *n, const char *op, jv a, jv b)
{
    if (op[0] == '+' && a.t == JV_STR && b.t == JV_STR)
        return concat(c, n, a, b);
    if (op[0] == '+' && a.t == JV_LIST && b.t == JV_LIST) {
        if (items_room(c, n, a.l->n + b.l->n) != 0)
            return undef;
        jv r = jv_list(c->a);
        for (size_t i = 0; i < a.l->n; i++)
            jv_list_push(c->a, r.l, a.l->items[i]);
        for (size_t i = 0; i < b.l->n; i++)
            jv_list_push(c->a, r.l, b.l->items[i]);
        return r;
    }
    if (op[0] == '*' && op[1] == 0 && ((a.t == JV_STR && b.t == JV_INT) || (a.t == JV_INT && b.t == JV_STR)))
        return repeat(c, n, a.t == JV_STR ? a : b, a.t == JV_INT ? a.i : b.i);
    if (!jv_is_number(a) || !jv_is_number(b))
        return fail(c, n, "unsupported operand types for %s: %s and %s", op, jv_type_name(a),
                    jv_type_name(b));
    const int ints = a.t != JV_FLOAT && b.t != JV_FLOAT;
    const double x = jv_number(a), y = jv_number(b);
    if ((op[0] == '/' || op[0] == '%') && y == 0)
        return fail(c, n, "division by zero");
    /* ints stay ints, except for / and a negative power, as in Python */
    if (ints && strcmp(op, "/") != 0 && !(op[1] == '*' && b.i < 0)) {
        int64_t r;
        if (int_overflows(op, a.i, b.i, &r))
            return fail(c, n, "integer overflow in '%s'", op);
        return (jv){ .t = JV_INT, .i = r };
    }
    switch (op[0]) {
    case '+': return (jv){ .t = JV_FLOAT, .f = x + y };
    case '-': return (jv){ .t = JV_FLOAT, .f = x - y };
    case '*': return (jv){ .t = JV_FLOAT, .f = op[1] == '*' ? pow(x, y) : x * y };
    case '/': return (jv){ .t = JV_FLOAT, .f = op[1] == '/' ? floor(x / y) : x / y };
    default: return (jv){ .t = JV_FLOAT, .f = x - y * floor(x / y) }; /* % with Python's sign rule */
    }
}

static jv binary(ctx *c, const jnode *n)
{
    jv a = eval(c, n->a), b = eval(c, n->b);
    if (c->failed)
        return undef;
    const char *op = n->name;
    if (strcmp(op, "==") == 0) return (jv){ .t = JV_BOOL, .i = equal(c, n, a, b) };
    if (strcmp(op, "!=") == 0) return (jv){ .t = JV_BOOL, .i = !equal(c, n, a, b) };
    if (strcmp(op, "<") == 0) return (jv){ .t = JV_BOOL, .i = compare(c, n, a, b) < 0 };
    if (strcmp(op, ">") == 0) return (jv){ .t = JV_BOOL, .i = compare(c, n, a, b) > 0 };
    if (strcmp(op, "<=") == 0) return (jv){ .t = JV_BOOL, .i = compare(c, n, a, b) <= 0 };
    if (strcmp(op, ">=") == 0) return (jv){ .t = JV_BOOL, .i = compare(c, n, a, b) >= 0 };
    if (strcmp(op, "in") == 0) return (jv){ .t = JV_BOOL, .i = contains(c, n, b, a) };
    if (strcmp(op, "not in") == 0) return (jv){ .t = JV_BOOL, .i = !contains(c, n, b, a) };
    if (strcmp(op, "~") == 0) return concat(c, n, a, b);
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
            if (items_room(c, n, r.l->n + 1) != 0)
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
        if (items_room(c, n, r.l->n + 1) != 0)
            return undef;
        jv_list_push(c->a, r.l, jv_str(c->a, s.s.p + i, j - i));
        i = j;
    }
    return r;
}

static jv replace(ctx *c, const jnode *n, jv s, jv old, jv new_)
{
    if (old.t != JV_STR || new_.t != JV_STR || old.s.n == 0)
        return s;
    fl_strbuf r = { 0 };
    const char *p = s.s.p, *end = s.s.p + s.s.n, *hit;
    while ((hit = memmem(p, (size_t)(end - p), old.s.p, old.s.n)) != NULL) {
        if (room(c, n, r.len, (size_t)(hit - p) + new_.s.n, JINJA_MAX_BYTES) != 0)
            break;
        fl_strbuf_append(&r, p, (size_t)(hit - p));
        fl_strbuf_append(&r, new_.s.p, new_.s.n);
        p = hit + old.s.n;
    }
    fl_strbuf_append(&r, p, (size_t)(end - p));
    return take_str(c, n, &r);
}

/* upper/lower (title_like 0), capitalize-style (1: first character up) or
 * title (2: each word's first character up), code point by code point. */
static jv change_case(ctx *c, const jnode *n, jv s, int upper, int title_like)
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
    return take_str(c, n, &r);
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

static jv join(ctx *c, const jnode *n, jv list, jv sep)
{
    fl_strbuf r = { 0 };
    for (size_t i = 0; list.t == JV_LIST && i < list.l->n; i++) {
        if (i && sep.t == JV_STR) {
            if (room(c, n, r.len, sep.s.n, JINJA_MAX_BYTES) != 0)
                break;
            fl_strbuf_append(&r, sep.s.p, sep.s.n);
        }
        if (print(c, n, &r, list.l->items[i], JINJA_MAX_BYTES) != 0)
            break;
    }
    return take_str(c, n, &r);
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
        if (!strcmp(m, "replace")) return replace(c, n, obj, arg(a, 0, NULL, undef), arg(a, 1, NULL, undef));
        if (!strcmp(m, "upper")) return change_case(c, n, obj, 1, 0);
        if (!strcmp(m, "lower")) return change_case(c, n, obj, 0, 0);
        if (!strcmp(m, "capitalize")) return change_case(c, n, change_case(c, n, obj, 0, 0), 1, 1);
        if (!strcmp(m, "title")) return change_case(c, n, obj, 0, 2);
        if (!strcmp(m, "join")) return join(c, n, arg(a, 0, NULL, undef), obj);
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
        if (print(c, n, &msg, arg(a, 0, NULL, undef), JINJA_MAX_BYTES) == 0)
            fail(c, n, "the chat template raised an error: %s", msg.data ? msg.data : "");
        fl_strbuf_free(&msg);
        return undef;
    }
    if (!strcmp(name, "range")) {
        int ints = a->npos >= 1 && a->npos <= 3 && a->nkw == 0;
        for (int i = 0; ints && i < a->npos; i++)
            ints = a->pos[i].t == JV_INT || a->pos[i].t == JV_BOOL;
        if (!ints)
            return fail(c, n, "range() takes one to three integers");
        const int64_t lo = a->npos > 1 ? a->pos[0].i : 0, hi = a->npos > 1 ? a->pos[1].i : a->pos[0].i;
        const int64_t step = a->npos > 2 ? a->pos[2].i : 1;
        if (step == 0)
            return fail(c, n, "range() step must not be zero");
        const uint64_t count = range_len(lo, hi, step);
        if (items_room(c, n, count) != 0)
            return undef;
        jv r = jv_list(c->a);
        /* lo + k * step lies between lo and hi, but k * step alone may not fit */
        for (uint64_t k = 0; k < count; k++)
            jv_list_push(c->a, r.l, (jv){ .t = JV_INT, .i = (int64_t)((uint64_t)lo + k * (uint64_t)step) });
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

/* A string's characters as a list (`for c in s`, `s|list`), in one walk. */
static jv chars_of(ctx *c, const jnode *n, jv s)
{
    if (items_room(c, n, jv_str_chars(s)) != 0)
        return undef;
    jv r = jv_list(c->a);
    for (size_t at = 0; at < s.s.n;) {
        size_t next = jv_str_next(s, at);
        jv_list_push(c->a, r.l, jv_str(c->a, s.s.p + at, next - at));
        at = next;
    }
    return r;
}

/* Python's int() of a float or a string, which has no bound; refused
 * where it would not fit. NaN is 0, as Jinja's int filter makes it. */
static jv to_int(ctx *c, const jnode *n, jv v)
{
    int64_t i = 0;
    if (v.t == JV_STR) {
        errno = 0;
        i = strtoll(v.s.p, NULL, 10);
        if (errno == ERANGE)
            return fail(c, n, "integer overflow in 'int'");
    } else if (v.t == JV_FLOAT && !isnan(v.f)) {
        if (!(v.f >= -0x1p63 && v.f < 0x1p63))
            return fail(c, n, "integer overflow in 'int'");
        i = (int64_t)v.f;
    } else if (v.t == JV_INT || v.t == JV_BOOL) {
        i = v.i;
    }
    return (jv){ .t = JV_INT, .i = i };
}

static jv apply_filter(ctx *c, const jnode *n, jv v, const args *a)
{
    const char *f = n->name;
    if (!strcmp(f, "length") || !strcmp(f, "count")) return length_of(v);
    if (!strcmp(f, "trim")) return v.t == JV_STR ? strip(c, v, arg(a, 0, "chars", undef), 3) : v;
    if (!strcmp(f, "string")) return to_str(c, n, v);
    if (!strcmp(f, "lower") || !strcmp(f, "upper"))
        return change_case(c, n, to_str(c, n, v), f[0] == 'u', 0);
    if (!strcmp(f, "capitalize"))
        return change_case(c, n, change_case(c, n, to_str(c, n, v), 0, 0), 1, 1);
    if (!strcmp(f, "title")) return change_case(c, n, to_str(c, n, v), 0, 2);
    if (!strcmp(f, "replace"))
        return replace(c, n, to_str(c, n, v), arg(a, 0, NULL, undef), arg(a, 1, NULL, undef));
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
    if (!strcmp(f, "join")) return join(c, n, v, arg(a, 0, "d", jv_cstr("")));
    if (!strcmp(f, "list")) {
        if (v.t == JV_LIST) return v;
        if (v.t == JV_DICT) return dict_view(c, v, 0);
        return v.t == JV_STR ? chars_of(c, n, v) : jv_list(c->a);
    }
    if (!strcmp(f, "items")) return v.t == JV_DICT ? dict_view(c, v, 2) : jv_list(c->a);
    if (!strcmp(f, "int")) return to_int(c, n, v);
    if (!strcmp(f, "abs")) {
        if (v.t == JV_FLOAT)
            return (jv){ .t = JV_FLOAT, .f = fabs(v.f) };
        if (v.t != JV_INT && v.t != JV_BOOL)
            return fail(c, n, "abs() of a %s", jv_type_name(v));
        if (v.i == INT64_MIN)
            return fail(c, n, "integer overflow in 'abs'");
        return (jv){ .t = JV_INT, .i = v.i < 0 ? -v.i : v.i };
    }
    if (!strcmp(f, "tojson")) {
        jv indent = arg(a, 0, "indent", undef);
        if (indent.t == JV_INT && indent.i > JINJA_MAX_INDENT)
            return fail(c, n, "tojson's indent must be at most %d", JINJA_MAX_INDENT);
        fl_strbuf s = { 0 };
        fl_error e;
        /* a negative indent is 0, as in Python (newlines, no spaces) */
        if (jv_to_json(&s, v, indent.t == JV_INT ? (indent.i < 0 ? 0 : (int)indent.i) : -1,
                       JINJA_MAX_BYTES, &e) != 0)
            fail_as(c, n, &e);
        return take_str(c, n, &s);
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
        return equal(c, n, v, arg(a, 0, NULL, undef));
    if (!strcmp(t, "ne")) return !equal(c, n, v, arg(a, 0, NULL, undef));
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
    if (c->failed || step(c, n) != 0)
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
            return v.i == INT64_MIN ? fail(c, n, "integer overflow in '-'") : (jv){ .t = JV_INT, .i = -v.i };
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
    else if (seq.t == JV_STR)
        seq = chars_of(c, n, seq);
    else if (seq.t == JV_UNDEF || seq.t == JV_NONE)
        seq = jv_list(c->a);
    else if (seq.t != JV_LIST)
        fail(c, n, "cannot loop over a %s", jv_type_name(seq));
    if (c->failed)
        return;
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
    for (size_t i = 0; i < items.l->n && step(c, n) == 0; i++) {
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
    if (step(c, n) != 0)
        return;
    switch (n->kind) {
    case JN_TEXT:
        if (room(c, n, c->out->len, n->value.s.n, c->out_max) == 0)
            fl_strbuf_append(c->out, n->value.s.p, n->value.s.n);
        return;
    case JN_OUTPUT: {
        jv v = eval(c, n->a);
        if (!c->failed)
            print(c, n, c->out, v, c->out_max);
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
    ctx c = { .a = &arena, .out = out, .err = err, .scope = &globals,
              .out_max = out->len + JINJA_MAX_BYTES };
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
