/* bench.h - the benchmarks behind `flashlm bench NAME`. Each takes the
 * arguments after NAME and returns the exit code. */
#ifndef FL_BENCH_H
#define FL_BENCH_H

int fl_bench_tokenize(int argc, char **argv);
int fl_bench_serve(int argc, char **argv);
int fl_bench_eval(int argc, char **argv);
int fl_bench_grammar(int argc, char **argv);

#endif
