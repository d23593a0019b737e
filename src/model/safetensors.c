/* safetensors.c - the safetensors format: an 8-byte little-endian header
 * length, a JSON header {name: {dtype, shape, data_offsets}}, then the data
 * block that the offsets index into. */
#include "model/safetensors.h"

#include <jansson.h>
#include <string.h>
#include <sys/stat.h>

#include "base/alloc.h"
#include "base/json_file.h"

/* The format's own limit on the header size. */
#define HEADER_MAX_BYTES (100u << 20)

int64_t fl_tensor_numel(const fl_tensor *t)
{
    int64_t n = 1;
    for (int i = 0; i < t->ndim; i++)
        n *= t->shape[i];
    return n;
}

static int compare_tensor_names(const void *a, const void *b)
{
    return strcmp(((const fl_tensor *)a)->name, ((const fl_tensor *)b)->name);
}

static int parse_int64(json_t *v, int64_t *out)
{
    if (!json_is_integer(v) || json_integer_value(v) < 0)
        return -1;
    *out = json_integer_value(v);
    return 0;
}

/* Where a tensor's bytes lie in the data block. */
typedef struct span {
    uint64_t begin, end;
    const char *name;
} span;

static int compare_spans(const void *a, const void *b)
{
    const span *x = a, *y = b;
    if (x->begin != y->begin)
        return x->begin < y->begin ? -1 : 1;
    return x->end < y->end ? -1 : x->end > y->end;
}

/* Parses one header entry into t and its offsets into *where; data_size is
 * the size of the data block. */
static int parse_entry(fl_tensor *t, const char *name, json_t *entry, const char *data,
                       uint64_t data_size, span *where, fl_error *err)
{
    if (!json_is_object(entry))
        return fl_fail(err, "tensor '%s': header entry is not an object", name);
    json_t *dt = json_object_get(entry, "dtype");
    if (!json_is_string(dt))
        return fl_fail(err, "tensor '%s': missing or non-string 'dtype'", name);
    t->dtype = fl_dtype_from_name(json_string_value(dt));
    if (t->dtype == FL_DTYPE_INVALID)
        return fl_fail(err, "tensor '%s': unknown dtype '%s'", name, json_string_value(dt));

    json_t *shape = json_object_get(entry, "shape");
    if (!json_is_array(shape))
        return fl_fail(err, "tensor '%s': missing or non-array 'shape'", name);
    if (json_array_size(shape) > FL_MAX_DIMS)
        return fl_fail(err, "tensor '%s': 'shape' has %zu dims (at most %d)", name,
                       json_array_size(shape), FL_MAX_DIMS);
    t->ndim = (int)json_array_size(shape);
    uint64_t numel = 1;
    for (int i = 0; i < t->ndim; i++) {
        if (parse_int64(json_array_get(shape, (size_t)i), &t->shape[i]) != 0)
            return fl_fail(err, "tensor '%s': 'shape' must hold non-negative integers", name);
        if (t->shape[i] > 0 && numel > UINT64_MAX / (uint64_t)t->shape[i])
            return fl_fail(err, "tensor '%s': 'shape' overflows", name);
        numel *= (uint64_t)t->shape[i];
    }

    json_t *offs = json_object_get(entry, "data_offsets");
    int64_t begin, end;
    if (!json_is_array(offs) || json_array_size(offs) != 2 ||
        parse_int64(json_array_get(offs, 0), &begin) != 0 ||
        parse_int64(json_array_get(offs, 1), &end) != 0)
        return fl_fail(err, "tensor '%s': 'data_offsets' must be [begin, end]", name);
    if (begin > end || (uint64_t)end > data_size)
        return fl_fail(err,
                       "tensor '%s': data_offsets [%lld, %lld] outside the data "
                       "block of %llu bytes (file truncated?)",
                       name, (long long)begin, (long long)end, (unsigned long long)data_size);
    uint64_t elem = fl_dtype_size(t->dtype);
    if (numel > UINT64_MAX / elem || (uint64_t)(end - begin) != numel * elem)
        return fl_fail(err, "tensor '%s': data_offsets span %lld bytes but shape and "
                       "dtype need %llu", name, (long long)(end - begin),
                       (unsigned long long)(numel * elem));
    t->nbytes = (size_t)(end - begin);
    t->data = t->nbytes ? data + begin : NULL;
    t->name = fl_strdup(name);
    *where = (span){ (uint64_t)begin, (uint64_t)end, t->name };
    return 0;
}

/* The tensors, in order of their offsets, must tile the data block: no two
 * share a byte, no byte belongs to none. HF's safetensors refuses any other
 * file; overlapping tensors would alias each other's weights. */
static int check_tiling(span *spans, size_t n, uint64_t data_size, const char *path,
                        fl_error *err)
{
    qsort(spans, n, sizeof *spans, compare_spans);
    uint64_t at = 0;
    for (size_t i = 0; i < n; i++) {
        const span *s = &spans[i];
        if (s->begin < at) /* at > 0: the previous tensor ends at at */
            return fl_fail(err, "%s: tensors '%s' [%llu, %llu] and '%s' [%llu, %llu] overlap",
                           path, spans[i - 1].name, (unsigned long long)spans[i - 1].begin,
                           (unsigned long long)at, s->name, (unsigned long long)s->begin,
                           (unsigned long long)s->end);
        if (s->begin > at)
            return fl_fail(err, "%s: bytes [%llu, %llu) of the data block belong to no tensor "
                           "(the next is '%s')", path, (unsigned long long)at,
                           (unsigned long long)s->begin, s->name);
        at = s->end;
    }
    if (at != data_size)
        return fl_fail(err, "%s: the data block has %llu bytes after the last tensor's end",
                       path, (unsigned long long)(data_size - at));
    return 0;
}

/* Parses the header of a mapped file and appends its tensors to st. */
static int add_tensors_of(fl_safetensors *st, const fl_mapped_file *f, fl_error *err)
{
    if (f->size < 8)
        return fl_fail(err, "%s: too short for a safetensors header (%zu bytes)", f->path, f->size);
    const unsigned char *p = f->data;
    uint64_t header_len = 0;
    for (int i = 7; i >= 0; i--)
        header_len = (header_len << 8) | p[i];
    if (header_len > HEADER_MAX_BYTES || header_len > f->size - 8)
        return fl_fail(err, "%s: header length %llu exceeds the file size %zu (truncated or "
                       "not a safetensors file)", f->path, (unsigned long long)header_len, f->size);
    json_error_t jerr;
    json_t *root = json_loadb((const char *)p + 8, (size_t)header_len, JSON_REJECT_DUPLICATES, &jerr);
    if (!root)
        return fl_fail(err, "%s: malformed header JSON (%s at byte %d)", f->path, jerr.text,
                       jerr.position);
    if (!json_is_object(root)) {
        json_decref(root);
        return fl_fail(err, "%s: header JSON is not an object", f->path);
    }
    const char *data = (const char *)p + 8 + header_len;
    uint64_t data_size = f->size - 8 - header_len;
    st->tensors = fl_realloc(st->tensors, (size_t)(st->num_tensors + json_object_size(root)) *
                                              sizeof(fl_tensor));
    span *spans = fl_malloc(json_object_size(root) * sizeof *spans);
    size_t num_spans = 0;
    int rc = 0;
    const char *name;
    json_t *entry;
    json_object_foreach(root, name, entry) {
        if (strcmp(name, "__metadata__") == 0)
            continue;
        fl_tensor *t = &st->tensors[st->num_tensors];
        memset(t, 0, sizeof *t);
        if (parse_entry(t, name, entry, data, data_size, &spans[num_spans], err) != 0) {
            rc = fl_fail_prefix(err, "%s", f->path);
            break;
        }
        t->file = f->path;
        st->num_tensors++;
        num_spans++;
    }
    if (rc == 0)
        rc = check_tiling(spans, num_spans, data_size, f->path, err);
    free(spans);
    json_decref(root);
    return rc;
}

static int map_and_add(fl_safetensors *st, const char *path, fl_error *err)
{
    st->files = fl_realloc(st->files, (size_t)(st->num_files + 1) * sizeof(fl_mapped_file));
    if (fl_mapped_file_open(&st->files[st->num_files], path, err) != 0)
        return -1;
    st->num_files++;
    return add_tensors_of(st, &st->files[st->num_files - 1], err);
}

/* Sorts the tensors for lookup and rejects a name given twice. */
static int finish(fl_safetensors *st, fl_error *err)
{
    qsort(st->tensors, (size_t)st->num_tensors, sizeof(fl_tensor), compare_tensor_names);
    for (int i = 1; i < st->num_tensors; i++)
        if (strcmp(st->tensors[i - 1].name, st->tensors[i].name) == 0)
            return fl_fail(err, "tensor '%s' is stored twice (%s and %s)", st->tensors[i].name,
                           st->tensors[i - 1].file, st->tensors[i].file);
    return 0;
}

int fl_safetensors_open_file(fl_safetensors *st, const char *path, fl_error *err)
{
    memset(st, 0, sizeof *st);
    if (map_and_add(st, path, err) != 0 || finish(st, err) != 0) {
        fl_safetensors_free(st);
        return -1;
    }
    return 0;
}

static int file_exists(const char *path)
{
    struct stat s;
    return stat(path, &s) == 0;
}

/* Opens the shards an index names and checks its weight_map against them. */
static int open_index(fl_safetensors *st, const char *dir, const char *index_path, fl_error *err)
{
    json_t *root = fl_json_load_file(index_path, 0, err);
    if (!root)
        return -1;
    int rc = -1;
    json_t *map = json_object_get(root, "weight_map");
    if (!json_is_object(map)) {
        fl_fail(err, "%s: missing or non-object 'weight_map'", index_path);
        goto out;
    }
    /* Open each distinct shard once, in order of first mention. */
    const char *tensor_name;
    json_t *shard;
    json_object_foreach(map, tensor_name, shard) {
        if (!json_is_string(shard) || strchr(json_string_value(shard), '/')) {
            fl_fail(err, "%s: weight_map['%s'] must be a file name in the model directory",
                    index_path, tensor_name);
            goto out;
        }
        char *path = fl_path_join(dir, json_string_value(shard));
        int seen = 0;
        for (int i = 0; i < st->num_files && !seen; i++)
            seen = strcmp(st->files[i].path, path) == 0;
        int ok = seen || map_and_add(st, path, err) == 0;
        free(path);
        if (!ok) {
            fl_fail_prefix(err, "shard listed in %s", index_path);
            goto out;
        }
    }
    if (finish(st, err) != 0)
        goto out;
    json_object_foreach(map, tensor_name, shard) {
        const fl_tensor *t = fl_safetensors_find(st, tensor_name);
        char *path = fl_path_join(dir, json_string_value(shard));
        int where_listed = t && strcmp(t->file, path) == 0;
        free(path);
        if (!where_listed) {
            fl_fail(err, "%s: tensor '%s' is not in its listed shard '%s'", index_path,
                    tensor_name, json_string_value(shard));
            goto out;
        }
    }
    rc = 0;
out:
    json_decref(root);
    return rc;
}

int fl_safetensors_open_dir(fl_safetensors *st, const char *dir, fl_error *err)
{
    memset(st, 0, sizeof *st);
    char *index_path = fl_path_join(dir, "model.safetensors.index.json");
    char *single_path = fl_path_join(dir, "model.safetensors");
    int rc;
    if (file_exists(index_path))
        rc = open_index(st, dir, index_path, err);
    else if (file_exists(single_path))
        rc = map_and_add(st, single_path, err) == 0 ? finish(st, err) : -1;
    else
        rc = fl_fail(err, "%s: no model.safetensors or model.safetensors.index.json", dir);
    free(index_path);
    free(single_path);
    if (rc != 0)
        fl_safetensors_free(st);
    return rc;
}

const fl_tensor *fl_safetensors_find(const fl_safetensors *st, const char *name)
{
    fl_tensor key = { .name = name };
    return bsearch(&key, st->tensors, (size_t)st->num_tensors, sizeof(fl_tensor),
                   compare_tensor_names);
}

void fl_safetensors_free(fl_safetensors *st)
{
    for (int i = 0; i < st->num_tensors; i++)
        free((char *)st->tensors[i].name);
    free(st->tensors);
    for (int i = 0; i < st->num_files; i++)
        fl_mapped_file_close(&st->files[i]);
    free(st->files);
    memset(st, 0, sizeof *st);
}
