/* tokenizer.c - encoding and decoding (loading is in tokenizer_load.c).
 *
 * Encode: clean the bytes to UTF-8, cut the text at added tokens (leftmost,
 * longest), NFC each remaining segment, split it with the pre-tokenizer
 * pattern (matches and the gaps between them are words), BPE each word, and
 * wrap the result in the post-processor template. */
#include "tokenizer/tokenizer.h"

#include <string.h>
#include <utf8proc.h>

#include "base/alloc.h"
#include "base/utf8.h"
#include "tokenizer/bpe.h"

void fl_ids_push(fl_ids *v, int32_t id)
{
    if (v->len == v->cap) {
        v->cap = v->cap ? v->cap * 2 : 64;
        v->data = fl_realloc(v->data, v->cap * sizeof(int32_t));
    }
    v->data[v->len++] = id;
}

void fl_ids_free(fl_ids *v)
{
    free(v->data);
    memset(v, 0, sizeof *v);
}

void fl_tok_scratch_init(fl_tok_scratch *s, const fl_tokenizer *t)
{
    memset(s, 0, sizeof *s);
    if (t->split_re)
        s->match = pcre2_match_data_create_from_pattern(t->split_re, NULL);
    fl_bytemap_init(&s->cache, CACHE_WORDS);
}

void fl_tok_scratch_free(fl_tok_scratch *s)
{
    pcre2_match_data_free(s->match);
    fl_strbuf_free(&s->text);
    fl_strbuf_free(&s->norm);
    fl_strbuf_free(&s->word);
    fl_bytemap_free(&s->cache);
    fl_ids_free(&s->cache_ids);
    fl_bpe_scratch_free(s);
    memset(s, 0, sizeof *s);
}

/* Splits text with the pre-tokenizer pattern and BPEs every piece. */
static void encode_words(const fl_tokenizer *t, fl_tok_scratch *s, const char *text, size_t n,
                         fl_ids *out)
{
    const unsigned char *u = (const unsigned char *)text;
    if (!t->split_re) {
        if (n)
            fl_bpe_word(t, s, u, n, out);
        return;
    }
    size_t pos = 0, last = 0;
    while (pos < n) {
        int rc = pcre2_match(t->split_re, u, n, pos, PCRE2_NO_UTF_CHECK, s->match, NULL);
        if (rc < 0)
            break;
        const PCRE2_SIZE *ov = pcre2_get_ovector_pointer(s->match);
        size_t start = ov[0], end = ov[1];
        if (start > last)
            fl_bpe_word(t, s, u + last, start - last, out); /* the gap before the match */
        if (end > start) {
            fl_bpe_word(t, s, u + start, end - start, out);
            last = pos = end;
        } else {
            size_t len = 1; /* an empty match: step over one character */
            fl_utf8_next(u + end, n - end, &len);
            pos = end + len;
        }
    }
    if (last < n)
        fl_bpe_word(t, s, u + last, n - last, out);
}

/* 1 if NFC leaves text as it is: every code point is in the inert set. */
static int nfc_unchanged(const fl_tokenizer *t, const char *text, size_t n)
{
    const unsigned char *u = (const unsigned char *)text;
    for (size_t i = 0; i < n;) {
        if (u[i] < 0x80) {
            i++;
            continue;
        }
        size_t len;
        int32_t cp = fl_utf8_next(u + i, n - i, &len);
        if (cp < 0 || cp >= FL_NFC_INERT_LIMIT || !(t->nfc_inert[cp >> 3] & (1u << (cp & 7))))
            return 0;
        i += len;
    }
    return 1;
}

/* Normalises one segment between added tokens, then encodes its words. */
static void encode_segment(const fl_tokenizer *t, fl_tok_scratch *s, const char *text, size_t n,
                           fl_ids *out)
{
    if (!t->nfc || nfc_unchanged(t, text, n)) {
        encode_words(t, s, text, n, out);
        return;
    }
    utf8proc_uint8_t *nfc = NULL;
    utf8proc_ssize_t len = utf8proc_map((const utf8proc_uint8_t *)text, (utf8proc_ssize_t)n, &nfc,
                                        UTF8PROC_STABLE | UTF8PROC_COMPOSE);
    if (len < 0) { /* cannot happen on clean UTF-8; encode unnormalised */
        encode_words(t, s, text, n, out);
        return;
    }
    fl_strbuf_clear(&s->norm);
    fl_strbuf_append(&s->norm, nfc, (size_t)len);
    free(nfc);
    encode_words(t, s, s->norm.data, s->norm.len, out);
}

/* The longest added token at text[i], or NULL. */
static const fl_added_token *added_at(const fl_tokenizer *t, const char *text, size_t n, size_t i)
{
    const fl_added_token *best = NULL;
    for (int k = 0; k < t->num_added; k++) {
        const fl_added_token *a = &t->added[k];
        if (a->len <= n - i && (!best || a->len > best->len) &&
            memcmp(text + i, a->content, a->len) == 0)
            best = a;
    }
    return best;
}

/* Cleans text to UTF-8 and encodes it, cutting it at added tokens first
 * when match_added. */
static void encode_text(const fl_tokenizer *t, fl_tok_scratch *s, const char *text, size_t len,
                        int match_added, fl_ids *out)
{
    fl_strbuf_clear(&s->text);
    fl_utf8_append_lossy(&s->text, (const unsigned char *)text, len, 1);
    const char *p = s->text.data ? s->text.data : "";
    const size_t n = s->text.len;
    size_t seg = 0;
    for (size_t i = 0; match_added && i < n;) {
        const fl_added_token *a = t->added_first[(unsigned char)p[i]] ? added_at(t, p, n, i) : NULL;
        if (!a) {
            i++;
            continue;
        }
        encode_segment(t, s, p + seg, i - seg, out);
        fl_ids_push(out, a->id);
        i += a->len;
        seg = i;
    }
    encode_segment(t, s, p + seg, n - seg, out);
}

void fl_tokenizer_encode(const fl_tokenizer *t, fl_tok_scratch *s, const char *text, size_t len,
                         int add_special_tokens, fl_ids *out)
{
    for (int i = 0; add_special_tokens && i < t->num_prefix; i++)
        fl_ids_push(out, t->prefix_ids[i]);
    encode_text(t, s, text, len, 1, out);
    for (int i = 0; add_special_tokens && i < t->num_suffix; i++)
        fl_ids_push(out, t->suffix_ids[i]);
}

void fl_tokenizer_encode_ordinary(const fl_tokenizer *t, fl_tok_scratch *s, const char *text,
                                  size_t len, fl_ids *out)
{
    encode_text(t, s, text, len, 0, out);
}

/* Appends the bytes of id unless it is skipped. */
static void append_id_bytes(const fl_tokenizer *t, int32_t id, int skip_special, fl_strbuf *bytes)
{
    if (id < 0 || id >= t->num_ids || !t->id_bytes[id] || (skip_special && t->id_special[id]))
        return;
    fl_strbuf_append(bytes, t->id_bytes[id], t->id_bytes_len[id]);
}

void fl_tokenizer_decode(const fl_tokenizer *t, const int32_t *ids, size_t n,
                         int skip_special_tokens, fl_strbuf *out)
{
    fl_strbuf bytes = { 0 };
    for (size_t i = 0; i < n; i++)
        append_id_bytes(t, ids[i], skip_special_tokens, &bytes);
    fl_utf8_append_lossy(out, (const unsigned char *)bytes.data, bytes.len, 1);
    fl_strbuf_free(&bytes);
}

void fl_detokenizer_init(fl_detokenizer *d, const fl_tokenizer *t, int skip_special_tokens)
{
    memset(d, 0, sizeof *d);
    d->tok = t;
    d->skip_special_tokens = skip_special_tokens;
}

void fl_detokenizer_push(fl_detokenizer *d, int32_t id, fl_strbuf *out)
{
    append_id_bytes(d->tok, id, d->skip_special_tokens, &d->pending);
    if (d->pending.len == 0)
        return;
    size_t used = fl_utf8_append_lossy(out, (const unsigned char *)d->pending.data,
                                       d->pending.len, 0);
    memmove(d->pending.data, d->pending.data + used, d->pending.len - used);
    d->pending.len -= used;
}

void fl_detokenizer_finish(fl_detokenizer *d, fl_strbuf *out)
{
    if (d->pending.len == 0)
        return;
    fl_utf8_append_lossy(out, (const unsigned char *)d->pending.data, d->pending.len, 1);
    fl_strbuf_clear(&d->pending);
}

void fl_detokenizer_free(fl_detokenizer *d)
{
    fl_strbuf_free(&d->pending);
}

int32_t fl_tokenizer_token_id(const fl_tokenizer *t, const char *token)
{
    size_t len = strlen(token);
    for (int k = 0; k < t->num_added; k++)
        if (t->added[k].len == len && memcmp(t->added[k].content, token, len) == 0)
            return t->added[k].id;
    uint64_t id;
    return fl_bytemap_get(&t->vocab, token, len, &id) ? (int32_t)id : -1;
}
