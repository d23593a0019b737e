/* safetensors.h - read-only access to tensors in .safetensors files.
 *
 * Opens one file, or a Hugging Face model directory (model.safetensors, or the
 * shards listed by model.safetensors.index.json). Files are mmap'ed; tensors
 * point into the mappings. Every header field is validated, and the tensors
 * must tile the data block as HF's safetensors requires (no overlap, no gap),
 * so a truncated or malformed file is an error naming the file and the
 * tensor, never a crash. Offsets need not be aligned to the element size. */
#ifndef FL_SAFETENSORS_H
#define FL_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#include "base/dtype.h"
#include "base/error.h"
#include "base/mapped_file.h"

#define FL_MAX_DIMS 8

typedef struct fl_tensor {
    const char *name;            /* owned by the fl_safetensors */
    fl_dtype dtype;
    int ndim;
    int64_t shape[FL_MAX_DIMS];
    const void *data;            /* into the file mapping; NULL if empty */
    size_t nbytes;
    const char *file;            /* path of the file holding it, for messages */
} fl_tensor;

typedef struct fl_safetensors {
    int num_files;
    fl_mapped_file *files;       /* [num_files] */
    int num_tensors;
    fl_tensor *tensors;          /* [num_tensors], sorted by name */
} fl_safetensors;

/* Opens one .safetensors file. On error returns -1; st is left empty. */
int fl_safetensors_open_file(fl_safetensors *st, const char *path, fl_error *err);

/* Opens the weights of a model directory: model.safetensors.index.json with
 * its shards if present, else model.safetensors. Checks that every tensor the
 * index names is in the shard it names. On error returns -1; st is empty. */
int fl_safetensors_open_dir(fl_safetensors *st, const char *dir, fl_error *err);

/* The tensor called name, or NULL. O(log n). */
const fl_tensor *fl_safetensors_find(const fl_safetensors *st, const char *name);

void fl_safetensors_free(fl_safetensors *st);

/* Number of elements of a tensor shape. */
int64_t fl_tensor_numel(const fl_tensor *t);

#endif
