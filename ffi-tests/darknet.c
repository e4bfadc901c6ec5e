/*
 * darknet: GHM-C in a Darknet yolo layer.
 *
 * The yolo output is `[batch][anchor][4 + 1 + classes][h*w]` floats holding probabilities
 * (after the logistic) for objectness and classes, so both GHM-C states use
 * GHM_OPT_PROBABILITY_INPUT. A few truth boxes are assigned to (batch, anchor, location) cells
 * with a class ("positive" cells); some other cells are ignored (best IoU above
 * ignore_thresh in Darknet: objectness weight 0).
 *
 * Per training step (2 steps, momentum 0.75, so the EMA carries over):
 * - objectness (one GHM-C state): ghm_c_accumulate over each (batch, anchor) objectness plane
 *   (targets 1 at positive cells, weights 0 at ignored cells) into one ghm_stats;
 * - classes (a second GHM-C state): ghm_c_accumulate_labels over each (batch, anchor) block
 *   with the planes layout {anchors = h*w, classes, anchor_stride 1, class_stride h*w},
 *   labels per location (its class or -1), anchor weights 1 at positive cells and 0 elsewhere
 *   (Darknet trains classes only there), into one ghm_stats;
 * - ghm_commit of each;
 * - Darknet's delta convention {GHM_OUTPUT_GRADIENT, -scale, 0} written into a Darknet-shaped
 *   delta buffer at Darknet's positions: each objectness plane with ghm_c_apply, and the class
 *   entries of each positive cell as Darknet's delta_yolo_class does, one cell at a time, with
 *   ghm_c_apply_labels and the one-anchor layout {1, classes, 1, h*w} ("route A").
 *   "Route B" applies the whole planes block to a scratch copy and copies the positive cells.
 *
 * The reference is a plain loop in double that recomputes everything element by element from
 * the definition (ghm-reference.md section 2; the committed ghm_region_weights' coefficients are
 * private): each element's g = |p - t| (in float, as the library computes it) binned by the
 * edges f32(k)/f32(M), the region counts, the EMA step in float as the library and mmdetection
 * do (S = alpha*S + (1-alpha)*R), n = non-empty regions, and delta = scale * (t - p) / (D * n)
 * times loss_weight; the loss is loss_weight/n * sum term/D with term PyTorch's
 * binary_cross_entropy (logs floored at -100). Tolerances: deltas within relative 2e-6 (the
 * library rounds coefficients to float), losses within relative 1e-5.
 * Every delta position the library must not touch (the box coordinate planes, the class
 * entries of cells that are not positive) must keep its sentinel bits.
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
#define BLOCKS (BATCH * ANCHORS)
#define BOXES 5 /* truths per image */
#define BINS 30
#define MOMENTUM 0.75f
#define OBJ_SCALE 1.0f
#define CLS_SCALE 0.5f
#define STEPS 2

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

/* Darknet's entry_index: batch b, anchor n, location loc, entry. */
static size_t entry_index(size_t b, size_t n, size_t loc, size_t entry) {
    return b * OUTPUTS + n * ENTRIES * HW + entry * HW + loc;
}

static float logistic(float x) { return 1.0f / (1.0f + expf(-x)); }

static int is_sentinel(float x) {
    uint32_t u;
    memcpy(&u, &x, 4);
    return u == SENTINEL;
}

/* The reference for one GHM-C batch given as (p, t, valid) triples: per-element deltas
 * (scale * (t - p) * coefficient) and the loss, from the definition, in double. */
typedef struct ref_state {
    float ema[BINS];
} ref_state;

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

/* counts -> densities (updating the EMA) and n; coefficient of each region. */
static void ref_commit(ref_state *rs, const double count[BINS], double coef[BINS]) {
    size_t k, nonempty = 0;
    for (k = 0; k < BINS; k++) {
        nonempty += count[k] > 0.0;
    }
    for (k = 0; k < BINS; k++) {
        coef[k] = 0.0;
        if (count[k] > 0.0) {
            float rest = (float)((1.0 - (double)MOMENTUM) * count[k]);
            rs->ema[k] = MOMENTUM * rs->ema[k] + rest;
            coef[k] = 1.0 / ((double)rs->ema[k] * (double)nonempty); /* loss_weight 1 */
        }
    }
}

typedef struct world {
    float output[TOTAL];
    float delta[TOTAL];
    float scratch[TOTAL];
    int32_t cls[BLOCKS][HW];   /* class of a positive cell, else -1 */
    float obj_t[BLOCKS][HW];   /* objectness target */
    float obj_w[BLOCKS][HW];   /* objectness weight (0: ignored) */
    float cls_w[BLOCKS][HW];   /* class weight (1 at positive cells) */
} world;

static world Wd;

static void make_step(void) {
    size_t b, n, loc, i, e;
    float sentinel;
    memcpy(&sentinel, &SENTINEL, 4);
    for (b = 0; b < BATCH; b++) {
        for (n = 0; n < ANCHORS; n++) {
            for (loc = 0; loc < HW; loc++) {
                for (e = 0; e < ENTRIES; e++) {
                    double u = uniform();
                    float v = e < 4 ? (float)(u * 2.0 - 1.0)
                              : e == 4 ? logistic((float)(-6.0 + 7.0 * u * u))
                                       : logistic((float)(-7.0 + 8.0 * u * u));
                    Wd.output[entry_index(b, n, loc, e)] = v;
                }
            }
        }
    }
    for (i = 0; i < BLOCKS; i++) {
        for (loc = 0; loc < HW; loc++) {
            int ignored = uniform() < 0.08;
            Wd.cls[i][loc] = -1;
            Wd.obj_t[i][loc] = 0.0f;
            Wd.obj_w[i][loc] = ignored ? 0.0f : 1.0f;
            Wd.cls_w[i][loc] = 0.0f;
        }
    }
    /* truths: BOXES per image, each in a distinct cell with a class */
    for (b = 0; b < BATCH; b++) {
        size_t placed = 0;
        while (placed < BOXES) {
            size_t an = (size_t)(uniform() * ANCHORS), l = (size_t)(uniform() * HW);
            size_t blk = b * ANCHORS + an;
            if (Wd.cls[blk][l] >= 0) {
                continue;
            }
            Wd.cls[blk][l] = (int32_t)(uniform() * CLASSES);
            Wd.obj_t[blk][l] = 1.0f;
            Wd.obj_w[blk][l] = 1.0f;
            Wd.cls_w[blk][l] = 1.0f;
            /* a confident, correct prediction for some of them */
            if (placed % 2 == 0) {
                Wd.output[entry_index(b, an, l, 4)] = 0.97f;
                Wd.output[entry_index(b, an, l, 5 + (size_t)Wd.cls[blk][l])] = 0.9f;
            }
            placed++;
        }
    }
    for (i = 0; i < TOTAL; i++) {
        Wd.delta[i] = sentinel;
        Wd.scratch[i] = sentinel;
    }
}

int main(void) {
    ghm_config cfg = ghm_c_config_default();
    ghm_state obj_st, cls_st;
    ref_state obj_ref, cls_ref;
    ghm_output dk_obj, dk_cls;
    ghm_class_layout planes, cell;
    int step;

    cfg.bins = BINS;
    cfg.momentum = MOMENTUM;
    cfg.options = GHM_OPT_PROBABILITY_INPUT;
    if (ghm_c_init(&obj_st, &cfg) != GHM_OK || ghm_c_init(&cls_st, &cfg) != GHM_OK) {
        printf("darknet: init failed\n");
        return 1;
    }
    memset(&obj_ref, 0, sizeof obj_ref);
    memset(&cls_ref, 0, sizeof cls_ref);
    dk_obj.kind = GHM_OUTPUT_GRADIENT;
    dk_obj.scale = -OBJ_SCALE;
    dk_obj.add = 0;
    dk_cls = dk_obj;
    dk_cls.scale = -CLS_SCALE;
    planes.anchors = HW;
    planes.classes = CLASSES;
    planes.anchor_stride = 1;
    planes.class_stride = HW;
    cell = planes;
    cell.anchors = 1;

    for (step = 0; step < STEPS; step++) {
        ghm_stats obj_stats, cls_stats;
        ghm_region_weights obj_wt, cls_wt;
        float obj_loss = 0.0f, cls_loss = 0.0f;
        double obj_count[BINS] = {0}, cls_count[BINS] = {0}, obj_coef[BINS], cls_coef[BINS];
        double obj_sum[BINS] = {0}, cls_sum[BINS] = {0}, obj_ref_loss = 0.0, cls_ref_loss = 0.0;
        size_t b, n, loc, c, k, blk, bad_a = 0, bad_b = 0, bad_obj = 0, touched = 0;
        ghm_status s;
        int ok = 1;

        make_step();
        /* phase 1 over every (batch, anchor) block */
        ok &= ghm_stats_init(&obj_st, &obj_stats) == GHM_OK;
        ok &= ghm_stats_init(&cls_st, &cls_stats) == GHM_OK;
        for (b = 0; b < BATCH; b++) {
            for (n = 0; n < ANCHORS; n++) {
                blk = b * ANCHORS + n;
                s = ghm_c_accumulate(&obj_st, &Wd.output[entry_index(b, n, 0, 4)], Wd.obj_t[blk],
                                     Wd.obj_w[blk], HW, &obj_stats);
                check(s == GHM_OK, "step %d block %zu: objectness accumulate status %d (%s)",
                      step, blk, (int)s, ghm_status_str(s));
                s = ghm_c_accumulate_labels(&cls_st, &Wd.output[entry_index(b, n, 0, 5)],
                                            &planes, Wd.cls[blk], Wd.cls_w[blk], &cls_stats);
                check(s == GHM_OK, "step %d block %zu: class accumulate_labels status %d (%s)",
                      step, blk, (int)s, ghm_status_str(s));
            }
        }
        ok &= ghm_commit(&obj_stats, &obj_st, &obj_wt, &obj_loss) == GHM_OK;
        ok &= ghm_commit(&cls_stats, &cls_st, &cls_wt, &cls_loss) == GHM_OK;
        check(ok, "step %d: stats_init or commit failed", step);
        if (!ok) {
            continue;
        }
        /* phase 3 at Darknet's positions */
        for (b = 0; b < BATCH; b++) {
            for (n = 0; n < ANCHORS; n++) {
                size_t o = entry_index(b, n, 0, 4), c0 = entry_index(b, n, 0, 5);
                blk = b * ANCHORS + n;
                s = ghm_c_apply(&obj_wt, &Wd.output[o], Wd.obj_t[blk], Wd.obj_w[blk], HW,
                                &dk_obj, &Wd.delta[o]);
                check(s == GHM_OK, "step %d block %zu: objectness apply status %d (%s)", step,
                      blk, (int)s, ghm_status_str(s));
                /* route B: the whole block into the scratch buffer */
                s = ghm_c_apply_labels(&cls_wt, &Wd.output[c0], &planes, Wd.cls[blk],
                                       Wd.cls_w[blk], &dk_cls, &Wd.scratch[c0]);
                check(s == GHM_OK, "step %d block %zu: route B apply_labels status %d (%s)",
                      step, blk, (int)s, ghm_status_str(s));
                /* route A: Darknet's delta_yolo_class, one positive cell at a time */
                for (loc = 0; loc < HW; loc++) {
                    size_t ci = entry_index(b, n, loc, 5);
                    if (Wd.cls[blk][loc] < 0) {
                        continue;
                    }
                    s = ghm_c_apply_labels(&cls_wt, &Wd.output[ci], &cell, &Wd.cls[blk][loc],
                                           NULL, &dk_cls, &Wd.delta[ci]);
                    check(s == GHM_OK, "step %d block %zu cell %zu: apply_labels status %d (%s)",
                          step, blk, loc, (int)s, ghm_status_str(s));
                }
            }
        }

        /* the reference: histograms, EMA, coefficients */
        for (b = 0; b < BATCH; b++) {
            for (n = 0; n < ANCHORS; n++) {
                blk = b * ANCHORS + n;
                for (loc = 0; loc < HW; loc++) {
                    float p = Wd.output[entry_index(b, n, loc, 4)], t = Wd.obj_t[blk][loc];
                    if (Wd.obj_w[blk][loc] > 0.0f) {
                        k = region(fabsf(p - t));
                        obj_count[k] += 1.0;
                        obj_sum[k] += bce(p, t);
                    }
                    if (Wd.cls[blk][loc] >= 0) {
                        for (c = 0; c < CLASSES; c++) {
                            float pc = Wd.output[entry_index(b, n, loc, 5 + c)];
                            float tc = (int32_t)c == Wd.cls[blk][loc] ? 1.0f : 0.0f;
                            k = region(fabsf(pc - tc));
                            cls_count[k] += 1.0;
                            cls_sum[k] += bce(pc, tc);
                        }
                    }
                }
            }
        }
        ref_commit(&obj_ref, obj_count, obj_coef);
        ref_commit(&cls_ref, cls_count, cls_coef);
        for (k = 0; k < BINS; k++) {
            obj_ref_loss += obj_coef[k] * obj_sum[k];
            cls_ref_loss += cls_coef[k] * cls_sum[k];
        }
        check(fabs((double)obj_loss - obj_ref_loss) <= 1e-5 * obj_ref_loss,
              "step %d: objectness loss %.9g, reference %.9g", step, (double)obj_loss,
              obj_ref_loss);
        check(fabs((double)cls_loss - cls_ref_loss) <= 1e-5 * cls_ref_loss,
              "step %d: class loss %.9g, reference %.9g", step, (double)cls_loss, cls_ref_loss);

        /* every delta position */
        for (b = 0; b < BATCH; b++) {
            for (n = 0; n < ANCHORS; n++) {
                blk = b * ANCHORS + n;
                for (loc = 0; loc < HW; loc++) {
                    size_t e;
                    for (e = 0; e < 4; e++) {
                        touched += !is_sentinel(Wd.delta[entry_index(b, n, loc, e)]);
                    }
                    {
                        size_t i = entry_index(b, n, loc, 4);
                        float p = Wd.output[i], t = Wd.obj_t[blk][loc];
                        double want = 0.0, got = (double)Wd.delta[i];
                        if (Wd.obj_w[blk][loc] > 0.0f) {
                            want = (double)OBJ_SCALE * obj_coef[region(fabsf(p - t))] *
                                   (double)(t - p);
                        }
                        if (!(fabs(got - want) <= 2e-6 * fabs(want))) {
                            if (bad_obj++ < 3) {
                                check(0, "step %d block %zu cell %zu: objectness delta %.9g, "
                                         "reference %.9g",
                                      step, blk, loc, got, want);
                            }
                        }
                    }
                    for (c = 0; c < CLASSES; c++) {
                        size_t i = entry_index(b, n, loc, 5 + c);
                        if (Wd.cls[blk][loc] < 0) {
                            touched += !is_sentinel(Wd.delta[i]);
                        } else {
                            float pc = Wd.output[i];
                            float tc = (int32_t)c == Wd.cls[blk][loc] ? 1.0f : 0.0f;
                            double want = (double)CLS_SCALE * cls_coef[region(fabsf(pc - tc))] *
                                          (double)(tc - pc);
                            double ga = (double)Wd.delta[i], gb = (double)Wd.scratch[i];
                            if (!(fabs(ga - want) <= 2e-6 * fabs(want))) {
                                if (bad_a++ < 3) {
                                    check(0, "step %d block %zu cell %zu class %zu: route A "
                                             "delta %.9g, reference %.9g",
                                          step, blk, loc, c, ga, want);
                                }
                            }
                            if (!(fabs(gb - want) <= 2e-6 * fabs(want))) {
                                if (bad_b++ < 3) {
                                    check(0, "step %d block %zu cell %zu class %zu: route B "
                                             "delta %.9g, reference %.9g",
                                          step, blk, loc, c, gb, want);
                                }
                            }
                        }
                    }
                }
            }
        }
        check(bad_obj == 0, "step %d: %zu objectness deltas differ from the reference", step,
              bad_obj);
        check(bad_a == 0,
              "step %d: %zu class deltas of positive cells (route A, one cell at a time) differ "
              "from the reference",
              step, bad_a);
        check(bad_b == 0,
              "step %d: %zu class deltas of positive cells (route B, whole planes) differ from "
              "the reference",
              step, bad_b);
        check(touched == 0,
              "step %d: %zu delta positions the library must not touch (box coordinates, class "
              "entries of cells that are not positive) were written",
              step, touched);
        printf("darknet: step %d: objectness loss %.9g (reference %.9g), class loss %.9g "
               "(reference %.9g)\n",
               step, (double)obj_loss, obj_ref_loss, (double)cls_loss, cls_ref_loss);
    }
    printf("darknet: %u passed, %u failed\n", passed, failed);
    return failed == 0 ? 0 : 1;
}
