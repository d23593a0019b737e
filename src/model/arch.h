/* arch.h - an architecture, described once, as data.
 *
 * flashlm's runners implement ops (an attention block, a dense MLP block,
 * a routed-experts block, the norms around them), not architectures. An
 * architecture is what turns a config.json into a per-layer plan
 * (fl_layer_spec: the attention with its window, biases, head norms and
 * sinks; the feed-forward block) and what
 * its checkpoint calls each tensor the plan needs. The weight loader, the
 * CPU forward pass and the GPU forward pass read the plan and the tensor
 * table below; none of them names an architecture.
 *
 * Adding an architecture whose layers need no new op: one file
 * (model/arch_NAME.c defining its fl_arch) and one line in the registry
 * (model/arch.c). One that needs a new op adds the op's fields to
 * fl_layer_spec, its tensors to fl_layer_role (with their row in arch.c's
 * table), and the op to each runner. */
#ifndef FL_ARCH_H
#define FL_ARCH_H

/* jansson's JSON value (the configure hooks read config.json through it) */
typedef struct json_t json_t;

#include <stdint.h>

#include "base/error.h"

struct fl_model_config;

/* The feed-forward block of a layer. */
typedef enum fl_ffn_kind {
    FL_FFN_DENSE_SILU, /* down(silu(gate(x)) * up(x)) */
    /* gpt-oss's routed experts (sizes in the config: num_experts,
     * experts_per_token, swiglu_alpha/limit): router logits with a bias,
     * the top experts_per_token of them softmaxed among themselves; each
     * chosen expert's gate/up projection with bias, the clamped SwiGLU
     * (gate clamped above at limit, up to [-limit, limit],
     * gate * sigmoid(alpha * gate) * (up + 1)), its down projection with
     * bias; the outputs summed with the router weights. */
    FL_FFN_MOE,
} fl_ffn_kind;

/* One decoder layer: x += attention(norm(x)); x += ffn(norm(x)), RMSNorm. */
typedef struct fl_layer_spec {
    int32_t window;    /* sliding window: a position attends to the last `window`
                          positions, itself included; 0: full causal attention */
    uint8_t qkv_bias;  /* q/k/v projections have biases */
    uint8_t o_bias;    /* the output projection has a bias */
    uint8_t qk_norm;   /* RMSNorm of each query and key head before RoPE (Qwen3) */
    uint8_t sinks;     /* a learned logit per query head joins each softmax's
                          denominator and adds no value (gpt-oss) */
    uint8_t ffn;       /* fl_ffn_kind */
} fl_layer_spec;

/* The tensors of one layer, by role. Which a layer has follows from its
 * spec (fl_layer_role_needed); their shapes from the config. */
typedef enum fl_layer_role {
    FL_ATTN_NORM,      /* (hidden) */
    FL_WQ,             /* (num_heads * head_dim, hidden) */
    FL_WK,             /* (num_kv_heads * head_dim, hidden) */
    FL_WV,             /* (num_kv_heads * head_dim, hidden) */
    FL_BQ,             /* (num_heads * head_dim), with qkv_bias */
    FL_BK,             /* (num_kv_heads * head_dim), with qkv_bias */
    FL_BV,             /* (num_kv_heads * head_dim), with qkv_bias */
    FL_Q_NORM,         /* (head_dim), with qk_norm */
    FL_K_NORM,         /* (head_dim), with qk_norm */
    FL_WO,             /* (hidden, num_heads * head_dim) */
    FL_BO,             /* (hidden), with o_bias */
    FL_SINKS,          /* (num_heads), with sinks */
    FL_MLP_NORM,       /* (hidden) */
    FL_W_GATE,         /* (intermediate, hidden), dense SiLU */
    FL_W_UP,           /* (intermediate, hidden), dense SiLU */
    FL_W_DOWN,         /* (hidden, intermediate), dense SiLU */
    /* the experts of FL_FFN_MOE, in HF's GptOss layout: x @ W per expert
     * (E = num_experts, ff = intermediate), gate and up interleaved in
     * columns (gate = even, up = odd) */
    FL_ROUTER,         /* (E, hidden) */
    FL_ROUTER_BIAS,    /* (E) */
    FL_EXPERTS_GATE_UP,      /* (E, hidden, 2 * ff) */
    FL_EXPERTS_GATE_UP_BIAS, /* (E, 2 * ff) */
    FL_EXPERTS_DOWN,         /* (E, ff, hidden) */
    FL_EXPERTS_DOWN_BIAS,    /* (E, hidden) */
    FL_NUM_LAYER_ROLES
} fl_layer_role;

/* The model-level tensors. */
typedef enum fl_model_role {
    FL_EMBED,          /* (vocab, hidden) */
    FL_FINAL_NORM,     /* (hidden) */
    FL_LM_HEAD,        /* (vocab, hidden); none when tie_word_embeddings */
    FL_NUM_MODEL_ROLES
} fl_model_role;

/* How a tensor is initialised by --load-format dummy and converted by the
 * runners: matrices in the compute dtype, norms and biases in float32.
 * FL_KIND_BIAS is any per-feature vector drawn near 0 (biases, attention
 * sinks). A matrix's fan-in is its shape[1]: (out, in), or an expert stack
 * (E, in, out). */
typedef enum fl_tensor_kind { FL_KIND_MATRIX, FL_KIND_NORM, FL_KIND_BIAS } fl_tensor_kind;

/* The most dimensions a role's tensor has (an expert stack: E, in, out). */
#define FL_ROLE_MAX_DIMS 3

/* What a checkpoint calls each tensor: printf formats taking the layer
 * index (model-level names take none). */
typedef struct fl_tensor_names {
    const char *model[FL_NUM_MODEL_ROLES];
    const char *layer[FL_NUM_LAYER_ROLES];
} fl_tensor_names;

typedef struct fl_arch {
    const char *hf_class;               /* config.json's architectures[0] */
    const fl_tensor_names *names;
    /* Reads the architecture's own config.json fields and fills
     * cfg->layers[0 .. num_layers) (the common fields are parsed first);
     * refuses features it does not implement, naming the field. */
    int (*configure)(struct fl_model_config *cfg, json_t *root, const char *src, fl_error *err);
} fl_arch;

/* The registered architectures; NULL if hf_class is none of them. */
const fl_arch *fl_arch_find(const char *hf_class);
/* "LlamaForCausalLM, Qwen2ForCausalLM, ..." for error messages. */
const char *fl_arch_list(void);

/* Whether a layer of this spec has a tensor of this role. */
int fl_layer_role_needed(const fl_layer_spec *spec, fl_layer_role role);
fl_tensor_kind fl_layer_role_kind(fl_layer_role role);
/* Whether an MXFP4 checkpoint (cfg->experts_mxfp4) stores this role as
 * NAME_blocks and NAME_scales instead of NAME (the expert matrices). */
int fl_layer_role_mxfp4(fl_layer_role role);
/* The expected shape of a role under cfg; returns ndim (1 to FL_ROLE_MAX_DIMS). */
int fl_layer_role_shape(const struct fl_model_config *cfg, fl_layer_role role, int64_t shape[FL_ROLE_MAX_DIMS]);
int fl_model_role_shape(const struct fl_model_config *cfg, fl_model_role role, int64_t shape[FL_ROLE_MAX_DIMS]);
fl_tensor_kind fl_model_role_kind(fl_model_role role);

/* ---- for architecture files ---- */

/* transformers' decoder tensor names, every role's (Llama, Qwen2, Qwen3
 * and GptOss spell the roles they share the same way). */
extern const fl_tensor_names fl_hf_tensor_names;

/* The Llama family's layers: every layer full causal attention with spec's
 * biases and norms and the dense SiLU MLP. Refuses what the family's
 * configs can ask that flashlm does not implement (another hidden_act,
 * mlp_bias, sliding windows, other layer_types, a quantization_config). */
int fl_arch_llama_family_layers(struct fl_model_config *cfg, json_t *root, fl_layer_spec spec,
                                const char *src, fl_error *err);

#endif
