//! The accumulate pass's per-lane tally tables, sized per ISA by `Vector::Tables`.

use crate::config::MAX_BINS;

/// A value a tally table holds: counts (`usize`: a count never exceeds the elements of one
/// call) or compensated loss sums (`f32`, see `sum.rs`).
pub(crate) trait Cell: Copy {
    const ZERO: Self;
}

impl Cell for usize {
    const ZERO: Self = 0;
}

impl Cell for f32 {
    const ZERO: Self = 0.0;
}

/// One lane's share of the tally, one cell per region: separate tables per lane keep
/// consecutive elements of the same region from waiting on each other's stores.
pub(crate) type LaneTable<T> = [T; MAX_BINS];

/// The lane tables of one ISA's accumulate pass (`Vector::Tables`): one per lane. Counts and
/// loss sums are separate tables, so a pass that only counts neither zeroes nor reads sums.
pub(crate) trait LaneTables<T>: AsMut<[LaneTable<T>]> + AsRef<[LaneTable<T>]> {
    /// Number of tables.
    const LEN: usize;
    const EMPTY: Self;
}

impl<T: Cell, const N: usize> LaneTables<T> for [LaneTable<T>; N] {
    const LEN: usize = N;
    const EMPTY: Self = [[T::ZERO; MAX_BINS]; N];
}
