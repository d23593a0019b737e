/* token_mask.h - a compiled constraint over a tokenizer's vocabulary: which
 * tokens may come next, as a bitmask, and the state after each token.
 *
 * A token is allowed when all of its bytes can follow the grammar's
 * configuration (grammar/pda.h). The constraint keeps, as a cache, the
 * automaton of the configurations it has met: each one's transition by
 * each byte (computed once, by the PDA, then an array lookup) and its mask
 * over the vocabulary, computed once by walking the tokens in byte order so
 * that a prefix shared by many tokens (a vocabulary's tokens share most of
 * their bytes with their neighbours) is stepped once, and a dead prefix
 * skips every token that starts with it. A sequence's state is its own
 * copy of its configuration, so the cache can be dropped whenever it
 * passes its memory budget (at the start of fl_constraint_fill_mask).
 *
 * Special tokens and tokens without bytes are never allowed; the end of
 * output (EOS, stop tokens) is the engine's to allow where
 * fl_constraint_can_end says so.
 *
 * Threads: compiling (fl_constraint_cache_get) on any thread; the masks
 * and steps (fill_mask, accept, state_*) on one thread, the engine's;
 * references may be taken and dropped on any thread. */
#ifndef FL_TOKEN_MASK_H
#define FL_TOKEN_MASK_H

#include <math.h>
#include <pthread.h>
#include <stdint.h>

#include "base/error.h"
#include "grammar/grammar.h"
#include "grammar/pda.h"
#include "tokenizer/tokenizer.h"

/* The vocabulary as byte strings, sorted for the walk. */
typedef struct fl_token_vocab {
    int vocab_size;           /* the model's: a mask has (vocab_size + 31) / 32 words */
    int num;                  /* tokens with bytes, not special */
    int32_t *ids;             /* [num] in byte order */
    uint32_t *off;            /* [num] into bytes */
    uint16_t *len;            /* [num] */
    uint16_t *lcp;            /* [num] bytes shared with the previous token in byte order */
    uint8_t *bytes;
    int max_len;
    int32_t *pos_of;          /* [vocab_size] the token's place in byte order, or -1 */
} fl_token_vocab;

/* Every non-special token of tok with an id below vocab_size. */
void fl_token_vocab_init(fl_token_vocab *v, const fl_tokenizer *tok, int vocab_size);
void fl_token_vocab_free(fl_token_vocab *v);

static inline int fl_token_mask_words(int vocab_size)
{
    return (vocab_size + 31) / 32;
}

/* Host logits[vocab_size]: the tokens whose bit is clear in mask to -inf. */
static inline void fl_token_mask_apply(float *logits, int vocab_size, const uint32_t *mask)
{
    for (int i = 0; i < vocab_size; i++)
        if (!(mask[i >> 5] >> (i & 31) & 1))
            logits[i] = -INFINITY;
}

typedef struct fl_constraint fl_constraint;

/* A sequence's place in its constraint. */
typedef struct fl_constraint_state {
    fl_u32buf cfg;            /* its configuration (pda.h) */
    int entry;                /* the cache's entry for it, valid while gen matches */
    uint64_t gen;
} fl_constraint_state;

/* Compiles spec for vocab (which must outlive it); NULL with err. One
 * reference, the caller's. */
fl_constraint *fl_constraint_create(const fl_grammar_spec *spec, const fl_token_vocab *vocab, fl_error *err);
fl_constraint *fl_constraint_ref(fl_constraint *c);
/* The vocabulary size its masks are for. */
int fl_constraint_vocab_size(const fl_constraint *c);
void fl_constraint_unref(fl_constraint *c);

void fl_constraint_state_init(const fl_constraint *c, fl_constraint_state *s);
void fl_constraint_state_free(fl_constraint_state *s);

/* The tokens that may follow s, as bits (bit i % 32 of word i / 32 for
 * token i), into mask[fl_token_mask_words(vocab_size)]. Returns 0, or -1
 * when the grammar's ambiguity passes the matcher's bound (pda.h). */
int fl_constraint_fill_mask(fl_constraint *c, fl_constraint_state *s, uint32_t *mask);
/* Advances s past token. Returns 0, or -1 (s unchanged) when the grammar
 * does not take it. */
int fl_constraint_accept(fl_constraint *c, fl_constraint_state *s, int32_t token);
/* The output may end at s / nothing but its end can follow s. */
int fl_constraint_can_end(const fl_constraint_state *s);
int fl_constraint_finished(const fl_constraint_state *s);

typedef struct fl_constraint_stats {
    int64_t masks_computed, masks_reused, flushes;
    int entries;
    size_t bytes;
} fl_constraint_stats;

void fl_constraint_get_stats(const fl_constraint *c, fl_constraint_stats *st);

/* Compiled constraints by their spec, so that requests with the same
 * schema share one automaton and its masks. */
#define FL_CONSTRAINT_CACHE_SLOTS 16

typedef struct fl_constraint_cache {
    pthread_mutex_t lock;
    const fl_token_vocab *vocab;
    struct {
        char *key;
        size_t len;
        fl_constraint *c;
        uint64_t used;
    } slots[FL_CONSTRAINT_CACHE_SLOTS];
    uint64_t clock;
} fl_constraint_cache;

void fl_constraint_cache_init(fl_constraint_cache *cc, const fl_token_vocab *vocab);
void fl_constraint_cache_free(fl_constraint_cache *cc);
/* A reference to the constraint of spec (compiled if no slot holds it;
 * the least recently used slot makes room). NULL with err. */
fl_constraint *fl_constraint_cache_get(fl_constraint_cache *cc, const fl_grammar_spec *spec, fl_error *err);

#endif
