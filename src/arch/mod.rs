//! The instruction-set paths and the one dispatch point.
//!
//! Each submodule implements the kernels' [`Vector`](crate::kernel::Vector) trait for one
//! ISA and has one `#[target_feature]` entry point, `run`, that runs any
//! [`Pass`] with that vector type. [`run`] below picks the entry point for a requested
//! [`Isa`], after checking that the CPU has it. Adding an ISA: one file here (its `Vector`
//! and `run`), one `Isa` variant, one arm in [`run`] and in [`Isa::is_available`].

use crate::error::Error;
use crate::kernel::Pass;

#[cfg(all(target_arch = "aarch64", target_feature = "neon"))]
mod aarch64;
mod scalar;
#[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
mod x86_64;

/// An instruction-set path for the kernels.
///
/// Every variant exists on every target, so code naming one compiles everywhere; a path of
/// another architecture (e.g. `Neon` on x86_64) is simply never available: it is not in
/// [`Isa::ALL`], [`is_available`](Isa::is_available) is false, and forcing it with
/// `set_isa` is [`Error::Isa`]. The same holds for SIMD paths on targets whose ABI has no
/// vector registers: x86_64 targets without SSE2 (soft-float kernel targets such as
/// `x86_64-unknown-none`) and aarch64 targets without NEON get the scalar path only.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u32)]
pub enum Isa {
    /// The fastest path this CPU supports.
    Auto = 0,
    /// Portable one-lane code, available everywhere.
    Scalar = 1,
    /// x86_64 AVX2 with FMA, 8 lanes (detected at run time with cpuid and xgetbv).
    Avx2 = 2,
    /// aarch64 Advanced SIMD, 4 lanes (part of the aarch64 baseline).
    Neon = 3,
    /// x86_64 AVX-512F (with AVX2 and FMA), 16 lanes (detected at run time with cpuid and
    /// xgetbv, including that the OS saves the ZMM and opmask registers).
    Avx512 = 4,
}

impl Isa {
    /// Every concrete path compiled into this build for this target architecture, slowest
    /// first, whether or not this CPU supports it (see [`is_available`](Isa::is_available)).
    #[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
    pub const ALL: &'static [Isa] = &[Isa::Scalar, Isa::Avx2, Isa::Avx512];
    /// Every concrete path compiled into this build for this target architecture, slowest
    /// first, whether or not this CPU supports it (see [`is_available`](Isa::is_available)).
    #[cfg(all(target_arch = "aarch64", target_feature = "neon"))]
    pub const ALL: &'static [Isa] = &[Isa::Scalar, Isa::Neon];
    /// Every concrete path compiled into this build for this target architecture, slowest
    /// first, whether or not this CPU supports it (see [`is_available`](Isa::is_available)).
    #[cfg(not(any(
        all(target_arch = "x86_64", target_feature = "sse2"),
        all(target_arch = "aarch64", target_feature = "neon")
    )))]
    pub const ALL: &'static [Isa] = &[Isa::Scalar];

    /// Whether this CPU can run the path (`Auto` and `Scalar` always can; a path of another
    /// architecture never can).
    pub fn is_available(self) -> bool {
        match self {
            Isa::Auto | Isa::Scalar => true,
            #[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
            Isa::Avx2 => x86_64::has_avx2_fma(),
            #[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
            Isa::Avx512 => x86_64::has_avx512f(),
            #[cfg(all(target_arch = "aarch64", target_feature = "neon"))]
            Isa::Neon => true,
            #[allow(unreachable_patterns)]
            _ => false,
        }
    }

    /// The concrete path `Auto` stands for on this CPU (the fastest available); other paths
    /// are returned as they are.
    pub fn resolve(self) -> Isa {
        match self {
            Isa::Auto => Isa::ALL
                .iter()
                .rev()
                .copied()
                .find(|isa| isa.is_available())
                .unwrap_or(Isa::Scalar),
            other => other,
        }
    }
}

/// Runs `pass` on the path `isa` (`Auto`: the fastest this CPU has); [`Error::Isa`] if this
/// CPU cannot run it. The only place that enters a `#[target_feature]` function, and only
/// after that check.
///
/// # Safety
/// The pass's own contract holds (the pointers it holds are valid as it documents).
pub(crate) unsafe fn run<P: Pass>(isa: Isa, pass: P) -> Result<P::Out, Error> {
    if !isa.is_available() {
        return Err(Error::Isa);
    }
    // SAFETY: the path is available on this CPU (checked above); the pass's contract is the
    // caller's.
    Ok(unsafe {
        match isa.resolve() {
            #[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
            Isa::Avx2 => x86_64::avx2::run(pass),
            #[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
            Isa::Avx512 => x86_64::avx512::run(pass),
            #[cfg(all(target_arch = "aarch64", target_feature = "neon"))]
            Isa::Neon => aarch64::run(pass),
            // Scalar; `resolve` gives only available paths of this build.
            _ => scalar::run(pass),
        }
    })
}
