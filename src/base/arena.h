/* arena.h - a bump allocator: many small allocations, freed all at once.
 *
 * For structures whose parts all die together (a parsed template, the
 * values of one render), so that no part needs its own free. */
#ifndef FL_ARENA_H
#define FL_ARENA_H

#include <stddef.h>

typedef struct fl_arena_chunk fl_arena_chunk;

typedef struct fl_arena {
    fl_arena_chunk *head;
    size_t bytes;  /* handed out so far, for users that cap their memory */
} fl_arena;

/* Zeroed, 16-byte aligned memory that lives until fl_arena_free. */
void *fl_arena_alloc(fl_arena *a, size_t n);
/* A copy of s[0..n) with a NUL after it. */
char *fl_arena_strndup(fl_arena *a, const char *s, size_t n);
void fl_arena_free(fl_arena *a);

#endif
