//! Phase 2, the commit: the EMA step over a batch's tally, and the per-region weights it
//! yields. The one place the reference's weighting rule is written.

use super::weights::{self, RegionWeights};
use super::{State, Stats};
use crate::config::{
    Kind, MAX_BINS, OPT_DECAY_EMPTY_BINS, OPT_EMA_BIAS_CORRECTION, OPT_NORM_BY_BINS,
    OPT_NORM_BY_POSITIVES,
};
use crate::error::Error;

impl State {
    /// Phase 2, the commit: the per-region weights for a tally, and the state after its EMA
    /// update. Pure: the caller stores the new state only once the whole call has succeeded.
    /// The state must have passed [`State::kind`].
    pub(crate) fn commit(&self, stats: &Stats) -> Result<(State, RegionWeights), Error> {
        let kind = Kind::from_tag(self.kind).ok_or(Error::State)?;
        stats.check(kind, self.config.bins)?;
        let mut next = *self;
        let weights = self.commit_tally(stats, &mut next)?;
        Ok((next, weights))
    }

    /// [`commit`](Self::commit) of a tally known to pass [`Stats::check`]: one this library's
    /// accumulate pass just made from fresh stats (a one-shot call). The next state is
    /// written to `next` (the caller's, so that no state is returned by value through the
    /// frames: the Cortex-M stack figures); it is the next state only on success.
    pub(crate) fn commit_tally(
        &self,
        stats: &Stats,
        next: &mut State,
    ) -> Result<RegionWeights, Error> {
        let cfg = &self.config;
        let kind = Kind::from_tag(self.kind).ok_or(Error::State)?;
        let m = (cfg.bins as usize).min(MAX_BINS);
        let alpha = cfg.momentum;
        // An empty batch is no step: even the decay of empty regions waits for data.
        let any = stats.count.iter().any(|&r| r > 0.0);
        let decay_all = cfg.options & OPT_DECAY_EMPTY_BINS != 0 && any;
        *next = *self;
        // The count prior: `count_prior * N / M` more in every region (nothing for an
        // empty batch).
        let n_valid: f64 = stats.count[..m].iter().sum();
        let prior = f64::from(cfg.count_prior) * n_valid / m as f64;
        let counts = stats.count.iter().take(m).map(|&c| c + prior);
        let nonempty = counts.filter(|&r| r > 0.0).count();
        let norm = if cfg.options & OPT_NORM_BY_BINS != 0 {
            m
        } else {
            nonempty
        } as f64;
        let tot = tot(kind, stats);
        let norm_by = if cfg.options & OPT_NORM_BY_POSITIVES != 0 {
            stats.positive_sum.max(1.0)
        } else {
            tot
        };
        let cap = if cfg.weight_cap > 0.0 {
            f64::from(cfg.weight_cap)
        } else {
            f64::INFINITY
        };
        let lambda = f64::from(cfg.loss_weight);
        let one_minus_alpha = 1.0 - as_written(alpha);
        // One loop over the regions, no per-region arrays (the Cortex-M stack figures): the
        // EMA step, the density it gives and the region's coefficient.
        let mut coef = [0f32; MAX_BINS];
        let mut loss = 0.0f64;
        let ema = next.ema.iter_mut().zip(next.ema_norm.iter_mut());
        let before = self.ema.iter().zip(&self.ema_norm);
        let tally = stats.loss_sum.iter().zip(&stats.count);
        let regions = coef.iter_mut().zip(ema).zip(before).zip(tally);
        for (((c_out, (ema, ema_norm)), (&prev, &prev_norm)), (&sum, &c)) in regions.take(m) {
            let r = c + prior;
            if alpha > 0.0 && (r > 0.0 || decay_all) {
                let rest = (one_minus_alpha * r) as f32;
                *ema = alpha * prev + rest;
                *ema_norm = alpha * prev_norm + (1.0 - alpha);
            }
            let d = match (alpha > 0.0, cfg.options & OPT_EMA_BIAS_CORRECTION != 0) {
                (false, _) => r,
                (true, false) => f64::from(*ema),
                (true, true) => f64::from(*ema) / f64::from(*ema_norm),
            };
            if r > 0.0 {
                let beta = (tot / (d * norm)).min(cap);
                // the loss with the f32 coefficient that apply multiplies by, so that the
                // three phases and a one-shot call agree even where it rounds to 0
                let c = (lambda * beta / norm_by) as f32;
                *c_out = c;
                loss += f64::from(c) * sum;
            }
        }
        let mut w = RegionWeights {
            magic: weights::MAGIC,
            kind: self.kind,
            config: *cfg,
            reserved: 0,
            tot: norm_by,
            coef,
            loss: loss as f32,
            checksum: 0,
        };
        let finite = w.loss.is_finite()
            && w.coef.iter().all(|c| c.is_finite())
            && next.ema.iter().all(|s| s.is_finite());
        if !finite {
            return Err(Error::Overflow);
        }
        w.checksum = w.digest();
        next.seal();
        Ok(w)
    }
}

/// The reference's normaliser: valid elements (GHM-C) or the sum of label weights (GHM-R),
/// at least 1. It is also the numerator of the harmonizing weight beta.
fn tot(kind: Kind, stats: &Stats) -> f64 {
    let t = match kind {
        Kind::Regression => stats.weight_sum,
        Kind::Classification => stats.count.iter().sum::<f64>(),
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
        let mut stats = Stats::new(Kind::Regression, 1);
        stats.count[0] = 292.0;
        stats.weight_sum = 292.0;
        let (next, _) = s.commit(&stats).unwrap();
        assert_eq!(next.ema[0], 87.6); // the f32 nearest 87.6: 87.59999847...
    }
}
