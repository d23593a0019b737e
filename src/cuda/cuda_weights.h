/* cuda_weights.h - the model's weights on the GPU, in the layout the CUDA
 * runner computes with: matrices bf16 (q/k/v fused into one (Hq + 2 Hkv) *
 * D by hidden matrix, gate and up into one 2 * intermediate by hidden;
 * expert stacks as the checkpoint has them, (E, in, out), MXFP4 ones
 * dequantized at load), norms, biases and sinks float32. One allocation
 * holds everything. */
#ifndef FL_CUDA_WEIGHTS_H
#define FL_CUDA_WEIGHTS_H

#include <stddef.h>
#include <stdint.h>

#include "base/error.h"
#include "model/config.h"
#include "model/weights.h"
#include "parallel/tp_shard.h"

typedef struct fl_cuda_layer {
    const uint16_t *w_qkv, *w_o, *w_gate_up, *w_down;
    const float *b_qkv, *b_o;               /* NULL if the model has none */
    const float *attn_norm, *mlp_norm;
    const float *q_norm, *k_norm;           /* NULL without head norms */
    const float *sinks;                     /* (num_heads), NULL without sinks */
    /* routed experts (FL_FFN_MOE; cuda/moe.h's layouts) */
    const float *router, *router_bias;      /* (E, hidden) float32 (see cuda/moe.h), (E) */
    const uint16_t *experts_gate_up, *experts_down;
    const float *experts_gate_up_bias, *experts_down_bias;
} fl_cuda_layer;

typedef struct fl_cuda_weights {
    void *base;                             /* the one device allocation */
    size_t bytes;
    const uint16_t *embed, *lm_head;        /* lm_head == embed when tied */
    const float *final_norm;
    int num_layers;
    fl_cuda_layer *layers;
} fl_cuda_weights;

/* Converts and uploads w, or a tensor-parallel rank's slice of it
 * (parallel/tp_shard.h; shard NULL: the whole model): its heads' q/k/v
 * rows, sinks and o_proj columns, its slice of gate/up rows and down_proj
 * columns, its rows of the embedding and lm_head padded to the vocabulary
 * slice with zeros; norms, the router and o_proj's bias whole; each
 * expert's slice of the intermediate size, its down biases on rank 0 only.
 * -1 with a message if the GPU lacks the memory. */
int fl_cuda_weights_init(fl_cuda_weights *cw, const fl_model_config *cfg, const fl_weights *w,
                         const fl_tp_shard *shard, fl_error *err);
void fl_cuda_weights_free(fl_cuda_weights *cw);

#endif
