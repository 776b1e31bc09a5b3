// Attention kernels over cached K/V rows in their stored low-bit / fp16 form (formats in
// kv_quant.h), shared by the uniform cache (kv_quant_attn.c) and MiKV/H2O (kv_mikv.c).
//
// Each kernel handles one kv head and the `rep` GQA query heads that share it, over a batch of
// rows, so that a row is decoded once (into registers or a small stack buffer) and used for every
// query head; nothing ever dequantizes the cache into a float copy. F32 rows are NOT handled here:
// the caches score them with kv_dot() and sum them in kv_full's order, which keeps fp32 storage
// bit-identical to kv_full.
//
// Three implementations with the same contract: `_ref` (portable scalar, decodes a group at a time
// with kvq_dequant_group / fp16 reads, float sums), AVX2+FMA+F16C (kv_kern_avx2.c) and AVX-512
// (kv_kern_avx512.c, kv_score_avx512.c). They agree up to float reassociation (the SIMD kernels
// dequantize with an FMA and sum in 8 or 16 lanes).
//
// ISA choice (kvk_active, per attend call): kvk_force() if set (tests, benchmarks); else scalar if
// INTACT_ISA=ref or it_cpu_force_ref(1) is in effect (the matmul kernels' switches) or the CPU lacks
// AVX2+FMA+F16C; else AVX-512 where the CPU has it and INTACT_ISA does not cap it; else AVX2.
#ifndef IT_KV_KV_KERN_H
#define IT_KV_KV_KERN_H

#include <stddef.h>
#include <stdint.h>

// A batch of per-token rows of one kv head, all in one format.
typedef struct kvk_rows {
    const uint8_t *base;   // row of position p at base + p·stride
    size_t stride;
    const int *pos;        // the n positions to read, ascending; NULL: p0, p0+1, ..., p0+n-1
    int p0, n;
    int bits;              // 16 (fp16), 8, 4, 3 or 2 (groups of `group`: fp16 d, m + codes)
    int hd, group;         // head_dim; group divides hd for INT rows (ignored for fp16)
    // NULL: row i's score / weight is at index p_i (its position). Else at index at[i] (any order,
    // distinct): rows packed in a slot pool (MiKV's hi rows) stream contiguously (pos NULL, p0 0)
    // while their scores land at their token positions.
    const int *at;
} kvk_rows;

typedef struct kvk_ops {
    const char *name;      // "ref", "avx2" or "avx512"
    // s[h·ld + a_i] = scale · (q_h · row_i) for every row i of r and h < rep; q_h = q + h·hd; a_i is
    // the row's position, or at[i] when r->at is set.
    // INT4 and INT2 rows (only): q_h is first quantized to int8 per group of r->group channels by
    // kvk_quant_q, and s = scale · Σ_g (d_g·sq_g·Σ_i c_i·q8_i + m_g·Σ_i q_i) (exact integer inner
    // sums; the relative error vs float q is ~0.4 % of Σ|q·d·c| per group, far below INT4's own).
    void (*scores)(const kvk_rows *r, const float *q, int rep, float scale, float *s, size_t ld);
    // o[h·hd + c] += Σ_i w[h·ld + a_i] · row_i[c] over the rows i of r (o accumulates; h < rep).
    void (*accum)(const kvk_rows *r, const float *w, size_t ld, int rep, float *o);
    // Per-channel (KIVI) key block of `group` tokens (kv_quant.h layout, bits 8/4/3/2):
    // s[h·ld + j] = scale · Σ_c q_h[c] · (d_c · code_{c,j} + m_c) for tokens j < nt ≤ group.
    void (*chan_scores)(const uint8_t *blk, int bits, int hd, int group, int nt, const float *q, int rep,
                        float scale, float *s, size_t ld);
    // In place, n >= 1: s[i] = exp(s[i] - max) / Σ_j exp(s[j] - max), the sum in double, the division
    // as a multiply by (float)(1/Σ). -inf entries (evicted tokens) become exactly 0. ref: expf per
    // entry (the caches' historical arithmetic, kept as is); avx2 / avx512: a Cephes-style polynomial
    // exp, the same per entry in both (≤ 2 ulp relative; results ≥ 2^-126 relative within ~1e-6 of
    // ref, smaller ones may flush to 0); they differ only in the order of the double sum.
    void (*softmax)(float *s, int n);
} kvk_ops;

// The int8 form of one head's query used by `scores` on INT4 / INT2 rows: per group g of `group`
// channels (group divides hd), sq[g] = max|q_g| / 127, q8[i] = round(q[i] / sq[g]) (0 where
// sq = 0), qsum[g] = Σ q_g in float. Both implementations call this very function.
void kvk_quant_q(const float *q, int hd, int group, int8_t *q8, float *sq, float *qsum);

const kvk_ops *kvk_ref(void);
const kvk_ops *kvk_avx2(void);        // the table; only call its kernels where it_cpu_has_avx2()
// The AVX2 table with `accum` (bit-identical to AVX2's), `scores` (INT4 / INT2: the int8-query form
// 128 channels per step, kv_score_avx512.c) and `softmax` 16 lanes at a time (kv_kern_avx512.c);
// only where it_cpu_has_avx512() as well.
const kvk_ops *kvk_avx512(void);
const kvk_ops *kvk_get(const char *isa);   // "ref" / "avx2" / "avx512"; NULL if unknown or unsupported here
const kvk_ops *kvk_active(void);      // what the caches use now (see above)
// Overrides kvk_active() (NULL: back to automatic). Not synchronized with running attends: set it
// between calls (tests, benchmarks).
void kvk_force(const kvk_ops *ops);

#endif
