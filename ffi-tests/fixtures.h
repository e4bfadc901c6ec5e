/*
 * A small reader for tests/fixtures/mmdet.txt (format: tests/fixtures/README.md), shared by
 * the C and C++ test programs. Header-only; valid C99 and C++17. Uses only the standard
 * library.
 *
 * Usage:
 *     FILE *f = fopen(path, "r");
 *     fx_case c;
 *     int r;
 *     while ((r = fx_read_case(f, &c)) == 1) { ...; fx_free_case(&c); }
 *     r == 0: end of file; r < 0: a format error (already printed to stderr).
 */
#ifndef GHM_FFI_TESTS_FIXTURES_H
#define GHM_FFI_TESTS_FIXTURES_H

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FX_TOKEN_MAX 256

/* One call of a case. Arrays the file marks '-' are NULL. */
typedef struct fx_call {
    size_t n;        /* elements (values layout) or anchors (labels layout) */
    size_t n_pred;   /* n, or n * classes for the labels layout */
    float *pred;     /* n_pred */
    float *target;   /* n (values layout), else NULL */
    long *labels;    /* n (labels layout), else NULL */
    float *weight;   /* n, or NULL ('weight -') */
    float loss;
    float *grad;     /* n_pred */
    float *none;     /* n_pred, or NULL */
    float *acc_sum;  /* bins, or NULL ('acc_sum -': momentum 0) */
} fx_call;

typedef struct fx_case {
    char name[FX_TOKEN_MAX];
    char loss;          /* 'c' or 'r' */
    int labels_layout;  /* 0: values, 1: labels */
    unsigned bins;
    float momentum;
    float mu;
    float loss_weight;
    size_t classes;     /* labels layout only, else 0 */
    size_t ncalls;
    fx_call *calls;
} fx_case;

/* The next whitespace-separated token, skipping '#' comment lines. 1 on success, 0 at EOF. */
static inline int fx_token(FILE *f, char *tok) {
    for (;;) {
        int c;
        if (fscanf(f, "%255s", tok) != 1) {
            return 0;
        }
        if (tok[0] != '#') {
            return 1;
        }
        do {
            c = fgetc(f);
        } while (c != '\n' && c != EOF);
    }
}

static inline int fx_fail(const char *what, const char *tok) {
    fprintf(stderr, "fixtures: format error: %s (at token '%s')\n", what, tok ? tok : "<eof>");
    return -1;
}

/* Reads the token and requires it to be `key`. */
static inline int fx_expect(FILE *f, const char *key) {
    char tok[FX_TOKEN_MAX];
    if (!fx_token(f, tok)) {
        return fx_fail(key, NULL);
    }
    if (strcmp(tok, key) != 0) {
        return fx_fail(key, tok);
    }
    return 0;
}

static inline int fx_parse_float(const char *tok, float *out) {
    char *end = NULL;
    errno = 0;
    *out = strtof(tok, &end);
    if (end == tok || *end != '\0') {
        return fx_fail("float", tok);
    }
    /* ERANGE is set for subnormal results too; those are legitimate values here. */
    return 0;
}

static inline int fx_parse_size(const char *tok, size_t *out) {
    char *end = NULL;
    unsigned long long v;
    if (tok[0] == '-') {
        return fx_fail("non-negative int", tok);
    }
    errno = 0;
    v = strtoull(tok, &end, 10);
    if (end == tok || *end != '\0' || errno != 0) {
        return fx_fail("int", tok);
    }
    *out = (size_t)v;
    return 0;
}

static inline int fx_key_float(FILE *f, const char *key, float *out) {
    char tok[FX_TOKEN_MAX];
    if (fx_expect(f, key) != 0) {
        return -1;
    }
    if (!fx_token(f, tok)) {
        return fx_fail(key, NULL);
    }
    return fx_parse_float(tok, out);
}

static inline int fx_key_size(FILE *f, const char *key, size_t *out) {
    char tok[FX_TOKEN_MAX];
    if (fx_expect(f, key) != 0) {
        return -1;
    }
    if (!fx_token(f, tok)) {
        return fx_fail(key, NULL);
    }
    return fx_parse_size(tok, out);
}

/* `count` floats into a new array (at least one element allocated). */
static inline int fx_floats(FILE *f, size_t count, float **out) {
    char tok[FX_TOKEN_MAX];
    size_t i;
    float *v = (float *)malloc((count ? count : 1) * sizeof(float));
    if (v == NULL) {
        return fx_fail("out of memory", NULL);
    }
    for (i = 0; i < count; i++) {
        if (!fx_token(f, tok) || fx_parse_float(tok, &v[i]) != 0) {
            free(v);
            return fx_fail("float array", NULL);
        }
    }
    *out = v;
    return 0;
}

/* `key` then either '-' (*out = NULL) or `count` floats. */
static inline int fx_key_floats_opt(FILE *f, const char *key, size_t count, float **out) {
    char tok[FX_TOKEN_MAX];
    float *v;
    size_t i;
    *out = NULL;
    if (fx_expect(f, key) != 0) {
        return -1;
    }
    if (!fx_token(f, tok)) {
        return fx_fail(key, NULL);
    }
    if (strcmp(tok, "-") == 0) {
        return 0;
    }
    v = (float *)malloc((count ? count : 1) * sizeof(float));
    if (v == NULL) {
        return fx_fail("out of memory", NULL);
    }
    if (count == 0 || fx_parse_float(tok, &v[0]) != 0) {
        free(v);
        return fx_fail(key, tok);
    }
    for (i = 1; i < count; i++) {
        if (!fx_token(f, tok) || fx_parse_float(tok, &v[i]) != 0) {
            free(v);
            return fx_fail(key, NULL);
        }
    }
    *out = v;
    return 0;
}

static inline int fx_key_floats(FILE *f, const char *key, size_t count, float **out) {
    if (fx_expect(f, key) != 0) {
        return -1;
    }
    return fx_floats(f, count, out);
}

static inline void fx_free_case(fx_case *c) {
    size_t i;
    if (c->calls != NULL) {
        for (i = 0; i < c->ncalls; i++) {
            fx_call *k = &c->calls[i];
            free(k->pred);
            free(k->target);
            free(k->labels);
            free(k->weight);
            free(k->grad);
            free(k->none);
            free(k->acc_sum);
        }
    }
    free(c->calls);
    c->calls = NULL;
    c->ncalls = 0;
}

static inline int fx_read_call(FILE *f, const fx_case *c, fx_call *k) {
    char tok[FX_TOKEN_MAX];
    size_t i;
    if (fx_key_size(f, "call", &k->n) != 0) {
        return -1;
    }
    k->n_pred = c->labels_layout ? k->n * c->classes : k->n;
    if (fx_key_floats(f, "pred", k->n_pred, &k->pred) != 0) {
        return -1;
    }
    if (c->labels_layout) {
        if (fx_expect(f, "labels") != 0) {
            return -1;
        }
        k->labels = (long *)malloc((k->n ? k->n : 1) * sizeof(long));
        if (k->labels == NULL) {
            return fx_fail("out of memory", NULL);
        }
        for (i = 0; i < k->n; i++) {
            char *end = NULL;
            if (!fx_token(f, tok)) {
                return fx_fail("labels", NULL);
            }
            k->labels[i] = strtol(tok, &end, 10);
            if (end == tok || *end != '\0') {
                return fx_fail("label", tok);
            }
        }
    } else if (fx_key_floats(f, "target", k->n, &k->target) != 0) {
        return -1;
    }
    if (fx_key_floats_opt(f, "weight", k->n, &k->weight) != 0) {
        return -1;
    }
    if (fx_key_float(f, "loss", &k->loss) != 0) {
        return -1;
    }
    if (fx_key_floats(f, "grad", k->n_pred, &k->grad) != 0) {
        return -1;
    }
    if (fx_key_floats_opt(f, "none", k->n_pred, &k->none) != 0) {
        return -1;
    }
    if (fx_key_floats_opt(f, "acc_sum", c->bins, &k->acc_sum) != 0) {
        return -1;
    }
    return 0;
}

/* The next case: 1 when one was read, 0 at end of file, -1 on a format error. */
static inline int fx_read_case(FILE *f, fx_case *c) {
    char tok[FX_TOKEN_MAX];
    size_t bins, i;
    memset(c, 0, sizeof *c);
    if (!fx_token(f, tok)) {
        return 0;
    }
    if (strcmp(tok, "case") != 0) {
        return fx_fail("case", tok);
    }
    if (!fx_token(f, c->name)) {
        return fx_fail("case name", NULL);
    }
    if (fx_expect(f, "loss") != 0 || !fx_token(f, tok)) {
        return -1;
    }
    if (strcmp(tok, "c") != 0 && strcmp(tok, "r") != 0) {
        return fx_fail("loss c|r", tok);
    }
    c->loss = tok[0];
    if (fx_expect(f, "layout") != 0 || !fx_token(f, tok)) {
        return -1;
    }
    if (strcmp(tok, "values") == 0) {
        c->labels_layout = 0;
    } else if (strcmp(tok, "labels") == 0) {
        c->labels_layout = 1;
    } else {
        return fx_fail("layout values|labels", tok);
    }
    if (fx_key_size(f, "bins", &bins) != 0) {
        return -1;
    }
    c->bins = (unsigned)bins;
    if (fx_key_float(f, "momentum", &c->momentum) != 0 || fx_key_float(f, "mu", &c->mu) != 0 ||
        fx_key_float(f, "loss_weight", &c->loss_weight) != 0) {
        return -1;
    }
    if (c->labels_layout && fx_key_size(f, "classes", &c->classes) != 0) {
        return -1;
    }
    if (fx_key_size(f, "calls", &c->ncalls) != 0) {
        return -1;
    }
    c->calls = (fx_call *)calloc(c->ncalls ? c->ncalls : 1, sizeof(fx_call));
    if (c->calls == NULL) {
        return fx_fail("out of memory", NULL);
    }
    for (i = 0; i < c->ncalls; i++) {
        if (fx_read_call(f, c, &c->calls[i]) != 0) {
            fx_free_case(c);
            return -1;
        }
    }
    if (!fx_token(f, tok)) {
        fx_free_case(c);
        return fx_fail("end", NULL);
    }
    if (strcmp(tok, "--") == 0 && !fx_token(f, tok)) {
        fx_free_case(c);
        return fx_fail("end", NULL);
    }
    if (strcmp(tok, "end") != 0) {
        fx_free_case(c);
        return fx_fail("end", tok);
    }
    return 1;
}

#endif /* GHM_FFI_TESTS_FIXTURES_H */
