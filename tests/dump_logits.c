/* dump_logits.c - the CUDA runner's logits at every position of one prompt
 * (GPU only), for tools/model_parity.py to compare with HF transformers.
 *
 * usage: dump_logits MODEL_DIR IDS_FILE OUT_FILE
 * IDS_FILE holds the prompt as raw int32; OUT_FILE gets (len, vocab)
 * float32. The prompt runs in 256-token chunks (chunked prefill over the
 * paged cache), each asking for the logits of all its rows. */
#include <stdio.h>
#include <stdlib.h>

#include "base/mapped_file.h"
#include "cuda/cuda_runner.h"
#include "model/model.h"

#define CHUNK 256

int main(int argc, char **argv)
{
    if (argc != 4) {
        fprintf(stderr, "usage: dump_logits MODEL_DIR IDS_FILE OUT_FILE\n");
        return 2;
    }
    fl_error err;
    fl_model m;
    if (fl_model_load(&m, argv[1], FL_LOAD_AUTO, 0, &err) != 0) {
        fprintf(stderr, "dump_logits: %s\n", err.msg);
        return 1;
    }
    FILE *f = fopen(argv[2], "rb");
    if (!f) {
        perror(argv[2]);
        return 1;
    }
    int32_t *ids = malloc((size_t)1 << 22);
    const int len = (int)fread(ids, sizeof(int32_t), (1 << 20), f);
    fclose(f);
    const int bs = 128, num_blocks = (len + bs - 1) / bs;
    const fl_cuda_runner_opts o = { .max_tokens = CHUNK, .max_context = num_blocks * bs, .max_seqs = CHUNK,
                                    .block_size = bs, .num_blocks = num_blocks, .gpu_memory_utilization = 0.9f };
    fl_model_runner r;
    if (fl_cuda_runner_init(&r, &m.cfg, &m.weights, &o, &err) != 0) {
        fprintf(stderr, "dump_logits: %s\n", err.msg);
        return 1;
    }
    const int vocab = m.cfg.vocab_size;
    int32_t *table = malloc(num_blocks * sizeof(int32_t)), pos[CHUNK], slots[CHUNK], rows[CHUNK];
    for (int i = 0; i < num_blocks; i++)
        table[i] = num_blocks - 1 - i; /* scattered: last block first */
    float *logits = malloc((size_t)CHUNK * vocab * sizeof(float));
    FILE *out = fopen(argv[3], "wb");
    for (int at = 0; at < len; at += CHUNK) {
        const int n = len - at < CHUNK ? len - at : CHUNK;
        for (int i = 0; i < n; i++) {
            const int p = at + i;
            pos[i] = p;
            slots[i] = table[p / bs] * bs + p % bs;
            rows[i] = i;
        }
        /* one sequence, a chunk of it a step: its context so far plus the chunk */
        const int32_t query_start[2] = { 0, n }, seq_len = at + n;
        const fl_batch b = { .num_tokens = n, .token_ids = ids + at, .positions = pos, .slots = slots,
                             .num_seqs = 1, .query_start = query_start, .seq_lens = &seq_len,
                             .max_blocks_per_seq = num_blocks, .block_tables = table,
                             .num_logits = n, .logit_rows = rows };
        r.forward(r.impl, &b, logits);
        fwrite(logits, sizeof(float), (size_t)n * vocab, out);
    }
    fclose(out);
    r.destroy(r.impl);
    fl_model_free(&m);
    free(ids), free(table), free(logits);
    return 0;
}
