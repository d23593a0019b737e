/* bench_print.h - the result block the benchmarks print, in vLLM's layout
 * (a 50-column banner, then a 40-column label and its value a line), and
 * the progress bar on a terminal. */
#ifndef FL_BENCH_PRINT_H
#define FL_BENCH_PRINT_H

/* A 50-column line: title centred in fill characters. */
void fl_bench_header(const char *title, char fill);
void fl_bench_line(const char *label, const char *value);
void fl_bench_line_f(const char *label, double v);  /* two decimals */
void fl_bench_line_i(const char *label, long long v);

/* "[====    ] done/total" on stderr, redrawn in place; only on a terminal. */
void fl_bench_progress(int done, int total);

#endif
