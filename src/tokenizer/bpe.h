/* bpe.h - byte-pair merges of one pre-tokenized word. */
#ifndef FL_BPE_H
#define FL_BPE_H

#include "tokenizer/tokenizer.h"

/* Words the per-thread cache holds before it is emptied. 32K beat 8K and
 * 128K on real text (docs/PERF.md): hits matter more than staying in L2. */
#define CACHE_WORDS 32768

/* Appends the ids of word (raw bytes, before the byte-level mapping) to out.
 * Merges apply lowest rank first, leftmost first among equals, as HF's
 * BPE does; results are cached per word in s. */
void fl_bpe_word(const fl_tokenizer *t, fl_tok_scratch *s, const unsigned char *word, size_t n,
                 fl_ids *out);

/* Frees the BPE work arrays of s. */
void fl_bpe_scratch_free(fl_tok_scratch *s);

#endif
