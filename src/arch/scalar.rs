//! The portable path: `f32` as a one-lane [`Vector`], plain IEEE-754 arithmetic with no
//! fused operations. It needs no CPU feature, so its entry point is the pass itself.

use crate::config::MAX_BINS;
use crate::kernel::{LaneTable, Pass, Vector, BIN_MASK, MAX_LANES};

/// Runs `pass` on the portable path.
///
/// # Safety
/// The pass's own contract holds.
#[inline]
pub(crate) unsafe fn run<P: Pass>(pass: P) -> P::Out {
    pass.run::<f32>()
}

/// The portable one-lane instantiation: plain IEEE-754 f32 arithmetic, no fused operations.
impl Vector for f32 {
    const LANES: usize = 1;
    type Tables = [LaneTable; 1];
    type Sum = f64;

    #[inline(always)]
    unsafe fn sum_zero() -> f64 {
        0.0
    }
    #[inline(always)]
    unsafe fn sum_add(self, acc: f64) -> f64 {
        acc + f64::from(self)
    }
    #[inline(always)]
    unsafe fn sum_total(acc: f64) -> f64 {
        acc
    }

    #[inline(always)]
    unsafe fn splat(x: f32) -> Self {
        x
    }
    #[inline(always)]
    unsafe fn load(p: *const f32) -> Self {
        p.read_unaligned()
    }
    #[inline(always)]
    unsafe fn store(self, p: *mut f32) {
        p.write_unaligned(self)
    }
    #[inline(always)]
    unsafe fn add(self, b: Self) -> Self {
        self + b
    }
    #[inline(always)]
    unsafe fn sub(self, b: Self) -> Self {
        self - b
    }
    #[inline(always)]
    unsafe fn mul(self, b: Self) -> Self {
        self * b
    }
    #[inline(always)]
    unsafe fn div(self, b: Self) -> Self {
        self / b
    }
    #[inline(always)]
    unsafe fn mul_add(self, b: Self, c: Self) -> Self {
        self * b + c
    }
    #[inline(always)]
    unsafe fn sqrt(self) -> Self {
        libm::sqrtf(self)
    }
    #[inline(always)]
    unsafe fn abs(self) -> Self {
        f32::from_bits(self.to_bits() & 0x7fff_ffff)
    }
    #[inline(always)]
    unsafe fn floor(self) -> Self {
        libm::floorf(self)
    }
    #[inline(always)]
    unsafe fn min(self, b: Self) -> Self {
        if self < b {
            self
        } else {
            b
        }
    }
    #[inline(always)]
    unsafe fn max(self, b: Self) -> Self {
        if self > b {
            self
        } else {
            b
        }
    }
    #[inline(always)]
    unsafe fn lt(self, b: Self) -> Self {
        mask(self < b)
    }
    #[inline(always)]
    unsafe fn le(self, b: Self) -> Self {
        mask(self <= b)
    }
    #[inline(always)]
    unsafe fn eq(self, b: Self) -> Self {
        mask(self == b)
    }
    #[inline(always)]
    unsafe fn and(self, b: Self) -> Self {
        f32::from_bits(self.to_bits() & b.to_bits())
    }
    #[inline(always)]
    unsafe fn or(self, b: Self) -> Self {
        f32::from_bits(self.to_bits() | b.to_bits())
    }
    #[inline(always)]
    unsafe fn select(m: Self, a: Self, b: Self) -> Self {
        if m.to_bits() != 0 {
            a
        } else {
            b
        }
    }
    #[inline(always)]
    unsafe fn bitmask(self) -> u32 {
        self.to_bits() >> 31
    }
    #[inline(always)]
    unsafe fn pow2(n: Self) -> Self {
        f32::from_bits(((n as i32 + 127) as u32) << 23)
    }
    #[inline(always)]
    unsafe fn indices(self, out: &mut [u8; MAX_LANES]) {
        out[0] = (self as i32 & BIN_MASK) as u8;
    }
    #[inline(always)]
    unsafe fn lookup(self, table: &[f32; MAX_BINS]) -> Self {
        table[(self as i32 & BIN_MASK) as usize]
    }
}

#[inline(always)]
fn mask(b: bool) -> f32 {
    f32::from_bits(if b { u32::MAX } else { 0 })
}
