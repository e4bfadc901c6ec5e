//! Compiles the benchmarks' plain C loops (`benches/c/plain.c`) with the host's C compiler,
//! `-O3 -march=native -ffast-math`, and links them into the bench targets only. Nothing
//! else of the crate uses C: for any other target, or without a C compiler, it does nothing
//! and the benchmark reports the C loops as not built.
//!
//! It also sets `ghm_unspecialised` for unoptimised builds (opt-level 0, a dependent's
//! debug build): the passes then compile one general loop each instead of one per shape of
//! their inputs (`src/kernel/passes.rs`), whose inlined copies, which nothing at opt-level 0
//! lets share stack slots, made a path's frame 2.7 MB (258 KB with one loop). The results
//! are the same either way; this repository's own dev profile is optimised (opt-level 1), so
//! `cargo test` runs the specialised loops.

use std::env;
use std::path::PathBuf;
use std::process::Command;

fn main() {
    println!("cargo::rerun-if-changed=benches/c/plain.c");
    println!("cargo::rerun-if-env-changed=CC");
    println!("cargo::rustc-check-cfg=cfg(ghm_c_loops)");
    println!("cargo::rustc-check-cfg=cfg(ghm_unspecialised)");
    // the profile's level, or one forced by RUSTFLAGS (`-C opt-level=0`)
    let flags = env::var("CARGO_ENCODED_RUSTFLAGS").unwrap_or_default();
    let forced_0 = flags.split('\x1f').any(|f| f.ends_with("opt-level=0"));
    if env::var("OPT_LEVEL").as_deref() == Ok("0") || forced_0 {
        println!("cargo::rustc-cfg=ghm_unspecialised");
    }
    let (host, target) = (env::var("HOST"), env::var("TARGET"));
    if host.is_err() || host != target || env::var_os("CARGO_FEATURE_STD").is_none() {
        return;
    }
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("OUT_DIR"));
    let cc = env::var("CC").unwrap_or_else(|_| "cc".into());
    let obj = out.join("plain.o");
    let lib = out.join("libghm_bench_c.a");
    let built = Command::new(&cc)
        .args([
            "-O3",
            "-march=native",
            "-ffast-math",
            "-fPIC",
            "-c",
            "benches/c/plain.c",
            "-o",
        ])
        .arg(&obj)
        .status()
        .is_ok_and(|s| s.success())
        && Command::new("ar")
            .arg("crs")
            .arg(&lib)
            .arg(&obj)
            .status()
            .is_ok_and(|s| s.success());
    if !built {
        println!(
            "cargo::warning=benches/c/plain.c not built: the benchmark runs without the C loops"
        );
        return;
    }
    println!("cargo::rustc-link-arg-benches={}", lib.display());
    // GCC's vectorised expf/log1pf come from glibc's vector math library
    println!("cargo::rustc-link-arg-benches=-lmvec");
    println!("cargo::rustc-link-arg-benches=-lm");
    println!("cargo::rustc-cfg=ghm_c_loops");
}
