//! The histogram over the gradient norm and its EMA: unit regions (bins), per-bin tallies,
//! the caller-owned [`State`] that carries the EMA across calls, and the step that turns a
//! tally into harmonizing weights.

use crate::config::{
    Config, Kind, OPT_DECAY_EMPTY_BINS, OPT_EMA_BIAS_CORRECTION, OPT_NORM_BY_BINS,
};
use crate::pass::{Output, OutputKind};
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

    /// Number of regions M.
    pub(crate) fn len(&self) -> usize {
        self.m
    }

    /// The region of `g` by the reference's definition: the largest `k < M` with
    /// `e_k <= g` (0 for NaN, which validation rejects before it matters).
    pub(crate) fn index_exact(&self, g: f32) -> usize {
        let edges = &self.edges[..self.m.min(MAX_BINS)];
        let mut k = ((g * self.m as f32) as usize).min(edges.len().saturating_sub(1));
        while k > 0 && edges.get(k).is_some_and(|&e| g < e) {
            k -= 1;
        }
        while edges.get(k + 1).is_some_and(|&e| g >= e) {
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

/// Per-region totals of one or more chunks of a batch (`ghm_stats` in C): filled by
/// `accumulate`, added together by [`merge`](Stats::merge), turned into weights by `commit`.
///
/// Every field is an `f64` and every field merges by addition, so a flat sum-allreduce of
/// [`STATS_LEN`] doubles (MPI_Allreduce with MPI_SUM, NCCL's ncclSum) merges the stats of
/// data-parallel workers. A trainer that histograms on its own device may fill `count` (and
/// `loss_sum`, `weight_sum`) itself in a `Stats` made by `Ghm::stats`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Stats {
    /// How many stats were merged into this one (1 when made); detects mismatches.
    pub parts: f64,
    /// `parts` times the tag of the loss and bin count these stats are for.
    pub tag: f64,
    /// `parts` times the tag's square: with `tag`, it tells stats merged from other losses or
    /// bin counts (whose tags might average to this one's) from stats of one kind.
    pub tag_sq: f64,
    /// R_k: number of valid elements in region k.
    pub count: [f64; MAX_BINS],
    /// Sum of the valid elements' unweighted loss terms in region k.
    pub loss_sum: [f64; MAX_BINS],
    /// Sum of the valid elements' label weights (GHM-R's normaliser).
    pub weight_sum: f64,
}

/// Number of f64 values in a `Stats` (`GHM_STATS_LEN`), for a flat allreduce.
pub const STATS_LEN: usize = 4 + 2 * MAX_BINS;

impl Stats {
    pub(crate) fn new(kind: Kind, bins: u32) -> Stats {
        let t = tag(kind, bins);
        Stats {
            parts: 1.0,
            tag: t,
            tag_sq: t * t,
            count: [0.0; MAX_BINS],
            loss_sum: [0.0; MAX_BINS],
            weight_sum: 0.0,
        }
    }

    /// Adds `other` into `self`, element-wise (what an allreduce does).
    pub fn merge(&mut self, other: &Stats) {
        self.parts += other.parts;
        self.tag += other.tag;
        self.tag_sq += other.tag_sq;
        for k in 0..MAX_BINS {
            self.count[k] += other.count[k];
            self.loss_sum[k] += other.loss_sum[k];
        }
        self.weight_sum += other.weight_sum;
    }

    /// [`Error::StatsMismatch`] unless these stats are for loss `kind` with `bins` regions and
    /// hold usable values (finite, counts and weights not negative, nothing past `bins`).
    pub(crate) fn check(&self, kind: Kind, bins: u32) -> Result<(), Error> {
        let parts_ok =
            (1.0..=9.0e15).contains(&self.parts) && libm::trunc(self.parts) == self.parts;
        let t = tag(kind, bins);
        if !parts_ok || self.tag != self.parts * t || self.tag_sq != self.parts * (t * t) {
            return Err(Error::StatsMismatch);
        }
        let m = (bins as usize).min(MAX_BINS);
        let counts_ok = self.count[..m].iter().all(|c| c.is_finite() && *c >= 0.0);
        let sums_ok = self.loss_sum[..m].iter().all(|s| s.is_finite());
        let rest_empty = self.count[m..]
            .iter()
            .chain(&self.loss_sum[m..])
            .all(|v| *v == 0.0);
        let weight_ok = self.weight_sum.is_finite() && self.weight_sum >= 0.0;
        if counts_ok && sums_ok && rest_empty && weight_ok {
            Ok(())
        } else {
            Err(Error::StatsMismatch)
        }
    }
}

/// A number that identifies a loss and bin count, exact in f64 and additive.
fn tag(kind: Kind, bins: u32) -> f64 {
    let k = if kind == Kind::Classification {
        1.0
    } else {
        2.0
    };
    k * 1024.0 + f64::from(bins)
}

/// The harmonizing weights of one commit (`ghm_weights` in C): per-region coefficients,
/// the loss, and the configuration needed to apply them to any chunk of the batch.
///
/// Plain data, made only by a successful commit (a value made any other way is refused with
/// [`Error::NotCommitted`]). Applying it only reads it, so one `Weights` may serve many
/// threads at once.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Weights {
    magic: u32,
    kind: u32,
    config: Config,
    tot: f64,
    coef: [f32; MAX_BINS],
    loss: f32,
    checksum: u32,
}

const WEIGHTS_MAGIC: u32 = 0x4748_4d57; // "GHMW"

impl Weights {
    /// The loss of the committed batch (mean reduction, times loss_weight).
    pub fn loss(&self) -> f32 {
        self.loss
    }

    /// The configuration of the loss that committed these weights.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The reference's normaliser `tot` of the committed batch.
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

    /// The loss that committed these weights (`None` if the field is garbage).
    pub(crate) fn kind(&self) -> Option<Kind> {
        [Kind::Classification, Kind::Regression]
            .into_iter()
            .find(|k| *k as u32 == self.kind)
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
        !output.accumulate && output.kind != OutputKind::ElementLoss && bound < f64::from(f32::MAX)
    }

    pub(crate) fn coef_table(&self) -> &[f32; MAX_BINS] {
        &self.coef
    }

    /// Checks that these are intact weights committed for loss `kind`.
    pub(crate) fn check(&self, kind: Kind) -> Result<(), Error> {
        if self.magic != WEIGHTS_MAGIC || self.checksum != self.digest() {
            return Err(Error::NotCommitted);
        }
        if self.kind != kind as u32 {
            return Err(Error::WrongLoss);
        }
        Ok(())
    }

    fn digest(&self) -> u32 {
        let tot = self.tot.to_bits();
        let scalars = [tot as u32, (tot >> 32) as u32, self.loss.to_bits()];
        let words = [self.magic, self.kind]
            .into_iter()
            .chain(self.config.to_words());
        fnv1a(
            words
                .chain(scalars)
                .chain(self.coef.iter().map(|c| c.to_bits())),
        )
    }
}

/// The decimal with the fewest digits (up to 9 after the point) that rounds to `x`, as an
/// f64. A momentum written as 0.7 is stored as the f32 0.699999988; the reference computes
/// `1 - momentum` in double from the 0.7 it was written as, and so does the EMA step here.
fn as_written(x: f32) -> f64 {
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

/// FNV-1a over the little-endian bytes of `words`.
fn fnv1a(words: impl Iterator<Item = u32>) -> u32 {
    let mut h = 0x811c_9dc5u32;
    for w in words {
        for b in w.to_le_bytes() {
            h = (h ^ u32::from(b)).wrapping_mul(0x0100_0193);
        }
    }
    h
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
    /// The state of a loss's default configuration.
    pub(crate) fn default_for(kind: Kind) -> State {
        let mut s = State {
            magic: MAGIC,
            kind: kind as u32,
            config: Config::default_for(kind),
            ema: [0.0; MAX_BINS],
            ema_norm: [0.0; MAX_BINS],
            checksum: 0,
        };
        s.seal();
        s
    }

    /// A fresh state (EMA at 0, as the reference starts).
    pub(crate) fn new(kind: Kind, config: &Config) -> Result<State, Error> {
        config.validate(kind)?;
        let mut s = State::default_for(kind);
        s.config = *config;
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
        if self.check_any()? != kind {
            return Err(Error::WrongLoss);
        }
        Ok(())
    }

    /// Checks that this is an intact state; the loss it belongs to.
    pub(crate) fn check_any(&self) -> Result<Kind, Error> {
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
        Ok(own)
    }

    /// The harmonizing weights for a tally, and the state after its EMA update. Pure: the
    /// caller stores the new state only once the whole call has succeeded.
    pub(crate) fn harmonize(&self, stats: &Stats) -> Result<(State, Weights), Error> {
        let cfg = &self.config;
        stats.check(self.own_kind(), cfg.bins)?;
        let m = (cfg.bins as usize).min(MAX_BINS);
        let alpha = cfg.momentum;
        // An empty batch is no step: even the decay of empty regions waits for data.
        let any = stats.count.iter().any(|&r| r > 0.0);
        let decay_all = cfg.options & OPT_DECAY_EMPTY_BINS != 0 && any;
        let mut next = *self;
        let mut density = [0f64; MAX_BINS];
        for (k, d) in density.iter_mut().enumerate().take(m) {
            let r = stats.count[k];
            if alpha > 0.0 && (r > 0.0 || decay_all) {
                let rest = ((1.0 - as_written(alpha)) * r) as f32;
                next.ema[k] = alpha * self.ema[k] + rest;
                next.ema_norm[k] = alpha * self.ema_norm[k] + (1.0 - alpha);
            }
            *d = match (alpha > 0.0, cfg.options & OPT_EMA_BIAS_CORRECTION != 0) {
                (false, _) => r,
                (true, false) => f64::from(next.ema[k]),
                (true, true) => f64::from(next.ema[k]) / f64::from(next.ema_norm[k]),
            };
        }
        let counts = &stats.count[..m];
        let nonempty = counts.iter().filter(|&&r| r > 0.0).count();
        let norm = if cfg.options & OPT_NORM_BY_BINS != 0 {
            m
        } else {
            nonempty
        } as f64;
        let tot = self.tot(stats);
        let cap = if cfg.weight_cap > 0.0 {
            f64::from(cfg.weight_cap)
        } else {
            f64::INFINITY
        };
        let lambda = f64::from(cfg.loss_weight);
        let mut coef = [0f32; MAX_BINS];
        let mut loss = 0.0f64;
        let regions = counts
            .iter()
            .zip(&density)
            .zip(&stats.loss_sum)
            .zip(coef.iter_mut());
        for (((&r, &d), &sum), c_out) in regions {
            if r > 0.0 {
                let beta = (tot / (d * norm)).min(cap);
                let c = lambda * beta / tot;
                *c_out = c as f32;
                loss += c * sum;
            }
        }
        let mut w = Weights {
            magic: WEIGHTS_MAGIC,
            kind: self.kind,
            config: *cfg,
            tot,
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
        Ok((next, w))
    }

    /// The reference's normaliser: valid elements (GHM-C) or the sum of label weights
    /// (GHM-R), at least 1.
    fn tot(&self, stats: &Stats) -> f64 {
        let t = if self.kind == Kind::Regression as u32 {
            stats.weight_sum
        } else {
            stats.count.iter().sum::<f64>()
        };
        t.max(1.0)
    }

    /// The loss this (checked) state belongs to.
    pub(crate) fn own_kind(&self) -> Kind {
        if self.kind == Kind::Regression as u32 {
            Kind::Regression
        } else {
            Kind::Classification
        }
    }

    fn seal(&mut self) {
        self.checksum = self.digest();
    }

    /// FNV-1a over every field but the checksum.
    fn digest(&self) -> u32 {
        let words = [self.magic, self.kind]
            .into_iter()
            .chain(self.config.to_words());
        let arrays = self.ema.iter().chain(&self.ema_norm).map(|s| s.to_bits());
        fnv1a(words.chain(arrays))
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
        let (next, _) = s.harmonize(&stats).unwrap();
        assert_eq!(next.ema[0], 87.6); // the f32 nearest 87.6: 87.59999847...
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
