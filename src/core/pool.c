#include "core/pool.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

// Dispatch protocol. One 64-bit word `work` holds (generation << 32 | n_chunks << 16 | next chunk).
// The caller stores fn/arg, zeroes `done`, then publishes a new generation with next = 0. Any thread
// claims chunk `next` by a compare-exchange that also checks the generation, so a late worker can
// never take a chunk of a dispatch it did not see, and fn/arg (read after a successful claim) cannot
// change under it: the caller only moves on once `done` counts every chunk, this one included.
//
// Waiting is bounded: idle workers spin for POOL_SPIN_NS, then block on `cv`; the caller, once no
// chunk is left to claim, spins the same bound for chunks in flight, then blocks on `cv_done`. Both
// sleeps use the seq_cst "announce, then re-check" handshake with a counter (sleepers, caller_waits),
// so the common case never touches the mutex. The old pool yielded up to 20,000 times per wait and
// gave each thread a fixed slice: on a loaded machine every dispatch waited for a descheduled worker.
struct it_pool {
    int n;
    pthread_t *threads;
    pthread_mutex_t mu;
    pthread_cond_t cv;      // workers wait here for a new generation
    pthread_cond_t cv_done; // the caller waits here for chunks in flight
    _Atomic uint64_t work;
    atomic_int done;
    atomic_int quit;
    atomic_int sleepers;
    atomic_int caller_waits;
    it_pool_fn fn;
    void *arg;
    it_backoff backoff;   // caller-only state (one thread dispatches on a pool at a time)
    int no_backoff;       // it_pool_set_backoff(p, 0)
    it_governor gov;      // caller-only, as backoff
    int in_step, step_solo, step_disturbed, step_team, quiet;
    int64_t step_t0, step_cpu0;
};

typedef struct { it_pool *p; int ith; } worker_arg;

// About the gap between two matrix products in a decode step of a mid-sized model: long enough that
// a busy decode never sleeps between dispatches, short enough that an idle or starved team gives the
// CPU back almost at once.
enum { POOL_SPIN_NS = 50000 };
// A wait for chunks in flight holds the caller up beyond POOL_LATE_FACTOR times its own mean chunk
// time plus POOL_LATE_NS: an uneven last chunk, or a worker the machine delayed for a moment (1 ms
// was seen on the idle 2-vCPU machine), stays under it; a time-slice lost to another process not.
enum { POOL_LATE_FACTOR = 4, POOL_LATE_NS = 2000000 };
// A wait that marks a decode step as disturbed (the step governor, core/pool.h): far shorter than a
// late dispatch, because on a small model one such wait is already a large part of the step.
enum { POOL_DISTURB_NS = 250000 };
// A team step that made no parallel dispatch (a model so small every product is one chunk) turns the
// governor off for this many steps; then one step looks again (the context has grown).
enum { POOL_QUIET_STEPS = 63 };

#define WORK_GEN(w) ((uint32_t)((w) >> 32))
#define WORK_N(w) ((int)(((w) >> 16) & 0xffff))
#define WORK_NEXT(w) ((int)((w) & 0xffff))

static void cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

static int64_t clock_ns(clockid_t id) {
    struct timespec ts;
    clock_gettime(id, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}
static int64_t now_ns(void) { return clock_ns(CLOCK_MONOTONIC); }

// Spins until cond(p, v) is false or POOL_SPIN_NS have passed; returns 1 if it became false.
static int spin_while(it_pool *p, uint32_t v, int (*cond)(it_pool *, uint32_t)) {
    int64_t t0 = 0;
    for (int i = 0;; i++) {
        if (!cond(p, v)) return 1;
        cpu_relax();
        if ((i & 63) == 63) { // the clock costs ~20 ns: read it every 64 pauses
            int64_t t = now_ns();
            if (!t0) t0 = t;
            else if (t - t0 > POOL_SPIN_NS) return 0;
        }
    }
}

static int same_generation(it_pool *p, uint32_t gen) {
    return WORK_GEN(atomic_load(&p->work)) == gen && !atomic_load(&p->quit);
}

static int chunks_in_flight(it_pool *p, uint32_t n) {
    return (uint32_t)atomic_load_explicit(&p->done, memory_order_acquire) < n;
}

int it_backoff_solo(it_backoff *b) {
    if (b->solo_left <= 0) return 0;
    b->solo_left--;
    return 1;
}

void it_backoff_note(it_backoff *b, int took_part) {
    if (took_part) {
        b->misses = 0;
        if (b->solo_next && ++b->on_time >= IT_BACKOFF_MAX) b->solo_next = 0, b->on_time = 0;
        return;
    }
    if (++b->misses < IT_BACKOFF_MISSES) return;
    b->solo_next = !b->solo_next ? IT_BACKOFF_MIN : b->solo_next * 4 < IT_BACKOFF_MAX ? b->solo_next * 4 : IT_BACKOFF_MAX;
    b->solo_left = b->solo_next;
    b->misses = 0, b->on_time = 0;
}

static long long gov_mean(const it_governor *g, int m) {
    long long s = 0;
    for (int i = 0; i < g->nh[m]; i++) s += g->hist[m][i];
    return g->nh[m] ? s / g->nh[m] : 0;
}

static void gov_push(it_governor *g, int m, long long ns) {
    g->hist[m][g->ih[m]] = ns;
    g->ih[m] = (g->ih[m] + 1) % IT_GOV_HIST;
    if (g->nh[m] < IT_GOV_HIST) g->nh[m]++;
}

int it_gov_next(it_governor *g) {
    if (g->gap < IT_GOV_GAP_MIN) g->gap = IT_GOV_GAP_MIN;
    if (g->probe_left > 0) return !g->mode;
    // Team steps are questioned only when a quarter of them (and two at least) were disturbed: an
    // idle machine's odd hiccup (one step in 20 on TinyLlama) does not cost a probe.
    if (g->since >= g->gap && g->nh[g->mode] == IT_GOV_HIST &&
        (g->mode || (g->disturbed >= 2 && 4 * g->disturbed >= g->since))) {
        g->probe_left = IT_GOV_PROBE, g->probe_ns = 0, g->probe_n = 0;
        return !g->mode;
    }
    return g->mode;
}

void it_gov_done(it_governor *g, int solo, long long ns, int disturbed) {
    g->steps[solo]++;
    if (g->probe_left <= 0) {        // an ordinary step
        if (solo != g->mode) return;   // (not what it_gov_next chose: ignored)
        gov_push(g, solo, ns);
        g->since++;
        if (!solo && disturbed) g->disturbed++;
        return;
    }
    g->probe_ns += ns, g->probe_n++;
    if (--g->probe_left > 0) return;
    long long probe = g->probe_ns / g->probe_n;
    if (probe * 20 < gov_mean(g, g->mode) * 19) {   // the other mode is more than 5% faster
        g->mode = !g->mode, g->switches++;
        g->nh[g->mode] = 0, g->ih[g->mode] = 0;
        gov_push(g, g->mode, probe);
        g->gap = IT_GOV_GAP_MIN;
    } else {
        g->gap = g->gap * 4 < IT_GOV_GAP_MAX ? g->gap * 4 : IT_GOV_GAP_MAX;
    }
    g->since = 0, g->disturbed = 0;
}

void it_pool_step_begin(it_pool *p) {
    if (!p || p->n == 1 || p->no_backoff) return;
    if (p->quiet > 0) {   // steps of a model too small to dispatch: not timed (the CPU clock is a syscall)
        p->quiet--;
        return;
    }
    p->in_step = 1, p->step_team = 0;
    p->step_solo = it_gov_next(&p->gov);
    p->step_disturbed = 0;
    p->step_t0 = now_ns();
    p->step_cpu0 = clock_ns(CLOCK_THREAD_CPUTIME_ID);
}

void it_pool_step_end(it_pool *p) {
    if (!p || !p->in_step) return;
    int64_t wall = now_ns() - p->step_t0, cpu = clock_ns(CLOCK_THREAD_CPUTIME_ID) - p->step_cpu0;
    // The caller itself preempted (or asleep waiting for a worker) for a tenth of the step: the
    // machine is not ours alone. Spinning counts as CPU time, so an idle team stays near 1.
    if (cpu * 10 < wall * 9) p->step_disturbed = 1;
    if (!p->step_solo && !p->step_team) p->quiet = POOL_QUIET_STEPS;   // nothing to choose between
    else it_gov_done(&p->gov, p->step_solo, wall, p->step_disturbed);
    p->in_step = 0, p->step_solo = 0;
}

// Runs unclaimed chunks of generation gen until none is left; returns how many it ran.
static int run_chunks(it_pool *p, uint32_t gen) {
    uint64_t w = atomic_load(&p->work);
    for (int ran = 0;; ran++) {
        if (WORK_GEN(w) != gen || WORK_NEXT(w) >= WORK_N(w)) return ran;
        if (!atomic_compare_exchange_weak(&p->work, &w, w + 1)) continue; // w reloaded
        int n = WORK_N(w);
        p->fn(p->arg, WORK_NEXT(w), n);
        if (atomic_fetch_add(&p->done, 1) + 1 == n && atomic_load(&p->caller_waits)) {
            pthread_mutex_lock(&p->mu);
            pthread_cond_signal(&p->cv_done);
            pthread_mutex_unlock(&p->mu);
        }
        w = atomic_load(&p->work);
    }
}

static void *worker_main(void *va) {
    worker_arg wa = *(worker_arg *)va;
    free(va);
    it_pool *p = wa.p;
    // Generation 0 is the pool's initial state: a dispatch made before this thread started is then
    // still seen (reading the current generation here would skip it).
    uint32_t seen = 0;
    for (;;) {
        if (!spin_while(p, seen, same_generation)) {
            pthread_mutex_lock(&p->mu);
            atomic_fetch_add(&p->sleepers, 1);
            while (same_generation(p, seen)) pthread_cond_wait(&p->cv, &p->mu);
            atomic_fetch_sub(&p->sleepers, 1);
            pthread_mutex_unlock(&p->mu);
        }
        if (atomic_load(&p->quit)) return NULL;
        seen = WORK_GEN(atomic_load(&p->work));
        run_chunks(p, seen);
    }
}

it_pool *it_pool_new(int n_threads) {
    it_pool *p = calloc(1, sizeof *p);
    if (!p) return NULL;
    p->n = n_threads < 1 ? 1 : n_threads;
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv, NULL);
    pthread_cond_init(&p->cv_done, NULL);
    if (p->n > 1) {
        p->threads = calloc((size_t)p->n - 1, sizeof *p->threads);
        if (!p->threads) { p->n = 1; it_pool_free(p); return NULL; }
        for (int i = 1; i < p->n; i++) {
            worker_arg *wa = malloc(sizeof *wa);
            if (!wa) { p->n = i; it_pool_free(p); return NULL; }
            wa->p = p;
            wa->ith = i;
            if (pthread_create(&p->threads[i - 1], NULL, worker_main, wa) != 0) {
                free(wa);
                p->n = i;
                it_pool_free(p);
                return NULL;
            }
        }
    }
    return p;
}

void it_pool_free(it_pool *p) {
    if (!p) return;
    const char *st = getenv("INTACT_POOL_STATS");
    if (st && strcmp(st, "1") == 0 && p->gov.steps[0] + p->gov.steps[1] > 0)
        fprintf(stderr, "pool: %ld team steps, %ld solo steps, %ld switches\n", p->gov.steps[0], p->gov.steps[1],
                p->gov.switches);
    pthread_mutex_lock(&p->mu);
    atomic_store(&p->quit, 1);
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
    for (int i = 1; i < p->n; i++) pthread_join(p->threads[i - 1], NULL);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->cv);
    pthread_cond_destroy(&p->cv_done);
    free(p->threads);
    free(p);
}

int it_pool_size(const it_pool *p) { return p && !p->step_solo ? p->n : 1; }

void it_pool_set_backoff(it_pool *p, int on) {
    if (!p) return;
    p->no_backoff = !on;
    memset(&p->backoff, 0, sizeof p->backoff);
    memset(&p->gov, 0, sizeof p->gov);
}

int it_pool_chunks(const it_pool *p, double work, double min_per_chunk, int max_per_thread) {
    int cap = it_pool_size(p) * (max_per_thread < 1 ? 1 : max_per_thread);
    if (it_pool_size(p) == 1 || !(work >= 2 * min_per_chunk)) return 1;
    double k = work / (min_per_chunk > 0 ? min_per_chunk : 1);
    return k >= cap ? cap : (int)k;
}

void it_pool_run_n(it_pool *p, it_pool_fn fn, void *arg, int n_chunks) {
    if (n_chunks < 1) n_chunks = 1;
    if (n_chunks > IT_POOL_MAX_CHUNKS) n_chunks = IT_POOL_MAX_CHUNKS;
    if (!p || p->n == 1 || n_chunks == 1 || p->step_solo || (!p->no_backoff && it_backoff_solo(&p->backoff))) {
        for (int i = 0; i < n_chunks; i++) fn(arg, i, n_chunks);
        return;
    }
    p->step_team = 1;
    p->fn = fn;
    p->arg = arg;
    atomic_store(&p->done, 0);
    uint32_t gen = WORK_GEN(atomic_load(&p->work)) + 1;
    atomic_store(&p->work, (uint64_t)gen << 32 | (uint64_t)n_chunks << 16); // seq_cst: see sleepers
    if (atomic_load(&p->sleepers) > 0) {
        pthread_mutex_lock(&p->mu);
        pthread_cond_broadcast(&p->cv);
        pthread_mutex_unlock(&p->mu);
    }
    int64_t t0 = now_ns();
    int ran = run_chunks(p, gen);
    int64_t t1 = now_ns();
    if (!spin_while(p, (uint32_t)n_chunks, chunks_in_flight)) {
        pthread_mutex_lock(&p->mu);
        atomic_store(&p->caller_waits, 1);
        while (chunks_in_flight(p, (uint32_t)n_chunks)) pthread_cond_wait(&p->cv_done, &p->mu);
        atomic_store(&p->caller_waits, 0);
        pthread_mutex_unlock(&p->mu);
    }
    int64_t held = now_ns() - t1;
    int64_t own = ran > 0 ? POOL_LATE_FACTOR * (t1 - t0) / ran : 0;
    int late = ran > 0 && held > own + POOL_LATE_NS;
    if (ran > 0 && held > own + POOL_DISTURB_NS) p->step_disturbed = 1;
    it_backoff_note(&p->backoff, ran < n_chunks && !late);
}

void it_pool_run(it_pool *p, it_pool_fn fn, void *arg) { it_pool_run_n(p, fn, arg, it_pool_size(p)); }

void it_split_range(long n, int ith, int nth, long align, long *b, long *e) {
    if (align < 1) align = 1;
    long units = (n + align - 1) / align;
    long per = units / nth, rem = units % nth;
    long ub = ith * per + (ith < rem ? ith : rem);
    long ue = ub + per + (ith < rem ? 1 : 0);
    *b = ub * align < n ? ub * align : n;
    *e = ue * align < n ? ue * align : n;
}

// ---- contiguous shares with stealing ----

#define SE_START(v) ((long)((v) >> 32))
#define SE_END(v) ((long)((v) & 0xffffffffu))
#define SE_PACK(b, e) ((unsigned long long)(b) << 32 | (unsigned long long)(e))

void it_steal_init(it_steal *s, long n, int n_parts, long align) {
    if (n_parts < 1) n_parts = 1;
    if (n_parts > IT_STEAL_MAX_PARTS) n_parts = IT_STEAL_MAX_PARTS;
    s->n_parts = n_parts;
    s->align = align < 1 ? 1 : align;
    for (int i = 0; i < n_parts; i++) {
        long b, e;
        it_split_range(n, i, n_parts, s->align, &b, &e);
        atomic_init(&s->part[i].se, SE_PACK(b, e));
    }
}

// Rounds x up to a multiple of a, but not past limit.
static long round_up_to(long x, long a, long limit) {
    long r = (x + a - 1) / a * a;
    return r < limit ? r : limit;
}

int it_steal_next(it_steal *s, int self, long min_block, long *b, long *e) {
    if (min_block < 1) min_block = 1;
    it_steal_part *own = &s->part[(self % s->n_parts + s->n_parts) % s->n_parts];
    unsigned long long v = atomic_load(&own->se);
    while (SE_START(v) < SE_END(v)) {   // own part: from the front, big blocks while much is left
        long st = SE_START(v), en = SE_END(v), want = (en - st) / 4;
        long stop = round_up_to(st + (want > min_block ? want : min_block), s->align, en);
        if (atomic_compare_exchange_weak(&own->se, &v, SE_PACK(stop, en))) {
            *b = st, *e = stop;
            return 1;
        }
    }
    for (;;) {   // steal min_block rows from the back of the fullest other part
        it_steal_part *victim = NULL;
        long most = 0;
        for (int i = 0; i < s->n_parts; i++) {
            unsigned long long w = atomic_load(&s->part[i].se);
            if (SE_END(w) - SE_START(w) > most) most = SE_END(w) - SE_START(w), victim = &s->part[i];
        }
        if (!victim) return 0;
        v = atomic_load(&victim->se);
        long st = SE_START(v), en = SE_END(v);
        if (st >= en) continue;
        // The stolen block ends at en and starts at an aligned row, at least min_block back, never
        // before the owner's front.
        long from = (en - min_block) / s->align * s->align;
        if (from < st) from = st;
        if (atomic_compare_exchange_weak(&victim->se, &v, SE_PACK(st, from))) {
            *b = from, *e = en;
            return 1;
        }
    }
}
