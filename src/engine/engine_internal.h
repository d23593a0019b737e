/* engine_internal.h - the engine's own types, shared by engine.c (API,
 * step, outputs) and scheduler.c (planning a step). */
#ifndef FL_ENGINE_INTERNAL_H
#define FL_ENGINE_INTERNAL_H

#include <stdatomic.h>

#include "base/strbuf.h"
#include "engine/engine.h"

/* What the n sequences of one request share. */
typedef struct fl_request {
    uint64_t id;
    fl_sampling_params sp;
    int live;                   /* sequences not yet finished */
    struct fl_seq *first;       /* sibling 0: the others fork its prompt blocks */
} fl_request;

typedef enum { SEQ_WAITING, SEQ_RUNNING, SEQ_FINISHED } seq_state;

typedef struct fl_seq {
    fl_request *req;
    int index;
    seq_state state;
    int aborted;
    fl_ids tokens;              /* prompt, then output */
    int num_prompt;
    int num_computed;           /* tokens whose K/V are in the cache */
    int num_cached;             /* prompt tokens the prefix cache served */
    int32_t *blocks;            /* block table */
    int num_blocks, cap_blocks;
    int num_published;          /* leading full blocks whose hash is known */
    uint64_t chain_hash;        /* hash of block num_published - 1 (or the root) */
    uint64_t arrival;           /* admission order: newest is preempted first */
    uint64_t rng_key;
    fl_detokenizer detok;
    fl_strbuf text;             /* output text so far */
    size_t text_sent;           /* bytes of text already reported */
    int scheduled;              /* tokens scheduled this step */
} fl_seq;

struct fl_engine {
    fl_engine_config cfg;
    fl_model_runner runner;
    const fl_tokenizer *tok;
    int32_t *eos_ids;
    int num_eos;
    fl_output_fn on_output;
    void *ctx;
    fl_block_pool pool;
    int max_blocks_per_seq;
    /* queues: running in admission order, waiting in arrival order */
    fl_seq **running;
    int num_running;
    fl_seq **waiting;
    int num_waiting, cap_seqs;
    uint64_t next_arrival;
    /* the inbox: adds and aborts from other threads */
    pthread_mutex_t lock;
    fl_seq **inbox;
    int num_inbox, cap_inbox;
    uint64_t *aborts;
    int num_aborts, cap_aborts;
    _Atomic int num_live;        /* sequences added and not yet freed */
    int closed;                  /* fl_engine_close: no more adds (under lock) */
    /* step buffers, sized once */
    int32_t *ids, *pos, *tseq, *rows, *tables;
    fl_seq **step_seqs;
    fl_seq **row_seqs;
    float *logits;               /* (rows, vocab): every row, or one with device sampling */
    void *sample_scratch;
    fl_draw *dev_rows;           /* with device sampling: [max_num_seqs] */
    int32_t *dev_tokens;
    int32_t *lp_ids;
    float *lp_values;
    fl_engine_stats stats;
};

/* Plans the next step into e's buffers; returns the batch (num_tokens 0 if
 * nothing can run). */
fl_batch fl_schedule(fl_engine *e);

/* Gives a sequence's blocks back (last first, so its early blocks stay
 * cached longest) and forgets its progress. */
void fl_seq_release_blocks(fl_engine *e, fl_seq *s);

/* Publishes the hashes of the sequence's newly full, computed blocks. */
void fl_seq_publish_blocks(fl_engine *e, fl_seq *s);

#endif
