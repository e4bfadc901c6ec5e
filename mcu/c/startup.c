/* Reset for the C firmware on QEMU mps2-an386 (Cortex-M4F): the vector table at address 0,
 * the FPU enabled, then newlib's semihosting start-up (rdimon: stdio over semihosting,
 * argv from QEMU's -semihosting-config arg=..., exit status to QEMU). */
#include <stdint.h>

extern void _start(void);
void reset(void);

static void semihost(int op, const void *arg) {
    register int r0 __asm__("r0") = op;
    register const void *r1 __asm__("r1") = arg;
    __asm__ volatile("bkpt 0xab" : "+r"(r0) : "r"(r1) : "memory");
}

/* A fault: prints the faulting PC (from the exception frame) and exits with status 1. */
void fault_report(const uint32_t *frame) {
    static char msg[] = "fault at pc 0x00000000\n";
    uint32_t pc = frame[6];
    for (int i = 0; i < 8; i++) {
        msg[21 - i] = "0123456789abcdef"[(pc >> (4 * i)) & 0xf];
    }
    semihost(0x04, msg); /* SYS_WRITE0 */
    static const uint32_t args[2] = {0x20026, 1}; /* ADP_Stopped_ApplicationExit, status 1 */
    semihost(0x20, args);                        /* SYS_EXIT_EXTENDED */
    for (;;) {
    }
}

__attribute__((naked)) static void fault(void) {
    __asm__ volatile("tst lr, #4\n\tite eq\n\tmrseq r0, msp\n\tmrsne r0, psp\n\tb fault_report");
}

__attribute__((section(".vectors"), used)) static void (*const vectors[16])(void) = {
    (void (*)(void))0x00400000, /* initial stack: top of the 4 MB at 0 */
    reset, fault, fault, fault, fault, fault, 0, 0, 0, 0, fault, fault, 0, fault, fault,
};

void reset(void) {
    /* CPACR: full access to CP10 and CP11 (the FPU), before any float code runs. */
    *(volatile uint32_t *)0xE000ED88 |= 0xFu << 20;
    __asm__ volatile("dsb\n\tisb");
    _start();
}
