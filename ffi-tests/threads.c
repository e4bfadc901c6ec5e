/*
 * threads: the three phases split over POSIX threads equal the single-threaded one-shot call.
 *
 * For GHM-C (ghm_c_loss vs ghm_c_accumulate/ghm_c_apply) and GHM-R (ghm_r_loss vs
 * ghm_r_accumulate/ghm_r_apply), 2 and 4 threads, over several training steps of one state:
 * - phase 1 in parallel: each thread makes its own stats (ghm_stats_init from the shared,
 *   const state) and accumulates its disjoint chunk of the batch (chunks of uneven length,
 *   cut at odd offsets);
 * - the main thread merges the stats (ghm_stats_merge) and commits once (ghm_commit);
 * - phase 3 in parallel: each thread writes its chunk of the gradient from the one shared
 *   const ghm_region_weights.
 * And the same with counting stats (ghm_stats_init_counting): phase 1 counts only, the commit
 * has no loss, and each thread's ghm_*_apply_loss writes its chunk's share of it, which the
 * main thread adds up.
 * The reference is ghm_c_loss / ghm_r_loss on the whole batch in one thread, from a copy of
 * the same state. Checks per step: gradients bitwise identical, states bitwise identical, loss
 * within relative 1e-6 (the per-region loss sums are f64 sums in another order).
 *
 * Usage: threads   (no arguments)
 */
#define _POSIX_C_SOURCE 200809L
#include "ghm.h"

#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define N 200003 /* elements per batch: odd, not a multiple of any vector width */
#define STEPS 3
#define MAX_THREADS 4

static unsigned passed = 0, failed = 0;

static void check(int ok, const char *what) {
    if (ok) {
        passed++;
    } else {
        failed++;
        printf("  FAIL %s\n", what);
    }
}

/* A small deterministic generator (xorshift64*), uniform in [0, 1). */
static uint64_t rng_state = 0x9E3779B97F4A7C15ull;
static double uniform(void) {
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return (double)((rng_state * 2685821657736338717ull) >> 11) / 9007199254740992.0;
}

/* A batch of kind 'c' (logits, targets in [0,1], weights) or 'r' (pred, target, weights). */
static void make_batch(char kind, float *a, float *b, float *w) {
    size_t i;
    for (i = 0; i < N; i++) {
        double u = uniform(), v = uniform();
        if (kind == 'c') {
            a[i] = (float)(-4.0 + 8.0 * u * u);      /* mostly easy negatives */
            b[i] = v < 0.1 ? 1.0f : (v < 0.12 ? 0.5f : 0.0f);
        } else {
            a[i] = (float)(0.3 * (u - 0.5));
            b[i] = (float)(0.3 * (v - 0.5) * (v - 0.5));
        }
        w[i] = uniform() < 0.1 ? 0.0f : (i % 3u == 0u ? 0.5f : 1.0f);
    }
}

typedef struct job {
    char kind;
    const ghm_state *state;     /* shared, read only */
    const ghm_region_weights *weights; /* shared, read only (phase 3) */
    const float *a, *b, *w;
    float *grad;
    size_t begin, end;
    int counting;               /* counting stats; phase 3 writes the chunk's loss share */
    ghm_stats stats;
    double share;
    ghm_status status;
} job;

static void *phase1(void *p) {
    job *j = (job *)p;
    size_t n = j->end - j->begin;
    j->status = (j->counting ? ghm_stats_init_counting : ghm_stats_init)(j->state, &j->stats);
    if (j->status == GHM_OK) {
        j->status = (j->kind == 'c' ? ghm_c_accumulate : ghm_r_accumulate)(
            j->state, j->a + j->begin, j->b + j->begin, j->w + j->begin, n, &j->stats);
    }
    return NULL;
}

static void *phase3(void *p) {
    job *j = (job *)p;
    size_t n = j->end - j->begin;
    if (j->counting) {
        j->status = (j->kind == 'c' ? ghm_c_apply_loss : ghm_r_apply_loss)(
            j->weights, j->a + j->begin, j->b + j->begin, j->w + j->begin, n, NULL,
            j->grad + j->begin, &j->share);
    } else {
        j->status = (j->kind == 'c' ? ghm_c_apply : ghm_r_apply)(
            j->weights, j->a + j->begin, j->b + j->begin, j->w + j->begin, n, NULL,
            j->grad + j->begin);
    }
    return NULL;
}

/* Runs `fn` on every job in its own thread; 0 if a thread could not be started. */
static int run_threads(job *jobs, int threads, void *(*fn)(void *)) {
    pthread_t tid[MAX_THREADS];
    int t, ok = 1;
    for (t = 0; t < threads; t++) {
        if (pthread_create(&tid[t], NULL, fn, &jobs[t]) != 0) {
            printf("threads: pthread_create failed\n");
            exit(2);
        }
    }
    for (t = 0; t < threads; t++) {
        ok &= pthread_join(tid[t], NULL) == 0;
    }
    return ok;
}

static void run_kind(char kind, int threads, int counting) {
    const char *name = kind == 'c' ? (counting ? "GHM-C counting" : "GHM-C")
                                   : (counting ? "GHM-R counting" : "GHM-R");
    float *a = (float *)malloc(N * sizeof(float)), *b = (float *)malloc(N * sizeof(float));
    float *w = (float *)malloc(N * sizeof(float)), *g1 = (float *)malloc(N * sizeof(float));
    float *gt = (float *)malloc(N * sizeof(float));
    ghm_config cfg = kind == 'c' ? ghm_c_config_default() : ghm_r_config_default();
    ghm_state st_one, st_par;
    job jobs[MAX_THREADS];
    char what[200];
    int step, t;

    if (!a || !b || !w || !g1 || !gt) {
        printf("threads: out of memory\n");
        exit(2);
    }
    cfg.bins = kind == 'c' ? 30 : 10;
    cfg.momentum = kind == 'c' ? 0.75f : 0.7f;
    if ((kind == 'c' ? ghm_c_init : ghm_r_init)(&st_one, &cfg) != GHM_OK) {
        printf("threads: init failed\n");
        exit(2);
    }
    st_par = st_one;
    for (step = 0; step < STEPS; step++) {
        float loss_one, loss_par;
        ghm_region_weights weights;
        ghm_stats merged;
        ghm_status s;
        size_t cut[MAX_THREADS + 1];
        int ok = 1;

        make_batch(kind, a, b, w);
        /* the reference: one thread, one call */
        s = (kind == 'c' ? ghm_c_loss : ghm_r_loss)(&st_one, a, b, w, N, &loss_one, g1);
        snprintf(what, sizeof what, "%s %d threads step %d: one-shot status %d (%s)", name,
                 threads, step, (int)s, ghm_status_str(s));
        check(s == GHM_OK, what);

        /* uneven chunks cut at odd offsets */
        cut[0] = 0;
        for (t = 1; t < threads; t++) {
            cut[t] = ((size_t)N * (size_t)t / (size_t)threads + (size_t)(t * 977)) | 1u;
        }
        cut[threads] = N;
        for (t = 0; t < threads; t++) {
            memset(&jobs[t], 0, sizeof jobs[t]);
            jobs[t].kind = kind;
            jobs[t].state = &st_par;
            jobs[t].a = a;
            jobs[t].b = b;
            jobs[t].w = w;
            jobs[t].grad = gt;
            jobs[t].begin = cut[t];
            jobs[t].end = cut[t + 1];
            jobs[t].counting = counting;
        }
        memset(gt, 0xA5, N * sizeof(float));
        ok &= run_threads(jobs, threads, phase1);
        for (t = 0; t < threads; t++) {
            ok &= jobs[t].status == GHM_OK;
        }
        merged = jobs[0].stats;
        for (t = 1; t < threads; t++) {
            ok &= ghm_stats_merge(&jobs[t].stats, &merged) == GHM_OK;
        }
        ok &= ghm_commit(&merged, &st_par, &weights, counting ? NULL : &loss_par) == GHM_OK;
        for (t = 0; t < threads && ok; t++) {
            jobs[t].weights = &weights;
        }
        if (ok) {
            ok &= run_threads(jobs, threads, phase3);
            for (t = 0; t < threads; t++) {
                ok &= jobs[t].status == GHM_OK;
            }
            if (counting) {
                double total = 0.0;
                for (t = 0; t < threads; t++) {
                    total += jobs[t].share;
                }
                loss_par = (float)total;
            }
        }
        snprintf(what, sizeof what, "%s %d threads step %d: a phase call failed", name, threads,
                 step);
        check(ok, what);
        if (!ok) {
            continue;
        }
        {
            size_t i = 0;
            while (i < N && memcmp(&g1[i], &gt[i], sizeof(float)) == 0) {
                i++;
            }
            snprintf(what, sizeof what,
                     "%s %d threads step %d: gradient differs first at %zu (%.9g vs %.9g)", name,
                     threads, step, i, i < N ? (double)gt[i] : 0.0,
                     i < N ? (double)g1[i] : 0.0);
            check(i == N, what);
        }
        snprintf(what, sizeof what, "%s %d threads step %d: state differs from one thread's",
                 name, threads, step);
        check(memcmp(&st_one, &st_par, sizeof st_one) == 0, what);
        snprintf(what, sizeof what, "%s %d threads step %d: loss %.9g vs one thread's %.9g", name,
                 threads, step, (double)loss_par, (double)loss_one);
        check(isfinite(loss_par) &&
                  fabs((double)loss_par - (double)loss_one) <= 1e-6 * fabs((double)loss_one),
              what);
        if (step == STEPS - 1) {
            printf("threads: %s %d threads, %d steps of %d elements: loss %.9g (one thread "
                   "%.9g)\n",
                   name, threads, STEPS, N, (double)loss_par, (double)loss_one);
        }
    }
    free(a);
    free(b);
    free(w);
    free(g1);
    free(gt);
}

int main(void) {
    static const int counts[] = {2, 4};
    int i;
    for (i = 0; i < 2; i++) {
        run_kind('c', counts[i], 0);
        run_kind('r', counts[i], 0);
        run_kind('c', counts[i], 1);
        run_kind('r', counts[i], 1);
    }
    printf("threads: %u passed, %u failed\n", passed, failed);
    return failed == 0 ? 0 : 1;
}
