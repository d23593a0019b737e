/* backend.h - attention backends: what each supports, and choosing one.
 *
 * Each backend declares the head sizes, KV block sizes, KV dtypes, features
 * and devices (with CUDA compute capabilities) it supports. `auto` picks the
 * first registered backend, best first, that supports the model on the
 * device; a named backend that cannot run the model is refused with one
 * message saying what it lacks and which backends would work. The CUDA
 * backends come first (`hopper`, then the portable `paged`), then the CPU
 * reference. */
#ifndef FL_ATTN_BACKEND_H
#define FL_ATTN_BACKEND_H

#include "attention/attn_paged.h"
#include "base/dtype.h"
#include "base/error.h"

typedef enum fl_device_kind { FL_DEVICE_CPU, FL_DEVICE_CUDA } fl_device_kind;

enum {
    FL_ATTN_CAUSAL = 1 << 0,
    FL_ATTN_SLIDING_WINDOW = 1 << 1,
    FL_ATTN_SINKS = 1 << 2,
    FL_ATTN_SOFTCAP = 1 << 3,
};

#define FL_ATTN_MAX_LIST 8

typedef struct fl_attn_backend {
    const char *name;
    const char *description;
    fl_device_kind device;
    int min_cc, max_cc;                       /* CUDA compute capability x10 (90 = sm_90) */
    int head_dims[FL_ATTN_MAX_LIST];          /* 0-terminated; {-1} = any even size */
    int block_sizes[FL_ATTN_MAX_LIST];        /* 0-terminated */
    fl_dtype kv_dtypes[FL_ATTN_MAX_LIST];     /* FL_DTYPE_INVALID-terminated */
    unsigned features;                        /* FL_ATTN_* bits */
    fl_attn_kernel_set kernels;               /* CUDA: the kernel set of attn_paged.h that runs it */
} fl_attn_backend;

/* What a model on a device asks of attention. */
typedef struct fl_attn_needs {
    fl_device_kind device;
    int cc;                                   /* CUDA only */
    int head_dim;
    int block_size;
    fl_dtype kv_dtype;
    unsigned features;
} fl_attn_needs;

/* The registered backends, best first. */
const fl_attn_backend *fl_attn_backends(int *count);

/* Why b cannot serve needs (a static description), or NULL if it can. */
const char *fl_attn_backend_unsupported(const fl_attn_backend *b, const fl_attn_needs *needs,
                                        char *why, size_t why_len);

/* Chooses by name ("auto" or NULL: the best that can). On failure, one
 * message: what the chosen backend lacks and which backends would work. */
const fl_attn_backend *fl_attn_backend_select(const char *name, const fl_attn_needs *needs,
                                              fl_error *err);

/* One line per backend describing what it supports (for `flashlm info`). */
void fl_attn_backend_describe(const fl_attn_backend *b, char *out, size_t len);

#endif
