//! Errors, shared by the Rust API and the C boundary (where each is a `ghm_status` code),
//! and the one table of their messages.

use core::fmt;

/// Why a call was refused. A call that returns an error has written nothing: no loss, no
/// gradient, no state change. The discriminant is the C status code.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(i32)]
#[non_exhaustive]
pub enum Error {
    /// A required pointer is NULL.
    Null = 1,
    /// A float pointer is not aligned to 4 bytes, or a state pointer to its alignment.
    Misaligned = 2,
    /// A buffer's length does not fit the address space, or two buffers that must have the
    /// same length do not.
    Length = 3,
    /// An output buffer partly overlaps an input or another output (the gradient may be
    /// exactly the logits/pred buffer).
    Overlap = 4,
    /// A configuration field is out of range (or a class-index call on a GHM-C loss with
    /// `OPT_GRADIENT_INPUT`, whose options exclude it).
    Config = 5,
    /// The state was never initialised or is corrupted.
    State = 6,
    /// The state belongs to the other loss (GHM-C vs GHM-R).
    WrongLoss = 7,
    /// NaN or infinity in a logit, prediction or GHM-R target.
    NonFinite = 8,
    /// A GHM-C target outside [0, 1] (NaN and infinities included).
    Target = 9,
    /// A label weight that is negative, NaN or infinite.
    Weight = 10,
    /// A result is not representable as a finite f32: a residual `pred - target`, the loss, a
    /// harmonized weight, or a value an apply would write (scaled, or added to the buffer).
    Overflow = 11,
    /// An internal invariant failed; never expected, reported instead of panicking.
    Internal = 12,
    /// The requested instruction-set path is not available on this CPU or in this build.
    Isa = 13,
    /// Stats of another loss or bin count (or corrupted, or counting stats merged with
    /// summing ones), given to a commit or an accumulate.
    StatsMismatch = 14,
    /// Weights that no commit produced (or corrupted), given to an apply.
    NotCommitted = 15,
    /// A class-index layout the passes cannot walk: neither stride is 1, elements would
    /// overlap, or more than 2^24 classes.
    Layout = 16,
    /// An output specification with an unknown kind or flag, or a scale that is not finite.
    Output = 17,
    /// A GHM-C probability input (`OPT_PROBABILITY_INPUT`) outside [0, 1], or a gradient
    /// input (`OPT_GRADIENT_INPUT`) outside [-1, 1].
    Probability = 18,
    /// The loss of a batch committed from counting stats, asked of the commit or its
    /// region weights: such a batch's loss is summed by its applies (`apply_loss`).
    NoLoss = 19,
}

impl Error {
    /// Every error, in code order.
    pub const ALL: [Error; 19] = [
        Error::Null,
        Error::Misaligned,
        Error::Length,
        Error::Overlap,
        Error::Config,
        Error::State,
        Error::WrongLoss,
        Error::NonFinite,
        Error::Target,
        Error::Weight,
        Error::Overflow,
        Error::Internal,
        Error::Isa,
        Error::StatsMismatch,
        Error::NotCommitted,
        Error::Layout,
        Error::Output,
        Error::Probability,
        Error::NoLoss,
    ];

    /// The C status code (never 0).
    pub const fn code(self) -> i32 {
        self as i32
    }

    /// The error for a C status code, `None` for 0 and unknown codes.
    pub fn from_code(code: i32) -> Option<Error> {
        Error::ALL.iter().copied().find(|e| e.code() == code)
    }

    /// A short, static description (the text `ghm_status_str` returns in C).
    pub fn message(self) -> &'static str {
        let m = Self::c_message(self.code());
        m.strip_suffix('\0').unwrap_or(m)
    }

    /// [`message`](Self::message) with its terminating NUL, for C.
    pub(crate) fn c_message(code: i32) -> &'static str {
        usize::try_from(code)
            .ok()
            .and_then(|i| MESSAGES.get(i))
            .copied()
            .unwrap_or(UNKNOWN)
    }
}

/// The message of every status code, indexed by code (0 is success), each NUL-terminated so
/// that C receives the same text. The one place an error is described in words.
const MESSAGES: [&str; Error::ALL.len() + 1] = [
    "ok\0",
    "a required pointer is NULL\0",
    "a pointer is not aligned for its type\0",
    "a length does not fit the address space or does not match\0",
    "an output overlaps an input or another output\0",
    "a configuration field is out of range\0",
    "the state is uninitialised or corrupted\0",
    "the state or region weights belong to the other loss\0",
    "NaN or infinity in an input\0",
    "a target is outside [0, 1]\0",
    "a label weight is negative, NaN or infinite\0",
    "a result overflows float\0",
    "internal error\0",
    "the requested instruction-set path is not available\0",
    "the stats are for another loss or bin count, or corrupted\0",
    "the region weights were not produced by a commit\0",
    "the class layout is not supported\0",
    "the output specification is invalid\0",
    "a probability input is outside [0, 1] (or a gradient input outside [-1, 1])\0",
    "counting stats hold no loss: it is the sum of the applies' losses\0",
];

/// The message of a code this library does not define.
const UNKNOWN: &str = "unknown status\0";

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.message())
    }
}

#[cfg(feature = "std")]
impl std::error::Error for Error {}
