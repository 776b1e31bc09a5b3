// Writing ggml's types (issue 15, part 2): the quantizers' grids for Q4_0, Q4_1, Q5_0, Q8_0, Q4_K
// and Q6_K (quant/qgrid.c) and the block encoders (formats/ggml_pack.c).
//  - RTN-as-Q4_0 of two known rows gives the bytes worked out by hand.
//  - For every type, the values the quantizer intends (qgrid_value, which GPTQ's error feedback
//    uses) are bit-identical to what the C decoder reads back, and to what an independent Python
//    decoder (tests/ref/ggml_decode.py, stdlib only) reads from a GGUF file holding the blocks.
//  - GPTQ on a type's grid has lower output error than RTN on the same grid (correlated inputs).
//  - A model quantized with a ggml format, saved and loaded, gives the logits of the in-memory
//    packed model exactly, and those of its dequantized (fake-quant) twin within float tolerance.
//  - GPTQ-as-Q4_0 beats RTN-as-Q4_0 on stories260K (KL vs FP) at identical bytes.
#include <stdint.h>
#include <strings.h>

#include "harness.h"
#include "core/fp16.h"
#include "core/pool.h"
#include "formats/formats.h"
#include "io/gguf_write.h"
#include "quant/gptq.h"
#include "quant/qgrid.h"
#include "quant/rtn.h"

static uint64_t rng = 0x9e3779b97f4a7c15ULL;
static double urand(void) {
    rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
    return (double)(rng >> 11) / 9007199254740992.0;
}

static const int k_types[] = {IT_TYPE_Q4_0, IT_TYPE_Q4_1, IT_TYPE_Q5_0, IT_TYPE_Q8_0, IT_TYPE_Q4_K, IT_TYPE_Q6_K};
enum { N_TYPES = 6, ROWS = 4, COLS = 512 };

static void test_hand_q4_0(void) {
    TEST_CASE("RTN-as-Q4_0 of known rows gives the hand-computed blocks") {
        qgrid g;
        CHECK(qgrid_init(&g, IT_TYPE_Q4_0) == 0 && g.block == 32 && g.block_bytes == 18, "grid");
        // Row A: w_i = 0.5·(i%16 − 8). Largest |w| is w_0 = −4 (the first of two), so d = −4/−8 = 0.5
        // (fp16 0x3800) and q_i = round(w_i/0.5) + 8 = i%16: qs[j] = q_j | q_{j+16} << 4 = 0x11·j.
        // Row B: w_i = −0.5·(i%16 − 8). Largest is w_0 = +4, d = 4/−8 = −0.5 (fp16 0xB800), and again
        // q_i = round(w_i/−0.5) + 8 = i%16.
        float w[2][32];
        for (int i = 0; i < 32; i++) w[0][i] = 0.5f * (float)(i % 16 - 8), w[1][i] = -w[0][i];
        uint8_t out[2][18], want[2][18];
        CHECK(rtn_quantize_matrix_grid(&g, &w[0][0], 2, 32, 0, out, NULL, NULL, NULL) == 0, "rtn");
        want[0][0] = 0x00, want[0][1] = 0x38, want[1][0] = 0x00, want[1][1] = 0xB8;
        for (int j = 0; j < 16; j++) want[0][2 + j] = want[1][2 + j] = (uint8_t)(0x11 * j);
        for (int r = 0; r < 2; r++)
            for (int k = 0; k < 18; k++)
                CHECK(out[r][k] == want[r][k], "row %d byte %d: 0x%02x, by hand 0x%02x", r, k, out[r][k], want[r][k]);
        float y[32];
        fmt_get(IT_TYPE_Q4_0)->to_float(out[1], y, 32);
        CHECK(y[0] == 4.0f && y[8] == 0.0f && y[15] == -3.5f, "decoded %g %g %g", y[0], y[8], y[15]);
    }
}

// A test matrix: blocks of very different scales, some one-sided, one all-zero and one constant.
static void fill(float *W, int64_t n) {
    for (int64_t i = 0; i < n; i++) {
        int64_t blk = i / 32;
        double s = 0.01 * (1 + (blk * 7919) % 23), off = (blk % 5 == 1) ? 2.5 * s : 0.0;
        W[i] = (float)(s * (2 * urand() - 1) + off);
        if (blk % 37 == 3) W[i] = 0.0f;
        if (blk % 41 == 5) W[i] = 0.0625f;
    }
}

static int bits_equal(const float *a, const float *b, int64_t n, int64_t *first) {
    for (int64_t i = 0; i < n; i++)
        if (memcmp(&a[i], &b[i], 4)) { *first = i; return 0; }
    return 1;
}

static void test_intended_vs_decoders(void) {
    static float W[N_TYPES][ROWS * COLS], want[N_TYPES][ROWS * COLS];
    static uint8_t packed[N_TYPES][ROWS * COLS * 2];
    gguf_writer *w = gguf_writer_new();
    char names[N_TYPES][2][32];
    TEST_CASE("every type: intended values (qgrid_value, GPTQ's feedback) == the C decoder, bit for bit") {
        for (int t = 0; t < N_TYPES; t++) {
            qgrid g;
            qgrid_init(&g, k_types[t]);
            fill(W[t], ROWS * COLS);
            size_t row = qgrid_row_bytes(&g, COLS);
            for (int r = 0; r < ROWS; r++)
                for (int k = 0; k < COLS / g.block; k++) {
                    // Clips below 1 on some groups exercise the clipped parameter paths too.
                    float clips[16];
                    for (int j = 0; j < g.block / g.group; j++) clips[j] = (j + k + r) % 3 ? 1.0f : 0.8f;
                    qgrid_quantize_block(&g, W[t] + r * COLS + k * g.block, clips,
                                         packed[t] + r * row + (size_t)k * g.block_bytes, want[t] + r * COLS + k * g.block);
                }
            float got[ROWS * COLS];
            for (int r = 0; r < ROWS; r++) fmt_get(g.type)->to_float(packed[t] + r * row, got + r * COLS, COLS);
            int64_t i = 0;
            CHECK(bits_equal(got, want[t], ROWS * COLS, &i), "%s: value %lld decoded %.9g, intended %.9g", g.name,
                  (long long)i, got[i], want[t][i]);
            // The quantization is a real one: at clip 1, relative RMS error in the range of the type's bits.
            double e = 0, s = 0;
            for (int64_t k = 0; k < ROWS * COLS; k += g.block) e += qgrid_quantize_block(&g, W[t] + k, NULL, NULL, NULL);
            for (int64_t k = 0; k < ROWS * COLS; k++) s += W[t][k] * W[t][k];
            double lim = g.type == IT_TYPE_Q8_0 ? 0.01 : g.type == IT_TYPE_Q6_K ? 0.05 : g.type == IT_TYPE_Q5_0 ? 0.1 : 0.2;
            CHECK(sqrt(e / s) < lim, "%s: relative RMS error %.4f", g.name, sqrt(e / s));
            int64_t ne[2] = {COLS, ROWS};
            snprintf(names[t][0], sizeof names[t][0], "w.%s", g.name);
            snprintf(names[t][1], sizeof names[t][1], "w.%s.intended", g.name);
            gguf_writer_add_tensor(w, names[t][0], g.type, 2, ne, packed[t], row * ROWS);
            gguf_writer_add_tensor(w, names[t][1], IT_TYPE_F32, 2, ne, want[t], sizeof want[t]);
        }
    }
    TEST_CASE("every type: the independent Python decoder reads the intended values from a GGUF file") {
        char path[] = "/tmp/intact_ggml_write_XXXXXX";
        int fd = mkstemp(path);
        CHECK(fd >= 0, "mkstemp");
        if (fd < 0) break;
        close(fd);
        intact_error err = {0, ""};
        CHECK(gguf_writer_write_file(w, path, &err) == 0, "%s", err.msg);
        char cmd[512];
        snprintf(cmd, sizeof cmd, "python3 tests/ref/ggml_decode.py '%s'", path);
        fflush(stdout);
        int st = system(cmd);
        CHECK(st == 0, "python decoder disagrees (status %d)", st);
        unlink(path);
    }
    gguf_writer_free(w);
}

// GPTQ on the type's grid vs RTN on it: output error ‖X(Wq − W)ᵀ‖² with strongly correlated inputs.
static void test_gptq_grid(it_pool *pool) {
    enum { NI = 512, NO = 16, NT = 1024 };
    static float X[NT * NI], W[NO * NI], Wg[NO * NI], Wr[NO * NI];
    static uint8_t pk[NO * NI * 2];
    for (int t = 0; t < NT; t++) {
        double common = 2 * urand() - 1;
        for (int i = 0; i < NI; i++) X[t * NI + i] = (float)(0.8 * common + 0.6 * (2 * urand() - 1)) * (1 + (i % 7 == 0) * 3);
    }
    gptq_hessian h;
    gptq_hessian_init(&h, NI, NULL);
    gptq_hessian_add(&h, X, NT, pool);
    for (int t = 0; t < N_TYPES; t++) {
        qgrid g;
        qgrid_init(&g, k_types[t]);
        char name[96];
        snprintf(name, sizeof name, "GPTQ-as-%s has lower output error than RTN-as-%s; its W is the decode", g.name, g.name);
        TEST_CASE(name) {
            fill(W, NO * NI);
            memcpy(Wg, W, sizeof W);
            intact_error err = {0, ""};
            CHECK(gptq_quantize_grid(&g, Wg, NO, NI, h.H, NULL, pk, pool, &err) == 0, "%s", err.msg);
            float dec[NI];
            int same = 1;
            for (int r = 0; r < NO; r++) {
                fmt_get(g.type)->to_float(pk + r * qgrid_row_bytes(&g, NI), dec, NI);
                same &= !memcmp(dec, Wg + r * NI, sizeof dec);
            }
            CHECK(same, "returned W differs from the packed blocks' decode");
            CHECK(rtn_quantize_matrix_grid(&g, W, NO, NI, 0, pk, Wr, pool, &err) == 0, "%s", err.msg);
            double eg = 0, er = 0;
            for (int tk = 0; tk < NT; tk += 4)
                for (int r = 0; r < NO; r++) {
                    double yg = 0, yr = 0;
                    for (int i = 0; i < NI; i++) {
                        yg += (double)X[tk * NI + i] * (Wg[r * NI + i] - W[r * NI + i]);
                        yr += (double)X[tk * NI + i] * (Wr[r * NI + i] - W[r * NI + i]);
                    }
                    eg += yg * yg, er += yr * yr;
                }
            CHECK(eg < 0.9 * er, "%s: GPTQ output error %.4g, RTN %.4g", g.name, eg, er);
        }
    }
    gptq_hessian_free(&h);
}

static int logits_of(const intact_model *m, const int32_t *tok, int n, float *out, int vocab) {
    intact_error err;
    intact_ctx_params cp = intact_ctx_default_params();
    cp.logits_all = 1;
    intact_ctx *c = intact_ctx_new(m, &cp, &err);
    if (!c) return -1;
    // Float activations (--exact-act): the packed model is compared with its dequantized float
    // twin, and ggml types would otherwise take int8 activations at prefill too (kernels/ggdec.h).
    int rc = intact_ctx_set_decode_act(c, INTACT_DECODE_ACT_EXACT, &err);
    if (rc == 0) rc = intact_ctx_eval(c, tok, n, &err);
    for (int i = 0; rc == 0 && i < n; i++) memcpy(out + (size_t)i * vocab, intact_ctx_logits(c, i), (size_t)vocab * 4);
    intact_ctx_free(c);
    return rc;
}

static const char *tensor_type(const intact_model *m, const char *name) {
    intact_tensor_info ti;
    for (int i = 0; i < intact_model_n_tensors(m); i++)
        if (intact_model_tensor(m, i, &ti) == 0 && !strcmp(ti.name, name)) return ti.type;
    return "(absent)";
}

// Quantize (packed and fake), save the packed one, load it: logits agree.
static void round_trip(const char *model, const char *tok, const char *format, const char *out_type,
                       const char *embd_type, int vocab) {
    char name[160];
    snprintf(name, sizeof name, "--format %s%s%s%s%s round trip: loaded file == in-memory packed == dequantized twin",
             format, out_type ? " --output-type " : "", out_type ? out_type : "", embd_type ? " --embd-type " : "",
             embd_type ? embd_type : "");
    TEST_CASE(name) {
        SKIP_UNLESS(model);
        intact_error err = {0, ""};
        intact_model *mp = intact_model_load(model, tok, &err), *mf = intact_model_load(model, tok, &err);
        CHECK(mp && mf, "load: %s", err.msg);
        if (!mp || !mf) { intact_model_free(mp); intact_model_free(mf); break; }
        intact_quant_params p = intact_quant_default_params();
        p.format = format;
        p.output_type = out_type;
        p.embd_type = embd_type;
        CHECK(intact_model_quantize(mp, &p, NULL, &err) == 0, "packed: %s", err.msg);
        p.fake = 1;
        p.output_type = p.embd_type = NULL;
        CHECK(intact_model_quantize(mf, &p, NULL, &err) == 0, "fake: %s", err.msg);
        char path[] = "/tmp/intact_ggml_rt_XXXXXX";
        int fd = mkstemp(path);
        if (fd >= 0) close(fd);
        CHECK(intact_model_save(mp, path, &err) == 0, "save: %s", err.msg);
        intact_model *ml = intact_model_load(path, NULL, &err);
        CHECK(ml != NULL, "reload: %s", err.msg);
        unlink(path);
        if (!ml) { intact_model_free(mp); intact_model_free(mf); break; }
        int32_t toks[12] = {1, 403, 261, 378, 271, 288, 296, 299, 305, 271, 414, 260};
        size_t n = 12 * (size_t)vocab;
        float *a = malloc(n * 4), *b = malloc(n * 4), *c = malloc(n * 4);
        CHECK(logits_of(mp, toks, 12, a, vocab) == 0 && logits_of(ml, toks, 12, b, vocab) == 0 &&
              logits_of(mf, toks, 12, c, vocab) == 0, "eval");
        double dab = 0, dac = 0, mx = 0;
        for (size_t i = 0; i < n; i++) {
            dab = fmax(dab, fabs(a[i] - b[i]));
            dac = fmax(dac, fabs(a[i] - c[i]));
            mx = fmax(mx, fabs(a[i]));
        }
        CHECK(dab == 0, "loaded file vs in-memory: max |Δlogit| %g", dab);
        if (!out_type && !embd_type) CHECK(dac < 1e-4 * (1 + mx), "packed vs dequantized twin: max |Δlogit| %g", dac);
        // The layer matrices are in the format (or its k-quant fallback); the heads as asked.
        const char *q = tensor_type(ml, "blk.0.attn_q.weight");
        CHECK(!strcasecmp(q, format) || (!strcmp(format, "q4_k") && !strcmp(q, "q5_0")) ||
              (!strcmp(format, "q6_k") && !strcmp(q, "q8_0")), "attn_q is %s", q);
        const char *dn = tensor_type(ml, "blk.0.ffn_down.weight");
        if (strstr(format, "_k")) CHECK(!strcasecmp(dn, format), "ffn_down (rows of 1024) is %s", dn);
        if (out_type) {
            const char *o = tensor_type(ml, "output.weight");
            CHECK(!strcasecmp(o, out_type) || (!strcmp(out_type, "q6_k") && !strcmp(o, "q8_0")), "output is %s", o);
        }
        if (embd_type) CHECK(!strcasecmp(tensor_type(ml, "token_embd.weight"), embd_type), "embedding is %s",
                             tensor_type(ml, "token_embd.weight"));
        free(a), free(b), free(c);
        intact_model_free(mp), intact_model_free(mf), intact_model_free(ml);
    }
}

static char *read_text(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    char *t = malloc(1 << 19);
    *len = t ? fread(t, 1, (1 << 19) - 1, f) : 0;
    fclose(f);
    return t;
}

static void test_gptq_vs_rtn_model(void) {
    TEST_CASE("stories260K: GPTQ-as-Q4_0 has lower KL vs FP than RTN-as-Q4_0, at identical bytes") {
        char mp[512], tp[512], cp[512], ep[512];
        th_shared("models/stories260K.bin", mp, sizeof mp);
        th_shared("models/tok512.bin", tp, sizeof tp);
        th_shared("data/calib-en.txt", cp, sizeof cp);
        th_shared("data/eval-en.txt", ep, sizeof ep);
        SKIP_UNLESS(cp);
        SKIP_UNLESS(ep);
        intact_error err = {0, ""};
        intact_model *fp = intact_model_load(mp, tp, &err), *mr = intact_model_load(mp, tp, &err),
                     *mg = intact_model_load(mp, tp, &err);
        size_t cl = 0, el = 0;
        char *calib = read_text(cp, &cl), *eval = read_text(ep, &el);
        CHECK(fp && mr && mg && calib && eval, "inputs");
        if (fp && mr && mg && calib && eval) {
            intact_quant_params p = intact_quant_default_params();
            p.format = "q4_0";
            intact_quant_report rr, rg;
            CHECK(intact_model_quantize(mr, &p, &rr, &err) == 0, "rtn: %s", err.msg);
            p.method = "gptq";
            p.calib_text = calib, p.calib_len = cl, p.calib_samples = 16, p.calib_tokens = 128, p.n_threads = 2;
            CHECK(intact_model_quantize(mg, &p, &rg, &err) == 0, "gptq: %s", err.msg);
            CHECK(rr.bytes_after == rg.bytes_after && rr.n_quantized == rg.n_quantized, "bytes %llu vs %llu",
                  (unsigned long long)rr.bytes_after, (unsigned long long)rg.bytes_after);
            intact_eval_params ep2 = {0};
            ep2.n_ctx = 128, ep2.max_chunks = 6, ep2.n_threads = 2;
            intact_kld_result kr, kg;
            CHECK(intact_eval_kld(mr, fp, eval, el, &ep2, &kr, &err) == 0 &&
                  intact_eval_kld(mg, fp, eval, el, &ep2, &kg, &err) == 0, "kld: %s", err.msg);
            printf("  stories260K q4_0: KL vs FP rtn %.5f, gptq %.5f\n", kr.kld_mean, kg.kld_mean);
            CHECK(kg.kld_mean < 0.9 * kr.kld_mean, "gptq %.5f vs rtn %.5f", kg.kld_mean, kr.kld_mean);
        }
        free(calib), free(eval);
        intact_model_free(fp), intact_model_free(mr), intact_model_free(mg);
    }
}

int main(void) {
    it_pool *pool = it_pool_new(2);
    test_hand_q4_0();
    test_intended_vs_decoders();
    test_gptq_grid(pool);
    it_pool_free(pool);
    char mp[512], tp[512], e12[512];
    th_shared("models/stories260K.bin", mp, sizeof mp);
    th_shared("models/tok512.bin", tp, sizeof tp);
    th_shared("models/english-12m.bin", e12, sizeof e12);
    round_trip(mp, tp, "q4_0", NULL, NULL, 512);
    round_trip(mp, tp, "q4_1", NULL, NULL, 512);
    round_trip(mp, tp, "q8_0", NULL, NULL, 512);
    round_trip(mp, tp, "q4_0", "q8_0", "q4_0", 512);
    round_trip(mp, tp, "q4_1", "f16", NULL, 512);
    round_trip(e12, tp, "q4_k", NULL, NULL, 512);
    round_trip(e12, tp, "q6_k", "q6_k", NULL, 512);
    test_gptq_vs_rtn_model();
    return th_finish(__FILE__);
}
