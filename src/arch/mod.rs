//! The ISA kernels and the one dispatch point.
//!
//! Each submodule instantiates the generic passes of `pass.rs` for one ISA behind
//! `#[target_feature]` entry points; [`kernels`] picks the entry points for a requested
//! [`Isa`], after checking that the CPU has it.

use crate::histogram::{Bins, Tally, MAX_BINS};
use crate::math::Model;
use crate::pass::Inputs;
use crate::status::Error;

mod scalar;

/// An instruction-set path for the kernels.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u32)]
pub enum Isa {
    /// The fastest path this CPU supports.
    Auto = 0,
    /// Portable one-lane code, available everywhere.
    Scalar = 1,
}

impl Isa {
    /// Every path this build knows, whether or not the CPU supports it.
    pub const ALL: [Isa; 1] = [Isa::Scalar];

    /// Whether this CPU can run the path (`Auto` always can).
    pub fn is_available(self) -> bool {
        match self {
            Isa::Auto | Isa::Scalar => true,
        }
    }

    /// The concrete path `Auto` stands for on this CPU; other paths are returned as they are.
    pub fn resolve(self) -> Isa {
        match self {
            Isa::Auto => Isa::Scalar,
            other => other,
        }
    }
}

/// The two passes of one ISA path for one loss model.
pub(crate) struct Kernels<M> {
    pub accumulate: unsafe fn(&M, &Bins, &Inputs, &mut Tally) -> Result<(), Error>,
    pub apply: unsafe fn(&M, &Bins, &[f32; MAX_BINS], &Inputs, *mut f32),
}

/// The kernels for `isa`; [`Error::Isa`] if this CPU cannot run it.
pub(crate) fn kernels<M: Model>(isa: Isa) -> Result<Kernels<M>, Error> {
    if !isa.is_available() {
        return Err(Error::Isa);
    }
    Ok(match isa.resolve() {
        Isa::Auto | Isa::Scalar => Kernels {
            accumulate: scalar::accumulate::<M>,
            apply: scalar::apply::<M>,
        },
    })
}
