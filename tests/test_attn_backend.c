/* test_attn_backend.c - choosing an attention backend: auto picks one that
 * can run the model; a named one that cannot, or an unknown name, is one
 * message saying what is missing and what would work; and the backend a
 * runner is given is the code it runs. */
#include "test_util.h"

#include "attention/attn_paged.h"
#include "attention/backend.h"
#include "cpu/cpu_runner.h"
#include "model/model.h"

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
    b = fl_attn_backend_select("paged", &n, &err); /* the portable one stays runnable on Hopper */
    assert_non_null(b);
    assert_string_equal(b->name, "paged");
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
    n.features = FL_ATTN_CAUSAL | FL_ATTN_SLIDING_WINDOW | FL_ATTN_SINKS; /* gpt-oss */
    b = fl_attn_backend_select(NULL, &n, &err);
    assert_non_null(b);
    assert_string_equal(b->name, "hopper");
    assert_non_null(fl_attn_backend_select("paged", &n, &err));
    n.features |= FL_ATTN_SOFTCAP;
    assert_null(fl_attn_backend_select("hopper", &n, &err));
    assert_msg_contains(err.msg, "logit softcap is not supported");
    n.features = FL_ATTN_CAUSAL;
    n.head_dim = 80;
    assert_null(fl_attn_backend_select("auto", &n, &err));
    assert_msg_contains(err.msg, "no attention backend can run this model on this device (hopper: head size 80 is "
                                 "not supported (supported: 16, 32, 64, 96, 128, 256); paged: head size 80");
    assert_null(fl_attn_backend_select("hopper", &n, &err));
    assert_msg_contains(err.msg, "head size 80 is not supported (supported: 16, 32, 64, 96, 128, 256)");
    n.head_dim = 64;
    n.kv_dtype = FL_F32;
    assert_null(fl_attn_backend_select("paged", &n, &err));
    assert_msg_contains(err.msg, "KV cache dtype F32 is not supported");
    /* gpt-oss's windows and sinks: the CPU reference and both kernel sets have them */
    n.kv_dtype = FL_BF16;
    n.features = FL_ATTN_CAUSAL | FL_ATTN_SLIDING_WINDOW | FL_ATTN_SINKS;
    b = fl_attn_backend_select("auto", &n, &err);
    assert_non_null(b);
    assert_string_equal(b->name, "hopper");
    n = (fl_attn_needs){ .device = FL_DEVICE_CPU, .head_dim = 64, .block_size = 16, .kv_dtype = FL_F32,
                         .features = FL_ATTN_CAUSAL | FL_ATTN_SLIDING_WINDOW | FL_ATTN_SINKS };
    b = fl_attn_backend_select("auto", &n, &err);
    assert_non_null(b);
    assert_string_equal(b->name, "cpu");
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
        if (!b->cuda) /* a build without CUDA has no kernel code to compare with */
            continue;
        for (int cc = 70; cc <= 120; cc++)
            for (int d = 1; d <= 512; d++)
                for (int bs = 1; bs <= 256; bs *= 2) {
                    const fl_attn_needs n = { .device = FL_DEVICE_CUDA, .cc = cc, .head_dim = d, .block_size = bs,
                                              .kv_dtype = FL_BF16, .features = FL_ATTN_CAUSAL };
                    const fl_attn_shape s = { .num_heads = 16, .num_kv_heads = 8, .head_dim = d, .block_size = bs,
                                              .num_sms = 132, .smem_per_sm = 228 * 1024, .cc = cc };
                    char why[256], why2[256];
                    const int registry_ok = !fl_attn_backend_unsupported(b, &n, why, sizeof why);
                    const int kernels_ok = b->cuda->supports(&s, why2, sizeof why2) == 0;
                    if (registry_ok != kernels_ok)
                        fail_msg("%s, cc %d, head size %d, block size %d: registry %s, kernels %s", b->name, cc, d,
                                 bs, registry_ok ? "yes" : why, kernels_ok ? "yes" : why2);
                }
    }
    assert_int_equal(cuda, 2);
}

/* A CPU backend that counts its calls and then runs the reference. */
static int counted_runs;

static void counting_run(const fl_attn_cpu_args *a)
{
    counted_runs++;
    tu_attention("cpu")->cpu->run(a);
}

/* A plan is for one kernel set: the two sets' prefill tiles differ (192
 * rows and 128 at head size 128), and each refuses a plan of the other's
 * before it touches the GPU (cudaErrorInvalidValue, 1). */
static void test_plan_of_other_set_refused(void **state)
{
    (void)state;
    const fl_attn_backend *hopper = tu_attention("hopper"), *paged = tu_attention("paged");
    if (!hopper->cuda) /* a build without CUDA has no kernel code */
        return;
    const fl_attn_shape s = { .num_heads = 16, .num_kv_heads = 8, .head_dim = 128, .block_size = 128,
                              .num_sms = 132, .smem_per_sm = 228 * 1024, .cc = 90 };
    const int32_t query_start[2] = { 0, 300 }, seq_lens[1] = { 300 };
    int32_t work[64];
    assert_true(paged->cuda->work_cap(&s, 1, 300) <= 64);
    fl_attn_plan portable = { .work = work }, wgmma = { .work = work };
    paged->cuda->plan(&portable, &s, query_start, seq_lens, 1, 0);
    hopper->cuda->plan(&wgmma, &s, query_start, seq_lens, 1, 0);
    assert_int_equal(portable.prefill_rows, 128);
    assert_int_equal(wgmma.prefill_rows, 192);
    const fl_attn_args a = { 0 };
    assert_int_equal(hopper->cuda->run(&s, &portable, &a, NULL), 1);
    assert_int_equal(paged->cuda->run(&s, &wgmma, &a, NULL), 1);
}

static size_t counting_scratch(int max_context)
{
    return tu_attention("cpu")->cpu->scratch_floats(max_context);
}

/* The CPU runner names and calls the backend it is handed, once a layer:
 * what start-up selects (and the server logs by the runner's name) is
 * what runs. */
static void test_runner_runs_its_backend(void **state)
{
    (void)state;
    static const fl_attn_cpu_ops counting_ops = { counting_scratch, counting_run };
    fl_attn_backend counting = *tu_attention("cpu");
    counting.name = "counting";
    counting.cpu = &counting_ops;
    fl_model m;
    fl_error err;
    assert_int_equal(fl_model_load(&m, tu_fixture("tiny-qwen3"), FL_LOAD_AUTO, 0, &err), 0);
    const fl_runner_opts o = { .attn = &counting, .max_tokens = 16, .max_context = 64, .block_size = 16,
                               .num_blocks = 4, .max_seqs = 1 };
    fl_model_runner r;
    assert_int_equal(fl_cpu_runner_init(&r, &m.cfg, &m.weights, &o, &err), 0);
    assert_string_equal(r.attn_backend, "counting");
    const int32_t ids[3] = { 1, 2, 3 }, pos[3] = { 0, 1, 2 }, table[4] = { 3, 2, 1, 0 }, rows[1] = { 2 };
    const int32_t slots[3] = { 48, 49, 50 }, query_start[2] = { 0, 3 }, seq_lens[1] = { 3 };
    const fl_batch b = { .num_tokens = 3, .token_ids = ids, .positions = pos, .num_kv_groups = 1, .slots = slots,
                         .num_seqs = 1,
                         .query_start = query_start, .seq_lens = seq_lens, .max_blocks_per_seq = 4,
                         .block_tables = table, .num_logits = 1, .logit_rows = rows };
    float *logits = malloc((size_t)m.cfg.vocab_size * sizeof(float));
    counted_runs = 0;
    r.forward(r.impl, &b, logits);
    assert_int_equal(counted_runs, m.cfg.num_layers);
    free(logits);
    r.destroy(r.impl);
    fl_model_free(&m);
}

int main(void)
{
    const struct CMUnitTest tests[] = { cmocka_unit_test(test_select), cmocka_unit_test(test_select_cuda),
                                        cmocka_unit_test(test_registry_matches_kernels),
                                        cmocka_unit_test(test_plan_of_other_set_refused),
                                        cmocka_unit_test(test_runner_runs_its_backend) };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
