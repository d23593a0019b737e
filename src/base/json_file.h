/* json_file.h - a JSON file of a model directory, parsed with jansson. */
#ifndef FL_JSON_FILE_H
#define FL_JSON_FILE_H

#include <jansson.h>

#include "base/error.h"

/* Reads path (a regular file: see fl_open_regular_file) and parses it with
 * jansson's decoding flags. Returns NULL with a message naming the file on
 * error; the caller owns the result. */
json_t *fl_json_load_file(const char *path, size_t flags, fl_error *err);

#endif
