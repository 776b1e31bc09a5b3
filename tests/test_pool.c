// The thread pool (core/pool.h): every chunk runs exactly once and the dispatch returns only after
// all of them, for 1..8 threads, fewer or more chunks than threads, thousands of back-to-back
// dispatches, dispatches after the workers went to sleep, and a chunk that blocks until the others
// are done (which only completes if the remaining chunks move to another thread: work stealing).
// Then the chunk sizing, and the engine's promise that logits do not depend on the thread count:
// english-12m (whose matrices are split) gives bit-identical logits with 1, 2 and 3 threads.
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <time.h>

#include "harness.h"
#include "core/pool.h"
#include "intact.h"

enum { MAX_CHUNKS = 256 };

typedef struct {
    atomic_int runs[MAX_CHUNKS];
    atomic_int bad_nth;
    int expect_nth;
    int sleep_chunk; // this chunk sleeps sleep_us first (-1: none)
    int sleep_us;
} count_job;

static void sleep_us(int us) {
    struct timespec ts = {us / 1000000, (long)(us % 1000000) * 1000};
    nanosleep(&ts, NULL);
}

static void count_fn(void *arg, int ith, int nth) {
    count_job *j = arg;
    if (nth != j->expect_nth) atomic_fetch_add(&j->bad_nth, 1);
    if (ith == j->sleep_chunk) sleep_us(j->sleep_us);
    if (ith >= 0 && ith < MAX_CHUNKS) atomic_fetch_add(&j->runs[ith], 1);
}

// Dispatches n_chunks and returns how many chunks did not run exactly once (or saw a wrong nth).
static int dispatch_and_count(it_pool *p, int n_chunks, int sleep_chunk, int sleep_for) {
    static count_job j;
    for (int i = 0; i < MAX_CHUNKS; i++) atomic_store(&j.runs[i], 0);
    atomic_store(&j.bad_nth, 0);
    j.expect_nth = n_chunks;
    j.sleep_chunk = sleep_chunk;
    j.sleep_us = sleep_for;
    it_pool_run_n(p, count_fn, &j, n_chunks);
    int bad = atomic_load(&j.bad_nth);
    for (int i = 0; i < MAX_CHUNKS; i++) bad += atomic_load(&j.runs[i]) != (i < n_chunks);
    return bad;
}

// The first chunk to start blocks until every other chunk has run (2 s timeout). With chunks
// bound to threads, the other chunks of that thread would never run.
typedef struct {
    atomic_int first, finished;
    int n;
    atomic_int timed_out;
} steal_job;

static void steal_fn(void *arg, int ith, int nth) {
    (void)ith;
    steal_job *j = arg;
    int expected = 0;
    if (atomic_compare_exchange_strong(&j->first, &expected, 1)) {
        for (int t = 0; atomic_load(&j->finished) < nth - 1; t++) {
            if (t > 20000) { atomic_store(&j->timed_out, 1); break; }
            sleep_us(100);
        }
    }
    atomic_fetch_add(&j->finished, 1);
}

static int logits_with_threads(const intact_model *m, int threads, const int32_t *toks, int nt, float *out) {
    intact_ctx_params cp = intact_ctx_default_params();
    cp.n_threads = threads;
    cp.n_ctx = 64;
    intact_error err = {0, ""};
    intact_ctx *c = intact_ctx_new(m, &cp, &err);
    if (!c) return -1;
    // A prefill (the GEMM path) then single-token decode steps (the GEMV path).
    int rc = intact_ctx_eval(c, toks, nt / 2, &err);
    const float *l = rc == 0 ? intact_ctx_logits(c, -1) : NULL;
    if (l) memcpy(out, l, 512 * sizeof *out);
    for (int i = nt / 2; rc == 0 && i < nt; i++) {
        rc = intact_ctx_eval(c, toks + i, 1, &err);
        l = rc == 0 ? intact_ctx_logits(c, -1) : NULL;
        if (l) memcpy(out + (size_t)(i - nt / 2 + 1) * 512, l, 512 * sizeof *out);
    }
    intact_ctx_free(c);
    return rc;
}

typedef struct {
    it_steal s;
    long n;
    atomic_int *hits;
    atomic_int bad;
    int sleeper;
} rows_job;

// One pool chunk: takes blocks until none is left; the sleeper's part is mostly stolen meanwhile.
static void rows_fn(void *arg, int ith, int nth) {
    rows_job *j = arg;
    (void)nth;
    if (ith == j->sleeper) sleep_us(2000);
    long b, e;
    while (it_steal_next(&j->s, ith, 16, &b, &e)) {
        if (b < 0 || e > j->n || b >= e) {
            atomic_fetch_add(&j->bad, 1);
            return;
        }
        for (long i = b; i < e; i++) atomic_fetch_add(&j->hits[i], 1);
    }
}

typedef struct {
    pthread_t caller;
    int slow;                 // chunks on a worker hold the caller up (below)
    atomic_int off_caller;    // chunks that ran on another thread
    atomic_llong caller_ns;   // the caller's chunk took this long; -1 until it has run
} who_job;

static long long mono_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void who_fn(void *arg, int ith, int nth) {
    (void)ith, (void)nth;
    who_job *j = arg;
    if (!pthread_equal(pthread_self(), j->caller)) {
        atomic_fetch_add(&j->off_caller, 1);
        if (!j->slow) return;
        // Late by construction, however long a loaded machine stretched the caller's own chunk:
        // wait for it to end (at most 2 s), then hold the caller 30 ms + 8 times that chunk's time,
        // beyond the pool's 4 times + 2 ms.
        long long t0 = mono_ns();
        while (atomic_load(&j->caller_ns) < 0 && mono_ns() - t0 < 2000000000LL) sleep_us(50);
        long long c = atomic_load(&j->caller_ns);
        sleep_us(30000 + (int)((c > 0 ? 8 * c : 0) / 1000 < 2000000 ? (c > 0 ? 8 * c : 0) / 1000 : 2000000));
    } else {
        long long t0 = mono_ns();
        sleep_us(200);   // long enough for a spinning or woken worker to take a chunk meanwhile
        atomic_store(&j->caller_ns, mono_ns() - t0);
    }
}

// Hand-worked sequence of the back-off policy (core/pool.h): 64 misses in a row start 256 inline
// dispatches; a miss streak after them 1024, then 4096 (the cap); a team that takes part resets the
// miss count, and 4096 dispatches in a row with it end the back-off.
static int solo_run(it_backoff *b) {   // inline dispatches until the first parallel one
    int n = 0;
    while (it_backoff_solo(b)) n++;
    return n;
}

static void test_backoff(void) {
    TEST_CASE("back-off policy: 64 misses start 256 inline dispatches, then 1024, 4096; the team resets it") {
        it_backoff b = {0};
        for (int i = 0; i < 63; i++) it_backoff_note(&b, 0);
        CHECK(!it_backoff_solo(&b), "63 misses already went solo");
        it_backoff_note(&b, 1);   // the team took part: the streak starts over
        for (int i = 0; i < 63; i++) it_backoff_note(&b, 0);
        CHECK(!it_backoff_solo(&b), "the count was not reset by a dispatch the team took part in");
        it_backoff_note(&b, 0);   // the 64th in a row
        CHECK(solo_run(&b) == 256, "first stretch %ld", b.solo_next);
        for (int i = 0; i < 64; i++) it_backoff_note(&b, 0);
        CHECK(solo_run(&b) == 1024, "second stretch %ld", b.solo_next);
        for (int i = 0; i < 64; i++) it_backoff_note(&b, 0);
        CHECK(solo_run(&b) == 4096, "third stretch %ld", b.solo_next);
        for (int i = 0; i < 64; i++) it_backoff_note(&b, 0);
        CHECK(solo_run(&b) == 4096, "capped stretch %ld", b.solo_next);
        for (int i = 0; i < 4095; i++) it_backoff_note(&b, 1);
        for (int i = 0; i < 64; i++) it_backoff_note(&b, 0);
        CHECK(solo_run(&b) == 4096, "4095 good dispatches ended the back-off");
        for (int i = 0; i < 4096; i++) it_backoff_note(&b, 1);
        for (int i = 0; i < 64; i++) it_backoff_note(&b, 0);
        CHECK(solo_run(&b) == 256, "4096 good dispatches did not end it: %ld", b.solo_next);
    }
    TEST_CASE("back-off in the pool: after workers held the caller up, dispatches run on the caller") {
        it_pool *p = it_pool_new(2);
        // Worker chunks hold the caller 30 ms + 8 times its own chunk: every dispatch a worker joins
        // is late (held > 4 x own + 2 ms), and one it does not join is a miss too.
        who_job j = {pthread_self(), 1, 0, 0};
        for (int rep = 0; rep < IT_BACKOFF_MISSES; rep++) {
            atomic_store(&j.caller_ns, -1);
            it_pool_run_n(p, who_fn, &j, 2);
        }
        j.slow = 0;
        atomic_store(&j.off_caller, 0);
        for (int rep = 0; rep < 20; rep++) it_pool_run_n(p, who_fn, &j, 4);
        CHECK(atomic_load(&j.off_caller) == 0, "%d chunks ran on a worker during the back-off",
              atomic_load(&j.off_caller));
        it_pool_set_backoff(p, 0);   // off: the workers take chunks again
        int taken = 0;
        for (int rep = 0; rep < 200 && !taken; rep++) {
            it_pool_run_n(p, who_fn, &j, 4);
            taken = atomic_load(&j.off_caller) > 0;
        }
        CHECK(taken, "with the back-off off, no worker took a chunk in 200 dispatches");
        it_pool_free(p);
    }
}

// Hand-worked runs of the step governor's policy (core/pool.h) on made-up step times.
// Steps the policy runs: returns how many of n ran as team steps; team steps take team_ns (disturbed
// when team_dist), solo steps solo_ns.
static int gov_run(it_governor *g, int n, long long team_ns, int team_dist, long long solo_ns, char *trace) {
    int team = 0;
    for (int i = 0; i < n; i++) {
        int solo = it_gov_next(g);
        if (trace) trace[i] = solo ? 's' : 't';
        team += !solo;
        it_gov_done(g, solo, solo ? solo_ns : team_ns, solo ? 0 : team_dist);
    }
    if (trace) trace[n] = 0;
    return team;
}

static void test_governor(void) {
    TEST_CASE("step governor: an undisturbed team is never questioned, however slow") {
        it_governor g = {0};
        CHECK(gov_run(&g, 2000, 3000000, 0, 1000000, NULL) == 2000, "a solo step ran");
    }
    TEST_CASE("step governor: one disturbed team step in 20 costs no probe") {
        it_governor g = {0};
        int team = 0;
        for (int i = 0; i < 100; i++) team += gov_run(&g, 19, 1000000, 0, 1000000, NULL) + gov_run(&g, 1, 1000000, 1, 1000000, NULL);
        CHECK(team == 2000 && g.steps[1] == 0, "%ld solo steps", g.steps[1]);
    }
    TEST_CASE("step governor: disturbed 3 ms team steps, 2 ms solo: solo after 4 + 2 steps; team probes 4, 16, 64, 256, 512 apart") {
        it_governor g = {0};
        char tr[1001];
        int team = gov_run(&g, 1000, 3000000, 1, 2000000, tr);
        // 4 team steps fill the history; 2 solo probe steps beat them; then 2-step team probes
        // after 4 solo steps (steps 11-12), 16 more (29-30), 64 (95-96), 256 (353-354), 512 (867-868).
        CHECK(strncmp(tr, "ttttssssssttssssssssssssssssttss", 32) == 0, "trace %.32s", tr);
        CHECK(team == 14 && tr[94] == 't' && tr[95] == 't' && tr[352] == 't' && tr[353] == 't' && tr[866] == 't' && tr[867] == 't',
              "%d team steps", team);
        CHECK(g.mode == 1 && g.switches == 1, "mode %d, %ld switches", g.mode, g.switches);
    }
    TEST_CASE("step governor: back to the team once its probe is more than 5% faster") {
        it_governor g = {0};
        gov_run(&g, 10, 3000000, 1, 2000000, NULL);   // solo from step 7 on (above)
        CHECK(g.mode == 1, "not solo");
        // The load goes away: team steps 1.92 ms (4% under solo's 2 ms) do not switch back ...
        gov_run(&g, 200, 1920000, 0, 2000000, NULL);
        CHECK(g.mode == 1, "switched for a 4%% gain");
        // ... 1.5 ms (25% under) does, at the next probe (due at once: 4 solo steps since the
        // switch), and an undisturbed team then stays.
        it_governor h = {0};
        gov_run(&h, 10, 3000000, 1, 2000000, NULL);
        char tr[41];
        CHECK(gov_run(&h, 40, 1500000, 0, 2000000, tr) == 40, "trace %s", tr);
        CHECK(h.mode == 0 && h.switches == 2, "mode %d, %ld switches", h.mode, h.switches);
        it_governor k = {0};   // (a probe 10% faster but not yet due leaves the solo steps alone)
        gov_run(&k, 8, 3000000, 1, 2000000, NULL);
        CHECK(gov_run(&k, 2, 1800000, 0, 2000000, NULL) == 0, "a team step before the probe was due");
    }
}

typedef struct {
    pthread_t caller;
    atomic_int off_caller;
    atomic_int bad_size;
    it_pool *p;
} step_job;

static void step_fn(void *arg, int ith, int nth) {
    (void)ith, (void)nth;
    step_job *j = arg;
    if (!pthread_equal(pthread_self(), j->caller)) {
        atomic_fetch_add(&j->off_caller, 1);
        sleep_us(20000);   // a worker the machine keeps off its core
    } else {
        // In a team step, first let the worker take the other chunk (a loaded machine may wake it
        // late): then every team step is held up, as the trace below assumes.
        for (int i = 0; i < 20000 && it_pool_size(j->p) > 1 && atomic_load(&j->off_caller) == 0; i++) sleep_us(50);
        sleep_us(300);
    }
}

static void test_pool_steps(void) {
    TEST_CASE("step governor in the pool: steps a slow worker holds up run on the caller, with pool size 1") {
        it_pool *p = it_pool_new(2);
        step_job j = {pthread_self(), 0, 0, p};
        // Team steps wait 20 ms for the worker's chunk, with the caller asleep: disturbed. Solo
        // steps take 0.6 ms. So test_governor's trace: 4 team steps, 2 solo probes, solo from
        // then on but for a 2-step team probe after 4 solo steps.
        char tr[15] = {0};
        int off = 0;
        for (int s = 0; s < 14; s++) {
            it_pool_step_begin(p);
            int sz = it_pool_size(p);
            atomic_store(&j.off_caller, 0);
            it_pool_run_n(p, step_fn, &j, sz);
            it_pool_step_end(p);
            tr[s] = sz == 1 ? 's' : 't';
            if (sz == 1) off += atomic_load(&j.off_caller);
        }
        CHECK(strcmp(tr, "ttttssssssttss") == 0, "trace %s", tr);
        CHECK(off == 0, "%d chunks of solo steps ran on a worker", off);
        it_pool_free(p);
    }
}

int main(void) {
    test_backoff();
    test_governor();
    test_pool_steps();
    TEST_CASE("every chunk once: 1..8 threads, 1..200 chunks, repeated dispatches") {
        static const int chunks[] = {1, 2, 3, 4, 7, 8, 9, 16, 33, 200};
        for (int t = 1; t <= 8; t++) {
            it_pool *p = it_pool_new(t);
            CHECK(p != NULL, "pool of %d", t);
            if (!p) continue;
            CHECK(it_pool_size(p) == t, "size %d", it_pool_size(p));
            int bad = 0;
            for (int rep = 0; rep < 300; rep++)
                for (size_t k = 0; k < sizeof chunks / sizeof *chunks; k++) bad += dispatch_and_count(p, chunks[k], -1, 0);
            CHECK(bad == 0, "%d threads: %d chunk errors over 3000 dispatches", t, bad);
            it_pool_free(p);
        }
    }
    TEST_CASE("it_pool_run gives nth = pool size, each ith once") {
        it_pool *p = it_pool_new(4);
        int bad = 0;
        static count_job j;
        for (int rep = 0; rep < 1000 && p; rep++) {
            for (int i = 0; i < 8; i++) atomic_store(&j.runs[i], 0);
            j.expect_nth = 4;
            j.sleep_chunk = -1;
            it_pool_run(p, count_fn, &j);
            for (int i = 0; i < 8; i++) bad += atomic_load(&j.runs[i]) != (i < 4);
        }
        CHECK(bad == 0 && atomic_load(&j.bad_nth) == 0, "%d errors", bad);
        it_pool_free(p);
    }
    TEST_CASE("dispatch after the workers fell asleep, and a slow chunk") {
        it_pool *p = it_pool_new(3);
        int bad = 0;
        for (int rep = 0; rep < 20 && p; rep++) {
            sleep_us(2000); // far past the spin bound: the workers are blocked on the condvar
            bad += dispatch_and_count(p, 6, rep % 6, 3000); // the return must wait for the slow chunk
        }
        CHECK(bad == 0, "%d errors", bad);
        it_pool_free(p);
    }
    TEST_CASE("work stealing: a blocked chunk does not hold back the others") {
        for (int t = 2; t <= 4; t++) {
            it_pool *p = it_pool_new(t);
            it_pool_set_backoff(p, 0);   // chunks that wait for each other cannot run inline
            for (int rep = 0; rep < 5 && p; rep++) {
                steal_job j = {0};
                it_pool_run_n(p, steal_fn, &j, 4 * t);
                CHECK(!atomic_load(&j.timed_out) && atomic_load(&j.finished) == 4 * t,
                      "%d threads: finished %d of %d, timed out %d", t, atomic_load(&j.finished), 4 * t,
                      atomic_load(&j.timed_out));
            }
            it_pool_free(p);
        }
    }
    TEST_CASE("serial pool and NULL pool run every chunk on the caller") {
        it_pool *p = it_pool_new(1);
        CHECK(dispatch_and_count(p, 5, -1, 0) == 0, "serial pool");
        CHECK(dispatch_and_count(NULL, 5, -1, 0) == 0, "NULL pool");
        it_pool_free(p);
    }
    TEST_CASE("chunk sizing: small work runs inline, large work splits up to the cap") {
        it_pool *p2 = it_pool_new(2);
        // english-1m's q/k/v group: 3 x 128 x 128 = 49152 MACs < 2 x 65536: one chunk, no dispatch.
        CHECK(it_pool_chunks(p2, 3.0 * 128 * 128, 65536, 2) == 1, "%d", it_pool_chunks(p2, 3.0 * 128 * 128, 65536, 2));
        CHECK(it_pool_chunks(p2, 131071, 65536, 2) == 1, "just below 2 chunks");
        CHECK(it_pool_chunks(p2, 131072, 65536, 2) == 2, "exactly 2 chunks");
        CHECK(it_pool_chunks(p2, 3 * 65536, 65536, 2) == 3, "3 chunks");
        CHECK(it_pool_chunks(p2, 2048.0 * 2048, 65536, 2) == 4, "capped at 2 per thread");
        CHECK(it_pool_chunks(NULL, 1e9, 65536, 2) == 1, "no pool: 1");
        it_pool *p1 = it_pool_new(1);
        CHECK(it_pool_chunks(p1, 1e9, 65536, 4) == 1, "serial pool: 1");
        it_pool_free(p1);
        it_pool_free(p2);
    }
    TEST_CASE("it_split_range covers [0, n) in order, aligned") {
        int bad = 0;
        for (long n = 0; n < 300; n += 7)
            for (int nth = 1; nth <= 9; nth++) {
                long prev = 0;
                for (int i = 0; i < nth; i++) {
                    long b, e;
                    it_split_range(n, i, nth, 16, &b, &e);
                    bad += b != prev || e < b || (b % 16 != 0 && b != n);
                    prev = e;
                }
                bad += prev != n;
            }
        CHECK(bad == 0, "%d bad ranges", bad);
    }
    TEST_CASE("it_steal: own part front to back, then the back of the fullest other part (hand-worked)") {
        // n = 100, 2 parts aligned to 16: [0, 64) and [64, 100). Part 0 takes a quarter of what is
        // left, at least 16 rows: 16, 16, 16, 16; then it steals 16 rows from the back of part 1
        // ([80, 100): its start rounded down to 16), then the rest ([64, 80)); then nothing.
        static it_steal s;
        it_steal_init(&s, 100, 2, 16);
        long want[][2] = {{0, 16}, {16, 32}, {32, 48}, {48, 64}, {80, 100}, {64, 80}};
        long b = -1, e = -1;
        for (int i = 0; i < 6; i++) {
            CHECK(it_steal_next(&s, 0, 16, &b, &e) == 1, "block %d missing", i);
            CHECK(b == want[i][0] && e == want[i][1], "block %d: [%ld, %ld), want [%ld, %ld)", i, b, e,
                  want[i][0], want[i][1]);
        }
        CHECK(it_steal_next(&s, 0, 16, &b, &e) == 0 && it_steal_next(&s, 1, 16, &b, &e) == 0, "rows left over");
        // A big part is taken in shrinking quarters: 1000 rows, 1 part, align 1: 250, 188, 141, ...
        it_steal_init(&s, 1000, 1, 1);
        CHECK(it_steal_next(&s, 0, 16, &b, &e) == 1 && b == 0 && e == 250, "[%ld, %ld)", b, e);
        CHECK(it_steal_next(&s, 0, 16, &b, &e) == 1 && b == 250 && e == 437, "[%ld, %ld)", b, e);
        // Empty range, clamped part counts, any `self`.
        it_steal_init(&s, 0, 4, 16);
        CHECK(it_steal_next(&s, 2, 16, &b, &e) == 0, "n = 0 handed out rows");
        it_steal_init(&s, 10, 0, 16);
        CHECK(s.n_parts == 1 && it_steal_next(&s, -3, 0, &b, &e) == 1 && b == 0 && e == 10, "0 parts: %d", s.n_parts);
        it_steal_init(&s, 10, 1000, 1);
        CHECK(s.n_parts == IT_STEAL_MAX_PARTS, "parts not clamped: %d", s.n_parts);
    }
    TEST_CASE("it_steal hands out every row exactly once, serially and from racing threads") {
        int bad = 0;
        static atomic_int hits[5000];
        for (long n = 0; n <= 4100; n += n < 100 ? 13 : 1333)
            for (int parts = 1; parts <= 9; parts += 4)
                for (long mb = 1; mb <= 64; mb *= 8) {
                    static it_steal s;
                    for (long i = 0; i < n; i++) atomic_store(&hits[i], 0);
                    it_steal_init(&s, n, parts, 16);
                    long b, e;
                    for (int self = 0; it_steal_next(&s, self, mb, &b, &e); self = (self + 5) % 7) {
                        bad += b < 0 || e > n || b >= e || (b % 16 && b != n) || (e % 16 && e != n);
                        for (long i = b; i < e && i < n && i >= 0; i++) atomic_fetch_add(&hits[i], 1);
                    }
                    for (long i = 0; i < n; i++) bad += atomic_load(&hits[i]) != 1;
                }
        CHECK(bad == 0, "%d bad blocks or rows (serial)", bad);
        for (int t = 2; t <= 4; t++) {   // one thread sleeps first: the others must steal its rows
            it_pool *p = it_pool_new(t);
            CHECK(p != NULL, "pool");
            if (!p) break;
            for (int round = 0; round < 20; round++) {
                static rows_job j;
                j.n = 4000 + round;
                for (long i = 0; i < j.n; i++) atomic_store(&hits[i], 0);
                atomic_store(&j.bad, 0);
                j.hits = hits;
                j.sleeper = round % t;
                it_steal_init(&j.s, j.n, t, 16);
                it_pool_run(p, rows_fn, &j);
                for (long i = 0; i < j.n; i++) bad += atomic_load(&hits[i]) != 1;
                bad += atomic_load(&j.bad);
            }
            it_pool_free(p);
        }
        CHECK(bad == 0, "%d rows not handed out exactly once (threads)", bad);
    }
    TEST_CASE("english-12m logits are bit-identical with 1, 2 and 3 threads") {
        char path[1024], tok[1024];
        intact_error err = {0, ""};
        SKIP_UNLESS(th_shared("models/english-12m.bin", path, sizeof path));
        intact_model *m = intact_model_load(path, th_shared("models/tok512.bin", tok, sizeof tok), &err);
        CHECK(m != NULL, "load: %s", err.msg);
        enum { NT = 12 };
        int32_t toks[NT] = {1, 72, 101, 108, 108, 111, 44, 32, 119, 111, 114, 108};
        static float l1[(NT / 2 + 1) * 512], l2[(NT / 2 + 1) * 512], l3[(NT / 2 + 1) * 512];
        if (m) {
            CHECK(logits_with_threads(m, 1, toks, NT, l1) == 0, "1 thread");
            CHECK(logits_with_threads(m, 2, toks, NT, l2) == 0, "2 threads");
            CHECK(logits_with_threads(m, 3, toks, NT, l3) == 0, "3 threads");
            CHECK(memcmp(l1, l2, sizeof l1) == 0, "1 vs 2 threads differ");
            CHECK(memcmp(l1, l3, sizeof l1) == 0, "1 vs 3 threads differ");
            float mx = 0;
            for (size_t i = 0; i < sizeof l1 / sizeof *l1; i++) mx = fabsf(l1[i]) > mx ? fabsf(l1[i]) : mx;
            CHECK(mx > 1, "logits look empty (max |l| %g)", (double)mx);
        }
        intact_model_free(m);
    }
    return th_finish("test_pool");
}
