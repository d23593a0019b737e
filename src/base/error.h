/* error.h - the two error tiers of flashlm.
 *
 * 1. fl_error: anything a user can cause (a file, a flag, a request) becomes
 *    one message in an fl_error, and the function returns -1. Library code
 *    never exits; only the CLI's start-up turns an error into an exit code.
 * 2. FL_ASSERT: a broken internal invariant (a bug in flashlm, never bad
 *    input). It prints the statement, file and line and aborts. */
#ifndef FL_ERROR_H
#define FL_ERROR_H

#include <stdio.h>
#include <stdlib.h>

typedef struct fl_error {
    char msg[1024];
} fl_error;

/* Formats the message into err (if err is not NULL) and returns -1, so a
 * caller can write `return fl_fail(err, "...")`. */
int fl_fail(fl_error *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Prepends "prefix: " to an existing message; returns -1. Used to add the
 * name of the file or field that an inner error happened in. */
int fl_fail_prefix(fl_error *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define FL_ASSERT(cond)                                                        \
    do {                                                                       \
        if (!(cond)) {                                                         \
            fprintf(stderr, "flashlm: internal error: %s (%s:%d)\n", #cond,    \
                    __FILE__, __LINE__);                                       \
            abort();                                                           \
        }                                                                      \
    } while (0)

#endif
