/* fuzz_harmony.c - the harmony format (tokenizer/harmony.c) with gpt-oss's
 * tokenizer (FLASHLM_FUZZ_TOKENIZER names its directory). The first byte
 * picks what the rest is: a chat request's messages (JSON) to render, which
 * renders or is refused with a message; or generated tokens (little-endian
 * u32 each, taken modulo the vocabulary and a few past it) to parse, where
 * every token may add whole UTF-8 to reasoning or to content, never both. */
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "base/utf8.h"
#include "tokenizer/harmony.h"

static fl_tokenizer tok;
static fl_tok_scratch scratch;
static fl_harmony harmony;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    const char *dir = getenv("FLASHLM_FUZZ_TOKENIZER");
    fl_error err;
    if (!dir || fl_tokenizer_load(&tok, dir, &err) != 0 || fl_harmony_init(&harmony, &tok, &err) != 0) {
        fprintf(stderr, "fuzz_harmony: set FLASHLM_FUZZ_TOKENIZER to gpt-oss's tokenizer directory\n");
        abort();
    }
    fl_tok_scratch_init(&scratch, &tok);
    return 0;
}

static void render(const uint8_t *data, size_t size)
{
    json_t *messages = json_loadb((const char *)data, size, 0, NULL);
    if (!messages)
        return;
    fl_ids out = { 0 };
    fl_error err = { "" };
    if (fl_harmony_render(&harmony, &scratch, messages, (fl_harmony_effort)(size % 3), "2025-06-28",
                          &out, &err) == 0) {
        if (out.len < 2 || out.data[out.len - 2] != harmony.start)
            __builtin_trap(); /* every prompt ends with <|start|>assistant */
    } else if (!err.msg[0]) {
        __builtin_trap();
    }
    fl_ids_free(&out);
    json_decref(messages);
}

static void parse(const uint8_t *data, size_t size)
{
    fl_harmony_parser p;
    fl_harmony_parser_init(&p, &harmony);
    fl_strbuf reasoning = { 0 }, content = { 0 };
    for (size_t i = 0; i + 4 <= size; i += 4) {
        const uint32_t v = (uint32_t)data[i] | (uint32_t)data[i + 1] << 8 | (uint32_t)data[i + 2] << 16 |
                           (uint32_t)data[i + 3] << 24;
        const size_t r0 = reasoning.len, c0 = content.len;
        fl_harmony_parser_push(&p, (int32_t)(v % (uint32_t)(tok.num_ids + 16)), &reasoning, &content);
        const size_t dr = reasoning.len - r0, dc = content.len - c0;
        if ((dr && dc) || (dr && !fl_utf8_valid(reasoning.data + r0, dr)) ||
            (dc && !fl_utf8_valid(content.data + c0, dc)))
            __builtin_trap();
    }
    fl_strbuf_free(&reasoning);
    fl_strbuf_free(&content);
    fl_harmony_parser_free(&p);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    if (data[0] & 1)
        parse(data + 1, size - 1);
    else
        render(data + 1, size - 1);
    return 0;
}
