//! Configuration: which loss, the hyper-parameters, their defaults, their valid ranges and
//! the fixed limits every other module sizes its tables by.

use crate::error::Error;

/// Largest number of unit regions (`GHM_MAX_BINS`); region arrays have this fixed size.
pub const MAX_BINS: usize = 64;
const _: () = assert!(
    MAX_BINS.is_power_of_two(),
    "bin indices are masked with MAX_BINS - 1"
);

/// Which loss a configuration or state belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum Kind {
    /// GHM-C: gradient-harmonized sigmoid binary cross-entropy.
    Classification = 0x4748_4d43, // "GHMC"
    /// GHM-R: gradient-harmonized authentic smooth L1.
    Regression = 0x4748_4d52, // "GHMR"
}

impl Kind {
    /// The kind a stored tag names, `None` for any other value. The one decoding of a kind.
    pub(crate) fn from_tag(tag: u32) -> Option<Kind> {
        [Kind::Classification, Kind::Regression]
            .into_iter()
            .find(|k| *k as u32 == tag)
    }
}

/// Divide by the number of regions M instead of the number of non-empty regions n, so
/// that a batch that fills few regions is not up-weighted as a whole.
pub const OPT_NORM_BY_BINS: u32 = 1;
/// Divide the EMA by `1 - alpha^t` (t = updates of that region), so the first hit of a
/// region is not inflated by `1 / (1 - alpha)`.
pub const OPT_EMA_BIAS_CORRECTION: u32 = 2;
/// Update every region's EMA on every call (empty regions decay towards 0), as the
/// paper's formula does; the reference updates only non-empty regions.
pub const OPT_DECAY_EMPTY_BINS: u32 = 4;
/// GHM-C only: the inputs are probabilities `p = sigmoid(logit)` (as Darknet holds them)
/// rather than logits. The loss is PyTorch's `binary_cross_entropy` on `p` (logs floored at
/// -100); the gradient is still with respect to the logit, `p - t`.
pub const OPT_PROBABILITY_INPUT: u32 = 8;
/// GHM-C only: the input is the gradient itself, `d = p - t` in [-1, 1] (as Darknet can hold
/// it), and targets are not read (they may be NULL in C). `g = |d|` is binned and the gradient
/// written is `coef * d`. The loss term reported is `-ln(1 - |d|)` (log floored at -100), which
/// is the binary cross-entropy exactly when the target is 0 or 1; for soft targets it is not
/// the BCE, which needs p and t. Exclusive with `GHM_OPT_PROBABILITY_INPUT`; the class-index
/// (labels) functions refuse it.
pub const OPT_GRADIENT_INPUT: u32 = 16;
/// GHM-C only: normalise the loss and its gradient by the batch's positives P (the sum of
/// the valid elements' targets, at least 1) instead of its valid elements (the reference's
/// `tot`), as detectors normalise focal loss. With `GHM_OPT_GRADIENT_INPUT` the targets are not
/// known and an element with a negative gradient `p - t` counts as one positive (exact for
/// targets 0 and 1 while p < 1). The harmonizing weights themselves are unchanged.
pub const OPT_NORM_BY_POSITIVES: u32 = 32;
/// Every option bit this version knows.
pub const OPT_ALL: u32 = OPT_NORM_BY_BINS
    | OPT_EMA_BIAS_CORRECTION
    | OPT_DECAY_EMPTY_BINS
    | OPT_PROBABILITY_INPUT
    | OPT_GRADIENT_INPUT
    | OPT_NORM_BY_POSITIVES;
/// The input options, of which at most one may be set.
const OPT_INPUTS: u32 = OPT_PROBABILITY_INPUT | OPT_GRADIENT_INPUT;
/// The option bits only GHM-C knows.
const OPT_GHM_C_ONLY: u32 = OPT_INPUTS | OPT_NORM_BY_POSITIVES;

/// The largest GHM-R mu: with it, `sqrt(d^2 + mu^2) - mu` is finite for every finite d.
pub const MAX_MU: f32 = 1e18;

/// Hyper-parameters of GHM-C and GHM-R.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Config {
    /// Number of unit regions M over the gradient norm, `1..=GHM_MAX_BINS`.
    pub bins: u32,
    /// EMA momentum alpha in `[0, 1)`; 0 uses each call's own counts.
    pub momentum: f32,
    /// ASL1 smoothing mu, in `(0, 1e18]` (GHM-R only; GHM-C ignores it).
    pub mu: f32,
    /// Factor lambda on the loss and its gradient, finite.
    pub loss_weight: f32,
    /// Bit set of options (GHM_OPT_*); 0 reproduces the reference.
    pub options: u32,
    /// Upper bound on any element's harmonizing weight beta (0: no bound); finite, >= 0.
    pub weight_cap: f32,
    /// Count prior: each commit adds `count_prior * N / bins` to every region's count before
    /// the EMA step, N being the batch's valid elements, so no region's density is far below
    /// the batch's mean and a handful of hard elements cannot carry the loss (0: none, as the
    /// reference); finite, >= 0. The normaliser `tot` is unchanged.
    pub count_prior: f32,
}

impl Config {
    /// mmdetection's `GHMC()` defaults: 10 bins, momentum 0, loss weight 1.
    pub const fn ghm_c() -> Config {
        Config {
            bins: 10,
            momentum: 0.0,
            mu: 0.02,
            loss_weight: 1.0,
            options: 0,
            weight_cap: 0.0,
            count_prior: 0.0,
        }
    }

    /// The robust GHM-C preset: the reference's COCO settings (30 bins, momentum 0.75) with a
    /// count prior of 0.1 and the loss normalised by the batch's positives
    /// ([`OPT_NORM_BY_POSITIVES`]). On the repository's detector test bed it beats focal loss
    /// on mAP@0.5 under SGD and AdamW where the reference settings fail (README, "What the
    /// detector test bed shows"). Not the reference's numbers: [`Config::ghm_c`] is.
    pub const fn ghm_c_robust() -> Config {
        Config {
            bins: 30,
            momentum: 0.75,
            options: OPT_NORM_BY_POSITIVES,
            count_prior: 0.1,
            ..Config::ghm_c()
        }
    }

    /// mmdetection's `GHMR()` defaults: mu 0.02, 10 bins, momentum 0, loss weight 1.
    pub const fn ghm_r() -> Config {
        Config::ghm_c()
    }

    /// The default configuration of a loss.
    pub const fn default_for(kind: Kind) -> Config {
        match kind {
            Kind::Classification => Config::ghm_c(),
            Kind::Regression => Config::ghm_r(),
        }
    }

    /// Every field's bits, for checksums (a field added to the struct belongs here too).
    pub(crate) fn to_words(self) -> [u32; 7] {
        [
            self.bins,
            self.momentum.to_bits(),
            self.mu.to_bits(),
            self.loss_weight.to_bits(),
            self.options,
            self.weight_cap.to_bits(),
            self.count_prior.to_bits(),
        ]
    }

    /// Checks every field that `kind` uses; [`Error::Config`] if one is out of range (see
    /// [`first_invalid`](Self::first_invalid) for which).
    pub fn validate(&self, kind: Kind) -> Result<(), Error> {
        match self.first_invalid(kind) {
            None => Ok(()),
            Some(_) => Err(Error::Config),
        }
    }

    /// The first field (in declaration order) that is out of range for `kind`, with a
    /// description of its range, or `None` if the configuration is valid. The one place the
    /// ranges are written. Both texts end with a NUL (for C); trim it for Rust display.
    pub fn first_invalid(&self, kind: Kind) -> Option<(&'static str, &'static str)> {
        const _: () = assert!(MAX_BINS == 64, "the range text for bins says 64");
        let regression = kind == Kind::Regression;
        if !(1..=MAX_BINS as u32).contains(&self.bins) {
            return Some(("bins\0", "an integer in 1..=64\0"));
        }
        if !(0.0..1.0).contains(&self.momentum) {
            return Some(("momentum\0", "[0, 1)\0"));
        }
        if regression && !(self.mu > 0.0 && self.mu <= MAX_MU) {
            return Some(("mu\0", "(0, 1e18]\0"));
        }
        if !self.loss_weight.is_finite() {
            return Some(("loss_weight\0", "a finite float\0"));
        }
        if regression && self.options & !(OPT_ALL & !OPT_GHM_C_ONLY) != 0 {
            return Some((
                "options\0",
                "a combination of GHM_OPT_NORM_BY_BINS (1), GHM_OPT_EMA_BIAS_CORRECTION (2) \
                 and GHM_OPT_DECAY_EMPTY_BINS (4); GHM_OPT_PROBABILITY_INPUT, \
                 GHM_OPT_GRADIENT_INPUT and GHM_OPT_NORM_BY_POSITIVES are GHM-C only\0",
            ));
        }
        if self.options & !OPT_ALL != 0 || self.options & OPT_INPUTS == OPT_INPUTS {
            return Some((
                "options\0",
                "a combination of the GHM_OPT_* bits (1, 2, 4, 8, 16, 32), at most one of \
                 GHM_OPT_PROBABILITY_INPUT and GHM_OPT_GRADIENT_INPUT\0",
            ));
        }
        if !(self.weight_cap >= 0.0 && self.weight_cap.is_finite()) {
            return Some(("weight_cap\0", "a finite float >= 0 (0: no cap)\0"));
        }
        if !(self.count_prior >= 0.0 && self.count_prior.is_finite()) {
            return Some(("count_prior\0", "a finite float >= 0 (0: none)\0"));
        }
        None
    }
}
