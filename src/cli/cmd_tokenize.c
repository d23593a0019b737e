/* cmd_tokenize.c - `flashlm tokenize DIR`: text on stdin to ids, or back,
 * or a conversation through the chat template.
 *
 * DIR is a model or tokenizer directory (tokenizer.json). Encoding prints a
 * JSON array of ids; --decode reads a JSON array of ids and prints the text;
 * --apply-chat-template reads a JSON array of messages and prints the ids of
 * the rendered prompt (or, with --render-only, the prompt). Scripts and
 * tests use it to check flashlm's tokenizer against others. */
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>

#include "base/mapped_file.h"
#include "base/strbuf.h"
#include "cli/cli.h"
#include "tokenizer/chat_template.h"
#include "tokenizer/tokenizer.h"

static const char tokenize_help[] =
    "usage: flashlm tokenize DIR [options] < input\n"
    "Encodes text from stdin with DIR/tokenizer.json and prints a JSON array of ids.\n\n"
    "  --add-special-tokens   apply the post-processor template (e.g. a BOS token)\n"
    "  --decode               read a JSON array of ids instead and print their text\n"
    "  --skip-special-tokens  with --decode: leave special tokens out\n"
    "  --apply-chat-template  read a JSON array of messages and encode the prompt the\n"
    "                         chat template makes of them\n"
    "  --render-only          with --apply-chat-template: print the prompt, not its ids\n"
    "  --no-add-generation-prompt\n"
    "                         render without the assistant turn's opening\n"
    "  --chat-template FILE   use this Jinja template instead of tokenizer_config.json's\n"
    "  --chat-template-kwargs JSON\n"
    "                         extra template variables, e.g. '{\"enable_thinking\": false}'\n"
    "                         or the tools: '{\"tools\": [{\"type\": \"function\", ...}]}'\n";

enum { OPT_ADD_SPECIAL = 1, OPT_DECODE, OPT_SKIP_SPECIAL, OPT_APPLY_TEMPLATE, OPT_RENDER_ONLY,
       OPT_NO_GEN_PROMPT, OPT_TEMPLATE_FILE, OPT_TEMPLATE_KWARGS };

typedef struct tokenize_opts {
    int add_special, decode, skip_special, apply_template, render_only, no_gen_prompt;
    const char *template_file, *template_kwargs;
} tokenize_opts;

static void read_stdin(fl_strbuf *in)
{
    char buf[65536];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, stdin)) > 0)
        fl_strbuf_append(in, buf, n);
}

static int decode_ids(const fl_tokenizer *tok, const fl_strbuf *in, int skip_special,
                      fl_error *err)
{
    json_error_t jerr;
    json_t *arr = json_loadb(in->data ? in->data : "", in->len, 0, &jerr);
    if (!json_is_array(arr)) {
        json_decref(arr);
        return fl_fail(err, "--decode: stdin is not a JSON array of ids");
    }
    int32_t *ids = malloc((json_array_size(arr) + 1) * sizeof(int32_t));
    size_t i;
    json_t *v;
    json_array_foreach(arr, i, v) {
        if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) > INT32_MAX) {
            free(ids);
            json_decref(arr);
            return fl_fail(err, "--decode: element %zu is not a token id", i);
        }
        ids[i] = (int32_t)json_integer_value(v);
    }
    fl_strbuf text = { 0 };
    fl_tokenizer_decode(tok, ids, json_array_size(arr), skip_special, &text);
    fwrite(text.data ? text.data : "", 1, text.len, stdout);
    fl_strbuf_free(&text);
    free(ids);
    json_decref(arr);
    return 0;
}

static void encode_text(const fl_tokenizer *tok, const char *text, size_t len, int add_special)
{
    fl_tok_scratch scratch;
    fl_tok_scratch_init(&scratch, tok);
    fl_ids ids = { 0 };
    fl_tokenizer_encode(tok, &scratch, text, len, add_special, &ids);
    putchar('[');
    for (size_t i = 0; i < ids.len; i++)
        printf(i ? ", %d" : "%d", ids.data[i]);
    puts("]");
    fl_ids_free(&ids);
    fl_tok_scratch_free(&scratch);
}

/* Renders the messages on stdin with the chat template; prints the prompt
 * or its ids. */
static int chat_prompt(const fl_tokenizer *tok, const tokenize_opts *o, const fl_strbuf *in,
                       fl_error *err)
{
    char *file_text = NULL;
    const char *source = tok->chat_template, *origin = "tokenizer_config.json";
    if (o->template_file) {
        if (!(file_text = fl_read_text_file(o->template_file, NULL, err)))
            return fl_fail_prefix(err, "--chat-template");
        source = file_text;
        origin = o->template_file;
    }
    json_t *messages = NULL, *kwargs = NULL;
    json_error_t jerr;
    fl_chat_template ct = { 0 };
    fl_strbuf prompt = { 0 };
    int rc = -1;
    if (!source) {
        fl_fail(err, "the tokenizer has no chat template (give one with --chat-template FILE)");
        goto out;
    }
    if (fl_chat_template_init(&ct, source, origin, tok, err) != 0)
        goto out;
    if (o->template_kwargs)
        kwargs = json_loads(o->template_kwargs, 0, &jerr);
    if (o->template_kwargs && !json_is_object(kwargs)) {
        fl_fail(err, "--chat-template-kwargs: not a JSON object");
        goto out;
    }
    messages = json_loadb(in->data ? in->data : "", in->len, 0, &jerr);
    if (!json_is_array(messages)) {
        fl_fail(err, "--apply-chat-template: stdin is not a JSON array of messages");
        goto out;
    }
    if (fl_chat_template_render(&ct, messages, kwargs, !o->no_gen_prompt, &prompt, err) != 0)
        goto out;
    if (o->render_only)
        fwrite(prompt.data ? prompt.data : "", 1, prompt.len, stdout);
    else
        encode_text(tok, prompt.data ? prompt.data : "", prompt.len, 0);
    rc = 0;
out:
    fl_strbuf_free(&prompt);
    fl_chat_template_free(&ct);
    json_decref(messages);
    json_decref(kwargs);
    free(file_text);
    return rc;
}

static int parse_args(tokenize_opts *o, int argc, char **argv, fl_error *err)
{
    static const struct option opts[] = {
        { "add-special-tokens", no_argument, NULL, OPT_ADD_SPECIAL },
        { "decode", no_argument, NULL, OPT_DECODE },
        { "skip-special-tokens", no_argument, NULL, OPT_SKIP_SPECIAL },
        { "apply-chat-template", no_argument, NULL, OPT_APPLY_TEMPLATE },
        { "render-only", no_argument, NULL, OPT_RENDER_ONLY },
        { "no-add-generation-prompt", no_argument, NULL, OPT_NO_GEN_PROMPT },
        { "chat-template", required_argument, NULL, OPT_TEMPLATE_FILE },
        { "chat-template-kwargs", required_argument, NULL, OPT_TEMPLATE_KWARGS },
        { "help", no_argument, NULL, 'h' },
        { 0 },
    };
    int opt;
    optind = 0;
    while ((opt = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        switch (opt) {
        case 'h':
            fputs(tokenize_help, stdout);
            return 1;
        case OPT_ADD_SPECIAL: o->add_special = 1; break;
        case OPT_DECODE: o->decode = 1; break;
        case OPT_SKIP_SPECIAL: o->skip_special = 1; break;
        case OPT_APPLY_TEMPLATE: o->apply_template = 1; break;
        case OPT_RENDER_ONLY: o->render_only = 1; break;
        case OPT_NO_GEN_PROMPT: o->no_gen_prompt = 1; break;
        case OPT_TEMPLATE_FILE: o->template_file = optarg; break;
        case OPT_TEMPLATE_KWARGS: o->template_kwargs = optarg; break;
        default:
            return fl_cli_bad_option(err, "tokenize", opt, argv, optind);
        }
    }
    if (optind + 1 != argc)
        return fl_fail(err, "give exactly one tokenizer or model directory");
    if (o->decode && o->apply_template)
        return fl_fail(err, "--decode and --apply-chat-template exclude each other");
    return 0;
}

int fl_cmd_tokenize(int argc, char **argv)
{
    tokenize_opts o = { 0 };
    fl_error err;
    int parsed = parse_args(&o, argc, argv, &err);
    if (parsed > 0)
        return 0;
    if (parsed < 0)
        goto fail;
    fl_tokenizer tok;
    if (fl_tokenizer_load(&tok, argv[argc - 1], &err) != 0)
        goto fail;
    fl_strbuf in = { 0 };
    read_stdin(&in);
    int rc = 0;
    if (o.decode)
        rc = decode_ids(&tok, &in, o.skip_special, &err);
    else if (o.apply_template)
        rc = chat_prompt(&tok, &o, &in, &err);
    else
        encode_text(&tok, in.data ? in.data : "", in.len, o.add_special);
    fl_strbuf_free(&in);
    fl_tokenizer_free(&tok);
    if (rc == 0)
        return 0;
fail:
    fprintf(stderr, "flashlm tokenize: %s\n", err.msg);
    return 1;
}
