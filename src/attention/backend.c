/* backend.c - the registry of attention backends and the choice among them
 * (see backend.h). */
#include "attention/backend.h"

#include <stdio.h>
#include <string.h>

static size_t cpu_scratch_floats(int max_context)
{
    return (size_t)max_context; /* one row of scores */
}

static const fl_attn_cpu_ops cpu_ops = { cpu_scratch_floats, fl_attn_cpu };

/* The CUDA backends are the two kernel sets of attention/attn_paged.h: the
 * same model features, lists (attn_paged.h's, which its supports check
 * reads too) and planner (given the set: their prefill tiles differ),
 * different machine code. */
#ifdef FLASHLM_HAVE_CUDA
static int hopper_supports(const fl_attn_shape *shape, char *why, size_t why_len)
{
    return fl_attn_paged_supports(shape, FL_ATTN_HOPPER, why, why_len);
}

static void hopper_plan(fl_attn_plan *plan, const fl_attn_shape *shape, const int32_t *query_start,
                        const int32_t *seq_lens, int num_seqs, int max_seq_len)
{
    fl_attn_plan_build(plan, shape, FL_ATTN_HOPPER, query_start, seq_lens, num_seqs, max_seq_len);
}

static int hopper_run(const fl_attn_shape *shape, const fl_attn_plan *plan, const fl_attn_args *a, void *stream)
{
    return fl_attn_paged_run(shape, FL_ATTN_HOPPER, plan, a, stream);
}

static int paged_supports(const fl_attn_shape *shape, char *why, size_t why_len)
{
    return fl_attn_paged_supports(shape, FL_ATTN_PORTABLE, why, why_len);
}

static void paged_plan(fl_attn_plan *plan, const fl_attn_shape *shape, const int32_t *query_start,
                       const int32_t *seq_lens, int num_seqs, int max_seq_len)
{
    fl_attn_plan_build(plan, shape, FL_ATTN_PORTABLE, query_start, seq_lens, num_seqs, max_seq_len);
}

static int paged_run(const fl_attn_shape *shape, const fl_attn_plan *plan, const fl_attn_args *a, void *stream)
{
    return fl_attn_paged_run(shape, FL_ATTN_PORTABLE, plan, a, stream);
}

static const fl_attn_cuda_ops hopper_ops = { hopper_supports, fl_attn_plan_work_cap, fl_attn_plan_scratch_floats_max,
                                             hopper_plan, hopper_run };
static const fl_attn_cuda_ops paged_ops = { paged_supports, fl_attn_plan_work_cap, fl_attn_plan_scratch_floats_max,
                                            paged_plan, paged_run };
#define CUDA_OPS(ops) (&(ops))
#else
#define CUDA_OPS(ops) NULL
#endif

static const fl_attn_backend registry[] = {
    {
        /* named for the hardware whose instructions it is made of: wgmma,
         * tensor copies (TMA), warp specialisation are sm_90a's */
        .name = "hopper",
        .description = "paged attention on Hopper: prefill on warpgroup MMAs (wgmma) fed by tensor copies "
                       "from a producer warp or warpgroup for head sizes 64, 96, 128 and 256 (mma.sync for 16 "
                       "and 32), split-KV decode with GQA packing and K/V by tensor copies (attention/attn_paged)",
        .device = FL_DEVICE_CUDA,
        .min_cc = FL_ATTN_HOPPER_MIN_CC, .max_cc = FL_ATTN_HOPPER_MAX_CC,
        .head_dims = { FL_ATTN_PAGED_HEAD_DIMS },
        .block_sizes = { FL_ATTN_PAGED_BLOCK_SIZES },
        .kv_dtypes = { FL_ATTN_PAGED_KV_DTYPES },
        .features = FL_ATTN_PAGED_FEATURES,
        .cuda = CUDA_OPS(hopper_ops),
    },
    {
        .name = "paged",
        .description = "portable paged attention on CUDA: prefill on mma.sync, split-KV decode with GQA "
                       "packing, K/V by cp.async (attention/attn_paged)",
        .device = FL_DEVICE_CUDA,
        .min_cc = FL_ATTN_PORTABLE_MIN_CC, .max_cc = FL_ATTN_PORTABLE_MAX_CC,
        .head_dims = { FL_ATTN_PAGED_HEAD_DIMS },
        .block_sizes = { FL_ATTN_PAGED_BLOCK_SIZES },
        .kv_dtypes = { FL_ATTN_PAGED_KV_DTYPES },
        .features = FL_ATTN_PAGED_FEATURES,
        .cuda = CUDA_OPS(paged_ops),
    },
    {
        .name = "cpu",
        .description = "reference paged attention on the CPU, float32 (attention/attn_cpu)",
        .device = FL_DEVICE_CPU,
        .head_dims = { -1 },
        .block_sizes = { 16, 32, 64, 128 },
        .kv_dtypes = { FL_F32 },
        .features = FL_ATTN_CAUSAL | FL_ATTN_SLIDING_WINDOW | FL_ATTN_SINKS,
        .cpu = &cpu_ops,
    },
};
#define NUM_BACKENDS ((int)(sizeof registry / sizeof registry[0]))

fl_attn_needs fl_attn_needs_of(const fl_model_config *cfg, fl_device_kind device, int cc, int block_size,
                               fl_dtype kv_dtype)
{
    fl_attn_needs n = { .device = device, .cc = cc, .head_dim = cfg->head_dim, .block_size = block_size,
                        .kv_dtype = kv_dtype, .features = FL_ATTN_CAUSAL };
    for (int i = 0; i < cfg->num_layers; i++) {
        if (cfg->layers[i].window > 0)
            n.features |= FL_ATTN_SLIDING_WINDOW;
        if (cfg->layers[i].sinks)
            n.features |= FL_ATTN_SINKS;
    }
    return n;
}

const fl_attn_backend *fl_attn_backends(int *count)
{
    *count = NUM_BACKENDS;
    return registry;
}

static int in_list(const int *list, int x)
{
    for (int i = 0; i < FL_ATTN_MAX_LIST && list[i]; i++)
        if (list[i] == x || (list[i] == -1 && x > 0 && x % 2 == 0))
            return 1;
    return 0;
}

static void format_list(const int *list, char *out, size_t len)
{
    size_t at = 0;
    out[0] = '\0';
    for (int i = 0; i < FL_ATTN_MAX_LIST && list[i] && at < len; i++)
        at += (size_t)snprintf(out + at, len - at, list[i] == -1 ? "%sany even" : "%s%d", i ? ", " : "",
                               list[i]);
}

static const char *device_name(fl_device_kind d)
{
    return d == FL_DEVICE_CPU ? "CPU" : "CUDA";
}

const char *fl_attn_backend_unsupported(const fl_attn_backend *b, const fl_attn_needs *n, char *why,
                                        size_t len)
{
    char list[128];
    if (b->device != n->device) {
        snprintf(why, len, "runs on %s, not %s", device_name(b->device), device_name(n->device));
        return why;
    }
    if (b->device == FL_DEVICE_CUDA && (n->cc < b->min_cc || n->cc > b->max_cc)) {
        if (b->min_cc == b->max_cc)
            snprintf(why, len, "needs compute capability %d.%d, the GPU has %d.%d", b->min_cc / 10, b->min_cc % 10,
                     n->cc / 10, n->cc % 10);
        else
            snprintf(why, len, "needs compute capability %d.%d to %d.%d, the GPU has %d.%d", b->min_cc / 10,
                     b->min_cc % 10, b->max_cc / 10, b->max_cc % 10, n->cc / 10, n->cc % 10);
        return why;
    }
    if (!in_list(b->head_dims, n->head_dim)) {
        format_list(b->head_dims, list, sizeof list);
        snprintf(why, len, "head size %d is not supported (supported: %s)", n->head_dim, list);
        return why;
    }
    if (!in_list(b->block_sizes, n->block_size)) {
        format_list(b->block_sizes, list, sizeof list);
        snprintf(why, len, "KV block size %d is not supported (supported: %s)", n->block_size, list);
        return why;
    }
    int dtype_ok = 0;
    for (int i = 0; i < FL_ATTN_MAX_LIST && b->kv_dtypes[i] != FL_DTYPE_INVALID; i++)
        dtype_ok |= b->kv_dtypes[i] == n->kv_dtype;
    if (!dtype_ok) {
        snprintf(why, len, "KV cache dtype %s is not supported", fl_dtype_name(n->kv_dtype));
        return why;
    }
    static const struct { unsigned bit; const char *name; } features[] = {
        { FL_ATTN_CAUSAL, "causal" }, { FL_ATTN_SLIDING_WINDOW, "sliding window" },
        { FL_ATTN_SINKS, "attention sinks" }, { FL_ATTN_SOFTCAP, "logit softcap" },
    };
    for (size_t i = 0; i < sizeof features / sizeof features[0]; i++) {
        if ((n->features & features[i].bit) && !(b->features & features[i].bit)) {
            snprintf(why, len, "%s is not supported", features[i].name);
            return why;
        }
    }
    return NULL;
}

const fl_attn_backend *fl_attn_backend_select(const char *name, const fl_attn_needs *needs,
                                              fl_error *err)
{
    char why[256], working[256] = "";
    size_t at = 0;
    for (int i = 0; i < NUM_BACKENDS; i++)
        if (!fl_attn_backend_unsupported(&registry[i], needs, why, sizeof why) && at < sizeof working)
            at += (size_t)snprintf(working + at, sizeof working - at, "%s%s", at ? ", " : "", registry[i].name);
    const int automatic = !name || strcmp(name, "auto") == 0;
    for (int i = 0; i < NUM_BACKENDS; i++) {
        const fl_attn_backend *b = &registry[i];
        if (!automatic && strcmp(name, b->name) != 0)
            continue;
        if (!fl_attn_backend_unsupported(b, needs, why, sizeof why))
            return b;
        if (!automatic) {
            fl_fail(err, "attention backend '%s' cannot run this model: %s (backends that can: %s)",
                    name, why, at ? working : "none");
            return NULL;
        }
    }
    if (automatic) {
        /* why each backend of this device cannot, which is what to change */
        char reasons[512] = "";
        size_t k = 0;
        for (int i = 0; i < NUM_BACKENDS && k < sizeof reasons; i++)
            if (registry[i].device == needs->device)
                k += (size_t)snprintf(reasons + k, sizeof reasons - k, "%s%s: %s", k ? "; " : "", registry[i].name,
                                      fl_attn_backend_unsupported(&registry[i], needs, why, sizeof why));
        fl_fail(err, "no attention backend can run this model on this device (%s)", reasons);
    } else {
        char all[256] = "";
        size_t k = 0;
        for (int i = 0; i < NUM_BACKENDS && k < sizeof all; i++)
            k += (size_t)snprintf(all + k, sizeof all - k, "%s%s", i ? ", " : "", registry[i].name);
        fl_fail(err, "unknown attention backend '%s' (this build has: auto, %s)", name, all);
    }
    return NULL;
}

void fl_attn_backend_describe(const fl_attn_backend *b, char *out, size_t len)
{
    char dims[128], blocks[128];
    format_list(b->head_dims, dims, sizeof dims);
    format_list(b->block_sizes, blocks, sizeof blocks);
    char cc[48] = "";
    if (b->device == FL_DEVICE_CUDA && b->min_cc == b->max_cc)
        snprintf(cc, sizeof cc, " sm_%d", b->min_cc);
    else if (b->device == FL_DEVICE_CUDA)
        snprintf(cc, sizeof cc, " sm_%d..sm_%d", b->min_cc, b->max_cc);
    snprintf(out, len, "%-10s %s%s; head sizes %s; block sizes %s; %s%s%s%s. %s", b->name,
             device_name(b->device), cc, dims, blocks,
             (b->features & FL_ATTN_CAUSAL) ? "causal" : "",
             (b->features & FL_ATTN_SLIDING_WINDOW) ? ", sliding window" : "",
             (b->features & FL_ATTN_SINKS) ? ", sinks" : "",
             (b->features & FL_ATTN_SOFTCAP) ? ", softcap" : "", b->description);
}
