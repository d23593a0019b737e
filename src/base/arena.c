/* arena.c - bump allocation in growing chunks (see arena.h). */
#include "base/arena.h"

#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"

struct fl_arena_chunk {
    fl_arena_chunk *next;
    size_t used, cap;
    _Alignas(16) unsigned char data[];
};

void *fl_arena_alloc(fl_arena *a, size_t n)
{
    n = (n + 15) & ~(size_t)15;
    fl_arena_chunk *c = a->head;
    if (!c || c->used + n > c->cap) {
        size_t cap = n > 32768 ? n : 32768;
        c = fl_malloc(sizeof *c + cap);
        c->next = a->head;
        c->used = 0;
        c->cap = cap;
        a->head = c;
    }
    void *p = c->data + c->used;
    c->used += n;
    a->bytes += n;
    memset(p, 0, n);
    return p;
}

char *fl_arena_strndup(fl_arena *a, const char *s, size_t n)
{
    char *d = fl_arena_alloc(a, n + 1);
    if (n)
        memcpy(d, s, n);
    return d;
}

void fl_arena_free(fl_arena *a)
{
    while (a->head) {
        fl_arena_chunk *next = a->head->next;
        free(a->head);
        a->head = next;
    }
    a->bytes = 0;
}
