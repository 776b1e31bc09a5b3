// SVG plots for `intact analyze`. Pixel layout is fixed arithmetic (no text measurement): labels
// are cut to a few characters and rotated where they would collide.
#include "eval/svg.h"

#include <errno.h>
#include <math.h>
#include <string.h>

#include "core/error.h"

enum { LABEL_CHARS = 12 };   // axis labels longer than this are cut (token text can be long)

int svg_utf8_next(const unsigned char *s, size_t len, uint32_t *cp) {
    unsigned c = s[0];
    int need;
    uint32_t v, lo = 0x80, hi = 0xBF;   // allowed range of the second byte
    if (c < 0x80) { *cp = c; return 1; }
    if (c >= 0xC2 && c <= 0xDF) { need = 1; v = c & 0x1F; }
    else if (c >= 0xE0 && c <= 0xEF) {
        need = 2; v = c & 0x0F;
        if (c == 0xE0) lo = 0xA0;        // overlong
        if (c == 0xED) hi = 0x9F;        // surrogates
    } else if (c >= 0xF0 && c <= 0xF4) {
        need = 3; v = c & 0x07;
        if (c == 0xF0) lo = 0x90;        // overlong
        if (c == 0xF4) hi = 0x8F;        // above U+10FFFF
    } else { *cp = 0xFFFD; return 1; }
    if (len < (size_t)need + 1 || s[1] < lo || s[1] > hi) { *cp = 0xFFFD; return 1; }
    for (int i = 1; i <= need; i++) {
        if ((s[i] & 0xC0) != 0x80) { *cp = 0xFFFD; return 1; }
        v = (v << 6) | (s[i] & 0x3F);
    }
    *cp = v;
    return need + 1;
}

// One character of s as printable text into buf (at least 8 bytes); returns its length and the
// input bytes consumed in *used. xml: also the five XML entities.
static int printable_char(const unsigned char *s, size_t len, int xml, char *buf, int *used) {
    uint32_t cp;
    *used = svg_utf8_next(s, len, &cp);
    if (cp == 0xFFFE || cp == 0xFFFF) cp = 0xFFFD;
    if (cp == '\n') return snprintf(buf, 8, "\\n");
    if (cp == '\t') return snprintf(buf, 8, "\\t");
    if (cp == '\r') return snprintf(buf, 8, "\\r");
    if (cp < 0x20 || cp == 0x7F) return snprintf(buf, 8, "\\x%02X", (unsigned)cp);
    if (xml) {
        const char *ent = cp == '<' ? "&lt;" : cp == '>' ? "&gt;" : cp == '&' ? "&amp;"
                        : cp == '"' ? "&quot;" : cp == '\'' ? "&apos;" : NULL;
        if (ent) return snprintf(buf, 8, "%s", ent);
    }
    if (cp == 0xFFFD) return snprintf(buf, 8, "\xEF\xBF\xBD");   // also for invalid bytes
    memcpy(buf, s, (size_t)*used);   // a valid character: its own bytes
    return *used;
}

size_t svg_printable(const char *s, size_t len, char *out, size_t cap) {
    size_t n = 0, i = 0;
    while (i < len) {
        char buf[8];
        int used, k = printable_char((const unsigned char *)s + i, len - i, 0, buf, &used);
        if (n + (size_t)k + 1 > cap) break;
        memcpy(out + n, buf, (size_t)k);
        n += (size_t)k;
        i += (size_t)used;
    }
    out[n] = '\0';
    return n;
}

void svg_put_text(FILE *f, const char *s) {
    size_t len = strlen(s), i = 0;
    while (i < len) {
        char buf[8];
        int used, k = printable_char((const unsigned char *)s + i, len - i, 1, buf, &used);
        fwrite(buf, 1, (size_t)k, f);
        i += (size_t)used;
    }
}

// A label cut to LABEL_CHARS characters (with "…" when cut), escaped.
static void put_label(FILE *f, const char *s) {
    char buf[LABEL_CHARS * 8 + 8];
    size_t len = strlen(s), i = 0, n = 0;
    int chars = 0;
    while (i < len && chars < LABEL_CHARS) {   // cut on characters, never inside one
        uint32_t cp;
        i += (size_t)svg_utf8_next((const unsigned char *)s + i, len - i, &cp);
        chars++;
    }
    n = i;
    memcpy(buf, s, n);
    buf[n] = '\0';
    svg_put_text(f, buf);
    if (n < len) fputs("\xE2\x80\xA6", f);
}

static void put_index_or_label(FILE *f, const char *const *labels, int i) {
    if (labels && labels[i]) put_label(f, labels[i]);
    else fprintf(f, "%d", i);
}

// Viridis, five stops, linear in between: readable in grey and for colour-blind readers.
static void colour(double t, char out[8]) {
    static const unsigned char stops[5][3] = {
        {68, 1, 84}, {59, 82, 139}, {33, 145, 140}, {94, 201, 98}, {253, 231, 37}};
    if (!(t > 0)) t = 0;
    if (t > 1) t = 1;
    double x = t * 4;
    int i = x >= 4 ? 3 : (int)x;
    double w = x - i;
    int rgb[3];
    for (int c = 0; c < 3; c++) rgb[c] = (int)lround(stops[i][c] * (1 - w) + stops[i + 1][c] * w);
    snprintf(out, 8, "#%02x%02x%02x", rgb[0], rgb[1], rgb[2]);
}

static FILE *open_svg(const char *path, int w, int h, const char *title, intact_error *err) {
    FILE *f = fopen(path, "w");
    if (!f) {
        it_fail(err, INTACT_E_IO, "cannot create '%s': %s", path, strerror(errno));
        return NULL;
    }
    fprintf(f, "<?xml version=\"1.0\" encoding=\"UTF-8\" standalone=\"yes\"?>\n"
               "<svg xmlns=\"http://www.w3.org/2000/svg\" version=\"1.1\" width=\"%d\" height=\"%d\" "
               "viewBox=\"0 0 %d %d\" font-family=\"sans-serif\">\n<title>", w, h, w, h);
    svg_put_text(f, title ? title : "");
    fprintf(f, "</title>\n<rect width=\"%d\" height=\"%d\" fill=\"white\"/>\n"
               "<text x=\"%d\" y=\"24\" font-size=\"16\" text-anchor=\"middle\">", w, h, w / 2);
    svg_put_text(f, title ? title : "");
    fputs("</text>\n", f);
    return f;
}

static int close_svg(FILE *f, const char *path, intact_error *err) {
    fputs("</svg>\n", f);
    int bad = ferror(f);
    if (fclose(f) != 0 || bad) return it_fail(err, INTACT_E_IO, "error writing '%s'", path);
    return 0;
}

// x axis title below the plot, y axis title rotated on the left.
static void axis_titles(FILE *f, const char *xlabel, const char *ylabel, int x0, int y0, int w, int h,
                        int xgap, int ygap) {
    fprintf(f, "<text x=\"%d\" y=\"%d\" font-size=\"13\" text-anchor=\"middle\">", x0 + w / 2, y0 + h + xgap);
    svg_put_text(f, xlabel ? xlabel : "");
    fprintf(f, "</text>\n<text transform=\"translate(%d,%d) rotate(-90)\" font-size=\"13\" "
               "text-anchor=\"middle\">", x0 - ygap, y0 + h / 2);
    svg_put_text(f, ylabel ? ylabel : "");
    fputs("</text>\n", f);
}

static double scaled(const svg_heatmap *h, double v, double lo, double hi) {
    if (h->log_scale) {
        v = log10(v > h->floor ? v : h->floor);
        lo = log10(lo > h->floor ? lo : h->floor);
        hi = log10(hi > h->floor ? hi : h->floor);
    }
    return hi > lo ? (v - lo) / (hi - lo) : 0.5;
}

int svg_write_heatmap(const char *path, const svg_heatmap *h, intact_error *err) {
    if (!h || !h->v || h->rows < 1 || h->cols < 1 || (h->log_scale && !(h->floor > 0)))
        return it_fail(err, INTACT_E_ARG, "svg heatmap: bad arguments");
    double lo = INFINITY, hi = -INFINITY;
    for (int r = 0; r < h->rows; r++)
        for (int c = 0; c < h->cols && !(h->causal && c > r); c++) {
            double v = h->v[(size_t)r * h->cols + c];
            if (isfinite(v)) { lo = v < lo ? v : lo; hi = v > hi ? v : hi; }
        }
    if (!isfinite(lo)) lo = hi = 0;
    if (h->log_scale && lo < h->floor) lo = h->floor;
    int cw = 900 / h->cols, ch = (h->causal ? 900 : 480) / h->rows;
    int cmin = h->cols <= 160 ? 9 : 4;   // up to 160 columns every token label fits
    cw = cw < cmin ? cmin : cw > 28 ? 28 : cw;
    ch = ch < (h->causal ? cmin : 4) ? (h->causal ? cmin : 4) : ch > 28 ? 28 : ch;
    if (h->causal) cw = ch = cw < ch ? cw : ch;   // square cells for a square matrix
    int left = 120, top = 44, pw = cw * h->cols, ph = ch * h->rows;
    int W = left + pw + 110, H = top + ph + 100;
    FILE *f = open_svg(path, W, H, h->title, err);
    if (!f) return -1;
    for (int r = 0; r < h->rows; r++)
        for (int c = 0; c < h->cols; c++) {
            double v = h->v[(size_t)r * h->cols + c];
            if ((h->causal && c > r) || !isfinite(v)) continue;
            char col[8];
            colour(scaled(h, v, lo, hi), col);
            fprintf(f, "<rect x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" fill=\"%s\"/>\n", left + c * cw,
                    top + r * ch, cw, ch, col);
        }
    fprintf(f, "<rect x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" fill=\"none\" stroke=\"black\"/>\n",
            left, top, pw, ph);
    // Tick labels: every k-th so that 9-pixel text never overlaps.
    int kx = (9 + cw - 1) / cw, ky = (9 + ch - 1) / ch, fs = 9;
    for (int c = 0; c < h->cols; c += kx) {
        fprintf(f, "<text transform=\"translate(%d,%d) rotate(-90)\" font-size=\"%d\" text-anchor=\"end\" "
                   "dominant-baseline=\"middle\">", left + c * cw + cw / 2, top + ph + 4, fs);
        put_index_or_label(f, h->xlabels, c);
        fputs("</text>\n", f);
    }
    for (int r = 0; r < h->rows; r += ky) {
        fprintf(f, "<text x=\"%d\" y=\"%d\" font-size=\"%d\" text-anchor=\"end\" dominant-baseline=\"middle\">",
                left - 4, top + r * ch + ch / 2, fs);
        put_index_or_label(f, h->ylabels, r);
        fputs("</text>\n", f);
    }
    axis_titles(f, h->xlabel, h->ylabel, left, top, pw, ph, 86, 100);
    // Colour bar: bottom = lo, top = hi, on the same scale as the cells.
    int bx = left + pw + 20, bh = ph < 200 ? ph : 200;
    for (int i = 0; i < 32; i++) {
        char col[8];
        colour((31 - i) / 31.0, col);
        fprintf(f, "<rect x=\"%d\" y=\"%.2f\" width=\"14\" height=\"%.2f\" fill=\"%s\"/>\n", bx,
                top + i * bh / 32.0, bh / 32.0 + 0.5, col);
    }
    fprintf(f, "<text x=\"%d\" y=\"%d\" font-size=\"10\">%.3g</text>\n", bx + 18, top + 8, hi);
    fprintf(f, "<text x=\"%d\" y=\"%d\" font-size=\"10\">%.3g</text>\n", bx + 18, top + bh, lo);
    fprintf(f, "<text x=\"%d\" y=\"%d\" font-size=\"10\">%s</text>\n", bx, top + bh + 16,
            h->log_scale ? "log scale" : "linear");
    return close_svg(f, path, err);
}

// A "nice" axis maximum (1, 2 or 5 times a power of ten) at or above v.
static double nice_max(double v) {
    if (!(v > 0)) return 1;
    double p = pow(10, floor(log10(v)));
    return v <= p ? p : v <= 2 * p ? 2 * p : v <= 5 * p ? 5 * p : 10 * p;
}

int svg_write_bars(const char *path, const svg_bars *b, intact_error *err) {
    static const char *palette[] = {"#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f",
                                    "#edc948", "#b07aa1", "#ff9da7", "#9c755f", "#bab0ac"};
    if (!b || !b->v || b->n_groups < 1 || b->n_series < 1)
        return it_fail(err, INTACT_E_ARG, "svg bars: bad arguments");
    double top_v = 0;
    for (int i = 0; i < b->n_groups * b->n_series; i++)
        if (isfinite(b->v[i]) && b->v[i] > top_v) top_v = b->v[i];
    for (int s = 0; b->ref && s < b->n_series; s++)
        if (isfinite(b->ref[s]) && b->ref[s] > top_v) top_v = b->ref[s];
    top_v = nice_max(top_v);
    int bw = 12, gap = 16, gw = b->n_series * bw + gap;
    int left = 80, top = 44, pw = b->n_groups * gw, ph = 320;
    int W = left + (pw > 300 ? pw : 300) + 180, H = top + ph + 80;
    FILE *f = open_svg(path, W, H, b->title, err);
    if (!f) return -1;
    for (int t = 0; t <= 5; t++) {   // horizontal grid and y tick labels
        double y = top + ph - ph * t / 5.0;
        fprintf(f, "<line x1=\"%d\" y1=\"%.1f\" x2=\"%d\" y2=\"%.1f\" stroke=\"#dddddd\"/>\n", left, y,
                left + pw, y);
        fprintf(f, "<text x=\"%d\" y=\"%.1f\" font-size=\"10\" text-anchor=\"end\" dominant-baseline=\"middle\">"
                   "%.3g</text>\n", left - 4, y, top_v * t / 5.0);
    }
    for (int g = 0; g < b->n_groups; g++) {
        for (int s = 0; s < b->n_series; s++) {
            double v = b->v[(size_t)g * b->n_series + s];
            if (!isfinite(v) || v < 0) v = 0;
            double hgt = ph * v / top_v;
            fprintf(f, "<rect x=\"%d\" y=\"%.2f\" width=\"%d\" height=\"%.2f\" fill=\"%s\"/>\n",
                    left + g * gw + gap / 2 + s * bw, top + ph - hgt, bw - 1, hgt, palette[s % 10]);
        }
        for (int s = 0; b->ref && s < b->n_series; s++) {   // reference level of each bar, dashed
            double r = b->ref[s];
            if (!isfinite(r) || r < 0 || r > top_v) continue;
            double y = top + ph - ph * r / top_v;
            int x = left + g * gw + gap / 2 + s * bw;
            fprintf(f, "<line x1=\"%d\" y1=\"%.2f\" x2=\"%d\" y2=\"%.2f\" stroke=\"black\" "
                       "stroke-dasharray=\"2,1\"/>\n", x - 1, y, x + bw, y);
        }
        fprintf(f, "<text x=\"%d\" y=\"%d\" font-size=\"11\" text-anchor=\"middle\">", left + g * gw + gw / 2,
                top + ph + 16);
        put_index_or_label(f, b->group_labels, g);
        fputs("</text>\n", f);
    }
    fprintf(f, "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"black\"/>\n", left, top + ph, left + pw,
            top + ph);
    fprintf(f, "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"black\"/>\n", left, top, left, top + ph);
    axis_titles(f, b->xlabel, b->ylabel, left, top, pw, ph, 44, 56);
    if (b->ref && b->ref_label) {
        fprintf(f, "<text x=\"%d\" y=\"%d\" font-size=\"11\">- - ", left + (pw > 300 ? pw : 300) + 20,
                top + 10 + 18 * b->n_series);
        svg_put_text(f, b->ref_label);
        fputs("</text>\n", f);
    }
    for (int s = 0; s < b->n_series; s++) {   // legend
        int lx = left + (pw > 300 ? pw : 300) + 20, ly = top + 10 + 18 * s;
        fprintf(f, "<rect x=\"%d\" y=\"%d\" width=\"12\" height=\"12\" fill=\"%s\"/>\n", lx, ly - 10,
                palette[s % 10]);
        fprintf(f, "<text x=\"%d\" y=\"%d\" font-size=\"11\">", lx + 18, ly);
        put_index_or_label(f, b->series_labels, s);
        fputs("</text>\n", f);
    }
    return close_svg(f, path, err);
}
