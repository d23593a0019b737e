/* weights.h - the model's tensors, by role, as views in the checkpoint dtype.
 *
 * The weights come either from a Hugging Face directory (mmap'ed safetensors,
 * every expected tensor checked for presence, shape and dtype; MXFP4
 * experts dequantized to bfloat16 at load) or from
 * --load-format dummy (deterministic random values from a seed, in the
 * config's dtype). Backends read these views and make their own copies in
 * the layout they compute with. Which tensors exist, their names and shapes
 * come from the architecture's tables (model/arch.h); this file knows no
 * architecture. */
#ifndef FL_WEIGHTS_H
#define FL_WEIGHTS_H

#include <stdint.h>

#include "base/error.h"
#include "model/config.h"
#include "model/safetensors.h"

/* The tensors of one layer by role (model/arch.h); a role the layer's
 * spec does not need is all zero (data NULL, ndim 0). */
typedef struct fl_layer_weights {
    fl_tensor t[FL_NUM_LAYER_ROLES];
} fl_layer_weights;

typedef struct fl_weights {
    fl_tensor model[FL_NUM_MODEL_ROLES]; /* FL_LM_HEAD: the same data as FL_EMBED when tied */
    int num_layers;
    fl_layer_weights *layers; /* [num_layers] */
    int64_t num_params;       /* the tied lm_head counted once, as HF does */
    fl_safetensors files;     /* owns the mappings (file-loaded weights) */
    void *owned;              /* owns the values the weights made: dummy values, or
                                 the dequantized experts of an MXFP4 checkpoint */
} fl_weights;

/* Loads and checks the weights of the model directory dir for cfg. */
int fl_weights_load(fl_weights *w, const fl_model_config *cfg, const char *dir, fl_error *err);

/* Fills every tensor cfg needs with values drawn from seed, in cfg->dtype:
 * matrices uniform with variance 1/fan_in, norms near 1, biases near 0.
 * The same seed gives the same values on any thread count. Fails (w left
 * empty) only when the weights would not fit in the machine's memory. */
int fl_weights_init_dummy(fl_weights *w, const fl_model_config *cfg, uint64_t seed,
                          fl_error *err);

/* Shapes and dtypes only, every data pointer NULL: what `flashlm info`
 * needs for a dummy model, without allocating its size. Cannot fail. */
void fl_weights_init_shapes(fl_weights *w, const fl_model_config *cfg);

void fl_weights_free(fl_weights *w);

/* Calls fn on every tensor of w, in checkpoint order, with its HF name.
 * Stops at and returns the first non-zero value fn returns. */
typedef int (*fl_weights_visit_fn)(const char *name, const fl_tensor *t, void *ctx);
int fl_weights_visit(const fl_weights *w, const fl_model_config *cfg, fl_weights_visit_fn fn,
                     void *ctx);

#endif
