/* alloc.c - allocation wrappers that abort with a message on failure. */
#include "base/alloc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void out_of_memory(size_t n)
{
    fprintf(stderr, "flashlm: out of memory allocating %zu bytes\n", n);
    abort();
}

void *fl_malloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p)
        out_of_memory(n);
    return p;
}

void *fl_calloc(size_t count, size_t size)
{
    void *p = calloc(count ? count : 1, size ? size : 1);
    if (!p)
        out_of_memory(count * size);
    return p;
}

void *fl_realloc(void *p, size_t n)
{
    void *q = realloc(p, n ? n : 1);
    if (!q)
        out_of_memory(n);
    return q;
}

char *fl_strdup(const char *s)
{
    size_t n = strlen(s) + 1;
    char *d = fl_malloc(n);
    memcpy(d, s, n);
    return d;
}

void *fl_malloc_aligned(size_t n)
{
    size_t rounded = (n + 63) / 64 * 64;
    void *p = aligned_alloc(64, rounded ? rounded : 64);
    if (!p)
        out_of_memory(n);
    return p;
}

int fl_memory_check(uint64_t bytes, const char *what, fl_error *err)
{
    /* Physical memory, not what is free now: the bound is on what can be
     * allocated at all (malloc fails past it and fl_malloc aborts); a plan
     * that fits but meets a busy machine is the kernel's to handle. */
    const long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
    if (pages <= 0 || page <= 0)
        return 0; /* unknown: let the allocation decide */
    const uint64_t have = (uint64_t)pages * (uint64_t)page;
    if (bytes <= have)
        return 0;
    const double gib = 1024.0 * 1024.0 * 1024.0;
    return fl_fail(err, "%s needs %.1f GiB, more than the %.1f GiB of memory of this machine",
                   what, (double)bytes / gib, (double)have / gib);
}
