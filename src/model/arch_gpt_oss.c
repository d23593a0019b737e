/* arch_gpt_oss.c - GptOssForCausalLM (openai/gpt-oss), as transformers'
 * GptOss implements it.
 *
 * Each layer's attention is causal over a sliding window or the full
 * context (layer_types; sliding_window), with biases on q/k/v/o
 * (attention_bias, true by default) and a learned sink logit per query
 * head; its feed-forward is routed experts (FL_FFN_MOE: num_local_experts,
 * num_experts_per_tok, swiglu_alpha, swiglu_limit). hidden_act must say
 * silu, as gpt-oss's config does, though the experts use their own clamped
 * SwiGLU. A quantization_config may only say mxfp4 (the experts stored as
 * MXFP4 blocks and scales, dequantized at load).
 *
 * The rope fields must be stated: config.c reads them for every
 * architecture, with Llama's defaults, where GptOssConfig would assume
 * yarn and theta 150000. Fields that only training reads
 * (router_aux_loss_coef, output_router_logits, attention_dropout,
 * initializer_range) and openai's initial_context_length are ignored;
 * openai's experts_per_token must agree with num_experts_per_tok. */
#include <string.h>

#include "model/arch.h"
#include "model/config.h"
#include "model/config_fields.h"

static int parse_rope_presence(json_t *root, const char *src, fl_error *err)
{
    json_t *params = json_object_get(root, "rope_parameters");
    if (!json_is_object(params))
        params = json_object_get(root, "rope_scaling");
    if (!json_is_object(params))
        return fl_fail(err, "%s: field 'rope_scaling' (or 'rope_parameters') is missing; GptOssConfig's default "
                       "(yarn) is not assumed", src);
    if (!json_object_get(root, "rope_theta") && !json_object_get(params, "rope_theta"))
        return fl_fail(err, "%s: field 'rope_theta' is missing; GptOssConfig's default (150000) is not assumed", src);
    return 0;
}

static int parse_experts(fl_model_config *cfg, json_t *root, const char *src, fl_error *err)
{
    double alpha, limit;
    if (fl_config_int(root, "num_local_experts", 1, 0, 1, 4096, &cfg->num_experts, src, err) != 0 ||
        fl_config_int(root, "num_experts_per_tok", 1, 0, 1, cfg->num_experts, &cfg->experts_per_token, src,
                      err) != 0 ||
        fl_config_number(root, "swiglu_alpha", 0, 1.702, 0.0, 1e6, &alpha, src, err) != 0 ||
        fl_config_number(root, "swiglu_limit", 0, 7.0, 0.0, 1e6, &limit, src, err) != 0)
        return -1;
    cfg->swiglu_alpha = (float)alpha;
    cfg->swiglu_limit = (float)limit;
    int alias;
    if (fl_config_int(root, "experts_per_token", 0, cfg->experts_per_token, 1, 4096, &alias, src, err) != 0)
        return -1;
    if (alias != cfg->experts_per_token)
        return fl_fail(err, "%s: field 'experts_per_token' = %d disagrees with num_experts_per_tok = %d", src, alias,
                       cfg->experts_per_token);
    return 0;
}

/* Each layer's window from layer_types (absent: GptOssConfig's default,
 * sliding on even layers, full on odd ones). */
static int parse_layers(fl_model_config *cfg, json_t *root, fl_layer_spec spec, const char *src, fl_error *err)
{
    json_t *types = json_object_get(root, "layer_types");
    if (types && !json_is_null(types) &&
        (!json_is_array(types) || json_array_size(types) != (size_t)cfg->num_layers))
        return fl_fail(err, "%s: field 'layer_types' must be a list of num_hidden_layers = %d entries", src,
                       cfg->num_layers);
    int sliding = 0;
    for (int i = 0; i < cfg->num_layers; i++) {
        const char *type = i % 2 ? "full_attention" : "sliding_attention";
        if (types && !json_is_null(types)) {
            json_t *v = json_array_get(types, (size_t)i);
            if (!json_is_string(v) || (strcmp(json_string_value(v), "sliding_attention") != 0 &&
                                       strcmp(json_string_value(v), "full_attention") != 0))
                return fl_fail(err, "%s: field 'layer_types'[%d] is not \"sliding_attention\" or "
                               "\"full_attention\"", src, i);
            type = json_string_value(v);
        }
        cfg->layers[i] = spec;
        cfg->layers[i].window = strcmp(type, "sliding_attention") == 0; /* marked; sized below */
        sliding |= cfg->layers[i].window;
    }
    if (!sliding)
        return 0;
    json_t *size = json_object_get(root, "sliding_window");
    if (!size || json_is_null(size))
        return fl_fail(err, "%s: missing field 'sliding_window' (layer_types has sliding_attention layers)", src);
    int window;
    if (fl_config_int(root, "sliding_window", 1, 0, 1, 1 << 24, &window, src, err) != 0)
        return -1;
    for (int i = 0; i < cfg->num_layers; i++)
        if (cfg->layers[i].window)
            cfg->layers[i].window = window;
    return 0;
}

/* Whether the regular expression re, of literal characters, '.' (any one)
 * and '*' (the item before it, any number of times), matches a prefix of
 * s, as Python's re.match does. */
static int regex_prefix(const char *re, const char *s)
{
    if (!re[0])
        return 1;
    if (re[1] == '*') {
        for (;; s++) { /* zero repetitions, then one more each turn */
            if (regex_prefix(re + 2, s))
                return 1;
            if (!*s || (re[0] != '.' && *s != re[0]))
                return 0;
        }
    }
    return *s && (re[0] == '.' || re[0] == *s) && regex_prefix(re + 1, s + 1);
}

/* modules_to_not_convert: the modules of the checkpoint left unquantized.
 * transformers matches each entry as a regular expression against the
 * start of a module's name, or as a suffix of it; flashlm reads every
 * layer's experts as MXFP4 (attention, router, embeddings and lm_head are
 * never quantized), so no entry may reach model.layers.N.mlp.experts. */
static int parse_not_converted(const fl_model_config *cfg, json_t *list, const char *src, fl_error *err)
{
    if (!list || json_is_null(list))
        return 0;
    if (!json_is_array(list))
        return fl_fail(err, "%s: field 'quantization_config.modules_to_not_convert' must be a list", src);
    size_t i;
    json_t *v;
    json_array_foreach(list, i, v) {
        const char *re = json_string_value(v);
        if (!re || strpbrk(re, "\\[](){}+?|^$") || re[0] == '*' || strstr(re, "**"))
            return fl_fail(err, "%s: quantization_config.modules_to_not_convert[%zu] is not a module name "
                           "pattern flashlm reads (literals, '.' and '*')", src, i);
        for (int l = 0; l < cfg->num_layers; l++) {
            char experts[64];
            snprintf(experts, sizeof experts, "model.layers.%d.mlp.experts", l);
            const size_t n = strlen(experts), m = strlen(re);
            if (regex_prefix(re, experts) || (m <= n && strcmp(experts + n - m, re) == 0))
                return fl_fail(err, "%s: quantization_config.modules_to_not_convert[%zu] = '%s' leaves %s "
                               "unquantized; flashlm reads the experts of an mxfp4 checkpoint as MXFP4 only",
                               src, i, re, experts);
        }
    }
    return 0;
}

static int parse_quantization(fl_model_config *cfg, json_t *root, const char *src, fl_error *err)
{
    json_t *q = json_object_get(root, "quantization_config");
    if (!q || json_is_null(q))
        return 0;
    if (!json_is_object(q))
        return fl_fail(err, "%s: field 'quantization_config' must be an object or null", src);
    json_t *method = json_object_get(q, "quant_method");
    if (!json_is_string(method))
        return fl_fail(err, "%s: missing field 'quantization_config.quant_method' (a string)", src);
    if (strcmp(json_string_value(method), "mxfp4") != 0)
        return fl_fail(err, "%s: quantization_config.quant_method '%s' is not supported (supported: mxfp4)", src,
                       json_string_value(method));
    const char *key;
    json_t *v;
    json_object_foreach(q, key, v) {
        if (strcmp(key, "quant_method") == 0)
            continue;
        if (strcmp(key, "modules_to_not_convert") == 0) {
            if (parse_not_converted(cfg, v, src, err) != 0)
                return -1;
        } else if (strcmp(key, "dequantize") == 0) {
            /* how transformers loads it; flashlm always dequantizes to bf16 */
            if (!json_is_boolean(v))
                return fl_fail(err, "%s: field 'quantization_config.dequantize' must be true or false", src);
        } else {
            return fl_fail(err, "%s: field 'quantization_config.%s' is not supported", src, key);
        }
    }
    /* the blocks of 32 run along each expert matrix's input features */
    if (cfg->hidden_size % 32 != 0 || cfg->intermediate_size % 32 != 0)
        return fl_fail(err, "%s: an mxfp4 checkpoint needs hidden_size (%d) and intermediate_size (%d) to be "
                       "multiples of 32", src, cfg->hidden_size, cfg->intermediate_size);
    cfg->experts_mxfp4 = 1;
    return 0;
}

static int configure(fl_model_config *cfg, json_t *root, const char *src, fl_error *err)
{
    json_t *act = json_object_get(root, "hidden_act");
    if (act && (!json_is_string(act) || strcmp(json_string_value(act), "silu") != 0))
        return fl_fail(err, "%s: field 'hidden_act' must be \"silu\" (gpt-oss's experts use their own clamped "
                       "SwiGLU)", src);
    int bias;
    if (fl_config_bool(root, "attention_bias", 1, &bias, src, err) != 0)
        return -1;
    const fl_layer_spec spec = { .qkv_bias = (uint8_t)bias, .o_bias = (uint8_t)bias, .sinks = 1,
                                 .ffn = FL_FFN_MOE };
    return parse_rope_presence(root, src, err) || parse_experts(cfg, root, src, err) ||
                   parse_layers(cfg, root, spec, src, err) || parse_quantization(cfg, root, src, err)
               ? -1
               : 0;
}

const fl_arch fl_arch_gpt_oss = { "GptOssForCausalLM", &fl_hf_tensor_names, configure };
