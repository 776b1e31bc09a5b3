// MiKV row storage bookkeeping (layout in kv_mikv_impl.h): the dense hi slot pool and the ascending
// lo position list. Every operation is O(1) or O(list) at a state change; nothing here runs per
// attended row.
#include <string.h>

#include "kv/kv_mikv_impl.h"

int mikv_pool_add(kv_mikv *c, int layer, int p) {
    size_t L = (size_t)layer * c->base.n_ctx;
    int s = c->n_hi[layer]++;
    c->slot_pos[L + s] = p;
    c->pos_slot[L + p] = s;
    return s;
}

// Exchanges the rows (all heads, K and V) and the map entries of slots a and b.
static void swap_slots(kv_mikv *c, int layer, int a, int b) {
    if (a == b) return;
    size_t L = (size_t)layer * c->base.n_ctx, rb = c->hi_row;
    for (int h = 0; h < c->base.n_kv_heads; h++)
        for (int w = 0; w < 2; w++) {
            uint8_t *ra = mikv_hi_row(c, w, layer, h, a), *rbp = mikv_hi_row(c, w, layer, h, b);
            memcpy(c->rowtmp, ra, rb);
            memcpy(ra, rbp, rb);
            memcpy(rbp, c->rowtmp, rb);
        }
    int pa = c->slot_pos[L + a], pb = c->slot_pos[L + b];
    c->slot_pos[L + a] = pb, c->slot_pos[L + b] = pa;
    c->pos_slot[L + pa] = b, c->pos_slot[L + pb] = a;
}

void mikv_pool_drop(kv_mikv *c, int layer, int p) {
    size_t L = (size_t)layer * c->base.n_ctx;
    int s = c->pos_slot[L + p], last = c->n_hi[layer] - 1;
    if (s < 0) return;
    if (s != last) {
        for (int h = 0; h < c->base.n_kv_heads; h++)
            for (int w = 0; w < 2; w++) memcpy(mikv_hi_row(c, w, layer, h, s), mikv_hi_row(c, w, layer, h, last), c->hi_row);
        int q = c->slot_pos[L + last];
        c->slot_pos[L + s] = q;
        c->pos_slot[L + q] = s;
    }
    c->pos_slot[L + p] = -1;
    c->n_hi[layer] = last;
}

int mikv_pool_tail(kv_mikv *c, int layer, int pos) {
    const int *sp = c->slot_pos + (size_t)layer * c->base.n_ctx;
    int n = c->n_hi[layer], a = 0;
    for (int s = 0; s < n; s++) a += sp[s] < pos;
    int ok = 1;
    for (int s = a; s < n && ok; s++) ok = sp[s] >= pos && (s == a || sp[s] > sp[s - 1]);
    if (ok) return a;
    // Rare (an attend over positions already attended, after demotions moved slots): partition,
    // then selection-sort the tail; swaps keep rows and maps together.
    int w = 0;
    for (int s = 0; s < n; s++)
        if (sp[s] < pos) swap_slots(c, layer, w++, s);
    for (int s = a; s < n; s++) {
        int m = s;
        for (int t = s + 1; t < n; t++) m = sp[t] < sp[m] ? t : m;
        swap_slots(c, layer, s, m);
    }
    return a;
}

int mikv_count_below(const int *a, int n, int lim) {
    int lo = 0, hi = n;
    while (lo < hi) {
        int mid = (lo + hi) / 2;
        if (a[mid] < lim) lo = mid + 1;
        else hi = mid;
    }
    return lo;
}

// In-place merge from the back: the list has room for n_ctx entries and the positions are distinct.
void mikv_lo_merge(kv_mikv *c, int layer, const int *add, int n) {
    int *l = c->lo_list + (size_t)layer * c->base.n_ctx;
    int i = c->n_lo[layer] - 1, j = n - 1, o = c->n_lo[layer] + n - 1;
    while (j >= 0) l[o--] = i >= 0 && l[i] > add[j] ? l[i--] : add[j--];
    c->n_lo[layer] += n;
}

void mikv_lo_remove(kv_mikv *c, int layer, int p) {
    int *l = c->lo_list + (size_t)layer * c->base.n_ctx, n = c->n_lo[layer];
    int i = mikv_count_below(l, n, p);
    if (i >= n || l[i] != p) return;
    memmove(l + i, l + i + 1, (size_t)(n - i - 1) * sizeof(int));
    c->n_lo[layer] = n - 1;
}
