//! The AVX-512F path: the generic passes instantiated for sixteen lanes in a `__m512`. Only
//! AVX-512F instructions are used (no DQ/BW/VL), so the path needs exactly what
//! [`has_avx512f`](super::has_avx512f) checks. Trait masks are vectors of
//! all-ones/all-zeros lanes; they are converted to and from the k-registers where needed.

use core::arch::x86_64::*;

use crate::config::MAX_BINS;
use crate::kernel::{Cell, LaneTable, Pass, Vector, BIN_MASK, MAX_LANES};

// `lookup` reads the table as four 16-lane quarters.
const _: () = assert!(
    MAX_BINS == 64,
    "lookup permutes four 16-entry quarters of the table"
);

/// The vector mask (all-ones lanes) of a k-register mask.
#[inline(always)]
unsafe fn from_k(k: __mmask16) -> __m512 {
    // SAFETY: AVX-512F, AVX2 and FMA are enabled by the caller (the `Vector` contract).
    unsafe { _mm512_castsi512_ps(_mm512_maskz_mov_epi32(k, _mm512_set1_epi32(-1))) }
}

/// The k-register mask of a vector mask: its lanes' sign bits.
#[inline(always)]
unsafe fn to_k(m: __m512) -> __mmask16 {
    // SAFETY: AVX-512F, AVX2 and FMA are enabled by the caller (the `Vector` contract).
    unsafe { _mm512_cmplt_epi32_mask(_mm512_castps_si512(m), _mm512_setzero_si512()) }
}

/// Sixteen f32 lanes. `mul_add` is fused (`vfmadd`); everything else is exactly rounded as
/// in the scalar instantiation, with the same NaN conventions for `min`/`max`.
impl Vector for __m512 {
    type Sum = (__m512d, __m512d);
    type Tables<T: Cell> = [LaneTable<T>; 16];
    type CountTables = [LaneTable<usize>; 16];

    #[inline(always)]
    unsafe fn sum_zero() -> Self::Sum {
        // SAFETY: AVX-512F, AVX2 and FMA are enabled by the caller (the `Vector` contract).
        unsafe { (_mm512_setzero_pd(), _mm512_setzero_pd()) }
    }
    #[inline(always)]
    unsafe fn sum_add(self, acc: Self::Sum) -> Self::Sum {
        // SAFETY: AVX-512F, AVX2 and FMA are enabled by the caller (the `Vector` contract).
        unsafe {
            let lo = _mm512_cvtps_pd(_mm512_castps512_ps256(self));
            let hi = _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd::<1>(
                _mm512_castps_pd(self),
            )));
            (_mm512_add_pd(acc.0, lo), _mm512_add_pd(acc.1, hi))
        }
    }
    #[inline(always)]
    unsafe fn sum_total(acc: Self::Sum) -> f64 {
        // SAFETY: AVX-512F, AVX2 and FMA are enabled by the caller (the `Vector` contract).
        unsafe {
            let mut lanes = [0f64; 8];
            _mm512_storeu_pd(lanes.as_mut_ptr(), _mm512_add_pd(acc.0, acc.1));
            lanes.iter().sum()
        }
    }

    const LANES: usize = 16;

    #[inline(always)]
    unsafe fn splat(x: f32) -> Self {
        // SAFETY: AVX-512F, AVX2 and FMA are enabled by the caller (the `Vector` contract).
        unsafe { _mm512_set1_ps(x) }
    }
    #[inline(always)]
    unsafe fn load(p: *const f32) -> Self {
        // SAFETY: AVX-512F, AVX2 and FMA are enabled by the caller (the `Vector` contract).
        unsafe { _mm512_loadu_ps(p) }
    }
    #[inline(always)]
    unsafe fn store(self, p: *mut f32) {
        // SAFETY: AVX-512F, AVX2 and FMA are enabled by the caller (the `Vector` contract).
        unsafe { _mm512_storeu_ps(p, self) }
    }
    #[inline(always)]
    unsafe fn add(self, b: Self) -> Self {
        // SAFETY: AVX-512F, AVX2 and FMA are enabled by the caller (the `Vector` contract).
        unsafe { _mm512_add_ps(self, b) }
    }
    #[inline(always)]
    unsafe fn sub(self, b: Self) -> Self {
        // SAFETY: AVX-512F, AVX2 and FMA are enabled by the caller (the `Vector` contract).
        unsafe { _mm512_sub_ps(self, b) }
    }
    #[inline(always)]
    unsafe fn mul(self, b: Self) -> Self {
        // SAFETY: AVX-512F, AVX2 and FMA are enabled by the caller (the `Vector` contract).
        unsafe { _mm512_mul_ps(self, b) }
    }
    #[inline(always)]
    unsafe fn div(self, b: Self) -> Self {
        // SAFETY: AVX-512F, AVX2 and FMA are enabled by the caller (the `Vector` contract).
        unsafe { _mm512_div_ps(self, b) }
    }
    #[inline(always)]
    unsafe fn mul_add(self, b: Self, c: Self) -> Self {
        // SAFETY: AVX-512F, AVX2 and FMA are enabled by the caller (the `Vector` contract).
        unsafe { _mm512_fmadd_ps(self, b, c) }
    }
    #[inline(always)]
    unsafe fn sqrt(self) -> Self {
        // SAFETY: AVX-512F, AVX2 and FMA are enabled by the caller (the `Vector` contract).
        unsafe { _mm512_sqrt_ps(self) }
    }
    #[inline(always)]
    unsafe fn abs(self) -> Self {
        // SAFETY: AVX-512F, AVX2 and FMA are enabled by the caller (the `Vector` contract).
        unsafe { _mm512_abs_ps(self) }
    }
    #[inline(always)]
    unsafe fn floor(self) -> Self {
        // SAFETY: AVX-512F, AVX2 and FMA are enabled by the caller (the `Vector` contract).
        unsafe { _mm512_roundscale_ps::<{ _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC }>(self) }
    }
    // vminps/vmaxps return the second operand when either is NaN (and for +-0), as the
    // scalar `if a < b { a } else { b }` does.
    #[inline(always)]
    unsafe fn min(self, b: Self) -> Self {
        // SAFETY: AVX-512F, AVX2 and FMA are enabled by the caller (the `Vector` contract).
        unsafe { _mm512_min_ps(self, b) }
    }
    #[inline(always)]
    unsafe fn max(self, b: Self) -> Self {
        // SAFETY: AVX-512F, AVX2 and FMA are enabled by the caller (the `Vector` contract).
        unsafe { _mm512_max_ps(self, b) }
    }
    #[inline(always)]
    unsafe fn lt(self, b: Self) -> Self {
        // SAFETY: AVX-512F, AVX2 and FMA are enabled by the caller (the `Vector` contract).
        unsafe { from_k(_mm512_cmp_ps_mask::<_CMP_LT_OQ>(self, b)) }
    }
    #[inline(always)]
    unsafe fn le(self, b: Self) -> Self {
        // SAFETY: AVX-512F, AVX2 and FMA are enabled by the caller (the `Vector` contract).
        unsafe { from_k(_mm512_cmp_ps_mask::<_CMP_LE_OQ>(self, b)) }
    }
    #[inline(always)]
    unsafe fn eq(self, b: Self) -> Self {
        // SAFETY: AVX-512F, AVX2 and FMA are enabled by the caller (the `Vector` contract).
        unsafe { from_k(_mm512_cmp_ps_mask::<_CMP_EQ_OQ>(self, b)) }
    }
    // _mm512_and_ps/_mm512_or_ps are AVX-512DQ; the integer forms are AVX-512F.
    #[inline(always)]
    unsafe fn and(self, b: Self) -> Self {
        // SAFETY: AVX-512F, AVX2 and FMA are enabled by the caller (the `Vector` contract).
        unsafe {
            _mm512_castsi512_ps(_mm512_and_si512(
                _mm512_castps_si512(self),
                _mm512_castps_si512(b),
            ))
        }
    }
    #[inline(always)]
    unsafe fn or(self, b: Self) -> Self {
        // SAFETY: AVX-512F, AVX2 and FMA are enabled by the caller (the `Vector` contract).
        unsafe {
            _mm512_castsi512_ps(_mm512_or_si512(
                _mm512_castps_si512(self),
                _mm512_castps_si512(b),
            ))
        }
    }
    #[inline(always)]
    unsafe fn select(m: Self, a: Self, b: Self) -> Self {
        // SAFETY: AVX-512F, AVX2 and FMA are enabled by the caller (the `Vector` contract).
        unsafe { _mm512_mask_blend_ps(to_k(m), b, a) }
    }
    #[inline(always)]
    unsafe fn bitmask(self) -> u32 {
        // SAFETY: AVX-512F, AVX2 and FMA are enabled by the caller (the `Vector` contract).
        unsafe { u32::from(to_k(self)) }
    }
    #[inline(always)]
    unsafe fn pow2(n: Self) -> Self {
        // SAFETY: AVX-512F, AVX2 and FMA are enabled by the caller (the `Vector` contract).
        unsafe {
            let e = _mm512_add_epi32(_mm512_cvtps_epi32(n), _mm512_set1_epi32(127));
            _mm512_castsi512_ps(_mm512_slli_epi32::<23>(e))
        }
    }
    #[inline(always)]
    unsafe fn load_i32(p: *const i32) -> Self {
        // SAFETY: AVX-512F, AVX2 and FMA are enabled by the caller (the `Vector` contract).
        unsafe { _mm512_cvtepi32_ps(_mm512_loadu_si512(p.cast())) }
    }
    #[inline(always)]
    unsafe fn split_exp(self) -> (Self, Self) {
        // SAFETY: AVX-512F, AVX2 and FMA are enabled by the caller (the `Vector` contract).
        unsafe {
            // Lane-wise `split_exp_lane` (kernel/vector.rs), bit for bit.
            let bits = _mm512_castps_si512(self);
            let e = _mm512_sub_epi32(
                _mm512_and_si512(_mm512_srli_epi32::<23>(bits), _mm512_set1_epi32(0xff)),
                _mm512_set1_epi32(127),
            );
            let m = _mm512_castsi512_ps(_mm512_or_si512(
                _mm512_and_si512(bits, _mm512_set1_epi32(0x007f_ffff)),
                _mm512_set1_epi32(0x3f80_0000),
            ));
            let big =
                _mm512_cmp_ps_mask::<_CMP_GE_OQ>(m, _mm512_set1_ps(core::f32::consts::SQRT_2));
            let m = _mm512_mask_mul_ps(m, big, m, _mm512_set1_ps(0.5));
            let e = _mm512_mask_add_epi32(e, big, e, _mm512_set1_epi32(1));
            (m, _mm512_cvtepi32_ps(e))
        }
    }
    #[inline(always)]
    unsafe fn indices(self, out: &mut [u8; MAX_LANES]) {
        // SAFETY: AVX-512F, AVX2 and FMA are enabled by the caller (the `Vector` contract).
        unsafe {
            _mm_storeu_si128(
                out.as_mut_ptr().cast(),
                _mm512_cvtepi32_epi8(masked_indices(self)),
            );
        }
    }
    #[inline(always)]
    unsafe fn lookup(self, table: &[f32; MAX_BINS], used: usize) -> Self {
        // SAFETY: AVX-512F, AVX2 and FMA are enabled by the caller (the `Vector` contract).
        unsafe {
            // Register permutes, no memory indexed by lane values: every index is masked to
            // [0, MAX_BINS) = [0, 64), and each two-source permute uses only its low five bits.
            let k = masked_indices(self);
            let t = table.as_ptr();
            let lo = _mm512_permutex2var_ps(_mm512_loadu_ps(t), k, _mm512_loadu_ps(t.add(16)));
            if used <= 32 {
                return lo;
            }
            let hi =
                _mm512_permutex2var_ps(_mm512_loadu_ps(t.add(32)), k, _mm512_loadu_ps(t.add(48)));
            _mm512_mask_blend_ps(_mm512_test_epi32_mask(k, _mm512_set1_epi32(32)), lo, hi)
        }
    }
}

/// Lanes truncated to i32 and masked to `[0, MAX_BINS)` (NaN and out-of-range lanes convert
/// to `i32::MIN`, which masks to 0).
#[inline(always)]
unsafe fn masked_indices(v: __m512) -> __m512i {
    // SAFETY: AVX-512F, AVX2 and FMA are enabled by the caller (the `Vector` contract).
    unsafe { _mm512_and_si512(_mm512_cvttps_epi32(v), _mm512_set1_epi32(BIN_MASK)) }
}

/// Runs `pass` with sixteen-lane vectors.
///
/// # Safety
/// The pass's own contract holds, and the CPU has AVX-512F ([`has_avx512f`]).
///
/// [`has_avx512f`]: super::has_avx512f
#[target_feature(enable = "avx512f,avx2,fma,popcnt,bmi1,bmi2")]
pub(crate) unsafe fn run<P: Pass>(pass: P) -> P::Out {
    // SAFETY: AVX-512F, AVX2 and FMA are enabled by the caller (the `Vector` contract).
    unsafe { pass.run::<__m512>() }
}
