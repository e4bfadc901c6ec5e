//! The kernels: everything that touches the caller's buffers, written once, generic over
//! the [`Vector`] trait.
//!
//! - `vector`: the small vector trait every ISA implements;
//! - `math`: the per-element formulas (the loss models);
//! - `bins`: the unit regions and the binning of gradient norms;
//! - `runs`: the inputs of a pass and how they are walked;
//! - `sum`: long sums in f32 blocks (compensated), folded into f64 per block;
//! - `tally`: the accumulate pass's per-lane tables;
//! - `passes`: the passes (validate, accumulate, apply, plain BCE and ASL1 baselines), each a
//!   [`Pass`] that `arch::run` executes with one ISA's vector type;
//! - `probe`: passes over the per-element functions and the long sums, for the accuracy
//!   tests.

mod bins;
mod math;
mod passes;
mod probe;
mod runs;
mod sum;
mod tally;
mod vector;

pub(crate) use bins::Bins;
pub(crate) use math::{floor_in_i32, Asl1, Bce, Model};
pub(crate) use passes::{largest_magnitude, Accumulate, Apply, Pass, Plain, Plan, Validate};
pub(crate) use probe::{Func, Probe, SumProbe};
pub(crate) use runs::{Inputs, Targets};
pub(crate) use tally::{Cell, LaneTable};
pub(crate) use vector::{Vector, BIN_MASK, MAX_LANES, VECTOR_PATHS};
