/* test_cuda_sampling.c - the GPU sampler against the definitions (GPU only).
 *
 * For the settings test_sampling uses, 40,000 rows of the same 8 logits,
 * each with its own RNG key, are drawn in one launch and compared with the
 * truncated softmax (chi-square, alpha 0.001; truncated tokens never
 * drawn). The same logits scattered over a 151,936-token vocabulary (the
 * rest far below) check the full-size loops; greedy rows of random logits
 * must give the host's argmax, lowest id on ties; a key, step and row
 * give the same token in any batch. */
#include "test_util.h"

#include <cuda_runtime.h>
#include <math.h>
#include <stdlib.h>

#include "base/rng.h"
#include "cuda/model_kernels.h"

#define V 8
static const float base_logits[V] = { 2.0f, 1.5f, 1.0f, 0.5f, 0.0f, -0.5f, -1.0f, -2.0f };

static const struct { float t; int k; float p, min_p; } cases[] = {
    { 1.0f, 0, 1.0f, 0 }, { 0.7f, 4, 1.0f, 0 }, { 1.0f, 0, 0.8f, 0 }, { 1.0f, 0, 1.0f, 0.2f },
    { 1.3f, 6, 0.9f, 0.05f }, { 2.0f, 3, 0.5f, 0 },
};

#define CHECK(call) assert_int_equal((int)(call), 0)

/* Draws rows rows of vocab logits (host) with params; returns tokens. */
static int32_t *draw(const float *logits, int rows, int vocab, const fl_cuda_sample_params *params)
{
    float *d_logits;
    fl_cuda_sample_params *d_params;
    int32_t *d_tokens, *tokens = malloc((size_t)rows * sizeof(int32_t));
    CHECK(cudaMalloc((void **)&d_logits, (size_t)rows * vocab * sizeof(float)));
    CHECK(cudaMalloc((void **)&d_params, (size_t)rows * sizeof *params));
    CHECK(cudaMalloc((void **)&d_tokens, (size_t)rows * sizeof(int32_t)));
    CHECK(cudaMemcpy(d_logits, logits, (size_t)rows * vocab * sizeof(float), cudaMemcpyHostToDevice));
    CHECK(cudaMemcpy(d_params, params, (size_t)rows * sizeof *params, cudaMemcpyHostToDevice));
    CHECK(cudaMemset(d_tokens, 0xff, (size_t)rows * sizeof(int32_t)));
    CHECK(fl_cuda_sample(d_logits, rows, vocab, d_params, d_tokens, NULL));
    CHECK(cudaMemcpy(tokens, d_tokens, (size_t)rows * sizeof(int32_t), cudaMemcpyDeviceToHost));
    cudaFree(d_logits), cudaFree(d_params), cudaFree(d_tokens);
    return tokens;
}

/* rows draws of the case's distribution; the 8 logits at index stride*i. */
static void check_case(size_t c, int rows, int vocab, int stride)
{
    float *logits = malloc((size_t)rows * vocab * sizeof(float));
    fl_cuda_sample_params *params = malloc((size_t)rows * sizeof *params);
    for (int r = 0; r < rows; r++) {
        float *row = logits + (size_t)r * vocab;
        for (int i = 0; i < vocab; i++)
            row[i] = -1e4f;
        for (int i = 0; i < V; i++)
            row[i * stride] = base_logits[i];
        params[r] = (fl_cuda_sample_params){ .temperature = cases[c].t, .top_k = cases[c].k,
                                             .top_p = cases[c].p, .min_p = cases[c].min_p,
                                             .rng_key = fl_rng_key((uint64_t)r, c), .step = (uint64_t)r % 7 };
    }
    int32_t *tokens = draw(logits, rows, vocab, params);
    int count[V] = { 0 };
    for (int r = 0; r < rows; r++) {
        if (tokens[r] < 0 || tokens[r] % stride != 0 || tokens[r] / stride >= V) {
            print_error("case %zu vocab %d row %d: token %d is not one of the 8 logits\n", c, vocab, r, tokens[r]);
            fail();
        }
        count[tokens[r] / stride]++;
    }
    double want[V];
    tu_truncated_softmax(base_logits, V, cases[c].t, cases[c].k, cases[c].p, cases[c].min_p, want);
    char what[64];
    snprintf(what, sizeof what, "case %zu, vocab %d", c, vocab);
    tu_check_draws(what, want, count, V, rows);
    /* the same (key, step) in another batch: the first 100 rows alone */
    int32_t *again = draw(logits, 100, vocab, params);
    for (int r = 0; r < 100; r++)
        assert_int_equal(again[r], tokens[r]);
    free(again), free(tokens), free(params), free(logits);
}

static void test_distributions(void **state)
{
    (void)state;
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        check_case(c, 40000, V, 1);
        check_case(c, 1500, 151936, 18989);
    }
}

static void test_greedy(void **state)
{
    (void)state;
    const int rows = 64, vocab = 151936;
    float *logits = malloc((size_t)rows * vocab * sizeof(float));
    fl_cuda_sample_params *params = calloc(rows, sizeof *params);
    uint64_t key = fl_rng_key(7, 7);
    for (size_t i = 0; i < (size_t)rows * vocab; i++) /* coarse values: ties happen */
        logits[i] = (float)(int)(fl_rng_uniform(key, i) * 2000.f) / 100.f;
    for (int r = 0; r < rows; r++)
        params[r].top_k = r % 2; /* temperature 0, or top_k 1: both greedy */
    int32_t *tokens = draw(logits, rows, vocab, params);
    for (int r = 0; r < rows; r++) {
        const float *row = logits + (size_t)r * vocab;
        int best = 0;
        for (int i = 1; i < vocab; i++)
            if (row[i] > row[best])
                best = i;
        assert_int_equal(tokens[r], best);
    }
    free(tokens), free(params), free(logits);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_distributions),
        cmocka_unit_test(test_greedy),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
