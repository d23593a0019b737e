/* test_attn_backend.c - choosing an attention backend: auto picks one that
 * can run the model; a named one that cannot, or an unknown name, is one
 * message saying what is missing and what would work. */
#include "test_util.h"

#include "attention/attn_paged.h"
#include "attention/backend.h"

static fl_attn_needs cpu_needs(int head_dim, int block_size)
{
    return (fl_attn_needs){ .device = FL_DEVICE_CPU, .head_dim = head_dim, .block_size = block_size,
                            .kv_dtype = FL_F32, .features = FL_ATTN_CAUSAL };
}

static void test_select(void **state)
{
    (void)state;
    fl_error err = { "" };
    fl_attn_needs n = cpu_needs(128, 128);
    const fl_attn_backend *b = fl_attn_backend_select("auto", &n, &err);
    assert_non_null(b);
    assert_string_equal(b->name, "cpu");
    assert_ptr_equal(fl_attn_backend_select(NULL, &n, &err), b);
    assert_ptr_equal(fl_attn_backend_select("cpu", &n, &err), b);

    assert_null(fl_attn_backend_select("flash", &n, &err));
    assert_msg_contains(err.msg, "unknown attention backend 'flash' (this build has: auto, hopper, paged, cpu)");
    assert_null(fl_attn_backend_select("paged", &n, &err));
    assert_msg_contains(err.msg, "attention backend 'paged' cannot run this model: runs on CUDA, not CPU "
                                 "(backends that can: cpu)");

    n = cpu_needs(33, 128);
    assert_null(fl_attn_backend_select("cpu", &n, &err));
    assert_msg_contains(err.msg, "attention backend 'cpu' cannot run this model: head size 33 is not "
                                 "supported (supported: any even) (backends that can: none)");
    n = cpu_needs(64, 48);
    assert_null(fl_attn_backend_select("cpu", &n, &err));
    assert_msg_contains(err.msg, "KV block size 48 is not supported (supported: 16, 32, 64, 128)");
    n = cpu_needs(64, 16);
    n.features |= FL_ATTN_SOFTCAP;
    assert_null(fl_attn_backend_select("cpu", &n, &err));
    assert_msg_contains(err.msg, "logit softcap is not supported");
    n = cpu_needs(64, 16);
    n.kv_dtype = FL_BF16;
    assert_null(fl_attn_backend_select("auto", &n, &err));
    assert_msg_contains(err.msg, "no attention backend can run this model");
    n = cpu_needs(64, 16);
    n.device = FL_DEVICE_CUDA;
    n.cc = 90;
    char why[256];
    assert_non_null(fl_attn_backend_unsupported(b, &n, why, sizeof why));
    assert_msg_contains(why, "runs on CPU, not CUDA");
}

/* The CUDA side: auto takes hopper on Hopper and the portable paged on
 * Ampere and Ada; a backend the GPU cannot run says so and names the
 * ones that can. */
static void test_select_cuda(void **state)
{
    (void)state;
    fl_error err = { "" };
    fl_attn_needs n = { .device = FL_DEVICE_CUDA, .cc = 90, .head_dim = 128, .block_size = 128,
                        .kv_dtype = FL_BF16, .features = FL_ATTN_CAUSAL };
    const fl_attn_backend *b = fl_attn_backend_select(NULL, &n, &err);
    assert_non_null(b);
    assert_string_equal(b->name, "hopper");
    assert_int_equal(b->kernels, FL_ATTN_HOPPER);
    b = fl_attn_backend_select("paged", &n, &err); /* the portable one stays runnable on Hopper */
    assert_non_null(b);
    assert_int_equal(b->kernels, FL_ATTN_PORTABLE);
    static const int ampere_ada[] = { 80, 86, 89 };
    for (int i = 0; i < 3; i++) {
        n.cc = ampere_ada[i];
        b = fl_attn_backend_select("auto", &n, &err);
        assert_non_null(b);
        assert_string_equal(b->name, "paged");
    }
    n.cc = 80;
    assert_null(fl_attn_backend_select("hopper", &n, &err));
    assert_msg_contains(err.msg, "attention backend 'hopper' cannot run this model: needs compute capability 9.0, "
                                 "the GPU has 8.0 (backends that can: paged)");
    n.cc = 75;
    assert_null(fl_attn_backend_select("paged", &n, &err));
    assert_msg_contains(err.msg, "needs compute capability 8.0 to 9.0, the GPU has 7.5 (backends that can: none)");
    n.cc = 90;
    n.head_dim = 80;
    assert_null(fl_attn_backend_select("auto", &n, &err));
    assert_msg_contains(err.msg, "no attention backend can run this model on this device");
    assert_null(fl_attn_backend_select("hopper", &n, &err));
    assert_msg_contains(err.msg, "head size 80 is not supported (supported: 16, 32, 64, 96, 128, 256)");
    n.head_dim = 64;
    n.kv_dtype = FL_F32;
    assert_null(fl_attn_backend_select("paged", &n, &err));
    assert_msg_contains(err.msg, "KV cache dtype F32 is not supported");
}

/* What the registry declares of each CUDA backend is what its kernels'
 * supports check accepts: every head size, block size and compute
 * capability in a range around theirs. */
static void test_registry_matches_kernels(void **state)
{
    (void)state;
    int count, cuda = 0;
    const fl_attn_backend *all = fl_attn_backends(&count);
    for (int i = 0; i < count; i++) {
        const fl_attn_backend *b = &all[i];
        if (b->device != FL_DEVICE_CUDA)
            continue;
        cuda++;
        for (int cc = 70; cc <= 120; cc++)
            for (int d = 1; d <= 512; d++)
                for (int bs = 1; bs <= 256; bs *= 2) {
                    const fl_attn_needs n = { .device = FL_DEVICE_CUDA, .cc = cc, .head_dim = d, .block_size = bs,
                                              .kv_dtype = FL_BF16, .features = FL_ATTN_CAUSAL };
                    const fl_attn_shape s = { .num_heads = 16, .num_kv_heads = 8, .head_dim = d, .block_size = bs,
                                              .num_sms = 132, .smem_per_sm = 228 * 1024, .cc = cc };
                    char why[256], why2[256];
                    const int registry_ok = !fl_attn_backend_unsupported(b, &n, why, sizeof why);
                    const int kernels_ok = fl_attn_paged_supports(&s, b->kernels, why2, sizeof why2) == 0;
                    if (registry_ok != kernels_ok)
                        fail_msg("%s, cc %d, head size %d, block size %d: registry %s, kernels %s", b->name, cc, d,
                                 bs, registry_ok ? "yes" : why, kernels_ok ? "yes" : why2);
                }
    }
    assert_int_equal(cuda, 2);
}

int main(void)
{
    const struct CMUnitTest tests[] = { cmocka_unit_test(test_select), cmocka_unit_test(test_select_cuda),
                                        cmocka_unit_test(test_registry_matches_kernels) };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
