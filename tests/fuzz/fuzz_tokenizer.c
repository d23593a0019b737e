/* fuzz_tokenizer.c - tokenizer.json (tokenizer/tokenizer_load.c): any
 * bytes load or give an error; a tokenizer that loads encodes and decodes
 * a fixed text (ASCII, Unicode, special tokens) without a crash. */
#include <stdint.h>
#include <stdlib.h>

#include "fuzz_common.h"
#include "tokenizer/tokenizer.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_write("tokenizer.json", data, size);
    fl_tokenizer t;
    fl_error err;
    if (fl_tokenizer_load(&t, fuzz_dir(), &err) != 0)
        return 0;
    static const char text[] = "Hello, world! <|im_start|>user\n\xc3\xa9t\xc3\xa9 \xe4\xbd\xa0\xe5\xa5\xbd 123 \xf0\x9f\x98\x80  \t\n<|endoftext|>";
    fl_tok_scratch sc;
    fl_tok_scratch_init(&sc, &t);
    fl_ids ids = { 0 };
    fl_tokenizer_encode(&t, &sc, text, sizeof text - 1, 1, &ids);
    fl_strbuf out = { 0 };
    fl_tokenizer_decode(&t, ids.data, ids.len, 0, &out);
    fl_detokenizer d;
    fl_detokenizer_init(&d, &t, 1);
    for (size_t i = 0; i < ids.len; i++)
        fl_detokenizer_push(&d, ids.data[i], &out);
    fl_detokenizer_finish(&d, &out);
    fl_detokenizer_free(&d);
    fl_strbuf_free(&out);
    fl_ids_free(&ids);
    fl_tok_scratch_free(&sc);
    fl_tokenizer_free(&t);
    return 0;
}
