/*
 * darknet: GHM-C in a Darknet yolo layer, with Darknet's conventions.
 *
 * The layer output is `[batch][anchor box][4 + 1 + classes][h*w]` floats holding
 * probabilities (after the logistic) for objectness and classes, so both GHM-C states use
 * GHM_OPT_PROBABILITY_INPUT. Darknet's own rules, which this test's world follows:
 * - a truth box makes one cell (image, anchor box, location) positive: objectness target 1
 *   and class targets 1 at its class; when two truths fall in one cell, the cell has the
 *   classes of both (two classes in one cell; a repeated class is still target 1);
 * - a cell that is not positive but whose predicted box overlaps a truth with IoU above
 *   ignore_thresh is ignored: no objectness delta (here: label weight 0);
 * - every other cell has objectness target 0; classes are trained only at positive cells
 *   (other cells' class deltas stay 0): class anchor weights 1 at positive cells, 0 elsewhere;
 * - deltas are `scale * (t - p)`, minus the gradient of the summed (not mean) loss, written
 *   at Darknet's positions; cls_normalizer is not applied (AlexeyAB's fork applies it only
 *   with counters_per_class).
 *
 * Per training step (2 steps, momentum 0.75, so the EMA carries over), per state, one
 * accumulate and one apply over the whole layer:
 * - objectness: a one-class layout {anchors h*w, classes 1, planes}, batched over the anchor
 *   boxes (box_stride (5 + classes) * h*w) and the images (image_stride the image's outputs),
 *   labels 0 at positive cells and -1 elsewhere, anchor weights 0 at ignored cells;
 * - classes: the planes layout {h*w, classes, 1, h*w}, batched the same way, with 2 labels per
 *   cell (-1 for none) and anchor weights 1 at positive cells only;
 * - ghm_commit of each; ghm_region_weights_tot, _loss and ghm_region_weight read back;
 * - apply with Darknet's delta {GHM_OUTPUT_GRADIENT, -scale, add, sum 1} into a Darknet-shaped
 *   delta buffer: route A overwrites (class entries of cells that are not positive get 0, the
 *   weight-0 rule), route B adds to a buffer already holding other deltas (weight-0 entries
 *   keep their value);
 * - route C: the same with GHM_OPT_GRADIENT_INPUT, given d = p - t (element-wise, per-element
 *   weights) instead of probabilities and targets.
 *
 * The reference is a plain loop in double written from the definition, independent of the
 * library's layout code: each valid element's g = |p - t| (in float, as the library computes
 * it) binned by the edges f32(k)/f32(M), the region counts, the EMA step in float (S = alpha*S
 * + (1-alpha)*R), n = non-empty regions, tot = valid elements, beta_k = tot / (S_k n), the
 * summed delta scale * beta_k * (t - p) and the summed loss sum_k beta_k * sum of BCE terms
 * (PyTorch's binary_cross_entropy, logs floored at -100). Tolerances: deltas and betas within
 * relative 2e-6 (the library rounds coefficients to float), losses within relative 1e-5.
 * Every delta position outside the layouts (the box coordinates) must keep its sentinel bits.
 *
 * Usage: darknet   (no arguments)
 */
#include "ghm.h"

#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BATCH 2
#define ANCHORS 3
#define H 13
#define WD 13
#define HW (H * WD)
#define CLASSES 20
#define ENTRIES (4 + 1 + CLASSES)
#define OUTPUTS (ANCHORS * ENTRIES * HW) /* per image */
#define TOTAL (BATCH * OUTPUTS)
#define CELLS (BATCH * ANCHORS * HW)
#define K 2      /* labels per cell */
#define BOXES 6  /* truths per image */
#define BINS 30
#define MOMENTUM 0.75f
#define IGNORE_THRESH 0.7
#define OBJ_SCALE 1.0f
#define CLS_SCALE 0.5f
#define STEPS 2
#define PRIOR 0.25f /* what route B's buffer holds before the add */

static const uint32_t SENTINEL = 0x7FA5A5A5u; /* a NaN the library would never write */

static unsigned passed = 0, failed = 0, printed = 0;

static void check(int ok, const char *fmt, ...) {
    va_list ap;
    if (ok) {
        passed++;
        return;
    }
    failed++;
    if (printed++ < 25) {
        printf("  FAIL ");
        va_start(ap, fmt);
        vprintf(fmt, ap);
        va_end(ap);
        printf("\n");
    } else if (printed == 26) {
        printf("  (further failures suppressed)\n");
    }
}

static uint64_t rng_state = 0xD1B54A32D192ED03ull;
static double uniform(void) {
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return (double)((rng_state * 2685821657736338717ull) >> 11) / 9007199254740992.0;
}

/* Darknet's entry index: image b, anchor box n, location loc, entry. */
static size_t entry_index(size_t b, size_t n, size_t loc, size_t entry) {
    return b * OUTPUTS + n * ENTRIES * HW + entry * HW + loc;
}

/* The cell index of (b, n, loc): the order of the labels and anchor weights. */
static size_t cell_of(size_t b, size_t n, size_t loc) { return (b * ANCHORS + n) * HW + loc; }

static float logistic(float x) { return 1.0f / (1.0f + expf(-x)); }

static int is_sentinel(float x) {
    uint32_t u;
    memcpy(&u, &x, 4);
    return u == SENTINEL;
}

static size_t region(float g) {
    size_t k = BINS - 1;
    while (k > 0 && g < (float)k / (float)BINS) {
        k--;
    }
    return k;
}

static double bce(double p, double t) {
    double lp = log(p), lq = log(1.0 - p);
    lp = lp < -100.0 ? -100.0 : lp;
    lq = lq < -100.0 ? -100.0 : lq;
    return -(t * lp + (1.0 - t) * lq);
}

static int close_rel(double got, double want, double rel) {
    return fabs(got - want) <= rel * fabs(want);
}

/* The reference for one GHM-C state: its EMA, and per step the counts, loss sums, tot. */
typedef struct ref {
    float ema[BINS];
    double count[BINS], sum[BINS], beta[BINS], tot, loss;
} ref;

static void ref_begin(ref *r) {
    memset(r->count, 0, sizeof r->count);
    memset(r->sum, 0, sizeof r->sum);
}

static void ref_add(ref *r, float p, float t) {
    size_t k = region(fabsf(p - t));
    r->count[k] += 1.0;
    r->sum[k] += bce(p, t);
}

static void ref_commit(ref *r) {
    size_t k, nonempty = 0;
    r->tot = 0.0;
    r->loss = 0.0;
    for (k = 0; k < BINS; k++) {
        nonempty += r->count[k] > 0.0;
        r->tot += r->count[k];
    }
    for (k = 0; k < BINS; k++) {
        r->beta[k] = 0.0;
        if (r->count[k] > 0.0) {
            float rest = (float)((1.0 - (double)MOMENTUM) * r->count[k]);
            r->ema[k] = MOMENTUM * r->ema[k] + rest;
            r->beta[k] = r->tot / ((double)r->ema[k] * (double)nonempty);
            r->loss += r->beta[k] * r->sum[k];
        }
    }
}

typedef struct world {
    float output[TOTAL];
    float delta_a[TOTAL], delta_b[TOTAL], delta_c[TOTAL];
    int positive[CELLS];        /* a truth is assigned to the cell */
    int ignored[CELLS];         /* not positive, best IoU above ignore_thresh */
    int hot[CELLS][CLASSES];    /* class targets of positive cells */
    int32_t obj_label[CELLS];   /* 0 at positive cells, -1 elsewhere */
    float obj_w[CELLS];         /* 0 at ignored cells */
    int32_t cls_label[CELLS][K]; /* the classes of a positive cell, -1 for none */
    float cls_w[CELLS];         /* 1 at positive cells */
    /* route C: d = p - t and per-element weights, [image][box][entry plane][h*w] as output */
    float d[TOTAL], dw[TOTAL];
} world;

static world Wd;

static void make_step(int step) {
    size_t b, n, loc, e, i;
    float sentinel;
    memcpy(&sentinel, &SENTINEL, 4);
    for (i = 0; i < TOTAL; i++) {
        double u = uniform();
        size_t entry = (i % OUTPUTS) / HW % ENTRIES;
        Wd.output[i] = entry < 4   ? (float)(u * 2.0 - 1.0)
                       : entry == 4 ? logistic((float)(-6.0 + 7.0 * u * u))
                                    : logistic((float)(-7.0 + 8.0 * u * u));
    }
    memset(Wd.positive, 0, sizeof Wd.positive);
    memset(Wd.hot, 0, sizeof Wd.hot);
    for (i = 0; i < CELLS; i++) {
        Wd.cls_label[i][0] = -1;
        Wd.cls_label[i][1] = -1;
    }
    /* truths: BOXES per image; truth 1 shares truth 0's cell with another class, truth 2
     * shares it with truth 0's class again (a repeated class), the rest land anywhere */
    for (b = 0; b < BATCH; b++) {
        size_t first = 0;
        for (i = 0; i < BOXES; i++) {
            size_t cell = first, cls = (size_t)(uniform() * CLASSES);
            if (i == 0 || i > 2) {
                n = (size_t)(uniform() * ANCHORS);
                loc = (size_t)(uniform() * HW);
                cell = cell_of(b, n, loc);
            }
            if (i == 0) {
                first = cell;
            } else if (i == 1) {
                cls = ((size_t)Wd.cls_label[first][0] + 1 + (size_t)step) % CLASSES;
            } else if (i == 2) {
                cls = (size_t)Wd.cls_label[first][0];
            }
            if (!Wd.hot[cell][cls]) {
                if (Wd.cls_label[cell][K - 1] >= 0) {
                    continue; /* a third class in one cell: this world keeps two */
                }
                Wd.cls_label[cell][Wd.cls_label[cell][0] >= 0] = (int32_t)cls;
            }
            Wd.positive[cell] = 1;
            Wd.hot[cell][cls] = 1;
        }
    }
    for (b = 0; b < BATCH; b++) {
        for (n = 0; n < ANCHORS; n++) {
            for (loc = 0; loc < HW; loc++) {
                size_t cell = cell_of(b, n, loc);
                double best_iou = uniform();
                Wd.ignored[cell] = !Wd.positive[cell] && best_iou > IGNORE_THRESH;
                Wd.obj_label[cell] = Wd.positive[cell] ? 0 : -1;
                Wd.obj_w[cell] = Wd.ignored[cell] ? 0.0f : 1.0f;
                Wd.cls_w[cell] = Wd.positive[cell] ? 1.0f : 0.0f;
                if (Wd.positive[cell] && cell % 2 == 0) {
                    /* a confident, correct prediction for some of them */
                    Wd.output[entry_index(b, n, loc, 4)] = 0.97f;
                    Wd.output[entry_index(b, n, loc, 5 + (size_t)Wd.cls_label[cell][0])] = 0.9f;
                }
                for (e = 0; e < ENTRIES; e++) {
                    size_t j = entry_index(b, n, loc, e);
                    float t = 0.0f, w = 0.0f;
                    if (e == 4) {
                        t = Wd.positive[cell] ? 1.0f : 0.0f;
                        w = Wd.obj_w[cell];
                    } else if (e > 4) {
                        t = (float)Wd.hot[cell][e - 5];
                        w = Wd.cls_w[cell];
                    }
                    Wd.d[j] = Wd.output[j] - t;
                    Wd.dw[j] = w;
                    if (e < 4) {
                        Wd.d[j] = 0.0f;
                    }
                }
            }
        }
    }
    for (i = 0; i < TOTAL; i++) {
        Wd.delta_a[i] = sentinel;
        Wd.delta_b[i] = (i % OUTPUTS) / HW % ENTRIES < 4 ? sentinel : PRIOR;
        Wd.delta_c[i] = sentinel;
    }
}

/* Compares one route's delta buffer with the reference; `prior` is what the buffer held at
 * the layouts' positions before an add (or NAN for an overwrite). */
static void compare(const char *route, int step, const float *delta, float prior,
                    const ref *obj, const ref *cls) {
    size_t b, n, loc, e, bad = 0, touched = 0;
    for (b = 0; b < BATCH; b++) {
        for (n = 0; n < ANCHORS; n++) {
            for (loc = 0; loc < HW; loc++) {
                size_t cell = cell_of(b, n, loc);
                for (e = 0; e < ENTRIES; e++) {
                    size_t i = entry_index(b, n, loc, e);
                    float p = Wd.output[i], t;
                    double want = 0.0, got = (double)delta[i];
                    if (e < 4) {
                        touched += !is_sentinel(delta[i]);
                        continue;
                    }
                    if (e == 4) {
                        t = Wd.positive[cell] ? 1.0f : 0.0f;
                        if (!Wd.ignored[cell]) {
                            want = (double)OBJ_SCALE * obj->beta[region(fabsf(p - t))] *
                                   (double)(t - p);
                        }
                    } else {
                        t = (float)Wd.hot[cell][e - 5];
                        if (Wd.positive[cell]) {
                            want = (double)CLS_SCALE * cls->beta[region(fabsf(p - t))] *
                                   (double)(t - p);
                        }
                    }
                    if (!isnan(prior)) {
                        want += (double)prior;
                    }
                    if (!(close_rel(got, want, 2e-6) || (want == 0.0 && got == 0.0))) {
                        if (bad++ < 3) {
                            check(0,
                                  "step %d route %s: image %zu box %zu cell %zu entry %zu "
                                  "(%s): delta %.9g, reference %.9g",
                                  step, route, b, n, loc, e,
                                  e == 4 ? (Wd.ignored[cell] ? "ignored objectness"
                                                              : "objectness")
                                  : Wd.positive[cell] ? "class of a positive cell"
                                                      : "class of a cell without object",
                                  got, want);
                        }
                    }
                }
            }
        }
    }
    check(bad == 0, "step %d route %s: %zu deltas differ from the reference", step, route, bad);
    check(touched == 0, "step %d route %s: %zu box coordinate deltas were written", step, route,
          touched);
}

/* The library's per-region betas and tot against the reference. */
static void compare_weights(const char *what, int step, const ghm_region_weights *wt,
                            const ref *r, float loss) {
    double tot = -1.0;
    float stored = -1.0f, beta;
    size_t k, bad = 0;
    check(ghm_region_weights_tot(wt, &tot) == GHM_OK && tot == r->tot,
          "step %d %s: ghm_region_weights_tot %.17g, reference (valid elements) %.17g", step,
          what, tot, r->tot);
    check(ghm_region_weights_loss(wt, &stored) == GHM_OK && stored == loss,
          "step %d %s: ghm_region_weights_loss %.9g, ghm_commit wrote %.9g", step, what,
          (double)stored, (double)loss);
    for (k = 0; k <= BINS; k++) {
        double want = k < BINS ? r->beta[k] : 0.0;
        if (ghm_region_weight(wt, k, &beta) != GHM_OK ||
            !(close_rel((double)beta, want, 2e-6) || (want == 0.0 && beta == 0.0f))) {
            if (bad++ < 3) {
                check(0, "step %d %s: ghm_region_weight(%zu) %.9g, reference %.9g", step, what,
                      k, (double)beta, want);
            }
        }
    }
    check(bad == 0, "step %d %s: %zu region weights differ from the reference", step, what,
          bad);
    /* the summed loss: the mean-reduced loss times tot */
    check(close_rel((double)loss * tot, r->loss, 1e-5),
          "step %d %s: summed loss %.9g (loss %.9g times tot %.0f), reference %.9g", step, what,
          (double)loss * tot, (double)loss, tot, r->loss);
}

int main(void) {
    ghm_config cfg = ghm_c_config_default();
    ghm_state obj_st, cls_st, gin_obj_st, gin_cls_st;
    ref obj_ref, cls_ref;
    ghm_output dk_obj = {0}, dk_cls = {0};
    ghm_class_layout obj_layout, cls_layout;
    int step;

    cfg.bins = BINS;
    cfg.momentum = MOMENTUM;
    cfg.options = GHM_OPT_PROBABILITY_INPUT;
    if (ghm_c_init(&obj_st, &cfg) != GHM_OK || ghm_c_init(&cls_st, &cfg) != GHM_OK) {
        printf("darknet: init failed\n");
        return 1;
    }
    cfg.options = GHM_OPT_GRADIENT_INPUT;
    if (ghm_c_init(&gin_obj_st, &cfg) != GHM_OK || ghm_c_init(&gin_cls_st, &cfg) != GHM_OK) {
        printf("darknet: init with GHM_OPT_GRADIENT_INPUT failed\n");
        return 1;
    }
    memset(&obj_ref, 0, sizeof obj_ref);
    memset(&cls_ref, 0, sizeof cls_ref);
    /* Darknet's delta: minus the gradient of the summed loss, times its scale */
    dk_obj.kind = GHM_OUTPUT_GRADIENT;
    dk_obj.scale = -OBJ_SCALE;
    dk_obj.sum = 1;
    dk_cls = dk_obj;
    dk_cls.scale = -CLS_SCALE;
    /* the class entries of every (image, anchor box) block, in one layout */
    memset(&cls_layout, 0, sizeof cls_layout);
    cls_layout.anchors = HW;
    cls_layout.classes = CLASSES;
    cls_layout.anchor_stride = 1;
    cls_layout.class_stride = HW;
    cls_layout.labels_per_anchor = K;
    cls_layout.boxes = ANCHORS;
    cls_layout.box_stride = ENTRIES * HW;
    cls_layout.images = BATCH;
    cls_layout.image_stride = OUTPUTS;
    /* objectness: one class per block */
    obj_layout = cls_layout;
    obj_layout.classes = 1;
    obj_layout.labels_per_anchor = 1;

    for (step = 0; step < STEPS; step++) {
        ghm_stats obj_stats, cls_stats, gin_obj_stats, gin_cls_stats;
        ghm_region_weights obj_wt, cls_wt, gin_obj_wt, gin_cls_wt;
        float obj_loss = 0.0f, cls_loss = 0.0f, gin_obj_loss = 0.0f, gin_cls_loss = 0.0f;
        size_t b, n, loc, c;
        ghm_status s;
        int ok = 1;

        make_step(step);
        /* phase 1: one call per state for the whole layer */
        ok &= ghm_stats_init(&obj_st, &obj_stats) == GHM_OK;
        ok &= ghm_stats_init(&cls_st, &cls_stats) == GHM_OK;
        s = ghm_c_accumulate_labels(&obj_st, &Wd.output[4 * HW], &obj_layout, Wd.obj_label,
                                    Wd.obj_w, &obj_stats);
        check(s == GHM_OK, "step %d: objectness accumulate status %d (%s)", step, (int)s,
              ghm_status_str(s));
        s = ghm_c_accumulate_labels(&cls_st, &Wd.output[5 * HW], &cls_layout,
                                    &Wd.cls_label[0][0], Wd.cls_w, &cls_stats);
        check(s == GHM_OK, "step %d: class accumulate status %d (%s)", step, (int)s,
              ghm_status_str(s));
        ok &= ghm_commit(&obj_stats, &obj_st, &obj_wt, &obj_loss) == GHM_OK;
        ok &= ghm_commit(&cls_stats, &cls_st, &cls_wt, &cls_loss) == GHM_OK;
        /* route C: the gradient input, element-wise over the objectness and class planes of
         * each block (weights 0 elsewhere would do too; the planes are what Darknet holds) */
        ok &= ghm_stats_init(&gin_obj_st, &gin_obj_stats) == GHM_OK;
        ok &= ghm_stats_init(&gin_cls_st, &gin_cls_stats) == GHM_OK;
        for (b = 0; b < BATCH; b++) {
            for (n = 0; n < ANCHORS; n++) {
                size_t o = entry_index(b, n, 0, 4), c0 = entry_index(b, n, 0, 5);
                ok &= ghm_c_accumulate(&gin_obj_st, &Wd.d[o], NULL, &Wd.dw[o], HW,
                                       &gin_obj_stats) == GHM_OK;
                ok &= ghm_c_accumulate(&gin_cls_st, &Wd.d[c0], NULL, &Wd.dw[c0], CLASSES * HW,
                                       &gin_cls_stats) == GHM_OK;
            }
        }
        ok &= ghm_commit(&gin_obj_stats, &gin_obj_st, &gin_obj_wt, &gin_obj_loss) == GHM_OK;
        ok &= ghm_commit(&gin_cls_stats, &gin_cls_st, &gin_cls_wt, &gin_cls_loss) == GHM_OK;
        check(ok, "step %d: stats_init, a gradient-input accumulate or a commit failed", step);
        if (!ok) {
            continue;
        }

        /* phase 3: route A overwrites, route B adds, one call per state */
        {
            ghm_output add_obj = dk_obj, add_cls = dk_cls;
            add_obj.add = 1;
            add_cls.add = 1;
            s = ghm_c_apply_labels(&obj_wt, &Wd.output[4 * HW], &obj_layout, Wd.obj_label,
                                   Wd.obj_w, &dk_obj, &Wd.delta_a[4 * HW]);
            check(s == GHM_OK, "step %d: objectness apply status %d (%s)", step, (int)s,
                  ghm_status_str(s));
            s = ghm_c_apply_labels(&cls_wt, &Wd.output[5 * HW], &cls_layout,
                                   &Wd.cls_label[0][0], Wd.cls_w, &dk_cls, &Wd.delta_a[5 * HW]);
            check(s == GHM_OK, "step %d: class apply status %d (%s)", step, (int)s,
                  ghm_status_str(s));
            s = ghm_c_apply_labels(&obj_wt, &Wd.output[4 * HW], &obj_layout, Wd.obj_label,
                                   Wd.obj_w, &add_obj, &Wd.delta_b[4 * HW]);
            check(s == GHM_OK, "step %d: objectness apply (add) status %d (%s)", step, (int)s,
                  ghm_status_str(s));
            s = ghm_c_apply_labels(&cls_wt, &Wd.output[5 * HW], &cls_layout,
                                   &Wd.cls_label[0][0], Wd.cls_w, &add_cls,
                                   &Wd.delta_b[5 * HW]);
            check(s == GHM_OK, "step %d: class apply (add) status %d (%s)", step, (int)s,
                  ghm_status_str(s));
        }
        for (b = 0; b < BATCH; b++) {
            for (n = 0; n < ANCHORS; n++) {
                size_t o = entry_index(b, n, 0, 4), c0 = entry_index(b, n, 0, 5);
                s = ghm_c_apply(&gin_obj_wt, &Wd.d[o], NULL, &Wd.dw[o], HW, &dk_obj,
                                &Wd.delta_c[o]);
                check(s == GHM_OK, "step %d: gradient-input objectness apply status %d (%s)",
                      step, (int)s, ghm_status_str(s));
                s = ghm_c_apply(&gin_cls_wt, &Wd.d[c0], NULL, &Wd.dw[c0], CLASSES * HW, &dk_cls,
                                &Wd.delta_c[c0]);
                check(s == GHM_OK, "step %d: gradient-input class apply status %d (%s)", step,
                      (int)s, ghm_status_str(s));
            }
        }

        /* the reference, walking Darknet's cells */
        ref_begin(&obj_ref);
        ref_begin(&cls_ref);
        for (b = 0; b < BATCH; b++) {
            for (n = 0; n < ANCHORS; n++) {
                for (loc = 0; loc < HW; loc++) {
                    size_t cell = cell_of(b, n, loc);
                    if (!Wd.ignored[cell]) {
                        ref_add(&obj_ref, Wd.output[entry_index(b, n, loc, 4)],
                                Wd.positive[cell] ? 1.0f : 0.0f);
                    }
                    if (Wd.positive[cell]) {
                        for (c = 0; c < CLASSES; c++) {
                            ref_add(&cls_ref, Wd.output[entry_index(b, n, loc, 5 + c)],
                                    (float)Wd.hot[cell][c]);
                        }
                    }
                }
            }
        }
        ref_commit(&obj_ref);
        ref_commit(&cls_ref);

        compare_weights("objectness", step, &obj_wt, &obj_ref, obj_loss);
        compare_weights("classes", step, &cls_wt, &cls_ref, cls_loss);
        compare("A (overwrite)", step, Wd.delta_a, NAN, &obj_ref, &cls_ref);
        compare("B (add)", step, Wd.delta_b, PRIOR, &obj_ref, &cls_ref);
        compare("C (gradient input)", step, Wd.delta_c, NAN, &obj_ref, &cls_ref);
        /* the gradient input's loss, -ln(1 - |d|), is the BCE of these binary targets */
        check(close_rel((double)gin_obj_loss, (double)obj_loss, 1e-5) &&
                  close_rel((double)gin_cls_loss, (double)cls_loss, 1e-5),
              "step %d: gradient-input losses %.9g and %.9g, probability inputs %.9g and %.9g",
              step, (double)gin_obj_loss, (double)gin_cls_loss, (double)obj_loss,
              (double)cls_loss);
        printf("darknet: step %d: summed objectness loss %.9g (reference %.9g), summed class "
               "loss %.9g (reference %.9g), %.0f and %.0f elements\n",
               step, (double)obj_loss * obj_ref.tot, obj_ref.loss,
               (double)cls_loss * cls_ref.tot, cls_ref.loss, obj_ref.tot, cls_ref.tot);
    }
    {
        /* the world had cells with two classes, ignored cells and positive cells */
        size_t i, two = 0, ign = 0, pos = 0;
        for (i = 0; i < CELLS; i++) {
            two += Wd.cls_label[i][1] >= 0;
            ign += (size_t)Wd.ignored[i];
            pos += (size_t)Wd.positive[i];
        }
        check(two > 0 && ign > 0 && pos > 0,
              "the last step had %zu two-class cells, %zu ignored and %zu positive cells", two,
              ign, pos);
    }
    printf("darknet: %u passed, %u failed\n", passed, failed);
    return failed == 0 ? 0 : 1;
}
