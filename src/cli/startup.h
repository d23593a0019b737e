/* startup.h - the one start-up path of the commands that run a model:
 * the model (config and weights, or dummy), its tokenizer, the runner of
 * the chosen device, the EOS ids and the engine over them. `generate` and
 * `serve` both open one; what a command does with the tokenizer before the
 * runner is built (encode prompts, compile a chat template) is its prepare
 * callback. */
#ifndef FL_STARTUP_H
#define FL_STARTUP_H

#include "cli/cli.h"
#include "engine/engine.h"
#include "model/config.h"
#include "tokenizer/tokenizer.h"

typedef enum { FL_TOKENIZER_OPTIONAL, FL_TOKENIZER_REQUIRED } fl_tokenizer_need;

typedef struct fl_startup {
    fl_tokenizer tok;
    int have_tok;
    fl_engine *engine;             /* owns the runner */
    int vocab_size;
    int num_blocks, block_size;    /* the runner's KV cache */
    const char *attn_backend;      /* the attention backend the runner runs */
} fl_startup;

/* What a command does with the model's config and the tokenizer (NULL when
 * there is none) before the runner is built; -1 with err stops the
 * start-up. */
typedef int (*fl_startup_prepare_fn)(void *ctx, const fl_model_config *cfg, const fl_tokenizer *tok,
                                     fl_error *err);

/* Opens, in order: the model, the tokenizer (tokenizer_dir, else the model
 * directory; FL_TOKENIZER_OPTIONAL loads it only when tokenizer_dir is
 * given or the model directory has a tokenizer.json), prepare, eng fitted
 * to the model and the device, the runner, the engine reporting to
 * on_output(out_ctx). s must not move while open (the engine points into
 * it). Returns 0, or -1 with err and nothing held. */
int fl_startup_open(fl_startup *s, const fl_model_opts *model, fl_engine_opts *eng,
                    const char *tokenizer_dir, fl_tokenizer_need need, fl_startup_prepare_fn prepare,
                    void *ctx, fl_output_fn on_output, void *out_ctx, fl_error *err);
void fl_startup_close(fl_startup *s);

#endif
