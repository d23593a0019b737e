/* comm_nccl.c - the device collectives over NCCL (see comm.h), a rank per
 * GPU of this process.
 *
 * NCCL is loaded at run time: no Debian package ships it (on the GPU
 * machines it comes inside the nvidia-nccl-cu13 Python package), and a
 * build that links it would not start where it is missing. dlopen of
 * $FLASHLM_NCCL_SO_PATH, else libnccl.so.2 through the loader's path (vLLM
 * reads VLLM_NCCL_SO_PATH the same way). The few calls used are declared
 * here from NCCL's C API (ncclFloat32 = 7, ncclSum = 0, a unique id of 128
 * bytes), so no NCCL header is needed to build. The group's communicators
 * come from one ncclCommInitAll over GPUs 0..size-1; NVLink multicast
 * (NVLS) is off unless NCCL_NVLS_ENABLE says otherwise. NCCL's collectives
 * are enqueued on the rank's stream and can be captured into CUDA graphs.
 * Across hosts the same communicators would come from ncclGetUniqueId and
 * ncclCommInitRank (docs/architecture.md); not built. */
#include "parallel/comm.h"

#ifdef FLASHLM_HAVE_CUDA
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "base/error.h"

typedef int nccl_result;
typedef void *nccl_comm;
#define NCCL_FLOAT32 7
#define NCCL_SUM 0

typedef struct nccl_api {
    void *lib;
    nccl_result (*get_version)(int *version);
    nccl_result (*comm_init_all)(nccl_comm *comms, int ndev, const int *devices);
    nccl_result (*comm_destroy)(nccl_comm comm);
    nccl_result (*all_reduce)(const void *send, void *recv, size_t count, int dtype, int op, nccl_comm comm,
                              void *stream);
    nccl_result (*all_gather)(const void *send, void *recv, size_t count, int dtype, nccl_comm comm, void *stream);
    const char *(*error_string)(nccl_result r);
} nccl_api;

typedef struct nccl_group {
    nccl_api api;
    int size;
    nccl_comm *comms;  /* [size] */
    fl_comm *ranks;    /* [size] */
    fl_comm **pointers;
} nccl_group;

static const char *library_path(void)
{
    const char *p = getenv("FLASHLM_NCCL_SO_PATH");
    return p && *p ? p : "libnccl.so.2";
}

/* Loads NCCL's calls into api; -1 naming the library and the missing piece. */
static int load(nccl_api *api, fl_error *err)
{
    memset(api, 0, sizeof *api);
    const char *path = library_path();
    /* never unloaded: graphs that captured its collectives may call back
     * into it after the communicators are gone */
    api->lib = dlopen(path, RTLD_NOW | RTLD_LOCAL | RTLD_NODELETE);
    if (!api->lib)
        return fl_fail(err, "cannot load NCCL (%s): %s; give its path in FLASHLM_NCCL_SO_PATH (it ships in the "
                       "nvidia-nccl-cu13 Python package's nvidia/nccl/lib)", path, dlerror());
    struct {
        void **fn;
        const char *name;
    } calls[] = {
        { (void **)&api->get_version, "ncclGetVersion" },   { (void **)&api->comm_init_all, "ncclCommInitAll" },
        { (void **)&api->comm_destroy, "ncclCommDestroy" }, { (void **)&api->all_reduce, "ncclAllReduce" },
        { (void **)&api->all_gather, "ncclAllGather" },     { (void **)&api->error_string, "ncclGetErrorString" },
    };
    for (size_t i = 0; i < sizeof calls / sizeof calls[0]; i++) {
        *calls[i].fn = dlsym(api->lib, calls[i].name);
        if (!*calls[i].fn) {
            dlclose(api->lib);
            api->lib = NULL;
            return fl_fail(err, "NCCL (%s) has no %s", path, calls[i].name);
        }
    }
    return 0;
}

static nccl_group *group_of(fl_comm *c)
{
    return c->impl;
}

/* A failing collective is a dead GPU or link, not something a request
 * can cause: as FL_CUDA_CHECK, one line and abort. */
static void check(nccl_group *g, nccl_result rc, const char *what)
{
    if (rc != 0) {
        fprintf(stderr, "flashlm: NCCL %s failed: %s\n", what, g->api.error_string(rc));
        abort();
    }
}

static void nccl_all_reduce_sum(fl_comm *c, float *buf, size_t n, void *stream)
{
    nccl_group *g = group_of(c);
    check(g, g->api.all_reduce(buf, buf, n, NCCL_FLOAT32, NCCL_SUM, g->comms[c->rank], stream), "all-reduce");
}

static void nccl_all_gather(fl_comm *c, const float *in, size_t n, float *out, void *stream)
{
    nccl_group *g = group_of(c);
    check(g, g->api.all_gather(in, out, n, NCCL_FLOAT32, g->comms[c->rank], stream), "all-gather");
}

static void free_group(void *owner)
{
    nccl_group *g = owner;
    for (int r = 0; g->comms && r < g->size; r++)
        if (g->comms[r])
            g->api.comm_destroy(g->comms[r]);
    if (g->api.lib)
        dlclose(g->api.lib);
    free(g->comms);
    free(g->ranks);
    free(g->pointers);
    free(g);
}

int fl_comm_nccl_check(fl_error *err)
{
    nccl_api api;
    if (load(&api, err) != 0)
        return -1;
    int version = 0;
    const nccl_result rc = api.get_version(&version);
    dlclose(api.lib);
    if (rc != 0)
        return fl_fail(err, "NCCL (%s): ncclGetVersion failed", library_path());
    return 0;
}

int fl_comm_nccl_set(int size, fl_comm_set *out, fl_error *err)
{
    memset(out, 0, sizeof *out);
    nccl_group *g = fl_calloc(1, sizeof *g);
    if (load(&g->api, err) != 0) {
        free(g);
        return -1;
    }
    setenv("NCCL_NVLS_ENABLE", "0", 0); /* the device tool's KINDS.md: multicast off unless asked */
    g->size = size;
    g->comms = fl_calloc((size_t)size, sizeof *g->comms);
    int *devices = fl_malloc((size_t)size * sizeof *devices);
    for (int r = 0; r < size; r++)
        devices[r] = r;
    const nccl_result rc = g->api.comm_init_all(g->comms, size, devices);
    free(devices);
    if (rc != 0) {
        fl_fail(err, "NCCL could not join GPUs 0..%d: %s", size - 1, g->api.error_string(rc));
        memset(g->comms, 0, (size_t)size * sizeof *g->comms);
        free_group(g);
        return -1;
    }
    g->ranks = fl_calloc((size_t)size, sizeof *g->ranks);
    g->pointers = fl_calloc((size_t)size, sizeof *g->pointers);
    for (int r = 0; r < size; r++) {
        g->ranks[r] = (fl_comm){ .rank = r, .size = size, .impl = g, .device = r,
                                 .all_reduce_sum_device = nccl_all_reduce_sum, .all_gather_device = nccl_all_gather,
                                 .device_capturable = 1 };
        g->pointers[r] = &g->ranks[r];
    }
    *out = (fl_comm_set){ .size = size, .ranks = g->pointers, .owner = g, .free = free_group };
    return 0;
}
#endif
