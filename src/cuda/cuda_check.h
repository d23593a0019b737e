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

#endif
