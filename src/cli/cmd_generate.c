/* cmd_generate.c - `flashlm generate`: offline generation through the
 * engine, as vLLM's LLM.generate does it.
 *
 * Prompts come from --prompt-ids, --prompt and --prompts-file (a line that
 * starts with '[' is a JSON array of token ids, any other line is text; text
 * needs the model's tokenizer or --tokenizer). All run through the
 * scheduler together; each output sequence is printed as one JSON object a
 * line, in prompt order: {"prompt", "index", "token_ids", "finish_reason",
 * "text" (with a tokenizer), "logprobs" (with --logprobs)}. */
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "cli/cli.h"
#include "cli/startup.h"
#include "engine/engine.h"
#include "tokenizer/tokenizer.h"

static const char generate_help[] =
    "usage: flashlm generate MODEL [options]\n"
    "Generates from every prompt at once through the engine; prints one JSON object\n"
    "per output sequence.\n\n" FL_MODEL_OPTS_HELP
    "  --tokenizer DIR        tokenizer directory (default: the model directory)\n"
    "prompts:\n"
    "  --prompt TEXT          a text prompt (repeatable)\n"
    "  --prompt-ids IDS       a prompt as token ids: \"1,2,3\" or \"[1, 2, 3]\" (repeatable)\n"
    "  --prompts-file FILE    a prompt a line: '[...]' ids, anything else text\n"
    "sampling (vLLM's SamplingParams):\n"
    "  --max-tokens N (16)  --min-tokens N  --n N  --temperature T (1.0)  --top-k K\n"
    "  --top-p P  --min-p P  --repetition-penalty R  --presence-penalty P\n"
    "  --frequency-penalty F  --stop STR (repeatable)  --stop-token-ids IDS\n"
    "  --ignore-eos  --logprobs N\n"
    FL_ENGINE_OPTS_HELP;

enum {
    OPT_TOKENIZER = FL_OPT_FIRST_OWN, OPT_PROMPT, OPT_PROMPT_IDS, OPT_PROMPTS_FILE, OPT_MAX_TOKENS,
    OPT_MIN_TOKENS, OPT_N, OPT_TEMPERATURE, OPT_TOP_K, OPT_TOP_P, OPT_MIN_P, OPT_REP_PENALTY,
    OPT_PRES_PENALTY, OPT_FREQ_PENALTY, OPT_STOP, OPT_STOP_IDS, OPT_IGNORE_EOS, OPT_LOGPROBS,
};

/* A prompt: ids, or text to tokenize once the tokenizer is loaded. */
typedef struct prompt {
    int32_t *ids;
    int len;
    char *text;
} prompt;

typedef struct generate_opts {
    fl_model_opts model;
    const char *tokenizer_dir;
    prompt *prompts;
    int num_prompts;
    fl_sampling_params sp;
    fl_engine_opts eng;
} generate_opts;

static void add_prompt(generate_opts *o, prompt p)
{
    o->prompts = fl_realloc(o->prompts, (size_t)(o->num_prompts + 1) * sizeof(prompt));
    o->prompts[o->num_prompts++] = p;
}

/* Integers separated by commas, spaces or brackets; the error names where. */
static int parse_ids(const char *text, const char *where, prompt *out, fl_error *err)
{
    int cap = 16, n = 0;
    int32_t *ids = fl_malloc((size_t)cap * sizeof(int32_t));
    for (const char *p = text; *p;) {
        if (strchr(" \t\r\n,[]", *p)) {
            p++;
            continue;
        }
        char *end;
        errno = 0;
        long long v = strtoll(p, &end, 10);
        if (end == p || errno != 0 || v < 0 || v > INT32_MAX) {
            free(ids);
            return fl_fail(err, "%s: '%.*s' is not a token id", where,
                           (int)strcspn(p, " \t\r\n,[]"), p);
        }
        if (n == cap)
            ids = fl_realloc(ids, (size_t)(cap *= 2) * sizeof(int32_t));
        ids[n++] = (int32_t)v;
        p = end;
    }
    if (n == 0) {
        free(ids);
        return fl_fail(err, "%s: no token ids", where);
    }
    *out = (prompt){ .ids = ids, .len = n };
    return 0;
}

static int read_prompts_file(generate_opts *o, const char *path, fl_error *err)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return fl_fail(err, "--prompts-file: %s: %s", path, strerror(errno));
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    int lineno = 0, rc = 0;
    while (rc == 0 && (len = getline(&line, &cap, f)) != -1) {
        lineno++;
        while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
            line[--len] = '\0';
        if (len == 0)
            continue;
        prompt p = { 0 };
        if (line[0] == '[') {
            char where[512];
            snprintf(where, sizeof where, "%s:%d", path, lineno);
            rc = parse_ids(line, where, &p, err);
        } else {
            p.text = fl_strdup(line);
        }
        if (rc == 0)
            add_prompt(o, p);
    }
    free(line);
    fclose(f);
    return rc;
}

static int take_option(generate_opts *o, int opt, const char *arg, fl_error *err)
{
    fl_sampling_params *sp = &o->sp;
    prompt p;
    switch (opt) {
    case OPT_TOKENIZER: o->tokenizer_dir = arg; return 0;
    case OPT_PROMPT: add_prompt(o, (prompt){ .text = fl_strdup(arg) }); return 0;
    case OPT_PROMPT_IDS:
        if (parse_ids(arg, "--prompt-ids", &p, err) != 0)
            return -1;
        add_prompt(o, p);
        return 0;
    case OPT_PROMPTS_FILE: return read_prompts_file(o, arg, err);
    case OPT_MAX_TOKENS: return fl_cli_int32("--max-tokens", arg, 1, 1 << 24, &sp->max_tokens, err);
    case OPT_MIN_TOKENS: return fl_cli_int32("--min-tokens", arg, 0, 1 << 24, &sp->min_tokens, err);
    case OPT_N: return fl_cli_int32("--n", arg, 1, 256, &sp->n, err);
    case OPT_TEMPERATURE: return fl_cli_float("--temperature", arg, 0, 100, &sp->draw.temperature, err);
    case OPT_TOP_K: return fl_cli_int32("--top-k", arg, -1, 1 << 24, &sp->draw.top_k, err);
    case OPT_TOP_P: return fl_cli_float("--top-p", arg, 1e-9, 1, &sp->draw.top_p, err);
    case OPT_MIN_P: return fl_cli_float("--min-p", arg, 0, 1, &sp->draw.min_p, err);
    case OPT_REP_PENALTY:
        return fl_cli_float("--repetition-penalty", arg, 1e-6, 100, &sp->repetition_penalty, err);
    case OPT_PRES_PENALTY:
        return fl_cli_float("--presence-penalty", arg, -2, 2, &sp->presence_penalty, err);
    case OPT_FREQ_PENALTY:
        return fl_cli_float("--frequency-penalty", arg, -2, 2, &sp->frequency_penalty, err);
    case OPT_STOP:
        if (!*arg)
            return fl_fail(err, "--stop: an empty stop string");
        sp->stop = fl_realloc(sp->stop, (size_t)(sp->num_stop + 1) * sizeof(char *));
        sp->stop[sp->num_stop++] = fl_strdup(arg);
        return 0;
    case OPT_STOP_IDS:
        if (parse_ids(arg, "--stop-token-ids", &p, err) != 0)
            return -1;
        free(sp->stop_token_ids);
        sp->stop_token_ids = p.ids;
        sp->num_stop_token_ids = p.len;
        return 0;
    case OPT_IGNORE_EOS: sp->ignore_eos = 1; return 0;
    case OPT_LOGPROBS: return fl_cli_int32("--logprobs", arg, 0, 20, &sp->logprobs, err);
    default: return 1; /* not ours */
    }
}

static int take_option_cb(void *ctx, int opt, const char *arg, fl_error *err)
{
    return take_option(ctx, opt, arg, err);
}

static int parse_args(generate_opts *o, int argc, char **argv, fl_error *err)
{
    static const struct option opts[] = {
        FL_MODEL_OPTS_LONG,
        { "tokenizer", required_argument, NULL, OPT_TOKENIZER },
        { "prompt", required_argument, NULL, OPT_PROMPT },
        { "prompt-ids", required_argument, NULL, OPT_PROMPT_IDS },
        { "prompts-file", required_argument, NULL, OPT_PROMPTS_FILE },
        { "max-tokens", required_argument, NULL, OPT_MAX_TOKENS },
        { "min-tokens", required_argument, NULL, OPT_MIN_TOKENS },
        { "n", required_argument, NULL, OPT_N },
        { "temperature", required_argument, NULL, OPT_TEMPERATURE },
        { "top-k", required_argument, NULL, OPT_TOP_K },
        { "top-p", required_argument, NULL, OPT_TOP_P },
        { "min-p", required_argument, NULL, OPT_MIN_P },
        { "repetition-penalty", required_argument, NULL, OPT_REP_PENALTY },
        { "presence-penalty", required_argument, NULL, OPT_PRES_PENALTY },
        { "frequency-penalty", required_argument, NULL, OPT_FREQ_PENALTY },
        { "stop", required_argument, NULL, OPT_STOP },
        { "stop-token-ids", required_argument, NULL, OPT_STOP_IDS },
        { "ignore-eos", no_argument, NULL, OPT_IGNORE_EOS },
        { "logprobs", required_argument, NULL, OPT_LOGPROBS },
        FL_ENGINE_OPTS_LONG,
        { "help", no_argument, NULL, 'h' },
        { 0 },
    };
    int rc = fl_cli_parse_engine_command("generate", generate_help, argc, argv, opts, NULL, 0, &o->model,
                                         &o->eng, take_option_cb, o, err);
    if (rc != 0)
        return rc;
    if (o->sp.logprobs > o->eng.max_logprobs)
        return fl_fail(err, "--logprobs %d: more than --max-logprobs %d", o->sp.logprobs, o->eng.max_logprobs);
    if (o->num_prompts == 0)
        return fl_fail(err, "no prompts (give --prompt, --prompt-ids or --prompts-file)");
    return 0;
}

/* ---- results ---- */

typedef struct result {
    fl_ids ids;
    fl_strbuf text;
    const char *finish_reason;
    json_t *logprobs;   /* [{token_id, logprob, top_logprobs}], when asked for */
} result;

typedef struct collector {
    result *results;  /* [num_prompts * n] */
    int n;
} collector;

static void collect(void *ctx, const fl_seq_output *out)
{
    collector *c = ctx;
    result *r = &c->results[out->request_id * (uint64_t)c->n + (uint64_t)out->index];
    if (out->token >= 0)
        fl_ids_push(&r->ids, out->token);
    if (out->token >= 0 && out->logprobs) {
        json_t *top = json_array();
        for (int i = 0; i < out->logprobs->count; i++)
            json_array_append_new(top, json_pack("{s:i,s:f}", "token_id", out->logprobs->ids[i],
                                                 "logprob", (double)out->logprobs->values[i]));
        if (!r->logprobs)
            r->logprobs = json_array();
        json_array_append_new(r->logprobs, json_pack("{s:i,s:f,s:o}", "token_id", out->token,
                                                     "logprob", (double)out->logprobs->chosen,
                                                     "top_logprobs", top));
    }
    fl_strbuf_append(&r->text, out->text, out->text_len);
    if (out->finished)
        r->finish_reason = out->finish_reason;
}

static void print_result(int prompt_index, int index, const result *r, int with_text)
{
    json_t *ids = json_array();
    for (size_t i = 0; i < r->ids.len; i++)
        json_array_append_new(ids, json_integer(r->ids.data[i]));
    json_t *o = json_pack("{s:i,s:i,s:o,s:s}", "prompt", prompt_index, "index", index,
                          "token_ids", ids, "finish_reason", r->finish_reason ? r->finish_reason : "");
    if (with_text)
        json_object_set_new(o, "text", json_stringn(r->text.data ? r->text.data : "", r->text.len));
    if (r->logprobs)
        json_object_set(o, "logprobs", r->logprobs);
    char *s = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_ENSURE_ASCII);
    puts(s);
    free(s);
    json_decref(o);
}

/* Before the runner: text prompts become ids (they and stop strings need
 * the tokenizer; without them it is optional). */
static int encode_prompts(void *ctx, const fl_model_config *cfg, const fl_tokenizer *tok,
                          fl_error *err)
{
    (void)cfg;
    generate_opts *o = ctx;
    int needed = o->sp.num_stop > 0;
    for (int i = 0; i < o->num_prompts; i++)
        needed |= o->prompts[i].text != NULL;
    if (!tok)
        return needed ? fl_fail(err, "text prompts and stop strings need a tokenizer: '%s' has no "
                                "tokenizer.json (give --tokenizer DIR)", o->model.model) : 0;
    fl_tok_scratch s;
    fl_tok_scratch_init(&s, tok);
    for (int i = 0; i < o->num_prompts; i++) {
        prompt *p = &o->prompts[i];
        if (!p->text)
            continue;
        fl_ids ids = { 0 };
        fl_tokenizer_encode(tok, &s, p->text, strlen(p->text), 1, &ids);
        p->ids = ids.data;
        p->len = (int)ids.len;
    }
    fl_tok_scratch_free(&s);
    return 0;
}

static int run(generate_opts *o, fl_error *err)
{
    collector c = { fl_calloc((size_t)o->num_prompts * o->sp.n, sizeof(result)), o->sp.n };
    fl_startup st;
    if (fl_startup_open(&st, &o->model, &o->eng, o->tokenizer_dir, FL_TOKENIZER_OPTIONAL,
                        encode_prompts, o, collect, &c, err) != 0) {
        free(c.results);
        return -1;
    }
    int rc = 0;
    for (int i = 0; i < o->num_prompts && rc == 0; i++) {
        if (fl_engine_add(st.engine, (uint64_t)i, o->prompts[i].ids, o->prompts[i].len, &o->sp, err) != 0)
            rc = fl_fail_prefix(err, "prompt %d", i + 1);
    }
    while (rc == 0 && fl_engine_step(st.engine) > 0)
        ;
    for (int i = 0; rc == 0 && i < o->num_prompts * o->sp.n; i++)
        print_result(i / o->sp.n, i % o->sp.n, &c.results[i], st.have_tok);
    fl_startup_close(&st);
    for (int i = 0; i < o->num_prompts * o->sp.n; i++) {
        fl_ids_free(&c.results[i].ids);
        fl_strbuf_free(&c.results[i].text);
        json_decref(c.results[i].logprobs);
    }
    free(c.results);
    return rc;
}

int fl_cmd_generate(int argc, char **argv)
{
    generate_opts o = { 0 };
    fl_sampling_params_default(&o.sp);
    fl_engine_opts_default(&o.eng);
    o.eng.usage = FL_USAGE_OFFLINE;
    fl_error err = { "" };
    int rc = parse_args(&o, argc, argv, &err);
    if (rc == 0)
        rc = run(&o, &err);
    if (rc < 0)
        fprintf(stderr, "flashlm generate: %s\n", err.msg);
    for (int i = 0; i < o.num_prompts; i++) {
        free(o.prompts[i].ids);
        free(o.prompts[i].text);
    }
    free(o.prompts);
    fl_sampling_params_free(&o.sp);
    return rc < 0 ? 1 : 0;
}
