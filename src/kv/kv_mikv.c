// MiKV mixed-precision KV cache and the H2O eviction baseline; policy and formats in kv_mikv.h,
// row storage in kv_mikv_impl.h. Rows use kv_quant's per-token layouts (F32: head_dim floats, F16:
// head_dim halves, INTn: the group scales/offsets then the packed codes), encoded with kvq_quant_group.
//
// The attention mirrors kv_full.c (one (query token, kv head) work item at a time, the GQA query
// heads of a kv head together, same softmax). Per item, the hi slot pool (contiguous rows, scores
// written at their positions through slot_pos) and the lo rows (by the ascending lo list) each go
// through ONE kv_kern call for scores and one for values, over all rep query heads: every row is
// read once per item. Evicted tokens get score -inf, i.e. weight exactly 0, which also
// renormalizes the softmax over the kept ones. With every token hi and F32 the operations are
// kv_full's own (position order), so the result is bit-identical.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/fp16.h"
#include "kernels/ops.h"
#include "kv/kv_kern.h"
#include "kv/kv_mikv_impl.h"

static const it_kv_ops mikv_ops;

// Decodes head h of K (which 0) or V (which 1) at pos, in whatever form the token is held.
// The caller guarantees the token is not evicted.
static void load(const kv_mikv *c, int layer, int pos, int h, int which, float *out) {
    const it_kv *kv = &c->base;
    int hd = kv->head_dim;
    if (pos < kv->n_shared) {   // kv_share requires sink >= n_shared
        memcpy(out, kv_shared_row(kv, layer, pos, which) + (size_t)h * hd, (size_t)hd * sizeof(float));
    } else if (pos < c->cfg.sink) {
        const float *s = (which ? c->sink_v : c->sink_k) +
                         ((size_t)layer * c->cfg.sink + (size_t)pos) * kv->n_kv_heads * hd + (size_t)h * hd;
        memcpy(out, s, (size_t)hd * sizeof(float));
    } else if (c->state[(size_t)layer * kv->n_ctx + pos] == KV_MIKV_HI) {
        int slot = c->pos_slot[(size_t)layer * kv->n_ctx + pos];
        kvq_load_row(mikv_hi_row(c, which, layer, h, slot), hd, c->cfg.group, c->hi_bits, out);
    } else {
        kvq_load_row(mikv_lo_row(c, which, layer, h, pos), hd, c->cfg.group, c->lo_bits, out);
    }
}

static int mikv_store(it_kv *kv, int layer, int pos, int n, const float *k, const float *v) {
    kv_mikv *c = (kv_mikv *)kv;
    if (layer < 0 || layer >= kv->n_layers || pos < kv->n_shared || n < 0 || pos + n > kv->n_ctx) return -1;
    if (pos > c->n_tok[layer]) return -1;   // a gap would leave positions without a state
    int hd = kv->head_dim, g = c->cfg.group, sink = c->cfg.sink;
    size_t kv_dim = (size_t)kv->n_kv_heads * hd, L = (size_t)layer * kv->n_ctx;
    // Rewind: positions from pos on leave the pool / the lo list (newest first, so a rewind of the
    // tail frees the last slots without moving rows).
    for (int p = c->n_tok[layer] - 1; p >= (pos > sink ? pos : sink); p--) {
        if (c->state[L + p] == KV_MIKV_HI) mikv_pool_drop(c, layer, p);
        else if (c->state[L + p] == KV_MIKV_LO) mikv_lo_remove(c, layer, p);
    }
    for (int t = 0; t < n; t++) {
        int p = pos + t;
        const float *kt = k + t * kv_dim, *vt = v + t * kv_dim;
        if (p < sink) {
            size_t off = ((size_t)layer * sink + (size_t)p) * kv_dim;
            memcpy(c->sink_k + off, kt, kv_dim * sizeof(float));
            memcpy(c->sink_v + off, vt, kv_dim * sizeof(float));
        } else {
            int s = mikv_pool_add(c, layer, p);
            for (int h = 0; h < kv->n_kv_heads; h++) {
                kvq_store_row(kt + (size_t)h * hd, hd, g, c->hi_bits, mikv_hi_row(c, 0, layer, h, s));
                kvq_store_row(vt + (size_t)h * hd, hd, g, c->hi_bits, mikv_hi_row(c, 1, layer, h, s));
            }
        }
        c->state[L + p] = KV_MIKV_HI;
        c->imp[L + p] = 0;
    }
    c->n_tok[layer] = pos + n;
    return 0;
}

int kv_mikv_budget(const it_kv *kv, int n_tokens) {
    if (!kv || kv->ops != &mikv_ops || n_tokens < 0) return -1;
    const kv_mikv *c = (const kv_mikv *)kv;
    long prot = (long)c->cfg.sink + c->cfg.recent;
    long heavy = (long)ceil((double)c->cfg.hi_ratio * n_tokens);
    long b = prot + heavy;
    return b < n_tokens ? (int)b : n_tokens;
}

// Descending importance, ties to the more recent (larger) position: a total order, so qsort's
// instability cannot make the result depend on the input order.
static int by_importance(const void *a, const void *b, const float *imp) {
    int pa = *(const int *)a, pb = *(const int *)b;
    if (imp[pa] != imp[pb]) return imp[pa] > imp[pb] ? -1 : 1;
    return pa > pb ? -1 : pa < pb ? 1 : 0;
}

// qsort has no context argument (and a global would be shared state), so a small merge sort.
static void sort_desc(int *idx, int *tmp, int n, const float *imp) {
    if (n < 2) return;
    int h = n / 2;
    sort_desc(idx, tmp, h, imp);
    sort_desc(idx + h, tmp, n - h, imp);
    int i = 0, j = h, o = 0;
    while (i < h && j < n) tmp[o++] = by_importance(&idx[j], &idx[i], imp) < 0 ? idx[j++] : idx[i++];
    while (i < h) tmp[o++] = idx[i++];
    while (j < n) tmp[o++] = idx[j++];
    memcpy(idx, tmp, (size_t)n * sizeof(int));
}

static int int_cmp(const void *a, const void *b) {
    int x = *(const int *)a, y = *(const int *)b;
    return (x > y) - (x < y);
}

// Brings `layer` back to its budget: see kv_mikv.h. Candidates are the pooled hi tokens outside
// the recent window (sinks are not pooled); all but the H most important are demoted (or
// evicted). The selection is a total order, so the demoted set does not depend on slot order.
static void rebalance(kv_mikv *c, int layer) {
    const it_kv *kv = &c->base;
    int n = c->n_tok[layer], hd = kv->head_dim, g = c->cfg.group;
    int lo_end = n - c->cfg.recent;   // candidates: [sink, lo_end)
    size_t L = (size_t)layer * kv->n_ctx;
    uint8_t *st = c->state + L;
    const float *imp = c->imp + L;
    const int *sp = c->slot_pos + L;
    int nc = 0, *idx = c->order, *tmp = c->order + kv->n_ctx;
    for (int s = 0; s < c->n_hi[layer]; s++)
        if (sp[s] < lo_end) idx[nc++] = sp[s];
    int heavy = (int)ceil((double)c->cfg.hi_ratio * n);
    if (nc <= heavy) return;
    if (nc - heavy <= 8) {
        // A decode step demotes one or two tokens: move the nc - heavy least important (last in the
        // total order) to the end by selection, O(nc) each, instead of sorting nc every step. The
        // demoted set is the same as after a full sort.
        for (int r = nc - 1; r >= heavy; r--) {
            int w = 0;
            for (int i = 1; i <= r; i++)
                if (by_importance(&idx[i], &idx[w], imp) > 0) w = i;
            int t = idx[w];
            idx[w] = idx[r];
            idx[r] = t;
        }
    } else {
        sort_desc(idx, tmp, nc, imp);
    }
    int *dem = idx + heavy, nd = nc - heavy;
    qsort(dem, (size_t)nd, sizeof *dem, int_cmp);   // ascending, for the lo list merge
    float *row = c->rowbuf;
    for (int i = 0; i < nd; i++) {
        int p = dem[i], slot = c->pos_slot[L + p];
        if (!c->cfg.evict)
            for (int h = 0; h < kv->n_kv_heads; h++)
                for (int w = 0; w < 2; w++) {
                    kvq_load_row(mikv_hi_row(c, w, layer, h, slot), hd, g, c->hi_bits, row);
                    kvq_store_row(row, hd, g, c->lo_bits, mikv_lo_row(c, w, layer, h, p));
                }
        mikv_pool_drop(c, layer, p);
        st[p] = c->cfg.evict ? KV_MIKV_EVICTED : KV_MIKV_LO;
    }
    if (!c->cfg.evict) mikv_lo_merge(c, layer, dem, nd);
}

typedef struct {
    kv_mikv *c;
    const kvk_ops *kern;
    int layer, pos, n;
    const float *q;
    float *out;
    int n_old;           // hi slots holding positions < pos; slots n_old.. hold pos.., ascending
    const int *hi_pos;   // hi_bits 32 only: the non-sink hi positions, ascending (kv_full's order)
    int n_hi;
} mikv_job;

// Per-thread scratch, in floats: scores (rep, n_ctx) | importance partial sums (n_ctx) | row (hd).
static size_t scratch_floats(const kv_mikv *c) {
    const it_kv *kv = &c->base;
    size_t rep = (size_t)(kv->n_heads / kv->n_kv_heads);
    return rep * kv->n_ctx + (size_t)kv->n_ctx + (size_t)kv->head_dim;
}

// Sinks and fp32 hi rows take kv_full's own operations (kv_dot; o += w·v in position order), so
// F32 with everything hi stays bit-identical to kv_full; fp16 / INT rows go through the kv_kern
// kernels: the hi pool in one call, then the lo rows in one call.
static void mikv_worker(void *arg, int ith, int nth) {
    const mikv_job *j = arg;
    const kv_mikv *c = j->c;
    const it_kv *kv = &c->base;
    int hd = kv->head_dim, n_heads = kv->n_heads, n_kv = kv->n_kv_heads, rep = n_heads / n_kv, g = c->cfg.group;
    float *scores = c->scratch + (size_t)ith * c->scratch_per;   // (rep, n_keys)
    float *acc = scores + (size_t)rep * kv->n_ctx, *row = acc + kv->n_ctx;
    size_t L = (size_t)j->layer * kv->n_ctx;
    const uint8_t *st = c->state + L;
    const int *sp = c->slot_pos + L, *lo_pos = c->lo_list + L;
    float scale = 1.0f / sqrtf((float)hd);
    memset(acc, 0, (size_t)(j->pos + j->n) * sizeof(float));
    for (int item = ith; item < j->n * n_kv; item += nth) {
        int t = item / n_kv, kvh = item % n_kv;
        int n_keys = j->pos + t + 1, sink = c->cfg.sink < n_keys ? c->cfg.sink : n_keys;
        // Hi rows visible to query t: the old slots and the new ones up to its own position.
        int n_hi = c->hi_bits == 32 ? mikv_count_below(j->hi_pos, j->n_hi, n_keys)
                                    : j->n_old + mikv_count_below(sp + j->n_old, c->n_hi[j->layer] - j->n_old, n_keys);
        int n_lo = mikv_count_below(lo_pos, c->n_lo[j->layer], n_keys);
        const float *q = j->q + (size_t)t * n_heads * hd + (size_t)kvh * rep * hd;
        float *o = j->out + (size_t)t * n_heads * hd + (size_t)kvh * rep * hd;
        size_t ld = (size_t)n_keys;
        kvk_rows hi = {mikv_hi_row(c, 0, j->layer, kvh, 0), c->hi_row, NULL, 0, n_hi, c->hi_bits, hd, g, sp};
        kvk_rows lo = {mikv_lo_row(c, 0, j->layer, kvh, 0), c->lo_row, lo_pos, 0, n_lo, c->lo_bits, hd, g, NULL};
        if (sink + n_hi + n_lo < n_keys)   // evicted tokens: weight exactly 0 after the softmax
            for (int p = sink; p < n_keys; p++)
                if (st[p] == KV_MIKV_EVICTED)
                    for (int h = 0; h < rep; h++) scores[h * ld + p] = -INFINITY;
        for (int p = 0; p < sink; p++) {
            load(c, j->layer, p, kvh, 0, row);
            for (int h = 0; h < rep; h++) scores[h * ld + p] = kv_dot(q + h * hd, row, hd) * scale;
        }
        if (c->hi_bits == 32) {
            for (int i = 0; i < n_hi; i++) {
                load(c, j->layer, j->hi_pos[i], kvh, 0, row);
                for (int h = 0; h < rep; h++) scores[h * ld + j->hi_pos[i]] = kv_dot(q + h * hd, row, hd) * scale;
            }
        } else if (n_hi) {
            j->kern->scores(&hi, q, rep, scale, scores, ld);
        }
        if (n_lo) j->kern->scores(&lo, q, rep, scale, scores, ld);
        kv_softmax_group(kv, scores, rep, n_keys, kvh, t, j->pos, j->n);
        for (int h = 0; h < rep; h++)   // head by head: the order the importance sums always had
            kern_add(acc, scores + h * ld, (size_t)n_keys);
        memset(o, 0, (size_t)rep * hd * sizeof(float));
        for (int i = 0; i < sink + (c->hi_bits == 32 ? n_hi : 0); i++) {
            int p = i < sink ? i : j->hi_pos[i - sink];
            load(c, j->layer, p, kvh, 1, row);
            for (int h = 0; h < rep; h++) {
                float w = scores[h * ld + p], *oh = o + h * hd;
                for (int d = 0; d < hd; d++) oh[d] += w * row[d];
            }
        }
        hi.base = mikv_hi_row(c, 1, j->layer, kvh, 0);
        lo.base = mikv_lo_row(c, 1, j->layer, kvh, 0);
        if (c->hi_bits != 32 && n_hi) j->kern->accum(&hi, scores, ld, rep, o);
        if (n_lo) j->kern->accum(&lo, scores, ld, rep, o);
    }
}

static int mikv_attend(it_kv *kv, it_pool *pool, int layer, int pos, int n, const float *q, float *out) {
    kv_mikv *c = (kv_mikv *)kv;
    int nth = it_pool_size(pool);
    if (nth < 1) nth = 1;
    if (kv_scratch_reserve(&c->scratch, &c->scratch_per, &c->scratch_threads, scratch_floats(c), nth) != 0)
        return KV_E_NOMEM;   // not even one thread's scratch: out is not written, the caller must know
    mikv_job j = {c, kvk_active(), layer, pos, n, q, out, mikv_pool_tail(c, layer, pos), NULL, 0};
    if (c->hi_bits == 32) {   // exact fp32 rows (tests): position order, as kv_full sums them
        const uint8_t *st = c->state + (size_t)layer * kv->n_ctx;
        int *hp = c->order, nh = 0;
        for (int p = c->cfg.sink; p < pos + n; p++)
            if (st[p] == KV_MIKV_HI) hp[nh++] = p;
        j.hi_pos = hp, j.n_hi = nh;
    }
    int used = c->scratch_threads >= nth ? kv_attend_threads(pool, kv, pos, n) : 1;
    if (used > 1) it_pool_run_n(pool, mikv_worker, &j, used);
    else mikv_worker(&j, 0, 1);
    // Importance: the per-thread partial sums, added in thread order (deterministic for a pool size:
    // `used` depends on it and on the call's size only).
    float *imp = c->imp + (size_t)layer * kv->n_ctx;
    for (int th = 0; th < used; th++) {
        const float *acc = c->scratch + (size_t)th * c->scratch_per + (size_t)(kv->n_heads / kv->n_kv_heads) * kv->n_ctx;
        kern_add(imp, acc, (size_t)(pos + n));
    }
    rebalance(c, layer);
    return KV_OK;
}

static size_t mikv_bytes(const it_kv *kv, int n_tokens) {
    const kv_mikv *c = (const kv_mikv *)kv;
    size_t nkv = (size_t)kv->n_kv_heads, total = 0;
    size_t sink_row = (size_t)kv->head_dim * sizeof(float);
    int n = n_tokens < kv->n_ctx ? n_tokens : kv->n_ctx;
    for (int l = 0; l < kv->n_layers; l++)
        for (int p = 0; p < n; p++) {
            int s = p < c->n_tok[l] ? c->state[(size_t)l * kv->n_ctx + p] : KV_MIKV_HI;
            size_t r = p < kv->n_shared ? 0 : p < c->cfg.sink ? sink_row : s == KV_MIKV_HI ? c->hi_row : s == KV_MIKV_LO ? c->lo_row : 0;
            total += 2 * nkv * r;
        }
    return total;
}

static void mikv_free(it_kv *kv) {
    kv_mikv *c = (kv_mikv *)kv;
    if (!c) return;
    free(c->sink_k);
    free(c->sink_v);
    free(c->hi_k);
    free(c->hi_v);
    free(c->lo_k);
    free(c->lo_v);
    free(c->slot_pos);
    free(c->pos_slot);
    free(c->n_hi);
    free(c->lo_list);
    free(c->n_lo);
    free(c->rowtmp);
    free(c->state);
    free(c->imp);
    free(c->n_tok);
    free(c->order);
    free(c->rowbuf);
    free(c->scratch);
    free(c);
}

// The shared rows are read as sinks (load), so they must all be sinks: always hi, never demoted.
// They start as if just stored (zero importance); detaching (n 0) empties the cache.
static int mikv_share(it_kv *kv, int n) {
    kv_mikv *c = (kv_mikv *)kv;
    if (n > c->cfg.sink) return KV_E_ARG;
    for (int l = 0; l < kv->n_layers; l++) {
        for (int p = 0; p < n; p++) {
            c->state[(size_t)l * kv->n_ctx + p] = KV_MIKV_HI;
            c->imp[(size_t)l * kv->n_ctx + p] = 0;
        }
        for (int s = 0; s < c->n_hi[l]; s++) c->pos_slot[(size_t)l * kv->n_ctx + c->slot_pos[(size_t)l * kv->n_ctx + s]] = -1;
        c->n_hi[l] = c->n_lo[l] = 0;   // n <= sink: no token is pooled or lo
        c->n_tok[l] = n;
    }
    return KV_OK;
}

static const it_kv_ops mikv_ops = {mikv_store, mikv_attend, mikv_bytes, mikv_free, mikv_share};

kv_mikv_config kv_mikv_default_config(void) {
    kv_mikv_config cfg = {0.2f, KVQ_F16, KVQ_INT4, 32, 1, 0, 0};
    return cfg;
}

// Applies the default group and validates; 0 or -1 with the reason in why (when non-NULL).
static int resolve_config(const kv_mikv_config *in, int head_dim, kv_mikv_config *out, char *why, size_t cap) {
    char dummy[8];
    if (!why) why = dummy, cap = sizeof dummy;
    if (!in || head_dim <= 0) return snprintf(why, cap, "no configuration / head dimension %d", head_dim), -1;
    kv_mikv_config rc = *in;
    const char *name = rc.evict ? "H2O" : "MiKV";
    if (!(rc.hi_ratio > 0 && rc.hi_ratio <= 1))
        return snprintf(why, cap, "%s ratio %g is not in (0, 1]", name, (double)rc.hi_ratio), -1;
    if (rc.recent < 0 || rc.sink < 0 || (rc.evict != 0 && rc.evict != 1))
        return snprintf(why, cap, "%s: negative recent window / sink", name), -1;
    if (rc.hi_type != KVQ_F32 && rc.hi_type != KVQ_F16 && rc.hi_type != KVQ_INT8)
        return snprintf(why, cap, "%s high-precision type must be f16 or int8", name), -1;
    if (rc.lo_type != KVQ_INT4 && rc.lo_type != KVQ_INT3 && rc.lo_type != KVQ_INT2)
        return snprintf(why, cap, "%s low-precision type must be int4, int3 or int2", name), -1;
    int given = rc.group != 0;
    if (!given) rc.group = kvq_default_group(head_dim);
    if (kvq_group_error(rc.group, given, head_dim, why, cap)) return -1;
    *out = rc;
    return 0;
}

int kv_mikv_config_check(const kv_mikv_config *cfg, int head_dim, char *why, size_t cap) {
    kv_mikv_config rc;
    return resolve_config(cfg, head_dim, &rc, why, cap);
}

it_kv *kv_mikv_new(int n_layers, int n_ctx, int n_heads, int n_kv_heads, int head_dim,
                   const kv_mikv_config *cfg) {
    kv_mikv_config rc;
    if (n_layers <= 0 || n_ctx <= 0 || n_heads <= 0 || n_kv_heads <= 0 || n_heads % n_kv_heads ||
        resolve_config(cfg, head_dim, &rc, NULL, 0) || rc.sink > n_ctx)
        return NULL;
    kv_mikv *c = calloc(1, sizeof *c);
    if (!c) return NULL;
    it_kv b = {&mikv_ops, n_layers, n_ctx, n_heads, n_kv_heads, head_dim, NULL, NULL, NULL, 0};
    c->base = b;
    c->cfg = rc;
    c->hi_bits = kvq_bits(rc.hi_type);
    c->lo_bits = kvq_bits(rc.lo_type);
    c->hi_row = kvq_row_bytes(c->hi_bits, head_dim, rc.group);
    c->lo_row = kvq_row_bytes(c->lo_bits, head_dim, rc.group);
    size_t rows = (size_t)n_layers * n_ctx * n_kv_heads, per_layer = (size_t)n_layers * n_ctx;
    size_t sink_f = (size_t)n_layers * rc.sink * n_kv_heads * head_dim + 1;
    c->sink_k = malloc(sink_f * sizeof(float));
    c->sink_v = malloc(sink_f * sizeof(float));
    c->hi_k = malloc(rows * c->hi_row);
    c->hi_v = malloc(rows * c->hi_row);
    c->lo_k = malloc(rows * c->lo_row);
    c->lo_v = malloc(rows * c->lo_row);
    c->slot_pos = malloc(per_layer * sizeof(int));
    c->pos_slot = malloc(per_layer * sizeof(int));
    c->n_hi = calloc((size_t)n_layers, sizeof(int));
    c->lo_list = malloc(per_layer * sizeof(int));
    c->n_lo = calloc((size_t)n_layers, sizeof(int));
    c->rowtmp = malloc(2 * c->hi_row);
    c->state = calloc(per_layer, 1);
    c->imp = calloc(per_layer, sizeof(float));
    c->n_tok = calloc((size_t)n_layers, sizeof(int));
    c->order = malloc(2 * (size_t)n_ctx * sizeof(int));
    c->rowbuf = malloc((size_t)head_dim * sizeof(float));
    if (!c->sink_k || !c->sink_v || !c->hi_k || !c->hi_v || !c->lo_k || !c->lo_v || !c->state || !c->imp ||
        !c->n_tok || !c->order || !c->rowbuf || !c->slot_pos || !c->pos_slot || !c->n_hi || !c->lo_list || !c->n_lo ||
        !c->rowtmp) {
        mikv_free(&c->base);
        return NULL;
    }
    for (size_t i = 0; i < per_layer; i++) c->pos_slot[i] = -1;
    return &c->base;
}

// ---- Introspection ----

static const kv_mikv *as_mikv(const it_kv *kv, int layer) {
    if (!kv || kv->ops != &mikv_ops || layer < 0 || layer >= kv->n_layers) return NULL;
    return (const kv_mikv *)kv;
}

int kv_mikv_n_tokens(const it_kv *kv, int layer) {
    const kv_mikv *c = as_mikv(kv, layer);
    return c ? c->n_tok[layer] : -1;
}

int kv_mikv_count(const it_kv *kv, int layer, int state) {
    const kv_mikv *c = as_mikv(kv, layer);
    if (!c) return -1;
    int cnt = 0;
    for (int p = 0; p < c->n_tok[layer]; p++) cnt += c->state[(size_t)layer * kv->n_ctx + p] == state;
    return cnt;
}

int kv_mikv_state(const it_kv *kv, int layer, int pos) {
    const kv_mikv *c = as_mikv(kv, layer);
    if (!c || pos < 0 || pos >= c->n_tok[layer]) return -1;
    return c->state[(size_t)layer * kv->n_ctx + pos];
}

float kv_mikv_importance(const it_kv *kv, int layer, int pos) {
    const kv_mikv *c = as_mikv(kv, layer);
    if (!c || pos < 0 || pos >= c->n_tok[layer]) return NAN;
    return c->imp[(size_t)layer * kv->n_ctx + pos];
}

int kv_mikv_read_row(const it_kv *kv, int layer, int pos, int which, float *out) {
    const kv_mikv *c = as_mikv(kv, layer);
    if (!c || pos < 0 || pos >= c->n_tok[layer] || c->state[(size_t)layer * kv->n_ctx + pos] == KV_MIKV_EVICTED)
        return -1;
    for (int h = 0; h < kv->n_kv_heads; h++) load(c, layer, pos, h, which != 0, out + (size_t)h * kv->head_dim);
    return 0;
}
