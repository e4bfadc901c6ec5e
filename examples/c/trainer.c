/*
 * A C trainer's use of ghm, to copy from: initialise the states, call GHM-C and GHM-R every
 * step, checkpoint the states with the model and restore them.
 *
 * The "model" here is a stand-in (logits and box predictions that drift towards their
 * targets) so that the example is self-contained; in a trainer, `logits`, `pred` and the
 * gradients are the network's output and its backward input.
 *
 * Build and run (after `scripts/c-libs.sh`, which builds target/c/libghm.a):
 *   cc -std=c99 -Iinclude examples/c/trainer.c target/c/libghm.a -o trainer && ./trainer
 *
 * It also checks itself: the run that is checkpointed and restored midway must give exactly
 * the losses and gradients of a run that is not. `tests/ffi.rs` builds and runs it.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ghm.h"

enum { ANCHORS = 2000, CLASSES = 20, BOXES = 64, STEPS = 6, CHECKPOINT_AFTER = 3 };

/* Every ghm call returns a status; a trainer should stop (or skip the batch) on error. A
 * failed call has written nothing, so the states are still good for the next batch. */
#define CHECK(call)                                                                    \
    do {                                                                               \
        ghm_status s_ = (call);                                                        \
        if (s_ != GHM_OK) {                                                            \
            fprintf(stderr, "%s:%d: %s: %s\n", __FILE__, __LINE__, #call,              \
                    ghm_status_str(s_));                                               \
            exit(1);                                                                   \
        }                                                                              \
    } while (0)

/* What a trainer keeps between steps: the model (here: its outputs) and the loss states. */
typedef struct {
    float logits[ANCHORS * CLASSES];
    float pred[BOXES * 4];
    ghm_state cls; /* GHM-C's EMA: plain data, no pointers */
    ghm_state box; /* GHM-R's EMA */
} trainer;

typedef struct {
    int32_t labels[ANCHORS]; /* class index, or CLASSES for background */
    float anchor_weights[ANCHORS];
    float box_target[BOXES * 4];
} batch;

static unsigned long long rng = 0x2545f4914f6cdd1dULL;
static float uniform(void) {
    rng ^= rng >> 12;
    rng ^= rng << 25;
    rng ^= rng >> 27;
    return (float)((rng * 0x2545f4914f6cdd1dULL) >> 40) / 16777216.0f;
}

static void make_batch(batch *b) {
    int i;
    for (i = 0; i < ANCHORS; i++) {
        b->labels[i] = uniform() < 0.02f ? (int32_t)(uniform() * CLASSES) % CLASSES : CLASSES;
        b->anchor_weights[i] = uniform() < 0.05f ? 0.0f : 1.0f; /* 5% ignored anchors */
    }
    for (i = 0; i < BOXES * 4; i++) {
        b->box_target[i] = uniform() - 0.5f;
    }
}

static void init(trainer *t) {
    ghm_config cls = ghm_c_config_default(); /* mmdetection's GHMC() ... */
    ghm_config box = ghm_r_config_default(); /* ... and GHMR() */
    int i;
    rng = 0x9e3779b97f4a7c15ULL; /* the same initial model every time */
    cls.bins = 30;               /* the COCO RetinaNet settings */
    cls.momentum = 0.75f;
    box.mu = 0.02f;
    box.bins = 10;
    box.momentum = 0.7f;
    box.loss_weight = 10.0f;
    CHECK(ghm_c_init(&t->cls, &cls));
    CHECK(ghm_r_init(&t->box, &box));
    for (i = 0; i < ANCHORS * CLASSES; i++) {
        t->logits[i] = -4.0f + 2.0f * (uniform() - 0.5f);
    }
    for (i = 0; i < BOXES * 4; i++) {
        t->pred[i] = 2.0f * (uniform() - 0.5f);
    }
}

/* One step: both losses and their gradients, then the stand-in "update". */
static void step(trainer *t, const batch *b, float *cls_loss, float *box_loss) {
    static float cls_grad[ANCHORS * CLASSES], box_grad[BOXES * 4];
    int i;
    CHECK(ghm_c_loss_labels(&t->cls, t->logits, ANCHORS, CLASSES, b->labels, b->anchor_weights,
                            cls_loss, cls_grad));
    CHECK(ghm_r_loss(&t->box, t->pred, b->box_target, NULL, BOXES * 4, box_loss, box_grad));
    for (i = 0; i < ANCHORS * CLASSES; i++) {
        t->logits[i] -= 50.0f * cls_grad[i];
    }
    for (i = 0; i < BOXES * 4; i++) {
        t->pred[i] -= 5.0f * box_grad[i];
    }
}

/* A checkpoint is the model and the states, written as bytes: ghm_state has no pointers. */
static int save(const trainer *t, FILE *f) {
    return fwrite(t, sizeof *t, 1, f) == 1 ? 0 : -1;
}

static int load(trainer *t, FILE *f) {
    if (fread(t, sizeof *t, 1, f) != 1) {
        return -1;
    }
    /* ghm refuses a corrupted state with GHM_ERR_STATE on its next call; an empty batch
       (n = 0) checks it up front without changing it. */
    {
        float loss;
        if (ghm_c_loss(&t->cls, NULL, NULL, NULL, 0, &loss, NULL) != GHM_OK ||
            ghm_r_loss(&t->box, NULL, NULL, NULL, 0, &loss, NULL) != GHM_OK) {
            return -1;
        }
    }
    return 0;
}

int main(void) {
    static trainer straight, resumed;
    static batch batches[STEPS];
    float want_c[STEPS], want_r[STEPS];
    int s, passed = 0, failed = 0;
    FILE *f;

    for (s = 0; s < STEPS; s++) {
        make_batch(&batches[s]);
    }

    /* The uninterrupted run. */
    init(&straight);
    for (s = 0; s < STEPS; s++) {
        step(&straight, &batches[s], &want_c[s], &want_r[s]);
        printf("step %d: GHM-C loss %.6f  GHM-R loss %.6f\n", s, want_c[s], want_r[s]);
    }

    /* The same run, checkpointed after CHECKPOINT_AFTER steps and resumed in a fresh
       trainer (as after a restart). */
    init(&resumed);
    for (s = 0; s < CHECKPOINT_AFTER; s++) {
        float c, r;
        step(&resumed, &batches[s], &c, &r);
    }
    f = tmpfile();
    if (f == NULL || save(&resumed, f) != 0) {
        fprintf(stderr, "cannot write the checkpoint\n");
        return 1;
    }
    memset(&resumed, 0xA5, sizeof resumed); /* the process "restarts" */
    rewind(f);
    if (load(&resumed, f) != 0) {
        fprintf(stderr, "cannot restore the checkpoint\n");
        return 1;
    }
    fclose(f);
    for (s = CHECKPOINT_AFTER; s < STEPS; s++) {
        float c, r;
        step(&resumed, &batches[s], &c, &r);
        if (c == want_c[s] && r == want_r[s]) {
            passed++;
        } else {
            failed++;
            printf("step %d after restore: %.9g %.9g, want %.9g %.9g\n", s, c, r, want_c[s],
                   want_r[s]);
        }
    }
    if (memcmp(&resumed, &straight, sizeof resumed) == 0) {
        passed++;
    } else {
        failed++;
        printf("model and states after the resumed run differ from the straight run\n");
    }

    /* A corrupted checkpoint is refused, not used. */
    {
        ghm_state bad = resumed.cls;
        float loss;
        ((unsigned char *)&bad)[sizeof bad / 2] ^= 0x10;
        if (ghm_c_loss(&bad, NULL, NULL, NULL, 0, &loss, NULL) == GHM_ERR_STATE) {
            passed++;
        } else {
            failed++;
            printf("a corrupted state was accepted\n");
        }
    }
    printf("trainer: %d passed, %d failed\n", passed, failed);
    return failed != 0;
}
