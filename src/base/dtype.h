/* dtype.h - element types of tensors in files and in memory, and the
 * conversions between the 16-bit float formats and float32. */
#ifndef FL_DTYPE_H
#define FL_DTYPE_H

#include <stddef.h>
#include <stdint.h>

typedef enum fl_dtype {
    FL_DTYPE_INVALID = 0,
    FL_F64,
    FL_F32,
    FL_F16,
    FL_BF16,
    FL_I64,
    FL_I32,
    FL_I16,
    FL_I8,
    FL_U8,
    FL_BOOL,
    FL_F8_E4M3, /* float8 e4m3 ("fn": no infinities, 448 at most): the fp8 KV cache */
} fl_dtype;

/* The safetensors spelling ("BF16"); "?" for FL_DTYPE_INVALID. */
const char *fl_dtype_name(fl_dtype t);
/* Parses a safetensors dtype string; FL_DTYPE_INVALID if unknown. */
fl_dtype fl_dtype_from_name(const char *name);
/* Parses a config.json torch dtype ("bfloat16"); FL_DTYPE_INVALID if unknown. */
fl_dtype fl_dtype_from_torch_name(const char *name);
size_t fl_dtype_size(fl_dtype t);
/* True for the dtypes a weight tensor may have: F32, F16, BF16. */
int fl_dtype_is_float_weight(fl_dtype t);

static inline float fl_bf16_to_f32(uint16_t h)
{
    union { uint32_t u; float f; } v = { .u = (uint32_t)h << 16 };
    return v.f;
}

/* Round to nearest even; NaN stays NaN. */
static inline uint16_t fl_f32_to_bf16(float f)
{
    union { float f; uint32_t u; } v = { .f = f };
    if ((v.u & 0x7fffffffu) > 0x7f800000u)
        return (uint16_t)((v.u >> 16) | 0x40);
    uint32_t rounding = 0x7fffu + ((v.u >> 16) & 1u);
    return (uint16_t)((v.u + rounding) >> 16);
}

float fl_f16_to_f32(uint16_t h);
uint16_t fl_f32_to_f16(float f);

/* Converts n elements of src (F32, F16 or BF16) to float32. */
void fl_convert_to_f32(float *dst, const void *src, fl_dtype src_type, size_t n);
/* Converts n float32 values to dst_type (F32, F16 or BF16). */
void fl_convert_from_f32(void *dst, fl_dtype dst_type, const float *src, size_t n);

#endif
