// Helpers shared by the x86 attention kernels (kv_kern_avx2.c, kv_kern_avx512.c, kv_score_avx512.c):
// include only from files compiled with AVX2 (or wider) flags.
#ifndef IT_KV_KV_KERN_X86_H
#define IT_KV_KV_KERN_X86_H

#include <immintrin.h>

#include "kv/kv_kern.h"
#include "core/simd.h"

// Lane h = horizontal sum of a[h].
KI __m256 reduce8(const __m256 *a) {
    __m256 s01 = _mm256_hadd_ps(a[0], a[1]), s23 = _mm256_hadd_ps(a[2], a[3]);
    __m256 s45 = _mm256_hadd_ps(a[4], a[5]), s67 = _mm256_hadd_ps(a[6], a[7]);
    __m256 s03 = _mm256_hadd_ps(s01, s23), s47 = _mm256_hadd_ps(s45, s67);
    return _mm256_add_ps(_mm256_permute2f128_ps(s03, s47, 0x20), _mm256_permute2f128_ps(s03, s47, 0x31));
}

// Row of the kernels' tables for a row format (16 = fp16, 8, 4, 3, 2), or -1.
static inline int kvk_bits_index(int bits) {
    switch (bits) {
    case 16: return 0;
    case 8: return 1;
    case 4: return 2;
    case 3: return 3;
    case 2: return 4;
    default: return -1;
    }
}

// Heads are taken 8, 4, 2, 1 at a time: the largest not above n (n >= 1), and its table column.
static inline int kvk_heads_step(int n, int *col) {
    int nh = n >= 8 ? 8 : n >= 4 ? 4 : n >= 2 ? 2 : 1;
    *col = nh == 8 ? 0 : nh == 4 ? 1 : nh == 2 ? 2 : 3;
    return nh;
}

// Rows i0 .. i0+nb-1 of r for the kernels' row blocks: their addresses, and the indices their
// weights / scores live at (at[i] or the position).
static inline void kvk_block_rows(const kvk_rows *r, int i0, int nb, const uint8_t **rows, int *idx) {
    for (int j = 0; j < nb; j++) {
        int p = r->pos ? r->pos[i0 + j] : r->p0 + i0 + j;
        idx[j] = r->at ? r->at[i0 + j] : p;
        rows[j] = r->base + (size_t)p * r->stride;
    }
}

// AVX-512 int8-query scores of INT4 / INT2 rows (kv_score_avx512.c; contract: kvk_ops.scores in
// kv_kern.h): 1 if it scored them, 0 where the shape is not one it covers (then nothing is written).
int kvk_scores_i8q_avx512(const kvk_rows *r, const float *q, int rep, float scale, float *s, size_t ld);
// The same, built with AVX-512 VNNI (kv_score_avx512vnni.c): only where kern_iq_cpu_has_vnni().
int kvk_scores_i8q_avx512vnni(const kvk_rows *r, const float *q, int rep, float scale, float *s, size_t ld);

#endif
