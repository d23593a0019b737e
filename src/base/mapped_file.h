/* mapped_file.h - a whole file mapped read-only into memory.
 *
 * Model weights are mmap'ed, not read: the page cache holds them once however
 * many times they are opened, and loading costs no copy. */
#ifndef FL_MAPPED_FILE_H
#define FL_MAPPED_FILE_H

#include <stddef.h>

#include "base/error.h"

typedef struct fl_mapped_file {
    char *path;        /* owned copy of the path, for error messages */
    const void *data;  /* the mapping; NULL for an empty file */
    size_t size;
} fl_mapped_file;

/* Opens path read-only and returns the descriptor, with the file's size in
 * *size_out. Anything but a regular file (a FIFO, a device, a directory) is
 * refused at once, never waited on: every file a model directory supplies
 * is opened through this. On error returns -1 with a message naming path. */
int fl_open_regular_file(const char *path, size_t *size_out, fl_error *err);

/* Maps path (a regular file). On error returns -1 with a message naming the file. */
int fl_mapped_file_open(fl_mapped_file *f, const char *path, fl_error *err);
void fl_mapped_file_close(fl_mapped_file *f);

/* Reads a whole (small) regular file into a NUL-terminated heap string.
 * Returns NULL with a message naming the file on error. */
char *fl_read_text_file(const char *path, size_t *len_out, fl_error *err);

/* Joins a directory and a file name into a heap string. */
char *fl_path_join(const char *dir, const char *name);

#endif
