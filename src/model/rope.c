/* rope.c - rotary frequencies (see rope.h).
 *
 * Pair i rotates by theta^(-2i/d) radians per position. Llama-3 divides the
 * frequencies whose wavelength exceeds original_max / low_freq_factor by
 * `factor`, keeps those under original_max / high_freq_factor, and blends
 * linearly in between, as transformers' _compute_llama3_parameters does. */
#include "model/rope.h"

#include <math.h>

void fl_rope_inv_freq(const fl_model_config *cfg, double *inv_freq)
{
    const int half = cfg->head_dim / 2;
    for (int i = 0; i < half; i++) {
        double f = 1.0 / pow(cfg->rope_theta, (2.0 * i) / cfg->head_dim);
        if (cfg->rope_llama3) {
            double old_len = cfg->rope_original_max_position;
            double low_wavelen = old_len / cfg->rope_low_freq_factor;
            double high_wavelen = old_len / cfg->rope_high_freq_factor;
            double wavelen = 2.0 * M_PI / f;
            if (wavelen > low_wavelen) {
                f /= cfg->rope_factor;
            } else if (wavelen >= high_wavelen) {
                double smooth = (old_len / wavelen - cfg->rope_low_freq_factor) /
                                (cfg->rope_high_freq_factor - cfg->rope_low_freq_factor);
                f = (1.0 - smooth) * f / cfg->rope_factor + smooth * f;
            }
        }
        inv_freq[i] = f;
    }
}
