#include "kernels/matmul.h"

#include "kernels/matmul_simd.h"

enum { MATMUL_MAX_GROUP = 4 };

typedef struct {
    int n;
    const it_tensor *w[MATMUL_MAX_GROUP];
    float *y[MATMUL_MAX_GROUP];
    const float *x;
    int64_t nt;
} matmul_job;

// Rows of each matrix are split across threads in multiples of 16, so each thread streams its own
// contiguous slice (decode is bandwidth bound: no row is read twice). Several matrices that share
// an input (q/k/v, gate/up) go in one dispatch: one barrier instead of several per layer.
static void matmul_worker(void *arg, int ith, int nth) {
    const matmul_job *j = arg;
    for (int m = 0; m < j->n; m++) {
        const it_tensor *w = j->w[m];
        int64_t n_in = w->ne[0], n_out = w->ne[1];
        long r0, r1;
        it_split_range((long)n_out, ith, nth, 16, &r0, &r1);
        if (r0 < r1)
            it_type_get(w->type)->matmul(w->data, it_type_row_bytes(w->type, n_in), n_in, j->x, n_in, j->nt,
                                         j->y[m], n_out, r0, r1);
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
        it_pool_run(pool, matmul_worker, &j);
    }
}

void kern_matmul(it_pool *pool, const it_tensor *w, const float *x, int64_t nt, float *y) {
    kern_matmul_group(pool, 1, &w, x, nt, &y);
}
