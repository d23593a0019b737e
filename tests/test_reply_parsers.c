/* test_reply_parsers.c - the reply parsers of the server: hermes tool calls
 * (server/tool_parser) with their JSON rewrite (server/json_rewrite,
 * base/pyjson), and Qwen3's reasoning (server/reasoning_parser).
 *
 * The tool calls are checked against fixtures/tool_call_cases.json, made by
 * tools/make_tool_call_cases.py: what vLLM's Hermes2ProToolParser makes of
 * each reply, with Python's json module doing the parsing and the writing
 * (so the arguments are Python's json.dumps, and the floats its repr). The
 * reasoning split is checked against expectations written from vLLM's
 * Qwen3ReasoningParser. Every reply is also fed in pieces, a byte at a time
 * and in random cuts: the result must be the same as fed whole, and what a
 * streamed reply has shown must only grow (a call's name once known never
 * changes, its arguments only lengthen). */
#include "test_util.h"

#include <stdlib.h>

#include "base/pyjson.h"
#include "server/reasoning_parser.h"
#include "server/tool_parser.h"

static json_t *cases;

static int setup(void **state)
{
    (void)state;
    char path[4096];
    snprintf(path, sizeof path, "%s/tool_call_cases.json", FIXTURES_DIR);
    json_error_t jerr;
    cases = json_load_file(path, 0, &jerr);
    if (!cases) {
        fprintf(stderr, "%s: %s\n", path, jerr.text);
        return -1;
    }
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    json_decref(cases);
    return 0;
}

/* What the tool parser made of a whole reply. */
typedef struct parsed {
    fl_strbuf content;
    fl_tool_parser p;
} parsed;

/* Feeds text in pieces: cut 0 whole, 1 a byte at a time, else random
 * pieces of 1..cut bytes (seeded by seed); checks as it goes that what was
 * shown only grows. */
static void parse_tools(const char *text, size_t n, int cut, unsigned seed, parsed *out)
{
    memset(out, 0, sizeof *out);
    fl_tool_parser_init(&out->p);
    fl_strbuf names = { 0 }; /* every known call's name, NUL-separated, as first seen */
    int known = 0;
    for (size_t i = 0; i < n;) {
        size_t k = cut == 0 ? n : cut == 1 ? 1 : 1 + (size_t)(rand_r(&seed) % (unsigned)cut);
        if (k > n - i)
            k = n - i;
        const size_t before = known ? out->p.calls[known - 1].arguments.len : 0;
        fl_tool_parser_push(&out->p, text + i, k, &out->content);
        i += k;
        assert_true(out->p.num_calls >= known);
        if (known)
            assert_true(out->p.calls[known - 1].arguments.len >= before);
        for (; known < out->p.num_calls; known++)
            fl_strbuf_append(&names, out->p.calls[known].name.data ? out->p.calls[known].name.data : "",
                             out->p.calls[known].name.len + 1);
    }
    fl_tool_parser_finish(&out->p, &out->content);
    size_t at = 0;
    for (int c = 0; c < out->p.num_calls; c++) { /* the names did not change once known */
        const fl_strbuf *nm = &out->p.calls[c].name;
        assert_true(at + nm->len < names.len + 1);
        assert_memory_equal(names.data + at, nm->data ? nm->data : "", nm->len);
        at += nm->len + 1;
    }
    fl_strbuf_free(&names);
}

static void parsed_free(parsed *p)
{
    fl_strbuf_free(&p->content);
    fl_tool_parser_free(&p->p);
}

static void assert_same_parse(const parsed *a, const parsed *b)
{
    assert_int_equal(a->content.len, b->content.len);
    if (a->content.len)
        assert_memory_equal(a->content.data, b->content.data, a->content.len);
    assert_int_equal(a->p.malformed, b->p.malformed);
    assert_int_equal(a->p.num_calls, b->p.num_calls);
    for (int i = 0; i < a->p.num_calls; i++) {
        assert_int_equal(a->p.calls[i].name.len, b->p.calls[i].name.len);
        assert_int_equal(a->p.calls[i].arguments.len, b->p.calls[i].arguments.len);
        if (a->p.calls[i].name.len)
            assert_memory_equal(a->p.calls[i].name.data, b->p.calls[i].name.data, a->p.calls[i].name.len);
        if (a->p.calls[i].arguments.len)
            assert_memory_equal(a->p.calls[i].arguments.data, b->p.calls[i].arguments.data,
                                a->p.calls[i].arguments.len);
    }
}

static const char *str_of(const fl_strbuf *b)
{
    return b->data ? b->data : "";
}

static void test_tool_calls_as_vllm(void **state)
{
    (void)state;
    size_t i;
    json_t *c;
    json_array_foreach(json_object_get(cases, "cases"), i, c) {
        const char *text = json_string_value(json_object_get(c, "text"));
        const size_t n = json_string_length(json_object_get(c, "text"));
        parsed whole;
        parse_tools(text, n, 0, 0, &whole);
        const int malformed = json_is_true(json_object_get(c, "malformed"));
        if (whole.p.malformed != malformed)
            fail_msg("case %zu (%s): malformed %d, vLLM %d", i, text, whole.p.malformed, malformed);
        if (!malformed) {
            json_t *calls = json_object_get(c, "calls"), *content = json_object_get(c, "content");
            assert_int_equal(whole.p.num_calls, json_array_size(calls));
            for (int k = 0; k < whole.p.num_calls; k++) {
                json_t *want = json_array_get(calls, (size_t)k);
                assert_string_equal(str_of(&whole.p.calls[k].name), json_string_value(json_array_get(want, 0)));
                assert_string_equal(str_of(&whole.p.calls[k].arguments), json_string_value(json_array_get(want, 1)));
            }
            assert_string_equal(str_of(&whole.content), json_is_string(content) ? json_string_value(content) : "");
        }
        /* the same however it is cut */
        for (int cut = 1; cut <= 9; cut += 2)
            for (unsigned seed = 1; seed <= (cut == 1 ? 1u : 6u); seed++) {
                parsed pieces;
                parse_tools(text, n, cut, seed, &pieces);
                assert_same_parse(&whole, &pieces);
                parsed_free(&pieces);
            }
        parsed_free(&whole);
    }
}

static void expect_tools(const char *text, const char *content, int malformed, int num_calls)
{
    parsed p;
    parse_tools(text, strlen(text), 1, 0, &p);
    assert_string_equal(str_of(&p.content), content);
    assert_int_equal(p.p.malformed, malformed);
    assert_int_equal(p.p.num_calls, num_calls);
    parsed_free(&p);
}

static void test_tool_text(void **state)
{
    (void)state;
    /* text around the blocks is content, less the whitespace next to one */
    expect_tools("Sure.\n\n<tool_call>{\"name\": \"f\", \"arguments\": {}}</tool_call>\n\nDone? ", "Sure.Done? ", 0, 1);
    expect_tools("a <tool_call>{\"name\": \"f\", \"arguments\": {}}</tool_call> b <tool_call>{\"name\": \"g\", "
                 "\"arguments\": {}}</tool_call>", "ab", 0, 2);
    expect_tools("No call, trailing space \n", "No call, trailing space \n", 0, 0);
    expect_tools("<tool_", "<tool_", 0, 0);            /* a tag cut at the end is text */
    expect_tools("<tool_callx> <tool_call", "<tool_callx> <tool_call", 0, 0);
    expect_tools("</tool_call>", "</tool_call>", 0, 0); /* a closing tag alone is text */
    /* broken before the name is read: the block's text is content, from its tag */
    expect_tools("Hi\n<tool_call>{\"nam\": 1}</tool_call>", "Hi\n<tool_call>{\"nam\": 1}</tool_call>", 1, 0);
    expect_tools("<tool_call>{\"name\"", "<tool_call>{\"name\"", 1, 0);
    expect_tools("<tool_call> \n", "<tool_call> \n", 1, 0);
    /* broken after it: the call stands as read, the rest is content */
    expect_tools("<tool_call>{\"name\": \"f\", \"arguments\": {\"a\": 1 x}}</tool_call>after", "x}}</tool_call>after",
                 1, 1);
    expect_tools("<tool_call>{\"name\": \"f\", \"arguments\": {}} junk", "junk", 1, 1);
    /* a second name or arguments: which is meant? */
    expect_tools("<tool_call>{\"name\": \"f\", \"name\": \"g\", \"arguments\": {}}</tool_call>",
                 ": \"g\", \"arguments\": {}}</tool_call>", 1, 1);
    /* a block after a broken one still parses */
    expect_tools("<tool_call>x</tool_call><tool_call>{\"name\": \"f\", \"arguments\": {}}</tool_call>",
                 "<tool_call>x</tool_call>", 1, 1);
    /* deep nesting past the limit is malformed, not a crash */
    fl_strbuf deep = { 0 };
    fl_strbuf_append_str(&deep, "<tool_call>{\"name\": \"f\", \"arguments\": ");
    for (int i = 0; i < FL_JSON_MAX_DEPTH + 5; i++)
        fl_strbuf_append_char(&deep, '[');
    parsed p;
    parse_tools(deep.data, deep.len, 0, 0, &p);
    assert_true(p.p.malformed && p.p.num_calls == 1);
    parsed_free(&p);
    fl_strbuf_free(&deep);
}

static void test_floats_as_python(void **state)
{
    (void)state;
    size_t i;
    json_t *f;
    json_array_foreach(json_object_get(cases, "floats"), i, f) {
        fl_strbuf out = { 0 };
        fl_pyjson_float(&out, strtod(json_string_value(json_array_get(f, 0)), NULL));
        assert_string_equal(out.data, json_string_value(json_array_get(f, 1)));
        fl_strbuf_free(&out);
    }
}

/* Splits text as the reasoning parser does from start, whole and a byte
 * at a time (the same both ways), and checks the two parts. */
static void expect_reasoning(fl_reasoning_state start, const char *text, const char *reasoning, const char *content)
{
    fl_strbuf r[2] = { { 0 } }, c[2] = { { 0 } };
    for (int way = 0; way < 2; way++) {
        fl_reasoning_parser p;
        fl_reasoning_parser_init(&p, start);
        const size_t n = strlen(text);
        for (size_t i = 0; i < n; i += way ? 1 : n)
            fl_reasoning_parser_push(&p, text + i, way ? 1 : n, &r[way], &c[way]);
        fl_reasoning_parser_finish(&p, &r[way], &c[way]);
        assert_string_equal(str_of(&r[way]), reasoning);
        assert_string_equal(str_of(&c[way]), content);
        fl_strbuf_free(&r[way]);
        fl_strbuf_free(&c[way]);
    }
}

static void test_reasoning(void **state)
{
    (void)state;
    /* Qwen3: the block first, then the answer */
    expect_reasoning(FL_REASONING_BEFORE, "<think>\nLet me see.\n</think>\n\nIt is 4.", "\nLet me see.\n", "\n\nIt is 4.");
    expect_reasoning(FL_REASONING_BEFORE, "It is 4.", "", "It is 4.");              /* no block: content */
    expect_reasoning(FL_REASONING_BEFORE, "<think>\ncut off", "\ncut off", "");     /* never closed: reasoning */
    expect_reasoning(FL_REASONING_BEFORE, "<think></think>", "", "");
    expect_reasoning(FL_REASONING_BEFORE, "<think>a</thi", "a</thi", "");           /* a partial tag at the end */
    expect_reasoning(FL_REASONING_BEFORE, "<thinking>x", "", "<thinking>x");       /* not the tag */
    expect_reasoning(FL_REASONING_BEFORE, "<think>a</think>b<think>c</think>", "a", "b<think>c</think>");
    /* the template opened the block (Qwen3-Thinking-2507): only </think> comes */
    expect_reasoning(FL_REASONING_IN, "a<b</think>c", "a<b", "c");
    /* the template closed it (enable_thinking false): all content */
    expect_reasoning(FL_REASONING_AFTER, "<think>a</think>b", "", "<think>a</think>b");
}

static void test_reasoning_prompt(void **state)
{
    (void)state;
    static const struct { const char *prompt; fl_reasoning_state want; } cases_[] = {
        { "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n", FL_REASONING_BEFORE },
        { "<|im_start|>assistant\n<think>\n", FL_REASONING_IN },
        { "<|im_start|>assistant\n<think>\n\n</think>\n\n", FL_REASONING_AFTER },
        /* a think block of an earlier turn, or a user's <think>, says nothing */
        { "<|im_start|>assistant\n<think>\nx\n</think>\n\nok<|im_end|>\n<|im_start|>assistant\n", FL_REASONING_BEFORE },
        { "<|im_start|>user\nWhat is <think>?<|im_end|>\n<|im_start|>assistant\n", FL_REASONING_BEFORE },
        { "", FL_REASONING_BEFORE },
    };
    for (size_t i = 0; i < sizeof cases_ / sizeof cases_[0]; i++)
        assert_int_equal(fl_reasoning_prompt_state(cases_[i].prompt, strlen(cases_[i].prompt)), cases_[i].want);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tool_calls_as_vllm),
        cmocka_unit_test(test_tool_text),
        cmocka_unit_test(test_floats_as_python),
        cmocka_unit_test(test_reasoning),
        cmocka_unit_test(test_reasoning_prompt),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
