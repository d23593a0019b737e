/* rope.h - rotary position embedding frequencies, including Llama-3's
 * rope_type "llama3" rescaling of the low frequencies. */
#ifndef FL_ROPE_H
#define FL_ROPE_H

#include "model/config.h"

/* Fills inv_freq[head_dim / 2]: the angle per position of each rotary pair. */
void fl_rope_inv_freq(const fl_model_config *cfg, double *inv_freq);

#endif
