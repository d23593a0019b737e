/* backend.h - attention backends: one interface, what each supports, and
 * choosing one.
 *
 * A backend is an entry of the registry (backend.c, the one place that
 * says what each supports): the head sizes, KV block sizes, KV cache
 * dtypes, features and devices (with CUDA compute capabilities) it runs,
 * and its code for that device: how to plan a step, how much workspace it
 * needs, how to run one layer's attention. `auto` picks the first
 * registered backend, best first, that supports the model on the device;
 * a named backend that cannot run the model is refused with one message
 * saying what it lacks and which backends would work. The backend chosen
 * at start-up is handed to the runner, which calls only its code. The
 * CUDA backends come first (`hopper`, then the portable `paged`: two
 * kernel sets of attention/attn_paged.h), then the CPU reference. */
#ifndef FL_ATTN_BACKEND_H
#define FL_ATTN_BACKEND_H

#include "attention/attn_cpu.h"
#include "attention/attn_paged.h"
#include "base/dtype.h"
#include "base/error.h"
#include "model/config.h"

typedef enum fl_device_kind { FL_DEVICE_CPU, FL_DEVICE_CUDA } fl_device_kind;

enum {
    FL_ATTN_CAUSAL = 1 << 0,
    FL_ATTN_SLIDING_WINDOW = 1 << 1,
    FL_ATTN_SINKS = 1 << 2,
    FL_ATTN_SOFTCAP = 1 << 3,
};

#define FL_ATTN_MAX_LIST 8

/* The code of a CPU backend. */
typedef struct fl_attn_cpu_ops {
    /* Floats of scratch one thread needs for contexts of max_context. */
    size_t (*scratch_floats)(int max_context);
    void (*run)(const fl_attn_cpu_args *args);
} fl_attn_cpu_ops;

/* The code of a CUDA backend (types of attention/attn_paged.h): the plan
 * of a step is built on the host and uploaded with the step's metadata. */
typedef struct fl_attn_cuda_ops {
    /* 0 if its kernels are built for this shape, else -1 with why */
    int (*supports)(const fl_attn_shape *shape, char *why, size_t why_len);
    /* int32 entries of a plan's work list for a step of this size */
    int (*work_cap)(const fl_attn_shape *shape, int num_seqs, int num_tokens);
    /* floats of device scratch for any step of at most max_seqs sequences */
    size_t (*scratch_floats_max)(const fl_attn_shape *shape, int max_seqs);
    void (*plan)(fl_attn_plan *plan, const fl_attn_shape *shape, const int32_t *query_start,
                 const int32_t *seq_lens, int num_seqs, int max_seq_len);
    /* one layer; returns a CUDA error code (0: launched) */
    int (*run)(const fl_attn_shape *shape, const fl_attn_plan *plan, const fl_attn_args *args, void *stream);
} fl_attn_cuda_ops;

typedef struct fl_attn_backend {
    const char *name;
    const char *description;
    fl_device_kind device;
    int min_cc, max_cc;                       /* CUDA compute capability x10 (90 = sm_90) */
    int head_dims[FL_ATTN_MAX_LIST];          /* 0-terminated; {-1} = any even size */
    int block_sizes[FL_ATTN_MAX_LIST];        /* 0-terminated */
    fl_dtype kv_dtypes[FL_ATTN_MAX_LIST];     /* FL_DTYPE_INVALID-terminated */
    unsigned features;                        /* FL_ATTN_* bits */
    const fl_attn_cpu_ops *cpu;               /* the code of a CPU backend */
    const fl_attn_cuda_ops *cuda;             /* of a CUDA backend; NULL in a build without CUDA
                                                 (which never selects the CUDA device) */
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

/* What a model asks of attention on a device: its head size, the
 * features its layers use (causal; a sliding window if any layer has one;
 * sinks if any layer has them). */
fl_attn_needs fl_attn_needs_of(const fl_model_config *cfg, fl_device_kind device, int cc, int block_size,
                               fl_dtype kv_dtype);

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
