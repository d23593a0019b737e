/* barrier.h - waiting at a pthread barrier whose failure is a bug (the
 * tensor-parallel ranks that are threads of one process meet at them). */
#ifndef FL_BARRIER_H
#define FL_BARRIER_H

#include <pthread.h>

#include "base/error.h"

static inline void fl_barrier_wait(pthread_barrier_t *b)
{
    const int rc = pthread_barrier_wait(b);
    FL_ASSERT(rc == 0 || rc == PTHREAD_BARRIER_SERIAL_THREAD);
}

#endif
