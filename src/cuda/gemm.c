/* gemm.c - cuBLASLt products with cached plans (see gemm.h).
 *
 * In cuBLAS's column-major terms a row-major (rows, cols) matrix is its
 * (cols, rows) transpose, so Y^T (n, tokens) = op(W) X^T with W read as the
 * column-major (k, n) matrix and transposed: transa = T, transb = N. */
#include "cuda/gemm.h"

#include <cublasLt.h>
#include <cuda_runtime.h>
#include <string.h>

#include "base/alloc.h"
#include "cuda/cuda_check.h"

#define WORKSPACE_BYTES ((size_t)32 << 20)

typedef struct fl_gemm_plan {
    cublasLtMatmulDesc_t desc;
    cublasLtMatrixLayout_t a, b, c;
    cublasLtMatmulAlgo_t algo;
} fl_gemm_plan;

int fl_gemm_init(fl_gemm *g, fl_error *err)
{
    memset(g, 0, sizeof *g);
    cublasLtHandle_t h;
    if (cublasLtCreate(&h) != CUBLAS_STATUS_SUCCESS)
        return fl_fail(err, "cuBLASLt: cannot create a handle");
    g->handle = h;
    g->workspace_bytes = WORKSPACE_BYTES;
    if (cudaMalloc(&g->workspace, g->workspace_bytes) != cudaSuccess) {
        cublasLtDestroy(h);
        return fl_fail(err, "cuBLASLt: cannot allocate %zu bytes of workspace", g->workspace_bytes);
    }
    fl_bytemap_init(&g->plans, 64);
    return 0;
}

void fl_gemm_free(fl_gemm *g)
{
    for (int i = 0; i < g->num_plans; i++) {
        fl_gemm_plan *p = &g->plan_list[i];
        cublasLtMatrixLayoutDestroy(p->a);
        cublasLtMatrixLayoutDestroy(p->b);
        cublasLtMatrixLayoutDestroy(p->c);
        cublasLtMatmulDescDestroy(p->desc);
    }
    free(g->plan_list);
    fl_bytemap_free(&g->plans);
    if (g->workspace)
        cudaFree(g->workspace);
    if (g->handle)
        cublasLtDestroy((cublasLtHandle_t)g->handle);
    memset(g, 0, sizeof *g);
}

static fl_gemm_plan *make_plan(fl_gemm *g, int tokens, int n, int k, fl_gemm_out out)
{
    if (g->num_plans == g->cap_plans) {
        g->cap_plans = g->cap_plans ? 2 * g->cap_plans : 64;
        g->plan_list = fl_realloc(g->plan_list, (size_t)g->cap_plans * sizeof *g->plan_list);
    }
    fl_gemm_plan *p = &g->plan_list[g->num_plans];
    const cudaDataType_t c_type = out == FL_GEMM_BF16 ? CUDA_R_16BF : CUDA_R_32F;
    FL_CUDA_CHECK(cublasLtMatmulDescCreate(&p->desc, CUBLAS_COMPUTE_32F, CUDA_R_32F));
    const cublasOperation_t ta = CUBLAS_OP_T, tb = CUBLAS_OP_N;
    FL_CUDA_CHECK(cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_TRANSA, &ta, sizeof ta));
    FL_CUDA_CHECK(cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_TRANSB, &tb, sizeof tb));
    FL_CUDA_CHECK(cublasLtMatrixLayoutCreate(&p->a, CUDA_R_16BF, k, n, k));
    FL_CUDA_CHECK(cublasLtMatrixLayoutCreate(&p->b, CUDA_R_16BF, k, tokens, k));
    FL_CUDA_CHECK(cublasLtMatrixLayoutCreate(&p->c, c_type, n, tokens, n));
    cublasLtMatmulPreference_t pref;
    FL_CUDA_CHECK(cublasLtMatmulPreferenceCreate(&pref));
    FL_CUDA_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES,
                                                       &g->workspace_bytes, sizeof g->workspace_bytes));
    cublasLtMatmulHeuristicResult_t result;
    int found = 0;
    FL_CUDA_CHECK(cublasLtMatmulAlgoGetHeuristic((cublasLtHandle_t)g->handle, p->desc, p->a, p->b, p->c, p->c,
                                                 pref, 1, &result, &found));
    cublasLtMatmulPreferenceDestroy(pref);
    FL_ASSERT(found == 1);
    p->algo = result.algo;
    return &g->plan_list[g->num_plans++];
}

void fl_gemm_run(fl_gemm *g, const uint16_t *w, const uint16_t *x, void *y, int tokens, int n, int k,
                 fl_gemm_out out, void *stream)
{
    const uint64_t key = (uint64_t)n | (uint64_t)k << 21 | (uint64_t)tokens << 42 | (uint64_t)out << 62;
    uint64_t index;
    fl_gemm_plan *p;
    if (fl_bytemap_get(&g->plans, &key, sizeof key, &index)) {
        p = &g->plan_list[index];
    } else {
        FL_ASSERT(n < (1 << 21) && k < (1 << 21) && tokens < (1 << 20));
        p = make_plan(g, tokens, n, k, out);
        fl_bytemap_put(&g->plans, &key, sizeof key, (uint64_t)(p - g->plan_list));
    }
    const float alpha = 1.f, beta = out == FL_GEMM_F32_ADD ? 1.f : 0.f;
    FL_CUDA_CHECK(cublasLtMatmul((cublasLtHandle_t)g->handle, p->desc, &alpha, w, p->a, x, p->b, &beta, y, p->c,
                                 y, p->c, &p->algo, g->workspace, g->workspace_bytes, (cudaStream_t)stream));
}
