/* bench_print.c - the benchmarks' result block (see bench_print.h). */
#include "bench/bench_print.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

void fl_bench_header(const char *title, char fill)
{
    int n = (int)strlen(title), left = (50 - n) / 2, right = 50 - n - left;
    for (int i = 0; i < left; i++)
        putchar(fill);
    fputs(title, stdout);
    for (int i = 0; i < right; i++)
        putchar(fill);
    putchar('\n');
}

void fl_bench_line(const char *label, const char *value)
{
    printf("%-40s %-10s\n", label, value);
}

void fl_bench_line_f(const char *label, double v)
{
    char buf[64];
    snprintf(buf, sizeof buf, "%.2f", v);
    fl_bench_line(label, buf);
}

void fl_bench_line_i(const char *label, long long v)
{
    char buf[64];
    snprintf(buf, sizeof buf, "%lld", v);
    fl_bench_line(label, buf);
}

void fl_bench_progress(int done, int total)
{
    if (!isatty(2))
        return;
    int width = 40, filled = total ? done * width / total : width;
    fprintf(stderr, "\r[%.*s%*s] %d/%d", filled, "========================================", width - filled,
            "", done, total);
    if (done == total)
        fputc('\n', stderr);
}
