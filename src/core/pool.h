// A fixed team of worker threads. it_pool_run() runs fn(arg, ith, nth) on every thread of the team
// (the caller is thread 0) and returns when all are done. Workers spin briefly before sleeping, so
// the hundreds of small dispatches per decoded token stay cheap.
#ifndef IT_CORE_POOL_H
#define IT_CORE_POOL_H

typedef struct it_pool it_pool;
typedef void (*it_pool_fn)(void *arg, int ith, int nth);

it_pool *it_pool_new(int n_threads);   // NULL on failure; n_threads <= 1 gives a serial pool
void it_pool_free(it_pool *p);
int it_pool_size(const it_pool *p);
void it_pool_run(it_pool *p, it_pool_fn fn, void *arg);

// Splits [0, n) into nth nearly equal parts aligned to `align`; returns this thread's [*b, *e).
void it_split_range(long n, int ith, int nth, long align, long *b, long *e);

#endif
