/* jinja_eval.c - rendering a syntax tree: scopes, expressions,
 * statements and macros (the built-in filters, tests, methods and global
 * functions are in jinja_builtins.c).
 *
 * Errors (raise_exception, type errors) set the context's error once and
 * make every later step a no-op, so evaluation unwinds without longjmp.
 * Passing a limit of jinja_internal.h is such an error too: every step
 * counts against a budget of steps and memory, the recursion (which macros
 * make as deep as they call themselves) against a depth, every string and
 * list that can grow is checked before it does, and integers do not
 * overflow. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "jinja/jinja_eval.h"

static const jv undef = { .t = JV_UNDEF };

/* For the helpers that hold an fl_error (a KiB) or a message buffer: out
 * of line, so that the frames of the recursive eval and exec, which every
 * level of a render's recursion pays for, stay small. */
#define NOINLINE __attribute__((noinline))

NOINLINE jv jinja_fail(jctx *c, const jnode *n, const char *fmt, ...)
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

jv jinja_fail_as(jctx *c, const jnode *n, const fl_error *e)
{
    return jinja_fail(c, n, "%s", e->msg);
}

/* Counts one step against the render's budgets: of steps, so that no loop
 * spins for minutes, and of memory, since the arena keeps every value until
 * the render ends. */
static int step(jctx *c, const jnode *n)
{
    if (++c->steps > JINJA_MAX_STEPS)
        jinja_fail(c, n, JINJA_TOO_MANY_STEPS, JINJA_MAX_STEPS);
    else if (c->a->bytes > JINJA_MAX_MEMORY)
        jinja_fail(c, n, "the template's values take more than %zu MiB", JINJA_MAX_MEMORY >> 20);
    return c->failed ? -1 : 0;
}

NOINLINE int jinja_room(jctx *c, const jnode *n, size_t have, size_t add, size_t max)
{
    fl_error e;
    if (jv_room(have, add, max, &e) == 0)
        return 0;
    jinja_fail_as(c, n, &e);
    return -1;
}

NOINLINE int jinja_items_room(jctx *c, const jnode *n, size_t items)
{
    if (items <= JINJA_MAX_ITEMS)
        return 0;
    jinja_fail(c, n, "a list would have more than %zu items", JINJA_MAX_ITEMS);
    return -1;
}

NOINLINE int jinja_print(jctx *c, const jnode *n, fl_strbuf *out, jv v, size_t max)
{
    fl_error e;
    if (jv_to_string(out, v, max, &e) == 0)
        return 0;
    jinja_fail_as(c, n, &e);
    return -1;
}

NOINLINE jv jinja_take_str(jctx *c, const jnode *n, fl_strbuf *s)
{
    jv r = !c->failed && jinja_room(c, n, s->len, 0, JINJA_MAX_BYTES) == 0
         ? jv_str(c->a, s->data ? s->data : "", s->len) : undef;
    fl_strbuf_free(s);
    return r;
}

NOINLINE int jinja_equal(jctx *c, const jnode *n, jv a, jv b)
{
    fl_error e;
    int eq = jv_equal(a, b, &c->steps, &e);
    if (eq < 0)
        jinja_fail_as(c, n, &e);
    return eq > 0;
}

NOINLINE int jinja_compare(jctx *c, const jnode *n, jv a, jv b)
{
    fl_error e;
    int r;
    if (jv_compare(a, b, &r, &c->steps, &e) != 0)
        jinja_fail_as(c, n, &e);
    return r;
}

jv jinja_arg(const jargs *a, int i, const char *name, jv dflt)
{
    if (i >= 0 && i < a->npos)
        return a->pos[i];
    for (int k = 0; name && k < a->nkw; k++)
        if (strcmp(a->kwname[k], name) == 0)
            return a->kw[k];
    return dflt;
}

/* ---- scopes ---- */

static jframe *new_frame(jctx *c, jframe *parent)
{
    jframe *f = fl_arena_alloc(c->a, sizeof *f);
    f->parent = parent;
    return f;
}

static jv *lookup(jctx *c, const char *name)
{
    for (jframe *f = c->scope; f; f = f->parent)
        for (int i = f->n - 1; i >= 0; i--)
            if (strcmp(f->names[i], name) == 0)
                return &f->vals[i];
    return NULL;
}

static void assign(jctx *c, const char *name, jv v)
{
    jframe *f = c->scope;
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

static jv eval(jctx *c, const jnode *n);
static void exec_body(jctx *c, const jnode *body);

/* ---- helpers ---- */

static jv concat(jctx *c, const jnode *n, jv a, jv b)
{
    fl_strbuf s = { 0 };
    if (jinja_print(c, n, &s, a, JINJA_MAX_BYTES) == 0)
        jinja_print(c, n, &s, b, JINJA_MAX_BYTES);
    return jinja_take_str(c, n, &s);
}

jv jinja_to_str(jctx *c, const jnode *n, jv v)
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

/* The method of a plain dict named name, as a value, or NULL. */
static const jfunc *dict_method(jv obj, const char *name)
{
    return obj.d->is_namespace || obj.d->is_loop ? NULL : jinja_dict_method(name);
}

/* obj[key]: an item, else (Jinja falls back to the attribute) a dict's
 * method of that name: {}['items'] is a callable. */
jv jinja_get_item(jctx *c, const jnode *n, jv obj, jv key)
{
    if (obj.t == JV_DICT && key.t == JV_STR) {
        jv *v = jv_dict_find(obj.d, key.s.p, key.s.n);
        const jfunc *method = v ? NULL : dict_method(obj, key.s.p);
        return v ? *v : method ? (jv){ .t = JV_FUNC, .fn = method } : undef;
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
        return jinja_fail(c, n, "cannot index an undefined value");
    return undef;
}

/* obj.name: Jinja tries the attribute first, so on a dict the name of a
 * dict method is that method (a callable, `d.items is defined`), not the
 * item of that key; other names are items. */
jv jinja_get_attr(jctx *c, const jnode *n, jv obj, const char *name)
{
    if (obj.t == JV_DICT) {
        const jfunc *method = dict_method(obj, name);
        if (method)
            return (jv){ .t = JV_FUNC, .fn = method };
        jv *v = jv_dict_find(obj.d, name, strlen(name));
        return v ? *v : undef;
    }
    if (obj.t == JV_UNDEF)
        return jinja_fail(c, n, "'%s' of an undefined value", name);
    return undef;
}

/* A string's characters as a list, in one walk. */
static jv chars_of(jctx *c, const jnode *n, jv s)
{
    if (jinja_items_room(c, n, jv_str_chars(s)) != 0)
        return undef;
    jv r = jv_list(c->a);
    for (size_t at = 0; at < s.s.n;) {
        size_t next = jv_str_next(s, at);
        jv_list_push(c->a, r.l, jv_str(c->a, s.s.p + at, next - at));
        at = next;
    }
    return r;
}

jv jinja_iterate(jctx *c, const jnode *n, jv v)
{
    switch (v.t) {
    case JV_LIST: return v;
    case JV_STR: return chars_of(c, n, v);
    case JV_UNDEF: return jv_list(c->a);
    case JV_DICT: {
        jv keys = jv_list(c->a);
        for (size_t i = 0; i < v.d->n; i++)
            jv_list_push(c->a, keys.l, v.d->keys[i]);
        return keys;
    }
    default: return jinja_fail(c, n, "a %s cannot be iterated", jv_type_name(v));
    }
}

int jinja_contains(jctx *c, const jnode *n, jv hay, jv needle)
{
    if (hay.t == JV_STR) {
        if (needle.t != JV_STR) {
            jinja_fail(c, n, "'in <string>' requires a string as left operand, not %s", jv_type_name(needle));
            return 0;
        }
        return needle.s.n == 0 || (needle.s.n <= hay.s.n &&
               memmem(hay.s.p, hay.s.n, needle.s.p, needle.s.n) != NULL);
    }
    if (hay.t == JV_LIST) {
        for (size_t i = 0; i < hay.l->n && !c->failed; i++)
            if (jinja_equal(c, n, hay.l->items[i], needle))
                return 1;
        return 0;
    }
    if (hay.t == JV_DICT)
        return needle.t == JV_STR && jv_dict_find(hay.d, needle.s.p, needle.s.n) != NULL;
    if (hay.t != JV_UNDEF) /* undefined iterates as empty */
        jinja_fail(c, n, "argument of type %s is not iterable", jv_type_name(hay));
    return 0;
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

static jv slice(jctx *c, const jnode *n, jv obj, jv start, jv stop, jv stepv)
{
    int64_t step = stepv.t == JV_INT ? stepv.i : 1;
    if (step == 0)
        return jinja_fail(c, n, "slice step cannot be zero");
    if (obj.t != JV_LIST && obj.t != JV_STR)
        return jinja_fail(c, n, "cannot slice a %s", jv_type_name(obj));
    int64_t lo, hi;
    slice_bounds(obj.t == JV_LIST ? (int64_t)obj.l->n : (int64_t)jv_str_chars(obj), start, stop,
                 step, &lo, &hi);
    const uint64_t count = jv_range_len(lo, hi, step); /* lo and hi are in [-1, length] */
    if (obj.t == JV_LIST) {
        jv r = jv_list(c->a);
        r.l->is_tuple = obj.l->is_tuple;
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
    return jinja_take_str(c, n, &s);
}

/* s * times, as in Python (empty for times <= 0), each copy doubling what
 * is written, so a long repeat takes few copies. */
static jv repeat(jctx *c, const jnode *n, jv s, int64_t times)
{
    if (times <= 0 || s.s.n == 0)
        return jv_cstr("");
    size_t len;
    if (__builtin_mul_overflow(s.s.n, (uint64_t)times, &len))
        len = SIZE_MAX;
    if (jinja_room(c, n, 0, len, JINJA_MAX_BYTES) != 0)
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

/* fmt % args: Python's printf-style formatting (jinja_format.c). */
NOINLINE static jv format(jctx *c, const jnode *n, jv fmt, jv args)
{
    fl_strbuf s = { 0 };
    fl_error e;
    if (jv_format(&s, fmt, args, JINJA_MAX_BYTES, &e) != 0) {
        fl_strbuf_free(&s);
        return jinja_fail_as(c, n, &e);
    }
    return jinja_take_str(c, n, &s);
}

static jv arith(jctx *c, const jnode *n, const char *op, jv a, jv b)
{
    if (op[0] == '+' && a.t == JV_STR && b.t == JV_STR)
        return concat(c, n, a, b);
    if (op[0] == '+' && a.t == JV_LIST && b.t == JV_LIST) {
        if (a.l->is_tuple != b.l->is_tuple)
            return jinja_fail(c, n, "can only concatenate %s (not \"%s\") to %s", jv_type_name(a),
                        jv_type_name(b), jv_type_name(a));
        if (jinja_items_room(c, n, a.l->n + b.l->n) != 0)
            return undef;
        jv r = jv_list(c->a);
        r.l->is_tuple = a.l->is_tuple;
        for (size_t i = 0; i < a.l->n; i++)
            jv_list_push(c->a, r.l, a.l->items[i]);
        for (size_t i = 0; i < b.l->n; i++)
            jv_list_push(c->a, r.l, b.l->items[i]);
        return r;
    }
    if (op[0] == '*' && op[1] == 0 && ((a.t == JV_STR && b.t == JV_INT) || (a.t == JV_INT && b.t == JV_STR)))
        return repeat(c, n, a.t == JV_STR ? a : b, a.t == JV_INT ? a.i : b.i);
    if (!jv_is_number(a) || !jv_is_number(b))
        return jinja_fail(c, n, "unsupported operand types for %s: %s and %s", op, jv_type_name(a),
                    jv_type_name(b));
    const int ints = a.t != JV_FLOAT && b.t != JV_FLOAT;
    const double x = jv_number(a), y = jv_number(b);
    if ((op[0] == '/' || op[0] == '%') && y == 0)
        return jinja_fail(c, n, "division by zero");
    /* ints stay ints, except for / and a negative power, as in Python */
    if (ints && strcmp(op, "/") != 0 && !(op[1] == '*' && b.i < 0)) {
        int64_t r;
        if (int_overflows(op, a.i, b.i, &r))
            return jinja_fail(c, n, "integer overflow in '%s'", op);
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

static jv binary(jctx *c, const jnode *n)
{
    jv a = eval(c, n->a), b = eval(c, n->b);
    if (c->failed)
        return undef;
    const char *op = n->name;
    if (strcmp(op, "==") == 0) return (jv){ .t = JV_BOOL, .i = jinja_equal(c, n, a, b) };
    if (strcmp(op, "!=") == 0) return (jv){ .t = JV_BOOL, .i = !jinja_equal(c, n, a, b) };
    if (strcmp(op, "<") == 0) return (jv){ .t = JV_BOOL, .i = jinja_compare(c, n, a, b) < 0 };
    if (strcmp(op, ">") == 0) return (jv){ .t = JV_BOOL, .i = jinja_compare(c, n, a, b) > 0 };
    if (strcmp(op, "<=") == 0) return (jv){ .t = JV_BOOL, .i = jinja_compare(c, n, a, b) <= 0 };
    if (strcmp(op, ">=") == 0) return (jv){ .t = JV_BOOL, .i = jinja_compare(c, n, a, b) >= 0 };
    if (strcmp(op, "in") == 0) return (jv){ .t = JV_BOOL, .i = jinja_contains(c, n, b, a) };
    if (strcmp(op, "not in") == 0) return (jv){ .t = JV_BOOL, .i = !jinja_contains(c, n, b, a) };
    if (strcmp(op, "~") == 0) return concat(c, n, a, b);
    if (strcmp(op, "%") == 0 && a.t == JV_STR) return format(c, n, a, b);
    if (a.t == JV_UNDEF || b.t == JV_UNDEF)
        return jinja_fail(c, n, "undefined value in '%s'", op);
    return arith(c, n, op, a, b);
}

/* ---- calls and macros ---- */

static int eval_args(jctx *c, const jnode *n, jargs *out)
{
    memset(out, 0, sizeof *out);
    const int npos = n->nargs - n->nkw; /* the parser keeps both within JINJA_MAX_ARGS */
    for (int i = 0; i < npos; i++)
        out->pos[out->npos++] = eval(c, n->args[i]);
    for (int i = 0; i < n->nkw; i++) {
        out->kwname[out->nkw] = n->kwnames[i];
        out->kw[out->nkw++] = eval(c, n->args[npos + i]);
    }
    return c->failed ? -1 : 0;
}

/* Renders body in the scope f and returns its output as a string: the
 * body of a macro or of a {% set %} or {% filter %} block. */
static jv capture(jctx *c, const jnode *n, const jnode *body, jframe *f)
{
    fl_strbuf *out = c->out, text = { 0 };
    const size_t out_max = c->out_max;
    jframe *scope = c->scope;
    c->out = &text;
    c->out_max = JINJA_MAX_BYTES;
    c->scope = f;
    exec_body(c, body);
    c->scope = scope;
    c->out = out;
    c->out_max = out_max;
    return jinja_take_str(c, n, &text);
}

/* A macro's parameters take the positional arguments in order, then the
 * keyword arguments by name, then their defaults (evaluated in the macro's
 * scope, so a default may name an earlier parameter); the rest are
 * undefined. Extra arguments go to varargs and kwargs where the body reads
 * them and are an error otherwise, as in Jinja. */
static jv call_macro(jctx *c, const jnode *at, const jfunc *fn, const jargs *a)
{
    const jnode *m = fn->macro;
    if (c->calls >= JINJA_MAX_CALL_DEPTH)
        return jinja_fail(c, at, "macros call macros deeper than %d levels (a macro that calls "
                                 "itself without end?)", JINJA_MAX_CALL_DEPTH);
    if (a->npos > m->nargs && !m->uses_varargs)
        return jinja_fail(c, at, "macro '%s' takes not more than %d argument(s)", m->name, m->nargs);
    jv vals[JINJA_MAX_ARGS];
    int given[JINJA_MAX_ARGS] = { 0 };
    for (int i = 0; i < a->npos && i < m->nargs; i++)
        vals[i] = a->pos[i], given[i] = 1;
    jv kwargs = m->uses_kwargs ? jv_dict(c->a) : undef;
    for (int k = 0; k < a->nkw; k++) {
        int i = 0;
        while (i < m->nargs && (given[i] || strcmp(m->kwnames[i], a->kwname[k]) != 0))
            i++;
        if (i < m->nargs)
            vals[i] = a->kw[k], given[i] = 1;
        else if (m->uses_kwargs)
            jv_dict_set(c->a, kwargs.d, jv_cstr(a->kwname[k]), a->kw[k]);
        else
            return jinja_fail(c, at, "macro '%s' takes no keyword argument '%s'", m->name, a->kwname[k]);
    }
    jframe *f = new_frame(c, fn->closure), *scope = c->scope;
    c->scope = f;
    c->calls++;
    for (int i = 0; i < m->nargs; i++)
        assign(c, m->kwnames[i], given[i] ? vals[i] : m->args[i] ? eval(c, m->args[i]) : undef);
    if (m->uses_varargs) {
        jv rest = jv_list(c->a);
        rest.l->is_tuple = 1;
        for (int i = m->nargs; i < a->npos; i++)
            jv_list_push(c->a, rest.l, a->pos[i]);
        assign(c, "varargs", rest);
    }
    if (m->uses_kwargs)
        assign(c, "kwargs", kwargs);
    c->scope = scope;
    jv text = capture(c, at, m->body, f);
    c->calls--;
    return text;
}

jv jinja_call(jctx *c, const jnode *n, jv fn, const jargs *a)
{
    if (fn.t != JV_FUNC)
        return jinja_fail(c, n, "a %s is not callable", jv_type_name(fn));
    return fn.fn->macro ? call_macro(c, n, fn.fn, a) : jinja_call_global(c, n, fn.fn, a);
}

/* Calls, filters and tests keep their arguments (a jargs, near a KiB) in
 * frames of their own, out of eval_node's. */
NOINLINE static jv eval_call(jctx *c, const jnode *n)
{
    jargs a;
    if (n->a->kind == JN_ATTR) {
        jv obj = eval(c, n->a->a);
        if (eval_args(c, n, &a) != 0)
            return undef;
        return jinja_call_method(c, n, obj, n->a->name, &a);
    }
    jv fn = eval(c, n->a);
    if (eval_args(c, n, &a) != 0)
        return undef;
    return jinja_call(c, n, fn, &a);
}

/* ---- expressions ---- */

NOINLINE static jv eval_filter(jctx *c, const jnode *n)
{
    jv v = eval(c, n->a);
    jargs a;
    if (eval_args(c, n, &a) != 0)
        return undef;
    return jinja_apply_filter(c, n, n->name, v, &a);
}

NOINLINE static jv eval_test(jctx *c, const jnode *n)
{
    jv v = eval(c, n->a);
    jargs a;
    if (eval_args(c, n, &a) != 0)
        return undef;
    int r = jinja_apply_test(c, n, n->name, v, &a);
    return (jv){ .t = JV_BOOL, .i = n->negated ? !r : r };
}

static jv eval_node(jctx *c, const jnode *n)
{
    switch (n->kind) {
    case JN_LITERAL:
        return n->value;
    case JN_NAME: {
        jv *v = lookup(c, n->name);
        if (v)
            return *v;
        const jfunc *g = jinja_global(n->name); /* the render's variables shadow these */
        return g ? (jv){ .t = JV_FUNC, .fn = g } : undef;
    }
    case JN_ATTR: {
        jv obj = eval(c, n->a);
        return c->failed ? undef : jinja_get_attr(c, n, obj, n->name);
    }
    case JN_ITEM: {
        jv obj = eval(c, n->a), key = eval(c, n->b);
        return c->failed ? undef : jinja_get_item(c, n, obj, key);
    }
    case JN_SLICE: {
        jv obj = eval(c, n->a);
        jv lo = n->b ? eval(c, n->b) : undef, hi = n->c ? eval(c, n->c) : undef;
        jv step = n->args[0] ? eval(c, n->args[0]) : undef;
        return c->failed ? undef : slice(c, n, obj, lo, hi, step);
    }
    case JN_CALL:
        return eval_call(c, n);
    case JN_FILTER:
        return eval_filter(c, n);
    case JN_TEST:
        return eval_test(c, n);
    case JN_NOT:
        return (jv){ .t = JV_BOOL, .i = !jv_truthy(eval(c, n->a)) };
    case JN_NEG: {
        jv v = eval(c, n->a);
        if (v.t == JV_FLOAT)
            return (jv){ .t = JV_FLOAT, .f = -v.f };
        if (v.t == JV_INT || v.t == JV_BOOL)
            return v.i == INT64_MIN ? jinja_fail(c, n, "integer overflow in '-'") : (jv){ .t = JV_INT, .i = -v.i };
        return jinja_fail(c, n, "cannot negate a %s", jv_type_name(v));
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
    case JN_LIST:
    case JN_TUPLE: {
        jv l = jv_list(c->a);
        l.l->is_tuple = n->kind == JN_TUPLE;
        for (int i = 0; i < n->nargs; i++)
            jv_list_push(c->a, l.l, eval(c, n->args[i]));
        return l;
    }
    case JN_DICT: {
        jv d = jv_dict(c->a);
        for (int i = 0; i < n->nargs; i++) {
            jv k = eval(c, n->args[i]);
            if (k.t != JV_STR)
                return jinja_fail(c, n, "dict keys must be strings");
            jv_dict_set(c->a, d.d, k, eval(c, n->args[n->nargs + i]));
        }
        return d;
    }
    case JN_BLOCK_VALUE:
        return c->block_value;
    default:
        return jinja_fail(c, n, "not an expression");
    }
}

/* Enters one more level of eval/exec recursion; -1 past the render's
 * depth (a macro that calls itself without end gets there). */
static int descend(jctx *c, const jnode *n)
{
    if (c->failed || step(c, n) != 0)
        return -1;
    if (c->depth >= JINJA_MAX_RENDER_DEPTH) {
        jinja_fail(c, n, "the template recurses deeper than %d levels", JINJA_MAX_RENDER_DEPTH);
        return -1;
    }
    c->depth++;
    return 0;
}

static jv eval(jctx *c, const jnode *n)
{
    if (descend(c, n) != 0)
        return undef;
    jv v = eval_node(c, n);
    c->depth--;
    return v;
}

/* ---- statements ---- */

static void exec(jctx *c, const jnode *n);

static void exec_body(jctx *c, const jnode *body)
{
    for (int i = 0; body && i < body->nstmts && !c->failed && !c->loop_ctl; i++)
        exec(c, body->stmts[i]);
}

/* Binds a target (a name, ns.attr, or a tuple of targets) to v, unpacking
 * v into a tuple's targets as Python does. */
static void assign_target(jctx *c, const jnode *t, jv v)
{
    if (t->kind == JN_NAME) {
        assign(c, t->name, v);
        return;
    }
    if (t->kind == JN_ATTR) {
        jv *ns = lookup(c, t->a->name);
        if (!ns || ns->t != JV_DICT || !ns->d->is_namespace)
            jinja_fail(c, t, "'%s' is not a namespace; only namespace() objects take attributes", t->a->name);
        else
            jv_dict_set(c->a, ns->d, jv_cstr(t->name), v);
        return;
    }
    if (v.t != JV_LIST && v.t != JV_STR && v.t != JV_DICT && v.t != JV_UNDEF) {
        jinja_fail(c, t, "cannot unpack a %s", jv_type_name(v));
        return;
    }
    jv items = jinja_iterate(c, t, v);
    if (c->failed)
        return;
    if (items.l->n > (size_t)t->nargs)
        jinja_fail(c, t, "too many values to unpack (expected %d)", t->nargs);
    else if (items.l->n < (size_t)t->nargs)
        jinja_fail(c, t, "not enough values to unpack (expected %d, got %zu)", t->nargs, items.l->n);
    for (int i = 0; i < t->nargs && !c->failed; i++)
        assign_target(c, t->args[i], items.l->items[i]);
}

/* The `loop` of iteration i of len: a dict (is_loop, for cycle()). */
static jv loop_info(jctx *c, const jlist *items, size_t i)
{
    const size_t len = items->n;
    jv d = jv_dict(c->a);
    d.d->is_loop = 1;
    static const char *const keys[] = { "index", "index0", "revindex", "revindex0", "first",
                                        "last", "length", "depth", "depth0" };
    const int64_t vals[] = { (int64_t)i + 1, (int64_t)i, (int64_t)(len - i), (int64_t)(len - i - 1),
                             i == 0, i + 1 == len, (int64_t)len, 1, 0 };
    for (int k = 0; k < 9; k++)
        jv_dict_set(c->a, d.d, jv_cstr(keys[k]),
                    (jv){ .t = (k == 4 || k == 5) ? JV_BOOL : JV_INT, .i = vals[k] });
    if (i > 0)
        jv_dict_set(c->a, d.d, jv_cstr("previtem"), items->items[i - 1]);
    if (i + 1 < len)
        jv_dict_set(c->a, d.d, jv_cstr("nextitem"), items->items[i + 1]);
    return d;
}

static void exec_for(jctx *c, const jnode *n)
{
    jv seq = eval(c, n->a);
    if (c->failed || (seq = jinja_iterate(c, n, seq), c->failed))
        return;
    /* The loop filter (`for x in y if cond`) selects items first, so `loop`
     * counts only the selected ones, as in Jinja. */
    jframe *f = new_frame(c, c->scope);
    c->scope = f;
    jv items = seq;
    if (n->b) {
        items = jv_list(c->a);
        for (size_t i = 0; i < seq.l->n && !c->failed; i++) {
            f->n = 0;
            assign_target(c, n->c, seq.l->items[i]);
            if (jv_truthy(eval(c, n->b)))
                jv_list_push(c->a, items.l, seq.l->items[i]);
        }
    }
    for (size_t i = 0; i < items.l->n && !c->failed && step(c, n) == 0; i++) {
        f->n = 0; /* a fresh scope for each iteration */
        assign_target(c, n->c, items.l->items[i]);
        assign(c, "loop", loop_info(c, items.l, i));
        exec_body(c, n->body);
        int ctl = c->loop_ctl;
        c->loop_ctl = 0;
        if (ctl == 1)
            break;
    }
    c->scope = f->parent;
    if (items.l->n == 0 && n->orelse)
        exec_body(c, n->orelse);
}

/* A block's rendered body through its filters (JN_BLOCK_VALUE stands for
 * the body in them); the body has a scope of its own, as in Jinja. */
static jv block_value(jctx *c, const jnode *n)
{
    jv body = capture(c, n, n->body, new_frame(c, c->scope));
    if (!n->a || c->failed)
        return body;
    const jv outer = c->block_value;
    c->block_value = body;
    jv v = eval(c, n->a);
    c->block_value = outer;
    return v;
}

static void exec_node(jctx *c, const jnode *n)
{
    switch (n->kind) {
    case JN_TEXT:
        if (jinja_room(c, n, c->out->len, n->value.s.n, c->out_max) == 0)
            fl_strbuf_append(c->out, n->value.s.p, n->value.s.n);
        return;
    case JN_OUTPUT:
    case JN_FILTER_BLOCK: {
        jv v = n->kind == JN_OUTPUT ? eval(c, n->a) : block_value(c, n);
        if (!c->failed)
            jinja_print(c, n, c->out, v, c->out_max);
        return;
    }
    case JN_IF:
        exec_body(c, jv_truthy(eval(c, n->a)) ? n->body : n->orelse);
        return;
    case JN_FOR:
        exec_for(c, n);
        return;
    case JN_SET:
    case JN_SET_BLOCK: {
        jv v = n->kind == JN_SET ? eval(c, n->a) : block_value(c, n);
        if (!c->failed)
            assign_target(c, n->b, v);
        return;
    }
    case JN_MACRO: {
        jfunc *fn = fl_arena_alloc(c->a, sizeof *fn);
        fn->name = n->name;
        fn->macro = n;
        fn->closure = c->scope;
        assign(c, n->name, (jv){ .t = JV_FUNC, .fn = fn });
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
        jinja_fail(c, n, "not a statement");
    }
}

static void exec(jctx *c, const jnode *n)
{
    if (descend(c, n) != 0)
        return;
    exec_node(c, n);
    c->depth--;
}

int jinja_render_tree(const jnode *root, json_t *vars, fl_strbuf *out, fl_error *err)
{
    fl_arena arena = { 0 };
    jctx c = { .a = &arena, .out = out, .err = err, .out_max = out->len + JINJA_MAX_BYTES };
    c.scope = new_frame(&c, NULL);
    const char *key;
    json_t *val;
    json_object_foreach(vars, key, val) {
        assign(&c, fl_arena_strndup(&arena, key, strlen(key)), jv_from_json(&arena, val));
    }
    c.scope = new_frame(&c, c.scope); /* the template's own top-level sets */
    exec_body(&c, root);
    fl_arena_free(&arena);
    return c.failed ? -1 : 0;
}
