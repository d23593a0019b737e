/* test_attn_backend.c - choosing an attention backend: auto picks one that
 * can run the model; a named one that cannot, or an unknown name, is one
 * message saying what is missing and what would work. */
#include "test_util.h"

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
    assert_msg_contains(err.msg, "unknown attention backend 'flash' (this build has: auto, paged, cpu)");
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

/* The CUDA side: auto takes paged where it can run, and says why not. */
static void test_select_cuda(void **state)
{
    (void)state;
    fl_error err = { "" };
    fl_attn_needs n = { .device = FL_DEVICE_CUDA, .cc = 90, .head_dim = 128, .block_size = 128,
                        .kv_dtype = FL_BF16, .features = FL_ATTN_CAUSAL };
    const fl_attn_backend *b = fl_attn_backend_select(NULL, &n, &err);
    assert_non_null(b);
    assert_string_equal(b->name, "paged");
    n.cc = 75;
    assert_null(fl_attn_backend_select("paged", &n, &err));
    assert_msg_contains(err.msg, "needs compute capability 8.0 to 9.0, the GPU has 7.5");
    n.cc = 80;
    n.head_dim = 80;
    assert_null(fl_attn_backend_select("auto", &n, &err));
    assert_msg_contains(err.msg, "no attention backend can run this model on this device");
    assert_null(fl_attn_backend_select("paged", &n, &err));
    assert_msg_contains(err.msg, "head size 80 is not supported (supported: 16, 32, 64, 96, 128, 256)");
    n.head_dim = 64;
    n.kv_dtype = FL_F32;
    assert_null(fl_attn_backend_select("paged", &n, &err));
    assert_msg_contains(err.msg, "KV cache dtype F32 is not supported");
}

int main(void)
{
    const struct CMUnitTest tests[] = { cmocka_unit_test(test_select), cmocka_unit_test(test_select_cuda) };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
