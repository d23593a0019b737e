/* sampling.c - the sampler (see sampling.h). */
#include "engine/sampling.h"

#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "base/rng.h"

void fl_sampling_params_default(fl_sampling_params *sp)
{
    memset(sp, 0, sizeof *sp);
    sp->n = 1;
    sp->temperature = 1.0f;
    sp->top_p = 1.0f;
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
}

void fl_sampling_params_free(fl_sampling_params *sp)
{
    free(sp->logit_bias);
    free(sp->stop_token_ids);
    for (int i = 0; i < sp->num_stop; i++)
        free(sp->stop[i]);
    free(sp->stop);
    memset(sp, 0, sizeof *sp);
}

size_t fl_sample_scratch_bytes(int vocab)
{
    return (size_t)vocab * (2 * sizeof(float) + 2 * sizeof(int32_t));
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

static int compare_desc(const void *a, const void *b, void *probs)
{
    const float *p = probs;
    float x = p[*(const int32_t *)a], y = p[*(const int32_t *)b];
    return x < y ? 1 : x > y ? -1 : (*(const int32_t *)a > *(const int32_t *)b) - (*(const int32_t *)a < *(const int32_t *)b);
}

static int32_t argmax(const float *x, int n)
{
    int32_t best = 0;
    for (int i = 1; i < n; i++)
        if (x[i] > x[best])
            best = i;
    return best;
}

/* NaN logits become -inf (no candidate, as in the device sampler, where a
 * NaN loses every comparison). 1 if a finite logit is left: a draw needs
 * one, and +inf would make the softmax NaN. */
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

static void fill_logprobs(const fl_sampling_params *sp, const float *raw, int vocab, int32_t chosen,
                          fl_logprobs *lp)
{
    float max = raw[argmax(raw, vocab)];
    double sum = 0;
    for (int i = 0; i < vocab; i++)
        sum += exp((double)raw[i] - max);
    const float log_z = max + (float)log(sum);
    lp->chosen = raw[chosen] - log_z;
    lp->count = 0;
    /* top-N by repeated selection: N is small (vLLM caps it at 20) */
    for (int k = 0; k < sp->logprobs && k < vocab; k++) {
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

/* Draws from the distribution softmax(logits / T) cut by min-p, top-k and
 * top-p (renormalised over what is kept). */
static int32_t draw(const fl_sampling_params *sp, const fl_sample_context *c, const float *logits,
                    int vocab, float *probs, int32_t *order)
{
    const float max = logits[argmax(logits, vocab)];
    double sum = 0;
    for (int i = 0; i < vocab; i++) {
        probs[i] = expf((logits[i] - max) / sp->temperature);
        sum += probs[i];
    }
    const double pmax = 1.0 / sum; /* the largest token has exp(0) = 1 */
    int n = 0;
    for (int i = 0; i < vocab; i++) {
        probs[i] = (float)(probs[i] / sum);
        if (probs[i] > 0 && (sp->min_p <= 0 || probs[i] >= sp->min_p * pmax))
            order[n++] = i;
    }
    if ((sp->top_k > 0 && sp->top_k < n) || sp->top_p < 1.0f) {
        qsort_r(order, (size_t)n, sizeof(int32_t), compare_desc, probs);
        if (sp->top_k > 0 && sp->top_k < n)
            n = sp->top_k;
        if (sp->top_p < 1.0f) {
            double total = 0, kept = 0;
            for (int i = 0; i < n; i++)
                total += probs[order[i]];
            int m = 0;
            while (m < n && (m == 0 || kept < sp->top_p * total))
                kept += probs[order[m++]];
            n = m;
        }
    }
    double total = 0;
    for (int i = 0; i < n; i++)
        total += probs[order[i]];
    const double u = fl_rng_uniform(c->rng_key, (uint64_t)c->num_output) * total;
    double acc = 0;
    for (int i = 0; i < n; i++) {
        acc += probs[order[i]];
        if (u < acc)
            return order[i];
    }
    return order[n - 1];
}

int32_t fl_sample(const fl_sampling_params *sp, const fl_sample_context *c, float *logits,
                  int vocab, void *scratch, fl_logprobs *lp)
{
    float *raw = scratch, *probs = raw + vocab;
    int32_t *order = (int32_t *)(probs + vocab), *counts = order + vocab;
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
    if (!clean_logits(logits, vocab))
        return -1;
    const int32_t token = sp->temperature < 1e-5f ? argmax(logits, vocab)
                                                  : draw(sp, c, logits, vocab, probs, order);
    if (lp)
        fill_logprobs(sp, raw, vocab, token, lp);
    return token;
}
