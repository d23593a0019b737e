/* alloc.h - the one out-of-memory policy: allocation failure is fatal.
 *
 * Sizes are planned at start-up (weights, run state, KV cache), so running
 * out of host memory means the machine cannot hold the model; there is no
 * useful way to continue. Every host allocation goes through these. */
#ifndef FL_ALLOC_H
#define FL_ALLOC_H

#include <stddef.h>

void *fl_malloc(size_t n);
void *fl_calloc(size_t count, size_t size);
void *fl_realloc(void *p, size_t n);
char *fl_strdup(const char *s);
/* 64-byte aligned, for buffers that SIMD loops and BLAS stream through. */
void *fl_malloc_aligned(size_t n);

#endif
