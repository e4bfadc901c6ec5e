//! Every f32 in the range each vectorised function is used on, for every ISA path compiled
//! in, against a correctly rounded (or libm) result. Slow in debug builds; run with
//!
//! ```text
//! cargo test --release --test ulp_exhaustive -- --ignored --nocapture
//! ```
//!
//! `GHM_ULP_STRIDE=k` checks every k-th f32 only (for slow runs, e.g. under an emulator);
//! a run with k > 1 is a sample, not the exhaustive check.
//!
//! The bounds asserted here are the ones documented at the top of `src/kernel/math.rs`. One test
//! per path (`avx2::...`); a path compiled in but missing on this CPU is reported as
//! ignored, with the reason (see `tests/paths/mod.rs`).

mod paths;

use ghm::Isa;
use libtest_mimic::{Arguments, Completion, Failed, Trial};

/// The documented bounds (ULP): exp_nonpos, log1p_unit, sigmoid.
const EXP_MAX_ULP: u32 = 1;
const LOG1P_MAX_ULP: u32 = 2;
const SIGMOID_MAX_ULP: u32 = 2;

fn ulps(a: f32, b: f32) -> u32 {
    if a == b {
        return 0;
    }
    if a.is_nan() || b.is_nan() || a.is_sign_negative() != b.is_sign_negative() {
        return u32::MAX;
    }
    a.to_bits().abs_diff(b.to_bits())
}

type Probe = fn(Isa, &[f32], &mut [f32]) -> Result<(), ghm::Error>;

/// The largest ULP distance over every f32 whose bits lie in `lo..=hi` (and the argument
/// where it occurs), split over the available cores.
fn sweep(isa: Isa, lo: u32, hi: u32, f: Probe, want: fn(f32) -> f32) -> (u32, f32) {
    let stride: u64 = std::env::var("GHM_ULP_STRIDE").map_or(1, |s| s.parse().unwrap());
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get()) as u64;
    let total = u64::from(hi - lo) + 1;
    let per = total.div_ceil(threads);
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                s.spawn(move || {
                    let start = u64::from(lo) + t * per;
                    let end = (start + per).min(u64::from(hi) + 1);
                    let mut worst = (0u32, 0f32);
                    let (mut xs, mut ys) = (vec![0f32; 1 << 16], vec![0f32; 1 << 16]);
                    let mut i = start;
                    while i < end {
                        let n = (end - i).min(xs.len() as u64) as usize;
                        for (j, x) in xs[..n].iter_mut().enumerate() {
                            *x = f32::from_bits((i + j as u64) as u32);
                        }
                        let n = if stride > 1 {
                            let mut m = 0;
                            for j in (0..n).filter(|j| (i + *j as u64).is_multiple_of(stride)) {
                                xs[m] = xs[j];
                                m += 1;
                            }
                            m
                        } else {
                            n
                        };
                        f(isa, &xs[..n], &mut ys[..n]).unwrap();
                        for (&x, &y) in xs[..n].iter().zip(&ys[..n]) {
                            let u = ulps(y, want(x));
                            if u > worst.0 {
                                worst = (u, x);
                            }
                        }
                        i += (end - i).min(xs.len() as u64);
                    }
                    worst
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap())
            .fold((0, 0.0), |a, b| if b.0 > a.0 { b } else { a })
    })
}

fn sigmoid_ref(x: f32) -> f32 {
    (1.0 / (1.0 + (-f64::from(x)).exp())) as f32
}

/// exp_nonpos, log1p_unit and sigmoid of `isa` are within their documented bounds for every
/// f32 of their ranges.
fn within_documented_ulp_bounds_for_every_f32(isa: Isa) -> Result<(), Failed> {
    let neg = |x: f32| x.to_bits();
    {
        // exp_nonpos on [-87.33, 0]: -0.0 up to -87.33 in bits, and +0.0.
        let (e, ex) = sweep(
            isa,
            neg(-0.0),
            neg(-87.33),
            ghm::__test::exp_nonpos,
            libm::expf,
        );
        let (e0, _) = sweep(isa, 0, 0, ghm::__test::exp_nonpos, libm::expf);
        // log1p_unit on [0, 1].
        let (l, lx) = sweep(
            isa,
            0,
            1f32.to_bits(),
            ghm::__test::log1p_unit,
            libm::log1pf,
        );
        // The sigmoid wherever its result is normal: x >= -87.33 (every f32 up to 88, where
        // it is 1 to within far less than an ULP, and every one beyond).
        let (sn, snx) = sweep(
            isa,
            neg(-0.0),
            neg(-87.33),
            ghm::__test::sigmoid,
            sigmoid_ref,
        );
        let (sp, spx) = sweep(
            isa,
            0,
            f32::INFINITY.to_bits() - 1,
            ghm::__test::sigmoid,
            sigmoid_ref,
        );
        eprintln!(
            "{isa:?}: exp_nonpos max {} ULP (x={ex:e}), log1p_unit max {l} ULP (x={lx:e}), \
             sigmoid max {} ULP (x={:e})",
            e.max(e0),
            sn.max(sp),
            if sn >= sp { snx } else { spx }
        );
        if e.max(e0) > EXP_MAX_ULP {
            return Err(format!("{isa:?} exp_nonpos: {e} ULP at {ex:e}").into());
        }
        if l > LOG1P_MAX_ULP {
            return Err(format!("{isa:?} log1p_unit: {l} ULP at {lx:e}").into());
        }
        if sn.max(sp) > SIGMOID_MAX_ULP {
            return Err(format!("{isa:?} sigmoid: {sn}/{sp} ULP").into());
        }
        // Below the range, exp_nonpos flushes to 0 (libm gives a subnormal).
        let xs = [-87.34f32, -100.0, -1e30, f32::MIN, f32::NEG_INFINITY];
        let mut ys = [1f32; 5];
        ghm::__test::exp_nonpos(isa, &xs, &mut ys).unwrap();
        if ys != [0.0; 5] {
            return Err(format!("{isa:?}: exp_nonpos below its range gave {ys:?}").into());
        }
    }
    Ok(())
}

fn main() {
    let args = Arguments::from_args();
    let tests = Isa::ALL
        .iter()
        .map(|&isa| {
            let name = format!(
                "{}::within_documented_ulp_bounds_for_every_f32",
                paths::name(isa)
            );
            Trial::ignorable_test(name, move || match paths::skip_reason(isa) {
                Some(why) => Ok(Completion::ignored_with(why)),
                None => {
                    within_documented_ulp_bounds_for_every_f32(isa).map(|()| Completion::Completed)
                }
            })
            // Exhaustive over ~3.4e9 f32 per path: run with --release -- --ignored.
            .with_ignored_flag(true)
        })
        .collect();
    libtest_mimic::run(&args, tests).exit();
}
