/* test_tokenizer_files.c - tokenizer.json files that are wrong in one place
 * each end in one error naming the file and the field. Each case edits a
 * small valid byte-level BPE tokenizer made here (the 256 byte tokens, two
 * merges, one special token). */
#include "test_util.h"

#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/utf8.h"
#include "tokenizer/byte_level.h"
#include "tokenizer/tokenizer.h"

static json_t *tiny_tokenizer(void)
{
    json_t *vocab = json_object();
    for (int b = 0; b < 256; b++) {
        char ch[5] = { 0 };
        fl_utf8_encode(fl_byte_level_char((uint8_t)b), ch);
        json_object_set_new(vocab, ch, json_integer(b));
    }
    json_object_set_new(vocab, "ab", json_integer(256));
    json_object_set_new(vocab, "abc", json_integer(257));
    return json_pack(
        "{s:[{s:i,s:s,s:b}], s:{s:s}, s:{s:s,s:[{s:s,s:{s:s},s:s,s:b},{s:s,s:b,s:b}]},"
        " s:{s:s}, s:{s:s}, s:{s:s,s:o,s:[[s,s],[s,s]]}}",
        "added_tokens", "id", 258, "content", "<|end|>", "special", 1,
        "normalizer", "type", "NFC",
        "pre_tokenizer", "type", "Sequence", "pretokenizers", "type", "Split", "pattern", "Regex",
        " ?\\p{L}+|\\s+", "behavior", "Isolated", "invert", 0, "type", "ByteLevel", "use_regex", 0,
        "add_prefix_space", 0,
        "post_processor", "type", "ByteLevel",
        "decoder", "type", "ByteLevel",
        "model", "type", "BPE", "vocab", vocab, "merges", "a", "b", "ab", "c");
}

static void write_json(const char *dir, const char *name, json_t *j)
{
    char *text = json_dumps(j, 0);
    tu_write_file(dir, name, text, strlen(text));
    free(text);
}

static void expect_error(const char *dir, const char *needle1, const char *needle2)
{
    fl_tokenizer t;
    fl_error err = { "" };
    assert_int_equal(fl_tokenizer_load(&t, dir, &err), -1);
    assert_msg_contains(err.msg, needle1);
    if (needle2)
        assert_msg_contains(err.msg, needle2);
}

static void test_tiny_tokenizer_works(void **state)
{
    (void)state;
    char *dir = tu_tempdir();
    json_t *j = tiny_tokenizer();
    write_json(dir, "tokenizer.json", j);
    fl_tokenizer t;
    fl_error err;
    assert_int_equal(fl_tokenizer_load(&t, dir, &err), 0);
    fl_tok_scratch s;
    fl_tok_scratch_init(&s, &t);
    fl_ids ids = { 0 };
    fl_tokenizer_encode(&t, &s, "abc ab<|end|>", 13, 0, &ids);
    /* "abc" merges fully, " ab" is ' ' + "ab", then the special token */
    const int32_t want[] = { 257, t.byte_token[' '], 256, 258 };
    assert_int_equal(ids.len, 4);
    assert_memory_equal(ids.data, want, sizeof want);
    fl_ids_free(&ids);
    fl_tok_scratch_free(&s);
    fl_tokenizer_free(&t);
    json_decref(j);
    tu_rmdir(dir);
    free(dir);
}

/* add_bos_token / add_eos_token put the special tokens around the ids when
 * add_special_tokens is asked for, and only then. */
static void test_add_bos_eos(void **state)
{
    (void)state;
    char *dir = tu_tempdir();
    json_t *j = tiny_tokenizer();
    json_array_append_new(json_object_get(j, "added_tokens"),
                          json_pack("{s:i,s:s,s:b}", "id", 259, "content", "<s>", "special", 1));
    write_json(dir, "tokenizer.json", j);
    json_decref(j);
    const char cfg[] = "{\"bos_token\": {\"content\": \"<s>\"}, \"eos_token\": \"<|end|>\","
                       " \"add_bos_token\": true, \"add_eos_token\": true}";
    tu_write_file(dir, "tokenizer_config.json", cfg, sizeof cfg - 1);
    fl_tokenizer t;
    fl_error err;
    assert_int_equal(fl_tokenizer_load(&t, dir, &err), 0);
    fl_tok_scratch s;
    fl_tok_scratch_init(&s, &t);
    fl_ids plain = { 0 }, special = { 0 };
    fl_tokenizer_encode(&t, &s, "abc", 3, 0, &plain);
    fl_tokenizer_encode(&t, &s, "abc", 3, 1, &special);
    const int32_t want_plain[] = { 257 }, want_special[] = { 259, 257, 258 };
    assert_int_equal(plain.len, 1);
    assert_memory_equal(plain.data, want_plain, sizeof want_plain);
    assert_int_equal(special.len, 3);
    assert_memory_equal(special.data, want_special, sizeof want_special);
    fl_ids_free(&plain);
    fl_ids_free(&special);
    fl_tok_scratch_free(&s);
    fl_tokenizer_free(&t);
    /* a flag without its token is an error naming the field */
    const char bad[] = "{\"add_bos_token\": true}";
    tu_write_file(dir, "tokenizer_config.json", bad, sizeof bad - 1);
    expect_error(dir, "tokenizer_config.json: field 'add_bos_token' is true but no bos_token", NULL);
    const char not_bool[] = "{\"add_bos_token\": \"true\"}";
    tu_write_file(dir, "tokenizer_config.json", not_bool, sizeof not_bool - 1);
    expect_error(dir, "tokenizer_config.json: add_bos_token must be true or false", NULL);
    tu_rmdir(dir);
    free(dir);
}

static void test_bad_files(void **state)
{
    (void)state;
    char *dir = tu_tempdir();
    expect_error(dir, "tokenizer.json", "cannot open");

    tu_write_file(dir, "tokenizer.json", "{\"model\": ", 10);
    expect_error(dir, "tokenizer.json", "line 1");

    static const struct {
        const char *path;  /* dotted path of the member to replace */
        const char *json;  /* its new value; NULL deletes it */
        const char *needle1, *needle2;
    } cases[] = {
        { "model", NULL, "tokenizer.json: missing field 'model'", NULL },
        { "model.type", "\"WordPiece\"", "model type 'WordPiece' is not supported", NULL },
        { "model.vocab", "{}", "missing or empty field 'model.vocab'", NULL },
        { "model.merges", "\"x\"", "missing or non-list field 'model.merges'", NULL },
        { "model.merges", "[[\"a\", \"q\"]]", "model.merges[0] ('a' + 'q')", "not in model.vocab" },
        { "model.merges", "[\"a b c\"]", "model.merges[0] is not a pair of tokens", NULL },
        { "model.byte_fallback", "true", "model.byte_fallback=true is not supported", NULL },
        { "normalizer", "{\"type\": \"NFKC\"}", "normalizer 'NFKC' is not supported", NULL },
        { "pre_tokenizer", "{\"type\": \"Split\", \"pattern\": {\"Regex\": \"(a|b\"}, \"behavior\": \"Isolated\"}",
          "pre_tokenizer Split pattern does not compile at offset", "missing closing parenthesis" },
        { "pre_tokenizer", "{\"type\": \"Whitespace\"}", "pre_tokenizer 'Whitespace' is not supported", NULL },
        { "pre_tokenizer", "{\"type\": \"Split\", \"pattern\": {\"Regex\": \"a\"}, \"behavior\": \"Removed\"}",
          "Split behavior must be \"Isolated\"", NULL },
        { "added_tokens", "[{\"id\": 300, \"content\": \"<x>\", \"lstrip\": true}]",
          "added_tokens[0] ('<x>'): lstrip=true is not supported", NULL },
        { "added_tokens", "[{\"content\": \"<x>\"}]", "added_tokens[0] needs an 'id'", NULL },
        { "decoder", "{\"type\": \"Metaspace\"}", "decoder 'Metaspace' is not supported", NULL },
        { "post_processor", "{\"type\": \"BertProcessing\"}", "post_processor 'BertProcessing' is not supported", NULL },
        { "post_processor", "{\"type\": \"TemplateProcessing\", \"single\": [{\"SpecialToken\": {\"id\": \"<|end|>\"}}, {\"Sequence\": {\"id\": \"A\"}}], \"special_tokens\": {\"<|end|>\": {\"ids\": [-5]}}}",
          "post_processor special token '<|end|>': ids[0] is not a token id in [0, 259)", NULL },
        { "post_processor", "{\"type\": \"TemplateProcessing\", \"single\": [{\"SpecialToken\": {\"id\": \"<|end|>\"}}, {\"Sequence\": {\"id\": \"A\"}}], \"special_tokens\": {\"<|end|>\": {\"ids\": [1099511627776]}}}",
          "post_processor special token '<|end|>': ids[0] is not a token id in [0, 259)", NULL },
        { "added_tokens", "[{\"id\": 300, \"content\": \"<x>\", \"special\": \"yes\"}]",
          "added_tokens[0].special must be true or false", NULL },
        { "model.ignore_merges", "1", "model.ignore_merges must be true or false", NULL },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        json_t *j = tiny_tokenizer();
        char path[64];
        snprintf(path, sizeof path, "%s", cases[i].path);
        json_t *parent = j;
        char *dot = strchr(path, '.');
        if (dot) {
            *dot = '\0';
            parent = json_object_get(j, path);
        }
        const char *key = dot ? dot + 1 : path;
        if (cases[i].json) {
            json_error_t jerr;
            json_t *v = json_loads(cases[i].json, JSON_DECODE_ANY, &jerr);
            assert_non_null(v);
            json_object_set_new(parent, key, v);
        } else {
            json_object_del(parent, key);
        }
        write_json(dir, "tokenizer.json", j);
        json_decref(j);
        expect_error(dir, cases[i].needle1, cases[i].needle2);
    }

    /* tokenizer_config.json naming a token the tokenizer does not have */
    json_t *j = tiny_tokenizer();
    write_json(dir, "tokenizer.json", j);
    json_decref(j);
    const char cfg[] = "{\"eos_token\": \"<|nope|>\"}";
    tu_write_file(dir, "tokenizer_config.json", cfg, sizeof cfg - 1);
    expect_error(dir, "tokenizer_config.json: field 'eos_token' names '<|nope|>'", NULL);
    tu_rmdir(dir);
    free(dir);
}

/* Named pipes for tokenizer.json or tokenizer_config.json are refused at
 * once (the alarm turns a hang into a failure). */
static void test_fifo_files(void **state)
{
    (void)state;
    char *dir = tu_tempdir();
    char path[4096];
    alarm(10);
    snprintf(path, sizeof path, "%s/tokenizer.json", dir);
    assert_int_equal(mkfifo(path, 0600), 0);
    expect_error(dir, "tokenizer.json: not a regular file", NULL);
    unlink(path);
    json_t *j = tiny_tokenizer();
    write_json(dir, "tokenizer.json", j);
    json_decref(j);
    snprintf(path, sizeof path, "%s/tokenizer_config.json", dir);
    assert_int_equal(mkfifo(path, 0600), 0);
    expect_error(dir, "tokenizer_config.json: not a regular file", NULL);
    alarm(0);
    tu_rmdir(dir);
    free(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tiny_tokenizer_works),
        cmocka_unit_test(test_add_bos_eos),
        cmocka_unit_test(test_bad_files),
        cmocka_unit_test(test_fifo_files),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
