//! NOT PART OF THE API (re-exported, hidden, as `ghm::__test`): the per-element functions of
//! `math.rs` evaluated through a given ISA path, for `tests/isa.rs` and
//! `tests/ulp_exhaustive.rs`. No stability promise.

use super::Isa;
use crate::config::Kind;
use crate::math::{self, Asl1, Bce, Model};
use crate::status::Error;
use crate::vector::Vector;

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

/// `out[i] = f(a[i], b[i])` with `V`; the slices have equal lengths.
///
/// # Safety
/// The target features `V` needs are enabled.
#[inline(always)]
pub(crate) unsafe fn eval<V: Vector>(f: Func, a: &[f32], b: &[f32], out: &mut [f32]) {
    let asl1 = Asl1::new(if let Func::Asl1(mu) = f { mu } else { 1.0 });
    let mut i = 0;
    while i < out.len() {
        let n = V::LANES.min(out.len() - i);
        let (mut pa, mut pb, mut po) = ([0f32; 16], [0f32; 16], [0f32; 16]);
        pa[..n].copy_from_slice(&a[i..i + n]);
        pb[..n].copy_from_slice(&b[i..i + n]);
        let (va, vb) = (V::load(pa.as_ptr()), V::load(pb.as_ptr()));
        let y = match f {
            Func::Exp => math::exp_nonpos(va),
            Func::Log1p => math::log1p_unit(va),
            Func::Bce => Bce {
                probabilities: false,
            }
            .direction(va, vb),
            Func::Asl1(_) => asl1.direction(va, vb),
        };
        y.store(po.as_mut_ptr());
        out[i..i + n].copy_from_slice(&po[..n]);
        i += n;
    }
}

fn run(isa: Isa, f: Func, a: &[f32], b: &[f32], out: &mut [f32]) -> Result<(), Error> {
    if a.len() != out.len() || b.len() != out.len() {
        return Err(Error::Length);
    }
    if !isa.is_available() {
        return Err(Error::Isa);
    }
    // SAFETY: each path's target features are available (checked above).
    unsafe {
        match isa.resolve() {
            Isa::Scalar => eval::<f32>(f, a, b, out),
            #[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
            Isa::Avx2 => super::x86_64::probe(f, a, b, out),
            #[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
            Isa::Avx512 => super::avx512::probe(f, a, b, out),
            #[cfg(all(target_arch = "aarch64", target_feature = "neon"))]
            Isa::Neon => super::aarch64::probe(f, a, b, out),
            #[allow(unreachable_patterns)]
            _ => return Err(Error::Isa),
        }
    }
    Ok(())
}

/// Plain mean BCE-with-logits and its gradient `(sigmoid(x) - t) / n` in one pass, with the
/// kernels' math and no harmonizing and no input checks: the benchmarks' baseline for what
/// any loss costs.
pub fn plain_bce(isa: Isa, x: &[f32], t: &[f32], grad: &mut [f32]) -> Result<f32, Error> {
    let n = x.len();
    if t.len() != n || grad.len() != n {
        return Err(Error::Length);
    }
    if !isa.is_available() {
        return Err(Error::Isa);
    }
    let scale = 1.0 / n.max(1) as f32;
    let (px, pt, po) = (x.as_ptr(), t.as_ptr(), grad.as_mut_ptr());
    // SAFETY: slices of length n; the path's target features are available (checked above).
    let sum = unsafe {
        match isa.resolve() {
            #[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
            Isa::Avx2 => super::x86_64::plain_bce(px, pt, n, scale, po),
            #[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
            Isa::Avx512 => super::avx512::plain_bce(px, pt, n, scale, po),
            #[cfg(all(target_arch = "aarch64", target_feature = "neon"))]
            Isa::Neon => super::aarch64::plain_bce(px, pt, n, scale, po),
            _ => crate::pass::plain_bce::<f32>(px, pt, n, scale, po),
        }
    };
    Ok((sum / n.max(1) as f64) as f32)
}

/// `out[i] = e^x[i]` as the kernels compute it, for `x[i] <= 0`.
pub fn exp_nonpos(isa: Isa, x: &[f32], out: &mut [f32]) -> Result<(), Error> {
    run(isa, Func::Exp, x, x, out)
}

/// `out[i] = ln(1 + x[i])` as the kernels compute it, for `x[i]` in `[0, 1]`.
pub fn log1p_unit(isa: Isa, x: &[f32], out: &mut [f32]) -> Result<(), Error> {
    run(isa, Func::Log1p, x, x, out)
}

/// `out[i] = sigmoid(x[i])` as GHM-C computes it (its direction for target 0).
pub fn sigmoid(isa: Isa, x: &[f32], out: &mut [f32]) -> Result<(), Error> {
    if x.len() != out.len() {
        return Err(Error::Length);
    }
    let zeros = [0f32; 256];
    for (xs, os) in x.chunks(256).zip(out.chunks_mut(256)) {
        run(isa, Func::Bce, xs, &zeros[..xs.len()], os)?;
    }
    Ok(())
}

/// `out[i]` = the gradient direction of element `(a[i], b[i])` (its absolute value is the
/// gradient norm that is binned) as the kernels compute it; `mu` is used for GHM-R only.
pub fn direction(
    isa: Isa,
    kind: Kind,
    mu: f32,
    a: &[f32],
    b: &[f32],
    out: &mut [f32],
) -> Result<(), Error> {
    let f = match kind {
        Kind::Classification => Func::Bce,
        Kind::Regression => Func::Asl1(mu),
    };
    run(isa, f, a, b, out)
}
