/* test_cuda_moe.c - the CUDA routed-experts block (cuda/moe.h) against a
 * float64 host reference written from the definition (GPU only).
 *
 * A random residual stream, its RMSNorm rounded to bf16 as the experts'
 * input (the runner's rmsnorm kernel makes it), random bf16 expert weights
 * and a float32 router; the reference computes the router's logits from
 * the residual normed in float64, each token's top-k experts, their
 * softmaxed weights, the clamped SwiGLU and the down projection in float64
 * from the same bf16 values. The
 * GPU rounds the SwiGLU output to bf16 before the down GEMM (as HF's bf16
 * model does), a relative error of 2^-9 per value: the limit is 1e-2 of the
 * largest |output|, far below what a wrong expert, row or column gives
 * (errors of the order of the output itself). Shapes: the tiny fixture's;
 * widths that are not multiples of the 128 x 128 x 64 tiles with a router
 * bias that sends every token to two experts (several tiles per expert);
 * gpt-oss-20b's at a few tokens. Each case runs twice on one workspace and
 * must give the same bits (the counts it leaves are zero, the sums ordered). */
#include "test_util.h"

#include <cuda_runtime.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/dtype.h"
#include "base/rng.h"
#include "cuda/moe.h"

typedef struct moe_case {
    const char *name;
    int tokens, hidden, ff, experts, top_k;
    float favour; /* router bias on experts 0 and 1 */
} moe_case;

static float bf16_round(float v)
{
    uint16_t b;
    fl_convert_from_f32(&b, FL_BF16, &v, 1);
    float f;
    fl_convert_to_f32(&f, &b, FL_BF16, 1);
    return f;
}

/* n bf16-representable values uniform on [-a, a], as floats and as bf16 bits. */
static float *random_bf16(uint64_t stream, size_t n, float a, uint16_t **bits)
{
    float *f = malloc(n * sizeof(float));
    *bits = malloc(n * sizeof(uint16_t));
    const uint64_t key = fl_rng_key(7, stream);
    for (size_t i = 0; i < n; i++)
        f[i] = bf16_round(a * (2.f * fl_rng_uniform(key, i) - 1.f));
    fl_convert_from_f32(*bits, FL_BF16, f, n);
    return f;
}

static float *random_f32(uint64_t stream, size_t n, float a)
{
    float *f = malloc(n * sizeof(float));
    const uint64_t key = fl_rng_key(7, stream);
    for (size_t i = 0; i < n; i++)
        f[i] = a * (2.f * fl_rng_uniform(key, i) - 1.f);
    return f;
}

static void *to_device(const void *host, size_t bytes)
{
    void *d;
    assert_int_equal(cudaMalloc(&d, bytes), cudaSuccess);
    assert_int_equal(cudaMemcpy(d, host, bytes, cudaMemcpyHostToDevice), cudaSuccess);
    return d;
}

static double swiglu(double g, double u, double alpha, double limit)
{
    g = g > limit ? limit : g;
    u = u > limit ? limit : u < -limit ? -limit : u;
    return g / (1.0 + exp(-alpha * g)) * (u + 1.0);
}

#define EPS 1e-5f

/* RMSNorm of row r of x (H wide) times weight, in float64. */
static void rmsnorm(double *out, const float *x, const float *weight, int H)
{
    double ss = 0;
    for (int i = 0; i < H; i++)
        ss += (double)x[i] * x[i];
    const double inv = 1.0 / sqrt(ss / H + EPS);
    for (int i = 0; i < H; i++)
        out[i] = x[i] * inv * weight[i];
}

/* out[t] = residual[t] + the experts of token t, in float64; x is the
 * experts' bf16 input. */
static void reference(const moe_case *c, const float *residual, const float *norm, const float *x,
                      const float *router, const float *rbias, const float *gu, const float *gub, const float *dn,
                      const float *dnb, double *out, float alpha, float limit)
{
    const int H = c->hidden, F = c->ff, E = c->experts, k = c->top_k;
    double *xn = malloc((size_t)H * sizeof(double)), *logits = malloc((size_t)E * sizeof(double));
    double *g = malloc((size_t)F * sizeof(double)), *u = malloc((size_t)F * sizeof(double));
    double *y = malloc((size_t)H * sizeof(double));
    for (int t = 0; t < c->tokens; t++) {
        rmsnorm(xn, residual + (size_t)t * H, norm, H);
        for (int e = 0; e < E; e++) {
            logits[e] = rbias[e];
            for (int i = 0; i < H; i++)
                logits[e] += xn[i] * router[(size_t)e * H + i];
        }
        int chosen[8];
        double w[8];
        for (int s = 0; s < k; s++) {
            int best = -1;
            for (int e = 0; e < E; e++) {
                int taken = 0;
                for (int q = 0; q < s; q++)
                    taken |= chosen[q] == e;
                const double v = logits[e];
                if (!taken && (best < 0 || v > w[s]))
                    best = e, w[s] = v;
            }
            chosen[s] = best;
        }
        double sum = 0;
        const double top = w[0];
        for (int s = 0; s < k; s++)
            sum += w[s] = exp(w[s] - top);
        for (int i = 0; i < H; i++)
            out[(size_t)t * H + i] = residual[(size_t)t * H + i];
        for (int s = 0; s < k; s++) {
            const int e = chosen[s];
            for (int j = 0; j < F; j++) {
                g[j] = gub[(size_t)e * 2 * F + 2 * j];
                u[j] = gub[(size_t)e * 2 * F + 2 * j + 1];
            }
            for (int i = 0; i < H; i++) {
                const double xi = x[(size_t)t * H + i];
                const float *row = gu + ((size_t)e * H + i) * 2 * F;
                for (int j = 0; j < F; j++) {
                    g[j] += xi * row[2 * j];
                    u[j] += xi * row[2 * j + 1];
                }
            }
            for (int i = 0; i < H; i++)
                y[i] = dnb[(size_t)e * H + i];
            for (int j = 0; j < F; j++) {
                const double act = swiglu(g[j], u[j], alpha, limit);
                const float *row = dn + ((size_t)e * F + j) * H;
                for (int i = 0; i < H; i++)
                    y[i] += act * row[i];
            }
            for (int i = 0; i < H; i++)
                out[(size_t)t * H + i] += w[s] / sum * y[i];
        }
    }
    free(g), free(u), free(y), free(xn), free(logits);
}

static void check_case(const moe_case *c)
{
    const int T = c->tokens, H = c->hidden, F = c->ff, E = c->experts;
    const fl_cuda_moe_shape shape = { .hidden = H, .ff = F, .num_experts = E, .top_k = c->top_k,
                                      .swiglu_alpha = 1.702f, .swiglu_limit = 7.f };
    uint16_t *gu_b, *dn_b;
    float *residual = random_f32(1, (size_t)T * H, 1.f), *norm = random_f32(8, H, 0.5f);
    for (int i = 0; i < H; i++)
        norm[i] += 1.f;
    /* the experts' input: the RMSNorm in float32 (as the runner's kernel), rounded to bf16 */
    float *x = malloc((size_t)T * H * sizeof(float));
    double *xn = malloc((size_t)H * sizeof(double));
    for (int t = 0; t < T; t++) {
        rmsnorm(xn, residual + (size_t)t * H, norm, H);
        for (int i = 0; i < H; i++)
            x[(size_t)t * H + i] = bf16_round((float)xn[i]);
    }
    uint16_t *x_b = malloc((size_t)T * H * sizeof(uint16_t));
    fl_convert_from_f32(x_b, FL_BF16, x, (size_t)T * H);
    float *gu = random_bf16(2, (size_t)E * H * 2 * F, sqrtf(3.f / H), &gu_b);
    float *dn = random_bf16(3, (size_t)E * F * H, sqrtf(3.f / F), &dn_b);
    /* router rows of norm ~3: logits of a few units, some near-ties */
    float *router = random_f32(4, (size_t)E * H, sqrtf(27.f / H)), *rbias = random_f32(5, E, 0.1f);
    float *gub = random_f32(6, (size_t)E * 2 * F, 0.5f), *dnb = random_f32(7, (size_t)E * H, 0.5f);
    rbias[0] += c->favour;
    rbias[1] += c->favour;
    double *ref = malloc((size_t)T * H * sizeof(double));
    reference(c, residual, norm, x, router, rbias, gu, gub, dn, dnb, ref, shape.swiglu_alpha, shape.swiglu_limit);

    const size_t ws_bytes = fl_cuda_moe_workspace_bytes(&shape, T);
    void *ws;
    assert_int_equal(cudaMalloc(&ws, ws_bytes), cudaSuccess);
    assert_int_equal(cudaMemset(ws, 0, ws_bytes), cudaSuccess);
    fl_cuda_moe_args a = {
        .num_tokens = T, .norm_weight = to_device(norm, (size_t)H * 4), .eps = EPS,
        .x = to_device(x_b, (size_t)T * H * 2), .router = to_device(router, (size_t)E * H * 4),
        .router_bias = to_device(rbias, (size_t)E * 4),
        .gate_up = to_device(gu_b, (size_t)E * H * 2 * F * 2), .gate_up_bias = to_device(gub, (size_t)E * 2 * F * 4),
        .down = to_device(dn_b, (size_t)E * F * H * 2), .down_bias = to_device(dnb, (size_t)E * H * 4),
        .workspace = ws, .max_tokens = T,
    };
    float *out[2];
    for (int run = 0; run < 2; run++) {
        a.residual = to_device(residual, (size_t)T * H * 4);
        a.residual_in = a.residual;
        assert_int_equal(fl_cuda_moe(&shape, &a, NULL), 0);
        assert_int_equal(cudaDeviceSynchronize(), cudaSuccess);
        out[run] = malloc((size_t)T * H * 4);
        assert_int_equal(cudaMemcpy(out[run], a.residual, (size_t)T * H * 4, cudaMemcpyDeviceToHost), cudaSuccess);
        cudaFree(a.residual);
    }
    double max_err = 0, mag = 0;
    for (size_t i = 0; i < (size_t)T * H; i++) {
        assert_false(isnan(out[0][i]));
        mag = fmax(mag, fabs(ref[i]));
        max_err = fmax(max_err, fabs(out[0][i] - ref[i]));
    }
    printf("  %-22s T %4d H %4d ff %4d E %2d k %d: max err %.2e of max |out| %.2f (%.2e)\n", c->name, T, H, F, E,
           c->top_k, max_err, mag, max_err / mag);
    assert_true(max_err < 1e-2 * mag);
    assert_memory_equal(out[0], out[1], (size_t)T * H * 4);
    const void *dev[] = { a.norm_weight, a.x, a.router, a.router_bias, a.gate_up, a.gate_up_bias, a.down, a.down_bias, ws };
    for (size_t i = 0; i < sizeof dev / sizeof dev[0]; i++)
        cudaFree((void *)dev[i]);
    free(x), free(xn), free(norm), free(gu), free(dn), free(router), free(rbias), free(gub), free(dnb);
    free(residual), free(ref);
    free(x_b), free(gu_b), free(dn_b), free(out[0]), free(out[1]);
}

static void test_moe(void **state)
{
    (void)state;
    assert_int_equal(fl_cuda_moe_init(), 0);
    static const moe_case cases[] = {
        { "tiny fixture, 1 token", 1, 64, 64, 8, 3, 0.f },
        { "tiny fixture", 37, 64, 64, 8, 3, 0.f },
        { "ragged tiles", 300, 200, 136, 8, 2, 0.f },
        { "two experts take all", 300, 200, 136, 8, 2, 20.f },
        { "gpt-oss-20b", 5, 2880, 2880, 32, 4, 0.f },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        check_case(&cases[i]);
}

int main(void)
{
    const struct CMUnitTest tests[] = { cmocka_unit_test(test_moe) };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
