//! The passes over buffers, written once for every [`Vector`] instantiation. Each is a
//! [`Pass`]: a struct of its arguments whose `run::<V>` the dispatch (`arch::run`) calls
//! inside the `#[target_feature]` entry point of the chosen ISA.
//!
//! - [`Validate`]: read-only; the first invalid element's specific error, if any.
//! - [`Accumulate`]: read-only. Validates every element, bins its gradient norm and adds the
//!   valid elements' counts, loss terms and label weights to a [`Stats`]. It stops at the
//!   first invalid element and reports its specific error, adding nothing.
//! - [`Apply`]: writes one value per element from the committed per-region coefficients
//!   (the gradient by default; see [`Output`]). Its inputs must have passed one of the above.
//! - [`PlainBce`]: a plain BCE-with-logits, the benchmarks' baseline.

use super::bins::Bins;
use super::math::{full, Bce, Model};
use super::runs::{Inputs, Run, Runs};
use super::tally::LaneTables;
use super::vector::{Vector, MAX_LANES};
use crate::config::MAX_BINS;
use crate::error::Error;
use crate::io::{Output, OutputKind};
use crate::state::Stats;

/// A pass over buffers, generic over the vector type.
pub(crate) trait Pass {
    type Out;
    /// Runs the pass with vectors of type `V`.
    ///
    /// # Safety
    /// The target features `V` needs are enabled, and the pointers the pass holds are valid
    /// as its own documentation states.
    unsafe fn run<V: Vector>(self) -> Self::Out;
}

/// All-true lanes where a label weight is acceptable: finite and not negative.
#[inline(always)]
unsafe fn weight_ok<V: Vector>(w: V) -> V {
    // SAFETY: `V`'s target features are enabled and the pointers of the inputs and output are valid
    // for the elements they describe (this function's contract).
    unsafe { V::splat(0.0).le(w).and(w.lt(V::splat(f32::INFINITY))) }
}

/// Checks `V::LANES` elements of a run from `j`; the first one's specific error otherwise.
#[inline(always)]
unsafe fn check<V: Vector, M: Model>(
    model: &M,
    x: &Inputs,
    run: &Run,
    j: usize,
    a: V,
    b: V,
    w: V,
) -> Result<(), Error> {
    // SAFETY: `V`'s target features are enabled and the pointers of the inputs and output are valid
    // for the elements they describe (this function's contract).
    unsafe {
        let ok = model.valid(a, b).and(weight_ok(w));
        if ok.bitmask() == full::<V>() {
            return Ok(());
        }
        Err(first_error(model, x, run, j))
    }
}

#[cold]
unsafe fn first_error<M: Model>(model: &M, x: &Inputs, run: &Run, j: usize) -> Error {
    // SAFETY: `V`'s target features are enabled and the pointers of the inputs and output are valid
    // for the elements they describe (this function's contract).
    unsafe {
        for l in j..run.len {
            let (a, b, w) = run.element(x, l);
            if model.valid::<f32>(a, b).to_bits() == 0 {
                return model.error(a, b);
            }
            if weight_ok::<f32>(w).to_bits() == 0 {
                return Error::Weight;
            }
        }
        Error::Internal
    }
}

/// The validation pass alone. Contract: the pointers of `x` are valid for reads of the
/// lengths they describe.
pub(crate) struct Validate<'a, M> {
    pub model: &'a M,
    pub x: &'a Inputs,
}

impl<M: Model> Pass for Validate<'_, M> {
    type Out = Result<(), Error>;
    #[inline(always)]
    unsafe fn run<V: Vector>(self) -> Self::Out {
        // SAFETY: `V`'s target features are enabled and the pointers of the inputs and output are
        // valid for the elements they describe (this function's contract).
        unsafe { validate::<V, M>(self.model, self.x) }
    }
}

#[inline(always)]
unsafe fn validate<V: Vector, M: Model>(model: &M, x: &Inputs) -> Result<(), Error> {
    // SAFETY: `V`'s target features are enabled and the pointers of the inputs and output are valid
    // for the elements they describe (this function's contract).
    unsafe {
        let mut runs = Runs::new(x);
        while let Some(run) = runs.next() {
            let run = &run;
            let mut j = 0;
            while j < run.len {
                let (a, b, w) = run.load::<V>(x, j);
                check(model, x, run, j, a, b, w)?;
                j += V::LANES;
            }
        }
        Ok(())
    }
}

/// The read-only pass; adds to `stats` only on success. Contract: as for [`Validate`].
pub(crate) struct Accumulate<'a, M> {
    pub model: &'a M,
    pub bins: &'a Bins,
    pub x: &'a Inputs,
    pub stats: &'a mut Stats,
}

impl<M: Model> Pass for Accumulate<'_, M> {
    type Out = Result<(), Error>;
    #[inline(always)]
    unsafe fn run<V: Vector>(self) -> Self::Out {
        // SAFETY: `V`'s target features are enabled and the pointers of the inputs and output are
        // valid for the elements they describe (this function's contract).
        unsafe {
            const { assert!(V::LANES <= MAX_LANES && <V::Tables as LaneTables>::LEN == V::LANES) };
            let mut tables = <V::Tables as LaneTables>::EMPTY;
            accumulate::<V, M>(self.model, self.bins, self.x, &mut tables, self.stats)
        }
    }
}

#[inline(always)]
unsafe fn accumulate<V: Vector, M: Model>(
    model: &M,
    bins: &Bins,
    x: &Inputs,
    tables: &mut V::Tables,
    stats: &mut Stats,
) -> Result<(), Error> {
    // SAFETY: `V`'s target features are enabled and the pointers of the inputs and output are valid
    // for the elements they describe (this function's contract).
    unsafe {
        // The two end regions hold most elements (GHM-C's easy negatives near g = 0, GHM-R's
        // large residuals near g = 1): they are summed in vector registers; the elements of the
        // other regions go to per-lane tables one by one.
        let zero = V::splat(0.0);
        let last = bins.len() - 1;
        let last_v = V::splat(if last == 0 { -1.0 } else { last as f32 });
        let (mut n_first, mut n_last) = (0u64, 0u64);
        let (mut sum_first, mut sum_last, mut weight) =
            (V::sum_zero(), V::sum_zero(), V::sum_zero());
        let mut runs = Runs::new(x);
        while let Some(run) = runs.next() {
            let run = &run;
            let mut j = 0;
            while j < run.len {
                let (a, b, w) = run.load::<V>(x, j);
                check(model, x, run, j, a, b, w)?;
                let (dir, term) = model.forward(a, b);
                let k = bins.index(dir.abs());
                let valid = zero.lt(w);
                let first = k.eq(zero).and(valid);
                let end = k.eq(last_v).and(valid);
                n_first += u64::from(first.bitmask().count_ones());
                n_last += u64::from(end.bitmask().count_ones());
                sum_first = V::select(first, term, zero).sum_add(sum_first);
                sum_last = V::select(end, term, zero).sum_add(sum_last);
                weight = V::select(valid, w, zero).sum_add(weight);
                let mut rest = valid.bitmask() & !(first.bitmask() | end.bitmask());
                if rest != 0 {
                    let (mut idx, mut terms) = ([0u8; MAX_LANES], [0f32; MAX_LANES]);
                    k.indices(&mut idx);
                    term.store(terms.as_mut_ptr());
                    while rest != 0 {
                        // `rest` has bits only below LANES, so the modulo changes nothing;
                        // it lets the compiler see that `l` indexes the LANES tables
                        // (their count is asserted equal at compile time in `run`) and
                        // the MAX_LANES scratch arrays without a bounds check.
                        let l = rest.trailing_zeros() as usize % V::LANES;
                        rest &= rest - 1;
                        let t = &mut tables.as_mut()[l];
                        let k = usize::from(idx[l]) & (MAX_BINS - 1);
                        t.count[k] += 1;
                        t.sum[k] += f64::from(terms[l]);
                    }
                }
                j += V::LANES;
            }
        }
        for t in tables.as_mut().iter() {
            for k in 0..MAX_BINS {
                stats.count[k] += t.count[k] as f64;
                stats.loss_sum[k] += t.sum[k];
            }
        }
        stats.count[0] += n_first as f64;
        stats.loss_sum[0] += V::sum_total(sum_first);
        stats.count[last & (MAX_BINS - 1)] += n_last as f64;
        stats.loss_sum[last & (MAX_BINS - 1)] += V::sum_total(sum_last);
        stats.weight_sum += V::sum_total(weight);
        Ok(())
    }
}

/// What [`Apply`] needs from a commit: per-region coefficients `lambda * beta_k / tot`, the
/// normaliser `tot`, the output, and whether to write it or only to check that every value
/// it would write is finite (a dry run).
pub(crate) struct Plan<'a> {
    pub coef: &'a [f32; MAX_BINS],
    pub tot: f32,
    pub output: Output,
    pub write: bool,
}

/// The writing pass: for element i of region k, `value = coef[k] * dir_i` (or the element
/// weight or loss), 0 where the label weight is 0; `out[i] = scale * value` or `+=`. With
/// `plan.write` false it writes nothing and only reports whether every value is finite.
///
/// Contract: as for [`Validate`], and `out` is valid for reads and writes at every element
/// of `x`; `out` may equal `x.a` but must not otherwise overlap the inputs. The inputs have
/// passed [`Validate`] or [`Accumulate`].
pub(crate) struct Apply<'a, M> {
    pub model: &'a M,
    pub bins: &'a Bins,
    pub plan: &'a Plan<'a>,
    pub x: &'a Inputs,
    pub out: *mut f32,
}

impl<M: Model> Pass for Apply<'_, M> {
    type Out = bool;
    #[inline(always)]
    unsafe fn run<V: Vector>(self) -> bool {
        // SAFETY: `V`'s target features are enabled and the pointers of the inputs and output are
        // valid for the elements they describe (this function's contract).
        unsafe { apply::<V, M>(self.model, self.bins, self.plan, self.x, self.out) }
    }
}

#[inline(always)]
unsafe fn apply<V: Vector, M: Model>(
    model: &M,
    bins: &Bins,
    plan: &Plan<'_>,
    x: &Inputs,
    out: *mut f32,
) -> bool {
    // SAFETY: `V`'s target features are enabled and the pointers of the inputs and output are valid
    // for the elements they describe (this function's contract).
    unsafe {
        let scale = V::splat(plan.output.scale);
        let mut finite = V::splat(0.0).le(V::splat(0.0));
        let mut runs = Runs::new(x);
        while let Some(run) = runs.next() {
            let run = &run;
            let dst = out.add(run.start);
            let mut j = 0;
            while j < run.len {
                let (a, b, w) = run.load::<V>(x, j);
                let (dir, term) = match plan.output.kind {
                    OutputKind::ElementLoss => model.forward(a, b),
                    _ => (model.direction(a, b), V::splat(0.0)),
                };
                let c = bins.index(dir.abs()).lookup(plan.coef);
                let v = match plan.output.kind {
                    OutputKind::Gradient => c.mul(dir),
                    OutputKind::ElementWeight => c,
                    OutputKind::ElementLoss => c.mul(V::splat(plan.tot)).mul(term),
                };
                let v = V::select(V::splat(0.0).lt(w), v.mul(scale), V::splat(0.0));
                let full_vector = j + V::LANES <= run.len;
                let mut lanes = [0f32; MAX_LANES];
                let v = if plan.output.add {
                    if full_vector {
                        V::load(dst.add(j)).add(v)
                    } else {
                        for (l, o) in lanes.iter_mut().enumerate().take(run.len - j) {
                            *o = *dst.add(j + l);
                        }
                        V::load(lanes.as_ptr()).add(v)
                    }
                } else {
                    v
                };
                if !plan.write {
                    finite = finite.and(v.abs().lt(V::splat(f32::INFINITY)));
                } else if full_vector {
                    v.store(dst.add(j));
                } else {
                    v.store(lanes.as_mut_ptr());
                    for (l, o) in lanes.iter().enumerate().take(run.len - j) {
                        *dst.add(j + l) = *o;
                    }
                }
                j += V::LANES;
            }
        }
        finite.bitmask() == full::<V>()
    }
}

/// Plain (not harmonized) BCE-with-logits in one pass, with the same per-element math: the
/// sum of the terms, and `out[i] = scale * (sigmoid(x_i) - t_i)`. Inputs are not validated.
/// It exists as a baseline for the benchmarks: what any loss costs.
///
/// Contract: `x` and `t` are valid for reads and `out` for writes of `n` f32.
pub(crate) struct PlainBce {
    pub x: *const f32,
    pub t: *const f32,
    pub n: usize,
    pub scale: f32,
    pub out: *mut f32,
}

impl Pass for PlainBce {
    type Out = f64;
    #[inline(always)]
    unsafe fn run<V: Vector>(self) -> f64 {
        // SAFETY: `V`'s target features are enabled and the pointers of the inputs and output are
        // valid for the elements they describe (this function's contract).
        unsafe {
            let PlainBce {
                x,
                t,
                n,
                scale,
                out,
            } = self;
            let model = Bce {
                probabilities: false,
                gradient: false,
            };
            let mut sum = V::sum_zero();
            let mut i = 0;
            while i + V::LANES <= n {
                let (dir, term) = model.forward(V::load(x.add(i)), V::load(t.add(i)));
                sum = term.sum_add(sum);
                dir.mul(V::splat(scale)).store(out.add(i));
                i += V::LANES;
            }
            let mut total = V::sum_total(sum);
            for j in i..n {
                let (dir, term) = model.forward(*x.add(j), *t.add(j));
                total += f64::from(term);
                *out.add(j) = dir * scale;
            }
            total
        }
    }
}
