// Tiny standalone SVG 1.1 writer for the analysis plots: a heatmap (activations token x layer,
// attention queries x keys) and a grouped bar chart. No dependencies; every piece of text goes
// through svg_put_text, so hostile token text (markup, control bytes, invalid UTF-8) stays inert.
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
} svg_heatmap;

typedef struct svg_bars {
    const char *title, *xlabel, *ylabel;
    const float *v;                  // n_groups x n_series, row-major; drawn as grouped bars
    int n_groups, n_series;
    const char *const *group_labels; // n_groups, or NULL for the index
    const char *const *series_labels;// n_series legend entries, or NULL
    const float *ref;                // n_series reference levels drawn as dashed marks, or NULL
    const char *ref_label;           // legend text of the reference marks
} svg_bars;

int svg_write_heatmap(const char *path, const svg_heatmap *h, intact_error *err);
int svg_write_bars(const char *path, const svg_bars *b, intact_error *err);

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
