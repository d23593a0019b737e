/* reasoning_parser.c - Qwen3's <think> block (see reasoning_parser.h). */
#include "server/reasoning_parser.h"

#include <string.h>

static const char think_open[] = "<think>", think_close[] = "</think>";

/* Whether prompt[0..len) ends with tag and JSON-style whitespace after it. */
static int ends_with_tag(const char *prompt, size_t len, const char *tag)
{
    while (len && strchr(" \t\r\n", prompt[len - 1]))
        len--;
    const size_t n = strlen(tag);
    return len >= n && memcmp(prompt + len - n, tag, n) == 0;
}

fl_reasoning_state fl_reasoning_prompt_state(const char *prompt, size_t len)
{
    if (ends_with_tag(prompt, len, think_open))
        return FL_REASONING_IN;
    return ends_with_tag(prompt, len, think_close) ? FL_REASONING_AFTER : FL_REASONING_BEFORE;
}

void fl_reasoning_parser_init(fl_reasoning_parser *p, fl_reasoning_state start)
{
    p->state = start;
    fl_tag_scan_init(&p->scan, start == FL_REASONING_BEFORE ? think_open : think_close);
}

void fl_reasoning_parser_push(fl_reasoning_parser *p, const char *text, size_t n, fl_strbuf *reasoning,
                              fl_strbuf *content)
{
    for (size_t i = 0; i < n; i++) {
        if (p->state == FL_REASONING_AFTER) {
            fl_strbuf_append(content, text + i, n - i);
            return;
        }
        const int in = p->state == FL_REASONING_IN;
        if (fl_tag_scan_byte(&p->scan, text[i], in ? reasoning : content)) {
            p->state = in ? FL_REASONING_AFTER : FL_REASONING_IN;
            if (!in)
                fl_tag_scan_init(&p->scan, think_close);
        }
    }
}

void fl_reasoning_parser_finish(fl_reasoning_parser *p, fl_strbuf *reasoning, fl_strbuf *content)
{
    if (p->state != FL_REASONING_AFTER)
        fl_tag_scan_flush(&p->scan, p->state == FL_REASONING_IN ? reasoning : content);
}
