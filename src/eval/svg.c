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

// Files are written to PATH.tmp and renamed over PATH once complete, so a reader never sees half a plot.
typedef struct svg_out { FILE *f; char tmp[4200]; const char *path; } svg_out;

static int open_svg(svg_out *o, const char *path, int w, int h, const char *title, intact_error *err) {
    o->path = path;
    if (snprintf(o->tmp, sizeof o->tmp, "%s.tmp", path) >= (int)sizeof o->tmp)
        return it_fail(err, INTACT_E_ARG, "svg: path too long: '%s'", path);
    if (!(o->f = fopen(o->tmp, "w")))
        return it_fail(err, INTACT_E_IO, "cannot create '%s': %s", o->tmp, strerror(errno));
    FILE *f = o->f;
    fprintf(f, "<?xml version=\"1.0\" encoding=\"UTF-8\" standalone=\"yes\"?>\n"
               "<svg xmlns=\"http://www.w3.org/2000/svg\" version=\"1.1\" width=\"%d\" height=\"%d\" "
               "viewBox=\"0 0 %d %d\" font-family=\"DejaVu Sans, Verdana, sans-serif\">\n<title>", w, h, w, h);
    svg_put_text(f, title ? title : "");
    fprintf(f, "</title>\n<rect width=\"%d\" height=\"%d\" fill=\"white\"/>\n"
               "<text x=\"%d\" y=\"24\" font-size=\"16\" text-anchor=\"middle\">", w, h, w / 2);
    svg_put_text(f, title ? title : "");
    fputs("</text>\n", f);
    return 0;
}

static int close_svg(svg_out *o, intact_error *err) {
    fputs("</svg>\n", o->f);
    int bad = ferror(o->f);
    if (fclose(o->f) != 0 || bad) {
        remove(o->tmp);
        return it_fail(err, INTACT_E_IO, "error writing '%s'", o->tmp);
    }
    if (rename(o->tmp, o->path) != 0) {
        int e = errno;
        remove(o->tmp);
        return it_fail(err, INTACT_E_IO, "cannot rename '%s' to '%s': %s", o->tmp, o->path, strerror(e));
    }
    return 0;
}

// x axis title below the plot, y axis title rotated on the left, the note under the x title.
static void axis_titles(FILE *f, const char *xlabel, const char *ylabel, const char *note, int x0, int y0,
                        int w, int h, int xgap, int ygap) {
    fprintf(f, "<text x=\"%d\" y=\"%d\" font-size=\"13\" text-anchor=\"middle\">", x0 + w / 2, y0 + h + xgap);
    svg_put_text(f, xlabel ? xlabel : "");
    fprintf(f, "</text>\n<text transform=\"translate(%d,%d) rotate(-90)\" font-size=\"13\" "
               "text-anchor=\"middle\">", x0 - ygap, y0 + h / 2);
    svg_put_text(f, ylabel ? ylabel : "");
    fputs("</text>\n", f);
    if (note) {
        fprintf(f, "<text x=\"%d\" y=\"%d\" font-size=\"11\" fill=\"#444444\">", x0 - ygap - 8, y0 + h + xgap + 20);
        svg_put_text(f, note);
        fputs("</text>\n", f);
    }
}

int svg_ticks(double lo, double hi, int log_scale, double *out, int max) {
    int n = 0;
    if (!(lo <= hi) || !isfinite(lo) || !isfinite(hi) || max < 1) return 0;
    if (log_scale) {
        if (!(lo > 0)) return 0;
        // a little slack so that a bound that is itself a power of ten gets its tick
        int k0 = (int)ceil(log10(lo) - 1e-6), k1 = (int)floor(log10(hi) + 1e-6);
        int dense = k1 - k0 + 1 < 3;
        for (int k = k0 - 1; k <= k1 && n < max; k++)
            for (int m = 0; m < (dense ? 3 : 1) && n < max; m++) {
                static const double mult[3] = {1, 2, 5};
                double t = mult[m] * pow(10, k);
                if (t >= lo * (1 - 1e-6) && t <= hi * (1 + 1e-6)) out[n++] = t;   // float bounds
            }
        if (n == 0 && max >= 2) { out[n++] = lo; out[n++] = hi; }   // inside one 1-2-5 step: the ends
        return n;
    }
    if (hi == lo) { out[0] = lo; return 1; }
    double raw = (hi - lo) / 5, p = pow(10, floor(log10(raw)));
    double step = raw <= p ? p : raw <= 2 * p ? 2 * p : raw <= 5 * p ? 5 * p : 10 * p;
    for (double k = ceil(lo / step - 1e-9); k * step <= hi + 1e-9 * step && n < max; k++)
        out[n++] = fabs(k) < 0.5 ? 0 : k * step;   // no "-0"
    return n;
}

static double scaled(const svg_heatmap *h, double v, double lo, double hi) {
    if (h->log_scale) {
        v = log10(v > h->floor ? v : h->floor);
        lo = log10(lo > h->floor ? lo : h->floor);
        hi = log10(hi > h->floor ? hi : h->floor);
    }
    return hi > lo ? (v - lo) / (hi - lo) : 0.5;
}

// The colour scale beside a heatmap: a gradient from lo (bottom) to hi (top) on the cells' scale,
// tick marks with values, and the quantity's name rotated along it.
static void colour_bar(FILE *f, const svg_heatmap *h, double lo, double hi, int bx, int by, int bh) {
    for (int i = 0; i < 64; i++) {
        char col[8];
        colour((63 - i) / 63.0, col);
        fprintf(f, "<rect x=\"%d\" y=\"%.2f\" width=\"16\" height=\"%.2f\" fill=\"%s\"/>\n", bx,
                by + i * bh / 64.0, bh / 64.0 + 0.5, col);
    }
    fprintf(f, "<rect x=\"%d\" y=\"%d\" width=\"16\" height=\"%d\" fill=\"none\" stroke=\"black\"/>\n", bx, by, bh);
    double ticks[16];
    int nt = svg_ticks(h->log_scale && lo < h->floor ? h->floor : lo, hi, h->log_scale, ticks, 16);
    for (int i = 0; i < nt; i++) {
        double y = by + bh * (1 - scaled(h, ticks[i], lo, hi));
        fprintf(f, "<line x1=\"%d\" y1=\"%.1f\" x2=\"%d\" y2=\"%.1f\" stroke=\"black\"/>\n", bx + 16, y, bx + 21, y);
        fprintf(f, "<text x=\"%d\" y=\"%.1f\" font-size=\"11\" dominant-baseline=\"middle\">%g</text>\n", bx + 24,
                y, ticks[i]);
    }
    fprintf(f, "<text transform=\"translate(%d,%d) rotate(-90)\" font-size=\"12\" text-anchor=\"middle\">", bx + 72,
            by + bh / 2);
    svg_put_text(f, h->cbar_label ? h->cbar_label : "");
    if (h->log_scale) fputs(" (log scale)", f);
    fputs("</text>\n", f);
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
    if (h->log_scale && hi < lo) hi = lo;
    int cw = 900 / h->cols, ch = (h->causal ? 900 : 480) / h->rows;
    int cmin = h->cols <= 160 ? 9 : 4;   // up to 160 columns every token label fits
    cw = cw < cmin ? cmin : cw > 28 ? 28 : cw;
    ch = ch < (h->causal ? cmin : 4) ? (h->causal ? cmin : 4) : ch > 28 ? 28 : ch;
    if (h->causal) cw = ch = cw < ch ? cw : ch;   // square cells for a square matrix
    int left = 130, top = 44, pw = cw * h->cols, ph = ch * h->rows;
    int W = left + pw + 120, H = top + ph + 110 + (h->note ? 20 : 0);
    int fs = cw >= 14 && ch >= 14 ? 11 : 9;   // tick label size: as large as the cells allow
    svg_out o;
    if (open_svg(&o, path, W, H, h->title, err) != 0) return -1;
    FILE *f = o.f;
    for (int r = 0; r < h->rows; r++)
        for (int c = 0; c < h->cols; c++) {
            double v = h->v[(size_t)r * h->cols + c];
            if ((h->causal && c > r) || !isfinite(v)) continue;
            char col[8];
            colour(scaled(h, v, lo, hi), col);
            fprintf(f, "<rect x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" fill=\"%s\"/>\n", left + c * cw,
                    top + r * ch, cw, ch, col);
        }
    // Cell texts: dark on the bright end of the scale, white on the dark end; rotated in tall cells.
    for (int r = 0; h->cell_text && r < h->rows; r++)
        for (int c = 0; c < h->cols; c++) {
            const char *t = h->cell_text[(size_t)r * h->cols + c];
            double v = h->v[(size_t)r * h->cols + c];
            if (!t || !*t || (h->causal && c > r)) continue;
            int rot = ch > cw, cfs = (rot ? cw : ch) - 5;
            cfs = cfs < 7 ? 7 : cfs > 11 ? 11 : cfs;
            fprintf(f, "<text transform=\"translate(%.1f,%.1f)%s\" font-size=\"%d\" text-anchor=\"middle\" "
                       "dominant-baseline=\"central\" fill=\"%s\">", left + c * cw + cw / 2.0, top + r * ch + ch / 2.0,
                    rot ? " rotate(-90)" : "", cfs, isfinite(v) && scaled(h, v, lo, hi) > 0.6 ? "black" : "white");
            svg_put_text(f, t);
            fputs("</text>\n", f);
        }
    fprintf(f, "<rect x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" fill=\"none\" stroke=\"black\"/>\n",
            left, top, pw, ph);
    // Tick labels: every k-th so that the text never overlaps.
    int kx = (fs + cw - 1) / cw, ky = (fs + ch - 1) / ch;
    for (int c = 0; c < h->cols; c += kx) {
        fprintf(f, "<text transform=\"translate(%d,%d) rotate(-90)\" font-size=\"%d\" text-anchor=\"end\" "
                   "dominant-baseline=\"central\">", left + c * cw + cw / 2, top + ph + 4, fs);
        put_index_or_label(f, h->xlabels, c);
        fputs("</text>\n", f);
    }
    for (int r = 0; r < h->rows; r += ky) {
        fprintf(f, "<text x=\"%d\" y=\"%d\" font-size=\"%d\" text-anchor=\"end\" dominant-baseline=\"central\">",
                left - 4, top + r * ch + ch / 2, fs);
        put_index_or_label(f, h->ylabels, r);
        fputs("</text>\n", f);
    }
    axis_titles(f, h->xlabel, h->ylabel, h->note, left, top, pw, ph, 96, 110);
    int bh = ph > 500 ? 500 : ph < 100 ? 100 : ph;
    colour_bar(f, h, lo, hi, left + pw + 16, top, bh);
    return close_svg(&o, err);
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
    int W = left + (pw > 300 ? pw : 300) + 240, H = top + ph + 80 + (b->note ? 20 : 0);
    svg_out o;
    if (open_svg(&o, path, W, H, b->title, err) != 0) return -1;
    FILE *f = o.f;
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
                       "stroke-width=\"1.5\" stroke-dasharray=\"3,1\"/>\n", x - 1, y, x + bw, y);
        }
        fprintf(f, "<text x=\"%d\" y=\"%d\" font-size=\"11\" text-anchor=\"middle\">", left + g * gw + gw / 2,
                top + ph + 16);
        put_index_or_label(f, b->group_labels, g);
        fputs("</text>\n", f);
    }
    fprintf(f, "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"black\"/>\n", left, top + ph, left + pw,
            top + ph);
    fprintf(f, "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"black\"/>\n", left, top, left, top + ph);
    axis_titles(f, b->xlabel, b->ylabel, b->note, left, top, pw, ph, 44, 56);
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
    return close_svg(&o, err);
}

int svg_write_lines(const char *path, const svg_lines *p, intact_error *err) {
    static const char *palette[] = {"#d62728", "#7f7f7f", "#1f77b4", "#2ca02c"};
    if (!p || !p->v || p->n < 2 || p->n_series < 1 || (p->log_y && !(p->floor > 0)) || p->n_peaks < 0 ||
        p->n_peaks > 8)
        return it_fail(err, INTACT_E_ARG, "svg lines: bad arguments");
    double lo = INFINITY, hi = -INFINITY;
    for (size_t i = 0; i < (size_t)p->n * p->n_series; i++) {
        double v = p->v[i];
        if (p->log_y && v < p->floor) v = p->floor;
        if (isfinite(v)) { lo = v < lo ? v : lo; hi = v > hi ? v : hi; }
    }
    if (!isfinite(lo)) lo = hi = p->log_y ? p->floor : 0;
    if (p->log_y) {   // whole powers of ten at both ends: ticks at the frame
        lo = pow(10, floor(log10(lo) + 1e-9));
        hi = pow(10, ceil(log10(hi) - 1e-9));
        if (hi <= lo) hi = lo * 10;
    } else {   // from 0 (or below) up to the first tick at or above the largest value
        double t0[32];
        lo = lo > 0 ? 0 : lo;
        int k = svg_ticks(lo, hi > lo ? hi : lo + 1, 0, t0, 32);
        double step = k >= 2 ? t0[1] - t0[0] : 1;
        hi = ceil(hi / step - 1e-9) * step;
        if (hi <= lo) hi = lo + step;
    }
    int left = 80, top = 44, pw = 800, ph = 340;
    int W = left + pw + 280, H = top + ph + 80 + (p->note ? 20 : 0);
    svg_out o;
    if (open_svg(&o, path, W, H, p->title, err) != 0) return -1;
    FILE *f = o.f;
#define LINES_Y(v) (top + ph - ph * (p->log_y ? (log10((v) > p->floor ? (v) : p->floor) - log10(lo)) / \
                    (log10(hi) - log10(lo)) : ((v) - lo) / (hi - lo)))
#define LINES_X(i) (left + pw * (double)(i) / (p->n - 1))
    double t[32];
    int nt = svg_ticks(lo, hi, p->log_y, t, 32);
    for (int i = 0; i < nt; i++) {   // horizontal grid and y tick labels
        double y = LINES_Y(t[i]);
        fprintf(f, "<line x1=\"%d\" y1=\"%.1f\" x2=\"%d\" y2=\"%.1f\" stroke=\"#dddddd\"/>\n", left, y, left + pw, y);
        fprintf(f, "<text x=\"%d\" y=\"%.1f\" font-size=\"11\" text-anchor=\"end\" dominant-baseline=\"central\">"
                   "%g</text>\n", left - 5, y, t[i]);
    }
    nt = svg_ticks(0, p->n - 1, 0, t, 32);
    for (int i = 0; i < nt; i++) {   // x ticks
        double x = LINES_X(t[i]);
        fprintf(f, "<line x1=\"%.1f\" y1=\"%d\" x2=\"%.1f\" y2=\"%d\" stroke=\"black\"/>\n", x, top + ph, x, top + ph + 4);
        fprintf(f, "<text x=\"%.1f\" y=\"%d\" font-size=\"11\" text-anchor=\"middle\">%g</text>\n", x, top + ph + 17,
                t[i]);
    }
    for (int s = 0; s < p->n_series; s++) {   // series 0 first: its peaks stand out anyway, and the
                                              // others would vanish under it where it is small
        fprintf(f, "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"%s\" points=\"", palette[s % 4],
                s == 0 ? "1.5" : "1");
        for (int i = 0; i < p->n; i++) {
            double v = p->v[(size_t)s * p->n + i];
            fprintf(f, "%s%.1f,%.1f", i ? " " : "", LINES_X(i), isfinite(v) ? LINES_Y(v) : (double)top + ph);
        }
        fputs("\"/>\n", f);
    }
    int peaks[8], np = 0;   // the largest points of series 0, labelled with their index
    for (int k = 0; k < p->n_peaks; k++) {
        int best = -1;
        for (int i = 0; i < p->n; i++) {
            int taken = 0;
            for (int j = 0; j < np; j++) taken |= peaks[j] == i;
            if (!taken && isfinite(p->v[i]) && (best < 0 || p->v[i] > p->v[best])) best = i;
        }
        if (best < 0) break;
        peaks[np++] = best;
        double x = LINES_X(best), y = LINES_Y(p->v[best]);
        fprintf(f, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"3\" fill=\"none\" stroke=\"%s\"/>\n", x, y, palette[0]);
        fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" font-size=\"12\" font-weight=\"bold\" fill=\"%s\">", x + 6,
                y + 4 + 14 * (k % 2), palette[0]);   // alternate rows: neighbouring peaks stay apart
        svg_put_text(f, p->peak_prefix ? p->peak_prefix : "");
        fprintf(f, "%d</text>\n", best);
    }
#undef LINES_X
#undef LINES_Y
    fprintf(f, "<rect x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" fill=\"none\" stroke=\"black\"/>\n", left, top, pw, ph);
    axis_titles(f, p->xlabel, p->ylabel, p->note, left, top, pw, ph, 40, 56);
    for (int s = 0; s < p->n_series; s++) {   // legend
        int lx = left + pw + 16, ly = top + 14 + 20 * s;
        fprintf(f, "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"%s\" stroke-width=\"3\"/>\n", lx, ly - 4,
                lx + 18, ly - 4, palette[s % 4]);
        fprintf(f, "<text x=\"%d\" y=\"%d\" font-size=\"12\">", lx + 24, ly);
        if (p->series_labels && p->series_labels[s]) svg_put_text(f, p->series_labels[s]);   // uncut: legend
        else fprintf(f, "%d", s);
        fputs("</text>\n", f);
    }
    return close_svg(&o, err);
}
