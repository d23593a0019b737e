/* config.h - the model hyper-parameters, read from a Hugging Face
 * config.json or from a built-in copy of a known model's config.
 *
 * Every field is validated on load: an unsupported architecture or feature,
 * or a value out of range, is one error naming the file and the field. */
#ifndef FL_CONFIG_H
#define FL_CONFIG_H

#include <stdint.h>

#include "base/dtype.h"
#include "base/error.h"
#include "model/arch.h"

#define FL_MAX_EOS_IDS 8
/* The most layers a config may have (the per-layer plan is held inline, so
 * a config stays a plain value that runners copy). */
#define FL_MAX_LAYERS 1024

/* The rotary frequencies: theta^(-2i/d), or rescaled (model/rope.h). */
typedef enum fl_rope_type {
    FL_ROPE_DEFAULT,
    FL_ROPE_LLAMA3,  /* Llama 3.1's low-frequency rescaling */
    FL_ROPE_YARN,    /* YaRN: NTK-by-parts frequencies, cos/sin scaled */
} fl_rope_type;

typedef struct fl_model_config {
    const fl_arch *arch;         /* from config.json's architectures[0] */
    int vocab_size;
    int hidden_size;
    int intermediate_size;
    int num_layers;
    int num_heads;               /* query heads */
    int num_kv_heads;
    int head_dim;
    int max_position_embeddings;
    float rms_norm_eps;
    double rope_theta;
    int tie_word_embeddings;
    fl_rope_type rope_type;
    double rope_factor;            /* llama3, yarn */
    int rope_original_max_position;/* llama3, yarn */
    double rope_low_freq_factor;   /* llama3 */
    double rope_high_freq_factor;  /* llama3 */
    double rope_beta_fast;         /* yarn: rotations above which a pair keeps its frequency */
    double rope_beta_slow;         /* yarn: rotations below which it is divided by factor */
    int rope_truncate;             /* yarn: the ramp's ends rounded to whole pairs */
    double rope_attention_factor;  /* yarn: what cos and sin are multiplied by */
    /* the experts of FL_FFN_MOE layers (model-level: every such layer has
     * the same); 0 when no layer routes */
    int num_experts;               /* num_local_experts */
    int experts_per_token;         /* num_experts_per_tok */
    float swiglu_alpha;
    float swiglu_limit;
    int experts_mxfp4;             /* the checkpoint stores the expert matrices as MXFP4 */
    fl_dtype dtype;              /* the checkpoint's torch dtype */
    int bos_token_id;            /* -1 if none */
    int num_eos_ids;
    int eos_token_ids[FL_MAX_EOS_IDS];
    fl_layer_spec layers[FL_MAX_LAYERS]; /* the plan of each layer, [0, num_layers) used */
} fl_model_config;

/* Parses config.json text; source names the file in error messages. */
int fl_model_config_parse(fl_model_config *cfg, const char *json_text, const char *source,
                          fl_error *err);

/* Reads DIR/config.json. */
int fl_model_config_load_dir(fl_model_config *cfg, const char *dir, fl_error *err);

/* The config.json text of a built-in model name ("Qwen/Qwen3-0.6B"), or NULL. */
const char *fl_builtin_config_json(const char *name);

/* Bytes of KV cache one token takes across all layers, in the given dtype. */
int64_t fl_model_config_kv_bytes_per_token(const fl_model_config *cfg, fl_dtype kv_dtype);

#endif
