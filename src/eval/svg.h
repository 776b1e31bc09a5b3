// Tiny standalone SVG 1.1 writer for the analysis plots: a heatmap (activations token x layer,
// attention queries x keys) with a ticked colour bar, a grouped bar chart and a line chart. No
// dependencies; every piece of text goes through svg_put_text, so hostile token text (markup,
// control bytes, invalid UTF-8) stays inert.
#ifndef IT_EVAL_SVG_H
#define IT_EVAL_SVG_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "intact.h"

typedef struct svg_heatmap {
    const char *title, *xlabel, *ylabel;
    const float *v;                  // rows x cols, row-major; row 0 is drawn at the top
    int rows, cols;
    const char *const *xlabels;      // cols labels, or NULL for the column index
    const char *const *ylabels;      // rows labels, or NULL for the row index
    int log_scale;                   // colour by log10(v); values below floor are clamped to it
    float floor;                     // log_scale: smallest value shown (> 0)
    int causal;                      // leave cells with col > row blank (attention maps)
    const char *cbar_label;          // title of the colour scale (the quantity), or NULL
    const char *const *cell_text;    // rows x cols short texts drawn inside the cells (NULL entries:
                                     // none), or NULL; e.g. the channel of a massive activation
    const char *note;                // one explanatory line under the plot, or NULL
} svg_heatmap;

typedef struct svg_bars {
    const char *title, *xlabel, *ylabel;
    const float *v;                  // n_groups x n_series, row-major; drawn as grouped bars
    int n_groups, n_series;
    const char *const *group_labels; // n_groups, or NULL for the index
    const char *const *series_labels;// n_series legend entries, or NULL
    const float *ref;                // n_series reference levels drawn as dashed marks, or NULL
    const char *ref_label;           // legend text of the reference marks
    const char *note;                // one explanatory line under the plot, or NULL
} svg_bars;

// Line chart of n_series curves over x = 0..n-1 (e.g. |h| per channel), optionally log y; the
// n_peaks largest points of series 0 are marked with their x index ("ch 216").
typedef struct svg_lines {
    const char *title, *xlabel, *ylabel;
    const float *v;                  // n_series x n, row-major
    int n, n_series;
    const char *const *series_labels;// n_series legend entries, or NULL
    int log_y;                       // log10 y axis; values below floor are drawn at floor
    float floor;                     // log_y: smallest value shown (> 0)
    int n_peaks;                     // largest points of series 0 to label (0..8)
    const char *peak_prefix;         // text before a peak's x index, e.g. "ch "
    const char *note;                // one explanatory line under the plot, or NULL
} svg_lines;

int svg_write_heatmap(const char *path, const svg_heatmap *h, intact_error *err);
int svg_write_bars(const char *path, const svg_bars *b, intact_error *err);
int svg_write_lines(const char *path, const svg_lines *p, intact_error *err);

// Tick values for an axis or colour scale over [lo, hi] (lo <= hi), ascending, at most max of them:
// linear: multiples of a 1/2/5 x 10^k step giving 3 to ~7 ticks; log (lo > 0): the powers of ten,
// with 2x and 5x added when fewer than three powers of ten fall inside (lo and hi themselves when
// none of those does). Returns the count.
int svg_ticks(double lo, double hi, int log_scale, double *out, int max);

// Decodes one UTF-8 character of s[0..len) (len >= 1) strictly: overlong forms, surrogates, values
// above U+10FFFF and truncated sequences give *cp = 0xFFFD for one byte. Returns the bytes used.
int svg_utf8_next(const unsigned char *s, size_t len, uint32_t *cp);

// s[0..len) as printable UTF-8 into out (cap >= 1 bytes, always NUL-terminated, cut at a character
// boundary): invalid bytes become U+FFFD, control characters visible escapes (\n, \t, \r, \xNN),
// U+FFFE/U+FFFF (not XML characters) U+FFFD. Returns the length written.
size_t svg_printable(const char *s, size_t len, char *out, size_t cap);

// Writes a NUL-terminated string as XML character data / attribute value: svg_printable's rules
// plus &lt; &gt; &amp; &quot; &apos;.
void svg_put_text(FILE *f, const char *s);

#endif
