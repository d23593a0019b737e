/* kv_groups.c - the partition of a model's layers into KV cache groups
 * (see kv_groups.h). */
#include "model/kv_groups.h"

#include <stdio.h>
#include <string.h>

#include "base/error.h"

static int gcd(int a, int b)
{
    while (b) {
        const int r = a % b;
        a = b;
        b = r;
    }
    return a;
}

void fl_kv_groups_init(fl_kv_groups *g, const fl_model_config *cfg)
{
    memset(g, 0, sizeof *g);
    g->num_layers = cfg->num_layers;
    /* the attention types (windows, 0 for full) in order of their first layer */
    int types[FL_MAX_LAYERS], count[FL_MAX_LAYERS], num_types = 0, size = 0;
    for (int l = 0; l < cfg->num_layers; l++) {
        const int w = cfg->layers[l].window;
        int t = 0;
        while (t < num_types && types[t] != w)
            t++;
        if (t == num_types) {
            types[num_types] = w;
            count[num_types++] = 0;
        }
        count[t]++;
    }
    for (int t = 0; t < num_types; t++)
        size = gcd(size, count[t]);
    g->layers_per_group = size;
    for (int t = 0; t < num_types; t++) {
        const int first = g->num_groups;
        g->num_groups += count[t] / size;
        for (int k = first; k < g->num_groups; k++)
            g->window[k] = types[t];
        for (int l = 0, n = 0; l < cfg->num_layers; l++) {
            if (cfg->layers[l].window != types[t])
                continue;
            g->group[l] = (int16_t)(first + n / size);
            g->slot[l] = (int16_t)(n % size);
            n++;
        }
    }
    FL_ASSERT(g->num_groups * g->layers_per_group == cfg->num_layers);
}

int fl_kv_groups_have_window(const fl_kv_groups *g)
{
    for (int k = 0; k < g->num_groups; k++)
        if (g->window[k] > 0)
            return 1;
    return 0;
}

void fl_kv_groups_describe(const fl_kv_groups *g, char *out, size_t len)
{
    size_t at = (size_t)snprintf(out, len, "%d group%s of %d layer%s (", g->num_groups,
                                 g->num_groups == 1 ? "" : "s", g->layers_per_group,
                                 g->layers_per_group == 1 ? "" : "s");
    for (int k = 0; k < g->num_groups && at < len;) {
        int run = 1;
        while (k + run < g->num_groups && g->window[k + run] == g->window[k])
            run++;
        char what[32];
        if (g->window[k] > 0)
            snprintf(what, sizeof what, "window %d", g->window[k]);
        else
            snprintf(what, sizeof what, "full");
        at += (size_t)snprintf(out + at, len - at, "%s%s", k ? "; " : "", what);
        if (run > 1 && at < len)
            at += (size_t)snprintf(out + at, len - at, " x%d", run);
        k += run;
    }
    if (at < len)
        snprintf(out + at, len - at, ")");
}
