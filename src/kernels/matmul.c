#include "kernels/matmul.h"


enum { MATMUL_MAX_GROUP = 4 };

// Work per chunk, in multiply-adds: below twice this a product runs on the caller with no dispatch.
// A dispatch costs a few microseconds (more when a worker must be woken or is descheduled); 64K
// multiply-adds of f32 weights take ~10-30 us on one core, so a split never costs more than it saves.
// english-1m (dim 128) thus decodes on one thread whatever -t says; english-12m splits its larger
// matrices. Up to MATMUL_CHUNKS_PER_THREAD chunks per thread let the threads that are running take
// a larger share when another one is slowed down by a busy machine; a decode product (one token)
// instead gives each thread one contiguous stream and lets the threads steal (core/pool.h).
enum { MATMUL_MIN_CHUNK_MACS = 65536, MATMUL_CHUNKS_PER_THREAD = 2 };

typedef struct {
    int n;
    const it_tensor *w[MATMUL_MAX_GROUP];
    float *y[MATMUL_MAX_GROUP];
    const float *x;
    int64_t nt;
    long off[MATMUL_MAX_GROUP + 1];   // decode: matrix m's rows are [off[m], off[m+1]) of the group
    it_steal *steal;                  // decode: rows shared out with stealing (core/pool.h); else NULL
} matmul_job;

// Rows of each matrix are split into chunks in multiples of 16, so each chunk streams its own
// contiguous slice (decode is bandwidth bound: no row is read twice). Several matrices that share
// an input (q/k/v, gate/up) go in one dispatch: one wait instead of several per layer. Each output
// row is computed whole by one kernel call whatever the split, so results do not depend on the
// number of threads or chunks.
static void matmul_rows(const matmul_job *j, const it_tensor *w, float *y, long r0, long r1) {
    int64_t n_in = w->ne[0];
    fmt_matmul(fmt_get(w->type))(w->data, fmt_row_bytes(w->type, n_in), n_in, j->x, n_in, j->nt, y, w->ne[1], r0, r1);
}

static void matmul_worker(void *arg, int ith, int nth) {
    const matmul_job *j = arg;
    if (j->steal) {
        long b, e, r0, r1;
        while (it_steal_next(j->steal, ith, 16, &b, &e))
            for (int m = 0; m < j->n; m++)
                if (it_seg_rows(j->off, m, b, e, &r0, &r1)) matmul_rows(j, j->w[m], j->y[m], r0, r1);
        return;
    }
    for (int m = 0; m < j->n; m++) {
        const it_tensor *w = j->w[m];
        int64_t n_out = w->ne[1];
        long r0, r1;
        it_split_range((long)n_out, ith, nth, 16, &r0, &r1);
        if (r0 < r1) matmul_rows(j, w, j->y[m], r0, r1);
    }
}

void kern_matmul_group(it_pool *pool, int n, const it_tensor *const *w, const float *x, int64_t nt,
                       float *const *y) {
    for (int done = 0; done < n; done += MATMUL_MAX_GROUP) {
        matmul_job j = {0};
        j.n = n - done < MATMUL_MAX_GROUP ? n - done : MATMUL_MAX_GROUP;
        for (int m = 0; m < j.n; m++) {
            j.w[m] = w[done + m];
            j.y[m] = y[done + m];
        }
        j.x = x;
        j.nt = nt;
        double macs = 0;
        for (int m = 0; m < j.n; m++) {
            macs += (double)j.w[m]->ne[0] * (double)j.w[m]->ne[1] * (double)nt;
            j.off[m + 1] = j.off[m] + (long)j.w[m]->ne[1];
        }
        int chunks = it_pool_chunks(pool, macs, MATMUL_MIN_CHUNK_MACS, MATMUL_CHUNKS_PER_THREAD);
        it_steal steal;
        if (nt == 1 && chunks > 1 && it_pool_size(pool) <= IT_STEAL_MAX_PARTS && j.off[j.n] < (1L << 31)) {
            it_steal_init(&steal, j.off[j.n], it_pool_size(pool), 16);   // decode: one stream per thread
            j.steal = &steal;
            chunks = it_pool_size(pool);
        }
        it_pool_run_n(pool, matmul_worker, &j, chunks);
    }
}

void kern_matmul(it_pool *pool, const it_tensor *w, const float *x, int64_t nt, float *y) {
    kern_matmul_group(pool, 1, &w, x, nt, &y);
}
