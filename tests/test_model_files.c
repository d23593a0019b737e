/* test_model_files.c - loading model directories: the fixtures load, and
 * every kind of bad file ends in one error naming the file and the field or
 * tensor (never a crash). Bad files are made from a copy of a fixture. */
#include "test_util.h"

#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cpu/cpu_kv_cache.h"
#include "cpu/cpu_runner.h"
#include "model/model.h"

/* A temporary copy of the tiny-qwen3 fixture, to damage. */
static int setup_copy(void **state)
{
    char *dir = tu_tempdir();
    tu_copy_files(tu_fixture("tiny-qwen3"), dir);
    *state = dir;
    return 0;
}

static int teardown_copy(void **state)
{
    tu_rmdir(*state);
    free(*state);
    return 0;
}

/* Loads dir, expects failure, and checks the message has every needle. */
static void expect_load_error(const char *dir, const char *needle1, const char *needle2)
{
    fl_model m;
    fl_error err = { "" };
    assert_int_equal(fl_model_load(&m, dir, FL_LOAD_AUTO, 0, &err), -1);
    assert_msg_contains(err.msg, needle1);
    if (needle2)
        assert_msg_contains(err.msg, needle2);
}

/* Rewrites dir/config.json with field set to the JSON value text. */
static void set_config_field(const char *dir, const char *field, const char *value_json)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/config.json", dir);
    json_error_t jerr;
    json_t *cfg = json_load_file(path, 0, &jerr);
    assert_non_null(cfg);
    json_t *v = json_loads(value_json, JSON_DECODE_ANY, &jerr);
    assert_non_null(v);
    json_object_set_new(cfg, field, v);
    assert_int_equal(json_dump_file(cfg, path, 0), 0);
    json_decref(cfg);
}

static void test_fixtures_load(void **state)
{
    (void)state;
    static const struct {
        const char *name;
        const char *arch;
        int tied, qkv_bias, qk_norm, llama3;
    } cases[] = {
        { "tiny-qwen3", "Qwen3ForCausalLM", 1, 0, 1, 0 },
        { "tiny-llama", "LlamaForCausalLM", 0, 0, 0, 1 },
        { "tiny-qwen2", "Qwen2ForCausalLM", 0, 1, 0, 0 },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        fl_model m;
        fl_error err = { "" };
        int rc = fl_model_load(&m, tu_fixture(cases[i].name), FL_LOAD_AUTO, 0, &err);
        if (rc != 0)
            print_error("%s: %s\n", cases[i].name, err.msg);
        assert_int_equal(rc, 0);
        assert_string_equal(m.cfg.arch->hf_class, cases[i].arch);
        assert_int_equal(m.cfg.tie_word_embeddings, cases[i].tied);
        for (int l = 0; l < m.cfg.num_layers; l++) {
            assert_int_equal(m.cfg.layers[l].qkv_bias, cases[i].qkv_bias);
            assert_int_equal(m.cfg.layers[l].qk_norm, cases[i].qk_norm);
            assert_int_equal(m.cfg.layers[l].window, 0);
        }
        assert_int_equal(m.cfg.rope_type == FL_ROPE_LLAMA3, cases[i].llama3);
        /* The tied head shares the embedding; an untied one has its own data. */
        assert_int_equal(m.weights.model[FL_LM_HEAD].data == m.weights.model[FL_EMBED].data, cases[i].tied);
        fl_model_free(&m);
    }
}

static void test_missing_directory(void **state)
{
    (void)state;
    expect_load_error("/nonexistent/model", "/nonexistent/model", "no such directory");
    expect_load_error("Qwen/Qwen3-0.6B", "Qwen/Qwen3-0.6B", "--load-format dummy");
}

static void test_missing_config(void **state)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/config.json", (char *)*state);
    unlink(path);
    expect_load_error(*state, "config.json", "cannot open");
}

static void test_malformed_config(void **state)
{
    tu_write_file(*state, "config.json", "{\"architectures\": [", 19);
    expect_load_error(*state, "config.json", "malformed JSON");
}

static void test_config_fields(void **state)
{
    static const struct {
        const char *field, *value, *needle;
    } cases[] = {
        { "architectures", "[\"GPT2LMHeadModel\"]", "'GPT2LMHeadModel', which is not supported" },
        { "architectures", "null", "missing field 'architectures'" },
        { "vocab_size", "0", "'vocab_size' = 0 is out of range" },
        { "hidden_size", "\"64\"", "'hidden_size' must be an integer" },
        { "num_hidden_layers", "null", "missing field 'num_hidden_layers'" },
        { "num_key_value_heads", "3", "'num_key_value_heads' = 3 must divide" },
        { "head_dim", "33", "'head_dim' = 33 must be even" },
        { "rms_norm_eps", "-1", "'rms_norm_eps' = -1 is out of range" },
        { "hidden_act", "\"gelu\"", "'hidden_act' must be \"silu\"" },
        { "use_sliding_window", "true", "'use_sliding_window' = true is not supported" },
        { "tie_word_embeddings", "1", "'tie_word_embeddings' must be true or false" },
        { "dtype", "\"int8\"", "'dtype' must be" },
        { "eos_token_id", "100000", "'eos_token_id' = 100000 is not below vocab_size" },
        { "rope_parameters", "{\"rope_type\": \"longrope\", \"rope_theta\": 10000}",
          "rope_type 'longrope' is not supported (supported: default, llama3, yarn)" },
        { "rope_parameters", "{\"rope_type\": \"yarn\", \"rope_theta\": 10000, \"factor\": 4}",
          "missing field 'original_max_position_embeddings'" },
        { "rope_parameters", "{\"rope_type\": \"yarn\", \"rope_theta\": 10000, \"factor\": 4, "
                             "\"original_max_position_embeddings\": 64, \"mscale\": 1}",
          "yarn's 'mscale' is not supported" },
        { "rope_parameters", "{\"rope_type\": \"yarn\", \"rope_theta\": 10000, \"factor\": 4, "
                             "\"original_max_position_embeddings\": 64, \"beta_fast\": 1, \"beta_slow\": 2}",
          "yarn's beta_fast must exceed beta_slow" },
        { "rope_parameters", "{\"full_attention\": {\"rope_type\": \"default\"}}",
          "field 'rope_parameters.full_attention': rope parameters by layer type are not supported" },
        { "partial_rotary_factor", "0.5", "field 'partial_rotary_factor' = 0.5 is not supported (only 1)" },
        { "rope_parameters", "{\"rope_theta\": 10000, \"partial_rotary_factor\": 0.25}",
          "field 'partial_rotary_factor' = 0.25 is not supported" },
        { "quantization_config", "{\"quant_method\": \"awq\"}",
          "field 'quantization_config' is not supported for Qwen3ForCausalLM" },
        { "rope_parameters", "{\"rope_type\": \"llama3\", \"rope_theta\": 10000}",
          "missing field 'factor'" },
        { "layer_types", "[\"full_attention\", \"sliding_attention\"]", "'layer_types'[1]" },
        { "rope_parameters", "\"x\"", "field 'rope_parameters' must be an object or null" },
        { "rope_scaling", "[1]", "field 'rope_scaling' must be an object or null" },
        { "rope_parameters", "{\"rope_type\": 3}", "field 'rope_parameters.rope_type' must be a string" },
        { "bos_token_id", "384", "'bos_token_id' = 384 is not below vocab_size = 384" },
    };
    const char *dir = *state;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        tu_copy_files(tu_fixture("tiny-qwen3"), dir); /* fresh config each time */
        set_config_field(dir, cases[i].field, cases[i].value);
        expect_load_error(dir, "config.json", cases[i].needle);
    }
    /* a null dtype defers to torch_dtype rather than hiding it */
    tu_copy_files(tu_fixture("tiny-qwen3"), dir);
    set_config_field(dir, "dtype", "null");
    set_config_field(dir, "torch_dtype", "\"int8\"");
    expect_load_error(dir, "config.json", "'torch_dtype' must be");
}

/* Rewrites the header of dir/model.safetensors through edit(). */
static void edit_header(const char *dir, void (*edit)(json_t *header))
{
    char path[4096];
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    tu_safetensors st;
    tu_safetensors_read(&st, path);
    edit(st.header);
    tu_safetensors_write(&st, dir, "model.safetensors");
    tu_safetensors_free(&st);
}

static json_t *norm_entry(json_t *h)
{
    return json_object_get(h, "model.norm.weight");
}

/* Renamed rather than deleted: its bytes must still belong to a tensor. */
static void drop_norm(json_t *h)
{
    json_object_set(h, "model.final_norm.weight", norm_entry(h));
    json_object_del(h, "model.norm.weight");
}
static void reshape_norm(json_t *h) { json_object_set_new(norm_entry(h), "shape", json_pack("[ii]", 2, 32)); }
static void retype_norm(json_t *h) { json_object_set_new(norm_entry(h), "dtype", json_string("I16")); }
static void unknown_dtype(json_t *h) { json_object_set_new(norm_entry(h), "dtype", json_string("Q4")); }
static void bad_span(json_t *h) { json_object_set_new(norm_entry(h), "shape", json_pack("[i]", 63)); }
static void bad_offsets(json_t *h) { json_object_set_new(norm_entry(h), "data_offsets", json_string("x")); }

static void test_bad_tensors(void **state)
{
    static const struct {
        void (*edit)(json_t *);
        const char *needle1, *needle2;
    } cases[] = {
        { drop_norm, "tensor 'model.norm.weight' is missing", NULL },
        { reshape_norm, "model.safetensors: tensor 'model.norm.weight' has shape [2, 32]", "expected [64]" },
        { retype_norm, "tensor 'model.norm.weight' has dtype I16", "expected F32, F16 or BF16" },
        { unknown_dtype, "model.safetensors: tensor 'model.norm.weight': unknown dtype 'Q4'", NULL },
        { bad_span, "tensor 'model.norm.weight': data_offsets span 128 bytes", "need 126" },
        { bad_offsets, "tensor 'model.norm.weight': 'data_offsets' must be", NULL },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        tu_copy_files(tu_fixture("tiny-qwen3"), *state);
        edit_header(*state, cases[i].edit);
        expect_load_error(*state, cases[i].needle1, cases[i].needle2);
    }
}

/* The name of the tensor whose data starts the data block. */
static const char *first_tensor(json_t *h)
{
    const char *name;
    json_t *entry;
    json_object_foreach(h, name, entry) {
        json_t *begin = json_array_get(json_object_get(entry, "data_offsets"), 0);
        if (json_is_integer(begin) && json_integer_value(begin) == 0)
            return name;
    }
    fail();
    return NULL;
}

/* The tensors must tile the data block, as HF's safetensors requires:
 * overlapping tensors (which would share weights), a gap, or bytes after
 * the last tensor are each an error naming what is wrong. */
static void test_tensor_layout(void **state)
{
    const char *dir = *state;
    char path[4096];
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    tu_safetensors st;
    tu_safetensors_read(&st, path);
    json_t *offsets = json_object_get(norm_entry(st.header), "data_offsets");
    const json_int_t begin = json_integer_value(json_array_get(offsets, 0));

    /* model.norm.weight (128 bytes) moved onto the first tensor's bytes */
    char first[256];
    snprintf(first, sizeof first, "'%s'", first_tensor(st.header));
    json_array_set_new(offsets, 0, json_integer(0));
    json_array_set_new(offsets, 1, json_integer(128));
    tu_safetensors_write(&st, dir, "model.safetensors");
    expect_load_error(dir, "'model.norm.weight' [0, 128]", first);
    expect_load_error(dir, "model.safetensors: tensors '", "overlap");

    /* moved past the end instead: its old bytes belong to no tensor */
    st.data = realloc(st.data, st.data_len + 128);
    json_array_set_new(offsets, 0, json_integer((json_int_t)st.data_len));
    json_array_set_new(offsets, 1, json_integer((json_int_t)st.data_len + 128));
    st.data_len += 128;
    tu_safetensors_write(&st, dir, "model.safetensors");
    char gap[128];
    snprintf(gap, sizeof gap, "bytes [%lld, %lld) of the data block belong to no tensor",
             (long long)begin, (long long)begin + 128);
    expect_load_error(dir, "model.safetensors", gap);

    /* back in place, with 16 bytes after the last tensor */
    json_array_set_new(offsets, 0, json_integer(begin));
    json_array_set_new(offsets, 1, json_integer(begin + 128));
    st.data_len -= 128 - 16;
    tu_safetensors_write(&st, dir, "model.safetensors");
    expect_load_error(dir, "model.safetensors: the data block has 16 bytes after the last tensor",
                      NULL);
    tu_safetensors_free(&st);
}

static void test_truncated_file(void **state)
{
    const char *dir = *state;
    char path[4096];
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    unsigned char buf[200000];
    size_t n = fread(buf, 1, sizeof buf, f);
    fclose(f);
    assert_true(n > 100000);
    /* Data cut short: some tensor's offsets run past the end. */
    tu_write_file(dir, "model.safetensors", buf, n / 2);
    expect_load_error(dir, "model.safetensors", "(file truncated?)");
    /* Header cut short. */
    tu_write_file(dir, "model.safetensors", buf, 100);
    expect_load_error(dir, "model.safetensors", "header length");
    /* Not even a header length. */
    tu_write_file(dir, "model.safetensors", buf, 5);
    expect_load_error(dir, "model.safetensors", "too short for a safetensors header");
    /* A header that is not JSON. */
    unsigned char junk[40] = { 16, 0, 0, 0, 0, 0, 0, 0, '{', 'n', 'o', 't', ' ', 'j', 's', 'o', 'n' };
    tu_write_file(dir, "model.safetensors", junk, sizeof junk);
    expect_load_error(dir, "model.safetensors", "malformed header JSON");
}

static void test_no_weights(void **state)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/model.safetensors", (char *)*state);
    unlink(path);
    expect_load_error(*state, "no model.safetensors or model.safetensors.index.json", NULL);
}

/* A temporary copy of the sharded tiny-llama fixture. */
static int setup_sharded(void **state)
{
    char *dir = tu_tempdir();
    tu_copy_files(tu_fixture("tiny-llama"), dir);
    *state = dir;
    return 0;
}

static void test_bad_index(void **state)
{
    const char *dir = *state;
    char path[4096];
    snprintf(path, sizeof path, "%s/model.safetensors.index.json", dir);
    json_error_t jerr;
    json_t *index = json_load_file(path, 0, &jerr);
    assert_non_null(index);
    json_t *map = json_object_get(index, "weight_map");

    /* A shard that does not exist. */
    json_object_set_new(map, "model.norm.weight", json_string("model-00009-of-00009.safetensors"));
    assert_int_equal(json_dump_file(index, path, 0), 0);
    expect_load_error(dir, "model-00009-of-00009.safetensors", "cannot open");

    /* A tensor listed in a shard that does not hold it (it is in shard 6). */
    json_object_set_new(map, "model.norm.weight", json_string("model-00001-of-00006.safetensors"));
    assert_int_equal(json_dump_file(index, path, 0), 0);
    expect_load_error(dir, "index.json: tensor 'model.norm.weight' is not in its listed shard", NULL);

    /* No weight_map at all. */
    json_object_del(index, "weight_map");
    assert_int_equal(json_dump_file(index, path, 0), 0);
    expect_load_error(dir, "index.json: missing or non-object 'weight_map'", NULL);
    json_decref(index);
}

/* Replaces dir/name with a named pipe that nobody writes. */
static void make_fifo(const char *dir, const char *name)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    unlink(path);
    assert_int_equal(mkfifo(path, 0600), 0);
}

/* A FIFO (or any non-regular file) in place of a file the loader reads is
 * refused at once; reading it would wait for a writer forever. The alarm
 * turns a hang into a failure (SIGALRM ends the test). */
static void test_fifo_files(void **state)
{
    /* each file a load opens: the single-file and the sharded fixture's */
    static const char *const cases[][2] = {
        { "tiny-qwen3", "config.json" }, { "tiny-qwen3", "model.safetensors" },
        { "tiny-llama", "model.safetensors.index.json" }, { "tiny-llama", "model-00003-of-00006.safetensors" },
    };
    char *dir = *state;
    alarm(10);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        tu_rmdir(dir);
        assert_int_equal(mkdir(dir, 0700), 0);
        tu_copy_files(tu_fixture(cases[i][0]), dir);
        make_fifo(dir, cases[i][1]);
        expect_load_error(dir, cases[i][1], "not a regular file");
    }
    alarm(0);
}

/* Sets each "field": value of a JSON object text in dir/config.json. */
static void set_config_fields(const char *dir, const char *fields_json)
{
    json_error_t jerr;
    json_t *fields = json_loads(fields_json, 0, &jerr);
    assert_non_null(fields);
    const char *key;
    json_t *v;
    json_object_foreach(fields, key, v) {
        char *text = json_dumps(v, JSON_ENCODE_ANY);
        set_config_field(dir, key, text);
        free(text);
    }
    json_decref(fields);
}

/* In-range config values whose products no machine holds: every plan is
 * refused with one error naming it, before anything is allocated (the
 * allocator aborts on out-of-memory). 16 PiB of bf16 parameters: */
static const char huge_config[] = "{\"vocab_size\": 16777216, \"hidden_size\": 65536, "
                                  "\"intermediate_size\": 1048576, \"num_hidden_layers\": 1024, "
                                  "\"layer_types\": null}";

static void test_memory_plans(void **state)
{
    const char *dir = *state;
    fl_model m;
    fl_model_runner r;
    const fl_runner_opts small = { .attn = tu_attention("cpu"), .max_tokens = 16, .max_context = 64,
                                   .block_size = 16, .max_seqs = 1 };
    fl_runner_opts many_blocks = small;
    many_blocks.num_blocks = 1 << 24;
    fl_error err = { "" };
    set_config_fields(dir, huge_config);
    assert_int_equal(fl_model_load(&m, dir, FL_LOAD_DUMMY, 0, &err), -1);
    assert_msg_contains(err.msg, "--load-format dummy: the weights needs");
    assert_msg_contains(err.msg, "GiB of memory of this machine");

    /* shapes only (`info`) need no memory; the CPU runner's copy does */
    assert_int_equal(fl_model_load(&m, dir, FL_LOAD_SHAPES_ONLY, 0, &err), 0);
    assert_int_equal(fl_cpu_runner_init(&r, &m.cfg, &m.weights, &small, &err), -1);
    assert_msg_contains(err.msg, "the CPU runner's float32 weights and run state needs");
    fl_model_free(&m);

    /* 8 MiB of KV a token (1024 layers of 1024 heads of 1024): a block of
     * 16 exceeds the default KV space before any weight is looked at */
    tu_copy_files(tu_fixture("tiny-qwen3"), dir);
    set_config_fields(dir, "{\"num_hidden_layers\": 1024, \"num_attention_heads\": 1024, "
                           "\"num_key_value_heads\": 1024, \"head_dim\": 1024, "
                           "\"layer_types\": null}");
    assert_int_equal(fl_model_load(&m, dir, FL_LOAD_SHAPES_ONLY, 0, &err), 0);
    assert_int_equal(fl_cpu_runner_init(&r, &m.cfg, &m.weights, &small, &err), -1);
    assert_msg_contains(err.msg, "one KV cache block (137438953472 bytes) exceeds");
    /* 2^24 blocks of 128 such tokens: 2^64 bytes, saturated past size_t */
    assert_true(fl_cpu_kv_cache_bytes(&m.cfg, 1 << 24, 128) == SIZE_MAX);
    fl_model_free(&m);

    /* small weights (one such layer, hidden size 1), but 2^24 forced blocks */
    set_config_fields(dir, "{\"num_hidden_layers\": 1, \"hidden_size\": 1}");
    assert_int_equal(fl_model_load(&m, dir, FL_LOAD_DUMMY, 0, &err), 0);
    assert_int_equal(fl_cpu_runner_init(&r, &m.cfg, &m.weights, &many_blocks, &err), -1);
    assert_msg_contains(err.msg, "16777216 KV cache blocks) needs 2097152.");
    fl_model_free(&m);
}

static void test_dummy_builtin(void **state)
{
    (void)state;
    fl_model m;
    fl_error err = { "" };
    assert_int_equal(fl_model_load(&m, "Qwen/Qwen3-0.6B", FL_LOAD_SHAPES_ONLY, 0, &err), 0);
    assert_int_equal(m.cfg.num_layers, 28);
    /* 596,049,920 = 151936 x 1024 (tied embedding) + 28 layers x 15,733,504 + 1024 */
    assert_int_equal(m.weights.num_params, 596049920);
    assert_int_equal(fl_model_config_kv_bytes_per_token(&m.cfg, m.cfg.dtype), 114688);
    fl_model_free(&m);
}

/* Dummy values depend only on the seed, and differ between seeds. */
static void test_dummy_deterministic(void **state)
{
    (void)state;
    fl_model a, b, c;
    fl_error err;
    const char *dir = tu_fixture("tiny-qwen3");
    assert_int_equal(fl_model_load(&a, dir, FL_LOAD_DUMMY, 7, &err), 0);
    assert_int_equal(fl_model_load(&b, dir, FL_LOAD_DUMMY, 7, &err), 0);
    assert_int_equal(fl_model_load(&c, dir, FL_LOAD_DUMMY, 8, &err), 0);
    const fl_tensor *ta = &a.weights.layers[1].t[FL_W_DOWN], *tb = &b.weights.layers[1].t[FL_W_DOWN],
                    *tc = &c.weights.layers[1].t[FL_W_DOWN];
    assert_int_equal(ta->dtype, FL_BF16);
    assert_memory_equal(ta->data, tb->data, ta->nbytes);
    assert_memory_not_equal(ta->data, tc->data, ta->nbytes);
    fl_model_free(&a);
    fl_model_free(&b);
    fl_model_free(&c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fixtures_load),
        cmocka_unit_test(test_missing_directory),
        cmocka_unit_test_setup_teardown(test_missing_config, setup_copy, teardown_copy),
        cmocka_unit_test_setup_teardown(test_malformed_config, setup_copy, teardown_copy),
        cmocka_unit_test_setup_teardown(test_config_fields, setup_copy, teardown_copy),
        cmocka_unit_test_setup_teardown(test_bad_tensors, setup_copy, teardown_copy),
        cmocka_unit_test_setup_teardown(test_tensor_layout, setup_copy, teardown_copy),
        cmocka_unit_test_setup_teardown(test_truncated_file, setup_copy, teardown_copy),
        cmocka_unit_test_setup_teardown(test_no_weights, setup_copy, teardown_copy),
        cmocka_unit_test_setup_teardown(test_bad_index, setup_sharded, teardown_copy),
        cmocka_unit_test_setup_teardown(test_fifo_files, setup_copy, teardown_copy),
        cmocka_unit_test_setup_teardown(test_memory_plans, setup_copy, teardown_copy),
        cmocka_unit_test(test_dummy_builtin),
        cmocka_unit_test(test_dummy_deterministic),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
