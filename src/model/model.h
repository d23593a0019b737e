/* model.h - a model as the CLI names it: a Hugging Face directory, or a
 * built-in config name with --load-format dummy. Owns the config and the
 * weights. */
#ifndef FL_MODEL_H
#define FL_MODEL_H

#include <stdint.h>

#include "base/error.h"
#include "model/config.h"
#include "model/weights.h"

typedef enum fl_load_format {
    FL_LOAD_AUTO,         /* safetensors from the directory */
    FL_LOAD_DUMMY,        /* random values from the seed */
    FL_LOAD_SHAPES_ONLY,  /* dummy layout without data (for `info`) */
} fl_load_format;

typedef struct fl_model {
    char *name;           /* as given on the command line */
    int builtin;          /* config came from the built-in table */
    fl_load_format format;
    fl_model_config cfg;
    fl_weights weights;
} fl_model;

/* Parses a --load-format value ("auto", "safetensors", "dummy"). */
int fl_load_format_parse(const char *s, fl_load_format *out, fl_error *err);

/* Loads name: a directory with config.json, or (dummy formats only) a
 * built-in model name. seed drives dummy values. */
int fl_model_load(fl_model *m, const char *name, fl_load_format format, uint64_t seed,
                  fl_error *err);
void fl_model_free(fl_model *m);

#endif
