//! NOT PART OF THE API (re-exported, hidden, as `ghm::__test`): the per-element functions of
//! the kernels evaluated through a given ISA path, for `tests/isa.rs` and
//! `tests/ulp_exhaustive.rs`, and the plain BCE and ASL1 baselines of the benchmarks. No stability
//! promise.

use crate::arch::{self, Isa};
use crate::config::Kind;
use crate::error::Error;
use crate::kernel::{Asl1, Bce, Func, Model, Plain, Probe, SumProbe};

fn run(isa: Isa, f: Func, a: &[f32], b: &[f32], out: &mut [f32]) -> Result<(), Error> {
    if a.len() != out.len() || b.len() != out.len() {
        return Err(Error::Length);
    }
    // SAFETY: the probe holds slices, valid by construction.
    unsafe { arch::run(isa, Probe { f, a, b, out }) }
}

/// Plain mean BCE-with-logits and its gradient `(sigmoid(x) - t) / n` in one pass, with the
/// kernels' math and no harmonizing and no input checks: the benchmarks' baseline for what
/// the loss costs.
pub fn plain_bce(isa: Isa, x: &[f32], t: &[f32], grad: &mut [f32]) -> Result<f32, Error> {
    let model = Bce {
        probabilities: false,
        gradient: false,
        positives: false,
    };
    plain(&model, isa, x, t, grad)
}

/// Plain mean ASL1 ("authentic smooth L1", GHM-R's loss without harmonizing) and its
/// gradient in one pass, as [`plain_bce`].
pub fn plain_asl1(
    isa: Isa,
    mu: f32,
    pred: &[f32],
    target: &[f32],
    grad: &mut [f32],
) -> Result<f32, Error> {
    plain(&Asl1::new(mu), isa, pred, target, grad)
}

fn plain<M: Model>(
    model: &M,
    isa: Isa,
    a: &[f32],
    b: &[f32],
    grad: &mut [f32],
) -> Result<f32, Error> {
    let n = a.len();
    if b.len() != n || grad.len() != n {
        return Err(Error::Length);
    }
    let pass = Plain {
        model,
        a: a.as_ptr(),
        b: b.as_ptr(),
        n,
        scale: 1.0 / n.max(1) as f32,
        out: grad.as_mut_ptr(),
    };
    // SAFETY: the pointers come from slices of length n.
    let sum = unsafe { arch::run(isa, pass)? };
    Ok((sum / n.max(1) as f64) as f32)
}

/// The sum of `x` as the kernels take their long sums (label weights, positives, the loss):
/// compensated f32 sums per lane, folded into f64 in blocks.
pub fn block_sum(isa: Isa, x: &[f32]) -> Result<f64, Error> {
    // SAFETY: the probe holds a slice, valid by construction.
    unsafe { arch::run(isa, SumProbe { x }) }
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
