//! Every SIMD path compiled for this target agrees with the scalar path, and the dispatch
//! refuses paths the CPU (or this build) cannot run.
//!
//! One test per SIMD path compiled for this target (`avx2::agrees_with_scalar`, ...). A path
//! this CPU lacks is reported as ignored, with the reason; `GHM_REQUIRE_ISA` makes it a
//! failure instead (see `tests/paths/mod.rs`). The harness is libtest-mimic, which can
//! ignore a test at run time and say why.
//!
//! Agreement. The SIMD paths fuse `mul_add`, so the GHM-C sigmoid (and hence the gradient
//! direction `p - t` and the gradient norm `|p - t|`) may differ from the scalar path in the
//! last bits; GHM-R uses no fused operation. What the comparison allows, and nothing else:
//! - the direction of each element within 4 ULP of its operands (`p` and `t` for GHM-C);
//! - each gradient within 4 ULP of the scalar one plus the direction's difference times the
//!   region's coefficient (a cancelling `p - t` turns one ULP of `p` into many ULP of the
//!   result); the loss within 1e-6 relative;
//! - the state bit-identical, unless an element lands in a different region on the two
//!   paths. Each such element is identified explicitly: its gradient norm, computed in f64
//!   from the formulas, must lie within 1e-6 of a region edge, otherwise the test fails. The
//!   call is then repeated with those elements' label weights set to 0, and must agree
//!   strictly (state included).

mod common;
mod paths;

use std::cell::Cell;

use common::{batch, edge_distance, element, Rng};
use ghm::{
    ClassLayout, Config, Error, Ghm, GhmC, GhmR, Isa, Kind, Loss, Output, State,
    OPT_DECAY_EMPTY_BINS, OPT_EMA_BIAS_CORRECTION, OPT_NORM_BY_BINS,
};
use libtest_mimic::{Arguments, Completion, Failed, Trial};
use quickcheck::{QuickCheck, TestResult};

/// A path of another architecture: never compiled in, never available.
fn foreign() -> Isa {
    if cfg!(target_arch = "aarch64") {
        Isa::Avx2
    } else {
        Isa::Neon
    }
}

/// `Isa::ALL` lists exactly the paths compiled for this target, Scalar first.
fn the_path_list_matches_the_target() {
    assert!(Isa::ALL.contains(&Isa::Scalar));
    assert!(!Isa::ALL.contains(&Isa::Auto));
    if cfg!(all(target_arch = "x86_64", target_feature = "sse2")) {
        assert_eq!(Isa::ALL, &[Isa::Scalar, Isa::Avx2, Isa::Avx512]);
    }
    if cfg!(all(target_arch = "aarch64", target_feature = "neon")) {
        assert_eq!(Isa::ALL, &[Isa::Scalar, Isa::Neon]);
    }
}

/// An available path can be forced on both losses.
fn set_isa_accepts(isa: Isa) {
    let mut g = GhmC::default();
    assert_eq!(g.set_isa(isa), Ok(()), "{isa:?}");
    let mut r = GhmR::default();
    assert_eq!(r.set_isa(isa), Ok(()), "{isa:?}");
}

/// Auto picks the last (fastest) available path of `Isa::ALL`; every other value resolves
/// to itself.
fn auto_resolves_to_the_fastest_available_path() {
    let fastest = *Isa::ALL.iter().rev().find(|i| i.is_available()).unwrap();
    assert_eq!(Isa::Auto.resolve(), fastest);
    assert!(Isa::Auto.is_available());
    for &isa in Isa::ALL {
        assert_eq!(isa.resolve(), isa);
    }
}

fn forcing_an_unavailable_path_is_an_error_and_changes_nothing() {
    let other = foreign();
    assert!(!Isa::ALL.contains(&other));
    assert!(!other.is_available());
    let mut unavailable: Vec<Isa> = Isa::ALL
        .iter()
        .copied()
        .filter(|i| !i.is_available())
        .collect();
    unavailable.push(other);
    let (a, b) = ([0.5f32, -2.0, 3.0], [1.0f32, 0.0, 0.0]);
    for isa in unavailable {
        let mut g = GhmC::default();
        g.set_isa(Isa::Scalar).unwrap();
        let before = format!("{g:?}");
        assert_eq!(g.set_isa(isa), Err(Error::Isa), "{isa:?}");
        assert_eq!(
            format!("{g:?}"),
            before,
            "{isa:?}: a refused set_isa changed the loss"
        );
        let mut r = GhmR::default();
        assert_eq!(r.set_isa(isa), Err(Error::Isa), "{isa:?}");
        let mut out = [0f32; 3];
        assert_eq!(ghm::__test::exp_nonpos(isa, &b, &mut out), Err(Error::Isa));
        // The loss still works, on the path it had.
        let mut grad = [0f32; 3];
        assert!(g.loss_grad(&a, &b, None, &mut grad).is_ok());
    }
}

/// One random case: loss, configuration, start state and (unaligned) buffers.
struct Case {
    kind: Kind,
    cfg: Config,
    state: State,
    a: Vec<f32>,
    b: Vec<f32>,
    w: Option<Vec<f32>>,
    /// Offsets of a, b, w and the gradient inside their (larger) allocations.
    offsets: [usize; 4],
    planted: usize,
}

/// `x` logit or residual whose gradient norm is `q`, for planting elements on edges.
fn at_norm(kind: Kind, mu: f32, q: f64, positive: bool) -> (f32, f32) {
    match kind {
        Kind::Classification => {
            // t = 0: g = p; t = 1: g = 1 - p.
            let x = (q / (1.0 - q)).ln();
            if positive {
                (-x as f32, 1.0)
            } else {
                (x as f32, 0.0)
            }
        }
        Kind::Regression => {
            let d = q * f64::from(mu) / (1.0 - q * q).sqrt();
            let b = 0.25f32;
            (b + if positive { d as f32 } else { -d as f32 }, b)
        }
    }
}

fn case(seed: u64, kind: Kind) -> Case {
    let mut rng = Rng::new(seed);
    let pick = |rng: &mut Rng, n: usize| (rng.next_u64() % n as u64) as usize;
    let cfg = Config {
        bins: [1u32, 2, 3, 10, 16, 17, 30, 32, 33, 64][pick(&mut rng, 10)],
        momentum: [0.0f32, 0.75, 0.9][pick(&mut rng, 3)],
        mu: [0.02f32, 1.0][pick(&mut rng, 2)],
        loss_weight: [1.0f32, 0.5][pick(&mut rng, 2)],
        // (Options that change the inputs' meaning are not covered: the direction hook
        // computes the plain models.)
        options: [
            0,
            OPT_NORM_BY_BINS | OPT_EMA_BIAS_CORRECTION | OPT_DECAY_EMPTY_BINS,
        ][pick(&mut rng, 2)],
        ..Config::default_for(kind)
    };
    let n = pick(&mut rng, 1001);
    let weights = rng.next_u64().is_multiple_of(2);
    let (mut a, mut b, w) = batch(kind, &mut rng, n, weights);
    // Plant elements on region edges (to within a few ULP) in a third of the cases.
    let mut planted = 0;
    if n > 0 && cfg.bins > 1 && rng.next_u64().is_multiple_of(3) {
        for _ in 0..1 + pick(&mut rng, 32) {
            let i = pick(&mut rng, n);
            let k = 1 + pick(&mut rng, cfg.bins as usize - 1);
            let q = f64::from(k as f32 / cfg.bins as f32);
            let (x, t) = at_norm(kind, cfg.mu, q, rng.next_u64().is_multiple_of(2));
            // Prefer a value that the fastest path puts in another region than the scalar
            // path does (to exercise that rule); else a few ULP off the edge.
            let jitter = pick(&mut rng, 9) as i32 - 4;
            let near = |j: i32| (f64::from(x) + f64::from(j) * ulp(x)) as f32;
            a[i] = (-64..=64)
                .map(near)
                .find(|&x| {
                    let r = |isa| region(cfg.bins, direction(isa, kind, cfg.mu, x, t).abs());
                    r(Isa::Scalar) != r(Isa::Auto)
                })
                .unwrap_or(near(jitter));
            b[i] = t;
            planted += 1;
        }
    }
    // A start state that has seen a few batches (scalar path), so the EMA is not at 0.
    let state = match kind {
        Kind::Classification => {
            let mut g = GhmC::new(cfg).unwrap();
            for _ in 0..pick(&mut rng, 3) {
                let (x, t, w) = batch(kind, &mut rng, 300, true);
                g.loss(&x, &t, w.as_deref()).unwrap();
            }
            *g.state()
        }
        Kind::Regression => {
            let mut g = GhmR::new(cfg).unwrap();
            for _ in 0..pick(&mut rng, 3) {
                let (x, t, w) = batch(kind, &mut rng, 300, true);
                g.loss(&x, &t, w.as_deref()).unwrap();
            }
            *g.state()
        }
    };
    let offsets = [0; 4].map(|_| 1 + pick(&mut rng, 7));
    Case {
        kind,
        cfg,
        state,
        a,
        b,
        w,
        offsets,
        planted,
    }
}

type Classification = ghm::Classification;

/// `v` copied into a fresh allocation at `off` (so that it starts unaligned).
fn at_offset(v: &[f32], off: usize) -> Vec<f32> {
    let mut buf = vec![f32::NAN; off + v.len() + 3];
    buf[off..off + v.len()].copy_from_slice(v);
    buf
}

/// One call on `isa` from the case's state: (loss, gradient, state after).
fn call<L: Loss>(c: &Case, isa: Isa, w: Option<&[f32]>) -> (f32, Vec<f32>, State) {
    let n = c.a.len();
    let [oa, ob, ow, og] = c.offsets;
    let (ba, bb) = (at_offset(&c.a, oa), at_offset(&c.b, ob));
    let bw = w.map(|w| at_offset(w, ow));
    let mut bg = vec![f32::NAN; og + n + 3];
    let mut g = Ghm::<L>::from_state(c.state).unwrap();
    g.set_isa(isa).unwrap();
    let loss = g
        .loss_grad(
            &ba[oa..oa + n],
            &bb[ob..ob + n],
            bw.as_ref().map(|w| &w[ow..ow + n]),
            &mut bg[og..og + n],
        )
        .unwrap_or_else(|e| panic!("{isa:?}: {e:?}"));
    assert!(bg[..og].iter().chain(&bg[og + n..]).all(|x| x.is_nan()));
    (loss, bg[og..og + n].to_vec(), *g.state())
}

/// The spacing of f32 at `x`.
fn ulp(x: f32) -> f64 {
    let x = x.abs();
    if !x.is_finite() {
        return f64::INFINITY;
    }
    f64::from(f32::from_bits(x.to_bits() + 1)) - f64::from(x)
}

/// The region of a gradient norm, by the reference's definition with f32 edges.
fn region(bins: u32, g: f32) -> usize {
    (0..bins as usize)
        .rev()
        .find(|&k| k as f32 / bins as f32 <= g)
        .unwrap_or(0)
}

fn direction(isa: Isa, kind: Kind, mu: f32, a: f32, b: f32) -> f32 {
    let mut d = [0f32];
    ghm::__test::direction(isa, kind, mu, &[a], &[b], &mut d).unwrap();
    d[0]
}

fn directions(c: &Case, isa: Isa) -> Vec<f32> {
    let mut d = vec![0f32; c.a.len()];
    ghm::__test::direction(isa, c.kind, c.cfg.mu, &c.a, &c.b, &mut d).unwrap();
    d
}

// Per test thread: the path under test (quickcheck takes a plain `fn`) and what it met.
thread_local! {
    static PATH: Cell<Isa> = const { Cell::new(Isa::Scalar) };
    static CASES: Cell<usize> = const { Cell::new(0) };
    static EDGE_CASES: Cell<usize> = const { Cell::new(0) };
    static FLIPPED_ELEMENTS: Cell<usize> = const { Cell::new(0) };
    static ELEMENTS: Cell<usize> = const { Cell::new(0) };
    static DIFFERENT_DIRECTIONS: Cell<usize> = const { Cell::new(0) };
}

fn bump(counter: &'static std::thread::LocalKey<Cell<usize>>, by: usize) {
    counter.with(|c| c.set(c.get() + by));
}

/// Compares `isa` with the scalar path on one case; weights `w` override the case's.
fn compare<L: Loss>(c: &Case, isa: Isa, w: Option<&[f32]>, strict: bool) -> Result<(), String> {
    let n = c.a.len();
    let weight = |i: usize| w.map_or(1.0, |w| w[i]);
    let (ds, dv) = (directions(c, Isa::Scalar), directions(c, isa));
    // Directions: within 4 ULP of their operands.
    bump(&ELEMENTS, n);
    let differ = (0..n).filter(|&i| dv[i] != ds[i]).count();
    bump(&DIFFERENT_DIRECTIONS, differ);
    for i in 0..n {
        let scale = match c.kind {
            Kind::Classification => (ds[i] + c.b[i]).abs().max(c.b[i].abs()),
            Kind::Regression => ds[i].abs(),
        };
        let diff = (f64::from(dv[i]) - f64::from(ds[i])).abs();
        if diff > 4.0 * ulp(scale) {
            return Err(format!(
                "element {i} (a={:e}, b={:e}): direction {:e} on {isa:?}, {:e} on Scalar",
                c.a[i], c.b[i], dv[i], ds[i]
            ));
        }
    }
    // Elements whose region differs between the paths: each must be an edge element.
    let bins = c.cfg.bins;
    let mut flipped = Vec::new();
    for i in (0..n).filter(|&i| weight(i) > 0.0) {
        let (ks, kv) = (region(bins, ds[i].abs()), region(bins, dv[i].abs()));
        if ks != kv {
            let g = element(c.kind, c.cfg.mu, c.a[i], c.b[i]).0;
            let dist = edge_distance(c.kind, bins, g);
            if dist.is_nan() || dist >= 1e-6 {
                return Err(format!(
                    "element {i} (a={:e}, b={:e}, g={g:e}) is in region {kv} on {isa:?} and \
                     {ks} on Scalar, but is {dist:e} from the nearest edge",
                    c.a[i], c.b[i]
                ));
            }
            flipped.push(i);
        }
    }
    let (ls, gs, ss) = call::<L>(c, Isa::Scalar, w);
    let (lv, gv, sv) = call::<L>(c, isa, w);
    if !flipped.is_empty() {
        if strict {
            return Err(format!("elements {flipped:?} changed region with weight 0"));
        }
        bump(&EDGE_CASES, 1);
        bump(&FLIPPED_ELEMENTS, flipped.len());
        for &i in &flipped {
            if !(gv[i].is_finite() && gs[i].is_finite() && gv[i].signum() == gs[i].signum()) {
                return Err(format!("edge element {i}: gradient {} vs {}", gv[i], gs[i]));
            }
        }
        // Without the edge elements the paths must agree strictly.
        let mut masked: Vec<f32> = (0..n).map(weight).collect();
        for &i in &flipped {
            masked[i] = 0.0;
        }
        return compare::<L>(c, isa, Some(&masked), true);
    }
    // No region differs: the state is identical, the loss and gradients agree.
    let bits = |s: &State| s.ema().iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    if sv != ss || bits(&sv) != bits(&ss) {
        return Err(format!("state differs: {:?} vs {:?}", sv.ema(), ss.ema()));
    }
    if (f64::from(lv) - f64::from(ls)).abs() > 1e-6 * f64::from(ls).abs() {
        return Err(format!("loss {lv:e} on {isa:?}, {ls:e} on Scalar"));
    }
    // Each region's coefficient, from its element with the largest direction.
    let mut coef = vec![(0f32, 0f64); bins as usize];
    for i in (0..n).filter(|&i| weight(i) > 0.0) {
        let k = region(bins, ds[i].abs());
        if ds[i].abs() > coef[k].0 {
            coef[k] = (ds[i].abs(), f64::from(gs[i]).abs() / f64::from(ds[i].abs()));
        }
    }
    for i in 0..n {
        if weight(i) == 0.0 {
            if gs[i].to_bits() != 0 || gv[i].to_bits() != 0 {
                return Err(format!("element {i} has weight 0: {} {}", gv[i], gs[i]));
            }
            continue;
        }
        let c_k = coef[region(bins, ds[i].abs())].1;
        let dd = (f64::from(dv[i]) - f64::from(ds[i])).abs();
        let tol = 4.0 * ulp(gs[i]) + c_k * dd * (1.0 + 1e-6);
        if (f64::from(gv[i]) - f64::from(gs[i])).abs() > tol || gv[i].is_nan() {
            return Err(format!(
                "element {i} (a={:e}, b={:e}): gradient {:e} on {isa:?}, {:e} on Scalar",
                c.a[i], c.b[i], gv[i], gs[i]
            ));
        }
    }
    Ok(())
}

/// One random case on the path under test (`PATH`) against the scalar path.
fn agree(seed: u64, regression: bool) -> TestResult {
    bump(&CASES, 1);
    let kind = if regression {
        Kind::Regression
    } else {
        Kind::Classification
    };
    let c = case(seed, kind);
    let isa = PATH.with(Cell::get);
    let r = match kind {
        Kind::Classification => compare::<Classification>(&c, isa, c.w.as_deref(), false),
        Kind::Regression => compare::<ghm::Regression>(&c, isa, c.w.as_deref(), false),
    };
    match r {
        Ok(()) => TestResult::passed(),
        Err(e) => TestResult::error(format!(
            "seed {seed} {kind:?} n={} cfg={:?} offsets={:?} planted={}: {e}",
            c.a.len(),
            c.cfg,
            c.offsets,
            c.planted
        )),
    }
}

/// `isa` agrees with the scalar path on random and fixed-seed cases.
fn agrees_with_scalar(isa: Isa) {
    PATH.with(|p| p.set(isa));
    QuickCheck::new()
        .tests(400)
        .quickcheck(agree as fn(u64, bool) -> TestResult);
    // Fixed seeds too, so that every run covers the same ground at least.
    for seed in 0..200 {
        for regression in [false, true] {
            let r = agree(seed, regression);
            assert!(!r.is_failure(), "{r:?}");
        }
    }
    eprintln!(
        "{isa:?}: {} cases; {} of {} directions differ from Scalar; {} cases with elements \
         in different regions ({} elements), all at edges",
        CASES.with(Cell::get),
        DIFFERENT_DIRECTIONS.with(Cell::get),
        ELEMENTS.with(Cell::get),
        EDGE_CASES.with(Cell::get),
        FLIPPED_ELEMENTS.with(Cell::get)
    );
}

/// A test that runs `f` and turns a panic into a failure with its message.
fn trial(name: String, f: impl FnOnce() + Send + 'static) -> Trial {
    Trial::test(name, move || {
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).map_err(|e| {
            let msg = e
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            Failed::from(msg)
        })
    })
}

/// `x`'s sum in f64 with Neumaier's compensation: within about 1e-16 relative of the exact
/// sum of these inputs, the reference for the kernels' f32 block sums.
fn reference_sum(x: &[f32]) -> f64 {
    let (mut s, mut c) = (0f64, 0f64);
    for &v in x {
        let v = f64::from(v);
        let t = s + v;
        c += if s.abs() >= v.abs() {
            (s - t) + v
        } else {
            (v - t) + s
        };
        s = t;
    }
    s + c
}

/// The kernels' long sums (label weights, positives, the loss: f32 compensated sums folded
/// into f64 every 1024 values per lane, `src/kernel/sum.rs`) stay within the bound that
/// module states, 4e-9 of the sum of absolute values, on inputs that defeat a plain f32
/// sum; and an overflowing f32 partial sum gives a total that is not finite, never a wrong
/// finite one. The label-weight and region sums then fall back to f64 and stay exact.
fn long_sums_stay_within_their_bound(isa: Isa) {
    let mut rng = Rng::new(5);
    let mut cases: Vec<(&str, Vec<f32>)> = Vec::new();
    // 1 then many halves of its ULP: a plain f32 sum never moves from 1
    let mut ones = vec![1.0f32; 16];
    ones.extend(std::iter::repeat_n(f32::EPSILON / 2.0, 100_000));
    cases.push(("one and half-ULPs", ones));
    // magnitudes over 80 binades, several blocks per lane
    let wide: Vec<f32> = (0..50_000)
        .map(|_| rng.uniform() * (2f32).powi((rng.uniform() * 80.0) as i32 - 40))
        .collect();
    cases.push(("80 binades", wide));
    // a million similar values: partial sums far above each value
    let similar: Vec<f32> = (0..1_000_000).map(|_| 0.5 + rng.uniform() / 2.0).collect();
    cases.push(("a million in [0.5, 1]", similar));
    for (name, x) in &cases {
        let got = ghm::__test::block_sum(isa, x).unwrap();
        let want = reference_sum(x);
        let bound = 4e-9 * x.iter().map(|v| f64::from(v.abs())).sum::<f64>();
        assert!(
            (got - want).abs() <= bound,
            "{isa:?} {name}: {got} vs {want}, error {:e} > {bound:e}",
            (got - want).abs()
        );
        if *name == "one and half-ULPs" {
            let plain: f32 = x.iter().sum();
            assert!(
                (f64::from(plain) - want).abs() > bound,
                "the case no longer defeats a plain f32 sum"
            );
        }
    }
    // two values near f32::MAX in every lane (no path has more than 16)
    let huge = ghm::__test::block_sum(isa, &[f32::MAX; 32]).unwrap();
    assert!(!huge.is_finite(), "{isa:?}: overflow gave {huge}");

    // label weights whose f32 sum overflows: the weight sum falls back to f64
    let mut g = GhmR::default();
    g.set_isa(isa).unwrap();
    let n = 40;
    let (a, b) = (vec![0.5f32; n], vec![0.0f32; n]);
    let w = vec![3e38f32; n];
    let mut stats = g.stats();
    g.accumulate(&mut stats, &a, &b, Some(&w)).unwrap();
    assert_eq!(stats.weight_sum, n as f64 * f64::from(3e38f32), "{isa:?}");

    // loss terms whose f32 region sum overflows (logit -3e38 with target 1: term 3e38
    // each, all in the last region): the region sums fall back to f64, and the one-shot
    // loss, a mean of the terms, is finite
    let mut g = GhmC::default();
    g.set_isa(isa).unwrap();
    let (a, b) = (vec![-3e38f32; n], vec![1.0f32; n]);
    let mut stats = g.stats();
    g.accumulate(&mut stats, &a, &b, None).unwrap();
    let sum: f64 = stats.loss_sum.iter().sum();
    assert_eq!(sum, n as f64 * f64::from(3e38f32), "{isa:?}");
    let loss = g.loss(&a, &b, None).unwrap();
    assert_eq!(loss, 3e38, "{isa:?}");

    // the one-shot call with a gradient on these inputs runs its second pass once without
    // writing first (its bound on the loss exceeds f32's range): loss, gradient and state
    // equal the three phases'
    let mut one = GhmC::default();
    one.set_isa(isa).unwrap();
    let mut three = one.clone();
    let mut g1 = vec![0.0f32; n];
    let l1 = one.loss_grad(&a, &b, None, &mut g1).unwrap();
    let mut stats = three.stats();
    three.accumulate(&mut stats, &a, &b, None).unwrap();
    let weights = three.commit(&stats).unwrap();
    let mut g3 = vec![0.0f32; n];
    weights
        .apply(&a, &b, None, Output::GRADIENT, &mut g3)
        .unwrap();
    assert_eq!(l1.to_bits(), weights.loss().unwrap().to_bits(), "{isa:?}");
    assert!(g1.iter().all(|&v| v != 0.0), "{isa:?}: no gradient written");
    assert_eq!(g1, g3, "{isa:?}");
    assert_eq!(one.state(), three.state(), "{isa:?}");

    // and where the loss itself passes f32's range (twice that loss): an overflow, found
    // by that dry run, with nothing written, with and without a gradient
    let mut twice = GhmC::new(ghm::Config {
        loss_weight: 2.0,
        ..ghm::Config::ghm_c()
    })
    .unwrap();
    twice.set_isa(isa).unwrap();
    let before = *twice.state();
    let mut g2 = vec![7.0f32; n];
    let r = twice.loss_grad(&a, &b, None, &mut g2);
    assert_eq!(r, Err(ghm::Error::Overflow), "{isa:?}");
    assert!(
        g2.iter().all(|&v| v == 7.0),
        "{isa:?}: a gradient was written"
    );
    assert_eq!(
        twice.loss(&a, &b, None),
        Err(ghm::Error::Overflow),
        "{isa:?}"
    );
    assert_eq!(*twice.state(), before, "{isa:?}");

    // a loss that rounds to f32::MAX while an f32 running sum of it overflows: terms 2^127,
    // 3 * 2^102 and 2^127 - 3 * 2^103 in one lane (elements 0, 16 and 32 of 48; the others
    // 0), coefficient exactly 1 (one region, no momentum, loss weight n): the sum is
    // 2^128 - 3 * 2^102, below the point half an ULP past f32::MAX, while the lane's f32
    // sum reaches 2^128 - 2^103 after its second addition and rounds to infinity. The
    // one-shot call, the counting and the summing three phases all give f32::MAX.
    let n = 48;
    let mut d = vec![0.0f32; n];
    d[0] = 2f32.powi(127);
    d[16] = 3.0 * 2f32.powi(102);
    d[32] = 2f32.powi(127) - 3.0 * 2f32.powi(103);
    let zeros = vec![0.0f32; n];
    let config = ghm::Config {
        bins: 1,
        mu: 1e-30,
        loss_weight: n as f32,
        ..ghm::Config::ghm_r()
    };
    let mut one = GhmR::new(config).unwrap();
    one.set_isa(isa).unwrap();
    let (mut counting, mut summing) = (one.clone(), one.clone());
    let mut g1 = vec![0.0f32; n];
    let l1 = one.loss_grad(&d, &zeros, None, &mut g1);
    assert_eq!(l1, Ok(f32::MAX), "{isa:?}");
    assert!(
        g1[0] > 0.0 && g1[16] > 0.0 && g1[32] > 0.0,
        "{isa:?}: no gradient"
    );
    let mut stats = counting.counting_stats();
    counting.accumulate_residual(&mut stats, &d, None).unwrap();
    let weights = counting.commit(&stats).unwrap();
    let mut g3 = vec![0.0f32; n];
    let share = weights.apply_residual_loss(&d, None, Output::GRADIENT, Some(&mut g3));
    assert_eq!(share.map(|s| s as f32), Ok(f32::MAX), "{isa:?}");
    assert_eq!(g1, g3, "{isa:?}");
    let mut stats = summing.stats();
    summing.accumulate_residual(&mut stats, &d, None).unwrap();
    let summed = summing.commit(&stats).unwrap().loss();
    assert_eq!(summed, Ok(f32::MAX), "{isa:?}");
}

/// On `isa`, class-index targets in rows give bit for bit what the same targets
/// materialised one-hot (and the anchor weights per element) give: the one-shot call
/// (loss, gradient, state), and the three-phase apply with its loss share (which runs on
/// the fastest path whatever `isa` is, as `RegionWeights` always does). The vector paths
/// walk such rows as one run whose vectors span rows, with a cursor over the rows that hold
/// a label in range; the class counts put hot elements at every position of a vector, and
/// in vectors holding several rows, several hot ones; the sparse labellings leave long
/// stretches of background rows for the cursor to skip, with hits at the edges of its
/// 16-label chunks. The three-phase apply's gradient and loss share, from the one-shot
/// plan's own loop (four vectors a step; at two classes or more, the steps whose rows hold
/// no label in range, and no anchor weight of 0, read the logits alone), also equal what
/// the general loop gives (the output added onto zeros), and the share without an output.
fn class_index_equals_one_hot(isa: Isa) {
    let mut rng = Rng::new(77);
    let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    for classes in [1usize, 2, 3, 5, 7, 8, 9, 16, 17, 31, 80] {
        for (anchors, k, sparse) in [
            (1usize, 1usize, false),
            (37, 1, false),
            (203, 1, false),
            (91, 2, false),
            (203, 1, true),
            (150, 2, true),
        ] {
            let n = anchors * classes;
            let logits: Vec<f32> = (0..n).map(|_| -3.0 + 2.5 * rng.normal()).collect();
            // hot rows alone, in runs, and far apart; labels out of range too; or (sparse)
            // hits only at label positions at and around multiples of 16
            let labels: Vec<i32> = (0..anchors * k)
                .map(|i| match rng.next_u64() % 10 {
                    _ if sparse && matches!(i % 64, 0 | 15 | 16 | 47) => {
                        (rng.next_u64() % classes as u64) as i32
                    }
                    _ if sparse => [-1, classes as i32, i32::MIN, i32::MAX][i % 4],
                    0 => -1,
                    1 => classes as i32,
                    2..=4 => (rng.next_u64() % classes as u64) as i32,
                    _ if i / k % 13 < 3 => (i % classes) as i32,
                    _ => classes as i32 + 5,
                })
                .collect();
            let aw: Vec<f32> = (0..anchors)
                .map(|i| if i % 7 == 3 { 0.0 } else { 0.5 + rng.uniform() })
                .collect();
            let hot = |i: usize| {
                let (r, c) = (i / classes, (i % classes) as i32);
                labels[r * k..r * k + k].contains(&c)
            };
            let onehot: Vec<f32> = (0..n).map(|i| f32::from(u8::from(hot(i)))).collect();
            let ew: Vec<f32> = (0..n).map(|i| aw[i / classes]).collect();
            let layout = ClassLayout::rows(anchors, classes).with_labels_per_anchor(k);
            for weighted in [false, true] {
                let what = format!(
                    "{isa:?} classes {classes} anchors {anchors} k {k} weighted {weighted}"
                );
                let (aw, ew) = if weighted {
                    (Some(&aw[..]), Some(&ew[..]))
                } else {
                    (None, None)
                };
                let mut v = GhmC::new(Config::ghm_c()).unwrap();
                v.set_isa(isa).unwrap();
                let mut r = v.clone();
                let (mut gv, mut gr) = (vec![0.0; n], vec![0.0; n]);
                let lv = v.loss_grad(&logits, &onehot, ew, &mut gv).unwrap();
                let lr = r
                    .loss_grad_labels(&logits, layout, &labels, aw, &mut gr)
                    .unwrap();
                assert_eq!(lv.to_bits(), lr.to_bits(), "{what}");
                assert!(bits(&gv) == bits(&gr), "{what}");
                assert!(v.state() == r.state(), "{what}");
                // the three-phase apply (its validation pass walks the rows too; Auto path)
                let mut stats = v.counting_stats();
                v.accumulate(&mut stats, &logits, &onehot, ew).unwrap();
                let w = v.commit(&stats).unwrap();
                let sv = w.apply_loss(&logits, &onehot, ew, Output::GRADIENT, Some(&mut gv));
                let sr = w.apply_labels_loss(
                    &logits,
                    layout,
                    &labels,
                    aw,
                    Output::GRADIENT,
                    Some(&mut gr),
                );
                assert_eq!(sv.map(f64::to_bits), sr.map(f64::to_bits), "{what}");
                assert!(bits(&gv) == bits(&gr), "{what}");
                // the general loop (the gradient added onto zeros), and the share alone
                let add = Output {
                    add: true,
                    ..Output::GRADIENT
                };
                let mut ga = vec![0.0; n];
                let general = w.apply_labels_loss(&logits, layout, &labels, aw, add, Some(&mut ga));
                assert_eq!(general.map(f64::to_bits), sr.map(f64::to_bits), "{what}");
                assert!(ga == gr, "{what}");
                let alone =
                    w.apply_labels_loss(&logits, layout, &labels, aw, Output::GRADIENT, None);
                assert_eq!(alone.map(f64::to_bits), sr.map(f64::to_bits), "{what}");
                // the general loop without a loss (overwriting): the same bits, zeros' signs
                // included
                let mut g1 = vec![7.0; n];
                w.apply_labels(&logits, layout, &labels, aw, Output::GRADIENT, &mut g1)
                    .unwrap();
                assert!(bits(&g1) == bits(&gr), "{what}");
            }
            // A negative loss weight makes every coefficient negative: the ignored elements
            // still get +0 (the one-shot plan's own loop, which zeroes the direction rather
            // than the product, would write -0; the call must not take it then).
            if anchors > 1 {
                let mut g = GhmC::new(Config {
                    loss_weight: -0.5,
                    ..Config::ghm_c()
                })
                .unwrap();
                g.set_isa(isa).unwrap();
                let mut grad = vec![7.0; n];
                g.loss_grad_labels(&logits, layout, &labels, Some(&aw), &mut grad)
                    .unwrap();
                for (i, v) in grad.iter().enumerate() {
                    if aw[i / classes] == 0.0 {
                        assert_eq!(v.to_bits(), 0, "{isa:?} classes {classes} element {i}");
                    }
                }
            }
        }
    }
}

/// A test of one SIMD path: ignored, with the reason, where this CPU lacks the path.
fn path_trial(isa: Isa, what: &str, f: fn(Isa)) -> Trial {
    let name = format!("{}::{what}", paths::name(isa));
    match paths::skip_reason(isa) {
        Some(why) => Trial::ignorable_test(name, move || Ok(Completion::ignored_with(why))),
        None => trial(name, move || f(isa)),
    }
}

fn main() {
    let args = Arguments::from_args();
    let mut tests = vec![
        trial("dispatch::the_path_list_matches_the_target".into(), || {
            the_path_list_matches_the_target()
        }),
        trial(
            "dispatch::auto_resolves_to_the_fastest_available_path".into(),
            auto_resolves_to_the_fastest_available_path,
        ),
        trial(
            "dispatch::forcing_an_unavailable_path_is_an_error_and_changes_nothing".into(),
            forcing_an_unavailable_path_is_an_error_and_changes_nothing,
        ),
        Trial::ignorable_test("dispatch::required_paths_are_available", || {
            if std::env::var(paths::REQUIRE).is_err() {
                return Ok(Completion::ignored_with(format!(
                    "{} is not set, so no path is required",
                    paths::REQUIRE
                )));
            }
            paths::check_required()?;
            Ok(Completion::Completed)
        }),
        trial("scalar::set_isa_accepts_it".into(), || {
            set_isa_accepts(Isa::Scalar)
        }),
        trial("scalar::long_sums_stay_within_their_bound".into(), || {
            long_sums_stay_within_their_bound(Isa::Scalar)
        }),
        trial("scalar::class_index_equals_one_hot".into(), || {
            class_index_equals_one_hot(Isa::Scalar)
        }),
    ];
    for isa in paths::simd() {
        tests.push(path_trial(isa, "set_isa_accepts_it", set_isa_accepts));
        tests.push(path_trial(isa, "agrees_with_scalar", agrees_with_scalar));
        tests.push(path_trial(
            isa,
            "long_sums_stay_within_their_bound",
            long_sums_stay_within_their_bound,
        ));
        tests.push(path_trial(
            isa,
            "class_index_equals_one_hot",
            class_index_equals_one_hot,
        ));
    }
    libtest_mimic::run(&args, tests).exit();
}
