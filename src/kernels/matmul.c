#include "kernels/matmul.h"

#include "kernels/matmul_simd.h"

typedef struct {
    const it_tensor *w;
    it_matmul_fn fn;
    size_t row_bytes;
    const float *x;
    int64_t nt;
    float *y;
} matmul_job;

// Rows are split across threads in multiples of 16 so that each thread streams its own
// contiguous slice of the weight matrix (decode is bandwidth bound: no row is read twice).
static void matmul_worker(void *arg, int ith, int nth) {
    const matmul_job *j = arg;
    int64_t n_in = j->w->ne[0], n_out = j->w->ne[1];
    long r0, r1;
    it_split_range((long)n_out, ith, nth, 16, &r0, &r1);
    if (r0 < r1) j->fn(j->w->data, j->row_bytes, n_in, j->x, n_in, j->nt, j->y, n_out, r0, r1);
}

void kern_matmul(it_pool *pool, const it_tensor *w, const float *x, int64_t nt, float *y) {
    const it_type_traits *t = it_type_get(w->type);
    matmul_job j = {w, t->matmul, it_type_row_bytes(w->type, w->ne[0]), x, nt, y};
    it_pool_run(pool, matmul_worker, &j);
}
