// Scalar twin of the tiled attention kernel (contract in kv_flash.h): the same key blocks and
// online-softmax rescaling points as the AVX-512 kernel, in plain float arithmetic with expf.
#include <math.h>
#include <string.h>

#include "kv/kv_flash.h"

size_t kvf_scratch_floats(int hd, int rep) {
    size_t rows = (size_t)KVF_QT * rep;
    // AVX-512: transposed key block (hd, KB), outputs (rows, hd), m and l (rows), p (4, KB)
    return (size_t)hd * KVF_KB + rows * hd + 2 * rows + 4 * KVF_KB;
}

void kvf_attend_ref(const kvf_args *a) {
    int hd = a->hd;
    float *o = a->scratch, s[KVF_KB], *buf = o + hd;   // buf: an fp16 row as floats (scratch has room)
    for (int r = 0; r < a->nt * a->rep; r++) {
        int t = r / a->rep, g = r % a->rep, last = a->pos0 + t;
        const float *q = a->q + (size_t)t * a->ldq + (size_t)g * hd;
        float m = -INFINITY, l = 0;
        memset(o, 0, (size_t)hd * sizeof *o);
        for (int kb0 = 0; kb0 <= last; kb0 += KVF_KB) {
            int nk = last - kb0 + 1 < KVF_KB ? last - kb0 + 1 : KVF_KB;
            float bm = -INFINITY;
            for (int j = 0; j < nk; j++) {
                const float *k = kvf_row_f(a, 0, kb0 + j, buf);
                float acc = 0;
                for (int d = 0; d < hd; d++) acc += q[d] * k[d];
                s[j] = acc * a->scale;
                bm = s[j] > bm ? s[j] : bm;
            }
            float mn = bm > m ? bm : m, corr = expf(m - mn), sum = 0;
            for (int d = 0; d < hd; d++) o[d] *= corr;
            for (int j = 0; j < nk; j++) {
                float p = expf(s[j] - mn);
                const float *v = kvf_row_f(a, 1, kb0 + j, buf);
                for (int d = 0; d < hd; d++) o[d] += p * v[d];
                sum += p;
            }
            l = l * corr + sum;
            m = mn;
        }
        float *out = a->o + (size_t)t * a->ldo + (size_t)g * hd, inv = 1.0f / l;
        for (int d = 0; d < hd; d++) out[d] = o[d] * inv;
    }
}
