/* tool_parser.c - hermes <tool_call> blocks (see tool_parser.h). */
#include "server/tool_parser.h"

#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"

enum {
    T_TEXT,        /* outside the blocks */
    B_OPEN,        /* after <tool_call>: the object's '{' */
    B_KEY_FIRST,   /* after '{': a key (an empty object has no name) */
    B_KEY_NEXT,    /* after ',': a key */
    B_KEY,         /* reading a key */
    B_COLON,
    B_VALUE,       /* reading a member's value */
    B_NEXT,        /* after a member: ',' or '}' */
    B_TAIL,        /* after the object: whitespace, then </tool_call> */
};

enum { M_NAME, M_ARGUMENTS, M_OTHER };

static int is_ws(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

void fl_tool_parser_init(fl_tool_parser *p)
{
    memset(p, 0, sizeof *p);
    p->cap = 4;
    p->calls = fl_calloc((size_t)p->cap, sizeof *p->calls);
    fl_tag_scan_init(&p->open, "<tool_call>");
    fl_tag_scan_init(&p->close, "</tool_call>");
    fl_json_rewrite_init(&p->json);
}

void fl_tool_parser_free(fl_tool_parser *p)
{
    for (int i = 0; i <= p->num_calls && i < p->cap; i++) {
        fl_strbuf_free(&p->calls[i].name);
        fl_strbuf_free(&p->calls[i].arguments);
    }
    free(p->calls);
    fl_strbuf_free(&p->held_ws);
    fl_strbuf_free(&p->raw);
    fl_strbuf_free(&p->key);
    fl_strbuf_free(&p->skipped);
    fl_json_rewrite_free(&p->json);
    memset(p, 0, sizeof *p);
}

/* Text outside the blocks, into content: whitespace after a call is left
 * out, whitespace before one is held until the next byte tells. */
static void text_out(fl_tool_parser *p, const char *s, size_t n, fl_strbuf *content)
{
    for (size_t i = 0; i < n; i++) {
        if (is_ws(s[i])) {
            if (!p->after_call)
                fl_strbuf_append_char(&p->held_ws, s[i]);
            continue;
        }
        p->after_call = 0;
        fl_strbuf_append(content, p->held_ws.data, p->held_ws.len);
        fl_strbuf_clear(&p->held_ws);
        fl_strbuf_append_char(content, s[i]);
    }
}

/* The block at calls[num_calls] starts: empty, its call unknown. */
static void block_start(fl_tool_parser *p)
{
    if (p->num_calls + 1 >= p->cap) {
        p->calls = fl_realloc(p->calls, (size_t)p->cap * 2 * sizeof *p->calls);
        memset(p->calls + p->cap, 0, (size_t)p->cap * sizeof *p->calls);
        p->cap *= 2;
    }
    fl_tool_call *c = &p->calls[p->num_calls];
    fl_strbuf_clear(&c->name);
    fl_strbuf_clear(&c->arguments);
    fl_strbuf_clear(&p->raw);
    fl_strbuf_append_str(&p->raw, "<tool_call>");
    p->have_name = p->have_arguments = p->known = 0;
    p->state = B_OPEN;
}

/* The block's name is read: its call is one of calls[], the whitespace
 * before the block is left out, and its text is no longer held. */
static void block_known(fl_tool_parser *p)
{
    p->known = 1;
    p->num_calls++;
    fl_strbuf_clear(&p->held_ws);
    fl_strbuf_clear(&p->raw);
}

/* The block breaks at byte c: what of it is not a call is content, and the
 * text after it is read as text again. */
static void block_broken(fl_tool_parser *p, char c, fl_strbuf *content)
{
    p->malformed = 1;
    p->state = T_TEXT;
    if (p->known)
        text_out(p, &c, 1, content);
    else
        text_out(p, p->raw.data, p->raw.len, content); /* c is its last byte */
    fl_strbuf_clear(&p->raw);
}

static void value_start(fl_tool_parser *p, fl_strbuf *content, char c)
{
    const char *k = p->key.data ? p->key.data : "";
    p->member = strcmp(k, "name") == 0 ? M_NAME : strcmp(k, "arguments") == 0 ? M_ARGUMENTS : M_OTHER;
    if ((p->member == M_NAME && p->have_name) || (p->member == M_ARGUMENTS && p->have_arguments)) {
        block_broken(p, c, content); /* a second name or arguments: which one is meant? */
        return;
    }
    fl_strbuf_clear(&p->skipped);
    fl_json_rewrite_start(&p->json, p->member == M_NAME);
    p->state = B_VALUE;
}

static fl_strbuf *value_out(fl_tool_parser *p)
{
    fl_tool_call *c = &p->calls[p->known ? p->num_calls - 1 : p->num_calls];
    return p->member == M_NAME ? &c->name : p->member == M_ARGUMENTS ? &c->arguments : &p->skipped;
}

static void value_done(fl_tool_parser *p)
{
    if (p->member == M_NAME) {
        p->have_name = 1;
        block_known(p);
    } else if (p->member == M_ARGUMENTS) {
        p->have_arguments = 1;
    }
    p->state = B_NEXT;
}

/* One byte of a block (its raw text already has it, until the call is known). */
static void block_byte(fl_tool_parser *p, char c, fl_strbuf *content)
{
    switch (p->state) {
    case B_KEY:
    case B_VALUE: {
        const fl_json_status st = fl_json_rewrite_byte(&p->json, c, p->state == B_KEY ? &p->key : value_out(p));
        if (st == FL_JSON_ERROR) {
            block_broken(p, c, content);
        } else if (st != FL_JSON_MORE && p->state == B_KEY) {
            p->state = B_COLON;
        } else if (st != FL_JSON_MORE) {
            value_done(p);
            if (st == FL_JSON_DONE_BEFORE)
                block_byte(p, c, content); /* c follows a number */
        }
        return;
    }
    case B_TAIL: {
        fl_strbuf junk = { 0 };
        if (p->close.matched == 0 && is_ws(c))
            return;
        if (fl_tag_scan_byte(&p->close, c, &junk)) {
            p->state = T_TEXT;
            p->after_call = 1;
        } else if (junk.len) {
            fl_tag_scan_init(&p->close, "</tool_call>");
            p->state = T_TEXT; /* the call stands; what follows is text */
            p->malformed = 1;
            text_out(p, junk.data, junk.len, content);
        }
        fl_strbuf_free(&junk);
        return;
    }
    default:
        break;
    }
    if (is_ws(c))
        return;
    switch (p->state) {
    case B_OPEN:
        if (c == '{')
            p->state = B_KEY_FIRST;
        else
            block_broken(p, c, content);
        return;
    case B_KEY_FIRST:
    case B_KEY_NEXT:
        if (c == '"') {
            fl_strbuf_clear(&p->key);
            fl_json_rewrite_start(&p->json, 1);
            fl_json_rewrite_byte(&p->json, c, &p->key);
            p->state = B_KEY;
        } else {
            block_broken(p, c, content); /* '}' too: an object without a name */
        }
        return;
    case B_COLON:
        if (c == ':')
            value_start(p, content, c);
        else
            block_broken(p, c, content);
        return;
    case B_NEXT:
        if (c == ',')
            p->state = B_KEY_NEXT;
        else if (c == '}' && p->have_name && p->have_arguments)
            p->state = B_TAIL;
        else
            block_broken(p, c, content);
        return;
    default:
        return;
    }
}

void fl_tool_parser_push(fl_tool_parser *p, const char *text, size_t n, fl_strbuf *content)
{
    fl_strbuf shown = { 0 };
    for (size_t i = 0; i < n; i++) {
        const char c = text[i];
        if (p->state != T_TEXT) {
            if (!p->known)
                fl_strbuf_append_char(&p->raw, c);
            block_byte(p, c, content);
            continue;
        }
        fl_strbuf_clear(&shown);
        const int found = fl_tag_scan_byte(&p->open, c, &shown);
        text_out(p, shown.data, shown.len, content);
        if (found)
            block_start(p);
    }
    fl_strbuf_free(&shown);
}

void fl_tool_parser_finish(fl_tool_parser *p, fl_strbuf *content)
{
    fl_strbuf held = { 0 };
    if (p->state == T_TEXT) {
        fl_tag_scan_flush(&p->open, &held);
        text_out(p, held.data, held.len, content);
    } else if (p->state != B_TAIL) {
        p->malformed = 1; /* cut off inside the block's JSON */
        if (!p->known)
            text_out(p, p->raw.data, p->raw.len, content);
    }
    fl_strbuf_free(&held);
    p->state = T_TEXT;
    fl_tag_scan_init(&p->close, "</tool_call>");
    /* the text ends here: whitespace held for a block that never came is content */
    fl_strbuf_append(content, p->held_ws.data, p->held_ws.len);
    fl_strbuf_clear(&p->held_ws);
}
