/* Debian's newlib for arm-none-eabi is built without the C99 length modifiers of printf
 * (%zu prints "zu" and misreads the arguments that follow). Linked with
 * -Wl,--wrap=printf,... this rewrites %z conversions to plain ones, which is exact here:
 * size_t is unsigned int on this target. */
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>

_Static_assert(sizeof(size_t) == sizeof(unsigned int), "size_t is unsigned int");

static const char *dez(const char *fmt, char *buf, size_t cap) {
    size_t o = 0;
    int in_conv = 0;
    for (const char *p = fmt; *p && o + 1 < cap; p++) {
        if (in_conv && *p == 'z') {
            continue;
        }
        if (*p == '%') {
            in_conv = !in_conv || p[-1] != '%';
        } else if (in_conv && ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z'))) {
            in_conv = 0;
        }
        buf[o++] = *p;
    }
    buf[o] = 0;
    return buf;
}

int __real_vprintf(const char *, va_list);
int __real_vfprintf(FILE *, const char *, va_list);
int __real_vsnprintf(char *, size_t, const char *, va_list);

int __wrap_vprintf(const char *fmt, va_list ap) {
    char f[512];
    return __real_vprintf(dez(fmt, f, sizeof f), ap);
}
int __wrap_vfprintf(FILE *s, const char *fmt, va_list ap) {
    char f[512];
    return __real_vfprintf(s, dez(fmt, f, sizeof f), ap);
}
int __wrap_vsnprintf(char *d, size_t n, const char *fmt, va_list ap) {
    char f[512];
    return __real_vsnprintf(d, n, dez(fmt, f, sizeof f), ap);
}
int __wrap_printf(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int r = __wrap_vprintf(fmt, ap);
    va_end(ap);
    return r;
}
int __wrap_fprintf(FILE *s, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int r = __wrap_vfprintf(s, fmt, ap);
    va_end(ap);
    return r;
}
int __wrap_snprintf(char *d, size_t n, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int r = __wrap_vsnprintf(d, n, fmt, ap);
    va_end(ap);
    return r;
}
