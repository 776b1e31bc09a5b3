// Token sampling: repetition penalty, greedy, temperature, top-k, nucleus (top-p), min-p — the chain
// documented in include/intact.h. Deterministic for a given seed.
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "intact.h"

static uint64_t xorshift64s(uint64_t *s) {
    uint64_t x = *s;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *s = x;
    return x * 0x2545F4914F6CDD1DULL;
}

static float uniform01(uint64_t *s) { return (float)((xorshift64s(s) >> 40) * (1.0 / 16777216.0)); }

intact_sampler_params intact_sampler_default_params(void) {
    intact_sampler_params p = {0.8f, 0.95f, 0.0f, 1.0f, 0, 64, 0};
    return p;
}

void intact_sampler_init(intact_sampler *s, float temp, float top_p, uint64_t seed) {
    memset(s, 0, sizeof *s);
    s->temp = temp;
    s->top_p = top_p;
    s->repeat_penalty = 1.0f;
    // splitmix so that small seeds (0, 1, 2) still give well-mixed, nonzero states
    uint64_t z = seed + 0x9E3779B97F4A7C15ULL;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    s->rng = (z ^ (z >> 31)) | 1;
}

int intact_sampler_init_params(intact_sampler *s, const intact_sampler_params *p, intact_error *err) {
    // Written as !(x in range) so that NaN fails too.
    if (!(p->temp >= 0 && p->temp <= 1e4f)) return it_fail(err, INTACT_E_ARG, "temperature %g is not in [0, 1e4]", p->temp);
    if (!(p->top_p > 0 && p->top_p <= 1)) return it_fail(err, INTACT_E_ARG, "top_p %g is not in (0, 1]", p->top_p);
    if (!(p->min_p >= 0 && p->min_p <= 1)) return it_fail(err, INTACT_E_ARG, "min_p %g is not in [0, 1]", p->min_p);
    if (p->top_k < 0) return it_fail(err, INTACT_E_ARG, "top_k %d is negative", p->top_k);
    if (!(p->repeat_penalty > 0 && p->repeat_penalty <= 1e4f))
        return it_fail(err, INTACT_E_ARG, "repeat_penalty %g is not in (0, 1e4]", p->repeat_penalty);
    if (p->repeat_last_n < 0 || p->repeat_last_n > INTACT_SAMPLER_MAX_LAST_N)
        return it_fail(err, INTACT_E_ARG, "repeat_last_n %d is not in [0, %d]", p->repeat_last_n,
                       INTACT_SAMPLER_MAX_LAST_N);
    intact_sampler_init(s, p->temp, p->top_p, p->seed);
    s->top_k = p->top_k;
    s->min_p = p->min_p;
    s->repeat_penalty = p->repeat_penalty;
    s->repeat_last_n = p->repeat_last_n;
    return 0;
}

void intact_sampler_accept(intact_sampler *s, int32_t tok) {
    s->hist[s->n_hist % INTACT_SAMPLER_MAX_LAST_N] = tok;
    // n_hist stays congruent to the write position and, once the ring is full, >= its size
    if (++s->n_hist >= 2 * INTACT_SAMPLER_MAX_LAST_N) s->n_hist -= INTACT_SAMPLER_MAX_LAST_N;
}

static int32_t argmax(const float *x, int n) {
    int32_t best = 0;
    for (int i = 1; i < n; i++)
        if (x[i] > x[best]) best = i;
    return best;
}

typedef struct { float p; int32_t id; } cand;

static int cand_desc(const void *a, const void *b) {
    float x = ((const cand *)a)->p, y = ((const cand *)b)->p;
    return x < y ? 1 : x > y ? -1 : 0;
}

// The penalized logits: a malloc'd copy when the penalty applies, else logits itself (*own = NULL).
static const float *penalize(const intact_sampler *s, const float *logits, int n, float **own) {
    *own = NULL;
    int last = s->n_hist < s->repeat_last_n ? s->n_hist : s->repeat_last_n;
    if (s->repeat_penalty == 1.0f || last <= 0) return logits;
    float *l = malloc((size_t)n * sizeof *l + (size_t)n);
    if (!l) return NULL;
    unsigned char *seen = (unsigned char *)(l + n);
    memcpy(l, logits, (size_t)n * sizeof *l);
    memset(seen, 0, (size_t)n);
    for (int i = 0; i < last; i++) {
        int at = (s->n_hist - 1 - i) % INTACT_SAMPLER_MAX_LAST_N;   // the i-th newest entry
        int32_t t = s->hist[at];
        if (t < 0 || t >= n || seen[t]) continue;   // each distinct token once, as llama.cpp
        seen[t] = 1;
        l[t] = l[t] > 0 ? l[t] / s->repeat_penalty : l[t] * s->repeat_penalty;
    }
    *own = l;
    return l;
}

// The candidates step 6 draws from, unnormalized (*sum is their total), best first when sorted;
// *m of them. NULL when out of memory.
static cand *filter(const intact_sampler *s, const float *logits_in, int n, int *m_out, double *sum_out) {
    float *own;
    const float *logits = penalize(s, logits_in, n, &own);
    if (!logits) return NULL;
    cand *c = malloc((size_t)(n > 0 ? n : 1) * sizeof *c);
    if (!c) { free(own); return NULL; }
    if (s->temp <= 0 || n <= 1) {
        c[0].id = argmax(logits, n);
        c[0].p = 1;
        free(own);
        *m_out = 1;
        *sum_out = 1;
        return c;
    }
    float mx = logits[argmax(logits, n)];
    double sum = 0;
    for (int i = 0; i < n; i++) {
        c[i].p = expf((logits[i] - mx) / s->temp);
        c[i].id = i;
        sum += c[i].p;
    }
    free(own);
    int m = n;
    if (s->top_k > 0 && s->top_k < m) {
        qsort(c, (size_t)m, sizeof *c, cand_desc);
        m = s->top_k;
        sum = 0;
        for (int i = 0; i < m; i++) sum += c[i].p;
    }
    if (s->top_p > 0 && s->top_p < 1 && m > 1) {
        // Only candidates above (1-p)/(m-1) of the mass can be in the nucleus: prune before sorting.
        float cutoff = (float)((1.0 - s->top_p) / (m - 1) * sum);
        int k = 0, top = 0;
        for (int i = 1; i < m; i++)
            if (c[i].p > c[top].p) top = i;
        cand best = c[top];
        for (int i = 0; i < m; i++)
            if (c[i].p >= cutoff) c[k++] = c[i];
        if (k == 0) { c[0] = best; k = 1; }
        m = k;
        qsort(c, (size_t)m, sizeof *c, cand_desc);
        double cum = 0, total = sum;
        int keep = m;
        for (int i = 0; i < m; i++) {
            cum += c[i].p;
            if (cum >= s->top_p * total) { keep = i + 1; break; }
        }
        m = keep;
        sum = 0;
        for (int i = 0; i < m; i++) sum += c[i].p;
    }
    if (s->min_p > 0) {
        float best = 0;
        for (int i = 0; i < m; i++) best = c[i].p > best ? c[i].p : best;
        int k = 0;
        sum = 0;
        for (int i = 0; i < m; i++)
            if (c[i].p >= s->min_p * best) { c[k++] = c[i]; sum += c[i].p; }
        m = k;
    }
    *m_out = m;
    *sum_out = sum;
    return c;
}

int intact_sampler_probs(const intact_sampler *s, const float *logits, int n, float *probs) {
    int m;
    double sum;
    cand *c = filter(s, logits, n, &m, &sum);
    if (!c) return -1;
    memset(probs, 0, (size_t)n * sizeof *probs);
    for (int i = 0; i < m; i++) probs[c[i].id] = (float)(c[i].p / sum);
    free(c);
    return 0;
}

int32_t intact_sample(intact_sampler *s, const float *logits, int n) {
    int m;
    double sum;
    cand *c = filter(s, logits, n, &m, &sum);
    if (!c) return argmax(logits, n);
    if (m == 1 && s->temp <= 0) { int32_t t = c[0].id; free(c); return t; }
    double r = uniform01(&s->rng) * sum, acc = 0;
    int32_t out = c[m - 1].id;
    for (int i = 0; i < m; i++) {
        acc += c[i].p;
        if (r < acc) { out = c[i].id; break; }
    }
    free(c);
    return out;
}
