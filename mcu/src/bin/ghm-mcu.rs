//! The golden vectors of mmdetection's GHMC and GHMR (tests/fixtures/mmdet.txt, read from
//! flash) and bad inputs through the safe API on a Cortex-M4F; then the stack high-water
//! mark and the instructions per element of each call. Exits 1 on any mismatch.
#![no_std]
#![no_main]

use cortex_m_rt::entry;
use ghm::{ClassLayout, Config, Error, Ghm, GhmC, GhmR, Kind, Loss, State};
use ghm_mcu::{exit, println, stack_used, Timer};

const FIXTURES: &str = include_str!("../../../tests/fixtures/mmdet.txt");
/// Most floats on one line of the fixtures (960: 12 anchors x 80 classes).
const MAX: usize = 1024;

/// Same tolerances as tests/golden.rs.
const LOSS_REL: f64 = 1e-5;
const GRAD_REL: f64 = 1e-5;
const GRAD_ABS_FRAC: f64 = 1e-6;

struct Call {
    n: usize,
    pred: [f32; MAX],
    n_pred: usize,
    target: [f32; MAX],
    labels: [i32; MAX],
    weight: [f32; MAX],
    has_weight: bool,
    loss: f32,
    grad: [f32; MAX],
    acc_sum: [f32; 64],
    has_acc: bool,
}

fn fail(msg: core::fmt::Arguments) -> ! {
    println!("FAIL: {}", msg);
    exit(false)
}

fn floats<'a>(line: &'a str, key: &str) -> impl Iterator<Item = f32> + 'a {
    let rest = line
        .strip_prefix(key)
        .unwrap_or_else(|| fail(format_args!("fixture: expected {key}, got {line:.40}")));
    rest.split(' ').filter(|t| !t.is_empty()).map(|t| {
        t.parse::<f32>()
            .unwrap_or_else(|_| fail(format_args!("bad float {t}")))
    })
}

fn fill(dst: &mut [f32], line: &str, key: &str) -> usize {
    let mut n = 0;
    for v in floats(line, key) {
        dst[n] = v;
        n += 1;
    }
    n
}

fn value<'a>(line: &'a str, key: &str) -> &'a str {
    line.strip_prefix(key)
        .map(str::trim)
        .unwrap_or_else(|| fail(format_args!("fixture: expected {key}, got {line:.40}")))
}

fn close_all(got: &[f32], want: &[f32]) -> Option<usize> {
    let scale = want.iter().fold(0.0f64, |m, &x| m.max(f64::from(x).abs()));
    got.iter().zip(want).position(|(&g, &w)| {
        let (g, w) = (f64::from(g), f64::from(w));
        (g - w).abs() > GRAD_REL * w.abs() + GRAD_ABS_FRAC * scale
    })
}

/// Runs every case of the fixtures; returns (cases, calls, class-index cases).
fn golden(call: &mut Call, grad: &mut [f32; MAX]) -> (usize, usize, usize) {
    let mut lines = FIXTURES.lines().filter(|l| !l.starts_with('#'));
    let (mut cases, mut calls, mut label_cases) = (0, 0, 0);
    while let Some(line) = lines.next() {
        if line == "end" || line.is_empty() {
            continue;
        }
        let name = value(line, "case ");
        let mut next = || {
            lines
                .next()
                .unwrap_or_else(|| fail(format_args!("fixture ends early")))
        };
        let kind = match value(next(), "loss ") {
            "c" => Kind::Classification,
            _ => Kind::Regression,
        };
        let labels_layout = value(next(), "layout ") == "labels";
        let mut cfg = Config::default_for(kind);
        cfg.bins = value(next(), "bins ").parse().unwrap();
        cfg.momentum = value(next(), "momentum ").parse().unwrap();
        let mu: f32 = value(next(), "mu ").parse().unwrap();
        if kind == Kind::Regression {
            cfg.mu = mu;
        }
        cfg.loss_weight = value(next(), "loss_weight ").parse().unwrap();
        let classes: usize = if labels_layout {
            value(next(), "classes ").parse().unwrap()
        } else {
            0
        };
        let k: usize = value(next(), "calls ").parse().unwrap();
        let mut c = GhmC::new(cfg).unwrap_or_else(|e| fail(format_args!("{name}: {e:?}")));
        let mut r = GhmR::new(cfg).unwrap_or_else(|e| fail(format_args!("{name}: {e:?}")));
        for i in 0..k {
            call.n = value(next(), "call ").parse().unwrap();
            call.n_pred = fill(&mut call.pred, next(), "pred ");
            if labels_layout {
                let l = next();
                for (j, t) in value(l, "labels ").split(' ').enumerate() {
                    call.labels[j] = t.parse().unwrap();
                }
            } else {
                fill(&mut call.target, next(), "target ");
            }
            let w = next();
            call.has_weight = w != "weight -";
            if call.has_weight {
                fill(&mut call.weight, w, "weight ");
            }
            call.loss = value(next(), "loss ").parse().unwrap();
            fill(&mut call.grad, next(), "grad ");
            let _none = next();
            let a = next();
            call.has_acc = a != "acc_sum -";
            if call.has_acc {
                fill(&mut call.acc_sum, a, "acc_sum ");
            }
            let (n, np) = (call.n, call.n_pred);
            let w = call.has_weight.then(|| &call.weight[..n]);
            let g = &mut grad[..np];
            let (loss, state) = match (kind, labels_layout) {
                (Kind::Classification, true) => {
                    let layout = ClassLayout::rows(n, classes);
                    let v = c.loss_grad_labels(&call.pred[..np], layout, &call.labels[..n], w, g);
                    (v, *c.state())
                }
                (Kind::Classification, false) => (
                    c.loss_grad(&call.pred[..n], &call.target[..n], w, g),
                    *c.state(),
                ),
                (Kind::Regression, _) => (
                    r.loss_grad(&call.pred[..n], &call.target[..n], w, g),
                    *r.state(),
                ),
            };
            let loss = loss.unwrap_or_else(|e| fail(format_args!("{name} call {i}: {e:?}")));
            let (lw, lr) = (f64::from(loss), f64::from(call.loss));
            if !((lw - lr).abs() <= LOSS_REL * lr.abs().max(1e-30) || loss == call.loss) {
                fail(format_args!(
                    "{name} call {i}: loss {loss} vs mmdet {}",
                    call.loss
                ));
            }
            if let Some(j) = close_all(&grad[..np], &call.grad[..np]) {
                fail(format_args!(
                    "{name} call {i}: grad[{j}] {} vs mmdet {}",
                    grad[j], call.grad[j]
                ));
            }
            let ema = state.ema();
            for (j, &s) in ema.iter().enumerate() {
                let want = if call.has_acc { call.acc_sum[j] } else { 0.0 };
                if s.to_bits() != want.to_bits() {
                    fail(format_args!("{name} call {i}: ema[{j}] {s} vs {want}"));
                }
            }
            calls += 1;
        }
        cases += 1;
        label_cases += usize::from(labels_layout);
    }
    (cases, calls, label_cases)
}

/// One bad input through the safe API: the error must be `want`, and the state and the
/// gradient buffer must be unchanged byte for byte.
fn bad<L: Loss>(
    what: &str,
    g: &mut Ghm<L>,
    a: &[f32],
    b: &[f32],
    w: Option<&[f32]>,
    grad: &mut [f32],
    want: Error,
) -> usize {
    let before = *g.state();
    let mut copy = [0u32; 16];
    for (c, x) in copy.iter_mut().zip(grad.iter()) {
        *c = x.to_bits();
    }
    let got = g.loss_grad(a, b, w, grad);
    if got != Err(want) {
        fail(format_args!(
            "bad input {what}: got {got:?}, want Err({want:?})"
        ));
    }
    if state_bytes(g.state()) != state_bytes(&before)
        || grad.iter().zip(copy.iter()).any(|(x, c)| x.to_bits() != *c)
    {
        fail(format_args!(
            "bad input {what}: a failed call wrote something"
        ));
    }
    1
}

fn state_bytes(s: &State) -> [u8; core::mem::size_of::<State>()] {
    // SAFETY: State is plain data of that size (the C API's checkpoint format).
    unsafe { core::mem::transmute_copy(s) }
}

fn bad_inputs() -> usize {
    let mut n = 0;
    let mut c = GhmC::new(Config {
        bins: 30,
        momentum: 0.75,
        ..Config::ghm_c()
    })
    .unwrap();
    let mut r = GhmR::new(Config {
        mu: 0.02,
        bins: 10,
        momentum: 0.7,
        ..Config::ghm_r()
    })
    .unwrap();
    let x = [0.5f32, -2.0, 3.0, 0.0];
    let t = [1.0f32, 0.0, 0.0, 1.0];
    let w = [1.0f32, 1.0, 0.5, 1.0];
    let mut g = [7.0f32; 4];
    // One good call first, so the EMA is not empty.
    c.loss_grad(&x, &t, None, &mut g).unwrap();
    r.loss_grad(&x, &t, None, &mut g).unwrap();
    g = [7.0; 4];
    n += bad(
        "NaN logit",
        &mut c,
        &[0.5, f32::NAN, 3.0, 0.0],
        &t,
        None,
        &mut g,
        Error::NonFinite,
    );
    n += bad(
        "inf logit",
        &mut c,
        &[0.5, 0.0, f32::INFINITY, 0.0],
        &t,
        None,
        &mut g,
        Error::NonFinite,
    );
    n += bad(
        "target 1.5",
        &mut c,
        &x,
        &[1.0, 1.5, 0.0, 0.0],
        None,
        &mut g,
        Error::Target,
    );
    n += bad(
        "target -0.1",
        &mut c,
        &x,
        &[1.0, 0.0, -0.1, 0.0],
        None,
        &mut g,
        Error::Target,
    );
    n += bad(
        "target NaN",
        &mut c,
        &x,
        &[f32::NAN, 0.0, 0.0, 0.0],
        None,
        &mut g,
        Error::Target,
    );
    n += bad(
        "negative weight",
        &mut c,
        &x,
        &t,
        Some(&[1.0, -1.0, 1.0, 1.0]),
        &mut g,
        Error::Weight,
    );
    n += bad(
        "NaN weight",
        &mut c,
        &x,
        &t,
        Some(&[1.0, 1.0, f32::NAN, 1.0]),
        &mut g,
        Error::Weight,
    );
    n += bad(
        "short target",
        &mut c,
        &x,
        &t[..3],
        None,
        &mut g,
        Error::Length,
    );
    n += bad(
        "short weight",
        &mut c,
        &x,
        &t,
        Some(&w[..2]),
        &mut g,
        Error::Length,
    );
    n += bad(
        "short grad",
        &mut c,
        &x,
        &t,
        None,
        &mut g[..3],
        Error::Length,
    );
    n += bad(
        "GHM-R NaN pred",
        &mut r,
        &[f32::NAN, 0.0, 0.0, 0.0],
        &t,
        None,
        &mut g,
        Error::NonFinite,
    );
    n += bad(
        "GHM-R inf target",
        &mut r,
        &x,
        &[0.0, f32::NEG_INFINITY, 0.0, 0.0],
        None,
        &mut g,
        Error::NonFinite,
    );
    n += bad(
        "GHM-R overflow",
        &mut r,
        &[3e38, 0.0, 0.0, 0.0],
        &[-3e38, 0.0, 0.0, 0.0],
        None,
        &mut g,
        Error::Overflow,
    );
    n += bad(
        "GHM-R negative weight",
        &mut r,
        &x,
        &t,
        Some(&[1.0, 1.0, -0.5, 1.0]),
        &mut g,
        Error::Weight,
    );
    for (what, cfg) in [
        (
            "bins 0",
            Config {
                bins: 0,
                ..Config::ghm_c()
            },
        ),
        (
            "bins 65",
            Config {
                bins: 65,
                ..Config::ghm_c()
            },
        ),
        (
            "momentum 1",
            Config {
                momentum: 1.0,
                ..Config::ghm_c()
            },
        ),
        (
            "momentum NaN",
            Config {
                momentum: f32::NAN,
                ..Config::ghm_c()
            },
        ),
        (
            "loss_weight inf",
            Config {
                loss_weight: f32::INFINITY,
                ..Config::ghm_c()
            },
        ),
        (
            "weight_cap -1",
            Config {
                weight_cap: -1.0,
                ..Config::ghm_c()
            },
        ),
        (
            "unknown option",
            Config {
                options: 1 << 31,
                ..Config::ghm_c()
            },
        ),
    ] {
        if GhmC::new(cfg).err() != Some(Error::Config) {
            fail(format_args!("bad config {what} accepted"));
        }
        n += 1;
    }
    if GhmR::new(Config {
        mu: 0.0,
        ..Config::ghm_r()
    })
    .err()
        != Some(Error::Config)
    {
        fail(format_args!("GHM-R mu 0 accepted"));
    }
    // A corrupted state is refused; a GHM-C state is not a GHM-R one.
    let mut s = state_bytes(c.state());
    s[20] ^= 1;
    let corrupted: State = unsafe { core::mem::transmute_copy(&s) };
    if GhmC::from_state(corrupted).err() != Some(Error::State) {
        fail(format_args!("corrupted state accepted"));
    }
    if GhmR::from_state(*c.state()).err() != Some(Error::WrongLoss) {
        fail(format_args!("GHM-C state accepted as GHM-R"));
    }
    // set_ema: the wrong length and negative values are refused and change nothing; a valid
    // EMA is taken as given and the state stays intact.
    let mut st = *c.state();
    let before = state_bytes(&st);
    if st.set_ema(&[1.0; 29]) != Err(Error::Length)
        || st.set_ema(&[-1.0; 30]) != Err(Error::StatsMismatch)
        || state_bytes(&st) != before
    {
        fail(format_args!(
            "set_ema accepted a bad EMA or changed the state"
        ));
    }
    let mut ema = [0.0f32; 30];
    for (k, e) in ema.iter_mut().enumerate() {
        *e = if k % 3 == 0 { 0.0 } else { k as f32 * 0.25 };
    }
    if st.set_ema(&ema).is_err() || st.ema() != ema || GhmC::from_state(st).is_err() {
        fail(format_args!("set_ema of a valid EMA"));
    }
    n += 3;
    // Class-index: a labels slice of the wrong length.
    let mut g8 = [0.0f32; 8];
    let got = c.loss_grad_labels(
        &[0.0; 8],
        ClassLayout::rows(4, 2),
        &[0, 1, 2],
        None,
        &mut g8,
    );
    if got != Err(Error::Length) {
        fail(format_args!("labels of wrong length: {got:?}"));
    }
    n + 4
}

/// Deterministic detector-like batches (xorshift), as the host tests make them.
struct Rng(u32);
impl Rng {
    fn next(&mut self) -> f32 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 17;
        self.0 ^= self.0 << 5;
        (self.0 >> 8) as f32 / (1u32 << 24) as f32
    }
    fn normal(&mut self) -> f32 {
        // Sum of four uniforms: mean 0, roughly unit variance, no libm needed.
        (self.next() + self.next() + self.next() + self.next() - 2.0) * 1.732
    }
}

const N: usize = 2048;

fn batch(kind: Kind, a: &mut [f32], b: &mut [f32], labels: &mut [i32], classes: usize) {
    let mut rng = Rng(0x1234_5678);
    for i in 0..a.len() {
        let u = rng.next();
        match kind {
            Kind::Classification => {
                let (x, t) = if u < 0.85 {
                    (-4.0 + 1.5 * rng.normal(), 0.0)
                } else if u < 0.93 {
                    (1.0 + 2.0 * rng.normal(), 1.0)
                } else if u < 0.97 {
                    (2.0 * rng.normal(), rng.next())
                } else {
                    (6.0 + 3.0 * rng.normal(), 0.0)
                };
                a[i] = x;
                b[i] = t;
            }
            Kind::Regression => {
                let scale = [0.005f32, 0.02, 0.1, 1.0, 10.0][(rng.next() * 5.0) as usize % 5];
                let t = rng.normal();
                a[i] = t + scale * rng.normal();
                b[i] = t;
            }
        }
    }
    for (j, l) in labels.iter_mut().enumerate() {
        let u = rng.next();
        *l = if u < 0.9 {
            classes as i32
        } else {
            (j % classes) as i32
        };
    }
}

#[entry]
fn main() -> ! {
    let p = cortex_m::Peripherals::take().unwrap();
    println!(
        "ghm on {} (QEMU mps2-an386), FPU enabled: {}",
        "Cortex-M4F",
        ghm_mcu::fpu_enabled()
    );

    static mut CALL: Call = Call {
        n: 0,
        pred: [0.0; MAX],
        n_pred: 0,
        target: [0.0; MAX],
        labels: [0; MAX],
        weight: [0.0; MAX],
        has_weight: false,
        loss: 0.0,
        grad: [0.0; MAX],
        acc_sum: [0.0; 64],
        has_acc: false,
    };
    static mut GRAD: [f32; MAX] = [0.0; MAX];
    // SAFETY: main runs once; nothing else touches these.
    let (call, grad) = unsafe {
        (
            &mut *core::ptr::addr_of_mut!(CALL),
            &mut *core::ptr::addr_of_mut!(GRAD),
        )
    };
    let (cases, calls, label_cases) = golden(call, grad);
    println!("golden (safe API): {cases} cases, {calls} calls ({label_cases} class-index cases) match mmdetection");
    println!(
        "bad inputs (safe API): {} refused, nothing written",
        bad_inputs()
    );
    {
        static mut AG: [[f32; ghm_mcu::agree::N]; 4] = [[0.0; ghm_mcu::agree::N]; 4];
        // SAFETY: main runs once; nothing else touches AG.
        let [a, b, w, g] = unsafe { &mut *core::ptr::addr_of_mut!(AG) };
        ghm_mcu::agree::run(ghm::Isa::Scalar, a, b, w, g, |name, h| {
            println!("AGREE {name}: {h:016x}");
        });
    }

    // Timing and stack: detector-like batches.
    static mut A: [f32; N] = [0.0; N];
    static mut B: [f32; N] = [0.0; N];
    static mut G: [f32; N] = [0.0; N];
    static mut L: [i32; N / 16] = [0; N / 16];
    let (a, b, g, labels) = unsafe {
        (
            &mut *core::ptr::addr_of_mut!(A),
            &mut *core::ptr::addr_of_mut!(B),
            &mut *core::ptr::addr_of_mut!(G),
            &mut *core::ptr::addr_of_mut!(L),
        )
    };
    let mut timer = Timer::new(p.SYST);
    let (per_tick, err) = timer.calibrate();
    println!("calibration: {per_tick:.3} instructions per SysTick tick; a third loop predicted within {:.4}%", err * 100.0);
    if err.abs() > 1e-3 {
        fail(format_args!("timer calibration off by {err}"));
    }

    let coco_c = Config {
        bins: 30,
        momentum: 0.75,
        ..Config::ghm_c()
    };
    let coco_r = Config {
        mu: 0.02,
        bins: 10,
        momentum: 0.7,
        loss_weight: 10.0,
        ..Config::ghm_r()
    };
    let classes = 16;
    let mut c = GhmC::new(coco_c).unwrap();
    let mut r = GhmR::new(coco_r).unwrap();
    println!("state: {} bytes", core::mem::size_of::<State>());

    // Instructions: total per element at n = N, and the marginal cost per element between
    // n = N/2 and n = N (which removes the fixed per-call cost).
    let mut report = |what: &str, f: &mut dyn FnMut(usize) -> f32| {
        let _ = f(N); // warm: the EMA is not empty
        let (half, _) = timer.instructions(|| f(N / 2));
        let (full, v) = timer.instructions(|| f(N));
        let (stack, _) = stack_used(|| f(N));
        let marginal = (full - half) / (N / 2) as f64;
        println!(
            "MEASURE {what}: {:.0} instructions/element at n={N} ({:.0} marginal), fixed {:.0}, stack {stack} bytes, loss {v}",
            full / N as f64,
            marginal,
            full - marginal * N as f64
        );
    };
    batch(Kind::Classification, a, b, labels, classes);
    report("ghm_c_loss_grad", &mut |n| {
        c.loss_grad(&a[..n], &b[..n], None, &mut g[..n]).unwrap()
    });
    report("ghm_c_loss", &mut |n| {
        c.loss(&a[..n], &b[..n], None).unwrap()
    });
    report("ghm_c_loss_grad_labels", &mut |n| {
        c.loss_grad_labels(
            &a[..n],
            ClassLayout::rows(n / classes, classes),
            &labels[..n / classes],
            None,
            &mut g[..n],
        )
        .unwrap()
    });
    // The C API's state lives in the caller's frame, as the safe API's does: not counted.
    let mut s = *c.state();
    report("ghm_c_loss_capi", &mut |n| {
        let mut v = 0.0f32;
        let st = unsafe {
            ghm::ffi::ghm_c_loss(
                &mut s,
                a.as_ptr(),
                b.as_ptr(),
                core::ptr::null(),
                n,
                &mut v,
                g.as_mut_ptr(),
            )
        };
        if st != 0 {
            fail(format_args!("ghm_c_loss: {st}"));
        }
        v
    });
    batch(Kind::Regression, a, b, labels, classes);
    report("ghm_r_loss_grad", &mut |n| {
        r.loss_grad(&a[..n], &b[..n], None, &mut g[..n]).unwrap()
    });
    report("ghm_r_loss", &mut |n| {
        r.loss(&a[..n], &b[..n], None).unwrap()
    });

    // Stack only, for calls outside the per-element figures: making a loss (its state is
    // returned into the closure's frame, so it is counted here), and a one-shot call on
    // inputs whose loss bound passes f32's range (logits -3e38 with target 1: each term
    // 3e38; momentum 0, so the loss, their mean, is 3e38 too), whose second pass runs once
    // without writing first.
    let (stack, bins) = stack_used(|| GhmC::new(coco_c).map(|g| g.config().bins));
    if bins != Ok(coco_c.bins) {
        fail(format_args!("GhmC::new: {bins:?}"));
    }
    println!("STACK ghm_c_new: {stack} bytes");
    a[..64].fill(-3e38);
    b[..64].fill(1.0);
    let mut cold = GhmC::new(Config::ghm_c()).unwrap();
    let (stack, v) = stack_used(|| cold.loss_grad(&a[..64], &b[..64], None, &mut g[..64]));
    match v {
        Ok(v) if v.is_finite() && v > 0.0 => {}
        other => fail(format_args!("the call near f32's range: {other:?}")),
    }
    println!("STACK ghm_c_loss_grad_unbounded: {stack} bytes");
    exit(true)
}
