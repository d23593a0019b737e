/* gemm.h - the model's matrix products through cuBLASLt, bf16 operands.
 *
 * Y (tokens, n) = X (tokens, k) . W^T with W a Hugging Face Linear weight
 * (n, k), all row-major. Y is bf16, or float32 with an optional
 * accumulate (Y += ...), which folds the residual add of o_proj and
 * down_proj into the product. The matmul descriptor, layouts and chosen
 * algorithm of each (n, k, tokens, output) are made once and cached. */
#ifndef FL_CUDA_GEMM_H
#define FL_CUDA_GEMM_H

#include <stddef.h>
#include <stdint.h>

#include "base/bytemap.h"
#include "base/error.h"

typedef enum fl_gemm_out {
    FL_GEMM_BF16,        /* Y = X W^T, bf16 */
    FL_GEMM_F32,         /* Y = X W^T, float32 */
    FL_GEMM_F32_ADD,     /* Y += X W^T, float32 */
} fl_gemm_out;

typedef struct fl_gemm {
    void *handle;        /* cublasLtHandle_t */
    void *workspace;     /* device */
    size_t workspace_bytes;
    fl_bytemap plans;    /* packed (n, k, tokens, out) -> index into plan_list */
    struct fl_gemm_plan *plan_list;
    int num_plans, cap_plans;
} fl_gemm;

int fl_gemm_init(fl_gemm *g, fl_error *err);
void fl_gemm_free(fl_gemm *g);

/* Enqueues Y = X W^T on stream (a cudaStream_t). */
void fl_gemm_run(fl_gemm *g, const uint16_t *w, const uint16_t *x, void *y, int tokens, int n, int k,
                 fl_gemm_out out, void *stream);

#endif
