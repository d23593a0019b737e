/* arch.c - the architecture registry and the tables every architecture
 * shares: which tensors a layer spec needs, their shapes and kinds (see
 * arch.h). */
#include "model/arch.h"

#include <stdio.h>
#include <string.h>

#include "model/config.h"
#include "model/config_fields.h"

extern const fl_arch fl_arch_llama, fl_arch_qwen2, fl_arch_qwen3, fl_arch_gpt_oss;

static const fl_arch *const registry[] = {
    &fl_arch_llama,
    &fl_arch_qwen2,
    &fl_arch_qwen3,
    &fl_arch_gpt_oss,
};
#define NUM_ARCHS (sizeof registry / sizeof registry[0])

const fl_arch *fl_arch_find(const char *hf_class)
{
    for (size_t i = 0; i < NUM_ARCHS; i++)
        if (strcmp(registry[i]->hf_class, hf_class) == 0)
            return registry[i];
    return NULL;
}

const char *fl_arch_list(void)
{
    static char list[256];
    if (!list[0])
        for (size_t i = 0, at = 0; i < NUM_ARCHS && at < sizeof list; i++)
            at += (size_t)snprintf(list + at, sizeof list - at, "%s%s", i ? ", " : "", registry[i]->hf_class);
    return list;
}

/* ---- the tensor table ---- */

/* A dimension of a tensor, in terms of the config. */
typedef enum dim { D_NONE, D_VOCAB, D_HIDDEN, D_Q, D_KV, D_FF, D_FF2, D_HEAD, D_HEADS, D_EXPERTS } dim;

static int64_t dim_value(const fl_model_config *c, dim d)
{
    switch (d) {
    case D_VOCAB: return c->vocab_size;
    case D_HIDDEN: return c->hidden_size;
    case D_Q: return (int64_t)c->num_heads * c->head_dim;
    case D_KV: return (int64_t)c->num_kv_heads * c->head_dim;
    case D_FF: return c->intermediate_size;
    case D_FF2: return 2 * (int64_t)c->intermediate_size;
    case D_HEAD: return c->head_dim;
    case D_HEADS: return c->num_heads;
    case D_EXPERTS: return c->num_experts;
    case D_NONE: break;
    }
    return 0;
}

typedef struct role_row {
    fl_tensor_kind kind;
    dim dims[FL_ROLE_MAX_DIMS]; /* the shape; trailing D_NONE: fewer dimensions */
    uint8_t mxfp4;              /* stored as _blocks/_scales in an MXFP4 checkpoint */
} role_row;

static const role_row layer_roles[FL_NUM_LAYER_ROLES] = {
    [FL_ATTN_NORM] = { FL_KIND_NORM, { D_HIDDEN } },
    [FL_WQ] = { FL_KIND_MATRIX, { D_Q, D_HIDDEN } },
    [FL_WK] = { FL_KIND_MATRIX, { D_KV, D_HIDDEN } },
    [FL_WV] = { FL_KIND_MATRIX, { D_KV, D_HIDDEN } },
    [FL_BQ] = { FL_KIND_BIAS, { D_Q } },
    [FL_BK] = { FL_KIND_BIAS, { D_KV } },
    [FL_BV] = { FL_KIND_BIAS, { D_KV } },
    [FL_Q_NORM] = { FL_KIND_NORM, { D_HEAD } },
    [FL_K_NORM] = { FL_KIND_NORM, { D_HEAD } },
    [FL_WO] = { FL_KIND_MATRIX, { D_HIDDEN, D_Q } },
    [FL_BO] = { FL_KIND_BIAS, { D_HIDDEN } },
    [FL_SINKS] = { FL_KIND_BIAS, { D_HEADS } },
    [FL_MLP_NORM] = { FL_KIND_NORM, { D_HIDDEN } },
    [FL_W_GATE] = { FL_KIND_MATRIX, { D_FF, D_HIDDEN } },
    [FL_W_UP] = { FL_KIND_MATRIX, { D_FF, D_HIDDEN } },
    [FL_W_DOWN] = { FL_KIND_MATRIX, { D_HIDDEN, D_FF } },
    [FL_ROUTER] = { FL_KIND_MATRIX, { D_EXPERTS, D_HIDDEN } },
    [FL_ROUTER_BIAS] = { FL_KIND_BIAS, { D_EXPERTS } },
    [FL_EXPERTS_GATE_UP] = { FL_KIND_MATRIX, { D_EXPERTS, D_HIDDEN, D_FF2 }, 1 },
    [FL_EXPERTS_GATE_UP_BIAS] = { FL_KIND_BIAS, { D_EXPERTS, D_FF2 } },
    [FL_EXPERTS_DOWN] = { FL_KIND_MATRIX, { D_EXPERTS, D_FF, D_HIDDEN }, 1 },
    [FL_EXPERTS_DOWN_BIAS] = { FL_KIND_BIAS, { D_EXPERTS, D_HIDDEN } },
};

static const role_row model_roles[FL_NUM_MODEL_ROLES] = {
    [FL_EMBED] = { FL_KIND_MATRIX, { D_VOCAB, D_HIDDEN } },
    [FL_FINAL_NORM] = { FL_KIND_NORM, { D_HIDDEN } },
    [FL_LM_HEAD] = { FL_KIND_MATRIX, { D_VOCAB, D_HIDDEN } },
};

int fl_layer_role_needed(const fl_layer_spec *s, fl_layer_role role)
{
    switch (role) {
    case FL_BQ: case FL_BK: case FL_BV: return s->qkv_bias;
    case FL_Q_NORM: case FL_K_NORM: return s->qk_norm;
    case FL_BO: return s->o_bias;
    case FL_SINKS: return s->sinks;
    case FL_W_GATE: case FL_W_UP: case FL_W_DOWN: return s->ffn == FL_FFN_DENSE_SILU;
    case FL_ROUTER: case FL_ROUTER_BIAS: case FL_EXPERTS_GATE_UP: case FL_EXPERTS_GATE_UP_BIAS:
    case FL_EXPERTS_DOWN: case FL_EXPERTS_DOWN_BIAS:
        return s->ffn == FL_FFN_MOE;
    default: return 1;
    }
}

static int row_shape(const fl_model_config *c, const role_row *r, int64_t shape[FL_ROLE_MAX_DIMS])
{
    int ndim = 0;
    while (ndim < FL_ROLE_MAX_DIMS && r->dims[ndim] != D_NONE) {
        shape[ndim] = dim_value(c, r->dims[ndim]);
        ndim++;
    }
    return ndim;
}

fl_tensor_kind fl_layer_role_kind(fl_layer_role role)
{
    return layer_roles[role].kind;
}

int fl_layer_role_mxfp4(fl_layer_role role)
{
    return layer_roles[role].mxfp4;
}

int fl_layer_role_shape(const fl_model_config *c, fl_layer_role role, int64_t shape[FL_ROLE_MAX_DIMS])
{
    return row_shape(c, &layer_roles[role], shape);
}

fl_tensor_kind fl_model_role_kind(fl_model_role role)
{
    return model_roles[role].kind;
}

int fl_model_role_shape(const fl_model_config *c, fl_model_role role, int64_t shape[FL_ROLE_MAX_DIMS])
{
    return row_shape(c, &model_roles[role], shape);
}

/* ---- transformers' decoder names ---- */

/* Each role spelled once. A layer names only the roles its spec needs
 * (fl_layer_role_needed), so the Llama family never asks for the sinks or
 * the experts, nor gpt-oss for q/k norms or a dense MLP. */
const fl_tensor_names fl_hf_tensor_names = {
    .model = {
        [FL_EMBED] = "model.embed_tokens.weight",
        [FL_FINAL_NORM] = "model.norm.weight",
        [FL_LM_HEAD] = "lm_head.weight",
    },
    .layer = {
        [FL_ATTN_NORM] = "model.layers.%d.input_layernorm.weight",
        [FL_WQ] = "model.layers.%d.self_attn.q_proj.weight",
        [FL_WK] = "model.layers.%d.self_attn.k_proj.weight",
        [FL_WV] = "model.layers.%d.self_attn.v_proj.weight",
        [FL_BQ] = "model.layers.%d.self_attn.q_proj.bias",
        [FL_BK] = "model.layers.%d.self_attn.k_proj.bias",
        [FL_BV] = "model.layers.%d.self_attn.v_proj.bias",
        [FL_Q_NORM] = "model.layers.%d.self_attn.q_norm.weight",
        [FL_K_NORM] = "model.layers.%d.self_attn.k_norm.weight",
        [FL_WO] = "model.layers.%d.self_attn.o_proj.weight",
        [FL_BO] = "model.layers.%d.self_attn.o_proj.bias",
        [FL_SINKS] = "model.layers.%d.self_attn.sinks",
        [FL_MLP_NORM] = "model.layers.%d.post_attention_layernorm.weight",
        [FL_W_GATE] = "model.layers.%d.mlp.gate_proj.weight",
        [FL_W_UP] = "model.layers.%d.mlp.up_proj.weight",
        [FL_W_DOWN] = "model.layers.%d.mlp.down_proj.weight",
        [FL_ROUTER] = "model.layers.%d.mlp.router.weight",
        [FL_ROUTER_BIAS] = "model.layers.%d.mlp.router.bias",
        [FL_EXPERTS_GATE_UP] = "model.layers.%d.mlp.experts.gate_up_proj",
        [FL_EXPERTS_GATE_UP_BIAS] = "model.layers.%d.mlp.experts.gate_up_proj_bias",
        [FL_EXPERTS_DOWN] = "model.layers.%d.mlp.experts.down_proj",
        [FL_EXPERTS_DOWN_BIAS] = "model.layers.%d.mlp.experts.down_proj_bias",
    },
};

/* ---- the Llama family ---- */

int fl_arch_llama_family_layers(fl_model_config *cfg, json_t *root, fl_layer_spec spec, const char *src,
                                fl_error *err)
{
    json_t *act = json_object_get(root, "hidden_act");
    if (act && (!json_is_string(act) || strcmp(json_string_value(act), "silu") != 0))
        return fl_fail(err, "%s: field 'hidden_act' must be \"silu\" (the only one supported)", src);
    int flag = 0;
    if (fl_config_bool(root, "mlp_bias", 0, &flag, src, err) != 0)
        return -1;
    if (flag)
        return fl_fail(err, "%s: field 'mlp_bias' = true is not supported", src);
    if (fl_config_bool(root, "use_sliding_window", 0, &flag, src, err) != 0)
        return -1;
    if (flag)
        return fl_fail(err, "%s: field 'use_sliding_window' = true is not supported", src);
    json_t *quant = json_object_get(root, "quantization_config");
    if (quant && !json_is_null(quant))
        return fl_fail(err, "%s: field 'quantization_config' is not supported for %s (flashlm reads "
                       "unquantized F32, F16 and BF16 checkpoints of it)", src, cfg->arch->hf_class);
    json_t *types = json_object_get(root, "layer_types");
    if (types && !json_is_null(types)) {
        size_t i;
        json_t *v;
        if (!json_is_array(types))
            return fl_fail(err, "%s: field 'layer_types' must be a list", src);
        json_array_foreach(types, i, v) {
            if (!json_is_string(v) || strcmp(json_string_value(v), "full_attention") != 0)
                return fl_fail(err, "%s: field 'layer_types'[%zu] is not \"full_attention\" "
                               "(the only layer type supported)", src, i);
        }
    }
    spec.window = 0;
    spec.ffn = FL_FFN_DENSE_SILU;
    for (int i = 0; i < cfg->num_layers; i++)
        cfg->layers[i] = spec;
    return 0;
}
