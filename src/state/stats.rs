//! The tally of a batch: per-region counts and loss sums of one or more chunks, and the tag
//! that tells which loss and bin count they are for (the public [`Stats`]); one pass's own
//! integer counts ([`Counts`], a one-shot call's tally); and the view the commit reads of
//! either ([`Tally`]).

use crate::config::{Kind, MAX_BINS};
use crate::error::Error;

/// Per-region totals of one or more chunks of a batch: filled by the accumulate functions,
/// added together by merge, turned into region weights by the commit.
///
/// Every field is a double and every field merges by addition, so a flat sum-allreduce of
/// GHM_STATS_LEN doubles (MPI_Allreduce with MPI_SUM, NCCL's ncclSum) merges the stats of
/// data-parallel workers. A trainer that histograms on its own device may fill `count` (and
/// `loss_sum`, `weight_sum`, `positive_sum`) itself in empty stats made for its state.
///
/// Stats are made either to sum the loss terms (the loss is then the commit's) or to count
/// only (*counting* stats: about half the first pass's work; the loss is then summed by the
/// applies, where each region's coefficient is known, and the commit has none). The two
/// kinds carry different tags, so merging one into the other is refused at the commit.
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
    /// GHM-C with `GHM_OPT_NORM_BY_POSITIVES`: sum of the valid elements' targets, the
    /// positives P (the normaliser); 0 otherwise (not tallied).
    pub positive_sum: f64,
}

/// Number of f64 values in a `Stats` (`GHM_STATS_LEN`), for a flat allreduce.
pub const STATS_LEN: usize = 5 + 2 * MAX_BINS;
const _: () = assert!(core::mem::size_of::<Stats>() == STATS_LEN * 8);

impl Stats {
    pub(crate) fn new(kind: Kind, bins: u32, counting: bool) -> Stats {
        let t = tag(kind, bins, counting);
        Stats {
            parts: 1.0,
            tag: t,
            tag_sq: t * t,
            count: [0.0; MAX_BINS],
            loss_sum: [0.0; MAX_BINS],
            weight_sum: 0.0,
            positive_sum: 0.0,
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
        self.positive_sum += other.positive_sum;
    }

    /// Whether these are counting stats (no loss sums; see [`Stats`]): read from the tag,
    /// which [`check`](Self::check) has found to be one kind's.
    pub fn is_counting(&self) -> bool {
        self.tag > self.parts * COUNTING_TAG
    }

    /// [`Error::StatsMismatch`] unless these stats are for loss `kind` with `bins` regions and
    /// hold usable values (finite, counts and weights not negative, nothing past `bins`, no
    /// loss sums in counting stats).
    pub(crate) fn check(&self, kind: Kind, bins: u32) -> Result<(), Error> {
        let parts_ok =
            (1.0..=9.0e15).contains(&self.parts) && libm::trunc(self.parts) == self.parts;
        let t = tag(kind, bins, self.is_counting());
        if !parts_ok || self.tag != self.parts * t || self.tag_sq != self.parts * (t * t) {
            return Err(Error::StatsMismatch);
        }
        let regions = (bins as usize).min(MAX_BINS);
        // counting stats sum no loss terms: every sum is past the regions in use
        let summed = if self.is_counting() { 0 } else { regions };
        // Regions in use: counts in [0, inf), sums finite; past them: both 0. Every region
        // is checked without an early exit (`&`, not `&&`), which the compiler vectorises:
        // this runs on every commit and accumulate, where it was a visible part of the fixed
        // cost of a small call.
        let count_ok = |c: f64| (0.0..f64::INFINITY).contains(&c);
        let sum_ok = |s: f64| s.abs() < f64::INFINITY;
        let (counts, sums) = (self.count.split_at(regions), self.loss_sum.split_at(summed));
        let used_ok = counts.0.iter().fold(true, |ok, &c| ok & count_ok(c))
            & sums.0.iter().fold(true, |ok, &s| ok & sum_ok(s));
        let rest_empty = counts
            .1
            .iter()
            .chain(sums.1)
            .fold(true, |ok, &v| ok & (v == 0.0));
        let regions_ok = used_ok & rest_empty;
        let weight_ok = count_ok(self.weight_sum) & count_ok(self.positive_sum);
        if regions_ok && weight_ok {
            Ok(())
        } else {
            Err(Error::StatsMismatch)
        }
    }
}

/// One accumulate pass's own tally, in integers: what a one-shot call commits, without the
/// f64 tables of a [`Stats`] (a Cortex-M4 call's whole stack budget is about a kilobyte).
/// A count never exceeds the elements of one call, so `usize` holds it exactly.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Counts {
    /// R_k: number of valid elements in region k.
    pub count: [usize; MAX_BINS],
    /// Sum of the valid elements' label weights.
    pub weight_sum: f64,
    /// Sum of the valid elements' targets (only with `GHM_OPT_NORM_BY_POSITIVES`).
    pub positive_sum: f64,
}

impl Counts {
    pub(crate) const EMPTY: Counts = Counts {
        count: [0; MAX_BINS],
        weight_sum: 0.0,
        positive_sum: 0.0,
    };

    /// Adds these counts and the pass's per-region loss sums `loss_sum` (if it took them)
    /// to `stats`.
    pub(crate) fn add_to(&self, loss_sum: Option<&[f64; MAX_BINS]>, stats: &mut Stats) {
        for (s, &c) in stats.count.iter_mut().zip(&self.count) {
            *s += c as f64;
        }
        for (s, &v) in stats
            .loss_sum
            .iter_mut()
            .zip(loss_sum.into_iter().flatten())
        {
            *s += v;
        }
        stats.weight_sum += self.weight_sum;
        stats.positive_sum += self.positive_sum;
    }
}

/// What the commit reads: merged [`Stats`] (the three phases), or one pass's [`Counts`] (a
/// one-shot call, whose loss is taken in its second pass).
#[derive(Clone, Copy)]
pub(crate) enum Tally<'a> {
    Merged(&'a Stats),
    Pass(&'a Counts),
}

impl Tally<'_> {
    /// R_k as a double.
    pub(crate) fn count(&self, k: usize) -> f64 {
        let k = k & (MAX_BINS - 1);
        match self {
            Tally::Merged(s) => s.count[k],
            Tally::Pass(c) => c.count[k] as f64,
        }
    }

    /// The valid elements of regions `0..m`: the same f64 sum in region order as the
    /// regions' [`count`](Self::count)s give, and for a pass's counts an integer sum (exact
    /// either way, and no software double precision per region on a single-precision FPU).
    pub(crate) fn valid(&self, m: usize) -> f64 {
        match self {
            Tally::Merged(s) => s.count.iter().take(m).sum(),
            Tally::Pass(c) => c.count.iter().take(m).sum::<usize>() as f64,
        }
    }

    /// Whether any region has an element.
    pub(crate) fn any(&self) -> bool {
        match self {
            Tally::Merged(s) => s.count.iter().any(|&r| r > 0.0),
            Tally::Pass(c) => c.count.iter().any(|&r| r > 0),
        }
    }

    /// Whether the loss terms were summed (else the loss is taken after the commit, by
    /// the second pass or the applies).
    pub(crate) fn sums_loss(&self) -> bool {
        match self {
            Tally::Merged(s) => !s.is_counting(),
            Tally::Pass(_) => false,
        }
    }

    /// The sum of region k's unweighted loss terms (0 where they were not taken).
    pub(crate) fn loss_sum(&self, k: usize) -> f64 {
        let k = k & (MAX_BINS - 1);
        match self {
            Tally::Merged(s) => s.loss_sum[k],
            Tally::Pass(_) => 0.0,
        }
    }

    pub(crate) fn weight_sum(&self) -> f64 {
        match self {
            Tally::Merged(s) => s.weight_sum,
            Tally::Pass(c) => c.weight_sum,
        }
    }

    pub(crate) fn positive_sum(&self) -> f64 {
        match self {
            Tally::Merged(s) => s.positive_sum,
            Tally::Pass(c) => c.positive_sum,
        }
    }
}

/// A number that identifies a loss, bin count and kind of stats, exact in f64 and additive:
/// below [`COUNTING_TAG`] for stats that sum the loss terms, above it for counting stats.
fn tag(kind: Kind, bins: u32, counting: bool) -> f64 {
    let k = if kind == Kind::Classification {
        1.0
    } else {
        2.0
    };
    let counting = if counting { COUNTING_TAG } else { 0.0 };
    counting + k * 1024.0 + f64::from(bins)
}

/// What a counting stats' tag adds: more than any tag of the other kind (at most
/// 2 * 1024 + MAX_BINS).
const COUNTING_TAG: f64 = 4096.0;
