//! The AVX2 + FMA path: the generic passes instantiated for eight lanes in a `__m256`, and
//! the run-time detection of the CPU features it needs (cpuid + xgetbv, no std).

use core::arch::x86_64::*;
use core::sync::atomic::{AtomicU8, Ordering};

use crate::histogram::{Bins, Stats};
use crate::math::Model;
use crate::pass::{self, Inputs, LaneTable, Plan};
use crate::status::Error;
use crate::vector::Vector;

/// Eight f32 lanes. `mul_add` is fused (`vfmadd`); everything else is exactly rounded as in
/// the scalar instantiation, with the same NaN conventions for `min`/`max`.
impl Vector for __m256 {
    type Sum = (__m256d, __m256d);

    #[inline(always)]
    unsafe fn sum_zero() -> Self::Sum {
        (_mm256_setzero_pd(), _mm256_setzero_pd())
    }
    #[inline(always)]
    unsafe fn sum_add(self, acc: Self::Sum) -> Self::Sum {
        let lo = _mm256_cvtps_pd(_mm256_castps256_ps128(self));
        let hi = _mm256_cvtps_pd(_mm256_extractf128_ps::<1>(self));
        (_mm256_add_pd(acc.0, lo), _mm256_add_pd(acc.1, hi))
    }
    #[inline(always)]
    unsafe fn sum_total(acc: Self::Sum) -> f64 {
        let mut lanes = [0f64; 4];
        _mm256_storeu_pd(lanes.as_mut_ptr(), _mm256_add_pd(acc.0, acc.1));
        lanes.iter().sum()
    }

    const LANES: usize = 8;

    #[inline(always)]
    unsafe fn splat(x: f32) -> Self {
        _mm256_set1_ps(x)
    }
    #[inline(always)]
    unsafe fn load(p: *const f32) -> Self {
        _mm256_loadu_ps(p)
    }
    #[inline(always)]
    unsafe fn store(self, p: *mut f32) {
        _mm256_storeu_ps(p, self)
    }
    #[inline(always)]
    unsafe fn add(self, b: Self) -> Self {
        _mm256_add_ps(self, b)
    }
    #[inline(always)]
    unsafe fn sub(self, b: Self) -> Self {
        _mm256_sub_ps(self, b)
    }
    #[inline(always)]
    unsafe fn mul(self, b: Self) -> Self {
        _mm256_mul_ps(self, b)
    }
    #[inline(always)]
    unsafe fn div(self, b: Self) -> Self {
        _mm256_div_ps(self, b)
    }
    #[inline(always)]
    unsafe fn mul_add(self, b: Self, c: Self) -> Self {
        _mm256_fmadd_ps(self, b, c)
    }
    #[inline(always)]
    unsafe fn sqrt(self) -> Self {
        _mm256_sqrt_ps(self)
    }
    #[inline(always)]
    unsafe fn abs(self) -> Self {
        _mm256_andnot_ps(_mm256_set1_ps(-0.0), self)
    }
    #[inline(always)]
    unsafe fn floor(self) -> Self {
        _mm256_floor_ps(self)
    }
    // vminps/vmaxps return the second operand when either is NaN (and for +-0), as the
    // scalar `if a < b { a } else { b }` does.
    #[inline(always)]
    unsafe fn min(self, b: Self) -> Self {
        _mm256_min_ps(self, b)
    }
    #[inline(always)]
    unsafe fn max(self, b: Self) -> Self {
        _mm256_max_ps(self, b)
    }
    #[inline(always)]
    unsafe fn lt(self, b: Self) -> Self {
        _mm256_cmp_ps::<_CMP_LT_OQ>(self, b)
    }
    #[inline(always)]
    unsafe fn le(self, b: Self) -> Self {
        _mm256_cmp_ps::<_CMP_LE_OQ>(self, b)
    }
    #[inline(always)]
    unsafe fn eq(self, b: Self) -> Self {
        _mm256_cmp_ps::<_CMP_EQ_OQ>(self, b)
    }
    #[inline(always)]
    unsafe fn and(self, b: Self) -> Self {
        _mm256_and_ps(self, b)
    }
    #[inline(always)]
    unsafe fn or(self, b: Self) -> Self {
        _mm256_or_ps(self, b)
    }
    #[inline(always)]
    unsafe fn select(m: Self, a: Self, b: Self) -> Self {
        _mm256_blendv_ps(b, a, m)
    }
    #[inline(always)]
    unsafe fn bitmask(self) -> u32 {
        _mm256_movemask_ps(self) as u32
    }
    #[inline(always)]
    unsafe fn pow2(n: Self) -> Self {
        let e = _mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127));
        _mm256_castsi256_ps(_mm256_slli_epi32::<23>(e))
    }
    #[inline(always)]
    unsafe fn indices(self, out: &mut [u8; 16]) {
        let k = masked_indices(self);
        let words = _mm_packus_epi32(_mm256_castsi256_si128(k), _mm256_extracti128_si256::<1>(k));
        let bytes = _mm_packus_epi16(words, words);
        _mm_storel_epi64(out.as_mut_ptr().cast(), bytes);
    }
    #[inline(always)]
    unsafe fn lookup(self, table: &[f32; 64]) -> Self {
        // Every index is masked to 0..63 first, so even a lane holding NaN or garbage reads
        // inside the table.
        _mm256_i32gather_ps::<4>(table.as_ptr(), masked_indices(self))
    }
}

/// Lanes truncated to i32 and masked to `0..=63` (NaN and out-of-range lanes convert to
/// `i32::MIN`, which masks to 0).
#[inline(always)]
unsafe fn masked_indices(v: __m256) -> __m256i {
    _mm256_and_si256(_mm256_cvttps_epi32(v), _mm256_set1_epi32(63))
}

/// # Safety
/// As for [`pass::validate`], and the CPU has AVX2 and FMA ([`has_avx2_fma`]).
#[target_feature(enable = "avx2,fma")]
pub(crate) unsafe fn validate<M: Model>(model: &M, x: &Inputs) -> Result<(), Error> {
    pass::validate::<__m256, M>(model, x)
}

/// # Safety
/// As for [`pass::accumulate`], and the CPU has AVX2 and FMA ([`has_avx2_fma`]).
#[target_feature(enable = "avx2,fma")]
pub(crate) unsafe fn accumulate<M: Model>(
    model: &M,
    bins: &Bins,
    x: &Inputs,
    stats: &mut Stats,
) -> Result<(), Error> {
    let mut tables = [LaneTable::EMPTY; 8];
    pass::accumulate::<__m256, M, 8>(model, bins, x, &mut tables, stats)
}

/// # Safety
/// As for [`pass::apply`], and the CPU has AVX2 and FMA ([`has_avx2_fma`]).
#[target_feature(enable = "avx2,fma")]
pub(crate) unsafe fn apply<M: Model>(
    model: &M,
    bins: &Bins,
    plan: &Plan<'_>,
    x: &Inputs,
    out: *mut f32,
) -> bool {
    pass::apply::<__m256, M>(model, bins, plan, x, out)
}

/// # Safety
/// As for [`pass::plain_bce`], and the CPU has AVX2 and FMA ([`has_avx2_fma`]).
#[target_feature(enable = "avx2,fma")]
pub(crate) unsafe fn plain_bce(
    x: *const f32,
    t: *const f32,
    n: usize,
    scale: f32,
    out: *mut f32,
) -> f64 {
    pass::plain_bce::<__m256>(x, t, n, scale, out)
}

/// As for [`super::probe::eval`], and the CPU has AVX2 and FMA ([`has_avx2_fma`]).
#[target_feature(enable = "avx2,fma")]
pub(crate) unsafe fn probe(f: super::probe::Func, a: &[f32], b: &[f32], out: &mut [f32]) {
    super::probe::eval::<__m256>(f, a, b, out)
}

/// Cached result of [`detect`]: 0 until the first query.
static FEATURES: AtomicU8 = AtomicU8::new(0);
const DETECTED: u8 = 1;
const AVX2_FMA: u8 = 2;
const AVX512F: u8 = 4;

/// Whether this CPU has AVX2 and FMA and the OS saves the YMM registers.
pub(crate) fn has_avx2_fma() -> bool {
    if cfg!(all(target_feature = "avx2", target_feature = "fma")) {
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
        target_feature = "fma"
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

/// cpuid leaf 1: FMA (ecx 12), OSXSAVE (ecx 27), AVX (ecx 28); XCR0 bits 1 and 2 (the OS
/// saves XMM and YMM state); cpuid leaf 7: AVX2 (ebx 5), AVX-512F (ebx 16); for AVX-512
/// also XCR0 bits 5, 6 and 7 (opmask, upper halves of ZMM0-15, ZMM16-31).
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
    // SAFETY: xgetbv is only executed when the OS has enabled XSAVE (OSXSAVE).
    let xcr0 = if osxsave { unsafe { xcr0() } } else { 0 };
    let ymm_saved = xcr0 & 0b110 == 0b110;
    let zmm_saved = xcr0 & 0b1110_0110 == 0b1110_0110;
    let avx512f = bit(l7.ebx, 16);
    let mut f = DETECTED;
    if fma && avx && avx2 && ymm_saved {
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
    _xgetbv(0)
}
