/*
 * Shows that the C library never allocates: this program defines malloc, calloc, realloc,
 * free (and the aligned variants) itself, so every allocation in the process, the
 * library's included (static or shared: the executable's definitions interpose), comes
 * here. It initialises stdio, arms a counter, then calls only ghm_* functions (both
 * losses, every pointer mode, errors included) and exits non-zero if anything was
 * allocated or freed while armed.
 *
 * Built and run by scripts/sanitize.sh (not under AddressSanitizer, which owns malloc).
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "ghm.h"

static unsigned char arena[1 << 20];
static size_t used;
static volatile int armed;
static volatile unsigned long calls;

static void *bump(size_t size, size_t align) {
    size_t start = (used + sizeof(size_t) + align - 1) / align * align;
    if (start + size > sizeof arena) return NULL;
    memcpy(arena + start - sizeof(size_t), &size, sizeof(size_t));
    used = start + size;
    return arena + start;
}
static void note(void) { if (armed) calls++; }

void *malloc(size_t size) { note(); return bump(size, 16); }
void *calloc(size_t n, size_t size) {
    note();
    if (size && n > SIZE_MAX / size) return NULL;
    void *p = bump(n * size, 16);
    if (p) memset(p, 0, n * size);
    return p;
}
void *realloc(void *old, size_t size) {
    note();
    void *p = bump(size, 16);
    if (p && old) {
        size_t was;
        memcpy(&was, (unsigned char *)old - sizeof(size_t), sizeof(size_t));
        memcpy(p, old, was < size ? was : size);
    }
    return p;
}
void free(void *p) { if (p) note(); }
void *aligned_alloc(size_t align, size_t size) { note(); return bump(size, align < 16 ? 16 : align); }
void *memalign(size_t align, size_t size) { note(); return bump(size, align < 16 ? 16 : align); }
int posix_memalign(void **out, size_t align, size_t size) {
    note();
    *out = bump(size, align < 16 ? 16 : align);
    return *out ? 0 : 12;
}

#define N 37
int main(void) {
    static float a[N + 1], b[N], w[N], g[N + 1];
    ghm_state sc, sr;
    ghm_config cc = ghm_c_config_default(), cr = ghm_r_config_default();
    float loss = 0.0f;
    int i, failures = 0;
    unsigned long seen;

    printf("no_malloc: start\n"); /* stdio's buffers are allocated here, unarmed */
    fflush(stdout);
    for (i = 0; i < N; i++) {
        a[i] = (float)(i % 11) - 5.0f;
        b[i] = (float)(i % 3) * 0.5f;
        w[i] = (float)(i % 4);
    }
    cc.momentum = 0.75f;
    cc.bins = 30;

    armed = 1;
    failures += ghm_c_init(&sc, &cc) != GHM_OK;
    failures += ghm_r_init(&sr, &cr) != GHM_OK;
    for (i = 0; i < 3; i++) {
        failures += ghm_c_loss(&sc, a, b, w, N, &loss, g) != GHM_OK;
        failures += ghm_c_loss(&sc, a, b, NULL, N, &loss, NULL) != GHM_OK;
        failures += ghm_r_loss(&sr, a, b, w, N, &loss, g) != GHM_OK;
        failures += ghm_r_loss(&sr, g, b, NULL, N - 1, &loss, g) != GHM_OK; /* in place */
    }
    failures += ghm_c_loss(&sc, NULL, NULL, NULL, 0, &loss, NULL) != GHM_OK;
    failures += ghm_c_loss(&sc, NULL, b, NULL, N, &loss, NULL) != GHM_ERR_NULL;
    failures += ghm_c_loss(&sc, a, b, NULL, N, &loss, a + 1) != GHM_ERR_OVERLAP;
    failures += ghm_c_loss(&sr, a, b, NULL, N, &loss, NULL) != GHM_ERR_WRONG_LOSS;
    b[3] = 2.0f;
    failures += ghm_c_loss(&sc, a, b, NULL, N, &loss, g) != GHM_ERR_TARGET;
    for (i = 0; i < 18; i++) failures += ghm_status_str(i) == NULL;
#ifdef GHM_NO_MALLOC_SELFTEST
    { void *volatile p = malloc(1); free(p); } /* scripts/sanitize.sh checks this is counted */
#endif
    seen = calls;
    armed = 0;

    printf("no_malloc: %lu allocator calls inside the library, %d failed checks\n", seen, failures);
    return seen == 0 && failures == 0 ? 0 : 1;
}
