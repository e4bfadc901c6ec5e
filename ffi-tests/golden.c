/*
 * golden: runs every case of tests/fixtures/mmdet.txt (mmdetection 3.3.0's GHMC/GHMR) through
 * the C API twice, and compares loss, gradient, reduction "none" values and EMA.
 *
 * 1. One shot: `layout values` cases through ghm_c_loss / ghm_r_loss, `layout labels` cases
 *    (class-index targets, [A][C] rows) through ghm_c_loss_labels.
 * 2. Three phases, on a second state carried through the case's calls on its own: the batch
 *    (elements, or anchors for class-index targets) is cut into 2 or 3 chunks at odd offsets;
 *    ghm_stats_init makes two stats, chunks 0 and 2 are accumulated into the first and chunk 1
 *    into the second (ghm_c_accumulate / ghm_r_accumulate / ghm_c_accumulate_labels),
 *    ghm_stats_merge adds them, ghm_commit updates the EMA and makes the weights, and each
 *    chunk is applied on its own (ghm_c_apply / ghm_r_apply / ghm_c_apply_labels): the
 *    gradient (output NULL) and the reduction "none" values (GHM_OUTPUT_ELEMENT_LOSS).
 *
 * Checks, per call and per route:
 * - loss within relative 1e-5;
 * - every gradient element, and every "none" value (three phases), within
 *   1e-5*|b| + 1e-6*max_j|b_j| (exactly 0 where the label weight is 0);
 * - with momentum > 0, state.ema[k] against acc_sum[k] within relative 1e-6 (all 0 with
 *   momentum 0).
 * Between routes:
 * - one shot from a copy of the pre-call state in place (grad == pred; values layout only,
 *   ghm_c_loss_labels refuses it) gives bit-identical loss, gradient and state; with grad
 *   NULL, bit-identical loss and state;
 * - the three-phase gradient and state are bit-identical to the one-shot ones (the counts are
 *   exact, so chunking cannot change them); the loss is within relative 1e-6 of the one-shot
 *   loss (the per-region loss sums are f64 sums in another order).
 *
 * Usage: golden <path to tests/fixtures/mmdet.txt>
 */
#include "ghm.h"
#include "fixtures.h"

#include <float.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef ghm_status (*loss_fn)(ghm_state *, const float *, const float *, const float *, size_t,
                              float *, float *);

#define MAX_DETAIL_LINES 40
#define MAX_ELEMENTS_PER_CALL 5

static int detail_lines = 0;

static void detail(const char *fmt, ...) {
    va_list ap;
    if (detail_lines >= MAX_DETAIL_LINES) {
        if (detail_lines == MAX_DETAIL_LINES) {
            printf("  (further mismatch details suppressed)\n");
            detail_lines++;
        }
        return;
    }
    detail_lines++;
    printf("  ");
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    printf("\n");
}

static void *xmalloc(size_t bytes) {
    void *p = malloc(bytes ? bytes : 1);
    if (p == NULL) {
        printf("golden: out of memory\n");
        exit(2);
    }
    return p;
}

static int same_bits(float a, float b) { return memcmp(&a, &b, sizeof a) == 0; }

static int close_rel(float got, float want, double rel) {
    double a = (double)got, b = (double)want;
    if (!isfinite(a)) {
        return 0;
    }
    return fabs(a - b) <= rel * fabs(b);
}

/* One call's inputs in the C API's types, with the class-index targets also materialised
 * per element (one-hot targets, the anchor's weight on each of its classes) for the checks. */
typedef struct call_in {
    size_t n;          /* elements: n_pred */
    size_t anchors;    /* labels layout: anchors (rows); values layout: n */
    size_t classes;    /* labels layout: C; values layout: 1 */
    int32_t *labels;   /* labels layout, else NULL */
    float *target;     /* per element (materialised for the labels layout) */
    float *elem_w;     /* per element, or NULL (all valid) */
} call_in;

static void make_in(const fx_case *c, const fx_call *k, call_in *in) {
    size_t i, j;
    memset(in, 0, sizeof *in);
    in->n = k->n_pred;
    if (!c->labels_layout) {
        in->anchors = k->n;
        in->classes = 1;
        in->target = k->target;
        in->elem_w = k->weight;
        return;
    }
    in->anchors = k->n;
    in->classes = c->classes;
    in->labels = (int32_t *)xmalloc(k->n * sizeof(int32_t));
    in->target = (float *)xmalloc(in->n * sizeof(float));
    in->elem_w = k->weight ? (float *)xmalloc(in->n * sizeof(float)) : NULL;
    for (i = 0; i < k->n; i++) {
        in->labels[i] = (int32_t)k->labels[i];
        for (j = 0; j < c->classes; j++) {
            in->target[i * c->classes + j] = (long)j == k->labels[i] ? 1.0f : 0.0f;
            if (in->elem_w) {
                in->elem_w[i * c->classes + j] = k->weight[i];
            }
        }
    }
}

static void free_in(const fx_case *c, call_in *in) {
    if (c->labels_layout) {
        free(in->labels);
        free(in->target);
        free(in->elem_w);
    }
}

/* The gradient norm g of element i as the reference defines it (in double; the library works
 * in float), and how far it lies from the nearest edge k/M, in float ULP at that edge. */
static void edge_note(const fx_case *c, float pred, float target, char *out, size_t cap) {
    double g, ulp, dist;
    float edge;
    long e;
    if (c->loss == 'c') {
        double p = 1.0 / (1.0 + exp(-(double)pred));
        g = fabs(p - (double)target);
    } else {
        double d = (double)(pred - target);
        double mu = (double)c->mu;
        g = fabs(d) / sqrt(d * d + mu * mu);
    }
    e = (long)floor(g * (double)c->bins + 0.5);
    edge = (float)e / (float)c->bins;
    ulp = edge > 0.0f ? (double)(nextafterf(edge, 2.0f) - edge) : (double)FLT_MIN;
    dist = (g - (double)edge) / ulp;
    snprintf(out, cap, "g=%.9g (bin %ld of %u), nearest edge %ld/%u=%.9g is %.3g float ULP away%s",
             g, (long)floor(g * (double)c->bins), c->bins, e, c->bins, (double)edge, dist,
             fabs(dist) <= 8.0 ? " -> EDGE ELEMENT" : "");
}

/* got[] against the fixture's want[] (gradient or "none") with the vector-scaled tolerance. */
static int check_vector(const fx_case *c, size_t ci, const fx_call *k, const call_in *in,
                        const char *route, const char *what, const float *got,
                        const float *want) {
    size_t i, bad = 0, n = in->n;
    double maxb = 0.0;
    for (i = 0; i < n; i++) {
        double b = fabs((double)want[i]);
        if (b > maxb) {
            maxb = b;
        }
    }
    for (i = 0; i < n; i++) {
        double a = (double)got[i], b = (double)want[i];
        int good = isfinite(a) && fabs(a - b) <= 1e-5 * fabs(b) + 1e-6 * maxb;
        if (in->elem_w != NULL && in->elem_w[i] == 0.0f && got[i] != 0.0f) {
            good = 0;
        }
        if (!good) {
            if (bad < MAX_ELEMENTS_PER_CALL) {
                char note[256];
                edge_note(c, k->pred[i], in->target[i], note, sizeof note);
                detail("%s call %zu [%s] element %zu: %s %.9g, want %.9g (pred %.9g target %.9g "
                       "weight %.9g); %s",
                       c->name, ci, route, i, what, a, b, (double)k->pred[i],
                       (double)in->target[i], in->elem_w ? (double)in->elem_w[i] : 1.0, note);
            }
            bad++;
        }
    }
    if (bad > 0) {
        detail("%s call %zu [%s]: %zu of %zu %s elements out of tolerance (max|b| %.3g)",
               c->name, ci, route, bad, n, what, maxb);
        return 0;
    }
    return 1;
}

/* Loss, gradient, "none" (if given) and EMA of one route against the fixture. */
static int check_against_fixture(const fx_case *c, size_t ci, const call_in *in,
                                 const char *route, float loss, const float *grad,
                                 const float *none, const ghm_state *st) {
    const fx_call *k = &c->calls[ci];
    size_t i;
    int ok = 1;
    if (!close_rel(loss, k->loss, 1e-5)) {
        detail("%s call %zu [%s]: loss %.9g, want %.9g (rel err %.3g)", c->name, ci, route,
               (double)loss, (double)k->loss,
               fabs((double)loss - (double)k->loss) / fabs((double)k->loss));
        ok = 0;
    }
    ok &= check_vector(c, ci, k, in, route, "grad", grad, k->grad);
    if (none != NULL) {
        if (k->none == NULL) {
            detail("%s call %zu: fixture has no 'none' values", c->name, ci);
            ok = 0;
        } else {
            ok &= check_vector(c, ci, k, in, route, "none", none, k->none);
        }
    }
    for (i = 0; i < GHM_MAX_BINS; i++) {
        if (c->momentum > 0.0f && i < c->bins) {
            if (k->acc_sum == NULL) {
                detail("%s call %zu: fixture has no acc_sum though momentum > 0", c->name, ci);
                ok = 0;
                break;
            }
            if (!close_rel(st->ema[i], k->acc_sum[i], 1e-6)) {
                detail("%s call %zu [%s]: ema[%zu] %.9g, want acc_sum %.9g", c->name, ci, route,
                       i, (double)st->ema[i], (double)k->acc_sum[i]);
                ok = 0;
            }
        } else if (st->ema[i] != 0.0f) {
            detail("%s call %zu [%s]: ema[%zu] = %.9g, want 0 (momentum %g, bins %u)", c->name,
                   ci, route, i, (double)st->ema[i], (double)c->momentum, c->bins);
            ok = 0;
        }
    }
    return ok;
}

/* The one-shot call of the case's kind. */
static ghm_status one_shot(const fx_case *c, const fx_call *k, const call_in *in, ghm_state *st,
                           const float *pred, float *loss, float *grad) {
    if (c->labels_layout) {
        return ghm_c_loss_labels(st, pred, in->anchors, in->classes, in->labels, k->weight,
                                 loss, grad);
    }
    return (c->loss == 'c' ? ghm_c_loss : ghm_r_loss)(st, pred, k->target, k->weight, k->n,
                                                        loss, grad);
}

/* Chunk boundaries over `units` (elements or anchors): 3 chunks for even calls, 2 for odd
 * ones, cut at odd offsets. Returns the number of chunks; cut[0] = 0, cut[chunks] = units. */
static size_t chunk_cuts(size_t units, size_t ci, size_t cut[4]) {
    size_t chunks = ci % 2 == 0 ? 3 : 2, j;
    cut[0] = 0;
    for (j = 1; j < chunks; j++) {
        size_t x = (units * j / chunks) | 1u;
        if (x > units) {
            x = units;
        }
        if (x < cut[j - 1]) {
            x = cut[j - 1];
        }
        cut[j] = x;
    }
    cut[chunks] = units;
    return chunks;
}

/* Phase 1 on chunk [r0, r1) of units. */
static ghm_status accumulate_chunk(const fx_case *c, const fx_call *k, const call_in *in,
                                   const ghm_state *st, size_t r0, size_t r1, ghm_stats *stats) {
    const float *w = k->weight ? k->weight + r0 : NULL;
    if (c->labels_layout) {
        ghm_class_layout lay;
        memset(&lay, 0, sizeof lay);
        lay.anchors = r1 - r0;
        lay.classes = in->classes;
        lay.anchor_stride = in->classes;
        lay.class_stride = 1;
        return ghm_c_accumulate_labels(st, k->pred + r0 * in->classes, &lay, in->labels + r0,
                                       w, stats);
    }
    return (c->loss == 'c' ? ghm_c_accumulate : ghm_r_accumulate)(
        st, k->pred + r0, k->target + r0, w, r1 - r0, stats);
}

/* Phase 3 on chunk [r0, r1) of units, writing out[] at the chunk's elements. */
static ghm_status apply_chunk(const fx_case *c, const fx_call *k, const call_in *in,
                              const ghm_region_weights *wt, size_t r0, size_t r1,
                              const ghm_output *output, float *out) {
    const float *w = k->weight ? k->weight + r0 : NULL;
    if (c->labels_layout) {
        ghm_class_layout lay;
        memset(&lay, 0, sizeof lay);
        lay.anchors = r1 - r0;
        lay.classes = in->classes;
        lay.anchor_stride = in->classes;
        lay.class_stride = 1;
        return ghm_c_apply_labels(wt, k->pred + r0 * in->classes, &lay, in->labels + r0, w,
                                  output, out + r0 * in->classes);
    }
    return (c->loss == 'c' ? ghm_c_apply : ghm_r_apply)(wt, k->pred + r0, k->target + r0, w,
                                                          r1 - r0, output, out + r0);
}

/* The three phases from *st (updated on success); loss, grad[n], none[n]. */
static int three_phase(const fx_case *c, size_t ci, const call_in *in, ghm_state *st,
                       float *loss, float *grad, float *none) {
    const fx_call *k = &c->calls[ci];
    ghm_stats s[2];
    ghm_region_weights wt;
    ghm_output none_out;
    size_t cut[4], chunks, j;
    ghm_status r;
    chunks = chunk_cuts(in->anchors, ci, cut);
    if ((r = ghm_stats_init(st, &s[0])) != GHM_OK || (r = ghm_stats_init(st, &s[1])) != GHM_OK) {
        detail("%s call %zu: ghm_stats_init status %d (%s)", c->name, ci, (int)r,
               ghm_status_str(r));
        return 0;
    }
    for (j = 0; j < chunks; j++) {
        r = accumulate_chunk(c, k, in, st, cut[j], cut[j + 1], &s[j % 2]);
        if (r != GHM_OK) {
            detail("%s call %zu: accumulate of chunk [%zu, %zu) status %d (%s)", c->name, ci,
                   cut[j], cut[j + 1], (int)r, ghm_status_str(r));
            return 0;
        }
    }
    if ((r = ghm_stats_merge(&s[1], &s[0])) != GHM_OK) {
        detail("%s call %zu: ghm_stats_merge status %d (%s)", c->name, ci, (int)r,
               ghm_status_str(r));
        return 0;
    }
    memset(&wt, 0xA5, sizeof wt);
    if ((r = ghm_commit(&s[0], st, &wt, loss)) != GHM_OK) {
        detail("%s call %zu: ghm_commit status %d (%s)", c->name, ci, (int)r, ghm_status_str(r));
        return 0;
    }
    none_out.kind = GHM_OUTPUT_ELEMENT_LOSS;
    none_out.scale = 1.0f;
    none_out.add = 0;
    none_out.sum = 0;
    for (j = 0; j < chunks; j++) {
        r = apply_chunk(c, k, in, &wt, cut[j], cut[j + 1], NULL, grad);
        if (r == GHM_OK) {
            r = apply_chunk(c, k, in, &wt, cut[j], cut[j + 1], &none_out, none);
        }
        if (r != GHM_OK) {
            detail("%s call %zu: apply to chunk [%zu, %zu) status %d (%s)", c->name, ci, cut[j],
                   cut[j + 1], (int)r, ghm_status_str(r));
            return 0;
        }
    }
    return 1;
}

/* One call through every route; 1 if every check passed. *st follows the one-shot route,
 * *st3 the three-phase route. */
static int run_call(const fx_case *c, size_t ci, ghm_state *st, ghm_state *st3) {
    const fx_call *k = &c->calls[ci];
    call_in in;
    size_t n, i;
    ghm_state pre = *st, st_ip, st_null;
    float loss, loss_ip, loss_null, loss3, *grad, *grad_ip, *pred_copy, *grad3, *none3;
    ghm_status s;
    int ok = 1;

    make_in(c, k, &in);
    n = in.n;
    grad = (float *)xmalloc(n * sizeof(float));
    grad_ip = (float *)xmalloc(n * sizeof(float));
    pred_copy = (float *)xmalloc(n * sizeof(float));
    grad3 = (float *)xmalloc(n * sizeof(float));
    none3 = (float *)xmalloc(n * sizeof(float));
    memset(grad, 0xA5, n * sizeof(float));
    memset(grad3, 0xA5, n * sizeof(float));
    memset(none3, 0xA5, n * sizeof(float));
    memcpy(pred_copy, k->pred, n * sizeof(float));
    memset(&loss, 0xA5, sizeof loss);

    /* 1. one shot */
    s = one_shot(c, k, &in, st, k->pred, &loss, grad);
    if (s != GHM_OK) {
        detail("%s call %zu: one-shot status %d (%s), want GHM_OK", c->name, ci, (int)s,
               ghm_status_str(s));
        ok = 0;
        goto three;
    }
    if (memcmp(pred_copy, k->pred, n * sizeof(float)) != 0) {
        detail("%s call %zu: the library modified the (const) pred buffer", c->name, ci);
        ok = 0;
    }
    ok &= check_against_fixture(c, ci, &in, "one shot", loss, grad, NULL, st);

    /* in place: grad == pred (element-wise losses only) */
    if (!c->labels_layout) {
        st_ip = pre;
        memcpy(grad_ip, k->pred, n * sizeof(float));
        memset(&loss_ip, 0xA5, sizeof loss_ip);
        s = one_shot(c, k, &in, &st_ip, grad_ip, &loss_ip, grad_ip);
        if (s != GHM_OK) {
            detail("%s call %zu in place: status %d (%s)", c->name, ci, (int)s,
                   ghm_status_str(s));
            ok = 0;
        } else {
            if (!same_bits(loss_ip, loss)) {
                detail("%s call %zu in place: loss %.9g differs from %.9g", c->name, ci,
                       (double)loss_ip, (double)loss);
                ok = 0;
            }
            if (memcmp(grad_ip, grad, n * sizeof(float)) != 0) {
                for (i = 0; i < n && same_bits(grad_ip[i], grad[i]); i++) {
                }
                detail("%s call %zu in place: grad[%zu] %.9g differs from %.9g", c->name, ci, i,
                       (double)grad_ip[i], (double)grad[i]);
                ok = 0;
            }
            if (memcmp(&st_ip, st, sizeof *st) != 0) {
                detail("%s call %zu in place: state differs from the out-of-place call",
                       c->name, ci);
                ok = 0;
            }
        }
    }

    /* loss only: grad NULL */
    st_null = pre;
    memset(&loss_null, 0xA5, sizeof loss_null);
    s = one_shot(c, k, &in, &st_null, k->pred, &loss_null, NULL);
    if (s != GHM_OK) {
        detail("%s call %zu grad NULL: status %d (%s)", c->name, ci, (int)s, ghm_status_str(s));
        ok = 0;
    } else {
        if (!same_bits(loss_null, loss)) {
            detail("%s call %zu grad NULL: loss %.9g differs from %.9g", c->name, ci,
                   (double)loss_null, (double)loss);
            ok = 0;
        }
        if (memcmp(&st_null, st, sizeof *st) != 0) {
            detail("%s call %zu grad NULL: state differs from the call with grad", c->name, ci);
            ok = 0;
        }
    }

three:
    /* 2. three phases, on the route's own state */
    memset(&loss3, 0xA5, sizeof loss3);
    if (!three_phase(c, ci, &in, st3, &loss3, grad3, none3)) {
        ok = 0;
    } else {
        ok &= check_against_fixture(c, ci, &in, "three phases", loss3, grad3, none3, st3);
        if (memcmp(pred_copy, k->pred, n * sizeof(float)) != 0) {
            detail("%s call %zu: the three phases modified the (const) pred buffer", c->name,
                   ci);
            ok = 0;
        }
        if (s == GHM_OK) {
            if (memcmp(grad3, grad, n * sizeof(float)) != 0) {
                for (i = 0; i < n && same_bits(grad3[i], grad[i]); i++) {
                }
                detail("%s call %zu three phases: grad[%zu] %.9g differs from one shot's %.9g",
                       c->name, ci, i, (double)grad3[i], (double)grad[i]);
                ok = 0;
            }
            if (memcmp(st3, st, sizeof *st) != 0) {
                detail("%s call %zu three phases: state differs from the one-shot state",
                       c->name, ci);
                ok = 0;
            }
            if (!(fabs((double)loss3 - (double)loss) <= 1e-6 * fabs((double)loss))) {
                detail("%s call %zu three phases: loss %.9g vs one shot's %.9g", c->name, ci,
                       (double)loss3, (double)loss);
                ok = 0;
            }
        }
    }

    free(grad);
    free(grad_ip);
    free(pred_copy);
    free(grad3);
    free(none3);
    free_in(c, &in);
    return ok;
}

int main(int argc, char **argv) {
    FILE *f;
    fx_case c;
    int r;
    unsigned passed = 0, failed = 0, cases = 0, label_cases = 0;

    if (argc != 2) {
        fprintf(stderr, "usage: %s tests/fixtures/mmdet.txt\n", argv[0]);
        return 2;
    }
    f = fopen(argv[1], "r");
    if (f == NULL) {
        fprintf(stderr, "golden: cannot open %s\n", argv[1]);
        return 2;
    }
    while ((r = fx_read_case(f, &c)) == 1) {
        ghm_config cfg;
        ghm_state st, st3;
        ghm_status s;
        size_t ci;
        unsigned case_failed = 0;

        cases++;
        if (c.labels_layout) {
            label_cases++;
            if (c.loss != 'c') {
                detail("%s: class-index targets for GHM-R", c.name);
                failed += (unsigned)c.ncalls;
                fx_free_case(&c);
                continue;
            }
        }
        /* Start from the defaults, so that fields added after the four fixed ones keep
         * their default values. */
        cfg = c.loss == 'c' ? ghm_c_config_default() : ghm_r_config_default();
        cfg.bins = c.bins;
        cfg.momentum = c.momentum;
        cfg.loss_weight = c.loss_weight;
        if (c.loss == 'r') {
            cfg.mu = c.mu;
        }
        memset(&st, 0x5A, sizeof st);
        s = c.loss == 'c' ? ghm_c_init(&st, &cfg) : ghm_r_init(&st, &cfg);
        if (s != GHM_OK) {
            detail("%s: init status %d (%s)", c.name, (int)s, ghm_status_str(s));
            failed += (unsigned)c.ncalls;
            fx_free_case(&c);
            continue;
        }
        st3 = st;
        for (ci = 0; ci < c.ncalls; ci++) {
            if (run_call(&c, ci, &st, &st3)) {
                passed++;
            } else {
                failed++;
                case_failed++;
            }
        }
        printf("golden: case %-24s loss %c %-6s bins %2u momentum %-4g %zu calls: %s\n", c.name,
               c.loss, c.labels_layout ? "labels" : "values", c.bins, (double)c.momentum,
               c.ncalls, case_failed ? "FAILED" : "ok");
        fx_free_case(&c);
    }
    fclose(f);
    if (r < 0) {
        printf("golden: could not parse %s\n", argv[1]);
        return 1;
    }
    if (cases == 0 || label_cases == 0 || label_cases == cases) {
        printf("golden: %u cases, %u with class-index targets: want both layouts in %s\n", cases,
               label_cases, argv[1]);
        return 1;
    }
    printf("golden: %u passed, %u failed (calls, each one shot and three phases; %u cases, %u "
           "with class-index targets)\n",
           passed, failed, cases, label_cases);
    return failed == 0 ? 0 : 1;
}
