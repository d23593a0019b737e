/* test_dtype.c - float conversions against values fixed by IEEE 754 and the
 * bfloat16 definition, and exhaustive round trips. */
#include "test_util.h"

#include <math.h>

#include "base/dtype.h"

static void test_f16_known_values(void **state)
{
    (void)state;
    static const struct {
        uint16_t bits;
        float value;
    } cases[] = {
        { 0x3c00, 1.0f }, { 0xc000, -2.0f }, { 0x7bff, 65504.0f }, { 0x0001, 5.9604645e-08f },
        { 0x0400, 6.1035156e-05f }, { 0x3555, 0.33325195f }, { 0x0000, 0.0f }, { 0x7c00, INFINITY },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        assert_true(fl_f16_to_f32(cases[i].bits) == cases[i].value);
        assert_int_equal(fl_f32_to_f16(cases[i].value), cases[i].bits);
    }
    assert_true(isnan(fl_f16_to_f32(0x7e00)));
    assert_int_equal(fl_f32_to_f16(1e6f), 0x7c00);         /* overflow to inf */
    assert_int_equal(fl_f32_to_f16(1.0f + 1.0f / 4096), 0x3c00); /* ties to even */
}

static void test_f16_round_trip_all(void **state)
{
    (void)state;
    for (uint32_t b = 0; b < 65536; b++) {
        float f = fl_f16_to_f32((uint16_t)b);
        if (isnan(f))
            continue;
        assert_int_equal(fl_f32_to_f16(f), b);
    }
}

static void test_bf16(void **state)
{
    (void)state;
    assert_true(fl_bf16_to_f32(0x3f80) == 1.0f);
    assert_true(fl_bf16_to_f32(0xc2f7) == -123.5f);
    assert_int_equal(fl_f32_to_bf16(1.0f), 0x3f80);
    assert_int_equal(fl_f32_to_bf16(1.00390625f), 0x3f80);  /* tie rounds to even */
    assert_int_equal(fl_f32_to_bf16(1.01171875f), 0x3f82);  /* tie rounds to even */
    for (uint32_t b = 0; b < 65536; b++) {
        float f = fl_bf16_to_f32((uint16_t)b);
        if (!isnan(f))
            assert_int_equal(fl_f32_to_bf16(f), b);
    }
}

/* safetensors lets a tensor start at any byte offset: conversions read and
 * write 16-bit elements at odd addresses (UBSan flags a typed access). */
static void test_unaligned(void **state)
{
    (void)state;
    static const float values[5] = { 1.0f, -2.0f, 0.5f, 1024.0f, -0.0f }; /* exact in all three */
    for (int type = 0; type < 3; type++) {
        const fl_dtype t = type == 0 ? FL_BF16 : type == 1 ? FL_F16 : FL_F32;
        _Alignas(16) unsigned char buf[1 + sizeof values];
        float back[5];
        fl_convert_from_f32(buf + 1, t, values, 5);
        fl_convert_to_f32(back, buf + 1, t, 5);
        assert_memory_equal(back, values, sizeof values);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_f16_known_values),
        cmocka_unit_test(test_f16_round_trip_all),
        cmocka_unit_test(test_bf16),
        cmocka_unit_test(test_unaligned),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
