/* fuzz_jinja.c - chat templates (jinja/): any source parses or gives an
 * error; one that parses renders a tool conversation (tools, an assistant
 * turn with tool calls, a tool result) or gives an error, within the
 * engine's limits (a macro calling itself included), never a crash. */
#include <jansson.h>
#include <stdint.h>

#include "jinja/jinja.h"

static json_t *vars;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    vars = json_loads(
        "{\"messages\": [{\"role\": \"system\", \"content\": \"Be brief.\"}, {\"role\": \"user\", "
        "\"content\": \"Hi <b>\"}, {\"role\": \"assistant\", \"content\": null, \"tool_calls\": [{\"id\": "
        "\"c1\", \"type\": \"function\", \"function\": {\"name\": \"f\", \"arguments\": {\"x\": 1}}}, "
        "{\"function\": {\"name\": \"g\", \"arguments\": \"{}\"}}]}, {\"role\": \"tool\", \"tool_call_id\": "
        "\"c1\", \"name\": \"f\", \"content\": \"42\"}, {\"role\": \"assistant\", \"content\": \"Hello\"}], "
        "\"tools\": [{\"type\": \"function\", \"function\": {\"name\": \"f\", \"description\": \"F.\", "
        "\"parameters\": {\"type\": \"object\", \"properties\": {\"x\": {\"type\": \"integer\", "
        "\"description\": \"X\"}, \"y\": {\"type\": \"array\", \"items\": {\"type\": \"string\"}}}, "
        "\"required\": [\"x\"]}}}], \"add_generation_prompt\": true, \"bos_token\": \"<s>\", "
        "\"eos_token\": \"</s>\", \"enable_thinking\": false, \"date_string\": \"26 Jul 2024\"}",
        0, NULL);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fl_error err;
    fl_jinja *t = fl_jinja_parse((const char *)data, size, &err);
    if (!t)
        return 0;
    fl_strbuf out = { 0 };
    fl_jinja_render(t, vars, &out, &err);
    fl_strbuf_free(&out);
    fl_jinja_free(t);
    return 0;
}
