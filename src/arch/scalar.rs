//! The portable path: the generic passes instantiated for one-lane `f32`.

use crate::histogram::{Bins, Stats};
use crate::math::Model;
use crate::pass::{self, Inputs, LaneTable, Plan};
use crate::status::Error;

/// # Safety
/// As for [`pass::validate`].
pub(crate) unsafe fn validate<M: Model>(model: &M, x: &Inputs) -> Result<(), Error> {
    pass::validate::<f32, M>(model, x)
}

/// # Safety
/// As for [`pass::accumulate`].
pub(crate) unsafe fn accumulate<M: Model>(
    model: &M,
    bins: &Bins,
    x: &Inputs,
    stats: &mut Stats,
) -> Result<(), Error> {
    let mut tables = [LaneTable::EMPTY; 1];
    pass::accumulate::<f32, M, 1>(model, bins, x, &mut tables, stats)
}

/// # Safety
/// As for [`pass::apply`].
pub(crate) unsafe fn apply<M: Model>(
    model: &M,
    bins: &Bins,
    plan: &Plan<'_>,
    x: &Inputs,
    out: *mut f32,
) -> bool {
    pass::apply::<f32, M>(model, bins, plan, x, out)
}
