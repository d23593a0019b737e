/* cmd_info.c - `flashlm info MODEL`: what a model is and what it costs.
 *
 * Prints the architecture, the parameter count, the KV cache bytes per
 * token, and every tensor. Dummy models are described from their config
 * alone, without allocating their weights. */
#include <getopt.h>
#include <stdio.h>

#include "attention/backend.h"
#include "cli/cli.h"
#include "cpu/cpu_runner.h"
#include "model/kv_groups.h"

static const char info_help[] =
    "usage: flashlm info MODEL [options]\n"
    "Prints a model's architecture, parameter count, KV cache bytes per token\n"
    "and tensors.\n\n" FL_MODEL_OPTS_HELP;

static void print_rope(const fl_model_config *c)
{
    switch (c->rope_type) {
    case FL_ROPE_DEFAULT:
        printf("rope:                 theta %g\n", c->rope_theta);
        break;
    case FL_ROPE_LLAMA3:
        printf("rope:                 theta %g, llama3 scaling (factor %g, original context %d)\n", c->rope_theta,
               c->rope_factor, c->rope_original_max_position);
        break;
    case FL_ROPE_YARN:
        printf("rope:                 theta %g, yarn (factor %g, original context %d, beta fast %g, slow %g, %s; "
               "cos/sin x %.6g)\n", c->rope_theta, c->rope_factor, c->rope_original_max_position, c->rope_beta_fast,
               c->rope_beta_slow, c->rope_truncate ? "truncated" : "not truncated", c->rope_attention_factor);
        break;
    }
}

/* What the plan's layers do, when they are not all the same causal,
 * dense layer. */
static void print_layers(const fl_model_config *c)
{
    int sliding = 0, sinks = 0, window = 0, moe = 0;
    for (int i = 0; i < c->num_layers; i++) {
        sliding += c->layers[i].window > 0;
        window = c->layers[i].window > window ? c->layers[i].window : window;
        sinks += c->layers[i].sinks;
        moe += c->layers[i].ffn == FL_FFN_MOE;
    }
    if (sliding || sinks)
        printf("attention:            %d layers over a sliding window of %d, %d over the full context%s\n", sliding,
               window, c->num_layers - sliding, sinks ? "; sinks" : "");
    if (moe)
        printf("experts:              %d layers of %d experts, %d per token, clamped SwiGLU (alpha %g, limit %g)%s\n",
               moe, c->num_experts, c->experts_per_token, c->swiglu_alpha, c->swiglu_limit,
               c->experts_mxfp4 ? "; MXFP4 in the checkpoint" : "");
}

static void print_config(const fl_model *m)
{
    const fl_model_config *c = &m->cfg;
    const char *source = m->format == FL_LOAD_AUTO ? "safetensors"
                         : m->builtin              ? "built-in config, dummy weights"
                                                   : "dummy weights";
    printf("model:                %s (%s)\n", m->name, source);
    printf("architecture:         %s\n", c->arch->hf_class);
    printf("dtype:                %s\n", fl_dtype_name(c->dtype));
    printf("layers:               %d\n", c->num_layers);
    printf("hidden size:          %d\n", c->hidden_size);
    printf("intermediate size:    %d\n", c->intermediate_size);
    printf("attention heads:      %d query, %d key/value, head_dim %d\n", c->num_heads,
           c->num_kv_heads, c->head_dim);
    printf("vocab size:           %d\n", c->vocab_size);
    printf("max positions:        %d\n", c->max_position_embeddings);
    print_rope(c);
    print_layers(c);
    printf("tied lm_head:         %s\n", c->tie_word_embeddings ? "yes" : "no");
    printf("parameters:           %lld (%.1fM)\n", (long long)m->weights.num_params,
           (double)m->weights.num_params / 1e6);
    printf("KV bytes per token:   %lld (%s cache: %d layers x K,V x %d heads x %d)\n",
           (long long)fl_model_config_kv_bytes_per_token(c, c->dtype), fl_dtype_name(c->dtype),
           c->num_layers, c->num_kv_heads, c->head_dim);
    fl_kv_groups groups;
    char layout[256];
    fl_kv_groups_init(&groups, c);
    fl_kv_groups_describe(&groups, layout, sizeof layout);
    printf("KV cache groups:      %s%s\n", layout,
           fl_kv_groups_have_window(&groups) ? "; a windowed group keeps only its window's blocks" : "");
}

static int print_tensor(const char *name, const fl_tensor *t, void *ctx)
{
    (void)ctx;
    printf("  %-52s %-5s [", name, fl_dtype_name(t->dtype));
    for (int i = 0; i < t->ndim; i++)
        printf(i ? ", %lld" : "%lld", (long long)t->shape[i]);
    printf("]\n");
    return 0;
}

int fl_cmd_info(int argc, char **argv)
{
    static const struct option opts[] = {
        FL_MODEL_OPTS_LONG,
        { "help", no_argument, NULL, 'h' },
        { 0 },
    };
    fl_model_opts mo = { 0 };
    fl_error err;
    int opt;
    optind = 0;
    while ((opt = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        if (opt == 'h') {
            fputs(info_help, stdout);
            return 0;
        }
        int taken = fl_model_opts_take(&mo, opt, optarg, &err);
        if (taken < 0)
            goto fail;
        if (taken == 0) {
            fl_cli_bad_option(&err, "info", opt, argv, optind);
            goto fail;
        }
    }
    if (fl_model_opts_finish(&mo, argc, argv, optind, &err) != 0)
        goto fail;
    /* info never needs dummy values: describe their shapes only. */
    fl_load_format format = mo.format == FL_LOAD_DUMMY ? FL_LOAD_SHAPES_ONLY : mo.format;
    fl_model m;
    if (fl_model_load(&m, mo.model, format, mo.seed, &err) != 0)
        goto fail;
    print_config(&m);
    int count;
    const fl_attn_backend *backends = fl_attn_backends(&count);
    fl_engine_opts eo;
    fl_engine_opts_default(&eo);
    if (fl_cli_device(NULL, &eo.device_kind, &eo.cc, &err) != 0) {
        fl_model_free(&m);
        goto fail;
    }
    eo.kv_dtype = eo.device_kind == FL_DEVICE_CUDA ? FL_BF16 : FL_F32; /* --kv-cache-dtype auto */
    const fl_attn_needs needs = fl_engine_opts_attn_needs(&eo, &m.cfg);
    if (eo.device_kind == FL_DEVICE_CUDA)
        printf("attention backends (this model on the GPU, compute capability %d.%d, block size 128):\n",
               eo.cc / 10, eo.cc % 10);
    else
        printf("attention backends (this model on the CPU, block size 128; no usable GPU):\n");
    for (int i = 0; i < count; i++) {
        char line[512], why[256];
        fl_attn_backend_describe(&backends[i], line, sizeof line);
        const char *no = fl_attn_backend_unsupported(&backends[i], &needs, why, sizeof why);
        printf("  %s\n    this model: %s%s\n", line, no ? "no, " : "yes", no ? no : "");
    }
    /* the choice start-up would make (FLASHLM_ATTENTION_BACKEND, else auto) */
    const fl_attn_backend *chosen = fl_engine_opts_select_backend(&eo, &m.cfg, &err);
    printf("attention backend at start-up: %s\n", chosen ? chosen->name : err.msg);
    printf("tensors:\n");
    fl_weights_visit(&m.weights, &m.cfg, print_tensor, NULL);
    fl_model_free(&m);
    return 0;
fail:
    fprintf(stderr, "flashlm info: %s\n", err.msg);
    return 1;
}
