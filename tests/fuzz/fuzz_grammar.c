/* fuzz_grammar.c - structured output's compilers and matcher
 * (src/grammar): any JSON schema, regex, EBNF grammar or choice list is
 * compiled or refused with a message; a compiled one is run over bytes and
 * tokens of a small vocabulary (masks, steps) without a crash, a hang or a
 * leak, and every token a mask allows must step. The first byte picks the
 * kind and the whitespace; the input up to the first 0xff byte is the
 * spec, the rest picks tokens. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "grammar/token_mask.h"

static const char *const pieces[] = { "{", "}", "[", "]", "\"", ":", ",", " ", "\n", "a", "b", "ab", "1", "0", "-",
                                      ".", "e", "true", "null", "\\", "u", "\xc3", "\xa9", "\xe2\x82\xac", "x\"",
                                      "\": ", ", \"", "{\"", "\"}", "9", "z", "\t" };
#define NUM_PIECES ((int)(sizeof pieces / sizeof pieces[0]))
static fl_token_vocab vocab;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    fl_tokenizer tok = { .num_ids = NUM_PIECES };
    tok.id_bytes = calloc(NUM_PIECES, sizeof(char *));
    tok.id_bytes_len = calloc(NUM_PIECES, sizeof(uint32_t));
    tok.id_special = calloc(NUM_PIECES, 1);
    for (int i = 0; i < NUM_PIECES; i++) {
        tok.id_bytes[i] = (char *)pieces[i];
        tok.id_bytes_len[i] = (uint32_t)strlen(pieces[i]);
    }
    fl_token_vocab_init(&vocab, &tok, NUM_PIECES + 1);
    free(tok.id_bytes), free(tok.id_bytes_len), free(tok.id_special);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    const char *text = (const char *)data + 1;
    const uint8_t *sep = memchr(text, 0xff, size - 1);
    const size_t len = sep ? (size_t)((const char *)sep - text) : size - 1;
    const uint8_t *picks = sep ? sep + 1 : data + size;
    const size_t num_picks = (size_t)(data + size - picks);
    fl_grammar_spec spec = { .text = text, .len = len, .any_whitespace = data[0] >> 2 & 1,
                             .whitespace_pattern = data[0] & 8 ? " ?" : NULL };
    const char *choices[8];
    size_t lens[8];
    switch (data[0] & 3) {
    case 0: spec.kind = data[0] & 16 ? FL_GRAMMAR_JSON_OBJECT : FL_GRAMMAR_JSON_SCHEMA; break;
    case 1: spec.kind = FL_GRAMMAR_REGEX; break;
    case 2: spec.kind = FL_GRAMMAR_EBNF; break;
    default: /* choices: the spec's lines */
        spec.kind = FL_GRAMMAR_CHOICE;
        for (size_t at = 0; at <= len && spec.num_choices < 8;) {
            const char *nl = memchr(text + at, '\n', len - at);
            const size_t end = nl ? (size_t)(nl - text) : len;
            choices[spec.num_choices] = text + at;
            lens[spec.num_choices++] = end - at;
            at = end + 1;
        }
        spec.choices = choices;
        spec.choice_lens = lens;
        break;
    }
    fl_error err;
    fl_constraint *c = fl_constraint_create(&spec, &vocab, &err);
    if (!c) {
        if (!err.msg[0])
            __builtin_trap();
        return 0;
    }
    fl_constraint_state s;
    fl_constraint_state_init(c, &s);
    uint32_t mask[2];
    for (size_t i = 0; i < num_picks && i < 64; i++) {
        if (fl_constraint_fill_mask(c, &s, mask) != 0)
            break;
        int allowed[NUM_PIECES + 1], n = 0;
        for (int t = 0; t <= NUM_PIECES; t++)
            if (mask[t >> 5] >> (t & 31) & 1)
                allowed[n++] = t;
        if (mask[NUM_PIECES >> 5] >> (NUM_PIECES & 31) & 1)
            __builtin_trap(); /* the id past the tokenizer's has no bytes */
        if (n == 0)
            break;
        if (fl_constraint_accept(c, &s, allowed[picks[i] % n]) != 0)
            __builtin_trap(); /* a token the mask allows must step */
    }
    fl_constraint_state_free(&s);
    fl_constraint_unref(c);
    return 0;
}
