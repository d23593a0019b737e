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
    /* rope_type "llama3" frequency scaling; rope_llama3 == 0 means none. */
    int rope_llama3;
    double rope_factor;
    double rope_low_freq_factor;
    double rope_high_freq_factor;
    int rope_original_max_position;
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
