/* openai.h - the OpenAI API's request fields and response shapes, with
 * vLLM's names and defaults, for /v1/completions and /v1/chat/completions. */
#ifndef FL_OPENAI_H
#define FL_OPENAI_H

#include <jansson.h>

#include "engine/sampling.h"
#include "server/reasoning_parser.h"
#include "server/server.h"
#include "server/stream.h"
#include "server/tool_parser.h"
#include "tokenizer/harmony.h"

/* A request error: HTTP status, OpenAI error type, the field, a message. */
typedef struct fl_api_error {
    int status;
    const char *type;
    char param[64];
    char message[1024];
} fl_api_error;

typedef struct fl_api_request {
    int chat;
    int harmony;                /* chat in the harmony format: replies split into reasoning
                                   and content */
    int include_reasoning;      /* harmony or a reasoning parser: the reasoning is shown
                                   (vLLM's default) */
    int reasoning;              /* the reply is split by the reasoning parser (--reasoning-parser) */
    fl_reasoning_state reasoning_start; /* where the reply starts (from the prompt's end) */
    int tool_calls;             /* the reply's tool calls are parsed (--tool-call-parser), as
                                   for tool_choice "auto" with tools */
    int parallel_tool_calls;    /* every call the reply makes is shown, not only the first */
    json_t *tools;              /* the tools as the chat template sees them, or NULL */
    int stream, include_usage;
    int num_prompts;
    fl_ids *prompts;            /* [num_prompts] */
    fl_sampling_params sp;
    int want_logprobs;          /* chat: logprobs=true; completions: logprobs set */
    long created;               /* the request's arrival, Unix seconds (every chunk's "created") */
    char *request_id;           /* the request_id field (the response's id is made of it), or NULL */
    int token_ids;              /* return_tokens_as_token_ids: logprobs tokens as "token_id:N" */
    int echo;                   /* echo: completions prepend each prompt's text (and with
                                   logprobs its tokens); chat the final message's content */
    char **echo_text;           /* [num_prompts] what echo prepends (chat: NULL where the
                                   final message is not the reply's role) */
    int prompt_logprobs;        /* the response shows prompt_logprobs (the field was set) */
} fl_api_request;

/* What a body is parsed for: /v1/completions, /v1/chat/completions, or
 * the messages of /tokenize (a chat's prompt; vLLM's TokenizeChatRequest
 * has tools and no tool_choice: its tools always reach the template). */
typedef enum fl_api_route { FL_API_COMPLETION, FL_API_CHAT, FL_API_TOKENIZE_CHAT } fl_api_route;

/* Validates body and fills req (prompts tokenized, chat rendered). Returns
 * 0, or -1 with err (400 naming the field and its allowed range, 404 for an
 * unknown model) and req empty: nothing to free. */
int fl_api_parse(fl_server *srv, json_t *body, fl_api_route route, fl_api_request *req, fl_api_error *err);
void fl_api_request_free(fl_api_request *req);

/* Start-up: srv->defaults from the generation config srv->cfg names
 * (server.h: NULL or "auto" model_dir's generation_config.json, "vllm"
 * none, else that directory's), logged as vLLM logs them when there are
 * any. Returns 0, or -1 with err (a malformed file). */
int fl_api_load_defaults(fl_server *srv, const char *model_dir, fl_error *err);

/* Structured output (server/structured.c): the request's constraint from
 * structured_outputs, response_format and the guided_* fields, compiled
 * (or shared from the server's cache) into sp->constraint. Returns 0 (no
 * constraint asked for: sp->constraint NULL), or -1 with err: a 400 naming
 * the field and what in it is wrong or unsupported. */
int fl_api_structured_output(fl_server *srv, json_t *body, fl_sampling_params *sp, fl_api_error *err);
/* Frees what structured output made on the server (its constraints' cache). */
void fl_api_structured_free(fl_server *srv);

/* {"error": {"message", "type", "param", "code"}} */
json_t *fl_api_error_json(const fl_api_error *err);
int fl_api_fail(fl_api_error *err, int status, const char *param, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* The id of a response: "cmpl-" or "chatcmpl-", then the request's
 * request_id, or 32 random hex digits (vLLM's random_uuid()), so ids do not
 * repeat across restarts. */
void fl_api_response_id(const fl_api_request *req, char *out, size_t n);
/* The longest response id (prefix, request_id and NUL). */
#define FL_API_ID_MAX 160

/* One choice's reply parsers: under the harmony format the parser that
 * splits its tokens into reasoning and content; else, as the request asks,
 * the reasoning parser on its text, then the tool parser on the content
 * (vLLM parses tool calls in the content only). */
typedef struct fl_api_reply {
    fl_harmony_parser harmony;
    fl_reasoning_parser reasoning;
    fl_tool_parser tools;
    fl_strbuf raw_content;     /* the content before the tool parser: the whole reply's content
                                  if its tool calls turn out malformed (vLLM's rule) */
    int calls_sent;            /* streamed: the calls whose first delta went out */
    size_t *args_sent;         /* [calls_sent] bytes of each one's arguments sent */
} fl_api_reply;

/* Per choice, what turns its events into what a response shows: the
 * parsers above, or, without any, the engine's text as the content.
 * Streamed and collected responses both go through it, so they show the
 * same text (but for malformed tool calls, where vLLM's whole reply falls
 * back to the text as it is). */
typedef struct fl_api_channels {
    int num_choices;
    fl_api_reply *replies;     /* [num_choices]; NULL when there are no parsers */
    fl_strbuf reasoning, content; /* one event's pieces */
    fl_strbuf between;         /* one event's content between the reasoning and the tool parser */
} fl_api_channels;

void fl_api_channels_init(fl_api_channels *ch, fl_server *srv, const fl_api_request *req);
void fl_api_channels_free(fl_api_channels *ch);

/* One SSE chunk for a stream event; NULL if it carries nothing to send. */
json_t *fl_api_stream_chunk(fl_server *srv, const fl_api_request *req, fl_api_channels *ch,
                            const char *id, const fl_stream_event *ev, int first_of_choice);
/* The final usage-only chunk (choices empty). */
json_t *fl_api_usage_chunk(fl_server *srv, const fl_api_request *req, const char *id,
                           int prompt_tokens, int completion_tokens, int cached_tokens);

/* Accumulates the events of a non-streamed response. */
typedef struct fl_api_collect {
    int num_choices, num_prompts;
    fl_strbuf *text;            /* [num_choices] the content */
    fl_strbuf *reasoning;       /* [num_choices] harmony or a reasoning parser: the reasoning */
    json_t **tool_calls;        /* [num_choices] with req->tool_calls: the calls, once finished */
    const char **finish;        /* [num_choices] */
    json_t **stop_reason;       /* [num_choices] */
    json_t **logprobs;          /* [num_choices] content list, or NULL */
    json_t **prompt_logprobs;   /* [num_prompts] vLLM's prompt_logprobs list, or NULL */
    int *prompt_tokens;         /* [num_prompts] */
    int completion_tokens, cached_tokens;
} fl_api_collect;

void fl_api_collect_init(fl_api_collect *c, const fl_api_request *req);
void fl_api_collect_add(fl_server *srv, fl_api_collect *c, const fl_api_request *req,
                        fl_api_channels *ch, const fl_stream_event *ev);
json_t *fl_api_collect_response(fl_server *srv, fl_api_collect *c, const fl_api_request *req,
                                const char *id);
void fl_api_collect_free(fl_api_collect *c);

#endif
