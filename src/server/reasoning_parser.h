/* reasoning_parser.h - vLLM's --reasoning-parser qwen3: a reply's
 * <think>...</think> block split off as reasoning_content.
 *
 * Qwen3 writes its chain of thought first, between <think> and </think>,
 * then the answer. vLLM's Qwen3ReasoningParser gives the text inside the
 * block as reasoning_content and the text after it as content; text with
 * no block is all content (thinking disabled, or a model that does not
 * think). The parser here reads a choice's text as it is generated, so a
 * streamed reply and a whole one split the same way. Where vLLM's two
 * paths differ, it follows the streamed one: a block that never closes
 * (the reply was cut) is reasoning, not content.
 *
 * The prompt decides where the reply starts (fl_reasoning_prompt_state):
 * Qwen3-Thinking-2507's template ends the prompt inside an open <think>,
 * and with enable_thinking false Qwen3's template ends it after an empty
 * block, which vLLM reads as reasoning already ended (all content).
 *
 * The common shape of the reply parsers (this, server/tool_parser.h and
 * tokenizer/harmony.h's): init, push each piece of a choice's output as it
 * comes (the text it completes appended to the caller's buffers), finish
 * at the end (what was held back, appended). */
#ifndef FL_REASONING_PARSER_H
#define FL_REASONING_PARSER_H

#include <stddef.h>

#include "base/strbuf.h"
#include "server/tag_scan.h"

typedef enum fl_reasoning_state {
    FL_REASONING_BEFORE,   /* no block yet: text is content, <think> opens one */
    FL_REASONING_IN,       /* inside the block: text is reasoning until </think> */
    FL_REASONING_AFTER,    /* the block closed: all text is content */
} fl_reasoning_state;

/* Where a reply to prompt[0..len) starts: IN when the prompt ends with
 * <think> and whitespace, AFTER when it ends with </think> and whitespace,
 * else BEFORE (a block of an earlier turn counts for nothing). */
fl_reasoning_state fl_reasoning_prompt_state(const char *prompt, size_t len);

typedef struct fl_reasoning_parser {
    fl_reasoning_state state;
    fl_tag_scan scan;      /* <think> before the block, </think> inside it */
} fl_reasoning_parser;

void fl_reasoning_parser_init(fl_reasoning_parser *p, fl_reasoning_state start);
/* Reads text[0..n); appends what it shows to reasoning or content (the
 * tags themselves go to neither). */
void fl_reasoning_parser_push(fl_reasoning_parser *p, const char *text, size_t n, fl_strbuf *reasoning,
                              fl_strbuf *content);
/* The reply ended: a partial tag held back goes where the text around it went. */
void fl_reasoning_parser_finish(fl_reasoning_parser *p, fl_strbuf *reasoning, fl_strbuf *content);

#endif
