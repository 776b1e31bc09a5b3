// `intact analyze`: pivot tokens and attention sinks (IntactKV) of one text — a readable report,
// one JSON object (--json) and SVG plots (--svg DIR). The measurements are intact_analyze's.
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli/args.h"
#include "cli/common.h"
#include "eval/analyze.h"
#include "eval/svg.h"

enum { MAX_LIST = 64, LABEL_CAP = 64 };

typedef struct an_flags {
    const char *model, *tok, *prompt, *file, *svg_dir, *layers, *heads;
    int max_tokens, threads, json, first;
    float pivot_ratio, attn_ratio;
} an_flags;

static const char *SYNOPSIS =
    "-m MODEL [-z TOK] -p TEXT|-f FILE [--svg DIR] [--json] [--layers L1,L2] [--heads H1,H2] [-c N]\n\n"
    "Runs the model once on BOS + the text and reports pivot tokens (IntactKV): tokens whose residual\n"
    "stream max|h| is >= R x the median of the other tokens in a layer (activation criterion), and/or\n"
    "that draw >= A x the attention uniform attention would give them from queries at least 8\n"
    "positions later (attention criterion, 'sink ratio'), with the layers where each criterion fires,\n"
    "the top channels, the attention share of the first tokens and K/V statistics.\n\n"
    "--json prints one object: model, n_tokens, criteria {pivot_ratio, attn_ratio, local}, ids[],\n"
    "tokens[] (text), uniform_share[], pivots[] {index, id, text, layers[], act_layers[],\n"
    "attn_layers[], max_abs[], median_ratio[], channel[], attn_share[], sink_ratio[]} (per layer),\n"
    "layers[] {layer, max_abs[], channel[], channel2[], median_other[], attn_share[],\n"
    "attn_share_first[], sink_ratio[]} (per token; null where not judged), kv_stats[] {layer,\n"
    "k_absmax, k_std, v_absmax, v_std: [pivot tokens, others]}.\n"
    "--svg DIR writes activations.svg, attention_L<l>_H<h>.svg (default layers: first, middle, last;\n"
    "head 0), attention_share.svg and channels_L<l>.svg (|h| per channel of token 0 vs the others),\n"
    "printing 'wrote PATH' on stderr for each";

// "1,3,5" into out (each in [0, limit)); returns the count or -1 (message printed).
static int parse_list(const char *what, const char *s, int limit, int *out) {
    int n = 0;
    const char *p = s;
    while (*p) {
        char *end;
        errno = 0;
        long v = strtol(p, &end, 10);
        if (end == p || errno || v < 0 || v >= limit || (*end && *end != ',') || n == MAX_LIST) {
            fprintf(stderr, "intact analyze: %s expects a comma-separated list of numbers in [0, %d), got '%s'\n",
                    what, limit, s);
            return -1;
        }
        out[n++] = (int)v;
        p = *end ? end + 1 : end;
    }
    if (n == 0) fprintf(stderr, "intact analyze: %s is empty\n", what);
    return n ? n : -1;
}

// mkdir -p: creates every missing component of path.
static int make_dirs(const char *path) {
    char buf[4096];
    if (snprintf(buf, sizeof buf, "%s", path) >= (int)sizeof buf) return -1;
    for (char *p = buf + 1;; p++) {
        if (*p == '/' || *p == '\0') {
            char c = *p;
            *p = '\0';
            if (mkdir(buf, 0777) != 0 && errno != EEXIST) return -1;
            *p = c;
            if (!c) break;
        }
    }
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode) ? 0 : -1;
}

// Printable text of every token (control tokens, which render as nothing, by name).
static char (*token_labels(const intact_model *m, const intact_model_info *in, const int32_t *ids, int n))[LABEL_CAP] {
    char (*lab)[LABEL_CAP] = malloc((size_t)n * sizeof *lab);
    if (!lab) return NULL;
    for (int i = 0; i < n; i++) {
        char raw[256];
        int k = intact_token_to_text(m, i ? ids[i - 1] : -1, ids[i], raw, sizeof raw);
        if (k > (int)sizeof raw) k = sizeof raw;
        if (k > 0) svg_printable(raw, (size_t)k, lab[i], LABEL_CAP);
        else snprintf(lab[i], LABEL_CAP, ids[i] == in->bos_id ? "[BOS]" : ids[i] == in->eos_id ? "[EOS]" : "[%d]",
                      ids[i]);
    }
    return lab;
}

static void json_num(double v) {
    if (isfinite(v)) printf("%.6g", v);
    else printf("null");
}

static void json_floats(const char *key, const float *v, int n, int stride) {
    printf("\"%s\":[", key);
    for (int i = 0; i < n; i++) { if (i) putchar(','); json_num(v[(size_t)i * stride]); }
    putchar(']');
}

static void json_ints(const char *key, const int *v, int n, int stride) {
    printf("\"%s\":[", key);
    for (int i = 0; i < n; i++) printf("%s%d", i ? "," : "", v[(size_t)i * stride]);
    putchar(']');
}

// Layers where token i meets the criteria in mask, as a JSON array or "0,1,4" text.
static void put_layers(const intact_analysis *a, int i, int mask, int json) {
    int any = 0;
    if (json) putchar('[');
    for (int l = 0; l < a->n_layers; l++)
        if (a->why[(size_t)l * a->n_tokens + i] & mask) printf("%s%d", any++ ? "," : "", l);
    if (json) putchar(']');
    else if (!any) printf("none");
}

static void print_json(const intact_analysis *a, const char *model, const int32_t *ids,
                       char (*lab)[LABEL_CAP], const an_flags *f) {
    int n = a->n_tokens, L = a->n_layers, F = f->first < n ? f->first : n;
    printf("{\"model\":");
    cli_json_str(stdout, model);
    printf(",\"n_tokens\":%d,\"criteria\":{\"pivot_ratio\":%g,\"attn_ratio\":%g,\"local\":%d},", n,
           f->pivot_ratio, f->attn_ratio, a->local);
    json_ints("ids", ids, n, 1);
    printf(",\"tokens\":[");
    for (int i = 0; i < n; i++) { if (i) putchar(','); cli_json_str(stdout, lab[i]); }
    printf("],");
    json_floats("uniform_share", a->uniform, n, 1);
    printf(",\"pivots\":[");
    for (int k = 0; k < a->n_pivots; k++) {
        int i = a->pivots[k];
        printf("%s{\"index\":%d,\"id\":%d,\"text\":", k ? "," : "", i, ids[i]);
        cli_json_str(stdout, lab[i]);
        printf(",\"layers\":"); put_layers(a, i, INTACT_PIVOT_ACT | INTACT_PIVOT_ATTN, 1);
        printf(",\"act_layers\":"); put_layers(a, i, INTACT_PIVOT_ACT, 1);
        printf(",\"attn_layers\":"); put_layers(a, i, INTACT_PIVOT_ATTN, 1);
        putchar(',');
        json_floats("max_abs", a->max_abs + i, L, n);
        printf(",\"median_ratio\":[");
        for (int l = 0; l < L; l++) {
            size_t li = (size_t)l * n + i;
            if (l) putchar(',');
            json_num(a->max_abs[li] / a->median_other[li]);
        }
        printf("],");
        json_ints("channel", a->channel + i, L, n);
        putchar(',');
        json_floats("attn_share", a->share + i, L, n);
        putchar(',');
        json_floats("sink_ratio", a->sink_ratio + i, L, n);
        putchar('}');
    }
    printf("],\"layers\":[");
    for (int l = 0; l < L; l++) {
        size_t o = (size_t)l * n;
        printf("%s{\"layer\":%d,", l ? "," : "", l);
        json_floats("max_abs", a->max_abs + o, n, 1); putchar(',');
        json_ints("channel", a->channel + o, n, 1); putchar(',');
        json_ints("channel2", a->channel2 + o, n, 1); putchar(',');
        json_floats("median_other", a->median_other + o, n, 1); putchar(',');
        json_floats("attn_share", a->share + o, n, 1); putchar(',');
        json_floats("attn_share_first", a->share + o, F, 1); putchar(',');
        json_floats("sink_ratio", a->sink_ratio + o, n, 1);
        putchar('}');
    }
    printf("],\"kv_stats\":[");
    for (int l = 0; l < L; l++) {
        const intact_kv_stats *s = &a->kv[l];
        printf("%s{\"layer\":%d,", l ? "," : "", l);
        json_floats("k_absmax", s->k_absmax, 2, 1); putchar(',');
        json_floats("k_std", s->k_std, 2, 1); putchar(',');
        json_floats("v_absmax", s->v_absmax, 2, 1); putchar(',');
        json_floats("v_std", s->v_std, 2, 1);
        putchar('}');
    }
    printf("]}\n");
}

static void print_report(const intact_analysis *a, const intact_model_info *in, const char *model,
                         const int32_t *ids, char (*lab)[LABEL_CAP], const an_flags *f) {
    int n = a->n_tokens, L = a->n_layers, F = f->first < n ? f->first : n;
    printf("%s: %d layers, %d heads, dim %d; %d tokens analyzed\n", model, L, in->n_heads, in->dim, n);
    printf("criteria: activation = max|h| >= %g x median of the other tokens; attention = sink ratio >= %g\n"
           "          (attention from queries >= %d positions later vs uniform attention)\n\n",
           f->pivot_ratio, f->attn_ratio, a->local);
    printf("pivot tokens: %d\n", a->n_pivots);
    for (int k = 0; k < a->n_pivots; k++) {
        int i = a->pivots[k];
        printf("\n  #%d \"%s\" (id %d): activation in layers ", i, lab[i], ids[i]);
        put_layers(a, i, INTACT_PIVOT_ACT, 0);
        printf("; attention in layers ");
        put_layers(a, i, INTACT_PIVOT_ATTN, 0);
        printf("\n    layer   max|h|   median  ratio  channels    share  uniform  sink ratio  criteria\n");
        for (int l = 0; l < L; l++) {
            size_t li = (size_t)l * n + i;
            int w = a->why[li];
            printf("    %5d %8.3g %8.3g %6.2f  %4d,%4d  %6.2f%%  %6.2f%%  %10.2f  %s\n", l, a->max_abs[li],
                   a->median_other[li], a->max_abs[li] / a->median_other[li], a->channel[li], a->channel2[li],
                   100 * a->share[li], 100 * a->uniform[i], a->sink_ratio[li],
                   w == 3 ? "act+attn" : w == 1 ? "act" : w == 2 ? "attn" : "-");
        }
    }
    printf("\nattention share of the first %d tokens (mean over heads and over the queries that see it):\n"
           "  layer", F);
    for (int j = 0; j < F; j++) printf("  %12.12s", lab[j]);
    for (int l = 0; l < L; l++) {
        printf("\n  %5d", l);
        for (int j = 0; j < F; j++) printf("  %11.2f%%", 100 * a->share[(size_t)l * n + j]);
    }
    printf("\nuniform");
    for (int j = 0; j < F; j++) printf("  %11.2f%%", 100 * a->uniform[j]);
    printf("\n\nlargest activation per layer:\n  layer  token         max|h|  x median  channels\n");
    for (int l = 0; l < L; l++) {
        int b = 0;
        for (int i = 1; i < n; i++) if (a->max_abs[(size_t)l * n + i] > a->max_abs[(size_t)l * n + b]) b = i;
        size_t li = (size_t)l * n + b;
        printf("  %5d  #%-3d %-8.8s %7.3g  %7.2f  %4d,%4d\n", l, b, lab[b], a->max_abs[li],
               a->max_abs[li] / a->median_other[li], a->channel[li], a->channel2[li]);
    }
    printf("\nK/V (K after RoPE) of the pivot tokens / the other tokens:\n"
           "  layer         K absmax            K std         V absmax            V std\n");
    for (int l = 0; l < L; l++) {
        const intact_kv_stats *s = &a->kv[l];
        const float *col[4] = {s->k_absmax, s->k_std, s->v_absmax, s->v_std};
        printf("  %5d", l);
        for (int c = 0; c < 4; c++) {   // no pivot tokens: "-" for their column
            if (isnan(col[c][0])) printf("  %7s / %-7.3g", "-", col[c][1]);
            else printf("  %7.3g / %-7.3g", col[c][0], col[c][1]);
        }
        putchar('\n');
    }
}

// A token label for the plots: spaces shown as U+2423 (a word-initial piece " out" differs from
// "out", and a lone space would be an invisible label).
static void plot_label(const char *in, char *out, size_t cap) {
    size_t n = 0;
    for (; *in && n + 4 < cap; in++) {
        if (*in == ' ') { memcpy(out + n, "\xE2\x90\xA3", 3); n += 3; }
        else out[n++] = *in;
    }
    out[n] = '\0';
}

// Median of v[0..n) (n >= 1); v is reordered.
static float median_of(float *v, int n) {
    for (int i = 1; i < n; i++)   // insertion sort: n is one model width
        for (int j = i; j > 0 && v[j - 1] > v[j]; j--) { float t = v[j]; v[j] = v[j - 1]; v[j - 1] = t; }
    return n % 2 ? v[n / 2] : 0.5f * (v[n / 2 - 1] + v[n / 2]);
}

// One SVG written: say where (stderr, so that --json stays one object on stdout).
static int wrote(int rc, const char *path, const intact_error *err) {
    if (rc == 0) fprintf(stderr, "wrote %s\n", path);
    else fprintf(stderr, "intact analyze: %s\n", err->msg);
    return rc;
}

static int write_svgs(const intact_model *m, const intact_analysis *a, const char *model,
                      char (*lab)[LABEL_CAP], const an_flags *f, const int *layers, int nl, const int *heads,
                      int nh) {
    int n = a->n_tokens, L = a->n_layers, H = a->n_heads, D = a->dim, F = f->first < n ? f->first : n, rc = 0;
    const char **tl = malloc((size_t)n * sizeof *tl);
    char (*pl)[LABEL_CAP * 3] = malloc((size_t)n * sizeof *pl);
    const char **ll = malloc((size_t)L * sizeof *ll);
    char (*lnames)[24] = malloc((size_t)L * sizeof *lnames);
    const char **cells = calloc((size_t)L * n, sizeof *cells);
    char (*chan)[16] = malloc((size_t)L * n * sizeof *chan);
    float *bars = malloc((size_t)L * F * sizeof *bars);
    float *prof = malloc((size_t)nl * 3 * D * sizeof *prof);   // token 0, max and median of the others
    char path[4200], title[512], note[512];
    intact_error err = {0, ""};
    if (!tl || !pl || !ll || !lnames || !cells || !chan || !bars || !prof) {
        fprintf(stderr, "intact analyze: out of memory\n");
        rc = -1;
        goto out;
    }
    for (int i = 0; i < n; i++) { plot_label(lab[i], pl[i], sizeof pl[i]); tl[i] = pl[i]; }
    for (int l = 0; l < L; l++) { snprintf(lnames[l], sizeof lnames[l], "layer %d", l); ll[l] = lnames[l]; }

    // Activations: log colour (the pivot is ~100x the rest: on a linear scale everything else would be
    // one colour), and the channel of the max written into the cells that meet the criterion.
    for (size_t li = 0; li < (size_t)L * n; li++)
        if (a->why[li] & INTACT_PIVOT_ACT) {
            snprintf(chan[li], sizeof chan[li], "%d", a->channel[li]);
            cells[li] = chan[li];
        }
    snprintf(path, sizeof path, "%s/activations.svg", f->svg_dir);
    snprintf(title, sizeof title, "%s: largest |h| of each token's residual stream, per layer", model);
    snprintf(note, sizeof note, "Numbers in cells: the channel holding the max, where max|h| >= %g x the median "
             "of the other tokens (massive activation).", f->pivot_ratio);
    svg_heatmap hm = {.title = title, .xlabel = "token (\xE2\x90\xA3 = space)", .ylabel = "layer (block output)",
                      .v = a->max_abs, .rows = L, .cols = n, .xlabels = tl, .ylabels = ll, .log_scale = 1,
                      .floor = 1e-6f, .cbar_label = "max over channels of |h|", .cell_text = cells, .note = note};
    rc = wrote(svg_write_heatmap(path, &hm, &err), path, &err);
    for (int x = 0; x < nl && rc == 0; x++)
        for (int y = 0; y < nh && rc == 0; y++) {
            int l = layers[x], h = heads[y];
            snprintf(path, sizeof path, "%s/attention_L%d_H%d.svg", f->svg_dir, l, h);
            snprintf(title, sizeof title, "%s, layer %d, head %d: attention probabilities", model, l, h);
            snprintf(note, sizeof note, "Row = query, column = key it attends to; above the diagonal is masked. "
                     "This head gives [BOS] %.0f%% of its attention (uniform: %.0f%%).",
                     100 * a->head_share[((size_t)l * H + h) * n], 100 * a->uniform[0]);
            svg_heatmap am = {.title = title, .xlabel = "key (\xE2\x90\xA3 = space)", .ylabel = "query",
                              .v = a->maps + ((size_t)l * H + h) * n * n, .rows = n, .cols = n, .xlabels = tl,
                              .ylabels = tl, .log_scale = 1, .floor = 1e-3f, .causal = 1,
                              .cbar_label = "attention probability", .note = note};
            rc = wrote(svg_write_heatmap(path, &am, &err), path, &err);
        }
    if (rc == 0) {
        for (int l = 0; l < L; l++)
            for (int j = 0; j < F; j++) bars[(size_t)l * F + j] = 100 * a->share[(size_t)l * n + j];
        snprintf(path, sizeof path, "%s/attention_share.svg", f->svg_dir);
        snprintf(title, sizeof title, "%s: attention received by the first %d tokens (%d-token text)", model, F, n);
        float ref[64];
        for (int j = 0; j < F; j++) ref[j] = 100 * a->uniform[j];
        svg_bars bc = {.title = title, .xlabel = "layer", .ylabel = "attention share (%, mean over heads and queries)",
                       .v = bars, .n_groups = L, .n_series = F, .group_labels = ll, .series_labels = tl,
                       .ref = ref, .ref_label = "if attention were uniform",
                       .note = "Share = mean over the queries that can see the key of the probability they give it."};
        rc = wrote(svg_write_bars(path, &bc, &err), path, &err);
    }
    // Channel profiles of token 0 ([BOS]): which channels are massive, against every other token.
    if (rc == 0 && (rc = analyze_channel_profile(m, a->tokens, n, 0, layers, nl, f->threads, prof, &err)) != 0)
        fprintf(stderr, "intact analyze: %s\n", err.msg);
    for (int x = 0; x < nl && rc == 0; x++) {
        char s0[LABEL_CAP * 3 + 16], s1[64];
        snprintf(s0, sizeof s0, "token 0 (%s)", pl[0]);
        snprintf(s1, sizeof s1, "max of the other %d tokens", n - 1);
        const char *sl[2] = {s0, s1};
        snprintf(path, sizeof path, "%s/channels_L%d.svg", f->svg_dir, layers[x]);
        snprintf(title, sizeof title, "%s, layer %d: |h| per channel of the residual stream", model, layers[x]);
        const float *others = prof + ((size_t)x * 3 + 1) * D;
        float omax = 0;
        for (int c = 0; c < D; c++) omax = others[c] > omax ? others[c] : omax;
        snprintf(note, sizeof note, "No other token exceeds %.3g on any channel; their median |h| is about %.2g.",
                 omax, median_of(prof + ((size_t)x * 3 + 2) * D, D));
        // Linear y: the point is the few channels hundreds of times above everything else.
        svg_lines lc = {.title = title, .xlabel = "channel", .ylabel = "|h| after the layer",
                        .v = prof + (size_t)x * 3 * D, .n = D, .n_series = 2, .series_labels = sl,
                        .n_peaks = 3, .peak_prefix = "ch ", .note = note};
        rc = wrote(svg_write_lines(path, &lc, &err), path, &err);
    }
out:
    free(tl); free(pl); free(ll); free(lnames); free(cells); free(chan); free(bars); free(prof);
    return rc;
}

// Tokenizes BOS + text, keeping at most max tokens; NULL on error (printed).
static int32_t *tokenize(const intact_model *m, const intact_model_info *in, const char *text, size_t len,
                         int max, int *n) {
    intact_error err = {0, ""};
    int bos = in->bos_id >= 0;
    int k = intact_tokenize(m, text, len, bos, NULL, 0, &err);
    int32_t *ids = k >= 0 ? malloc(((size_t)k + 1) * sizeof *ids) : NULL;
    if (!ids || intact_tokenize(m, text, len, bos, ids, k, &err) != k) {
        fprintf(stderr, "intact analyze: %s\n", k < 0 ? err.msg : "out of memory");
        free(ids);
        return NULL;
    }
    *n = k < max ? k : max;
    return ids;
}

int cmd_analyze(int argc, char **argv) {
    an_flags f = {0};
    f.threads = cli_default_threads();
    f.first = 4;
    f.pivot_ratio = 4;
    f.attn_ratio = 3;
    cli_opt opts[] = {
        {"--model", "-m", ARG_STR | ARG_REQUIRED, &f.model, "PATH", "model file (GGUF or llama2.c .bin)", 0, 0},
        {"--tokenizer", "-z", ARG_STR, &f.tok, "PATH", "llama2.c tokenizer.bin (GGUF carries its own)", 0, 0},
        {"--prompt", "-p", ARG_STR, &f.prompt, "TEXT", "text to analyze (BOS is prepended)", 0, 0},
        {"--file", "-f", ARG_STR, &f.file, "PATH", "read the text from a file", 0, 0},
        {"--ctx-size", "-c", ARG_INT, &f.max_tokens, "N", "analyze at most N tokens incl. BOS (default 128)", 2, 1 << 20},
        {"--svg", NULL, ARG_STR, &f.svg_dir, "DIR", "write SVG plots into DIR (created if missing)", 0, 0},
        {"--layers", NULL, ARG_STR, &f.layers, "L1,L2", "layers of the attention maps (default first, middle, last)", 0, 0},
        {"--heads", NULL, ARG_STR, &f.heads, "H1,H2", "heads of the attention maps (default 0)", 0, 0},
        {"--first", NULL, ARG_INT, &f.first, "N", "first tokens whose attention share is shown (default 4)", 1, 64},
        {"--pivot-ratio", NULL, ARG_FLOAT, &f.pivot_ratio, "R", "activation criterion (default 4)", 1e-3, 1e9},
        {"--attn-ratio", NULL, ARG_FLOAT, &f.attn_ratio, "A", "attention criterion (default 3)", 1e-3, 1e9},
        {"--threads", "-t", ARG_INT, &f.threads, "N", "threads (default: online CPUs, at most 16)", 1, 256},
        {"--json", NULL, ARG_FLAG, &f.json, NULL, "print the result as one JSON object", 0, 0},
    };
    int rc = cli_parse("analyze", SYNOPSIS, opts, (int)(sizeof opts / sizeof opts[0]), argc, argv);
    if (rc) return rc > 0 ? 0 : 2;
    if (!!f.prompt == !!f.file) {
        fprintf(stderr, "intact analyze: give the text with either -p TEXT or -f FILE\n");
        return 2;
    }
    size_t len = f.prompt ? strlen(f.prompt) : 0;
    char *fbuf = NULL;
    if (f.file && !(fbuf = cli_read_file("analyze", f.file, &len))) return 1;
    intact_model *m = cli_load_model("analyze", f.model, f.tok);
    if (!m) { free(fbuf); return 1; }
    intact_model_info in;
    intact_model_get_info(m, &in);
    const char *model = strrchr(f.model, '/') ? strrchr(f.model, '/') + 1 : f.model;
    int layers[MAX_LIST], heads[MAX_LIST], nl = 0, nh = 1, n = 0;
    int32_t *ids = NULL;
    char (*lab)[LABEL_CAP] = NULL;
    intact_analysis *a = NULL;
    rc = 2;
    if (f.max_tokens > in.ctx_len) {
        fprintf(stderr, "intact analyze: -c %d exceeds the model context %d\n", f.max_tokens, in.ctx_len);
        goto out;
    }
    if (!f.max_tokens) f.max_tokens = in.ctx_len < 128 ? in.ctx_len : 128;
    heads[0] = 0;
    if (f.layers && (nl = parse_list("--layers", f.layers, in.n_layers, layers)) < 0) goto out;
    if (f.heads && (nh = parse_list("--heads", f.heads, in.n_heads, heads)) < 0) goto out;
    if (!f.layers) {   // first, middle, last, without repeats for 1- and 2-layer models
        int cand[3] = {0, in.n_layers / 2, in.n_layers - 1};
        for (int k = 0; k < 3; k++)
            if (nl == 0 || layers[nl - 1] != cand[k]) layers[nl++] = cand[k];
    }
    rc = 1;
    if (!(ids = tokenize(m, &in, fbuf ? fbuf : f.prompt, len, f.max_tokens, &n))) goto out;
    if (n < 2) {
        fprintf(stderr, "intact analyze: the text gives %d token(s); at least 2 are needed\n", n);
        goto out;
    }
    if (!(lab = token_labels(m, &in, ids, n))) { fprintf(stderr, "intact analyze: out of memory\n"); goto out; }
    intact_analyze_params p = intact_analyze_default_params();
    p.n_threads = f.threads;
    p.pivot_ratio = f.pivot_ratio;
    p.attn_ratio = f.attn_ratio;
    p.keep_maps = f.svg_dir != NULL;
    intact_error err = {0, ""};
    if (!(a = intact_analyze(m, ids, n, &p, &err))) { fprintf(stderr, "intact analyze: %s\n", err.msg); goto out; }
    if (f.svg_dir && make_dirs(f.svg_dir) != 0) {
        fprintf(stderr, "intact analyze: cannot create directory '%s'\n", f.svg_dir);
        goto out;
    }
    if (f.svg_dir && write_svgs(m, a, model, lab, &f, layers, nl, heads, nh) != 0) goto out;
    if (f.json) print_json(a, model, ids, lab, &f);
    else print_report(a, &in, model, ids, lab, &f);
    rc = 0;
out:
    intact_analysis_free(a);
    free(lab);
    free(ids);
    free(fbuf);
    intact_model_free(m);
    return rc;
}
