/* test_gpt_oss.c - GptOssForCausalLM on the CPU, against references
 * written here from the definitions:
 *   - MXFP4 values (every nibble at every scale) against E2M1 decoded from
 *     its bits times 2^(scale - 127), and the dequantized layout of an
 *     expert stack against the format (low nibble first, row r of the
 *     blocks is output feature r);
 *   - YaRN's frequencies against the correction range found by bisection
 *     on the number of turns a pair makes (not by the closed form
 *     model/rope.c uses), and its cos/sin factor;
 *   - attention over a sliding window with sinks against a naive double
 *     softmax with the sink in the denominator;
 *   - the whole forward pass of a tiny model (dummy weights, a small
 *     swiglu_limit so the clamps bite, large sinks) against a naive double
 *     implementation that reads the experts in HF's layout, interleaved
 *     gate/up columns and all; and a sequence's logits alone and in a batch
 *     bit for bit;
 *   - an MXFP4 checkpoint and its bf16 form, written here, loading to the
 *     same tensors and logits; damaged MXFP4 tensors and bad config fields,
 *     each one message naming what is wrong. */
#include "test_util.h"

#include "golden.h"

#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <sys/stat.h>

#include "attention/attn_cpu.h"
#include "attention/backend.h"
#include "base/dtype.h"
#include "cpu/cpu_model.h"
#include "model/model.h"
#include "model/mxfp4.h"
#include "model/rope.h"

/* ---- MXFP4 ---- */

/* E2M1 from its bits: sign, two exponent bits, one mantissa bit; exponent
 * 0 is subnormal (0 or 0.5), else 2^(e - 1) * (1 + m / 2). */
static double e2m1(unsigned nibble)
{
    const unsigned e = (nibble >> 1) & 3, m = nibble & 1;
    const double mag = e == 0 ? 0.5 * m : ldexp(1.0 + 0.5 * m, (int)e - 1);
    return nibble & 8 ? -mag : mag;
}

/* bfloat16 bits as a double, decoded from the fields (no float arithmetic,
 * so no flush of subnormals can hide an error). */
static double bf16_value(uint16_t bits)
{
    const int exponent = (bits >> 7) & 0xFF, mantissa = bits & 0x7F;
    const double mag = exponent == 0 ? ldexp(mantissa, -133) : ldexp(128 + mantissa, exponent - 134);
    return bits & 0x8000 ? -mag : mag;
}

static void test_mxfp4_values(void **state)
{
    (void)state;
    const double bf16_max = ldexp(255.0, 120); /* (2 - 2^-7) * 2^127 */
    for (unsigned scale = 0; scale < 256; scale++)
        for (unsigned nibble = 0; nibble < 16; nibble++) {
            const double want = ldexp(e2m1(nibble), (int)scale - 127);
            uint16_t bits = 0x1234;
            const int rc = fl_mxfp4_to_bf16(nibble, scale, &bits);
            if (scale == 255 || fabs(want) > bf16_max) {
                if (rc != -1) {
                    print_error("nibble %u scale %u: expected NaN or overflow, got %04x\n", nibble, scale, bits);
                    fail();
                }
                continue;
            }
            assert_int_equal(rc, 0);
            if (bf16_value(bits) != want || (want == 0 && (bits & 0x8000) != (nibble & 8 ? 0x8000 : 0))) {
                print_error("nibble %u scale %u: %04x is %g, expected %g\n", nibble, scale, bits, bf16_value(bits),
                            want);
                fail();
            }
        }
    /* the corners by their bits: the smallest subnormal, -0, the largest */
    uint16_t bits;
    assert_int_equal(fl_mxfp4_to_bf16(1, 0, &bits), 0);   /* 0.5 * 2^-127 = 2^-128 */
    assert_int_equal(bits, 0x0020);
    assert_int_equal(fl_mxfp4_to_bf16(11, 0, &bits), 0);  /* -1.5 * 2^-127 */
    assert_int_equal(bits, 0x8060);
    assert_int_equal(fl_mxfp4_to_bf16(8, 200, &bits), 0); /* -0 */
    assert_int_equal(bits, 0x8000);
    assert_int_equal(fl_mxfp4_to_bf16(3, 254, &bits), 0); /* 1.5 * 2^127 */
    assert_int_equal(bits, 0x7F40);
    assert_int_equal(fl_mxfp4_to_bf16(4, 254, &bits), -1); /* 2 * 2^127 overflows */
    assert_int_equal(fl_mxfp4_to_bf16(7, 127, &bits), 0); /* 6 */
    assert_int_equal(bits, 0x40C0);
}

/* The value the format puts at input feature c of output feature r of
 * expert e: nibble c % 32 of block c / 32 of row (e, r), low nibble of a
 * byte first, times the row's scale for that block. */
static double mxfp4_at(const uint8_t *blocks, const uint8_t *scales, int64_t rows, int64_t cols, int64_t e, int64_t r,
                       int64_t c)
{
    const int64_t groups = cols / 32, row = e * rows + r;
    const uint8_t byte = blocks[(row * groups + c / 32) * 16 + (c % 32) / 2];
    return ldexp(e2m1(c % 2 ? byte >> 4 : byte & 15), (int)scales[row * groups + c / 32] - 127);
}

static uint64_t lcg(uint64_t *s)
{
    *s = *s * 6364136223846793005ull + 1442695040888963407ull;
    return *s >> 33;
}

static void test_mxfp4_layout(void **state)
{
    (void)state;
    enum { E = 2, ROWS = 3, COLS = 64 };
    uint8_t blocks[E * ROWS * COLS / 2], scales[E * ROWS * COLS / 32];
    uint64_t seed = 7;
    for (size_t i = 0; i < sizeof blocks; i++)
        blocks[i] = (uint8_t)lcg(&seed);
    for (size_t i = 0; i < sizeof scales; i++)
        scales[i] = (uint8_t)(100 + lcg(&seed) % 60);
    uint16_t out[E * COLS * ROWS];
    int64_t bad = -1;
    assert_int_equal(fl_mxfp4_dequantize(blocks, scales, E, ROWS, COLS, out, &bad), 0);
    for (int e = 0; e < E; e++)
        for (int c = 0; c < COLS; c++)
            for (int r = 0; r < ROWS; r++) /* out is (E, cols, rows): x @ W */
                assert_true(bf16_value(out[(e * COLS + c) * ROWS + r]) == mxfp4_at(blocks, scales, ROWS, COLS, e, r, c));
    /* an overflowing value is reported at its nibble */
    scales[4] = 254; /* expert 0, row 2, block 0 */
    blocks[4 * 16 + 5] = 0x50; /* its nibble 11 (high of byte 5) is 3.0 */
    blocks[4 * 16 + 6] = 0x00;
    for (int b = 0; b < 5; b++)
        blocks[4 * 16 + b] = 0x33; /* 1.5: fits */
    assert_int_equal(fl_mxfp4_dequantize(blocks, scales, E, ROWS, COLS, out, &bad), -1);
    assert_int_equal(bad, (0 * ROWS + 2) * COLS + 11);
}

/* ---- YaRN ---- */

/* The pair index x (real) at which a pair turns `turns` times over the
 * original context L: the root of L / (2 pi theta^(2x/d)) = turns, by
 * bisection (the turns fall as x grows). */
static double turns_index(double theta, int d, double L, double turns)
{
    double lo = -1e3, hi = 1e3;
    for (int i = 0; i < 200; i++) {
        const double mid = 0.5 * (lo + hi);
        if (L / (2 * M_PI * pow(theta, 2 * mid / d)) > turns)
            lo = mid;
        else
            hi = mid;
    }
    return 0.5 * (lo + hi);
}

/* YaRN's frequencies as HF's documentation states them: below the index
 * where pairs turn beta_fast times, the original frequency; above the one
 * where they turn beta_slow times, the frequency over factor; a linear
 * ramp in the index between (ends rounded outwards when truncating, then
 * kept in [0, d - 1]). */
static double yarn_ref(double theta, int d, double factor, double L, double fast, double slow, int truncate, int i)
{
    double lo = turns_index(theta, d, L, fast), hi = turns_index(theta, d, L, slow);
    if (truncate) {
        lo = floor(lo);
        hi = ceil(hi);
    }
    lo = lo < 0 ? 0 : lo;
    hi = hi > d - 1 ? d - 1 : hi;
    const double f = pow(theta, -2.0 * i / d);
    double t = (i - lo) / (hi - lo);
    t = t < 0 ? 0 : t > 1 ? 1 : t;
    return (1 - t) * f + t * f / factor;
}

static void parse(fl_model_config *cfg, const char *json)
{
    fl_error err = { "" };
    const int rc = fl_model_config_parse(cfg, json, "config.json", &err);
    if (rc != 0)
        print_error("%s\n", err.msg);
    assert_int_equal(rc, 0);
}

static void test_yarn(void **state)
{
    (void)state;
    static const struct {
        double theta, factor, orig, fast, slow;
        int head_dim, truncate;
    } cases[] = {
        { 150000, 32, 4096, 32, 1, 64, 0 }, /* gpt-oss-20b */
        { 150000, 32, 4096, 32, 1, 64, 1 },
        { 10000, 4, 2048, 16, 2, 128, 1 },
        { 1000000, 8, 512, 32, 1, 16, 0 },
    };
    static fl_model_config cfg;
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        char json[1024];
        snprintf(json, sizeof json,
                 "{\"architectures\": [\"LlamaForCausalLM\"], \"vocab_size\": 8, \"hidden_size\": %d,"
                 " \"intermediate_size\": 8, \"num_hidden_layers\": 1, \"num_attention_heads\": 1,"
                 " \"rope_theta\": %g, \"rope_scaling\": {\"rope_type\": \"yarn\", \"factor\": %g,"
                 " \"original_max_position_embeddings\": %g, \"beta_fast\": %g, \"beta_slow\": %g,"
                 " \"truncate\": %s}}",
                 cases[k].head_dim, cases[k].theta, cases[k].factor, cases[k].orig, cases[k].fast, cases[k].slow,
                 cases[k].truncate ? "true" : "false");
        parse(&cfg, json);
        fl_rope rope;
        fl_rope_init(&rope, &cfg);
        assert_int_equal(rope.pairs, cases[k].head_dim / 2);
        for (int i = 0; i < rope.pairs; i++) {
            const double want = yarn_ref(cases[k].theta, cases[k].head_dim, cases[k].factor, cases[k].orig,
                                         cases[k].fast, cases[k].slow, cases[k].truncate, i);
            if (fabs(rope.inv_freq[i] - want) > 1e-12 * want) {
                print_error("case %zu pair %d: %.17g, expected %.17g\n", k, i, rope.inv_freq[i], want);
                fail();
            }
        }
        /* the ends of the range: the fastest pair kept, the slowest divided */
        assert_true(fabs(rope.inv_freq[0] - 1.0) < 1e-15);
        const double slowest = pow(cases[k].theta, -2.0 * (rope.pairs - 1) / cases[k].head_dim) / cases[k].factor;
        assert_true(fabs(rope.inv_freq[rope.pairs - 1] - slowest) < 1e-12 * slowest);
        /* cos and sin times 0.1 ln(factor) + 1 */
        const double mscale = 0.1 * log(cases[k].factor) + 1;
        assert_true(fabs(rope.scale - mscale) < 1e-15);
        float c[FL_ROPE_MAX_PAIRS], s[FL_ROPE_MAX_PAIRS];
        fl_rope_at(&rope, 1000, c, s);
        for (int i = 0; i < rope.pairs; i++) {
            assert_true(fabs(c[i] - cos(1000 * rope.inv_freq[i]) * mscale) < 1e-6);
            assert_true(fabs(s[i] - sin(1000 * rope.inv_freq[i]) * mscale) < 1e-6);
        }
    }
    /* an explicit attention_factor is taken as it is */
    parse(&cfg, "{\"architectures\": [\"LlamaForCausalLM\"], \"vocab_size\": 8, \"hidden_size\": 8,"
                " \"intermediate_size\": 8, \"num_hidden_layers\": 1, \"num_attention_heads\": 1,"
                " \"rope_parameters\": {\"rope_type\": \"yarn\", \"rope_theta\": 10000, \"factor\": 4,"
                " \"original_max_position_embeddings\": 64, \"attention_factor\": 0.75}}");
    fl_rope rope;
    fl_rope_init(&rope, &cfg);
    assert_true(rope.scale == 0.75);
    assert_int_equal(cfg.rope_truncate, 1); /* transformers' default */
}

/* ---- attention over a window, with sinks ---- */

static float frand(uint64_t *seed)
{
    return (float)lcg(seed) / (float)(1u << 31) * 2.0f - 1.0f;
}

static void test_attention_window_sinks(void **state)
{
    (void)state;
    enum { H = 4, HKV = 2, D = 8, BS = 16, S = 2, MAXB = 4, NB = 8 };
    static const int lens[S] = { 50, 21 }, chunk[S] = { 13, 21 }; /* seq 0: its last 13 tokens */
    int32_t tables[S * MAXB];
    for (int i = 0; i < S * MAXB; i++)
        tables[i] = NB - 1 - i; /* scattered, descending */
    uint64_t seed = 3;
    static float k_cache[NB * BS * HKV * D], v_cache[NB * BS * HKV * D];
    for (int i = 0; i < NB * BS * HKV * D; i++) {
        k_cache[i] = frand(&seed);
        v_cache[i] = frand(&seed);
    }
    int32_t positions[34], slots[34], query_start[S + 1] = { 0, 13, 34 }, seq_lens[S] = { 50, 21 };
    for (int s = 0, t = 0; s < S; s++)
        for (int p = lens[s] - chunk[s]; p < lens[s]; p++, t++) {
            positions[t] = p;
            slots[t] = tables[s * MAXB + p / BS] * BS + p % BS;
        }
    const fl_batch b = { .num_tokens = 34, .positions = positions, .num_kv_groups = 1, .slots = slots, .num_seqs = S,
                         .query_start = query_start, .seq_lens = seq_lens, .max_blocks_per_seq = MAXB,
                         .block_tables = tables };
    static float q[34 * H * D], out[34 * H * D];
    for (int i = 0; i < 34 * H * D; i++)
        q[i] = 2.0f * frand(&seed);
    const float sink_values[H] = { -1.0f, 0.5f, 3.0f, 8.0f };
    static const int windows[] = { 0, 1, 5, 16, 64 };
    float *scratch = malloc((size_t)omp_get_max_threads() * 64 * sizeof(float));
    for (size_t wi = 0; wi < sizeof windows / sizeof windows[0]; wi++)
        for (int with_sinks = 0; with_sinks < 2; with_sinks++) {
            const fl_attn_cpu_args a = {
                .batch = &b, .q = q, .q_stride = H * D, .k_cache = k_cache, .v_cache = v_cache, .block_size = BS,
                .num_heads = H, .num_kv_heads = HKV, .head_dim = D, .scale = 0.35f, .window = windows[wi],
                .sinks = with_sinks ? sink_values : NULL, .out = out, .scratch = scratch, .scratch_per_thread = 64,
            };
            tu_attention("cpu")->cpu->run(&a);
            for (int s = 0, t = 0; s < S; s++)
                for (int i = 0; i < chunk[s]; i++, t++)
                    for (int h = 0; h < H; h++) {
                        const int p = positions[t], kvh = h / (H / HKV);
                        const int first = windows[wi] > 0 && p - windows[wi] + 1 > 0 ? p - windows[wi] + 1 : 0;
                        double logit[64], denom = with_sinks ? exp(sink_values[h]) : 0.0, ref[D] = { 0 };
                        for (int j = first; j <= p; j++) {
                            const float *k = k_cache + ((size_t)(tables[s * MAXB + j / BS] * BS + j % BS) * HKV + kvh) * D;
                            double dot = 0;
                            for (int d = 0; d < D; d++)
                                dot += (double)q[(t * H + h) * D + d] * k[d];
                            logit[j] = dot * 0.35f;
                            denom += exp(logit[j]);
                        }
                        for (int j = first; j <= p; j++) {
                            const float *v = v_cache + ((size_t)(tables[s * MAXB + j / BS] * BS + j % BS) * HKV + kvh) * D;
                            for (int d = 0; d < D; d++)
                                ref[d] += exp(logit[j]) / denom * v[d];
                        }
                        for (int d = 0; d < D; d++)
                            if (fabs(out[(t * H + h) * D + d] - ref[d]) > 2e-6) {
                                print_error("window %d sinks %d token %d head %d: %g, expected %g\n", windows[wi],
                                            with_sinks, t, h, out[(t * H + h) * D + d], ref[d]);
                                fail();
                            }
                    }
        }
    free(scratch);
}

/* ---- a tiny model, configs ---- */

/* A tiny GptOss config: 3 layers (sliding, full, sliding, window 4), 5
 * experts of which 2 per token, a swiglu_limit the activations pass,
 * gpt-oss's YaRN over an original context of 256; fields of overrides
 * (a JSON object) replace or add to it, and remove (if set) is deleted. */
static char *tiny_config(const char *overrides, const char *remove)
{
    json_error_t jerr;
    json_t *cfg = json_loads(
        "{\"architectures\": [\"GptOssForCausalLM\"], \"vocab_size\": 40, \"hidden_size\": 32,"
        " \"intermediate_size\": 32, \"num_hidden_layers\": 3, \"num_attention_heads\": 4,"
        " \"num_key_value_heads\": 2, \"head_dim\": 16, \"max_position_embeddings\": 8192,"
        " \"rms_norm_eps\": 1e-05, \"hidden_act\": \"silu\", \"attention_bias\": true,"
        " \"layer_types\": [\"sliding_attention\", \"full_attention\", \"sliding_attention\"],"
        " \"sliding_window\": 4, \"num_local_experts\": 5, \"num_experts_per_tok\": 2, \"swiglu_limit\": 0.6,"
        " \"rope_theta\": 150000, \"rope_scaling\": {\"rope_type\": \"yarn\", \"factor\": 32.0, \"beta_fast\": 32.0,"
        " \"beta_slow\": 1.0, \"original_max_position_embeddings\": 256, \"truncate\": false},"
        " \"tie_word_embeddings\": false, \"torch_dtype\": \"bfloat16\", \"eos_token_id\": 2}",
        0, &jerr);
    assert_non_null(cfg);
    if (overrides) {
        json_t *o = json_loads(overrides, 0, &jerr);
        assert_non_null(o);
        json_object_update(cfg, o);
        json_decref(o);
    }
    if (remove)
        json_object_del(cfg, remove);
    char *text = json_dumps(cfg, 0);
    json_decref(cfg);
    return text;
}

static void expect_config_error(const char *overrides, const char *remove, const char *needle)
{
    char *text = tiny_config(overrides, remove);
    static fl_model_config cfg;
    fl_error err = { "" };
    assert_int_equal(fl_model_config_parse(&cfg, text, "config.json", &err), -1);
    assert_msg_contains(err.msg, "config.json: ");
    assert_msg_contains(err.msg, needle);
    free(text);
}

static void test_config(void **state)
{
    (void)state;
    static fl_model_config cfg;
    char *text = tiny_config(NULL, NULL);
    parse(&cfg, text);
    free(text);
    assert_int_equal(cfg.layers[0].window, 4);
    assert_int_equal(cfg.layers[1].window, 0);
    assert_int_equal(cfg.layers[2].window, 4);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(cfg.layers[i].sinks, 1);
        assert_int_equal(cfg.layers[i].qkv_bias, 1);
        assert_int_equal(cfg.layers[i].o_bias, 1);
        assert_int_equal(cfg.layers[i].ffn, FL_FFN_MOE);
    }
    assert_int_equal(cfg.num_experts, 5);
    assert_int_equal(cfg.experts_per_token, 2);
    assert_true(cfg.swiglu_limit == 0.6f && cfg.swiglu_alpha == 1.702f);
    assert_int_equal(cfg.rope_type, FL_ROPE_YARN);
    assert_int_equal(cfg.experts_mxfp4, 0);
    const fl_attn_needs needs = fl_attn_needs_of(&cfg, FL_DEVICE_CPU, 0, 16, FL_F32);
    assert_int_equal(needs.features, FL_ATTN_CAUSAL | FL_ATTN_SLIDING_WINDOW | FL_ATTN_SINKS);

    /* no layer_types: GptOssConfig's default, sliding on even layers */
    text = tiny_config("{\"num_hidden_layers\": 4}", "layer_types");
    parse(&cfg, text);
    free(text);
    for (int i = 0; i < 4; i++)
        assert_int_equal(cfg.layers[i].window, i % 2 ? 0 : 4);
    /* full layers only need no window size; no attention_bias is true */
    text = tiny_config("{\"layer_types\": [\"full_attention\", \"full_attention\", \"full_attention\"],"
                       " \"sliding_window\": null}", "attention_bias");
    parse(&cfg, text);
    free(text);
    assert_int_equal(cfg.layers[0].window, 0);
    assert_int_equal(cfg.layers[0].qkv_bias, 1);
    /* mxfp4, with gpt-oss-20b's list of what stays unquantized */
    text = tiny_config("{\"quantization_config\": {\"quant_method\": \"mxfp4\", \"modules_to_not_convert\":"
                       " [\"model.layers.*.self_attn\", \"model.layers.*.mlp.router\", \"model.embed_tokens\","
                       " \"lm_head\"], \"dequantize\": false}}", NULL);
    parse(&cfg, text);
    free(text);
    assert_int_equal(cfg.experts_mxfp4, 1);
    /* the built-in gpt-oss-20b */
    parse(&cfg, fl_builtin_config_json("openai/gpt-oss-20b"));
    assert_int_equal(cfg.num_layers, 24);
    assert_int_equal(cfg.experts_mxfp4, 1);
    assert_int_equal(cfg.layers[22].window, 128);
    assert_int_equal(cfg.layers[23].window, 0);

    expect_config_error("{\"layer_types\": [\"sliding_attention\", \"linear_attention\", \"full_attention\"]}", NULL,
                        "field 'layer_types'[1] is not \"sliding_attention\" or \"full_attention\"");
    expect_config_error("{\"layer_types\": [\"full_attention\"]}", NULL,
                        "field 'layer_types' must be a list of num_hidden_layers = 3 entries");
    expect_config_error(NULL, "sliding_window",
                        "missing field 'sliding_window' (layer_types has sliding_attention layers)");
    expect_config_error("{\"sliding_window\": null}", NULL, "missing field 'sliding_window'");
    expect_config_error("{\"sliding_window\": 0}", NULL, "field 'sliding_window' = 0 is out of range");
    expect_config_error("{\"quantization_config\": {\"quant_method\": \"fp8\"}}", NULL,
                        "quantization_config.quant_method 'fp8' is not supported (supported: mxfp4)");
    expect_config_error("{\"quantization_config\": {\"modules_to_not_convert\": []}}", NULL,
                        "missing field 'quantization_config.quant_method'");
    expect_config_error("{\"quantization_config\": {\"quant_method\": \"mxfp4\", \"group_size\": 32}}", NULL,
                        "field 'quantization_config.group_size' is not supported");
    expect_config_error("{\"quantization_config\": {\"quant_method\": \"mxfp4\", \"modules_to_not_convert\":"
                        " [\"lm_head\", \"model.layers.*.mlp\"]}}", NULL,
                        "modules_to_not_convert[1] = 'model.layers.*.mlp' leaves model.layers.0.mlp.experts "
                        "unquantized");
    expect_config_error("{\"quantization_config\": {\"quant_method\": \"mxfp4\", \"modules_to_not_convert\":"
                        " [\"experts\"]}}", NULL, "leaves model.layers.0.mlp.experts unquantized");
    expect_config_error("{\"quantization_config\": {\"quant_method\": \"mxfp4\", \"modules_to_not_convert\":"
                        " [\"model.layers.2.mlp.experts\"]}}", NULL, "leaves model.layers.2.mlp.experts");
    expect_config_error("{\"quantization_config\": {\"quant_method\": \"mxfp4\", \"modules_to_not_convert\":"
                        " [\"model.layers.(0|1).self_attn\"]}}", NULL,
                        "modules_to_not_convert[0] is not a module name pattern flashlm reads");
    expect_config_error("{\"quantization_config\": {\"quant_method\": \"mxfp4\"}, \"hidden_size\": 48}", NULL,
                        "an mxfp4 checkpoint needs hidden_size (48) and intermediate_size (32) to be multiples of 32");
    expect_config_error("{\"quantization_config\": \"mxfp4\"}", NULL,
                        "field 'quantization_config' must be an object or null");
    expect_config_error("{\"num_experts_per_tok\": 6}", NULL, "field 'num_experts_per_tok' = 6 is out of range [1, 5]");
    expect_config_error(NULL, "num_local_experts", "missing field 'num_local_experts'");
    expect_config_error("{\"experts_per_token\": 3}", NULL,
                        "field 'experts_per_token' = 3 disagrees with num_experts_per_tok = 2");
    expect_config_error("{\"swiglu_limit\": -1}", NULL, "field 'swiglu_limit' = -1 is out of range");
    expect_config_error("{\"hidden_act\": \"gelu\"}", NULL, "field 'hidden_act' must be \"silu\"");
    expect_config_error(NULL, "rope_scaling", "field 'rope_scaling' (or 'rope_parameters') is missing");
    expect_config_error(NULL, "rope_theta", "field 'rope_theta' is missing");
}

/* ---- the forward pass against a naive one ---- */

static double at(const fl_tensor *t, int64_t i)
{
    float f;
    fl_convert_to_f32(&f, (const char *)t->data + (size_t)i * fl_dtype_size(t->dtype), t->dtype, 1);
    return f;
}

static void rmsnorm_ref(double *out, const double *x, const fl_tensor *w, int n, double eps)
{
    double ss = 0;
    for (int i = 0; i < n; i++)
        ss += x[i] * x[i];
    const double r = 1.0 / sqrt(ss / n + eps);
    for (int i = 0; i < n; i++)
        out[i] = x[i] * r * at(w, i);
}

/* y[o] = sum_i W[o][i] x[i] + b[o], W (out, in) as checkpoints store linears */
static void linear_ref(double *y, const double *x, const fl_tensor *w, const fl_tensor *b, int in, int out)
{
    for (int o = 0; o < out; o++) {
        double s = b ? at(b, o) : 0.0;
        for (int i = 0; i < in; i++)
            s += at(w, (int64_t)o * in + i) * x[i];
        y[o] = s;
    }
}

/* The model on one sequence from position 0, in double: logits (len, vocab). */
static void forward_ref(const fl_model_config *c, const fl_weights *w, const int32_t *ids, int len, double *logits)
{
    const int h = c->hidden_size, H = c->num_heads, HKV = c->num_kv_heads, D = c->head_dim, ff = c->intermediate_size;
    const int E = c->num_experts, K = c->experts_per_token, half = D / 2;
    double *x = calloc((size_t)len * h, sizeof(double)), *xn = malloc((size_t)h * sizeof(double));
    double *q = malloc((size_t)len * H * D * sizeof(double)), *k = malloc((size_t)len * HKV * D * sizeof(double));
    double *v = malloc((size_t)len * HKV * D * sizeof(double)), *att = malloc((size_t)H * D * sizeof(double));
    double *o = malloc((size_t)h * sizeof(double)), *gu = malloc((size_t)2 * ff * sizeof(double));
    double *xns = malloc((size_t)len * h * sizeof(double)), *p = malloc((size_t)len * sizeof(double));
    const double scale = 0.1 * log(c->rope_factor) + 1;
    for (int t = 0; t < len; t++)
        for (int i = 0; i < h; i++)
            x[t * h + i] = at(&w->model[FL_EMBED], (int64_t)ids[t] * h + i);
    for (int l = 0; l < c->num_layers; l++) {
        const fl_tensor *T = w->layers[l].t;
        for (int t = 0; t < len; t++) {
            rmsnorm_ref(xn, x + t * h, &T[FL_ATTN_NORM], h, c->rms_norm_eps);
            linear_ref(q + t * H * D, xn, &T[FL_WQ], &T[FL_BQ], h, H * D);
            linear_ref(k + t * HKV * D, xn, &T[FL_WK], &T[FL_BK], h, HKV * D);
            linear_ref(v + t * HKV * D, xn, &T[FL_WV], &T[FL_BV], h, HKV * D);
            for (int hh = 0; hh < H + HKV; hh++) { /* rotate_half pairs (i, i + D/2) */
                double *r = hh < H ? q + (t * H + hh) * D : k + (t * HKV + hh - H) * D;
                for (int i = 0; i < half; i++) {
                    const double f = yarn_ref(c->rope_theta, D, c->rope_factor, c->rope_original_max_position,
                                              c->rope_beta_fast, c->rope_beta_slow, c->rope_truncate, i);
                    const double cs = cos(t * f) * scale, sn = sin(t * f) * scale, a = r[i], b = r[i + half];
                    r[i] = a * cs - b * sn;
                    r[i + half] = b * cs + a * sn;
                }
            }
        }
        const int window = c->layers[l].window;
        for (int t = 0; t < len; t++) {
            for (int hh = 0; hh < H; hh++) {
                const int kvh = hh / (H / HKV), first = window > 0 && t - window + 1 > 0 ? t - window + 1 : 0;
                double denom = exp(at(&T[FL_SINKS], hh));
                for (int j = first; j <= t; j++) {
                    double dot = 0;
                    for (int d = 0; d < D; d++)
                        dot += q[(t * H + hh) * D + d] * k[(j * HKV + kvh) * D + d];
                    denom += p[j] = exp(dot / sqrt((double)D));
                }
                for (int d = 0; d < D; d++) {
                    double s = 0;
                    for (int j = first; j <= t; j++)
                        s += p[j] / denom * v[(j * HKV + kvh) * D + d];
                    att[hh * D + d] = s;
                }
            }
            linear_ref(o, att, &T[FL_WO], &T[FL_BO], H * D, h);
            for (int i = 0; i < h; i++)
                x[t * h + i] += o[i];
        }
        for (int t = 0; t < len; t++)
            rmsnorm_ref(xns + t * h, x + t * h, &T[FL_MLP_NORM], h, c->rms_norm_eps);
        for (int t = 0; t < len; t++) {
            const double *in = xns + t * h;
            double router[64], weight[8], sum = 0;
            int chosen[8];
            linear_ref(router, in, &T[FL_ROUTER], &T[FL_ROUTER_BIAS], h, E);
            for (int s = 0; s < K; s++) {
                chosen[s] = -1;
                for (int e = 0; e < E; e++) {
                    int taken = 0;
                    for (int r = 0; r < s; r++)
                        taken |= chosen[r] == e;
                    if (!taken && (chosen[s] < 0 || router[e] > router[chosen[s]]))
                        chosen[s] = e;
                }
                sum += weight[s] = exp(router[chosen[s]]);
            }
            for (int s = 0; s < K; s++) {
                const int e = chosen[s];
                /* HF's layout: gate_up (E, hidden, 2ff), x @ W; gate the even
                 * columns, up the odd; down (E, ff, hidden) */
                for (int col = 0; col < 2 * ff; col++) {
                    double acc = at(&T[FL_EXPERTS_GATE_UP_BIAS], (int64_t)e * 2 * ff + col);
                    for (int i = 0; i < h; i++)
                        acc += in[i] * at(&T[FL_EXPERTS_GATE_UP], ((int64_t)e * h + i) * 2 * ff + col);
                    gu[col] = acc;
                }
                for (int j = 0; j < ff; j++) {
                    const double lim = c->swiglu_limit;
                    const double g = fmin(gu[2 * j], lim), u = fmax(fmin(gu[2 * j + 1], lim), -lim);
                    gu[j] = g / (1 + exp(-(double)c->swiglu_alpha * g)) * (u + 1); /* j < 2j: read before written */
                }
                for (int i = 0; i < h; i++) {
                    double acc = at(&T[FL_EXPERTS_DOWN_BIAS], (int64_t)e * h + i);
                    for (int j = 0; j < ff; j++)
                        acc += gu[j] * at(&T[FL_EXPERTS_DOWN], ((int64_t)e * ff + j) * h + i);
                    x[t * h + i] += weight[s] / sum * acc;
                }
            }
        }
    }
    for (int t = 0; t < len; t++) {
        rmsnorm_ref(xn, x + t * h, &w->model[FL_FINAL_NORM], h, c->rms_norm_eps);
        linear_ref(logits + (size_t)t * c->vocab_size, xn, &w->model[FL_LM_HEAD], NULL, h, c->vocab_size);
    }
    free(x), free(xn), free(q), free(k), free(v), free(att), free(o), free(gu), free(xns), free(p);
}

/* All tokens of seqs (from position 0) in one step, blocks of 16
 * scattered; logits at every position. */
static void forward_batch(fl_cpu_model *m, int num_seqs, const int32_t *const *ids, const int *lens, float *logits)
{
    fl_kv_groups groups;
    fl_kv_groups_init(&groups, &m->cfg);
    tu_prefill step;
    tu_prefill_init(&step, &groups, 16, num_seqs, ids, lens);
    fl_cpu_kv_cache kv;
    fl_cpu_kv_cache_init(&kv, &m->cfg, step.num_blocks, 16);
    fl_cpu_model_forward(m, &kv, &step.batch, logits);
    fl_cpu_kv_cache_free(&kv);
    tu_prefill_free(&step);
}

/* Overwrites a bf16 tensor of dummy weights with uniform values in [-a, a]. */
static void redraw(const fl_tensor *t, float a, uint64_t *seed)
{
    for (int64_t i = 0; i < fl_tensor_numel(t); i++)
        ((uint16_t *)t->data)[i] = fl_f32_to_bf16(a * frand(seed));
}

static void test_forward(void **state)
{
    (void)state;
    char *text = tiny_config(NULL, NULL);
    fl_model model = { 0 };
    fl_error err = { "" };
    parse(&model.cfg, text);
    free(text);
    assert_int_equal(fl_weights_init_dummy(&model.weights, &model.cfg, 11, &err), 0);
    /* sinks that matter, router biases that sway the choice, expert biases
     * that push the activations through the clamps */
    uint64_t seed = 5;
    for (int l = 0; l < model.cfg.num_layers; l++) {
        redraw(&model.weights.layers[l].t[FL_SINKS], 3.0f, &seed);
        redraw(&model.weights.layers[l].t[FL_ROUTER_BIAS], 1.0f, &seed);
        redraw(&model.weights.layers[l].t[FL_EXPERTS_GATE_UP_BIAS], 1.0f, &seed);
        redraw(&model.weights.layers[l].t[FL_EXPERTS_DOWN_BIAS], 0.5f, &seed);
    }
    fl_cpu_model m;
    assert_int_equal(fl_cpu_model_init(&m, &model.cfg, &model.weights, tu_attention("cpu"), 64, 128, &err), 0);
    int32_t a[37], b[9];
    for (int i = 0; i < 37; i++)
        a[i] = (int32_t)(lcg(&seed) % 40);
    for (int i = 0; i < 9; i++)
        b[i] = (int32_t)(lcg(&seed) % 40);
    const int32_t *both[2] = { a, b };
    const int lens[2] = { 37, 9 }, V = model.cfg.vocab_size;
    float *batch = malloc((size_t)46 * V * sizeof(float)), *alone = malloc((size_t)37 * V * sizeof(float));
    forward_batch(&m, 2, both, lens, batch);
    double *ref = malloc((size_t)37 * V * sizeof(double));
    for (int s = 0; s < 2; s++) {
        forward_ref(&model.cfg, &model.weights, both[s], lens[s], ref);
        double max_err = 0, max_mag = 0;
        for (int i = 0; i < lens[s] * V; i++) {
            max_err = fmax(max_err, fabs(batch[(s ? 37 * V : 0) + i] - ref[i]));
            max_mag = fmax(max_mag, fabs(ref[i]));
        }
        if (max_err > 1e-5 * max_mag) {
            print_error("sequence %d: max abs error %g, max |logit| %g\n", s, max_err, max_mag);
            fail();
        }
    }
    /* batch invariance: the first sequence alone gives the same bits */
    forward_batch(&m, 1, both, lens, alone);
    assert_memory_equal(alone, batch, (size_t)37 * V * sizeof(float));
    free(batch), free(alone), free(ref);
    fl_cpu_model_free(&m);
    fl_weights_free(&model.weights);
}

/* ---- MXFP4 checkpoints ---- */

typedef struct ckpt {
    json_t *header;
    unsigned char *data;
    size_t len;
} ckpt;

static void ckpt_add(ckpt *c, const char *name, const char *dtype, int ndim, const int64_t *shape, const void *bytes,
                     size_t n)
{
    json_t *dims = json_array();
    for (int i = 0; i < ndim; i++)
        json_array_append_new(dims, json_integer(shape[i]));
    json_object_set_new(c->header, name, json_pack("{s:s, s:o, s:[I, I]}", "dtype", dtype, "shape", dims,
                                                   "data_offsets", (json_int_t)c->len, (json_int_t)(c->len + n)));
    c->data = realloc(c->data, c->len + n);
    memcpy(c->data + c->len, bytes, n);
    c->len += n;
}

typedef struct two_ckpts {
    ckpt bf16, mxfp4;
    int scales_f16;    /* damage: the scales as F16 */
    int blocks_short;  /* damage: blocks one row short */
    int no_scales;     /* damage: no scales */
    int scale_255;     /* damage: a NaN scale */
} two_ckpts;

/* Adds each tensor of the dummy weights to both checkpoints, but the
 * expert matrices: random MXFP4 blocks and scales in one, their values
 * (decoded here from the format) as bf16 (E, in, out) in the other. */
static int add_tensor(const char *name, const fl_tensor *t, void *vctx)
{
    two_ckpts *cs = vctx;
    const int expert_matrix = (strstr(name, "experts.gate_up_proj") || strstr(name, "experts.down_proj")) &&
                              !strstr(name, "_bias");
    if (!expert_matrix) {
        ckpt_add(&cs->bf16, name, "BF16", t->ndim, t->shape, t->data, t->nbytes);
        ckpt_add(&cs->mxfp4, name, "BF16", t->ndim, t->shape, t->data, t->nbytes);
        return 0;
    }
    const int64_t E = t->shape[0], in = t->shape[1], out = t->shape[2], groups = in / 32;
    uint8_t *blocks = malloc((size_t)(E * out * groups * 16)), *scales = malloc((size_t)(E * out * groups));
    uint16_t *values = malloc((size_t)(E * in * out) * 2);
    uint64_t seed = (uint64_t)strlen(name) * 977 + (uint64_t)name[13];
    for (int64_t i = 0; i < E * out * groups * 16; i++)
        blocks[i] = (uint8_t)lcg(&seed);
    for (int64_t i = 0; i < E * out * groups; i++)
        scales[i] = (uint8_t)(122 + lcg(&seed) % 6); /* values of about 0.03 to 6 */
    for (int64_t e = 0; e < E; e++)
        for (int64_t c = 0; c < in; c++)
            for (int64_t r = 0; r < out; r++)
                values[(e * in + c) * out + r] = fl_f32_to_bf16((float)mxfp4_at(blocks, scales, out, in, e, r, c));
    ckpt_add(&cs->bf16, name, "BF16", 3, t->shape, values, (size_t)(E * in * out) * 2);
    char part[200];
    const int64_t bshape[4] = { E, out - cs->blocks_short, groups, 16 }, sshape[3] = { E, out, groups };
    if (cs->scale_255)
        scales[0] = 255;
    snprintf(part, sizeof part, "%s_blocks", name);
    ckpt_add(&cs->mxfp4, part, "U8", 4, bshape, blocks, (size_t)(E * bshape[1] * groups * 16));
    snprintf(part, sizeof part, "%s_scales", name);
    if (cs->scales_f16) {
        uint16_t *halves = calloc((size_t)(E * out * groups), sizeof(uint16_t));
        ckpt_add(&cs->mxfp4, part, "F16", 3, sshape, halves, (size_t)(E * out * groups) * sizeof(uint16_t));
        free(halves);
    } else if (!cs->no_scales) {
        ckpt_add(&cs->mxfp4, part, "U8", 3, sshape, scales, (size_t)(E * out * groups));
    }
    free(blocks), free(scales), free(values);
    return 0;
}

/* Writes the two forms of the tiny model's checkpoint, damaged as cs says,
 * under dir/bf16 and dir/mxfp4. */
static void write_ckpts(two_ckpts *cs, const char *dir, char paths[2][4096])
{
    fl_model model = { 0 };
    fl_error err = { "" };
    char *text = tiny_config(NULL, NULL);
    parse(&model.cfg, text);
    assert_int_equal(fl_weights_init_dummy(&model.weights, &model.cfg, 21, &err), 0);
    cs->bf16 = (ckpt){ json_object(), NULL, 0 };
    cs->mxfp4 = (ckpt){ json_object(), NULL, 0 };
    fl_weights_visit(&model.weights, &model.cfg, add_tensor, cs);
    char *mx = tiny_config("{\"quantization_config\": {\"quant_method\": \"mxfp4\", \"modules_to_not_convert\":"
                           " [\"model.layers.*.self_attn\", \"model.layers.*.mlp.router\", \"model.embed_tokens\","
                           " \"lm_head\"]}}", NULL);
    const ckpt *which[2] = { &cs->bf16, &cs->mxfp4 };
    const char *config[2] = { text, mx };
    for (int i = 0; i < 2; i++) {
        snprintf(paths[i], 4096, "%s/%s", dir, i ? "mxfp4" : "bf16");
        mkdir(paths[i], 0700);
        tu_write_file(paths[i], "config.json", config[i], strlen(config[i]));
        const tu_safetensors st = { which[i]->header, which[i]->data, which[i]->len };
        tu_safetensors_write(&st, paths[i], "model.safetensors");
        json_decref(which[i]->header);
        free(which[i]->data);
    }
    free(text), free(mx);
    fl_weights_free(&model.weights);
}

static void remove_ckpts(char paths[2][4096])
{
    for (int i = 0; i < 2; i++)
        tu_rmdir(paths[i]);
}

static void test_mxfp4_checkpoint(void **state)
{
    (void)state;
    char *dir = tu_tempdir(), paths[2][4096];
    two_ckpts cs = { 0 };
    write_ckpts(&cs, dir, paths);
    fl_model bf16, mxfp4;
    fl_error err = { "" };
    assert_int_equal(fl_model_load(&bf16, paths[0], FL_LOAD_AUTO, 0, &err), 0);
    if (fl_model_load(&mxfp4, paths[1], FL_LOAD_AUTO, 0, &err) != 0)
        print_error("%s\n", err.msg);
    assert_int_equal(mxfp4.cfg.experts_mxfp4, 1);
    assert_int_equal(bf16.weights.num_params, mxfp4.weights.num_params);
    for (int l = 0; l < bf16.cfg.num_layers; l++)
        for (int r = 0; r < FL_NUM_LAYER_ROLES; r++) {
            const fl_tensor *a = &bf16.weights.layers[l].t[r], *b = &mxfp4.weights.layers[l].t[r];
            assert_int_equal(a->ndim, b->ndim);
            if (!a->ndim)
                continue;
            assert_int_equal(b->dtype, FL_BF16);
            assert_memory_equal(a->shape, b->shape, (size_t)a->ndim * sizeof(int64_t));
            assert_memory_equal(a->data, b->data, a->nbytes);
        }
    fl_cpu_model ma, mb;
    assert_int_equal(fl_cpu_model_init(&ma, &bf16.cfg, &bf16.weights, tu_attention("cpu"), 32, 64, &err), 0);
    assert_int_equal(fl_cpu_model_init(&mb, &mxfp4.cfg, &mxfp4.weights, tu_attention("cpu"), 32, 64, &err), 0);
    const int32_t ids[20] = { 1, 5, 9, 3, 7, 30, 31, 2, 8, 8, 8, 17, 4, 39, 0, 6, 12, 25, 19, 11 };
    const int32_t *seqs[1] = { ids };
    const int len = 20;
    float *la = malloc((size_t)20 * 40 * sizeof(float)), *lb = malloc((size_t)20 * 40 * sizeof(float));
    forward_batch(&ma, 1, seqs, &len, la);
    forward_batch(&mb, 1, seqs, &len, lb);
    assert_memory_equal(la, lb, (size_t)20 * 40 * sizeof(float));
    free(la), free(lb);
    fl_cpu_model_free(&ma);
    fl_cpu_model_free(&mb);
    fl_model_free(&bf16);
    fl_model_free(&mxfp4);
    remove_ckpts(paths);

    static const struct {
        two_ckpts damage;
        const char *needle1, *needle2;
    } cases[] = {
        { { .scales_f16 = 1 }, "tensor 'model.layers.0.mlp.experts.gate_up_proj_scales' has dtype F16 (expected U8)",
          NULL },
        { { .blocks_short = 1 }, "tensor 'model.layers.0.mlp.experts.gate_up_proj_blocks' has shape [5, 63, 1, 16], "
                                 "expected [5, 64, 1, 16] for this config", NULL },
        { { .no_scales = 1 }, "tensor 'model.layers.0.mlp.experts.gate_up_proj_scales' is missing from the "
                              "checkpoint (config.json's quantization_config says mxfp4)", NULL },
        { { .scale_255 = 1 }, "tensor 'model.layers.0.mlp.experts.gate_up_proj_blocks': expert 0, output row 0, "
                              "input ", "scale 255 makes the value NaN or too large for bfloat16" },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        cs = cases[i].damage;
        write_ckpts(&cs, dir, paths);
        assert_int_equal(fl_model_load(&mxfp4, paths[1], FL_LOAD_AUTO, 0, &err), -1);
        assert_msg_contains(err.msg, cases[i].needle1);
        if (cases[i].needle2)
            assert_msg_contains(err.msg, cases[i].needle2);
        remove_ckpts(paths);
    }
    /* the bf16 form under an mxfp4 config: named as what it is */
    cs = (two_ckpts){ 0 };
    write_ckpts(&cs, dir, paths);
    tu_copy_files(paths[0], paths[1]);
    char *mx = tiny_config("{\"quantization_config\": {\"quant_method\": \"mxfp4\"}}", NULL);
    tu_write_file(paths[1], "config.json", mx, strlen(mx));
    free(mx);
    assert_int_equal(fl_model_load(&mxfp4, paths[1], FL_LOAD_AUTO, 0, &err), -1);
    assert_msg_contains(err.msg, "gate_up_proj_blocks' is missing from the checkpoint (config.json's "
                                 "quantization_config says mxfp4); it holds the unquantized form instead");
    remove_ckpts(paths);
    tu_rmdir(dir);
    free(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_mxfp4_values),
        cmocka_unit_test(test_mxfp4_layout),
        cmocka_unit_test(test_yarn),
        cmocka_unit_test(test_attention_window_sinks),
        cmocka_unit_test(test_config),
        cmocka_unit_test(test_forward),
        cmocka_unit_test(test_mxfp4_checkpoint),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
