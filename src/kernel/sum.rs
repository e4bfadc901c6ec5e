//! Long sums without f64 arithmetic per element: compensated f32 sums over blocks of
//! bounded length, folded into f64 once per block.
//!
//! Each lane keeps a running sum `s` and a compensation `c` in f32. Every addition splits
//! exactly into the rounded sum and its rounding error (Knuth's TwoSum, six f32 operations,
//! exact in IEEE arithmetic without overflow); the errors are summed in `c`. After
//! [`BLOCK`] additions `s + c` is added to an f64 accumulator and both restart at zero.
//!
//! Error (Ogita, Rump and Oishi's bound for this summation): a block of `n` values `x_i`
//! ends with `s + c` within `gamma(n-1)^2 sum |x_i|` of the exact sum, with `u = 2^-24` and
//! `gamma(k) = k u / (1 - k u)`; with `n <= 1024` per lane, `gamma^2 < 3.8e-9`. The fold
//! adds `s` and then `c` to the f64 total: two roundings of at most `2^-53` relative to
//! the total per block, under `1e-10` relative for up to `10^9` additions per lane. For
//! values of one sign (the label weights, positives and loss terms summed here) the total
//! is within `4e-9` relative of the exact sum, as are the f64 sums this replaces on batches of
//! millions. Results are rounded to f32 (half an ULP is `6e-8` relative), so both agree
//! except where the exact sum lies that close to a rounding boundary. `tests/isa.rs`
//! checks the bound on adversarial inputs, on every path. Only f32 operations are paid per element: no
//! double-precision hardware is needed (the Cortex-M4F has none).
//!
//! Overflow: a partial sum beyond `f32::MAX` makes the total infinite or NaN, never a wrong
//! finite value. Where that may happen the callers check the totals: the first pass sums
//! again in f64 (label weights, loss terms: see `passes.rs`), and the loss an `Apply` sums,
//! where a bound cannot show it small enough, is decided first by a run that writes
//! nothing, with the coefficients scaled by 2^-32 so that no partial sum overflows: a
//! total of 2^125 or more is taken from it, a smaller one summed unscaled (see `loss.rs`).

use super::math::EndMasks;
use super::tally::LaneTables;
use super::vector::Vector;
use crate::config::MAX_BINS;

/// Additions per lane between two folds into f64.
pub(crate) const BLOCK: u32 = 1024;

/// `(s, e)` with `s = fl(a + b)` and `a + b = s + e` exactly (no overflow).
#[inline(always)]
pub(crate) unsafe fn two_sum<V: Vector>(a: V, b: V) -> (V, V) {
    // SAFETY: `V`'s target features are enabled (this function's contract).
    unsafe {
        let s = a.add(b);
        let z = s.sub(a);
        let e = a.sub(s.sub(z)).add(b.sub(z));
        (s, e)
    }
}

/// A compensated sum of vectors, lane by lane, folded into f64 every [`BLOCK`] additions.
#[derive(Clone, Copy)]
pub(crate) struct BlockSum<V: Vector> {
    s: V,
    c: V,
    left: u32,
    wide: V::Sum,
}

impl<V: Vector> BlockSum<V> {
    #[inline(always)]
    pub(crate) unsafe fn new() -> Self {
        // SAFETY: `V`'s target features are enabled (this function's contract).
        unsafe {
            Self {
                s: V::splat(0.0),
                c: V::splat(0.0),
                left: BLOCK,
                wide: V::sum_zero(),
            }
        }
    }

    /// Adds every lane of `x` to its lane's sum.
    #[inline(always)]
    pub(crate) unsafe fn add(&mut self, x: V) {
        // SAFETY: `V`'s target features are enabled (this function's contract).
        unsafe {
            let (s, e) = two_sum(self.s, x);
            self.s = s;
            self.c = self.c.add(e);
            self.left -= 1;
            if self.left == 0 {
                self.fold();
            }
        }
    }

    #[inline(always)]
    unsafe fn fold(&mut self) {
        // SAFETY: `V`'s target features are enabled (this function's contract).
        unsafe {
            self.wide = self.c.sum_add(self.s.sum_add(self.wide));
            self.s = V::splat(0.0);
            self.c = V::splat(0.0);
            self.left = BLOCK;
        }
    }

    /// The sum of every lane of every vector added; not finite if a partial sum overflowed.
    #[inline(always)]
    pub(crate) unsafe fn total(mut self) -> f64 {
        // SAFETY: `V`'s target features are enabled (this function's contract).
        unsafe {
            self.fold();
            V::sum_total(self.wide)
        }
    }
}

/// Per-region compensated sums for the accumulate pass: a table of `s` and one of `c` per
/// lane (so consecutive elements of one region do not wait on each other's stores), folded
/// into f64 per region every [`BLOCK`] vectors, as [`BlockSum`]. With `f64_only`, every
/// value goes straight into the f64 sums: for terms whose f32 sums overflow.
///
/// The vectors that [`Model::ends`](super::math::Model::ends) places whole add their terms
/// to three vector sums instead, one for each of the regions it places in ([`add_ends`](
/// Self::add_ends)).
pub(crate) struct RegionSums<'a, V: Vector> {
    s: V::Tables<f32>,
    c: V::Tables<f32>,
    /// The f64 sums: the caller's (one table of region sums in the frames, not two).
    wide: &'a mut [f64; MAX_BINS],
    left: u32,
    f64_only: bool,
    ends: [BlockSum<V>; 3],
}

impl<'a, V: Vector> RegionSums<'a, V> {
    /// Sums into `wide`, which must hold zeros.
    #[inline(always)]
    pub(crate) unsafe fn new(f64_only: bool, wide: &'a mut [f64; MAX_BINS]) -> Self {
        // SAFETY: `V`'s target features are enabled (this function's contract).
        let end = unsafe { BlockSum::new() };
        Self {
            s: <V::Tables<f32> as LaneTables<f32>>::EMPTY,
            c: <V::Tables<f32> as LaneTables<f32>>::EMPTY,
            wide,
            left: BLOCK,
            f64_only,
            ends: [end; 3],
        }
    }

    /// Whether every value goes straight into the f64 sums.
    pub(crate) fn f64_only(&self) -> bool {
        self.f64_only
    }

    /// Adds `term` to the first, second and last region's sums in the lanes of `valid`, of
    /// which `e` left none undecided: the first's and the last's masks, the rest the second.
    #[inline(always)]
    pub(crate) unsafe fn add_ends(&mut self, e: EndMasks<V>, valid: V, term: V) {
        // SAFETY: `V`'s target features are enabled (this function's contract).
        unsafe {
            let zero = V::splat(0.0);
            let term = V::select(valid, term, zero);
            let [f, s, l] = &mut self.ends;
            f.add(V::select(e.first, term, zero));
            s.add(V::select(e.first.or(e.last), zero, term));
            l.add(V::select(e.last, term, zero));
        }
    }

    /// Adds `x` to region `k` of lane `l` (`l` beyond the lanes is ignored).
    #[inline(always)]
    pub(crate) fn add(&mut self, l: usize, k: usize, x: f32) {
        let k = k & (MAX_BINS - 1);
        if self.f64_only {
            if l < V::LANES {
                self.wide[k] += f64::from(x);
            }
        } else if let (Some(s), Some(c)) = (self.s.as_mut().get_mut(l), self.c.as_mut().get_mut(l))
        {
            // SAFETY: the scalar instantiation needs no target feature.
            let (sum, e) = unsafe { two_sum(s[k], x) };
            s[k] = sum;
            c[k] += e;
        }
    }

    /// Marks the end of one vector's additions; folds every [`BLOCK`] vectors. Only the
    /// first `regions` cells are folded: no other cell is ever added to.
    #[inline(always)]
    pub(crate) fn end_vector(&mut self, regions: usize) {
        self.left -= 1;
        if self.left == 0 {
            self.fold(regions);
        }
    }

    fn fold(&mut self, regions: usize) {
        for (s, c) in self.s.as_mut().iter_mut().zip(self.c.as_mut().iter_mut()) {
            let cells = self.wide.iter_mut().zip(s.iter_mut()).zip(c.iter_mut());
            for ((w, s), c) in cells.take(regions) {
                *w += f64::from(*s) + f64::from(*c);
                (*s, *c) = (0.0, 0.0);
            }
        }
        self.left = BLOCK;
    }

    /// Completes the sums in `wide` (region `k`'s at `k`) and returns them; a sum is not
    /// finite if a partial sum overflowed.
    #[inline(always)]
    pub(crate) unsafe fn totals(&mut self, regions: usize) -> &[f64; MAX_BINS] {
        self.fold(regions);
        let last = regions.saturating_sub(1) & (MAX_BINS - 1);
        // SAFETY: `V`'s target features are enabled (this function's contract).
        unsafe {
            let [f, s, l] = core::mem::replace(
                &mut self.ends,
                [BlockSum::new(), BlockSum::new(), BlockSum::new()],
            );
            self.wide[0] += f.total();
            self.wide[1] += s.total();
            self.wide[last] += l.total();
        }
        self.wide
    }
}
