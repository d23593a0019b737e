/* arch_llama.c - LlamaForCausalLM: attention_bias, when set, adds a bias
 * to all four attention projections; rope scaling "llama3" is read with
 * the common rope fields (config.c). */
#include "model/arch.h"
#include "model/config.h"
#include "model/config_fields.h"

static int configure(fl_model_config *cfg, json_t *root, const char *src, fl_error *err)
{
    int bias = 0;
    if (fl_config_bool(root, "attention_bias", 0, &bias, src, err) != 0)
        return -1;
    const fl_layer_spec spec = { .qkv_bias = (uint8_t)bias, .o_bias = (uint8_t)bias };
    return fl_arch_llama_family_layers(cfg, root, spec, src, err);
}

const fl_arch fl_arch_llama = { "LlamaForCausalLM", &fl_hf_tensor_names, configure };
