//! The accumulate pass's per-lane tally tables, sized per ISA by `Vector::Tables`.

use crate::config::MAX_BINS;

/// One lane's share of the tally: separate tables per lane keep consecutive elements of the
/// same region from waiting on each other's stores.
#[derive(Clone, Copy)]
pub(crate) struct LaneTable {
    pub count: [u64; MAX_BINS],
    pub sum: [f64; MAX_BINS],
}

impl LaneTable {
    const EMPTY: LaneTable = LaneTable {
        count: [0; MAX_BINS],
        sum: [0.0; MAX_BINS],
    };
}

/// The lane tables of one ISA's accumulate pass (`Vector::Tables`): one per lane.
pub(crate) trait LaneTables: AsMut<[LaneTable]> {
    /// Number of tables.
    const LEN: usize;
    const EMPTY: Self;
}

impl<const N: usize> LaneTables for [LaneTable; N] {
    const LEN: usize = N;
    const EMPTY: Self = [LaneTable::EMPTY; N];
}
