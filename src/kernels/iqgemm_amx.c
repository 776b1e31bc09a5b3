// AMX prefill GEMM for our integer formats (kernels/iqgemm.h), bit-identical to kern_dq_ref.
// Compiled with the AVX-512 flags plus AMX-TILE/INT8 (Makefile rule for *_amx.c); chosen only when
// cpuid reports AMX-INT8 and the kernel granted this process the tile state (kern_dqa_usable).
//
// Why: on a CPU with AMX one tdpbusd multiplies a 16 x 64-byte u8 tile by a 64 x 16 s8 tile, 16K
// products, where the VNNI GEMM needs 256 vpdpbusd; llama.cpp's Q4_0/Q8_0 prefill uses it and was
// 1.5x intact's int8 prefill on an Intel Xeon (docs/speed.md).
//
// The weights are the A tile (16 rows x one 32-weight block, u8 codes in natural order, copied or
// unpacked once per 16-row block into 512 contiguous bytes per block), the
// activations the B tile (kern_dq.qa: per 16 tokens and block, 8 rows of 16 tokens x 4 bytes, the
// VNNI layout, built by kern_dq_quantize). One tdpbusd per block gives C[r][t] = isum of row r,
// token t over that block; then, per row, one vector over the 16 tokens does the reference's float
// step: x = isum - z sum (fnmadd; exact, all < 2^24), f = fma(d * s, x, f). The reference keeps 16
// accumulators per output, block b going to f[b % 16]: here the blocks are taken in the order
// b, b + 16, b + 32, ... for each lane b in turn, so every accumulator sees its blocks in order, and
// the lanes are summed at the end in the reference's order (i + 8, + 4, + 2, + 1) as vector adds.
#include <immintrin.h>
#include <stdlib.h>
#include <string.h>

#include "core/fp16.h"
#include "core/simd.h"
#include "kernels/ggdec.h"
#include "kernels/iqdec_avx512.h"
#include "kernels/iqgemm.h"

typedef struct {
    uint8_t palette, start_row, reserved[14];
    uint16_t colsb[16];
    uint8_t rows[16];
} amx_cfg;

// Tiles 0 and 3: C (mr rows x 16 int32), 1 and 4: A (mr rows x 32 bytes), 2 and 5: B (8 rows x
// 64 bytes). half (Q6_K): A holds 16 bytes a row and B 4 rows, one 16-weight half of a block.
static void amx_config(int mr, int half) {
    _Alignas(64) amx_cfg c;
    memset(&c, 0, sizeof c);
    c.palette = 1;
    for (int i = 0; i < 6; i += 3) {
        c.rows[i] = (uint8_t)mr, c.colsb[i] = 64;
        c.rows[i + 1] = (uint8_t)mr, c.colsb[i + 1] = half ? 16 : 32;
        c.rows[i + 2] = half ? 4 : 8, c.colsb[i + 2] = 64;
    }
    // Not _tile_loadconfig: GCC 12 declares its asm as reading only the first 8 bytes of the
    // config, so it drops the stores above as dead (the tiles are then unconfigured: SIGILL).
    __asm__ volatile("ldtilecfg %0" : : "m"(c));
}

// Rows [R, R + mr) (mr <= 16) of one of our formats into ua, df, zf.
static void amx_fill_ours(const qf_spec *s, const uint8_t *w, size_t rb, const kern_dq *a, int64_t R, int mr,
                          uint8_t *ua, float *df, float *zf) {
    const int B = s->bits, G = s->group, kpg = G / 32;
    const size_t hdr = dq_hdr(s->sym), bb = dq_blkb(B, G, s->sym);
    const int64_t ng = a->n_in / G;
    // Group headers as floats, and the codes as bytes: ua[512 k + 32 r + i] = code i of block k of
    // row R + r. int8 codes are copied too: read in place, the weight tile was 16 rows apart in the
    // file and was re-read for every 16-token tile (a quarter of the kernel's samples on its
    // tileloadd at int8 prefill 256, docs/speed.md).
    for (int r = 0; r < mr; r++) {
        const uint8_t *row = w + (size_t)(R + r) * rb;
        for (int64_t g = 0; g < ng; g++) {
            const uint8_t *gp = row + (size_t)g * bb;
            uint16_t h;
            memcpy(&h, gp, 2);
            df[g * 16 + r] = it_fp16_to_f32(h);
            zf[g * 16 + r] = s->sym ? (float)(1 << (B - 1)) : (float)gp[2];
            for (int k = 0; k < kpg; k++) {
                uint8_t *o = ua + 512 * (g * kpg + k) + 32 * r;
                if (B == 8) {
                    memcpy(o, gp + hdr + 32 * k, 32);
                } else if (B == 4) {   // 16 bytes: low nibbles are weights 0..15, high nibbles 16..31
                    const __m128i m4 = _mm_set1_epi8(0x0f);
                    __m128i v = _mm_loadu_si128((const __m128i *)(const void *)(gp + hdr + 16 * k));
                    _mm_storeu_si128((__m128i *)(void *)o, _mm_and_si128(v, m4));
                    _mm_storeu_si128((__m128i *)(void *)(o + 16), _mm_and_si128(_mm_srli_epi16(v, 4), m4));
                } else {   // 8 bytes: bits 2i..2i+1 of byte j are weight 8i + j; int3: + 4 where the word's bit is set
                    uint64_t p;
                    memcpy(&p, gp + hdr + 8 * k, 8);
                    __m256i v = _mm256_and_si256(_mm256_srlv_epi64(_mm256_set1_epi64x((long long)p), _mm256_setr_epi64x(0, 2, 4, 6)),
                                                 _mm256_set1_epi8(3));
                    if (B == 3) {
                        uint32_t hb;
                        memcpy(&hb, gp + hdr + G / 4 + 4 * k, 4);
                        v = _mm256_mask_add_epi8(v, (__mmask32)hb, v, _mm256_set1_epi8(4));
                    }
                    _mm256_storeu_si256((__m256i *)(void *)o, v);
                }
            }
        }
    }
}

// Rows [R, R + mr) of ggml's Q8_0, Q4_K or Q6_K into ua (codes as bytes), df and zf, per block
// (kpg 1), so that the float step of amx_rows gives ggdec.h's definition:
//   Q8_0: code c + 128 (xor 0x80), df = d, zf = 128: isum - 128 sum is the signed dot exactly.
//   Q4_K: code as stored, df = d * sc_j, zf = dmin * mn_j (the K step subtracts (zf * s) * sum).
//   Q6_K: signed code c - 32 (for tdpbssd), df = d, zf[2k * 16 + r] and zf[(2k + 1) * 16 + r] the
//         int8 scales of block k's two halves.
static void amx_fill_ggml(int type, const uint8_t *w, size_t rb, const kern_dq *a, int64_t R, int mr, uint8_t *ua,
                          float *df, float *zf) {
    const int64_t nb = a->n_in / 32;
    for (int r = 0; r < mr; r++) {
        const uint8_t *row = w + (size_t)(R + r) * rb;
        if (type == IT_TYPE_Q8_0) {
            for (int64_t k = 0; k < nb; k++) {
                const it_block_q8_0 *q = (const void *)(row + (size_t)k * sizeof *q);
                __m256i v = _mm256_loadu_si256((const __m256i *)(const void *)q->qs);
                _mm256_storeu_si256((__m256i *)(void *)(ua + 512 * k + 32 * r), _mm256_xor_si256(v, _mm256_set1_epi8((char)0x80)));
                df[k * 16 + r] = it_fp16_to_f32(q->d), zf[k * 16 + r] = 128.0f;
            }
            continue;
        }
        if (type == IT_TYPE_Q6_K) {
            for (int64_t k = 0; k < nb; k++) {   // block j = k % 8 of super-block k / 8 (formats.h)
                const it_block_q6_K *q = (const void *)(row + (size_t)(k / 8) * sizeof *q);
                const int j = (int)(k % 8), n = j / 4, m = j % 4;
                __m256i lb = _mm256_loadu_si256((const __m256i *)(const void *)(q->ql + 64 * n + 32 * (m & 1)));
                __m256i hb = _mm256_loadu_si256((const __m256i *)(const void *)(q->qh + 32 * n));
                if (m >= 2) lb = _mm256_srli_epi16(lb, 4);
                lb = _mm256_and_si256(lb, _mm256_set1_epi8(0x0f));
                hb = _mm256_and_si256(_mm256_srl_epi16(hb, _mm_cvtsi32_si128(2 * m)), _mm256_set1_epi8(3));
                __m256i c = _mm256_or_si256(lb, _mm256_slli_epi16(hb, 4));   // 0..63: no bit crosses a byte
                _mm256_storeu_si256((__m256i *)(void *)(ua + 512 * k + 32 * r), _mm256_sub_epi8(c, _mm256_set1_epi8(32)));
                df[k * 16 + r] = it_fp16_to_f32(q->d);
                zf[2 * k * 16 + r] = (float)q->scales[2 * j], zf[(2 * k + 1) * 16 + r] = (float)q->scales[2 * j + 1];
            }
            continue;
        }
        for (int64_t k = 0; k < nb; k += 8) {   // Q4_K: one super-block, sub-blocks j = 0..7
            const it_block_q4_K *q = (const void *)(row + (size_t)(k / 8) * sizeof *q);
            const float d = it_fp16_to_f32(q->d), dmin = it_fp16_to_f32(q->dmin);
            const __m128i m4 = _mm_set1_epi8(0x0f);
            for (int j = 0; j < 8; j++) {
                int sc, mn;
                ggdec_k4_scale_min(q->scales, j, &sc, &mn);
                df[(k + j) * 16 + r] = d * (float)sc, zf[(k + j) * 16 + r] = dmin * (float)mn;
                // bytes 32 (j / 2) .. + 31: sub-block j in the low nibbles (j even) or the high ones
                for (int h = 0; h < 2; h++) {
                    __m128i v = _mm_loadu_si128((const __m128i *)(const void *)(q->qs + 32 * (j / 2) + 16 * h));
                    if (j % 2) v = _mm_srli_epi16(v, 4);
                    _mm_storeu_si128((__m128i *)(void *)(ua + 512 * (k + j) + 32 * r + 16 * h), _mm_and_si128(v, m4));
                }
            }
        }
    }
}

// One line of the next row block into the cache, cycling through its pf_len bytes (p NULL: none).
KI void amx_pf_step(const uint8_t *p, size_t pf_len, size_t *off) {
    if (!p) return;
    _mm_prefetch((const char *)(p + *off), _MM_HINT_T0);
    *off = *off + 64 < pf_len ? *off + 64 : 0;
}

// Rows [R, R + mr) (mr <= 16), every token, from the codes and headers the fill functions made
// (kpg blocks per header). K = 1 (Q4_K): f = fma(df * s, isum, f), then f -= (zf * s) * sum;
// K = 2 (Q6_K): f = fma(df * s, zf_a * isum_a + zf_b * isum_b, f) over the two halves; K = 0:
// f = fma(df * s, isum - zf * sum, f).
KI void amx_rows(const int K, int kpg, const uint8_t *w, size_t rb, const kern_dq *a, float *y, int64_t ldy,
                 int64_t R, int mr, int64_t r_end, const uint8_t *ua, const float *df, const float *zf) {
    const int64_t nb = a->n_in / 32, ntile = (a->nt + 15) / 16;
    _Alignas(64) int32_t cb[16 * 16], cb2[16 * 16];
    // The next row block (rows R + 16 .. R + 31, contiguous), prefetched a line per block step.
    const uint8_t *pf_next = R + 32 <= r_end ? w + (size_t)(R + 16) * rb : NULL;
    const size_t pf_len = 16 * rb;
    size_t pf_off = 0;
    _Alignas(64) float acc[16][16][16];   // [lane b][row r][token t]
    for (int64_t u = 0; u < ntile; u++) {
        const int8_t *qa = a->qa + (size_t)u * (size_t)a->nbp * 512;
        const float *sca = a->sca + (size_t)u * (size_t)a->nbp * 16, *sua = a->suma + (size_t)u * (size_t)a->nbp * 16;
        for (int b = 0; b < 16; b++) {
            __m512 f[16];
            UNROLL for (int r = 0; r < 16; r++) f[r] = _mm512_setzero_ps();
#define AM_A(k) ((const void *)(ua + 512 * (k)))
#define AM_AS 32L
            // Q6_K: the two halves of block k (16 weights each, their own int8 scale) in tiles 0-2
            // and 3-5, signed codes times signed activations. The half sums are exact integers
            // below 2^17 and the scaled sum below 2^24 (ggdec.h), so the float products and the fma
            // give the reference's integer exactly.
            for (int64_t k = b; K == 2 && k < nb; k += 16) {
                _tile_loadd(1, AM_A(k), AM_AS);
                _tile_loadd(2, qa + 512 * k, 64);
                _tile_zero(0);
                _tile_dpbssd(0, 1, 2);
                _tile_loadd(4, ua + 512 * k + 16, AM_AS);
                _tile_loadd(5, qa + 512 * k + 256, 64);
                _tile_zero(3);
                _tile_dpbssd(3, 4, 5);
                _tile_stored(0, cb, 64);
                _tile_stored(3, cb2, 64);
                amx_pf_step(pf_next, pf_len, &pf_off);
                const __m512 sc = _mm512_loadu_ps(sca + 16 * k);
                UNROLL for (int r = 0; r < 16; r++) {
                    if (r < mr) {
                        __m512 xb = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_load_si512((const void *)(cb2 + 16 * r))),
                                                  _mm512_set1_ps(zf[(2 * k + 1) * 16 + r]));
                        __m512 x = _mm512_fmadd_ps(_mm512_cvtepi32_ps(_mm512_load_si512((const void *)(cb + 16 * r))),
                                                   _mm512_set1_ps(zf[2 * k * 16 + r]), xb);
                        f[r] = _mm512_fmadd_ps(_mm512_mul_ps(_mm512_set1_ps(df[k * 16 + r]), sc), x, f[r]);
                    }
                }
            }
            // Blocks k and k + 16 in flight together (tiles 0-2 and 3-5): the second tdpbusd runs
            // while the first block's result is stored and takes its float step.
            for (int64_t k = b; K != 2 && k < nb; k += 32) {
                const int two = k + 16 < nb;
                _tile_loadd(1, AM_A(k), AM_AS);
                _tile_loadd(2, qa + 512 * k, 64);
                _tile_zero(0);
                _tile_dpbusd(0, 1, 2);
                if (two) {
                    _tile_loadd(4, AM_A(k + 16), AM_AS);
                    _tile_loadd(5, qa + 512 * (k + 16), 64);
                    _tile_zero(3);
                    _tile_dpbusd(3, 4, 5);
                }
                for (int h = 0; h <= two; h++) {
                    const int64_t kk = k + 16 * h, g = kk / kpg;
                    if (h) _tile_stored(3, cb, 64);
                    else _tile_stored(0, cb, 64);
                    // Meanwhile, one piece of the next row block into the cache (scalar loads of its
                    // headers missed at the start of every block).
                    amx_pf_step(pf_next, pf_len, &pf_off);
                    const __m512 sc = _mm512_loadu_ps(sca + 16 * kk), su = _mm512_loadu_ps(sua + 16 * kk);
                    UNROLL for (int r = 0; r < 16; r++) {
                        if (r < mr) {
                            __m512 x = _mm512_cvtepi32_ps(_mm512_load_si512((const void *)(cb + 16 * r)));
                            if (!K) x = _mm512_fnmadd_ps(_mm512_set1_ps(zf[g * 16 + r]), su, x);
                            __m512 ds = _mm512_mul_ps(_mm512_set1_ps(df[g * 16 + r]), sc);
                            f[r] = _mm512_fmadd_ps(ds, x, f[r]);
                            if (K) f[r] = _mm512_fnmadd_ps(_mm512_mul_ps(_mm512_set1_ps(zf[g * 16 + r]), sc), su, f[r]);
                        }
                    }
                }
            }
#undef AM_A
#undef AM_AS
            UNROLL for (int r = 0; r < 16; r++) _mm512_store_ps(acc[b][r], f[r]);
        }
        const int mt = a->nt - 16 * u < 16 ? (int)(a->nt - 16 * u) : 16;
        for (int r = 0; r < mr; r++) {
            __m512 h[8];
            UNROLL for (int i = 0; i < 8; i++) h[i] = _mm512_add_ps(_mm512_load_ps(acc[i][r]), _mm512_load_ps(acc[i + 8][r]));
            UNROLL for (int i = 0; i < 4; i++) h[i] = _mm512_add_ps(h[i], h[i + 4]);
            UNROLL for (int i = 0; i < 2; i++) h[i] = _mm512_add_ps(h[i], h[i + 2]);
            _Alignas(64) float out[16];
            _mm512_store_ps(out, _mm512_add_ps(h[0], h[1]));
            for (int t = 0; t < mt; t++) y[(16 * u + t) * ldy + R + r] = out[t];
        }
    }
}

// Rows [r0, r1) of one matrix in 16-row blocks: type < 0 is one of our formats (s), else ggml's.
static int amx_matrix(const qf_spec *s, int type, const void *w, size_t row_bytes, const kern_dq *a, float *y,
                      int64_t ldy, int64_t r0, int64_t r1) {
    // The codes of a 16-row block (512 bytes per 32-block) and its headers; on the heap for long rows.
    const int half = type == IT_TYPE_Q6_K;   // zf holds two scales per block (amx_fill_ggml)
    const int64_t nb = a->n_in / 32, ng = type < 0 ? a->n_in / s->group : nb;
    uint8_t *ua = aligned_alloc(64, (size_t)nb * 512);
    float *df = malloc((size_t)ng * 16 * sizeof *df), *zf = malloc((size_t)ng * (half ? 32 : 16) * sizeof *zf);
    if (!ua || !df || !zf) {   // out of memory: the caller's VNNI kernels need none
        free(ua), free(df), free(zf);
        return -1;
    }
    int cur = 16;
    amx_config(16, half);
    for (int64_t R = r0; R < r1; R += 16) {
        const int mr = r1 - R < 16 ? (int)(r1 - R) : 16;
        if (mr != cur) amx_config(cur = mr, half);
        if (type < 0) {
            amx_fill_ours(s, w, row_bytes, a, R, mr, ua, df, zf);
            amx_rows(0, s->group / 32, w, row_bytes, a, y, ldy, R, mr, r1, ua, df, zf);
        } else {
            amx_fill_ggml(type, w, row_bytes, a, R, mr, ua, df, zf);
            // One call per K with K a constant: amx_rows is inlined into a loop specialized for it.
            if (type == IT_TYPE_Q4_K) amx_rows(1, 1, w, row_bytes, a, y, ldy, R, mr, r1, ua, df, zf);
            else if (type == IT_TYPE_Q6_K) amx_rows(2, 1, w, row_bytes, a, y, ldy, R, mr, r1, ua, df, zf);
            else amx_rows(0, 1, w, row_bytes, a, y, ldy, R, mr, r1, ua, df, zf);
        }
    }
    _tile_release();
    free(ua), free(df), free(zf);
    return 0;
}

void kern_dqg_amx(const qf_spec *s, const void *w, size_t row_bytes, const kern_dq *a, float *y, int64_t ldy,
                  int64_t r0, int64_t r1) {
    // no AMX activation tiles, or out of memory: the VNNI GEMM
    if (!a->qa || amx_matrix(s, -1, w, row_bytes, a, y, ldy, r0, r1))
        kern_dqg_avx512vnni(s, w, row_bytes, a, y, ldy, r0, r1);
}

void ggdec_amx(int type, const void *w, size_t row_bytes, const kern_dq *a, float *y, int64_t ldy, int64_t r0,
               int64_t r1) {
    if (!a->qa || (type != IT_TYPE_Q8_0 && type != IT_TYPE_Q4_K && type != IT_TYPE_Q6_K) ||
        amx_matrix(NULL, type, w, row_bytes, a, y, ldy, r0, r1))
        ggdec_avx512vnni(type, w, row_bytes, a, y, ldy, r0, r1);
}
