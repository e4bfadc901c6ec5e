//! The portable path: the generic passes instantiated for one-lane `f32`.

use crate::histogram::{Bins, Tally, MAX_BINS};
use crate::math::Model;
use crate::pass::{self, Inputs, LaneTable};
use crate::status::Error;

/// # Safety
/// As for [`pass::accumulate`].
pub(crate) unsafe fn accumulate<M: Model>(
    model: &M,
    bins: &Bins,
    x: &Inputs,
    tally: &mut Tally,
) -> Result<(), Error> {
    let mut tables = [LaneTable::EMPTY; 1];
    pass::accumulate::<f32, M, 1>(model, bins, x, &mut tables, tally)
}

/// # Safety
/// As for [`pass::apply`].
pub(crate) unsafe fn apply<M: Model>(
    model: &M,
    bins: &Bins,
    coef: &[f32; MAX_BINS],
    x: &Inputs,
    out: *mut f32,
) {
    pass::apply::<f32, M>(model, bins, coef, x, out)
}
