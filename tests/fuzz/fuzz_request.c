/* fuzz_request.c - request bodies (server/openai.c): any JSON body of
 * /v1/completions or /v1/chat/completions is accepted with a request that
 * fits the model, or refused with a status and a message; with the real
 * Qwen3 tokenizer and its chat template (FLASHLM_FUZZ_TOKENIZER names the
 * directory). The first byte picks the route (bit 0) and whether the
 * server parses tool calls and reasoning (bit 1: --enable-auto-tool-choice
 * --tool-call-parser hermes --reasoning-parser qwen3). */
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "server/openai.h"

static fl_server srv;
static fl_tokenizer tok;
static fl_chat_template chat;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    const char *dir = getenv("FLASHLM_FUZZ_TOKENIZER");
    fl_error err;
    if (!dir || fl_tokenizer_load(&tok, dir, &err) != 0 ||
        fl_chat_template_init(&chat, tok.chat_template, "tokenizer_config.json", &tok, &err) != 0) {
        fprintf(stderr, "fuzz_request: set FLASHLM_FUZZ_TOKENIZER to the Qwen3 tokenizer directory\n");
        abort();
    }
    fl_server_config cfg = { .served_model_name = "m", .max_body_bytes = 1 << 20 };
    fl_server_init(&srv, &cfg);
    srv.tok = &tok;
    srv.chat = &chat;
    srv.max_model_len = 512;
    srv.vocab_size = 151936;
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    json_t *body = json_loadb((const char *)data + 1, size - 1, 0, NULL);
    if (!body)
        return 0;
    const int parsers = (data[0] >> 1) & 1;
    srv.cfg.enable_auto_tool_choice = parsers;
    srv.cfg.tool_call_parser = parsers ? "hermes" : NULL;
    srv.cfg.reasoning_parser = parsers ? "qwen3" : NULL;
    fl_api_request req;
    fl_api_error err;
    if (fl_api_parse(&srv, body, data[0] & 1, &req, &err) == 0) {
        for (int p = 0; p < req.num_prompts; p++)
            if (req.prompts[p].len >= (size_t)srv.max_model_len)
                __builtin_trap();
        fl_api_request_free(&req);
    } else if (err.status < 400 || err.status > 503 || !err.message[0]) {
        __builtin_trap();
    }
    json_decref(body);
    return 0;
}
