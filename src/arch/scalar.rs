//! The portable path: `f32` as a one-lane [`Vector`], plain IEEE-754 arithmetic with no
//! fused operations. It needs no CPU feature, so its entry point is the pass itself.

use crate::config::MAX_BINS;
use crate::kernel::{floor_in_i32, Cell, LaneTable, Pass, Vector, BIN_MASK, MAX_LANES};

/// Runs `pass` on the portable path.
///
/// # Safety
/// The pass's own contract holds.
#[inline]
pub(crate) unsafe fn run<P: Pass>(pass: P) -> P::Out {
    // SAFETY: `p` is valid for this access (the `Vector::load`/`store` contract).
    unsafe { pass.run::<f32>() }
}

/// The portable one-lane instantiation: plain IEEE-754 f32 arithmetic, no fused operations.
impl Vector for f32 {
    const LANES: usize = 1;
    type Tables<T: Cell> = [LaneTable<T>; 1];
    type CountTables = [LaneTable<usize>; 0];
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
    unsafe fn first(self) -> f32 {
        self
    }
    #[inline(always)]
    unsafe fn load(p: *const f32) -> Self {
        // SAFETY: `p` is valid for this access (the `Vector::load`/`store` contract).
        unsafe { p.read_unaligned() }
    }
    #[inline(always)]
    unsafe fn store(self, p: *mut f32) {
        // SAFETY: `p` is valid for this access (the `Vector::load`/`store` contract).
        unsafe { p.write_unaligned(self) }
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
        // The FPU's square root where the ABI says there is one (hard-float 32-bit ARM:
        // Cortex-M4F/M7, every VFP has vsqrt.f32; ARM's target features are not stable
        // cfgs). IEEE 754 correctly rounded, as libm's, so the results are the same bits.
        #[cfg(all(target_arch = "arm", target_abi = "eabihf"))]
        {
            let r: u32;
            // SAFETY: VFP instructions on s0, which is saved and restored around them (the
            // `sreg` operand class needs a target feature that is not stable on ARM).
            unsafe {
                core::arch::asm!(
                    "vpush {{s0}}",
                    "vmov s0, {x}",
                    "vsqrt.f32 s0, s0",
                    "vmov {r}, s0",
                    "vpop {{s0}}",
                    x = in(reg) self.to_bits(),
                    r = lateout(reg) r,
                    options(pure, readonly, preserves_flags),
                );
            }
            f32::from_bits(r)
        }
        #[cfg(not(all(target_arch = "arm", target_abi = "eabihf")))]
        {
            libm::sqrtf(self)
        }
    }
    #[inline(always)]
    unsafe fn abs(self) -> Self {
        f32::from_bits(self.to_bits() & 0x7fff_ffff)
    }
    #[inline(always)]
    unsafe fn floor(self) -> Self {
        floor_f32(self)
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
        // wrapping: lanes outside [-126, 127] give some value (the `Vector` contract)
        f32::from_bits(((n as i32).wrapping_add(127) as u32) << 23)
    }
    #[inline(always)]
    unsafe fn indices(self, out: &mut [u8; MAX_LANES]) {
        out[0] = (self as i32 & BIN_MASK) as u8;
    }
    #[inline(always)]
    unsafe fn lookup(self, table: &[f32; MAX_BINS], _used: usize) -> Self {
        table[(self as i32 & BIN_MASK) as usize]
    }
}

#[inline(always)]
fn mask(b: bool) -> f32 {
    f32::from_bits(if b { u32::MAX } else { 0 })
}

/// `floor` without a libm call: [`floor_in_i32`]'s truncation and correction, for every
/// input. Every input gives `libm::floorf`'s bits: |x| >= 2^23, infinities and NaN are
/// returned as they are (already integral), and an integral x (-0.0 included) keeps its
/// own bits.
#[inline(always)]
pub(crate) fn floor_f32(x: f32) -> f32 {
    // |x| >= 2^23 (0x4b00_0000), infinity or NaN: the bits of |x| compare as integers.
    if x.to_bits() & 0x7fff_ffff >= 0x4b00_0000 {
        return x;
    }
    let f = floor_in_i32(x);
    if f == x {
        x
    } else {
        f
    }
}

#[cfg(test)]
mod tests {
    /// floor_f32 against libm::floorf on every 97th f32 bit pattern (44 million values) and
    /// every f32 in [-2^24, 2^24] within 4 ULP of an integer or a half-integer below 2^12.
    #[test]
    fn floor_matches_libm_bit_for_bit() {
        let check = |x: f32| {
            let (got, want) = (super::floor_f32(x), libm::floorf(x));
            assert!(
                got.to_bits() == want.to_bits() || (got.is_nan() && want.is_nan()),
                "floor({x:e}) = {got:e}, libm {want:e}"
            );
        };
        let mut bits = 0u32;
        loop {
            check(f32::from_bits(bits));
            match bits.checked_add(97) {
                Some(b) => bits = b,
                None => break,
            }
        }
        for k in -8192i32..=8192 {
            let c = k as f32 * 0.5;
            let mut x = c;
            for _ in 0..4 {
                x = libm::nextafterf(x, f32::INFINITY);
                check(x);
            }
            let mut x = c;
            for _ in 0..4 {
                x = libm::nextafterf(x, f32::NEG_INFINITY);
                check(x);
            }
            check(c);
            check(-c);
        }
        for x in [
            0.0f32,
            -0.0,
            f32::INFINITY,
            f32::NEG_INFINITY,
            f32::NAN,
            8_388_608.0,
            -8_388_608.0,
            8_388_607.5,
            -8_388_607.5,
            f32::MAX,
            f32::MIN,
            f32::MIN_POSITIVE,
            -f32::MIN_POSITIVE,
            1e-45,
            -1e-45,
        ] {
            check(x);
        }
    }
}
