/*
 * errors: the error rules of the C contract (the README's error table and guarantees), for every exported
 * function.
 *
 * Every buffer a call can see (states, inputs, loss, gradient, an arena for overlapping
 * layouts) lives in one static `world`. Before each faulty call the world is snapshotted;
 * after it, the status must be the exact expected code and the whole world must be
 * byte-identical to the snapshot: no output, no state and no input byte changed. The output
 * buffers hold a sentinel pattern (0xA5 bytes) so that a stray write cannot go unnoticed.
 *
 * Usage: errors   (takes no arguments; ignores any)
 */
#include "ghm.h"

#include <float.h>
#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define N 16          /* elements of an ordinary call */
#define N_LONG 1000   /* elements of the long-buffer calls */
#define SLACK 16      /* spare elements after each buffer */
#define ARENA 4096    /* floats in the arena used for overlapping layouts */
#define POISON 0xA5
#define LC 5          /* classes of the class-index calls */
#define LA 12         /* anchors of an ordinary class-index call (LA * LC <= N_LONG) */
#define LA_LONG 199   /* anchors of the long class-index calls (LA_LONG * LC <= N_LONG) */

typedef ghm_status (*loss_fn)(ghm_state *, const float *, const float *, const float *, size_t,
                              float *, float *);
typedef ghm_status (*init_fn)(ghm_state *, const ghm_config *);

typedef struct kind {
    const char *name;
    char tag; /* 'c' or 'r' */
    loss_fn fn;
    init_fn init;
    ghm_config (*defaults)(void);
} kind;

static const kind KINDS[2] = {
    {"GHM-C", 'c', ghm_c_loss, ghm_c_init, ghm_c_config_default},
    {"GHM-R", 'r', ghm_r_loss, ghm_r_init, ghm_r_config_default},
};

static struct world {
    ghm_state st;    /* the state under test (primed: EMA not zero) */
    ghm_state other; /* a valid state of the other loss */
    float a[N_LONG + SLACK];
    float b[N_LONG + SLACK];
    float w[N_LONG + SLACK];
    float grad[N_LONG + SLACK];
    float loss[4];
    float arena[ARENA];
    union {
        ghm_state st;
        ghm_config cfg;
        ghm_stats stats;
        ghm_region_weights wt;
        ghm_class_layout lay;
        ghm_output out;
        unsigned char bytes[sizeof(ghm_stats) + 16];
    } raw; /* for misaligned states, configs, stats, weights, layouts and outputs */
    /* the three phases */
    ghm_state pst;           /* GHM-C with GHM_OPT_PROBABILITY_INPUT (fresh) */
    ghm_stats stats;         /* stats of st holding one accumulated chunk */
    ghm_stats sother;        /* empty stats of the other loss */
    ghm_stats sbins;         /* empty stats of st's loss with another bin count */
    ghm_stats pstats;        /* empty stats of pst */
    ghm_region_weights wt;          /* weights committed from st and stats */
    ghm_region_weights wother;      /* weights committed by the other loss */
    ghm_region_weights pwt;         /* weights committed from pst */
    ghm_class_layout layout; /* [LA][LC] rows unless a test says otherwise */
    ghm_output output;       /* {GHM_OUTPUT_GRADIENT, 1, 0} */
    int32_t labels[N_LONG + SLACK];
    double share[4];         /* the loss shares of the `_loss` applies */
    ghm_stats cstats;        /* counting stats of st holding the chunk of `stats` */
    ghm_region_weights cwt;  /* weights committed from st and cstats */
} W, SNAP;

static unsigned passed = 0, failed = 0, printed = 0;

static const char *label(const char *fmt, ...) {
    static char buf[320];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    return buf;
}

static void fail(const char *what, const char *fmt, ...) {
    va_list ap;
    failed++;
    if (printed++ >= 30) {
        if (printed == 31) {
            printf("  (further failures suppressed)\n");
        }
        return;
    }
    printf("  FAIL %s: ", what);
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    printf("\n");
}

static void check(int ok, const char *what, const char *why) {
    if (ok) {
        passed++;
    } else {
        fail(what, "%s", why);
    }
}

static const char *field_of(size_t off) {
    static const struct {
        size_t off;
        const char *name;
    } fields[] = {
        {offsetof(struct world, st), "state"},  {offsetof(struct world, other), "other state"},
        {offsetof(struct world, a), "a"},        {offsetof(struct world, b), "b"},
        {offsetof(struct world, w), "weights"},  {offsetof(struct world, grad), "grad"},
        {offsetof(struct world, loss), "loss"},  {offsetof(struct world, arena), "arena"},
        {offsetof(struct world, raw), "raw"},    {offsetof(struct world, pst), "pst"},
        {offsetof(struct world, stats), "stats"}, {offsetof(struct world, sother), "sother"},
        {offsetof(struct world, sbins), "sbins"}, {offsetof(struct world, pstats), "pstats"},
        {offsetof(struct world, wt), "ghm_region_weights wt"},
        {offsetof(struct world, wother), "ghm_region_weights wother"},
        {offsetof(struct world, pwt), "ghm_region_weights pwt"},
        {offsetof(struct world, layout), "layout"}, {offsetof(struct world, output), "output"},
        {offsetof(struct world, labels), "labels"},
    };
    size_t i;
    const char *name = "?";
    for (i = 0; i < sizeof fields / sizeof fields[0]; i++) {
        if (off >= fields[i].off) {
            name = fields[i].name;
        }
    }
    return name;
}

static void snapshot(void) { memcpy(&SNAP, &W, sizeof W); }

/* The world differs from the snapshot: where (first byte), or NULL if identical. */
static const char *changed(void) {
    const unsigned char *x = (const unsigned char *)&W, *y = (const unsigned char *)&SNAP;
    size_t i;
    static char buf[128];
    for (i = 0; i < sizeof W; i++) {
        if (x[i] != y[i]) {
            snprintf(buf, sizeof buf, "byte %zu (in %s) changed from 0x%02x to 0x%02x", i,
                     field_of(i), y[i], x[i]);
            return buf;
        }
    }
    return NULL;
}

/* The status is `want` and no byte of the world changed since snapshot(). */
static void expect_untouched(const char *what, ghm_status want, ghm_status got) {
    const char *diff;
    if (got != want) {
        fail(what, "status %d (%s), want %d (%s)", (int)got, ghm_status_str(got), (int)want,
             ghm_status_str(want));
        return;
    }
    diff = changed();
    if (diff != NULL) {
        fail(what, "status %d as expected, but %s", (int)got, diff);
        return;
    }
    passed++;
}

/* Snapshot, run `call`, require status `want` and an untouched world. */
#define UNTOUCHED(what, want, call)                                                            \
    do {                                                                                       \
        ghm_status s_;                                                                         \
        snapshot();                                                                            \
        s_ = (call);                                                                           \
        expect_untouched((what), (want), s_);                                                  \
    } while (0)

/* Like UNTOUCHED for calls that must succeed (status only). */
#define SUCCEEDS(what, call)                                                                   \
    do {                                                                                       \
        ghm_status s_ = (call);                                                                \
        if (s_ == GHM_OK) {                                                                    \
            passed++;                                                                          \
        } else {                                                                               \
            fail((what), "status %d (%s), want GHM_OK", (int)s_, ghm_status_str(s_));          \
        }                                                                                      \
    } while (0)

static float from_bits(uint32_t u) {
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

/* Valid inputs for kind k: i-th logit/pred, target and label weight. */
static void valid_element(const kind *k, size_t i, float *a, float *b, float *w) {
    if (k->tag == 'c') {
        *a = (float)((long)((i * 37u) % 81u) - 40) / 10.0f;
        *b = (i % 5u == 0u) ? 1.0f : (i % 11u == 0u ? 0.25f : 0.0f);
    } else {
        *a = (float)((long)((i * 37u) % 81u) - 40) / 50.0f;
        *b = (float)((long)((i * 11u) % 41u) - 20) / 50.0f;
    }
    *w = (i % 7u == 3u) ? 0.0f : (i % 3u == 0u ? 0.5f : 1.0f);
}

static ghm_config test_config(const kind *k) {
    ghm_config c = k->defaults();
    c.bins = 30;
    c.momentum = 0.75f;
    return c;
}

/* A fresh world for kind k: poisoned outputs, valid inputs, a primed state of k in W.st and
 * a state of the other loss in W.other. */
static void setup(const kind *k) {
    const kind *o = k == &KINDS[0] ? &KINDS[1] : &KINDS[0];
    ghm_config c = test_config(k), oc = o->defaults();
    size_t i;
    ghm_status s;
    memset(&W, POISON, sizeof W);
    for (i = 0; i < N_LONG + SLACK; i++) {
        valid_element(k, i, &W.a[i], &W.b[i], &W.w[i]);
    }
    if (k->init(&W.st, &c) != GHM_OK || o->init(&W.other, &oc) != GHM_OK) {
        printf("errors: setup: init failed\n");
        failed++;
    }
    s = k->fn(&W.st, W.a, W.b, W.w, 64, W.loss, W.grad);
    if (s != GHM_OK) {
        printf("errors: setup: priming call failed: %d (%s)\n", (int)s, ghm_status_str(s));
        failed++;
    }
    /* the three phases: stats, weights, a layout and an output spec */
    {
        ghm_config pc = ghm_c_config_default(), bc = c;
        ghm_state scratch;
        float l;
        int bad = 0;
        pc.options = GHM_OPT_PROBABILITY_INPUT;
        bc.bins = 10;
        for (i = 0; i < N_LONG + SLACK; i++) {
            W.labels[i] = (int32_t)((i * 7u) % 9u) - 1; /* -1 .. 7 with LC = 5 classes */
        }
        bad |= ghm_c_init(&W.pst, &pc) != GHM_OK;
        bad |= ghm_stats_init(&W.st, &W.stats) != GHM_OK;
        bad |= (k->tag == 'c' ? ghm_c_accumulate : ghm_r_accumulate)(&W.st, W.a, W.b, W.w, 64,
                                                                     &W.stats) != GHM_OK;
        bad |= ghm_stats_init_counting(&W.st, &W.cstats) != GHM_OK;
        bad |= (k->tag == 'c' ? ghm_c_accumulate : ghm_r_accumulate)(&W.st, W.a, W.b, W.w, 64,
                                                                     &W.cstats) != GHM_OK;
        scratch = W.st;
        bad |= ghm_commit(&W.cstats, &scratch, &W.cwt, NULL) != GHM_OK;
        bad |= ghm_stats_init(&W.other, &W.sother) != GHM_OK;
        bad |= k->init(&scratch, &bc) != GHM_OK || ghm_stats_init(&scratch, &W.sbins) != GHM_OK;
        bad |= ghm_stats_init(&W.pst, &W.pstats) != GHM_OK;
        scratch = W.st;
        bad |= ghm_commit(&W.stats, &scratch, &W.wt, &l) != GHM_OK;
        scratch = W.other;
        bad |= ghm_commit(&W.sother, &scratch, &W.wother, &l) != GHM_OK;
        scratch = W.pst;
        bad |= ghm_commit(&W.pstats, &scratch, &W.pwt, &l) != GHM_OK;
        if (bad) {
            printf("errors: setup: a phase call failed\n");
            failed++;
        }
        memset(&W.layout, 0, sizeof W.layout);
        W.layout.anchors = LA;
        W.layout.classes = LC;
        W.layout.anchor_stride = LC;
        W.layout.class_stride = 1;
        W.output.kind = GHM_OUTPUT_GRADIENT;
        W.output.scale = 1.0f;
        W.output.add = 0;
        W.output.sum = 0;
    }
    memset(W.grad, POISON, sizeof W.grad);
    memset(W.loss, POISON, sizeof W.loss);
}

static float *misalign(float *p) { return (float *)(void *)((char *)p + 1); }

/* ------------------------------------------------------------------------------------------ */

static void test_status_str(void) {
    static const ghm_status known[] = {
        GHM_OK,           GHM_ERR_NULL,      GHM_ERR_MISALIGNED, GHM_ERR_LENGTH,
        GHM_ERR_OVERLAP,  GHM_ERR_CONFIG,    GHM_ERR_STATE,      GHM_ERR_WRONG_LOSS,
        GHM_ERR_NONFINITE, GHM_ERR_TARGET,   GHM_ERR_WEIGHT,     GHM_ERR_OVERFLOW,
        GHM_ERR_INTERNAL, GHM_ERR_ISA,      GHM_ERR_STATS_MISMATCH, GHM_ERR_NOT_COMMITTED,
        GHM_ERR_LAYOUT,   GHM_ERR_OUTPUT,    GHM_ERR_PROBABILITY, GHM_ERR_NO_LOSS,
    };
    static const ghm_status unknown[] = {-1, -13, 1000, 0x7FFF, INT32_MIN, INT32_MAX};
    const size_t nk = sizeof known / sizeof known[0], nu = sizeof unknown / sizeof unknown[0];
    size_t i, j;
    check(GHM_OK == 0, "GHM_OK", "GHM_OK is not 0");
    for (i = 0; i < nk; i++) {
        const char *s = ghm_status_str(known[i]);
        const char *what = label("ghm_status_str(%d)", (int)known[i]);
        if (s == NULL || s[0] == '\0') {
            fail(what, "NULL or empty");
            continue;
        }
        for (j = 0; j < i; j++) {
            if (known[j] == known[i]) {
                fail(what, "code %d defined twice", (int)known[i]);
            } else if (strcmp(ghm_status_str(known[j]), s) == 0) {
                fail(what, "same text as code %d: \"%s\"", (int)known[j], s);
            }
        }
        passed++;
    }
    for (i = 0; i < nu; i++) {
        const char *s = ghm_status_str(unknown[i]);
        const char *what = label("ghm_status_str(%d) (unknown code)", (int)unknown[i]);
        int ok = s != NULL && s[0] != '\0';
        for (j = 0; ok && j < nk; j++) {
            if (strcmp(ghm_status_str(known[j]), s) == 0) {
                fail(what, "same text as defined code %d: \"%s\"", (int)known[j], s);
                ok = -1;
            }
        }
        if (ok == 1) {
            passed++;
        } else if (ok == 0) {
            fail(what, "NULL or empty");
        }
    }
}

static void test_defaults(void) {
    ghm_config c = ghm_c_config_default(), r = ghm_r_config_default();
    check(c.bins == 10 && c.momentum == 0.0f && c.loss_weight == 1.0f, "ghm_c_config_default",
          "not GHMC() (bins 10, momentum 0, loss_weight 1)");
    check(r.bins == 10 && r.momentum == 0.0f && r.mu == 0.02f && r.loss_weight == 1.0f,
          "ghm_r_config_default", "not GHMR() (bins 10, momentum 0, mu 0.02, loss_weight 1)");
}

/* ghm_c_init / ghm_r_init. */
static void test_init(const kind *k) {
    ghm_config base = k->defaults(), c;
    size_t i;
    static const uint32_t bad_bins[] = {0u, 65u, 1000u, UINT32_MAX};
    float bad_momentum[8];
    float bad_lw[3];
    float bad_mu[6];
    unsigned char *arena_bytes;
    ghm_state *placed;

    bad_momentum[0] = -0.1f;
    bad_momentum[1] = -1e-45f;
    bad_momentum[2] = 1.0f;
    bad_momentum[3] = 1.5f;
    bad_momentum[4] = NAN;
    bad_momentum[5] = INFINITY;
    bad_momentum[6] = -INFINITY;
    bad_momentum[7] = -NAN;
    bad_lw[0] = NAN;
    bad_lw[1] = INFINITY;
    bad_lw[2] = -INFINITY;
    bad_mu[0] = 0.0f;
    bad_mu[1] = -0.0f;
    bad_mu[2] = -1.0f;
    bad_mu[3] = NAN;
    bad_mu[4] = INFINITY;
    bad_mu[5] = -INFINITY;

    setup(k);
    UNTOUCHED(label("%s init: NULL state", k->name), GHM_ERR_NULL, k->init(NULL, &base));
    UNTOUCHED(label("%s init: NULL config", k->name), GHM_ERR_NULL, k->init(&W.st, NULL));
    UNTOUCHED(label("%s init: NULL state and config", k->name), GHM_ERR_NULL,
              k->init(NULL, NULL));
    UNTOUCHED(label("%s init: misaligned state", k->name), GHM_ERR_MISALIGNED,
              k->init((ghm_state *)(void *)(W.raw.bytes + 1), &base));
    memcpy(W.raw.bytes + 1, &base, sizeof base);
    UNTOUCHED(label("%s init: misaligned config", k->name), GHM_ERR_MISALIGNED,
              k->init(&W.st, (const ghm_config *)(const void *)(W.raw.bytes + 1)));
    /* config inside the state's memory, and partly overlapping its start */
    memcpy((char *)&W.st + 8, &base, sizeof base);
    UNTOUCHED(label("%s init: config inside the state", k->name), GHM_ERR_OVERLAP,
              k->init(&W.st, (const ghm_config *)(const void *)((char *)&W.st + 8)));
    memcpy(W.arena, &base, sizeof base);
    UNTOUCHED(label("%s init: state starting inside the config", k->name), GHM_ERR_OVERLAP,
              k->init((ghm_state *)(void *)(W.arena + 2), (const ghm_config *)(void *)W.arena));

    setup(k);
    for (i = 0; i < sizeof bad_bins / sizeof bad_bins[0]; i++) {
        c = base;
        c.bins = bad_bins[i];
        UNTOUCHED(label("%s init: bins %lu", k->name, (unsigned long)bad_bins[i]), GHM_ERR_CONFIG,
                  k->init(&W.st, &c));
    }
    for (i = 0; i < sizeof bad_momentum / sizeof bad_momentum[0]; i++) {
        c = base;
        c.momentum = bad_momentum[i];
        UNTOUCHED(label("%s init: momentum %g", k->name, (double)bad_momentum[i]),
                  GHM_ERR_CONFIG, k->init(&W.st, &c));
    }
    for (i = 0; i < sizeof bad_lw / sizeof bad_lw[0]; i++) {
        c = base;
        c.loss_weight = bad_lw[i];
        UNTOUCHED(label("%s init: loss_weight %g", k->name, (double)bad_lw[i]), GHM_ERR_CONFIG,
                  k->init(&W.st, &c));
    }
    for (i = 0; i < sizeof bad_mu / sizeof bad_mu[0]; i++) {
        ghm_status s;
        c = base;
        c.mu = bad_mu[i];
        if (k->tag == 'r') {
            UNTOUCHED(label("%s init: mu %g", k->name, (double)bad_mu[i]), GHM_ERR_CONFIG,
                      k->init(&W.st, &c));
        } else {
            /* GHM-C ignores mu */
            ghm_state st;
            float loss;
            s = k->init(&st, &c);
            SUCCEEDS(label("%s init: mu %g (ignored by GHM-C)", k->name, (double)bad_mu[i]), s);
            if (s == GHM_OK) {
                SUCCEEDS(label("%s loss after init with mu %g", k->name, (double)bad_mu[i]),
                         k->fn(&st, W.a, W.b, NULL, N, &loss, NULL));
            }
        }
    }

#ifdef GHM_OPT_ALL
    /* the fields that followed the fixed four: option bits and the weight cap */
    {
        static const uint32_t bad_options[] = {8u, 0x80000000u, UINT32_MAX,
                                               (uint32_t)GHM_OPT_ALL + 1u};
        float bad_cap[5];
        bad_cap[0] = -1.0f;
        bad_cap[1] = -1e-45f;
        bad_cap[2] = NAN;
        bad_cap[3] = INFINITY;
        bad_cap[4] = -INFINITY;
        setup(k);
        for (i = 0; i < sizeof bad_options / sizeof bad_options[0]; i++) {
            if ((bad_options[i] & ~(uint32_t)GHM_OPT_ALL) == 0) {
                continue; /* a known bit after all */
            }
            c = base;
            c.options = bad_options[i];
            UNTOUCHED(label("%s init: options 0x%lx", k->name, (unsigned long)bad_options[i]),
                      GHM_ERR_CONFIG, k->init(&W.st, &c));
        }
        for (i = 0; i < sizeof bad_cap / sizeof bad_cap[0]; i++) {
            c = base;
            c.weight_cap = bad_cap[i];
            UNTOUCHED(label("%s init: weight_cap %g", k->name, (double)bad_cap[i]),
                      GHM_ERR_CONFIG, k->init(&W.st, &c));
        }
        for (i = 0; i < sizeof bad_cap / sizeof bad_cap[0]; i++) {
            c = base;
            c.count_prior = bad_cap[i];
            UNTOUCHED(label("%s init: count_prior %g", k->name, (double)bad_cap[i]),
                      GHM_ERR_CONFIG, k->init(&W.st, &c));
        }
        {
            /* every option that applies to both losses (GHM_OPT_PROBABILITY_INPUT is
               GHM-C's alone and changes what the inputs mean: tested on its own) */
            const uint32_t both = GHM_OPT_NORM_BY_BINS | GHM_OPT_EMA_BIAS_CORRECTION |
                                  GHM_OPT_DECAY_EMPTY_BINS;
            ghm_state st;
            float loss;
            c = base;
            c.options = both;
            c.weight_cap = 5.0f;
            SUCCEEDS(label("%s init: shared options, weight_cap 5", k->name), k->init(&st, &c));
            SUCCEEDS(label("%s loss with shared options, weight_cap 5", k->name),
                     k->fn(&st, W.a, W.b, W.w, N, &loss, W.grad));
            {
                /* GHM-C's own options: accepted by GHM-C, refused by GHM-R */
                static const uint32_t c_only[] = {GHM_OPT_PROBABILITY_INPUT,
                                                  GHM_OPT_NORM_BY_POSITIVES};
                size_t j;
                for (j = 0; j < sizeof c_only / sizeof c_only[0]; j++) {
                    c.options = c_only[j];
                    if (k->init == ghm_r_init) {
                        UNTOUCHED(label("%s init: GHM-C's option 0x%lx", k->name,
                                        (unsigned long)c_only[j]),
                                  GHM_ERR_CONFIG, k->init(&W.st, &c));
                    } else {
                        SUCCEEDS(label("%s init: option 0x%lx", k->name, (unsigned long)c_only[j]),
                                 k->init(&st, &c));
                    }
                }
            }
            c = ghm_c_config_robust();
            if (k->init == ghm_r_init) {
                UNTOUCHED(label("%s init: the GHM-C robust preset", k->name), GHM_ERR_CONFIG,
                          k->init(&W.st, &c));
            } else {
                SUCCEEDS(label("%s init: the robust preset", k->name), k->init(&st, &c));
                SUCCEEDS(label("%s loss with the robust preset", k->name),
                         k->fn(&st, W.a, W.b, W.w, N, &loss, W.grad));
            }
        }
    }
#endif

    /* boundary values that are valid */
    {
        static const uint32_t good_bins[] = {1u, 2u, 63u, 64u};
        float good_momentum[3];
        float good_lw[3];
        ghm_state st;
        float loss;
        good_momentum[0] = 0.0f;
        good_momentum[1] = -0.0f;
        good_momentum[2] = 0.99999994f;
        good_lw[0] = 0.0f;
        good_lw[1] = -2.0f;
        good_lw[2] = FLT_MAX;
        for (i = 0; i < 4; i++) {
            c = base;
            c.bins = good_bins[i];
            SUCCEEDS(label("%s init: bins %lu", k->name, (unsigned long)good_bins[i]),
                     k->init(&st, &c));
            SUCCEEDS(label("%s loss with bins %lu", k->name, (unsigned long)good_bins[i]),
                     k->fn(&st, W.a, W.b, W.w, N, &loss, W.grad));
        }
        for (i = 0; i < 3; i++) {
            c = base;
            c.momentum = good_momentum[i];
            SUCCEEDS(label("%s init: momentum %.9g", k->name, (double)good_momentum[i]),
                     k->init(&st, &c));
            c = base;
            c.loss_weight = good_lw[i];
            SUCCEEDS(label("%s init: loss_weight %g", k->name, (double)good_lw[i]),
                     k->init(&st, &c));
        }
        if (k->tag == 'r') {
            c = base;
            c.mu = 1e-30f;
            SUCCEEDS(label("%s init: mu 1e-30", k->name), k->init(&st, &c));
            c.mu = 1e18f; /* the largest mu (ASL1 stays finite for every finite d) */
            SUCCEEDS(label("%s init: mu 1e18", k->name), k->init(&st, &c));
            c.mu = 1e30f;
            UNTOUCHED(label("%s init: mu 1e30", k->name), GHM_ERR_CONFIG, k->init(&W.st, &c));
        }
    }

    /* init writes exactly sizeof(ghm_state) bytes, nothing around them */
    setup(k);
    arena_bytes = (unsigned char *)W.arena;
    placed = (ghm_state *)(void *)(W.arena + 4);
    {
        ghm_status s = k->init(placed, &base);
        size_t before = (size_t)((unsigned char *)placed - arena_bytes);
        size_t after = before + sizeof(ghm_state);
        int ok = s == GHM_OK;
        for (i = 0; ok && i < before; i++) {
            ok = arena_bytes[i] == POISON;
        }
        for (i = after; ok && i < after + 64; i++) {
            ok = arena_bytes[i] == POISON;
        }
        check(ok, label("%s init", k->name), "wrote outside the state (or failed)");
        /* and the state it wrote works, with the EMA at 0 */
        if (s == GHM_OK) {
            ghm_state copy;
            int zero = 1;
            memcpy(&copy, placed, sizeof copy);
            for (i = 0; i < GHM_MAX_BINS; i++) {
                zero = zero && copy.ema[i] == 0.0f;
            }
            check(zero, label("%s init", k->name), "EMA not all 0 after init");
        }
    }
}

enum mode { SEPARATE, GRAD_NULL, IN_PLACE };
static const char *const MODE_NAME[3] = {"separate grad", "grad NULL", "in place"};

/* The loss call of kind k on W's buffers, with the gradient per `mode`. */
static ghm_status call(const kind *k, enum mode mode, ghm_state *st, float *a, const float *b,
                       const float *w, size_t n, float *loss) {
    float *grad = mode == SEPARATE ? W.grad : mode == IN_PLACE ? a : NULL;
    return k->fn(st, a, b, w, n, loss, grad);
}

/* ghm_c_loss / ghm_r_loss: n = 0, NULL, misalignment, length. */
static void test_pointers(const kind *k) {
    int m;
    size_t i;
    static const size_t huge[] = {SIZE_MAX, SIZE_MAX / 2, SIZE_MAX / 4 + 1, SIZE_MAX / 4,
                                  (size_t)PTRDIFF_MAX / 4 + 1};

    /* n = 0: OK, loss 0, state and everything else unchanged */
    for (m = 0; m < 3; m++) {
        struct {
            float *a;
            const float *b, *w;
            float *g;
            const char *what;
        } z[4];
        z[0].a = NULL, z[0].b = NULL, z[0].w = NULL, z[0].g = NULL, z[0].what = "all arrays NULL";
        z[1].a = W.a, z[1].b = W.b, z[1].w = W.w, z[1].g = W.grad, z[1].what = "arrays non-NULL";
        z[2].a = NULL, z[2].b = NULL, z[2].w = NULL, z[2].g = W.grad,
        z[2].what = "arrays NULL, grad not";
        z[3].a = W.a, z[3].b = NULL, z[3].w = W.w, z[3].g = W.a,
        z[3].what = "targets NULL, grad == logits";
        for (i = 0; i < 4; i++) {
            const char *diff;
            ghm_status s;
            const char *what = label("%s n=0 (%s, %s)", k->name, z[i].what, MODE_NAME[m]);
            setup(k);
            snapshot();
            s = k->fn(&W.st, z[i].a, z[i].b, z[i].w, 0, W.loss,
                      m == SEPARATE ? z[i].g : m == IN_PLACE ? z[i].a : NULL);
            SNAP.loss[0] = 0.0f;
            if (s != GHM_OK) {
                fail(what, "status %d (%s), want GHM_OK", (int)s, ghm_status_str(s));
            } else if (W.loss[0] != 0.0f) {
                fail(what, "loss %g, want 0", (double)W.loss[0]);
            } else if (W.loss[0] = 0.0f, (diff = changed()) != NULL) {
                fail(what, "%s", diff);
            } else {
                passed++;
            }
        }
        setup(k);
        UNTOUCHED(label("%s n=0: NULL state (%s)", k->name, MODE_NAME[m]), GHM_ERR_NULL,
                  call(k, (enum mode)m, NULL, W.a, W.b, W.w, 0, W.loss));
        UNTOUCHED(label("%s n=0: NULL loss (%s)", k->name, MODE_NAME[m]), GHM_ERR_NULL,
                  call(k, (enum mode)m, &W.st, W.a, W.b, W.w, 0, NULL));
        UNTOUCHED(label("%s n=0: misaligned loss (%s)", k->name, MODE_NAME[m]),
                  GHM_ERR_MISALIGNED,
                  call(k, (enum mode)m, &W.st, W.a, W.b, W.w, 0, misalign(W.loss)));
        memset(&W.st, 0x5A, sizeof W.st);
        UNTOUCHED(label("%s n=0: garbage state (%s)", k->name, MODE_NAME[m]), GHM_ERR_STATE,
                  call(k, (enum mode)m, &W.st, NULL, NULL, NULL, 0, W.loss));
    }

    for (m = 0; m < 3; m++) {
        const char *mn = MODE_NAME[m];
        enum mode md = (enum mode)m;
        setup(k);
        /* NULL */
        UNTOUCHED(label("%s NULL state (%s)", k->name, mn), GHM_ERR_NULL,
                  call(k, md, NULL, W.a, W.b, W.w, N, W.loss));
        UNTOUCHED(label("%s NULL loss (%s)", k->name, mn), GHM_ERR_NULL,
                  call(k, md, &W.st, W.a, W.b, W.w, N, NULL));
        if (md != IN_PLACE) {
            UNTOUCHED(label("%s NULL logits/pred (%s)", k->name, mn), GHM_ERR_NULL,
                      call(k, md, &W.st, NULL, W.b, W.w, N, W.loss));
        }
        UNTOUCHED(label("%s NULL targets (%s)", k->name, mn), GHM_ERR_NULL,
                  call(k, md, &W.st, W.a, NULL, W.w, N, W.loss));
        /* misaligned */
        UNTOUCHED(label("%s misaligned state (%s)", k->name, mn), GHM_ERR_MISALIGNED,
                  call(k, md, (ghm_state *)(void *)((char *)&W.st + 1), W.a, W.b, W.w, N,
                       W.loss));
        UNTOUCHED(label("%s misaligned loss (%s)", k->name, mn), GHM_ERR_MISALIGNED,
                  call(k, md, &W.st, W.a, W.b, W.w, N, misalign(W.loss)));
        UNTOUCHED(label("%s misaligned logits/pred (%s)", k->name, mn), GHM_ERR_MISALIGNED,
                  call(k, md, &W.st, misalign(W.a), W.b, W.w, N, W.loss));
        UNTOUCHED(label("%s misaligned targets (%s)", k->name, mn), GHM_ERR_MISALIGNED,
                  call(k, md, &W.st, W.a, misalign(W.b), W.w, N, W.loss));
        UNTOUCHED(label("%s misaligned weights (%s)", k->name, mn), GHM_ERR_MISALIGNED,
                  call(k, md, &W.st, W.a, W.b, misalign(W.w), N, W.loss));
        /* too long for the address space: refused before anything is read */
        for (i = 0; i < sizeof huge / sizeof huge[0]; i++) {
            UNTOUCHED(label("%s n=%zu (%s)", k->name, huge[i], mn), GHM_ERR_LENGTH,
                      call(k, md, &W.st, W.a, W.b, W.w, huge[i], W.loss));
            UNTOUCHED(label("%s n=%zu, weights NULL (%s)", k->name, huge[i], mn),
                      GHM_ERR_LENGTH, call(k, md, &W.st, W.a, W.b, NULL, huge[i], W.loss));
        }
    }
    setup(k);
    UNTOUCHED(label("%s misaligned grad", k->name), GHM_ERR_MISALIGNED,
              k->fn(&W.st, W.a, W.b, W.w, N, W.loss, misalign(W.grad)));
    UNTOUCHED(label("%s misaligned grad, weights NULL", k->name), GHM_ERR_MISALIGNED,
              k->fn(&W.st, W.a, W.b, NULL, N, W.loss, misalign(W.grad)));
    UNTOUCHED(label("%s n=SIZE_MAX/2 with grad only huge", k->name), GHM_ERR_LENGTH,
              k->fn(&W.st, W.a, W.b, NULL, SIZE_MAX / 2, W.loss, W.grad));
}

/* Which field of ghm_state holds byte `off` (fields past the fixed ones by position). */
static const char *state_field(size_t off) {
    static char buf[64];
    const size_t cfg = offsetof(ghm_state, config), ema = offsetof(ghm_state, ema);
    const size_t ema_end = ema + sizeof(((ghm_state *)0)->ema);
    const size_t sum = offsetof(ghm_state, checksum);
    if (off < offsetof(ghm_state, kind)) {
        return "magic";
    } else if (off < cfg) {
        return "kind";
    } else if (off < cfg + sizeof(ghm_config)) {
        size_t c = off - cfg;
        if (c < offsetof(ghm_config, momentum)) {
            return "config.bins";
        } else if (c < offsetof(ghm_config, mu)) {
            return "config.momentum";
        } else if (c < offsetof(ghm_config, loss_weight)) {
            return "config.mu";
        } else if (c < offsetof(ghm_config, loss_weight) + sizeof(float)) {
            return "config.loss_weight";
        }
        snprintf(buf, sizeof buf, "config field at +%zu, after loss_weight", c);
        return buf;
    } else if (off < ema) {
        return "between config and ema";
    } else if (off < ema_end) {
        return "ema";
    } else if (off < sum) {
        snprintf(buf, sizeof buf, "field at +%zu, between ema and checksum", off);
        return buf;
    } else if (off < sum + sizeof(uint32_t)) {
        return "checksum";
    }
    return "padding";
}

/* Garbage, corrupted and foreign states. */
static void test_states(const kind *k) {
    const kind *o = k == &KINDS[0] ? &KINDS[1] : &KINDS[0];
    static const unsigned char fills[] = {0x00, 0x5A, 0xFF, POISON};
    static const unsigned char flips[] = {0x01, 0x80, 0xFF};
    size_t i, j, bad;
    int m;
    for (m = 0; m < 3; m++) {
        enum mode md = (enum mode)m;
        for (i = 0; i < sizeof fills; i++) {
            setup(k);
            memset(&W.st, fills[i], sizeof W.st);
            UNTOUCHED(label("%s state filled with 0x%02x (%s)", k->name, fills[i], MODE_NAME[m]),
                      GHM_ERR_STATE, call(k, md, &W.st, W.a, W.b, W.w, N, W.loss));
        }
        setup(k);
        UNTOUCHED(label("%s given a %s state (%s)", k->name, o->name, MODE_NAME[m]),
                  GHM_ERR_WRONG_LOSS, call(k, md, &W.other, W.a, W.b, W.w, N, W.loss));
    }
    /* every byte of a primed state, flipped in three ways: always GHM_ERR_STATE */
    for (j = 0; j < sizeof flips; j++) {
        ghm_state pristine;
        unsigned char bad_at[sizeof(ghm_state)];
        ghm_status first_status = GHM_OK;
        setup(k);
        pristine = W.st;
        bad = 0;
        memset(bad_at, 0, sizeof bad_at);
        for (i = 0; i < sizeof(ghm_state); i++) {
            ghm_status s;
            W.st = pristine;
            ((unsigned char *)&W.st)[i] ^= flips[j];
            snapshot();
            s = call(k, (enum mode)(i % 3), &W.st, W.a, W.b, W.w, N, W.loss);
            if (s != GHM_ERR_STATE || changed() != NULL) {
                if (bad++ == 0) {
                    first_status = s;
                }
                bad_at[i] = 1;
                failed++;
                setup(k); /* the call may have written outputs */
            } else {
                passed++;
            }
        }
        if (bad > 0) {
            char ranges[512];
            size_t len = 0, r;
            ranges[0] = '\0';
            for (i = 0; i < sizeof(ghm_state); i = r) {
                if (!bad_at[i]) {
                    r = i + 1;
                    continue;
                }
                for (r = i; r < sizeof(ghm_state) && bad_at[r]; r++) {
                }
                if (len < sizeof ranges - 80) {
                    len += (size_t)snprintf(ranges + len, sizeof ranges - len, " %zu-%zu (%s)",
                                            i, r - 1, state_field(i));
                }
            }
            printed++;
            printf("  FAIL %s: %zu of %zu single-byte corruptions (^0x%02x) accepted or not "
                   "refused with GHM_ERR_STATE (first status %d: %s); bytes:%s\n",
                   k->name, bad, sizeof(ghm_state), flips[j], (int)first_status,
                   ghm_status_str(first_status), ranges);
        }
    }
    /* the state still works after all that */
    setup(k);
    SUCCEEDS(label("%s primed state still valid", k->name),
             k->fn(&W.st, W.a, W.b, W.w, N, W.loss, W.grad));
}

/* One bad value at position `pos` of buffer `which` (0 a, 1 b, 2 w), n elements. */
static void bad_value(const kind *k, int which, size_t pos, float v, size_t n, ghm_status want,
                      const char *vname) {
    static const char *const names[3] = {"logits/pred", "targets", "weights"};
    int m;
    for (m = 0; m < 3; m++) {
        float *buf;
        setup(k);
        buf = which == 0 ? W.a : which == 1 ? W.b : W.w;
        buf[pos] = v;
        UNTOUCHED(label("%s %s[%zu] = %s, n=%zu (%s)", k->name, names[which], pos, vname, n,
                        MODE_NAME[m]),
                  want, call(k, (enum mode)m, &W.st, W.a, W.b, W.w, n, W.loss));
    }
}

static void test_values(const kind *k) {
    static const size_t positions[] = {0, 5, N - 1};
    static const size_t long_positions[] = {1, 7, 8, 15, 16, 17, 31, 32, 500, 990, 998, N_LONG - 1};
    float nonfinite[6];
    static const char *const nonfinite_name[6] = {"NaN", "-NaN", "+Inf", "-Inf", "sNaN",
                                                  "NaN(payload)"};
    /* What src/kernel/math.rs Bce::error returns for a bad GHM-C target: the target test
     * `!(0.0..=1.0).contains(&t)` comes first, so NaN and +-Inf targets give GHM_ERR_TARGET. */
    const ghm_status target_nonfinite = k->tag == 'c' ? GHM_ERR_TARGET : GHM_ERR_NONFINITE;
    size_t i, p;
    nonfinite[0] = NAN;
    nonfinite[1] = -NAN;
    nonfinite[2] = INFINITY;
    nonfinite[3] = -INFINITY;
    nonfinite[4] = from_bits(0x7F800001u);
    nonfinite[5] = from_bits(0xFFC12345u);

    for (i = 0; i < 6; i++) {
        for (p = 0; p < sizeof positions / sizeof positions[0]; p++) {
            bad_value(k, 0, positions[p], nonfinite[i], N, GHM_ERR_NONFINITE, nonfinite_name[i]);
            bad_value(k, 1, positions[p], nonfinite[i], N, target_nonfinite, nonfinite_name[i]);
            bad_value(k, 2, positions[p], nonfinite[i], N, GHM_ERR_WEIGHT, nonfinite_name[i]);
        }
        /* at the end of a long buffer */
        bad_value(k, 0, N_LONG - 1, nonfinite[i], N_LONG, GHM_ERR_NONFINITE, nonfinite_name[i]);
        bad_value(k, 1, N_LONG - 1, nonfinite[i], N_LONG, target_nonfinite, nonfinite_name[i]);
        bad_value(k, 2, N_LONG - 1, nonfinite[i], N_LONG, GHM_ERR_WEIGHT, nonfinite_name[i]);
    }
    for (p = 0; p < sizeof long_positions / sizeof long_positions[0]; p++) {
        bad_value(k, 0, long_positions[p], NAN, N_LONG, GHM_ERR_NONFINITE, "NaN");
    }
    /* negative label weights */
    {
        static const float neg[] = {-1.0f, -1e-45f, -FLT_MAX};
        static const char *const neg_name[] = {"-1", "-1e-45", "-FLT_MAX"};
        for (i = 0; i < 3; i++) {
            bad_value(k, 2, 5, neg[i], N, GHM_ERR_WEIGHT, neg_name[i]);
            bad_value(k, 2, N_LONG - 1, neg[i], N_LONG, GHM_ERR_WEIGHT, neg_name[i]);
        }
    }
    if (k->tag == 'c') {
        static const float out[] = {-0.1f, 1.1f, -1e-45f, 1.00000012f, -FLT_MAX, FLT_MAX};
        static const char *const out_name[] = {"-0.1", "1.1", "-1e-45", "1+ulp", "-FLT_MAX",
                                               "FLT_MAX"};
        static const float ok_t[] = {-0.0f, 1e-45f, 0.99999994f, 1.0f};
        for (i = 0; i < sizeof out / sizeof out[0]; i++) {
            bad_value(k, 1, 5, out[i], N, GHM_ERR_TARGET, out_name[i]);
            bad_value(k, 1, N_LONG - 1, out[i], N_LONG, GHM_ERR_TARGET, out_name[i]);
        }
        for (i = 0; i < sizeof ok_t / sizeof ok_t[0]; i++) {
            setup(k);
            W.b[5] = ok_t[i];
            SUCCEEDS(label("%s target %g is valid", k->name, (double)ok_t[i]),
                     k->fn(&W.st, W.a, W.b, W.w, N, W.loss, W.grad));
        }
        /* extreme but finite logits are fine */
        setup(k);
        W.a[0] = FLT_MAX;
        W.a[1] = -FLT_MAX;
        SUCCEEDS(label("%s logits +-FLT_MAX are valid", k->name),
                 k->fn(&W.st, W.a, W.b, W.w, N, W.loss, W.grad));
    } else {
        /* pred - target overflows */
        static const float pa[] = {3e38f, -3e38f, FLT_MAX};
        static const float pb[] = {-3e38f, 3e38f, -FLT_MAX};
        int m;
        for (i = 0; i < 3; i++) {
            for (m = 0; m < 3; m++) {
                setup(k);
                W.a[5] = pa[i];
                W.b[5] = pb[i];
                UNTOUCHED(label("%s pred %g target %g (%s)", k->name, (double)pa[i],
                                (double)pb[i], MODE_NAME[m]),
                          GHM_ERR_OVERFLOW,
                          call(k, (enum mode)m, &W.st, W.a, W.b, W.w, N, W.loss));
                setup(k);
                W.a[N_LONG - 1] = pa[i];
                W.b[N_LONG - 1] = pb[i];
                UNTOUCHED(label("%s pred %g target %g at the end, n=%d (%s)", k->name,
                                (double)pa[i], (double)pb[i], N_LONG, MODE_NAME[m]),
                          GHM_ERR_OVERFLOW,
                          call(k, (enum mode)m, &W.st, W.a, W.b, W.w, N_LONG, W.loss));
            }
        }
        /* a large but finite residual is fine */
        setup(k);
        W.a[5] = 1.5e38f;
        W.b[5] = -1.5e38f;
        SUCCEEDS(label("%s residual 3e38 is valid", k->name),
                 k->fn(&W.st, W.a, W.b, W.w, N, W.loss, W.grad));
    }
    /* zero-valued weights of either sign are valid */
    setup(k);
    W.w[5] = -0.0f;
    SUCCEEDS(label("%s weight -0 is valid", k->name),
             k->fn(&W.st, W.a, W.b, W.w, N, W.loss, W.grad));
}

/* Results that overflow float: the loss or a harmonized weight. */
static void test_result_overflow(const kind *k) {
    ghm_config c = k->defaults();
    int m;
    for (m = 0; m < 3; m++) {
        /* loss_weight 1e38 on one element whose term is about 100: the weight (2e38) is
         * finite, the loss is not */
        setup(k);
        c = k->defaults();
        c.momentum = 0.5f;
        c.loss_weight = 1e38f;
        SUCCEEDS(label("%s init loss_weight 1e38", k->name), k->init(&W.st, &c));
        W.a[0] = 100.0f;
        W.b[0] = 0.0f;
        UNTOUCHED(label("%s loss overflow (%s)", k->name, MODE_NAME[m]), GHM_ERR_OVERFLOW,
                  call(k, (enum mode)m, &W.st, W.a, W.b, NULL, 1, W.loss));
        /* momentum 0.9: a first hit gives D = 0.1, so the weight is 10 * loss_weight */
        setup(k);
        c = k->defaults();
        c.momentum = 0.9f;
        c.loss_weight = 1e38f;
        SUCCEEDS(label("%s init loss_weight 1e38", k->name), k->init(&W.st, &c));
        W.a[0] = 0.5f;
        W.b[0] = 0.0f;
        UNTOUCHED(label("%s harmonized weight overflow (%s)", k->name, MODE_NAME[m]),
                  GHM_ERR_OVERFLOW, call(k, (enum mode)m, &W.st, W.a, W.b, NULL, 1, W.loss));
    }
}

/* Overlapping buffers, laid out in W.arena. */
static void test_overlaps(const kind *k) {
    float *A = W.arena + 64, *B = W.arena + 256, *Wt = W.arena + 448, *G = W.arena + 640,
          *L = W.arena + 832;
    float *S = W.arena + 1024; /* room for a state */
    ghm_state *sp = (ghm_state *)(void *)S;
    size_t i;

#define LAYOUT()                                                                               \
    do {                                                                                       \
        setup(k);                                                                              \
        memcpy(A, W.a, 128 * sizeof(float));                                                   \
        memcpy(B, W.b, 128 * sizeof(float));                                                   \
        memcpy(Wt, W.w, 128 * sizeof(float));                                                  \
        memcpy(sp, &W.st, sizeof W.st);                                                        \
    } while (0)

    LAYOUT();
    /* grad partly overlapping an input */
    UNTOUCHED(label("%s grad = logits + 1", k->name), GHM_ERR_OVERLAP,
              k->fn(sp, A, B, Wt, N, L, A + 1));
    UNTOUCHED(label("%s grad = logits - 1", k->name), GHM_ERR_OVERLAP,
              k->fn(sp, A, B, Wt, N, L, A - 1));
    UNTOUCHED(label("%s grad = logits + n - 1", k->name), GHM_ERR_OVERLAP,
              k->fn(sp, A, B, Wt, N, L, A + N - 1));
    UNTOUCHED(label("%s grad = logits + 1, weights NULL", k->name), GHM_ERR_OVERLAP,
              k->fn(sp, A, B, NULL, N, L, A + 1));
    UNTOUCHED(label("%s grad == targets", k->name), GHM_ERR_OVERLAP, k->fn(sp, A, B, Wt, N, L, B));
    UNTOUCHED(label("%s grad = targets + 3", k->name), GHM_ERR_OVERLAP,
              k->fn(sp, A, B, Wt, N, L, B + 3));
    UNTOUCHED(label("%s grad = targets - 3", k->name), GHM_ERR_OVERLAP,
              k->fn(sp, A, B, Wt, N, L, B - 3));
    UNTOUCHED(label("%s grad == weights", k->name), GHM_ERR_OVERLAP, k->fn(sp, A, B, Wt, N, L, Wt));
    UNTOUCHED(label("%s grad = weights + 5", k->name), GHM_ERR_OVERLAP,
              k->fn(sp, A, B, Wt, N, L, Wt + 5));
    UNTOUCHED(label("%s grad = weights - 5", k->name), GHM_ERR_OVERLAP,
              k->fn(sp, A, B, Wt, N, L, Wt - 5));
    /* in place, but the logits buffer is also another input */
    UNTOUCHED(label("%s grad == logits == targets", k->name), GHM_ERR_OVERLAP,
              k->fn(sp, A, A, Wt, N, L, A));
    UNTOUCHED(label("%s grad == logits == weights", k->name), GHM_ERR_OVERLAP,
              k->fn(sp, A, B, A, N, L, A));
    /* loss inside an input, the gradient or the state */
    UNTOUCHED(label("%s loss inside logits", k->name), GHM_ERR_OVERLAP,
              k->fn(sp, A, B, Wt, N, A + 3, G));
    UNTOUCHED(label("%s loss == &logits[0]", k->name), GHM_ERR_OVERLAP,
              k->fn(sp, A, B, Wt, N, A, G));
    UNTOUCHED(label("%s loss == &logits[n-1]", k->name), GHM_ERR_OVERLAP,
              k->fn(sp, A, B, Wt, N, A + N - 1, G));
    UNTOUCHED(label("%s loss inside logits, grad NULL", k->name), GHM_ERR_OVERLAP,
              k->fn(sp, A, B, Wt, N, A + 3, NULL));
    UNTOUCHED(label("%s loss inside logits, in place", k->name), GHM_ERR_OVERLAP,
              k->fn(sp, A, B, Wt, N, A + 3, A));
    UNTOUCHED(label("%s loss inside targets", k->name), GHM_ERR_OVERLAP,
              k->fn(sp, A, B, Wt, N, B + 3, G));
    UNTOUCHED(label("%s loss inside weights", k->name), GHM_ERR_OVERLAP,
              k->fn(sp, A, B, Wt, N, Wt + 3, G));
    UNTOUCHED(label("%s loss inside grad", k->name), GHM_ERR_OVERLAP,
              k->fn(sp, A, B, Wt, N, G + 3, G));
    UNTOUCHED(label("%s loss inside the state", k->name), GHM_ERR_OVERLAP,
              k->fn(sp, A, B, Wt, N, &sp->ema[3], G));
    /* the state overlapping an input or the gradient */
    for (i = 0; i < 3; i++) {
        float *in = i == 0 ? A : i == 1 ? B : Wt;
        static const char *const nm[3] = {"logits", "targets", "weights"};
        LAYOUT();
        memcpy(in + 4, &W.st, sizeof W.st);
        UNTOUCHED(label("%s state inside %s", k->name, nm[i]), GHM_ERR_OVERLAP,
                  k->fn((ghm_state *)(void *)(in + 4), A, B, Wt, N, L, G));
        LAYOUT();
        memcpy(in - 4, &W.st, sizeof W.st);
        UNTOUCHED(label("%s state ending inside %s", k->name, nm[i]), GHM_ERR_OVERLAP,
                  k->fn((ghm_state *)(void *)(in - 4), A, B, Wt, N, L, NULL));
    }
    LAYOUT();
    memcpy(G + 2, &W.st, sizeof W.st);
    UNTOUCHED(label("%s state inside grad", k->name), GHM_ERR_OVERLAP,
              k->fn((ghm_state *)(void *)(G + 2), A, B, Wt, N, L, G));
    LAYOUT();
    memcpy(A + 2, &W.st, sizeof W.st);
    UNTOUCHED(label("%s state inside logits, in place", k->name), GHM_ERR_OVERLAP,
              k->fn((ghm_state *)(void *)(A + 2), A, B, Wt, N, L, A));

    /* allowed: grad exactly the logits; buffers that merely touch; inputs sharing memory */
    LAYOUT();
    SUCCEEDS(label("%s grad == logits (in place)", k->name), k->fn(sp, A, B, Wt, N, L, A));
    LAYOUT();
    SUCCEEDS(label("%s grad == logits, weights NULL", k->name), k->fn(sp, A, B, NULL, N, L, A));
    LAYOUT();
    SUCCEEDS(label("%s grad right after logits", k->name), k->fn(sp, A, B, Wt, N, L, A + N));
    LAYOUT();
    SUCCEEDS(label("%s grad right before logits", k->name), k->fn(sp, A, B, Wt, N, L, A - N));
    LAYOUT();
    SUCCEEDS(label("%s loss right after logits", k->name), k->fn(sp, A, B, Wt, N, A + N, G));
    LAYOUT();
    SUCCEEDS(label("%s loss right before logits", k->name), k->fn(sp, A, B, Wt, N, A - 1, G));
    LAYOUT();
    memcpy(A + N, &W.st, sizeof W.st);
    SUCCEEDS(label("%s state right after logits", k->name),
             k->fn((ghm_state *)(void *)(A + N), A, B, Wt, N, L, G));
    LAYOUT();
    for (i = 0; i < N; i++) {
        A[i] = B[i]; /* valid as logits and as targets */
    }
    SUCCEEDS(label("%s logits and targets the same buffer", k->name),
             k->fn(sp, A, A, Wt, N, L, G));
#undef LAYOUT
}

/* Successful calls write exactly loss and grad[0..n), and write every grad element. */
static void test_writes_in_range(const kind *k) {
    static const size_t ns[] = {1, 3, 13, 64, 997};
    size_t t, i;
    int m;
    for (t = 0; t < sizeof ns / sizeof ns[0]; t++) {
        size_t n = ns[t];
        for (m = 0; m < 2; m++) {
            float *g = W.grad + 1;
            ghm_status s;
            int ok;
            setup(k);
            if (m == 1) {
                memcpy(g, W.a, n * sizeof(float)); /* in place at an odd offset */
            }
            s = k->fn(&W.st, m == 1 ? g : W.a, W.b, W.w, n, &W.loss[1], g);
            ok = s == GHM_OK && W.grad[0] == from_bits(0xA5A5A5A5u) &&
                 W.loss[0] == from_bits(0xA5A5A5A5u) && W.loss[2] == from_bits(0xA5A5A5A5u);
            for (i = n + 1; ok && i < N_LONG + SLACK; i++) {
                ok = memcmp(&W.grad[i], "\xA5\xA5\xA5\xA5", 4) == 0;
            }
            for (i = 0; ok && i < n; i++) {
                /* weight-0 elements get exactly 0, the rest a finite value */
                ok = isfinite(g[i]) && (W.w[i] != 0.0f || g[i] == 0.0f);
            }
            check(ok, label("%s n=%zu %s", k->name, n, m ? "in place" : "separate grad"),
                  "failed, wrote outside loss/grad[0..n), or left a grad element unwritten");
        }
    }
}

/* ================================ the three-phase API ===================================== */

struct align_stats {
    char c;
    ghm_stats t;
};
struct align_weights {
    char c;
    ghm_region_weights t;
};
struct align_layout {
    char c;
    ghm_class_layout t;
};
#define ALIGN_STATS offsetof(struct align_stats, t)
#define ALIGN_WEIGHTS offsetof(struct align_weights, t)
#define ALIGN_LAYOUT offsetof(struct align_layout, t)

typedef ghm_status (*acc_fn)(const ghm_state *, const float *, const float *, const float *,
                             size_t, ghm_stats *);
typedef ghm_status (*apply_fn)(const ghm_region_weights *, const float *, const float *, const float *,
                               size_t, const ghm_output *, float *);

static acc_fn ACC(const kind *k) { return k->tag == 'c' ? ghm_c_accumulate : ghm_r_accumulate; }
static apply_fn APPLY(const kind *k) { return k->tag == 'c' ? ghm_c_apply : ghm_r_apply; }

/* An 8-aligned start inside W.arena (for stats, weights and layouts placed there). */
static float *arena8(void) {
    return (uintptr_t)(void *)W.arena % 8u == 0 ? W.arena : W.arena + 1;
}

/* `size` bytes of `src` copied to W.raw.bytes + off: valid contents at a misaligned address.
 * Call it before UNTOUCHED (which snapshots), not inside it. */
static void *raw_copy(const void *src, size_t size, size_t off) {
    memcpy(W.raw.bytes + off, src, size);
    return W.raw.bytes + off;
}

/* Byte offsets that misalign a type of alignment `al`: 1, and 4 when that is not a multiple. */
static size_t misalign_offsets(size_t al, size_t offs[2]) {
    offs[0] = 1;
    if (al > 4) {
        offs[1] = 4;
        return 2;
    }
    return 1;
}

static ghm_class_layout make_layout(size_t anchors, size_t classes, size_t anchor_stride,
                                    size_t class_stride) {
    ghm_class_layout l;
    memset(&l, 0, sizeof l);
    l.anchors = anchors;
    l.classes = classes;
    l.anchor_stride = anchor_stride;
    l.class_stride = class_stride;
    return l;
}

static void fill_probabilities(void) {
    size_t i;
    for (i = 0; i < N_LONG + SLACK; i++) {
        W.a[i] = (float)(i % 11u) / 10.0f;
    }
}

#define BIG_HALF (((size_t)1 << 24) + 2)

/* Two halves of BIG_HALF floats (zero pages, never touched) for the layouts with more than
 * 2^24 classes: logits in the first, an apply's out in the second. Outside the world: the
 * library must refuse the layout without reading or writing either. */
static float *big = NULL;

static void free_big_buffer(void) {
    free(big);
}

static float *big_buffer(void) {
    if (big == NULL) {
        big = (float *)calloc(2 * BIG_HALF, sizeof(float));
        if (big == NULL) {
            printf("errors: out of memory\n");
            exit(2);
        }
        atexit(free_big_buffer); /* leak checkers see every block freed */
    }
    return big;
}

#define N_STATS_FAULTS 15

/* Fault `i` written into *s (valid stats of W.st's loss and bins); its name. */
static const char *stats_fault(int i, ghm_stats *s) {
    switch (i) {
    case 0:
        *s = W.sother;
        return "stats of the other loss";
    case 1:
        *s = W.sbins;
        return "stats for 10 bins (state has 30)";
    case 2:
        memset(s, 0x00, sizeof *s);
        return "stats zeroed";
    case 3:
        memset(s, 0x5A, sizeof *s);
        return "stats of garbage 0x5A";
    case 4:
        memset(s, 0xFF, sizeof *s);
        return "stats of garbage 0xFF";
    case 5:
        memset(s, POISON, sizeof *s);
        return "stats never initialised (0xA5)";
    case 6:
        s->count[40] = 1.0;
        return "count past the bin count";
    case 7:
        s->count[2] = -1.0;
        return "negative count";
    case 8:
        s->count[2] = NAN;
        return "NaN count";
    case 9:
        s->count[3] = INFINITY;
        return "infinite count";
    case 10:
        s->parts = 0.0;
        return "parts 0";
    case 11:
        s->parts = 1.5;
        return "parts 1.5";
    case 12:
        s->tag += 1.0;
        return "tag changed";
    case 13:
        s->loss_sum[1] = INFINITY;
        return "infinite loss sum";
    default:
        s->weight_sum = -1.0;
        return "negative weight sum";
    }
}

/* ghm_stats_init and ghm_stats_merge. */
static void test_stats_init_merge(const kind *k) {
    static const unsigned char fills[] = {0x00, 0x5A, 0xFF, POISON};
    float *ar = arena8();
    size_t offs[2], no, i;
    void *p;
    ghm_stats *sp;

    setup(k);
    UNTOUCHED(label("%s stats_init: NULL state", k->name), GHM_ERR_NULL,
              ghm_stats_init(NULL, &W.stats));
    UNTOUCHED(label("%s stats_init: NULL stats", k->name), GHM_ERR_NULL,
              ghm_stats_init(&W.st, NULL));
    UNTOUCHED(label("%s stats_init: NULL state and stats", k->name), GHM_ERR_NULL,
              ghm_stats_init(NULL, NULL));
    p = raw_copy(&W.st, sizeof W.st, 1);
    UNTOUCHED(label("%s stats_init: misaligned state", k->name), GHM_ERR_MISALIGNED,
              ghm_stats_init((const ghm_state *)p, &W.stats));
    no = misalign_offsets(ALIGN_STATS, offs);
    for (i = 0; i < no; i++) {
        setup(k);
        UNTOUCHED(label("%s stats_init: stats misaligned by %zu", k->name, offs[i]),
                  GHM_ERR_MISALIGNED,
                  ghm_stats_init(&W.st, (ghm_stats *)(void *)(W.raw.bytes + offs[i])));
    }
    for (i = 0; i < sizeof fills; i++) {
        setup(k);
        memset(&W.st, fills[i], sizeof W.st);
        UNTOUCHED(label("%s stats_init: state filled with 0x%02x", k->name, fills[i]),
                  GHM_ERR_STATE, ghm_stats_init(&W.st, &W.stats));
    }
    /* stats overlapping the state */
    setup(k);
    memcpy(ar, &W.st, sizeof W.st);
    UNTOUCHED(label("%s stats_init: stats starting inside the state", k->name), GHM_ERR_OVERLAP,
              ghm_stats_init((const ghm_state *)(void *)ar, (ghm_stats *)(void *)(ar + 8)));
    memcpy(ar + 512, &W.st, sizeof W.st);
    UNTOUCHED(label("%s stats_init: stats ending inside the state", k->name), GHM_ERR_OVERLAP,
              ghm_stats_init((const ghm_state *)(void *)(ar + 512),
                             (ghm_stats *)(void *)((char *)(ar + 512) - sizeof(ghm_stats) + 8)));
    SUCCEEDS(label("%s stats_init: state of either loss", k->name),
             ghm_stats_init(&W.other, &W.sother));

    /* merge */
    setup(k);
    UNTOUCHED(label("%s merge: NULL from", k->name), GHM_ERR_NULL,
              ghm_stats_merge(NULL, &W.stats));
    UNTOUCHED(label("%s merge: NULL into", k->name), GHM_ERR_NULL,
              ghm_stats_merge(&W.stats, NULL));
    for (i = 0; i < no; i++) {
        p = raw_copy(&W.stats, sizeof W.stats, offs[i]);
        UNTOUCHED(label("%s merge: from misaligned by %zu", k->name, offs[i]),
                  GHM_ERR_MISALIGNED, ghm_stats_merge((const ghm_stats *)p, &W.stats));
        UNTOUCHED(label("%s merge: into misaligned by %zu", k->name, offs[i]),
                  GHM_ERR_MISALIGNED, ghm_stats_merge(&W.stats, (ghm_stats *)p));
    }
    UNTOUCHED(label("%s merge: from == into", k->name), GHM_ERR_OVERLAP,
              ghm_stats_merge(&W.stats, &W.stats));
    sp = (ghm_stats *)(void *)ar;
    *sp = W.stats;
    UNTOUCHED(label("%s merge: into starting inside from", k->name), GHM_ERR_OVERLAP,
              ghm_stats_merge(sp, (ghm_stats *)(void *)(ar + 2)));
    UNTOUCHED(label("%s merge: from starting inside into", k->name), GHM_ERR_OVERLAP,
              ghm_stats_merge((const ghm_stats *)(void *)(ar + 2), sp));
    /* merge does not judge; commit does */
    setup(k);
    SUCCEEDS(label("%s merge: stats of the other loss", k->name),
             ghm_stats_merge(&W.sother, &W.stats));
    {
        ghm_state st = W.st;
        ghm_region_weights wt;
        float l;
        UNTOUCHED(label("%s commit after merging stats of the other loss", k->name),
                  GHM_ERR_STATS_MISMATCH, ghm_commit(&W.stats, &st, &wt, &l));
    }
}

/* ghm_state_set_ema. */
static void test_set_ema(const kind *k) {
    static const unsigned char fills[] = {0x00, 0x5A, 0xFF, POISON};
    static const float bad_values[] = {-1.0f, -0.0f * 0.0f - 1e-30f, 0.0f / 0.0f, 1.0f / 0.0f};
    float *ar = arena8();
    float ema[GHM_MAX_BINS];
    size_t bins, i;
    void *p;

    setup(k);
    bins = W.st.config.bins;
    for (i = 0; i < GHM_MAX_BINS; i++) {
        ema[i] = 10.0f * (float)i;
    }
    UNTOUCHED(label("%s set_ema: NULL state", k->name), GHM_ERR_NULL,
              ghm_state_set_ema(ema, bins, NULL));
    UNTOUCHED(label("%s set_ema: NULL values", k->name), GHM_ERR_NULL,
              ghm_state_set_ema(NULL, bins, &W.st));
    UNTOUCHED(label("%s set_ema: misaligned values", k->name), GHM_ERR_MISALIGNED,
              ghm_state_set_ema((const float *)(void *)((char *)ar + 1), bins, &W.st));
    p = raw_copy(&W.st, sizeof W.st, 1);
    UNTOUCHED(label("%s set_ema: misaligned state", k->name), GHM_ERR_MISALIGNED,
              ghm_state_set_ema(ema, bins, (ghm_state *)p));
    UNTOUCHED(label("%s set_ema: one value too few", k->name), GHM_ERR_LENGTH,
              ghm_state_set_ema(ema, bins - 1, &W.st));
    UNTOUCHED(label("%s set_ema: one value too many", k->name), GHM_ERR_LENGTH,
              ghm_state_set_ema(ema, bins + 1, &W.st));
    UNTOUCHED(label("%s set_ema: length past the address space", k->name), GHM_ERR_LENGTH,
              ghm_state_set_ema(ema, SIZE_MAX / 2, &W.st));
    for (i = 0; i < sizeof bad_values / sizeof bad_values[0]; i++) {
        float v[GHM_MAX_BINS];
        memcpy(v, ema, sizeof v);
        v[bins - 1] = bad_values[i];
        UNTOUCHED(label("%s set_ema: value %g", k->name, (double)bad_values[i]),
                  GHM_ERR_STATS_MISMATCH, ghm_state_set_ema(v, bins, &W.st));
    }
    for (i = 0; i < sizeof fills; i++) {
        setup(k);
        memset(&W.st, fills[i], sizeof W.st);
        UNTOUCHED(label("%s set_ema: state filled with 0x%02x", k->name, fills[i]),
                  GHM_ERR_STATE, ghm_state_set_ema(ema, bins, &W.st));
    }
    /* values inside the state they would rewrite */
    setup(k);
    memcpy(ar, &W.st, sizeof W.st);
    UNTOUCHED(label("%s set_ema: values inside the state", k->name), GHM_ERR_OVERLAP,
              ghm_state_set_ema(ar + 16, bins, (ghm_state *)(void *)ar));
    SUCCEEDS(label("%s set_ema: valid values", k->name), ghm_state_set_ema(ema, bins, &W.st));
    for (i = 0; i < bins; i++) {
        if (W.st.ema[i] != ema[i]) {
            fail(label("%s set_ema: region %zu", k->name, i), "EMA %g, want %g",
                 (double)W.st.ema[i], (double)ema[i]);
        }
    }
}

/* ghm_c_accumulate / ghm_r_accumulate. */
static void test_accumulate(const kind *k) {
    static const unsigned char fills[] = {0x00, 0x5A, 0xFF, POISON};
    static const size_t huge[] = {SIZE_MAX, SIZE_MAX / 2, SIZE_MAX / 4 + 1};
    const acc_fn acc = ACC(k);
    float *ar = arena8();
    float *A = ar + 64, *B = ar + 256, *Wt = ar + 448, *S = ar + 640, *ST = ar + 1024;
    size_t offs[2], no, i;
    void *p;
    int f;

    /* n = 0: OK, the stats as they were */
    setup(k);
    UNTOUCHED(label("%s accumulate n=0, arrays NULL", k->name), GHM_OK,
              acc(&W.st, NULL, NULL, NULL, 0, &W.stats));
    UNTOUCHED(label("%s accumulate n=0, arrays non-NULL", k->name), GHM_OK,
              acc(&W.st, W.a, W.b, W.w, 0, &W.stats));
    UNTOUCHED(label("%s accumulate n=0: NULL state", k->name), GHM_ERR_NULL,
              acc(NULL, NULL, NULL, NULL, 0, &W.stats));
    UNTOUCHED(label("%s accumulate n=0: NULL stats", k->name), GHM_ERR_NULL,
              acc(&W.st, NULL, NULL, NULL, 0, NULL));
    UNTOUCHED(label("%s accumulate n=0: misaligned stats", k->name), GHM_ERR_MISALIGNED,
              acc(&W.st, NULL, NULL, NULL, 0, (ghm_stats *)(void *)(W.raw.bytes + 1)));
    UNTOUCHED(label("%s accumulate n=0: misaligned logits", k->name), GHM_ERR_MISALIGNED,
              acc(&W.st, misalign(W.a), W.b, W.w, 0, &W.stats));
    UNTOUCHED(label("%s accumulate n=0: stats of the other loss", k->name),
              GHM_ERR_STATS_MISMATCH, acc(&W.st, NULL, NULL, NULL, 0, &W.sother));
    memset(&W.st, 0x5A, sizeof W.st);
    UNTOUCHED(label("%s accumulate n=0: garbage state", k->name), GHM_ERR_STATE,
              acc(&W.st, NULL, NULL, NULL, 0, &W.stats));

    /* NULL, misaligned, too long */
    setup(k);
    UNTOUCHED(label("%s accumulate: NULL state", k->name), GHM_ERR_NULL,
              acc(NULL, W.a, W.b, W.w, N, &W.stats));
    UNTOUCHED(label("%s accumulate: NULL logits/pred", k->name), GHM_ERR_NULL,
              acc(&W.st, NULL, W.b, W.w, N, &W.stats));
    UNTOUCHED(label("%s accumulate: NULL stats", k->name), GHM_ERR_NULL,
              acc(&W.st, W.a, W.b, W.w, N, NULL));
    if (k->tag == 'c') {
        UNTOUCHED(label("%s accumulate: NULL targets", k->name), GHM_ERR_NULL,
                  acc(&W.st, W.a, NULL, W.w, N, &W.stats));
    } else {
        SUCCEEDS(label("%s accumulate: NULL target (residuals)", k->name),
                 acc(&W.st, W.a, NULL, W.w, N, &W.stats));
        setup(k);
    }
    p = raw_copy(&W.st, sizeof W.st, 1);
    UNTOUCHED(label("%s accumulate: misaligned state", k->name), GHM_ERR_MISALIGNED,
              acc((const ghm_state *)p, W.a, W.b, W.w, N, &W.stats));
    UNTOUCHED(label("%s accumulate: misaligned logits/pred", k->name), GHM_ERR_MISALIGNED,
              acc(&W.st, misalign(W.a), W.b, W.w, N, &W.stats));
    UNTOUCHED(label("%s accumulate: misaligned targets", k->name), GHM_ERR_MISALIGNED,
              acc(&W.st, W.a, misalign(W.b), W.w, N, &W.stats));
    UNTOUCHED(label("%s accumulate: misaligned weights", k->name), GHM_ERR_MISALIGNED,
              acc(&W.st, W.a, W.b, misalign(W.w), N, &W.stats));
    no = misalign_offsets(ALIGN_STATS, offs);
    for (i = 0; i < no; i++) {
        p = raw_copy(&W.stats, sizeof W.stats, offs[i]);
        UNTOUCHED(label("%s accumulate: stats misaligned by %zu", k->name, offs[i]),
                  GHM_ERR_MISALIGNED, acc(&W.st, W.a, W.b, W.w, N, (ghm_stats *)p));
    }
    for (i = 0; i < sizeof huge / sizeof huge[0]; i++) {
        UNTOUCHED(label("%s accumulate: n=%zu", k->name, huge[i]), GHM_ERR_LENGTH,
                  acc(&W.st, W.a, W.b, W.w, huge[i], &W.stats));
        UNTOUCHED(label("%s accumulate: n=%zu, weights NULL", k->name, huge[i]), GHM_ERR_LENGTH,
                  acc(&W.st, W.a, W.b, NULL, huge[i], &W.stats));
    }

    /* the stats overlapping an input */
    {
        float *ins[4];
        static const char *const nm[4] = {"logits/pred", "targets", "weights", "state"};
        ins[0] = A;
        ins[1] = B;
        ins[2] = Wt;
        ins[3] = S;
        for (i = 0; i < 4; i++) {
            setup(k);
            memcpy(A, W.a, 128 * sizeof(float));
            memcpy(B, W.b, 128 * sizeof(float));
            memcpy(Wt, W.w, 128 * sizeof(float));
            memcpy(S, &W.st, sizeof W.st);
            UNTOUCHED(label("%s accumulate: stats starting inside %s", k->name, nm[i]),
                      GHM_ERR_OVERLAP,
                      acc((const ghm_state *)(void *)S, A, B, Wt, N,
                          (ghm_stats *)(void *)(ins[i] + 4)));
            UNTOUCHED(label("%s accumulate: stats ending inside %s", k->name, nm[i]),
                      GHM_ERR_OVERLAP,
                      acc((const ghm_state *)(void *)S, A, B, Wt, N,
                          (ghm_stats *)(void *)((char *)ins[i] - sizeof(ghm_stats) + 8)));
        }
        setup(k);
        memcpy(A, W.a, 128 * sizeof(float));
        memcpy(A + N, &W.stats, sizeof W.stats);
        SUCCEEDS(label("%s accumulate: stats right after the logits", k->name),
                 acc(&W.st, A, W.b, W.w, N, (ghm_stats *)(void *)(A + N)));
        (void)ST;
    }

    /* stats and states that do not fit */
    for (f = 0; f < N_STATS_FAULTS; f++) {
        const char *what;
        setup(k);
        what = stats_fault(f, &W.stats);
        UNTOUCHED(label("%s accumulate: %s", k->name, what), GHM_ERR_STATS_MISMATCH,
                  acc(&W.st, W.a, W.b, W.w, N, &W.stats));
    }
    for (i = 0; i < sizeof fills; i++) {
        setup(k);
        memset(&W.st, fills[i], sizeof W.st);
        UNTOUCHED(label("%s accumulate: state filled with 0x%02x", k->name, fills[i]),
                  GHM_ERR_STATE, acc(&W.st, W.a, W.b, W.w, N, &W.stats));
    }
    setup(k);
    UNTOUCHED(label("%s accumulate: state of the other loss", k->name), GHM_ERR_WRONG_LOSS,
              acc(&W.other, W.a, W.b, W.w, N, &W.stats));
}

/* The layouts ghm_c_accumulate_labels and ghm_c_apply_labels must refuse with want. */
#define N_BAD_LAYOUTS 19
static ghm_class_layout bad_layout(int i, const float **logits, ghm_status *want,
                                   const char **what) {
    *want = GHM_ERR_LAYOUT;
    switch (i) {
    case 0:
        *what = "both strides > 1";
        return make_layout(LA, LC, 7, 3);
    case 1:
        *what = "rows overlapping (anchor_stride < classes)";
        return make_layout(LA, LC, LC - 1, 1);
    case 2:
        *what = "planes overlapping (class_stride < anchors)";
        return make_layout(LA, LC, 1, LA - 1);
    case 3:
        *what = "both strides 1";
        return make_layout(LA, LC, 1, 1);
    case 4:
        *what = "anchor_stride 0";
        return make_layout(LA, LC, 0, 1);
    case 5:
        *what = "class_stride 0";
        return make_layout(LA, LC, LC, 0);
    case 6:
        *what = "2^24 + 1 classes, one anchor";
        *logits = big_buffer();
        return make_layout(1, ((size_t)1 << 24) + 1, ((size_t)1 << 24) + 1, 1);
    case 7:
        *what = "2^24 + 1 classes, no anchor";
        return make_layout(0, ((size_t)1 << 24) + 1, ((size_t)1 << 24) + 1, 1);
    case 11:
        *what = "one anchor, class_stride 0 (its classes overlap)";
        return make_layout(1, LC, LC, 0);
    case 12:
        *what = "one class, anchor_stride 0 (its anchors overlap)";
        return make_layout(LA, 1, 0, 1);
    case 8:
        *what = "extent overflows (anchor_stride SIZE_MAX)";
        *want = GHM_ERR_LENGTH;
        return make_layout(2, LC, SIZE_MAX, 1);
    case 9:
        *what = "extent overflows (SIZE_MAX/2 anchors)";
        *want = GHM_ERR_LENGTH;
        return make_layout(SIZE_MAX / 2, LC, LC, 1);
    case 13: {
        ghm_class_layout l = make_layout(3, LC, LC, 1);
        *what = "blocks overlapping (box_stride < a block's extent)";
        l.boxes = 2;
        l.box_stride = 3 * LC - 1;
        return l;
    }
    case 14: {
        ghm_class_layout l = make_layout(3, LC, LC, 1);
        *what = "images overlapping (image_stride < an image's extent)";
        l.boxes = 2;
        l.box_stride = 3 * LC;
        l.images = 2;
        l.image_stride = 6 * LC - 1;
        return l;
    }
    case 15: {
        ghm_class_layout l = make_layout(LA, LC, 1, LA);
        *what = "planes blocks overlapping (box_stride 1)";
        l.boxes = 2;
        l.box_stride = 1;
        return l;
    }
    case 16: {
        ghm_class_layout l = make_layout(3, LC, LC, 1);
        *what = "extent overflows (image_stride SIZE_MAX)";
        *want = GHM_ERR_LENGTH;
        l.images = 2;
        l.image_stride = SIZE_MAX;
        return l;
    }
    case 17: {
        ghm_class_layout l = make_layout(3, LC, LC, 1);
        *what = "anchor count overflows (SIZE_MAX images of 2 boxes)";
        *want = GHM_ERR_LENGTH;
        l.boxes = 2;
        l.box_stride = 3 * LC;
        l.images = SIZE_MAX;
        l.image_stride = 0;
        return l;
    }
    case 18: {
        ghm_class_layout l = make_layout(3, LC, LC, 1);
        *what = "label count overflows (labels_per_anchor SIZE_MAX)";
        *want = GHM_ERR_LENGTH;
        l.labels_per_anchor = SIZE_MAX;
        return l;
    }
    default:
        *what = "extent too long (SIZE_MAX/4 + 1 anchors of one class)";
        *want = GHM_ERR_LENGTH;
        return make_layout(SIZE_MAX / 4 + 1, 1, 1, 1);
    }
}

/* Layouts that are fine (and fit in W.a). */
#define N_GOOD_LAYOUTS 10
static ghm_class_layout good_layout(int i, const char **what) {
    ghm_class_layout l;
    switch (i) {
    case 6:
        *what = "rows, 3 labels per anchor";
        l = make_layout(LA, LC, LC, 1);
        l.labels_per_anchor = 3;
        return l;
    case 7:
        *what = "planes, 2 images of 3 boxes with gaps, 2 labels per anchor";
        l = make_layout(LA, LC, 1, LA + 1);
        l.labels_per_anchor = 2;
        l.boxes = 3;
        l.box_stride = LA * LC + LC + 2;
        l.images = 2;
        l.image_stride = 3 * (LA * LC + LC + 2) + 5;
        return l;
    case 8:
        *what = "rows, 4 images (boxes 0: one per image)";
        l = make_layout(LA, LC, LC, 1);
        l.images = 4;
        l.image_stride = LA * LC;
        return l;
    case 9:
        *what = "one image of 2 boxes, image_stride unused";
        l = make_layout(LA, LC, LC, 1);
        l.boxes = 2;
        l.box_stride = LA * LC;
        l.images = 1;
        l.image_stride = 3;
        return l;
    case 0:
        *what = "rows";
        return make_layout(LA, LC, LC, 1);
    case 1:
        *what = "rows with gaps";
        return make_layout(LA, LC, LC + 3, 1);
    case 2:
        *what = "planes";
        return make_layout(LA, LC, 1, LA);
    case 3:
        *what = "planes with gaps";
        return make_layout(LA, LC, 1, LA + 7);
    case 4:
        *what = "one anchor, both strides > 1";
        return make_layout(1, LC, 7, 3);
    default:
        *what = "one class, both strides > 1";
        return make_layout(LA, 1, 3, 7);
    }
}

/* ghm_c_accumulate_labels (GHM-C only). */
static void test_accumulate_labels(const kind *k) {
    static const unsigned char fills[] = {0x00, 0x5A, 0xFF, POISON};
    float *ar = arena8();
    float *A = ar + 64, *Wt = ar + 448, *S = ar + 640;
    int32_t *LB = (int32_t *)(void *)(ar + 256);
    ghm_class_layout *LY = (ghm_class_layout *)(void *)(ar + 800);
    size_t offs[2], no, i;
    void *p;
    int f;

    setup(k);
    W.layout.anchors = 0;
    UNTOUCHED(label("%s accumulate_labels 0 anchors, arrays NULL", k->name), GHM_OK,
              ghm_c_accumulate_labels(&W.st, NULL, &W.layout, NULL, NULL, &W.stats));
    UNTOUCHED(label("%s accumulate_labels 0 anchors, arrays non-NULL", k->name), GHM_OK,
              ghm_c_accumulate_labels(&W.st, W.a, &W.layout, W.labels, W.w, &W.stats));
    UNTOUCHED(label("%s accumulate_labels 0 anchors: NULL state", k->name), GHM_ERR_NULL,
              ghm_c_accumulate_labels(NULL, NULL, &W.layout, NULL, NULL, &W.stats));
    UNTOUCHED(label("%s accumulate_labels 0 anchors: NULL layout", k->name), GHM_ERR_NULL,
              ghm_c_accumulate_labels(&W.st, NULL, NULL, NULL, NULL, &W.stats));
    UNTOUCHED(label("%s accumulate_labels 0 anchors: NULL stats", k->name), GHM_ERR_NULL,
              ghm_c_accumulate_labels(&W.st, NULL, &W.layout, NULL, NULL, NULL));

    setup(k);
    UNTOUCHED(label("%s accumulate_labels: NULL state", k->name), GHM_ERR_NULL,
              ghm_c_accumulate_labels(NULL, W.a, &W.layout, W.labels, W.w, &W.stats));
    UNTOUCHED(label("%s accumulate_labels: NULL logits", k->name), GHM_ERR_NULL,
              ghm_c_accumulate_labels(&W.st, NULL, &W.layout, W.labels, W.w, &W.stats));
    UNTOUCHED(label("%s accumulate_labels: NULL layout", k->name), GHM_ERR_NULL,
              ghm_c_accumulate_labels(&W.st, W.a, NULL, W.labels, W.w, &W.stats));
    UNTOUCHED(label("%s accumulate_labels: NULL labels", k->name), GHM_ERR_NULL,
              ghm_c_accumulate_labels(&W.st, W.a, &W.layout, NULL, W.w, &W.stats));
    UNTOUCHED(label("%s accumulate_labels: NULL stats", k->name), GHM_ERR_NULL,
              ghm_c_accumulate_labels(&W.st, W.a, &W.layout, W.labels, W.w, NULL));
    p = raw_copy(&W.st, sizeof W.st, 1);
    UNTOUCHED(label("%s accumulate_labels: misaligned state", k->name), GHM_ERR_MISALIGNED,
              ghm_c_accumulate_labels((const ghm_state *)p, W.a, &W.layout, W.labels, W.w,
                                      &W.stats));
    UNTOUCHED(label("%s accumulate_labels: misaligned logits", k->name), GHM_ERR_MISALIGNED,
              ghm_c_accumulate_labels(&W.st, misalign(W.a), &W.layout, W.labels, W.w,
                                      &W.stats));
    for (i = 1; i < 4; i += 2) {
        UNTOUCHED(label("%s accumulate_labels: labels misaligned by %zu", k->name, i),
                  GHM_ERR_MISALIGNED,
                  ghm_c_accumulate_labels(&W.st, W.a, &W.layout,
                                          (const int32_t *)(void *)((char *)W.labels + i), W.w,
                                          &W.stats));
    }
    UNTOUCHED(label("%s accumulate_labels: misaligned weights", k->name), GHM_ERR_MISALIGNED,
              ghm_c_accumulate_labels(&W.st, W.a, &W.layout, W.labels, misalign(W.w), &W.stats));
    no = misalign_offsets(ALIGN_LAYOUT, offs);
    for (i = 0; i < no; i++) {
        p = raw_copy(&W.layout, sizeof W.layout, offs[i]);
        UNTOUCHED(label("%s accumulate_labels: layout misaligned by %zu", k->name, offs[i]),
                  GHM_ERR_MISALIGNED,
                  ghm_c_accumulate_labels(&W.st, W.a, (const ghm_class_layout *)p, W.labels,
                                          W.w, &W.stats));
    }
    no = misalign_offsets(ALIGN_STATS, offs);
    for (i = 0; i < no; i++) {
        p = raw_copy(&W.stats, sizeof W.stats, offs[i]);
        UNTOUCHED(label("%s accumulate_labels: stats misaligned by %zu", k->name, offs[i]),
                  GHM_ERR_MISALIGNED,
                  ghm_c_accumulate_labels(&W.st, W.a, &W.layout, W.labels, W.w,
                                          (ghm_stats *)p));
    }

    /* layouts */
    for (f = 0; f < N_BAD_LAYOUTS; f++) {
        const float *logits = W.a;
        ghm_status want;
        const char *what;
        setup(k);
        W.layout = bad_layout(f, &logits, &want, &what);
        UNTOUCHED(label("%s accumulate_labels: layout %s", k->name, what), want,
                  ghm_c_accumulate_labels(&W.st, logits, &W.layout, W.labels, W.w, &W.stats));
        UNTOUCHED(label("%s accumulate_labels: layout %s, weights NULL", k->name, what), want,
                  ghm_c_accumulate_labels(&W.st, logits, &W.layout, W.labels, NULL, &W.stats));
    }
    for (f = 0; f < N_GOOD_LAYOUTS; f++) {
        const char *what;
        setup(k);
        W.layout = good_layout(f, &what);
        SUCCEEDS(label("%s accumulate_labels: layout %s", k->name, what),
                 ghm_c_accumulate_labels(&W.st, W.a, &W.layout, W.labels, W.w, &W.stats));
    }

    /* the stats overlapping an input */
    {
        void *ins[5];
        static const char *const nm[5] = {"logits", "labels", "weights", "state", "layout"};
        ins[0] = A;
        ins[1] = LB;
        ins[2] = Wt;
        ins[3] = S;
        ins[4] = LY;
        for (i = 0; i < 5; i++) {
            setup(k);
            memcpy(A, W.a, 128 * sizeof(float));
            memcpy(LB, W.labels, 128 * sizeof(int32_t));
            memcpy(Wt, W.w, 128 * sizeof(float));
            memcpy(S, &W.st, sizeof W.st);
            memcpy(LY, &W.layout, sizeof W.layout);
            UNTOUCHED(label("%s accumulate_labels: stats starting inside the %s", k->name,
                            nm[i]),
                      GHM_ERR_OVERLAP,
                      ghm_c_accumulate_labels((const ghm_state *)(void *)S, A, LY, LB, Wt,
                                              (ghm_stats *)(void *)((char *)ins[i] + 8)));
            UNTOUCHED(label("%s accumulate_labels: stats ending inside the %s", k->name, nm[i]),
                      GHM_ERR_OVERLAP,
                      ghm_c_accumulate_labels(
                          (const ghm_state *)(void *)S, A, LY, LB, Wt,
                          (ghm_stats *)(void *)((char *)ins[i] - sizeof(ghm_stats) + 8)));
        }
    }

    for (f = 0; f < N_STATS_FAULTS; f++) {
        const char *what;
        setup(k);
        what = stats_fault(f, &W.stats);
        UNTOUCHED(label("%s accumulate_labels: %s", k->name, what), GHM_ERR_STATS_MISMATCH,
                  ghm_c_accumulate_labels(&W.st, W.a, &W.layout, W.labels, W.w, &W.stats));
    }
    for (i = 0; i < sizeof fills; i++) {
        setup(k);
        memset(&W.st, fills[i], sizeof W.st);
        UNTOUCHED(label("%s accumulate_labels: state filled with 0x%02x", k->name, fills[i]),
                  GHM_ERR_STATE,
                  ghm_c_accumulate_labels(&W.st, W.a, &W.layout, W.labels, W.w, &W.stats));
    }
    setup(k);
    UNTOUCHED(label("%s accumulate_labels: GHM-R state", k->name), GHM_ERR_WRONG_LOSS,
              ghm_c_accumulate_labels(&W.other, W.a, &W.layout, W.labels, W.w, &W.stats));
}

/* ghm_commit. */
static void test_commit(const kind *k) {
    static const unsigned char fills[] = {0x00, 0x5A, 0xFF, POISON};
    float *ar = arena8();
    ghm_stats *ST = (ghm_stats *)(void *)ar;              /* floats 0 .. 264 */
    ghm_state *S = (ghm_state *)(void *)(ar + 300);       /* floats 300 .. 437 */
    ghm_region_weights *WG = (ghm_region_weights *)(void *)(ar + 450);  /* floats 450 .. 526 */
    float *L = ar + 540;
    ghm_state st;
    ghm_region_weights wt;
    size_t offs[2], no, i;
    void *p;
    int f;

#define COMMIT_LAYOUT()                                                                        \
    do {                                                                                       \
        setup(k);                                                                              \
        *ST = W.stats;                                                                         \
        *S = W.st;                                                                             \
    } while (0)

    setup(k);
    UNTOUCHED(label("%s commit: NULL stats", k->name), GHM_ERR_NULL,
              ghm_commit(NULL, &W.st, &W.wt, W.loss));
    UNTOUCHED(label("%s commit: NULL state", k->name), GHM_ERR_NULL,
              ghm_commit(&W.stats, NULL, &W.wt, W.loss));
    UNTOUCHED(label("%s commit: NULL weights", k->name), GHM_ERR_NULL,
              ghm_commit(&W.stats, &W.st, NULL, W.loss));
    no = misalign_offsets(ALIGN_STATS, offs);
    for (i = 0; i < no; i++) {
        p = raw_copy(&W.stats, sizeof W.stats, offs[i]);
        UNTOUCHED(label("%s commit: stats misaligned by %zu", k->name, offs[i]),
                  GHM_ERR_MISALIGNED, ghm_commit((const ghm_stats *)p, &W.st, &W.wt, W.loss));
    }
    p = raw_copy(&W.st, sizeof W.st, 1);
    UNTOUCHED(label("%s commit: misaligned state", k->name), GHM_ERR_MISALIGNED,
              ghm_commit(&W.stats, (ghm_state *)p, &W.wt, W.loss));
    no = misalign_offsets(ALIGN_WEIGHTS, offs);
    for (i = 0; i < no; i++) {
        UNTOUCHED(label("%s commit: weights misaligned by %zu", k->name, offs[i]),
                  GHM_ERR_MISALIGNED,
                  ghm_commit(&W.stats, &W.st, (ghm_region_weights *)(void *)(W.raw.bytes + offs[i]),
                             W.loss));
    }
    UNTOUCHED(label("%s commit: misaligned loss", k->name), GHM_ERR_MISALIGNED,
              ghm_commit(&W.stats, &W.st, &W.wt, misalign(W.loss)));

    /* outputs overlapping the stats or each other */
    COMMIT_LAYOUT();
    UNTOUCHED(label("%s commit: state starting inside the stats", k->name), GHM_ERR_OVERLAP,
              ghm_commit(ST, (ghm_state *)(void *)(ar + 8), WG, L));
    UNTOUCHED(label("%s commit: state ending inside the stats", k->name), GHM_ERR_OVERLAP,
              ghm_commit((const ghm_stats *)(void *)(ar + 200), S, WG, L));
    UNTOUCHED(label("%s commit: weights starting inside the stats", k->name), GHM_ERR_OVERLAP,
              ghm_commit(ST, S, (ghm_region_weights *)(void *)(ar + 200), L));
    UNTOUCHED(label("%s commit: weights ending inside the stats", k->name), GHM_ERR_OVERLAP,
              ghm_commit((const ghm_stats *)(void *)(ar + 500), S, WG, L));
    UNTOUCHED(label("%s commit: loss inside the stats", k->name), GHM_ERR_OVERLAP,
              ghm_commit(ST, S, WG, ar + 3));
    UNTOUCHED(label("%s commit: loss == &stats", k->name), GHM_ERR_OVERLAP,
              ghm_commit(ST, S, WG, ar));
    UNTOUCHED(label("%s commit: weights starting inside the state", k->name), GHM_ERR_OVERLAP,
              ghm_commit(ST, S, (ghm_region_weights *)(void *)(ar + 400), L));
    UNTOUCHED(label("%s commit: state starting inside the weights", k->name), GHM_ERR_OVERLAP,
              ghm_commit(ST, (ghm_state *)(void *)(ar + 470), WG, L));
    UNTOUCHED(label("%s commit: loss inside the state", k->name), GHM_ERR_OVERLAP,
              ghm_commit(ST, S, WG, ar + 310));
    UNTOUCHED(label("%s commit: loss inside the weights", k->name), GHM_ERR_OVERLAP,
              ghm_commit(ST, S, WG, ar + 460));
    UNTOUCHED(label("%s commit: weights == state", k->name), GHM_ERR_OVERLAP,
              ghm_commit(ST, S, (ghm_region_weights *)(void *)S, L));
    COMMIT_LAYOUT();
    memcpy(ar + sizeof(ghm_stats) / sizeof(float), &W.st, sizeof W.st);
    SUCCEEDS(label("%s commit: state right after the stats", k->name),
             ghm_commit(ST, (ghm_state *)(void *)(ar + sizeof(ghm_stats) / sizeof(float)), WG, L));

    /* stats that do not fit the state */
    for (f = 0; f < N_STATS_FAULTS; f++) {
        const char *what;
        setup(k);
        what = stats_fault(f, &W.stats);
        st = W.st;
        UNTOUCHED(label("%s commit: %s", k->name, what), GHM_ERR_STATS_MISMATCH,
                  ghm_commit(&W.stats, &W.st, &W.wt, W.loss));
    }
    setup(k);
    UNTOUCHED(label("%s commit: %s stats to the other loss's state", k->name, k->name),
              GHM_ERR_STATS_MISMATCH, ghm_commit(&W.stats, &W.other, &W.wt, W.loss));
    UNTOUCHED(label("%s commit: the other loss's stats", k->name), GHM_ERR_STATS_MISMATCH,
              ghm_commit(&W.sother, &W.st, &W.wt, W.loss));
    for (i = 0; i < sizeof fills; i++) {
        setup(k);
        memset(&W.st, fills[i], sizeof W.st);
        UNTOUCHED(label("%s commit: state filled with 0x%02x", k->name, fills[i]),
                  GHM_ERR_STATE, ghm_commit(&W.stats, &W.st, &W.wt, W.loss));
    }
    /* the loss overflows float */
    {
        ghm_config c = k->defaults();
        ghm_stats s;
        c.momentum = 0.5f;
        c.loss_weight = 1e38f;
        setup(k);
        W.a[0] = 100.0f;
        W.b[0] = 0.0f;
        if (k->init(&W.st, &c) != GHM_OK || ghm_stats_init(&W.st, &s) != GHM_OK ||
            ACC(k)(&W.st, W.a, W.b, NULL, 1, &s) != GHM_OK) {
            fail(label("%s commit overflow setup", k->name), "a setup call failed");
        } else {
            W.stats = s;
            UNTOUCHED(label("%s commit: loss overflows", k->name), GHM_ERR_OVERFLOW,
                      ghm_commit(&W.stats, &W.st, &W.wt, W.loss));
        }
    }
    /* a good commit: every output written, and usable */
    setup(k);
    st = W.st;
    memset(&wt, POISON, sizeof wt);
    SUCCEEDS(label("%s commit", k->name), ghm_commit(&W.stats, &st, &wt, W.loss));
    check(memcmp(&st, &W.st, sizeof st) != 0 && memcmp(&wt, &W.wt, sizeof wt) == 0 &&
              W.loss[0] == W.wt.loss && W.loss[1] == from_bits(0xA5A5A5A5u),
          label("%s commit outputs", k->name),
          "state not updated, weights differ from the same commit's, or loss not written alone");
#undef COMMIT_LAYOUT
}

/* ghm_c_apply / ghm_r_apply. */
static void test_apply(const kind *k) {
    static const unsigned char fills[] = {0x00, 0x5A, 0xFF, POISON};
    static const char *const fill_name[] = {"zeroed", "garbage 0x5A", "garbage 0xFF",
                                            "never committed (0xA5)"};
    static const size_t huge[] = {SIZE_MAX, SIZE_MAX / 2, SIZE_MAX / 4 + 1};
    const apply_fn ap = APPLY(k);
    float *ar = arena8();
    float *A = ar + 64, *B = ar + 256, *Wt = ar + 448;
    ghm_region_weights *WG = (ghm_region_weights *)(void *)(ar + 832);
    ghm_output *OP = (ghm_output *)(void *)(ar + 960);
    size_t offs[2], no, i, j;
    void *p;

    /* n = 0 */
    setup(k);
    UNTOUCHED(label("%s apply n=0, arrays NULL", k->name), GHM_OK,
              ap(&W.wt, NULL, NULL, NULL, 0, &W.output, NULL));
    UNTOUCHED(label("%s apply n=0, arrays non-NULL", k->name), GHM_OK,
              ap(&W.wt, W.a, W.b, W.w, 0, &W.output, W.grad));
    UNTOUCHED(label("%s apply n=0, output NULL", k->name), GHM_OK,
              ap(&W.wt, NULL, NULL, NULL, 0, NULL, NULL));
    UNTOUCHED(label("%s apply n=0: NULL weights", k->name), GHM_ERR_NULL,
              ap(NULL, NULL, NULL, NULL, 0, &W.output, NULL));
    UNTOUCHED(label("%s apply n=0: misaligned out", k->name), GHM_ERR_MISALIGNED,
              ap(&W.wt, NULL, NULL, NULL, 0, &W.output, misalign(W.grad)));
    UNTOUCHED(label("%s apply n=0: weights of the other loss", k->name), GHM_ERR_WRONG_LOSS,
              ap(&W.wother, NULL, NULL, NULL, 0, &W.output, NULL));
    W.output.kind = 3;
    UNTOUCHED(label("%s apply n=0: output kind 3", k->name), GHM_ERR_OUTPUT,
              ap(&W.wt, NULL, NULL, NULL, 0, &W.output, NULL));
    memset(&W.wt, POISON, sizeof W.wt);
    UNTOUCHED(label("%s apply n=0: weights never committed", k->name), GHM_ERR_NOT_COMMITTED,
              ap(&W.wt, NULL, NULL, NULL, 0, NULL, NULL));

    setup(k);
    UNTOUCHED(label("%s apply: NULL weights", k->name), GHM_ERR_NULL,
              ap(NULL, W.a, W.b, W.w, N, &W.output, W.grad));
    UNTOUCHED(label("%s apply: NULL logits/pred", k->name), GHM_ERR_NULL,
              ap(&W.wt, NULL, W.b, W.w, N, &W.output, W.grad));
    UNTOUCHED(label("%s apply: NULL out", k->name), GHM_ERR_NULL,
              ap(&W.wt, W.a, W.b, W.w, N, &W.output, NULL));
    UNTOUCHED(label("%s apply: NULL out, output NULL", k->name), GHM_ERR_NULL,
              ap(&W.wt, W.a, W.b, W.w, N, NULL, NULL));
    if (k->tag == 'c') {
        UNTOUCHED(label("%s apply: NULL targets", k->name), GHM_ERR_NULL,
                  ap(&W.wt, W.a, NULL, W.w, N, &W.output, W.grad));
    } else {
        SUCCEEDS(label("%s apply: NULL target (residuals)", k->name),
                 ap(&W.wt, W.a, NULL, W.w, N, &W.output, W.grad));
        setup(k);
    }
    no = misalign_offsets(ALIGN_WEIGHTS, offs);
    for (i = 0; i < no; i++) {
        p = raw_copy(&W.wt, sizeof W.wt, offs[i]);
        UNTOUCHED(label("%s apply: weights misaligned by %zu", k->name, offs[i]),
                  GHM_ERR_MISALIGNED,
                  ap((const ghm_region_weights *)p, W.a, W.b, W.w, N, &W.output, W.grad));
    }
    UNTOUCHED(label("%s apply: misaligned logits/pred", k->name), GHM_ERR_MISALIGNED,
              ap(&W.wt, misalign(W.a), W.b, W.w, N, &W.output, W.grad));
    UNTOUCHED(label("%s apply: misaligned targets", k->name), GHM_ERR_MISALIGNED,
              ap(&W.wt, W.a, misalign(W.b), W.w, N, &W.output, W.grad));
    UNTOUCHED(label("%s apply: misaligned weights", k->name), GHM_ERR_MISALIGNED,
              ap(&W.wt, W.a, W.b, misalign(W.w), N, &W.output, W.grad));
    UNTOUCHED(label("%s apply: misaligned out", k->name), GHM_ERR_MISALIGNED,
              ap(&W.wt, W.a, W.b, W.w, N, &W.output, misalign(W.grad)));
    for (i = 1; i < 4; i += 2) {
        p = raw_copy(&W.output, sizeof W.output, i);
        UNTOUCHED(label("%s apply: output spec misaligned by %zu", k->name, i),
                  GHM_ERR_MISALIGNED, ap(&W.wt, W.a, W.b, W.w, N, (const ghm_output *)p, W.grad));
    }
    for (i = 0; i < sizeof huge / sizeof huge[0]; i++) {
        UNTOUCHED(label("%s apply: n=%zu", k->name, huge[i]), GHM_ERR_LENGTH,
                  ap(&W.wt, W.a, W.b, W.w, huge[i], &W.output, W.grad));
        UNTOUCHED(label("%s apply: n=%zu, weights NULL", k->name, huge[i]), GHM_ERR_LENGTH,
                  ap(&W.wt, W.a, W.b, NULL, huge[i], &W.output, W.grad));
    }

    /* out overlapping an input */
#define APPLY_LAYOUT()                                                                         \
    do {                                                                                       \
        setup(k);                                                                              \
        memcpy(A, W.a, 128 * sizeof(float));                                                   \
        memcpy(B, W.b, 128 * sizeof(float));                                                   \
        memcpy(Wt, W.w, 128 * sizeof(float));                                                  \
        *WG = W.wt;                                                                            \
        *OP = W.output;                                                                        \
    } while (0)
    APPLY_LAYOUT();
    UNTOUCHED(label("%s apply: out = logits + 1", k->name), GHM_ERR_OVERLAP,
              ap(WG, A, B, Wt, N, OP, A + 1));
    UNTOUCHED(label("%s apply: out = logits - 1", k->name), GHM_ERR_OVERLAP,
              ap(WG, A, B, Wt, N, OP, A - 1));
    UNTOUCHED(label("%s apply: out = logits + n - 1", k->name), GHM_ERR_OVERLAP,
              ap(WG, A, B, Wt, N, OP, A + N - 1));
    UNTOUCHED(label("%s apply: out == targets", k->name), GHM_ERR_OVERLAP,
              ap(WG, A, B, Wt, N, OP, B));
    UNTOUCHED(label("%s apply: out = targets + 3", k->name), GHM_ERR_OVERLAP,
              ap(WG, A, B, Wt, N, OP, B + 3));
    UNTOUCHED(label("%s apply: out = targets - 3", k->name), GHM_ERR_OVERLAP,
              ap(WG, A, B, Wt, N, OP, B - 3));
    UNTOUCHED(label("%s apply: out == weights", k->name), GHM_ERR_OVERLAP,
              ap(WG, A, B, Wt, N, OP, Wt));
    UNTOUCHED(label("%s apply: out = weights + 5", k->name), GHM_ERR_OVERLAP,
              ap(WG, A, B, Wt, N, OP, Wt + 5));
    UNTOUCHED(label("%s apply: out covering the ghm_region_weights", k->name), GHM_ERR_OVERLAP,
              ap(WG, A, B, Wt, N, OP, (float *)(void *)WG - 4));
    UNTOUCHED(label("%s apply: out starting inside the ghm_region_weights", k->name), GHM_ERR_OVERLAP,
              ap(WG, A, B, Wt, N, OP, (float *)(void *)WG + 20));
    UNTOUCHED(label("%s apply: out covering the output spec", k->name), GHM_ERR_OVERLAP,
              ap(WG, A, B, Wt, N, OP, (float *)(void *)OP - 5));
    UNTOUCHED(label("%s apply: out == &output spec", k->name), GHM_ERR_OVERLAP,
              ap(WG, A, B, Wt, N, OP, (float *)(void *)OP));
    UNTOUCHED(label("%s apply: out == logits == targets", k->name), GHM_ERR_OVERLAP,
              ap(WG, A, A, Wt, N, OP, A));
    UNTOUCHED(label("%s apply: out == logits == weights", k->name), GHM_ERR_OVERLAP,
              ap(WG, A, B, A, N, OP, A));
    APPLY_LAYOUT();
    SUCCEEDS(label("%s apply: out == logits (in place)", k->name), ap(WG, A, B, Wt, N, OP, A));
    APPLY_LAYOUT();
    SUCCEEDS(label("%s apply: out == logits, output NULL", k->name),
             ap(WG, A, B, Wt, N, NULL, A));
    APPLY_LAYOUT();
    SUCCEEDS(label("%s apply: out right after the logits", k->name),
             ap(WG, A, B, Wt, N, OP, A + N));
    APPLY_LAYOUT();
    SUCCEEDS(label("%s apply: out right before the logits", k->name),
             ap(WG, A, B, Wt, N, OP, A - N));
#undef APPLY_LAYOUT

    /* weights that no commit made, or the other loss's */
    for (i = 0; i < sizeof fills; i++) {
        setup(k);
        memset(&W.wt, fills[i], sizeof W.wt);
        UNTOUCHED(label("%s apply: weights %s", k->name, fill_name[i]), GHM_ERR_NOT_COMMITTED,
                  ap(&W.wt, W.a, W.b, W.w, N, &W.output, W.grad));
        UNTOUCHED(label("%s apply: weights %s, in place", k->name, fill_name[i]),
                  GHM_ERR_NOT_COMMITTED, ap(&W.wt, W.a, W.b, W.w, N, NULL, W.a));
    }
    setup(k);
    UNTOUCHED(label("%s apply: weights of the other loss", k->name), GHM_ERR_WRONG_LOSS,
              ap(&W.wother, W.a, W.b, W.w, N, &W.output, W.grad));
    UNTOUCHED(label("%s apply: weights of the other loss, in place", k->name),
              GHM_ERR_WRONG_LOSS, ap(&W.wother, W.a, W.b, W.w, N, NULL, W.a));
    {
        /* every byte of committed weights, flipped */
        static const unsigned char flips[] = {0x01, 0x80};
        size_t bad = 0, first = 0;
        ghm_status first_status = GHM_OK;
        for (j = 0; j < sizeof flips; j++) {
            for (i = 0; i < sizeof(ghm_region_weights); i++) {
                ghm_status s;
                setup(k);
                ((unsigned char *)&W.wt)[i] ^= flips[j];
                snapshot();
                s = ap(&W.wt, W.a, W.b, W.w, N, &W.output, W.grad);
                if (s != GHM_ERR_NOT_COMMITTED || changed() != NULL) {
                    if (bad++ == 0) {
                        first = i;
                        first_status = s;
                    }
                    failed++;
                } else {
                    passed++;
                }
            }
        }
        if (bad > 0) {
            fail(label("%s apply with corrupted weights", k->name),
                 "%zu single-byte corruptions not refused with GHM_ERR_NOT_COMMITTED and "
                 "untouched outputs; first at byte %zu: status %d (%s)",
                 bad, first, (int)first_status, ghm_status_str(first_status));
        }
    }

    /* output specs */
    {
        ghm_output bad[9];
        static const char *const bad_name[9] = {"kind 3", "kind UINT32_MAX", "accumulate 2",
                                                "accumulate UINT32_MAX", "scale NaN",
                                                "scale +Inf", "scale -Inf", "sum 2",
                                                "sum UINT32_MAX"};
        for (i = 0; i < 9; i++) {
            bad[i].kind = GHM_OUTPUT_GRADIENT;
            bad[i].scale = 1.0f;
            bad[i].add = 0;
            bad[i].sum = 0;
        }
        bad[7].sum = 2;
        bad[8].sum = UINT32_MAX;
        bad[0].kind = 3;
        bad[1].kind = UINT32_MAX;
        bad[2].add = 2;
        bad[3].add = UINT32_MAX;
        bad[4].scale = NAN;
        bad[5].scale = INFINITY;
        bad[6].scale = -INFINITY;
        for (i = 0; i < 9; i++) {
            setup(k);
            W.output = bad[i];
            UNTOUCHED(label("%s apply: output %s", k->name, bad_name[i]), GHM_ERR_OUTPUT,
                      ap(&W.wt, W.a, W.b, W.w, N, &W.output, W.grad));
            UNTOUCHED(label("%s apply: output %s, in place", k->name, bad_name[i]),
                      GHM_ERR_OUTPUT, ap(&W.wt, W.a, W.b, W.w, N, &W.output, W.a));
        }
        for (i = 0; i < 3; i++) {
            for (j = 0; j < 4; j++) {
                setup(k);
                W.output.kind = (uint32_t)i;
                W.output.add = (uint32_t)(j & 1);
                W.output.sum = (uint32_t)(j >> 1);
                W.output.scale = -2.5f;
                memset(W.grad, 0, sizeof W.grad);
                SUCCEEDS(label("%s apply: output kind %zu accumulate %zu sum %zu", k->name, i,
                               j & 1, j >> 1),
                         ap(&W.wt, W.a, W.b, W.w, N, &W.output, W.grad));
            }
        }
    }
}

/* ghm_c_apply_labels (GHM-C only). */
static void test_apply_labels(const kind *k) {
    static const unsigned char fills[] = {0x00, 0x5A, 0xFF, POISON};
    float *ar = arena8();
    float *A = ar + 64, *Wt = ar + 448, *G = ar + 640;
    int32_t *LB = (int32_t *)(void *)(ar + 256);
    ghm_region_weights *WG = (ghm_region_weights *)(void *)(ar + 832);
    ghm_output *OP = (ghm_output *)(void *)(ar + 960);
    ghm_class_layout *LY = (ghm_class_layout *)(void *)(ar + 970);
    size_t offs[2], no, i;
    void *p;
    int f;

    setup(k);
    W.layout.anchors = 0;
    UNTOUCHED(label("%s apply_labels 0 anchors, arrays NULL", k->name), GHM_OK,
              ghm_c_apply_labels(&W.wt, NULL, &W.layout, NULL, NULL, &W.output, NULL));
    UNTOUCHED(label("%s apply_labels 0 anchors, arrays non-NULL", k->name), GHM_OK,
              ghm_c_apply_labels(&W.wt, W.a, &W.layout, W.labels, W.w, NULL, W.grad));
    UNTOUCHED(label("%s apply_labels 0 anchors: NULL weights", k->name), GHM_ERR_NULL,
              ghm_c_apply_labels(NULL, NULL, &W.layout, NULL, NULL, NULL, NULL));
    UNTOUCHED(label("%s apply_labels 0 anchors: NULL layout", k->name), GHM_ERR_NULL,
              ghm_c_apply_labels(&W.wt, NULL, NULL, NULL, NULL, NULL, NULL));
    UNTOUCHED(label("%s apply_labels 0 anchors: GHM-R weights", k->name), GHM_ERR_WRONG_LOSS,
              ghm_c_apply_labels(&W.wother, NULL, &W.layout, NULL, NULL, NULL, NULL));

    setup(k);
    UNTOUCHED(label("%s apply_labels: NULL weights", k->name), GHM_ERR_NULL,
              ghm_c_apply_labels(NULL, W.a, &W.layout, W.labels, W.w, &W.output, W.grad));
    UNTOUCHED(label("%s apply_labels: NULL logits", k->name), GHM_ERR_NULL,
              ghm_c_apply_labels(&W.wt, NULL, &W.layout, W.labels, W.w, &W.output, W.grad));
    UNTOUCHED(label("%s apply_labels: NULL layout", k->name), GHM_ERR_NULL,
              ghm_c_apply_labels(&W.wt, W.a, NULL, W.labels, W.w, &W.output, W.grad));
    UNTOUCHED(label("%s apply_labels: NULL labels", k->name), GHM_ERR_NULL,
              ghm_c_apply_labels(&W.wt, W.a, &W.layout, NULL, W.w, &W.output, W.grad));
    UNTOUCHED(label("%s apply_labels: NULL out", k->name), GHM_ERR_NULL,
              ghm_c_apply_labels(&W.wt, W.a, &W.layout, W.labels, W.w, &W.output, NULL));
    no = misalign_offsets(ALIGN_WEIGHTS, offs);
    for (i = 0; i < no; i++) {
        p = raw_copy(&W.wt, sizeof W.wt, offs[i]);
        UNTOUCHED(label("%s apply_labels: weights misaligned by %zu", k->name, offs[i]),
                  GHM_ERR_MISALIGNED,
                  ghm_c_apply_labels((const ghm_region_weights *)p, W.a, &W.layout, W.labels, W.w,
                                     &W.output, W.grad));
    }
    no = misalign_offsets(ALIGN_LAYOUT, offs);
    for (i = 0; i < no; i++) {
        p = raw_copy(&W.layout, sizeof W.layout, offs[i]);
        UNTOUCHED(label("%s apply_labels: layout misaligned by %zu", k->name, offs[i]),
                  GHM_ERR_MISALIGNED,
                  ghm_c_apply_labels(&W.wt, W.a, (const ghm_class_layout *)p, W.labels, W.w,
                                     &W.output, W.grad));
    }
    UNTOUCHED(label("%s apply_labels: misaligned logits", k->name), GHM_ERR_MISALIGNED,
              ghm_c_apply_labels(&W.wt, misalign(W.a), &W.layout, W.labels, W.w, &W.output,
                                 W.grad));
    for (i = 1; i < 4; i += 2) {
        UNTOUCHED(label("%s apply_labels: labels misaligned by %zu", k->name, i),
                  GHM_ERR_MISALIGNED,
                  ghm_c_apply_labels(&W.wt, W.a, &W.layout,
                                     (const int32_t *)(void *)((char *)W.labels + i), W.w,
                                     &W.output, W.grad));
        p = raw_copy(&W.output, sizeof W.output, i);
        UNTOUCHED(label("%s apply_labels: output spec misaligned by %zu", k->name, i),
                  GHM_ERR_MISALIGNED,
                  ghm_c_apply_labels(&W.wt, W.a, &W.layout, W.labels, W.w,
                                     (const ghm_output *)p, W.grad));
    }
    UNTOUCHED(label("%s apply_labels: misaligned weights", k->name), GHM_ERR_MISALIGNED,
              ghm_c_apply_labels(&W.wt, W.a, &W.layout, W.labels, misalign(W.w), &W.output,
                                 W.grad));
    UNTOUCHED(label("%s apply_labels: misaligned out", k->name), GHM_ERR_MISALIGNED,
              ghm_c_apply_labels(&W.wt, W.a, &W.layout, W.labels, W.w, &W.output,
                                 misalign(W.grad)));

    for (f = 0; f < N_BAD_LAYOUTS; f++) {
        const float *logits = W.a;
        float *out = W.grad;
        ghm_status want;
        const char *what;
        setup(k);
        W.layout = bad_layout(f, &logits, &want, &what);
        if (logits != W.a) {
            out = (float *)logits + BIG_HALF; /* the big buffer's second half */
            UNTOUCHED(label("%s apply_labels: layout %s", k->name, what), want,
                      ghm_c_apply_labels(&W.wt, logits, &W.layout, W.labels, W.w, &W.output,
                                         out));
            continue;
        }
        UNTOUCHED(label("%s apply_labels: layout %s", k->name, what), want,
                  ghm_c_apply_labels(&W.wt, logits, &W.layout, W.labels, W.w, &W.output, out));
        UNTOUCHED(label("%s apply_labels: layout %s, output NULL", k->name, what), want,
                  ghm_c_apply_labels(&W.wt, logits, &W.layout, W.labels, NULL, NULL, out));
    }
    for (f = 0; f < N_GOOD_LAYOUTS; f++) {
        const char *what;
        setup(k);
        W.layout = good_layout(f, &what);
        SUCCEEDS(label("%s apply_labels: layout %s", k->name, what),
                 ghm_c_apply_labels(&W.wt, W.a, &W.layout, W.labels, W.w, &W.output, W.grad));
    }

    /* out overlapping an input: never allowed, in place included */
#define APPLY_LAYOUT()                                                                         \
    do {                                                                                       \
        setup(k);                                                                              \
        memcpy(A, W.a, 128 * sizeof(float));                                                   \
        memcpy(LB, W.labels, 128 * sizeof(int32_t));                                           \
        memcpy(Wt, W.w, 128 * sizeof(float));                                                  \
        *WG = W.wt;                                                                            \
        *OP = W.output;                                                                        \
        *LY = make_layout(4, LC, LC, 1);                                                       \
    } while (0)
    APPLY_LAYOUT();
    UNTOUCHED(label("%s apply_labels: out == logits", k->name), GHM_ERR_OVERLAP,
              ghm_c_apply_labels(WG, A, LY, LB, Wt, OP, A));
    UNTOUCHED(label("%s apply_labels: out == logits, output NULL", k->name), GHM_ERR_OVERLAP,
              ghm_c_apply_labels(WG, A, LY, LB, Wt, NULL, A));
    UNTOUCHED(label("%s apply_labels: out = logits + 1", k->name), GHM_ERR_OVERLAP,
              ghm_c_apply_labels(WG, A, LY, LB, Wt, OP, A + 1));
    UNTOUCHED(label("%s apply_labels: out = logits - 1", k->name), GHM_ERR_OVERLAP,
              ghm_c_apply_labels(WG, A, LY, LB, Wt, OP, A - 1));
    UNTOUCHED(label("%s apply_labels: out == labels", k->name), GHM_ERR_OVERLAP,
              ghm_c_apply_labels(WG, A, LY, LB, Wt, OP, (float *)(void *)LB));
    UNTOUCHED(label("%s apply_labels: out ending inside the labels", k->name), GHM_ERR_OVERLAP,
              ghm_c_apply_labels(WG, A, LY, LB, Wt, OP, (float *)(void *)LB - 18));
    UNTOUCHED(label("%s apply_labels: out == weights", k->name), GHM_ERR_OVERLAP,
              ghm_c_apply_labels(WG, A, LY, LB, Wt, OP, Wt));
    UNTOUCHED(label("%s apply_labels: out = weights + 3", k->name), GHM_ERR_OVERLAP,
              ghm_c_apply_labels(WG, A, LY, LB, Wt, OP, Wt + 3));
    UNTOUCHED(label("%s apply_labels: out covering the ghm_region_weights", k->name), GHM_ERR_OVERLAP,
              ghm_c_apply_labels(WG, A, LY, LB, Wt, OP, (float *)(void *)WG - 4));
    UNTOUCHED(label("%s apply_labels: out covering the output spec", k->name), GHM_ERR_OVERLAP,
              ghm_c_apply_labels(WG, A, LY, LB, Wt, OP, (float *)(void *)OP - 2));
    UNTOUCHED(label("%s apply_labels: out covering the layout", k->name), GHM_ERR_OVERLAP,
              ghm_c_apply_labels(WG, A, LY, LB, Wt, OP, (float *)(void *)LY - 2));
    APPLY_LAYOUT();
    SUCCEEDS(label("%s apply_labels: out right after the logits", k->name),
             ghm_c_apply_labels(WG, A, LY, LB, Wt, OP, A + 4 * LC));
    APPLY_LAYOUT();
    SUCCEEDS(label("%s apply_labels: separate out", k->name),
             ghm_c_apply_labels(WG, A, LY, LB, Wt, OP, G));
#undef APPLY_LAYOUT

    for (i = 0; i < sizeof fills; i++) {
        setup(k);
        memset(&W.wt, fills[i], sizeof W.wt);
        UNTOUCHED(label("%s apply_labels: weights filled with 0x%02x", k->name, fills[i]),
                  GHM_ERR_NOT_COMMITTED,
                  ghm_c_apply_labels(&W.wt, W.a, &W.layout, W.labels, W.w, &W.output, W.grad));
    }
    setup(k);
    W.wt.coef[3] += 1.0f;
    UNTOUCHED(label("%s apply_labels: weights with an edited coefficient", k->name),
              GHM_ERR_NOT_COMMITTED,
              ghm_c_apply_labels(&W.wt, W.a, &W.layout, W.labels, W.w, &W.output, W.grad));
    setup(k);
    UNTOUCHED(label("%s apply_labels: GHM-R weights", k->name), GHM_ERR_WRONG_LOSS,
              ghm_c_apply_labels(&W.wother, W.a, &W.layout, W.labels, W.w, &W.output, W.grad));
    {
        static const uint32_t kinds[] = {3u, UINT32_MAX};
        for (i = 0; i < 2; i++) {
            setup(k);
            W.output.kind = kinds[i];
            UNTOUCHED(label("%s apply_labels: output kind %lu", k->name,
                            (unsigned long)kinds[i]),
                      GHM_ERR_OUTPUT,
                      ghm_c_apply_labels(&W.wt, W.a, &W.layout, W.labels, W.w, &W.output,
                                         W.grad));
        }
        setup(k);
        W.output.add = 2;
        UNTOUCHED(label("%s apply_labels: output accumulate 2", k->name), GHM_ERR_OUTPUT,
                  ghm_c_apply_labels(&W.wt, W.a, &W.layout, W.labels, W.w, &W.output, W.grad));
        setup(k);
        W.output.scale = NAN;
        UNTOUCHED(label("%s apply_labels: output scale NaN", k->name), GHM_ERR_OUTPUT,
                  ghm_c_apply_labels(&W.wt, W.a, &W.layout, W.labels, W.w, &W.output, W.grad));
        setup(k);
        W.output.scale = INFINITY;
        UNTOUCHED(label("%s apply_labels: output scale +Inf", k->name), GHM_ERR_OUTPUT,
                  ghm_c_apply_labels(&W.wt, W.a, &W.layout, W.labels, W.w, &W.output, W.grad));
        setup(k);
        W.output.scale = -INFINITY;
        UNTOUCHED(label("%s apply_labels: output scale -Inf", k->name), GHM_ERR_OUTPUT,
                  ghm_c_apply_labels(&W.wt, W.a, &W.layout, W.labels, W.w, &W.output, W.grad));
    }
}

/* ghm_c_loss_labels (GHM-C only). */
static void test_loss_labels(const kind *k) {
    static const unsigned char fills[] = {0x00, 0x5A, 0xFF, POISON};
    float *ar = arena8();
    float *A = ar + 64, *Wt = ar + 448, *G = ar + 640, *L = ar + 832;
    int32_t *LB = (int32_t *)(void *)(ar + 256);
    ghm_state *S = (ghm_state *)(void *)(ar + 1024);
    size_t i;
    void *p;

    /* no anchors: loss 0, state as it was */
    {
        int j;
        /* (and 0 classes: also an empty batch, as the header says) */
        for (j = 0; j < 4; j++) {
            const char *diff;
            ghm_status s;
            const char *what = label("%s loss_labels empty batch (%s)", k->name,
                                     j == 0   ? "0 anchors, arrays NULL"
                                     : j == 1 ? "0 anchors, arrays non-NULL"
                                     : j == 2 ? "0 anchors, grad NULL"
                                              : "0 classes");
            setup(k);
            snapshot();
            s = j == 0   ? ghm_c_loss_labels(&W.st, NULL, 0, LC, NULL, NULL, W.loss, NULL)
                : j == 1 ? ghm_c_loss_labels(&W.st, W.a, 0, LC, W.labels, W.w, W.loss, W.grad)
                : j == 2 ? ghm_c_loss_labels(&W.st, W.a, 0, LC, W.labels, W.w, W.loss, NULL)
                         : ghm_c_loss_labels(&W.st, W.a, LA, 0, W.labels, W.w, W.loss, W.grad);
            if (s != GHM_OK) {
                fail(what, "status %d (%s), want GHM_OK", (int)s, ghm_status_str(s));
            } else if (W.loss[0] != 0.0f) {
                fail(what, "loss %g, want 0", (double)W.loss[0]);
            } else if (SNAP.loss[0] = 0.0f, (diff = changed()) != NULL) {
                fail(what, "%s", diff);
            } else {
                passed++;
            }
        }
    }
    setup(k);
    UNTOUCHED(label("%s loss_labels 0 anchors: NULL state", k->name), GHM_ERR_NULL,
              ghm_c_loss_labels(NULL, NULL, 0, LC, NULL, NULL, W.loss, NULL));
    UNTOUCHED(label("%s loss_labels 0 anchors: NULL loss", k->name), GHM_ERR_NULL,
              ghm_c_loss_labels(&W.st, NULL, 0, LC, NULL, NULL, NULL, NULL));
    UNTOUCHED(label("%s loss_labels: 2^24 + 1 classes", k->name), GHM_ERR_LAYOUT,
              ghm_c_loss_labels(&W.st, big_buffer(), 1, ((size_t)1 << 24) + 1, W.labels, W.w,
                                W.loss, NULL));
    UNTOUCHED(label("%s loss_labels: 2^24 + 1 classes, no anchor", k->name), GHM_ERR_LAYOUT,
              ghm_c_loss_labels(&W.st, NULL, 0, ((size_t)1 << 24) + 1, NULL, NULL, W.loss,
                                NULL));
    UNTOUCHED(label("%s loss_labels: anchors * classes overflows", k->name), GHM_ERR_LENGTH,
              ghm_c_loss_labels(&W.st, W.a, SIZE_MAX / 2, LC, W.labels, W.w, W.loss, W.grad));
    UNTOUCHED(label("%s loss_labels: SIZE_MAX/4 + 1 anchors of one class", k->name),
              GHM_ERR_LENGTH,
              ghm_c_loss_labels(&W.st, W.a, SIZE_MAX / 4 + 1, 1, W.labels, NULL, W.loss, NULL));

    setup(k);
    UNTOUCHED(label("%s loss_labels: NULL state", k->name), GHM_ERR_NULL,
              ghm_c_loss_labels(NULL, W.a, LA, LC, W.labels, W.w, W.loss, W.grad));
    UNTOUCHED(label("%s loss_labels: NULL logits", k->name), GHM_ERR_NULL,
              ghm_c_loss_labels(&W.st, NULL, LA, LC, W.labels, W.w, W.loss, W.grad));
    UNTOUCHED(label("%s loss_labels: NULL labels", k->name), GHM_ERR_NULL,
              ghm_c_loss_labels(&W.st, W.a, LA, LC, NULL, W.w, W.loss, W.grad));
    UNTOUCHED(label("%s loss_labels: NULL loss", k->name), GHM_ERR_NULL,
              ghm_c_loss_labels(&W.st, W.a, LA, LC, W.labels, W.w, NULL, W.grad));
    p = raw_copy(&W.st, sizeof W.st, 1);
    UNTOUCHED(label("%s loss_labels: misaligned state", k->name), GHM_ERR_MISALIGNED,
              ghm_c_loss_labels((ghm_state *)p, W.a, LA, LC, W.labels, W.w, W.loss, W.grad));
    UNTOUCHED(label("%s loss_labels: misaligned logits", k->name), GHM_ERR_MISALIGNED,
              ghm_c_loss_labels(&W.st, misalign(W.a), LA, LC, W.labels, W.w, W.loss, W.grad));
    for (i = 1; i < 4; i += 2) {
        UNTOUCHED(label("%s loss_labels: labels misaligned by %zu", k->name, i),
                  GHM_ERR_MISALIGNED,
                  ghm_c_loss_labels(&W.st, W.a, LA, LC,
                                    (const int32_t *)(void *)((char *)W.labels + i), W.w,
                                    W.loss, W.grad));
    }
    UNTOUCHED(label("%s loss_labels: misaligned weights", k->name), GHM_ERR_MISALIGNED,
              ghm_c_loss_labels(&W.st, W.a, LA, LC, W.labels, misalign(W.w), W.loss, W.grad));
    UNTOUCHED(label("%s loss_labels: misaligned loss", k->name), GHM_ERR_MISALIGNED,
              ghm_c_loss_labels(&W.st, W.a, LA, LC, W.labels, W.w, misalign(W.loss), W.grad));
    UNTOUCHED(label("%s loss_labels: misaligned grad", k->name), GHM_ERR_MISALIGNED,
              ghm_c_loss_labels(&W.st, W.a, LA, LC, W.labels, W.w, W.loss, misalign(W.grad)));

#define LL_LAYOUT()                                                                            \
    do {                                                                                       \
        setup(k);                                                                              \
        memcpy(A, W.a, 128 * sizeof(float));                                                   \
        memcpy(LB, W.labels, 128 * sizeof(int32_t));                                           \
        memcpy(Wt, W.w, 128 * sizeof(float));                                                  \
        memcpy(S, &W.st, sizeof W.st);                                                         \
    } while (0)
    /* 4 anchors x LC classes = 20 logits */
    LL_LAYOUT();
    UNTOUCHED(label("%s loss_labels: grad == logits", k->name), GHM_ERR_OVERLAP,
              ghm_c_loss_labels(S, A, 4, LC, LB, Wt, L, A));
    UNTOUCHED(label("%s loss_labels: grad = logits + 1", k->name), GHM_ERR_OVERLAP,
              ghm_c_loss_labels(S, A, 4, LC, LB, Wt, L, A + 1));
    UNTOUCHED(label("%s loss_labels: grad = logits - 1", k->name), GHM_ERR_OVERLAP,
              ghm_c_loss_labels(S, A, 4, LC, LB, Wt, L, A - 1));
    UNTOUCHED(label("%s loss_labels: grad == labels", k->name), GHM_ERR_OVERLAP,
              ghm_c_loss_labels(S, A, 4, LC, LB, Wt, L, (float *)(void *)LB));
    UNTOUCHED(label("%s loss_labels: grad ending inside the labels", k->name), GHM_ERR_OVERLAP,
              ghm_c_loss_labels(S, A, 4, LC, LB, Wt, L, (float *)(void *)LB - 18));
    UNTOUCHED(label("%s loss_labels: grad = weights + 2", k->name), GHM_ERR_OVERLAP,
              ghm_c_loss_labels(S, A, 4, LC, LB, Wt, L, Wt + 2));
    UNTOUCHED(label("%s loss_labels: loss inside the logits", k->name), GHM_ERR_OVERLAP,
              ghm_c_loss_labels(S, A, 4, LC, LB, Wt, A + 7, G));
    UNTOUCHED(label("%s loss_labels: loss inside the labels", k->name), GHM_ERR_OVERLAP,
              ghm_c_loss_labels(S, A, 4, LC, LB, Wt, (float *)(void *)(LB + 3), G));
    UNTOUCHED(label("%s loss_labels: loss inside the weights", k->name), GHM_ERR_OVERLAP,
              ghm_c_loss_labels(S, A, 4, LC, LB, Wt, Wt + 3, G));
    UNTOUCHED(label("%s loss_labels: loss inside the grad", k->name), GHM_ERR_OVERLAP,
              ghm_c_loss_labels(S, A, 4, LC, LB, Wt, G + 3, G));
    UNTOUCHED(label("%s loss_labels: loss inside the state", k->name), GHM_ERR_OVERLAP,
              ghm_c_loss_labels(S, A, 4, LC, LB, Wt, &S->ema[3], G));
    {
        void *ins[4];
        static const char *const nm[4] = {"logits", "labels", "weights", "grad"};
        ins[0] = A;
        ins[1] = LB;
        ins[2] = Wt;
        ins[3] = G;
        for (i = 0; i < 4; i++) {
            LL_LAYOUT();
            memcpy((char *)ins[i] + 8, &W.st, sizeof W.st);
            UNTOUCHED(label("%s loss_labels: state starting inside the %s", k->name, nm[i]),
                      GHM_ERR_OVERLAP,
                      ghm_c_loss_labels((ghm_state *)(void *)((char *)ins[i] + 8), A, 4, LC, LB,
                                        Wt, L, G));
            LL_LAYOUT();
            memcpy((char *)ins[i] - sizeof W.st + 8, &W.st, sizeof W.st);
            UNTOUCHED(label("%s loss_labels: state ending inside the %s", k->name, nm[i]),
                      GHM_ERR_OVERLAP,
                      ghm_c_loss_labels((ghm_state *)(void *)((char *)ins[i] - sizeof W.st + 8),
                                        A, 4, LC, LB, Wt, L, G));
        }
    }
    LL_LAYOUT();
    SUCCEEDS(label("%s loss_labels: grad right after the logits", k->name),
             ghm_c_loss_labels(S, A, 4, LC, LB, Wt, L, A + 4 * LC));
#undef LL_LAYOUT

    for (i = 0; i < sizeof fills; i++) {
        setup(k);
        memset(&W.st, fills[i], sizeof W.st);
        UNTOUCHED(label("%s loss_labels: state filled with 0x%02x", k->name, fills[i]),
                  GHM_ERR_STATE,
                  ghm_c_loss_labels(&W.st, W.a, LA, LC, W.labels, W.w, W.loss, W.grad));
    }
    setup(k);
    UNTOUCHED(label("%s loss_labels: GHM-R state", k->name), GHM_ERR_WRONG_LOSS,
              ghm_c_loss_labels(&W.other, W.a, LA, LC, W.labels, W.w, W.loss, W.grad));
    (void)G;
}

/* Every function of the three phases (and ghm_c_loss_labels) on W's buffers. */
enum fid { F_ACC, F_APPLY, F_ACC_RESID, F_APPLY_RESID, F_LOSS_LABELS, F_ACC_LABELS,
           F_APPLY_LABELS };
static const char *const FID_NAME[] = {"accumulate",        "apply",
                                       "accumulate (residuals)", "apply (residuals)",
                                       "loss_labels",       "accumulate_labels",
                                       "apply_labels"};

/* Function f over n elements (anchors for the class-index functions, whose layout the caller
 * sets in W.layout), with the probability-input state and weights when `prob`. */
static ghm_status callf(const kind *k, enum fid f, int prob, size_t n) {
    ghm_state *st = prob ? &W.pst : &W.st;
    ghm_stats *stats = prob ? &W.pstats : &W.stats;
    const ghm_region_weights *wt = prob ? &W.pwt : &W.wt;
    switch (f) {
    case F_ACC:
        return ACC(k)(st, W.a, W.b, W.w, n, stats);
    case F_APPLY:
        return APPLY(k)(wt, W.a, W.b, W.w, n, &W.output, W.grad);
    case F_ACC_RESID:
        return ghm_r_accumulate(st, W.a, NULL, W.w, n, stats);
    case F_APPLY_RESID:
        return ghm_r_apply(wt, W.a, NULL, W.w, n, &W.output, W.grad);
    case F_LOSS_LABELS:
        return ghm_c_loss_labels(st, W.a, n, LC, W.labels, W.w, W.loss, W.grad);
    case F_ACC_LABELS:
        return ghm_c_accumulate_labels(st, W.a, &W.layout, W.labels, W.w, stats);
    default:
        return ghm_c_apply_labels(wt, W.a, &W.layout, W.labels, W.w, &W.output, W.grad);
    }
}

/* One bad value at position `pos` of buffer `which` (0 a, 1 b, 2 w) for function f. */
static void bad_phase_value(const kind *k, enum fid f, int prob, int which, size_t pos, float v,
                            size_t n, ghm_status want, const char *vname) {
    static const char *const names[3] = {"logits/pred", "targets", "weights"};
    float *buf;
    setup(k);
    if (prob) {
        fill_probabilities();
    }
    W.layout.anchors = n;
    buf = which == 0 ? W.a : which == 1 ? W.b : W.w;
    buf[pos] = v;
    UNTOUCHED(label("%s %s%s: %s[%zu] = %s, n=%zu", k->name, FID_NAME[f],
                    prob ? " (probability inputs)" : "", names[which], pos, vname, n),
              want, callf(k, f, prob, n));
}

/* NaN, infinities, bad targets and weights, probabilities outside [0, 1], for every function
 * of the three phases and ghm_c_loss_labels. */
static void test_phase_values(const kind *k) {
    float nonfinite[4];
    static const char *const nf_name[4] = {"NaN", "+Inf", "-Inf", "sNaN"};
    const ghm_status target_nonfinite = k->tag == 'c' ? GHM_ERR_TARGET : GHM_ERR_NONFINITE;
    enum fid fs[6];
    size_t nfs = 0, fi, i;
    nonfinite[0] = NAN;
    nonfinite[1] = INFINITY;
    nonfinite[2] = -INFINITY;
    nonfinite[3] = from_bits(0x7F800001u);
    fs[nfs++] = F_ACC;
    fs[nfs++] = F_APPLY;
    if (k->tag == 'r') {
        fs[nfs++] = F_ACC_RESID;
        fs[nfs++] = F_APPLY_RESID;
    } else {
        fs[nfs++] = F_LOSS_LABELS;
        fs[nfs++] = F_ACC_LABELS;
        fs[nfs++] = F_APPLY_LABELS;
    }
    for (fi = 0; fi < nfs; fi++) {
        const enum fid f = fs[fi];
        const int labels = f >= F_LOSS_LABELS;
        const int has_b = f == F_ACC || f == F_APPLY;
        const size_t n = labels ? LA : N, nl = labels ? LA_LONG : N_LONG;
        const size_t na = labels ? n * LC : n, nal = labels ? nl * LC : nl;
        for (i = 0; i < 4; i++) {
            bad_phase_value(k, f, 0, 0, 0, nonfinite[i], n, GHM_ERR_NONFINITE, nf_name[i]);
            bad_phase_value(k, f, 0, 0, na - 1, nonfinite[i], n, GHM_ERR_NONFINITE, nf_name[i]);
            bad_phase_value(k, f, 0, 0, nal - 1, nonfinite[i], nl, GHM_ERR_NONFINITE,
                            nf_name[i]);
            if (has_b) {
                bad_phase_value(k, f, 0, 1, 5, nonfinite[i], n, target_nonfinite, nf_name[i]);
                bad_phase_value(k, f, 0, 1, nl - 1, nonfinite[i], nl, target_nonfinite,
                                nf_name[i]);
            }
            bad_phase_value(k, f, 0, 2, 1, nonfinite[i], n, GHM_ERR_WEIGHT, nf_name[i]);
            bad_phase_value(k, f, 0, 2, nl - 1, nonfinite[i], nl, GHM_ERR_WEIGHT, nf_name[i]);
        }
        bad_phase_value(k, f, 0, 2, 3, -1.0f, n, GHM_ERR_WEIGHT, "-1");
        bad_phase_value(k, f, 0, 2, nl - 1, -1e-45f, nl, GHM_ERR_WEIGHT, "-1e-45");
        bad_phase_value(k, f, 0, 2, n - 1, -FLT_MAX, n, GHM_ERR_WEIGHT, "-FLT_MAX");
        if (has_b && k->tag == 'c') {
            bad_phase_value(k, f, 0, 1, 5, -0.1f, n, GHM_ERR_TARGET, "-0.1");
            bad_phase_value(k, f, 0, 1, nl - 1, 1.00000012f, nl, GHM_ERR_TARGET, "1+ulp");
        }
        if (has_b && k->tag == 'r') {
            setup(k);
            W.a[5] = 3e38f;
            W.b[5] = -3e38f;
            UNTOUCHED(label("%s %s: pred - target overflows", k->name, FID_NAME[f]),
                      GHM_ERR_OVERFLOW, callf(k, f, 0, n));
        }
        if (k->tag == 'c') {
            static const float outside[] = {1.5f, -0.1f, 1.00000012f, -1e-45f, FLT_MAX};
            static const char *const out_name[] = {"1.5", "-0.1", "1+ulp", "-1e-45", "FLT_MAX"};
            static const float inside[] = {0.0f, -0.0f, 1.0f, 1e-45f};
            for (i = 0; i < 5; i++) {
                bad_phase_value(k, f, 1, 0, 5, outside[i], n, GHM_ERR_PROBABILITY, out_name[i]);
                bad_phase_value(k, f, 1, 0, nal - 1, outside[i], nl, GHM_ERR_PROBABILITY,
                                out_name[i]);
            }
            bad_phase_value(k, f, 1, 0, 5, NAN, n, GHM_ERR_NONFINITE, "NaN");
            bad_phase_value(k, f, 1, 0, 5, INFINITY, n, GHM_ERR_NONFINITE, "+Inf");
            if (has_b) {
                bad_phase_value(k, f, 1, 1, 5, 1.5f, n, GHM_ERR_TARGET, "target 1.5");
            }
            for (i = 0; i < 4; i++) {
                setup(k);
                fill_probabilities();
                W.layout.anchors = n;
                W.a[5] = inside[i];
                SUCCEEDS(label("%s %s (probability inputs): %g is valid", k->name, FID_NAME[f],
                               (double)inside[i]),
                         callf(k, f, 1, n));
            }
            /* a logit outside [0, 1] is fine without the option */
            setup(k);
            W.a[5] = 7.5f;
            SUCCEEDS(label("%s %s: logit 7.5 without GHM_OPT_PROBABILITY_INPUT", k->name,
                           FID_NAME[f]),
                     callf(k, f, 0, n));
        }
    }
}

/* The region-weights accessors: bad pointers, weights no commit produced, and the values. */
static void test_region_weights(const kind *k) {
    static const unsigned char fills[] = {0x00, 0x5A, 0xFF, POISON};
    double *T = (double *)(void *)arena8();
    float *L = W.loss;
    size_t offs[2], no, i, r;
    void *p;

    setup(k);
    UNTOUCHED(label("%s region_weights_tot: NULL weights", k->name), GHM_ERR_NULL,
              ghm_region_weights_tot(NULL, T));
    UNTOUCHED(label("%s region_weights_tot: NULL tot", k->name), GHM_ERR_NULL,
              ghm_region_weights_tot(&W.wt, NULL));
    UNTOUCHED(label("%s region_weights_loss: NULL weights", k->name), GHM_ERR_NULL,
              ghm_region_weights_loss(NULL, L));
    UNTOUCHED(label("%s region_weights_loss: NULL loss", k->name), GHM_ERR_NULL,
              ghm_region_weights_loss(&W.wt, NULL));
    UNTOUCHED(label("%s region_weight: NULL weights", k->name), GHM_ERR_NULL,
              ghm_region_weight(NULL, 0, L));
    UNTOUCHED(label("%s region_weight: NULL beta", k->name), GHM_ERR_NULL,
              ghm_region_weight(&W.wt, 0, NULL));
    no = misalign_offsets(ALIGN_WEIGHTS, offs);
    for (i = 0; i < no; i++) {
        p = raw_copy(&W.wt, sizeof W.wt, offs[i]);
        UNTOUCHED(label("%s region_weights_tot: weights misaligned by %zu", k->name, offs[i]),
                  GHM_ERR_MISALIGNED,
                  ghm_region_weights_tot((const ghm_region_weights *)p, T));
        UNTOUCHED(label("%s region_weights_loss: weights misaligned by %zu", k->name, offs[i]),
                  GHM_ERR_MISALIGNED,
                  ghm_region_weights_loss((const ghm_region_weights *)p, L));
        UNTOUCHED(label("%s region_weight: weights misaligned by %zu", k->name, offs[i]),
                  GHM_ERR_MISALIGNED, ghm_region_weight((const ghm_region_weights *)p, 0, L));
    }
    UNTOUCHED(label("%s region_weights_tot: tot misaligned by 4", k->name), GHM_ERR_MISALIGNED,
              ghm_region_weights_tot(&W.wt, (double *)(void *)((char *)T + 4)));
    UNTOUCHED(label("%s region_weights_loss: loss misaligned", k->name), GHM_ERR_MISALIGNED,
              ghm_region_weights_loss(&W.wt, misalign(L)));
    UNTOUCHED(label("%s region_weight: beta misaligned", k->name), GHM_ERR_MISALIGNED,
              ghm_region_weight(&W.wt, 0, misalign(L)));
    UNTOUCHED(label("%s region_weights_tot: tot inside the weights", k->name), GHM_ERR_OVERLAP,
              ghm_region_weights_tot(&W.wt, (double *)(void *)((char *)&W.wt + 8)));
    UNTOUCHED(label("%s region_weights_loss: loss inside the weights", k->name),
              GHM_ERR_OVERLAP,
              ghm_region_weights_loss(&W.wt, (float *)(void *)((char *)&W.wt + 4)));
    UNTOUCHED(label("%s region_weight: beta inside the weights", k->name), GHM_ERR_OVERLAP,
              ghm_region_weight(&W.wt, 3, (float *)(void *)((char *)&W.wt + sizeof W.wt - 4)));
    for (i = 0; i < sizeof fills; i++) {
        setup(k);
        memset(&W.wt, fills[i], sizeof W.wt);
        UNTOUCHED(label("%s region_weights_tot: weights filled with 0x%02x", k->name, fills[i]),
                  GHM_ERR_NOT_COMMITTED, ghm_region_weights_tot(&W.wt, T));
        UNTOUCHED(label("%s region_weights_loss: weights filled with 0x%02x", k->name, fills[i]),
                  GHM_ERR_NOT_COMMITTED, ghm_region_weights_loss(&W.wt, L));
        UNTOUCHED(label("%s region_weight: weights filled with 0x%02x", k->name, fills[i]),
                  GHM_ERR_NOT_COMMITTED, ghm_region_weight(&W.wt, 0, L));
    }
    for (i = 0; i < sizeof W.wt; i += 13) {
        setup(k);
        ((unsigned char *)&W.wt)[i] ^= 0x10;
        UNTOUCHED(label("%s region_weights_tot: weights with byte %zu changed", k->name, i),
                  GHM_ERR_NOT_COMMITTED, ghm_region_weights_tot(&W.wt, T));
    }

    /* the values: tot from the 64 elements committed in setup, the loss ghm_commit wrote,
     * a positive beta exactly for the regions the stats hit */
    {
        ghm_state s2;
        ghm_region_weights w2;
        float l2 = -1.0f, got_l = -2.0f, beta = -1.0f;
        double tot = -1.0, want = 0.0;
        int ok = 1;
        setup(k);
        for (i = 0; i < 64; i++) {
            float a, b, w;
            valid_element(k, i, &a, &b, &w);
            want += k->tag == 'c' ? (double)(w > 0.0f) : (double)w;
        }
        s2 = W.st;
        ok &= ghm_commit(&W.stats, &s2, &w2, &l2) == GHM_OK;
        ok &= ghm_region_weights_tot(&w2, &tot) == GHM_OK;
        ok &= ghm_region_weights_loss(&w2, &got_l) == GHM_OK;
        check(ok && tot == want && memcmp(&got_l, &l2, sizeof l2) == 0,
              label("%s region weights accessors: tot %.17g (want %.17g), loss %.9g (commit "
                    "wrote %.9g)",
                    k->name, tot, want, (double)got_l, (double)l2),
              "wrong value or status");
        for (r = 0; r < GHM_MAX_BINS + 2; r++) {
            int hit = r < GHM_MAX_BINS && W.stats.count[r] > 0.0;
            ok = ghm_region_weight(&w2, r, &beta) == GHM_OK && isfinite(beta) &&
                 (hit ? beta > 0.0f : beta == 0.0f);
            check(ok, label("%s region_weight(%zu): %.9g", k->name, r, (double)beta),
                  "a region the stats hit has beta > 0, others 0");
        }
        check(ghm_region_weight(&w2, SIZE_MAX, &beta) == GHM_OK && beta == 0.0f,
              label("%s region_weight(SIZE_MAX)", k->name), "is 0");
    }
}

/* ghm_output.sum: summed values whose scale times tot overflows are refused. */
static void test_summed_output(const kind *k) {
    setup(k);
    W.output.sum = 1;
    W.output.scale = 3e38f;
    UNTOUCHED(label("%s apply: sum with scale 3e38 (scale * tot overflows)", k->name),
              GHM_ERR_OVERFLOW,
              APPLY(k)(&W.wt, W.a, W.b, W.w, N, &W.output, W.grad));
    W.output.scale = -3e38f;
    UNTOUCHED(label("%s apply: sum with scale -3e38, in place", k->name), GHM_ERR_OVERFLOW,
              APPLY(k)(&W.wt, W.a, W.b, W.w, N, &W.output, W.a));
    W.output.scale = 1.0f;
    SUCCEEDS(label("%s apply: sum with scale 1", k->name),
             APPLY(k)(&W.wt, W.a, W.b, W.w, N, &W.output, W.grad));
}

/* GHM_OPT_GRADIENT_INPUT: the configuration rules, NULL targets, the input range, the labels
 * functions refused. */
static void test_gradient_input(const kind *k) {
    ghm_config c = test_config(k), rc = ghm_r_config_default();
    const char *field = NULL, *allowed = NULL;
    ghm_state gs;
    ghm_stats gst;
    ghm_region_weights gw;
    float l;
    size_t i;
    int ok = 1;

    setup(k);
    c.options = GHM_OPT_GRADIENT_INPUT | GHM_OPT_PROBABILITY_INPUT;
    UNTOUCHED(label("GHM-C init: gradient and probability inputs together"), GHM_ERR_CONFIG,
              ghm_c_init(&W.st, &c));
    check(ghm_c_config_check(&c, &field, &allowed) == GHM_OK && field != NULL &&
              strcmp(field, "options") == 0,
          "ghm_c_config_check: gradient and probability inputs together", "names options");
    rc.options = GHM_OPT_GRADIENT_INPUT;
    UNTOUCHED(label("GHM-R init: GHM_OPT_GRADIENT_INPUT"), GHM_ERR_CONFIG,
              ghm_r_init(&W.other, &rc));

    /* a gradient-input state, and region weights it committed */
    c.options = GHM_OPT_GRADIENT_INPUT;
    setup(k);
    for (i = 0; i < N_LONG + SLACK; i++) {
        W.a[i] /= 4.0f; /* logits of -4..4 become d in [-1, 1] */
    }
    ok &= ghm_c_init(&gs, &c) == GHM_OK && ghm_stats_init(&gs, &gst) == GHM_OK;
    ok &= ghm_c_accumulate(&gs, W.a, NULL, W.w, 64, &gst) == GHM_OK;
    ok &= ghm_commit(&gst, &gs, &gw, &l) == GHM_OK;
    check(ok, "gradient input: init, accumulate with NULL targets and commit", "succeed");
    W.st = gs;
    W.wt = gw;
    W.stats = gst;
    SUCCEEDS("gradient input: accumulate, NULL targets",
             ghm_c_accumulate(&W.st, W.a, NULL, W.w, N, &W.stats));
    SUCCEEDS("gradient input: accumulate, targets given (not read)",
             ghm_c_accumulate(&W.st, W.a, W.b, W.w, N, &W.stats));
    SUCCEEDS("gradient input: apply, NULL targets",
             ghm_c_apply(&W.wt, W.a, NULL, W.w, N, &W.output, W.grad));
    SUCCEEDS("gradient input: apply in place, NULL targets",
             ghm_c_apply(&W.wt, W.a, NULL, W.w, N, &W.output, W.a));
    SUCCEEDS("gradient input: loss, NULL targets",
             ghm_c_loss(&W.st, W.a, NULL, W.w, N, W.loss, W.grad));
    W.a[3] = -1.0f;
    W.a[4] = 1.0f;
    SUCCEEDS("gradient input: accumulate, d = -1 and 1",
             ghm_c_accumulate(&W.st, W.a, NULL, W.w, N, &W.stats));
    {
        static const float bad[4] = {1.0000001f, -1.0000001f, 2.0f, -1e30f};
        for (i = 0; i < 4; i++) {
            W.a[5] = bad[i];
            UNTOUCHED(label("gradient input: accumulate, d = %g", (double)bad[i]),
                      GHM_ERR_PROBABILITY, ghm_c_accumulate(&W.st, W.a, NULL, W.w, N, &W.stats));
            UNTOUCHED(label("gradient input: apply, d = %g", (double)bad[i]),
                      GHM_ERR_PROBABILITY,
                      ghm_c_apply(&W.wt, W.a, NULL, W.w, N, &W.output, W.grad));
            UNTOUCHED(label("gradient input: loss, d = %g", (double)bad[i]), GHM_ERR_PROBABILITY,
                      ghm_c_loss(&W.st, W.a, NULL, W.w, N, W.loss, W.grad));
        }
    }
    W.a[5] = NAN;
    UNTOUCHED("gradient input: accumulate, d NaN", GHM_ERR_NONFINITE,
              ghm_c_accumulate(&W.st, W.a, NULL, W.w, N, &W.stats));
    W.a[5] = 0.5f;
    UNTOUCHED("gradient input: accumulate_labels", GHM_ERR_CONFIG,
              ghm_c_accumulate_labels(&W.st, W.a, &W.layout, W.labels, W.w, &W.stats));
    UNTOUCHED("gradient input: apply_labels", GHM_ERR_CONFIG,
              ghm_c_apply_labels(&W.wt, W.a, &W.layout, W.labels, W.w, &W.output, W.grad));
    UNTOUCHED("gradient input: loss_labels", GHM_ERR_CONFIG,
              ghm_c_loss_labels(&W.st, W.a, LA, LC, W.labels, W.w, W.loss, W.grad));

    /* without the option, GHM-C targets stay required */
    setup(k);
    UNTOUCHED("GHM-C accumulate: NULL targets without GHM_OPT_GRADIENT_INPUT", GHM_ERR_NULL,
              ghm_c_accumulate(&W.st, W.a, NULL, W.w, N, &W.stats));
    UNTOUCHED("GHM-C apply: NULL targets without GHM_OPT_GRADIENT_INPUT", GHM_ERR_NULL,
              ghm_c_apply(&W.wt, W.a, NULL, W.w, N, &W.output, W.grad));
    UNTOUCHED("GHM-C loss: NULL targets without GHM_OPT_GRADIENT_INPUT", GHM_ERR_NULL,
              ghm_c_loss(&W.st, W.a, NULL, W.w, N, W.loss, W.grad));
}

/* Successful class-index applies write exactly the layout's elements of out. */
static void test_labels_writes_in_range(const kind *k) {
    int f;
    for (f = 0; f < N_GOOD_LAYOUTS; f++) {
        const char *what;
        ghm_class_layout l;
        size_t r, c, i, im, bx, extent = 0;
        size_t images, boxes;
        int ok;
        unsigned char mark[N_LONG + SLACK];
        setup(k);
        l = good_layout(f, &what);
        W.layout = l;
        images = l.images > 1 ? l.images : 1;
        boxes = l.boxes > 1 ? l.boxes : 1;
        memset(mark, 0, sizeof mark);
        for (im = 0; im < images; im++) {
            for (bx = 0; bx < boxes; bx++) {
                for (r = 0; r < l.anchors; r++) {
                    for (c = 0; c < l.classes; c++) {
                        size_t at = im * l.image_stride + bx * l.box_stride +
                                    r * l.anchor_stride + c * l.class_stride;
                        if (at + 1 > extent) {
                            extent = at + 1;
                        }
                        if (at + 1 < N_LONG + SLACK) {
                            mark[1 + at] = 1;
                        }
                    }
                }
            }
        }
        ok = ghm_c_apply_labels(&W.wt, W.a, &W.layout, W.labels, W.w, &W.output, W.grad + 1) ==
             GHM_OK;
        for (i = 0; ok && i < N_LONG + SLACK; i++) {
            int untouched = memcmp(&W.grad[i], "\xA5\xA5\xA5\xA5", 4) == 0;
            ok = mark[i] ? !untouched && isfinite(W.grad[i]) : untouched;
        }
        check(ok && extent + 1 < N_LONG,
              label("%s apply_labels writes exactly the layout's elements (%s)", k->name, what),
              "failed, wrote outside the layout's elements, or left one unwritten");
    }
}

/* Counting stats and the `_loss` applies: the commit refuses to write a loss it does not
 * have, the loss is the applies' to write, and their error rules are those of the applies
 * plus the loss's own pointer. */
typedef ghm_status (*apply_loss_fn)(const ghm_region_weights *, const float *, const float *,
                                    const float *, size_t, const ghm_output *, float *, double *);
static void test_counting(const kind *k) {
    const apply_loss_fn apl = k->tag == 'c' ? ghm_c_apply_loss : ghm_r_apply_loss;
    ghm_state st;
    ghm_region_weights wt;
    ghm_stats mixed;
    float *ar = arena8();
    double whole;
    size_t i;

    /* a commit without a loss pointer: any stats */
    setup(k);
    st = W.st;
    SUCCEEDS(label("%s commit: NULL loss", k->name), ghm_commit(&W.stats, &st, &wt, NULL));
    check(memcmp(&wt, &W.wt, sizeof wt) == 0, label("%s commit: NULL loss", k->name),
          "weights differ from the same commit's with a loss pointer");
    /* counting stats: the loss is not the commit's */
    UNTOUCHED(label("%s commit: counting stats with a loss pointer", k->name), GHM_ERR_NO_LOSS,
              ghm_commit(&W.cstats, &W.st, &W.wt, W.loss));
    UNTOUCHED(label("%s region_weights_loss of counting weights", k->name), GHM_ERR_NO_LOSS,
              ghm_region_weights_loss(&W.cwt, W.loss));
    mixed = W.stats;
    ghm_stats_merge(&W.cstats, &mixed);
    UNTOUCHED(label("%s commit: summing stats merged with counting ones", k->name),
              GHM_ERR_STATS_MISMATCH, ghm_commit(&mixed, &W.st, &W.wt, NULL));
    mixed = W.cstats;
    ghm_stats_merge(&W.stats, &mixed);
    UNTOUCHED(label("%s commit: counting stats merged with summing ones", k->name),
              GHM_ERR_STATS_MISMATCH, ghm_commit(&mixed, &W.st, &W.wt, NULL));
    check(memcmp(&W.cwt, &W.wt, sizeof wt) != 0 && W.cwt.counting == 1 && W.wt.counting == 0 &&
              memcmp(W.cwt.coef, W.wt.coef, sizeof wt.coef) == 0 && W.cwt.tot == W.wt.tot,
          label("%s counting commit", k->name),
          "not told apart from, or not the weights of, the summing commit");
    UNTOUCHED(label("%s stats_init_counting: NULL stats", k->name), GHM_ERR_NULL,
              ghm_stats_init_counting(&W.st, NULL));
    UNTOUCHED(label("%s stats_init_counting: NULL state", k->name), GHM_ERR_NULL,
              ghm_stats_init_counting(NULL, &W.cstats));

    /* the `_loss` apply's own pointer */
    UNTOUCHED(label("%s apply_loss: NULL loss", k->name), GHM_ERR_NULL,
              apl(&W.cwt, W.a, W.b, W.w, N, NULL, W.grad, NULL));
    UNTOUCHED(label("%s apply_loss: misaligned loss", k->name), GHM_ERR_MISALIGNED,
              apl(&W.cwt, W.a, W.b, W.w, N, NULL, W.grad, (double *)(void *)(ar + 1)));
    UNTOUCHED(label("%s apply_loss: loss inside the gradient", k->name), GHM_ERR_OVERLAP,
              apl(&W.cwt, W.a, W.b, W.w, N, NULL, ar + 8, (double *)(void *)(ar + 10)));
    UNTOUCHED(label("%s apply_loss: loss inside the inputs", k->name), GHM_ERR_OVERLAP,
              apl(&W.cwt, ar, W.b, W.w, N, NULL, W.grad, (double *)(void *)(ar + 4)));
    UNTOUCHED(label("%s apply_loss: loss inside the weights", k->name), GHM_ERR_OVERLAP,
              apl(&W.cwt, W.a, W.b, W.w, N, NULL, W.grad, (double *)(void *)&W.cwt));
    /* the rules of the apply it extends */
    UNTOUCHED(label("%s apply_loss: NULL weights", k->name), GHM_ERR_NULL,
              apl(NULL, W.a, W.b, W.w, N, NULL, W.grad, W.share));
    UNTOUCHED(label("%s apply_loss: weights of the other loss", k->name), GHM_ERR_WRONG_LOSS,
              apl(&W.wother, W.a, W.b, W.w, N, NULL, W.grad, W.share));
    UNTOUCHED(label("%s apply_loss: NULL logits", k->name), GHM_ERR_NULL,
              apl(&W.cwt, NULL, W.b, W.w, N, NULL, W.grad, W.share));
    W.a[5] = NAN;
    UNTOUCHED(label("%s apply_loss: NaN input, output written", k->name), GHM_ERR_NONFINITE,
              apl(&W.cwt, W.a, W.b, W.w, N, NULL, W.grad, W.share));
    UNTOUCHED(label("%s apply_loss: NaN input, loss only", k->name), GHM_ERR_NONFINITE,
              apl(&W.cwt, W.a, W.b, W.w, N, NULL, NULL, W.share));
    setup(k);

    /* good calls: the loss alone equals the loss with the output; a chunk's shares add up */
    SUCCEEDS(label("%s apply_loss", k->name), apl(&W.cwt, W.a, W.b, W.w, 64, NULL, W.grad, W.share));
    SUCCEEDS(label("%s apply_loss: loss only", k->name),
             apl(&W.cwt, W.a, W.b, W.w, 64, NULL, NULL, W.share + 1));
    whole = W.share[0];
    check(whole > 0.0 && W.share[1] == whole && W.grad[0] != from_bits(0xA5A5A5A5u) &&
              W.grad[63] != from_bits(0xA5A5A5A5u) && W.grad[64] == from_bits(0xA5A5A5A5u),
          label("%s apply_loss outputs", k->name),
          "loss or gradient not written, the loss alone differs, or written past n");
    SUCCEEDS(label("%s apply_loss: first part", k->name),
             apl(&W.cwt, W.a, W.b, W.w, 23, NULL, NULL, W.share + 2));
    SUCCEEDS(label("%s apply_loss: second part", k->name),
             apl(&W.cwt, W.a + 23, W.b + 23, W.w + 23, 41, NULL, NULL, W.share + 3));
    check(fabs(W.share[2] + W.share[3] - whole) <= 1e-6 * whole, label("%s apply_loss parts", k->name),
          "the shares of two chunks do not add up to the whole's");
    /* with summing weights the share of the whole chunk is the commit's loss (to rounding:
     * the commit sums per region) */
    SUCCEEDS(label("%s apply_loss, summing weights", k->name),
             apl(&W.wt, W.a, W.b, W.w, 64, NULL, NULL, W.share));
    check(fabs(W.share[0] - W.wt.loss) <= 1e-6 * W.wt.loss,
          label("%s apply_loss, summing weights", k->name),
          "the share of the committed chunk is not the commit's loss");
    /* in place, as the apply allows */
    for (i = 0; i < 64; i++) {
        W.grad[i] = W.a[i];
    }
    SUCCEEDS(label("%s apply_loss in place", k->name),
             apl(&W.cwt, W.grad, W.b, W.w, 64, NULL, W.grad, W.share + 1));
    check(W.share[1] == whole, label("%s apply_loss in place", k->name), "a different loss");

    /* a share at float's range: refused, nothing written */
    {
        ghm_config c = k->defaults();
        ghm_stats s;
        c.loss_weight = 1e38f;
        setup(k);
        W.a[0] = 100.0f;
        W.b[0] = 0.0f;
        if (k->init(&W.st, &c) != GHM_OK || ghm_stats_init_counting(&W.st, &s) != GHM_OK ||
            ACC(k)(&W.st, W.a, W.b, NULL, 1, &s) != GHM_OK ||
            ghm_commit(&s, &W.st, &W.cwt, NULL) != GHM_OK) {
            fail(label("%s apply_loss overflow setup", k->name), "a setup call failed");
        } else {
            UNTOUCHED(label("%s apply_loss: the share overflows", k->name), GHM_ERR_OVERFLOW,
                      apl(&W.cwt, W.a, W.b, NULL, 1, NULL, W.grad, W.share));
            UNTOUCHED(label("%s apply_loss: the share overflows, loss only", k->name),
                      GHM_ERR_OVERFLOW, apl(&W.cwt, W.a, W.b, NULL, 1, NULL, NULL, W.share));
        }
    }

    /* class-index targets */
    if (k->tag == 'c') {
        ghm_stats cs;
        setup(k);
        if (ghm_stats_init_counting(&W.st, &cs) != GHM_OK ||
            ghm_c_accumulate_labels(&W.st, W.a, &W.layout, W.labels, W.w, &cs) != GHM_OK ||
            ghm_commit(&cs, &W.st, &W.cwt, NULL) != GHM_OK) {
            fail("apply_labels_loss setup", "a setup call failed");
        } else {
            UNTOUCHED("apply_labels_loss: NULL loss", GHM_ERR_NULL,
                      ghm_c_apply_labels_loss(&W.cwt, W.a, &W.layout, W.labels, W.w, NULL, W.grad,
                                              NULL));
            UNTOUCHED("apply_labels_loss: loss inside the output", GHM_ERR_OVERLAP,
                      ghm_c_apply_labels_loss(&W.cwt, W.a, &W.layout, W.labels, W.w, NULL, ar,
                                              (double *)(void *)(ar + 2)));
            /* an 8-byte aligned double among the labels (int32: 4-byte aligned) */
            int32_t *in_labels = (uintptr_t)(void *)W.labels % 8u ? W.labels + 1 : W.labels;
            UNTOUCHED("apply_labels_loss: loss inside the labels", GHM_ERR_OVERLAP,
                      ghm_c_apply_labels_loss(&W.cwt, W.a, &W.layout, W.labels, W.w, NULL, W.grad,
                                              (double *)(void *)in_labels));
            W.a[7] = INFINITY;
            UNTOUCHED("apply_labels_loss: infinite logit", GHM_ERR_NONFINITE,
                      ghm_c_apply_labels_loss(&W.cwt, W.a, &W.layout, W.labels, W.w, NULL, NULL,
                                              W.share));
            W.a[7] = 0.5f;
            SUCCEEDS("apply_labels_loss",
                     ghm_c_apply_labels_loss(&W.cwt, W.a, &W.layout, W.labels, W.w, NULL, W.grad,
                                             W.share));
            SUCCEEDS("apply_labels_loss: loss only",
                     ghm_c_apply_labels_loss(&W.cwt, W.a, &W.layout, W.labels, W.w, NULL, NULL,
                                             W.share + 1));
            check(W.share[0] > 0.0 && W.share[0] == W.share[1], "apply_labels_loss outputs",
                  "the loss alone differs from the loss with the gradient");
        }
    }
}

int main(void) {
    int i;
    test_status_str();
    test_defaults();
    for (i = 0; i < 2; i++) {
        const kind *k = &KINDS[i];
        test_init(k);
        test_pointers(k);
        test_states(k);
        test_values(k);
        test_result_overflow(k);
        test_overlaps(k);
        test_writes_in_range(k);
        test_stats_init_merge(k);
        test_counting(k);
        test_set_ema(k);
        test_accumulate(k);
        test_commit(k);
        test_apply(k);
        test_phase_values(k);
        test_region_weights(k);
        test_summed_output(k);
        if (k->tag == 'c') {
            test_gradient_input(k);
            test_loss_labels(k);
            test_accumulate_labels(k);
            test_apply_labels(k);
            test_labels_writes_in_range(k);
        }
    }
    printf("errors: %u passed, %u failed\n", passed, failed);
    return failed == 0 ? 0 : 1;
}
