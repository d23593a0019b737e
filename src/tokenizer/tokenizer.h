/* tokenizer.h - Hugging Face tokenizer.json (byte-level BPE) in C.
 *
 * Produces the ids the HF tokenizers library produces for the Qwen2/Qwen3,
 * Llama-3, GPT-2 and gpt-oss (o200k) families: added/special tokens matched
 * first, NFC, the Split regex pre-tokenizer (PCRE2 with JIT), the ByteLevel
 * mapping, BPE merges by rank, and the post-processor template. A component the file
 * uses that flashlm does not implement is a load error naming it.
 *
 * A loaded fl_tokenizer is read-only and may be shared by threads; each
 * thread that encodes brings its own fl_tok_scratch. */
#ifndef FL_TOKENIZER_H
#define FL_TOKENIZER_H

#include <pcre2.h>
#include <stddef.h>
#include <stdint.h>

#include "base/bytemap.h"
#include "base/error.h"
#include "base/strbuf.h"

typedef struct fl_ids {
    int32_t *data;
    size_t len;
    size_t cap;
} fl_ids;

void fl_ids_push(fl_ids *v, int32_t id);
void fl_ids_free(fl_ids *v);

typedef struct fl_added_token {
    char *content;
    size_t len;
    int32_t id;
    int special;
} fl_added_token;

#define FL_TOK_MAX_TEMPLATE 4
#define FL_NFC_INERT_LIMIT 0x30000

typedef struct fl_tokenizer {
    int32_t num_ids;             /* 1 + the largest id of the vocab and added tokens */
    char **id_bytes;             /* [num_ids] what each id decodes to (NULL: unused id) */
    uint32_t *id_bytes_len;      /* [num_ids] */
    uint8_t *id_special;         /* [num_ids] 1 for special added tokens */
    fl_bytemap vocab;            /* byte-level token string -> id */
    fl_bytemap merges;           /* (left id, right id) -> rank << 32 | merged id */
    int ignore_merges;           /* a word that is a whole token skips the merges */
    int32_t byte_token[256];     /* the token of each single byte */
    int num_added;
    fl_added_token *added;       /* [num_added] matched in raw text before all else */
    uint8_t added_first[256];    /* 1 where some added token starts with the byte */
    int nfc;                     /* the NFC normalizer is on */
    uint8_t *nfc_inert;          /* bitmap over [0, FL_NFC_INERT_LIMIT): code points
                                    NFC leaves alone whatever surrounds them */
    pcre2_code *split_re;        /* the pre-tokenizer's split pattern */
    int num_prefix, num_suffix;  /* post-processor template for one sequence */
    int32_t prefix_ids[FL_TOK_MAX_TEMPLATE];
    int32_t suffix_ids[FL_TOK_MAX_TEMPLATE];
    /* tokenizer_config.json */
    int32_t bos_id, eos_id, pad_id;  /* -1 when unset */
    char *chat_template;             /* NULL when absent */
} fl_tokenizer;

/* Per-thread encoding state: regex match data, BPE work arrays and a cache of
 * recently seen words. */
typedef struct fl_tok_scratch {
    pcre2_match_data *match;
    fl_strbuf text;              /* the input as clean UTF-8 */
    fl_strbuf norm;              /* one segment after the normalizer */
    fl_strbuf word;              /* byte-level form of one word */
    fl_bytemap cache;            /* word bytes -> offset << 32 | count in cache_ids */
    fl_ids cache_ids;
    void *bpe;                   /* BPE symbol and heap arrays (bpe.c) */
    size_t bpe_cap;
} fl_tok_scratch;

/* Loads dir/tokenizer.json and, if present, dir/tokenizer_config.json. */
int fl_tokenizer_load(fl_tokenizer *t, const char *dir, fl_error *err);
void fl_tokenizer_free(fl_tokenizer *t);

void fl_tok_scratch_init(fl_tok_scratch *s, const fl_tokenizer *t);
void fl_tok_scratch_free(fl_tok_scratch *s);

/* Appends the ids of text[0..len) to out. Bytes that are not UTF-8 are
 * replaced by U+FFFD first, as Python's decode(errors="replace") does, so
 * this cannot fail. add_special_tokens applies the post-processor
 * template (e.g. Llama-3's <|begin_of_text|>). */
void fl_tokenizer_encode(const fl_tokenizer *t, fl_tok_scratch *s, const char *text, size_t len,
                         int add_special_tokens, fl_ids *out);

/* fl_tokenizer_encode without the post-processor template and without
 * matching added tokens: text that spells a special token ("<|end|>") is
 * encoded as ordinary text, as tiktoken's encode_ordinary does. The harmony
 * format encodes message text this way, so a message cannot forge the
 * format's structure. */
void fl_tokenizer_encode_ordinary(const fl_tokenizer *t, fl_tok_scratch *s, const char *text,
                                  size_t len, fl_ids *out);

/* Appends the text of ids to out: their bytes concatenated, then cleaned as
 * UTF-8 (U+FFFD for broken sequences). Ids outside the vocabulary are
 * skipped, as are special tokens if skip_special_tokens. */
void fl_tokenizer_decode(const fl_tokenizer *t, const int32_t *ids, size_t n,
                         int skip_special_tokens, fl_strbuf *out);

/* Streaming decode: pieces that concatenate to exactly fl_tokenizer_decode
 * of all ids pushed, each piece valid UTF-8 (bytes of an unfinished
 * character are held back until it completes). */
typedef struct fl_detokenizer {
    const fl_tokenizer *tok;
    int skip_special_tokens;
    fl_strbuf pending;           /* bytes of an unfinished character */
} fl_detokenizer;

void fl_detokenizer_init(fl_detokenizer *d, const fl_tokenizer *t, int skip_special_tokens);
/* Appends the text that id completes (possibly nothing) to out. */
void fl_detokenizer_push(fl_detokenizer *d, int32_t id, fl_strbuf *out);
/* Appends what is still held back (as U+FFFD) to out; call at the end. */
void fl_detokenizer_finish(fl_detokenizer *d, fl_strbuf *out);
void fl_detokenizer_free(fl_detokenizer *d);

/* The id of a token given as text (an added token's content or a vocab
 * entry in byte-level form), or -1. */
int32_t fl_tokenizer_token_id(const fl_tokenizer *t, const char *token);

#endif
