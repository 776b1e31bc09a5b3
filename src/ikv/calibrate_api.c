// Public entry for prefix calibration: calibration windows from text, then ikv_calibrate.
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "ikv/calibrate.h"
#include "ikv/prefix.h"
#include "model/model.h"

intact_ikv_calib_params intact_ikv_calib_default_params(void) {
    intact_ikv_calib_params p;
    memset(&p, 0, sizeof p);
    // Tuned on english-12m W3 g128 RTN (docs/intactkv.md, "Calibration settings"): 32 Adam steps at
    // lr 1e-2 reach the plateau (39% of the PPL gap; 3e-2 over-fits, 16 windows add 1 point for
    // 4.6x the time). The paper's 2e-4 x 2,560 steps is out of reach of a CPU on a 7B model.
    p.samples = 8;
    p.len = 128;
    p.epochs = 4;
    p.lr = 1e-2f;
    p.n_threads = 1;
    return p;
}

int intact_prefix_calibrate(const intact_model *qm, const intact_model *fp, intact_prefix *p, const char *text,
                            size_t len, const intact_ikv_calib_params *cp, intact_ikv_calib_report *rep,
                            intact_error *err) {
    if (cp->samples < 1 || cp->len < 1 || cp->epochs < 1)
        return it_fail(err, INTACT_E_ARG, "bad calibration size: %d samples of %d tokens, %d epochs", cp->samples,
                       cp->len, cp->epochs);
    int L = cp->len;
    int room = fp->hp.ctx_len - p->n;
    if (L > room) L = room;
    if (L < 1) return it_fail(err, INTACT_E_ARG, "the prefix fills the model's context");
    int n = intact_tokenize(fp, text, len, 0, NULL, 0, err);
    if (n < 0) return -1;
    if (n < L) return it_fail(err, INTACT_E_ARG, "calibration text has %d tokens, fewer than one window of %d", n, L);
    int32_t *all = malloc((size_t)n * sizeof *all), *win = malloc((size_t)cp->samples * (size_t)L * sizeof *win);
    int rc = all && win ? 0 : it_fail(err, INTACT_E_NOMEM, "out of memory");
    if (rc == 0) intact_tokenize(fp, text, len, 0, all, n, err);
    uint64_t s = cp->seed * 0x9E3779B97F4A7C15ULL + 0x2545F4914F6CDD1DULL;
    for (int i = 0; rc == 0 && i < cp->samples; i++) {
        s ^= s << 13; s ^= s >> 7; s ^= s << 17;
        int start = (int)(s % (uint64_t)(n - L + 1));
        memcpy(win + (size_t)i * L, all + start, (size_t)L * sizeof *win);
    }
    ikv_calib_opts o = ikv_calib_default_opts();
    o.epochs = cp->epochs;
    o.lr = cp->lr;
    o.seed = cp->seed;
    o.n_threads = cp->n_threads;
    o.progress = cp->progress;
    o.progress_user = cp->progress_user;
    ikv_calib_report r;
    if (rc == 0) rc = ikv_calibrate(qm, fp, p, win, cp->samples, L, &o, &r, err);
    if (rc == 0 && rep) {
        rep->loss_before = r.loss_init;
        rep->loss_after = r.loss_final;
        rep->seconds = r.seconds;
    }
    free(all);
    free(win);
    return rc;
}
