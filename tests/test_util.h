/* test_util.h - helpers shared by the C tests: temporary model directories,
 * rewritten safetensors headers, and message assertions. */
#ifndef FL_TEST_UTIL_H
#define FL_TEST_UTIL_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

/* Fails the test unless msg contains needle; prints both when it does not. */
#define assert_msg_contains(msg, needle)                                             \
    do {                                                                             \
        if (!strstr((msg), (needle))) {                                              \
            print_error("message \"%s\" does not contain \"%s\"\n", (msg), (needle)); \
            fail();                                                                  \
        }                                                                            \
    } while (0)

/* The registered attention backend of this name (fails the test if none). */
const struct fl_attn_backend *tu_attention(const char *name);

/* A fresh empty directory under $TMPDIR (or /tmp); caller frees the path. */
char *tu_tempdir(void);
/* Removes dir and the files in it (one level). */
void tu_rmdir(const char *dir);
void tu_write_file(const char *dir, const char *name, const void *data, size_t n);
/* Copies every regular file of src into dst. */
void tu_copy_files(const char *src, const char *dst);
/* A fixture directory: $FLASHLM_FIXTURES_DIR or FIXTURES_DIR, "/" name
 * (static buffer). */
const char *tu_fixture(const char *name);

/* Reads a safetensors file as its parsed header and its data block. */
typedef struct tu_safetensors {
    json_t *header;
    unsigned char *data;
    size_t data_len;
} tu_safetensors;

void tu_safetensors_read(tu_safetensors *st, const char *path);
/* Writes header and data as dir/name. */
void tu_safetensors_write(const tu_safetensors *st, const char *dir, const char *name);
void tu_safetensors_free(tu_safetensors *st);

/* The truncated softmax of logits[v] (sorted descending, so index order is
 * rank order) from the definitions: temperature, min-p against the largest
 * probability, the k largest, then the smallest head reaching top-p of the
 * remaining mass; renormalised into p[v]. */
void tu_truncated_softmax(const float *logits, int v, float temperature, int top_k, float top_p,
                          float min_p, double *p);

/* Chi-square test (alpha 0.001) of count[v] draws against p[v]; tokens with
 * p 0 must never be drawn. Fails the test with a message naming what. */
void tu_check_draws(const char *what, const double *p, const int *count, int v, int draws);

#endif
