//! The safe Rust API: [`GhmC`] and [`GhmR`], one type generic over the loss.

use core::marker::PhantomData;

use crate::arch::{self, Isa};
use crate::config::{Config, Kind};
use crate::histogram::{Bins, State, Tally};
use crate::math::{Asl1, Bce, Model};
use crate::pass::Inputs;
use crate::status::Error;

mod sealed {
    pub trait Sealed {}
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
/// Each call computes the loss (mean reduction, times `loss_weight`) over one batch,
/// updates the EMA, and optionally writes the gradient with respect to the first input.
/// A call that returns an error changes nothing: neither the state nor any output.
///
/// Inputs: `a` (GHM-C: logits, GHM-R: predictions) and `b` (GHM-C: targets in [0, 1],
/// GHM-R: regression targets) of equal length, and optional label weights of the same
/// length (`None`: all valid). An element with weight 0 is ignored; GHM-C uses only whether a
/// weight is positive, GHM-R also sums the weights for the normaliser, as the reference does.
#[derive(Clone, Debug, PartialEq)]
pub struct Ghm<L: Loss> {
    state: State,
    isa: Isa,
    _loss: PhantomData<L>,
}

impl<L: Loss> Default for Ghm<L> {
    /// The reference's defaults (`GHMC()` or `GHMR()`).
    fn default() -> Self {
        match Self::new(Config::default_for(L::KIND)) {
            Ok(g) => g,
            Err(_) => unreachable!("the default configuration is valid"),
        }
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

    /// Forces an instruction-set path for the following calls ([`Isa::Auto`] by default);
    /// [`Error::Isa`] if this CPU cannot run it.
    pub fn set_isa(&mut self, isa: Isa) -> Result<(), Error> {
        if !isa.is_available() {
            return Err(Error::Isa);
        }
        self.isa = isa;
        Ok(())
    }

    /// The loss of one batch, updating the EMA; no gradient.
    pub fn loss(&mut self, a: &[f32], b: &[f32], weights: Option<&[f32]>) -> Result<f32, Error> {
        let x = inputs(a, b, weights)?;
        // SAFETY: the pointers come from slices of length x.n; no output buffer.
        unsafe { self.run(&x, None) }
    }

    /// The loss of one batch, updating the EMA, and its gradient with respect to `a`
    /// written to `grad` (same length as `a`).
    pub fn loss_grad(
        &mut self,
        a: &[f32],
        b: &[f32],
        weights: Option<&[f32]>,
        grad: &mut [f32],
    ) -> Result<f32, Error> {
        let x = inputs(a, b, weights)?;
        if grad.len() != x.n {
            return Err(Error::Length);
        }
        // SAFETY: the pointers come from slices of length x.n; `grad` is a distinct
        // mutable borrow, so it overlaps no input.
        unsafe { self.run(&x, Some(grad.as_mut_ptr())) }
    }

    /// As [`loss_grad`](Self::loss_grad), with the gradient written over `a` itself.
    pub fn loss_grad_in_place(
        &mut self,
        a: &mut [f32],
        b: &[f32],
        weights: Option<&[f32]>,
    ) -> Result<f32, Error> {
        let mut x = inputs(a, b, weights)?;
        let out = a.as_mut_ptr();
        x.a = out;
        // SAFETY: as for loss_grad; `out` is exactly `x.a`, which the passes allow.
        unsafe { self.run(&x, Some(out)) }
    }

    /// # Safety
    /// The pointers of `x` are valid for reads of `x.n` f32, `out` (if any) for writes of
    /// `x.n` f32, and `out` is either `x.a` or overlaps no input.
    unsafe fn run(&mut self, x: &Inputs, out: Option<*mut f32>) -> Result<f32, Error> {
        match L::KIND {
            Kind::Classification => run_model(&mut self.state, self.isa, Bce, x, out),
            Kind::Regression => {
                let model = Asl1::new(self.state.config().mu);
                run_model(&mut self.state, self.isa, model, x, out)
            }
        }
    }
}

/// One call: the read-only pass, the EMA step, the gradient pass, then the state.
///
/// # Safety
/// As for [`Ghm::run`].
unsafe fn run_model<M: Model>(
    state: &mut State,
    isa: Isa,
    model: M,
    x: &Inputs,
    out: Option<*mut f32>,
) -> Result<f32, Error> {
    let kernels = arch::kernels::<M>(isa)?;
    let bins = Bins::new(state.config().bins);
    let mut tally = Tally::new();
    (kernels.accumulate)(&model, &bins, x, &mut tally)?;
    let (next, h) = state.harmonize(&tally)?;
    if let Some(out) = out {
        (kernels.apply)(&model, &bins, &h.coef, x, out);
    }
    *state = next;
    Ok(h.loss)
}

fn inputs(a: &[f32], b: &[f32], weights: Option<&[f32]>) -> Result<Inputs, Error> {
    let n = a.len();
    if b.len() != n || weights.is_some_and(|w| w.len() != n) {
        return Err(Error::Length);
    }
    Ok(Inputs {
        a: a.as_ptr(),
        b: b.as_ptr(),
        w: weights.map_or(core::ptr::null(), |w| w.as_ptr()),
        n,
    })
}
