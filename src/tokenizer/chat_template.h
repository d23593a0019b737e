/* chat_template.h - rendering a conversation with a model's chat template,
 * as transformers' apply_chat_template(..., tokenize=False) does. */
#ifndef FL_CHAT_TEMPLATE_H
#define FL_CHAT_TEMPLATE_H

#include <jansson.h>

#include "base/error.h"
#include "base/strbuf.h"
#include "jinja/jinja.h"
#include "tokenizer/tokenizer.h"

typedef struct fl_chat_template {
    fl_jinja *jinja;
    json_t *special_tokens;  /* {"bos_token": "...", ...}: the strings templates see */
} fl_chat_template;

/* Parses source (origin names it in errors: "tokenizer_config.json" or the
 * --chat-template file). An unsupported construct is an error here, at
 * load, naming the line. */
int fl_chat_template_init(fl_chat_template *ct, const char *source, const char *origin,
                          const fl_tokenizer *tok, fl_error *err);

/* Renders messages (a JSON array of {role, content, ...}) with
 * add_generation_prompt, the special tokens, tools and documents None, and
 * the members of kwargs over them (a JSON object or NULL, e.g.
 * {"enable_thinking": false} or {"tools": [...]}; it may not set messages
 * or add_generation_prompt). */
int fl_chat_template_render(const fl_chat_template *ct, json_t *messages, json_t *kwargs,
                            int add_generation_prompt, fl_strbuf *out, fl_error *err);

/* 1 if the template reads the variable name (a kwarg it would see), else 0. */
int fl_chat_template_reads(const fl_chat_template *ct, const char *name);

void fl_chat_template_free(fl_chat_template *ct);

#endif
