/* error.c - formatting for fl_error (see error.h for the policy). */
#include "base/error.h"

#include <stdarg.h>
#include <string.h>

int fl_fail(fl_error *err, const char *fmt, ...)
{
    if (!err)
        return -1;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->msg, sizeof err->msg, fmt, ap);
    va_end(ap);
    return -1;
}

int fl_fail_prefix(fl_error *err, const char *fmt, ...)
{
    if (!err)
        return -1;
    char prefix[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    char inner[sizeof err->msg];
    memcpy(inner, err->msg, sizeof inner);
    /* A message that no longer fits ends in "..." rather than mid-word. */
    if (snprintf(err->msg, sizeof err->msg, "%s: %s", prefix, inner) >= (int)sizeof err->msg)
        memcpy(err->msg + sizeof err->msg - 4, "...", 4);
    return -1;
}
