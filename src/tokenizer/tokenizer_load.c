/* tokenizer_load.c - reading tokenizer.json and tokenizer_config.json.
 *
 * Each component of tokenizer.json is checked against what flashlm
 * implements; anything else is an error naming the file and the field, so a
 * tokenizer is never silently different from HF's. */
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <utf8proc.h>

#include "base/alloc.h"
#include "base/json_file.h"
#include "base/mapped_file.h"
#include "base/utf8.h"
#include "tokenizer/bpe.h"
#include "tokenizer/byte_level.h"
#include "tokenizer/tokenizer.h"

/* The pattern ByteLevel(use_regex=true) splits with (GPT-2's). */
static const char gpt2_pattern[] =
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";

static const char *type_of(json_t *obj)
{
    json_t *type = json_object_get(obj, "type");
    return json_is_string(type) ? json_string_value(type) : "";
}

/* Calls fn on each step of a component: the members of a "Sequence" (under
 * list_key), or the component itself. null components have no steps. */
typedef int (*step_fn)(fl_tokenizer *t, json_t *step, const char *path, fl_error *err);

static int for_each_step(fl_tokenizer *t, json_t *comp, const char *list_key, step_fn fn,
                         const char *path, fl_error *err)
{
    if (!comp || json_is_null(comp))
        return 0;
    if (strcmp(type_of(comp), "Sequence") != 0)
        return fn(t, comp, path, err);
    json_t *list = json_object_get(comp, list_key);
    if (!json_is_array(list))
        return fl_fail(err, "%s: a Sequence without a '%s' list", path, list_key);
    size_t i;
    json_t *step;
    json_array_foreach(list, i, step) {
        if (fn(t, step, path, err) != 0)
            return -1;
    }
    return 0;
}

static int is_false_or_null(json_t *v)
{
    return !v || json_is_null(v) || json_is_false(v);
}

/* A boolean option: absent or null is false; any other non-boolean is an
 * error (where names the member: "model.ignore_merges"), never false. */
static int get_flag(json_t *obj, const char *key, int *out, const char *path, const char *where,
                    fl_error *err)
{
    json_t *v = json_object_get(obj, key);
    *out = json_is_true(v);
    if (v && !json_is_null(v) && !json_is_boolean(v))
        return fl_fail(err, "%s: %s must be true or false", path, where);
    return 0;
}

static int empty_or_null(json_t *v)
{
    return !v || json_is_null(v) || (json_is_string(v) && json_string_length(v) == 0);
}

/* ---- normalizer ---- */

/* NFC changes nothing around a code point that has combining class 0, is
 * not the second of a canonical composition (utf8proc marks those with
 * comb_index >= 0x8000; Hangul V and T jamo compose by rule), and is its
 * own NFC. Text made only of such code points skips normalization. */
static int nfc_inert(uint32_t cp)
{
    const utf8proc_property_t *p = utf8proc_get_property((utf8proc_int32_t)cp);
    if (p->combining_class != 0 || (p->comb_index != UINT16_MAX && p->comb_index >= 0x8000) ||
        (cp >= 0x1161 && cp <= 0x1175) || (cp >= 0x11a8 && cp <= 0x11c2))
        return 0;
    if (p->decomp_seqindex == UINT16_MAX && !p->comp_exclusion)
        return 1; /* no decomposition: NFC of the character is itself */
    char utf8[4];
    int n = fl_utf8_encode(cp, utf8);
    utf8proc_uint8_t *nfc = NULL;
    utf8proc_ssize_t len = utf8proc_map((const utf8proc_uint8_t *)utf8, n, &nfc,
                                        UTF8PROC_STABLE | UTF8PROC_COMPOSE);
    int same = len == n && memcmp(nfc, utf8, (size_t)n) == 0;
    free(nfc);
    return same;
}

static int normalizer_step(fl_tokenizer *t, json_t *step, const char *path, fl_error *err)
{
    if (strcmp(type_of(step), "NFC") != 0)
        return fl_fail(err, "%s: normalizer '%s' is not supported (supported: NFC)", path,
                       type_of(step));
    t->nfc = 1;
    if (!t->nfc_inert) {
        t->nfc_inert = fl_calloc(FL_NFC_INERT_LIMIT / 8, 1);
        for (uint32_t cp = 0; cp < FL_NFC_INERT_LIMIT; cp++)
            if ((cp < 0xd800 || cp > 0xdfff) && nfc_inert(cp))
                t->nfc_inert[cp >> 3] |= (uint8_t)(1u << (cp & 7));
    }
    return 0;
}

/* ---- pre-tokenizer ---- */

static int compile_split(fl_tokenizer *t, const char *pattern, size_t len, uint32_t extra,
                         const char *path, fl_error *err)
{
    if (t->split_re)
        return fl_fail(err, "%s: more than one Split pre-tokenizer is not supported", path);
    int code;
    PCRE2_SIZE offset;
    t->split_re = pcre2_compile((PCRE2_SPTR)pattern, len, PCRE2_UTF | PCRE2_UCP | extra, &code,
                                &offset, NULL);
    if (!t->split_re) {
        PCRE2_UCHAR msg[256];
        pcre2_get_error_message(code, msg, sizeof msg);
        return fl_fail(err, "%s: pre_tokenizer Split pattern does not compile at offset %zu: %s",
                       path, (size_t)offset, (char *)msg);
    }
    pcre2_jit_compile(t->split_re, PCRE2_JIT_COMPLETE); /* falls back to the interpreter */
    return 0;
}

static int pre_tokenizer_step(fl_tokenizer *t, json_t *step, const char *path, fl_error *err)
{
    const char *type = type_of(step);
    if (strcmp(type, "ByteLevel") == 0) {
        if (!is_false_or_null(json_object_get(step, "add_prefix_space")))
            return fl_fail(err, "%s: pre_tokenizer ByteLevel add_prefix_space=true is not supported",
                           path);
        int use_regex;
        if (get_flag(step, "use_regex", &use_regex, path, "pre_tokenizer ByteLevel use_regex",
                     err) != 0)
            return -1;
        return use_regex ? compile_split(t, gpt2_pattern, PCRE2_ZERO_TERMINATED, 0, path, err) : 0;
    }
    if (strcmp(type, "Split") != 0)
        return fl_fail(err, "%s: pre_tokenizer '%s' is not supported (supported: Split, ByteLevel)",
                       path, type);
    json_t *behavior = json_object_get(step, "behavior");
    if (!json_is_string(behavior) || strcmp(json_string_value(behavior), "Isolated") != 0)
        return fl_fail(err, "%s: pre_tokenizer Split behavior must be \"Isolated\"", path);
    if (!is_false_or_null(json_object_get(step, "invert")))
        return fl_fail(err, "%s: pre_tokenizer Split invert=true is not supported", path);
    json_t *pattern = json_object_get(step, "pattern");
    json_t *regex = json_object_get(pattern, "Regex"), *literal = json_object_get(pattern, "String");
    if (json_is_string(regex))
        return compile_split(t, json_string_value(regex), json_string_length(regex), 0, path, err);
    if (json_is_string(literal))
        return compile_split(t, json_string_value(literal), json_string_length(literal),
                             PCRE2_LITERAL, path, err);
    return fl_fail(err, "%s: pre_tokenizer Split needs pattern.Regex or pattern.String", path);
}

/* ---- model ---- */

/* Sets id's decoded bytes from its token text, as HF's ByteLevel decoder
 * does: each character maps back to its byte, unless some character is not
 * in the byte map, in which case the token's own UTF-8 bytes are used. */
static void set_id_text(fl_tokenizer *t, int32_t id, const char *text, size_t len)
{
    char *bytes = fl_malloc(len + 1);
    size_t n = 0, i = 0;
    while (i < len) {
        size_t cl;
        int32_t cp = fl_utf8_next((const unsigned char *)text + i, len - i, &cl);
        int b = cp >= 0 ? fl_byte_level_byte((uint32_t)cp) : -1;
        if (b < 0) {
            memcpy(bytes, text, len);
            n = len;
            break;
        }
        bytes[n++] = (char)b;
        i += cl;
    }
    free(t->id_bytes[id]);
    t->id_bytes[id] = bytes;
    t->id_bytes_len[id] = (uint32_t)n;
}

static void grow_ids(fl_tokenizer *t, int32_t num_ids)
{
    if (num_ids <= t->num_ids)
        return;
    t->id_bytes = fl_realloc(t->id_bytes, (size_t)num_ids * sizeof(char *));
    t->id_bytes_len = fl_realloc(t->id_bytes_len, (size_t)num_ids * sizeof(uint32_t));
    t->id_special = fl_realloc(t->id_special, (size_t)num_ids);
    for (int32_t i = t->num_ids; i < num_ids; i++) {
        t->id_bytes[i] = NULL;
        t->id_bytes_len[i] = 0;
        t->id_special[i] = 0;
    }
    t->num_ids = num_ids;
}

/* A merge's two halves: ["a", "b"] or the older "a b". */
static int merge_parts(json_t *m, const char **a, size_t *alen, const char **b, size_t *blen)
{
    if (json_is_array(m) && json_array_size(m) == 2 && json_is_string(json_array_get(m, 0)) &&
        json_is_string(json_array_get(m, 1))) {
        *a = json_string_value(json_array_get(m, 0));
        *alen = json_string_length(json_array_get(m, 0));
        *b = json_string_value(json_array_get(m, 1));
        *blen = json_string_length(json_array_get(m, 1));
        return 0;
    }
    if (!json_is_string(m))
        return -1;
    const char *s = json_string_value(m), *space = strchr(s, ' ');
    if (!space || strchr(space + 1, ' '))
        return -1;
    *a = s;
    *alen = (size_t)(space - s);
    *b = space + 1;
    *blen = strlen(space + 1);
    return 0;
}

static int load_model(fl_tokenizer *t, json_t *model, const char *path, fl_error *err)
{
    if (!json_is_object(model))
        return fl_fail(err, "%s: missing field 'model'", path);
    if (strcmp(type_of(model), "BPE") != 0)
        return fl_fail(err, "%s: model type '%s' is not supported (supported: BPE)", path,
                       type_of(model));
    if (!is_false_or_null(json_object_get(model, "byte_fallback")))
        return fl_fail(err, "%s: model.byte_fallback=true is not supported", path);
    if (!empty_or_null(json_object_get(model, "continuing_subword_prefix")) ||
        !empty_or_null(json_object_get(model, "end_of_word_suffix")))
        return fl_fail(err, "%s: model.continuing_subword_prefix / end_of_word_suffix are not "
                       "supported", path);
    json_t *dropout = json_object_get(model, "dropout");
    if (dropout && !json_is_null(dropout))
        return fl_fail(err, "%s: model.dropout is not supported", path);
    if (get_flag(model, "ignore_merges", &t->ignore_merges, path, "model.ignore_merges", err) != 0)
        return -1;

    json_t *vocab = json_object_get(model, "vocab");
    if (!json_is_object(vocab) || json_object_size(vocab) == 0)
        return fl_fail(err, "%s: missing or empty field 'model.vocab'", path);
    fl_bytemap_init(&t->vocab, json_object_size(vocab));
    int32_t max_id = -1;
    const char *key;
    json_t *v;
    json_object_foreach(vocab, key, v) {
        if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) >= (1 << 24))
            return fl_fail(err, "%s: model.vocab['%s'] is not an id", path, key);
        if (json_integer_value(v) > max_id)
            max_id = (int32_t)json_integer_value(v);
    }
    grow_ids(t, max_id + 1);
    json_object_foreach(vocab, key, v) {
        size_t len = strlen(key);
        fl_bytemap_put(&t->vocab, key, len, (uint64_t)json_integer_value(v));
        set_id_text(t, (int32_t)json_integer_value(v), key, len);
    }
    for (int b = 0; b < 256; b++) {
        char ch[4];
        int n = fl_utf8_encode(fl_byte_level_char((uint8_t)b), ch);
        uint64_t id;
        if (!fl_bytemap_get(&t->vocab, ch, (size_t)n, &id))
            return fl_fail(err, "%s: model.vocab lacks the byte-level token of byte 0x%02x", path, b);
        t->byte_token[b] = (int32_t)id;
    }

    json_t *merges = json_object_get(model, "merges");
    if (!json_is_array(merges))
        return fl_fail(err, "%s: missing or non-list field 'model.merges'", path);
    fl_bytemap_init(&t->merges, json_array_size(merges));
    fl_strbuf joined = { 0 };
    size_t rank;
    json_t *m;
    int rc = 0;
    json_array_foreach(merges, rank, m) {
        const char *a, *b;
        size_t alen, blen;
        uint64_t ida, idb, idm;
        if (merge_parts(m, &a, &alen, &b, &blen) != 0) {
            rc = fl_fail(err, "%s: model.merges[%zu] is not a pair of tokens", path, rank);
            break;
        }
        fl_strbuf_clear(&joined);
        fl_strbuf_append(&joined, a, alen);
        fl_strbuf_append(&joined, b, blen);
        if (!fl_bytemap_get(&t->vocab, a, alen, &ida) || !fl_bytemap_get(&t->vocab, b, blen, &idb) ||
            !fl_bytemap_get(&t->vocab, joined.data, joined.len, &idm)) {
            rc = fl_fail(err, "%s: model.merges[%zu] ('%.*s' + '%.*s') uses or makes a token not "
                         "in model.vocab", path, rank, (int)alen, a, (int)blen, b);
            break;
        }
        int32_t pair[2] = { (int32_t)ida, (int32_t)idb };
        uint64_t existing;
        if (!fl_bytemap_get(&t->merges, pair, sizeof pair, &existing)) /* first rank wins */
            fl_bytemap_put(&t->merges, pair, sizeof pair, ((uint64_t)rank + 1) << 32 | idm);
    }
    fl_strbuf_free(&joined);
    return rc;
}

/* ---- added tokens ---- */

static int load_added_tokens(fl_tokenizer *t, json_t *list, const char *path, fl_error *err)
{
    if (!list || json_is_null(list))
        return 0;
    if (!json_is_array(list))
        return fl_fail(err, "%s: field 'added_tokens' is not a list", path);
    t->added = fl_calloc(json_array_size(list) + 1, sizeof(fl_added_token));
    size_t i;
    json_t *a;
    json_array_foreach(list, i, a) {
        json_t *id = json_object_get(a, "id"), *content = json_object_get(a, "content");
        if (!json_is_integer(id) || json_integer_value(id) < 0 || json_integer_value(id) >= (1 << 24) ||
            !json_is_string(content) || json_string_length(content) == 0)
            return fl_fail(err, "%s: added_tokens[%zu] needs an 'id' and a non-empty 'content'",
                           path, i);
        static const char *const unsupported[] = { "lstrip", "rstrip", "single_word", "normalized" };
        char where[64];
        int flag;
        for (size_t k = 0; k < 4; k++) {
            snprintf(where, sizeof where, "added_tokens[%zu].%s", i, unsupported[k]);
            if (get_flag(a, unsupported[k], &flag, path, where, err) != 0)
                return -1;
            if (flag)
                return fl_fail(err, "%s: added_tokens[%zu] ('%s'): %s=true is not supported", path,
                               i, json_string_value(content), unsupported[k]);
        }
        snprintf(where, sizeof where, "added_tokens[%zu].special", i);
        if (get_flag(a, "special", &flag, path, where, err) != 0)
            return -1;
        fl_added_token *tok = &t->added[t->num_added++];
        tok->len = json_string_length(content);
        tok->content = fl_malloc(tok->len + 1);
        memcpy(tok->content, json_string_value(content), tok->len + 1);
        tok->id = (int32_t)json_integer_value(id);
        tok->special = flag;
        grow_ids(t, tok->id + 1);
        set_id_text(t, tok->id, tok->content, tok->len);
        t->id_special[tok->id] = (uint8_t)tok->special;
        t->added_first[(unsigned char)tok->content[0]] = 1;
    }
    return 0;
}

/* ---- post-processor ---- */

static int template_piece(fl_tokenizer *t, json_t *piece, json_t *specials, int *seen_sequence,
                          const char *path, fl_error *err)
{
    json_t *seq = json_object_get(piece, "Sequence");
    json_t *special = json_object_get(piece, "SpecialToken");
    if (seq) {
        if (*seen_sequence)
            return fl_fail(err, "%s: post_processor template names its sequence twice", path);
        *seen_sequence = 1;
        return 0;
    }
    json_t *name = json_object_get(special, "id");
    json_t *ids = json_object_get(json_object_get(specials, json_string_value(name)), "ids");
    if (!json_is_string(name) || !json_is_array(ids))
        return fl_fail(err, "%s: post_processor template piece is not a known SpecialToken", path);
    size_t i;
    json_t *id;
    json_array_foreach(ids, i, id) {
        int *count = *seen_sequence ? &t->num_suffix : &t->num_prefix;
        int32_t *dst = *seen_sequence ? t->suffix_ids : t->prefix_ids;
        /* The model and added tokens are loaded by now: num_ids is final. */
        if (!json_is_integer(id) || json_integer_value(id) < 0 ||
            json_integer_value(id) >= t->num_ids)
            return fl_fail(err, "%s: post_processor special token '%s': ids[%zu] is not a token id "
                           "in [0, %d)", path, json_string_value(name), i, (int)t->num_ids);
        if (*count == FL_TOK_MAX_TEMPLATE)
            return fl_fail(err, "%s: post_processor template has more than %d special ids on a "
                           "side", path, FL_TOK_MAX_TEMPLATE);
        dst[(*count)++] = (int32_t)json_integer_value(id);
    }
    return 0;
}

static int post_processor_step(fl_tokenizer *t, json_t *step, const char *path, fl_error *err)
{
    const char *type = type_of(step);
    if (strcmp(type, "ByteLevel") == 0)
        return 0; /* only adjusts offsets */
    if (strcmp(type, "TemplateProcessing") != 0)
        return fl_fail(err, "%s: post_processor '%s' is not supported (supported: ByteLevel, "
                       "TemplateProcessing)", path, type);
    json_t *single = json_object_get(step, "single");
    json_t *specials = json_object_get(step, "special_tokens");
    if (!json_is_array(single))
        return fl_fail(err, "%s: post_processor TemplateProcessing without a 'single' template",
                       path);
    int seen_sequence = 0;
    size_t i;
    json_t *piece;
    json_array_foreach(single, i, piece) {
        if (template_piece(t, piece, specials, &seen_sequence, path, err) != 0)
            return -1;
    }
    return 0;
}

static int decoder_step(fl_tokenizer *t, json_t *step, const char *path, fl_error *err)
{
    (void)t;
    if (strcmp(type_of(step), "ByteLevel") != 0)
        return fl_fail(err, "%s: decoder '%s' is not supported (supported: ByteLevel)", path,
                       type_of(step));
    return 0;
}

/* ---- tokenizer_config.json ---- */

/* A special token named in tokenizer_config.json: a string, an AddedToken
 * object with "content", or null (-1). */
static int config_token(const fl_tokenizer *t, json_t *cfg, const char *key, int32_t *out,
                        const char *path, fl_error *err)
{
    json_t *v = json_object_get(cfg, key);
    if (json_is_object(v))
        v = json_object_get(v, "content");
    *out = -1;
    if (!v || json_is_null(v))
        return 0;
    if (!json_is_string(v))
        return fl_fail(err, "%s: field '%s' is not a token", path, key);
    *out = fl_tokenizer_token_id(t, json_string_value(v));
    if (*out < 0)
        return fl_fail(err, "%s: field '%s' names '%s', which is not a token of tokenizer.json",
                       path, key, json_string_value(v));
    return 0;
}

/* add_bos_token / add_eos_token: transformers' fast tokenizers rebuild
 * their post-processor from these flags; here the template gains the BOS
 * in front or the EOS behind, unless it already has it there. */
static int apply_add_flags(fl_tokenizer *t, json_t *cfg, const char *path, fl_error *err)
{
    static const char *const keys[2] = { "add_bos_token", "add_eos_token" };
    for (int k = 0; k < 2; k++) {
        int flag;
        if (get_flag(cfg, keys[k], &flag, path, keys[k], err) != 0)
            return -1;
        if (!flag)
            continue;
        int32_t id = k == 0 ? t->bos_id : t->eos_id;
        if (id < 0)
            return fl_fail(err, "%s: field '%s' is true but no %s is set", path, keys[k],
                           k == 0 ? "bos_token" : "eos_token");
        int *count = k == 0 ? &t->num_prefix : &t->num_suffix;
        int32_t *ids = k == 0 ? t->prefix_ids : t->suffix_ids;
        int present = *count > 0 && ids[k == 0 ? 0 : *count - 1] == id;
        if (present)
            continue;
        if (*count == FL_TOK_MAX_TEMPLATE)
            return fl_fail(err, "%s: too many special tokens around a sequence", path);
        if (k == 0)
            memmove(ids + 1, ids, (size_t)*count * sizeof(int32_t));
        ids[k == 0 ? 0 : *count] = id;
        (*count)++;
    }
    return 0;
}

static int load_config(fl_tokenizer *t, const char *dir, fl_error *err)
{
    t->bos_id = t->eos_id = t->pad_id = -1;
    char *path = fl_path_join(dir, "tokenizer_config.json");
    struct stat st;
    if (stat(path, &st) != 0) {
        free(path);
        return 0; /* optional */
    }
    /* Integers as reals: some configs hold model_max_length = 1e30. */
    json_t *cfg = fl_json_load_file(path, JSON_DECODE_INT_AS_REAL, err);
    int rc = -1;
    if (!cfg)
        goto out;
    if (config_token(t, cfg, "bos_token", &t->bos_id, path, err) != 0 ||
        config_token(t, cfg, "eos_token", &t->eos_id, path, err) != 0 ||
        config_token(t, cfg, "pad_token", &t->pad_id, path, err) != 0)
        goto out;
    if (apply_add_flags(t, cfg, path, err) != 0)
        goto out;
    json_t *tpl = json_object_get(cfg, "chat_template");
    if (json_is_array(tpl)) { /* [{name, template}]: the one named "default" */
        size_t i;
        json_t *named;
        json_t *chosen = NULL;
        json_array_foreach(tpl, i, named) {
            json_t *name = json_object_get(named, "name");
            if (json_is_string(name) && strcmp(json_string_value(name), "default") == 0)
                chosen = json_object_get(named, "template");
        }
        tpl = chosen;
    }
    if (tpl && !json_is_null(tpl) && !json_is_string(tpl)) {
        fl_fail(err, "%s: field 'chat_template' is not a string", path);
        goto out;
    }
    if (json_is_string(tpl))
        t->chat_template = fl_strdup(json_string_value(tpl));
    rc = 0;
out:
    json_decref(cfg);
    free(path);
    return rc;
}

/* ---- entry point ---- */

static int load_json(fl_tokenizer *t, json_t *root, const char *path, fl_error *err)
{
    if (!json_is_object(root))
        return fl_fail(err, "%s: not a JSON object", path);
    if (load_model(t, json_object_get(root, "model"), path, err) != 0 ||
        load_added_tokens(t, json_object_get(root, "added_tokens"), path, err) != 0 ||
        for_each_step(t, json_object_get(root, "normalizer"), "normalizers", normalizer_step, path,
                      err) != 0 ||
        for_each_step(t, json_object_get(root, "pre_tokenizer"), "pretokenizers",
                      pre_tokenizer_step, path, err) != 0 ||
        for_each_step(t, json_object_get(root, "post_processor"), "processors",
                      post_processor_step, path, err) != 0 ||
        for_each_step(t, json_object_get(root, "decoder"), "decoders", decoder_step, path, err) != 0)
        return -1;
    return 0;
}

int fl_tokenizer_load(fl_tokenizer *t, const char *dir, fl_error *err)
{
    memset(t, 0, sizeof *t);
    char *path = fl_path_join(dir, "tokenizer.json");
    json_t *root = fl_json_load_file(path, 0, err);
    int rc = root ? load_json(t, root, path, err) : -1;
    json_decref(root);
    free(path);
    if (rc == 0)
        rc = load_config(t, dir, err);
    if (rc != 0)
        fl_tokenizer_free(t);
    return rc;
}

void fl_tokenizer_free(fl_tokenizer *t)
{
    for (int32_t i = 0; i < t->num_ids; i++)
        free(t->id_bytes[i]);
    free(t->id_bytes);
    free(t->id_bytes_len);
    free(t->id_special);
    fl_bytemap_free(&t->vocab);
    fl_bytemap_free(&t->merges);
    for (int i = 0; i < t->num_added; i++)
        free(t->added[i].content);
    free(t->added);
    pcre2_code_free(t->split_re);
    free(t->chat_template);
    free(t->nfc_inert);
    memset(t, 0, sizeof *t);
}
