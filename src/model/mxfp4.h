/* mxfp4.h - the OCP Microscaling FP4 format of gpt-oss's expert weights.
 *
 * A block of 32 values shares one scale byte s (E8M0: the factor 2^(s -
 * 127); 255 is NaN). Each value is a 4-bit E2M1 float: sign, two exponent
 * bits, one mantissa bit, so the magnitudes 0, 0.5, 1, 1.5, 2, 3, 4, 6
 * (exponent 0 is subnormal: 0 and 0.5). Two values share a byte, the low
 * nibble first. Every value fp4 * 2^(s - 127) has at most two significant
 * bits, so it is exact in bfloat16 (subnormals included) unless it
 * overflows, which only scales of 254 and above can do. */
#ifndef FL_MXFP4_H
#define FL_MXFP4_H

#include <stdint.h>

/* The bfloat16 bits of nibble * 2^(scale - 127); -1 if that is NaN (scale
 * 255) or overflows bfloat16. */
int fl_mxfp4_to_bf16(unsigned nibble, unsigned scale, uint16_t *bits);

/* Dequantizes one expert stack: blocks (E, rows, cols / 32, 16) and scales
 * (E, rows, cols / 32), row r holding output feature r over the cols input
 * features, into out (E, cols, rows) bfloat16, the x @ W layout of HF's
 * dequantized checkpoint (transformers' convert_moe_packed_tensors).
 * Returns -1 and the flat index (into blocks, in nibbles) of the first
 * value that is NaN or overflows, else 0. */
int fl_mxfp4_dequantize(const uint8_t *blocks, const uint8_t *scales, int64_t experts, int64_t rows, int64_t cols,
                        uint16_t *out, int64_t *bad_nibble);

#endif
