/* builtin_configs.c - config.json of models that can be run with
 * --load-format dummy and no files at all, the way vLLM's dummy format is
 * used to benchmark an architecture without its weights. The values are the
 * models' published Hugging Face configs. */
#include <string.h>

#include "model/config.h"

static const struct {
    const char *name;
    const char *config_json;
} builtin_configs[] = {
    { "Qwen/Qwen3-0.6B",
      "{\"architectures\": [\"Qwen3ForCausalLM\"], \"attention_bias\": false,"
      " \"attention_dropout\": 0.0, \"bos_token_id\": 151643, \"eos_token_id\": 151645,"
      " \"head_dim\": 128, \"hidden_act\": \"silu\", \"hidden_size\": 1024,"
      " \"initializer_range\": 0.02, \"intermediate_size\": 3072,"
      " \"max_position_embeddings\": 40960, \"max_window_layers\": 28,"
      " \"model_type\": \"qwen3\", \"num_attention_heads\": 16, \"num_hidden_layers\": 28,"
      " \"num_key_value_heads\": 8, \"rms_norm_eps\": 1e-06, \"rope_scaling\": null,"
      " \"rope_theta\": 1000000, \"sliding_window\": null, \"tie_word_embeddings\": true,"
      " \"torch_dtype\": \"bfloat16\", \"transformers_version\": \"4.51.0\","
      " \"use_cache\": true, \"use_sliding_window\": false, \"vocab_size\": 151936}" },
};

const char *fl_builtin_config_json(const char *name)
{
    for (size_t i = 0; i < sizeof builtin_configs / sizeof builtin_configs[0]; i++)
        if (strcmp(builtin_configs[i].name, name) == 0)
            return builtin_configs[i].config_json;
    return NULL;
}
