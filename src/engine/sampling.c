/* sampling.c - the sampler (see sampling.h). */
#include "engine/sampling.h"

#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "base/error.h"
#include "grammar/token_mask.h"

void fl_sampling_params_default(fl_sampling_params *sp)
{
    memset(sp, 0, sizeof *sp);
    sp->n = 1;
    sp->draw.temperature = 1.0f;
    sp->draw.top_p = 1.0f;
    sp->repetition_penalty = 1.0f;
    sp->max_tokens = 16;
    sp->logprobs = -1;
    sp->skip_special_tokens = 1;
}

void fl_sampling_params_copy(fl_sampling_params *dst, const fl_sampling_params *src)
{
    *dst = *src;
    if (src->num_logit_bias) {
        dst->logit_bias = fl_malloc((size_t)src->num_logit_bias * sizeof(fl_logit_bias));
        memcpy(dst->logit_bias, src->logit_bias, (size_t)src->num_logit_bias * sizeof(fl_logit_bias));
    }
    if (src->num_stop_token_ids) {
        dst->stop_token_ids = fl_malloc((size_t)src->num_stop_token_ids * sizeof(int32_t));
        memcpy(dst->stop_token_ids, src->stop_token_ids,
               (size_t)src->num_stop_token_ids * sizeof(int32_t));
    }
    if (src->num_stop) {
        dst->stop = fl_malloc((size_t)src->num_stop * sizeof(char *));
        for (int i = 0; i < src->num_stop; i++)
            dst->stop[i] = fl_strdup(src->stop[i]);
    }
    if (src->constraint)
        fl_constraint_ref(src->constraint);
}

void fl_sampling_params_free(fl_sampling_params *sp)
{
    free(sp->logit_bias);
    free(sp->stop_token_ids);
    for (int i = 0; i < sp->num_stop; i++)
        free(sp->stop[i]);
    free(sp->stop);
    fl_constraint_unref(sp->constraint);
    memset(sp, 0, sizeof *sp);
}

size_t fl_sample_scratch_bytes(int vocab)
{
    return (size_t)vocab * (3 * sizeof(uint64_t) + sizeof(float) + sizeof(int32_t));
}

/* counts[vocab] is all zero on entry and on return: it tallies tokens
 * here and is cleared by walking the same tokens again. */
static void apply_penalties(const fl_sampling_params *sp, const fl_sample_context *c, float *logits,
                            int32_t *counts)
{
    if (sp->repetition_penalty != 1.0f) {
        /* each distinct token of prompt and output once: its logit is
         * divided by the penalty if positive, multiplied if not */
        for (int pass = 0; pass < 2; pass++) {
            const int32_t *ids = pass ? c->output : c->prompt;
            for (int i = 0; i < (pass ? c->num_output : c->num_prompt); i++) {
                if (counts[ids[i]]++)
                    continue;
                float *l = &logits[ids[i]];
                *l = *l > 0 ? *l / sp->repetition_penalty : *l * sp->repetition_penalty;
            }
        }
        for (int i = 0; i < c->num_prompt; i++)
            counts[c->prompt[i]] = 0;
        for (int i = 0; i < c->num_output; i++)
            counts[c->output[i]] = 0;
    }
    if (sp->presence_penalty != 0.0f || sp->frequency_penalty != 0.0f) {
        for (int i = 0; i < c->num_output; i++)
            counts[c->output[i]]++;
        for (int i = 0; i < c->num_output; i++) {
            const int32_t t = c->output[i];
            if (counts[t]) {
                logits[t] -= sp->frequency_penalty * (float)counts[t] + sp->presence_penalty;
                counts[t] = 0;
            }
        }
    }
}

/* Sorts w[n] largest first, through tmp[n]; returns the one holding the
 * result. A radix sort by bytes, least significant first (stable, so each
 * pass keeps the order of the bytes below): weights are below 2^40, five
 * passes, a few milliseconds for 152k weights where qsort took tens. */
static uint64_t *sort_desc(uint64_t *w, uint64_t *tmp, int n)
{
    for (int shift = 0; shift < 40; shift += 8) {
        size_t at[256] = { 0 }, next = 0;
        for (int i = 0; i < n; i++)
            at[(w[i] >> shift) & 255]++;
        for (int b = 255; b >= 0; b--) { /* larger bytes first */
            const size_t count = at[b];
            at[b] = next;
            next += count;
        }
        for (int i = 0; i < n; i++)
            tmp[at[(w[i] >> shift) & 255]++] = w[i];
        uint64_t *t = w;
        w = tmp;
        tmp = t;
    }
    return w;
}

/* The first largest logit: the greedy token. */
static int32_t argmax(const float *x, int n)
{
    int32_t best = 0;
    for (int i = 1; i < n; i++)
        if (x[i] > x[best])
            best = i;
    return best;
}

/* NaN logits become -inf (no candidate, as in the device sampler, where a
 * NaN loses every comparison). 1 if the largest logit is finite: the
 * weights are scaled to it (a +inf would leave every other weight 0 and
 * its own NaN). */
static int clean_logits(float *logits, int vocab)
{
    float max = -INFINITY;
    for (int i = 0; i < vocab; i++) {
        if (isnan(logits[i]))
            logits[i] = -INFINITY;
        else if (logits[i] > max)
            max = logits[i];
    }
    return isfinite(max);
}

void fl_logprobs_fill(const float *raw, int vocab, int32_t chosen, int k, fl_logprobs *lp)
{
    float max = raw[argmax(raw, vocab)];
    double sum = 0;
    for (int i = 0; i < vocab; i++)
        sum += exp((double)raw[i] - max);
    const float log_z = max + (float)log(sum);
    lp->chosen = raw[chosen] - log_z;
    lp->count = 0;
    /* top-N by repeated selection: N is small (vLLM caps it at 20) */
    for (int n = 0; n < k && n < vocab; n++) {
        int32_t best = -1;
        for (int i = 0; i < vocab; i++) {
            int taken = 0;
            for (int j = 0; j < lp->count && !taken; j++)
                taken = lp->ids[j] == i;
            if (!taken && (best < 0 || raw[i] > raw[best]))
                best = i;
        }
        lp->ids[lp->count] = best;
        lp->values[lp->count++] = raw[best] - log_z;
    }
}

int fl_logprobs_rank(const float *raw, int vocab, int32_t token)
{
    int rank = 1;
    for (int i = 0; i < vocab; i++)
        rank += raw[i] > raw[token];
    return rank;
}

/* Cloned for CPUs with FMA: fmaf is correctly rounded either way (in
 * software without the instruction, at ~10x the cost), and ISO C mode
 * never contracts the other operations, so both clones give the same
 * bits. Not under ThreadSanitizer: the clones' ifunc resolver runs before
 * TSan's runtime is up and crashes the process at load. */
#if defined(__SANITIZE_THREAD__)
#define FMA_CLONES
#else
#define FMA_CLONES __attribute__((target_clones("fma", "default")))
#endif

/* The row's weights into w, the kept ones (>= least) into kept; returns
 * how many are kept. */
FMA_CLONES static int row_weights(const float *logits, int vocab, float max, float inv_t, uint64_t least,
                                  uint64_t *w, uint64_t *kept)
{
    int n = 0;
    for (int i = 0; i < vocab; i++) {
        w[i] = fl_draw_weight(logits[i], max, inv_t);
        if (w[i] >= least)
            kept[n++] = w[i];
    }
    return n;
}

/* The draw of sample_draw.h, written from its definitions: the weights in
 * w[vocab], the kept ones sorted largest first (in kept or tmp, [vocab]
 * each); the thresholds and the drawn weight read off the sorted list, the
 * token the drawn weight's tie of that rank in index order. The device
 * reaches the same values by radix selection; the integers make the two
 * agree. logits holds no NaN and a finite largest value. */
static int32_t draw(const fl_draw *d, const float *logits, int vocab, uint64_t *w, uint64_t *kept,
                    uint64_t *tmp)
{
    const fl_draw_params *p = &d->params;
    const float inv_t = fl_draw_inv_temperature(p->temperature);
    const float max = logits[argmax(logits, vocab)];
    uint64_t least = fl_draw_min_weight(p->min_p);
    /* kept weights; at least the largest logit's FL_DRAW_ONE */
    int n = row_weights(logits, vocab, max, inv_t, least, w, kept);
    const uint64_t *sorted = sort_desc(kept, tmp, n);
    if (p->top_k > 0 && p->top_k < n) {
        least = sorted[p->top_k - 1];
        while (sorted[n - 1] < least) /* ties with the k-th stay */
            n--;
    }
    uint64_t mass = 0, acc = 0;
    for (int j = 0; j < n; j++)
        mass += sorted[j];
    if (p->top_p < 1.0f) {
        const uint64_t target = fl_draw_top_p_target(p->top_p, mass); /* <= mass */
        int j = 0;
        while ((acc += sorted[j]) < target)
            j++;
        while (j + 1 < n && sorted[j + 1] == sorted[j]) /* its ties stay too */
            acc += sorted[++j];
        n = j + 1;
        mass = acc;
    }
    /* the drawn weight: the group of equal weights where the running sum
     * passes u (< mass), and the rank in it */
    const uint64_t u = fl_draw_point(d, mass);
    int j = 0;
    acc = 0;
    for (;;) {
        int end = j;
        while (end < n && sorted[end] == sorted[j])
            end++;
        const uint64_t group = (uint64_t)(end - j) * sorted[j];
        if (u < acc + group)
            break;
        acc += group;
        j = end;
    }
    const uint64_t value = sorted[j];
    uint64_t rank = (u - acc) / value;
    int32_t i = 0;
    while (w[i] != value || rank-- > 0)
        i++;
    return i;
}

int32_t fl_sample_draw(const fl_draw *d, float *logits, int vocab, void *scratch)
{
    FL_ASSERT(vocab <= FL_DRAW_MAX_VOCAB);
    uint64_t *weights = scratch, *kept = weights + vocab, *tmp = kept + vocab;
    if (!clean_logits(logits, vocab))
        return -1;
    return fl_draw_is_greedy(&d->params) ? argmax(logits, vocab) : draw(d, logits, vocab, weights, kept, tmp);
}

int32_t fl_sample(const fl_sampling_params *sp, const fl_sample_context *c, float *logits,
                  int vocab, void *scratch, fl_logprobs *lp)
{
    FL_ASSERT(vocab <= FL_DRAW_MAX_VOCAB);
    uint64_t *weights = scratch, *kept = weights + vocab, *tmp = kept + vocab;
    float *raw = (float *)(tmp + vocab);
    int32_t *counts = (int32_t *)(raw + vocab);
    if (lp) {
        memcpy(raw, logits, (size_t)vocab * sizeof(float));
        clean_logits(raw, vocab);
        for (int i = 0; i < vocab; i++) /* a +inf that min_tokens banned: logprobs stay finite */
            if (raw[i] == INFINITY)
                raw[i] = FLT_MAX;
    }
    if (c->num_output < sp->min_tokens) {
        for (int i = 0; i < c->num_eos && !sp->ignore_eos; i++)
            logits[c->eos_ids[i]] = -INFINITY;
        for (int i = 0; i < sp->num_stop_token_ids; i++)
            logits[sp->stop_token_ids[i]] = -INFINITY;
    }
    for (int i = 0; i < sp->num_logit_bias; i++)
        logits[sp->logit_bias[i].token] += sp->logit_bias[i].bias;
    apply_penalties(sp, c, logits, counts);
    const fl_draw d = { .params = sp->draw, .rng_key = c->rng_key, .index = (uint64_t)c->num_output };
    const int32_t token = fl_sample_draw(&d, logits, vocab, scratch);
    if (token < 0)
        return -1;
    if (lp)
        fl_logprobs_fill(raw, vocab, token, sp->logprobs, lp);
    return token;
}
