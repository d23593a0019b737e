/* chat_template.c - apply_chat_template on the Jinja subset (see
 * chat_template.h). */
#include "tokenizer/chat_template.h"

#include <string.h>

static void add_token(json_t *map, const char *name, const fl_tokenizer *tok, int32_t id)
{
    if (id < 0 || id >= tok->num_ids || !tok->id_bytes[id])
        return;
    json_object_set_new(map, name, json_stringn(tok->id_bytes[id], tok->id_bytes_len[id]));
}

int fl_chat_template_init(fl_chat_template *ct, const char *source, const char *origin,
                          const fl_tokenizer *tok, fl_error *err)
{
    memset(ct, 0, sizeof *ct);
    ct->jinja = fl_jinja_parse(source, strlen(source), err);
    if (!ct->jinja)
        return fl_fail_prefix(err, "%s: chat template cannot be used (give one with "
                              "--chat-template FILE)", origin);
    ct->special_tokens = json_object();
    add_token(ct->special_tokens, "bos_token", tok, tok->bos_id);
    add_token(ct->special_tokens, "eos_token", tok, tok->eos_id);
    add_token(ct->special_tokens, "pad_token", tok, tok->pad_id);
    return 0;
}

int fl_chat_template_render(const fl_chat_template *ct, json_t *messages, json_t *kwargs,
                            int add_generation_prompt, fl_strbuf *out, fl_error *err)
{
    /* this function's own arguments: as in HF's apply_chat_template, where
     * these kwargs are a TypeError (tools and documents are variables a
     * caller sets through kwargs) */
    static const char *const reserved[] = { "messages", "add_generation_prompt" };
    for (size_t i = 0; kwargs && i < sizeof reserved / sizeof reserved[0]; i++)
        if (json_object_get(kwargs, reserved[i]))
            return fl_fail(err, "chat_template_kwargs may not set '%s' (the request sets it)", reserved[i]);
    json_t *vars = json_deep_copy(ct->special_tokens);
    json_object_set(vars, "messages", messages);
    json_object_set_new(vars, "tools", json_null());
    json_object_set_new(vars, "documents", json_null());
    json_object_set_new(vars, "add_generation_prompt", json_boolean(add_generation_prompt));
    if (kwargs)
        json_object_update(vars, kwargs);
    int rc = fl_jinja_render(ct->jinja, vars, out, err);
    json_decref(vars);
    return rc == 0 ? 0 : fl_fail_prefix(err, "chat template");
}

int fl_chat_template_reads(const fl_chat_template *ct, const char *name)
{
    return fl_jinja_reads(ct->jinja, name);
}

void fl_chat_template_free(fl_chat_template *ct)
{
    fl_jinja_free(ct->jinja);
    json_decref(ct->special_tokens);
    memset(ct, 0, sizeof *ct);
}
