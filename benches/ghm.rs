//! The speed of the harmonized losses against what bounds them, as ratios from one run.
//!
//! `cargo bench --bench ghm` prints, for each instruction-set path the CPU has, on a
//! RetinaNet-like batch (8M elements: 100k anchors x 80 classes, ~1% positive anchors, bins
//! 30, momentum 0.75; GHM-R: mu 0.02, bins 10, momentum 0.7, loss weight 10):
//! - GHM-C loss + gradient with value and class-index targets, and loss only; GHM-R loss +
//!   gradient;
//! - beside them the crate's plain BCE-with-logits / ASL1 pass (loss + gradient, the same
//!   per-element math, no harmonizing), a copy of the same bytes (what memory allows), and a
//!   plain two-pass C loop written as a user would (`benches/c/plain.c`, compiled by
//!   `build.rs` with `-O3 -march=native -ffast-math`), whose loss is checked against ours;
//! - the ratios harmonized / plain, C loop / ghm (how many times faster ghm is) and
//!   ghm / copy;
//! - each case's memory floor: the time of plain loops that move the bytes its passes move
//!   (a read of the inputs for a first pass, a read of them and a write of the output for
//!   a second), and the ratio to it;
//! - class-index against value targets at C = 1, 2, 4, 10, 20, 80 classes, same elements;
//! - the fixed cost of a call (16 elements), and two threads through the three-phase C
//!   functions against one.
//!
//! Each figure is the median of repeated calls. `GHM_BENCH_N=<elements>` changes the batch
//! size (default 8000000); `GHM_BENCH_ISA=avx2` (or scalar, avx512, neon) keeps one path.

use std::hint::black_box;
use std::time::{Duration, Instant};

use ghm::ffi::*;
use ghm::{ClassLayout, Config, GhmC, GhmR, Isa, RegionWeights, State, Stats};

const CLASSES: usize = 80;

/// The median time of `f` over repeated calls (at least 5, about `budget` in all).
fn time<R>(budget: Duration, mut f: impl FnMut() -> R) -> f64 {
    black_box(f());
    let t0 = Instant::now();
    black_box(f());
    let once = t0.elapsed().as_secs_f64().max(1e-9);
    let reps = ((budget.as_secs_f64() / once) as usize).clamp(5, 1_000_000);
    // calls under a microsecond are timed in batches
    let batch = ((1e-5 / once) as usize).max(1);
    let mut times: Vec<f64> = (0..reps.div_ceil(batch).max(5))
        .map(|_| {
            let t = Instant::now();
            for _ in 0..batch {
                black_box(f());
            }
            t.elapsed().as_secs_f64() / batch as f64
        })
        .collect();
    times.sort_by(f64::total_cmp);
    times[times.len() / 2]
}

struct Rng(u64);
impl Rng {
    fn uniform(&mut self) -> f32 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 40) as f32 / (1u64 << 24) as f32
    }
}

/// A RetinaNet-like batch of `anchors x classes` elements: ~1% positive anchors (labels in
/// `[0, classes)`, else `classes`), positive logits around 0.5, negative ones in [-6, -3]
/// (most in the first region, as a detector's easy negatives are); the one-hot targets; and
/// GHM-R predictions (3% outliers near 3) with targets 0.
struct Batch {
    anchors: usize,
    classes: usize,
    logits: Vec<f32>,
    targets: Vec<f32>,
    labels: Vec<i32>,
    pred: Vec<f32>,
    zeros: Vec<f32>,
}

fn batch(anchors: usize, classes: usize) -> Batch {
    let mut r = Rng(0x9e37_79b9_7f4a_7c15);
    let labels: Vec<i32> = (0..anchors)
        .map(|_| {
            if r.uniform() < 0.01 {
                (r.uniform() * classes as f32) as i32 % classes as i32
            } else {
                classes as i32
            }
        })
        .collect();
    let n = anchors * classes;
    let hot = |i: usize| labels[i / classes] == (i % classes) as i32;
    let targets: Vec<f32> = (0..n).map(|i| f32::from(u8::from(hot(i)))).collect();
    let logits = (0..n)
        .map(|i| {
            if hot(i) {
                0.5 + 4.0 * (r.uniform() - 0.5)
            } else {
                -4.5 + 3.0 * (r.uniform() - 0.5)
            }
        })
        .collect();
    let pred = (0..n)
        .map(|_| 0.1 * (r.uniform() - 0.5) + if r.uniform() < 0.03 { 3.0 } else { 0.0 })
        .collect();
    Batch {
        anchors,
        classes,
        logits,
        targets,
        labels,
        pred,
        zeros: vec![0.0; n],
    }
}

fn ghm_c_config() -> Config {
    Config {
        bins: 30,
        momentum: 0.75,
        ..Config::ghm_c()
    }
}

fn ghm_r_config() -> Config {
    Config {
        mu: 0.02,
        bins: 10,
        momentum: 0.7,
        loss_weight: 10.0,
        ..Config::ghm_r()
    }
}

#[cfg(ghm_c_loops)]
mod c {
    extern "C" {
        pub fn cloop_ghmc_values(
            x: *const f32,
            t: *const f32,
            n: usize,
            bins: i32,
            momentum: f32,
            ema: *mut f32,
            region: *mut u8,
            grad: *mut f32,
        ) -> f64;
        pub fn cloop_ghmc_labels(
            x: *const f32,
            labels: *const i32,
            anchors: usize,
            classes: usize,
            bins: i32,
            momentum: f32,
            ema: *mut f32,
            region: *mut u8,
            grad: *mut f32,
        ) -> f64;
        pub fn cloop_ghmr(
            pred: *const f32,
            target: *const f32,
            n: usize,
            mu: f32,
            bins: i32,
            momentum: f32,
            lambda: f32,
            ema: *mut f32,
            region: *mut u8,
            grad: *mut f32,
        ) -> f64;
        pub fn cloop_asl1(
            pred: *const f32,
            target: *const f32,
            n: usize,
            mu: f32,
            grad: *mut f32,
        ) -> f64;
    }
}

/// The C loops' times and losses (one call from a fresh EMA): GHM-C values, GHM-C labels,
/// GHM-R, plain ASL1. `None` where `build.rs` could not compile them.
struct CLoops {
    ghmc_values: (f64, f32),
    ghmc_labels: (f64, f32),
    ghmr: (f64, f32),
    asl1: f64,
}

/// A C loop's time (calls continuing one EMA) and its loss from a fresh EMA.
#[cfg(ghm_c_loops)]
fn c_loop(budget: Duration, mut call: impl FnMut(&mut [f32; 64]) -> f32) -> (f64, f32) {
    let first = call(&mut [0.0; 64]);
    let mut ema = [0.0; 64];
    (time(budget, || call(&mut ema)), first)
}

#[cfg(ghm_c_loops)]
fn c_loops(b: &Batch, budget: Duration) -> Option<CLoops> {
    let n = b.logits.len();
    let (c, r) = (ghm_c_config(), ghm_r_config());
    let mut region = vec![0u8; n];
    let mut grad = vec![0f32; n];
    // SAFETY (every call): slices of length n (anchors x classes); ema holds 64 floats.
    let values = |ema: &mut [f32; 64]| unsafe {
        c::cloop_ghmc_values(
            b.logits.as_ptr(),
            b.targets.as_ptr(),
            n,
            c.bins as i32,
            c.momentum,
            ema.as_mut_ptr(),
            region.as_mut_ptr(),
            grad.as_mut_ptr(),
        ) as f32
    };
    let ghmc_values = c_loop(budget, values);
    let mut region = vec![0u8; n];
    let mut grad = vec![0f32; n];
    let labels = |ema: &mut [f32; 64]| unsafe {
        c::cloop_ghmc_labels(
            b.logits.as_ptr(),
            b.labels.as_ptr(),
            b.anchors,
            b.classes,
            c.bins as i32,
            c.momentum,
            ema.as_mut_ptr(),
            region.as_mut_ptr(),
            grad.as_mut_ptr(),
        ) as f32
    };
    let ghmc_labels = c_loop(budget, labels);
    let mut region = vec![0u8; n];
    let mut grad = vec![0f32; n];
    let ghmr = |ema: &mut [f32; 64]| unsafe {
        c::cloop_ghmr(
            b.pred.as_ptr(),
            b.zeros.as_ptr(),
            n,
            r.mu,
            r.bins as i32,
            r.momentum,
            r.loss_weight,
            ema.as_mut_ptr(),
            region.as_mut_ptr(),
            grad.as_mut_ptr(),
        ) as f32
    };
    let ghmr = c_loop(budget, ghmr);
    let mut grad = vec![0f32; n];
    let asl1 = time(budget, || unsafe {
        c::cloop_asl1(
            b.pred.as_ptr(),
            b.zeros.as_ptr(),
            n,
            r.mu,
            grad.as_mut_ptr(),
        )
    });
    Some(CLoops {
        ghmc_values,
        ghmc_labels,
        ghmr,
        asl1,
    })
}

#[cfg(not(ghm_c_loops))]
fn c_loops(_: &Batch, _: Duration) -> Option<CLoops> {
    None
}

/// The times of plain loops over the batch's buffers, one thread: what memory allows the
/// passes. Each moves the bytes of one kind of pass: a read of the inputs (a first pass),
/// and a read of them with a write of the output (a second pass, or a plain one).
struct Floors {
    /// a read of `a` and `b`
    read_ab: f64,
    /// a read of `a` and `b` and a write of the output
    write_ab: f64,
    /// a read of `a` (class-index targets: their labels are 1/80 of the bytes)
    read_a: f64,
    /// a read of `a` and a write of the output
    write_a: f64,
}

fn floors(a: &[f32], b: &[f32], out: &mut [f32], budget: Duration) -> Floors {
    // sixteen running sums, so that the loop vectorises (an f32 sum is not reassociated)
    fn read(a: &[f32], b: Option<&[f32]>) -> f32 {
        let mut acc = [0f32; 16];
        match b {
            Some(b) => {
                for (x, y) in a.chunks_exact(16).zip(b.chunks_exact(16)) {
                    for l in 0..16 {
                        acc[l] += x[l] + y[l];
                    }
                }
            }
            None => {
                for x in a.chunks_exact(16) {
                    for l in 0..16 {
                        acc[l] += x[l];
                    }
                }
            }
        }
        acc.iter().sum()
    }
    let read_ab = time(budget, || read(black_box(a), Some(black_box(b))));
    let write_ab = time(budget, || {
        for ((o, x), y) in out.iter_mut().zip(black_box(a)).zip(black_box(b)) {
            *o = x - y;
        }
    });
    let read_a = time(budget, || read(black_box(a), None));
    let write_a = time(budget, || {
        for (o, x) in out.iter_mut().zip(black_box(a)) {
            *o = 0.5 * x;
        }
    });
    Floors {
        read_ab,
        write_ab,
        read_a,
        write_a,
    }
}

fn ms(t: f64) -> String {
    format!("{:9.2}", t * 1e3)
}

fn rate(n: usize, t: f64) -> String {
    format!("{:7.3}", n as f64 / t / 1e9)
}

/// Relative difference of two losses.
fn rel(a: f32, b: f32) -> f64 {
    (f64::from(a) - f64::from(b)).abs() / f64::from(b).abs().max(1e-30)
}

fn main() {
    // `cargo bench` passes `--bench`; nothing else is taken from the command line.
    let n: usize = std::env::var("GHM_BENCH_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(8_000_000);
    let only = std::env::var("GHM_BENCH_ISA").ok();
    let anchors = (n / CLASSES).max(1);
    let n = anchors * CLASSES;
    let budget = Duration::from_millis(1500);
    let b = batch(anchors, CLASSES);
    let layout = ClassLayout::rows(anchors, CLASSES);
    let mut grad = vec![0f32; n];

    println!("ghm benchmark: {n} elements ({anchors} anchors x {CLASSES} classes), one thread");
    let cl = c_loops(&b, budget);
    match &cl {
        None => println!("C loops: not built (see build.rs); their ratios are left out"),
        Some(c) => println!(
            "C loops (gcc -O3 -march=native -ffast-math): GHM-C values {} ms, labels {} ms, \
             GHM-R {} ms, plain ASL1 {} ms",
            ms(c.ghmc_values.0).trim(),
            ms(c.ghmc_labels.0).trim(),
            ms(c.ghmr.0).trim(),
            ms(c.asl1).trim()
        ),
    }
    let copy = time(budget, || grad.copy_from_slice(black_box(&b.logits)));
    println!("copy of the logits: {} ms", ms(copy).trim());
    let fl = floors(&b.logits, &b.targets, &mut grad, budget);
    println!(
        "memory floors (plain loops): read logits and targets {} ms, and write the output {} \
         ms; read logits {} ms, and write the output {} ms\n",
        ms(fl.read_ab).trim(),
        ms(fl.write_ab).trim(),
        ms(fl.read_a).trim(),
        ms(fl.write_a).trim()
    );
    // each case's floor: its passes' bytes (GHM-R reads predictions and targets as GHM-C
    // values reads logits and targets)
    let two_pass_values = fl.read_ab + fl.write_ab;
    let two_pass_labels = fl.read_a + fl.write_a;

    let isas: Vec<Isa> = Isa::ALL
        .iter()
        .copied()
        .filter(|i| *i != Isa::Auto && i.is_available())
        .filter(|i| {
            only.as_ref()
                .is_none_or(|o| format!("{i:?}").eq_ignore_ascii_case(o))
        })
        .collect();
    for &isa in &isas {
        println!("== {isa:?} path");
        println!(
            "{:<38} {:>9} {:>7} {:>9} {:>9} {:>8} {:>8}",
            "case", "ms", "G el/s", "/ plain", "C / ghm", "/ copy", "/ floor"
        );
        let row = |name: &str, t: f64, plain: Option<f64>, c: Option<f64>, floor: f64| {
            let f = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.2}"));
            println!(
                "{name:<38} {} {} {:>9} {:>9} {:>8.2} {:>8.2}",
                ms(t),
                rate(n, t),
                f(plain.map(|p| t / p)),
                f(c.map(|c| c / t)),
                t / copy,
                t / floor
            );
        };
        let plain_bce = time(budget, || {
            ghm::__test::plain_bce(isa, black_box(&b.logits), &b.targets, &mut grad).unwrap()
        });
        row(
            "plain BCE-with-logits, loss + grad",
            plain_bce,
            None,
            None,
            fl.write_ab,
        );
        let mut gc = GhmC::new(ghm_c_config()).unwrap();
        gc.set_isa(isa).unwrap();
        let first = GhmC::new(ghm_c_config())
            .and_then(|mut g| {
                g.set_isa(isa)?;
                g.loss_grad(&b.logits, &b.targets, None, &mut grad)
            })
            .unwrap();
        let t = time(budget, || {
            gc.loss_grad(black_box(&b.logits), &b.targets, None, &mut grad)
                .unwrap()
        });
        let cv = cl.as_ref().map(|c| c.ghmc_values);
        row(
            "GHM-C values, loss + grad",
            t,
            Some(plain_bce),
            cv.map(|c| c.0),
            two_pass_values,
        );
        let t_labels = time(budget, || {
            gc.loss_grad_labels(black_box(&b.logits), layout, &b.labels, None, &mut grad)
                .unwrap()
        });
        let clab = cl.as_ref().map(|c| c.ghmc_labels);
        row(
            "GHM-C class-index, loss + grad",
            t_labels,
            Some(plain_bce),
            clab.map(|c| c.0),
            two_pass_labels,
        );
        let t = time(budget, || {
            let mut st = gc.stats();
            gc.accumulate_labels(&mut st, black_box(&b.logits), layout, &b.labels, None)
                .unwrap();
            gc.clone().commit(&st).unwrap().loss().unwrap()
        });
        row(
            "GHM-C class-index, loss only",
            t,
            Some(plain_bce),
            None,
            fl.read_a,
        );
        let plain_asl1 = time(budget, || {
            ghm::__test::plain_asl1(isa, 0.02, black_box(&b.pred), &b.zeros, &mut grad).unwrap()
        });
        let casl = cl.as_ref().map(|c| c.asl1);
        row(
            "plain ASL1, loss + grad",
            plain_asl1,
            None,
            casl,
            fl.write_ab,
        );
        let mut gr = GhmR::new(ghm_r_config()).unwrap();
        gr.set_isa(isa).unwrap();
        let first_r = GhmR::new(ghm_r_config())
            .and_then(|mut g| {
                g.set_isa(isa)?;
                g.loss_grad(&b.pred, &b.zeros, None, &mut grad)
            })
            .unwrap();
        let t = time(budget, || {
            gr.loss_grad(black_box(&b.pred), &b.zeros, None, &mut grad)
                .unwrap()
        });
        let cr = cl.as_ref().map(|c| c.ghmr);
        row(
            "GHM-R, loss + grad",
            t,
            Some(plain_asl1),
            cr.map(|c| c.0),
            two_pass_values,
        );
        if let (Some(cv), Some(cr)) = (cv, cr) {
            println!(
                "  first-call losses, C loop vs ghm: GHM-C {:.1e} relative, GHM-R {:.1e}",
                rel(cv.1, first),
                rel(cr.1, first_r)
            );
        }
        println!();
    }

    // The fastest path for the rest (`Isa::ALL` lists them slowest first).
    let isa = *isas.last().unwrap_or(&Isa::Scalar);
    println!("== class-index vs value targets, same elements ({isa:?})");
    println!(
        "{:>8} {:>12} {:>12} {:>8}",
        "classes", "labels ms", "values ms", "ratio"
    );
    for classes in [1usize, 2, 4, 10, 20, 80] {
        let bb = batch(n / classes, classes);
        let lay = ClassLayout::rows(bb.anchors, classes);
        let mut g = GhmC::new(ghm_c_config()).unwrap();
        g.set_isa(isa).unwrap();
        let m = bb.logits.len();
        let tl = time(budget, || {
            g.loss_grad_labels(black_box(&bb.logits), lay, &bb.labels, None, &mut grad[..m])
                .unwrap()
        });
        let tv = time(budget, || {
            g.loss_grad(black_box(&bb.logits), &bb.targets, None, &mut grad[..m])
                .unwrap()
        });
        println!("{classes:>8} {} {} {:>8.2}", ms(tl), ms(tv), tl / tv);
    }

    println!("\n== fixed cost of a call, 16 elements ({isa:?})");
    let small = batch(2, 8);
    let mut g = GhmC::new(ghm_c_config()).unwrap();
    g.set_isa(isa).unwrap();
    let mut out = [0f32; 16];
    let t = time(budget, || {
        g.loss_grad_labels(
            black_box(&small.logits),
            ClassLayout::rows(2, 8),
            &small.labels,
            None,
            &mut out,
        )
        .unwrap()
    });
    println!(
        "GHM-C class-index (2 anchors x 8 classes): {:.0} ns",
        t * 1e9
    );
    let t = time(budget, || {
        g.loss_grad(black_box(&small.logits), &small.targets, None, &mut out)
            .unwrap()
    });
    println!(
        "GHM-C values (16):                          {:.0} ns",
        t * 1e9
    );
    let mut state: State = plain_data();
    let cfg = ghm_c_config();
    // SAFETY (this and the calls below): pointers to live values and slices of the lengths
    // given.
    unsafe { assert_eq!(ghm_c_init(&mut state, &cfg), GHM_OK) };
    let mut loss = 0f32;
    let t = time(budget, || unsafe {
        ghm_c_loss(
            &mut state,
            black_box(small.logits.as_ptr()),
            small.targets.as_ptr(),
            std::ptr::null(),
            16,
            &mut loss,
            out.as_mut_ptr(),
        )
    });
    println!(
        "ghm_c_loss through the C ABI (16):          {:.0} ns",
        t * 1e9
    );

    println!("\n== two threads through the three-phase C functions ({isa:?}, {n} elements)");
    for (counting, what) in [(false, "summing stats"), (true, "counting stats")] {
        let one = time(budget, || three_phase(&b, 1, counting, &mut grad));
        let two = time(budget, || three_phase(&b, 2, counting, &mut grad));
        println!(
            "{what}: one thread {} ms, two threads {} ms: {:.2}x",
            ms(one).trim(),
            ms(two).trim(),
            one / two
        );
    }
    let shot = time(budget, || one_shot_labels(&b, &mut grad));
    println!(
        "one-shot ghm_c_loss_labels, one thread: {} ms",
        ms(shot).trim()
    );
}

/// One GHM-C class-index batch through `ghm_c_loss_labels` from a fresh state, as
/// [`three_phase`] runs it.
fn one_shot_labels(b: &Batch, grad: &mut [f32]) -> f32 {
    let cfg = ghm_c_config();
    let mut state: State = plain_data();
    let mut loss = 0f32;
    // SAFETY: pointers to live values, slices of the lengths the call is given.
    unsafe {
        assert_eq!(ghm_c_init(&mut state, &cfg), GHM_OK);
        assert_eq!(
            ghm_c_loss_labels(
                &mut state,
                b.logits.as_ptr(),
                b.anchors,
                b.classes,
                b.labels.as_ptr(),
                std::ptr::null(),
                &mut loss,
                grad.as_mut_ptr(),
            ),
            GHM_OK
        );
    }
    loss
}

/// A value of the C API's plain-data types for the init functions to fill in.
fn plain_data<T: Copy>() -> T {
    // SAFETY: used for State, Stats and RegionWeights: u32, f32 and f64 fields only, for
    // which all-zero bytes are a value (an uninitialised one, as the C functions expect).
    unsafe { std::mem::zeroed() }
}

/// One GHM-C class-index batch through `ghm_c_accumulate_labels` (one chunk of anchors per
/// thread), `ghm_stats_merge`, `ghm_commit` and `ghm_c_apply_labels` (one chunk per thread);
/// with `counting`, counting stats and `ghm_c_apply_labels_loss`, whose shares are added.
fn three_phase(b: &Batch, threads: usize, counting: bool, grad: &mut [f32]) -> f32 {
    let init = if counting {
        ghm_stats_init_counting
    } else {
        ghm_stats_init
    };
    let cfg = ghm_c_config();
    let mut state: State = plain_data();
    let mut total: Stats = plain_data();
    // SAFETY (every call): pointers to live values, slices of the lengths the layouts give,
    // each thread on its own anchors and its own part of the gradient.
    unsafe {
        assert_eq!(ghm_c_init(&mut state, &cfg), GHM_OK);
        assert_eq!(init(&state, &mut total), GHM_OK);
    }
    let per = b.anchors.div_ceil(threads);
    let chunks: Vec<(usize, usize)> = (0..threads)
        .map(|t| (t * per, ((t + 1) * per).min(b.anchors)))
        .collect();
    let c = b.classes;
    let parts: Vec<Stats> = std::thread::scope(|s| {
        let handles: Vec<_> = chunks
            .iter()
            .map(|&(lo, hi)| {
                let state = &state;
                s.spawn(move || {
                    let mut st: Stats = plain_data();
                    let lay = ClassLayout::rows(hi - lo, c);
                    unsafe {
                        assert_eq!(init(state, &mut st), GHM_OK);
                        assert_eq!(
                            ghm_c_accumulate_labels(
                                state,
                                b.logits[lo * c..].as_ptr(),
                                &lay,
                                b.labels[lo..].as_ptr(),
                                std::ptr::null(),
                                &mut st,
                            ),
                            GHM_OK
                        );
                    }
                    st
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let mut weights: RegionWeights = plain_data();
    let mut loss = 0f32;
    let loss_out: *mut f32 = if counting {
        std::ptr::null_mut()
    } else {
        &mut loss
    };
    unsafe {
        for p in &parts {
            assert_eq!(ghm_stats_merge(p, &mut total), GHM_OK);
        }
        assert_eq!(
            ghm_commit(&total, &mut state, &mut weights, loss_out),
            GHM_OK
        );
    }
    let weights = &weights;
    let shares: Vec<f64> = std::thread::scope(|s| {
        let mut rest = grad;
        let mut handles = Vec::new();
        for &(lo, hi) in &chunks {
            let (mine, tail) = rest.split_at_mut((hi - lo) * c);
            rest = tail;
            handles.push(s.spawn(move || {
                let lay = ClassLayout::rows(hi - lo, c);
                let (logits, labels) = (b.logits[lo * c..].as_ptr(), b.labels[lo..].as_ptr());
                let (none, out) = (std::ptr::null(), mine.as_mut_ptr());
                let spec = std::ptr::null();
                let mut share = 0f64;
                unsafe {
                    let status = if counting {
                        ghm_c_apply_labels_loss(
                            weights, logits, &lay, labels, none, spec, out, &mut share,
                        )
                    } else {
                        ghm_c_apply_labels(weights, logits, &lay, labels, none, spec, out)
                    };
                    assert_eq!(status, GHM_OK);
                }
                share
            }));
        }
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    if counting {
        loss = shares.iter().sum::<f64>() as f32;
    }
    loss
}
