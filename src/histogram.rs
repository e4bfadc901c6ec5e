//! The histogram over the gradient norm and its EMA: unit regions (bins), per-bin tallies,
//! the caller-owned [`State`] that carries the EMA across calls, and the step that turns a
//! tally into harmonizing weights.

use crate::config::{
    Config, Kind, OPT_DECAY_EMPTY_BINS, OPT_EMA_BIAS_CORRECTION, OPT_NORM_BY_BINS,
};
use crate::status::Error;
use crate::vector::Vector;

/// Largest number of unit regions (`GHM_MAX_BINS`); region arrays have this fixed size.
pub const MAX_BINS: usize = 64;

/// The unit regions `[e_k, e_{k+1})` of `[0, 1]`, with the reference's edges
/// `e_k = f32(k) / f32(M)`. (The reference's last edge, slightly above 1 for GHM-C and 1000
/// for GHM-R, lies above every gradient norm either loss can produce, so region `M - 1` is
/// simply everything at or above `e_{M-1}`.)
#[derive(Clone, Debug)]
pub(crate) struct Bins {
    m: usize,
    edges: [f32; MAX_BINS],
}

/// Fractional parts this close to 1 (or exactly 0) may have been rounded across an integer
/// by `g * M`; the bound on that rounding is below 2^-18 for M <= 64.
const EDGE_SLACK: f32 = 1.0 - 1.0 / 65536.0;

impl Bins {
    /// `m` must be in `1..=MAX_BINS` (checked by [`Config::validate`]); larger values are
    /// clamped so that indexing stays in bounds regardless.
    pub(crate) fn new(m: u32) -> Bins {
        let m = (m as usize).clamp(1, MAX_BINS);
        let mut edges = [0.0; MAX_BINS];
        for (k, e) in edges.iter_mut().enumerate().take(m) {
            *e = k as f32 / m as f32;
        }
        Bins { m, edges }
    }

    /// The region of `g` by the reference's definition: the largest `k < M` with
    /// `e_k <= g` (0 for NaN, which validation rejects before it matters).
    pub(crate) fn index_exact(&self, g: f32) -> usize {
        let mut k = ((g * self.m as f32) as usize).min(self.m - 1);
        while k > 0 && g < self.edges[k] {
            k -= 1;
        }
        while k + 1 < self.m && g >= self.edges[k + 1] {
            k += 1;
        }
        k
    }

    /// The region of each lane (as an integral f32), equal to [`index_exact`](Self::index_exact):
    /// `floor(g * M)` is exact except within a rounding of an edge, and those rare lanes are
    /// redone by comparisons.
    #[inline(always)]
    pub(crate) unsafe fn index<V: Vector>(&self, g: V) -> V {
        let m = V::splat(self.m as f32);
        let p = g.mul(m);
        let f = p.floor();
        let frac = p.sub(f);
        let inside = V::splat(0.0).lt(p).and(p.lt(m));
        let near_edge = frac.eq(V::splat(0.0)).or(V::splat(EDGE_SLACK).lt(frac));
        if !inside.and(near_edge).none() {
            let mut lanes = [0f32; 16];
            g.store(lanes.as_mut_ptr());
            for v in lanes.iter_mut().take(V::LANES) {
                *v = self.index_exact(*v) as f32;
            }
            return V::load(lanes.as_ptr());
        }
        f.min(V::splat((self.m - 1) as f32))
    }
}

/// Per-region totals over the valid elements of one pass (or of several, added).
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Tally {
    /// R_k: number of valid elements in region k.
    pub count: [u64; MAX_BINS],
    /// Sum of the unweighted loss terms of region k.
    pub sum: [f64; MAX_BINS],
    /// Sum of the label weights (GHM-R's `tot`; GHM-C counts valid elements instead).
    pub weight: f64,
}

impl Tally {
    pub(crate) const fn new() -> Tally {
        Tally {
            count: [0; MAX_BINS],
            sum: [0.0; MAX_BINS],
            weight: 0.0,
        }
    }
}

/// What the gradient pass applies: for an element of region k, `grad = coef[k] * dir`
/// (`coef[k] = lambda * beta_k / tot`, which is `lambda / (n D_k)` by default), the
/// normaliser `tot`, and the loss of the call.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Harmonized {
    pub coef: [f32; MAX_BINS],
    pub tot: f64,
    pub loss: f32,
}

const MAGIC: u32 = 0x4748_4d31; // "GHM1"

/// The state a loss carries across calls (`ghm_state` in C): its configuration and the EMA
/// of the per-region counts.
///
/// Plain data of fixed size with no pointers: it may live on the stack, inside another
/// struct, or be written to a checkpoint and read back on a machine of the same
/// endianness. Its fields are private; it carries a checksum so that a state that was never
/// initialised, was corrupted, or belongs to the other loss is refused with a specific error.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct State {
    magic: u32,
    kind: u32,
    config: Config,
    /// S_k, the EMA of R_k (unused with momentum 0). Regions that have never been hit hold 0.
    ema: [f32; MAX_BINS],
    /// The same EMA applied to a constant 1 (`1 - alpha^t`), for bias correction.
    ema_norm: [f32; MAX_BINS],
    checksum: u32,
}

impl State {
    /// A fresh state (EMA at 0, as the reference starts).
    pub(crate) fn new(kind: Kind, config: &Config) -> Result<State, Error> {
        config.validate(kind)?;
        let mut s = State {
            magic: MAGIC,
            kind: kind as u32,
            config: *config,
            ema: [0.0; MAX_BINS],
            ema_norm: [0.0; MAX_BINS],
            checksum: 0,
        };
        s.seal();
        Ok(s)
    }

    /// The configuration this state was initialised with.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// S_k for each of the `bins` regions: the EMA of the counts (all 0 with momentum 0).
    pub fn ema(&self) -> &[f32] {
        &self.ema[..(self.config.bins as usize).min(MAX_BINS)]
    }

    /// Checks that this is an intact state of loss `kind`.
    pub(crate) fn check(&self, kind: Kind) -> Result<(), Error> {
        if self.magic != MAGIC || self.checksum != self.digest() {
            return Err(Error::State);
        }
        let own = if self.kind == Kind::Classification as u32 {
            Kind::Classification
        } else if self.kind == Kind::Regression as u32 {
            Kind::Regression
        } else {
            return Err(Error::State);
        };
        self.config.validate(own).map_err(|_| Error::State)?;
        let m = self.config.bins as usize;
        let in_range = |s: &f32| s.is_finite() && *s >= 0.0;
        let sane = self.ema[..m].iter().all(in_range)
            && self.ema_norm[..m].iter().all(|s| in_range(s) && *s <= 1.0)
            && self.ema[m..]
                .iter()
                .chain(&self.ema_norm[m..])
                .all(|s| s.to_bits() == 0);
        if !sane {
            return Err(Error::State);
        }
        if own != kind {
            return Err(Error::WrongLoss);
        }
        Ok(())
    }

    /// The harmonizing weights for a tally, and the state after its EMA update. Pure: the
    /// caller stores the new state only once the whole call has succeeded.
    pub(crate) fn harmonize(&self, tally: &Tally) -> Result<(State, Harmonized), Error> {
        let cfg = &self.config;
        let m = (cfg.bins as usize).min(MAX_BINS);
        let alpha = cfg.momentum;
        let decay_all = cfg.options & OPT_DECAY_EMPTY_BINS != 0;
        let mut next = *self;
        let mut density = [0f64; MAX_BINS];
        for (k, d) in density.iter_mut().enumerate().take(m) {
            let r = tally.count[k];
            if alpha > 0.0 && (r > 0 || decay_all) {
                let rest = ((1.0 - f64::from(alpha)) * r as f64) as f32;
                next.ema[k] = alpha * self.ema[k] + rest;
                next.ema_norm[k] = alpha * self.ema_norm[k] + (1.0 - alpha);
            }
            *d = match (alpha > 0.0, cfg.options & OPT_EMA_BIAS_CORRECTION != 0) {
                (false, _) => r as f64,
                (true, false) => f64::from(next.ema[k]),
                (true, true) => f64::from(next.ema[k]) / f64::from(next.ema_norm[k]),
            };
        }
        let counts = &tally.count[..m];
        let nonempty = counts.iter().filter(|&&r| r > 0).count();
        let norm = if cfg.options & OPT_NORM_BY_BINS != 0 {
            m
        } else {
            nonempty
        } as f64;
        let tot = self.tot(tally);
        let cap = if cfg.weight_cap > 0.0 {
            f64::from(cfg.weight_cap)
        } else {
            f64::INFINITY
        };
        let lambda = f64::from(cfg.loss_weight);
        let mut coef = [0f32; MAX_BINS];
        let mut loss = 0.0f64;
        for (k, _) in counts.iter().enumerate().filter(|(_, &r)| r > 0) {
            let beta = (tot / (density[k] * norm)).min(cap);
            let c = lambda * beta / tot;
            coef[k] = c as f32;
            loss += c * tally.sum[k];
        }
        let h = Harmonized {
            coef,
            tot,
            loss: loss as f32,
        };
        let finite = h.loss.is_finite()
            && h.coef.iter().all(|c| c.is_finite())
            && next.ema.iter().all(|s| s.is_finite());
        if !finite {
            return Err(Error::Overflow);
        }
        next.seal();
        Ok((next, h))
    }

    /// The reference's normaliser: valid elements (GHM-C) or the sum of label weights
    /// (GHM-R), at least 1.
    fn tot(&self, tally: &Tally) -> f64 {
        let t = if self.kind == Kind::Regression as u32 {
            tally.weight
        } else {
            tally.count.iter().sum::<u64>() as f64
        };
        t.max(1.0)
    }

    fn seal(&mut self) {
        self.checksum = self.digest();
    }

    /// FNV-1a over every field but the checksum.
    fn digest(&self) -> u32 {
        let c = &self.config;
        let head = [
            self.magic,
            self.kind,
            c.bins,
            c.momentum.to_bits(),
            c.mu.to_bits(),
            c.loss_weight.to_bits(),
        ];
        let words = head
            .iter()
            .copied()
            .chain(self.ema.iter().map(|s| s.to_bits()));
        let mut h = 0x811c_9dc5u32;
        for w in words {
            for b in w.to_le_bytes() {
                h = (h ^ u32::from(b)).wrapping_mul(0x0100_0193);
            }
        }
        h
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every f32 within `radius` ULP of every edge, for every supported M: the fast path
    /// agrees with the reference's comparisons. Away from edges `floor(g * M)` cannot be
    /// wrong, so this covers all of [0, 1].
    #[test]
    fn fast_region_index_matches_edge_comparisons_near_every_edge_for_every_m() {
        let radius = 2000i32;
        for m in 1..=MAX_BINS as u32 {
            let bins = Bins::new(m);
            for k in 0..=m as usize {
                let e = if k == m as usize { 1.0 } else { bins.edges[k] };
                for d in -radius..=radius {
                    let g = f32::from_bits((e.to_bits() as i32 + d).max(0) as u32);
                    if !(0.0..=1.0).contains(&g) {
                        continue;
                    }
                    let want = bins.index_exact(g);
                    let fast = unsafe { bins.index(g) } as usize;
                    assert_eq!(fast, want, "m={m} k={k} g={g:e}");
                    let by_def = (0..m as usize).rev().find(|&j| bins.edges[j] <= g).unwrap();
                    assert_eq!(want, by_def, "m={m} k={k} g={g:e}");
                }
            }
        }
    }

    #[test]
    fn corrupted_or_foreign_states_are_refused() {
        let s = State::new(Kind::Classification, &Config::ghm_c()).unwrap();
        assert_eq!(s.check(Kind::Classification), Ok(()));
        assert_eq!(s.check(Kind::Regression), Err(Error::WrongLoss));
        let mut t = s;
        t.ema[3] = 1.0;
        assert_eq!(t.check(Kind::Classification), Err(Error::State));
        let mut t = s;
        t.magic ^= 1;
        assert_eq!(t.check(Kind::Classification), Err(Error::State));
    }
}
