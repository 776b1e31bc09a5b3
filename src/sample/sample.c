// Token sampling: greedy, temperature, nucleus (top-p). Deterministic for a given seed.
#include <math.h>
#include <stdlib.h>

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

void intact_sampler_init(intact_sampler *s, float temp, float top_p, uint64_t seed) {
    s->temp = temp;
    s->top_p = top_p;
    // splitmix so that small seeds (0, 1, 2) still give well-mixed, nonzero states
    uint64_t z = seed + 0x9E3779B97F4A7C15ULL;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    s->rng = (z ^ (z >> 31)) | 1;
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

int32_t intact_sample(intact_sampler *s, const float *logits, int n) {
    if (s->temp <= 0 || n <= 1) return argmax(logits, n);
    cand *c = malloc((size_t)n * sizeof *c);
    if (!c) return argmax(logits, n);
    float mx = logits[argmax(logits, n)];
    double sum = 0;
    for (int i = 0; i < n; i++) {
        c[i].p = expf((logits[i] - mx) / s->temp);
        c[i].id = i;
        sum += c[i].p;
    }
    int m = n;
    if (s->top_p > 0 && s->top_p < 1) {
        // Only candidates above (1-p)/(n-1) can be in the nucleus: prune before sorting.
        float cutoff = (float)((1.0 - s->top_p) / (n - 1) * sum);
        m = 0;
        for (int i = 0; i < n; i++)
            if (c[i].p >= cutoff) c[m++] = c[i];
        if (m == 0) { free(c); return argmax(logits, n); }
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
    double r = uniform01(&s->rng) * sum, acc = 0;
    int32_t out = c[m - 1].id;
    for (int i = 0; i < m; i++) {
        acc += c[i].p;
        if (r < acc) { out = c[i].id; break; }
    }
    free(c);
    return out;
}
