// How much of a graph's kernel-to-kernel gap programmatic dependent launch removes (H200),
// for short kernels alone and between cuBLASLt GEMMs of a decode step's shape.
#include <cuda_runtime.h>
#include <cublasLt.h>
#include <stdio.h>
#include <stdlib.h>
#define CK(x) do { int e_ = (int)(x); if (e_) { printf("%s: %d line %d\n", #x, e_, __LINE__); exit(1);} } while (0)

__global__ void work(float *buf, int iters, int pdl, int trigger)
{
    if (trigger) asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
    if (pdl) asm volatile("griddepcontrol.wait;" ::: "memory");
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    float v = buf[i];
    for (int k = 0; k < iters; k++) v = v * 0.9999f + 1e-4f;
    buf[i] = v;
}

static cublasLtHandle_t lt;
static cublasLtMatmulDesc_t desc;
static cublasLtMatrixLayout_t la, lb, lc;
static cublasLtMatmulAlgo_t algo;
static void *ws, *W, *X, *Y;
static void gemm_setup(int tokens, int n, int k)
{
    CK(cublasLtCreate(&lt));
    CK(cublasLtMatmulDescCreate(&desc, CUBLAS_COMPUTE_32F, CUDA_R_32F));
    cublasOperation_t ta = CUBLAS_OP_T, tb = CUBLAS_OP_N;
    CK(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_TRANSA, &ta, sizeof ta));
    CK(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_TRANSB, &tb, sizeof tb));
    CK(cublasLtMatrixLayoutCreate(&la, CUDA_R_16BF, k, n, k));
    CK(cublasLtMatrixLayoutCreate(&lb, CUDA_R_16BF, k, tokens, k));
    CK(cublasLtMatrixLayoutCreate(&lc, CUDA_R_32F, n, tokens, n));
    size_t wsb = 32 << 20;
    CK(cudaMalloc(&ws, wsb));
    cublasLtMatmulPreference_t pref;
    CK(cublasLtMatmulPreferenceCreate(&pref));
    CK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &wsb, sizeof wsb));
    cublasLtMatmulHeuristicResult_t r; int found;
    CK(cublasLtMatmulAlgoGetHeuristic(lt, desc, la, lb, lc, lc, pref, 1, &r, &found));
    algo = r.algo;
    CK(cudaMalloc(&W, (size_t)n * k * 2 * 28)); CK(cudaMemset(W, 0, (size_t)n * k * 2 * 28));
    CK(cudaMalloc(&X, (size_t)tokens * k * 2)); CK(cudaMemset(X, 0, (size_t)tokens * k * 2));
    CK(cudaMalloc(&Y, (size_t)tokens * n * 4)); CK(cudaMemset(Y, 0, (size_t)tokens * n * 4));
}
static int g_n = 1024, g_k = 2048, g_t = 256;
static void gemm(int layer, cudaStream_t s)
{
    float a = 1, b = 1;
    CK(cublasLtMatmul(lt, desc, &a, (char *)W + (size_t)layer * g_n * g_k * 2, la, X, lb, &b, Y, lc, Y, lc, &algo, ws, 32 << 20, s));
}

static float *buf;
static void launch_work(int iters, int pdl, int trigger, cudaStream_t s)
{
    cudaLaunchConfig_t cfg = {};
    cfg.gridDim = dim3(132 * 2); cfg.blockDim = dim3(256); cfg.stream = s;
    cudaLaunchAttribute at;
    at.id = cudaLaunchAttributeProgrammaticStreamSerialization;
    at.val.programmaticStreamSerializationAllowed = 1;
    cfg.attrs = &at; cfg.numAttrs = pdl ? 1 : 0;
    CK(cudaLaunchKernelEx(&cfg, work, buf, iters, pdl, trigger));
}

// us per repetition of the pattern, captured 28 times in one graph
static double timed(int pattern, int iters, int pdl, int trigger, cudaStream_t s)
{
    cudaGraph_t g; cudaGraphExec_t e;
    CK(cudaStreamBeginCapture(s, cudaStreamCaptureModeThreadLocal));
    for (int l = 0; l < 28; l++) {
        if (pattern == 0) { for (int j = 0; j < 9; j++) launch_work(iters, pdl, trigger, s); }
        if (pattern == 1) { gemm(l, s); launch_work(iters, pdl, trigger, s); }
        if (pattern == 2) { gemm(l, s); }
    }
    CK(cudaStreamEndCapture(s, &g));
    CK(cudaGraphInstantiate(&e, g, 0));
    cudaEvent_t a, b; cudaEventCreate(&a); cudaEventCreate(&b);
    for (int i = 0; i < 3; i++) CK(cudaGraphLaunch(e, s));
    cudaEventRecord(a, s);
    for (int i = 0; i < 50; i++) CK(cudaGraphLaunch(e, s));
    cudaEventRecord(b, s);
    CK(cudaEventSynchronize(b));
    float ms; cudaEventElapsedTime(&ms, a, b);
    cudaGraphExecDestroy(e); cudaGraphDestroy(g);
    return 1e3 * ms / 50 / 28 / (pattern == 0 ? 9 : 1);
}

int main()
{
    cudaStream_t s; CK(cudaStreamCreate(&s));
    CK(cudaMalloc(&buf, 132 * 2 * 256 * 4)); CK(cudaMemset(buf, 0, 132 * 2 * 256 * 4));
    gemm_setup(g_t, g_n, g_k);
    for (int iters = 0; iters <= 2000; iters += 1000) {
        printf("work kernels alone, %4d iters: plain %.2f us, pdl %.2f us, pdl+trigger %.2f us each\n", iters,
               timed(0, iters, 0, 0, s), timed(0, iters, 1, 0, s), timed(0, iters, 1, 1, s));
    }
    const double g = timed(2, 0, 0, 0, s);
    printf("gemm 256x1024x2048 alone %.2f us\n", g);
    for (int iters = 0; iters <= 1000; iters += 1000)
        printf("gemm + work(%d): plain %.2f us, pdl %.2f us a pair\n", iters, timed(1, iters, 0, 0, s), timed(1, iters, 1, 0, s));
    return 0;
}
