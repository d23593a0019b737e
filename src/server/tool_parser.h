/* tool_parser.h - vLLM's --tool-call-parser hermes: a reply's
 * <tool_call> blocks turned into OpenAI tool calls.
 *
 * Hermes models, Qwen2.5 and Qwen3 call a tool by writing
 *
 *   <tool_call>
 *   {"name": "get_weather", "arguments": {"city": "Paris"}}
 *   </tool_call>
 *
 * (several blocks for several calls). vLLM's Hermes2ProToolParser json.loads
 * each block and gives the call's name and json.dumps(arguments); the text
 * outside the blocks is the content. This parser reads a choice's text as it
 * is generated, a byte at a time, so the calls of a streamed reply come out
 * as they are written: a call is known once its name is read (its first
 * delta), and its arguments grow as they are read (server/json_rewrite.h
 * writes them as json.dumps would), the same text however it was cut.
 *
 * The content is the text outside the blocks with the whitespace next to a
 * block left out (vLLM's whole reply keeps only the text before the first
 * block; what follows a call is then content too, not dropped, and the
 * newline between two calls is not). A block whose JSON does not parse is
 * never lost: until its name is read its text is held back, and if it
 * breaks there, all of it (from <tool_call>) is content. If it breaks once
 * the call is known (the model was cut off in its arguments, or wrote junk
 * after them), the call stays as read and the rest is content; `malformed`
 * records it, for vLLM's rule for a whole reply: then no call at all, and
 * the whole text is the content. An unclosed block whose JSON is complete
 * is a call (vLLM's pattern takes <tool_call> to the end of the text).
 *
 * The shape of the reply parsers: see server/reasoning_parser.h. */
#ifndef FL_TOOL_PARSER_H
#define FL_TOOL_PARSER_H

#include <stddef.h>

#include "base/strbuf.h"
#include "server/json_rewrite.h"
#include "server/tag_scan.h"

typedef struct fl_tool_call {
    fl_strbuf name;        /* the function's name (the JSON string's text) */
    fl_strbuf arguments;   /* json.dumps of the arguments, as far as they are read */
} fl_tool_call;

typedef struct fl_tool_parser {
    int num_calls;         /* calls known so far; the last may still be growing */
    fl_tool_call *calls;   /* [num_calls + 1]: calls[num_calls] is the block being read */
    int malformed;         /* some tool-call text did not parse */
    /* private */
    int state, cap;
    fl_tag_scan open, close;   /* <tool_call> in the text; </tool_call> after a call's JSON */
    fl_strbuf held_ws;     /* whitespace that a following block would leave out */
    int after_call;        /* a call ended last: whitespace is left out */
    fl_strbuf raw;         /* the text of a block whose call is not known yet */
    fl_strbuf key, skipped; /* the member's key; the value of a member no one reads */
    fl_json_rewrite json;  /* the key or value being read */
    int member;            /* whose value is being read */
    int have_name, have_arguments, known; /* the block's members read; its call is known */
} fl_tool_parser;

void fl_tool_parser_init(fl_tool_parser *p);
/* Reads text[0..n): appends the content it shows to content; calls and
 * their arguments grow in place. */
void fl_tool_parser_push(fl_tool_parser *p, const char *text, size_t n, fl_strbuf *content);
/* The reply ended: what was held back goes to content, and a block still
 * open is malformed unless its JSON was complete. */
void fl_tool_parser_finish(fl_tool_parser *p, fl_strbuf *content);
void fl_tool_parser_free(fl_tool_parser *p);

#endif
