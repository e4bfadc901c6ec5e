//! The AVX2 + FMA path: [`Vector`] for eight lanes in a `__m256`, and its entry point.

use core::arch::x86_64::*;

use crate::config::MAX_BINS;
use crate::kernel::{Cell, LaneTable, Pass, Vector, BIN_MASK, MAX_LANES};

/// Eight f32 lanes. `mul_add` is fused (`vfmadd`); everything else is exactly rounded as in
/// the scalar instantiation, with the same NaN conventions for `min`/`max`.
impl Vector for __m256 {
    type Sum = (__m256d, __m256d);
    type Tables<T: Cell> = [LaneTable<T>; 8];
    type CountTables = [LaneTable<usize>; 8];

    #[inline(always)]
    unsafe fn sum_zero() -> Self::Sum {
        // SAFETY: AVX2 and FMA are enabled by the caller (the `Vector` contract).
        unsafe { (_mm256_setzero_pd(), _mm256_setzero_pd()) }
    }
    #[inline(always)]
    unsafe fn sum_add(self, acc: Self::Sum) -> Self::Sum {
        // SAFETY: AVX2 and FMA are enabled by the caller (the `Vector` contract).
        unsafe {
            let lo = _mm256_cvtps_pd(_mm256_castps256_ps128(self));
            let hi = _mm256_cvtps_pd(_mm256_extractf128_ps::<1>(self));
            (_mm256_add_pd(acc.0, lo), _mm256_add_pd(acc.1, hi))
        }
    }
    #[inline(always)]
    unsafe fn sum_total(acc: Self::Sum) -> f64 {
        // SAFETY: AVX2 and FMA are enabled by the caller (the `Vector` contract).
        unsafe {
            let mut lanes = [0f64; 4];
            _mm256_storeu_pd(lanes.as_mut_ptr(), _mm256_add_pd(acc.0, acc.1));
            lanes.iter().sum()
        }
    }

    const LANES: usize = 8;

    #[inline(always)]
    unsafe fn splat(x: f32) -> Self {
        // SAFETY: AVX2 and FMA are enabled by the caller (the `Vector` contract).
        unsafe { _mm256_set1_ps(x) }
    }
    #[inline(always)]
    unsafe fn load(p: *const f32) -> Self {
        // SAFETY: AVX2 and FMA are enabled by the caller (the `Vector` contract).
        unsafe { _mm256_loadu_ps(p) }
    }
    #[inline(always)]
    unsafe fn store(self, p: *mut f32) {
        // SAFETY: AVX2 and FMA are enabled by the caller (the `Vector` contract).
        unsafe { _mm256_storeu_ps(p, self) }
    }
    #[inline(always)]
    unsafe fn add(self, b: Self) -> Self {
        // SAFETY: AVX2 and FMA are enabled by the caller (the `Vector` contract).
        unsafe { _mm256_add_ps(self, b) }
    }
    #[inline(always)]
    unsafe fn sub(self, b: Self) -> Self {
        // SAFETY: AVX2 and FMA are enabled by the caller (the `Vector` contract).
        unsafe { _mm256_sub_ps(self, b) }
    }
    #[inline(always)]
    unsafe fn mul(self, b: Self) -> Self {
        // SAFETY: AVX2 and FMA are enabled by the caller (the `Vector` contract).
        unsafe { _mm256_mul_ps(self, b) }
    }
    #[inline(always)]
    unsafe fn div(self, b: Self) -> Self {
        // SAFETY: AVX2 and FMA are enabled by the caller (the `Vector` contract).
        unsafe { _mm256_div_ps(self, b) }
    }
    #[inline(always)]
    unsafe fn mul_add(self, b: Self, c: Self) -> Self {
        // SAFETY: AVX2 and FMA are enabled by the caller (the `Vector` contract).
        unsafe { _mm256_fmadd_ps(self, b, c) }
    }
    #[inline(always)]
    unsafe fn sqrt(self) -> Self {
        // SAFETY: AVX2 and FMA are enabled by the caller (the `Vector` contract).
        unsafe { _mm256_sqrt_ps(self) }
    }
    #[inline(always)]
    unsafe fn abs(self) -> Self {
        // SAFETY: AVX2 and FMA are enabled by the caller (the `Vector` contract).
        unsafe { _mm256_andnot_ps(_mm256_set1_ps(-0.0), self) }
    }
    #[inline(always)]
    unsafe fn floor(self) -> Self {
        // SAFETY: AVX2 and FMA are enabled by the caller (the `Vector` contract).
        unsafe { _mm256_floor_ps(self) }
    }
    // vminps/vmaxps return the second operand when either is NaN (and for +-0), as the
    // scalar `if a < b { a } else { b }` does.
    #[inline(always)]
    unsafe fn min(self, b: Self) -> Self {
        // SAFETY: AVX2 and FMA are enabled by the caller (the `Vector` contract).
        unsafe { _mm256_min_ps(self, b) }
    }
    #[inline(always)]
    unsafe fn max(self, b: Self) -> Self {
        // SAFETY: AVX2 and FMA are enabled by the caller (the `Vector` contract).
        unsafe { _mm256_max_ps(self, b) }
    }
    #[inline(always)]
    unsafe fn lt(self, b: Self) -> Self {
        // SAFETY: AVX2 and FMA are enabled by the caller (the `Vector` contract).
        unsafe { _mm256_cmp_ps::<_CMP_LT_OQ>(self, b) }
    }
    #[inline(always)]
    unsafe fn le(self, b: Self) -> Self {
        // SAFETY: AVX2 and FMA are enabled by the caller (the `Vector` contract).
        unsafe { _mm256_cmp_ps::<_CMP_LE_OQ>(self, b) }
    }
    #[inline(always)]
    unsafe fn eq(self, b: Self) -> Self {
        // SAFETY: AVX2 and FMA are enabled by the caller (the `Vector` contract).
        unsafe { _mm256_cmp_ps::<_CMP_EQ_OQ>(self, b) }
    }
    #[inline(always)]
    unsafe fn and(self, b: Self) -> Self {
        // SAFETY: AVX2 and FMA are enabled by the caller (the `Vector` contract).
        unsafe { _mm256_and_ps(self, b) }
    }
    #[inline(always)]
    unsafe fn or(self, b: Self) -> Self {
        // SAFETY: AVX2 and FMA are enabled by the caller (the `Vector` contract).
        unsafe { _mm256_or_ps(self, b) }
    }
    #[inline(always)]
    unsafe fn select(m: Self, a: Self, b: Self) -> Self {
        // SAFETY: AVX2 and FMA are enabled by the caller (the `Vector` contract).
        unsafe { _mm256_blendv_ps(b, a, m) }
    }
    #[inline(always)]
    unsafe fn bitmask(self) -> u32 {
        // SAFETY: AVX2 and FMA are enabled by the caller (the `Vector` contract).
        unsafe { _mm256_movemask_ps(self) as u32 }
    }
    #[inline(always)]
    unsafe fn load_i32(p: *const i32) -> Self {
        // SAFETY: AVX2 and FMA are enabled by the caller; `p` is valid for 8 values (the
        // `Vector` contract).
        unsafe { _mm256_cvtepi32_ps(_mm256_loadu_si256(p.cast())) }
    }
    #[inline(always)]
    unsafe fn pow2(n: Self) -> Self {
        // SAFETY: AVX2 and FMA are enabled by the caller (the `Vector` contract).
        unsafe {
            let e = _mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127));
            _mm256_castsi256_ps(_mm256_slli_epi32::<23>(e))
        }
    }
    #[inline(always)]
    unsafe fn indices(self, out: &mut [u8; MAX_LANES]) {
        // SAFETY: AVX2 and FMA are enabled by the caller (the `Vector` contract).
        unsafe {
            let k = masked_indices(self);
            let words =
                _mm_packus_epi32(_mm256_castsi256_si128(k), _mm256_extracti128_si256::<1>(k));
            let bytes = _mm_packus_epi16(words, words);
            _mm_storel_epi64(out.as_mut_ptr().cast(), bytes);
        }
    }
    #[inline(always)]
    unsafe fn lookup(self, table: &[f32; MAX_BINS], used: usize) -> Self {
        // SAFETY: AVX2 and FMA are enabled by the caller (the `Vector` contract).
        unsafe {
            // Every index is masked to 0..MAX_BINS first, so even a lane holding NaN or garbage
            // reads inside the table.
            let k = masked_indices(self);
            if used > 32 {
                return _mm256_i32gather_ps::<4>(table.as_ptr(), k);
            }
            // Up to 32 entries: register permutes of eight entries each (a permute uses the
            // index's low three bits), chosen by bits 3 and 4 (moved to the sign bit, which
            // the blends test); a gather is several times slower on most x86 cores.
            let t = table.as_ptr();
            let bit3 = _mm256_castsi256_ps(_mm256_slli_epi32::<28>(k));
            let low = _mm256_blendv_ps(part(t, 0, k), part(t, 1, k), bit3);
            if used <= 16 {
                return low;
            }
            let high = _mm256_blendv_ps(part(t, 2, k), part(t, 3, k), bit3);
            let bit4 = _mm256_castsi256_ps(_mm256_slli_epi32::<27>(k));
            _mm256_blendv_ps(low, high, bit4)
        }
    }
}

/// Entry `k % 8` of the table's `i`-th eight entries, per lane. (A function, not a closure:
/// a closure does not inherit the entry point's target features; see `kernel/math.rs`.)
///
/// # Safety
/// AVX2 is enabled; `t` is valid for reads of `8 * i + 8` values.
#[inline(always)]
unsafe fn part(t: *const f32, i: usize, k: __m256i) -> __m256 {
    // SAFETY: this function's contract.
    unsafe { _mm256_permutevar8x32_ps(_mm256_loadu_ps(t.add(8 * i)), k) }
}

/// Lanes truncated to i32 and masked to `[0, MAX_BINS)` (NaN and out-of-range lanes
/// convert to `i32::MIN`, which masks to 0).
#[inline(always)]
unsafe fn masked_indices(v: __m256) -> __m256i {
    // SAFETY: AVX2 and FMA are enabled by the caller (the `Vector` contract).
    unsafe { _mm256_and_si256(_mm256_cvttps_epi32(v), _mm256_set1_epi32(BIN_MASK)) }
}

/// Runs `pass` with eight-lane vectors.
///
/// # Safety
/// The pass's own contract holds, and the CPU has AVX2 and FMA ([`has_avx2_fma`]).
///
/// [`has_avx2_fma`]: super::has_avx2_fma
#[target_feature(enable = "avx2,fma,popcnt,bmi1,bmi2")]
pub(crate) unsafe fn run<P: Pass>(pass: P) -> P::Out {
    // SAFETY: AVX2 and FMA are enabled by the caller (the `Vector` contract).
    unsafe { pass.run::<__m256>() }
}
