//! x86_64: the AVX2 and AVX-512 paths, and the run-time detection of the CPU features
//! they need (cpuid + xgetbv, no std).

use core::arch::x86_64::*;
use core::sync::atomic::{AtomicU8, Ordering};

pub(crate) mod avx2;
pub(crate) mod avx512;

/// Cached result of [`detect`]: 0 until the first query.
static FEATURES: AtomicU8 = AtomicU8::new(0);
const DETECTED: u8 = 1;
const AVX2_FMA: u8 = 2;
const AVX512F: u8 = 4;

/// Whether this CPU has AVX2 and FMA (with POPCNT, BMI1 and BMI2, which every such CPU has
/// and the passes' mask arithmetic uses) and the OS saves the YMM registers.
pub(crate) fn has_avx2_fma() -> bool {
    if cfg!(all(
        target_feature = "avx2",
        target_feature = "fma",
        target_feature = "popcnt",
        target_feature = "bmi1",
        target_feature = "bmi2"
    )) {
        return true;
    }
    features() & AVX2_FMA != 0
}

/// Whether this CPU has AVX-512F (besides AVX2 and FMA) and the OS saves the ZMM and opmask
/// registers.
pub(crate) fn has_avx512f() -> bool {
    if cfg!(all(
        target_feature = "avx512f",
        target_feature = "avx2",
        target_feature = "fma",
        target_feature = "popcnt",
        target_feature = "bmi1",
        target_feature = "bmi2"
    )) {
        return true;
    }
    features() & AVX512F != 0
}

fn features() -> u8 {
    let mut f = FEATURES.load(Ordering::Relaxed);
    if f == 0 {
        f = detect();
        FEATURES.store(f, Ordering::Relaxed);
    }
    f
}

/// cpuid leaf 1: FMA (ecx 12), POPCNT (ecx 23), OSXSAVE (ecx 27), AVX (ecx 28); XCR0 bits 1
/// and 2 (the OS saves XMM and YMM state); cpuid leaf 7: BMI1 (ebx 3), AVX2 (ebx 5), BMI2
/// (ebx 8), AVX-512F (ebx 16); for AVX-512 also XCR0 bits 5, 6 and 7 (opmask, upper halves
/// of ZMM0-15, ZMM16-31).
#[allow(unused_unsafe)] // __cpuid_count is a safe fn in newer toolchains
fn detect() -> u8 {
    if cfg!(miri) {
        // Miri cannot execute cpuid: it runs the paths the build enables statically.
        return DETECTED;
    }
    // SAFETY: cpuid exists on every x86_64 CPU.
    let max_leaf = unsafe { __cpuid_count(0, 0) }.eax;
    if max_leaf < 7 {
        return DETECTED;
    }
    // SAFETY: as above; leaves 1 and 7 exist (checked).
    let (l1, l7) = unsafe { (__cpuid_count(1, 0), __cpuid_count(7, 0)) };
    let bit = |r: u32, b: u32| r >> b & 1 != 0;
    let fma = bit(l1.ecx, 12);
    let osxsave = bit(l1.ecx, 27);
    let avx = bit(l1.ecx, 28);
    let avx2 = bit(l7.ebx, 5);
    let bits = bit(l1.ecx, 23) && bit(l7.ebx, 3) && bit(l7.ebx, 8); // POPCNT, BMI1, BMI2
                                                                    // SAFETY: xgetbv is only executed when the OS has enabled XSAVE (OSXSAVE).
    let xcr0 = if osxsave { unsafe { xcr0() } } else { 0 };
    let ymm_saved = xcr0 & 0b110 == 0b110;
    let zmm_saved = xcr0 & 0b1110_0110 == 0b1110_0110;
    let avx512f = bit(l7.ebx, 16);
    let mut f = DETECTED;
    if fma && avx && avx2 && bits && ymm_saved {
        f |= AVX2_FMA;
        if avx512f && zmm_saved {
            f |= AVX512F;
        }
    }
    f
}

/// # Safety
/// CPUID.1:ECX.OSXSAVE is set.
#[target_feature(enable = "xsave")]
unsafe fn xcr0() -> u64 {
    // SAFETY: the caller checked CPUID.1:ECX.OSXSAVE (this function's contract).
    unsafe { _xgetbv(0) }
}
