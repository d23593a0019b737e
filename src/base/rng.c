/* rng.c - stream keys of the counter RNG (see rng.h). */
#include "base/rng.h"

uint64_t fl_rng_key(uint64_t seed, uint64_t stream)
{
    return fl_rng_mix(fl_rng_mix(seed ^ 0x6a09e667f3bcc909ull) ^ (stream * 0xd1b54a32d192ed03ull));
}
