//! The small vector abstraction the kernels are written against.
//!
//! Every pass over a buffer and every per-element formula is written once, generic over
//! [`Vector`]; `arch/` instantiates it for one ISA per module. `f32` itself implements the
//! trait as a one-lane vector: that instantiation is the portable scalar path.
//!
//! Masks are vectors whose lanes are all-ones (true) or all-zeros (false), as the comparison
//! instructions of every SIMD ISA produce them.

/// A vector of `LANES` f32 values. All methods are `unsafe` only because SIMD instantiations
/// require their target features to be enabled; callers in `arch/` guarantee that.
pub(crate) trait Vector: Copy {
    /// Number of f32 lanes.
    const LANES: usize;
    /// A running sum of many vectors' lanes, in f64.
    type Sum: Copy;

    unsafe fn sum_zero() -> Self::Sum;
    /// `acc` plus every lane of `self`, widened to f64.
    unsafe fn sum_add(self, acc: Self::Sum) -> Self::Sum;
    unsafe fn sum_total(acc: Self::Sum) -> f64;

    unsafe fn splat(x: f32) -> Self;
    /// Loads `LANES` values from `p` (no alignment needed).
    unsafe fn load(p: *const f32) -> Self;
    /// Stores `LANES` values to `p` (no alignment needed).
    unsafe fn store(self, p: *mut f32);

    unsafe fn add(self, b: Self) -> Self;
    unsafe fn sub(self, b: Self) -> Self;
    unsafe fn mul(self, b: Self) -> Self;
    unsafe fn div(self, b: Self) -> Self;
    /// `self * b + c`, fused where the ISA has it (so results may differ from the scalar
    /// path in the last bit).
    unsafe fn mul_add(self, b: Self, c: Self) -> Self;
    unsafe fn sqrt(self) -> Self;
    unsafe fn abs(self) -> Self;
    /// Rounds toward negative infinity.
    unsafe fn floor(self) -> Self;
    /// Lane-wise minimum; the result is `b` where either is NaN.
    unsafe fn min(self, b: Self) -> Self;
    /// Lane-wise maximum; the result is `b` where either is NaN.
    unsafe fn max(self, b: Self) -> Self;

    unsafe fn lt(self, b: Self) -> Self;
    unsafe fn le(self, b: Self) -> Self;
    unsafe fn eq(self, b: Self) -> Self;
    unsafe fn and(self, b: Self) -> Self;
    unsafe fn or(self, b: Self) -> Self;
    /// `mask ? a : b`, lane-wise.
    unsafe fn select(mask: Self, a: Self, b: Self) -> Self;
    /// Bit `j` set where lane `j` of the mask is true.
    unsafe fn bitmask(self) -> u32;

    /// `2^n` for lanes holding integers in `[-126, 127]`.
    unsafe fn pow2(n: Self) -> Self;
    /// Loads `LANES` i32 from `p` (no alignment needed), converted to f32.
    unsafe fn load_i32(p: *const i32) -> Self {
        let mut v = [0f32; 16];
        for (l, x) in v.iter_mut().enumerate().take(Self::LANES) {
            *x = p.add(l).read_unaligned() as f32;
        }
        Self::load(v.as_ptr())
    }

    /// For positive normal lanes: `(m, e)` with `self = m * 2^e`, `m` in
    /// `[sqrt(1/2), sqrt(2))` and `e` an integer. (Zero gives `(1, -127)`.)
    unsafe fn split_exp(self) -> (Self, Self) {
        let (mut m, mut e) = ([0f32; 16], [0f32; 16]);
        self.store(m.as_mut_ptr());
        for (mv, ev) in m.iter_mut().zip(e.iter_mut()).take(Self::LANES) {
            (*mv, *ev) = split_exp_lane(*mv);
        }
        (Self::load(m.as_ptr()), Self::load(e.as_ptr()))
    }

    /// Converts lanes holding integers in `[0, 63]` to `u8` bin indices. Lanes outside that
    /// range (only possible for inputs that validation rejects) give some index below 64.
    unsafe fn indices(self, out: &mut [u8; 16]);
    /// `table[k]` per lane, for lanes holding integers in `[0, 63]`; like
    /// [`indices`](Vector::indices), any other lane reads some entry of the table.
    unsafe fn lookup(self, table: &[f32; 64]) -> Self {
        let mut idx = [0u8; 16];
        self.indices(&mut idx);
        let mut vals = [0f32; 16];
        for (v, &k) in vals.iter_mut().zip(idx.iter()).take(Self::LANES) {
            *v = table[usize::from(k)];
        }
        Self::load(vals.as_ptr())
    }

    /// True where every lane of the mask is false.
    #[inline(always)]
    unsafe fn none(self) -> bool {
        self.bitmask() == 0
    }
}

/// The portable one-lane instantiation: plain IEEE-754 f32 arithmetic, no fused operations.
impl Vector for f32 {
    const LANES: usize = 1;
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
            let r = f32::from_bits(r);
            r
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
        f32::from_bits(((n as i32 + 127) as u32) << 23)
    }
    #[inline(always)]
    unsafe fn indices(self, out: &mut [u8; 16]) {
        out[0] = (self as i32 & 63) as u8;
    }
    #[inline(always)]
    unsafe fn lookup(self, table: &[f32; 64]) -> Self {
        table[(self as i32 & 63) as usize]
    }
}

/// [`Vector::split_exp`] for one value.
#[inline(always)]
pub(crate) fn split_exp_lane(x: f32) -> (f32, f32) {
    let bits = x.to_bits();
    let e = ((bits >> 23) & 0xff) as i32 - 127;
    let m = f32::from_bits((bits & 0x007f_ffff) | 0x3f80_0000);
    if m >= core::f32::consts::SQRT_2 {
        (m * 0.5, (e + 1) as f32)
    } else {
        (m, e as f32)
    }
}

#[inline(always)]
fn mask(b: bool) -> f32 {
    f32::from_bits(if b { u32::MAX } else { 0 })
}

/// `floor` without a libm call: one float-to-int conversion and back (a single instruction
/// each on an FPU). Every input gives `libm::floorf`'s bits: |x| >= 2^23, infinities and
/// NaN are returned as they are (already integral), an integral x (-0.0 included) keeps its
/// own bits, and otherwise the truncation is corrected downwards for negative x.
#[inline(always)]
pub(crate) fn floor_f32(x: f32) -> f32 {
    // |x| >= 2^23 (0x4b00_0000), infinity or NaN: the bits of |x| compare as integers.
    if x.to_bits() & 0x7fff_ffff >= 0x4b00_0000 {
        return x;
    }
    let t = (x as i32) as f32;
    if t == x {
        x
    } else if t > x {
        t - 1.0
    } else {
        t
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
