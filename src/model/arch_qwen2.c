/* arch_qwen2.c - Qwen2ForCausalLM: the Llama layer with q/k/v biases
 * always, and none on the output projection (transformers' Qwen2 ignores
 * attention_bias). */
#include "model/arch.h"
#include "model/config.h"

static int configure(fl_model_config *cfg, json_t *root, const char *src, fl_error *err)
{
    const fl_layer_spec spec = { .qkv_bias = 1 };
    return fl_arch_llama_family_layers(cfg, root, spec, src, err);
}

const fl_arch fl_arch_qwen2 = { "Qwen2ForCausalLM", &fl_hf_tensor_names, configure };
