/* harmony.h - gpt-oss's prompt format, harmony: a chat request rendered to
 * prompt tokens, and the generated tokens parsed into what a response
 * shows.
 *
 * gpt-oss is not prompted through a Jinja template: vLLM renders its
 * requests with openai's harmony library, and this file does what that
 * library does, in C, after the format's documentation (openai/harmony,
 * docs/format.md). It lives beside chat_template.c because it is the same
 * thing for another family: conversations to tokens, over the tokenizer.
 *
 * A message is <|start|>{header}<|message|>{content}<|end|>; the header is
 * the role, and for the assistant <|channel|>{channel} too. A request
 * renders as (no newline between messages)
 *
 *   <|start|>system<|message|>You are ChatGPT, a large language model trained by OpenAI.
 *   Knowledge cutoff: 2024-06
 *   Current date: 2025-06-28
 *
 *   Reasoning: medium
 *
 *   # Valid channels: analysis, commentary, final. Channel must be included for every message.<|end|>
 *   <|start|>developer<|message|># Instructions
 *
 *   {the leading system or developer message}<|end|>
 *   <|start|>user<|message|>{content}<|end|>
 *   <|start|>assistant<|channel|>analysis<|message|>{reasoning}<|end|>
 *   <|start|>assistant<|channel|>final<|message|>{content}<|end|>
 *   ...
 *   <|start|>assistant
 *
 * The model answers in messages on three channels: analysis (its chain of
 * thought), final (the answer) and commentary (a tool call, or a preamble
 * meant for the user). <|end|> closes a message and another may follow;
 * <|return|> ends the answer and <|call|> a tool call: the two stop
 * generation. */
#ifndef FL_HARMONY_H
#define FL_HARMONY_H

#include <jansson.h>

#include "base/error.h"
#include "base/strbuf.h"
#include "tokenizer/tokenizer.h"

typedef enum fl_harmony_effort {
    FL_HARMONY_LOW, FL_HARMONY_MEDIUM, FL_HARMONY_HIGH,
} fl_harmony_effort;

/* The format over one tokenizer: the ids of its special tokens. */
typedef struct fl_harmony {
    const fl_tokenizer *tok;
    int32_t start, end, message, channel, ret, call;
} fl_harmony;

/* Finds the format's special tokens in tok. Returns 0, or -1 with err
 * naming the first one the tokenizer lacks. */
int fl_harmony_init(fl_harmony *h, const fl_tokenizer *tok, fl_error *err);

/* Appends to out the prompt of a chat request for the assistant's next
 * turn: the system message (reasoning effort, date as "YYYY-MM-DD"), the
 * leading system or developer message as the developer's instructions, and
 * the conversation after it. messages is a JSON array of objects with a
 * role (system, developer, user, assistant), a string or null content and,
 * for an assistant, its reasoning ("reasoning_content" or "reasoning").
 * Message text is encoded as ordinary text: a user cannot spell the
 * format's special tokens. Returns 0, or -1 with err naming the message
 * and what it cannot render (tool calls and tool results are not supported
 * yet; any other member is refused rather than dropped); out is then
 * unspecified. */
int fl_harmony_render(const fl_harmony *h, fl_tok_scratch *s, json_t *messages,
                      fl_harmony_effort effort, const char *date, fl_ids *out, fl_error *err);

/* Where a generated message's text goes in the response. */
typedef enum fl_harmony_dest {
    FL_HARMONY_HIDDEN,     /* shown nowhere: a tool call, or a header that does not parse */
    FL_HARMONY_REASONING,  /* reasoning_content: the analysis channel */
    FL_HARMONY_CONTENT,    /* content: final, and commentary to nobody (a preamble) */
} fl_harmony_dest;

/* Parses one choice's generated tokens, token by token, into reasoning
 * and content, as vLLM's parse of harmony output splits them: each is its
 * messages' text joined by "\n", a message counting once it has text or is
 * closed. The text of a message is decoded as it comes, the bytes of an
 * unfinished character held back; a message that closes with some held
 * back ends them with U+FFFD, and one cut by the end of generation leaves
 * them out. The parse is lenient where harmony's own parser fails the
 * request: tokens between messages other than <|start|> are skipped, a
 * header that a stop token or a new <|start|> interrupts is dropped. */
typedef struct fl_harmony_parser {
    const fl_harmony *h;
    int state;                 /* reading a header, a message's content, or between messages */
    int role_given;            /* the header follows the prompt's <|start|>assistant */
    fl_ids header;             /* the tokens of the header being read */
    fl_harmony_dest dest;      /* the current message's */
    int counted;               /* the current message is one of its destination's texts */
    int count[3];              /* texts of each destination so far (the next is joined by "\n") */
    fl_detokenizer text;       /* the current message's content */
    fl_strbuf piece;           /* scratch: what one token decodes to */
} fl_harmony_parser;

void fl_harmony_parser_init(fl_harmony_parser *p, const fl_harmony *h);
/* Feeds one generated token; appends the text it adds to reasoning or to
 * content (at most one of them grows). */
void fl_harmony_parser_push(fl_harmony_parser *p, int32_t token, fl_strbuf *reasoning,
                            fl_strbuf *content);
void fl_harmony_parser_free(fl_harmony_parser *p);

#endif
