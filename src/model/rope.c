/* rope.c - rotary frequencies and scaling (see rope.h).
 *
 * Pair i of d/2 rotates by f_i = theta^(-2i/d) radians per position.
 *
 * Llama-3 divides the frequencies whose wavelength exceeds original_max /
 * low_freq_factor by `factor`, keeps those under original_max /
 * high_freq_factor, and blends linearly in between, as transformers'
 * _compute_llama3_parameters does.
 *
 * YaRN (arXiv 2309.00071, as transformers' _compute_yarn_parameters and
 * openai/gpt-oss compute it): pair i turns L / (2 pi / f_i) times over the
 * original context L. The pairs that turn more than beta_fast times keep
 * f_i (extrapolation), those that turn fewer than beta_slow times take
 * f_i / factor (interpolation), and between the two the weight of the
 * interpolated frequency ramps linearly in the pair index, from the index
 * where the turns equal beta_fast, i(r) = d ln(L / (2 pi r)) / (2 ln theta),
 * to the index where they equal beta_slow (both rounded outwards to whole
 * pairs when `truncate`, then clamped to [0, d - 1]). cos and sin are then
 * multiplied by the attention factor, which scales every attention logit
 * by its square. */
#include "model/rope.h"

#include <math.h>

#include "base/error.h"

static double llama3(const fl_model_config *c, double f)
{
    const double old_len = c->rope_original_max_position;
    const double low_wavelen = old_len / c->rope_low_freq_factor;
    const double high_wavelen = old_len / c->rope_high_freq_factor;
    const double wavelen = 2.0 * M_PI / f;
    if (wavelen > low_wavelen)
        return f / c->rope_factor;
    if (wavelen < high_wavelen)
        return f;
    const double smooth = (old_len / wavelen - c->rope_low_freq_factor) /
                          (c->rope_high_freq_factor - c->rope_low_freq_factor);
    return (1.0 - smooth) * f / c->rope_factor + smooth * f;
}

/* The pair index at which a pair turns `turns` times over the original context. */
static double yarn_index(const fl_model_config *c, double turns)
{
    return c->head_dim * log(c->rope_original_max_position / (turns * 2.0 * M_PI)) / (2.0 * log(c->rope_theta));
}

static void yarn(const fl_model_config *c, double *inv_freq, int pairs)
{
    double low = yarn_index(c, c->rope_beta_fast), high = yarn_index(c, c->rope_beta_slow);
    if (c->rope_truncate) {
        low = floor(low);
        high = ceil(high);
    }
    low = fmax(low, 0.0);
    high = fmin(high, (double)c->head_dim - 1);
    if (high == low) /* a ramp of one point: transformers widens it the same way */
        high += 0.001;
    for (int i = 0; i < pairs; i++) {
        const double ramp = fmin(fmax((i - low) / (high - low), 0.0), 1.0); /* weight of interpolation */
        inv_freq[i] = ramp * inv_freq[i] / c->rope_factor + (1.0 - ramp) * inv_freq[i];
    }
}

void fl_rope_init(fl_rope *r, const fl_model_config *c)
{
    FL_ASSERT(c->head_dim / 2 <= FL_ROPE_MAX_PAIRS);
    r->pairs = c->head_dim / 2;
    r->scale = 1.0;
    for (int i = 0; i < r->pairs; i++)
        r->inv_freq[i] = 1.0 / pow(c->rope_theta, (2.0 * i) / c->head_dim);
    switch (c->rope_type) {
    case FL_ROPE_DEFAULT:
        break;
    case FL_ROPE_LLAMA3:
        for (int i = 0; i < r->pairs; i++)
            r->inv_freq[i] = llama3(c, r->inv_freq[i]);
        break;
    case FL_ROPE_YARN:
        yarn(c, r->inv_freq, r->pairs);
        r->scale = c->rope_attention_factor;
        break;
    }
}

void fl_rope_at(const fl_rope *r, int pos, float *cos_out, float *sin_out)
{
    for (int i = 0; i < r->pairs; i++) {
        const double angle = (double)pos * r->inv_freq[i];
        cos_out[i] = (float)(cos(angle) * r->scale);
        sin_out[i] = (float)(sin(angle) * r->scale);
    }
}
