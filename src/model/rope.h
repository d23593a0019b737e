/* rope.h - rotary position embedding: the frequencies of each rotary pair
 * (theta^(-2i/d), or Llama 3.1's or YaRN's rescaling of them) and the
 * factor cos and sin are multiplied by (YaRN's attention scaling). Both
 * runners take cos and sin from fl_rope_at, so the two read one
 * definition. */
#ifndef FL_ROPE_H
#define FL_ROPE_H

#include "model/config.h"

/* head_dim <= 1024 (config.c's bound) */
#define FL_ROPE_MAX_PAIRS 512

typedef struct fl_rope {
    int pairs;                             /* head_dim / 2 */
    double inv_freq[FL_ROPE_MAX_PAIRS];    /* the angle per position of each pair */
    double scale;                          /* cos and sin are multiplied by it */
} fl_rope;

void fl_rope_init(fl_rope *r, const fl_model_config *cfg);

/* cos_out[i] and sin_out[i] of pair i at position pos, times r->scale. */
void fl_rope_at(const fl_rope *r, int pos, float *cos_out, float *sin_out);

#endif
