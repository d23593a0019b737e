/* cmd_bench.c - `flashlm bench NAME ...`: dispatch to the benchmarks. */
#include <stdio.h>
#include <string.h>

#include "bench/bench.h"
#include "cli/cli.h"

int fl_cmd_bench(int argc, char **argv)
{
    if (argc >= 2 && strcmp(argv[1], "tokenize") == 0)
        return fl_bench_tokenize(argc - 1, argv + 1);
    if (argc >= 2 && strcmp(argv[1], "serve") == 0)
        return fl_bench_serve(argc - 1, argv + 1);
    if (argc >= 2 && strcmp(argv[1], "eval") == 0)
        return fl_bench_eval(argc - 1, argv + 1);
    if (argc >= 2 && strcmp(argv[1], "grammar") == 0)
        return fl_bench_grammar(argc - 1, argv + 1);
    if (argc >= 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
        puts("usage: flashlm bench tokenize TOKENIZER_DIR CORPUS   encoding speed, one thread\n"
             "       flashlm bench serve --model NAME ...         vLLM's serving benchmark\n"
             "       flashlm bench eval --model NAME --dataset FILE.csv ...  GPQA, as openai/gpt-oss's evals\n"
             "       flashlm bench grammar TOKENIZER_DIR ...     structured output's host cost per token");
        return 0;
    }
    fprintf(stderr, "flashlm bench: unknown or missing benchmark%s%s (available: tokenize, serve, eval, grammar)\n",
            argc >= 2 ? " " : "", argc >= 2 ? argv[1] : "");
    return 1;
}
