//! The result of a commit: per-region weights, with their checks and accessors.

use super::Checksum;
use crate::config::{Config, Kind, MAX_BINS};
use crate::error::Error;
use crate::io::{Output, OutputKind};

/// The per-region harmonizing weights of one commit: each region's coefficient, the
/// normaliser, the loss, and the configuration needed to apply them to any chunk of the
/// batch. (Not to be confused with label weights, the caller's per-element or per-anchor
/// input weights.)
///
/// Plain data, made only by a successful commit (a value made any other way is refused as
/// not committed). Applying it only reads it, so one set of region weights may serve many
/// threads at once.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq)]
///
/// In C, read them with `ghm_region_weights_tot`, `ghm_region_weights_loss` and
/// `ghm_region_weight`; the fields are plain data a caller may copy or send, but a value
/// whose fields were changed is refused (its checksum no longer matches).
pub struct RegionWeights {
    /// A tag saying these are region weights ("GHMW").
    pub(super) magic: u32,
    /// The loss that committed them (`GHM_KIND_*` tag).
    pub(super) kind: u32,
    /// The configuration of that loss.
    pub(super) config: Config,
    /// 1 if committed from counting stats, whose loss the applies sum (`loss` is then 0),
    /// else 0. (Also fills what would otherwise be padding before `tot`, so that every
    /// byte of the struct is covered by the checksum.)
    pub(super) counting: u32,
    /// The normaliser `tot` of the committed batch: its valid elements (GHM-C; its
    /// positives with `OPT_NORM_BY_POSITIVES`) or the sum of its label weights (GHM-R), at
    /// least 1. The loss and every value an apply writes are
    /// divided by it (mean reduction); a summed reduction is `tot` times as large.
    pub(super) tot: f64,
    /// Per-region coefficients `loss_weight * beta_k / tot` (0 for empty regions).
    pub(super) coef: [f32; MAX_BINS],
    /// The loss of the committed batch (mean reduction, times loss_weight); 0 if `counting`.
    pub(super) loss: f32,
    /// A checksum over every other field.
    pub(super) checksum: u32,
}

pub(super) const MAGIC: u32 = 0x4748_4d57; // "GHMW"

// No padding: the checksum covers every byte, so any change to an image is refused.
const _: () = assert!(
    core::mem::size_of::<RegionWeights>()
        == 3 * 4 + core::mem::size_of::<Config>() + 8 + 4 * MAX_BINS + 2 * 4
);

impl RegionWeights {
    /// A placeholder for [`State::weigh`](super::State::weigh) to write into: not committed
    /// (its tag is 0), so refused wherever weights are taken.
    pub(crate) const UNSET: RegionWeights = RegionWeights {
        magic: 0,
        kind: 0,
        config: Config::ghm_c(),
        counting: 0,
        tot: 0.0,
        coef: [0.0; MAX_BINS],
        loss: 0.0,
        checksum: 0,
    };

    /// The loss of the committed batch (mean reduction, times loss_weight);
    /// [`Error::NoLoss`] if it was committed from counting stats (then the loss is the sum
    /// of what its [`apply_loss`](Self::apply_loss) calls return).
    pub fn loss(&self) -> Result<f32, Error> {
        if self.is_counting() {
            return Err(Error::NoLoss);
        }
        Ok(self.loss)
    }

    /// Whether these weights were committed from counting stats (see [`Stats`](crate::Stats)).
    pub fn is_counting(&self) -> bool {
        self.counting != 0
    }

    /// The configuration of the loss that committed these weights.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The normaliser `tot` of the committed batch: the reference's (valid elements for
    /// GHM-C, label-weight sum for GHM-R), or the positives with
    /// [`OPT_NORM_BY_POSITIVES`](crate::OPT_NORM_BY_POSITIVES).
    pub fn tot(&self) -> f64 {
        self.tot
    }

    /// beta_k, the harmonizing weight of an element in region k (0 for regions that were
    /// empty or past `bins`).
    pub fn region_weight(&self, k: usize) -> f32 {
        let c = self.coef.get(k).copied().unwrap_or(0.0);
        (f64::from(c) * self.tot / f64::from(self.config.loss_weight)) as f32
    }

    /// Per-region coefficients `loss_weight * beta_k / tot`: an element's gradient is its
    /// region's coefficient times `sigmoid(x) - t` (GHM-C) or `d / sqrt(d^2 + mu^2)` (GHM-R).
    pub fn coefficients(&self) -> &[f32] {
        &self.coef[..(self.config.bins as usize).min(MAX_BINS)]
    }

    /// Checks that these are intact region weights; the loss that committed them.
    pub(crate) fn kind(&self) -> Result<Kind, Error> {
        if self.magic != MAGIC || self.checksum != self.digest() {
            return Err(Error::NotCommitted);
        }
        Kind::from_tag(self.kind).ok_or(Error::NotCommitted)
    }

    /// Whether every value an apply with `output` can write is finite whatever the inputs:
    /// true for gradients and element weights (|value| <= |coef| * |scale|, as |dir| <= 1)
    /// that overwrite and whose largest coefficient times the scale is finite.
    pub(crate) fn bounds_output(&self, output: &Output) -> bool {
        let largest = self
            .coef
            .iter()
            .fold(0.0f64, |m, c| m.max(f64::from(c.abs())));
        let bound = largest * f64::from(output.scale.abs()) * (1.0 + 1e-6);
        !output.add && output.kind != OutputKind::ElementLoss && bound < f64::from(f32::MAX)
    }

    /// `output` with `sum` resolved into its scale (`scale * tot`): [`Error::Output`] for a
    /// scale that is not finite, [`Error::Overflow`] if `scale * tot` is not.
    pub(crate) fn resolve(&self, output: Output) -> Result<Output, Error> {
        if !output.scale.is_finite() {
            return Err(Error::Output);
        }
        if !output.sum {
            return Ok(output);
        }
        let scale = (f64::from(output.scale) * self.tot) as f32;
        if !scale.is_finite() {
            return Err(Error::Overflow);
        }
        Ok(Output {
            scale,
            sum: false,
            ..output
        })
    }

    pub(crate) fn coef_table(&self) -> &[f32; MAX_BINS] {
        &self.coef
    }

    /// Checks that these are intact region weights committed for loss `kind`.
    pub(crate) fn check(&self, kind: Kind) -> Result<(), Error> {
        if self.kind()? != kind {
            return Err(Error::WrongLoss);
        }
        Ok(())
    }

    pub(super) fn digest(&self) -> u32 {
        let tot = self.tot.to_bits();
        let scalars = [tot as u32, (tot >> 32) as u32, self.loss.to_bits()];
        Checksum::new()
            .words(&[self.magic, self.kind, self.counting])
            .words(&self.config.to_words())
            .words(&scalars)
            .floats(&self.coef)
            .finish()
    }
}
