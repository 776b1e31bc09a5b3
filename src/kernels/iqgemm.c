// Cache-blocked prefill over the int8-activation kernels (kernels/iqgemm.h).
#include "kernels/iqgemm.h"

#include <string.h>

enum { DQG_MAX_GROUP = 4 };

typedef struct {
    int n;
    kern_dq_fn fn[DQG_MAX_GROUP];
    qf_spec spec[DQG_MAX_GROUP];
    const it_tensor *w[DQG_MAX_GROUP];
    float *y[DQG_MAX_GROUP];
    const kern_dq *a;
} dqg_job;

static void dqg_worker(void *arg, int ith, int nth) {
    const dqg_job *j = arg;
    for (int m = 0; m < j->n; m++) {
        const it_tensor *w = j->w[m];
        int64_t n_in = w->ne[0], n_out = w->ne[1];
        size_t rb = fmt_row_bytes(w->type, n_in);
        long r0, r1;
        it_split_range((long)n_out, ith, nth, 16, &r0, &r1);
        // Every token over one block of rows before the next: the block's weights stay in L1.
        for (long r = r0; r < r1; r += KERN_DQG_ROWS) {
            long re = r + KERN_DQG_ROWS < r1 ? r + KERN_DQG_ROWS : r1;
            j->fn[m](&j->spec[m], w->data, rb, j->a, j->y[m], n_out, r, re);
        }
    }
}

void kern_matmul_dqg_group(it_pool *pool, int n, const it_tensor *const *w, const kern_dq *a, float *const *y) {
    for (int done = 0; done < n; done += DQG_MAX_GROUP) {
        dqg_job j;
        memset(&j, 0, sizeof j);
        j.n = n - done < DQG_MAX_GROUP ? n - done : DQG_MAX_GROUP;
        j.a = a;
        for (int m = 0; m < j.n; m++) {
            j.w[m] = w[done + m];
            j.y[m] = y[done + m];
            j.fn[m] = kern_dq_best(j.w[m]->type);
            if (!j.fn[m] || qf_spec_of(j.w[m]->type, &j.spec[m]) || j.w[m]->ne[0] != a->n_in) return;
        }
        it_pool_run(pool, dqg_worker, &j);
    }
}
