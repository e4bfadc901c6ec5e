//! # ghm: Gradient Harmonizing Mechanism losses
//!
//! GHM-C (gradient-harmonized sigmoid binary cross-entropy) and GHM-R (gradient-harmonized
//! "authentic smooth L1") from Li, Liu and Wang, *Gradient Harmonized Single-stage Detector*
//! (AAAI 2019), forward and backward, with the numbers of mmdetection's `GHMC`/`GHMR` by
//! default.
//!
//! `no_std`, allocation-free and panic-free on every input: all memory is the caller's (f32
//! buffers and a fixed-size [`State`]). The same core serves the safe Rust API ([`GhmC`],
//! [`GhmR`]) and the C ABI (`include/ghm.h`).
//!
//! ```
//! use ghm::{Config, GhmC};
//! let mut loss = GhmC::new(Config { bins: 30, momentum: 0.75, ..Config::ghm_c() })?;
//! let logits = [-4.0f32, 2.5, -0.3, 6.0];
//! let targets = [0.0f32, 1.0, 0.0, 0.0];
//! let mut grad = [0.0f32; 4];
//! let value = loss.loss_grad(&logits, &targets, None, &mut grad)?;
//! assert!(value > 0.0 && grad[3] > 0.0);
//! # Ok::<(), ghm::Error>(())
//! ```
//!
//! Layers, each depending only on those above it in this list (`ARCHITECTURE.md`):
//! `error` and `config` (errors, which loss, hyper-parameters, limits), `io` (buffer
//! layouts and output specifications), `state` (the caller-owned state, the tally of a
//! batch and the commit that turns it into per-region weights), `kernel` (the vector trait,
//! per-element math, binning and the passes over buffers), `arch` (one `Vector` per ISA and
//! the one dispatch point), `loss` (the safe API) and `ffi` (the C boundary).

#![no_std]
#![deny(unsafe_op_in_unsafe_fn)]

#[cfg(feature = "std")]
extern crate std;

mod arch;
mod config;
mod error;
pub mod ffi;
mod io;
mod kernel;
mod loss;
mod state;
#[doc(hidden)]
pub mod testing;

pub use arch::Isa;
pub use config::{
    Config, Kind, MAX_BINS, OPT_ALL, OPT_DECAY_EMPTY_BINS, OPT_EMA_BIAS_CORRECTION,
    OPT_GRADIENT_INPUT, OPT_NORM_BY_BINS, OPT_NORM_BY_POSITIVES, OPT_PROBABILITY_INPUT,
};
pub use error::Error;
pub use io::{ClassLayout, Output, OutputKind};
pub use loss::{Classification, Ghm, GhmC, GhmR, Loss, Regression};
pub use state::{RegionWeights, State, Stats, STATS_LEN};

/// NOT PART OF THE API: hooks for the crate's own accuracy and ISA-agreement tests (the
/// per-element math evaluated through a given ISA path). May change or vanish at any time.
#[doc(hidden)]
pub use testing as __test;

/// A panic handler for the C libraries (feature `panic-handler`), which must bring one
/// since nothing else in a C program does. No input reaches a panic (see the README's
/// guarantees); if one ever did, the process traps rather than unwinding into C. Rust
/// firmware leaves the feature off and keeps its own handler (panic-halt, panic-probe, ...).
#[cfg(all(feature = "panic-handler", not(feature = "std"), not(test)))]
#[panic_handler]
fn panic(_: &core::panic::PanicInfo) -> ! {
    loop {
        #[cfg(any(target_arch = "x86", target_arch = "x86_64"))]
        unsafe {
            core::arch::asm!("ud2", options(noreturn))
        }
        #[cfg(target_arch = "aarch64")]
        unsafe {
            core::arch::asm!("brk #0x1", options(noreturn))
        }
        #[cfg(target_arch = "arm")]
        unsafe {
            core::arch::asm!("udf #0", options(noreturn))
        }
    }
}

/// Without std, the precompiled `core` of hosted targets still names the unwinding
/// personality routine in its unwind tables. Nothing here unwinds (panics abort), so it is
/// never called; defining it keeps the C libraries free of an unresolved symbol. With the
/// panic handler only (feature `panic-handler`): a Rust program defines its own.
#[cfg(all(
    feature = "panic-handler",
    not(feature = "std"),
    not(test),
    panic = "abort"
))]
#[no_mangle]
pub extern "C" fn rust_eh_personality() {}
