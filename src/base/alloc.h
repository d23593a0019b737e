/* alloc.h - the one out-of-memory policy: allocation failure is fatal.
 *
 * Sizes are planned at start-up (weights, run state, KV cache), so running
 * out of host memory means the machine cannot hold the model; there is no
 * useful way to continue. Every host allocation goes through these. The big
 * plans, which config.json and flags size, are first held against the
 * machine's memory with fl_memory_check, so a model too big for it is one
 * error naming the need rather than an abort. */
#ifndef FL_ALLOC_H
#define FL_ALLOC_H

#include <stddef.h>
#include <stdint.h>

#include "base/error.h"

void *fl_malloc(size_t n);
void *fl_calloc(size_t count, size_t size);
void *fl_realloc(void *p, size_t n);
char *fl_strdup(const char *s);
/* 64-byte aligned, for buffers that SIMD loops and BLAS stream through. */
void *fl_malloc_aligned(size_t n);

/* Size arithmetic for plans that flags and config values multiply out:
 * saturating at SIZE_MAX, which no memory check lets through. */
static inline size_t fl_size_mul(size_t a, size_t b)
{
    size_t r;
    return __builtin_mul_overflow(a, b, &r) ? SIZE_MAX : r;
}

static inline size_t fl_size_add(size_t a, size_t b)
{
    size_t r;
    return __builtin_add_overflow(a, b, &r) ? SIZE_MAX : r;
}

/* Fails unless bytes fit in the machine's physical memory; what names the
 * need in the message ("the CPU KV cache (12 blocks)"). */
int fl_memory_check(uint64_t bytes, const char *what, fl_error *err);

#endif
