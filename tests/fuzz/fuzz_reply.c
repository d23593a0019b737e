/* fuzz_reply.c - the reply parsers (server/tool_parser, server/json_rewrite,
 * server/reasoning_parser) over any generated text. The first byte picks
 * the parser (bit 0), the reasoning parser's start state, and how the rest
 * is cut into pieces (the engine hands text over a few bytes at a time).
 * The result must be the same fed whole and fed in pieces, and when the
 * text is UTF-8 everything shown must be too (a piece cut inside a
 * character would make a JSON string jansson refuses). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/utf8.h"
#include "server/reasoning_parser.h"
#include "server/tool_parser.h"

static void check_text(int utf8, const fl_strbuf *b)
{
    if (utf8 && b->len && !fl_utf8_valid(b->data, b->len))
        __builtin_trap();
}

static void same(const fl_strbuf *a, const fl_strbuf *b)
{
    if (a->len != b->len || (a->len && memcmp(a->data, b->data, a->len) != 0))
        __builtin_trap();
}

/* Feeds text in pieces of 1..cut bytes (cut 0: whole), a fixed pattern. */
static size_t piece(size_t i, size_t n, unsigned cut)
{
    const size_t k = cut == 0 ? n : 1 + (i * 7 + 3) % cut;
    return k < n - i ? k : n - i;
}

static void tools(const char *text, size_t n, unsigned cut, int utf8)
{
    fl_tool_parser p[2];
    fl_strbuf content[2] = { { 0 } };
    for (int way = 0; way < 2; way++) {
        fl_tool_parser_init(&p[way]);
        for (size_t i = 0, k; i < n; i += k) {
            k = piece(i, n, way ? cut : 0);
            fl_tool_parser_push(&p[way], text + i, k, &content[way]);
        }
        fl_tool_parser_finish(&p[way], &content[way]);
    }
    same(&content[0], &content[1]);
    check_text(utf8, &content[0]);
    if (p[0].num_calls != p[1].num_calls || p[0].malformed != p[1].malformed)
        __builtin_trap();
    for (int c = 0; c < p[0].num_calls; c++) {
        same(&p[0].calls[c].name, &p[1].calls[c].name);
        same(&p[0].calls[c].arguments, &p[1].calls[c].arguments);
        check_text(utf8, &p[0].calls[c].name);
        check_text(utf8, &p[0].calls[c].arguments);
    }
    for (int way = 0; way < 2; way++) {
        fl_tool_parser_free(&p[way]);
        fl_strbuf_free(&content[way]);
    }
}

static void reasoning(const char *text, size_t n, unsigned cut, fl_reasoning_state start, int utf8)
{
    fl_strbuf r[2] = { { 0 } }, c[2] = { { 0 } };
    for (int way = 0; way < 2; way++) {
        fl_reasoning_parser p;
        fl_reasoning_parser_init(&p, start);
        for (size_t i = 0, k; i < n; i += k) {
            k = piece(i, n, way ? cut : 0);
            fl_reasoning_parser_push(&p, text + i, k, &r[way], &c[way]);
        }
        fl_reasoning_parser_finish(&p, &r[way], &c[way]);
    }
    same(&r[0], &r[1]);
    same(&c[0], &c[1]);
    check_text(utf8, &r[0]);
    check_text(utf8, &c[0]);
    if (r[0].len + c[0].len > n) /* the tags go, nothing is added */
        __builtin_trap();
    for (int way = 0; way < 2; way++) {
        fl_strbuf_free(&r[way]);
        fl_strbuf_free(&c[way]);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    const char *text = (const char *)data + 1;
    const size_t n = size - 1;
    const unsigned cut = (data[0] >> 3) % 8;
    const int utf8 = fl_utf8_valid(text, n);
    if (data[0] & 1)
        reasoning(text, n, cut, (fl_reasoning_state)((data[0] >> 1) % 3), utf8);
    else
        tools(text, n, cut, utf8);
    return 0;
}
