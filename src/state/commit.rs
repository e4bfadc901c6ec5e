//! Phase 2, the commit: the EMA step over a batch's tally, and the per-region weights it
//! yields. The one place the reference's weighting rule is written.

use super::stats::Tally;
use super::weights::{self, RegionWeights};
use super::{State, Stats};
use crate::config::{
    Kind, MAX_BINS, OPT_DECAY_EMPTY_BINS, OPT_EMA_BIAS_CORRECTION, OPT_NORM_BY_BINS,
    OPT_NORM_BY_POSITIVES,
};
use crate::error::Error;

impl State {
    /// Phase 2, the commit of merged stats: checks them, then updates the EMA in place and
    /// returns the per-region weights. With `wants_loss` (the caller will read the loss),
    /// counting stats, which hold none, are [`Error::NoLoss`]. Nothing changes on error. The
    /// state must have passed [`State::kind`].
    pub(crate) fn commit(
        &mut self,
        stats: &Stats,
        wants_loss: bool,
    ) -> Result<RegionWeights, Error> {
        let kind = Kind::from_tag(self.kind).ok_or(Error::State)?;
        stats.check(kind, self.config.bins)?;
        if wants_loss && stats.is_counting() {
            return Err(Error::NoLoss);
        }
        let mut weights = RegionWeights::UNSET;
        self.weigh(Tally::Merged(stats), &mut weights)?;
        self.advance(Tally::Merged(stats));
        // sealed: these weights go to the caller, who may apply them anywhere
        weights.checksum = weights.digest();
        Ok(weights)
    }

    /// Writes to `w` the per-region weights that a commit of `tally` yields, the state left
    /// as it is (the EMA step is taken here only to be weighed; [`advance`](Self::advance)
    /// stores it). [`Error::Overflow`] if a weight, the loss or the stepped EMA is not
    /// finite; `w` then holds no valid weights. The weights are not sealed (their checksum
    /// is left 0): a one-shot call uses them itself, and [`commit`](Self::commit) seals
    /// those it hands out. Merged stats must have passed [`Stats::check`] (the caller's
    /// job); a pass's own counts are valid by construction.
    /// (Written through a reference rather than returned: one copy of the weights in the
    /// Cortex-M frames.)
    pub(crate) fn weigh(&self, tally: Tally, w: &mut RegionWeights) -> Result<(), Error> {
        let cfg = &self.config;
        let kind = Kind::from_tag(self.kind).ok_or(Error::State)?;
        let m = (cfg.bins as usize).min(MAX_BINS);
        let step = self.step(&tally);
        let nonempty = (0..m)
            .filter(|&k| tally.count(k) + step.prior > 0.0)
            .count();
        let norm = if cfg.options & OPT_NORM_BY_BINS != 0 {
            m
        } else {
            nonempty
        } as f64;
        let tot = tot(kind, &tally);
        let norm_by = if cfg.options & OPT_NORM_BY_POSITIVES != 0 {
            tally.positive_sum().max(1.0)
        } else {
            tot
        };
        let cap = if cfg.weight_cap > 0.0 {
            f64::from(cfg.weight_cap)
        } else {
            f64::INFINITY
        };
        let lambda = f64::from(cfg.loss_weight);
        *w = RegionWeights {
            magic: weights::MAGIC,
            kind: self.kind,
            config: *cfg,
            counting: u32::from(!tally.sums_loss()),
            tot: norm_by,
            coef: [0.0; MAX_BINS],
            loss: 0.0,
            checksum: 0,
        };
        // One loop over the regions, no per-region arrays (the Cortex-M stack figures): the
        // EMA step, the density it gives and the region's coefficient.
        let mut loss = 0.0f64;
        // (a pass that only counted has no terms: no product per region, which a
        // single-precision FPU makes in software)
        let sums_loss = tally.sums_loss();
        let mut finite = true;
        let before = self.ema.iter().zip(&self.ema_norm);
        for (k, (c_out, (&prev, &prev_norm))) in w.coef.iter_mut().zip(before).enumerate().take(m) {
            let r = tally.count(k) + step.prior;
            let (ema, ema_norm) = step.region(prev, prev_norm, r);
            finite &= ema.is_finite();
            let d = match (step.alpha > 0.0, cfg.options & OPT_EMA_BIAS_CORRECTION != 0) {
                (false, _) => r,
                (true, false) => f64::from(ema),
                (true, true) => f64::from(ema) / f64::from(ema_norm),
            };
            if r > 0.0 {
                let beta = (tot / (d * norm)).min(cap);
                // the loss with the f32 coefficient that apply multiplies by, so that the
                // three phases and a one-shot call agree even where it rounds to 0
                let c = (lambda * beta / norm_by) as f32;
                *c_out = c;
                if sums_loss {
                    loss += f64::from(c) * tally.loss_sum(k);
                }
            }
        }
        w.loss = loss as f32;
        if !(finite && w.loss.is_finite() && w.coef.iter().all(|c| c.is_finite())) {
            return Err(Error::Overflow);
        }
        Ok(())
    }

    /// Stores the EMA step of `tally` (one that [`weigh`](Self::weigh) accepted) and
    /// reseals the state.
    pub(crate) fn advance(&mut self, tally: Tally) {
        let m = (self.config.bins as usize).min(MAX_BINS);
        let step = self.step(&tally);
        let regions = self.ema.iter_mut().zip(self.ema_norm.iter_mut());
        for (k, (ema, ema_norm)) in regions.enumerate().take(m) {
            (*ema, *ema_norm) = step.region(*ema, *ema_norm, tally.count(k) + step.prior);
        }
        self.seal();
    }

    fn step(&self, tally: &Tally) -> Step {
        let cfg = &self.config;
        let m = (cfg.bins as usize).min(MAX_BINS);
        // An empty batch is no step: even the decay of empty regions waits for data.
        let any = tally.any();
        // The count prior: `count_prior * N / M` more in every region (nothing for an
        // empty batch).
        let n_valid = tally.valid(m);
        Step {
            alpha: cfg.momentum,
            one_minus_alpha: 1.0 - as_written(cfg.momentum),
            decay_all: cfg.options & OPT_DECAY_EMPTY_BINS != 0 && any,
            prior: f64::from(cfg.count_prior) * n_valid / m as f64,
        }
    }
}

/// The EMA step of one commit: the same for every region, and for weighing and storing.
struct Step {
    alpha: f32,
    one_minus_alpha: f64,
    decay_all: bool,
    /// The count prior's share of every region.
    prior: f64,
}

impl Step {
    /// A region's EMA `(S_k, 1 - alpha^t)` after the step, from its value before and its
    /// count `r` (prior included); unchanged without momentum, and for an empty region
    /// unless empty regions decay.
    fn region(&self, prev: f32, prev_norm: f32, r: f64) -> (f32, f32) {
        let alpha = self.alpha;
        if alpha > 0.0 && (r > 0.0 || self.decay_all) {
            let rest = (self.one_minus_alpha * r) as f32;
            (alpha * prev + rest, alpha * prev_norm + (1.0 - alpha))
        } else {
            (prev, prev_norm)
        }
    }
}

/// The reference's normaliser: valid elements (GHM-C) or the sum of label weights (GHM-R),
/// at least 1. It is also the numerator of the harmonizing weight beta.
fn tot(kind: Kind, tally: &Tally) -> f64 {
    let t = match kind {
        Kind::Regression => tally.weight_sum(),
        Kind::Classification => tally.valid(MAX_BINS),
    };
    t.max(1.0)
}

/// The decimal with the fewest digits (up to 9 after the point) that rounds to `x`, as an
/// f64. A momentum written as 0.7 is stored as the f32 0.699999988; the reference computes
/// `1 - momentum` in double from the 0.7 it was written as, and so does the EMA step here.
pub(super) fn as_written(x: f32) -> f64 {
    let mut scale = 1.0f64;
    for _ in 0..9 {
        scale *= 10.0;
        let d = libm::round(f64::from(x) * scale) / scale;
        if d as f32 == x {
            return d;
        }
    }
    f64::from(x)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    /// The EMA step rounds as the reference's does: `(1 - momentum)` from the decimal the
    /// momentum was written as (mmdetection: acc_sum 87.5999984741211 after one call with 292
    /// elements in the region and momentum 0.7; with `1 - f32(0.7)` it would be 87.60000610).
    #[test]
    fn ema_step_takes_one_minus_momentum_as_written() {
        assert_eq!(as_written(0.7), 0.7);
        assert_eq!(as_written(0.75), 0.75);
        assert_eq!(as_written(0.999), 0.999);
        let cfg = Config {
            bins: 1,
            momentum: 0.7,
            ..Config::ghm_r()
        };
        let s = State::new(Kind::Regression, &cfg).unwrap();
        let mut stats = Stats::new(Kind::Regression, 1, false);
        stats.count[0] = 292.0;
        stats.weight_sum = 292.0;
        let mut next = s;
        next.commit(&stats, false).unwrap();
        assert_eq!(next.ema[0], 87.6); // the f32 nearest 87.6: 87.59999847...
    }
}
