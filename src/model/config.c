/* config.c - config.json parsing and validation (see config.h). */
#include "model/config.h"

#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "base/mapped_file.h"
#include "model/config_fields.h"

/* Reads an integer field in [lo, hi]. An absent or null field takes dflt, or
 * is an error if required. */
int fl_config_int(json_t *obj, const char *key, int required, int dflt, long long lo,
                   long long hi, int *out, const char *src, fl_error *err)
{
    json_t *v = json_object_get(obj, key);
    if (!v || json_is_null(v)) {
        if (required)
            return fl_fail(err, "%s: missing field '%s'", src, key);
        *out = dflt;
        return 0;
    }
    if (!json_is_integer(v))
        return fl_fail(err, "%s: field '%s' must be an integer", src, key);
    long long x = json_integer_value(v);
    if (x < lo || x > hi)
        return fl_fail(err, "%s: field '%s' = %lld is out of range [%lld, %lld]", src, key, x, lo,
                       hi);
    *out = (int)x;
    return 0;
}

/* Reads a number field in (lo, hi]; absent or null takes dflt. */
int fl_config_number(json_t *obj, const char *key, int required, double dflt, double lo,
                      double hi, double *out, const char *src, fl_error *err)
{
    json_t *v = json_object_get(obj, key);
    if (!v || json_is_null(v)) {
        if (required)
            return fl_fail(err, "%s: missing field '%s'", src, key);
        *out = dflt;
        return 0;
    }
    if (!json_is_number(v))
        return fl_fail(err, "%s: field '%s' must be a number", src, key);
    double x = json_number_value(v);
    if (!(x > lo && x <= hi))
        return fl_fail(err, "%s: field '%s' = %g is out of range (%g, %g]", src, key, x, lo, hi);
    *out = x;
    return 0;
}

int fl_config_bool(json_t *obj, const char *key, int dflt, int *out, const char *src,
                    fl_error *err)
{
    json_t *v = json_object_get(obj, key);
    if (!v || json_is_null(v)) {
        *out = dflt;
        return 0;
    }
    if (!json_is_boolean(v))
        return fl_fail(err, "%s: field '%s' must be true or false", src, key);
    *out = json_is_true(v);
    return 0;
}

static int parse_arch(fl_model_config *cfg, json_t *root, const char *src, fl_error *err)
{
    json_t *archs = json_object_get(root, "architectures");
    json_t *first = json_is_array(archs) ? json_array_get(archs, 0) : NULL;
    if (!json_is_string(first))
        return fl_fail(err, "%s: missing field 'architectures' (a list of class names)", src);
    const char *name = json_string_value(first);
    cfg->arch = fl_arch_find(name);
    if (!cfg->arch)
        return fl_fail(err, "%s: field 'architectures' names '%s', which is not supported (supported: %s)", src,
                       name, fl_arch_list());
    return 0;
}

static int parse_llama3(fl_model_config *cfg, json_t *params, const char *where, fl_error *err)
{
    cfg->rope_type = FL_ROPE_LLAMA3;
    if (fl_config_number(params, "factor", 1, 0, 0.0, 1e6, &cfg->rope_factor, where, err) != 0 ||
        fl_config_number(params, "low_freq_factor", 1, 0, 0.0, 1e6, &cfg->rope_low_freq_factor, where,
                   err) != 0 ||
        fl_config_number(params, "high_freq_factor", 1, 0, 0.0, 1e6, &cfg->rope_high_freq_factor, where,
                   err) != 0 ||
        fl_config_int(params, "original_max_position_embeddings", 1, 0, 1, 1 << 24,
                &cfg->rope_original_max_position, where, err) != 0)
        return -1;
    if (cfg->rope_high_freq_factor <= cfg->rope_low_freq_factor)
        return fl_fail(err, "%s: high_freq_factor must exceed low_freq_factor", where);
    return 0;
}

/* YaRN as transformers 5 reads it: factor and original_max_position_embeddings
 * required (4.x replaced factor by max_position_embeddings over the
 * original; the two agree when the config is consistent, as gpt-oss's is),
 * beta_fast 32 and beta_slow 1 and truncate true by default, the cos/sin
 * factor attention_factor or else 0.1 ln(factor) + 1 (1 for factor <= 1).
 * DeepSeek's mscale and mscale_all_dim are refused. */
static int parse_yarn(fl_model_config *cfg, json_t *params, const char *where, fl_error *err)
{
    cfg->rope_type = FL_ROPE_YARN;
    static const char *const refused[] = { "mscale", "mscale_all_dim" };
    for (int i = 0; i < 2; i++) {
        json_t *v = json_object_get(params, refused[i]);
        if (v && !json_is_null(v))
            return fl_fail(err, "%s: yarn's '%s' is not supported", where, refused[i]);
    }
    if (fl_config_number(params, "factor", 1, 0, 0.0, 1e6, &cfg->rope_factor, where, err) != 0 ||
        fl_config_int(params, "original_max_position_embeddings", 1, 0, 1, 1 << 24,
                      &cfg->rope_original_max_position, where, err) != 0 ||
        fl_config_number(params, "beta_fast", 0, 32.0, 0.0, 1e6, &cfg->rope_beta_fast, where, err) != 0 ||
        fl_config_number(params, "beta_slow", 0, 1.0, 0.0, 1e6, &cfg->rope_beta_slow, where, err) != 0 ||
        fl_config_bool(params, "truncate", 1, &cfg->rope_truncate, where, err) != 0)
        return -1;
    const double dflt_attention = cfg->rope_factor <= 1.0 ? 1.0 : 0.1 * log(cfg->rope_factor) + 1.0;
    if (fl_config_number(params, "attention_factor", 0, dflt_attention, 0.0, 1e6, &cfg->rope_attention_factor,
                         where, err) != 0)
        return -1;
    if (cfg->rope_beta_fast <= cfg->rope_beta_slow)
        return fl_fail(err, "%s: yarn's beta_fast must exceed beta_slow", where);
    return 0;
}

/* Rope settings: transformers 5 writes rope_parameters (theta inside it);
 * 4.x writes rope_theta and rope_scaling at the top level. Both are read,
 * rope_parameters first; either, when present, must be an object or null. */
static int parse_rope(fl_model_config *cfg, json_t *root, const char *src, fl_error *err)
{
    static const char *const fields[2] = { "rope_parameters", "rope_scaling" };
    json_t *params = NULL;
    const char *field = NULL;
    for (int i = 0; i < 2; i++) {
        json_t *v = json_object_get(root, fields[i]);
        if (v && !json_is_null(v) && !json_is_object(v))
            return fl_fail(err, "%s: field '%s' must be an object or null", src, fields[i]);
        if (json_is_object(v) && !params) {
            params = v;
            field = fields[i];
        }
    }
    json_t *theta_holder = json_object_get(root, "rope_theta") ? root : params;
    if (fl_config_number(theta_holder, "rope_theta", 0, 10000.0, 0.0, 1e12, &cfg->rope_theta, src,
                   err) != 0)
        return -1;
    /* the rotation covers the whole head, wherever the factor is written */
    json_t *const holders[2] = { root, params };
    for (int i = 0; i < 2; i++) {
        double partial;
        if (holders[i] && fl_config_number(holders[i], "partial_rotary_factor", 0, 1.0, 0.0, 1.0, &partial, src,
                                           err) != 0)
            return -1;
        if (holders[i] && partial != 1.0)
            return fl_fail(err, "%s: field 'partial_rotary_factor' = %g is not supported (only 1)", src, partial);
    }
    if (!json_is_object(params))
        return 0;
    /* transformers 5 may key the parameters by layer type (Gemma 3's
     * full_attention and sliding_attention); flashlm has one rope */
    const char *key;
    json_t *v;
    json_object_foreach(params, key, v) {
        if (json_is_object(v))
            return fl_fail(err, "%s: field '%s.%s': rope parameters by layer type are not supported", src, field,
                           key);
    }
    const char *type_key = json_object_get(params, "rope_type") ? "rope_type" : "type";
    json_t *type = json_object_get(params, type_key);
    if (type && !json_is_null(type) && !json_is_string(type))
        return fl_fail(err, "%s: field '%s.%s' must be a string", src, field, type_key);
    const char *type_name = json_is_string(type) ? json_string_value(type) : "default";
    if (strcmp(type_name, "default") == 0)
        return 0;
    char where[256];
    snprintf(where, sizeof where, "%s (%s)", src, field);
    if (strcmp(type_name, "llama3") == 0)
        return parse_llama3(cfg, params, where, err);
    if (strcmp(type_name, "yarn") == 0)
        return parse_yarn(cfg, params, where, err);
    return fl_fail(err, "%s: %s.rope_type '%s' is not supported (supported: default, llama3, yarn)", src,
                   field, type_name);
}

static int parse_special_ids(fl_model_config *cfg, json_t *root, const char *src, fl_error *err)
{
    if (fl_config_int(root, "bos_token_id", 0, -1, 0, INT32_MAX, &cfg->bos_token_id, src, err) != 0)
        return -1;
    json_t *eos = json_object_get(root, "eos_token_id");
    cfg->num_eos_ids = 0;
    if (!eos || json_is_null(eos))
        return 0;
    if (json_is_integer(eos))
        return fl_config_int(root, "eos_token_id", 1, 0, 0, INT32_MAX, &cfg->eos_token_ids[cfg->num_eos_ids++],
                       src, err);
    if (!json_is_array(eos) || json_array_size(eos) > FL_MAX_EOS_IDS)
        return fl_fail(err, "%s: field 'eos_token_id' must be an id or a list of at most %d ids",
                       src, FL_MAX_EOS_IDS);
    size_t i;
    json_t *v;
    json_array_foreach(eos, i, v) {
        if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) > INT32_MAX)
            return fl_fail(err, "%s: field 'eos_token_id' holds a non-id value", src);
        cfg->eos_token_ids[cfg->num_eos_ids++] = (int)json_integer_value(v);
    }
    return 0;
}

static int parse_dtype(fl_model_config *cfg, json_t *root, const char *src, fl_error *err)
{
    json_t *dtype = json_object_get(root, "dtype");
    const char *key = dtype && !json_is_null(dtype) ? "dtype" : "torch_dtype";
    json_t *v = json_object_get(root, key);
    if (!v || json_is_null(v)) {
        cfg->dtype = FL_F32; /* transformers' default when a config names none */
        return 0;
    }
    cfg->dtype = json_is_string(v) ? fl_dtype_from_torch_name(json_string_value(v))
                                   : FL_DTYPE_INVALID;
    if (cfg->dtype == FL_DTYPE_INVALID)
        return fl_fail(err, "%s: field '%s' must be \"bfloat16\", \"float16\" or \"float32\"",
                       src, key);
    return 0;
}

static int parse_root(fl_model_config *cfg, json_t *root, const char *src, fl_error *err)
{
    if (!json_is_object(root))
        return fl_fail(err, "%s: not a JSON object", src);
    if (parse_arch(cfg, root, src, err) != 0 || parse_dtype(cfg, root, src, err) != 0 || parse_rope(cfg, root, src, err) != 0 ||
        parse_special_ids(cfg, root, src, err) != 0)
        return -1;
    double eps;
    /* The bounds keep every product the loaders and runners form within
     * range: the q/k/v widths (heads x head_dim <= 2^20) in an int, the
     * element count of all weights (< 2^50) in an int64. Whether those fit
     * in memory is each allocation plan's check (fl_memory_check). */
    if (fl_config_int(root, "vocab_size", 1, 0, 1, 1 << 24, &cfg->vocab_size, src, err) != 0 ||
        fl_config_int(root, "hidden_size", 1, 0, 1, 1 << 16, &cfg->hidden_size, src, err) != 0 ||
        fl_config_int(root, "intermediate_size", 1, 0, 1, 1 << 20, &cfg->intermediate_size, src,
                err) != 0 ||
        fl_config_int(root, "num_hidden_layers", 1, 0, 1, FL_MAX_LAYERS, &cfg->num_layers, src, err) != 0 ||
        fl_config_int(root, "num_attention_heads", 1, 0, 1, 1024, &cfg->num_heads, src, err) != 0 ||
        fl_config_int(root, "num_key_value_heads", 0, cfg->num_heads, 1, 1024, &cfg->num_kv_heads, src,
                err) != 0 ||
        fl_config_int(root, "max_position_embeddings", 0, 2048, 1, 1 << 24,
                &cfg->max_position_embeddings, src, err) != 0 ||
        fl_config_number(root, "rms_norm_eps", 0, 1e-6, 0.0, 1.0, &eps, src, err) != 0 ||
        fl_config_bool(root, "tie_word_embeddings", 0, &cfg->tie_word_embeddings, src, err) != 0)
        return -1;
    cfg->rms_norm_eps = (float)eps;
    if (cfg->num_heads % cfg->num_kv_heads != 0)
        return fl_fail(err, "%s: field 'num_key_value_heads' = %d must divide "
                       "num_attention_heads = %d", src, cfg->num_kv_heads, cfg->num_heads);
    json_t *hd = json_object_get(root, "head_dim");
    if ((!hd || json_is_null(hd)) && cfg->hidden_size % cfg->num_heads != 0)
        return fl_fail(err, "%s: no 'head_dim', and hidden_size = %d is not a multiple of "
                       "num_attention_heads = %d", src, cfg->hidden_size, cfg->num_heads);
    if (fl_config_int(root, "head_dim", 0, cfg->hidden_size / cfg->num_heads, 2, 1024, &cfg->head_dim,
                src, err) != 0)
        return -1;
    if (cfg->head_dim % 2 != 0)
        return fl_fail(err, "%s: field 'head_dim' = %d must be even (rotary pairs)", src,
                       cfg->head_dim);
    /* the layers' plan, and the fields only this architecture has */
    if (cfg->arch->configure(cfg, root, src, err) != 0)
        return -1;
    if (cfg->bos_token_id >= cfg->vocab_size)
        return fl_fail(err, "%s: field 'bos_token_id' = %d is not below vocab_size = %d", src,
                       cfg->bos_token_id, cfg->vocab_size);
    for (int i = 0; i < cfg->num_eos_ids; i++)
        if (cfg->eos_token_ids[i] >= cfg->vocab_size)
            return fl_fail(err, "%s: field 'eos_token_id' = %d is not below vocab_size = %d", src,
                           cfg->eos_token_ids[i], cfg->vocab_size);
    return 0;
}

int fl_model_config_parse(fl_model_config *cfg, const char *json_text, const char *source,
                          fl_error *err)
{
    memset(cfg, 0, sizeof *cfg);
    json_error_t jerr;
    json_t *root = json_loads(json_text, 0, &jerr);
    if (!root)
        return fl_fail(err, "%s: malformed JSON (%s, line %d)", source, jerr.text, jerr.line);
    int rc = parse_root(cfg, root, source, err);
    json_decref(root);
    return rc;
}

int fl_model_config_load_dir(fl_model_config *cfg, const char *dir, fl_error *err)
{
    char *path = fl_path_join(dir, "config.json");
    char *text = fl_read_text_file(path, NULL, err);
    int rc = text ? fl_model_config_parse(cfg, text, path, err) : -1;
    free(text);
    free(path);
    return rc;
}

int64_t fl_model_config_kv_bytes_per_token(const fl_model_config *cfg, fl_dtype kv_dtype)
{
    return (int64_t)cfg->num_layers * 2 * cfg->num_kv_heads * cfg->head_dim *
           (int64_t)fl_dtype_size(kv_dtype);
}
