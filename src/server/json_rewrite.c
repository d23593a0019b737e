/* json_rewrite.c - a JSON value rewritten as Python's json.dumps writes it,
 * a byte at a time (see json_rewrite.h). */
#include "server/json_rewrite.h"

#include <stdlib.h>
#include <string.h>

#include "base/pyjson.h"
#include "base/utf8.h"

enum {
    S_VALUE,       /* a value starts (whitespace first) */
    S_OBJ_FIRST,   /* after '{': a key or '}' */
    S_OBJ_KEY,     /* after ',' in an object: a key */
    S_OBJ_COLON,   /* after a key */
    S_OBJ_NEXT,    /* after a member: ',' or '}' */
    S_ARR_FIRST,   /* after '[': a value or ']' */
    S_ARR_NEXT,    /* after an item: ',' or ']' */
    S_STRING,
    S_NUMBER,
    S_WORD,        /* true, false, null */
};

/* the number grammar: where the text read so far is */
enum { N_SIGN, N_ZERO, N_INT, N_DOT, N_FRAC, N_E, N_E_SIGN, N_EXP };

static int is_ws(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

void fl_json_rewrite_init(fl_json_rewrite *r)
{
    memset(r, 0, sizeof *r);
}

void fl_json_rewrite_start(fl_json_rewrite *r, int decode)
{
    fl_strbuf digits = r->digits; /* its memory serves every value */
    fl_json_rewrite_init(r);
    r->digits = digits;
    r->decode = decode;
    r->state = S_VALUE;
}

void fl_json_rewrite_free(fl_json_rewrite *r)
{
    fl_strbuf_free(&r->digits);
    memset(r, 0, sizeof *r);
}

/* One code point of a string's value, written as json.dumps writes it (or
 * as UTF-8 when decoding). A lone surrogate is not UTF-8: decoded it is
 * U+FFFD, rewritten it stays an escape. */
static void put_code_point(fl_json_rewrite *r, uint32_t cp, fl_strbuf *out)
{
    const int surrogate = cp >= 0xd800 && cp <= 0xdfff;
    char u[4];
    if (!r->decode && surrogate) {
        fl_strbuf_appendf(out, "\\u%04x", (unsigned)cp);
        return;
    }
    const size_t n = (size_t)fl_utf8_encode(surrogate ? 0xfffd : cp, u);
    if (r->decode)
        fl_strbuf_append(out, u, n);
    else
        fl_pyjson_string_bytes(out, u, n);
}

/* A high surrogate that no low half followed stands alone. */
static void put_lone_high(fl_json_rewrite *r, fl_strbuf *out)
{
    if (r->high) {
        put_code_point(r, r->high, out);
        r->high = 0;
    }
}

/* A \u code unit: pairs a high surrogate with the low half after it. */
static void put_unit(fl_json_rewrite *r, uint32_t unit, fl_strbuf *out)
{
    if (r->high && unit >= 0xdc00 && unit <= 0xdfff) {
        put_code_point(r, 0x10000 + ((r->high - 0xd800) << 10) + (unit - 0xdc00), out);
        r->high = 0;
        return;
    }
    put_lone_high(r, out);
    if (unit >= 0xd800 && unit <= 0xdbff)
        r->high = unit;
    else
        put_code_point(r, unit, out);
}

/* A value ended: the container around it, or the end of the whole. */
static fl_json_status value_done(fl_json_rewrite *r)
{
    if (r->depth == 0)
        return FL_JSON_DONE;
    r->state = r->open[r->depth - 1] == '{' ? S_OBJ_NEXT : S_ARR_NEXT;
    return FL_JSON_MORE;
}

static fl_json_status string_byte(fl_json_rewrite *r, char c, fl_strbuf *out)
{
    static const char simple[] = "\"\"\\\\//b\bf\fn\nr\rt\t"; /* escape letter, character */
    if (r->esc == 0) {
        if (c == '"') {
            put_lone_high(r, out);
            if (!r->decode)
                fl_strbuf_append_char(out, '"');
            if (r->in_key) {
                r->in_key = 0;
                r->state = S_OBJ_COLON;
                return FL_JSON_MORE;
            }
            return value_done(r);
        }
        if (c == '\\') {
            r->esc = 1;
            return FL_JSON_MORE;
        }
        if ((unsigned char)c < 0x20)
            return FL_JSON_ERROR; /* json.loads is strict: no raw control characters */
        put_lone_high(r, out);
        fl_strbuf_append_char(out, c); /* UTF-8 bytes pass as they are */
        return FL_JSON_MORE;
    }
    if (r->esc == 1) {
        if (c == 'u') {
            r->esc = 2;
            r->unit = 0;
            return FL_JSON_MORE;
        }
        for (size_t i = 0; i + 1 < sizeof simple; i += 2)
            if (c == simple[i]) {
                r->esc = 0;
                put_lone_high(r, out);
                put_code_point(r, (unsigned char)simple[i + 1], out);
                return FL_JSON_MORE;
            }
        return FL_JSON_ERROR;
    }
    const char *hex = "0123456789abcdef", *at = c ? strchr(hex, c | 0x20) : NULL;
    if (!at)
        return FL_JSON_ERROR;
    r->unit = r->unit << 4 | (uint32_t)(at - hex);
    if (++r->esc == 6) {
        r->esc = 0;
        put_unit(r, r->unit, out);
    }
    return FL_JSON_MORE;
}

/* The number's text is complete: an integer keeps its digits (Python's int
 * has no limit), a float is written as repr(float(text)). */
static void put_number(fl_json_rewrite *r, fl_strbuf *out)
{
    const char *t = r->digits.data;
    if (!strpbrk(t, ".eE")) {
        fl_strbuf_append_str(out, strcmp(t, "-0") == 0 ? "0" : t);
        return;
    }
    fl_pyjson_float(out, strtod(t, NULL));
}

/* 1 if c continues the number, 0 if it ends it, -1 if it breaks it. */
static int number_byte(fl_json_rewrite *r, char c)
{
    const int digit = c >= '0' && c <= '9';
    int next = -1;
    switch (r->num) {
    case N_SIGN: next = c == '0' ? N_ZERO : digit ? N_INT : -1; break;
    case N_ZERO: next = c == '.' ? N_DOT : (c == 'e' || c == 'E') ? N_E : -2; break;
    case N_INT: next = digit ? N_INT : c == '.' ? N_DOT : (c == 'e' || c == 'E') ? N_E : -2; break;
    case N_DOT: next = digit ? N_FRAC : -1; break;
    case N_FRAC: next = digit ? N_FRAC : (c == 'e' || c == 'E') ? N_E : -2; break;
    case N_E: next = (c == '+' || c == '-') ? N_E_SIGN : digit ? N_EXP : -1; break;
    case N_E_SIGN: next = digit ? N_EXP : -1; break;
    case N_EXP: next = digit ? N_EXP : -2; break;
    }
    if (next == -2)
        return 0;
    if (next < 0)
        return -1;
    r->num = next;
    fl_strbuf_append_char(&r->digits, c);
    return 1;
}

static fl_json_status open_container(fl_json_rewrite *r, char c, fl_strbuf *out)
{
    if (r->depth == FL_JSON_MAX_DEPTH)
        return FL_JSON_ERROR;
    r->open[r->depth++] = c;
    fl_strbuf_append_char(out, c);
    r->state = c == '{' ? S_OBJ_FIRST : S_ARR_FIRST;
    return FL_JSON_MORE;
}

static fl_json_status close_container(fl_json_rewrite *r, char c, fl_strbuf *out)
{
    r->depth--;
    fl_strbuf_append_char(out, c);
    return value_done(r);
}

static fl_json_status value_start(fl_json_rewrite *r, char c, fl_strbuf *out)
{
    if (c == '"') {
        r->state = S_STRING;
        if (!r->decode)
            fl_strbuf_append_char(out, '"');
        return FL_JSON_MORE;
    }
    if (r->decode)
        return FL_JSON_ERROR; /* only a string has a text to decode */
    if (c == '{' || c == '[')
        return open_container(r, c, out);
    if (c == '-' || (c >= '0' && c <= '9')) {
        r->state = S_NUMBER;
        r->num = c == '-' ? N_SIGN : c == '0' ? N_ZERO : N_INT;
        fl_strbuf_clear(&r->digits);
        fl_strbuf_append_char(&r->digits, c);
        return FL_JSON_MORE;
    }
    r->word = c == 't' ? "true" : c == 'f' ? "false" : c == 'n' ? "null" : NULL;
    if (!r->word)
        return FL_JSON_ERROR;
    r->state = S_WORD;
    r->word_at = 1;
    return FL_JSON_MORE;
}

fl_json_status fl_json_rewrite_byte(fl_json_rewrite *r, char c, fl_strbuf *out)
{
    switch (r->state) {
    case S_STRING:
        return string_byte(r, c, out);
    case S_NUMBER: {
        const int more = number_byte(r, c);
        if (more != 0)
            return more > 0 ? FL_JSON_MORE : FL_JSON_ERROR;
        put_number(r, out);
        if (r->depth == 0)
            return FL_JSON_DONE_BEFORE;
        value_done(r);
        return fl_json_rewrite_byte(r, c, out); /* c follows the number in its container */
    }
    case S_WORD:
        if (c != r->word[r->word_at])
            return FL_JSON_ERROR;
        if (r->word[++r->word_at])
            return FL_JSON_MORE;
        fl_strbuf_append_str(out, r->word);
        return value_done(r);
    default:
        break;
    }
    if (is_ws(c))
        return FL_JSON_MORE;
    switch (r->state) {
    case S_VALUE:
        return value_start(r, c, out);
    case S_OBJ_FIRST:
    case S_OBJ_KEY:
        if (c == '}' && r->state == S_OBJ_FIRST)
            return close_container(r, c, out);
        if (c != '"')
            return FL_JSON_ERROR;
        r->state = S_STRING;
        r->in_key = 1;
        fl_strbuf_append_char(out, '"');
        return FL_JSON_MORE;
    case S_OBJ_COLON:
        if (c != ':')
            return FL_JSON_ERROR;
        fl_strbuf_append_str(out, ": ");
        r->state = S_VALUE;
        return FL_JSON_MORE;
    case S_OBJ_NEXT:
    case S_ARR_NEXT: {
        const char close = r->state == S_OBJ_NEXT ? '}' : ']';
        if (c == close)
            return close_container(r, c, out);
        if (c != ',')
            return FL_JSON_ERROR;
        fl_strbuf_append_str(out, ", ");
        r->state = r->state == S_OBJ_NEXT ? S_OBJ_KEY : S_VALUE;
        return FL_JSON_MORE;
    }
    case S_ARR_FIRST:
        if (c == ']')
            return close_container(r, c, out);
        r->state = S_VALUE;
        return value_start(r, c, out);
    default:
        return FL_JSON_ERROR;
    }
}
