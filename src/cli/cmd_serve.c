/* cmd_serve.c - `flashlm serve MODEL`: load, then serve the OpenAI API
 * until SIGINT or SIGTERM, with vLLM's flags.
 *
 * HTTP starts first, so /health answers 503 while the model loads. On a
 * signal the server stops accepting, aborts what is in flight (streams end
 * with finish_reason "abort" and [DONE]), waits for the connections, and
 * exits 0; a signal while the model loads exits 0 at once. Signals are
 * caught by a handler, not a mask: threads made before main (OpenBLAS's
 * pool) would otherwise take SIGTERM's default and kill the process. */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "base/alloc.h"
#include "base/mapped_file.h"
#include "cli/cli.h"
#include "cli/cli_args.h"
#include "cli/startup.h"
#include "server/http.h"
#include "server/openai.h"
#include "server/server.h"

static const char serve_help[] =
    "usage: flashlm serve MODEL [options]\n"
    "Serves the OpenAI API (/v1/completions, /v1/chat/completions, /v1/models, /health,\n"
    "/metrics, /tokenize, /detokenize).\n\n" FL_MODEL_OPTS_HELP
    "  --host ADDR            address or host name to listen on, IPv4 or IPv6 (default 0.0.0.0)\n"
    "  --port N               (default 8000)\n"
    "  --api-key KEY          require 'Authorization: Bearer KEY' on /v1/ routes\n"
    "  --served-model-name NAME [NAME ...]  the names clients may use (default: MODEL);\n"
    "                         responses report the first\n"
    "  --tokenizer DIR        tokenizer directory (default: the model directory)\n"
    "  --chat-template T      a Jinja chat template instead of the tokenizer's: a file, or\n"
    "                         the template itself if T is not a file\n"
    "  --max-connections N    open HTTP connections at once (default 16384, at most the\n"
    "                         descriptors allow)\n"
    "  --max-connections-per-client N  from one IP address (default 4096)\n"
    "  --disable-log-stats    no periodic stat line (vLLM's, every 10 s while there is work)\n"
    "  --enable-log-requests  a log line as each request arrives and as it ends\n"
    "  --allowed-origins JSON, --allowed-methods JSON, --allowed-headers JSON  CORS, as vLLM's:\n"
    "                         JSON lists (default [\"*\"]); --allow-credentials\n"
    "  --enable-auto-tool-choice  tool_choice \"auto\": the reply's tool calls are parsed (needs\n"
    "                         --tool-call-parser)\n"
    "  --tool-call-parser NAME  how tool calls are written: hermes (<tool_call> JSON blocks:\n"
    "                         Qwen2.5, Qwen3, Hermes)\n"
    "  --exclude-tools-when-tool-choice-none  tool_choice \"none\" leaves the tools out of the prompt\n"
    "  --reasoning-parser NAME  split the reply's reasoning into reasoning_content: qwen3\n"
    "                         (<think>...</think>)\n"
    FL_ENGINE_OPTS_HELP;

enum {
    OPT_HOST = FL_OPT_FIRST_OWN, OPT_PORT, OPT_API_KEY, OPT_SERVED_NAME, OPT_TOKENIZER,
    OPT_CHAT_TEMPLATE, OPT_MAX_CONNECTIONS, OPT_MAX_CONNECTIONS_PER_CLIENT, OPT_SERVED_NAME_MORE,
    OPT_ALLOWED_ORIGINS, OPT_ALLOWED_METHODS, OPT_ALLOWED_HEADERS, OPT_ALLOW_CREDENTIALS,
    OPT_DISABLE_LOG_STATS, OPT_ENABLE_LOG_REQUESTS, OPT_AUTO_TOOL_CHOICE, OPT_TOOL_CALL_PARSER,
    OPT_EXCLUDE_TOOLS, OPT_REASONING_PARSER,
};

#define MAX_SERVED_NAMES 64

typedef struct serve_opts {
    fl_model_opts model;
    fl_server_config sc;
    fl_engine_opts eng;
    const char *tokenizer_dir, *chat_template;
    const char *names[MAX_SERVED_NAMES]; /* --served-model-name's */
    int num_names;
} serve_opts;

/* A CORS flag's JSON list of strings (vLLM parses them with json.loads),
 * as a NULL-terminated array that lives until exit. */
static int cors_list(const char *flag, const char *arg, const char *const **out, fl_error *err)
{
    json_error_t je;
    json_t *v = json_loads(arg, JSON_DECODE_ANY, &je);
    if (!v || !json_is_array(v)) {
        json_decref(v);
        return fl_fail(err, "%s: '%s' is not a JSON list of strings (e.g. '[\"*\"]')", flag, arg);
    }
    const char **list = fl_calloc(json_array_size(v) + 1, sizeof *list);
    for (size_t i = 0; i < json_array_size(v); i++) {
        json_t *e = json_array_get(v, i);
        if (!json_is_string(e)) {
            free(list);
            json_decref(v);
            return fl_fail(err, "%s: '%s' is not a JSON list of strings (e.g. '[\"*\"]')", flag, arg);
        }
        list[i] = fl_strdup(json_string_value(e));
    }
    json_decref(v);
    *out = list;
    return 0;
}

static int take(serve_opts *o, int opt, const char *arg, fl_error *err)
{
    switch (opt) {
    case OPT_HOST: o->sc.host = arg; return 0;
    case OPT_PORT: return fl_cli_int32("--port", arg, 1, 65535, &o->sc.port, err);
    case OPT_API_KEY: o->sc.api_key = arg; return 0;
    case OPT_SERVED_NAME: /* a later --served-model-name (the command line after --config) replaces */
        o->num_names = 0;
        /* fall through */
    case OPT_SERVED_NAME_MORE:
        if (!*arg)
            return fl_fail(err, "--served-model-name: an empty name");
        if (o->num_names == MAX_SERVED_NAMES)
            return fl_fail(err, "--served-model-name: more than %d names", MAX_SERVED_NAMES);
        o->names[o->num_names++] = arg;
        return 0;
    case OPT_TOKENIZER: o->tokenizer_dir = arg; return 0;
    case OPT_ALLOWED_ORIGINS: return cors_list("--allowed-origins", arg, &o->sc.cors_origins, err);
    case OPT_ALLOWED_METHODS: return cors_list("--allowed-methods", arg, &o->sc.cors_methods, err);
    case OPT_ALLOWED_HEADERS: return cors_list("--allowed-headers", arg, &o->sc.cors_headers, err);
    case OPT_ALLOW_CREDENTIALS: o->sc.cors_credentials = 1; return 0;
    case OPT_DISABLE_LOG_STATS: o->sc.disable_log_stats = 1; return 0;
    case OPT_ENABLE_LOG_REQUESTS: o->sc.enable_log_requests = 1; return 0;
    case OPT_AUTO_TOOL_CHOICE: o->sc.enable_auto_tool_choice = 1; return 0;
    case OPT_EXCLUDE_TOOLS: o->sc.exclude_tools_when_tool_choice_none = 1; return 0;
    case OPT_TOOL_CALL_PARSER: /* vLLM registers some 30; flashlm builds one */
        if (strcmp(arg, "hermes") != 0)
            return fl_fail(err, "--tool-call-parser %s: not built (the tool call parsers built: hermes, "
                           "for <tool_call> JSON blocks: Qwen2.5, Qwen3, Hermes)", arg);
        o->sc.tool_call_parser = arg;
        return 0;
    case OPT_REASONING_PARSER:
        if (strcmp(arg, "qwen3") != 0)
            return fl_fail(err, "--reasoning-parser %s: not built (the reasoning parsers built: qwen3)", arg);
        o->sc.reasoning_parser = arg;
        return 0;
    case OPT_CHAT_TEMPLATE: o->chat_template = arg; return 0;
    case OPT_MAX_CONNECTIONS:
        return fl_cli_int32("--max-connections", arg, 16, 1 << 20, &o->sc.max_connections, err);
    case OPT_MAX_CONNECTIONS_PER_CLIENT:
        return fl_cli_int32("--max-connections-per-client", arg, 1, 1 << 20,
                            &o->sc.max_connections_per_client, err);
    default: return 1;
    }
}

static int take_cb(void *ctx, int opt, const char *arg, fl_error *err)
{
    return take(ctx, opt, arg, err);
}

static int parse_args(serve_opts *o, int argc, char **argv, fl_error *err)
{
    static const struct option opts[] = {
        FL_MODEL_OPTS_LONG,
        { "host", required_argument, NULL, OPT_HOST },
        { "port", required_argument, NULL, OPT_PORT },
        { "api-key", required_argument, NULL, OPT_API_KEY },
        { "served-model-name", required_argument, NULL, OPT_SERVED_NAME },
        { "served-model-name" FL_CLI_MORE_SUFFIX, required_argument, NULL, OPT_SERVED_NAME_MORE },
        { "tokenizer", required_argument, NULL, OPT_TOKENIZER },
        { "allowed-origins", required_argument, NULL, OPT_ALLOWED_ORIGINS },
        { "allowed-methods", required_argument, NULL, OPT_ALLOWED_METHODS },
        { "allowed-headers", required_argument, NULL, OPT_ALLOWED_HEADERS },
        { "allow-credentials", no_argument, NULL, OPT_ALLOW_CREDENTIALS },
        { "disable-log-stats", no_argument, NULL, OPT_DISABLE_LOG_STATS },
        { "enable-log-requests", no_argument, NULL, OPT_ENABLE_LOG_REQUESTS },
        { "enable-auto-tool-choice", no_argument, NULL, OPT_AUTO_TOOL_CHOICE },
        { "tool-call-parser", required_argument, NULL, OPT_TOOL_CALL_PARSER },
        { "exclude-tools-when-tool-choice-none", no_argument, NULL, OPT_EXCLUDE_TOOLS },
        { "reasoning-parser", required_argument, NULL, OPT_REASONING_PARSER },
        { "chat-template", required_argument, NULL, OPT_CHAT_TEMPLATE },
        { "max-connections", required_argument, NULL, OPT_MAX_CONNECTIONS },
        { "max-connections-per-client", required_argument, NULL, OPT_MAX_CONNECTIONS_PER_CLIENT },
        FL_ENGINE_OPTS_LONG,
        { "help", no_argument, NULL, 'h' },
        { 0 },
    };
    static const char *const nargs[] = { "served-model-name", NULL };
    int rc = fl_cli_parse_engine_command("serve", serve_help, argc, argv, opts, nargs, 1, &o->model,
                                         &o->eng, take_cb, o, err);
    if (rc != 0)
        return rc;
    if (o->num_names > 0) {
        o->sc.served_model_names = o->names;
        o->sc.num_served_model_names = o->num_names;
        o->sc.served_model_name = o->names[0];
    } else {
        o->sc.served_model_name = o->model.model;
    }
    o->sc.max_logprobs = o->eng.max_logprobs;
    o->sc.generation_config = o->eng.generation_config;
    if (o->sc.enable_auto_tool_choice && !o->sc.tool_call_parser) /* vLLM's check, and words */
        return fl_fail(err, "--enable-auto-tool-choice requires --tool-call-parser");
    if (o->sc.tool_call_parser && !o->sc.enable_auto_tool_choice)
        fprintf(stderr, "INFO flashlm: --tool-call-parser %s changes nothing here without "
                "--enable-auto-tool-choice: tool calls are parsed for tool_choice \"auto\" only\n",
                o->sc.tool_call_parser);
    return 0;
}

/* Everything the model needs, loaded while HTTP already answers 503. */
typedef struct loaded {
    fl_startup st;
    const fl_server_config *sc;    /* the flags: the parsers the model must suit */
    const char *chat_template_file;
    fl_chat_template chat;
    int have_chat;
    fl_harmony harmony;
    int have_harmony;
} loaded;

/* Before the runner, so that a bad one fails the start-up: how chat
 * requests become prompts. gpt-oss is prompted in the harmony format, as
 * vLLM decides by the model (not through a template: --chat-template is
 * refused rather than ignored); any other model through the chat template
 * (--chat-template, else the tokenizer's). */
static int prepare_chat(void *ctx, const fl_model_config *cfg, const fl_tokenizer *tok,
                        fl_error *err)
{
    loaded *l = ctx;
    if (strcmp(cfg->arch->hf_class, "GptOssForCausalLM") == 0) {
        if (l->chat_template_file)
            return fl_fail(err, "--chat-template: %s is prompted in the harmony format, not "
                           "through a chat template", cfg->arch->hf_class);
        if (l->sc->reasoning_parser)
            return fl_fail(err, "--reasoning-parser %s: %s replies in the harmony format, whose own "
                           "parser splits the reasoning", l->sc->reasoning_parser, cfg->arch->hf_class);
        if (l->sc->tool_call_parser)
            return fl_fail(err, "--tool-call-parser %s: %s calls tools in the harmony format, which "
                           "is not supported yet", l->sc->tool_call_parser, cfg->arch->hf_class);
        if (fl_harmony_init(&l->harmony, tok, err) != 0)
            return fl_fail_prefix(err, "%s", cfg->arch->hf_class);
        l->have_harmony = 1;
        return 0;
    }
    /* vLLM's reasoning parsers find their tags among the tokens */
    if (l->sc->reasoning_parser && (fl_tokenizer_token_id(tok, "<think>") < 0 ||
                                    fl_tokenizer_token_id(tok, "</think>") < 0))
        return fl_fail(err, "--reasoning-parser %s: the tokenizer has no <think> and </think> tokens",
                       l->sc->reasoning_parser);
    char *file_text = NULL;
    const char *source = tok->chat_template, *origin = "tokenizer_config.json";
    if (l->chat_template_file) {
        /* vLLM's rule: a file if one is there, else the value is the
         * template itself when it looks like one ('{' or a line break) */
        const char *t = l->chat_template_file;
        if (access(t, F_OK) == 0 || (!strchr(t, '{') && !strchr(t, '\n'))) {
            if (!(file_text = fl_read_text_file(t, NULL, err)))
                return fl_fail_prefix(err, "--chat-template (a file, or a template with '{')");
            source = file_text;
            origin = t;
        } else {
            source = t;
            origin = "--chat-template";
        }
    }
    int rc = source ? fl_chat_template_init(&l->chat, source, origin, tok, err) : 0;
    free(file_text);
    l->have_chat = rc == 0 && source != NULL;
    return rc;
}

static int load(serve_opts *o, fl_server *srv, loaded *l, fl_error *err)
{
    l->chat_template_file = o->chat_template;
    l->sc = &o->sc;
    if (fl_api_load_defaults(srv, o->model.model, err) != 0) /* generation_config.json */
        return -1;
    /* admission: every running sequence and this many waiting; more is 503 */
    o->eng.max_waiting = 4096;
    if (fl_startup_open(&l->st, &o->model, &o->eng, o->tokenizer_dir, FL_TOKENIZER_REQUIRED,
                        prepare_chat, l, fl_server_output_fn(), srv, err) != 0) {
        if (l->have_chat)
            fl_chat_template_free(&l->chat);
        l->have_chat = 0;
        return -1;
    }
    const int max_len = o->eng.ec.max_model_len;
    srv->vocab_size = l->st.vocab_size;
    srv->tok = &l->st.tok;
    srv->chat = l->have_chat ? &l->chat : NULL;
    srv->harmony = l->have_harmony ? &l->harmony : NULL;
    srv->max_model_len = max_len;
    srv->engine = l->st.engine;
    return 0;
}

static volatile sig_atomic_t model_loading = 1;
static int signal_pipe[2] = { -1, -1 };

static void on_signal(int sig)
{
    const int saved = errno;
    if (model_loading) {
        static const char msg[] = "INFO flashlm: signal while the model loads: exiting\n";
        ssize_t rc = write(2, msg, sizeof msg - 1);
        (void)rc;
        _exit(0);
    }
    const char c = (char)sig;
    ssize_t rc = write(signal_pipe[1], &c, 1);
    (void)rc;
    errno = saved;
}

/* Blocks until SIGINT or SIGTERM; returns which. */
static int wait_signal(void)
{
    char c = 0;
    while (read(signal_pipe[0], &c, 1) != 1)
        ;
    return c;
}

int fl_cmd_serve(int argc, char **argv)
{
    serve_opts o = { .sc = { .host = "0.0.0.0", .port = 8000, .max_body_bytes = 8u << 20,
                             .max_unauthenticated_body_bytes = 256u << 10,
                             .max_connections = 16384, .max_connections_per_client = 4096 } };
    fl_engine_opts_default(&o.eng);
    fl_error err = { "" };
    int rc = parse_args(&o, argc, argv, &err);
    if (rc > 0)
        return 0;
    if (rc < 0) {
        fprintf(stderr, "flashlm serve: %s\n", err.msg);
        return 1;
    }
    if (pipe(signal_pipe) != 0) {
        fprintf(stderr, "flashlm serve: cannot make a pipe for signals\n");
        return 1;
    }
    struct sigaction sa = { .sa_handler = on_signal, .sa_flags = SA_RESTART };
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    static fl_server srv;
    fl_server_init(&srv, &o.sc);
    srv.created = (long)time(NULL);
    srv.model_root = o.model.model;
    if (fl_http_start(&srv, &err) != 0) {
        fprintf(stderr, "flashlm serve: %s\n", err.msg);
        fl_server_free(&srv);
        return 1;
    }
    fprintf(stderr, "INFO flashlm: loading %s\n", o.model.model);
    loaded l = { 0 };
    if (load(&o, &srv, &l, &err) != 0) {
        fprintf(stderr, "flashlm serve: %s\n", err.msg);
        fl_http_stop(&srv);
        fl_server_free(&srv);
        return 1;
    }
    fl_server_start_engine(&srv);
    model_loading = 0;
    srv.ready = 1;
    const int v6 = strchr(o.sc.host, ':') != NULL; /* an IPv6 address goes in brackets in a URL */
    fprintf(stderr, "INFO flashlm: serving %s on http://%s%s%s:%d (ready)\n", o.sc.served_model_name,
            v6 ? "[" : "", o.sc.host, v6 ? "]" : "", o.sc.port);
    const int sig = wait_signal();
    fprintf(stderr, "INFO flashlm: %s: shutting down\n", sig == SIGINT ? "SIGINT" : "SIGTERM");
    srv.stopping = 1;
    fl_http_quiesce(&srv);
    fl_engine_close(srv.engine); /* a request a worker is still admitting is refused */
    fl_server_abort_all(&srv);
    fl_server_stop_engine(&srv);
    fl_server_wait_runs(&srv, 10000);
    fl_http_stop(&srv);
    fl_startup_close(&l.st);
    if (l.have_chat)
        fl_chat_template_free(&l.chat);
    fl_server_free(&srv);
    fprintf(stderr, "INFO flashlm: stopped\n");
    return 0;
}
