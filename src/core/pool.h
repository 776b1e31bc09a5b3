// A fixed team of worker threads that share out chunks of work. it_pool_run_n() runs
// fn(arg, i, n_chunks) exactly once for every chunk i in [0, n_chunks) and returns when all are done.
// Chunks are not bound to threads: the caller and every awake worker take the next unclaimed chunk
// from one atomic counter, so a worker the scheduler has not run (a busy machine) costs nothing — the
// running threads take its chunks. A chunk index is never run twice nor by two threads at once, so
// per-chunk scratch indexed by i stays safe. Idle workers spin for a few tens of microseconds (the gap
// between dispatches in a decode step), then sleep; the caller waits the same way for chunks other
// threads are still running.
#ifndef IT_CORE_POOL_H
#define IT_CORE_POOL_H

typedef struct it_pool it_pool;
typedef void (*it_pool_fn)(void *arg, int ith, int nth);

enum { IT_POOL_MAX_CHUNKS = 65535 };

it_pool *it_pool_new(int n_threads);   // NULL on failure; n_threads <= 1 gives a serial pool
void it_pool_free(it_pool *p);
int it_pool_size(const it_pool *p);
// fn(arg, i, it_pool_size(p)) for i in [0, it_pool_size(p)).
void it_pool_run(it_pool *p, it_pool_fn fn, void *arg);
// fn(arg, i, n_chunks) for i in [0, n_chunks), n_chunks clamped to [1, IT_POOL_MAX_CHUNKS]. One chunk
// (or a serial pool) runs on the caller with no dispatch at all.
void it_pool_run_n(it_pool *p, it_pool_fn fn, void *arg, int n_chunks);
// How many chunks to cut `work` units into so that each has at least min_per_chunk units: between 1
// and max_per_thread * it_pool_size(p). Small work gives 1 (run inline, no dispatch).
int it_pool_chunks(const it_pool *p, double work, double min_per_chunk, int max_per_thread);

// Splits [0, n) into nth nearly equal parts aligned to `align`; returns this thread's [*b, *e).
void it_split_range(long n, int ith, int nth, long align, long *b, long *e);

#endif
