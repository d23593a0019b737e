/* prom.c - histograms and the Prometheus text format (see prom.h). */
#include "server/prom.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/error.h"

void fl_histogram_init(fl_histogram *h, const double *bounds, int num)
{
    FL_ASSERT(num >= 0 && num <= FL_PROM_MAX_BOUNDS);
    memset(h, 0, sizeof *h);
    for (int i = 0; i < num; i++) {
        FL_ASSERT(i == 0 || bounds[i] > bounds[i - 1]);
        h->bounds[i] = bounds[i];
    }
    h->num_bounds = num;
}

void fl_histogram_observe(fl_histogram *h, double v)
{
    int b = 0;
    while (b < h->num_bounds && v > h->bounds[b])
        b++;
    h->counts[b]++;
    h->sum += v;
    h->count++;
}

int fl_prom_1_2_5_bounds(double max_value, double *out, int cap)
{
    static const double mantissas[3] = { 1, 2, 5 };
    int n = 0;
    for (double scale = 1;; scale *= 10)
        for (int m = 0; m < 3; m++) {
            const double v = mantissas[m] * scale;
            if (v > max_value || n == cap)
                return n;
            out[n++] = v;
        }
}

/* A number as Python's prometheus_client writes it (vLLM's exporter):
 * integral values with ".0" ("1.0", "2560.0"), others in the fewest
 * digits that read back the same ("0.001"), infinities "+Inf"/"-Inf". */
static void number(fl_strbuf *o, double v)
{
    if (isinf(v)) {
        fl_strbuf_append_str(o, v > 0 ? "+Inf" : "-Inf");
    } else if (isnan(v)) {
        fl_strbuf_append_str(o, "NaN");
    } else if (v == floor(v) && fabs(v) < 1e15) {
        fl_strbuf_appendf(o, "%.1f", v);
    } else {
        char buf[32];
        for (int prec = 6; prec <= 17; prec++) {
            snprintf(buf, sizeof buf, "%.*g", prec, v);
            if (strtod(buf, NULL) == v)
                break;
        }
        fl_strbuf_append_str(o, buf);
    }
}

void fl_prom_family(fl_strbuf *o, const char *name, const char *type, const char *help)
{
    fl_strbuf_appendf(o, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

void fl_prom_sample(fl_strbuf *o, const char *name, const char *labels, double v)
{
    fl_strbuf_append_str(o, name);
    if (labels[0])
        fl_strbuf_appendf(o, "{%s}", labels);
    fl_strbuf_append_char(o, ' ');
    number(o, v);
    fl_strbuf_append_char(o, '\n');
}

void fl_prom_histogram(fl_strbuf *o, const char *name, const char *labels, const fl_histogram *h)
{
    uint64_t cumulative = 0;
    for (int b = 0; b <= h->num_bounds; b++) {
        cumulative += h->counts[b];
        fl_strbuf_appendf(o, "%s_bucket{%s%sle=\"", name, labels, labels[0] ? "," : "");
        number(o, b < h->num_bounds ? h->bounds[b] : INFINITY);
        fl_strbuf_appendf(o, "\"} %llu.0\n", (unsigned long long)cumulative);
    }
    fl_strbuf_appendf(o, "%s_count%s%s%s %llu.0\n", name, labels[0] ? "{" : "", labels,
                      labels[0] ? "}" : "", (unsigned long long)h->count);
    fl_strbuf_appendf(o, "%s_sum%s%s%s ", name, labels[0] ? "{" : "", labels, labels[0] ? "}" : "");
    number(o, h->sum);
    fl_strbuf_append_char(o, '\n');
}

void fl_prom_label_value(fl_strbuf *o, const char *s)
{
    for (; *s; s++) {
        if (*s == '\\')
            fl_strbuf_append_str(o, "\\\\");
        else if (*s == '"')
            fl_strbuf_append_str(o, "\\\"");
        else if (*s == '\n')
            fl_strbuf_append_str(o, "\\n");
        else
            fl_strbuf_append_char(o, *s);
    }
}
