/* sample_draw.h - the draw of a token from a row of logits, shared by the
 * host sampler (engine/sampling.c) and the device one
 * (cuda/model_kernels.cu) so that both give the same token for the same
 * seed, parameters and output index, bit for bit: the engine may then use
 * either for any row, and asking for logprobs or min_tokens (which send a
 * row to the host) does not change the text.
 *
 * The draw, in vLLM's order (temperature, min-p, top-k, top-p):
 *   weight    w(x) = floor(exp((x - max) / T) * 2^38) for each logit x: the
 *             largest logit weighs FL_DRAW_ONE; NaN, -inf and anything below
 *             2^-38 of the largest weigh 0 and are never drawn.
 *   min-p     keep w >= ceil(min_p * 2^38) (and always w >= 1).
 *   top-k     keep w >= the k-th largest kept weight (ties with it stay, as
 *             vLLM's threshold keeps them).
 *   top-p     keep w >= t, t the largest weight such that the kept weights
 *             >= t sum to at least ceil(top_p * W), W the mass kept so far.
 *   draw      u = floor(R * W_kept / 2^64), R the counter RNG's value at
 *             (rng_key, index); the token is the first whose inclusive
 *             running sum of kept weights exceeds u, the tokens taken by
 *             weight, largest first, and by index among equal weights.
 *             (Largest first, as an inverse CDF over the sorted
 *             distribution: logits that differ in their last bits, as the
 *             same sequence's may in another batch, move the running sums
 *             little and rarely change the token; in index order a swap of
 *             two near-equal weights at a top-p or top-k boundary would move
 *             a whole weight between far-apart places.)
 *   greedy    (temperature below FL_GREEDY_TEMPERATURE, or top_k 1): the
 *             argmax, lowest index on ties, NaN never.
 *
 * Why the two sides agree exactly. Everything after the weights is integer
 * arithmetic: sums are exact and do not depend on order (weights are below
 * 2^39 and a vocabulary at most 2^24 tokens, config.c's limit, so a row
 * sums below 2^63), which lets the device reduce in parallel what the host
 * adds in sequence. The weights come from floats, by operations that each
 * have one correctly rounded IEEE-754 binary32 result (round to nearest
 * even): subtract, multiply, divide, fmaf, rintf, ceilf, a power of two
 * built from its bits, and a truncating conversion. Both compilers must
 * then produce the same bits, provided that
 *   - nothing is evaluated in more precision (the host check below:
 *     FLT_EVAL_METHOD 0, as on x86-64's SSE; the device has no wider type);
 *   - no multiply and add are contracted into an fma: no product here feeds
 *     an add except through an explicit fmaf, so neither nvcc's default
 *     -fmad=true nor gcc's -ffp-contract=fast finds anything to merge, and
 *     on the device the subtract, multiply and divide are in addition the
 *     _rn intrinsics, which nvcc never contracts and which keep IEEE
 *     division whatever -prec-div says;
 *   - exp is ours (range reduction by two fmaf steps, a degree-7 Taylor
 *     polynomial by fmaf Horner steps, an exact scaling), not expf or
 *     __expf, whose errors differ between libm and CUDA;
 *   - and flushing subnormals (-ftz, a host's DAZ) would change nothing: a
 *     subnormal x or max is below a quarter ulp of the other unless both
 *     are under 2^-100, and then, as when x - max or s is subnormal,
 *     |s| < 2^-80 (1 / T is at most 1e5), so k = 0, r = s and the Horner
 *     steps round to exactly 1 either way: the weight is FL_DRAW_ONE; for
 *     other s no step's result is subnormal. (-ffast-math or
 *     --use_fast_math would break the rest; the build uses neither.) */
#ifndef FL_SAMPLE_DRAW_H
#define FL_SAMPLE_DRAW_H

#include <float.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "base/rng.h"

#if !defined(__CUDA_ARCH__) && (!defined(FLT_EVAL_METHOD) || FLT_EVAL_METHOD != 0)
#error "the draw needs float expressions evaluated in float (FLT_EVAL_METHOD 0)"
#endif

/* Below this temperature the draw is the argmax. */
#define FL_GREEDY_TEMPERATURE 1e-5f
/* The weight of the largest logit (2^38), and the largest vocabulary whose
 * row of weights sums below 2^63. */
#define FL_DRAW_ONE_LOG2 38
#define FL_DRAW_ONE ((uint64_t)1 << FL_DRAW_ONE_LOG2)
#define FL_DRAW_MAX_VOCAB (1 << 24)

/* What a request asks of the draw (vLLM's SamplingParams fields). */
typedef struct fl_draw_params {
    float temperature;  /* below FL_GREEDY_TEMPERATURE: greedy (default 1) */
    int top_k;          /* <= 0: off; 1: greedy */
    float top_p;        /* 1: off */
    float min_p;        /* 0: off */
} fl_draw_params;

/* One draw: the request's parameters and where in its random stream the
 * draw is. What the engine hands to the device sampler per row, and what the
 * host sampler builds from its context. */
typedef struct fl_draw {
    fl_draw_params params;
    uint64_t rng_key;   /* the sequence's stream (from its seed) */
    uint64_t index;     /* the output index being drawn */
} fl_draw;

FL_HOST_DEVICE static inline int fl_draw_is_greedy(const fl_draw_params *p)
{
    return p->temperature < FL_GREEDY_TEMPERATURE || p->top_k == 1;
}

/* One rounding each, never contracted (see the top). */
FL_HOST_DEVICE static inline float fl_draw_fsub(float a, float b)
{
#ifdef __CUDA_ARCH__
    return __fsub_rn(a, b);
#else
    return a - b;
#endif
}

FL_HOST_DEVICE static inline float fl_draw_fmul(float a, float b)
{
#ifdef __CUDA_ARCH__
    return __fmul_rn(a, b);
#else
    return a * b;
#endif
}

FL_HOST_DEVICE static inline float fl_draw_inv_temperature(float temperature)
{
#ifdef __CUDA_ARCH__
    return __fdiv_rn(1.0f, temperature);
#else
    return 1.0f / temperature;
#endif
}

/* 2^e for e in [-126, 127], from its bits: exact. */
FL_HOST_DEVICE static inline float fl_draw_pow2(int e)
{
    const uint32_t bits = (uint32_t)(e + 127) << 23;
#ifdef __CUDA_ARCH__
    return __uint_as_float(bits);
#else
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
#endif
}

/* The weight of logit x in a row whose largest logit is max (finite, so
 * x <= max unless x is NaN), inv_t = fl_draw_inv_temperature(T). */
FL_HOST_DEVICE static inline uint64_t fl_draw_weight(float x, float max, float inv_t)
{
    const float s = fl_draw_fmul(fl_draw_fsub(x, max), inv_t); /* <= 0 */
    /* exp(-26.5) * 2^38 < 1: weight 0 (NaN and -inf fail the test too) */
    if (!(s >= -26.5f))
        return 0;
    /* exp(s) = 2^k exp(r), k = round(s / ln 2) in [-38, 0], |r| <= ln(2)/2,
     * r = s - k ln 2 with ln 2 in two parts (hi: ln 2 to float; lo: the rest) */
    const float k = rintf(fl_draw_fmul(s, 0x1.715476p+0f));
    float r = fmaf(k, -0x1.62e43p-1f, s);
    r = fmaf(k, 0x1.05c61p-29f, r);
    /* exp(r) by its Taylor series to r^7 / 7! (truncation under 5e-9) */
    float e = 0x1.a01a02p-13f;
    e = fmaf(e, r, 0x1.6c16c2p-10f);
    e = fmaf(e, r, 0x1.111112p-7f);
    e = fmaf(e, r, 0x1.555556p-5f);
    e = fmaf(e, r, 0x1.555556p-3f);
    e = fmaf(e, r, 0.5f);
    e = fmaf(e, r, 1.0f);
    e = fmaf(e, r, 1.0f);
    /* e * 2^(k + 38) is exact (e is about 1, the scale a power of two) and
     * below 2^39; the conversion truncates */
    return (uint64_t)fl_draw_fmul(e, fl_draw_pow2((int)k + FL_DRAW_ONE_LOG2));
}

/* The smallest weight min-p keeps (min_p * 2^38 is exact: a power-of-two
 * scaling of a float in [0, 1]). */
FL_HOST_DEVICE static inline uint64_t fl_draw_min_weight(float min_p)
{
    const uint64_t w = (uint64_t)ceilf(fl_draw_fmul(min_p, 0x1p38f));
    return w > 0 ? w : 1;
}

/* ceil(top_p * mass), at least 1, in integers: top_p taken as p / 2^24 with
 * p = ceil(top_p * 2^24) (exactly top_p for top_p >= 1/2; rounded up by
 * under 2^-24 below), and mass split at bit 24 so no product passes 2^63. */
FL_HOST_DEVICE static inline uint64_t fl_draw_top_p_target(float top_p, uint64_t mass)
{
    const uint64_t p = (uint64_t)ceilf(fl_draw_fmul(top_p, 0x1p24f));
    const uint64_t t = (mass >> 24) * p + (((mass & 0xffffff) * p + 0xffffff) >> 24);
    return t > 0 ? t : 1;
}

/* The high 64 bits of a * b, from 32-bit halves. */
FL_HOST_DEVICE static inline uint64_t fl_draw_mulhi(uint64_t a, uint64_t b)
{
    const uint64_t a0 = (uint32_t)a, a1 = a >> 32, b0 = (uint32_t)b, b1 = b >> 32;
    const uint64_t mid = a1 * b0 + (a0 * b0 >> 32);       /* < 2^64 */
    const uint64_t mid2 = a0 * b1 + (uint32_t)mid;        /* < 2^64 */
    return a1 * b1 + (mid >> 32) + (mid2 >> 32);
}

/* The draw's point in [0, mass): the 64-bit RNG value scaled to the kept
 * mass. */
FL_HOST_DEVICE static inline uint64_t fl_draw_point(const fl_draw *d, uint64_t mass)
{
    return fl_draw_mulhi(fl_rng_at(d->rng_key, d->index), mass);
}

#endif
