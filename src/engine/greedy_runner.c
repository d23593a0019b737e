/* greedy_runner.c - the batched greedy loop (see greedy_runner.h). */
#include "engine/greedy_runner.h"

#include <string.h>

#include "base/alloc.h"
#include "base/error.h"

typedef struct seq_state {
    int32_t *tokens;   /* prompt, then generated tokens */
    int len;           /* tokens known */
    int computed;      /* tokens whose K/V are in the cache */
    int generated;
    int num_blocks;
} seq_state;

int fl_greedy_blocks_needed(int num_prompts, const int *prompt_lens, int max_new_tokens,
                            int block_size)
{
    int blocks = 0;
    for (int i = 0; i < num_prompts; i++)
        blocks += (prompt_lens[i] + max_new_tokens + block_size - 1) / block_size;
    return blocks;
}

static int argmax(const float *x, int n)
{
    int best = 0;
    for (int i = 1; i < n; i++)
        if (x[i] > x[best])
            best = i;
    return best;
}

void fl_greedy_generate(fl_cpu_model *m, fl_cpu_kv_cache *kv, int num_prompts,
                        const int32_t *const *prompts, const int *prompt_lens,
                        int max_new_tokens, int32_t *const *outputs)
{
    const int bs = kv->block_size, budget = m->max_tokens, vocab = m->cfg.vocab_size;
    int max_blocks = 1;
    for (int i = 0; i < num_prompts; i++) {
        FL_ASSERT(prompt_lens[i] > 0 && prompt_lens[i] + max_new_tokens <= m->max_context);
        int need = (prompt_lens[i] + max_new_tokens + bs - 1) / bs;
        if (need > max_blocks)
            max_blocks = need;
    }
    FL_ASSERT(fl_greedy_blocks_needed(num_prompts, prompt_lens, max_new_tokens, bs) <=
              kv->num_blocks);
    seq_state *seqs = fl_calloc((size_t)num_prompts, sizeof(seq_state));
    for (int i = 0; i < num_prompts; i++) {
        seqs[i].tokens = fl_malloc((size_t)(prompt_lens[i] + max_new_tokens) * sizeof(int32_t));
        memcpy(seqs[i].tokens, prompts[i], (size_t)prompt_lens[i] * sizeof(int32_t));
        seqs[i].len = prompt_lens[i];
    }
    int32_t *tables = fl_malloc((size_t)num_prompts * max_blocks * sizeof(int32_t));
    int32_t *ids = fl_malloc((size_t)budget * sizeof(int32_t));
    int32_t *pos = fl_malloc((size_t)budget * sizeof(int32_t));
    int32_t *tseq = fl_malloc((size_t)budget * sizeof(int32_t));
    int32_t *rows = fl_malloc((size_t)budget * sizeof(int32_t));
    int32_t *row_seq = fl_malloc((size_t)budget * sizeof(int32_t));
    float *logits = fl_malloc((size_t)budget * vocab * sizeof(float));
    int next_block = 0;

    for (int remaining = max_new_tokens > 0 ? num_prompts : 0; remaining > 0;) {
        int n = 0, nl = 0;
        for (int s = 0; s < num_prompts && n < budget; s++) {
            seq_state *q = &seqs[s];
            int chunk = q->len - q->computed;
            if (q->generated == max_new_tokens || chunk == 0)
                continue;
            if (chunk > budget - n)
                chunk = budget - n;
            while (q->num_blocks * bs < q->computed + chunk)
                tables[s * max_blocks + q->num_blocks++] = next_block++;
            for (int k = 0; k < chunk; k++, n++) {
                ids[n] = q->tokens[q->computed + k];
                pos[n] = q->computed + k;
                tseq[n] = s;
            }
            q->computed += chunk;
            if (q->computed == q->len) {
                rows[nl] = n - 1;
                row_seq[nl++] = s;
            }
        }
        fl_batch b = {
            .num_tokens = n, .token_ids = ids, .positions = pos, .token_seq = tseq,
            .num_seqs = num_prompts, .max_blocks_per_seq = max_blocks, .block_tables = tables,
            .num_logits = nl, .logit_rows = rows,
        };
        fl_cpu_model_forward(m, kv, &b, logits);
        for (int r = 0; r < nl; r++) {
            seq_state *q = &seqs[row_seq[r]];
            int tok = argmax(logits + (size_t)r * vocab, vocab);
            outputs[row_seq[r]][q->generated++] = tok;
            q->tokens[q->len++] = tok;
            if (q->generated == max_new_tokens)
                remaining--;
        }
    }
    for (int i = 0; i < num_prompts; i++)
        free(seqs[i].tokens);
    free(seqs);
    free(tables);
    free(ids);
    free(pos);
    free(tseq);
    free(rows);
    free(row_seq);
    free(logits);
}
