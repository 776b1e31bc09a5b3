// Rotation of a full-precision model (see rotate.h). Every product runs in double on an fp32 copy
// of the stored weights, so the rotated weights carry one fp32 rounding, like the originals.
#include "quant/rotate.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/pool.h"
#include "kernels/hadamard.h"

// Columns transformed together by rot_cols: 64 doubles per row of the scratch keep the inner
// butterfly loop long and the gathered rows within a few cache lines.
enum { ROT_LANES = 64 };

typedef struct rot_run {
    intact_model *m;
    intact_error *err;
    it_pool *pool;
    double *sign;      // (dim) the diagonal of D
    double *buf;       // per thread: a row of up to max(dim, hidden) or dim x ROT_LANES
    size_t buf_len;    // doubles per thread
    int64_t bd, bh;    // Hadamard blocks of the residual (dim) and of the down input (hidden)
} rot_run;

// One matrix transform split over the pool: rows (rot_rows) or column chunks (rot_cols).
typedef struct rot_job {
    rot_run *r;
    float *w;
    int64_t n_out, n_in, block;
    const float *fold;
    const double *sign;
    int cols;
} rot_job;

void rot_signs(uint64_t seed, double *sign, int64_t n) {
    uint64_t s = seed, z = 0;
    for (int64_t i = 0; i < n; i++) {
        if (i % 64 == 0) { // splitmix64: 64 sign bits per step
            z = (s += 0x9E3779B97F4A7C15ull);
            z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
            z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
            z ^= z >> 31;
        }
        sign[i] = (z >> (i % 64)) & 1 ? -1.0 : 1.0;
    }
}

static int rotatable_type(int type) {
    return type == IT_TYPE_F32 || type == IT_TYPE_F16 || type == IT_TYPE_BF16 || type == IT_TYPE_Q8_0;
}

// Replaces t by an owned fp32 copy (the stored data, often mmapped, is never written) and returns it.
static float *to_owned_f32(rot_run *r, it_tensor *t) {
    int64_t n_in = t->ne[0], n_out = t->ne[1];
    size_t bytes = (size_t)n_in * (size_t)n_out * sizeof(float);
    float *w = model_alloc(r->m, bytes);
    if (!w) {
        it_fail(r->err, INTACT_E_NOMEM, "out of memory rotating %s (%zu bytes)", t->name ? t->name : "a matrix",
                bytes);
        return NULL;
    }
    const fmt_traits *tr = fmt_get(t->type);
    size_t row = fmt_row_bytes(t->type, n_in);
    for (int64_t i = 0; i < n_out; i++) tr->to_float((const char *)t->data + (size_t)i * row, w + i * n_in, n_in);
    t->type = IT_TYPE_F32;
    t->data = w;
    t->nbytes = bytes;
    return w;
}

// W <- W diag(fold) D Hb / sqrt(b): every row (n_in long) scaled per column, then transformed.
// fold and sign may be NULL (ones).
static void rot_rows(const rot_job *j, double *x, int64_t r0, int64_t r1) {
    double scale = 1.0 / sqrt((double)j->block);
    for (int64_t i = r0; i < r1; i++) {
        float *row = j->w + i * j->n_in;
        for (int64_t k = 0; k < j->n_in; k++)
            x[k] = (double)row[k] * (j->fold ? (double)j->fold[k] : 1.0) * (j->sign ? j->sign[k] : 1.0);
        kern_fwht_f64(x, j->n_in, j->block, 1);
        for (int64_t k = 0; k < j->n_in; k++) row[k] = (float)(x[k] * scale);
    }
}

// W <- Q^T W = Hb D W / sqrt(b) (Hb is symmetric): the same transform applied to every column,
// ROT_LANES columns at a time; chunks [c0, c1) of ROT_LANES columns.
static void rot_cols(const rot_job *j, double *x, int64_t c0, int64_t c1) {
    double scale = 1.0 / sqrt((double)j->block);
    int64_t n_out = j->n_out, n_in = j->n_in;
    float *w = j->w;
    for (int64_t c = c0 * ROT_LANES; c < c1 * ROT_LANES && c < n_in; c += ROT_LANES) {
        int64_t nc = n_in - c < ROT_LANES ? n_in - c : ROT_LANES;
        for (int64_t i = 0; i < n_out; i++)
            for (int64_t k = 0; k < nc; k++) x[i * nc + k] = (double)w[i * n_in + c + k] * j->sign[i];
        kern_fwht_f64(x, n_out, j->block, nc);
        for (int64_t i = 0; i < n_out; i++)
            for (int64_t k = 0; k < nc; k++) w[i * n_in + c + k] = (float)(x[i * nc + k] * scale);
    }
}

static void rot_worker(void *arg, int ith, int nth) {
    const rot_job *j = arg;
    long n = j->cols ? (long)((j->n_in + ROT_LANES - 1) / ROT_LANES) : (long)j->n_out, b, e;
    it_split_range(n, ith, nth, 1, &b, &e);
    double *x = j->r->buf + (size_t)ith * j->r->buf_len;
    if (j->cols) rot_cols(j, x, b, e);
    else rot_rows(j, x, b, e);
}

static void run_rows(rot_run *r, float *w, int64_t n_out, int64_t n_in, const float *fold, const double *sign,
                     int64_t block) {
    rot_job j = {r, w, n_out, n_in, block, fold, sign, 0};
    it_pool_run(r->pool, rot_worker, &j);
}

static void run_cols(rot_run *r, float *w, int64_t n_out, int64_t n_in, const double *sign, int64_t block) {
    rot_job j = {r, w, n_out, n_in, block, NULL, sign, 1};
    it_pool_run(r->pool, rot_worker, &j);
}


// Everything that can make rotation impossible is checked before anything changes.
static int check_model(const intact_model *m, intact_error *err) {
    if (m->rotated) return it_fail(err, INTACT_E_ARG, "the model is already rotated");
    if (m->quant.method[0])
        return it_fail(err, INTACT_E_ARG,
                       "cannot rotate a quantized model (%s): rotate the full-precision model, then quantize",
                       m->quant.method);
    const it_tensor *top[2] = {&m->tok_embd, &m->output};
    static const char *const top_names[2] = {"token_embd", "output"};
    for (int i = 0; i < 2; i++)
        if (!rotatable_type(top[i]->type))
            return it_fail(err, INTACT_E_UNSUPPORTED,
                           "cannot rotate %s.weight stored as %s (F32, F16, BF16 or Q8_0 only)", top_names[i],
                           fmt_get(top[i]->type) ? fmt_get(top[i]->type)->name : "?");
    for (int l = 0; l < m->hp.n_layers; l++) {
        const it_layer *ly = &m->layers[l];
        const it_tensor *t[IT_LAYER_NMAT] = IT_LAYER_MATRICES(ly);
        for (int i = 0; i < IT_LAYER_NMAT; i++)
            if (!rotatable_type(t[i]->type)) {
                const fmt_traits *tr = fmt_get(t[i]->type);
                return it_fail(err, INTACT_E_UNSUPPORTED,
                               "cannot rotate blk.%d.%s.weight: it is stored as %s, an already quantized format; "
                               "rotate the full-precision model, then quantize",
                               l, it_layer_matrix_names[i], tr ? tr->name : "?");
            }
    }
    return 0;
}

static int all_ones(const float *v, int n) {
    for (int i = 0; i < n; i++)
        if (v[i] != 1.0f) return 0;
    return 1;
}

// Embedding and output head. A tied head is folded and rotated from the original embedding.
static int rotate_ends(rot_run *r, const float *ones) {
    intact_model *m = r->m;
    int dim = m->hp.dim;
    it_tensor head = m->output;   // a copy: when tied, still the original embedding after the next line
    float *e = to_owned_f32(r, &m->tok_embd);
    if (!e) return -1;
    run_rows(r, e, m->tok_embd.ne[1], dim, NULL, r->sign, r->bd);
    if (m->tied && all_ones(m->output_norm, dim)) {
        m->output = m->tok_embd;  // nothing to fold: the head is exactly the rotated embedding
    } else {
        float *o = to_owned_f32(r, &head);
        if (!o) return -1;
        run_rows(r, o, head.ne[1], dim, m->output_norm, r->sign, r->bd);
        head.name = "output.weight";
        m->output = head;
        m->tied = 0;
    }
    m->output_norm = ones;
    return 0;
}

static int rotate_layer(rot_run *r, it_layer *ly, const float *ones) {
    int64_t dim = r->m->hp.dim, hid = r->m->hp.hidden_dim;
    it_tensor *reads[5] = {&ly->wq, &ly->wk, &ly->wv, &ly->w_gate, &ly->w_up};
    const float *norm[5] = {ly->attn_norm, ly->attn_norm, ly->attn_norm, ly->ffn_norm, ly->ffn_norm};
    for (int i = 0; i < 5; i++) {
        float *w = to_owned_f32(r, reads[i]);
        if (!w) return -1;
        run_rows(r, w, reads[i]->ne[1], dim, norm[i], r->sign, r->bd);
    }
    float *wo = to_owned_f32(r, &ly->wo);
    if (!wo) return -1;
    run_cols(r, wo, dim, dim, r->sign, r->bd);
    float *wd = to_owned_f32(r, &ly->w_down);
    if (!wd) return -1;
    run_cols(r, wd, dim, hid, r->sign, r->bd);
    run_rows(r, wd, dim, hid, NULL, NULL, r->bh);   // the online Hadamard's counterpart
    ly->attn_norm = ones;
    ly->ffn_norm = ones;
    return 0;
}

int rot_model(intact_model *m, uint64_t seed, int n_threads, intact_error *err) {
    if (check_model(m, err) != 0) return -1;
    const it_hparams *hp = &m->hp;
    rot_run r = {m, err, NULL, NULL, NULL, 0, kern_hadamard_block_of(hp->dim),
                 kern_hadamard_block_of(hp->hidden_dim)};
    r.buf_len = (size_t)hp->dim * ROT_LANES;
    if ((size_t)hp->hidden_dim > r.buf_len) r.buf_len = (size_t)hp->hidden_dim;
    r.pool = it_pool_new(n_threads > 0 ? n_threads : 1);
    r.sign = malloc((size_t)hp->dim * sizeof *r.sign);
    r.buf = r.pool ? malloc(r.buf_len * (size_t)it_pool_size(r.pool) * sizeof *r.buf) : NULL;
    float *ones = model_alloc(m, (size_t)hp->dim * sizeof *ones);   // shared by every norm
    int rc = 0;
    if (!r.pool || !r.sign || !r.buf || !ones) rc = it_fail(err, INTACT_E_NOMEM, "out of memory");
    if (rc == 0) {
        for (int i = 0; i < hp->dim; i++) ones[i] = 1.0f;
        rot_signs(seed, r.sign, hp->dim);
        rc = rotate_ends(&r, ones);
    }
    for (int l = 0; rc == 0 && l < hp->n_layers; l++) rc = rotate_layer(&r, &m->layers[l], ones);
    it_pool_free(r.pool);
    free(r.sign);
    free(r.buf);
    if (rc != 0) return -1;
    m->rotated = 1;
    m->rot_down_block = (int)r.bh;
    if (model_refresh_tensor_list(m) != 0) return it_fail(err, INTACT_E_NOMEM, "out of memory");
    return 0;
}
