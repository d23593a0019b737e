/* arch.h - an architecture, described once, as data.
 *
 * flashlm's runners implement ops (an attention block, a dense MLP block,
 * the norms around them), not architectures. An architecture is what
 * turns a config.json into a per-layer plan (fl_layer_spec: the attention
 * with its window, biases and head norms; the feed-forward block) and what
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
} fl_ffn_kind;

/* One decoder layer: x += attention(norm(x)); x += ffn(norm(x)), RMSNorm. */
typedef struct fl_layer_spec {
    int32_t window;    /* sliding window in positions; 0: full causal attention */
    uint8_t qkv_bias;  /* q/k/v projections have biases */
    uint8_t o_bias;    /* the output projection has a bias */
    uint8_t qk_norm;   /* RMSNorm of each query and key head before RoPE (Qwen3) */
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
    FL_MLP_NORM,       /* (hidden) */
    FL_W_GATE,         /* (intermediate, hidden), dense SiLU */
    FL_W_UP,           /* (intermediate, hidden), dense SiLU */
    FL_W_DOWN,         /* (hidden, intermediate), dense SiLU */
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
 * runners: matrices in the compute dtype, norms and biases in float32. */
typedef enum fl_tensor_kind { FL_KIND_MATRIX, FL_KIND_NORM, FL_KIND_BIAS } fl_tensor_kind;

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
/* The expected shape of a role under cfg; returns ndim (1 or 2). */
int fl_layer_role_shape(const struct fl_model_config *cfg, fl_layer_role role, int64_t shape[2]);
int fl_model_role_shape(const struct fl_model_config *cfg, fl_model_role role, int64_t shape[2]);
fl_tensor_kind fl_model_role_kind(fl_model_role role);

/* ---- for architecture files ---- */

/* The tensor names of the Llama family (Llama, Qwen2, Qwen3). */
extern const fl_tensor_names fl_llama_tensor_names;

/* The Llama family's layers: every layer full causal attention with spec's
 * biases and norms and the dense SiLU MLP. Refuses what the family's
 * configs can ask that flashlm does not implement (another hidden_act,
 * mlp_bias, sliding windows, other layer_types). */
int fl_arch_llama_family_layers(struct fl_model_config *cfg, json_t *root, fl_layer_spec spec,
                                const char *src, fl_error *err);

#endif
