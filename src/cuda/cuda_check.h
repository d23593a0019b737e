/* cuda_check.h - CUDA calls on the hot path that must not fail.
 *
 * Start-up (device choice, allocations) reports through fl_error like any
 * other bad input. Once a model runs, a failing CUDA call or launch is a
 * bug or a dead GPU, not something a request can cause: FL_CUDA_CHECK
 * prints the call, the error and the place, and aborts (FL_ASSERT's tier). */
#ifndef FL_CUDA_CHECK_H
#define FL_CUDA_CHECK_H

#include <cuda_runtime_api.h>
#include <stdio.h>
#include <stdlib.h>

#define FL_CUDA_CHECK(call)                                                                  \
    do {                                                                                     \
        int fl_rc_ = (int)(call);                                                            \
        if (fl_rc_ != 0) {                                                                   \
            fprintf(stderr, "flashlm: CUDA error %d (%s) in %s (%s:%d)\n", fl_rc_,           \
                    cudaGetErrorString((cudaError_t)fl_rc_), #call, __FILE__, __LINE__);     \
            abort();                                                                         \
        }                                                                                    \
    } while (0)

/* Whether the set-up that *done records has not yet run on the calling
 * thread's current GPU (up to 32; fl_cuda_mark_device records it): a
 * kernel's attributes
 * (cudaFuncSetAttribute) belong to one device's context, so a process
 * with tensor-parallel ranks on several GPUs sets them on each. A bit is
 * set only after its device's call, so at worst two threads both set up. */
static inline int fl_cuda_first_on_device(unsigned *done)
{
    int device = 0;
    cudaGetDevice(&device);
    const unsigned bit = 1u << (device & 31);
    return !(__atomic_load_n(done, __ATOMIC_ACQUIRE) & bit);
}

/* Marks the current GPU in *done (after a successful set-up). */
static inline void fl_cuda_mark_device(unsigned *done)
{
    int device = 0;
    cudaGetDevice(&device);
    __atomic_fetch_or(done, 1u << (device & 31), __ATOMIC_RELEASE);
}

#endif
