/* mxfp4.c - MXFP4 to bfloat16 (see mxfp4.h). */
#include "model/mxfp4.h"

/* The bfloat16 bits of each E2M1 nibble (scale 2^0): +0, 0.5, 1, 1.5, 2, 3,
 * 4, 6, then the same negated (-0 included). */
static const uint16_t e2m1_bf16[16] = {
    0x0000, 0x3F00, 0x3F80, 0x3FC0, 0x4000, 0x4040, 0x4080, 0x40C0,
    0x8000, 0xBF00, 0xBF80, 0xBFC0, 0xC000, 0xC040, 0xC080, 0xC0C0,
};

int fl_mxfp4_to_bf16(unsigned nibble, unsigned scale, uint16_t *bits)
{
    const uint16_t v = e2m1_bf16[nibble & 15];
    if (scale >= 255)
        return -1;
    if ((v & 0x7FFF) == 0) { /* a signed zero stays itself at any scale */
        *bits = v;
        return 0;
    }
    /* scaling by 2^(scale - 127) adds to the biased exponent; below 1 the
     * result is subnormal: the significand (implicit bit included) shifts
     * right by 1 - exponent, at most 2 places (0.5 * 2^-127), losing no
     * bit since the nonzero significands are 0b1000_0000 and 0b1100_0000 */
    const int exponent = ((v >> 7) & 0xFF) + (int)scale - 127;
    const uint16_t sign = v & 0x8000, significand = (uint16_t)(0x80 | (v & 0x7F));
    if (exponent >= 255)
        return -1;
    if (exponent >= 1)
        *bits = (uint16_t)(sign | exponent << 7 | (v & 0x7F));
    else
        *bits = (uint16_t)(sign | significand >> (1 - exponent));
    return 0;
}

int fl_mxfp4_dequantize(const uint8_t *blocks, const uint8_t *scales, int64_t experts, int64_t rows, int64_t cols,
                        uint16_t *out, int64_t *bad_nibble)
{
    const int64_t groups = cols / 32, total = experts * rows * cols;
    int64_t bad = total;
#pragma omp parallel for schedule(static) reduction(min : bad)
    for (int64_t er = 0; er < experts * rows; er++) {
        const int64_t e = er / rows, r = er % rows;
        uint16_t *dst = out + e * cols * rows + r; /* column r of expert e's (cols, rows) */
        for (int64_t g = 0; g < groups; g++) {
            const unsigned scale = scales[er * groups + g];
            const uint8_t *block = blocks + (er * groups + g) * 16;
            for (int b = 0; b < 32; b++) {
                const int64_t c = g * 32 + b;
                if (fl_mxfp4_to_bf16(b % 2 ? block[b / 2] >> 4 : block[b / 2] & 15, scale, &dst[c * rows]) != 0 &&
                    er * cols + c < bad)
                    bad = er * cols + c;
            }
        }
    }
    *bad_nibble = bad;
    return bad < total ? -1 : 0;
}
