/*
 * GHM-C and GHM-R as a user would write them in plain C in an afternoon: two passes, a
 * scratch byte per element for its region, no intrinsics. The benchmark compiles this with
 * `-O3 -march=native -ffast-math`, which lets GCC vectorise expf/log1pf through glibc's
 * vector math library. Same definitions as the crate's defaults (mmdetection's GHMC/GHMR):
 * regions floor(g * bins) of the gradient norm g, an EMA of the region counts, weights
 * tot / (density * non-empty regions), mean reduction times loss_weight (1 here; 10 in the
 * crate's GHM-R benchmark configuration is applied by the caller's comparison).
 */
#include <math.h>
#include <stddef.h>
#include <string.h>

#define MAX_BINS 64

/* The per-region coefficients lambda * beta_k / tot from this batch's counts; updates ema. */
static void weights(const double *count, int bins, float momentum, float *ema, double tot,
                    float lambda, float *coef) {
    int nonempty = 0;
    for (int k = 0; k < bins; k++)
        nonempty += count[k] > 0;
    for (int k = 0; k < bins; k++) {
        coef[k] = 0.0f;
        if (count[k] <= 0)
            continue;
        double density = count[k];
        if (momentum > 0) {
            ema[k] = momentum * ema[k] + (1.0 - momentum) * count[k];
            density = ema[k];
        }
        coef[k] = (float)(lambda * (tot / (density * nonempty)) / tot);
    }
}

/* GHM-C over n logits x with targets t in {0, 1} (every element valid). */
double cloop_ghmc_values(const float *x, const float *t, size_t n, int bins, float momentum,
                         float *ema, unsigned char *region, float *grad) {
    double count[MAX_BINS] = {0};
    for (size_t i = 0; i < n; i++) {
        float p = 1.0f / (1.0f + expf(-x[i]));
        int k = (int)(fabsf(p - t[i]) * bins);
        region[i] = (unsigned char)(k < bins ? k : bins - 1);
    }
    for (size_t i = 0; i < n; i++)
        count[region[i]] += 1;
    float coef[MAX_BINS];
    weights(count, bins, momentum, ema, n > 0 ? (double)n : 1.0, 1.0f, coef);
    double loss = 0;
    for (size_t i = 0; i < n; i++) {
        float p = 1.0f / (1.0f + expf(-x[i]));
        float c = coef[region[i]];
        float term = fmaxf(x[i], 0.0f) - x[i] * t[i] + log1pf(expf(-fabsf(x[i])));
        loss += c * term;
        grad[i] = c * (p - t[i]);
    }
    return loss;
}

/* GHM-C with class-index targets: anchors x classes logits, labels[a] in [0, classes) for a
 * positive anchor, anything else for background. */
double cloop_ghmc_labels(const float *x, const int *labels, size_t anchors, size_t classes,
                         int bins, float momentum, float *ema, unsigned char *region,
                         float *grad) {
    double count[MAX_BINS] = {0};
    for (size_t a = 0; a < anchors; a++) {
        for (size_t c = 0; c < classes; c++) {
            size_t i = a * classes + c;
            float t = labels[a] == (int)c ? 1.0f : 0.0f;
            float p = 1.0f / (1.0f + expf(-x[i]));
            int k = (int)(fabsf(p - t) * bins);
            region[i] = (unsigned char)(k < bins ? k : bins - 1);
        }
    }
    size_t n = anchors * classes;
    for (size_t i = 0; i < n; i++)
        count[region[i]] += 1;
    float coef[MAX_BINS];
    weights(count, bins, momentum, ema, n > 0 ? (double)n : 1.0, 1.0f, coef);
    double loss = 0;
    for (size_t a = 0; a < anchors; a++) {
        for (size_t c = 0; c < classes; c++) {
            size_t i = a * classes + c;
            float t = labels[a] == (int)c ? 1.0f : 0.0f;
            float p = 1.0f / (1.0f + expf(-x[i]));
            float cf = coef[region[i]];
            float term = fmaxf(x[i], 0.0f) - x[i] * t + log1pf(expf(-fabsf(x[i])));
            loss += cf * term;
            grad[i] = cf * (p - t);
        }
    }
    return loss;
}

/* GHM-R ("authentic smooth L1") over n predictions and targets, every element valid. */
double cloop_ghmr(const float *pred, const float *target, size_t n, float mu, int bins,
                  float momentum, float lambda, float *ema, unsigned char *region, float *grad) {
    double count[MAX_BINS] = {0};
    for (size_t i = 0; i < n; i++) {
        float d = pred[i] - target[i];
        float g = fabsf(d) / sqrtf(d * d + mu * mu);
        int k = (int)(g * bins);
        region[i] = (unsigned char)(k < bins ? k : bins - 1);
    }
    for (size_t i = 0; i < n; i++)
        count[region[i]] += 1;
    float coef[MAX_BINS];
    weights(count, bins, momentum, ema, n > 0 ? (double)n : 1.0, lambda, coef);
    double loss = 0;
    for (size_t i = 0; i < n; i++) {
        float d = pred[i] - target[i];
        float h = sqrtf(d * d + mu * mu);
        float c = coef[region[i]];
        loss += c * (h - mu);
        grad[i] = c * d / h;
    }
    return loss;
}

/* Plain (not harmonized) ASL1 loss and gradient, mean reduction, one pass. */
double cloop_asl1(const float *pred, const float *target, size_t n, float mu, float *grad) {
    double loss = 0;
    float s = n > 0 ? 1.0f / (float)n : 1.0f;
    for (size_t i = 0; i < n; i++) {
        float d = pred[i] - target[i];
        float h = sqrtf(d * d + mu * mu);
        loss += h - mu;
        grad[i] = s * d / h;
    }
    return loss * s;
}
