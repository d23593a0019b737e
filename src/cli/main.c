/* main.c - `flashlm`: dispatch to the subcommands. */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"

static const struct {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *summary;
} commands[] = {
    { "info", fl_cmd_info, "describe a model: architecture, parameters, KV bytes, tensors" },
    { "generate", fl_cmd_generate, "greedy generation from token ids (batched), on the CPU" },
    { "tokenize", fl_cmd_tokenize, "text to token ids with a tokenizer.json, or back (--decode)" },
    { "serve", fl_cmd_serve, "the OpenAI-compatible HTTP server (vLLM's endpoints and flags)" },
    { "bench", fl_cmd_bench, "benchmarks: serve (vLLM's serving benchmark), tokenize" },
};
#define NUM_COMMANDS (sizeof commands / sizeof commands[0])

static void usage(FILE *out)
{
    fprintf(out, "usage: flashlm COMMAND [options]   (flashlm COMMAND --help for its options)\n\n"
                 "commands:\n");
    for (size_t i = 0; i < NUM_COMMANDS; i++)
        fprintf(out, "  %-10s %s\n", commands[i].name, commands[i].summary);
}

int main(int argc, char **argv)
{
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 1 : 0;
    }
    if (strcmp(argv[1], "--version") == 0) {
        printf("flashlm %s\n", FLASHLM_VERSION);
        return 0;
    }
    for (size_t i = 0; i < NUM_COMMANDS; i++)
        if (strcmp(argv[1], commands[i].name) == 0)
            return commands[i].run(argc - 1, argv + 1);
    fprintf(stderr, "flashlm: unknown command '%s' (see flashlm --help)\n", argv[1]);
    return 1;
}
