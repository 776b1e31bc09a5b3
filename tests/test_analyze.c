// Pivot-token analysis (intact_analyze, `intact analyze`, the SVG writer):
//  - a hand-made model whose token 7 has one channel 100x the others must be the only pivot, by
//    activation, in every layer, at its position, with that channel;
//  - english-1m (first 300 bytes of eval-en.txt): [BOS] is a pivot by activation in layers 0-1, its
//    top final-layer channel is 125 or 45 (the numbers of ../shared/models/README.md's independent
//    numpy analysis); attention maps, micro-batching and shares agree with each other;
//  - stories260K (no sink): attention share on token 0 below 6% in every layer;
//  - SVG files parse as XML (python3's xml.dom.minidom) even with hostile token text; tick values
//    against hand-computed lists; the colour bar shows them; line-chart peaks carry their index;
//  - channel profile: the planted channel is the pivot token's, in every layer;
//  - english-12m: [BOS] max|h| ~540 on channels 216/38 and > 20% attention in layers 1,2,4,5,7 (the
//    models README's numpy numbers); its plots write 216 in the [BOS] cells, label ch 216 / ch 38,
//    show the space of " she"; --svg names every file it wrote on stderr;
//  - the CLI: --help, bad flags, missing files, --json is one object.
// The binary is $INTACT_BIN (default build/intact); models come from $INTACT_SHARED.
// Case bodies are `do { } while (0)` so that `break` skips the rest of a case.
#include <stdarg.h>
#include <stdint.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "intact.h"
#include "eval/analyze.h"
#include "eval/svg.h"

enum { T_DIM = 16, T_HID = 32, T_LAYERS = 3, T_HEADS = 2, T_VOCAB = 32, T_SEQ = 64 };
enum { PIVOT_ID = 7, PIVOT_CH = 5, PIVOT_POS = 5 };

static uint32_t lcg(uint32_t *s) { return *s = *s * 1103515245u + 12345u; }
static float uni(uint32_t *s, float a) { return ((float)(lcg(s) >> 8) / 16777216.0f * 2 - 1) * a; }

static int put(FILE *f, uint32_t *st, size_t n, float amp, float cst) {
    for (size_t i = 0; i < n; i++) {
        float v = amp > 0 ? uni(st, amp) : cst;
        if (fwrite(&v, sizeof v, 1, f) != 1) return -1;
    }
    return 0;
}

// A llama2.c checkpoint: embeddings in [-1, 1] except token PIVOT_ID, whose channel PIVOT_CH is
// 100; all matrices tiny (+-0.05), so every layer passes the embedding through the residual stream
// almost unchanged and attention stays near uniform (no sink).
static int write_planted_model(const char *path) {
    const int hs = T_DIM / T_HEADS;
    int32_t hdr[7] = {T_DIM, T_HID, T_LAYERS, T_HEADS, T_HEADS, T_VOCAB, T_SEQ};
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    uint32_t st = 99;
    int ok = fwrite(hdr, sizeof hdr, 1, f) == 1;
    for (int t = 0; t < T_VOCAB && ok; t++)
        for (int c = 0; c < T_DIM && ok; c++) {
            float v = uni(&st, 1.0f);
            if (t == PIVOT_ID && c == PIVOT_CH) v = 100.0f;
            ok = fwrite(&v, sizeof v, 1, f) == 1;
        }
    size_t L = T_LAYERS, D = T_DIM, Hd = T_HID;
    ok = ok && put(f, &st, L * D, 0, 1) == 0                 // rms_att
            && put(f, &st, 4 * L * D * D, 0.05f, 0) == 0     // wq, wk, wv, wo
            && put(f, &st, L * D, 0, 1) == 0                 // rms_ffn
            && put(f, &st, 3 * L * D * Hd, 0.05f, 0) == 0    // w1, w2, w3
            && put(f, &st, D, 0, 1) == 0                     // rms_final
            && put(f, &st, 2 * (size_t)T_SEQ * (hs / 2), 0, 0) == 0;   // unused freq_cis
    return (fclose(f) == 0 && ok) ? 0 : -1;
}

static char bin[1024], errfile[64], outfile[64];

typedef struct result { int rc; char *out, *err; } result;

static char *read_all(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return strdup("");
    size_t cap = 1 << 16, n = 0, got;
    char *buf = (char *)malloc(cap + 1);
    while (buf && (got = fread(buf + n, 1, cap - n, f)) > 0) {
        n += got;
        if (n == cap) { char *nb = (char *)realloc(buf, 2 * cap + 1); if (!nb) break; buf = nb; cap *= 2; }
    }
    fclose(f);
    if (buf) buf[n] = '\0';
    return buf ? buf : strdup("");
}

// Runs "$INTACT_BIN args" (shell syntax) with stdout and stderr captured in temp files.
static result run(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static result run(const char *fmt, ...) {
    char args[4096], cmd[8192];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(args, sizeof args, fmt, ap);
    va_end(ap);
    snprintf(cmd, sizeof cmd, "'%s' %s >'%s' 2>'%s' </dev/null", bin, args, outfile, errfile);
    fflush(stdout);
    int st = system(cmd);
    result r = {(st != -1 && WIFEXITED(st)) ? WEXITSTATUS(st) : -1, read_all(outfile), read_all(errfile)};
    return r;
}
static void rfree(result *r) { free(r->out); free(r->err); }

// python3 exits 0 when every file parses as XML.
static int xml_ok(const char *files) {
    char cmd[8192];
    snprintf(cmd, sizeof cmd, "python3 -c 'import sys, xml.dom.minidom as m\nfor f in sys.argv[1:]: m.parse(f)' %s",
             files);
    return system(cmd) == 0;
}

static intact_model *load(const char *model_rel) {
    char mp[1024], tp[1024];
    intact_error err = {0, ""};
    intact_model *m = intact_model_load(th_shared(model_rel, mp, sizeof mp),
                                        th_shared("models/tok512.bin", tp, sizeof tp), &err);
    CHECK(m != NULL, "load %s: %s", model_rel, err.msg);
    return m;
}

static int32_t *tokens_of(intact_model *m, const char *text, size_t len, int max, int *n) {
    int32_t *ids = (int32_t *)malloc((size_t)(len + 2) * sizeof *ids);
    intact_error err = {0, ""};
    int k = ids ? intact_tokenize(m, text, len, 1, ids, (int)len + 2, &err) : -1;
    *n = k < max ? k : max;
    return ids;
}

int main(void) {
    if (th_skip_program("test_analyze", "models/english-1m.bin", "data/eval-en.txt", NULL)) return 0;
    const char *b = getenv("INTACT_BIN");
    snprintf(bin, sizeof bin, "%s", b && *b ? b : "build/intact");
    char m_en[1024], m_tok[1024], dp[1024];
    th_shared("models/english-1m.bin", m_en, sizeof m_en);
    th_shared("models/tok512.bin", m_tok, sizeof m_tok);
    char tiny[] = "/tmp/intact_test_analyze_model_XXXXXX", textf[] = "/tmp/intact_test_analyze_text_XXXXXX";
    char hostf[] = "/tmp/intact_test_analyze_host_XXXXXX", svgdir[] = "/tmp/intact_test_analyze_svg_XXXXXX";
    snprintf(errfile, sizeof errfile, "/tmp/intact_test_analyze_err_XXXXXX");
    snprintf(outfile, sizeof outfile, "/tmp/intact_test_analyze_out_XXXXXX");
    int fds[5] = {mkstemp(tiny), mkstemp(textf), mkstemp(hostf), mkstemp(errfile), mkstemp(outfile)};
    int setup_ok = mkdtemp(svgdir) != NULL;
    for (int i = 0; i < 5; i++) { setup_ok = setup_ok && fds[i] >= 0; if (fds[i] >= 0) close(fds[i]); }
    char *eval_text = read_all(th_shared("data/eval-en.txt", dp, sizeof dp));
    size_t text_len = strlen(eval_text) < 300 ? strlen(eval_text) : 300;
    FILE *tf = fopen(textf, "wb");
    setup_ok = setup_ok && tf && fwrite(eval_text, 1, text_len, tf) == text_len && text_len == 300;
    if (tf) fclose(tf);
    // markup, quotes, control bytes and invalid UTF-8: byte-fallback tokens carry them into labels
    static const char hostile[] = "<script>&amp;\"'</svg>]]> \x01\x02\x1b\x7f \xff\xfe\xc3( \xed\xa0\x80 ok";
    tf = fopen(hostf, "wb");
    setup_ok = setup_ok && tf && fwrite(hostile, 1, sizeof hostile - 1, tf) == sizeof hostile - 1;
    if (tf) fclose(tf);

    TEST_CASE("setup: temp files, eval text, binary") do {
        CHECK(setup_ok, "temp files or %s", dp);
        CHECK(access(bin, X_OK) == 0, "no executable at %s (set INTACT_BIN)", bin);
    } while (0);

    TEST_CASE("baselines: uniform share and median without one element") do {
        CHECK_NEAR(analyze_uniform_share(4, 0), (1 + 1 / 2.0 + 1 / 3.0 + 1 / 4.0) / 4, 1e-12);
        CHECK_NEAR(analyze_uniform_share(4, 3), 0.25, 1e-12);
        CHECK_NEAR(analyze_uniform_share(1, 0), 1.0, 1e-12);
        const float s[5] = {1, 2, 3, 10, 50};
        CHECK_NEAR(analyze_median_without(s, 5, 4), 2.5, 0);   // {1,2,3,10}
        CHECK_NEAR(analyze_median_without(s, 5, 0), 6.5, 0);   // {2,3,10,50}
        CHECK_NEAR(analyze_median_without(s, 5, 2), 6.0, 0);   // {1,2,10,50}
        CHECK_NEAR(analyze_median_without(s, 2, 0), 2.0, 0);
    } while (0);

    TEST_CASE("planted pivot: token 7 with a 100x channel is the only pivot, in every layer") do {
        if (write_planted_model(tiny) != 0) { CHECK(0, "cannot write %s", tiny); break; }
        intact_error err = {0, ""};
        intact_model *m = intact_model_load(tiny, NULL, &err);
        CHECK(m != NULL, "load: %s", err.msg);
        if (!m) break;
        int32_t ids[24];
        for (int i = 0; i < 24; i++) ids[i] = (int32_t)((i * 5 + 1) % T_VOCAB == PIVOT_ID ? 3 : (i * 5 + 1) % T_VOCAB);
        ids[PIVOT_POS] = PIVOT_ID;
        intact_analyze_params p = intact_analyze_default_params();
        intact_analysis *a = intact_analyze(m, ids, 24, &p, &err);
        CHECK(a != NULL, "analyze: %s", err.msg);
        if (a) {
            CHECK(a->n_pivots == 1 && a->pivots[0] == PIVOT_POS, "pivots: %d, first %d", a->n_pivots,
                  a->n_pivots ? a->pivots[0] : -1);
            for (int l = 0; l < T_LAYERS; l++) {
                size_t li = (size_t)l * 24 + PIVOT_POS;
                CHECK(a->why[li] == INTACT_PIVOT_ACT, "layer %d: criteria %d, want activation only", l, a->why[li]);
                CHECK(a->channel[li] == PIVOT_CH, "layer %d: channel %d", l, a->channel[li]);
                CHECK(a->max_abs[li] > 90 && a->max_abs[li] > 50 * a->median_other[li],
                      "layer %d: max %.3g median %.3g", l, a->max_abs[li], a->median_other[li]);
            }
            // no sink in a near-uniform model: every judged sink ratio is close to 1
            for (int i = 0; i < 24 * T_LAYERS; i++)
                CHECK(isnan(a->sink_ratio[i]) || fabs(a->sink_ratio[i] - 1) < 0.3, "sink ratio %d: %g", i,
                      a->sink_ratio[i]);
            CHECK(!isnan(a->kv[0].k_absmax[0]) && !isnan(a->kv[0].k_absmax[1]), "kv stats missing");
        }
        intact_analysis_free(a);
        // the channel profile (a separate pass) puts the planted 100 on channel PIVOT_CH of the pivot token
        // in every layer, and no other token comes near it (embeddings in [-1, 1], matrices +-0.05)
        int layers[T_LAYERS] = {0, 1, 2};
        float prof[T_LAYERS * 3 * T_DIM];
        CHECK(analyze_channel_profile(m, ids, 24, PIVOT_POS, layers, T_LAYERS, 1, prof, &err) == 0, "profile: %s",
              err.msg);
        for (int k = 0; k < T_LAYERS; k++) {
            const float *who = prof + k * 3 * T_DIM, *mx = who + T_DIM, *med = who + 2 * T_DIM;
            CHECK(who[PIVOT_CH] > 90 && who[PIVOT_CH] < 110, "layer %d: pivot channel %g", k, who[PIVOT_CH]);
            for (int c = 0; c < T_DIM; c++) {
                CHECK(mx[c] < 3 && med[c] <= mx[c] && med[c] >= 0, "layer %d ch %d: max %g median %g", k, c, mx[c], med[c]);
                CHECK(c == PIVOT_CH || who[c] < 3, "layer %d: pivot token's channel %d is %g", k, c, who[c]);
            }
        }
        layers[1] = T_LAYERS;
        CHECK(analyze_channel_profile(m, ids, 24, 0, layers, 2, 1, prof, &err) != 0 && err.code == INTACT_E_ARG,
              "layer out of range accepted");
        CHECK(analyze_channel_profile(m, ids, 24, 24, layers, 1, 1, prof, &err) != 0, "token out of range accepted");
        CHECK(intact_analyze(m, ids, 1, &p, &err) == NULL && err.code == INTACT_E_ARG, "1 token accepted");
        CHECK(intact_analyze(m, ids, T_SEQ + 1, &p, &err) == NULL, "more tokens than the context accepted");
        ids[0] = T_VOCAB;
        CHECK(intact_analyze(m, ids, 4, &p, &err) == NULL, "out-of-range token accepted");
        intact_model_free(m);
    } while (0);

    intact_model *en = load("models/english-1m.bin");
    TEST_CASE("english-1m: [BOS] is a pivot in layers 0-1, channel 125 or 45, as in the README") do {
        if (!en || !setup_ok) { CHECK(0, "prerequisites missing"); break; }
        int n;
        int32_t *ids = tokens_of(en, eval_text, text_len, 128, &n);
        intact_analyze_params p = intact_analyze_default_params();
        p.keep_maps = 1;
        intact_error err = {0, ""};
        intact_analysis *a = ids && n >= 100 ? intact_analyze(en, ids, n, &p, &err) : NULL;
        CHECK(a != NULL, "analyze (%d tokens): %s", n, err.msg);
        if (!a) { free(ids); break; }
        int L = a->n_layers;
        CHECK(a->n_pivots >= 1 && a->pivots[0] == 0, "BOS not a pivot");
        for (int l = 0; l < 2; l++)
            CHECK(a->why[(size_t)l * n] & INTACT_PIVOT_ACT, "layer %d: BOS %.3g vs median %.3g", l,
                  a->max_abs[(size_t)l * n], a->median_other[(size_t)l * n]);
        size_t fl = (size_t)(L - 1) * n;
        printf("  BOS final layer: max|h| %.3f, median %.3f, channels %d, %d; layer 0 ratio %.2f\n",
               a->max_abs[fl], a->median_other[fl], a->channel[fl], a->channel2[fl], a->max_abs[0] / a->median_other[0]);
        CHECK(a->channel[fl] == 125 || a->channel[fl] == 45, "top channel %d", a->channel[fl]);
        CHECK(fabs(a->max_abs[fl] - 8.2) < 0.3 && fabs(a->median_other[fl] - 2.7) < 0.3, "README: 8.2 vs 2.7");
        for (int i = 1; i < n; i++) CHECK(a->max_abs[fl + i] < a->max_abs[fl], "token %d above BOS", i);
        int attn_layers = 0;
        for (int l = 0; l < L; l++) attn_layers += (a->why[(size_t)l * n] & INTACT_PIVOT_ATTN) != 0;
        CHECK(attn_layers >= 2, "BOS is a sink in %d layers (README: 0, 1, 4)", attn_layers);
        // The shares agree with the maps, whose rows are distributions; n > 64 crosses a micro-batch.
        double worst = 0;
        for (int lh = 0; lh < L * a->n_heads; lh++)
            for (int j = 0; j < n; j++) {
                double s = 0, row = 0;
                for (int t = j; t < n; t++) s += a->maps[((size_t)lh * n + t) * n + j];
                for (int k = 0; k < n; k++) row += a->maps[((size_t)lh * n + j) * n + k];
                worst = fmax(worst, fabs(s / (n - j) - a->head_share[(size_t)lh * n + j]));
                worst = fmax(worst, fabs(row - 1));
            }
        CHECK(worst < 1e-4, "maps vs shares / row sums: %g", worst);
        // causality: the first 64 tokens alone give the same activations
        p.keep_maps = 0;
        intact_analysis *a64 = intact_analyze(en, ids, 64, &p, &err);
        CHECK(a64 != NULL, "analyze 64: %s", err.msg);
        for (int l = 0; a64 && l < L; l++)
            for (int i = 0; i < 64; i++)
                CHECK(fabs(a64->max_abs[l * 64 + i] - a->max_abs[(size_t)l * n + i]) <= 1e-4 * a->max_abs[(size_t)l * n + i],
                      "layer %d token %d", l, i);
        intact_analysis_free(a64);
        intact_analysis_free(a);
        free(ids);
    } while (0);

    TEST_CASE("stories260K: no sink, attention on token 0 below 6% in every layer") do {
        intact_model *st = load("models/stories260K.bin");
        if (!st) break;
        int n;
        int32_t *ids = tokens_of(st, eval_text, strlen(eval_text) < 3000 ? strlen(eval_text) : 3000, 256, &n);
        intact_error err = {0, ""};
        intact_analysis *a = ids && n == 256 ? intact_analyze(st, ids, n, NULL, &err) : NULL;
        CHECK(a != NULL, "analyze (%d tokens): %s", n, err.msg);
        for (int l = 0; a && l < a->n_layers; l++) {
            printf("  layer %d: share on token 0 %.2f%%, sink ratio %.2f\n", l, 100 * a->share[(size_t)l * n],
                   a->sink_ratio[(size_t)l * n]);
            CHECK(a->share[(size_t)l * n] < 0.06, "layer %d: %.3f", l, a->share[(size_t)l * n]);
            CHECK(!(a->why[(size_t)l * n] & INTACT_PIVOT_ATTN), "layer %d: BOS flagged as a sink", l);
        }
        intact_analysis_free(a);
        free(ids);
        intact_model_free(st);
    } while (0);

    TEST_CASE("svg: printable text, escaping, well-formed files") do {
        char out[256];
        svg_printable(hostile, sizeof hostile - 1, out, sizeof out);
        CHECK(strstr(out, "\\x01") && strstr(out, "\\x1B") && strstr(out, "\xEF\xBF\xBD") && !strchr(out, '\x1b'),
              "printable: '%s'", out);
        for (const unsigned char *p = (const unsigned char *)out; *p; p++)
            CHECK(*p >= 0x20 && *p != 0x7f, "control byte 0x%02x left", *p);
        uint32_t cp;
        CHECK(svg_utf8_next((const unsigned char *)"\xc0\x80", 2, &cp) == 1 && cp == 0xFFFD, "overlong");
        CHECK(svg_utf8_next((const unsigned char *)"\xed\xa0\x80", 3, &cp) == 1 && cp == 0xFFFD, "surrogate");
        CHECK(svg_utf8_next((const unsigned char *)"\xf4\x90\x80\x80", 4, &cp) == 1 && cp == 0xFFFD, "> U+10FFFF");
        CHECK(svg_utf8_next((const unsigned char *)"\xe2\x82", 2, &cp) == 1 && cp == 0xFFFD, "truncated");
        CHECK(svg_utf8_next((const unsigned char *)"\xe2\x82\xac", 3, &cp) == 3 && cp == 0x20AC, "euro sign");
        CHECK(svg_printable("abcdef", 6, out, 4) == 3 && strcmp(out, "abc") == 0, "cap: '%s'", out);
        char path[1200], files[4096], cmd[1400];
        const char *labels[3] = {hostile, "\xef\xbf\xbe", "]]>"};
        float v[9] = {1, 0, 0, 0.5f, 0.5f, 0, 0.2f, 0.3f, 0.5f};
        intact_error err = {0, ""};
        snprintf(path, sizeof path, "%s/h.svg", svgdir);
        const char *cells[9] = {hostile, NULL, NULL, "&", "<b>", NULL, NULL, NULL, "\"'"};
        svg_heatmap h = {hostile, hostile, "q<", v, 3, 3, labels, labels, 1, 1e-3f, 1, hostile, cells, hostile};
        CHECK(svg_write_heatmap(path, &h, &err) == 0, "heatmap: %s", err.msg);
        snprintf(files, sizeof files, "'%s'", path);
        snprintf(path, sizeof path, "%s/b.svg", svgdir);
        float ref[3] = {0.3f, NAN, 0.1f};
        svg_bars bc = {hostile, "x&", "y\"", v, 3, 3, labels, labels, ref, hostile, hostile};
        CHECK(svg_write_bars(path, &bc, &err) == 0, "bars: %s", err.msg);
        snprintf(files + strlen(files), sizeof files - strlen(files), " '%s'", path);
        snprintf(path, sizeof path, "%s/l.svg", svgdir);
        svg_lines lc = {hostile, "x<", "y>", v, 3, 3, labels, 1, 1e-3f, 2, hostile, hostile};
        CHECK(svg_write_lines(path, &lc, &err) == 0, "lines: %s", err.msg);
        snprintf(files + strlen(files), sizeof files - strlen(files), " '%s'", path);
        CHECK(xml_ok(files), "not well-formed: %s", files);
        char *s = read_all(path);
        CHECK(!strstr(s, "<script") && strstr(s, "&lt;script&gt;"), "markup not escaped");
        free(s);
        CHECK(svg_write_heatmap("/nonexistent-dir/x.svg", &h, &err) != 0 && err.code == INTACT_E_IO,
              "unwritable path accepted");
        snprintf(cmd, sizeof cmd, "ls '%s' | grep -c tmp >/dev/null", svgdir);
        CHECK(system(cmd) != 0, "a .tmp file was left in %s", svgdir);
    } while (0);

    TEST_CASE("svg: tick values (hand-computed), colour bar ticks, peak labels") do {
        double t[16];
        static const double lin1[] = {0, 200, 400}, lin2[] = {0, 0.2, 0.4, 0.6, 0.8, 1.0}, lin3[] = {-2, 0, 2, 4, 6};
        static const double log1[] = {5, 10, 20, 50, 100, 200, 500}, log2[] = {0.001, 0.01, 0.1, 1}, log3[] = {3, 4};
        struct { double lo, hi; int log; const double *want; int n; } cases[] = {
            {0, 546, 0, lin1, 3}, {0, 1, 0, lin2, 6}, {-3, 7, 0, lin3, 5},
            {2.71, 632, 1, log1, 7},        // < 3 powers of ten inside: 1-2-5
            {1e-3f, 1, 1, log2, 4},         // a float bound just above 0.001 still gets its tick
            {3, 4, 1, log3, 2},             // no 1-2-5 value inside: the two ends
        };
        for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
            int n = svg_ticks(cases[c].lo, cases[c].hi, cases[c].log, t, 16);
            CHECK(n == cases[c].n, "case %zu: %d ticks, want %d", c, n, cases[c].n);
            for (int i = 0; i < n && i < cases[c].n; i++)
                CHECK(fabs(t[i] - cases[c].want[i]) <= 1e-12 * fabs(cases[c].want[i]) + 1e-15, "case %zu tick %d: %g vs %g",
                      c, i, t[i], cases[c].want[i]);
        }
        CHECK(svg_ticks(2, 1, 0, t, 16) == 0 && svg_ticks(0, 1, 1, t, 16) == 0, "bad ranges give ticks");
        CHECK(svg_ticks(0, 1, 0, t, 2) == 2, "max not respected");
        // a log colour bar over [0.001, 1] shows those four values, named by its label
        char path[1200];
        float v[4] = {1, 0, 0.001f, 0.5f};
        intact_error err = {0, ""};
        snprintf(path, sizeof path, "%s/bar.svg", svgdir);
        svg_heatmap h = {.title = "t", .v = v, .rows = 2, .cols = 2, .log_scale = 1, .floor = 1e-3f, .causal = 1,
                         .cbar_label = "attention probability"};
        CHECK(svg_write_heatmap(path, &h, &err) == 0, "heatmap: %s", err.msg);
        char *s = read_all(path);
        CHECK(strstr(s, ">0.001</text>") && strstr(s, ">0.01</text>") && strstr(s, ">0.1</text>") &&
              strstr(s, ">1</text>") && strstr(s, "attention probability (log scale)"), "colour bar ticks missing");
        free(s);
        // a line chart labels its two largest points of series 0 with their index: 7 and 2
        float lv[20] = {0};
        lv[2] = 50; lv[7] = 90; lv[10 + 7] = 99;   // series 1's maximum is not a peak of series 0
        const char *sl[2] = {"a", "b"};
        snprintf(path, sizeof path, "%s/peaks.svg", svgdir);
        svg_lines lc = {.title = "t", .v = lv, .n = 10, .n_series = 2, .series_labels = sl, .n_peaks = 2,
                        .peak_prefix = "ch "};
        CHECK(svg_write_lines(path, &lc, &err) == 0, "lines: %s", err.msg);
        s = read_all(path);
        CHECK(strstr(s, ">ch 7</text>") && strstr(s, ">ch 2</text>") && !strstr(s, ">ch 0</text>"), "peak labels");
        free(s);
        lc.n_peaks = 9;
        CHECK(svg_write_lines(path, &lc, &err) != 0 && err.code == INTACT_E_ARG, "9 peaks accepted");
    } while (0);

    TEST_CASE("cli: report, --json, --svg with hostile text") do {
        result r = run("analyze -m '%s' -z '%s' -f '%s' -c 96", m_en, m_tok, textf);
        CHECK(r.rc == 0 && strstr(r.out, "pivot tokens: 1") && strstr(r.out, "#0 \"[BOS]\""),
              "rc %d out '%.400s' err '%s'", r.rc, r.out, r.err);
        rfree(&r);
        r = run("analyze -m '%s' -z '%s' -f '%s' --json --svg '%s/en' --layers 1,4 --heads 0,3", m_en, m_tok,
                textf, svgdir);
        size_t n = strlen(r.out);
        CHECK(r.rc == 0 && n > 2 && r.out[0] == '{' && r.out[n - 2] == '}' && !memchr(r.out, '\n', n - 1),
              "not one JSON object: rc %d '%.200s' err '%s'", r.rc, r.out, r.err);
        CHECK(strstr(r.out, "\"pivots\":[{\"index\":0,") && strstr(r.out, "\"kv_stats\":[") &&
              strstr(r.out, "\"n_tokens\":128"), "fields: '%.300s'", r.out);
        char cmd[2048];
        snprintf(cmd, sizeof cmd, "python3 -c 'import json,sys; json.load(open(sys.argv[1]))' '%s'", outfile);
        CHECK(system(cmd) == 0, "python3 cannot parse the JSON");
        char files[4096];
        snprintf(files, sizeof files, "'%s'/en/activations.svg '%s'/en/attention_share.svg '%s'/en/attention_L1_H0.svg "
                 "'%s'/en/attention_L4_H3.svg '%s'/en/attention_L4_H0.svg '%s'/en/channels_L1.svg '%s'/en/channels_L4.svg",
                 svgdir, svgdir, svgdir, svgdir, svgdir, svgdir, svgdir);
        CHECK(xml_ok(files), "SVGs missing or not well-formed: %s", files);
        // stderr names every file written, one line each, and nothing else is in the directory
        static const char *names[] = {"activations", "attention_L1_H0", "attention_L1_H3", "attention_L4_H0",
                                      "attention_L4_H3", "attention_share", "channels_L1", "channels_L4"};
        int lines = 0;
        for (const char *q = r.err; (q = strstr(q, "wrote ")); q++) lines++;
        CHECK(lines == 8, "%d 'wrote' lines: '%s'", lines, r.err);
        for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
            char want[1200];
            snprintf(want, sizeof want, "wrote %s/en/%s.svg\n", svgdir, names[i]);
            CHECK(strstr(r.err, want) != NULL, "stderr lacks '%s'", want);
        }
        snprintf(cmd, sizeof cmd, "test $(ls '%s/en' | wc -l) -eq 8", svgdir);
        CHECK(system(cmd) == 0, "files in %s/en other than the 8 named", svgdir);
        rfree(&r);
        snprintf(cmd, sizeof cmd, "python3 -c 'import json,sys; json.load(open(sys.argv[1]))' '%s'", outfile);
        r = run("analyze -m '%s' -z '%s' -f '%s' --json --svg '%s/host/deep'", m_en, m_tok, hostf, svgdir);
        CHECK(r.rc == 0, "hostile text: rc %d err '%s'", r.rc, r.err);
        CHECK(system(cmd) == 0, "hostile text: python3 cannot parse the JSON: %.300s", r.out);
        rfree(&r);
        snprintf(files, sizeof files, "'%s'/host/deep/activations.svg '%s'/host/deep/attention_L0_H0.svg "
                 "'%s'/host/deep/attention_L3_H0.svg '%s'/host/deep/attention_L5_H0.svg '%s'/host/deep/attention_share.svg",
                 svgdir, svgdir, svgdir, svgdir, svgdir);
        CHECK(xml_ok(files), "hostile SVGs not well-formed");
    } while (0);

    TEST_CASE("english-12m plots: [BOS] column, channels 216 and 38, sink (numbers of the models README)") do {
        char m12[1024];
        SKIP_UNLESS(th_shared("models/english-12m.bin", m12, sizeof m12));
        intact_model *big = load("models/english-12m.bin");
        if (!big || !setup_ok) { CHECK(0, "prerequisites missing"); intact_model_free(big); break; }
        int n;
        int32_t *ids = tokens_of(big, eval_text, text_len, 56, &n);
        intact_error err = {0, ""};
        intact_analysis *a = ids && n == 56 ? intact_analyze(big, ids, n, NULL, &err) : NULL;
        CHECK(a != NULL, "analyze (%d tokens): %s", n, err.msg);
        for (int l = 0; a && l < a->n_layers; l++) {   // README: max|h| ~540 on channels 216 and 38
            size_t li = (size_t)l * n;
            CHECK(a->max_abs[li] > 500 && a->max_abs[li] < 700, "layer %d: BOS max|h| %g", l, a->max_abs[li]);
            CHECK((a->channel[li] == 216 && a->channel2[li] == 38) || (a->channel[li] == 38 && a->channel2[li] == 216),
                  "layer %d: channels %d, %d", l, a->channel[li], a->channel2[li]);
        }
        if (a) CHECK(a->max_abs[0] > 50 * a->median_other[0], "layer 0 ratio %g", a->max_abs[0] / a->median_other[0]);
        static const int sink_layers[] = {1, 2, 4, 5, 7};   // README: 25-36% of the attention (512 tokens)
        for (int k = 0; a && k < 5; k++)
            CHECK(a->share[(size_t)sink_layers[k] * n] > 0.2, "layer %d: BOS share %g", sink_layers[k],
                  a->share[(size_t)sink_layers[k] * n]);
        intact_analysis_free(a);
        free(ids);
        intact_model_free(big);
        result r = run("analyze -m '%s' -z '%s' -f '%s' -c 56 --svg '%s/12m' --layers 1", m12, m_tok, textf, svgdir);
        CHECK(r.rc == 0, "rc %d err '%s'", r.rc, r.err);
        rfree(&r);
        char path[1200];
        snprintf(path, sizeof path, "%s/12m/activations.svg", svgdir);
        char *svg = read_all(path);
        int n216 = 0;
        for (const char *q = svg; (q = strstr(q, ">216</text>")); q++) n216++;
        CHECK(n216 >= 8, "channel 216 written in %d cells, want every layer's [BOS] cell", n216);
        CHECK(strstr(svg, ">[BOS]</text>") != NULL, "no [BOS] label");
        CHECK(strstr(svg, ">\xE2\x90\xA3she</text>") != NULL, "the word-initial space of ' she' is not shown");
        free(svg);
        snprintf(path, sizeof path, "%s/12m/channels_L1.svg", svgdir);
        svg = read_all(path);
        CHECK(strstr(svg, ">ch 216</text>") && strstr(svg, ">ch 38</text>"), "channel plot lacks ch 216 / ch 38");
        free(svg);
    } while (0);

    TEST_CASE("cli: --help, bad flags and values, missing files") do {
        result r = run("analyze --help");
        CHECK(r.rc == 0 && strstr(r.out, "usage:") && strstr(r.out, "--svg"), "--help: rc %d", r.rc);
        rfree(&r);
        static const char *bad2[] = {"--bogus", "-c 1", "-c abc", "-c 257", "--layers 6", "--layers 1,x",
                                     "--heads 4", "--layers ''", "-t 0", "-p hi", "--svg"};
        for (size_t i = 0; i < sizeof bad2 / sizeof bad2[0]; i++) {
            r = run("analyze -m '%s' -z '%s' -f '%s' %s", m_en, m_tok, textf, bad2[i]);
            CHECK(r.rc == 2 && r.err[0], "'%s': rc %d, stderr '%s'", bad2[i], r.rc, r.err);
            rfree(&r);
        }
        r = run("analyze -m '%s' -z '%s'", m_en, m_tok);
        CHECK(r.rc == 2 && strstr(r.err, "-p"), "no text: rc %d '%s'", r.rc, r.err);
        rfree(&r);
        r = run("analyze -m /nonexistent-dir/m.bin -z '%s' -p hi", m_tok);
        CHECK(r.rc == 1 && strstr(r.err, "/nonexistent-dir/m.bin"), "missing model: rc %d '%s'", r.rc, r.err);
        rfree(&r);
        r = run("analyze -m '%s' -z '%s' -f /nonexistent-dir/t.txt", m_en, m_tok);
        CHECK(r.rc == 1 && strstr(r.err, "/nonexistent-dir/t.txt"), "missing text: rc %d '%s'", r.rc, r.err);
        rfree(&r);
        r = run("analyze -m '%s' -z '%s' -p '' ", m_en, m_tok);
        CHECK(r.rc == 1 && r.err[0], "empty text (BOS only): rc %d '%s'", r.rc, r.err);
        rfree(&r);
        r = run("analyze -m '%s' -z '%s' -p hi --svg '%s'", m_en, m_tok, tiny);   // a file, not a directory
        CHECK(r.rc == 1 && strstr(r.err, "directory"), "svg into a file: rc %d '%s'", r.rc, r.err);
        rfree(&r);
    } while (0);

    intact_model_free(en);
    free(eval_text);
    char cmd[1200];
    snprintf(cmd, sizeof cmd, "rm -rf '%s' '%s' '%s' '%s' '%s' '%s'", svgdir, tiny, textf, hostf, errfile, outfile);
    if (system(cmd) != 0) printf("  (could not remove temp files)\n");
    return th_finish("test_analyze");
}
