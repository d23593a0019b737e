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
    /* dummy weights are the experts' bf16 (dequantized) form, whatever the
     * quantization_config says the published checkpoint holds */
    { "openai/gpt-oss-20b",
      "{\"architectures\": [\"GptOssForCausalLM\"], \"attention_bias\": true, "
      "\"attention_dropout\": 0.0, \"eos_token_id\": 200002, \"experts_per_token\": 4, "
      "\"head_dim\": 64, \"hidden_act\": \"silu\", \"hidden_size\": 2880, "
      "\"initial_context_length\": 4096, \"initializer_range\": 0.02, \"intermediate_size\": 2880, "
      "\"layer_types\": [\"sliding_attention\", \"full_attention\", \"sliding_attention\", "
      "\"full_attention\", \"sliding_attention\", \"full_attention\", \"sliding_attention\", "
      "\"full_attention\", \"sliding_attention\", \"full_attention\", \"sliding_attention\", "
      "\"full_attention\", \"sliding_attention\", \"full_attention\", \"sliding_attention\", "
      "\"full_attention\", \"sliding_attention\", \"full_attention\", \"sliding_attention\", "
      "\"full_attention\", \"sliding_attention\", \"full_attention\", \"sliding_attention\", "
      "\"full_attention\"], \"max_position_embeddings\": 131072, \"model_type\": \"gpt_oss\", "
      "\"num_attention_heads\": 64, \"num_experts_per_tok\": 4, \"num_hidden_layers\": 24, "
      "\"num_key_value_heads\": 8, \"num_local_experts\": 32, \"output_router_logits\": false, "
      "\"pad_token_id\": 199999, "
      "\"quantization_config\": {\"modules_to_not_convert\": [\"model.layers.*.self_attn\", "
      "\"model.layers.*.mlp.router\", \"model.embed_tokens\", \"lm_head\"], "
      "\"quant_method\": \"mxfp4\"}, \"rms_norm_eps\": 1e-05, \"rope_scaling\": {\"beta_fast\": 32.0, "
      "\"beta_slow\": 1.0, \"factor\": 32.0, \"original_max_position_embeddings\": 4096, "
      "\"rope_type\": \"yarn\", \"truncate\": false}, \"rope_theta\": 150000, "
      "\"router_aux_loss_coef\": 0.9, \"sliding_window\": 128, \"swiglu_limit\": 7.0, "
      "\"tie_word_embeddings\": false, \"torch_dtype\": \"bfloat16\", \"use_cache\": true, "
      "\"vocab_size\": 201088}" },
};

const char *fl_builtin_config_json(const char *name)
{
    for (size_t i = 0; i < sizeof builtin_configs / sizeof builtin_configs[0]; i++)
        if (strcmp(builtin_configs[i].name, name) == 0)
            return builtin_configs[i].config_json;
    return NULL;
}
