/* test_cuda_tensor_parallel.c - the CUDA runner split over ranks equals the
 * whole (GPU only).
 *
 * The ranks share the one GPU, threads of this process meeting in the
 * local communicator (cuda_runner.h's fl_cuda_runner_init_parallel), so
 * the sharding of the CUDA runner (each rank's heads, KV heads and slice
 * of the intermediate size and vocabulary; o_proj and down_proj as partial
 * sums, all-reduced; the embedding all-reduced, the logits gathered) is
 * checked where there is one GPU. For each tiny fixture (Qwen3 with q/k
 * norms, Llama with one KV head replicated over the ranks, Qwen2 with
 * biases, gpt-oss with routed experts, each expert's intermediate size
 * sliced, sinks and sliding windows) at 2 and 4 ranks: the golden prompts as one batch, logits at
 * every position, must stay within the forward test's bf16 tolerance of
 * HF's float32 logits (3e-2 x the largest |logit| of a prompt; routed
 * experts: tu_golden_outliers_allowed's positions outside) and within
 * 1e-2 x it of the unsharded GPU runner's (the ranks' partial sums and the
 * products' cuBLASLt algorithms differ, so bf16 roundings differ a little;
 * a wrong head, slice or sum is of the order of the logits), and differ
 * from them at all (0 would mean the model was not split). Then greedy
 * generation through the engine (decode steps, every rank sampling the
 * same rows): each chosen token must be a greedy choice of the unsharded
 * runner within bf16 noise (its logit within 1e-2 x max |logit| of the
 * top one when prompt and continuation are prefilled at once). A size the
 * heads refuse is refused naming them; an o_proj bias (added to
 * tiny-llama) gives tp 1's logits at 2 and 4 ranks; NCCL's communicator
 * runs a group of one rank. */
#include "test_util.h"

#include "golden.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <cuda_runtime.h>

#include "cuda/cuda_runner.h"
#include "parallel/comm.h"
#include "model/model.h"

#define MAX_CONTEXT 256
#define BLOCK_SIZE 16
#define LOGIT_TOL 3e-2
#define WHOLE_TOL 1e-2
#define MARGIN 1e-2

static fl_runner_opts opts(int step_budget)
{
    int cc = 0;
    fl_error err;
    assert_int_equal(fl_cuda_device_cc(&cc, &err), 0);
    return (fl_runner_opts){ .attn = tu_attention(cc >= 90 ? "hopper" : "paged"),
                             .max_tokens = step_budget, .max_context = MAX_CONTEXT, .max_seqs = 512,
                             .block_size = BLOCK_SIZE,
                             .num_blocks = TU_GOLDEN_PROMPTS * (MAX_CONTEXT / BLOCK_SIZE + 1) + 1,
                             .gpu_memory_utilization = 0.9f };
}

static fl_model_runner make_runner(const fl_model *m, int tp, int step_budget)
{
    fl_model_runner r;
    fl_error err;
    const fl_runner_opts o = opts(step_budget);
    if (fl_cuda_runner_init_parallel(&r, &m->cfg, &m->weights, &o, tp, &err) != 0) {
        print_error("tp %d: %s\n", tp, err.msg);
        fail();
    }
    return r;
}

/* seqs as one prefill on a runner of tp ranks, logits at every position. */
static float *prefill(const fl_model *m, int tp, int num_seqs, const int32_t *const *seqs, const int *lens,
                      size_t *count)
{
    fl_model_runner r = make_runner(m, tp, 512);
    tu_prefill step;
    tu_prefill_init(&step, r.kv_groups, BLOCK_SIZE, num_seqs, seqs, lens);
    assert_true(step.num_blocks <= r.num_blocks);
    const int vocab = m->cfg.vocab_size, last = step.batch.num_logits - 1;
    *count = (size_t)step.batch.num_tokens * vocab;
    float *logits = malloc(*count * sizeof(float)), *row = malloc((size_t)vocab * sizeof(float));
    r.forward(r.impl, &step.batch, logits);
    r.read_logits(r.impl, last, row);
    assert_memory_equal(row, logits + (size_t)last * vocab, (size_t)vocab * sizeof(float));
    free(row);
    tu_prefill_free(&step);
    r.destroy(r.impl);
    return logits;
}

static int argmax(const float *x, int n)
{
    int best = 0;
    for (int i = 1; i < n; i++)
        best = x[i] > x[best] ? i : best;
    return best;
}

static void check_fixture(const char *name)
{
    fl_model model;
    tu_golden g;
    tu_golden_fixture(name, &model, &g);
    const int vocab = model.cfg.vocab_size;
    size_t n;
    float *whole = prefill(&model, 1, TU_GOLDEN_PROMPTS, g.prompt, g.len, &n);
    for (int tp = 2; tp <= 4; tp *= 2) {
        size_t n_tp;
        float *split = prefill(&model, tp, TU_GOLDEN_PROMPTS, g.prompt, g.len, &n_tp);
        assert_int_equal(n_tp, n);
        size_t at = 0;
        for (int s = 0; s < TU_GOLDEN_PROMPTS; s++) {
            double mag = 0, err_hf = 0, err_whole = 0;
            int outliers = 0;
            for (size_t k = 0; k < (size_t)g.len[s] * vocab; k++)
                mag = fmax(mag, fabs(g.logits[s][k]));
            for (int pos = 0; pos < g.len[s]; pos++) {
                double err_pos = 0;
                for (int k = 0; k < vocab; k++, at++) {
                    assert_false(isnan(split[at]));
                    err_pos = fmax(err_pos, fabs(split[at] - g.logits[s][(size_t)pos * vocab + k]));
                    err_whole = fmax(err_whole, fabs(split[at] - whole[at]));
                }
                outliers += err_pos > LOGIT_TOL * mag;
                err_hf = fmax(err_hf, err_pos);
            }
            print_message("%s tp %d prompt %d: max |logit| %.3g, max error against tp 1 %.3g (%.1e of it), "
                          "against HF float32 %.3g (%.1e; %d positions outside %.0e)\n", name, tp, s, mag, err_whole,
                          err_whole / mag, err_hf, err_hf / mag, outliers, LOGIT_TOL);
            assert_true(outliers <= tu_golden_outliers_allowed(&model, g.len[s]));
            assert_true(err_whole <= WHOLE_TOL * mag);
        }
        double all = 0;
        for (size_t k = 0; k < n; k++)
            all = fmax(all, fabs(split[k] - whole[k]));
        assert_true(all > 0);
        free(split);

        fl_model_runner r = make_runner(&model, tp, 7); /* chunked prompts: mixed steps */
        int32_t tokens[TU_GOLDEN_PROMPTS][TU_GOLDEN_TOKENS];
        tu_golden_generate(&g, &r, 7, -1, tokens);
        int32_t *seqs[TU_GOLDEN_PROMPTS];
        int lens[TU_GOLDEN_PROMPTS];
        for (int s = 0; s < TU_GOLDEN_PROMPTS; s++) {
            lens[s] = g.len[s] + TU_GOLDEN_TOKENS;
            seqs[s] = malloc((size_t)lens[s] * sizeof(int32_t));
            memcpy(seqs[s], g.prompt[s], (size_t)g.len[s] * sizeof(int32_t));
            memcpy(seqs[s] + g.len[s], tokens[s], TU_GOLDEN_TOKENS * sizeof(int32_t));
        }
        size_t count;
        float *ref = prefill(&model, 1, TU_GOLDEN_PROMPTS, (const int32_t *const *)seqs, lens, &count);
        const float *row = ref;
        for (int s = 0; s < TU_GOLDEN_PROMPTS; s++) {
            double mag = 0;
            for (size_t k = 0; k < (size_t)g.len[s] * vocab; k++)
                mag = fmax(mag, fabs(g.logits[s][k]));
            int same = 0;
            while (same < TU_GOLDEN_TOKENS && tokens[s][same] == g.greedy[s][same])
                same++;
            for (int k = 0; k < TU_GOLDEN_TOKENS; k++) {
                const float *p = row + (size_t)(g.len[s] - 1 + k) * vocab;
                if (p[argmax(p, vocab)] - p[tokens[s][k]] > MARGIN * mag) {
                    print_error("%s tp %d prompt %d: token %d (%d) is %.3g below the top logit\n", name, tp, s, k,
                                tokens[s][k], p[argmax(p, vocab)] - p[tokens[s][k]]);
                    fail();
                }
            }
            print_message("%s tp %d prompt %d: greedy, first %d of %d tokens as HF's\n", name, tp, s, same,
                          TU_GOLDEN_TOKENS);
            row += (size_t)lens[s] * vocab;
            free(seqs[s]);
        }
        free(ref);
    }
    free(whole);
    tu_golden_free(&g);
    fl_model_free(&model);
}

static void test_qwen3(void **state) { (void)state; check_fixture("tiny-qwen3"); }
static void test_llama(void **state) { (void)state; check_fixture("tiny-llama"); }
static void test_qwen2(void **state) { (void)state; check_fixture("tiny-qwen2"); }
static void test_gpt_oss(void **state) { (void)state; check_fixture("tiny-gpt-oss"); }

/* An o_proj bias (no tiny fixture has one: Llama's attention_bias) added
 * to tiny-llama's layers: every rank adds it to its own residual after the
 * all-reduce, so tp 2 and 4 must equal tp 1 within the same bound, and the
 * bias must move the logits (else it was not applied). */
static void test_o_bias(void **state)
{
    (void)state;
    fl_model model;
    tu_golden g;
    tu_golden_fixture("tiny-llama", &model, &g);
    const int H = model.cfg.hidden_size, L = model.cfg.num_layers;
    size_t n, n_tp;
    float *plain = prefill(&model, 1, TU_GOLDEN_PROMPTS, g.prompt, g.len, &n);
    float *bias = malloc((size_t)H * sizeof(float));
    for (int i = 0; i < H; i++)
        bias[i] = 0.05f * (float)((i * 37) % 11 - 5);
    for (int l = 0; l < L; l++) {
        model.cfg.layers[l].o_bias = 1;
        model.weights.layers[l].t[FL_BO] = (fl_tensor){ .name = "o_proj.bias", .dtype = FL_F32, .ndim = 1,
                                                       .shape = { H }, .data = bias, .nbytes = (size_t)H * 4 };
    }
    float *whole = prefill(&model, 1, TU_GOLDEN_PROMPTS, g.prompt, g.len, &n);
    double mag = 0, moved = 0;
    for (size_t k = 0; k < n; k++) {
        mag = fmax(mag, fabs(whole[k]));
        moved = fmax(moved, fabs(whole[k] - plain[k]));
    }
    assert_true(moved > 0.1 * mag);
    for (int tp = 2; tp <= 4; tp *= 2) {
        float *split = prefill(&model, tp, TU_GOLDEN_PROMPTS, g.prompt, g.len, &n_tp);
        assert_int_equal(n_tp, n);
        double err = 0;
        for (size_t k = 0; k < n; k++)
            err = fmax(err, fabs(split[k] - whole[k]));
        print_message("tiny-llama with an o_proj bias, tp %d: max error against tp 1 %.3g of max |logit| %.3g "
                      "(the bias moves them by %.3g)\n", tp, err, mag, moved);
        assert_true(err <= WHOLE_TOL * mag);
        free(split);
    }
    for (int l = 0; l < L; l++) {
        model.cfg.layers[l].o_bias = 0;
        model.weights.layers[l].t[FL_BO] = (fl_tensor){ 0 };
    }
    free(bias), free(whole), free(plain);
    tu_golden_free(&g);
    fl_model_free(&model);
}

static void test_refusals(void **state)
{
    (void)state;
    fl_model model;
    tu_golden g;
    fl_error err;
    fl_model_runner r;
    const fl_runner_opts o = opts(64);
    tu_golden_fixture("tiny-qwen3", &model, &g);
    assert_int_equal(fl_cuda_runner_init_parallel(&r, &model.cfg, &model.weights, &o, 3, &err), -1);
    assert_msg_contains(err.msg, "does not divide the model's 4 attention heads");
    tu_golden_free(&g);
    fl_model_free(&model);
}

/* NCCL's communicator over the one GPU (a group of one rank: NCCL joins
 * no two ranks on one GPU): the calls load and run on a stream, the
 * all-reduce leaves the buffer as it is and the all-gather copies it; a
 * missing library and too few GPUs are refused naming them. */
static void test_nccl(void **state)
{
    (void)state;
    fl_error err;
    fl_comm_set set;
    if (fl_comm_nccl_set(1, &set, &err) != 0) {
        print_error("%s\n", err.msg);
        fail();
    }
    assert_int_equal(set.size, 1);
    fl_comm *c = set.ranks[0];
    assert_int_equal(c->device, 0);
    assert_true(c->device_capturable);
    enum { N = 1000 };
    float host[N], back[N];
    for (int i = 0; i < N; i++)
        host[i] = (float)i - 0.5f;
    float *buf, *out;
    assert_int_equal(cudaMalloc((void **)&buf, N * sizeof(float)), cudaSuccess);
    assert_int_equal(cudaMalloc((void **)&out, N * sizeof(float)), cudaSuccess);
    assert_int_equal(cudaMemcpy(buf, host, sizeof host, cudaMemcpyHostToDevice), cudaSuccess);
    cudaStream_t s;
    assert_int_equal(cudaStreamCreate(&s), cudaSuccess);
    c->all_reduce_sum_device(c, buf, N, s);
    c->all_gather_device(c, buf, N, out, s);
    assert_int_equal(cudaStreamSynchronize(s), cudaSuccess);
    assert_int_equal(cudaMemcpy(back, out, sizeof back, cudaMemcpyDeviceToHost), cudaSuccess);
    assert_memory_equal(back, host, sizeof host);
    cudaStreamDestroy(s);
    cudaFree(buf), cudaFree(out);
    fl_comm_set_free(&set);

    int count = 0;
    assert_int_equal(cudaGetDeviceCount(&count), cudaSuccess);
    char want[96];
    snprintf(want, sizeof want, "needs %d GPUs, and %d %s visible", count + 1, count, count == 1 ? "is" : "are");
    assert_int_equal(fl_cuda_tp_check(count + 1, &err), -1);
    assert_msg_contains(err.msg, want);
    const char *was = getenv("FLASHLM_NCCL_SO_PATH");
    char *saved = was ? strdup(was) : NULL;
    setenv("FLASHLM_NCCL_SO_PATH", "/nonexistent/libnccl.so.2", 1);
    assert_int_equal(fl_cuda_tp_check(1, &err), -1);
    assert_msg_contains(err.msg, "cannot load NCCL (/nonexistent/libnccl.so.2)");
    if (saved)
        setenv("FLASHLM_NCCL_SO_PATH", saved, 1);
    else
        unsetenv("FLASHLM_NCCL_SO_PATH");
    free(saved);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_qwen3),
        cmocka_unit_test(test_llama),
        cmocka_unit_test(test_qwen2),
        cmocka_unit_test(test_gpt_oss),
        cmocka_unit_test(test_o_bias),
        cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_nccl),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
