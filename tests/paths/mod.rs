//! Which instruction-set paths a test run exercises, shared by the tests that run every path.
//!
//! A SIMD path compiled into this build but missing on this CPU cannot be run: the tests
//! report it as *ignored, with the reason* (never as passed). `GHM_REQUIRE_ISA` (a comma-
//! separated list of path names, e.g. `avx2,avx512` or `neon`) turns such a skip into a
//! failure for the paths a run knows the machine has; CI derives the list from the
//! operating system's own CPU flags, an independent check of the library's detection.
#![allow(dead_code)]

use ghm::Isa;

pub const REQUIRE: &str = "GHM_REQUIRE_ISA";

/// The lower-case name of a path, as `GHM_REQUIRE_ISA` spells it.
pub fn name(isa: Isa) -> String {
    format!("{isa:?}").to_ascii_lowercase()
}

/// Why `isa` cannot be tested here, or `None` if it can.
pub fn skip_reason(isa: Isa) -> Option<String> {
    (!isa.is_available()).then(|| {
        format!(
            "{} is compiled in, but this CPU does not have it",
            name(isa)
        )
    })
}

/// The SIMD paths compiled for this target (available or not).
pub fn simd() -> impl Iterator<Item = Isa> {
    Isa::ALL.iter().copied().filter(|&i| i != Isa::Scalar)
}

/// The paths `GHM_REQUIRE_ISA` names (none when it is unset); an unknown name, or one not
/// compiled for this target, is an error.
pub fn required() -> Result<Vec<Isa>, String> {
    let Ok(list) = std::env::var(REQUIRE) else {
        return Ok(Vec::new());
    };
    list.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|want| {
            Isa::ALL
                .iter()
                .copied()
                .find(|&i| name(i) == want.to_ascii_lowercase())
                .ok_or_else(|| {
                    let known: Vec<String> = Isa::ALL.iter().map(|&i| name(i)).collect();
                    format!("{REQUIRE} names {want:?}, which is not one of this build's paths {known:?}")
                })
        })
        .collect()
}

/// Fails when a path `GHM_REQUIRE_ISA` names is not available on this CPU.
pub fn check_required() -> Result<(), String> {
    for isa in required()? {
        if let Some(why) = skip_reason(isa) {
            return Err(format!("{REQUIRE} requires {}: {why}", name(isa)));
        }
    }
    Ok(())
}
