/* scheduler.h - which sequences run in the next step, and their KV blocks.
 *
 * The scheduler owns the two queues (running in admission order, waiting
 * in arrival order with preempted sequences in front) and the block pool;
 * only scheduler.c moves a sequence between queues or gives it blocks. Each
 * step it plans one fl_batch (holding model/batch.h's invariant), and once
 * the runner has run it, records the planned tokens' K/V as computed.
 *
 * The KV cache is laid out in groups of layers (model/kv_groups.h): one
 * pool of blocks, and each sequence a block table per group, all tables
 * covering the same block indices. A full-attention group holds every block
 * of the context; a windowed group gives back, once a step has run, the
 * blocks its window has left (no later query of the sequence attends to
 * them), and its table names the null block there (FL_KV_NULL_BLOCK,
 * reserved at init for as long as the scheduler lives). So with chunked
 * prefill a windowed group holds a chunk's blocks during its step, and about
 * window / block_size of them between steps. The
 * engine (engine.c) creates sequences, hands them over with
 * fl_scheduler_add, and, from each sampled token, decides when one ends
 * (fl_scheduler_finish); the sequences' memory stays the engine's. */
#ifndef FL_SCHEDULER_H
#define FL_SCHEDULER_H

#include "base/strbuf.h"
#include "base/u64_map.h"
#include "engine/block_pool.h"
#include "engine/engine.h"

/* What the n sequences of one request share. */
typedef struct fl_request {
    uint64_t id;
    fl_sampling_params sp;
    int live;                   /* sequences not yet finished */
    struct fl_seq *first;       /* sibling 0: the others fork its prompt blocks */
} fl_request;

typedef enum { SEQ_WAITING, SEQ_RUNNING } seq_state;

/* One sequence. The engine writes its tokens and text; the scheduler its
 * state, progress and blocks. */
typedef struct fl_seq {
    fl_request *req;
    int index;
    fl_ids tokens;              /* prompt, then output */
    int num_prompt;
    uint64_t rng_key;
    fl_detokenizer detok;
    fl_strbuf text;             /* output text so far */
    struct fl_constraint_state *grammar; /* with a constraint (sp.constraint): where its
                                   output is in the grammar; else NULL */
    /* prompt_logprobs (the request's first sequence only): entry j, for
     * prompt token j + 1, is 1 + k (id, log-probability, rank) triples: the
     * token's, then the k most likely */
    int plp_done;               /* prompt positions whose entry is filled, in order */
    int plp_sent;               /* the entries went out with the first report */
    int32_t *plp_ids, *plp_ranks; /* [num_prompt - 1, 1 + k] */
    float *plp_values;          /* [num_prompt - 1, 1 + k] */
    size_t text_sent;           /* bytes of text already reported */
    /* timestamps for the metrics (fl_now_seconds(); 0: not yet), engine.h's fl_seq_output */
    double t_arrival, t_scheduled, t_first_token, t_last_token, t_prev_token;
    /* the scheduler's */
    seq_state state;
    int num_computed;           /* tokens whose K/V are in the cache */
    int num_cached;             /* prompt tokens the prefix cache served */
    int32_t *blocks;            /* [cap_blocks, num_kv_groups] the block tables, side by side:
                                   entry (k, g) is group g's block k (FL_KV_NULL_BLOCK where
                                   a window has left it) */
    int num_blocks, cap_blocks; /* block indices covered, and room */
    int num_published;          /* leading full blocks whose hash is known */
    uint64_t chain_hash;        /* hash of block num_published - 1 (or the root) */
    int scheduled;              /* tokens in the planned step */
    /* async scheduling (the engine's): while a step's tokens are on their
     * way, each of its sequences holds a placeholder as its last token,
     * -1 - its logit row, which the runner reads as that row's draw */
    int pending;                /* the last token is such a placeholder */
    int last_pending;           /* and no token can follow it (max_tokens, max_model_len):
                                   the scheduler plans no step for it */
    int rows_in_flight;         /* logit rows of launched steps whose tokens are not yet handled */
    int finished;               /* reported as ended; freed when rows_in_flight reaches 0 */
} fl_seq;

typedef struct fl_scheduler {
    int max_num_seqs;
    int max_num_batched_tokens;
    int max_blocks_per_seq;
    fl_kv_groups groups;        /* the runner's cache layout */
    int32_t null_block;         /* FL_KV_NULL_BLOCK if a group has a window (reserved), else -1 */
    fl_block_pool pool;
    fl_seq **running;           /* [max_num_seqs]; the last is the newest, preempted first */
    int num_running;
    fl_seq **waiting;           /* room for every sequence: preemption moves running ones here */
    int num_waiting, cap_waiting;
    /* the planned step: the batch's arrays, and its sequences in batch order */
    int32_t *ids, *pos, *slots, *query_start, *seq_lens, *tables, *rows;
    int32_t *hits;              /* [max_blocks_per_seq, num_kv_groups] a prefix lookup's blocks */
    uint64_t *hit_hashes;       /* [max_blocks_per_seq] their chained hashes */
    fl_seq **step_seqs;
    int num_step_seqs, num_rows;
    /* counters for fl_engine_stats */
    int64_t prefix_queries, prefix_hits, preemptions, computed_tokens;
} fl_scheduler;

/* cfg's max_model_len and max_num_batched_tokens as the engine resolved
 * them; a pool of num_blocks blocks of block_size tokens, laid out as
 * groups (copied). */
void fl_scheduler_init(fl_scheduler *s, const fl_engine_config *cfg, const fl_kv_groups *groups,
                       int num_blocks, int block_size);
/* Frees the queues and the pool, not the sequences still on them. */
void fl_scheduler_free(fl_scheduler *s);

/* The blocks the pool can hand out: all of them but the null block. */
int fl_scheduler_usable_blocks(const fl_scheduler *s);

/* The most blocks, over all groups, that one sequence of num_tokens tokens
 * holds at once: a full group a block per block_size tokens; a windowed
 * group at most the blocks of its window and of a step's chunk
 * (ceil((window - 1 + max_num_batched_tokens) / block_size) + 1), or the
 * full count if that is fewer. */
int fl_scheduler_seq_blocks(const fl_scheduler *s, int num_tokens);

/* Queues new sequences at the back of waiting, in order. */
void fl_scheduler_add(fl_scheduler *s, fl_seq *const *seqs, int n);

/* Plans the next step: running sequences first, in admission order (each
 * its next decode token or prefill chunk, within max_num_batched_tokens;
 * the newest preempted while blocks run out), then, if none was preempted,
 * waiting ones in order while budget, blocks and max_num_seqs allow.
 * A sequence whose last token is a placeholder that no token can follow
 * (last_pending) is not planned. Token ids in the batch may be such
 * placeholders (model_runner.h's forward).
 * Returns the batch (num_tokens 0 if nothing can run; its arrays are the
 * scheduler's until the next plan); row_seqs[r] is the sequence whose next
 * token logit row r gives, or, for a row before its last known token, whose
 * prompt logprobs (a prompt position it still needs: fl_scheduler_wants_plp).
 * A step holds at most max_num_seqs logit rows. */
fl_batch fl_scheduler_plan(fl_scheduler *s, fl_seq **row_seqs);

/* Does seq still need the logits of prompt positions (prompt_logprobs)? */
int fl_scheduler_wants_plp(const fl_seq *seq);

/* The planned step ran: its tokens' K/V are in the cache, and the blocks
 * they filled join the prefix table. */
void fl_scheduler_commit(fl_scheduler *s);

/* Takes seq off its queue and gives its blocks back (last first, so its
 * early blocks stay cached longest); the caller then frees it. */
void fl_scheduler_finish(fl_scheduler *s, fl_seq *seq);

/* fl_scheduler_finish for every queued sequence of the requests in
 * request_ids, in one pass over the queues (running, then waiting; order
 * kept), handing each to retire, which frees it and must not call the
 * scheduler. */
void fl_scheduler_finish_requests(fl_scheduler *s, const fl_u64_map *request_ids,
                                  void (*retire)(void *ctx, fl_seq *seq), void *ctx);

#endif
