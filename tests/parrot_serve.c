/* parrot_serve.c - `flashlm serve` over a scripted model, for the tests that
 * need a reply whose every token is known: tool calls, reasoning.
 *
 *   parrot_serve MODEL [serve flags ...]   (as `flashlm serve MODEL ...`)
 *
 * The server, the flags, the chat template and the engine are flashlm's;
 * only the runner is replaced (cli.h's fl_cli_test_runner). The parrot
 * model replies with the content of the prompt's last message, token for
 * token, then <|im_end|>: so a test writes the reply it wants as the user's
 * message. It reads ChatML prompts of the Qwen2/Qwen3 vocabulary
 * (<|im_start|>ROLE\n...<|im_end|>; <|im_end|> is the model's EOS).
 *
 * Like a real model it keeps no state of its own between steps but its KV
 * cache, which here holds each position's token: the history of a sequence
 * is read back through its block table, so prefix caching, chunked prefill
 * and several sequences at once work as they do for a model. The next
 * token is the reply's first token that the history does not end with yet;
 * its logit is 100, every other 0 (greedy or not, it is drawn). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "cli/cli.h"

#define IM_START 151644 /* <|im_start|> */
#define NEWLINE 198     /* "\n", after the role */

typedef struct parrot {
    fl_kv_groups groups;
    int32_t *slot_token;   /* [num_blocks * block_size] the token at each KV slot */
    int block_size, vocab;
    int32_t im_end;
    int32_t *history;      /* [max_context] scratch: one sequence's tokens */
} parrot;

/* The next token after h[0..n). */
static int32_t next_token(const parrot *p, const int32_t *h, int n)
{
    int a = n - 1; /* the generation prompt's <|im_start|>assistant */
    while (a >= 0 && h[a] != IM_START)
        a--;
    int e = a - 1; /* the last message's <|im_end|>, and its <|im_start|> */
    while (e >= 0 && h[e] != p->im_end)
        e--;
    int b = e - 1;
    while (b >= 0 && h[b] != IM_START)
        b--;
    if (b < 0 || b + 3 > e || h[b + 2] != NEWLINE)
        return p->im_end; /* no message to repeat */
    const int32_t *reply = h + b + 3;
    const int len = e - (b + 3);
    /* the most of the reply the history already ends with, after the generation prompt */
    for (int j = len < n - a - 1 ? len : n - a - 1; j >= 0; j--)
        if (memcmp(h + n - j, reply, (size_t)j * sizeof *h) == 0)
            return j == len ? p->im_end : reply[j];
    return p->im_end;
}

static void parrot_forward(void *impl, const fl_batch *b, float *logits)
{
    parrot *p = impl;
    for (int t = 0; t < b->num_tokens; t++)
        p->slot_token[b->slots[(size_t)t * (size_t)b->num_kv_groups]] = b->token_ids[t];
    int seq = 0;
    for (int k = 0; k < b->num_logits; k++) {
        const int row = b->logit_rows[k];
        while (b->query_start[seq + 1] <= row)
            seq++;
        const int n = b->positions[row] + 1;
        const int32_t *table = fl_batch_table(b, seq, 0);
        for (int q = 0; q < n; q++)
            p->history[q] = p->slot_token[fl_batch_slot(table, p->block_size, q)];
        float *out = logits + (size_t)k * (size_t)p->vocab;
        memset(out, 0, (size_t)p->vocab * sizeof *out);
        out[next_token(p, p->history, n)] = 100.f;
    }
}

static void parrot_destroy(void *impl)
{
    parrot *p = impl;
    free(p->slot_token);
    free(p->history);
    free(p);
}

static int parrot_init(const fl_model *m, const fl_runner_opts *ro, fl_model_runner *r, fl_error *err)
{
    if (m->cfg.num_eos_ids < 1 || m->cfg.vocab_size <= IM_START)
        return fl_fail(err, "parrot: a model of the Qwen2/Qwen3 vocabulary, with <|im_end|> its EOS");
    parrot *p = fl_calloc(1, sizeof *p);
    fl_kv_groups_init(&p->groups, &m->cfg);
    p->block_size = ro->block_size;
    p->vocab = m->cfg.vocab_size;
    p->im_end = m->cfg.eos_token_ids[0];
    const int per_seq = (ro->max_context + ro->block_size - 1) / ro->block_size;
    const int num_blocks = ro->num_blocks > 0 ? ro->num_blocks : ro->max_seqs * per_seq * p->groups.num_groups + 1;
    p->slot_token = fl_calloc((size_t)num_blocks * (size_t)ro->block_size, sizeof *p->slot_token);
    p->history = fl_calloc((size_t)ro->max_context + 1, sizeof *p->history);
    *r = (fl_model_runner){
        .impl = p, .attn_backend = "parrot", .vocab_size = p->vocab, .max_tokens = ro->max_tokens,
        .max_context = ro->max_context, .kv_groups = &p->groups, .num_blocks = num_blocks,
        .block_size = ro->block_size, .forward = parrot_forward, .destroy = parrot_destroy,
    };
    return 0;
}

int main(int argc, char **argv)
{
    fl_cli_test_runner = parrot_init;
    return fl_cmd_serve(argc, argv);
}
