/* test_forward_long.c - a 2,048-token prompt through the CPU runner against
 * HF in float64.
 *
 * fixtures/long-qwen3 (tools/make_fixtures.py) holds a random-weight Qwen3
 * and HF's float64 log-probabilities (RoPE angles in float64 too, which HF
 * leaves in float32) at every 8th position of one 2,048-token prompt and
 * at each of its last 32. The prompt runs as the
 * engine runs one: prefill in 300-token chunks (a chunk ends mid-block at
 * every block size), then the last 32 positions one token a step; at KV
 * block sizes 16 and 128, blocks handed out last first so that a paging bug
 * cannot hide behind contiguous blocks. At every golden position the
 * log-softmax of flashlm's float32 logits must be within 1e-4 of HF's: the
 * tiny fixtures' 150-token prompts cannot show an error that grows with
 * the position (RoPE angles, long attention sums), this can. */
#include "test_util.h"

#include <math.h>
#include <stdlib.h>

#include "cpu/cpu_runner.h"
#include "model/model.h"
#include "model/safetensors.h"

#define FIXTURE "long-qwen3"
#define CHUNK 300
#define DECODE_TAIL 32
#define MAX_LOGPROB_ERROR 1e-4

static const int block_sizes[] = { 16, 128 };

typedef struct long_golden {
    fl_safetensors file;
    const int32_t *prompt;     /* [len] */
    const int32_t *positions;  /* [num_positions], ascending */
    const float *logprobs;     /* (num_positions, vocab) */
    int len, num_positions;
} long_golden;

/* Fails the test, saying how the fixture is made, when it is absent. */
static void require_fixture(const char *what, const char *msg)
{
    print_error("%s: %s\nThe fixture is made by `python3 tools/make_fixtures.py OUT --only " FIXTURE "` "
                "(transformers, on the GPU machine); copy OUT/" FIXTURE " to tests/fixtures/.\n", what, msg);
    fail();
}

static const fl_tensor *golden_tensor(const long_golden *g, const char *name, fl_dtype dtype, int ndim)
{
    const fl_tensor *t = fl_safetensors_find(&g->file, name);
    if (!t || t->dtype != dtype || t->ndim != ndim) {
        print_error("golden.safetensors: no %s tensor '%s' of %d dims\n", fl_dtype_name(dtype), name, ndim);
        fail();
    }
    return t;
}

static void golden_load(long_golden *g, const char *dir, int vocab)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/golden.safetensors", dir);
    fl_error err;
    if (fl_safetensors_open_file(&g->file, path, &err) != 0)
        require_fixture(path, err.msg);
    const fl_tensor *prompt = golden_tensor(g, "prompt", FL_I32, 1);
    const fl_tensor *positions = golden_tensor(g, "positions", FL_I32, 1);
    const fl_tensor *logprobs = golden_tensor(g, "logprobs", FL_F32, 2);
    g->prompt = prompt->data;
    g->len = (int)prompt->shape[0];
    g->positions = positions->data;
    g->num_positions = (int)positions->shape[0];
    g->logprobs = logprobs->data;
    assert_int_equal(logprobs->shape[0], g->num_positions);
    assert_int_equal(logprobs->shape[1], vocab);
    assert_true(g->len > DECODE_TAIL);
    for (int i = 0; i < g->len; i++)
        assert_true(g->prompt[i] >= 0 && g->prompt[i] < vocab);
    for (int i = 0; i < g->num_positions; i++)
        assert_true(g->positions[i] >= (i ? g->positions[i - 1] + 1 : 0) && g->positions[i] < g->len);
}

/* The largest |log-softmax(logits) - golden| of one row, in double; NaN
 * counts as infinite. */
static double row_error(const float *logits, const float *golden, int vocab)
{
    double max = -INFINITY, sum = 0, worst = 0;
    for (int v = 0; v < vocab; v++)
        max = fmax(max, logits[v]);
    for (int v = 0; v < vocab; v++)
        sum += exp(logits[v] - max);
    const double lse = max + log(sum);
    for (int v = 0; v < vocab; v++) {
        const double e = fabs(logits[v] - lse - golden[v]);
        worst = isnan(e) ? INFINITY : fmax(worst, e);
    }
    return worst;
}

typedef struct checked {
    int next;      /* the next golden row */
    double worst;  /* largest error so far */
    int worst_pos;
} checked;

/* Checks rows of logits against the golden rows from c->next on. */
static void check_rows(checked *c, const long_golden *g, const float *logits, int rows, int vocab)
{
    for (int k = 0; k < rows; k++, c->next++) {
        const double e = row_error(logits + (size_t)k * vocab, g->logprobs + (size_t)c->next * vocab, vocab);
        if (e > c->worst || c->worst_pos < 0) {
            c->worst = e;
            c->worst_pos = g->positions[c->next];
        }
    }
}

static void run_prompt(const fl_model *model, const long_golden *g, int block_size)
{
    const int vocab = model->cfg.vocab_size, prefill = g->len - DECODE_TAIL;
    const int num_blocks = (g->len + block_size - 1) / block_size;
    fl_model_runner r;
    fl_error err;
    const fl_runner_opts o = { .attn = tu_attention("cpu"), .max_tokens = CHUNK,
                               .max_context = num_blocks * block_size, .block_size = block_size,
                               .num_blocks = num_blocks, .max_seqs = 1 };
    assert_int_equal(fl_cpu_runner_init(&r, &model->cfg, &model->weights, &o, &err), 0);
    int32_t *table = malloc((size_t)num_blocks * sizeof(int32_t));
    for (int i = 0; i < num_blocks; i++)
        table[i] = num_blocks - 1 - i;
    int32_t pos[CHUNK], slots[CHUNK], rows[CHUNK], query_start[2] = { 0, 0 }, seq_len[1];
    float *logits = malloc((size_t)CHUNK * vocab * sizeof(float));
    fl_batch b = { .positions = pos, .num_kv_groups = 1, .slots = slots, .num_seqs = 1, .query_start = query_start,
                   .seq_lens = seq_len, .max_blocks_per_seq = num_blocks, .block_tables = table,
                   .logit_rows = rows };
    checked c = { .worst_pos = -1 };
    for (int at = 0; at < prefill; at += CHUNK) {
        b.num_tokens = prefill - at < CHUNK ? prefill - at : CHUNK;
        b.token_ids = g->prompt + at;
        for (int i = 0; i < b.num_tokens; i++) {
            pos[i] = at + i;
            slots[i] = fl_batch_slot(table, block_size, pos[i]);
        }
        query_start[1] = b.num_tokens;
        seq_len[0] = at + b.num_tokens;
        b.num_logits = 0;
        for (int k = c.next; k < g->num_positions && g->positions[k] < at + b.num_tokens; k++)
            rows[b.num_logits++] = g->positions[k] - at;
        r.forward(r.impl, &b, logits);
        check_rows(&c, g, logits, b.num_logits, vocab);
    }
    b.num_tokens = b.num_logits = 1;
    rows[0] = 0;
    for (int p = prefill; p < g->len; p++) {
        b.token_ids = g->prompt + p;
        pos[0] = p;
        slots[0] = fl_batch_slot(table, block_size, p);
        query_start[1] = 1;
        seq_len[0] = p + 1;
        r.forward(r.impl, &b, logits);
        if (c.next < g->num_positions && g->positions[c.next] == p)
            check_rows(&c, g, logits, 1, vocab);
    }
    assert_int_equal(c.next, g->num_positions);
    print_message("block size %d: %d positions, max |logprob error| %.2e at position %d (limit %.0e)\n",
                  block_size, g->num_positions, c.worst, c.worst_pos, MAX_LOGPROB_ERROR);
    if (!(c.worst <= MAX_LOGPROB_ERROR))
        fail();
    free(table), free(logits);
    r.destroy(r.impl);
}

static void test_long_prompt(void **state)
{
    (void)state;
    const char *dir = tu_fixture(FIXTURE);
    fl_model model;
    fl_error err;
    if (fl_model_load(&model, dir, FL_LOAD_AUTO, 0, &err) != 0)
        require_fixture(dir, err.msg);
    long_golden g;
    golden_load(&g, dir, model.cfg.vocab_size);
    for (size_t i = 0; i < sizeof block_sizes / sizeof block_sizes[0]; i++)
        run_prompt(&model, &g, block_sizes[i]);
    fl_safetensors_free(&g.file);
    fl_model_free(&model);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_long_prompt),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
