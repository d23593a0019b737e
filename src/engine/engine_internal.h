/* engine_internal.h - the engine's state (engine.c), behind the opaque
 * fl_engine of engine.h. Sequences and their queues are the scheduler's
 * (scheduler.h). */
#ifndef FL_ENGINE_INTERNAL_H
#define FL_ENGINE_INTERNAL_H

#include <stdatomic.h>

#include "engine/engine.h"
#include "engine/scheduler.h"

struct fl_engine {
    fl_engine_config cfg;
    fl_model_runner runner;
    const fl_tokenizer *tok;
    int32_t *eos_ids;
    int num_eos;
    fl_output_fn on_output;
    void *ctx;
    fl_scheduler sched;
    /* the inbox: adds and aborts from other threads */
    pthread_mutex_t lock;
    fl_seq **inbox;
    int num_inbox, cap_inbox;
    uint64_t *aborts;
    int num_aborts, cap_aborts;
    _Atomic int num_live;        /* sequences added and not yet freed */
    int closed;                  /* fl_engine_close: no more adds (under lock) */
    /* step buffers, sized once */
    fl_seq **row_seqs;           /* the sequence of each logit row of the step */
    /* async scheduling: the step whose tokens are still on their way (its
     * sequences hold placeholders, scheduler.h); the engine plans and
     * launches the next one before it handles them */
    int async;                   /* cfg.async_scheduling, with a runner that samples */
    struct {
        int active;
        int num_rows;
        fl_seq **seqs;           /* [max_num_seqs] the sequence of each of its logit rows */
    } flight;
    float *logits;               /* (rows, vocab): every row, or one with device sampling */
    void *sample_scratch;
    fl_draw *dev_rows;           /* with device sampling: [max_num_seqs] */
    int32_t *lp_ids;
    float *lp_values;
    /* structured output, allocated with the first constrained row */
    _Atomic int num_constrained; /* live sequences with a constraint */
    uint32_t *masks;             /* [max_num_seqs, mask words] the step's constrained rows' masks */
    int32_t *mask_rows;          /* [max_num_seqs] their logit rows */
    int32_t *mask_of_row;        /* [max_num_seqs] a row's mask, or -1 */
    double step_time;            /* fl_now_seconds() after the step's forward pass: its tokens' time */
    fl_engine_stats stats;       /* the engine's counters; fl_engine_get_stats adds the scheduler's */
    /* FLASHLM_STEP_TIMING=1: where the wall time of large decode steps (128
     * or more sequences, one token each) goes on the host, printed when the
     * engine is destroyed (docs/PERF.md's decode step breakdown; the CUDA
     * runner prints the GPU's side) */
    struct {
        int on;
        long steps;
        double plan, launch, wait, tokens; /* seconds in each phase, summed */
        double waited;           /* this step's waits for tokens */
    } timing;
};

#endif
