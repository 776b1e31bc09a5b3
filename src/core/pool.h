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
// Threads that take part: the pool's, or 1 inside a solo step (the step governor below), so that
// kernels then set up for one thread exactly as with -t 1.
int it_pool_size(const it_pool *p);
// fn(arg, i, it_pool_size(p)) for i in [0, it_pool_size(p)).
void it_pool_run(it_pool *p, it_pool_fn fn, void *arg);
// fn(arg, i, n_chunks) for i in [0, n_chunks), n_chunks clamped to [1, IT_POOL_MAX_CHUNKS]. One chunk
// (or a serial pool) runs on the caller with no dispatch at all.
void it_pool_run_n(it_pool *p, it_pool_fn fn, void *arg, int n_chunks);
// Back-off from a team that is not getting its cores. A worker that another process keeps off its
// core (or preempts mid-chunk) makes every dispatch pay: the caller runs the chunks alone plus the
// dispatch, or waits a time-slice for the chunk in flight. After IT_BACKOFF_MISSES dispatches in a
// row where the workers took no chunk, or held the caller far past its own chunks' time, the pool
// runs the next 256 dispatches inline on the caller (every chunk, in order: the same results), then
// tries the team again; each failed try makes the stretch 4 times longer, up to IT_BACKOFF_MAX.
// IT_BACKOFF_MAX dispatches in a row where the team took part end it. Chunks must therefore never
// wait for one another (it_pool_set_backoff(p, 0) turns it off: tests of the stealing itself).
enum { IT_BACKOFF_MISSES = 64, IT_BACKOFF_MIN = 256, IT_BACKOFF_MAX = 4096 };
typedef struct {
    long solo_left, solo_next, misses, on_time;
} it_backoff;
// 1 (and counts it) when the next dispatch should run inline.
int it_backoff_solo(it_backoff *b);
// After a dispatch: took_part = a worker ran a chunk and did not hold the caller up.
void it_backoff_note(it_backoff *b, int took_part);
void it_pool_set_backoff(it_pool *p, int on);   // also the step governor below

// Step governor: decode on a loaded machine. The back-off above reacts to dispatches where a worker
// was absent; a worker that runs most of the time but is preempted mid-chunk now and then passes
// that test yet holds the caller a scheduler slice (~2-4 ms) each time, which on a small model is
// one or two whole decode steps: english-12m decoded at 0.64-0.70x of -t 1 with one core loaded.
// So whole decode steps are timed and the two ways of running them compared on the real workload:
// while team steps run undisturbed nothing is tried. A step is disturbed when the caller ran less
// than 90% of its wall time (preempted, or asleep waiting for a worker) or one dispatch held it
// beyond 4 times its own chunk time + 250 us. Once a quarter of the team steps since the last probe
// (two at least) were, the next step after `gap` steps starts a probe of IT_GOV_PROBE solo steps.
// If their mean beats the mean of the last IT_GOV_HIST team steps by 5%, steps run solo, and solo
// probes the team the same way every `gap` steps. A probe that loses makes the gap 4 times longer
// (IT_GOV_GAP_MIN .. IT_GOV_GAP_MAX steps), one that wins resets it.
enum { IT_GOV_HIST = 4, IT_GOV_PROBE = 2, IT_GOV_GAP_MIN = 4, IT_GOV_GAP_MAX = 512 };
typedef struct {
    int mode;                        // how steps run outside probes: 0 team, 1 solo
    int probe_left;                  // steps of the running probe (the other mode) still to come
    int gap, since;                  // steps between probes; steps since the last one
    int disturbed;                   // team steps since the last probe that held the caller up
    long long hist[2][IT_GOV_HIST];  // the last step times (ns) per mode
    int nh[2], ih[2];
    long long probe_ns;
    int probe_n;
    long steps[2], switches;         // statistics (INTACT_POOL_STATS=1 prints them)
} it_governor;
// 1 when the next step should run solo (every dispatch inline).
int it_gov_next(it_governor *g);
// A step ended: run solo or not, its wall time, and whether a dispatch in it held the caller up.
void it_gov_done(it_governor *g, int solo, long long ns, int disturbed);
// Bracket one decode step (one token through the whole model) on the caller's thread.
void it_pool_step_begin(it_pool *p);
void it_pool_step_end(it_pool *p);

// How many chunks to cut `work` units into so that each has at least min_per_chunk units: between 1
// and max_per_thread * it_pool_size(p). Small work gives 1 (run inline, no dispatch).
int it_pool_chunks(const it_pool *p, double work, double min_per_chunk, int max_per_thread);

// Contiguous shares with stealing, for streaming kernels (a decode matrix-vector product). Part i of
// [0, n) is thread i's share, walked front to back in blocks, so each thread reads one sequential
// stream as with a fixed split; a thread whose part is exhausted takes blocks from the BACK of the
// part with the most rows left. With a fixed split, whichever thread the machine slowed down (a
// shared core, an interrupt, an unlucky memory channel) made the other wait: ~10% of the samples of
// a 2-thread decode were the two threads waiting for each other. Each part is one 64-bit atomic
// (start << 32 | end) on its own cache line; a take is one compare-exchange.
enum { IT_STEAL_MAX_PARTS = 64 };
typedef struct {
    _Alignas(64) _Atomic unsigned long long se;
} it_steal_part;
typedef struct {
    int n_parts;
    long align;
    it_steal_part part[IT_STEAL_MAX_PARTS];
} it_steal;
// n < 2^31; n_parts in [1, IT_STEAL_MAX_PARTS] (clamped); part boundaries aligned to `align`.
void it_steal_init(it_steal *s, long n, int n_parts, long align);
// The next block for part `self` (taken modulo n_parts): from its own front (a quarter of what is
// left, at least min_block, rounded to align), else min_block from the back of the fullest other
// part. Returns 0 when no rows are left anywhere. Every row of [0, n) is handed out exactly once.
int it_steal_next(it_steal *s, int self, long min_block, long *b, long *e);
// Several matrices shared out as one row space (segment m = rows [off[m], off[m+1])): the rows of a
// block [b, e) that fall in segment m, as that matrix's rows [*r0, *r1); 0 if there are none.
static inline int it_seg_rows(const long *off, int m, long b, long e, long *r0, long *r1) {
    long lo = off[m], hi = off[m + 1];
    if (e <= lo || b >= hi) return 0;
    *r0 = (b > lo ? b : lo) - lo;
    *r1 = (e < hi ? e : hi) - lo;
    return 1;
}

// Splits [0, n) into nth nearly equal parts aligned to `align`; returns this thread's [*b, *e).
void it_split_range(long n, int ith, int nth, long align, long *b, long *e);

#endif
