/* openai.c - request validation and response shapes (see openai.h). */
#include "server/openai.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "base/alloc.h"
#include "base/error.h"
#include "base/utf8.h"

int fl_api_fail(fl_api_error *err, int status, const char *param, const char *fmt, ...)
{
    err->status = status;
    err->type = status == 404 ? "NotFoundError" : status == 401 ? "AuthenticationError"
              : status == 413 ? "RequestTooLargeError" : status == 503 ? "ServiceUnavailableError"
              : "BadRequestError";
    snprintf(err->param, sizeof err->param, "%s", param ? param : "");
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->message, sizeof err->message, fmt, ap);
    va_end(ap);
    return -1;
}

json_t *fl_api_error_json(const fl_api_error *err)
{
    return json_pack("{s:{s:s,s:s,s:o,s:i}}", "error", "message", err->message, "type", err->type,
                     "param", err->param[0] ? json_string(err->param) : json_null(), "code",
                     err->status);
}

/* n bytes from the kernel's CSPRNG (getrandom, else /dev/urandom). */
static void random_bytes(unsigned char *b, size_t n)
{
    size_t got = 0;
    while (got < n) {
        const ssize_t k = getrandom(b + got, n - got, 0);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            break;
        got += (size_t)k;
    }
    if (got < n) {
        FILE *f = fopen("/dev/urandom", "rb");
        if (f) {
            got += fread(b + got, 1, n - got, f);
            fclose(f);
        }
    }
    FL_ASSERT(got == n);
}

void fl_api_response_id(const fl_api_request *req, char *out, size_t n)
{
    const char *prefix = req->chat ? "chatcmpl" : "cmpl";
    if (req->request_id) {
        snprintf(out, n, "%s-%s", prefix, req->request_id);
        return;
    }
    unsigned char r[16];
    random_bytes(r, sizeof r);
    char hex[33];
    for (int i = 0; i < 16; i++)
        snprintf(hex + 2 * i, 3, "%02x", r[i]);
    snprintf(out, n, "%s-%s", prefix, hex);
}

/* ---- the fields: every field of vLLM's CompletionRequest and
 * ChatCompletionRequest is known; each is honoured or refused by name
 * (tests/fixtures/vllm_request_fields.json lists them with the decision).
 * A field vLLM does not know is refused too, not ignored. ---- */

enum { F_CMPL = 1, F_CHAT = 2, F_BOTH = 3 };

static const struct known_field {
    const char *name;
    int endpoints;
} known_fields[] = {
    { "model", F_BOTH }, { "prompt", F_CMPL }, { "messages", F_CHAT },
    { "prompt_embeds", F_CMPL }, { "suffix", F_CMPL }, { "echo", F_BOTH },
    { "best_of", F_BOTH }, { "use_beam_search", F_BOTH }, { "length_penalty", F_BOTH },
    { "frequency_penalty", F_BOTH }, { "presence_penalty", F_BOTH }, { "repetition_penalty", F_BOTH },
    { "logit_bias", F_BOTH }, { "logprobs", F_BOTH }, { "top_logprobs", F_CHAT },
    { "prompt_logprobs", F_BOTH }, { "max_tokens", F_BOTH }, { "max_completion_tokens", F_CHAT },
    { "min_tokens", F_BOTH }, { "n", F_BOTH }, { "seed", F_BOTH }, { "stop", F_BOTH },
    { "stop_token_ids", F_BOTH }, { "include_stop_str_in_output", F_BOTH }, { "ignore_eos", F_BOTH },
    { "stream", F_BOTH }, { "stream_options", F_BOTH }, { "temperature", F_BOTH },
    { "top_p", F_BOTH }, { "top_k", F_BOTH }, { "min_p", F_BOTH }, { "user", F_BOTH },
    { "skip_special_tokens", F_BOTH }, { "spaces_between_special_tokens", F_BOTH },
    { "truncate_prompt_tokens", F_BOTH }, { "allowed_token_ids", F_BOTH }, { "bad_words", F_CHAT },
    { "add_special_tokens", F_BOTH }, { "response_format", F_BOTH }, { "guided_json", F_BOTH },
    { "guided_regex", F_BOTH }, { "guided_choice", F_BOTH }, { "guided_grammar", F_BOTH },
    { "guided_decoding_backend", F_BOTH }, { "guided_whitespace_pattern", F_BOTH },
    { "structural_tag", F_CHAT }, { "structured_outputs", F_BOTH }, { "priority", F_BOTH },
    { "request_id", F_BOTH }, { "logits_processors", F_BOTH }, { "return_tokens_as_token_ids", F_BOTH },
    { "cache_salt", F_BOTH }, { "kv_transfer_params", F_BOTH }, { "vllm_xargs", F_BOTH },
    { "tools", F_CHAT }, { "tool_choice", F_CHAT }, { "parallel_tool_calls", F_CHAT },
    { "reasoning_effort", F_CHAT }, { "include_reasoning", F_CHAT }, { "add_generation_prompt", F_CHAT },
    { "continue_final_message", F_CHAT }, { "documents", F_CHAT }, { "chat_template", F_CHAT },
    { "chat_template_kwargs", F_CHAT }, { "mm_processor_kwargs", F_CHAT },
};

static int check_known_fields(json_t *body, int chat, fl_api_error *err)
{
    const int mask = chat ? F_CHAT : F_CMPL;
    const char *key;
    json_t *v;
    json_object_foreach(body, key, v) {
        int known = 0;
        for (size_t i = 0; i < sizeof known_fields / sizeof known_fields[0] && !known; i++)
            known = strcmp(key, known_fields[i].name) == 0 && (known_fields[i].endpoints & mask);
        if (!known)
            return fl_api_fail(err, 400, key, "'%s' is not a field of %s (an unknown field is "
                               "refused, not ignored)", key, chat ? "/v1/chat/completions" : "/v1/completions");
    }
    return 0;
}

static int is_set(json_t *v)
{
    return v && !json_is_null(v);
}

/* The fields that ask for what flashlm does not do: a 400 naming each when
 * it is set to anything but its no-op value. */
static int check_refused(json_t *body, fl_api_error *err)
{
    static const struct {
        const char *name, *why;
    } refused[] = {
        { "structural_tag", "structural tags are not implemented yet" },
        { "prompt_embeds", "prompt embeddings are not supported" },
        { "suffix", "suffix (fill in the middle) is not supported" },
        { "logits_processors", "custom logits processors are not supported" },
        { "cache_salt", "salting the prefix cache is not implemented yet" },
        { "kv_transfer_params", "disaggregated serving (KV transfer) is not supported" },
        { "vllm_xargs", "no extension reads extra arguments" },
        { "mm_processor_kwargs", "multimodal input is not supported" },
        { "documents", "documents for the chat template are not implemented yet" },
        { "chat_template", "a chat template per request is not accepted (vLLM refuses it too "
          "without --trust-request-chat-template); start the server with --chat-template FILE" },
    };
    for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++)
        if (is_set(json_object_get(body, refused[i].name)))
            return fl_api_fail(err, 400, refused[i].name, "'%s': %s", refused[i].name, refused[i].why);
    int spaces = 1;
    json_t *beam = json_object_get(body, "use_beam_search");
    if (is_set(beam) && !json_is_boolean(beam))
        return fl_api_fail(err, 400, "use_beam_search", "'use_beam_search' must be true or false");
    if (is_set(beam) && json_is_true(beam))
        return fl_api_fail(err, 400, "use_beam_search", "'use_beam_search': beam search is not implemented");
    json_t *lp = json_object_get(body, "length_penalty");
    if (is_set(lp) && (!json_is_number(lp) || json_number_value(lp) != 1.0))
        return fl_api_fail(err, 400, "length_penalty", "'length_penalty' applies to beam search, which is "
                           "not implemented: only 1.0");
    json_t *prio = json_object_get(body, "priority");
    if (is_set(prio) && (!json_is_integer(prio) || json_integer_value(prio) != 0))
        return fl_api_fail(err, 400, "priority", "'priority': the scheduler has no priorities (first come, "
                           "first served): only 0");
    json_t *sp = json_object_get(body, "spaces_between_special_tokens");
    if (is_set(sp)) {
        if (!json_is_boolean(sp))
            return fl_api_fail(err, 400, "spaces_between_special_tokens", "'spaces_between_special_tokens' "
                               "must be true or false");
        spaces = json_is_true(sp);
    }
    if (!spaces)
        return fl_api_fail(err, 400, "spaces_between_special_tokens", "'spaces_between_special_tokens' = "
                           "false is not supported (the byte-level detokenizer adds no spaces)");
    json_t *bw = json_object_get(body, "bad_words");
    if (is_set(bw) && !(json_is_array(bw) && json_array_size(bw) == 0))
        return fl_api_fail(err, 400, "bad_words", "'bad_words' is not implemented yet");
    json_t *user = json_object_get(body, "user");
    if (is_set(user) && !json_is_string(user))
        return fl_api_fail(err, 400, "user", "'user' must be a string");
    return 0;
}

int fl_api_load_defaults(fl_server *srv, const char *model_dir, fl_error *err)
{
    const char *g = srv->cfg.generation_config;
    memset(&srv->defaults, 0, sizeof srv->defaults);
    if (g && strcmp(g, "vllm") == 0)
        return 0;
    if (fl_generation_defaults_load(!g || strcmp(g, "auto") == 0 ? model_dir : g, &srv->defaults, err) != 0)
        return -1;
    char desc[512];
    if (fl_generation_defaults_describe(&srv->defaults, desc, sizeof desc) > 0)
        fprintf(stderr, "INFO flashlm: Default sampling parameters have been overridden by the model's "
                "Hugging Face generation config recommended from the model creator: {%s}. If this is "
                "not intended, relaunch with `--generation-config vllm`.\n", desc);
    return 0;
}

/* ---- field readers: absent or null keeps the default ---- */

static int get_number(json_t *body, const char *key, double lo, double hi, float *out,
                      fl_api_error *err)
{
    json_t *v = json_object_get(body, key);
    if (!v || json_is_null(v))
        return 0;
    if (!json_is_number(v))
        return fl_api_fail(err, 400, key, "'%s' must be a number", key);
    double x = json_number_value(v);
    if (!(x >= lo && x <= hi))
        return fl_api_fail(err, 400, key, "'%s' = %g is out of range [%g, %g]", key, x, lo, hi);
    *out = (float)x;
    return 0;
}

static int get_int(json_t *body, const char *key, long long lo, long long hi, int *out,
                   fl_api_error *err)
{
    json_t *v = json_object_get(body, key);
    if (!v || json_is_null(v))
        return 0;
    if (!json_is_integer(v))
        return fl_api_fail(err, 400, key, "'%s' must be an integer", key);
    long long x = json_integer_value(v);
    if (x < lo || x > hi)
        return fl_api_fail(err, 400, key, "'%s' = %lld is out of range [%lld, %lld]", key, x, lo, hi);
    *out = (int)x;
    return 0;
}

static int get_bool(json_t *body, const char *key, int *out, fl_api_error *err)
{
    json_t *v = json_object_get(body, key);
    if (!v || json_is_null(v))
        return 0;
    if (!json_is_boolean(v))
        return fl_api_fail(err, 400, key, "'%s' must be true or false", key);
    *out = json_is_true(v);
    return 0;
}

/* ---- tools: vLLM's rules for tools and tool_choice (its request
 * validators, then its chat server's) ---- */

/* Whether every member of obj is one of names (NULL-terminated); else a
 * 400 naming the first other one, at where. */
static int only_members(json_t *obj, const char *where, const char *const *names, fl_api_error *err)
{
    const char *key;
    json_t *v;
    json_object_foreach(obj, key, v) {
        int known = 0;
        for (const char *const *n = names; *n && !known; n++)
            known = strcmp(key, *n) == 0;
        if (!known) {
            char param[64];
            snprintf(param, sizeof param, "%s.%s", where, key);
            return fl_api_fail(err, 400, param, "'%s' is not a field of %s (an unknown field is refused, "
                               "not ignored)", param, where);
        }
    }
    return 0;
}

/* tools[i] as vLLM hands it to the chat template: pydantic's model_dump of
 * its ChatCompletionToolsParam, so type, then the function's name,
 * description and parameters, null when absent, in that order (templates
 * write tools with tojson). NULL with err for an entry of another shape. */
static json_t *tool_entry(json_t *t, size_t i, fl_api_error *err)
{
    static const char *const tool_members[] = { "type", "function", NULL };
    static const char *const fn_members[] = { "name", "description", "parameters", "strict", NULL };
    char where[48], fwhere[64];
    snprintf(where, sizeof where, "tools[%zu]", i);
    snprintf(fwhere, sizeof fwhere, "tools[%zu].function", i);
    if (!json_is_object(t)) {
        fl_api_fail(err, 400, where, "'%s' must be an object {\"type\": \"function\", \"function\": {...}}", where);
        return NULL;
    }
    json_t *type = json_object_get(t, "type"), *fn = json_object_get(t, "function");
    if (only_members(t, where, tool_members, err) != 0)
        return NULL;
    if (is_set(type) && !(json_is_string(type) && strcmp(json_string_value(type), "function") == 0)) {
        fl_api_fail(err, 400, where, "'%s.type' must be \"function\"", where);
        return NULL;
    }
    if (!json_is_object(fn) || only_members(fn, fwhere, fn_members, err) != 0) {
        if (!json_is_object(fn))
            fl_api_fail(err, 400, fwhere, "'%s' must be an object with a 'name'", fwhere);
        return NULL;
    }
    json_t *name = json_object_get(fn, "name"), *desc = json_object_get(fn, "description"),
           *params = json_object_get(fn, "parameters"), *strict = json_object_get(fn, "strict");
    if (!json_is_string(name) || (is_set(desc) && !json_is_string(desc)) || (is_set(params) && !json_is_object(params)) ||
        (is_set(strict) && !json_is_boolean(strict))) {
        fl_api_fail(err, 400, fwhere, "'%s' needs a string 'name', and 'description' a string, 'parameters' "
                    "an object (a JSON schema) and 'strict' true or false when given", fwhere);
        return NULL;
    }
    if (json_is_true(strict)) {
        fl_api_fail(err, 400, fwhere, "'%s.strict' = true asks for arguments that follow the schema, which "
                    "needs constrained decoding (structured output), not built yet", fwhere);
        return NULL;
    }
    json_t *f = json_pack("{s:O,s:O,s:O}", "name", name, "description", is_set(desc) ? desc : json_null(),
                          "parameters", is_set(params) ? params : json_null());
    if (strict)
        json_object_set(f, "strict", strict);
    return json_pack("{s:s,s:o}", "type", "function", "function", f);
}

/* tool_choice as a named function: vLLM's checks and words. Returns 0, or
 * -1 with err. */
static int check_named_choice(json_t *choice, json_t *tools, fl_api_error *err)
{
    static const char usage[] = "Correct usage: `{\"type\": \"function\", \"function\": {\"name\": \"my_function\"}}`";
    json_t *fn = json_object_get(choice, "function"), *type = json_object_get(choice, "type");
    if (!json_is_object(fn) || json_object_size(fn) == 0)
        return fl_api_fail(err, 400, "tool_choice", "Expected field `function` in `tool_choice`. %s", usage);
    json_t *name = json_object_get(fn, "name");
    if (!json_is_string(name) || json_string_length(name) == 0)
        return fl_api_fail(err, 400, "tool_choice", "Expected field `name` in `function` in `tool_choice`. %s", usage);
    if (is_set(type) && !(json_is_string(type) && strcmp(json_string_value(type), "function") == 0))
        return fl_api_fail(err, 400, "tool_choice", "'tool_choice'.type must be \"function\". %s", usage);
    size_t i;
    json_t *t;
    json_array_foreach(tools, i, t) {
        if (json_equal(json_object_get(json_object_get(t, "function"), "name"), name))
            return 0;
    }
    return fl_api_fail(err, 400, "tool_choice", "The tool specified in `tool_choice` does not match any of the "
                       "specified `tools`");
}

/* tools, tool_choice and parallel_tool_calls of a chat request: vLLM's
 * rules (tool_choice defaults to "auto" with tools, else "none"; "auto"
 * needs the server's --enable-auto-tool-choice and --tool-call-parser;
 * "required" with no tools is "none"). Fills req->tools (what the
 * template sees, NULL for none), req->tool_calls and
 * req->parallel_tool_calls. For /tokenize (tokenize) only the tools count:
 * they go to the template whatever tool_choice says. */
static int parse_tools(fl_server *srv, json_t *body, int tokenize, fl_api_request *req, fl_api_error *err)
{
    req->parallel_tool_calls = 1; /* the API's default: vLLM's since it honours the field */
    if (get_bool(body, "parallel_tool_calls", &req->parallel_tool_calls, err))
        return -1;
    json_t *tools = json_object_get(body, "tools"), *choice = json_object_get(body, "tool_choice");
    if (is_set(tools) && !json_is_array(tools))
        return fl_api_fail(err, 400, "tools", "'tools' must be a list of tools");
    if (is_set(tools)) {
        req->tools = json_array();
        size_t i;
        json_t *t;
        json_array_foreach(tools, i, t) {
            json_t *e = tool_entry(t, i, err);
            if (!e)
                return -1;
            json_array_append_new(req->tools, e);
        }
    }
    const int any = req->tools && json_array_size(req->tools) > 0;
    if (tokenize)
        return 0;
    const char *c = any ? "auto" : "none";
    if (is_set(choice)) {
        c = json_is_string(choice) ? json_string_value(choice) : json_is_object(choice) ? "named" : NULL;
        if (!c || !(strcmp(c, "none") == 0 || strcmp(c, "auto") == 0 || strcmp(c, "required") == 0 ||
                    json_is_object(choice)))
            return fl_api_fail(err, 400, "tool_choice", "Invalid value for `tool_choice`: %s! Only named tools, "
                               "\"none\", \"auto\" or \"required\" are supported.", c ? c : "(not a string)");
        if (strcmp(c, "none") != 0 && !req->tools)
            return fl_api_fail(err, 400, "tool_choice", "When using `tool_choice`, `tools` must be set.");
        if (strcmp(c, "required") == 0 && !any)
            c = "none"; /* OpenAI's behaviour, and vLLM's */
        if (json_is_object(choice) && check_named_choice(choice, req->tools, err) != 0)
            return -1;
    }
    if (strcmp(c, "required") == 0 || json_is_object(choice))
        return fl_api_fail(err, 400, "tool_choice", "'tool_choice' = %s makes the reply a call of %s, which "
                           "vLLM writes with constrained decoding (structured output): not built yet; "
                           "\"auto\" and \"none\" are", json_is_object(choice) ? "a named function" : "\"required\"",
                           json_is_object(choice) ? "that function" : "some tool");
    if (strcmp(c, "auto") == 0 && !srv->harmony && !(srv->cfg.enable_auto_tool_choice && srv->cfg.tool_call_parser))
        return fl_api_fail(err, 400, is_set(choice) ? "tool_choice" : "tools", "\"auto\" tool choice requires "
                           "--enable-auto-tool-choice and --tool-call-parser to be set");
    req->tool_calls = strcmp(c, "auto") == 0 && any && !srv->harmony;
    if (strcmp(c, "none") == 0 && srv->cfg.exclude_tools_when_tool_choice_none) {
        json_decref(req->tools);
        req->tools = NULL;
    }
    return 0;
}

static int parse_stop(json_t *body, fl_sampling_params *sp, fl_api_error *err)
{
    json_t *v = json_object_get(body, "stop");
    if (!v || json_is_null(v))
        return 0;
    json_t *list = json_is_string(v) ? json_pack("[O]", v) : json_incref(v);
    int rc = 0;
    if (!json_is_array(list)) {
        rc = fl_api_fail(err, 400, "stop", "'stop' must be a string or a list of strings");
    } else {
        size_t i;
        json_t *s;
        sp->stop = fl_calloc(json_array_size(list) + 1, sizeof(char *));
        json_array_foreach(list, i, s) {
            if (!json_is_string(s) || json_string_length(s) == 0 ||
                json_string_length(s) != strlen(json_string_value(s))) {
                rc = fl_api_fail(err, 400, "stop", "'stop' must hold non-empty strings");
                break;
            }
            sp->stop[sp->num_stop++] = fl_strdup(json_string_value(s));
        }
    }
    json_decref(list);
    return rc;
}

static int parse_ids_field(json_t *v, const char *key, int vocab, int32_t **out, int *n,
                           fl_api_error *err)
{
    if (!json_is_array(v))
        return fl_api_fail(err, 400, key, "'%s' must be a list of token ids", key);
    *out = fl_malloc((json_array_size(v) + 1) * sizeof(int32_t));
    *n = 0;
    size_t i;
    json_t *x;
    json_array_foreach(v, i, x) {
        if (!json_is_integer(x) || json_integer_value(x) < 0 || json_integer_value(x) >= vocab)
            return fl_api_fail(err, 400, key, "'%s'[%zu] is not a token id in [0, %d)", key, i, vocab);
        (*out)[(*n)++] = (int32_t)json_integer_value(x);
    }
    return 0;
}

static int parse_logit_bias(json_t *body, int vocab, fl_sampling_params *sp, fl_api_error *err)
{
    json_t *v = json_object_get(body, "logit_bias");
    if (!v || json_is_null(v))
        return 0;
    if (!json_is_object(v))
        return fl_api_fail(err, 400, "logit_bias", "'logit_bias' must map token ids to numbers");
    sp->logit_bias = fl_calloc(json_object_size(v) + 1, sizeof(fl_logit_bias));
    const char *key;
    json_t *b;
    json_object_foreach(v, key, b) {
        char *end;
        long id = strtol(key, &end, 10);
        if (*key == '\0' || *end != '\0' || id < 0 || id >= vocab || !json_is_number(b) ||
            fabs(json_number_value(b)) > 100)
            return fl_api_fail(err, 400, "logit_bias", "'logit_bias' entry '%s' needs a token id in "
                               "[0, %d) and a bias in [-100, 100]", key, vocab);
        sp->logit_bias[sp->num_logit_bias++] = (fl_logit_bias){ (int32_t)id, (float)json_number_value(b) };
    }
    return 0;
}

/* allowed_token_ids: every other token's logit to -inf, as a bias (the
 * logprobs stay those of the raw logits, as vLLM's). */
static int parse_allowed(json_t *body, int vocab, fl_sampling_params *sp, fl_api_error *err)
{
    json_t *v = json_object_get(body, "allowed_token_ids");
    if (!is_set(v))
        return 0;
    int32_t *ids = NULL;
    int n = 0;
    if (parse_ids_field(v, "allowed_token_ids", vocab, &ids, &n, err) != 0) {
        free(ids);
        return -1;
    }
    if (n == 0) {
        free(ids);
        return fl_api_fail(err, 400, "allowed_token_ids", "'allowed_token_ids' must not be empty");
    }
    uint8_t *allowed = fl_calloc((size_t)vocab, 1);
    for (int i = 0; i < n; i++)
        allowed[ids[i]] = 1;
    free(ids);
    sp->logit_bias = fl_realloc(sp->logit_bias, ((size_t)sp->num_logit_bias + (size_t)vocab + 1) *
                                                    sizeof(fl_logit_bias));
    for (int t = 0; t < vocab; t++)
        if (!allowed[t])
            sp->logit_bias[sp->num_logit_bias++] = (fl_logit_bias){ t, -INFINITY };
    free(allowed);
    return 0;
}

/* The model's generation_config.json defaults (fl_server.defaults) for the
 * fields the request leaves unset, as vLLM's default_sampling_params. */
static void apply_defaults(const fl_server *srv, json_t *body, fl_sampling_params *sp)
{
    const fl_generation_defaults *d = &srv->defaults;
    if (d->has_temperature && !is_set(json_object_get(body, "temperature")))
        sp->draw.temperature = d->temperature;
    if (d->has_top_p && !is_set(json_object_get(body, "top_p")))
        sp->draw.top_p = d->top_p;
    if (d->has_top_k && !is_set(json_object_get(body, "top_k")))
        sp->draw.top_k = d->top_k;
    if (d->has_min_p && !is_set(json_object_get(body, "min_p")))
        sp->draw.min_p = d->min_p;
    if (d->has_repetition_penalty && !is_set(json_object_get(body, "repetition_penalty")))
        sp->repetition_penalty = d->repetition_penalty;
    /* max_new_tokens caps max_tokens, set or not (vLLM's get_max_tokens
     * takes the least of the limits) */
    if (d->max_tokens > 0 && (sp->max_tokens == 0 || sp->max_tokens > d->max_tokens))
        sp->max_tokens = d->max_tokens;
}

static int parse_sampling(fl_server *srv, json_t *body, fl_api_request *req, fl_api_error *err)
{
    fl_sampling_params *sp = &req->sp;
    fl_sampling_params_default(sp);
    /* chat completions default to the rest of the context, like vLLM */
    sp->max_tokens = req->chat ? 0 : 16;
    int logprobs_flag = 0, top_logprobs = 0, skip = 1;
    if (get_int(body, "max_tokens", 1, srv->max_model_len, &sp->max_tokens, err) ||
        /* chat: max_completion_tokens wins over max_tokens, as in vLLM */
        (req->chat && get_int(body, "max_completion_tokens", 1, srv->max_model_len, &sp->max_tokens, err)) ||
        get_int(body, "min_tokens", 0, srv->max_model_len, &sp->min_tokens, err) ||
        get_int(body, "n", 1, 128, &sp->n, err) ||
        get_number(body, "temperature", 0, 100, &sp->draw.temperature, err) ||
        get_number(body, "top_p", 1e-9, 1, &sp->draw.top_p, err) ||
        get_int(body, "top_k", -1, 1 << 24, &sp->draw.top_k, err) ||
        get_number(body, "min_p", 0, 1, &sp->draw.min_p, err) ||
        get_number(body, "presence_penalty", -2, 2, &sp->presence_penalty, err) ||
        get_number(body, "frequency_penalty", -2, 2, &sp->frequency_penalty, err) ||
        get_number(body, "repetition_penalty", 1e-6, 100, &sp->repetition_penalty, err) ||
        get_bool(body, "ignore_eos", &sp->ignore_eos, err) ||
        get_bool(body, "skip_special_tokens", &skip, err) ||
        get_bool(body, "include_stop_str_in_output", &sp->include_stop_str_in_output, err) ||
        parse_stop(body, sp, err) || parse_logit_bias(body, srv->vocab_size, sp, err) ||
        parse_allowed(body, srv->vocab_size, sp, err))
        return -1;
    sp->skip_special_tokens = skip;
    json_t *best_of = json_object_get(body, "best_of");
    if (is_set(best_of) && (!json_is_integer(best_of) || json_integer_value(best_of) != sp->n))
        return fl_api_fail(err, 400, "best_of", "'best_of': only best_of equal to n (%d) is supported: "
                           "extra sequences are never ranked", sp->n);
    json_t *seed = json_object_get(body, "seed");
    if (seed && !json_is_null(seed)) {
        if (!json_is_integer(seed))
            return fl_api_fail(err, 400, "seed", "'seed' must be an integer");
        sp->has_seed = 1;
        sp->seed = (uint64_t)json_integer_value(seed);
    }
    json_t *stop_ids = json_object_get(body, "stop_token_ids");
    if (stop_ids && !json_is_null(stop_ids) &&
        parse_ids_field(stop_ids, "stop_token_ids", srv->vocab_size, &sp->stop_token_ids,
                        &sp->num_stop_token_ids, err) != 0)
        return -1;
    if (req->chat) {
        if (get_bool(body, "logprobs", &logprobs_flag, err) ||
            get_int(body, "top_logprobs", 0, srv->cfg.max_logprobs, &top_logprobs, err))
            return -1;
        if (top_logprobs > 0 && !logprobs_flag)
            return fl_api_fail(err, 400, "top_logprobs", "when using `top_logprobs`, `logprobs` must be "
                               "set to true.");
        sp->logprobs = logprobs_flag ? top_logprobs : -1;
    } else {
        int lp = -1;
        if (get_int(body, "logprobs", 0, srv->cfg.max_logprobs, &lp, err))
            return -1;
        sp->logprobs = lp;
    }
    req->want_logprobs = sp->logprobs >= 0;
    int plp = -1;
    if (get_bool(body, "echo", &req->echo, err) || get_int(body, "prompt_logprobs", 0, 20, &plp, err) ||
        get_bool(body, "return_tokens_as_token_ids", &req->token_ids, err))
        return -1;
    req->prompt_logprobs = plp >= 0;
    /* completions: echo with logprobs shows the prompt's tokens' logprobs
     * (vLLM sets prompt_logprobs to logprobs) */
    if (!req->chat && req->echo && sp->logprobs >= 0 && plp < 0)
        plp = sp->logprobs;
    sp->has_prompt_logprobs = plp >= 0;
    sp->prompt_logprobs = plp >= 0 ? plp : 0;
    json_t *rid = json_object_get(body, "request_id");
    if (is_set(rid)) {
        const char *r = json_is_string(rid) ? json_string_value(rid) : NULL;
        int ok = r && r[0] && strlen(r) <= 128;
        for (const char *c = r; ok && *c; c++)
            ok = *c > 0x20 && *c < 0x7f;
        if (!ok)
            return fl_api_fail(err, 400, "request_id", "'request_id' must be 1 to 128 printable ASCII "
                               "characters without spaces");
        req->request_id = fl_strdup(r);
    }
    apply_defaults(srv, body, sp);
    return fl_api_structured_output(srv, body, sp, err);
}

static int add_prompt_ids(fl_api_request *req, const int32_t *ids, size_t n)
{
    req->prompts = fl_realloc(req->prompts, (size_t)(req->num_prompts + 1) * sizeof(fl_ids));
    fl_ids *p = &req->prompts[req->num_prompts++];
    memset(p, 0, sizeof *p);
    for (size_t i = 0; i < n; i++)
        fl_ids_push(p, ids[i]);
    return 0;
}

static void encode(fl_server *srv, const char *text, size_t len, int add_special, fl_ids *out)
{
    fl_tok_scratch *sc = fl_server_scratch_take(srv);
    fl_tokenizer_encode(srv->tok, sc, text, len, add_special, out);
    fl_server_scratch_give(srv, sc);
}

/* prompt: a string, a list of ids, or a list of either. */
static int parse_prompt(fl_server *srv, json_t *body, fl_api_request *req, fl_api_error *err)
{
    json_t *p = json_object_get(body, "prompt");
    if (!p || json_is_null(p))
        return fl_api_fail(err, 400, "prompt", "'prompt' is required");
    int add_special = 1;
    if (get_bool(body, "add_special_tokens", &add_special, err))
        return -1;
    json_t *items = (json_is_array(p) && json_array_size(p) > 0 &&
                     (json_is_string(json_array_get(p, 0)) || json_is_array(json_array_get(p, 0))))
                        ? json_incref(p) : json_pack("[O]", p);
    size_t i;
    json_t *it;
    int rc = 0;
    json_array_foreach(items, i, it) {
        if (json_is_string(it)) {
            if (json_string_length(it) == 0) {
                rc = fl_api_fail(err, 400, "prompt", "'prompt' must not be empty");
                break;
            }
            req->prompts = fl_realloc(req->prompts, (size_t)(req->num_prompts + 1) * sizeof(fl_ids));
            memset(&req->prompts[req->num_prompts], 0, sizeof(fl_ids));
            encode(srv, json_string_value(it), json_string_length(it), add_special,
                   &req->prompts[req->num_prompts++]);
            if (req->echo) { /* echo shows the prompt as given */
                req->echo_text = fl_realloc(req->echo_text, (size_t)req->num_prompts * sizeof(char *));
                memset(req->echo_text + req->num_prompts - 1, 0, sizeof(char *));
                req->echo_text[req->num_prompts - 1] = fl_strdup(json_string_value(it));
            }
        } else if (json_is_array(it)) {
            int32_t *ids = NULL;
            int n = 0;
            rc = parse_ids_field(it, "prompt", srv->vocab_size, &ids, &n, err);
            if (rc == 0 && n == 0)
                rc = fl_api_fail(err, 400, "prompt", "'prompt' must not be empty");
            if (rc == 0) {
                add_prompt_ids(req, ids, (size_t)n);
                if (req->echo) {
                    req->echo_text = fl_realloc(req->echo_text, (size_t)req->num_prompts * sizeof(char *));
                    req->echo_text[req->num_prompts - 1] = NULL;
                }
            }
            free(ids);
            if (rc)
                break;
        } else {
            rc = fl_api_fail(err, 400, "prompt", "'prompt' must be a string, a list of token ids, "
                             "or a list of either");
            break;
        }
    }
    json_decref(items);
    if (rc == 0 && req->num_prompts == 0)
        rc = fl_api_fail(err, 400, "prompt", "'prompt' must not be empty");
    return rc;
}

/* reasoning_effort: one of the values vLLM takes, or NULL when absent. */
static int get_effort(json_t *body, const char **out, fl_api_error *err)
{
    static const char *const values[] = { "none", "minimal", "low", "medium", "high", "xhigh", "max" };
    json_t *v = json_object_get(body, "reasoning_effort");
    *out = NULL;
    if (!v || json_is_null(v))
        return 0;
    for (size_t i = 0; json_is_string(v) && i < sizeof values / sizeof values[0]; i++)
        if (strcmp(json_string_value(v), values[i]) == 0) {
            *out = values[i];
            return 0;
        }
    return fl_api_fail(err, 400, "reasoning_effort", "'reasoning_effort' must be one of none, minimal, "
                       "low, medium, high, xhigh, max");
}

/* Adds id to the stop token ids unless it is there. */
static void add_stop_id(fl_sampling_params *sp, int32_t id)
{
    for (int i = 0; i < sp->num_stop_token_ids; i++)
        if (sp->stop_token_ids[i] == id)
            return;
    sp->stop_token_ids = fl_realloc(sp->stop_token_ids, (size_t)(sp->num_stop_token_ids + 1) *
                                    sizeof(int32_t));
    sp->stop_token_ids[sp->num_stop_token_ids++] = id;
}

/* A chat request of a model in the harmony format (gpt-oss), as vLLM serves
 * one: no chat template; the prompt rendered from the messages with the
 * request's reasoning effort and today's date (vLLM's non-determinism too:
 * the prompt changes at midnight); the format's <|return|> and <|call|> end
 * generation. The reply is parsed from tokens, so what acts on the engine's
 * text cannot be honoured and is refused, as is tool calling for now. */
static int harmony_messages(fl_server *srv, json_t *body, json_t *msgs, const char *effort_name,
                            fl_api_request *req, fl_api_error *err)
{
    fl_harmony_effort effort = FL_HARMONY_MEDIUM; /* harmony's default; vLLM leaves it unset */
    if (effort_name && strcmp(effort_name, "low") == 0)
        effort = FL_HARMONY_LOW;
    else if (effort_name && strcmp(effort_name, "high") == 0)
        effort = FL_HARMONY_HIGH;
    else if (effort_name && strcmp(effort_name, "medium") != 0)
        return fl_api_fail(err, 400, "reasoning_effort", "'reasoning_effort' = '%s' is not supported "
                           "by the harmony format (gpt-oss): low, medium or high", effort_name);
    json_t *tools = json_object_get(body, "tools");
    if (tools && !json_is_null(tools) && !(json_is_array(tools) && json_array_size(tools) == 0))
        return fl_api_fail(err, 400, "tools", "'tools': tool calling is not supported with the "
                           "harmony format yet");
    json_t *kwargs = json_object_get(body, "chat_template_kwargs");
    if (kwargs && !json_is_null(kwargs) && !(json_is_object(kwargs) && json_object_size(kwargs) == 0))
        return fl_api_fail(err, 400, "chat_template_kwargs", "'chat_template_kwargs': this model "
                           "uses the harmony format, which has no chat template");
    int add_gen = 1;
    if (get_bool(body, "add_generation_prompt", &add_gen, err) ||
        get_bool(body, "include_reasoning", &req->include_reasoning, err))
        return -1;
    if (!add_gen)
        return fl_api_fail(err, 400, "add_generation_prompt", "'add_generation_prompt' = false is "
                           "not supported with the harmony format: the prompt always ends with "
                           "the assistant's turn");
    if (req->sp.num_stop > 0)
        return fl_api_fail(err, 400, "stop", "'stop' is not supported with the harmony format: the "
                           "reply is parsed from its tokens, and ends at <|return|> or <|call|>");
    if (!req->sp.skip_special_tokens)
        return fl_api_fail(err, 400, "skip_special_tokens", "'skip_special_tokens' = false is not "
                           "supported with the harmony format: the reply's special tokens are its "
                           "structure, parsed into reasoning_content and content");
    char date[16];
    const time_t now = time(NULL);
    struct tm tm;
    localtime_r(&now, &tm);
    strftime(date, sizeof date, "%Y-%m-%d", &tm);
    req->prompts = fl_calloc(1, sizeof(fl_ids));
    req->num_prompts = 1;
    fl_tok_scratch *sc = fl_server_scratch_take(srv);
    fl_error herr;
    const int rc = fl_harmony_render(srv->harmony, sc, msgs, effort, date, &req->prompts[0], &herr);
    fl_server_scratch_give(srv, sc);
    if (rc != 0)
        return fl_api_fail(err, 400, "messages", "%s", herr.msg);
    add_stop_id(&req->sp, srv->harmony->ret);
    add_stop_id(&req->sp, srv->harmony->call);
    req->harmony = 1;
    return 0;
}

/* The template's variables from chat_template_kwargs and reasoning_effort,
 * as vLLM passes them: reasoning_effort over the kwargs' one, and
 * enable_thinking (false for "none") unless the kwargs set it. vLLM drops
 * what the template does not read; here an effort that reaches no variable
 * the template reads is refused, not dropped. Returns a new object, or
 * NULL with err. */
static json_t *template_vars(fl_server *srv, json_t *kwargs, const char *effort, fl_api_error *err)
{
    /* as in HF's apply_chat_template, where these kwargs are a TypeError */
    static const char *const own[] = { "tools", "documents" };
    for (size_t i = 0; json_is_object(kwargs) && i < sizeof own / sizeof own[0]; i++)
        if (json_object_get(kwargs, own[i])) {
            fl_api_fail(err, 400, "chat_template_kwargs", "chat_template_kwargs may not set '%s' (the request "
                        "sets it)", own[i]);
            return NULL;
        }
    json_t *vars = json_is_object(kwargs) ? json_deep_copy(kwargs) : json_object();
    if (!effort)
        return vars;
    json_object_set_new(vars, "reasoning_effort", json_string(effort));
    const int thinking = !json_object_get(vars, "enable_thinking");
    if (thinking)
        json_object_set_new(vars, "enable_thinking", json_boolean(strcmp(effort, "none") != 0));
    if (!fl_chat_template_reads(srv->chat, "reasoning_effort") &&
        !(thinking && fl_chat_template_reads(srv->chat, "enable_thinking"))) {
        json_decref(vars);
        fl_api_fail(err, 400, "reasoning_effort", "'reasoning_effort' cannot be honoured: this "
                    "model's chat template reads %s", thinking ? "neither reasoning_effort nor "
                    "enable_thinking" : "no reasoning_effort (and chat_template_kwargs sets "
                    "enable_thinking)");
        return NULL;
    }
    return vars;
}

/* An assistant message's tool_calls as vLLM hands them to the template:
 * each call's arguments, a JSON string in the OpenAI API, parsed to the
 * value it holds (transformers' templates take a dict; vLLM json.loads it,
 * and an empty or absent one is {}). A null tool_calls is left out. The
 * message is a copy of the request's: changed in place. */
static int tool_call_history(json_t *m, size_t i, fl_api_error *err)
{
    json_t *calls = json_object_get(m, "tool_calls");
    if (!is_set(calls)) {
        json_object_del(m, "tool_calls"); /* a null one says nothing */
        return 0;
    }
    char where[80];
    snprintf(where, sizeof where, "messages[%zu].tool_calls", i);
    if (!json_is_array(calls))
        return fl_api_fail(err, 400, where, "'%s' must be a list of tool calls", where);
    calls = json_deep_copy(calls);
    json_object_set_new(m, "tool_calls", calls);
    size_t k;
    json_t *call;
    json_array_foreach(calls, k, call) {
        snprintf(where, sizeof where, "messages[%zu].tool_calls[%zu]", i, k);
        json_t *fn = json_object_get(call, "function");
        if (!json_is_object(call) || !json_is_object(fn) || !json_is_string(json_object_get(fn, "name")))
            return fl_api_fail(err, 400, where, "'%s' must be {\"id\": ..., \"type\": \"function\", "
                               "\"function\": {\"name\": ..., \"arguments\": \"{...}\"}}", where);
        json_t *args = json_object_get(fn, "arguments");
        if (json_is_object(args) || json_is_array(args))
            continue;
        if (is_set(args) && !json_is_string(args))
            return fl_api_fail(err, 400, where, "'%s.function.arguments' must be a JSON string", where);
        json_t *value = json_string_length(args) ? json_loadb(json_string_value(args), json_string_length(args),
                                                               JSON_DECODE_ANY, NULL) : json_object();
        if (!value)
            return fl_api_fail(err, 400, where, "'%s.function.arguments' is not JSON", where);
        json_object_set_new(fn, "arguments", value);
    }
    return 0;
}

/* A copy of messages as vLLM gives them to a template that reads strings:
 * content given as a list of parts is the text parts joined by newlines
 * (other part types are refused by name), and for a chat template
 * (template: not the harmony format, which vLLM renders from the request
 * itself) a null or absent content is "" and an assistant's tool calls
 * carry their arguments as values (tool_call_history). Returns the copy,
 * or NULL with err. */
static json_t *normalize_messages(json_t *msgs, int template, fl_api_error *err)
{
    json_t *out = json_array();
    size_t i;
    json_t *m;
    json_array_foreach(msgs, i, m) {
        json_t *role = json_object_get(m, "role"), *content = json_object_get(m, "content");
        if (!json_is_object(m) || !json_is_string(role)) {
            json_decref(out);
            fl_api_fail(err, 400, "messages", "'messages'[%zu] needs a string 'role'", i);
            return NULL;
        }
        json_t *copy = json_copy(m);
        json_array_append_new(out, copy);
        if (template && strcmp(json_string_value(role), "assistant") == 0 && tool_call_history(copy, i, err) != 0) {
            json_decref(out);
            return NULL;
        }
        if (template && !is_set(content))
            json_object_set_new(copy, "content", json_string(""));
        if (!is_set(content) || json_is_string(content))
            continue;
        if (!json_is_array(content)) {
            json_decref(out);
            fl_api_fail(err, 400, "messages", "'messages'[%zu].content must be a string or a list of "
                        "content parts", i);
            return NULL;
        }
        fl_strbuf text = { 0 };
        size_t k;
        json_t *part;
        json_array_foreach(content, k, part) {
            json_t *type = json_object_get(part, "type"), *t = json_object_get(part, "text");
            if (!json_is_object(part) || !json_is_string(type) || strcmp(json_string_value(type), "text") != 0 ||
                !json_is_string(t)) {
                char name[64];
                snprintf(name, sizeof name, "messages[%zu].content[%zu]", i, k);
                fl_api_fail(err, 400, name, "'%s': content parts of type '%s' are not supported (only "
                            "{\"type\": \"text\", \"text\": ...})", name,
                            json_is_string(type) ? json_string_value(type) : "?");
                fl_strbuf_free(&text);
                json_decref(out);
                return NULL;
            }
            if (k > 0)
                fl_strbuf_append(&text, "\n", 1);
            fl_strbuf_append(&text, json_string_value(t), json_string_length(t));
        }
        json_object_set_new(copy, "content", json_stringn(text.data ? text.data : "", text.len));
        fl_strbuf_free(&text);
    }
    return out;
}

/* continue_final_message: the prompt ends where the final message's
 * content does (transformers' apply_chat_template: the text up to the
 * last occurrence of the stripped content), so the model continues it. */
static int cut_after_final(json_t *msgs, fl_strbuf *prompt, fl_api_error *err)
{
    json_t *last = json_array_get(msgs, json_array_size(msgs) - 1);
    json_t *content = json_object_get(last, "content");
    const char *c = json_is_string(content) ? json_string_value(content) : "";
    size_t len = strlen(c);
    while (len && strchr(" \t\n\r\v\f", c[len - 1]))
        len--;
    while (len && strchr(" \t\n\r\v\f", *c))
        c++, len--;
    const char *hit = NULL;
    for (const char *at = prompt->data; len && at && (at = memmem(at, prompt->len - (size_t)(at - prompt->data), c, len));
         at++)
        hit = at;
    if (!hit)
        return fl_api_fail(err, 400, "continue_final_message", "'continue_final_message': the final "
                           "message's content is not in the rendered prompt (an empty final message "
                           "cannot be continued)");
    prompt->len = (size_t)(hit - prompt->data) + len;
    prompt->data[prompt->len] = '\0';
    return 0;
}

/* chat's echo: the final message's content comes first in the reply when
 * it is the reply's role (vLLM's rule). */
static void chat_echo(json_t *msgs, fl_api_request *req)
{
    json_t *last = json_array_get(msgs, json_array_size(msgs) - 1);
    json_t *role = json_object_get(last, "role"), *content = json_object_get(last, "content");
    req->echo_text = fl_calloc(1, sizeof(char *));
    if (json_is_string(role) && strcmp(json_string_value(role), "assistant") == 0 && json_is_string(content))
        req->echo_text[0] = fl_strdup(json_string_value(content));
}

static int render_messages(fl_server *srv, json_t *body, json_t *msgs, fl_api_request *req, fl_api_error *err)
{
    const char *effort;
    if (get_effort(body, &effort, err))
        return -1;
    int continue_final = 0, add_special = 0;
    if (get_bool(body, "continue_final_message", &continue_final, err) ||
        get_bool(body, "add_special_tokens", &add_special, err))
        return -1;
    if (srv->harmony) {
        if (continue_final)
            return fl_api_fail(err, 400, "continue_final_message", "'continue_final_message' is not "
                               "supported with the harmony format yet");
        if (add_special)
            return fl_api_fail(err, 400, "add_special_tokens", "'add_special_tokens' = true is not "
                               "supported with the harmony format (its prompt is made of ids)");
        return harmony_messages(srv, body, msgs, effort, req, err);
    }
    if (!srv->chat)
        return fl_api_fail(err, 400, "messages", "this model has no chat template (start the "
                           "server with --chat-template FILE)");
    json_t *kwargs = json_object_get(body, "chat_template_kwargs");
    if (kwargs && !json_is_null(kwargs) && !json_is_object(kwargs))
        return fl_api_fail(err, 400, "chat_template_kwargs", "'chat_template_kwargs' must be an object");
    int add_gen = 1, include_reasoning = 1;
    if (get_bool(body, "add_generation_prompt", &add_gen, err) ||
        get_bool(body, "include_reasoning", &include_reasoning, err))
        return -1;
    if (continue_final && add_gen)
        return fl_api_fail(err, 400, "continue_final_message", "Cannot set both `continue_final_message` "
                           "and `add_generation_prompt` to True (set add_generation_prompt to false).");
    if (!include_reasoning && !srv->cfg.reasoning_parser)
        return fl_api_fail(err, 400, "include_reasoning", "'include_reasoning' = false cannot be "
                           "honoured: replies are not split into reasoning and content (start the "
                           "server with --reasoning-parser)");
    req->include_reasoning = include_reasoning;
    json_t *vars = template_vars(srv, kwargs, effort, err);
    if (!vars)
        return -1;
    if (req->tools) /* vLLM's apply_chat_template(..., tools=...) */
        json_object_set(vars, "tools", req->tools);
    fl_strbuf prompt = { 0 };
    fl_error terr;
    const int rc = fl_chat_template_render(srv->chat, msgs, vars, add_gen, &prompt, &terr);
    json_decref(vars);
    if (rc != 0) {
        fl_strbuf_free(&prompt);
        return fl_api_fail(err, 400, "messages", "%s", terr.msg);
    }
    fl_strbuf_append(&prompt, "", 0);
    if (continue_final && cut_after_final(msgs, &prompt, err) != 0) {
        fl_strbuf_free(&prompt);
        return -1;
    }
    req->reasoning = srv->cfg.reasoning_parser != NULL;
    if (req->reasoning) /* the template may open (or close) the think block itself */
        req->reasoning_start = fl_reasoning_prompt_state(prompt.data ? prompt.data : "", prompt.len);
    req->prompts = fl_calloc(1, sizeof(fl_ids));
    req->num_prompts = 1;
    encode(srv, prompt.data ? prompt.data : "", prompt.len, add_special, &req->prompts[0]);
    fl_strbuf_free(&prompt);
    return 0;
}

static int parse_messages(fl_server *srv, json_t *body, fl_api_request *req, fl_api_error *err)
{
    json_t *raw = json_object_get(body, "messages");
    if (!json_is_array(raw) || json_array_size(raw) == 0)
        return fl_api_fail(err, 400, "messages", "'messages' must be a non-empty list");
    json_t *msgs = normalize_messages(raw, !srv->harmony, err);
    if (!msgs)
        return -1;
    const int rc = render_messages(srv, body, msgs, req, err);
    if (rc == 0 && req->echo)
        chat_echo(msgs, req);
    json_decref(msgs);
    return rc;
}

/* truncate_prompt_tokens: each prompt keeps its last N tokens (vLLM's
 * left truncation). */
static int truncate_prompts(fl_server *srv, json_t *body, fl_api_request *req, fl_api_error *err)
{
    int keep = 0;
    if (get_int(body, "truncate_prompt_tokens", 1, srv->max_model_len, &keep, err))
        return -1;
    for (int i = 0; keep > 0 && i < req->num_prompts; i++) {
        fl_ids *p = &req->prompts[i];
        if ((int)p->len > keep) {
            if (req->echo_text && !req->chat) { /* echo shows what the prompt was cut to */
                free(req->echo_text[i]);
                req->echo_text[i] = NULL;
            }
            memmove(p->data, p->data + p->len - (size_t)keep, (size_t)keep * sizeof(int32_t));
            p->len = (size_t)keep;
        }
    }
    return 0;
}

/* completions' echo: a prompt given as ids, or truncated, shows the text
 * of the tokens the model sees (a string prompt is shown as given). */
static void echo_prompts(fl_server *srv, fl_api_request *req)
{
    for (int i = 0; i < req->num_prompts; i++) {
        if (req->echo_text[i])
            continue;
        fl_strbuf t = { 0 };
        fl_tokenizer_decode(srv->tok, req->prompts[i].data, req->prompts[i].len, 0, &t);
        fl_strbuf_append(&t, "", 0);
        req->echo_text[i] = fl_strdup(t.data ? t.data : "");
        fl_strbuf_free(&t);
    }
}

static int parse(fl_server *srv, json_t *body, fl_api_route route, fl_api_request *req, fl_api_error *err)
{
    const int chat = route != FL_API_COMPLETION;
    memset(req, 0, sizeof *req);
    req->chat = chat;
    req->include_reasoning = 1;
    if (!json_is_object(body))
        return fl_api_fail(err, 400, NULL, "the request body must be a JSON object");
    json_t *model = json_object_get(body, "model");
    if (model && !json_is_null(model) &&
        (!json_is_string(model) || !fl_server_serves_model(srv, json_string_value(model))))
        return fl_api_fail(err, 404, "model", "The model `%s` does not exist.",
                           json_is_string(model) ? json_string_value(model) : "?");
    req->created = (long)time(NULL);
    if (check_known_fields(body, chat, err) || check_refused(body, err) ||
        parse_sampling(srv, body, req, err) || get_bool(body, "stream", &req->stream, err))
        return -1;
    json_t *opts = json_object_get(body, "stream_options");
    if (opts && !json_is_null(opts)) {
        if (!json_is_object(opts))
            return fl_api_fail(err, 400, "stream_options", "'stream_options' must be an object");
        if (!req->stream)
            return fl_api_fail(err, 400, "stream_options", "Stream options can only be defined when "
                               "`stream=True`.");
        int continuous = 0;
        if (get_bool(opts, "include_usage", &req->include_usage, err) ||
            get_bool(opts, "continuous_usage_stats", &continuous, err))
            return -1;
        if (continuous)
            return fl_api_fail(err, 400, "stream_options", "'stream_options'.continuous_usage_stats is "
                               "not implemented yet");
    }
    if (req->stream && req->prompt_logprobs)
        return fl_api_fail(err, 400, "prompt_logprobs", "`prompt_logprobs` are not available when "
                           "`stream=True`.");
    if (req->stream && req->echo && !chat && req->sp.logprobs >= 0)
        return fl_api_fail(err, 400, "echo", "'echo' with 'logprobs' is not available when "
                           "`stream=True` yet (the prompt's logprobs are not streamed)");
    if (chat && parse_tools(srv, body, route == FL_API_TOKENIZE_CHAT, req, err) != 0)
        return -1;
    if ((chat ? parse_messages(srv, body, req, err) : parse_prompt(srv, body, req, err)) != 0)
        return -1;
    if (truncate_prompts(srv, body, req, err) != 0)
        return -1;
    if (req->echo && !chat)
        echo_prompts(srv, req);
    for (int i = 0; i < req->num_prompts; i++) {
        const int len = (int)req->prompts[i].len;
        if (len >= srv->max_model_len)
            return fl_api_fail(err, 400, chat ? "messages" : "prompt", "This model's maximum context "
                               "length is %d tokens. However, your request has %d input tokens.",
                               srv->max_model_len, len);
        /* max_new_tokens of the model's defaults is a cap, never a reason to refuse */
        if (srv->defaults.max_tokens > 0 && req->sp.max_tokens == srv->defaults.max_tokens &&
            len + req->sp.max_tokens > srv->max_model_len)
            req->sp.max_tokens = srv->max_model_len - len;
        int max_tokens = req->sp.max_tokens ? req->sp.max_tokens : srv->max_model_len - len;
        if (len + max_tokens > srv->max_model_len)
            return fl_api_fail(err, 400, "max_tokens", "'max_tokens' is too large: %d. This model's "
                               "maximum context length is %d tokens and your request has %d input "
                               "tokens (%d > %d - %d).", max_tokens, srv->max_model_len, len,
                               max_tokens, srv->max_model_len, len);
        if (req->sp.min_tokens > max_tokens)
            return fl_api_fail(err, 400, "min_tokens", "'min_tokens' (%d) must be at most max_tokens "
                               "(%d)", req->sp.min_tokens, max_tokens);
    }
    return 0;
}

int fl_api_parse(fl_server *srv, json_t *body, fl_api_route route, fl_api_request *req, fl_api_error *err)
{
    if (parse(srv, body, route, req, err) == 0)
        return 0;
    fl_api_request_free(req);
    return -1;
}

void fl_api_request_free(fl_api_request *req)
{
    for (int i = 0; i < req->num_prompts; i++)
        fl_ids_free(&req->prompts[i]);
    free(req->prompts);
    for (int i = 0; req->echo_text && i < req->num_prompts; i++)
        free(req->echo_text[i]);
    free(req->echo_text);
    free(req->request_id);
    json_decref(req->tools);
    fl_sampling_params_free(&req->sp);
    memset(req, 0, sizeof *req);
}

/* ---- responses ---- */

static json_t *token_text(fl_server *srv, const fl_api_request *req, int32_t id)
{
    if (req->token_ids) { /* return_tokens_as_token_ids */
        char t[32];
        snprintf(t, sizeof t, "token_id:%d", id);
        return json_string(t);
    }
    fl_strbuf s = { 0 };
    fl_tokenizer_decode(srv->tok, &id, 1, 0, &s);
    json_t *j = json_stringn(s.data ? s.data : "", s.len);
    fl_strbuf_free(&s);
    return j;
}

/* A log-probability for JSON, which has no -inf: vLLM's floor. */
static double logprob_value(float lp)
{
    return lp > -9999.f ? (double)lp : -9999.0;
}

/* chat: {"token", "logprob", "bytes", "top_logprobs": [...]}; completions
 * keep parallel lists, built in fl_api_collect_response / the chunk. */
static json_t *chat_logprob_entry(fl_server *srv, const fl_api_request *req, int32_t id, float lp)
{
    json_t *bytes = json_array();
    if (id >= 0 && id < srv->tok->num_ids && srv->tok->id_bytes[id])
        for (uint32_t i = 0; i < srv->tok->id_bytes_len[id]; i++)
            json_array_append_new(bytes, json_integer((unsigned char)srv->tok->id_bytes[id][i]));
    return json_pack("{s:o,s:f,s:o}", "token", token_text(srv, req, id), "logprob", logprob_value(lp), "bytes", bytes);
}

static json_t *chat_logprobs(fl_server *srv, const fl_api_request *req, const fl_stream_event *ev)
{
    json_t *e = chat_logprob_entry(srv, req, ev->token, ev->logprob), *top = json_array();
    for (int i = 0; i < ev->num_top; i++)
        json_array_append_new(top, chat_logprob_entry(srv, req, ev->top_ids[i], ev->top_values[i]));
    json_object_set_new(e, "top_logprobs", top);
    return e;
}

static json_t *stop_reason(const fl_stream_event *ev)
{
    if (ev->stop_string)
        return json_string(ev->stop_string);
    return ev->stop_token >= 0 ? json_integer(ev->stop_token) : json_null();
}

void fl_api_channels_init(fl_api_channels *ch, fl_server *srv, const fl_api_request *req)
{
    memset(ch, 0, sizeof *ch);
    ch->num_choices = req->num_prompts * req->sp.n;
    if (!req->harmony && !req->reasoning && !req->tool_calls)
        return;
    ch->replies = fl_calloc((size_t)ch->num_choices, sizeof *ch->replies);
    for (int i = 0; i < ch->num_choices; i++) {
        fl_api_reply *r = &ch->replies[i];
        if (req->harmony)
            fl_harmony_parser_init(&r->harmony, srv->harmony);
        if (req->reasoning)
            fl_reasoning_parser_init(&r->reasoning, req->reasoning_start);
        if (req->tool_calls)
            fl_tool_parser_init(&r->tools);
    }
}

void fl_api_channels_free(fl_api_channels *ch)
{
    for (int i = 0; ch->replies && i < ch->num_choices; i++) {
        fl_api_reply *r = &ch->replies[i];
        if (r->harmony.h)
            fl_harmony_parser_free(&r->harmony);
        if (r->tools.calls)
            fl_tool_parser_free(&r->tools);
        fl_strbuf_free(&r->raw_content);
        free(r->args_sent);
    }
    free(ch->replies);
    fl_strbuf_free(&ch->reasoning);
    fl_strbuf_free(&ch->content);
    fl_strbuf_free(&ch->between);
    memset(ch, 0, sizeof *ch);
}

/* What ev adds to its choice, into ch->reasoning and ch->content: the
 * engine's text, or what the choice's parsers make of it (of its token,
 * under the harmony format); at the choice's end the parsers give what
 * they held back. */
static void split_event(const fl_api_request *req, fl_api_channels *ch, const fl_stream_event *ev)
{
    fl_strbuf_clear(&ch->reasoning);
    fl_strbuf_clear(&ch->content);
    if (!ch->replies) {
        fl_strbuf_append(&ch->content, ev->text, ev->text_len);
        return;
    }
    fl_api_reply *r = &ch->replies[ev->choice];
    if (req->harmony) {
        if (ev->token >= 0)
            fl_harmony_parser_push(&r->harmony, ev->token, &ch->reasoning, &ch->content);
    } else {
        fl_strbuf *content = req->tool_calls ? &ch->between : &ch->content;
        fl_strbuf_clear(&ch->between);
        if (req->reasoning) {
            fl_reasoning_parser_push(&r->reasoning, ev->text, ev->text_len, &ch->reasoning, content);
            if (ev->finish_reason)
                fl_reasoning_parser_finish(&r->reasoning, &ch->reasoning, content);
        } else {
            fl_strbuf_append(content, ev->text, ev->text_len);
        }
        if (req->tool_calls) {
            fl_strbuf_append(&r->raw_content, ch->between.data, ch->between.len);
            fl_tool_parser_push(&r->tools, ch->between.data, ch->between.len, &ch->content);
            if (ev->finish_reason)
                fl_tool_parser_finish(&r->tools, &ch->content);
        }
    }
    if (!req->include_reasoning)
        fl_strbuf_clear(&ch->reasoning);
}

/* A JSON string of text that should be UTF-8 (the engine's text is):
 * bytes that are not are cleaned, rather than the value lost. */
static json_t *text_json(const char *text, size_t len)
{
    if (!text)
        return json_string("");
    if (fl_utf8_valid(text, len))
        return json_stringn(text, len);
    fl_strbuf clean = { 0 };
    fl_utf8_append_lossy(&clean, (const unsigned char *)text, len, 1);
    json_t *j = json_stringn(clean.data ? clean.data : "", clean.len);
    fl_strbuf_free(&clean);
    return j;
}

static json_t *strbuf_json(const fl_strbuf *b)
{
    return text_json(b->data, b->len);
}

/* A tool call's id, as vLLM's make_tool_call_id: "chatcmpl-tool-" and 32
 * random hex digits. */
static json_t *tool_call_id(void)
{
    unsigned char r[16];
    random_bytes(r, sizeof r);
    char id[64] = "chatcmpl-tool-";
    for (int i = 0; i < 16; i++)
        snprintf(id + 14 + 2 * i, 3, "%02x", r[i]);
    return json_string(id);
}

/* How many of a choice's calls a response shows: all, or with
 * parallel_tool_calls false the first (vLLM drops the others). */
static int calls_shown(const fl_api_request *req, const fl_tool_parser *p)
{
    return req->parallel_tool_calls || p->num_calls < 1 ? p->num_calls : 1;
}

/* The streamed tool-call deltas of what the last event added, in vLLM's
 * shapes: a call's first delta has its id, type, index and name (and the
 * arguments read so far), later ones the index and the arguments that
 * grew. NULL when nothing changed. */
static json_t *tool_call_deltas(const fl_api_request *req, fl_api_reply *r)
{
    json_t *list = NULL;
    const int shown = calls_shown(req, &r->tools);
    for (int i = 0; i < shown; i++) {
        const fl_tool_call *c = &r->tools.calls[i];
        const int first = i >= r->calls_sent;
        const size_t sent = first ? 0 : r->args_sent[i];
        if (!first && c->arguments.len == sent)
            continue;
        json_t *fn = json_object(), *d = json_object();
        if (first) {
            json_object_set_new(d, "id", tool_call_id());
            json_object_set_new(d, "type", json_string("function"));
            json_object_set_new(fn, "name", strbuf_json(&c->name));
            r->args_sent = fl_realloc(r->args_sent, (size_t)(i + 1) * sizeof *r->args_sent);
            r->calls_sent = i + 1;
        }
        json_object_set_new(d, "index", json_integer(i));
        if (c->arguments.len > sent)
            json_object_set_new(fn, "arguments", text_json(c->arguments.data + sent, c->arguments.len - sent));
        r->args_sent[i] = c->arguments.len;
        json_object_set_new(d, "function", fn);
        if (!list)
            list = json_array();
        json_array_append_new(list, d);
    }
    return list;
}

/* The whole reply's tool calls of a finished choice ({id, type, function:
 * {name, arguments}} each), or NULL when they are malformed: vLLM then
 * shows none, and the whole text as the content. */
static json_t *tool_calls_json(const fl_api_request *req, const fl_tool_parser *p)
{
    if (p->malformed)
        return NULL;
    json_t *list = json_array();
    for (int i = 0; i < calls_shown(req, p); i++)
        json_array_append_new(list, json_pack("{s:o,s:s,s:{s:o,s:o}}", "id", tool_call_id(), "type", "function",
                                              "function", "name", strbuf_json(&p->calls[i].name), "arguments",
                                              strbuf_json(&p->calls[i].arguments)));
    return list;
}

/* What echo puts before choice's text, or NULL. */
static const char *echo_of(const fl_api_request *req, int choice)
{
    return req->echo_text ? req->echo_text[choice / req->sp.n] : NULL;
}

json_t *fl_api_stream_chunk(fl_server *srv, const fl_api_request *req, fl_api_channels *ch,
                            const char *id, const fl_stream_event *ev, int first_of_choice)
{
    split_event(req, ch, ev);
    fl_api_reply *reply = req->tool_calls ? &ch->replies[ev->choice] : NULL;
    json_t *calls = reply ? tool_call_deltas(req, reply) : NULL;
    const char *echo = first_of_choice ? echo_of(req, ev->choice) : NULL;
    if (echo) { /* the echoed text leads the choice's first chunk */
        fl_strbuf rest = ch->content;
        memset(&ch->content, 0, sizeof ch->content);
        fl_strbuf_append_str(&ch->content, echo);
        fl_strbuf_append(&ch->content, rest.data, rest.len);
        fl_strbuf_free(&rest);
    }
    const size_t text_len = ch->content.len + ch->reasoning.len;
    if (text_len == 0 && !calls && !ev->finish_reason && !first_of_choice && !ev->has_logprob)
        return NULL;
    /* vLLM: a choice that streamed a call finishes with "tool_calls" */
    const char *finish = ev->finish_reason && reply && calls_shown(req, &reply->tools) > 0 ? "tool_calls"
                       : ev->finish_reason;
    json_t *choice = json_pack("{s:i}", "index", ev->choice);
    if (req->chat) {
        json_t *delta = json_object();
        if (first_of_choice)
            json_object_set_new(delta, "role", json_string("assistant"));
        if (ch->content.len || first_of_choice)
            json_object_set_new(delta, "content", strbuf_json(&ch->content));
        if (ch->reasoning.len)
            json_object_set_new(delta, "reasoning_content", strbuf_json(&ch->reasoning));
        if (calls)
            json_object_set_new(delta, "tool_calls", calls);
        json_object_set_new(choice, "delta", delta);
        if (ev->has_logprob && ev->token >= 0)
            json_object_set_new(choice, "logprobs", json_pack("{s:[o]}", "content", chat_logprobs(srv, req, ev)));
        else
            json_object_set_new(choice, "logprobs", json_null());
    } else {
        json_object_set_new(choice, "text", strbuf_json(&ch->content));
        if (ev->has_logprob && ev->token >= 0) {
            json_t *top = json_object();
            for (int i = 0; i < ev->num_top; i++) {
                json_t *t = token_text(srv, req, ev->top_ids[i]);
                json_object_set_new(top, json_string_value(t), json_real(logprob_value(ev->top_values[i])));
                json_decref(t);
            }
            json_object_set_new(choice, "logprobs", json_pack("{s:[o],s:[f],s:[o],s:[i]}",
                "tokens", token_text(srv, req, ev->token), "token_logprobs", logprob_value(ev->logprob),
                "top_logprobs", top, "text_offset", 0));
        } else {
            json_object_set_new(choice, "logprobs", json_null());
        }
    }
    json_object_set_new(choice, "finish_reason", finish ? json_string(finish) : json_null());
    if (finish)
        json_object_set_new(choice, "stop_reason", stop_reason(ev));
    return json_pack("{s:s,s:s,s:i,s:s,s:[o]}", "id", id, "object",
                     req->chat ? "chat.completion.chunk" : "text_completion", "created", (int)req->created,
                     "model", srv->cfg.served_model_name, "choices", choice);
}

static json_t *usage(int prompt, int completion, int cached)
{
    json_t *u = json_pack("{s:i,s:i,s:i}", "prompt_tokens", prompt, "total_tokens", prompt + completion,
                          "completion_tokens", completion);
    if (cached)
        json_object_set_new(u, "prompt_tokens_details", json_pack("{s:i}", "cached_tokens", cached));
    return u;
}

json_t *fl_api_usage_chunk(fl_server *srv, const fl_api_request *req, const char *id,
                           int prompt_tokens, int completion_tokens, int cached_tokens)
{
    return json_pack("{s:s,s:s,s:i,s:s,s:[],s:o}", "id", id, "object",
                     req->chat ? "chat.completion.chunk" : "text_completion", "created", (int)req->created,
                     "model", srv->cfg.served_model_name, "choices", "usage",
                     usage(prompt_tokens, completion_tokens, cached_tokens));
}

void fl_api_collect_init(fl_api_collect *c, const fl_api_request *req)
{
    memset(c, 0, sizeof *c);
    c->num_choices = req->num_prompts * req->sp.n;
    c->text = fl_calloc((size_t)c->num_choices, sizeof(fl_strbuf));
    c->reasoning = fl_calloc((size_t)c->num_choices, sizeof(fl_strbuf));
    c->tool_calls = fl_calloc((size_t)c->num_choices, sizeof(json_t *));
    c->finish = fl_calloc((size_t)c->num_choices, sizeof(char *));
    c->stop_reason = fl_calloc((size_t)c->num_choices, sizeof(json_t *));
    c->logprobs = fl_calloc((size_t)c->num_choices, sizeof(json_t *));
    c->prompt_tokens = fl_calloc((size_t)req->num_prompts, sizeof(int));
    c->num_prompts = req->num_prompts;
    c->prompt_logprobs = fl_calloc((size_t)req->num_prompts, sizeof(json_t *));
}

/* vLLM's prompt_logprobs of a prompt: null for its first token, then for
 * each token {"<id>": {"logprob", "rank", "decoded_token"}} of the token
 * and the top k. */
static json_t *prompt_logprobs_json(fl_server *srv, const fl_api_request *req, const fl_prompt_logprobs *p)
{
    json_t *list = json_array();
    json_array_append_new(list, json_null());
    for (int j = 0; j < p->num; j++) {
        json_t *d = json_object();
        for (int e = 0; e < p->per; e++) {
            const size_t at = (size_t)j * (size_t)p->per + (size_t)e;
            if (p->ids[at] < 0)
                continue;
            char key[16];
            snprintf(key, sizeof key, "%d", p->ids[at]);
            if (json_object_get(d, key))
                continue; /* the token is among the top k */
            json_object_set_new(d, key, json_pack("{s:f,s:i,s:o}", "logprob", logprob_value(p->values[at]),
                                                  "rank", p->ranks[at], "decoded_token",
                                                  token_text(srv, req, p->ids[at])));
        }
        json_array_append_new(list, d);
    }
    return list;
}

/* completions' echo with logprobs: chat-style entries for the prompt's
 * tokens from its prompt_logprobs (the first token has none: null). */
static json_t *echo_logprob_entries(fl_server *srv, const fl_api_request *req, int prompt, json_t *plp)
{
    const fl_ids *ids = &req->prompts[prompt];
    json_t *entries = json_array();
    json_array_append_new(entries, json_pack("{s:o,s:n,s:n}", "token", token_text(srv, req, ids->data[0]),
                                             "logprob", "top_logprobs"));
    for (size_t j = 1; j < ids->len; j++) {
        json_t *d = json_array_get(plp, j);
        char key[16];
        snprintf(key, sizeof key, "%d", ids->data[j]);
        json_t *top = json_array();
        const char *k;
        json_t *v;
        json_object_foreach(d, k, v) {
            json_array_append_new(top, json_pack("{s:O,s:O}", "token", json_object_get(v, "decoded_token"),
                                                 "logprob", json_object_get(v, "logprob")));
        }
        json_t *own = json_object_get(d, key);
        json_array_append_new(entries, json_pack("{s:O,s:O,s:o}", "token", json_object_get(own, "decoded_token"),
                                                 "logprob", json_object_get(own, "logprob"), "top_logprobs", top));
    }
    return entries;
}

void fl_api_collect_add(fl_server *srv, fl_api_collect *c, const fl_api_request *req,
                        fl_api_channels *ch, const fl_stream_event *ev)
{
    split_event(req, ch, ev);
    fl_strbuf_append(&c->text[ev->choice], ch->content.data, ch->content.len);
    fl_strbuf_append(&c->reasoning[ev->choice], ch->reasoning.data, ch->reasoning.len);
    if (ev->has_logprob && ev->token >= 0) {
        if (!c->logprobs[ev->choice])
            c->logprobs[ev->choice] = json_array();
        json_array_append_new(c->logprobs[ev->choice], chat_logprobs(srv, req, ev));
    }
    if (ev->plp && !c->prompt_logprobs[ev->choice / req->sp.n])
        c->prompt_logprobs[ev->choice / req->sp.n] = prompt_logprobs_json(srv, req, ev->plp);
    if (ev->finish_reason) {
        c->finish[ev->choice] = ev->finish_reason;
        if (req->tool_calls) {
            fl_api_reply *r = &ch->replies[ev->choice];
            c->tool_calls[ev->choice] = tool_calls_json(req, &r->tools);
            if (!c->tool_calls[ev->choice]) { /* malformed: the text as it is, and no call */
                fl_strbuf_clear(&c->text[ev->choice]);
                fl_strbuf_append(&c->text[ev->choice], r->raw_content.data, r->raw_content.len);
            } else if (json_array_size(c->tool_calls[ev->choice]) > 0) {
                c->finish[ev->choice] = "tool_calls";
            }
        }
        c->stop_reason[ev->choice] = stop_reason(ev);
        c->completion_tokens += ev->num_output_tokens;
        c->prompt_tokens[ev->choice / req->sp.n] = ev->num_prompt_tokens;
        if (ev->choice % req->sp.n == 0)
            c->cached_tokens += ev->num_cached_tokens;
    }
}

/* Completions logprobs from the chat-style entries. */
static json_t *completion_logprobs(json_t *entries)
{
    json_t *tokens = json_array(), *lps = json_array(), *tops = json_array(), *offsets = json_array();
    size_t i;
    json_t *e;
    int offset = 0;
    json_array_foreach(entries, i, e) {
        json_array_append(tokens, json_object_get(e, "token"));
        json_array_append(lps, json_object_get(e, "logprob"));
        json_t *top = json_is_array(json_object_get(e, "top_logprobs")) ? json_object() : json_null();
        size_t k;
        json_t *t;
        json_array_foreach(json_object_get(e, "top_logprobs"), k, t) {
            json_object_set(top, json_string_value(json_object_get(t, "token")), json_object_get(t, "logprob"));
        }
        json_array_append_new(tops, top);
        json_array_append_new(offsets, json_integer(offset));
        offset += (int)json_string_length(json_object_get(e, "token"));
    }
    return json_pack("{s:o,s:o,s:o,s:o}", "tokens", tokens, "token_logprobs", lps, "top_logprobs", tops,
                     "text_offset", offsets);
}

json_t *fl_api_collect_response(fl_server *srv, fl_api_collect *c, const fl_api_request *req,
                                const char *id)
{
    json_t *choices = json_array();
    int prompt_tokens = 0;
    for (int p = 0; p < req->num_prompts; p++)
        prompt_tokens += c->prompt_tokens[p];
    for (int i = 0; i < c->num_choices; i++) {
        const int prompt = i / req->sp.n;
        const char *echo = echo_of(req, i);
        fl_strbuf shown = { 0 };
        if (echo)
            fl_strbuf_append_str(&shown, echo);
        fl_strbuf_append(&shown, c->text[i].data, c->text[i].len);
        json_t *text = strbuf_json(&shown);
        fl_strbuf_free(&shown);
        json_t *lp = json_null();
        if (!req->chat && echo && req->want_logprobs && c->prompt_logprobs[prompt]) {
            /* the prompt's tokens first, as vLLM's echo */
            json_t *all = echo_logprob_entries(srv, req, prompt, c->prompt_logprobs[prompt]);
            if (c->logprobs[i])
                json_array_extend(all, c->logprobs[i]);
            lp = completion_logprobs(all);
            json_decref(all);
        } else if (c->logprobs[i]) {
            lp = req->chat ? json_pack("{s:O}", "content", c->logprobs[i]) : completion_logprobs(c->logprobs[i]);
        }
        json_t *choice = json_pack("{s:i}", "index", i);
        if (!req->chat) {
            json_object_set_new(choice, "text", text);
            json_object_set(choice, "prompt_logprobs",
                            c->prompt_logprobs[prompt] ? c->prompt_logprobs[prompt] : json_null());
        } else {
            json_t *message = json_pack("{s:s,s:o}", "role", "assistant", "content", text);
            /* as vLLM: null for what a parsed reply does not have */
            if ((req->harmony || req->reasoning || req->tool_calls) && c->text[i].len == 0 && !echo)
                json_object_set_new(message, "content", json_null());
            if (req->harmony || req->reasoning)
                json_object_set_new(message, "reasoning_content",
                                    c->reasoning[i].len ? strbuf_json(&c->reasoning[i]) : json_null());
            if (req->tool_calls)
                json_object_set_new(message, "tool_calls", c->tool_calls[i] ? json_incref(c->tool_calls[i])
                                                                            : json_array());
            json_object_set_new(choice, "message", message);
        }
        json_object_set_new(choice, "logprobs", lp);
        json_object_set_new(choice, "finish_reason", json_string(c->finish[i] ? c->finish[i] : "abort"));
        json_object_set(choice, "stop_reason", c->stop_reason[i] ? c->stop_reason[i] : json_null());
        json_array_append_new(choices, choice);
    }
    json_t *res = json_pack("{s:s,s:s,s:i,s:s,s:o,s:o}", "id", id, "object",
                            req->chat ? "chat.completion" : "text_completion", "created", (int)req->created,
                            "model", srv->cfg.served_model_name, "choices", choices, "usage",
                            usage(prompt_tokens, c->completion_tokens, c->cached_tokens));
    if (req->chat) /* vLLM's chat response carries the one prompt's at the top */
        json_object_set(res, "prompt_logprobs", c->prompt_logprobs[0] ? c->prompt_logprobs[0] : json_null());
    return res;
}

void fl_api_collect_free(fl_api_collect *c)
{
    for (int i = 0; i < c->num_choices; i++) {
        fl_strbuf_free(&c->text[i]);
        fl_strbuf_free(&c->reasoning[i]);
        json_decref(c->tool_calls[i]);
        json_decref(c->stop_reason[i]);
        json_decref(c->logprobs[i]);
    }
    free(c->text);
    free(c->reasoning);
    free(c->tool_calls);
    free(c->finish);
    free(c->stop_reason);
    free(c->logprobs);
    for (int p = 0; c->prompt_logprobs && p < c->num_prompts; p++)
        json_decref(c->prompt_logprobs[p]);
    free(c->prompt_logprobs);
    free(c->prompt_tokens);
}
