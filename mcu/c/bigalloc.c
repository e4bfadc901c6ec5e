/* ffi-tests/errors.c asks calloc for 128 MB that it never touches: a pointer with that
 * extent for the layout-length checks. The M4F has 4 MB of RAM, so (linked with
 * -Wl,--wrap=calloc,--wrap=free) a request above 1 MB gets an address in a range where
 * nothing is mapped: the library must refuse those calls without reading or writing, and a
 * bug that touched it would fault, which ends the program with a non-zero status. */
#include <stddef.h>
#include <stdint.h>

void *__real_calloc(size_t, size_t);
void __real_free(void *);

#define UNMAPPED ((void *)0x60000000u)

void *__wrap_calloc(size_t n, size_t size) {
    if (size != 0 && n > (1u << 20) / size) {
        return UNMAPPED;
    }
    return __real_calloc(n, size);
}

void __wrap_free(void *p) {
    if (p != UNMAPPED) {
        __real_free(p);
    }
}
