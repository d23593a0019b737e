/* fuzz_jinja.c - chat templates (jinja/): any source parses or gives an
 * error; one that parses renders a two-message conversation or gives an
 * error, within the engine's limits, never a crash. */
#include <jansson.h>
#include <stdint.h>

#include "jinja/jinja.h"

static json_t *vars;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    vars = json_loads("{\"messages\": [{\"role\": \"system\", \"content\": \"Be brief.\"}, {\"role\": "
                      "\"user\", \"content\": \"Hi <b>\"}, {\"role\": \"assistant\", \"content\": "
                      "\"Hello\", \"tool_calls\": [{\"function\": {\"name\": \"f\", \"arguments\": "
                      "{\"x\": 1}}}]}], \"add_generation_prompt\": true, \"bos_token\": \"<s>\", "
                      "\"eos_token\": \"</s>\", \"tools\": null, \"enable_thinking\": false}", 0, NULL);
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
