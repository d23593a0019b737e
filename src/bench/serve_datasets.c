/* serve_datasets.c - the prompts of `flashlm bench serve`: vLLM's datasets
 * (see serve_datasets.h). */
#include "bench/serve_datasets.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "base/rng.h"
#include "base/strbuf.h"
#include "tokenizer/chat_template.h"

void fl_serve_dataset_defaults(fl_serve_dataset_opts *o)
{
    *o = (fl_serve_dataset_opts){ .dataset = "random", .input_len = 1024, .output_len = 128, .num_prompts = 1000,
                                  .sharegpt_output_len = -1, .sonnet_input_len = 550, .sonnet_output_len = 150,
                                  .sonnet_prefix_len = 200, .rep_prefix_len = 256, .rep_suffix_len = 256,
                                  .rep_num_prefixes = 10, .rep_output_len = 128 };
}

static char *decode(const fl_tokenizer *tok, const int32_t *ids, size_t n)
{
    fl_strbuf s = { 0 };
    fl_tokenizer_decode(tok, ids, n, 0, &s);
    return fl_strbuf_take(&s);
}

/* Appends to ids, which holds a start of its own, random ids of non-special
 * tokens; then re-counts the decoded text and trims or tops up until it is
 * exactly len tokens (a few rounds; the last text is kept if they do not
 * converge). Returns the text, or with want_text 0 NULL (ids hold the
 * tokens). Draws from key. */
static char *exact_tokens(const fl_serve_dataset_opts *o, const fl_tokenizer *tok, fl_tok_scratch *s, fl_ids *ids,
                          int len, uint64_t key, int want_text)
{
    fl_ids counted = { 0 };
    uint64_t draw = 0;
    char *text = NULL;
    for (int round = 0; round < 10; round++) {
        while ((int)ids->len < len) {
            int32_t id = (int32_t)(fl_rng_at(key, draw++) % (uint64_t)tok->num_ids);
            if (tok->id_bytes[id] && !tok->id_special[id])
                fl_ids_push(ids, id);
        }
        free(text);
        text = decode(tok, ids->data, ids->len);
        int n = o->count(o->count_ud, tok, s, text, &counted);
        if (n == len)
            break;
        /* continue from what the text really encodes to, cut to length */
        ids->len = 0;
        for (int i = 0; i < n && i < len; i++)
            fl_ids_push(ids, counted.data[i]);
    }
    fl_ids_free(&counted);
    if (!want_text) {
        free(text);
        return NULL;
    }
    return text;
}

/* Fisher-Yates on fl_rng (vLLM shuffles with Python's random: the same
 * uniform orders, other draws). */
static void shuffle(void *items, size_t n, size_t size, uint64_t key)
{
    char *a = items, tmp[64];
    FL_ASSERT(size <= sizeof tmp);
    for (size_t i = n; i > 1; i--) {
        size_t j = (size_t)(fl_rng_at(key, i) % i);
        memcpy(tmp, a + (i - 1) * size, size);
        memmove(a + (i - 1) * size, a + j * size, size);
        memcpy(a + j * size, tmp, size);
    }
}

/* vLLM's oversampling: a dataset with fewer usable entries than
 * --num-prompts is filled up with copies of random ones, unless
 * --no-oversample. */
static int oversample(const fl_serve_dataset_opts *o, fl_serve_prompt *p, int n)
{
    if (o->no_oversample || n == 0)
        return n;
    const uint64_t key = fl_rng_key((uint64_t)o->seed, 7);
    for (int i = n; i < o->num_prompts; i++) {
        p[i] = p[fl_rng_at(key, (uint64_t)i) % (uint64_t)n];
        p[i].text = fl_strdup(p[i].text);
    }
    return o->num_prompts;
}

/* vLLM's dataset_utils.is_valid_sequence with its defaults: a prompt of at
 * least 4 and at most 1024 tokens, an output of at least 4 (unless fixed by
 * the user), at most 2048 together. */
static int valid_sequence(int prompt_len, int output_len, int skip_min_output)
{
    return prompt_len >= 4 && (skip_min_output || output_len >= 4) && prompt_len <= 1024 &&
           prompt_len + output_len <= 2048;
}

static int random_dataset(const fl_serve_dataset_opts *o, const fl_tokenizer *tok, fl_tok_scratch *s, fl_serve_prompt *p)
{
    const uint64_t key = fl_rng_key((uint64_t)o->seed, 0);
    fl_ids prefix = { 0 }, ids = { 0 };
    for (int d = 0; (int)prefix.len < o->prefix_len; d++) {
        int32_t id = (int32_t)(fl_rng_at(key, (uint64_t)d) % (uint64_t)tok->num_ids);
        if (tok->id_bytes[id] && !tok->id_special[id])
            fl_ids_push(&prefix, id);
    }
    /* vLLM's bounds: floor below, ceil above, an output of at least 1 */
    const int in_lo = (int)floor(o->input_len * (1.0 - o->range_ratio));
    const int in_hi = (int)ceil(o->input_len * (1.0 + o->range_ratio));
    const int out_lo = (int)fmax(1, floor(o->output_len * (1.0 - o->range_ratio)));
    const int out_hi = (int)fmax(1, ceil(o->output_len * (1.0 + o->range_ratio)));
    for (int n = 0; n < o->num_prompts; n++) {
        const uint64_t r = fl_rng_at(key, 1000000 + (uint64_t)n);
        int len = o->prefix_len + in_lo + (int)(r % (uint64_t)(in_hi - in_lo + 1));
        ids.len = 0;
        for (size_t i = 0; i < prefix.len && (int)i < len; i++)
            fl_ids_push(&ids, prefix.data[i]);
        p[n].text = exact_tokens(o, tok, s, &ids, len < 1 ? 1 : len, fl_rng_key((uint64_t)o->seed, 1 + (uint64_t)n), 1);
        p[n].len = o->count(o->count_ud, tok, s, p[n].text, &ids);
        p[n].max_tokens = out_lo + (int)((r >> 32) % (uint64_t)(out_hi - out_lo + 1));
    }
    fl_ids_free(&prefix);
    fl_ids_free(&ids);
    return o->num_prompts;
}

/* One prompt a line, {"prompt": "...", "output_tokens": N} (N optional). */
static int custom_dataset(const fl_serve_dataset_opts *o, const fl_tokenizer *tok, fl_tok_scratch *s, fl_serve_prompt *p, fl_error *err)
{
    FILE *f = fopen(o->dataset_path, "r");
    if (!f)
        return fl_fail(err, "--dataset-path: cannot open '%s'", o->dataset_path);
    char *line = NULL;
    size_t cap = 0;
    int n = 0, rc = 0;
    fl_ids tmp = { 0 };
    for (int lineno = 1; n < o->num_prompts && getline(&line, &cap, f) > 0; lineno++) {
        json_error_t jerr;
        json_t *j = json_loads(line, 0, &jerr);
        json_t *text = json_object_get(j, "prompt");
        if (!json_is_string(text)) {
            rc = fl_fail(err, "%s:%d: a line must be {\"prompt\": \"...\"}", o->dataset_path, lineno);
            json_decref(j);
            break;
        }
        json_t *out_len = json_object_get(j, "output_tokens");
        p[n].text = fl_strdup(json_string_value(text));
        p[n].len = o->count(o->count_ud, tok, s, p[n].text, &tmp);
        p[n].max_tokens = json_is_integer(out_len) ? (int)json_integer_value(out_len) : o->output_len;
        n++;
        json_decref(j);
    }
    free(line);
    fclose(f);
    fl_ids_free(&tmp);
    return rc == 0 ? n : -1;
}

/* ShareGPT's JSON: a list of {"conversations": [{"from": "human", "value":
 * ...}, {"from": "gpt", "value": ...}, ...]}. As vLLM: entries with at
 * least two turns, shuffled by the seed (unless --disable-shuffle); turn 0
 * is the prompt, turn 1's token count the output length (unless
 * --sharegpt-output-len); too short or long pairs skipped. */
static int sharegpt_dataset(const fl_serve_dataset_opts *o, const fl_tokenizer *tok, fl_tok_scratch *s, fl_serve_prompt *p, fl_error *err)
{
    json_error_t jerr;
    json_t *data = json_load_file(o->dataset_path, 0, &jerr);
    if (!json_is_array(data)) {
        json_decref(data);
        return fl_fail(err, "--dataset-path: '%s' is not a ShareGPT JSON list (%s, line %d)", o->dataset_path,
                       jerr.text, jerr.line);
    }
    size_t num = 0, i;
    json_t **entries = fl_calloc(json_array_size(data) + 1, sizeof(json_t *)), *e;
    json_array_foreach(data, i, e) {
        json_t *conv = json_object_get(e, "conversations");
        if (json_is_array(conv) && json_array_size(conv) >= 2)
            entries[num++] = e;
    }
    if (!o->disable_shuffle)
        shuffle(entries, num, sizeof(json_t *), fl_rng_key((uint64_t)o->seed, 5));
    int n = 0;
    fl_ids tmp = { 0 };
    for (i = 0; i < num && n < o->num_prompts; i++) {
        json_t *conv = json_object_get(entries[i], "conversations");
        const char *q = json_string_value(json_object_get(json_array_get(conv, 0), "value"));
        const char *a = json_string_value(json_object_get(json_array_get(conv, 1), "value"));
        if (!q || !a)
            continue;
        const int in_len = o->count(o->count_ud, tok, s, q, &tmp);
        const int out_len = o->sharegpt_output_len >= 0 ? o->sharegpt_output_len : o->count(o->count_ud, tok, s, a, &tmp);
        if (!valid_sequence(in_len, out_len, o->sharegpt_output_len >= 0))
            continue;
        p[n++] = (fl_serve_prompt){ .text = fl_strdup(q), .len = in_len, .max_tokens = out_len };
    }
    fl_ids_free(&tmp);
    free(entries);
    json_decref(data);
    if (n == 0)
        return fl_fail(err, "--dataset-path: '%s' has no usable conversation (two turns, 4 to 1024 prompt tokens, "
                       "at most 2048 in all)", o->dataset_path);
    return oversample(o, p, n);
}

/* The user message in the tokenizer's chat template with the generation
 * prompt, as apply_chat_template(tokenize=False). */
static char *chat_format(const fl_chat_template *ct, const char *text, fl_error *err)
{
    json_t *msgs = json_pack("[{s:s,s:s}]", "role", "user", "content", text);
    fl_strbuf out = { 0 };
    int rc = fl_chat_template_render(ct, msgs, NULL, 1, &out, err);
    json_decref(msgs);
    if (rc != 0) {
        fl_strbuf_free(&out);
        return NULL;
    }
    return fl_strbuf_take(&out);
}

/* vLLM's sonnet: the base instruction, the file's first lines as a shared
 * prefix (about --sonnet-prefix-len tokens) and random lines up to about
 * --sonnet-input-len tokens, counted in the chat template; prompts longer
 * than the input length are drawn again. The openai backend sends the
 * formatted text, openai-chat the plain one. */
static int sonnet_dataset(const fl_serve_dataset_opts *o, const fl_tokenizer *tok, fl_tok_scratch *s, fl_serve_prompt *p, fl_error *err)
{
    static const char base[] = "Pick as many lines as you can from these poem lines:\n";
    if (!tok->chat_template)
        return fl_fail(err, "--dataset-name sonnet: the tokenizer has no chat template");
    FILE *f = fopen(o->dataset_path, "r");
    if (!f)
        return fl_fail(err, "--dataset-path: cannot open '%s'", o->dataset_path);
    char **lines = NULL, *line = NULL;
    size_t cap = 0, num = 0, lcap = 0;
    while (getline(&line, &cap, f) > 0) {
        if (num == lcap)
            lines = fl_realloc(lines, (lcap = lcap ? 2 * lcap : 64) * sizeof(char *));
        lines[num++] = fl_strdup(line);
    }
    free(line);
    fclose(f);
    fl_chat_template ct = { 0 };
    fl_ids tmp = { 0 };
    int n = 0, rc = 0;
    if (num == 0) {
        rc = fl_fail(err, "--dataset-path: '%s' has no lines", o->dataset_path);
        goto done;
    }
    if (fl_chat_template_init(&ct, tok->chat_template, "tokenizer_config.json", tok, err) != 0) {
        rc = -1;
        goto done;
    }
    double total = 0;
    for (size_t i = 0; i < num; i++)
        total += o->count(o->count_ud, tok, s, lines[i], &tmp);
    const double avg = total / (double)num;
    char *fmt = chat_format(&ct, base, err);
    if (!fmt) {
        rc = -1;
        goto done;
    }
    const int base_offset = o->count(o->count_ud, tok, s, fmt, &tmp);
    free(fmt);
    if (o->sonnet_input_len <= base_offset) {
        rc = fl_fail(err, "--sonnet-input-len: %d must be more than the base prompt's %d tokens", o->sonnet_input_len,
                     base_offset);
        goto done;
    }
    const int num_input = (int)lround((o->sonnet_input_len - base_offset) / avg);
    const int num_prefix = (int)fmax(0, (double)lround((o->sonnet_prefix_len - base_offset) / avg));
    const uint64_t key = fl_rng_key((uint64_t)o->seed, 6);
    uint64_t draw = 0;
    for (int attempt = 0; n < o->num_prompts; attempt++) {
        if (attempt > 100 * o->num_prompts + 1000) {
            rc = fl_fail(err, "--sonnet-input-len: %d: no draw of %d lines of '%s' fits in it", o->sonnet_input_len,
                         num_input, o->dataset_path);
            goto done;
        }
        fl_strbuf text = { 0 };
        fl_strbuf_append(&text, base, sizeof base - 1);
        for (int i = 0; i < num_prefix && (size_t)i < num; i++)
            fl_strbuf_append(&text, lines[i], strlen(lines[i]));
        for (int i = 0; i < num_input - num_prefix; i++) {
            const char *l = lines[fl_rng_at(key, draw++) % num];
            fl_strbuf_append(&text, l, strlen(l));
        }
        char *formatted = chat_format(&ct, text.data, err);
        if (!formatted) {
            fl_strbuf_free(&text);
            rc = -1;
            goto done;
        }
        const int len = o->count(o->count_ud, tok, s, formatted, &tmp);
        if (len <= o->sonnet_input_len) {
            p[n++] = (fl_serve_prompt){ .text = o->chat ? fl_strbuf_take(&text) : formatted, .len = len,
                               .max_tokens = o->sonnet_output_len };
            if (o->chat)
                free(formatted);
        } else {
            free(formatted);
        }
        fl_strbuf_free(&text);
    }
done:
    for (size_t i = 0; i < num; i++)
        free(lines[i]);
    free(lines);
    fl_ids_free(&tmp);
    if (ct.jinja)
        fl_chat_template_free(&ct);
    return rc == 0 ? n : -1;
}

/* vLLM's prefix_repetition: --prefix-repetition-num-prefixes random
 * prefixes, each followed by num_prompts / num_prefixes random suffixes (so
 * num_prefixes * that many prompts), every part exactly its length in
 * tokens; shuffled unless --disable-shuffle. */
static int prefix_repetition_dataset(const fl_serve_dataset_opts *o, const fl_tokenizer *tok, fl_tok_scratch *s, fl_serve_prompt *p)
{
    const int per_prefix = o->num_prompts / o->rep_num_prefixes;
    fl_ids pre = { 0 }, suf = { 0 }, all = { 0 };
    int n = 0;
    for (int k = 0; k < o->rep_num_prefixes; k++) {
        pre.len = 0;
        exact_tokens(o, tok, s, &pre, o->rep_prefix_len, fl_rng_key((uint64_t)o->seed, 1000 + (uint64_t)k), 0);
        for (int j = 0; j < per_prefix; j++, n++) {
            suf.len = 0;
            exact_tokens(o, tok, s, &suf, o->rep_suffix_len, fl_rng_key((uint64_t)o->seed, 1u << 20 | (uint64_t)n), 0);
            all.len = 0;
            for (size_t i = 0; i < pre.len; i++)
                fl_ids_push(&all, pre.data[i]);
            for (size_t i = 0; i < suf.len; i++)
                fl_ids_push(&all, suf.data[i]);
            p[n] = (fl_serve_prompt){ .text = decode(tok, all.data, all.len), .len = (int)all.len,
                             .max_tokens = o->rep_output_len };
        }
    }
    fl_ids_free(&pre);
    fl_ids_free(&suf);
    fl_ids_free(&all);
    if (!o->disable_shuffle)
        shuffle(p, (size_t)n, sizeof(fl_serve_prompt), fl_rng_key((uint64_t)o->seed, 8));
    return n;
}

int fl_serve_build_prompts(fl_serve_dataset_opts *o, const fl_tokenizer *tok, fl_serve_count_fn count, void *ud,
                           fl_serve_prompt **out, fl_error *err)
{
    o->count = count;
    o->count_ud = ud;
    fl_tok_scratch s;
    fl_tok_scratch_init(&s, tok);
    fl_serve_prompt *p = fl_calloc((size_t)o->num_prompts, sizeof(fl_serve_prompt));
    int n;
    if (strcmp(o->dataset, "custom") == 0)
        n = custom_dataset(o, tok, &s, p, err);
    else if (strcmp(o->dataset, "sharegpt") == 0)
        n = sharegpt_dataset(o, tok, &s, p, err);
    else if (strcmp(o->dataset, "sonnet") == 0)
        n = sonnet_dataset(o, tok, &s, p, err);
    else if (strcmp(o->dataset, "prefix_repetition") == 0)
        n = prefix_repetition_dataset(o, tok, &s, p);
    else
        n = random_dataset(o, tok, &s, p);
    fl_tok_scratch_free(&s);
    *out = p;
    if (n == 0)
        n = fl_fail(err, "no prompts");
    return n;
}
