/* arch_qwen3.c - Qwen3ForCausalLM: the Llama layer with an RMSNorm on each
 * query and key head before RoPE; attention_bias adds biases to all four
 * projections. */
#include "model/arch.h"
#include "model/config.h"
#include "model/config_fields.h"

static int configure(fl_model_config *cfg, json_t *root, const char *src, fl_error *err)
{
    int bias = 0;
    if (fl_config_bool(root, "attention_bias", 0, &bias, src, err) != 0)
        return -1;
    const fl_layer_spec spec = { .qkv_bias = (uint8_t)bias, .o_bias = (uint8_t)bias, .qk_norm = 1 };
    return fl_arch_llama_family_layers(cfg, root, spec, src, err);
}

const fl_arch fl_arch_qwen3 = { "Qwen3ForCausalLM", &fl_hf_tensor_names, configure };
