/* vllm_flags.c - the table of vLLM flags accepted with a reason or refused
 * with one (see vllm_flags.h). */
#include "cli/vllm_flags.h"

#include <stdio.h>
#include <string.h>

#define NO_DOWNLOADS "flashlm downloads nothing: MODEL is a local directory (or a built-in name with " \
                     "--load-format dummy), whose files are the one revision"
#define ONE_GPU "flashlm runs a model on one GPU"

static const fl_vllm_flag flags[] = {
    /* the model and its files */
    { "trust-remote-code", no_argument, FL_VF_ENGINE, "*",
      "flashlm runs no remote code: its architectures are built in", NULL },
    { "revision", required_argument, FL_VF_ENGINE, "*", NO_DOWNLOADS, NULL },
    { "tokenizer-revision", required_argument, FL_VF_ENGINE, "*", NO_DOWNLOADS, NULL },
    { "code-revision", required_argument, FL_VF_ENGINE, "*", "flashlm runs no remote code", NULL },
    { "download-dir", required_argument, FL_VF_ENGINE, "*", NO_DOWNLOADS, NULL },
    { "tokenizer-mode", required_argument, FL_VF_ENGINE, "auto|hf",
      "flashlm reads the tokenizer.json fast tokenizer, what auto and hf load",
      "only tokenizer.json tokenizers (auto, hf) are built" },
    { "quantization", required_argument, FL_VF_ENGINE, NULL, NULL,
      "flashlm takes quantization from the checkpoint's quantization_config (MXFP4 experts of gpt-oss); "
      "no other method is built" },
    { "task", required_argument, FL_VF_ENGINE, "auto|generate", "flashlm generates text",
      "only text generation is built (no pooling: embedding, scoring, classification)" },
    { "runner", required_argument, FL_VF_ENGINE, "auto|generate", "flashlm generates text",
      "only text generation is built (no pooling: embedding, scoring, classification)" },
    { "limit-mm-per-prompt", required_argument, FL_VF_ENGINE, NULL, NULL,
      "flashlm serves text-only models: no multimodal inputs" },
    /* memory and scheduling */
    { "swap-space", required_argument, FL_VF_ENGINE, "*",
      "there is no CPU swap: a preempted sequence is recomputed, as in vLLM V1", NULL },
    { "cpu-offload-gb", required_argument, FL_VF_ENGINE, "0", "0 offloads nothing",
      "offloading weights to CPU memory is not built" },
    { "enable-chunked-prefill", no_argument, FL_VF_ENGINE, "*",
      "prefills are always chunked to --max-num-batched-tokens, as in vLLM V1", NULL },
    { "no-enable-chunked-prefill", no_argument, FL_VF_ENGINE, NULL, NULL,
      "prefills are always chunked, as in vLLM V1: there is no unchunked scheduler" },
    { "scheduling-policy", required_argument, FL_VF_ENGINE, "fcfs",
      "flashlm schedules first come, first served", "only fcfs is built (no priority scheduling)" },
    { "calculate-kv-scales", no_argument, FL_VF_ENGINE, NULL, NULL,
      "the fp8 KV cache's scales are 1.0, vLLM's default without this flag; computing them from the first "
      "batch is not built" },
    { "enable-lora", no_argument, FL_VF_ENGINE, NULL, NULL, "LoRA adapters are not built yet" },
    { "speculative-config", required_argument, FL_VF_ENGINE, NULL, NULL,
      "speculative decoding is not built yet" },
    { "override-generation-config", required_argument, FL_VF_ENGINE, NULL, NULL,
      "not implemented yet (request fields set sampling parameters)" },
    /* parallelism: one GPU */
    { "pipeline-parallel-size", required_argument, FL_VF_ENGINE, "1", ONE_GPU,
      "pipeline parallelism is not built yet: " ONE_GPU },
    { "data-parallel-size", required_argument, FL_VF_ENGINE, "1", ONE_GPU,
      "data parallelism is not built yet: run one server per GPU" },
    { "distributed-executor-backend", required_argument, FL_VF_ENGINE, "mp|uni|ray|external_launcher",
      "flashlm runs in one process (tensor-parallel ranks are its threads): there is no executor to choose",
      "not one of mp, uni, ray, external_launcher" },
    { "disable-custom-all-reduce", no_argument, FL_VF_ENGINE, "*",
      "flashlm has no custom all-reduce kernel: its tensor-parallel ranks reduce through one communicator",
      NULL },
    { "enable-expert-parallel", no_argument, FL_VF_ENGINE, "*",
      "tensor-parallel ranks split every expert by its intermediate size (vLLM's layout without this flag; "
      "the same outputs): expert parallelism is not built",
      NULL },
    /* the API server */
    { "disable-log-requests", no_argument, FL_VF_SERVE, "*",
      "requests are not logged unless --enable-log-requests (vLLM's default too)", NULL },
    { "max-log-len", required_argument, FL_VF_SERVE, NULL, NULL,
      "the request log (--enable-log-requests) prints every prompt id" },
    { "disable-uvicorn-access-log", no_argument, FL_VF_SERVE, "*", "flashlm keeps no access log", NULL },
    { "uvicorn-log-level", required_argument, FL_VF_SERVE, "critical|error|warning|info|debug|trace",
      "flashlm's HTTP server is not uvicorn: it logs start-up, shutdown and errors, at one level",
      "not one of critical, error, warning, info, debug, trace" },
    { "disable-frontend-multiprocessing", no_argument, FL_VF_SERVE, "*",
      "the HTTP server and the engine are threads of one process", NULL },
    { "disable-fastapi-docs", no_argument, FL_VF_SERVE, "*", "flashlm serves no /docs pages", NULL },
    { "response-role", required_argument, FL_VF_SERVE, "assistant", "assistant is the role flashlm answers in",
      "only 'assistant' is implemented" },
    { "chat-template-content-format", required_argument, FL_VF_SERVE, "auto", "auto is the default",
      "only auto is implemented" },
    { "tool-parser-plugin", required_argument, FL_VF_SERVE, NULL, NULL,
      "a Python tool parser plugin cannot run in flashlm (--tool-call-parser hermes is built)" },
    { "ssl-keyfile", required_argument, FL_VF_SERVE, NULL, NULL,
      "flashlm serves plain HTTP: put a TLS proxy in front" },
    { "ssl-certfile", required_argument, FL_VF_SERVE, NULL, NULL,
      "flashlm serves plain HTTP: put a TLS proxy in front" },
    { "root-path", required_argument, FL_VF_SERVE, NULL, NULL, "not implemented (routes are at /)" },
    { "middleware", required_argument, FL_VF_SERVE, NULL, NULL,
      "Python ASGI middleware cannot run in flashlm" },
};
#define NUM_FLAGS ((int)(sizeof flags / sizeof flags[0]))

int fl_vllm_flags_count(void)
{
    return NUM_FLAGS;
}

/* The scope of the command parsing now (one a process). */
static fl_vf_scope parsing_scope = FL_VF_SERVE;

int fl_vllm_flags_add_options(struct option *opts, int count, fl_vf_scope scope)
{
    parsing_scope = scope;
    for (int i = 0; i < NUM_FLAGS; i++) {
        int have = 0;
        for (int j = 0; j < count && !have; j++)
            have = strcmp(opts[j].name, flags[i].name) == 0;
        if (!have)
            opts[count++] = (struct option){ flags[i].name, flags[i].has_arg, NULL, FL_VF_OPT_BASE + i };
    }
    return count;
}

/* Whether value is one of the '|'-separated list. */
static int listed(const char *list, const char *value)
{
    if (strcmp(list, "*") == 0)
        return 1;
    const size_t n = strlen(value);
    for (const char *p = list; p;) {
        const char *bar = strchr(p, '|');
        const size_t len = bar ? (size_t)(bar - p) : strlen(p);
        if (len == n && strncmp(p, value, n) == 0)
            return 1;
        p = bar ? bar + 1 : NULL;
    }
    return 0;
}

int fl_vllm_flag_take(int opt, const char *arg, fl_error *err)
{
    const int i = opt - FL_VF_OPT_BASE;
    if (i < 0 || i >= NUM_FLAGS)
        return 0;
    const fl_vllm_flag *f = &flags[i];
    if (f->scope == FL_VF_SERVE && parsing_scope != FL_VF_SERVE)
        return fl_fail(err, "--%s: a flag of flashlm serve, not of this command", f->name);
    if (!f->accept)
        return fl_fail(err, "--%s: not supported: %s", f->name, f->refuse_why);
    if (arg && !listed(f->accept, arg))
        return fl_fail(err, "--%s %s: not supported: %s", f->name, arg, f->refuse_why);
    fprintf(stderr, "INFO flashlm: --%s%s%s changes nothing here: %s\n", f->name, arg ? " " : "",
            arg ? arg : "", f->accept_why);
    return 1;
}
