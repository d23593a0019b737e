/* clock.h - seconds on a monotonic clock, for every latency and duration
 * flashlm measures (wall-clock time can jump). */
#ifndef FL_CLOCK_H
#define FL_CLOCK_H

#include <time.h>

static inline double fl_now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

#endif
