/* startup.c - model, tokenizer, runner and engine, opened once for every
 * command (see startup.h). */
#include "cli/startup.h"

#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "base/alloc.h"
#include "base/mapped_file.h"
#include "model/model.h"

static int has_tokenizer(const char *dir)
{
    char *path = fl_path_join(dir, "tokenizer.json");
    struct stat st;
    const int found = stat(dir, &st) == 0 && S_ISDIR(st.st_mode) && stat(path, &st) == 0;
    free(path);
    return found;
}

int fl_startup_open(fl_startup *s, const fl_model_opts *model, fl_engine_opts *eng,
                    const char *tokenizer_dir, fl_tokenizer_need need, fl_startup_prepare_fn prepare,
                    void *ctx, fl_output_fn on_output, void *out_ctx, fl_error *err)
{
    memset(s, 0, sizeof *s);
    fl_model m;
    if (fl_model_load(&m, model->model, model->format, model->seed, err) != 0)
        return -1;
    const char *dir = tokenizer_dir ? tokenizer_dir : model->model;
    if (need == FL_TOKENIZER_REQUIRED || tokenizer_dir || has_tokenizer(dir)) {
        if (fl_tokenizer_load(&s->tok, dir, err) != 0) {
            fl_model_free(&m);
            return need == FL_TOKENIZER_REQUIRED ? fl_fail_prefix(err, "a tokenizer is needed "
                                                                  "(--tokenizer DIR)") : -1;
        }
        s->have_tok = 1;
    }
    const fl_tokenizer *tok = s->have_tok ? &s->tok : NULL;
    fl_model_runner runner;
    if ((prepare && prepare(ctx, &m.cfg, tok, err) != 0) || fl_engine_opts_fit(eng, &m.cfg, err) != 0 ||
        fl_cli_runner_init(eng, &m, &runner, err) != 0) {
        fl_model_free(&m);
        if (s->have_tok)
            fl_tokenizer_free(&s->tok);
        s->have_tok = 0;
        return -1;
    }
    int32_t eos[FL_MAX_EOS_IDS + 1];
    const int num_eos = fl_eos_ids(&m.cfg, tok, eos);
    s->vocab_size = m.cfg.vocab_size;
    s->num_blocks = runner.num_blocks;
    s->block_size = runner.block_size;
    s->attn_backend = runner.attn_backend;
    /* the runner's own name for the code it calls: what runs is what is logged */
    fprintf(stderr, "INFO flashlm: attention backend %s\n", runner.attn_backend);
    fprintf(stderr, "INFO flashlm: max-num-batched-tokens %d, max-num-seqs %d\n", eng->ec.max_num_batched_tokens,
            eng->ec.max_num_seqs);
    fl_model_free(&m); /* the runner keeps its own copy of the weights */
    s->engine = fl_engine_create(&eng->ec, &runner, tok, eos, num_eos, on_output, out_ctx);
    char kv[512];
    fl_engine_describe_kv(s->engine, eng->ec.max_model_len, kv, sizeof kv);
    fprintf(stderr, "INFO flashlm: %s\n", kv);
    return 0;
}

void fl_startup_close(fl_startup *s)
{
    if (s->engine)
        fl_engine_destroy(s->engine);
    if (s->have_tok)
        fl_tokenizer_free(&s->tok);
    memset(s, 0, sizeof *s);
}
