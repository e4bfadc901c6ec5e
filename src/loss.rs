//! The safe Rust API: [`GhmC`] and [`GhmR`], one type generic over the loss, and the
//! application of committed [`RegionWeights`].
//!
//! A call harmonizes one batch in three phases, which the one-shot methods run in a row:
//! 1. `accumulate` (read-only, any number of chunks, any thread): validate and add each
//!    chunk's per-region counts and loss sums to a [`Stats`] (counting stats: counts only);
//! 2. `commit` (once per batch, on the state): the EMA step; yields [`RegionWeights`] and
//!    the loss (not for counting stats);
//! 3. `apply` (read-only on the region weights, any chunk, any thread): write gradients;
//!    `apply_loss` also returns the chunk's share of the loss (what counting stats need).
//!
//! This layer checks slices and lengths, builds the kernels' inputs and passes, and runs
//! them through `arch::run`; the state logic is the state's, the arithmetic the kernels'.

use core::marker::PhantomData;

use crate::arch::{self, Isa};
use crate::config::{
    Config, Kind, MAX_BINS, OPT_GRADIENT_INPUT, OPT_NORM_BY_POSITIVES, OPT_PROBABILITY_INPUT,
};
use crate::error::Error;
use crate::io::{ClassLayout, Output};
use crate::kernel::{
    largest_magnitude, Accumulate, Apply, Asl1, Bce, Bins, Inputs, Model, Plan, Targets, Validate,
    VECTOR_PATHS,
};
use crate::state::{Counts, RegionWeights, State, Stats, Tally};

mod sealed {
    pub trait Sealed {}
}

/// Evaluates `$body` with `$m` bound to the per-element model of loss `$kind` configured by
/// `$config`: the one place a kind becomes a kernel model. With a constant kind (`L::KIND`)
/// the other arm is dead code, so a program that uses one loss links one loss's kernels.
macro_rules! with_model {
    ($kind:expr, $config:expr, |$m:ident| $body:expr) => {
        match $kind {
            Kind::Classification => {
                let $m = &Bce {
                    probabilities: $config.options & OPT_PROBABILITY_INPUT != 0,
                    gradient: $config.options & OPT_GRADIENT_INPUT != 0,
                    positives: $config.options & OPT_NORM_BY_POSITIVES != 0,
                };
                $body
            }
            Kind::Regression => {
                let $m = &Asl1::new($config.mu);
                $body
            }
        }
    };
}

/// The loss a [`Ghm`] computes: [`Classification`] (GHM-C) or [`Regression`] (GHM-R).
pub trait Loss: sealed::Sealed {
    /// The loss's kind, as recorded in its [`State`].
    const KIND: Kind;
}

/// GHM-C: inputs are logits `a` and targets `b` in [0, 1].
#[derive(Debug)]
pub enum Classification {}
/// GHM-R: inputs are predictions `a` and regression targets `b`.
#[derive(Debug)]
pub enum Regression {}

impl sealed::Sealed for Classification {}
impl sealed::Sealed for Regression {}
impl Loss for Classification {
    const KIND: Kind = Kind::Classification;
}
impl Loss for Regression {
    const KIND: Kind = Kind::Regression;
}

/// Gradient-harmonized sigmoid binary cross-entropy.
pub type GhmC = Ghm<Classification>;
/// Gradient-harmonized authentic smooth L1.
pub type GhmR = Ghm<Regression>;

/// A GHM loss with its state (configuration and EMA of the region counts).
///
/// Each one-shot call computes the loss (mean reduction, times `loss_weight`) over one
/// batch, updates the EMA, and optionally writes the gradient with respect to the first
/// input. A call that returns an error changes nothing: neither the state nor any output.
///
/// Inputs: `a` (GHM-C: logits, GHM-R: predictions) and `b` (GHM-C: targets in [0, 1],
/// GHM-R: regression targets) of equal length, and optional label weights of the same
/// length (`None`: all valid). An element with weight 0 is ignored; GHM-C uses only whether a
/// weight is positive, GHM-R also sums the weights for the normaliser, as the reference does.
pub struct Ghm<L: Loss> {
    state: State,
    isa: Isa,
    _loss: PhantomData<L>,
}

// Written out rather than derived: derives would require the marker `L` itself to be Clone.
impl<L: Loss> Clone for Ghm<L> {
    fn clone(&self) -> Self {
        Ghm {
            state: self.state,
            isa: self.isa,
            _loss: PhantomData,
        }
    }
}

impl<L: Loss> PartialEq for Ghm<L> {
    fn eq(&self, other: &Self) -> bool {
        self.state == other.state && self.isa == other.isa
    }
}

impl<L: Loss> core::fmt::Debug for Ghm<L> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Ghm")
            .field("kind", &L::KIND)
            .field("state", &self.state)
            .field("isa", &self.isa)
            .finish()
    }
}

impl<L: Loss> Default for Ghm<L> {
    /// The reference's defaults (`GHMC()` or `GHMR()`).
    fn default() -> Self {
        Self::wrap(State::default_for(L::KIND))
    }
}

impl<L: Loss> Ghm<L> {
    /// A loss with a fresh state; [`Error::Config`] if a field is out of range.
    pub fn new(config: Config) -> Result<Self, Error> {
        Ok(Self::wrap(State::new(L::KIND, &config)?))
    }

    /// Resumes from a saved state (a checkpoint); [`Error::State`] if it is corrupted,
    /// [`Error::WrongLoss`] if it belongs to the other loss.
    pub fn from_state(state: State) -> Result<Self, Error> {
        state.check(L::KIND)?;
        Ok(Self::wrap(state))
    }

    fn wrap(state: State) -> Self {
        Ghm {
            state,
            isa: Isa::Auto,
            _loss: PhantomData,
        }
    }

    /// The state, to save in a checkpoint.
    pub fn state(&self) -> &State {
        &self.state
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        self.state.config()
    }

    /// Forces an instruction-set path for this loss's following calls, one-shot and
    /// accumulate ([`Isa::Auto`] by default); [`Error::Isa`] if this CPU cannot run it.
    /// ([`RegionWeights::apply`] always takes the fastest path.)
    pub fn set_isa(&mut self, isa: Isa) -> Result<(), Error> {
        if !isa.is_available() {
            return Err(Error::Isa);
        }
        self.isa = isa;
        Ok(())
    }

    /// Empty stats for this loss's batch, whose loss the commit returns.
    pub fn stats(&self) -> Stats {
        Stats::new(L::KIND, self.config().bins, false)
    }

    /// Empty counting stats for this loss's batch: accumulate only counts into them (about
    /// half the work of summing the loss terms too); the commit then has no loss, and the
    /// batch's loss is the sum of what [`RegionWeights::apply_loss`] returns for its chunks.
    /// The fast way to split a batch over threads.
    pub fn counting_stats(&self) -> Stats {
        Stats::new(L::KIND, self.config().bins, true)
    }

    /// Phase 1: validates a chunk and adds its counts, loss sums (not into counting stats)
    /// and label weights to `stats` (only on success). Read-only on the loss.
    pub fn accumulate(
        &self,
        stats: &mut Stats,
        a: &[f32],
        b: &[f32],
        label_weights: Option<&[f32]>,
    ) -> Result<(), Error> {
        self.accumulate_values(stats, a, Some(b), label_weights)
    }

    /// [`accumulate`](Self::accumulate), or with `b` `None` for targets 0 (GHM-R residuals).
    pub(crate) fn accumulate_values(
        &self,
        stats: &mut Stats,
        a: &[f32],
        b: Option<&[f32]>,
        label_weights: Option<&[f32]>,
    ) -> Result<(), Error> {
        let x = elementwise(a, b, label_weights)?;
        // SAFETY: the pointers come from slices of length x.n.
        unsafe { self.accumulate_inputs(stats, &x) }
    }

    /// Phase 2: updates the EMA once from `stats` (any number of accumulated and merged
    /// chunks, or counts filled by the caller) and returns the region weights, which also
    /// hold the batch's loss unless the stats were counting ([`RegionWeights::loss`]).
    pub fn commit(&mut self, stats: &Stats) -> Result<RegionWeights, Error> {
        self.state.commit(stats, false)
    }

    /// The loss of one batch, updating the EMA; no gradient.
    pub fn loss(
        &mut self,
        a: &[f32],
        b: &[f32],
        label_weights: Option<&[f32]>,
    ) -> Result<f32, Error> {
        self.loss_values(a, Some(b), label_weights)
    }

    /// [`loss`](Self::loss), or with `b` `None` for targets 0 (GHM-C gradient input).
    pub(crate) fn loss_values(
        &mut self,
        a: &[f32],
        b: Option<&[f32]>,
        label_weights: Option<&[f32]>,
    ) -> Result<f32, Error> {
        self.in_place().loss_values(a, b, label_weights)
    }

    /// The loss of one batch, updating the EMA, and its gradient with respect to `a`
    /// written to `grad` (same length as `a`).
    pub fn loss_grad(
        &mut self,
        a: &[f32],
        b: &[f32],
        label_weights: Option<&[f32]>,
        grad: &mut [f32],
    ) -> Result<f32, Error> {
        self.loss_grad_values(a, Some(b), label_weights, grad)
    }

    /// [`loss_grad`](Self::loss_grad), or with `b` `None` for targets 0.
    pub(crate) fn loss_grad_values(
        &mut self,
        a: &[f32],
        b: Option<&[f32]>,
        label_weights: Option<&[f32]>,
        grad: &mut [f32],
    ) -> Result<f32, Error> {
        self.in_place().loss_grad_values(a, b, label_weights, grad)
    }

    /// As [`loss_grad`](Self::loss_grad), with the gradient written over `a` itself.
    pub fn loss_grad_in_place(
        &mut self,
        a: &mut [f32],
        b: &[f32],
        label_weights: Option<&[f32]>,
    ) -> Result<f32, Error> {
        self.loss_grad_in_place_values(a, Some(b), label_weights)
    }

    /// [`loss_grad_in_place`](Self::loss_grad_in_place), or with `b` `None` for targets 0.
    pub(crate) fn loss_grad_in_place_values(
        &mut self,
        a: &mut [f32],
        b: Option<&[f32]>,
        label_weights: Option<&[f32]>,
    ) -> Result<f32, Error> {
        self.in_place()
            .loss_grad_in_place_values(a, b, label_weights)
    }

    /// The one-shot calls' view of this loss: its state, borrowed.
    fn in_place(&mut self) -> InPlace<'_, L> {
        InPlace {
            state: &mut self.state,
            isa: self.isa,
            _loss: PhantomData,
        }
    }

    /// Phase 1 on the kernels: counts, label weights and (unless `stats` are counting) loss
    /// terms (see [`Accumulate`]).
    ///
    /// # Safety
    /// The pointers of `x` are valid for reads of the lengths they describe.
    pub(crate) unsafe fn accumulate_inputs(
        &self,
        stats: &mut Stats,
        x: &Inputs,
    ) -> Result<(), Error> {
        stats.check(L::KIND, self.config().bins)?;
        let (config, isa) = (self.config(), self.isa);
        let mut counts = Counts::EMPTY;
        // SAFETY (both arms): the caller's contract.
        if stats.is_counting() {
            unsafe { accumulate_pass::<L, false>(config, isa, &mut counts, None, x)? };
            counts.add_to(None, stats);
        } else {
            let mut loss_sum = [0.0; MAX_BINS];
            let sums = Some(&mut loss_sum);
            unsafe { accumulate_pass::<L, true>(config, isa, &mut counts, sums, x)? };
            counts.add_to(Some(&loss_sum), stats);
        }
        Ok(())
    }
}

/// A loss's one-shot calls on a state it borrows, updated in place on success: what a
/// [`Ghm`] runs on its own state, and the C API on the caller's (with no copy of the state
/// in between: the Cortex-M stack figures).
pub(crate) struct InPlace<'s, L: Loss> {
    state: &'s mut State,
    isa: Isa,
    _loss: PhantomData<L>,
}

impl<'s, L: Loss> InPlace<'s, L> {
    /// The caller's `state`, with the fastest instruction set; [`Error::State`] or
    /// [`Error::WrongLoss`] unless it is an intact state of loss `L`.
    pub(crate) fn new(state: &'s mut State) -> Result<Self, Error> {
        state.check(L::KIND)?;
        Ok(InPlace {
            state,
            isa: Isa::Auto,
            _loss: PhantomData,
        })
    }

    /// The configuration.
    pub(crate) fn config(&self) -> &Config {
        self.state.config()
    }

    /// [`Ghm::loss`], or with `b` `None` for targets 0 (GHM-C gradient input).
    pub(crate) fn loss_values(
        self,
        a: &[f32],
        b: Option<&[f32]>,
        label_weights: Option<&[f32]>,
    ) -> Result<f32, Error> {
        let x = elementwise(a, b, label_weights)?;
        // SAFETY: the pointers come from slices of length x.n; no output.
        unsafe { self.one_shot(&x, None) }
    }

    /// [`Ghm::loss_grad`], or with `b` `None` for targets 0.
    pub(crate) fn loss_grad_values(
        self,
        a: &[f32],
        b: Option<&[f32]>,
        label_weights: Option<&[f32]>,
        grad: &mut [f32],
    ) -> Result<f32, Error> {
        let x = elementwise(a, b, label_weights)?;
        if grad.len() != x.n {
            return Err(Error::Length);
        }
        // SAFETY: slices of length x.n; `grad` is a distinct mutable borrow.
        unsafe { self.one_shot(&x, Some(grad.as_mut_ptr())) }
    }

    /// [`Ghm::loss_grad_in_place`], or with `b` `None` for targets 0.
    pub(crate) fn loss_grad_in_place_values(
        self,
        a: &mut [f32],
        b: Option<&[f32]>,
        label_weights: Option<&[f32]>,
    ) -> Result<f32, Error> {
        let mut x = elementwise(a, b, label_weights)?;
        let out = a.as_mut_ptr();
        x.a = out;
        // SAFETY: as for loss_grad; the output is exactly `x.a`, which the passes allow.
        unsafe { self.one_shot(&x, Some(out)) }
    }

    /// The one-shot call: accumulate, commit, apply the gradient; the state is written last.
    ///
    /// # Safety
    /// The pointers of `x` are valid for reads of the lengths they describe, the gradient
    /// (if any) for reads and writes at every element of `x`, and it is either `x.a` or
    /// overlaps no input.
    ///
    /// The loss is taken in the second pass, where each region's coefficient is known, so
    /// the first pass only counts (see [`Accumulate`]); without a gradient the second pass
    /// writes nothing, and the loss is the same as with one, bit for bit.
    unsafe fn one_shot(mut self, x: &Inputs, grad: Option<*mut f32>) -> Result<f32, Error> {
        let mut counts = Counts::EMPTY;
        // SAFETY: the caller's contract.
        let magnitude = unsafe {
            accumulate_pass::<L, false>(self.state.config(), self.isa, &mut counts, None, x)?
        };
        // SAFETY: the caller's contract; the inputs passed accumulate.
        unsafe { self.finish(&counts, magnitude, x, grad) }
    }

    /// The rest of a one-shot call after its first pass, given its `counts` and its bound
    /// `magnitude` on the valid elements' magnitudes: weighs the counts, runs the second
    /// pass (which sums the loss), and only then advances the state. The loss must be known
    /// finite before a gradient is written: a bound from `magnitude` shows it, or else a
    /// scaled run that writes nothing decides ([`checked_loss`]; rare: inputs near f32's
    /// range): a total of 2^125 or more is taken from it, a smaller one is summed unscaled
    /// by the second pass. Its own frame: the weights are not in the frame the first pass
    /// nests in (the Cortex-M stack figures).
    ///
    /// # Safety
    /// As for [`one_shot`](Self::one_shot), and `x` passed the first pass.
    #[inline(never)]
    unsafe fn finish(
        &mut self,
        counts: &Counts,
        magnitude: f32,
        x: &Inputs,
        grad: Option<*mut f32>,
    ) -> Result<f32, Error> {
        let tally = Tally::Pass(counts);
        let mut weights = RegionWeights::UNSET;
        self.state.weigh(tally, &mut weights)?;
        let (isa, config) = (self.isa, *self.config());
        let loss = with_model!(L::KIND, config, |model| {
            // the loss is at most the sum of |coefficient| x count over the regions in
            // use, times the largest term
            let bound = |term: f64| {
                let regions = weights.coef_table().iter().zip(&counts.count);
                let weighted = regions.take(config.bins as usize);
                weighted
                    .map(|(&c, &r)| f64::from(c.abs()) * r as f64)
                    .sum::<f64>()
                    * term
            };
            // A loss the bound cannot show finite (inputs near f32's range) is decided first,
            // without writing anything (`None`: small, summed by the second pass).
            // SAFETY: the caller's contract.
            let known = if unsafe { loss_bounded(model, x, magnitude, bound) } {
                None
            } else {
                // SAFETY: the caller's contract.
                unsafe { checked_loss(model, isa, &weights, x)? }
            };
            // SAFETY (both second passes): the caller's contract.
            match known {
                None => unsafe { second_pass(model, isa, &weights, x, grad, true)? },
                Some(loss) => {
                    if grad.is_some() {
                        unsafe { second_pass(model, isa, &weights, x, grad, false)? };
                    }
                    loss
                }
            }
        }) as f32;
        self.state.advance(tally);
        Ok(loss)
    }
}

impl InPlace<'_, Classification> {
    /// The one-shot call with class-index targets (see [`Ghm::accumulate_labels`]): the
    /// loss, and with `grad` the gradient (same length and layout as `logits`; only the
    /// layout's elements are written).
    pub(crate) fn loss_labels(
        self,
        logits: &[f32],
        layout: ClassLayout,
        labels: &[i32],
        anchor_weights: Option<&[f32]>,
        grad: Option<&mut [f32]>,
    ) -> Result<f32, Error> {
        labels_allowed(self.config())?;
        let x = class_index(logits, layout, labels, anchor_weights)?;
        let out = match grad {
            Some(g) if g.len() != logits.len() => return Err(Error::Length),
            Some(g) => Some(g.as_mut_ptr()),
            None => None,
        };
        // SAFETY: slices of checked lengths; `grad` is a distinct mutable borrow of the same
        // length as `logits`, written only at the layout's elements.
        unsafe { self.one_shot(&x, out) }
    }
}

/// Phase 1 on the kernels, into `counts` (which must be [`Counts::EMPTY`]) and, with
/// `TERMS`, `loss_sum` (which must then be given, holding zeros); without `TERMS` counts
/// only and returns its bound on the valid elements' magnitudes (see [`Accumulate`]).
///
/// # Safety
/// The pointers of `x` are valid for reads of the lengths they describe.
// Not inlined: its count tables would otherwise stay in the caller's frame while the
// commit runs (the Cortex-M stack figures).
#[inline(never)]
unsafe fn accumulate_pass<L: Loss, const TERMS: bool>(
    config: &Config,
    isa: Isa,
    counts: &mut Counts,
    loss_sum: Option<&mut [f64; MAX_BINS]>,
    x: &Inputs,
) -> Result<f32, Error> {
    let bins = &Bins::new(config.bins);
    with_model!(L::KIND, config, |model| {
        let pass = Accumulate::<_, TERMS> {
            model,
            bins,
            x,
            counts,
            loss_sum,
        };
        // SAFETY: the caller's contract.
        unsafe { arch::run(isa, pass)? }
    })
}

impl Ghm<Classification> {
    /// Phase 1 for class-index targets: `logits` laid out as `layout` (for mmdetection's
    /// `[anchors][classes]`, `ClassLayout::rows(anchors, classes)`; for a Darknet yolo layer,
    /// `ClassLayout::planes(h * w, classes).batched(..)`), `labels` `layout.labels_per_anchor`
    /// per anchor (a label in `[0, classes)` makes that class's target 1; any other value,
    /// such as `classes` for background or -1, names no class; classes no label names have
    /// target 0), and `anchor_weights` one per anchor (`None`: all valid), applying to all its
    /// classes. Refused ([`Error::Config`]) with [`OPT_GRADIENT_INPUT`], whose inputs are not
    /// logits.
    pub fn accumulate_labels(
        &self,
        stats: &mut Stats,
        logits: &[f32],
        layout: ClassLayout,
        labels: &[i32],
        anchor_weights: Option<&[f32]>,
    ) -> Result<(), Error> {
        labels_allowed(self.config())?;
        let x = class_index(logits, layout, labels, anchor_weights)?;
        // SAFETY: the pointers come from slices of the lengths `class_index` checked.
        unsafe { self.accumulate_inputs(stats, &x) }
    }

    /// Phase 1 with [`OPT_GRADIENT_INPUT`]: `d = p - t` in [-1, 1] per element, no targets.
    /// [`Error::Config`] for a loss configured without that option.
    pub fn accumulate_gradient(
        &self,
        stats: &mut Stats,
        d: &[f32],
        label_weights: Option<&[f32]>,
    ) -> Result<(), Error> {
        if self.config().options & OPT_GRADIENT_INPUT == 0 {
            return Err(Error::Config);
        }
        self.accumulate_values(stats, d, None, label_weights)
    }

    /// One-shot GHM-C with class-index targets (see
    /// [`accumulate_labels`](Self::accumulate_labels)): the loss, and the gradient with
    /// respect to the logits written to `grad` (same length and layout as `logits`; only
    /// the layout's elements are written).
    pub fn loss_grad_labels(
        &mut self,
        logits: &[f32],
        layout: ClassLayout,
        labels: &[i32],
        anchor_weights: Option<&[f32]>,
        grad: &mut [f32],
    ) -> Result<f32, Error> {
        self.in_place()
            .loss_labels(logits, layout, labels, anchor_weights, Some(grad))
    }
}

impl Ghm<Regression> {
    /// Phase 1 given the residuals `d = pred - target` directly.
    pub fn accumulate_residual(
        &self,
        stats: &mut Stats,
        d: &[f32],
        label_weights: Option<&[f32]>,
    ) -> Result<(), Error> {
        self.accumulate_values(stats, d, None, label_weights)
    }
}

impl RegionWeights {
    /// Phase 3: writes one value per element of a chunk (`out`, same length as `a`): by
    /// default the gradient with respect to `a`. Validates the chunk first; read-only on the
    /// region weights, so any number of threads may apply the same ones at once.
    pub fn apply(
        &self,
        a: &[f32],
        b: &[f32],
        label_weights: Option<&[f32]>,
        output: Output,
        out: &mut [f32],
    ) -> Result<(), Error> {
        self.apply_values(a, Some(b), label_weights, output, Dest::Output(out))
            .map(drop)
    }

    /// As [`apply`](Self::apply), writing over `a` itself.
    pub fn apply_in_place(
        &self,
        a: &mut [f32],
        b: &[f32],
        label_weights: Option<&[f32]>,
        output: Output,
    ) -> Result<(), Error> {
        self.apply_values_in_place(a, Some(b), label_weights, output, false)
            .map(drop)
    }

    /// As [`apply`](Self::apply) for GHM-R given the residuals, or for GHM-C with
    /// [`OPT_GRADIENT_INPUT`] given `d = p - t` (no targets).
    pub fn apply_residual(
        &self,
        d: &[f32],
        label_weights: Option<&[f32]>,
        output: Output,
        out: &mut [f32],
    ) -> Result<(), Error> {
        self.apply_values(d, None, label_weights, output, Dest::Output(out))
            .map(drop)
    }

    /// As [`apply`](Self::apply) for class-index targets (see [`Ghm::accumulate_labels`]).
    pub fn apply_labels(
        &self,
        logits: &[f32],
        layout: ClassLayout,
        labels: &[i32],
        anchor_weights: Option<&[f32]>,
        output: Output,
        out: &mut [f32],
    ) -> Result<(), Error> {
        let dest = Dest::Output(out);
        self.apply_class_index(logits, layout, labels, anchor_weights, output, dest)
            .map(drop)
    }

    /// As [`apply`](Self::apply) (`out` `None`: nothing written), and returns the chunk's
    /// share of the batch's loss: the sum over its valid elements of each one's loss term
    /// times its region's coefficient (mean-reduced, times loss_weight). The shares of a
    /// batch's chunks add up to its loss, to rounding; one chunk that is the whole batch
    /// gets the loss a one-shot call returns on the same path, bit for bit (as f32). With
    /// weights committed from counting stats ([`Ghm::counting_stats`]), this is how the
    /// loss is had. [`Error::Overflow`] if the share is no finite `f32` (then neither is the
    /// batch's loss).
    pub fn apply_loss(
        &self,
        a: &[f32],
        b: &[f32],
        label_weights: Option<&[f32]>,
        output: Output,
        out: Option<&mut [f32]>,
    ) -> Result<f64, Error> {
        self.apply_values(a, Some(b), label_weights, output, Dest::Share(out))
    }

    /// As [`apply_loss`](Self::apply_loss) given residuals or gradient inputs (see
    /// [`apply_residual`](Self::apply_residual)).
    pub fn apply_residual_loss(
        &self,
        d: &[f32],
        label_weights: Option<&[f32]>,
        output: Output,
        out: Option<&mut [f32]>,
    ) -> Result<f64, Error> {
        self.apply_values(d, None, label_weights, output, Dest::Share(out))
    }

    /// As [`apply_loss`](Self::apply_loss) for class-index targets (see
    /// [`apply_labels`](Self::apply_labels)).
    pub fn apply_labels_loss(
        &self,
        logits: &[f32],
        layout: ClassLayout,
        labels: &[i32],
        anchor_weights: Option<&[f32]>,
        output: Output,
        out: Option<&mut [f32]>,
    ) -> Result<f64, Error> {
        let dest = Dest::Share(out);
        self.apply_class_index(logits, layout, labels, anchor_weights, output, dest)
    }

    /// The element-wise applies given `a` and `b` (`None`: targets 0), into `dest`; the
    /// chunk's loss share for [`Dest::Share`] (else 0).
    pub(crate) fn apply_values(
        &self,
        a: &[f32],
        b: Option<&[f32]>,
        label_weights: Option<&[f32]>,
        output: Output,
        dest: Dest,
    ) -> Result<f64, Error> {
        let x = elementwise(a, b, label_weights)?;
        let (out, loss) = dest.output(x.n)?;
        // SAFETY: slices of length x.n; `out` is a distinct mutable borrow of that length, or
        // null.
        unsafe { self.apply_inputs(&x, output, out, loss) }
    }

    /// As [`apply_values`](Self::apply_values) with the output over `a` itself.
    pub(crate) fn apply_values_in_place(
        &self,
        a: &mut [f32],
        b: Option<&[f32]>,
        label_weights: Option<&[f32]>,
        output: Output,
        loss: bool,
    ) -> Result<f64, Error> {
        let mut x = elementwise(a, b, label_weights)?;
        let out = a.as_mut_ptr();
        x.a = out;
        // SAFETY: slices of length x.n; the output is exactly `x.a`, which the passes allow.
        unsafe { self.apply_inputs(&x, output, out, loss) }
    }

    /// The class-index applies, into `dest` (the logits' length); the chunk's loss share
    /// for [`Dest::Share`] (else 0).
    pub(crate) fn apply_class_index(
        &self,
        logits: &[f32],
        layout: ClassLayout,
        labels: &[i32],
        anchor_weights: Option<&[f32]>,
        output: Output,
        dest: Dest,
    ) -> Result<f64, Error> {
        self.check(Kind::Classification)?;
        labels_allowed(self.config())?;
        let x = class_index(logits, layout, labels, anchor_weights)?;
        let (out, loss) = dest.output(logits.len())?;
        // SAFETY: slices of checked lengths; `out` is a distinct mutable borrow of the logits'
        // length, written only at the layout's elements, or null.
        unsafe { self.apply_inputs(&x, output, out, loss) }
    }

    /// Checks the region weights and the output, validates the inputs, then applies, on the
    /// fastest path; with `loss`, returns the chunk's loss (else 0). `out` NULL: nothing is
    /// written or read there (`output` is not used; only the loss is of use).
    ///
    /// # Safety
    /// As for [`InPlace::one_shot`], with `out` for the gradient, or NULL.
    unsafe fn apply_inputs(
        &self,
        x: &Inputs,
        output: Output,
        out: *mut f32,
        loss: bool,
    ) -> Result<f64, Error> {
        // intact weights first: resolving the output reads `tot`
        let kind = self.kind()?;
        let output = self.resolve(output)?;
        // SAFETY (both arms): the caller's contract.
        match kind {
            Kind::Classification => unsafe {
                apply_pass::<Classification>(Isa::Auto, self, x, output, out, loss)
            },
            Kind::Regression => unsafe {
                apply_pass::<Regression>(Isa::Auto, self, x, output, out, loss)
            },
        }
    }
}

/// Where an apply writes: its output into a buffer, or the chunk's loss share, with the
/// output too if a buffer is given.
pub(crate) enum Dest<'o> {
    Output(&'o mut [f32]),
    Share(Option<&'o mut [f32]>),
}

impl Dest<'_> {
    /// The output pointer (null: none) and whether the loss is summed, for a buffer that
    /// must hold `n` floats; [`Error::Length`] if it does not.
    fn output(self, n: usize) -> Result<(*mut f32, bool), Error> {
        let (out, loss) = match self {
            Dest::Output(o) => (Some(o), false),
            Dest::Share(o) => (o, true),
        };
        match out {
            Some(o) if o.len() != n => Err(Error::Length),
            Some(o) => Ok((o.as_mut_ptr(), loss)),
            None => Ok((core::ptr::null_mut(), loss)),
        }
    }
}

/// Below this bound on a loss an [`Apply`] sums, none of its f32 partial sums can overflow:
/// the pass may write while it sums. At or above it, [`checked_loss`] decides first.
const LOSS_BOUND: f64 = f32::MAX as f64 / 2.0;

/// Whether `bound`, a bound on a pass's loss as a function of the bound on its elements'
/// terms, is below [`LOSS_BOUND`], given the bound `magnitude` a first pass found on the
/// valid elements' magnitudes. That is loose on vector paths (see
/// `kernel::passes::MAGNITUDE_LIMIT`): where it does not show the loss finite, the exact
/// largest magnitude is found (a scalar scan; rare: inputs at or above 2^64, a loss near
/// f32's range, or large loss weights) and the bound taken again, so that every path
/// decides as the exact maximum decides (the run that finds the loss first is exact only
/// where the loss is that large).
///
/// # Safety
/// The pointers of `x` are valid for the elements they describe.
unsafe fn loss_bounded<M: Model>(
    model: &M,
    x: &Inputs,
    magnitude: f32,
    bound: impl Fn(f64) -> f64,
) -> bool {
    let bounded = bound(model.term_bound(magnitude)) < LOSS_BOUND;
    // the one lane's bound is the exact maximum (one-lane targets link no scan)
    if bounded || !VECTOR_PATHS {
        return bounded;
    }
    // SAFETY: this function's contract.
    let exact = unsafe { largest_magnitude(model, x) };
    bound(model.term_bound(exact)) < LOSS_BOUND
}

/// The one-shot calls' second pass: writes the gradient (if `grad`) and with `loss` sums
/// the loss (else returns 0). A gradient that overwrites is bounded by its coefficients
/// (checked finite by the weighing): no dry run is needed for it.
///
/// # Safety
/// As for [`InPlace::one_shot`], and the inputs have passed accumulate.
#[inline(always)]
unsafe fn second_pass<M: Model>(
    model: &M,
    isa: Isa,
    weights: &RegionWeights,
    x: &Inputs,
    grad: Option<*mut f32>,
    loss: bool,
) -> Result<f64, Error> {
    let plan = &Plan {
        coef: weights.coef_table(),
        tot: weights.tot() as f32,
        output: Output::GRADIENT,
        write: grad.is_some(),
        loss,
    };
    let pass = Apply {
        model,
        bins: &Bins::new(weights.config().bins),
        plan,
        x,
        out: grad.unwrap_or(core::ptr::null_mut()),
    };
    // SAFETY: the caller's contract; without a gradient `Apply` writes and reads no output.
    Ok(unsafe { arch::run(isa, pass)? }.loss)
}

/// The loss the [`Apply`] pass sums over `x` with `weights`, found without writing
/// anything, for inputs whose f32 block sums a bound cannot show finite (near f32's
/// range, or a bound made loose by a large coefficient that few or no elements have): the
/// pass runs once with every coefficient scaled by 2^-32, so that no partial sum
/// overflows, and the total is scaled back in f64. [`Error::Overflow`] if the loss is no
/// finite f32.
///
/// The scaling loses what underflows: a scaled coefficient below f32's subnormals, or the
/// bits a subnormal one drops, an absolute error of at most 2^-118 in a coefficient, so
/// at most 2^10 in a product (a term is below 2^128), n * 2^10 in all: below f32's
/// half-ulp at `SMALL_TOTAL` (2^125) for any n below 2^91. For a smaller total, `None`:
/// the caller's own pass sums it unscaled, as it does where a bound shows the loss finite,
/// and may write while it sums.
/// Every product has the loss weight's sign (the terms and the harmonizing weights are not
/// negative, and committed weights have the loss weight's sign), so no partial sum exceeds
/// the total, whose magnitude is then below `SMALL_TOTAL` plus those losses, far from
/// f32::MAX.
///
/// Its own frame for the scaled table, entered only in this rare case (the Cortex-M stack
/// figures).
///
/// # Safety
/// As for [`apply_pass`], and the inputs have passed validation.
#[cold]
#[inline(never)]
unsafe fn checked_loss<M: Model>(
    model: &M,
    isa: Isa,
    weights: &RegionWeights,
    x: &Inputs,
) -> Result<Option<f64>, Error> {
    const SCALE: f64 = (1u64 << 32) as f64;
    const SMALL_TOTAL: f64 = (1u128 << 125) as f64;
    let mut coef = *weights.coef_table();
    for c in &mut coef {
        *c = (f64::from(*c) / SCALE) as f32;
    }
    let plan = &Plan {
        coef: &coef,
        tot: weights.tot() as f32,
        output: Output::GRADIENT,
        write: false,
        loss: true,
    };
    let pass = Apply {
        model,
        bins: &Bins::new(weights.config().bins),
        plan,
        x,
        out: core::ptr::null_mut(),
    };
    // SAFETY: the caller's contract; the plan neither writes nor adds: no output is used.
    let loss = unsafe { arch::run(isa, pass)? }.loss * SCALE;
    if loss.abs() < SMALL_TOTAL {
        Ok(None)
    } else if (loss as f32).is_finite() {
        Ok(Some(loss))
    } else {
        Err(Error::Overflow)
    }
}

/// Phase 3 on the kernels: checks the inputs first and, for an output or a loss that may
/// overflow, does a dry run, so that an invalid input or an overflow writes nothing; then
/// applies. `out` NULL: nothing is written (only the loss is of use). With `loss`, returns
/// the chunk's loss (else 0).
///
/// # Safety
/// As for [`InPlace::one_shot`], with `out` for the gradient, or NULL.
unsafe fn apply_pass<L: Loss>(
    isa: Isa,
    weights: &RegionWeights,
    x: &Inputs,
    output: Output,
    out: *mut f32,
    loss: bool,
) -> Result<f64, Error> {
    with_model!(L::KIND, weights.config(), |model| unsafe {
        // SAFETY: the caller's contract.
        apply_with(model, isa, weights, x, output, out, loss)
    })
}

/// [`apply_pass`] with the loss's model.
///
/// # Safety
/// As for [`apply_pass`].
unsafe fn apply_with<M: Model>(
    model: &M,
    isa: Isa,
    weights: &RegionWeights,
    x: &Inputs,
    output: Output,
    out: *mut f32,
    loss: bool,
) -> Result<f64, Error> {
    let bins = &Bins::new(weights.config().bins);
    let writes = !out.is_null();
    // SAFETY (every call of `apply`): the caller's contract; with `write` false nothing is
    // written, and without an output nothing is read from it (no write, no add).
    let apply = |write: bool, loss: bool| {
        let plan = &Plan {
            coef: weights.coef_table(),
            tot: weights.tot() as f32,
            output: if writes { output } else { Output::GRADIENT },
            write: write && writes,
            loss,
        };
        unsafe {
            arch::run(
                isa,
                Apply {
                    model,
                    bins,
                    plan,
                    x,
                    out,
                },
            )
        }
    };
    // SAFETY: the caller's contract.
    let magnitude = unsafe { arch::run(isa, Validate { model, x })?? };
    // The loss is summed in f32 blocks of `coef * term`, each at most |coef| * term_bound;
    // one the bound cannot show finite is decided first, without writing anything.
    let loss_bounded = !loss || {
        let largest = weights
            .coef_table()
            .iter()
            .fold(0f32, |m, c| m.max(c.abs()));
        let bound = |term: f64| f64::from(largest) * x.n as f64 * term;
        // SAFETY: the caller's contract.
        unsafe { loss_bounded(model, x, magnitude, bound) }
    };
    let known = if loss_bounded {
        None
    } else {
        // SAFETY: the inputs passed validation.
        unsafe { checked_loss(model, isa, weights, x)? }
    };
    if !writes {
        // only the loss (`loss` is set): known, or summed by one run that writes nothing
        return match known {
            Some(share) => Ok(share),
            None => Ok(apply(false, true)?.loss),
        };
    }
    // An output that may overflow is computed once without writing first.
    if !weights.bounds_output(&output) && !apply(false, false)?.finite {
        return Err(Error::Overflow);
    }
    let summed = apply(true, loss && known.is_none())?.loss;
    Ok(known.unwrap_or(summed))
}

/// [`Error::Config`] for class-index targets on a GHM-C loss whose inputs are gradients
/// ([`OPT_GRADIENT_INPUT`]): labels make targets, which such inputs already include.
fn labels_allowed(config: &Config) -> Result<(), Error> {
    if config.options & OPT_GRADIENT_INPUT != 0 {
        return Err(Error::Config);
    }
    Ok(())
}

/// Element-wise inputs from slices (`b` `None`: targets 0); [`Error::Length`] unless the
/// lengths agree.
fn elementwise(
    a: &[f32],
    b: Option<&[f32]>,
    label_weights: Option<&[f32]>,
) -> Result<Inputs, Error> {
    let n = a.len();
    if b.is_some_and(|b| b.len() != n) || label_weights.is_some_and(|w| w.len() != n) {
        return Err(Error::Length);
    }
    Ok(Inputs {
        a: a.as_ptr(),
        b: b.map_or(Targets::Zero, |b| Targets::Values(b.as_ptr())),
        w: label_weights.map_or(core::ptr::null(), |w| w.as_ptr()),
        n,
    })
}

/// Class-index inputs over `logits` laid out as `layout`; [`Error::Layout`] for a layout the
/// passes cannot walk, [`Error::Length`] unless `labels` (and the anchor weights) have one
/// entry per label slot of each anchor (the anchor weights one per anchor) and `logits`
/// reaches the layout's last element.
fn class_index(
    logits: &[f32],
    layout: ClassLayout,
    labels: &[i32],
    anchor_weights: Option<&[f32]>,
) -> Result<Inputs, Error> {
    if !layout.is_supported() {
        return Err(Error::Layout);
    }
    let (n, extent) = layout
        .elements()
        .zip(layout.extent())
        .ok_or(Error::Length)?;
    let (cells, label_count) = layout
        .cells()
        .zip(layout.label_count())
        .ok_or(Error::Length)?;
    let lengths_ok = labels.len() == label_count
        && anchor_weights.is_none_or(|w| w.len() == cells)
        && logits.len() >= extent;
    if !lengths_ok {
        return Err(Error::Length);
    }
    Ok(Inputs {
        a: logits.as_ptr(),
        b: Targets::Labels {
            labels: labels.as_ptr(),
            layout,
        },
        w: anchor_weights.map_or(core::ptr::null(), |w| w.as_ptr()),
        n,
    })
}
