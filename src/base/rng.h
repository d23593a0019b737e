/* rng.h - counter-based random numbers.
 *
 * A value depends only on (seed, stream, index), never on call order, so a
 * tensor can be filled in parallel and the same seed gives the same weights
 * on any thread count. */
#ifndef FL_RNG_H
#define FL_RNG_H

#include <stdint.h>

/* The inline functions run on the GPU too (device sampling, dummy data). */
#ifdef __CUDACC__
#define FL_HOST_DEVICE __host__ __device__
#else
#define FL_HOST_DEVICE
#endif

FL_HOST_DEVICE static inline uint64_t fl_rng_mix(uint64_t z)
{
    /* SplitMix64's finalizer */
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* The key of one stream of a seed: computed once, then indexed cheaply. */
uint64_t fl_rng_key(uint64_t seed, uint64_t stream);

/* The index-th 64-bit value of the stream with this key (SplitMix64). */
FL_HOST_DEVICE static inline uint64_t fl_rng_at(uint64_t key, uint64_t index)
{
    return fl_rng_mix(key + (index + 1) * 0x9e3779b97f4a7c15ull);
}

/* Uniform in [0, 1) with 24 random bits. */
FL_HOST_DEVICE static inline float fl_rng_uniform(uint64_t key, uint64_t index)
{
    return (float)(fl_rng_at(key, index) >> 40) * (1.0f / 16777216.0f);
}

#endif
