#include "core/pool.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>

// Dispatch protocol: the caller publishes (fn, arg) and bumps `generation`; each worker runs its
// share and increments `done`. Workers spin on `generation` briefly (dispatches during decode come
// every few microseconds), then yield the CPU between checks, and only then block on the condition
// variable. Yielding matters on a loaded machine: a pure spin can burn a whole time slice waiting for
// a thread the scheduler has not run, turning microseconds into milliseconds per dispatch.
struct it_pool {
    int n;
    pthread_t *threads;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    atomic_uint generation;
    atomic_int done;
    atomic_int quit;
    atomic_int sleepers;
    it_pool_fn fn;
    void *arg;
};

typedef struct { it_pool *p; int ith; } worker_arg;

enum { SPIN_ITERS = 4000, YIELD_ITERS = 20000 };

static void *worker_main(void *va) {
    worker_arg wa = *(worker_arg *)va;
    free(va);
    it_pool *p = wa.p;
    unsigned seen = 0;
    for (;;) {
        unsigned g;
        int spins = 0;
        while ((g = atomic_load_explicit(&p->generation, memory_order_acquire)) == seen) {
            if (atomic_load(&p->quit)) return NULL;
            if (++spins < SPIN_ITERS) {
#if defined(__x86_64__) || defined(__i386__)
                __builtin_ia32_pause();
#endif
                continue;
            }
            if (spins < SPIN_ITERS + YIELD_ITERS) {
                sched_yield();
                continue;
            }
            pthread_mutex_lock(&p->mu);
            atomic_fetch_add(&p->sleepers, 1);
            while (atomic_load(&p->generation) == seen && !atomic_load(&p->quit))
                pthread_cond_wait(&p->cv, &p->mu);
            atomic_fetch_sub(&p->sleepers, 1);
            pthread_mutex_unlock(&p->mu);
            spins = 0;
        }
        seen = g;
        p->fn(p->arg, wa.ith, p->n);
        atomic_fetch_add_explicit(&p->done, 1, memory_order_release);
    }
}

it_pool *it_pool_new(int n_threads) {
    it_pool *p = calloc(1, sizeof *p);
    if (!p) return NULL;
    p->n = n_threads < 1 ? 1 : n_threads;
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv, NULL);
    if (p->n > 1) {
        p->threads = calloc((size_t)p->n - 1, sizeof *p->threads);
        if (!p->threads) { free(p); return NULL; }
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
    pthread_mutex_lock(&p->mu);
    atomic_store(&p->quit, 1);
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
    for (int i = 1; i < p->n; i++) pthread_join(p->threads[i - 1], NULL);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->cv);
    free(p->threads);
    free(p);
}

int it_pool_size(const it_pool *p) { return p ? p->n : 1; }

void it_pool_run(it_pool *p, it_pool_fn fn, void *arg) {
    if (!p || p->n == 1) {
        fn(arg, 0, 1);
        return;
    }
    p->fn = fn;
    p->arg = arg;
    atomic_store(&p->done, 0);
    atomic_fetch_add(&p->generation, 1); // seq_cst: pairs with the sleepers check
    if (atomic_load(&p->sleepers) > 0) {
        pthread_mutex_lock(&p->mu);
        pthread_cond_broadcast(&p->cv);
        pthread_mutex_unlock(&p->mu);
    }
    fn(arg, 0, p->n);
    for (int spins = 0; atomic_load_explicit(&p->done, memory_order_acquire) < p->n - 1; spins++) {
#if defined(__x86_64__) || defined(__i386__)
        if (spins < SPIN_ITERS) {
            __builtin_ia32_pause();
            continue;
        }
#endif
        sched_yield();
    }
}

void it_split_range(long n, int ith, int nth, long align, long *b, long *e) {
    if (align < 1) align = 1;
    long units = (n + align - 1) / align;
    long per = units / nth, rem = units % nth;
    long ub = ith * per + (ith < rem ? ith : rem);
    long ue = ub + per + (ith < rem ? 1 : 0);
    *b = ub * align < n ? ub * align : n;
    *e = ue * align < n ? ue * align : n;
}
