//! The NEON path: [`Vector`] for four lanes in a `float32x4_t`, and its entry point. NEON
//! is part of the aarch64 baseline (this module is compiled only where the target enables
//! it), so the path needs no run-time detection.

use core::arch::aarch64::*;

use crate::kernel::{Cell, LaneTable, Pass, Vector, BIN_MASK, MAX_LANES};

#[inline(always)]
unsafe fn bits(v: float32x4_t) -> uint32x4_t {
    // SAFETY: NEON is part of this target's baseline; pointers as the `Vector` contract states.
    unsafe { vreinterpretq_u32_f32(v) }
}

#[inline(always)]
unsafe fn float(v: uint32x4_t) -> float32x4_t {
    // SAFETY: NEON is part of this target's baseline; pointers as the `Vector` contract states.
    unsafe { vreinterpretq_f32_u32(v) }
}

/// Four f32 lanes. `mul_add` is fused (`fmla`); everything else is exactly rounded as in the
/// scalar instantiation. `min`/`max` are built from a comparison and a select, because
/// `fmin`/`fmax` propagate NaN where the trait (and the scalar path) returns `b`.
impl Vector for float32x4_t {
    type Sum = (float64x2_t, float64x2_t);
    type Tables<T: Cell> = [LaneTable<T>; 4];
    type CountTables = [LaneTable<usize>; 4];

    #[inline(always)]
    unsafe fn sum_zero() -> Self::Sum {
        // SAFETY: NEON is part of this target's baseline; pointers as the `Vector` contract states.
        unsafe { (vdupq_n_f64(0.0), vdupq_n_f64(0.0)) }
    }
    #[inline(always)]
    unsafe fn sum_add(self, acc: Self::Sum) -> Self::Sum {
        // SAFETY: NEON is part of this target's baseline; pointers as the `Vector` contract states.
        unsafe {
            let lo = vcvt_f64_f32(vget_low_f32(self));
            let hi = vcvt_high_f64_f32(self);
            (vaddq_f64(acc.0, lo), vaddq_f64(acc.1, hi))
        }
    }
    #[inline(always)]
    unsafe fn sum_total(acc: Self::Sum) -> f64 {
        // SAFETY: NEON is part of this target's baseline; pointers as the `Vector` contract states.
        unsafe { vaddvq_f64(vaddq_f64(acc.0, acc.1)) }
    }

    const LANES: usize = 4;

    #[inline(always)]
    unsafe fn splat(x: f32) -> Self {
        // SAFETY: NEON is part of this target's baseline; pointers as the `Vector` contract states.
        unsafe { vdupq_n_f32(x) }
    }
    #[inline(always)]
    unsafe fn load(p: *const f32) -> Self {
        // SAFETY: NEON is part of this target's baseline; pointers as the `Vector` contract states.
        unsafe { vld1q_f32(p) }
    }
    #[inline(always)]
    unsafe fn store(self, p: *mut f32) {
        // SAFETY: NEON is part of this target's baseline; pointers as the `Vector` contract states.
        unsafe { vst1q_f32(p, self) }
    }
    #[inline(always)]
    unsafe fn add(self, b: Self) -> Self {
        // SAFETY: NEON is part of this target's baseline; pointers as the `Vector` contract states.
        unsafe { vaddq_f32(self, b) }
    }
    #[inline(always)]
    unsafe fn sub(self, b: Self) -> Self {
        // SAFETY: NEON is part of this target's baseline; pointers as the `Vector` contract states.
        unsafe { vsubq_f32(self, b) }
    }
    #[inline(always)]
    unsafe fn mul(self, b: Self) -> Self {
        // SAFETY: NEON is part of this target's baseline; pointers as the `Vector` contract states.
        unsafe { vmulq_f32(self, b) }
    }
    #[inline(always)]
    unsafe fn div(self, b: Self) -> Self {
        // SAFETY: NEON is part of this target's baseline; pointers as the `Vector` contract states.
        unsafe { vdivq_f32(self, b) }
    }
    #[inline(always)]
    unsafe fn mul_add(self, b: Self, c: Self) -> Self {
        // SAFETY: NEON is part of this target's baseline; pointers as the `Vector` contract states.
        unsafe { vfmaq_f32(c, self, b) }
    }
    #[inline(always)]
    unsafe fn sqrt(self) -> Self {
        // SAFETY: NEON is part of this target's baseline; pointers as the `Vector` contract states.
        unsafe { vsqrtq_f32(self) }
    }
    #[inline(always)]
    unsafe fn abs(self) -> Self {
        // SAFETY: NEON is part of this target's baseline; pointers as the `Vector` contract states.
        unsafe { vabsq_f32(self) }
    }
    #[inline(always)]
    unsafe fn floor(self) -> Self {
        // SAFETY: NEON is part of this target's baseline; pointers as the `Vector` contract states.
        unsafe { vrndmq_f32(self) }
    }
    #[inline(always)]
    unsafe fn min(self, b: Self) -> Self {
        // SAFETY: NEON is part of this target's baseline; pointers as the `Vector` contract states.
        unsafe { Self::select(self.lt(b), self, b) }
    }
    #[inline(always)]
    unsafe fn max(self, b: Self) -> Self {
        // SAFETY: NEON is part of this target's baseline; pointers as the `Vector` contract states.
        unsafe { Self::select(b.lt(self), self, b) }
    }
    #[inline(always)]
    unsafe fn lt(self, b: Self) -> Self {
        // SAFETY: NEON is part of this target's baseline; pointers as the `Vector` contract states.
        unsafe { float(vcltq_f32(self, b)) }
    }
    #[inline(always)]
    unsafe fn le(self, b: Self) -> Self {
        // SAFETY: NEON is part of this target's baseline; pointers as the `Vector` contract states.
        unsafe { float(vcleq_f32(self, b)) }
    }
    #[inline(always)]
    unsafe fn eq(self, b: Self) -> Self {
        // SAFETY: NEON is part of this target's baseline; pointers as the `Vector` contract states.
        unsafe { float(vceqq_f32(self, b)) }
    }
    #[inline(always)]
    unsafe fn and(self, b: Self) -> Self {
        // SAFETY: NEON is part of this target's baseline; pointers as the `Vector` contract states.
        unsafe { float(vandq_u32(bits(self), bits(b))) }
    }
    #[inline(always)]
    unsafe fn or(self, b: Self) -> Self {
        // SAFETY: NEON is part of this target's baseline; pointers as the `Vector` contract states.
        unsafe { float(vorrq_u32(bits(self), bits(b))) }
    }
    #[inline(always)]
    unsafe fn select(m: Self, a: Self, b: Self) -> Self {
        // SAFETY: NEON is part of this target's baseline; pointers as the `Vector` contract states.
        unsafe { vbslq_f32(bits(m), a, b) }
    }
    #[inline(always)]
    unsafe fn bitmask(self) -> u32 {
        // SAFETY: NEON is part of this target's baseline; pointers as the `Vector` contract states.
        unsafe {
            let signs = vshrq_n_u32::<31>(bits(self));
            let shifts: [i32; 4] = [0, 1, 2, 3];
            vaddvq_u32(vshlq_u32(signs, vld1q_s32(shifts.as_ptr())))
        }
    }
    #[inline(always)]
    unsafe fn load_i32(p: *const i32) -> Self {
        // SAFETY: NEON is part of this target's baseline; `p` is valid for 4 values (the
        // `Vector` contract).
        unsafe { vcvtq_f32_s32(vld1q_s32(p)) }
    }
    #[inline(always)]
    unsafe fn none(self) -> bool {
        // SAFETY: NEON is part of this target's baseline; pointers as the `Vector` contract states.
        unsafe { vmaxvq_u32(bits(self)) == 0 }
    }
    #[inline(always)]
    unsafe fn pow2(n: Self) -> Self {
        // SAFETY: NEON is part of this target's baseline; pointers as the `Vector` contract states.
        unsafe {
            let e = vaddq_s32(vcvtq_s32_f32(n), vdupq_n_s32(127));
            vreinterpretq_f32_s32(vshlq_n_s32::<23>(e))
        }
    }
    #[inline(always)]
    unsafe fn indices(self, out: &mut [u8; MAX_LANES]) {
        // SAFETY: NEON is part of this target's baseline; pointers as the `Vector` contract states.
        unsafe {
            // fcvtzs saturates and gives 0 for NaN; the mask keeps every lane below MAX_BINS.
            let k = vandq_s32(vcvtq_s32_f32(self), vdupq_n_s32(BIN_MASK));
            let mut lanes = [0i32; 4];
            vst1q_s32(lanes.as_mut_ptr(), k);
            for (o, &l) in out.iter_mut().zip(lanes.iter()) {
                *o = l as u8;
            }
        }
    }
}

/// Runs `pass` with four-lane vectors.
///
/// # Safety
/// The pass's own contract holds (NEON is part of this target's baseline).
#[target_feature(enable = "neon")]
pub(crate) unsafe fn run<P: Pass>(pass: P) -> P::Out {
    // SAFETY: NEON is part of this target's baseline; pointers as the `Vector` contract states.
    unsafe { pass.run::<float32x4_t>() }
}
