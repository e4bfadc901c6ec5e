//! The passes over buffers, written once for every [`Vector`] instantiation. Each is a
//! [`Pass`]: a struct of its arguments whose `run::<V>` the dispatch (`arch::run`) calls
//! inside the `#[target_feature]` entry point of the chosen ISA.
//!
//! - [`Validate`]: read-only; the first invalid element's specific error, if any.
//! - [`Accumulate`]: read-only. Validates every element, bins its gradient norm and adds the
//!   valid elements' counts, loss terms and label weights to a [`Counts`] and per-region
//!   loss sums. It stops at the first invalid element and reports its specific error; the
//!   tally is then not meaningful (callers discard it).
//! - [`Apply`]: writes one value per element from the committed per-region coefficients
//!   (the gradient by default; see [`Output`]). Its inputs must have passed one of the above.
//! - [`Plain`]: a plain loss (BCE-with-logits, ASL1), the benchmarks' baseline.

use super::bins::Bins;
use super::math::{full, EndMasks, Model};
use super::runs::{Inputs, Run, Runs, ANY, ROWS, VALUES, ZERO};
use super::sum::{BlockSum, RegionSums};
use super::tally::LaneTables;
use super::vector::{Vector, MAX_LANES};
use crate::config::MAX_BINS;
use crate::error::Error;
use crate::io::{Output, OutputKind};
use crate::state::Counts;

/// `$call`, in which the const `$s` is the shape of `$x`'s runs for `V` ([`Inputs::shape`]):
/// the one place a pass's loop is instantiated per shape. Unoptimised builds
/// (`ghm_unspecialised`, set by `build.rs`) instantiate the general loop only: the same
/// results, in a stack frame a tenth the size.
#[cfg(ghm_unspecialised)]
macro_rules! by_shape {
    ($x:expr, $s:ident => $call:expr) => {{
        const $s: u8 = ANY;
        $call
    }};
}
#[cfg(not(ghm_unspecialised))]
macro_rules! by_shape {
    ($x:expr, $s:ident => $call:expr) => {
        match $x.shape(V::LANES) {
            super::runs::VALUES => {
                const $s: u8 = super::runs::VALUES;
                $call
            }
            super::runs::ZERO => {
                const $s: u8 = super::runs::ZERO;
                $call
            }
            super::runs::ROWS => {
                const $s: u8 = super::runs::ROWS;
                $call
            }
            _ => {
                const $s: u8 = ANY;
                $call
            }
        }
    };
}

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

/// Checks `V::LANES` elements of a run from `j` (their targets too unless `made`: targets
/// the load made, see [`Run::load`]; their label weights too unless `weights_ok`: a run
/// whose one weight was checked); the first one's specific error otherwise.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
unsafe fn check<V: Vector, M: Model>(
    model: &M,
    x: &Inputs,
    run: &Run,
    j: usize,
    a: V,
    b: V,
    w: V,
    weights_ok: bool,
    made: bool,
) -> Result<(), Error> {
    // SAFETY: `V`'s target features are enabled and the pointers of the inputs and output are valid
    // for the elements they describe (this function's contract).
    unsafe {
        let ok = if made {
            model.valid_input(a)
        } else {
            model.valid(a, b)
        };
        let ok = if weights_ok { ok } else { ok.and(weight_ok(w)) };
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

/// The validation pass alone; its result is a bound on every valid element's
/// [`Model::magnitude`] (see [`Far`]), which bounds the loss an [`Apply`] sums. Contract:
/// the pointers of `x` are valid for reads of the lengths they describe.
pub(crate) struct Validate<'a, M> {
    pub model: &'a M,
    pub x: &'a Inputs,
}

impl<M: Model> Pass for Validate<'_, M> {
    type Out = Result<f32, Error>;
    #[inline(always)]
    unsafe fn run<V: Vector>(self) -> Self::Out {
        // SAFETY: `V`'s target features are enabled and the pointers of the inputs and output are
        // valid for the elements they describe (this function's contract).
        unsafe { by_shape!(self.x, S => validate::<V, M, S>(self.model, self.x)) }
    }
}

#[inline(always)]
unsafe fn validate<V: Vector, M: Model, const S: u8>(model: &M, x: &Inputs) -> Result<f32, Error> {
    // SAFETY: `V`'s target features are enabled and the pointers of the inputs and output are valid
    // for the elements they describe (this function's contract).
    unsafe {
        let zero = V::splat(0.0);
        let mut far = Far::<V>::new();
        let mut runs = Runs::new(x, V::LANES);
        while let Some(mut run) = runs.next() {
            let weights_ok = checked_weights(&run).is_some();
            let mut j = 0;
            while j < run.len {
                let (a, b, w, made) = run.load_as::<V, S>(x, j);
                check(model, x, &run, j, a, b, w, weights_ok, made)?;
                far.add(model.magnitude(a, b), zero.lt(w));
                j += V::LANES;
            }
        }
        Ok(far.bound())
    }
}

/// The magnitude ([`Model::magnitude`]) below which the first passes on vector paths bound
/// the valid elements' by this value itself, not by their maximum: 2^64, far above the
/// logits a model produces and the residuals of real inputs. A pass that meets one at or
/// above it returns an infinite bound. Where such a loose bound does not show the loss
/// finite (such inputs, inputs near f32's range, or large loss weights: above about 1e19
/// for a one-shot call, less for the three-phase loss applies, whose bound takes the
/// largest coefficient for every element), the caller finds the exact maximum
/// ([`largest_magnitude`], a scalar scan), so that it decides as the exact maximum would.
const MAGNITUDE_LIMIT: f32 = 18_446_744_073_709_551_616.0;

/// A first pass's bound on its valid elements' magnitudes. On vector paths, whether it has
/// met one not below [`MAGNITUDE_LIMIT`], a flag in a general register: a vector carried
/// across the loop (a running maximum), which holds calls on its rare paths, was spilled
/// to the stack and reloaded for every vector, which cost 13-22% of a counting pass with
/// AVX-512 on an AMD Zen 4. The one lane keeps the maximum, in a register (four
/// instructions per element fewer on the Cortex-M4F), which is then its bound.
#[derive(Clone, Copy)]
struct Far<V> {
    max: V,
    lanes: u32,
}

impl<V: Vector> Far<V> {
    #[inline(always)]
    unsafe fn new() -> Self {
        // SAFETY: `V`'s target features are enabled (this function's contract).
        let max = unsafe { V::splat(0.0) };
        Far { max, lanes: 0 }
    }

    /// Adds the magnitudes `m` of the lanes that are `valid`.
    #[inline(always)]
    unsafe fn add(&mut self, m: V, valid: V) {
        // SAFETY: `V`'s target features are enabled (this function's contract).
        unsafe {
            if V::LANES == 1 {
                self.max = self.max.max(V::select(valid, m, V::splat(0.0)));
            } else {
                let near = m.lt(V::splat(MAGNITUDE_LIMIT));
                self.lanes |= valid.bitmask() & !near.bitmask();
            }
        }
    }

    /// The pass's bound on the valid elements' magnitudes: their maximum on the one lane;
    /// on vector paths [`MAGNITUDE_LIMIT`], or infinity where one is not below it.
    #[inline(always)]
    unsafe fn bound(self) -> f32 {
        if V::LANES == 1 {
            // SAFETY: `V`'s target features are enabled (this function's contract).
            return unsafe { self.max.first() };
        }
        if self.lanes != 0 {
            f32::INFINITY
        } else {
            MAGNITUDE_LIMIT
        }
    }
}

/// The read-only pass; writes the tally to `counts`, which must be [`Counts::EMPTY`] (a
/// one-lane pass counts straight into it, without a table of its own: the Cortex-M stack),
/// and with `TERMS` each region's sum of loss terms to `loss_sum`, which must then be given
/// and hold zeros (the sums are made in it). On error neither holds a meaningful tally.
/// Contract: as for [`Validate`].
///
/// With `TERMS` false it adds the counts and the label weights but no loss terms: the
/// one-shot calls take the loss in [`Apply`], where each region's coefficient is known, and
/// this pass then needs neither the terms nor, for the elements [`Model::ends`] places, the
/// gradient norm. Its result bounds every valid element's [`Model::magnitude`] (see
/// [`Far`]), and so the loss [`Apply`] will sum.
/// (A const parameter: a counting pass is its own function, whose stack frame holds no
/// sum tables.)
pub(crate) struct Accumulate<'a, M, const TERMS: bool> {
    pub model: &'a M,
    pub bins: &'a Bins,
    pub x: &'a Inputs,
    pub counts: &'a mut Counts,
    pub loss_sum: Option<&'a mut [f64; MAX_BINS]>,
}

impl<M: Model, const TERMS: bool> Pass for Accumulate<'_, M, TERMS> {
    type Out = Result<f32, Error>;
    #[inline(always)]
    unsafe fn run<V: Vector>(self) -> Self::Out {
        // SAFETY: `V`'s target features are enabled and the pointers of the inputs and output are
        // valid for the elements they describe (this function's contract).
        unsafe {
            const {
                assert!(
                    V::LANES <= MAX_LANES
                        && <V::CountTables as LaneTables<usize>>::LEN
                            == if V::LANES == 1 { 0 } else { V::LANES }
                        && <V::Tables<f32> as LaneTables<f32>>::LEN == V::LANES
                )
            };
            let Accumulate {
                model,
                bins,
                x,
                counts: out,
                loss_sum,
            } = self;
            let mut counts = <V::CountTables as LaneTables<usize>>::EMPTY;
            if TERMS {
                let Some(loss_sum) = loss_sum else {
                    return Err(Error::Internal);
                };
                // Once; again with f64 sums if a region's f32 term sum overflowed (terms
                // near f32::MAX, whose sum the coefficients may still bring into range).
                // One call site: the pass is inlined once.
                let mut f64_only = false;
                loop {
                    let mut sums = RegionSums::<V>::new(f64_only, loss_sum);
                    let sums = Some(&mut sums);
                    let r = by_shape!(x, S => accumulate::<V, M, true, S, false>(
                        model, bins, x, &mut counts, sums, out
                    ));
                    match r {
                        Tally::Done(r) => return r,
                        // f64 sums of finite f32 values do not overflow
                        Tally::SumsOverflowed if f64_only => return Err(Error::Internal),
                        Tally::SumsOverflowed => {
                            f64_only = true;
                            counts = LaneTables::EMPTY;
                            *out = Counts::EMPTY;
                            *loss_sum = [0.0; MAX_BINS];
                        }
                    }
                }
            } else {
                // counting only: no sum tables to zero; a loop of its own for the runs
                // that may have background vectors (see `accumulate`): rows, and targets 0
                // without label weights
                let r = by_shape!(x, S => if S == ROWS || (S == ZERO && x.w.is_null()) {
                    accumulate::<V, M, false, S, true>(model, bins, x, &mut counts, None, out)
                } else {
                    accumulate::<V, M, false, S, false>(model, bins, x, &mut counts, None, out)
                });
                match r {
                    Tally::Done(r) => r,
                    Tally::SumsOverflowed => Err(Error::Internal),
                }
            }
        }
    }
}

/// How [`accumulate`] ended: with the pass's result, or with a region's f32 term sum not
/// finite (the counts and sums to be cleared for the retry).
enum Tally {
    Done(Result<f32, Error>),
    SumsOverflowed,
}

/// The loop of [`Accumulate`] for runs of shape `S`; with `BACKGROUND`, for runs of rows and
/// of targets 0 without label weights, whose counting pass looks for background vectors (a
/// const parameter: in every loop, the test cost the loops that cannot use it registers).
#[inline(always)]
unsafe fn accumulate<
    V: Vector,
    M: Model,
    const TERMS: bool,
    const S: u8,
    const BACKGROUND: bool,
>(
    model: &M,
    bins: &Bins,
    x: &Inputs,
    counts: &mut V::CountTables,
    mut sums: Option<&mut RegionSums<V>>,
    out: &mut Counts,
) -> Tally {
    // SAFETY: `V`'s target features are enabled and the pointers of the inputs and output are valid
    // for the elements they describe (this function's contract).
    unsafe {
        // Each lane's element goes to that lane's table. A vector whose valid lanes
        // `Model::ends` places in the first two regions or the last (GHM-C's easy negatives
        // near g = 0, GHM-R's large residuals near g = 1) is counted without binning, and
        // its terms (if summed) go to three vector sums.
        // (The model by value: its options are then loop invariants in registers, not
        // loads after every store to the tables.)
        let model = *model;
        let model = &model;
        let zero = V::splat(0.0);
        let last = (bins.len() - 1) & (MAX_BINS - 1);
        let ends = model.ends_for(bins);
        let mut placed = Placed::default();
        let regions = bins.len();
        let (mut weight, mut positives) = (BlockSum::<V>::new(), BlockSum::<V>::new());
        // the label weights of runs whose weights were checked and summed ahead
        let mut checked_sum = WeightSum::default();
        let count_positives = model.counts_positives();
        let mut far = Far::<V>::new();
        // the end regions' shortcut, also for the terms unless they are summed in f64 (the
        // cold retry after an f32 sum overflowed)
        let shortcut = !TERMS || sums.as_deref().is_some_and(|s| !s.f64_only());
        let mut runs = Runs::new(x, V::LANES);
        while let Some(mut run) = runs.next() {
            // label weights checked and summed once for the run (one weight, or one a row)
            let checked = checked_weights(&run);
            if let Some(w) = checked {
                checked_sum.add(w);
            }
            // A counting pass's background vectors (targets 0, every lane valid with a
            // weight checked and summed ahead, the run's or its rows': most of a detector's
            // class-index rows) from the logits alone, where the end regions place every
            // lane; any other vector, and one with an input to refuse, falls through to the
            // general code, which loads it again (the cursors of rows are left as they are,
            // as loading it leaves them).
            let mut background = if BACKGROUND && !TERMS && checked.is_some() {
                run.background()
            } else {
                None
            };
            let mut j = 0;
            while j < run.len {
                if j + V::LANES <= run.len
                    && background
                        .as_mut()
                        .is_some_and(|bg| run.in_background(bg, j, V::LANES))
                {
                    let a = V::load(x.a.add(run.start + j));
                    let e = model.ends(a, zero, &ends);
                    let ok = model.valid(a, zero).bitmask() == full::<V>();
                    if ok && e.undecided.bitmask() == 0 {
                        if count_positives {
                            positives.add(model.positive(a, zero));
                        }
                        far.add(model.magnitude(a, zero), zero.le(zero));
                        placed.add(&e, full::<V>());
                        j += V::LANES;
                        continue;
                    }
                }
                let (a, b, w, made) = run.load_as::<V, S>(x, j);
                if let Err(e) = check(model, x, &run, j, a, b, w, checked.is_some(), made) {
                    return Tally::Done(Err(e));
                }
                let valid = zero.lt(w);
                let valid_bits = valid.bitmask();
                if checked.is_none() {
                    weight.add(V::select(valid, w, zero));
                }
                if count_positives {
                    positives.add(V::select(valid, model.positive(a, b), zero));
                }
                j += V::LANES;
                if !TERMS {
                    far.add(model.magnitude(a, b), valid);
                }
                // with terms, the element's math once for both ways below (one inlined copy)
                let forward = if TERMS {
                    model.forward(a, b)
                } else {
                    (zero, zero)
                };
                if shortcut {
                    let e = model.ends(a, b, &ends);
                    if e.undecided.bitmask() & valid_bits == 0 {
                        placed.add(&e, valid_bits);
                        if TERMS {
                            if let Some(sums) = sums.as_deref_mut() {
                                sums.add_ends(e, valid, forward.1);
                            }
                        }
                        continue;
                    }
                }
                let (dir, term) = if TERMS {
                    forward
                } else {
                    (model.direction(a, b), zero)
                };
                // Every lane goes to its own table, without a branch on its region: which
                // lanes fall outside the end regions is data-dependent and mispredicts.
                let k = bins.index(dir.abs());
                let (mut idx, mut terms) = ([0u8; MAX_LANES], [0f32; MAX_LANES]);
                k.indices(&mut idx);
                if TERMS {
                    V::select(valid, term, zero).store(terms.as_mut_ptr());
                }
                // one lane counts straight into the output; more use the tables, as one
                // array: lane l's region k at `l * MAX_BINS + k` (per-lane table pointers
                // would be kept live across the loop, and spilled)
                let flat = counts.as_mut().as_flattened_mut();
                for l in 0..V::LANES {
                    // `l < LANES <= MAX_LANES` (asserted at compile time in `run`)
                    let k = usize::from(idx[l % MAX_LANES]) & (MAX_BINS - 1);
                    let cell = if V::LANES == 1 {
                        out.count.get_mut(k)
                    } else {
                        flat.get_mut(l * MAX_BINS + k)
                    };
                    if let Some(t) = cell {
                        *t += (valid_bits >> l & 1) as usize;
                    }
                    if TERMS {
                        if let Some(sums) = sums.as_deref_mut() {
                            sums.add(l, k, terms[l % MAX_LANES]);
                        }
                    }
                }
                if TERMS {
                    if let Some(sums) = sums.as_deref_mut() {
                        sums.end_vector(regions);
                    }
                }
            }
        }
        if let Some(sums) = sums {
            if !sums.totals(regions).iter().all(|t| t.is_finite()) {
                return Tally::SumsOverflowed;
            }
        }
        // each region in use: the lanes' tables added to the output, as integers (exact)
        for (k, s) in out.count.iter_mut().enumerate().take(regions) {
            let lanes = counts
                .as_ref()
                .iter()
                .map(|t| t.get(k).copied().unwrap_or(0));
            *s += lanes.sum::<usize>();
        }
        out.count[0] += placed.first;
        // (none with fewer than three regions: the band is empty)
        out.count[1] += placed.second;
        out.count[last] += placed.last;
        let mut weight = weight.total();
        if weight.is_finite() {
            weight += checked_sum.total();
        } else {
            // an f32 partial sum overflowed (label weights near f32::MAX): sum in f64
            weight = weight_sum_f64(x);
        }
        out.weight_sum += weight;
        out.positive_sum += positives.total();
        Tally::Done(Ok(far.bound()))
    }
}

/// The counts of the valid lanes that [`Model::ends`] placed whole vectors of, in the first,
/// the second and the last region.
#[derive(Default)]
struct Placed {
    first: usize,
    second: usize,
    last: usize,
}

impl Placed {
    /// Adds the valid lanes (`valid_bits`) of a vector none of whose valid lanes `e` left
    /// undecided: those in neither the first nor the last region are in the second.
    ///
    /// # Safety
    /// `V`'s target features are enabled.
    #[inline(always)]
    unsafe fn add<V: Vector>(&mut self, e: &EndMasks<V>, valid_bits: u32) {
        // SAFETY: this function's contract.
        let (f, l) = unsafe { (e.first.bitmask(), e.last.bitmask()) };
        let (f, l) = (f & valid_bits, l & valid_bits);
        self.first += f.count_ones() as usize;
        self.second += (valid_bits & !(f | l)).count_ones() as usize;
        self.last += l.count_ones() as usize;
    }
}

/// A sum of valid label weights: the elements of weight exactly 1 (the weights of a call
/// that gives none) counted as an integer, the rest summed in f64. (A one-lane path walks
/// class-index targets row by row, each row a run: counting spares a single-precision FPU
/// the f64 arithmetic of a product and a sum per row.)
#[derive(Clone, Copy, Default)]
struct WeightSum {
    ones: usize,
    other: f64,
}

impl WeightSum {
    #[inline(always)]
    fn add(&mut self, w: WeightSum) {
        self.ones += w.ones;
        // +0 (weights of exactly 1, or none valid) changes no sum of weights, which are not
        // negative: not added, which spares the one lane a software f64 addition per
        // class-index row (out of line: inlined, the compiler made the addition anyway and
        // selected its result)
        if w.other.to_bits() != 0 {
            self.add_other(w.other);
        }
    }

    #[cold]
    #[inline(never)]
    fn add_other(&mut self, other: f64) {
        self.other += other;
    }

    fn total(self) -> f64 {
        self.ones as f64 + self.other
    }
}

/// The sum of the run's valid label weights if they can be checked and summed ahead of its
/// elements: one weight for the whole run, or one per row of long rows; `None` where the
/// elements' weights are to be checked with them (also where one is not acceptable, so
/// that the first error is found in element order).
#[inline(always)]
unsafe fn checked_weights(run: &Run) -> Option<WeightSum> {
    // SAFETY: the portable instantiation needs no target feature.
    let ok = |w: f32| unsafe { weight_ok::<f32>(w) }.to_bits() != 0;
    if let Some(w) = run.uniform_weight() {
        // weight 1 (a call that gives none) first: no test of its range, which the one lane
        // would otherwise make once per class-index row
        if w == 1.0 {
            return Some(WeightSum {
                ones: run.len,
                other: 0.0,
            });
        }
        return ok(w).then(|| match w {
            w if w > 0.0 => WeightSum {
                ones: 0,
                other: f64::from(w) * run.len as f64,
            },
            _ => WeightSum::default(),
        });
    }
    // SAFETY: the run's pointers are valid (this function's contract)
    unsafe { run.row_weight_total(ok) }.map(|other| WeightSum { ones: 0, other })
}

/// The largest [`Model::magnitude`] of a valid element of `x`, element by element: for a
/// loss that a first pass's bound on the magnitudes (loose on vector paths, see
/// [`MAGNITUDE_LIMIT`]) did not show finite.
///
/// # Safety
/// The pointers of `x` are valid for the elements they describe.
#[cold]
pub(crate) unsafe fn largest_magnitude<M: Model>(model: &M, x: &Inputs) -> f32 {
    // SAFETY: this function's contract; the one-lane instantiation needs no target feature.
    unsafe { fold_valid(x, 0f32, |m, a, b, _| m.max(model.magnitude::<f32>(a, b))) }
}

/// The sum of the valid label weights in f64, element by element: for the label weights
/// whose f32 partial sums overflow.
#[cold]
unsafe fn weight_sum_f64(x: &Inputs) -> f64 {
    // SAFETY: the pass's contract.
    unsafe { fold_valid(x, 0f64, |sum, _, _, w| sum + f64::from(w)) }
}

/// `f` folded over the valid elements of `x` (label weight above 0) as `(a, b, w)`, one at a
/// time: the cold scans that the passes' rare cases need.
///
/// # Safety
/// The pointers of `x` are valid for the elements they describe.
unsafe fn fold_valid<T>(x: &Inputs, init: T, mut f: impl FnMut(T, f32, f32, f32) -> T) -> T {
    // SAFETY: every element read is one of a run's (this function's contract).
    unsafe {
        let mut acc = init;
        let mut runs = Runs::new(x, 1);
        while let Some(run) = runs.next() {
            for j in 0..run.len {
                let (a, b, w) = run.element(x, j);
                if w > 0.0 {
                    acc = f(acc, a, b, w);
                }
            }
        }
        acc
    }
}

/// What [`Apply`] needs from a commit: per-region coefficients `lambda * beta_k / tot`, the
/// normaliser `tot`, the output, whether to write it or only to check that every value
/// it would write is finite (a dry run), and whether to sum the loss.
pub(crate) struct Plan<'a> {
    pub coef: &'a [f32; MAX_BINS],
    pub tot: f32,
    pub output: Output,
    pub write: bool,
    pub loss: bool,
}

/// What [`Apply`] found: with [`Plan::loss`] the loss, the sum over valid elements of
/// `coef[k] * term`; without it, whether every value is finite (a plan that sums the loss
/// reports `true`: no caller asks it).
pub(crate) struct Applied {
    pub finite: bool,
    pub loss: f64,
}

/// The writing pass: for element i of region k, `value = coef[k] * dir_i` (or the element
/// weight or loss), 0 where the label weight is 0; `out[i] = scale * value` or `+=`. With
/// `plan.write` false it writes nothing and only reports whether every value is finite.
/// With `plan.loss` it also sums the loss.
///
/// Contract: as for [`Validate`], and `out` is valid for reads and writes at every element
/// of `x` (unless the plan neither writes nor adds: then `out` is not used); `out` may equal
/// `x.a` but must not otherwise overlap the inputs. The inputs have passed [`Validate`] or
/// [`Accumulate`].
pub(crate) struct Apply<'a, M> {
    pub model: &'a M,
    pub bins: &'a Bins,
    pub plan: &'a Plan<'a>,
    pub x: &'a Inputs,
    pub out: *mut f32,
}

impl<M: Model> Pass for Apply<'_, M> {
    type Out = Applied;
    #[inline(always)]
    unsafe fn run<V: Vector>(self) -> Applied {
        // SAFETY: `V`'s target features are enabled and the pointers of the inputs and output are
        // valid for the elements they describe (this function's contract).
        unsafe {
            let Apply {
                model,
                bins,
                plan,
                x,
                out,
            } = self;
            // The one-shot calls' plan (the loss, and the gradient overwritten unscaled or not
            // written) in a loop of its own on the vector paths: its options are then
            // constants, not tests per vector, and no multiplication by 1 lengthens the chain
            // of dependent operations that bounds the loop. It zeroes the invalid lanes'
            // direction, not their product: the same +0 only where no coefficient is negative
            // or -0 (a negative loss weight makes them so).
            #[cfg(not(ghm_unspecialised))]
            if V::LANES > 1 {
                let o = &plan.output;
                let one_shot = o.kind == OutputKind::Gradient
                    && !o.add
                    && o.scale == 1.0
                    && plan.loss
                    && plan.coef.iter().all(|c| c.is_sign_positive());
                if one_shot {
                    return by_shape!(x, S => apply::<V, M, S, true>(model, bins, plan, x, out));
                }
            }
            by_shape!(x, S => apply::<V, M, S, false>(model, bins, plan, x, out))
        }
    }
}

/// The loop of [`Apply`] for runs of shape `S`; with `ONE_SHOT` for a plan that sums the
/// loss and writes the gradient over the output with scale 1, or writes nothing (which the
/// caller has checked).
#[inline(always)]
unsafe fn apply<V: Vector, M: Model, const S: u8, const ONE_SHOT: bool>(
    model: &M,
    bins: &Bins,
    plan: &Plan<'_>,
    x: &Inputs,
    out: *mut f32,
) -> Applied {
    // SAFETY: `V`'s target features are enabled and the pointers of the inputs and output are valid
    // for the elements they describe (this function's contract).
    unsafe {
        // The model and the plan's options by value: loop invariants in registers, not
        // loads after every store to the output.
        let model = *model;
        let model = &model;
        let (kind, add, write, sum_loss) = if ONE_SHOT {
            (OutputKind::Gradient, false, plan.write, true)
        } else {
            (plan.output.kind, plan.output.add, plan.write, plan.loss)
        };
        let zero = V::splat(0.0);
        let scale = V::splat(plan.output.scale);
        let mut finite = zero.le(zero);
        let mut loss = BlockSum::<V>::new();
        let terms = sum_loss || kind == OutputKind::ElementLoss;
        // a run's last, partial vector of outputs
        let mut lanes = [0f32; MAX_LANES];
        let mut runs = Runs::new(x, V::LANES);
        while let Some(mut run) = runs.next() {
            // not dereferenced unless the plan writes or adds (then `out` is valid)
            let dst = out.wrapping_add(run.start);
            let mut j = 0;
            if ONE_SHOT {
                // Four vectors a step, each stage written out for the four before the next:
                // the loop is bound by the latency of each vector's chain of dependent
                // operations (exp, division, region, coefficient), and an out-of-order core
                // overlaps several chains only when their operations come close together
                // (AVX2 on a Zen 5: two vectors a step took 4% less time than one, three 9%,
                // four 14%; the same written with arrays and loops, 9%). Loads and the loss
                // in order: the same results as one vector a step.
                //
                // Background steps (targets 0, every lane valid: most of a detector's
                // class-index rows, whose rows' weights, if any, are all above 0) take the
                // logits alone, and the step is compiled for them, without the targets, the
                // weights and the valid-lane selects.
                let l = V::LANES;
                let mut background = if S != VALUES { run.background() } else { None };
                while j + 4 * l <= run.len {
                    if background
                        .as_mut()
                        .is_some_and(|bg| run.in_background(bg, j, 4 * l))
                    {
                        let a = x.a.add(run.start + j);
                        let a = [
                            V::load(a),
                            V::load(a.add(l)),
                            V::load(a.add(2 * l)),
                            V::load(a.add(3 * l)),
                        ];
                        step4(
                            model,
                            bins,
                            plan.coef,
                            a,
                            [zero; 4],
                            None,
                            &mut loss,
                            write,
                            dst.wrapping_add(j),
                        );
                    } else {
                        let (a0, b0, w0, _) = run.load_as::<V, S>(x, j);
                        let (a1, b1, w1, _) = run.load_as::<V, S>(x, j + l);
                        let (a2, b2, w2, _) = run.load_as::<V, S>(x, j + 2 * l);
                        let (a3, b3, w3, _) = run.load_as::<V, S>(x, j + 3 * l);
                        let (a, b) = ([a0, a1, a2, a3], [b0, b1, b2, b3]);
                        let valid = [zero.lt(w0), zero.lt(w1), zero.lt(w2), zero.lt(w3)];
                        step4(
                            model,
                            bins,
                            plan.coef,
                            a,
                            b,
                            Some(valid),
                            &mut loss,
                            write,
                            dst.wrapping_add(j),
                        );
                    }
                    j += 4 * l;
                }
            }
            while j < run.len {
                let (a, b, w, _) = run.load_as::<V, S>(x, j);
                let (dir, term) = if terms {
                    model.forward(a, b)
                } else {
                    (model.direction(a, b), zero)
                };
                let valid = zero.lt(w);
                // always the lookup: a branch on whether a vector is all in one region
                // mispredicts wherever the regions are mixed
                let c = bins.index(dir.abs()).lookup(plan.coef, bins.len());
                if sum_loss {
                    loss.add(V::select(valid, c.mul(term), zero));
                }
                // (with ONE_SHOT, the invalid lanes' zeros selected off the chain
                // from the coefficient: the coefficients are finite and +0 or more, so 0
                // times one is +0)
                let v = match kind {
                    OutputKind::Gradient if ONE_SHOT => c.mul(V::select(valid, dir, zero)),
                    OutputKind::Gradient => c.mul(dir),
                    OutputKind::ElementWeight => c,
                    OutputKind::ElementLoss => c.mul(V::splat(plan.tot)).mul(term),
                };
                let v = if ONE_SHOT {
                    v
                } else {
                    V::select(valid, v.mul(scale), zero)
                };
                // a full vector's outputs in place; a run's last, partial one through `lanes`
                let full_vector = V::LANES == 1 || j + V::LANES <= run.len;
                let d = if full_vector {
                    dst.wrapping_add(j)
                } else {
                    let part = run.len - j;
                    if add {
                        tail_in(&mut lanes, dst.add(j), part);
                    }
                    lanes.as_mut_ptr()
                };
                let v = if add { V::load(d).add(v) } else { v };
                if !write {
                    if !ONE_SHOT {
                        finite = finite.and(v.abs().lt(V::splat(f32::INFINITY)));
                    }
                } else {
                    v.store(d);
                    if !full_vector {
                        tail_out(&lanes, dst.add(j), run.len - j);
                    }
                }
                j += V::LANES;
            }
        }
        Applied {
            finite: finite.bitmask() == full::<V>(),
            loss: loss.total(),
        }
    }
}

/// Four vectors of [`apply`]'s one-shot loop: logits `a`, targets `b` and, with
/// `valid_lanes`, the masks of their valid lanes (without, every lane is valid); adds the
/// loss to `loss` in order and, with `write`, stores the gradient at `dst`.
///
/// The coefficients are finite and +0 or more (the one-shot plan's), so that an invalid
/// lane's product with its zeroed direction is +0.
///
/// # Safety
/// `V`'s target features are enabled; with `write`, `dst` is valid for writes of
/// `4 * V::LANES` f32.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
unsafe fn step4<V: Vector, M: Model>(
    model: &M,
    bins: &Bins,
    coef: &[f32; MAX_BINS],
    a: [V; 4],
    b: [V; 4],
    valid_lanes: Option<[V; 4]>,
    loss: &mut BlockSum<V>,
    write: bool,
    dst: *mut f32,
) {
    // SAFETY: this function's contract.
    unsafe {
        let l = V::LANES;
        let (dir0, term0) = model.forward(a[0], b[0]);
        let (dir1, term1) = model.forward(a[1], b[1]);
        let (dir2, term2) = model.forward(a[2], b[2]);
        let (dir3, term3) = model.forward(a[3], b[3]);
        let c0 = bins.index(dir0.abs()).lookup(coef, bins.len());
        let c1 = bins.index(dir1.abs()).lookup(coef, bins.len());
        let c2 = bins.index(dir2.abs()).lookup(coef, bins.len());
        let c3 = bins.index(dir3.abs()).lookup(coef, bins.len());
        // the invalid lanes' terms and directions zeroed (the coefficients are finite and
        // +0 or more: 0 times one is +0)
        loss.add(keep_valid(c0.mul(term0), valid_lanes, 0));
        loss.add(keep_valid(c1.mul(term1), valid_lanes, 1));
        loss.add(keep_valid(c2.mul(term2), valid_lanes, 2));
        loss.add(keep_valid(c3.mul(term3), valid_lanes, 3));
        if write {
            c0.mul(keep_valid(dir0, valid_lanes, 0)).store(dst);
            c1.mul(keep_valid(dir1, valid_lanes, 1)).store(dst.add(l));
            c2.mul(keep_valid(dir2, valid_lanes, 2))
                .store(dst.add(2 * l));
            c3.mul(keep_valid(dir3, valid_lanes, 3))
                .store(dst.add(3 * l));
        }
    }
}

/// `v` in the lanes where mask `k` of `masks` is true, else 0 (`v` itself without masks).
///
/// # Safety
/// `V`'s target features are enabled.
#[inline(always)]
unsafe fn keep_valid<V: Vector>(v: V, masks: Option<[V; 4]>, k: usize) -> V {
    // SAFETY: this function's contract.
    unsafe {
        match masks {
            Some(m) => V::select(m[k], v, V::splat(0.0)),
            None => v,
        }
    }
}

/// Copies the `part` outputs of a run's last, partial vector from `src` into `lanes`, and
/// zeroes the rest. Out of line: the loop's set-up for it would otherwise run per vector.
///
/// # Safety
/// `src` is valid for reads of `part` f32, `part < MAX_LANES`.
#[inline(never)]
#[cold]
unsafe fn tail_in(lanes: &mut [f32; MAX_LANES], src: *const f32, part: usize) {
    *lanes = [0f32; MAX_LANES];
    for (l, o) in lanes.iter_mut().enumerate().take(part) {
        // SAFETY: `l < part` (this function's contract)
        *o = unsafe { *src.add(l) };
    }
}

/// Copies the first `part` values of `lanes` to `dst`, the outputs of a run's last,
/// partial vector.
///
/// # Safety
/// `dst` is valid for writes of `part` f32, `part < MAX_LANES`.
#[inline(never)]
#[cold]
unsafe fn tail_out(lanes: &[f32; MAX_LANES], dst: *mut f32, part: usize) {
    for (l, o) in lanes.iter().enumerate().take(part) {
        // SAFETY: `l < part` (this function's contract)
        unsafe { *dst.add(l) = *o };
    }
}

/// A plain (not harmonized) loss in one pass, with the same per-element math: the sum of
/// the terms, and `out[i] = scale * dir_i` (for BCE-with-logits `sigmoid(x_i) - t_i`, for
/// ASL1 `d_i / sqrt(d_i^2 + mu^2)`). Inputs are not validated. It exists as a baseline for
/// the benchmarks: what the loss costs without harmonizing.
///
/// Contract: `a` and `b` are valid for reads and `out` for writes of `n` f32.
pub(crate) struct Plain<'m, M> {
    pub model: &'m M,
    pub a: *const f32,
    pub b: *const f32,
    pub n: usize,
    pub scale: f32,
    pub out: *mut f32,
}

impl<M: Model> Pass for Plain<'_, M> {
    type Out = f64;
    #[inline(always)]
    unsafe fn run<V: Vector>(self) -> f64 {
        // SAFETY: `V`'s target features are enabled and the pointers of the inputs and output are
        // valid for the elements they describe (this function's contract).
        unsafe {
            let Plain {
                model,
                a,
                b,
                n,
                scale,
                out,
            } = self;
            let mut sum = BlockSum::<V>::new();
            let mut i = 0;
            while i + V::LANES <= n {
                let (dir, term) = model.forward(V::load(a.add(i)), V::load(b.add(i)));
                sum.add(term);
                dir.mul(V::splat(scale)).store(out.add(i));
                i += V::LANES;
            }
            let mut tail = BlockSum::<f32>::new();
            for j in i..n {
                let (dir, term) = model.forward(*a.add(j), *b.add(j));
                tail.add(term);
                *out.add(j) = dir * scale;
            }
            sum.total() + tail.total()
        }
    }
}
