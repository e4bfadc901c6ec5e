/*
 * mpi: data-parallel GHM over MPI ranks equals one process on the whole batch.
 *
 * Every rank makes the same batch (same seed) and holds one shard of it (uneven shards cut at
 * odd offsets). Per training step, for GHM-C (element-wise targets), GHM-C with class-index
 * targets ([A][C] rows, shards of anchors) and GHM-R:
 *   1. each rank accumulates its shard into its own ghm_stats;
 *   2. MPI_Allreduce(MPI_SUM) over sizeof(ghm_stats)/sizeof(double) doubles merges them;
 *   3. each rank commits on its own copy of the state;
 *   4. each rank applies the weights to its shard (the gradient of its shard only).
 * Rank 0 also runs the single-process reference on the whole batch (ghm_c_loss,
 * ghm_c_loss_labels, ghm_r_loss on its own state) and gathers every rank's loss, state and
 * gradient shard. Checks, per step and loss:
 * - gradient shards bitwise equal to the reference's elements (the counts, hence the
 *   weights, are exact integers in f64, whatever the order of the sums);
 * - every rank's state bitwise equal to the reference state;
 * - every rank's loss within 1 ULP of the reference. The reason it may not be bitwise equal:
 *   the loss is sum_k coef_k * loss_sum_k in f64, and the allreduce sums each region's loss
 *   sum in another order than one process does; the f64 results differ in the last bits,
 *   which can move the final rounding to float by one ULP (and no more: the f64 error is
 *   ~1e-16 relative, a float ULP is ~1e-7).
 *
 * Usage: mpirun -np <ranks> mpi
 */
#include "ghm.h"

#include <math.h>
#include <mpi.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define N 100003   /* elements of the element-wise batches */
#define ANCHORS 2003
#define CLASSES 80
#define STEPS 3

static int rank = 0, ranks = 1;
static unsigned passed = 0, failed = 0;

static void check(int ok, const char *fmt, const char *name, int step, int r) {
    if (ok) {
        passed++;
    } else {
        failed++;
        printf("  FAIL %s step %d rank %d: %s\n", name, step, r, fmt);
    }
}

static void *xmalloc(size_t bytes) {
    void *p = malloc(bytes ? bytes : 1);
    if (p == NULL) {
        printf("mpi: out of memory\n");
        MPI_Abort(MPI_COMM_WORLD, 2);
    }
    return p;
}

static uint64_t rng_state;
static double uniform(void) {
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return (double)((rng_state * 2685821657736338717ull) >> 11) / 9007199254740992.0;
}

/* Distance in float ULP (both finite). */
static uint32_t ulp_distance(float x, float y) {
    int32_t a, b;
    int64_t d;
    memcpy(&a, &x, 4);
    memcpy(&b, &y, 4);
    if (a < 0) {
        a = INT32_MIN - a;
    }
    if (b < 0) {
        b = INT32_MIN - b;
    }
    d = (int64_t)a - (int64_t)b;
    return (uint32_t)(d < 0 ? -d : d);
}

enum which { GHM_C, GHM_C_LABELS, GHM_R };
static const char *const NAME[3] = {"GHM-C", "GHM-C class-index", "GHM-R", };

/* This rank's shard [begin, end) of `units` (elements or anchors). */
static void shard(size_t units, int r, size_t *begin, size_t *end) {
    size_t cut_lo = r == 0 ? 0 : ((units * (size_t)r / (size_t)ranks + (size_t)r * 13u) | 1u);
    size_t cut_hi = r + 1 == ranks
                        ? units
                        : ((units * (size_t)(r + 1) / (size_t)ranks + (size_t)(r + 1) * 13u) | 1u);
    *begin = cut_lo;
    *end = cut_hi;
}

static void run(enum which which) {
    const char *name = NAME[which];
    const int labels_mode = which == GHM_C_LABELS;
    const size_t units = labels_mode ? ANCHORS : N;
    const size_t per = labels_mode ? CLASSES : 1; /* floats per unit */
    const size_t total = units * per;
    float *a = (float *)xmalloc(total * sizeof(float));
    float *b = (float *)xmalloc(total * sizeof(float));
    float *w = (float *)xmalloc(units * sizeof(float));
    int32_t *lab = (int32_t *)xmalloc(units * sizeof(int32_t));
    float *g_ref = (float *)xmalloc(total * sizeof(float));
    float *g_all = (float *)xmalloc(total * sizeof(float));
    float *g_mine;
    int *counts = (int *)xmalloc((size_t)ranks * sizeof(int));
    int *displs = (int *)xmalloc((size_t)ranks * sizeof(int));
    float *losses = (float *)xmalloc((size_t)ranks * sizeof(float));
    ghm_state *states = (ghm_state *)xmalloc((size_t)ranks * sizeof(ghm_state));
    ghm_config cfg = which == GHM_R ? ghm_r_config_default() : ghm_c_config_default();
    ghm_state st_ref, st;
    size_t begin, end, i;
    int step, r;

    for (r = 0; r < ranks; r++) {
        size_t lo, hi;
        shard(units, r, &lo, &hi);
        counts[r] = (int)((hi - lo) * per);
        displs[r] = (int)(lo * per);
    }
    shard(units, rank, &begin, &end);
    g_mine = (float *)xmalloc((end - begin) * per * sizeof(float));
    cfg.bins = which == GHM_R ? 10 : 30;
    cfg.momentum = which == GHM_R ? 0.7f : 0.75f;
    cfg.loss_weight = which == GHM_R ? 10.0f : 1.0f;
    if ((which == GHM_R ? ghm_r_init : ghm_c_init)(&st, &cfg) != GHM_OK) {
        printf("mpi: init failed\n");
        MPI_Abort(MPI_COMM_WORLD, 2);
    }
    st_ref = st;
    rng_state = 0x2545F4914F6CDD1Dull + (uint64_t)which;

    for (step = 0; step < STEPS; step++) {
        ghm_stats stats;
        ghm_region_weights weights;
        float loss = 0.0f, loss_ref = 0.0f;
        ghm_status s;
        int ok = 1;
        const float *wp = w + begin;

        /* the same batch on every rank */
        for (i = 0; i < units; i++) {
            w[i] = uniform() < 0.1 ? 0.0f : 1.0f;
            lab[i] = uniform() < 0.05 ? (int32_t)(uniform() * CLASSES) : CLASSES;
        }
        for (i = 0; i < total; i++) {
            double u = uniform(), v = uniform();
            if (which == GHM_R) {
                a[i] = (float)(0.2 * (u - 0.5));
                b[i] = (float)(0.1 * (v - 0.5));
            } else {
                a[i] = (float)(-5.0 + 7.0 * u * u);
                b[i] = v < 0.1 ? 1.0f : 0.0f;
            }
        }
        if (which == GHM_R) {
            for (i = 0; i < N; i++) {
                w[i] = w[i] == 0.0f ? 0.0f : (i % 4u == 0u ? 0.5f : 1.0f);
            }
        }

        /* phase 1 on the shard, then the allreduce */
        s = ghm_stats_init(&st, &stats);
        if (s == GHM_OK) {
            if (labels_mode) {
                ghm_class_layout l;
                memset(&l, 0, sizeof l);
                l.anchors = end - begin;
                l.classes = CLASSES;
                l.anchor_stride = CLASSES;
                l.class_stride = 1;
                s = ghm_c_accumulate_labels(&st, a + begin * CLASSES, &l, lab + begin, wp,
                                            &stats);
            } else {
                s = (which == GHM_R ? ghm_r_accumulate : ghm_c_accumulate)(
                    &st, a + begin, b + begin, wp, end - begin, &stats);
            }
        }
        ok &= s == GHM_OK;
        MPI_Allreduce(MPI_IN_PLACE, &stats, (int)(sizeof(ghm_stats) / sizeof(double)),
                      MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
        /* phase 2 on this rank's own state, phase 3 on its shard */
        s = ghm_commit(&stats, &st, &weights, &loss);
        ok &= s == GHM_OK;
        if (s == GHM_OK) {
            if (labels_mode) {
                ghm_class_layout l;
                memset(&l, 0, sizeof l);
                l.anchors = end - begin;
                l.classes = CLASSES;
                l.anchor_stride = CLASSES;
                l.class_stride = 1;
                s = ghm_c_apply_labels(&weights, a + begin * CLASSES, &l, lab + begin, wp, NULL,
                                       g_mine);
            } else {
                s = (which == GHM_R ? ghm_r_apply : ghm_c_apply)(
                    &weights, a + begin, b + begin, wp, end - begin, NULL, g_mine);
            }
            ok &= s == GHM_OK;
        }
        check(ok, "a phase call failed", name, step, rank);

        MPI_Gatherv(g_mine, counts[rank], MPI_FLOAT, g_all, counts, displs, MPI_FLOAT, 0,
                    MPI_COMM_WORLD);
        MPI_Gather(&loss, 1, MPI_FLOAT, losses, 1, MPI_FLOAT, 0, MPI_COMM_WORLD);
        MPI_Gather(&st, (int)sizeof st, MPI_BYTE, states, (int)sizeof st, MPI_BYTE, 0,
                   MPI_COMM_WORLD);
        if (rank != 0) {
            continue;
        }

        /* the single-process reference on the whole batch */
        if (labels_mode) {
            s = ghm_c_loss_labels(&st_ref, a, ANCHORS, CLASSES, lab, w, &loss_ref, g_ref);
        } else {
            s = (which == GHM_R ? ghm_r_loss : ghm_c_loss)(&st_ref, a, b, w, N, &loss_ref,
                                                           g_ref);
        }
        check(s == GHM_OK, "the single-process reference failed", name, step, 0);
        for (r = 0; r < ranks; r++) {
            char msg[160];
            size_t lo = (size_t)displs[r], hi = lo + (size_t)counts[r], j = lo;
            while (j < hi && memcmp(&g_all[j], &g_ref[j], sizeof(float)) == 0) {
                j++;
            }
            snprintf(msg, sizeof msg, "gradient element %zu: %.9g, one process %.9g", j,
                     j < hi ? (double)g_all[j] : 0.0, j < hi ? (double)g_ref[j] : 0.0);
            check(j == hi, msg, name, step, r);
            check(memcmp(&states[r], &st_ref, sizeof st_ref) == 0,
                  "state differs from the single process's", name, step, r);
            snprintf(msg, sizeof msg, "loss %.9g is %lu ULP from one process's %.9g",
                     (double)losses[r], (unsigned long)ulp_distance(losses[r], loss_ref),
                     (double)loss_ref);
            check(isfinite(losses[r]) && ulp_distance(losses[r], loss_ref) <= 1, msg, name,
                  step, r);
        }
        if (step == STEPS - 1) {
            unsigned long max_ulp = 0;
            for (r = 0; r < ranks; r++) {
                unsigned long u = ulp_distance(losses[r], loss_ref);
                max_ulp = u > max_ulp ? u : max_ulp;
            }
            printf("mpi: %s on %d ranks, %d steps: loss %.9g, one process %.9g (max %lu ULP)\n",
                   name, ranks, STEPS, (double)losses[0], (double)loss_ref, max_ulp);
        }
    }
    free(a);
    free(b);
    free(w);
    free(lab);
    free(g_ref);
    free(g_all);
    free(g_mine);
    free(counts);
    free(displs);
    free(losses);
    free(states);
}

int main(int argc, char **argv) {
    unsigned totals[2], local[2];
    MPI_Init(&argc, &argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &ranks);
    if (sizeof(ghm_stats) % sizeof(double) != 0 ||
        sizeof(ghm_stats) / sizeof(double) != (size_t)GHM_STATS_LEN) {
        printf("mpi: ghm_stats is not %d doubles\n", (int)GHM_STATS_LEN);
        failed++;
    }
    run(GHM_C);
    run(GHM_C_LABELS);
    run(GHM_R);
    local[0] = passed;
    local[1] = failed;
    MPI_Reduce(local, totals, 2, MPI_UNSIGNED, MPI_SUM, 0, MPI_COMM_WORLD);
    MPI_Bcast(totals, 2, MPI_UNSIGNED, 0, MPI_COMM_WORLD);
    if (rank == 0) {
        printf("mpi: %u passed, %u failed (%d ranks)\n", totals[0], totals[1], ranks);
    }
    MPI_Finalize();
    return totals[1] == 0 ? 0 : 1;
}
