/* grammar_json.c - a JSON schema (or "any JSON object") as a grammar, the
 * way vLLM's default backend, xgrammar, compiles one:
 *
 *   - objects list their properties in the schema's order, the required
 *     ones always, the others optionally; additionalProperties is false
 *     unless the schema says otherwise (xgrammar's strict mode, vLLM's
 *     default), except for an object schema with no "properties", which
 *     takes any properties (as xgrammar does since vLLM's json_object fix);
 *   - arrays: items, prefixItems (then no more items unless "items"
 *     allows them), minItems, maxItems; no "items" at all: any values;
 *   - strings: minLength, maxLength (in characters; an escape is one),
 *     pattern (a full match, as xgrammar; written with JSON's escapes) or
 *     format (date, time, date-time, uuid, ipv4), one of the two kinds;
 *   - integer (minimum, maximum and their exclusive forms: the decimal
 *     strings of the range, digit by digit), number, boolean, null, a list of types, enum, const,
 *     anyOf, oneOf (as anyOf, as xgrammar), allOf of one schema, $ref to a
 *     JSON pointer in the document ("#", "#/$defs/...", recursion allowed);
 *   - whitespace: [ \n\t]* wherever JSON allows it (any_whitespace, the
 *     default), a whitespace_pattern regex there instead, or compact, with
 *     xgrammar's separators ", " and ": ".
 * Any other keyword that constrains values (multipleOf,
 * uniqueItems, patternProperties, not, if, ...) is refused by name rather
 * than dropped (minimum and maximum on a number too); annotations (title, description, default, examples, ...)
 * change nothing. */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "base/alloc.h"
#include "grammar/grammar_build.h"

#define MAX_DEPTH 128

typedef struct js {
    fl_gb *b;
    json_t *doc;              /* the whole schema, for $ref */
    int ws;                   /* the whitespace rule, or -1: compact */
    int string_rule, char_rule, number_rule, integer_rule, value_rule, object_rule, array_rule;
    fl_bytemap refs;          /* $ref text -> rule */
    int depth;
    char path[512];           /* where in the schema, for messages */
    fl_error *err;
} js;

static int fail_at(js *j, const char *fmt, const char *arg)
{
    char what[400];
    snprintf(what, sizeof what, fmt, arg);
    return fl_fail(j->err, "JSON schema: %s (at %s)", what, j->path[0] ? j->path : "the root");
}

/* ---- pieces ---- */

static fl_gx *lit(js *j, const char *s)
{
    return fl_gx_literal(j->b, s, strlen(s));
}

static fl_gx *ref(js *j, int rule)
{
    return fl_gx_ref(j->b, rule);
}

static fl_gx *ws(js *j)
{
    return j->ws >= 0 ? ref(j, j->ws) : fl_gx_empty(j->b);
}

static fl_gx *seq3(js *j, fl_gx *a, fl_gx *b, fl_gx *c)
{
    fl_gx *s = fl_gx_seq(j->b);
    fl_gx_add(s, a), fl_gx_add(s, b);
    return c ? fl_gx_add(s, c) : s;
}

static fl_gx *comma(js *j)
{
    return j->ws >= 0 ? seq3(j, ws(j), lit(j, ","), ws(j)) : lit(j, ", ");
}

static fl_gx *colon(js *j)
{
    return j->ws >= 0 ? seq3(j, ws(j), lit(j, ":"), ws(j)) : lit(j, ": ");
}

static int define(js *j, const char *hint, fl_gx *body)
{
    const int r = fl_gb_fresh_rule(j->b, hint);
    j->b->defs[r] = body;
    return r;
}

/* The rules every schema may use, made on first use. */
static int char_rule(js *j)
{
    if (j->char_rule < 0) {
        /* an unescaped character: not a quote, a backslash or a control */
        const fl_cp_range plain[] = { { 0x20, 0x21 }, { 0x23, 0x5b }, { 0x5d, FL_CP_MAX } };
        fl_gx *hex = fl_gx_seq(j->b);
        fl_gx *esc = fl_gx_alt(j->b);
        fl_gx *simple = fl_gx_byte_range(j->b, 1, 0);
        for (const char *c = "\"\\/bfnrt"; *c; c++)
            simple->bits[(unsigned char)*c >> 6] |= (uint64_t)1 << ((unsigned char)*c & 63);
        fl_gx_add(hex, lit(j, "u"));
        for (int i = 0; i < 4; i++) {
            const fl_cp_range h[] = { { '0', '9' }, { 'A', 'F' }, { 'a', 'f' } };
            fl_gx_add(hex, fl_gx_codepoints(j->b, h, 3));
        }
        fl_gx_add(esc, simple), fl_gx_add(esc, hex);
        fl_gx *alt = fl_gx_alt(j->b);
        fl_gx_add(alt, fl_gx_codepoints(j->b, plain, 3));
        fl_gx_add(alt, seq3(j, lit(j, "\\"), esc, NULL));
        j->char_rule = define(j, "json_char", alt);
    }
    return j->char_rule;
}

static fl_gx *quoted(js *j, fl_gx *inside)
{
    return seq3(j, lit(j, "\""), inside, lit(j, "\""));
}

static int string_rule(js *j)
{
    if (j->string_rule < 0)
        j->string_rule = define(j, "json_string", quoted(j, fl_gx_repeat(j->b, ref(j, char_rule(j)), 0, FL_GX_INF)));
    return j->string_rule;
}

static fl_gx *digits(js *j, int min)
{
    return fl_gx_repeat(j->b, fl_gx_byte_range(j->b, '0', '9'), min, FL_GX_INF);
}

/* -? (0 | [1-9][0-9]*) */
static fl_gx *int_part(js *j)
{
    fl_gx *nz = seq3(j, fl_gx_byte_range(j->b, '1', '9'), digits(j, 0), NULL);
    fl_gx *mag = fl_gx_add(fl_gx_add(fl_gx_alt(j->b), lit(j, "0")), nz);
    return seq3(j, fl_gx_repeat(j->b, lit(j, "-"), 0, 1), mag, NULL);
}

static int integer_rule(js *j)
{
    if (j->integer_rule < 0)
        j->integer_rule = define(j, "json_integer", int_part(j));
    return j->integer_rule;
}

static int number_rule(js *j)
{
    if (j->number_rule < 0) {
        fl_gx *frac = fl_gx_repeat(j->b, seq3(j, lit(j, "."), digits(j, 1), NULL), 0, 1);
        fl_gx *e = fl_gx_byte_range(j->b, 'E', 'E');
        e->bits[0] = 0, e->bits[1] = (uint64_t)1 << ('E' - 64) | (uint64_t)1 << ('e' - 64);
        fl_gx *sign = fl_gx_byte_range(j->b, '+', '+');
        sign->bits[0] |= (uint64_t)1 << '-';
        fl_gx *exp = fl_gx_repeat(j->b, seq3(j, e, fl_gx_repeat(j->b, sign, 0, 1), digits(j, 1)), 0, 1);
        j->number_rule = define(j, "json_number", seq3(j, int_part(j), frac, exp));
    }
    return j->number_rule;
}

/* ---- integers in a range: the decimal strings of [lo, hi], digit by digit ---- */

#define RANGE_INF INT64_MAX
#define RANGE_MAX 1000000000000000000LL /* bounds beyond 10^18 are refused */

static int64_t pow10i(int w)
{
    int64_t p = 1;
    while (w-- > 0)
        p *= 10;
    return p;
}

static int num_digits(int64_t v)
{
    int d = 1;
    while (v >= 10)
        v /= 10, d++;
    return d;
}

/* The w-digit strings (leading zeros included) of the values a..b. */
static fl_gx *fixed_width(js *j, int64_t a, int64_t b, int w)
{
    if (w == 0)
        return fl_gx_empty(j->b);
    const int64_t p = pow10i(w - 1);
    const int da = (int)(a / p), db = (int)(b / p);
    const int64_t ra = a % p, rb = b % p;
    if (ra == 0 && rb == p - 1) /* whole blocks: [da-db][0-9]{w-1} */
        return seq3(j, fl_gx_byte_range(j->b, '0' + (unsigned)da, '0' + (unsigned)db),
                    fl_gx_repeat(j->b, fl_gx_byte_range(j->b, '0', '9'), w - 1, w - 1), NULL);
    if (da == db)
        return seq3(j, fl_gx_byte_range(j->b, '0' + (unsigned)da, '0' + (unsigned)da), fixed_width(j, ra, rb, w - 1),
                    NULL);
    fl_gx *alt = fl_gx_alt(j->b);
    fl_gx_add(alt, seq3(j, fl_gx_byte_range(j->b, '0' + (unsigned)da, '0' + (unsigned)da), fixed_width(j, ra, p - 1, w - 1),
                        NULL));
    if (db > da + 1)
        fl_gx_add(alt, fixed_width(j, (int64_t)(da + 1) * p, (int64_t)db * p - 1, w));
    fl_gx_add(alt, seq3(j, fl_gx_byte_range(j->b, '0' + (unsigned)db, '0' + (unsigned)db), fixed_width(j, 0, rb, w - 1),
                        NULL));
    return alt;
}

/* The values a..b (0 <= a <= b, b RANGE_INF for none) without leading zeros. */
static fl_gx *non_negative(js *j, int64_t a, int64_t b)
{
    fl_gx *alt = fl_gx_alt(j->b);
    const int la = num_digits(a), lb = b == RANGE_INF ? la : num_digits(b);
    for (int len = la; len <= lb; len++) {
        const int64_t lo = len == la ? a : pow10i(len - 1), hi = b != RANGE_INF && len == lb ? b : pow10i(len) - 1;
        fl_gx_add(alt, fixed_width(j, lo, hi, len));
    }
    if (b == RANGE_INF) /* and every longer number */
        fl_gx_add(alt, seq3(j, fl_gx_byte_range(j->b, '1', '9'), digits(j, la), NULL));
    return alt;
}

/* An integer schema's minimum, maximum and their exclusive forms as one
 * inclusive range; 0 with none of them. */
static int integer_bounds(js *j, json_t *s, int64_t *lo, int64_t *hi)
{
    static const char *const keys[] = { "minimum", "exclusiveMinimum", "maximum", "exclusiveMaximum" };
    int any = 0;
    *lo = -RANGE_INF;
    *hi = RANGE_INF;
    for (int k = 0; k < 4; k++) {
        json_t *v = json_object_get(s, keys[k]);
        if (!v)
            continue;
        if (!json_is_number(v))
            return fail_at(j, "%s must be a number", keys[k]);
        const double x = json_number_value(v);
        if (!(x >= -(double)RANGE_MAX && x <= (double)RANGE_MAX))
            return fail_at(j, "%s is beyond the supported range of +-10^18", keys[k]);
        any = 1;
        const double f = floor(x), c = ceil(x);
        if (k < 2) {
            const int64_t b = (int64_t)(k == 0 ? c : (f == x ? x + 1 : c));
            *lo = b > *lo ? b : *lo;
        } else {
            const int64_t b = (int64_t)(k == 2 ? f : (c == x ? x - 1 : f));
            *hi = b < *hi ? b : *hi;
        }
    }
    if (any && *lo != -RANGE_INF && *hi != RANGE_INF && *lo > *hi)
        return fail_at(j, "%s", "the integer's bounds leave no value");
    return any;
}

static int integer_expr(js *j, json_t *s, fl_gx **out)
{
    int64_t lo, hi;
    const int any = integer_bounds(j, s, &lo, &hi);
    if (any < 0)
        return -1;
    if (!any) {
        *out = ref(j, integer_rule(j));
        return 0;
    }
    fl_gx *alt = fl_gx_alt(j->b);
    if (lo < 0) { /* the negatives: "-" and their magnitudes */
        const int64_t m1 = hi < 0 ? -hi : 1, m2 = lo == -RANGE_INF ? RANGE_INF : -lo;
        fl_gx_add(alt, seq3(j, lit(j, "-"), non_negative(j, m1, m2), NULL));
    }
    if (hi >= 0)
        fl_gx_add(alt, non_negative(j, lo > 0 ? lo : 0, hi));
    *out = alt;
    return 0;
}

/* A list of x separated by commas, possibly empty, between open and close. */
static fl_gx *list_of(js *j, const char *open, const char *close, fl_gx *(*item)(js *))
{
    fl_gx *more = fl_gx_repeat(j->b, seq3(j, comma(j), item(j), NULL), 0, FL_GX_INF);
    fl_gx *items = fl_gx_repeat(j->b, seq3(j, item(j), more, NULL), 0, 1);
    fl_gx *s = fl_gx_seq(j->b);
    fl_gx_add(s, lit(j, open)), fl_gx_add(s, ws(j)), fl_gx_add(s, items), fl_gx_add(s, ws(j));
    return fl_gx_add(s, lit(j, close));
}

static int value_rule(js *j);

static fl_gx *any_value(js *j)
{
    return ref(j, value_rule(j));
}

static fl_gx *any_member(js *j)
{
    return seq3(j, ref(j, string_rule(j)), colon(j), any_value(j));
}

static int object_rule(js *j)
{
    if (j->object_rule < 0) {
        j->object_rule = fl_gb_fresh_rule(j->b, "json_object");
        j->b->defs[j->object_rule] = list_of(j, "{", "}", any_member);
    }
    return j->object_rule;
}

static int array_rule(js *j)
{
    if (j->array_rule < 0) {
        j->array_rule = fl_gb_fresh_rule(j->b, "json_array");
        j->b->defs[j->array_rule] = list_of(j, "[", "]", any_value);
    }
    return j->array_rule;
}

static int value_rule(js *j)
{
    if (j->value_rule < 0) {
        j->value_rule = fl_gb_fresh_rule(j->b, "json_value");
        fl_gx *alt = fl_gx_alt(j->b);
        fl_gx_add(alt, ref(j, object_rule(j)));
        fl_gx_add(alt, ref(j, array_rule(j)));
        fl_gx_add(alt, ref(j, string_rule(j)));
        fl_gx_add(alt, ref(j, number_rule(j)));
        fl_gx_add(alt, lit(j, "true")), fl_gx_add(alt, lit(j, "false")), fl_gx_add(alt, lit(j, "null"));
        j->b->defs[j->value_rule] = alt;
    }
    return j->value_rule;
}

/* A JSON value exactly as serialized (enum, const, property names). */
static fl_gx *json_literal(js *j, json_t *v)
{
    char *s = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
    fl_gx *e = lit(j, s ? s : "null");
    free(s);
    return e;
}

/* ---- schemas ---- */

static int schema_expr(js *j, json_t *s, fl_gx **out);

/* Appends ".key" (or "[i]") to the path while a sub-schema is built. */
static size_t path_push(js *j, const char *key, int index)
{
    const size_t at = strlen(j->path);
    if (index >= 0)
        snprintf(j->path + at, sizeof j->path - at, "%s[%d]", key, index);
    else
        snprintf(j->path + at, sizeof j->path - at, "%s%s", at ? "." : "", key);
    return at;
}

static int sub_schema(js *j, json_t *s, const char *key, int index, fl_gx **out)
{
    const size_t at = path_push(j, key, index);
    const int rc = schema_expr(j, s, out);
    if (rc == 0)
        j->path[at] = '\0';
    return rc;
}

/* The schema at a JSON pointer of the document. */
static json_t *resolve(js *j, const char *pointer)
{
    if (pointer[0] != '#')
        return NULL;
    json_t *at = j->doc;
    const char *p = pointer + 1;
    while (*p == '/') {
        p++;
        char token[256];
        size_t n = 0;
        for (; *p && *p != '/'; p++) {
            char c = *p;
            if (c == '~' && (p[1] == '0' || p[1] == '1'))
                c = *++p == '0' ? '~' : '/';
            if (n + 1 >= sizeof token)
                return NULL;
            token[n++] = c;
        }
        token[n] = '\0';
        if (json_is_object(at)) {
            at = json_object_get(at, token);
        } else if (json_is_array(at)) {
            char *end;
            const long i = strtol(token, &end, 10);
            at = *end || i < 0 ? NULL : json_array_get(at, (size_t)i);
        } else {
            return NULL;
        }
        if (!at)
            return NULL;
    }
    return *p ? NULL : at;
}

static int ref_expr(js *j, json_t *s, fl_gx **out)
{
    const char *target = json_string_value(json_object_get(s, "$ref"));
    if (!target)
        return fail_at(j, "%s must be a string", "$ref");
    uint64_t rule;
    if (!fl_bytemap_get(&j->refs, target, strlen(target), &rule)) {
        json_t *def = resolve(j, target);
        if (!def)
            return fail_at(j, "$ref '%s' does not name a schema in this document", target);
        rule = (uint64_t)fl_gb_fresh_rule(j->b, target);
        fl_bytemap_put(&j->refs, target, strlen(target), rule);
        char saved[sizeof j->path];
        memcpy(saved, j->path, sizeof saved);
        snprintf(j->path, sizeof j->path, "%s", target);
        fl_gx *body;
        if (schema_expr(j, def, &body) != 0)
            return -1;
        memcpy(j->path, saved, sizeof saved);
        j->b->defs[rule] = body;
    }
    *out = ref(j, (int)rule);
    return 0;
}

static int get_count(js *j, json_t *s, const char *key, int *out)
{
    json_t *v = json_object_get(s, key);
    if (!v)
        return 0;
    if (!json_is_integer(v) || json_integer_value(v) < 0)
        return fail_at(j, "%s must be a non-negative integer", key);
    if (json_integer_value(v) > FL_GRAMMAR_MAX_REPEAT)
        return fail_at(j, "%s is over the limit of 10000", key);
    *out = (int)json_integer_value(v);
    return 1;
}

/* Lengths or item counts: [min, max] with max FL_GX_INF when unset. */
static int get_bounds(js *j, json_t *s, const char *min_key, const char *max_key, int *min, int *max)
{
    *min = 0;
    *max = FL_GX_INF;
    if (get_count(j, s, min_key, min) < 0 || get_count(j, s, max_key, max) < 0)
        return -1;
    if (*max != FL_GX_INF && *max < *min)
        return fail_at(j, "%s is below the minimum: no value fits", max_key);
    return 0;
}

static int string_expr(js *j, json_t *s, fl_gx **out)
{
    json_t *pattern = json_object_get(s, "pattern"), *format = json_object_get(s, "format");
    int min, max;
    if (get_bounds(j, s, "minLength", "maxLength", &min, &max) != 0)
        return -1;
    const int lengths = min > 0 || max != FL_GX_INF;
    if ((pattern || format) && lengths)
        return fail_at(j, "%s together with minLength or maxLength is not supported (as vLLM refuses it)",
                       pattern ? "pattern" : "format");
    if (pattern && format)
        return fail_at(j, "%s", "pattern together with format is not supported");
    const char *regex = NULL;
    if (pattern) {
        if (!json_is_string(pattern))
            return fail_at(j, "%s must be a string", "pattern");
        regex = json_string_value(pattern);
    } else if (format) {
        static const struct {
            const char *name, *regex;
        } formats[] = {
            { "date", "\\d{4}-(0[1-9]|1[0-2])-(0[1-9]|[12]\\d|3[01])" },
            { "time", "([01]\\d|2[0-3]):[0-5]\\d:([0-5]\\d|60)(\\.\\d+)?(Z|[+-]([01]\\d|2[0-3]):[0-5]\\d)" },
            { "date-time", "\\d{4}-(0[1-9]|1[0-2])-(0[1-9]|[12]\\d|3[01])T([01]\\d|2[0-3]):[0-5]\\d:([0-5]\\d|60)"
                           "(\\.\\d+)?(Z|[+-]([01]\\d|2[0-3]):[0-5]\\d)" },
            { "uuid", "[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}" },
            { "ipv4", "((25[0-5]|2[0-4]\\d|1\\d\\d|[1-9]?\\d)\\.){3}(25[0-5]|2[0-4]\\d|1\\d\\d|[1-9]?\\d)" },
        };
        const char *f = json_string_value(format);
        for (size_t i = 0; f && i < sizeof formats / sizeof formats[0] && !regex; i++)
            if (strcmp(f, formats[i].name) == 0)
                regex = formats[i].regex;
        if (!regex)
            return fail_at(j, "format '%s' is not supported (date, time, date-time, uuid and ipv4 are)",
                           f ? f : "(not a string)");
    }
    if (regex) {
        fl_gx *inside;
        if (fl_regex_build(j->b, regex, strlen(regex), 1, &inside, j->err) != 0)
            return fl_fail_prefix(j->err, "JSON schema (at %s)", j->path[0] ? j->path : "the root");
        *out = quoted(j, inside);
        return 0;
    }
    *out = lengths ? quoted(j, fl_gx_repeat(j->b, ref(j, char_rule(j)), min, max)) : ref(j, string_rule(j));
    return 0;
}

static int array_expr(js *j, json_t *s, fl_gx **out)
{
    json_t *items = json_object_get(s, "items"), *prefix = json_object_get(s, "prefixItems");
    int min, max;
    if (get_bounds(j, s, "minItems", "maxItems", &min, &max) != 0)
        return -1;
    if (items && !json_is_object(items) && !json_is_boolean(items))
        return fail_at(j, "%s must be a schema (a list of items is prefixItems)", "items");
    if (prefix && !json_is_array(prefix))
        return fail_at(j, "%s must be a list of schemas", "prefixItems");
    const int more = !json_is_false(items) && (items || !prefix); /* strict: prefixItems end the array */
    int item_rule = -1;
    if (more) {
        fl_gx *e;
        if (items && json_is_object(items)) {
            if (sub_schema(j, items, "items", -1, &e) != 0)
                return -1;
        } else {
            e = any_value(j);
        }
        item_rule = define(j, "item", e);
    }
    fl_gx *body = fl_gx_seq(j->b);
    fl_gx_add(body, lit(j, "[")), fl_gx_add(body, ws(j));
    if (prefix && json_array_size(prefix) > 0) {
        if (min > 0 || max != FL_GX_INF)
            return fail_at(j, "%s with minItems or maxItems is not supported", "prefixItems");
        for (size_t i = 0; i < json_array_size(prefix); i++) {
            fl_gx *e;
            if (sub_schema(j, json_array_get(prefix, i), "prefixItems", (int)i, &e) != 0)
                return -1;
            if (i)
                fl_gx_add(body, comma(j));
            fl_gx_add(body, e);
        }
        if (more)
            fl_gx_add(body, fl_gx_repeat(j->b, seq3(j, comma(j), ref(j, item_rule), NULL), 0, FL_GX_INF));
    } else if (more && max != 0) {
        fl_gx *rest = fl_gx_repeat(j->b, seq3(j, comma(j), ref(j, item_rule), NULL), min > 0 ? min - 1 : 0,
                                   max == FL_GX_INF ? FL_GX_INF : max - 1);
        fl_gx *list = seq3(j, ref(j, item_rule), rest, NULL);
        fl_gx_add(body, min > 0 ? list : fl_gx_repeat(j->b, list, 0, 1));
    } else if (min > 0) {
        return fail_at(j, "%s asks for items the schema forbids: no value fits", "minItems");
    }
    fl_gx_add(body, ws(j)), fl_gx_add(body, lit(j, "]"));
    *out = body;
    return 0;
}

static int object_expr(js *j, json_t *s, fl_gx **out)
{
    json_t *props = json_object_get(s, "properties"), *req = json_object_get(s, "required");
    json_t *extra = json_object_get(s, "additionalProperties");
    if (props && !json_is_object(props))
        return fail_at(j, "%s must be an object of schemas", "properties");
    if (req && !json_is_array(req))
        return fail_at(j, "%s must be a list of names", "required");
    if (extra && !json_is_object(extra) && !json_is_boolean(extra))
        return fail_at(j, "%s must be a boolean or a schema", "additionalProperties");
    if (!props && !req && (!extra || json_is_true(extra))) { /* any object */
        *out = ref(j, object_rule(j));
        return 0;
    }
    const int allow_extra = extra ? !json_is_false(extra) : !props;
    for (size_t i = 0; req && i < json_array_size(req); i++) {
        const char *name = json_string_value(json_array_get(req, i));
        if (!name)
            return fail_at(j, "%s must hold strings", "required");
        if (!props || !json_object_get(props, name))
            return fail_at(j, "required property '%s' has no schema in properties", name);
    }
    const size_t n = props ? json_object_size(props) : 0;
    int *member = fl_malloc((n + 1) * sizeof *member);
    uint8_t *required = fl_calloc(n + 1, 1);
    const char *key;
    json_t *sub;
    size_t i = 0;
    int rc = 0;
    json_object_foreach(props, key, sub) {
        for (size_t r = 0; req && r < json_array_size(req); r++)
            required[i] |= strcmp(json_string_value(json_array_get(req, r)), key) == 0;
        fl_gx *value;
        const size_t at = strlen(j->path);
        snprintf(j->path + at, sizeof j->path - at, "%sproperties.%s", at ? "." : "", key);
        rc = schema_expr(j, sub, &value);
        if (rc != 0)
            break;
        j->path[at] = '\0';
        json_t *name = json_string(key);
        member[i++] = define(j, key, seq3(j, json_literal(j, name), colon(j), value));
        json_decref(name);
    }
    int extra_member = -1;
    if (rc == 0 && allow_extra) {
        fl_gx *value = any_value(j);
        if (json_is_object(extra))
            rc = sub_schema(j, extra, "additionalProperties", -1, &value);
        if (rc == 0)
            extra_member = define(j, "extra", seq3(j, ref(j, string_rule(j)), colon(j), value));
    }
    if (rc != 0) {
        free(member), free(required);
        return -1;
    }
    /* after[i]: properties i.. when one came before (each with a comma);
     * first[i]: the same when none did */
    int after = -1, first = -1;
    if (allow_extra) {
        after = define(j, "rest", fl_gx_repeat(j->b, seq3(j, comma(j), ref(j, extra_member), NULL), 0, FL_GX_INF));
        first = define(j, "rest", fl_gx_repeat(j->b, seq3(j, ref(j, extra_member), ref(j, after), NULL), 0, 1));
    } else {
        after = first = define(j, "rest", fl_gx_empty(j->b));
    }
    for (size_t k = n; k-- > 0;) {
        fl_gx *with = seq3(j, comma(j), ref(j, member[k]), ref(j, after));
        const int next_after = define(j, "rest", required[k] ? with : fl_gx_add(fl_gx_add(fl_gx_alt(j->b), with), ref(j, after)));
        fl_gx *led = seq3(j, ref(j, member[k]), ref(j, after), NULL);
        first = define(j, "rest", required[k] ? led : fl_gx_add(fl_gx_add(fl_gx_alt(j->b), led), ref(j, first)));
        after = next_after;
    }
    free(member), free(required);
    fl_gx *body = fl_gx_seq(j->b);
    fl_gx_add(body, lit(j, "{")), fl_gx_add(body, ws(j)), fl_gx_add(body, ref(j, first));
    fl_gx_add(body, ws(j)), fl_gx_add(body, lit(j, "}"));
    *out = body;
    return 0;
}

static int choice_list(js *j, json_t *list, const char *key, fl_gx **out)
{
    if (!json_is_array(list) || json_array_size(list) == 0)
        return fail_at(j, "%s must be a non-empty list", key);
    fl_gx *alt = fl_gx_alt(j->b);
    for (size_t i = 0; i < json_array_size(list); i++) {
        fl_gx *e;
        if (strcmp(key, "enum") == 0)
            e = json_literal(j, json_array_get(list, i));
        else if (sub_schema(j, json_array_get(list, i), key, (int)i, &e) != 0)
            return -1;
        fl_gx_add(alt, e);
    }
    *out = alt;
    return 0;
}

/* The keywords understood here, and those that say nothing about values. */
static int known_keyword(const char *k)
{
    static const char *const known[] = {
        "type", "enum", "const", "anyOf", "oneOf", "allOf", "$ref", "properties", "required",
        "additionalProperties", "items", "prefixItems", "minItems", "maxItems", "minLength", "maxLength",
        "pattern", "format", "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum",
        /* annotations */
        "title", "description", "default", "examples", "deprecated", "readOnly", "writeOnly", "$comment",
        "$schema", "$id", "$defs", "definitions",
    };
    for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
        if (strcmp(k, known[i]) == 0)
            return 1;
    return 0;
}

static int type_expr(js *j, json_t *s, const char *type, fl_gx **out)
{
    if (strcmp(type, "string") == 0)
        return string_expr(j, s, out);
    if (strcmp(type, "integer") == 0)
        return integer_expr(j, s, out);
    if (strcmp(type, "number") == 0) {
        static const char *const bounds[] = { "minimum", "exclusiveMinimum", "maximum", "exclusiveMaximum" };
        for (int k = 0; k < 4; k++)
            if (json_object_get(s, bounds[k]))
                return fail_at(j, "%s on a number (not an integer) is not supported", bounds[k]);
        *out = ref(j, number_rule(j));
        return 0;
    }
    if (strcmp(type, "boolean") == 0) {
        *out = fl_gx_add(fl_gx_add(fl_gx_alt(j->b), lit(j, "true")), lit(j, "false"));
        return 0;
    }
    if (strcmp(type, "null") == 0) {
        *out = lit(j, "null");
        return 0;
    }
    if (strcmp(type, "array") == 0)
        return array_expr(j, s, out);
    if (strcmp(type, "object") == 0)
        return object_expr(j, s, out);
    return fail_at(j, "type '%s' is not a JSON type", type);
}

/* The type a schema without "type" implies by its keywords, or NULL. */
static const char *implied_type(json_t *s)
{
    if (json_object_get(s, "properties") || json_object_get(s, "required") || json_object_get(s, "additionalProperties"))
        return "object";
    if (json_object_get(s, "items") || json_object_get(s, "prefixItems") || json_object_get(s, "minItems") ||
        json_object_get(s, "maxItems"))
        return "array";
    if (json_object_get(s, "minLength") || json_object_get(s, "maxLength") || json_object_get(s, "pattern") ||
        json_object_get(s, "format"))
        return "string";
    return NULL;
}

static int schema_expr(js *j, json_t *s, fl_gx **out)
{
    if (json_is_true(s)) {
        *out = any_value(j);
        return 0;
    }
    if (!json_is_object(s))
        return fail_at(j, "%s", json_is_false(s) ? "the schema false matches no value" : "a schema must be an object");
    if (j->depth >= MAX_DEPTH)
        return fail_at(j, "%s", "the schema nests too deeply");
    const char *k;
    json_t *v;
    json_object_foreach(s, k, v)
        if (!known_keyword(k))
            return fail_at(j, "keyword '%s' is not supported", k);
    j->depth++;
    int rc;
    json_t *type = json_object_get(s, "type");
    if (json_object_get(s, "$ref")) {
        json_object_foreach(s, k, v)
            if (strcmp(k, "$ref") != 0 && strcmp(k, "$defs") != 0 && strcmp(k, "definitions") != 0 &&
                strcmp(k, "title") != 0 && strcmp(k, "description") != 0 && strcmp(k, "default") != 0 &&
                strcmp(k, "examples") != 0 && strcmp(k, "$comment") != 0 && strcmp(k, "$schema") != 0) {
                j->depth--;
                return fail_at(j, "keyword '%s' beside $ref is not supported", k);
            }
        rc = ref_expr(j, s, out);
    } else if (json_object_get(s, "const")) {
        *out = json_literal(j, json_object_get(s, "const"));
        rc = 0;
    } else if (json_object_get(s, "enum")) {
        rc = choice_list(j, json_object_get(s, "enum"), "enum", out);
    } else if (json_object_get(s, "anyOf") || json_object_get(s, "oneOf")) {
        const char *key = json_object_get(s, "anyOf") ? "anyOf" : "oneOf";
        rc = choice_list(j, json_object_get(s, key), key, out);
    } else if (json_object_get(s, "allOf")) {
        json_t *all = json_object_get(s, "allOf");
        rc = json_is_array(all) && json_array_size(all) == 1
                 ? sub_schema(j, json_array_get(all, 0), "allOf", 0, out)
                 : fail_at(j, "%s of more than one schema is not supported", "allOf");
    } else if (json_is_string(type)) {
        rc = type_expr(j, s, json_string_value(type), out);
    } else if (json_is_array(type)) { /* one of the types, each with the schema's keywords */
        fl_gx *alt = fl_gx_alt(j->b);
        rc = json_array_size(type) ? 0 : fail_at(j, "%s must not be empty", "type");
        for (size_t i = 0; rc == 0 && i < json_array_size(type); i++) {
            const char *t = json_string_value(json_array_get(type, i));
            fl_gx *e;
            rc = t ? type_expr(j, s, t, &e) : fail_at(j, "%s must hold strings", "type");
            if (rc == 0)
                fl_gx_add(alt, e);
        }
        *out = alt;
    } else if (type) {
        rc = fail_at(j, "%s must be a string or a list of strings", "type");
    } else {
        const char *t = implied_type(s);
        if (t) {
            rc = type_expr(j, s, t, out);
        } else {
            *out = any_value(j);
            rc = 0;
        }
    }
    j->depth--;
    return rc;
}

int fl_json_schema_build(fl_gb *b, const fl_grammar_spec *spec, int *root, fl_error *err)
{
    js j = { .b = b, .ws = -1, .string_rule = -1, .char_rule = -1, .number_rule = -1, .integer_rule = -1,
             .value_rule = -1, .object_rule = -1, .array_rule = -1, .err = err };
    if (spec->any_whitespace) {
        fl_gx *e;
        if (spec->whitespace_pattern) {
            if (fl_regex_build(b, spec->whitespace_pattern, strlen(spec->whitespace_pattern), 0, &e, err) != 0)
                return fl_fail_prefix(err, "whitespace_pattern");
        } else {
            fl_gx *set = fl_gx_byte_range(b, ' ', ' ');
            set->bits[0] |= (uint64_t)1 << '\n' | (uint64_t)1 << '\t';
            e = fl_gx_repeat(b, set, 0, FL_GX_INF);
        }
        j.ws = define(&j, "ws", e);
    }
    fl_bytemap_init(&j.refs, 16);
    int rc;
    fl_gx *body = NULL;
    if (spec->kind == FL_GRAMMAR_JSON_OBJECT) {
        body = ref(&j, object_rule(&j));
        rc = 0;
    } else {
        json_error_t jerr;
        j.doc = json_loadb(spec->text ? spec->text : "", spec->len, JSON_DECODE_ANY, &jerr);
        rc = j.doc ? schema_expr(&j, j.doc, &body) : fl_fail(err, "the JSON schema is not valid JSON: %s", jerr.text);
    }
    if (rc == 0) {
        *root = fl_gb_rule(b, "root", 4);
        rc = fl_gb_define(b, *root, body, err);
    }
    json_decref(j.doc);
    fl_bytemap_free(&j.refs);
    return rc;
}
