//! Passes for the accuracy and ISA-agreement tests (through `ghm::__test`): one that
//! evaluates a per-element function of `math.rs` over a buffer, and one that sums a buffer
//! as the kernels sum (`sum.rs`).

use super::math::{self, Asl1, Bce, Model};
use super::passes::Pass;
use super::sum::BlockSum;
use super::vector::{Vector, MAX_LANES};

/// Which function to evaluate.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Func {
    /// `exp_nonpos(a)`.
    Exp,
    /// `log1p_unit(a)`.
    Log1p,
    /// GHM-C's gradient direction `sigmoid(a) - b`.
    Bce,
    /// GHM-R's gradient direction for `mu`.
    Asl1(f32),
}

/// `out[i] = f(a[i], b[i])`; the slices have equal lengths (shorter ones are cut to the
/// shortest).
pub(crate) struct Probe<'a> {
    pub f: Func,
    pub a: &'a [f32],
    pub b: &'a [f32],
    pub out: &'a mut [f32],
}

impl Pass for Probe<'_> {
    type Out = ();
    #[inline(always)]
    unsafe fn run<V: Vector>(self) {
        // SAFETY: `V`'s target features are enabled (this function's contract); the slices bound
        // every access.
        unsafe {
            let Probe { f, a, b, out } = self;
            let n = out.len().min(a.len()).min(b.len());
            eval::<V>(f, &a[..n], &b[..n], &mut out[..n]);
        }
    }
}

#[inline(always)]
unsafe fn eval<V: Vector>(f: Func, a: &[f32], b: &[f32], out: &mut [f32]) {
    // SAFETY: `V`'s target features are enabled (this function's contract); the slices bound every
    // access.
    unsafe {
        let asl1 = Asl1::new(if let Func::Asl1(mu) = f { mu } else { 1.0 });
        let mut i = 0;
        while i < out.len() {
            let n = V::LANES.min(out.len() - i);
            let (mut pa, mut pb, mut po) =
                ([0f32; MAX_LANES], [0f32; MAX_LANES], [0f32; MAX_LANES]);
            pa[..n].copy_from_slice(&a[i..i + n]);
            pb[..n].copy_from_slice(&b[i..i + n]);
            let (va, vb) = (V::load(pa.as_ptr()), V::load(pb.as_ptr()));
            let y = match f {
                Func::Exp => math::exp_nonpos(va),
                Func::Log1p => math::log1p_unit(va),
                Func::Bce => Bce {
                    probabilities: false,
                    gradient: false,
                    positives: false,
                }
                .direction(va, vb),
                Func::Asl1(_) => asl1.direction(va, vb),
            };
            y.store(po.as_mut_ptr());
            out[i..i + n].copy_from_slice(&po[..n]);
            i += n;
        }
    }
}

/// The sum of `x` as the passes take long sums ([`BlockSum`]), `V::LANES` values at a time
/// (the last vector padded with zeros).
pub(crate) struct SumProbe<'a> {
    pub x: &'a [f32],
}

impl Pass for SumProbe<'_> {
    type Out = f64;
    #[inline(always)]
    unsafe fn run<V: Vector>(self) -> f64 {
        // SAFETY: `V`'s target features are enabled (this function's contract); the slice
        // bounds every access.
        unsafe {
            let mut sum = BlockSum::<V>::new();
            for chunk in self.x.chunks(V::LANES) {
                let mut lanes = [0f32; MAX_LANES];
                lanes[..chunk.len()].copy_from_slice(chunk);
                sum.add(V::load(lanes.as_ptr()));
            }
            sum.total()
        }
    }
}
