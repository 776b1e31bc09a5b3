// Backward pass of the calibration loss (train.h) w.r.t. the residual stream and the prefix K/V.
// Weights are frozen, so linear layers only propagate dX = dY * W, done with kern_matmul over the
// transposed fp32 weight copies. Layers are walked from the last to the first: the loss of layer l
// reaches the prefix K/V of every layer <= l through the residual stream.
#include <math.h>
#include <string.h>

#include "ikv/train.h"
#include "kernels/hadamard.h"
#include "kernels/matmul.h"

static const it_tensor *wt(const ikv_train *w, int l, int i) { return &w->wt[l * IT_LAYER_NMAT + i]; }

// y = x * r * g with r = (mean(x^2) + eps)^-1/2:  dx_i = r g_i dy_i - r^3/dim x_i sum_j g_j dy_j x_j.
// Adds the result to dx.
static void rmsnorm_back(float *dx, const float *dy, const float *x, const float *r, const float *g, int n,
                         int dim) {
    for (int t = 0; t < n; t++) {
        const float *xt = x + (size_t)t * dim, *dyt = dy + (size_t)t * dim;
        float *dxt = dx + (size_t)t * dim;
        double dot = 0, rt = r[t];
        for (int i = 0; i < dim; i++) dot += (double)g[i] * dyt[i] * xt[i];
        double c = rt * rt * rt * dot / dim;
        for (int i = 0; i < dim; i++) dxt[i] += (float)(rt * g[i] * dyt[i] - c * xt[i]);
    }
}

// Transpose of kern_rope's rotation (its inverse): maps d(rotated) to d(unrotated).
static void rope_back(float *d, int n, int n_heads, int hd, const float *cs, int style) {
    int half = hd / 2;
    for (int t = 0; t < n; t++) {
        const float *c = cs + (size_t)t * half * 2;
        for (int h = 0; h < n_heads; h++) {
            float *v = d + ((size_t)t * n_heads + h) * hd;
            for (int i = 0; i < half; i++) {
                int a = style ? i : 2 * i, b = style ? i + half : 2 * i + 1;
                float d0 = v[a], d1 = v[b], co = c[2 * i], si = c[2 * i + 1];
                v[a] = d0 * co + d1 * si;
                v[b] = -d0 * si + d1 * co;
            }
        }
    }
}

typedef struct {
    ikv_train *w;
    const ikv_acts *a;
    const float *datt;   // (T, dim) gradient of the attention output
} attn_back_job;

// Pass 1, one (query token, head) per item: dP = datt . V, dS = P (dP - sum P dP),
// dq = scale * sum_p dS K_p. dS is kept for pass 2.
static void attn_back_q(void *arg, int ith, int nth) {
    const attn_back_job *j = arg;
    ikv_train *w = j->w;
    const ikv_acts *a = j->a;
    int hd = w->hd, H = w->n_heads, group = H / w->n_kv, kvd = w->kv_dim, nk = w->nk, T = w->T;
    double scale = 1.0 / sqrt((double)hd);
    for (int item = ith; item < T * H; item += nth) {
        int t = item / H, h = item % H, kvh = h / group, n_keys = w->P + t + 1;
        const float *pr = a->probs + ((size_t)h * T + t) * nk, *da = j->datt + (size_t)t * H * hd + (size_t)h * hd;
        float *ds = w->dscore + ((size_t)h * T + t) * nk;
        double sum = 0;
        for (int p = 0; p < n_keys; p++) {
            const float *vp = a->vall + (size_t)p * kvd + (size_t)kvh * hd;
            double dp = 0;
            for (int d = 0; d < hd; d++) dp += (double)da[d] * vp[d];
            ds[p] = (float)dp;
            sum += pr[p] * dp;
        }
        double acc[256];   // head_dim <= 256 (checked by ikv_calibrate)
        for (int d = 0; d < hd; d++) acc[d] = 0;
        for (int p = 0; p < n_keys; p++) {
            double s = pr[p] * (ds[p] - sum);
            ds[p] = (float)(s * scale);   // d score before the 1/sqrt(hd) scaling
            const float *kp = a->kall + (size_t)p * kvd + (size_t)kvh * hd;
            for (int d = 0; d < hd; d++) acc[d] += ds[p] * (double)kp[d];
        }
        for (int p = n_keys; p < nk; p++) ds[p] = 0;
        float *dq = w->dq + (size_t)t * H * hd + (size_t)h * hd;
        for (int d = 0; d < hd; d++) dq[d] = (float)acc[d];
    }
}

// Pass 2, one (key position, kv head) per item: dK_p = sum dS q, dV_p = sum P datt over the queries
// that see key p (t >= p - P) and the query heads of this kv head.
static void attn_back_kv(void *arg, int ith, int nth) {
    const attn_back_job *j = arg;
    ikv_train *w = j->w;
    const ikv_acts *a = j->a;
    int hd = w->hd, H = w->n_heads, nkv = w->n_kv, group = H / nkv, kvd = w->kv_dim, nk = w->nk, T = w->T;
    for (int item = ith; item < nk * nkv; item += nth) {
        int p = item / nkv, kvh = item % nkv, t0 = p - w->P > 0 ? p - w->P : 0;
        double dk[256], dv[256];
        for (int d = 0; d < hd; d++) dk[d] = dv[d] = 0;
        for (int g = 0; g < group; g++) {
            int h = kvh * group + g;
            for (int t = t0; t < T; t++) {
                size_t si = ((size_t)h * T + t) * nk + p;
                double ds = w->dscore[si], pr = a->probs[si];
                const float *q = a->q + (size_t)t * H * hd + (size_t)h * hd;
                const float *da = j->datt + (size_t)t * H * hd + (size_t)h * hd;
                for (int d = 0; d < hd; d++) {
                    dk[d] += ds * q[d];
                    dv[d] += pr * da[d];
                }
            }
        }
        float *ok = w->dkall + (size_t)p * kvd + (size_t)kvh * hd, *ov = w->dvall + (size_t)p * kvd + (size_t)kvh * hd;
        for (int d = 0; d < hd; d++) ok[d] = (float)dk[d], ov[d] = (float)dv[d];
    }
}

void ikv_train_backward(ikv_train *w, const float *target, float *gk, float *gv) {
    const intact_model *m = w->m;
    const it_hparams *hp = &m->hp;
    int T = w->T, P = w->P, dim = w->dim, hid = w->hid, kvd = w->kv_dim;
    size_t td = (size_t)T * dim, th = (size_t)T * hid;
    float *dx = w->dx, *dy = w->dy, *tmp = w->dtmp;
    memset(dx, 0, td * sizeof *dx);
    for (int l = w->n_layers - 1; l >= 0; l--) {
        const it_layer *ly = &m->layers[l];
        const ikv_acts *a = &w->acts[l];
        // d/d block_out of the loss term 1/2 mean (x - target)^2, plus what later layers sent back.
        const float *xo = w->x + (size_t)(l + 1) * td, *tg = target + (size_t)l * td;
        for (size_t i = 0; i < td; i++) dx[i] += (float)(((double)xo[i] - tg[i]) / (double)td);

        // FFN: x_out = xmid + down(silu(g) * u), g/u = gate/up(rmsnorm(xmid)).
        kern_matmul(w->pool, wt(w, l, IT_LAYER_WDOWN), dx, T, w->dh1);    // d s
        // Rotated models: s went through the online Hadamard Hd before w_down; Hd^T = Hd.
        if (m->rot_down_block) kern_hadamard_rows(w->dh1, T, hid, m->rot_down_block);
        for (size_t i = 0; i < th; i++) {
            double g = a->g[i], sg = 1.0 / (1.0 + exp(-g)), ds = w->dh1[i];
            w->dh2[i] = (float)(ds * g * sg);                          // d u
            w->dh1[i] = (float)(ds * a->u[i] * sg * (1.0 + g * (1.0 - sg)));  // d g
        }
        kern_matmul(w->pool, wt(w, l, IT_LAYER_WGATE), w->dh1, T, dy);
        kern_matmul(w->pool, wt(w, l, IT_LAYER_WUP), w->dh2, T, tmp);
        for (size_t i = 0; i < td; i++) dy[i] += tmp[i];
        rmsnorm_back(dx, dy, a->xmid, a->r2, ly->ffn_norm, T, dim);   // dx is now d xmid

        // Attention: xmid = x_in + wo(attn(q, [prefix K; k], [prefix V; v])).
        kern_matmul(w->pool, wt(w, l, IT_LAYER_WO), dx, T, dy);           // d att
        attn_back_job job = {w, a, dy};
        it_pool_run(w->pool, attn_back_q, &job);
        it_pool_run(w->pool, attn_back_kv, &job);
        // Prefix rows: K is stored after RoPE, so its gradient is used as is.
        float *glk = gk + (size_t)l * P * kvd, *glv = gv + (size_t)l * P * kvd;
        for (size_t i = 0; i < (size_t)P * kvd; i++) glk[i] += w->dkall[i], glv[i] += w->dvall[i];
        if (l == 0) break;   // nothing trainable below layer 0's attention
        float *dk = w->dkall + (size_t)P * kvd, *dv = w->dvall + (size_t)P * kvd;
        rope_back(w->dq, T, w->n_heads, w->hd, w->cs, hp->rope_style);
        rope_back(dk, T, w->n_kv, w->hd, w->cs, hp->rope_style);
        kern_matmul(w->pool, wt(w, l, IT_LAYER_WQ), w->dq, T, dy);
        kern_matmul(w->pool, wt(w, l, IT_LAYER_WK), dk, T, tmp);
        for (size_t i = 0; i < td; i++) dy[i] += tmp[i];
        kern_matmul(w->pool, wt(w, l, IT_LAYER_WV), dv, T, tmp);
        for (size_t i = 0; i < td; i++) dy[i] += tmp[i];
        rmsnorm_back(dx, dy, w->x + (size_t)l * td, a->r1, ly->attn_norm, T, dim);   // d x_in
    }
}
