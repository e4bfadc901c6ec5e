//! The small vector abstraction the kernels are written against.
//!
//! Every pass over a buffer and every per-element formula is written once, generic over
//! [`Vector`]; `arch/` implements it for one ISA per module. `f32` itself implements the
//! trait as a one-lane vector (`arch/scalar.rs`): that instantiation is the portable path.
//!
//! Masks are vectors whose lanes are all-ones (true) or all-zeros (false), as the comparison
//! instructions of every SIMD ISA produce them.

use super::tally::{Cell, LaneTables};
use crate::config::MAX_BINS;

/// The most lanes any instantiation may have: the passes' scratch buffers (one value per
/// lane) have this size, and each pass asserts `LANES <= MAX_LANES` at compile time.
pub(crate) const MAX_LANES: usize = 16;

/// Whether this target has vector instantiations of [`Vector`] (`arch/` builds them where
/// this holds: x86_64 with SSE2, aarch64 with NEON); elsewhere every pass runs on the one
/// lane, and what only the vector paths need is left out of the build.
pub(crate) const VECTOR_PATHS: bool = cfg!(any(
    all(target_arch = "x86_64", target_feature = "sse2"),
    all(target_arch = "aarch64", target_feature = "neon")
));

/// A vector of `LANES` f32 values. All methods are `unsafe` only because SIMD instantiations
/// require their target features to be enabled; callers in `arch/` guarantee that.
pub(crate) trait Vector: Copy {
    /// Number of f32 lanes, at most [`MAX_LANES`].
    const LANES: usize;
    /// The accumulate pass's per-lane tables of loss sums: `[LaneTable<T>; LANES]`.
    type Tables<T: Cell>: LaneTables<T>;
    /// Its count tables: `[LaneTable<usize>; LANES]`, none for one lane, which counts
    /// straight into the pass's output (the Cortex-M stack).
    type CountTables: LaneTables<usize>;
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
    /// Lane 0 (for one-lane code: the one-lane instantiation returns itself, with no
    /// array in the frame).
    #[inline(always)]
    unsafe fn first(self) -> f32 {
        let mut lanes = [0f32; MAX_LANES];
        // SAFETY: `lanes` holds `MAX_LANES >= LANES` values; the caller's contract.
        unsafe { self.store(lanes.as_mut_ptr()) };
        lanes[0]
    }

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

    /// `2^n` for lanes holding integers in `[-126, 127]`; any other lane (also infinite or
    /// NaN) gives some value, which callers discard.
    unsafe fn pow2(n: Self) -> Self;
    /// Loads `LANES` i32 from `p` (no alignment needed), converted to f32.
    #[inline(always)]
    unsafe fn load_i32(p: *const i32) -> Self {
        // SAFETY: `V`'s target features are enabled and `p` is valid for `LANES` values (the
        // trait's contract).
        unsafe {
            let mut v = [0f32; MAX_LANES];
            for (l, x) in v.iter_mut().enumerate().take(Self::LANES) {
                *x = p.add(l).read_unaligned() as f32;
            }
            Self::load(v.as_ptr())
        }
    }

    /// For positive normal lanes: `(m, e)` with `self = m * 2^e`, `m` in
    /// `[sqrt(1/2), sqrt(2))` and `e` an integer. (Zero gives `(1, -127)`.)
    #[inline(always)]
    unsafe fn split_exp(self) -> (Self, Self) {
        // SAFETY: `V`'s target features are enabled and `p` is valid for `LANES` values (the
        // trait's contract).
        unsafe {
            let (mut m, mut e) = ([0f32; MAX_LANES], [0f32; MAX_LANES]);
            self.store(m.as_mut_ptr());
            for (mv, ev) in m.iter_mut().zip(e.iter_mut()).take(Self::LANES) {
                (*mv, *ev) = split_exp_lane(*mv);
            }
            (Self::load(m.as_ptr()), Self::load(e.as_ptr()))
        }
    }

    /// Converts lanes in `[0, MAX_BINS)`, truncated toward zero, to `u8` bin indices (the
    /// first `LANES` entries of `out`). Lanes outside that range (only possible for inputs
    /// that validation rejects) give some index below `MAX_BINS`: implementations mask with
    /// [`BIN_MASK`].
    unsafe fn indices(self, out: &mut [u8; MAX_LANES]);
    /// `table[k]` per lane, `k` the lane truncated toward zero, for lanes in
    /// `[0, MAX_BINS)`; like [`indices`](Vector::indices), any other lane reads some entry
    /// of the table. Only the first `used` entries are ever looked up (the lanes are below
    /// it), which lets an ISA use fewer register permutes.
    #[inline(always)]
    unsafe fn lookup(self, table: &[f32; MAX_BINS], _used: usize) -> Self {
        // SAFETY: `V`'s target features are enabled and `p` is valid for `LANES` values (the
        // trait's contract).
        unsafe {
            let mut idx = [0u8; MAX_LANES];
            self.indices(&mut idx);
            let mut vals = [0f32; MAX_LANES];
            for (v, &k) in vals.iter_mut().zip(idx.iter()).take(Self::LANES) {
                *v = table[usize::from(k)];
            }
            Self::load(vals.as_ptr())
        }
    }

    /// True where every lane of the mask is false.
    #[inline(always)]
    unsafe fn none(self) -> bool {
        // SAFETY: `V`'s target features are enabled and `p` is valid for `LANES` values (the
        // trait's contract).
        unsafe { self.bitmask() == 0 }
    }
}

/// The mask that keeps a bin index inside `[0, MAX_BINS)`, as the ISA implementations of
/// [`Vector::indices`] and [`Vector::lookup`] apply it to integer lanes.
pub(crate) const BIN_MASK: i32 = MAX_BINS as i32 - 1;
const _: () = assert!(
    MAX_BINS <= 256 && MAX_BINS.is_power_of_two(),
    "indices are u8, masked"
);

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
