/* dtype.c - dtype names, sizes and float conversions. */
#include "base/dtype.h"

#include <math.h>
#include <string.h>

#include "base/error.h"

static const struct {
    fl_dtype type;
    const char *name;
    size_t size;
} dtype_table[] = {
    { FL_F64, "F64", 8 },  { FL_F32, "F32", 4 }, { FL_F16, "F16", 2 },
    { FL_BF16, "BF16", 2 }, { FL_I64, "I64", 8 }, { FL_I32, "I32", 4 },
    { FL_I16, "I16", 2 },  { FL_I8, "I8", 1 },   { FL_U8, "U8", 1 },
    { FL_BOOL, "BOOL", 1 }, { FL_F8_E4M3, "F8_E4M3", 1 },
};

#define DTYPE_COUNT (sizeof dtype_table / sizeof dtype_table[0])

const char *fl_dtype_name(fl_dtype t)
{
    for (size_t i = 0; i < DTYPE_COUNT; i++)
        if (dtype_table[i].type == t)
            return dtype_table[i].name;
    return "?";
}

fl_dtype fl_dtype_from_name(const char *name)
{
    for (size_t i = 0; i < DTYPE_COUNT; i++)
        if (strcmp(dtype_table[i].name, name) == 0)
            return dtype_table[i].type;
    return FL_DTYPE_INVALID;
}

fl_dtype fl_dtype_from_torch_name(const char *name)
{
    if (strcmp(name, "bfloat16") == 0)
        return FL_BF16;
    if (strcmp(name, "float16") == 0 || strcmp(name, "half") == 0)
        return FL_F16;
    if (strcmp(name, "float32") == 0 || strcmp(name, "float") == 0)
        return FL_F32;
    return FL_DTYPE_INVALID;
}

size_t fl_dtype_size(fl_dtype t)
{
    for (size_t i = 0; i < DTYPE_COUNT; i++)
        if (dtype_table[i].type == t)
            return dtype_table[i].size;
    return 0;
}

int fl_dtype_is_float_weight(fl_dtype t)
{
    return t == FL_F32 || t == FL_F16 || t == FL_BF16;
}

float fl_f16_to_f32(uint16_t h)
{
    uint32_t sign = (uint32_t)(h >> 15) << 31;
    int exp = (h >> 10) & 0x1f;
    uint32_t mant = h & 0x3ffu;
    float mag;
    if (exp == 0)
        mag = ldexpf((float)mant, -24); /* zero or subnormal */
    else if (exp == 31)
        mag = mant ? NAN : INFINITY;
    else
        mag = ldexpf((float)(mant | 0x400u), exp - 25);
    union { float f; uint32_t u; } v = { .f = mag };
    v.u |= sign;
    return v.f;
}

uint16_t fl_f32_to_f16(float f)
{
    union { float f; uint32_t u; } v = { .f = f };
    uint16_t sign = (uint16_t)((v.u >> 16) & 0x8000u);
    float a = fabsf(f);
    if (isnan(f))
        return sign | 0x7e00u;
    if (a >= 65520.0f) /* rounds past the largest half (65504) */
        return sign | 0x7c00u;
    if (a < ldexpf(1.0f, -14)) {
        /* subnormal: units of 2^-24, round to nearest even */
        float units = a * 16777216.0f;
        return sign | (uint16_t)lrintf(units);
    }
    int e;
    float m = frexpf(a, &e); /* a = m * 2^e, m in [0.5, 1) */
    /* 11 significant bits: m * 2^11 in [1024, 2048) */
    long sig = lrintf(ldexpf(m, 11));
    if (sig == 2048) {
        sig = 1024;
        e++;
    }
    return sign | (uint16_t)(((e + 14) << 10) | (sig & 0x3ff));
}

/* Tensor data comes straight from a safetensors mapping, where the format
 * lets a tensor start at any byte: elements are moved with memcpy, which
 * compilers turn into plain (unaligned-tolerant) loads and stores, the same
 * instructions as a typed access on x86-64 and AArch64. */
static inline uint16_t load_u16(const unsigned char *p)
{
    uint16_t v;
    memcpy(&v, p, sizeof v);
    return v;
}

static inline void store_u16(unsigned char *p, uint16_t v)
{
    memcpy(p, &v, sizeof v);
}

void fl_convert_to_f32(float *dst, const void *src, fl_dtype src_type, size_t n)
{
    const unsigned char *s = src;
    switch (src_type) {
    case FL_F32:
        memcpy(dst, src, n * sizeof(float));
        return;
    case FL_BF16:
        for (size_t i = 0; i < n; i++)
            dst[i] = fl_bf16_to_f32(load_u16(s + 2 * i));
        return;
    case FL_F16:
        for (size_t i = 0; i < n; i++)
            dst[i] = fl_f16_to_f32(load_u16(s + 2 * i));
        return;
    default:
        FL_ASSERT(!"fl_convert_to_f32: not a float weight dtype");
    }
}

void fl_convert_from_f32(void *dst, fl_dtype dst_type, const float *src, size_t n)
{
    unsigned char *d = dst;
    switch (dst_type) {
    case FL_F32:
        memcpy(dst, src, n * sizeof(float));
        return;
    case FL_BF16:
        for (size_t i = 0; i < n; i++)
            store_u16(d + 2 * i, fl_f32_to_bf16(src[i]));
        return;
    case FL_F16:
        for (size_t i = 0; i < n; i++)
            store_u16(d + 2 * i, fl_f32_to_f16(src[i]));
        return;
    default:
        FL_ASSERT(!"fl_convert_from_f32: not a float weight dtype");
    }
}
