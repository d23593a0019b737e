/* moe.h - gpt-oss's routed experts on the GPU (FL_FFN_MOE, model/arch.h), as
 * one C launcher: the block from the router's logits to the residual add.
 *
 * Six launches, whatever the number of experts, none needing the host to
 * see a count (so a CUDA graph replays them): the router's logits, from
 * the float32 residual normed in float32 (a token's experts are a discrete
 * choice: computed from the bf16 copy the experts read, near-ties between
 * its k-th and next expert flip under bf16 rounding and swap a whole
 * expert's output, an error no later precision repairs); routing (each
 * token's top experts and their softmaxed weights), the permutation (the (token, slot)
 * pairs grouped by expert, and the list of 128-row tiles of each expert's
 * group), the grouped gate/up GEMM with the clamped SwiGLU fused into its
 * epilogue, the grouped down GEMM with the bias and router weight fused,
 * and the combine, which adds each token's expert outputs in slot order.
 * No step adds floats in an order that depends on thread timing, so the
 * block is deterministic. The expert matrices stay in HF's x @ W layout
 * (E, in, out): the GEMMs read them through transposing ldmatrix. */
#ifndef FL_CUDA_MOE_H
#define FL_CUDA_MOE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The sizes of one MoE layer; hidden and ff multiples of 8, hidden at most
 * FL_CUDA_MOE_MAX_HIDDEN. */
typedef struct fl_cuda_moe_shape {
    int hidden, ff;                  /* model width, expert intermediate width */
    int num_experts, top_k;          /* top_k <= num_experts <= FL_CUDA_MOE_MAX_EXPERTS, top_k <= 8 */
    float swiglu_alpha, swiglu_limit;
} fl_cuda_moe_shape;

#define FL_CUDA_MOE_MAX_EXPERTS 256
#define FL_CUDA_MOE_MAX_HIDDEN 12288 /* the router stages 4 normed rows in shared memory */

typedef struct fl_cuda_moe_args {
    int num_tokens;
    const float *residual_in;        /* (T, hidden) float32, the residual stream before the block */
    const float *norm_weight;        /* (hidden) the block's RMSNorm */
    float eps;
    const uint16_t *x;               /* (T, hidden) bf16, that RMSNorm of residual_in: the experts' input */
    const float *router;             /* (E, hidden) float32 */
    const float *router_bias;        /* (E) */
    const uint16_t *gate_up;         /* (E, hidden, 2 ff) bf16: gate in even columns, up in odd */
    const float *gate_up_bias;       /* (E, 2 ff), interleaved alike */
    const uint16_t *down;            /* (E, ff, hidden) bf16 */
    const float *down_bias;          /* (E, hidden); NULL: none (a tensor-parallel rank but the first) */
    float *residual;                 /* (T, hidden) float32: += the block's output (may be residual_in) */
    void *workspace;                 /* fl_cuda_moe_workspace_bytes(); zeroed once when allocated */
    int max_tokens;                  /* the num_tokens the workspace was sized for */
} fl_cuda_moe_args;

/* Bytes of workspace for steps of up to max_tokens tokens. */
size_t fl_cuda_moe_workspace_bytes(const fl_cuda_moe_shape *s, int max_tokens);

/* Once per process before the first fl_cuda_moe (the GEMM's shared memory
 * attribute; not a stream operation, so not inside a graph capture). */
int fl_cuda_moe_init(void);

/* Enqueues the block on stream. Returns a CUDA error code (0: fine). */
int fl_cuda_moe(const fl_cuda_moe_shape *s, const fl_cuda_moe_args *a, void *stream);

#ifdef __cplusplus
}
#endif

#endif
