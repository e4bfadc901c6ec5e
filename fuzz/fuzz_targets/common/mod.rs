//! Shared by the fuzz targets: input decoding, the pointer-rule model of the C contract, and
//! the independent computations the C entry points are compared with.
#![allow(dead_code)]

use core::mem::size_of;

use ghm::ffi::*;
use ghm::{Classification, Config, Ghm, Isa, Loss, Output, Regression, State};
use libfuzzer_sys::arbitrary::{Result, Unstructured};

pub const STATE_WORDS: usize = size_of::<State>() / 4;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    C,
    R,
}

impl Kind {
    pub fn pick(u: &mut Unstructured) -> Result<Kind> {
        Ok(if u.arbitrary::<bool>()? {
            Kind::C
        } else {
            Kind::R
        })
    }
    pub fn other(self) -> Kind {
        match self {
            Kind::C => Kind::R,
            Kind::R => Kind::C,
        }
    }
}

pub const SPECIALS: &[f32] = &[
    0.0,
    -0.0,
    1.0,
    -1.0,
    0.5,
    f32::NAN,
    -f32::NAN,
    f32::INFINITY,
    f32::NEG_INFINITY,
    f32::MIN_POSITIVE,
    -f32::MIN_POSITIVE,
    1.0e-45, // smallest subnormal
    -1.0e-45,
    1.0e-40,
    f32::MAX,
    f32::MIN,
    3.0e38,
    1.0e30,
    -1.0e30,
    88.7,
    -88.7,
    -103.9,
    1.000_000_1,
    0.999_999_94,
    1.0e-7,
    16_777_216.0,
];

pub fn special(u: &mut Unstructured) -> Result<f32> {
    Ok(*u.choose(SPECIALS)?)
}

/// Uniform-ish in [lo, hi] from 16 bits.
pub fn uniform(u: &mut Unstructured, lo: f32, hi: f32) -> Result<f32> {
    let t = f32::from(u.arbitrary::<u16>()?) / 65535.0;
    Ok(lo + (hi - lo) * t)
}

/// A value for role `role` (0: logit/pred, 1: target, 2: label weight), mostly valid.
pub fn value(u: &mut Unstructured, kind: Kind, role: u8) -> Result<f32> {
    Ok(match (u.int_in_range(0u8..=15)?, role, kind) {
        (0, ..) => special(u)?,
        (1, ..) => f32::from_bits(u.arbitrary()?),
        (_, 0, _) => uniform(u, -12.0, 12.0)? * if u.arbitrary::<bool>()? { 1.0 } else { 8.0 },
        (_, 1, Kind::C) => match u.int_in_range(0u8..=3)? {
            0 => 0.0,
            1 => 1.0,
            _ => uniform(u, 0.0, 1.0)?,
        },
        (_, 1, Kind::R) => uniform(u, -12.0, 12.0)?,
        (_, _, _) => match u.int_in_range(0u8..=3)? {
            0 => 0.0,
            1 => 1.0,
            _ => uniform(u, 0.0, 3.0)?,
        },
    })
}

pub fn config(u: &mut Unstructured, kind: Kind) -> Result<Config> {
    let base = match kind {
        Kind::C => ghm_c_config_default(),
        Kind::R => ghm_r_config_default(),
    };
    if u.int_in_range(0u8..=15)? == 0 {
        // Raw bits in every field.
        return Ok(Config {
            bins: u.arbitrary()?,
            momentum: f32::from_bits(u.arbitrary()?),
            mu: f32::from_bits(u.arbitrary()?),
            loss_weight: f32::from_bits(u.arbitrary()?),
            options: u.arbitrary()?,
            weight_cap: f32::from_bits(u.arbitrary()?),
            count_prior: f32::from_bits(u.arbitrary()?),
        });
    }
    let f = |u: &mut Unstructured, dflt: f32, lo: f32, hi: f32| -> Result<f32> {
        Ok(match u.int_in_range(0u8..=9)? {
            0 => special(u)?,
            1..=4 => dflt,
            _ => uniform(u, lo, hi)?,
        })
    };
    Ok(Config {
        bins: match u.int_in_range(0u8..=9)? {
            0 => u.int_in_range(0u32..=70)?,
            1 => 64,
            2 => 1,
            _ => u.int_in_range(1u32..=64)?,
        },
        momentum: f(u, base.momentum, 0.0, 0.999)?,
        mu: f(u, base.mu, 1.0e-4, 2.0)?,
        loss_weight: f(u, base.loss_weight, -4.0, 4.0)?,
        options: if u.arbitrary::<bool>()? {
            u.int_in_range(0u32..=15)? | (u32::from(u.arbitrary::<bool>()?) * 32)
        } else {
            0
        },
        weight_cap: f(u, base.weight_cap, 0.0, 20.0)?,
        count_prior: f(u, base.count_prior, 0.0, 2.0)?,
    })
}

/// Reseals a state image with a valid checksum, by the library's own seal (the
/// `test-hooks` feature), so that edits reach the checks behind the checksum.
pub fn reseal(words: &mut [u32]) {
    let mut s = read_state(words);
    s.__reseal();
    words[..STATE_WORDS].copy_from_slice(&state_words(&s));
}

/// The status a GHM-C loss call must return when its targets are NULL (and `n > 0`) and
/// every pointer rule holds otherwise: the state's own error if it is not a valid GHM-C
/// state, GHM_ERR_NULL unless its options include GHM_OPT_GRADIENT_INPUT (which does not read
/// the targets), and `None` (the call proceeds) if they do.
pub fn null_targets(state: &State) -> Option<i32> {
    match Ghm::<Classification>::from_state(*state) {
        Err(e) => Some(e.code()),
        Ok(g) if g.config().options & ghm::OPT_GRADIENT_INPUT == 0 => Some(GHM_ERR_NULL),
        Ok(_) => None,
    }
}

pub fn read_state(words: &[u32]) -> State {
    assert!(words.len() >= STATE_WORDS);
    // SAFETY: State is plain data (u32 and f32 fields only): every bit pattern is a value.
    unsafe { core::ptr::read_unaligned(words.as_ptr().cast::<State>()) }
}

pub fn state_words(s: &State) -> [u32; STATE_WORDS] {
    // SAFETY: as above; State has no padding (4-byte fields only).
    unsafe { core::mem::transmute_copy(s) }
}

/// Byte range of caller memory, for the overlap model.
#[derive(Clone, Copy, Debug)]
pub struct Span {
    pub start: usize,
    pub end: usize,
}

impl Span {
    pub fn of<T>(p: *const T, count: usize) -> Span {
        if p.is_null() {
            Span { start: 0, end: 0 }
        } else {
            Span {
                start: p as usize,
                end: p as usize + count * size_of::<T>(),
            }
        }
    }
    pub fn overlaps(self, o: Span) -> bool {
        self.start < self.end && o.start < o.end && self.start < o.end && o.start < self.end
    }
}

/// The pointer verdict of a `ghm_*_loss` call by the contract's rules: None if the pointers
/// are acceptable, else every status the call may return for them.
///
/// `b_optional`: a NULL `b` is not a pointer rule here (GHM-C's targets, which
/// GHM_OPT_GRADIENT_INPUT makes optional: only the state can tell, see [`null_targets`]).
#[allow(clippy::too_many_arguments)]
pub fn pointer_errors(
    state: *const u32,
    a: *const f32,
    b: *const f32,
    b_optional: bool,
    w: *const f32,
    n: usize,
    loss: *const f32,
    grad: *const f32,
) -> Option<Vec<i32>> {
    let mut errs = Vec::new();
    let b_missing = b.is_null() && !b_optional;
    if state.is_null() || loss.is_null() || (n > 0 && (a.is_null() || b_missing)) {
        errs.push(GHM_ERR_NULL);
    }
    let ptrs = [
        state as usize,
        a as usize,
        b as usize,
        w as usize,
        loss as usize,
        grad as usize,
    ];
    if ptrs.iter().any(|&p| p % 4 != 0) {
        errs.push(GHM_ERR_MISALIGNED);
    }
    if n > (isize::MAX as usize) / 4 {
        errs.push(GHM_ERR_LENGTH);
    }
    if !errs.is_empty() {
        return Some(errs);
    }
    let s = Span::of(state, STATE_WORDS);
    let l = Span::of(loss, 1);
    let (sa, sb, sw, sg) = (
        Span::of(a, n),
        Span::of(b, n),
        Span::of(w, n),
        Span::of(grad, n),
    );
    let in_place = !grad.is_null() && n > 0 && grad == a;
    let mut clash = [sa, sb, sw]
        .iter()
        .any(|i| s.overlaps(*i) || l.overlaps(*i))
        || s.overlaps(l)
        || s.overlaps(sg)
        || l.overlaps(sg)
        || sg.overlaps(sb)
        || sg.overlaps(sw);
    if !in_place {
        clash |= sg.overlaps(sa);
    }
    if clash {
        return Some(vec![GHM_ERR_OVERLAP]);
    }
    None
}

/// Every status code the library defines (GHM_OK included).
pub fn known_status(st: i32) -> bool {
    let s = unsafe { core::ffi::CStr::from_ptr(ghm_status_str(st)) };
    st == GHM_OK || s.to_bytes() != b"unknown status"
}

pub fn bits_equal(x: &[f32], y: &[f32]) -> bool {
    x.len() == y.len() && x.iter().zip(y).all(|(a, b)| a.to_bits() == b.to_bits())
}

/// |x - y| <= rel * max(|x|, |y|) + abs
pub fn close(x: f32, y: f32, rel: f32, abs: f32) -> bool {
    (x - y).abs() <= rel * x.abs().max(y.abs()) + abs
}

/// The result of one computation: status, loss, gradient (if asked), next state.
#[derive(Clone, Debug)]
pub struct Outcome {
    pub status: i32,
    pub loss: f32,
    pub grad: Vec<f32>,
    pub state: [u32; STATE_WORDS],
}

fn code(e: ghm::Error) -> i32 {
    e.code()
}

/// The safe Rust API on copies of the inputs: one-shot with `isa`.
pub fn safe_one_shot<L: Loss>(
    state: &State,
    a: &[f32],
    b: &[f32],
    w: Option<&[f32]>,
    want_grad: bool,
    in_place: bool,
    isa: Isa,
) -> Outcome {
    let fail = |e: ghm::Error| Outcome {
        status: code(e),
        loss: 0.0,
        grad: Vec::new(),
        state: state_words(state),
    };
    let mut g = match Ghm::<L>::from_state(*state) {
        Ok(g) => g,
        Err(e) => return fail(e),
    };
    if let Err(e) = g.set_isa(isa) {
        return fail(e);
    }
    let mut grad = vec![0.0f32; a.len()];
    let r = if !want_grad {
        g.loss(a, b, w)
    } else if in_place {
        grad.copy_from_slice(a);
        g.loss_grad_in_place(&mut grad, b, w)
    } else {
        g.loss_grad(a, b, w, &mut grad)
    };
    match r {
        Ok(loss) => Outcome {
            status: GHM_OK,
            loss,
            grad: if want_grad { grad } else { Vec::new() },
            state: state_words(g.state()),
        },
        Err(e) => fail(e),
    }
}

/// The safe three-phase API on copies: accumulate two chunks (split at `split`), merge,
/// commit, apply each chunk. Also returns the merged per-region counts.
pub fn safe_three_phase<L: Loss>(
    state: &State,
    a: &[f32],
    b: &[f32],
    w: Option<&[f32]>,
    split: usize,
    isa: Isa,
) -> (Outcome, Vec<f64>) {
    let fail = |e: ghm::Error| {
        (
            Outcome {
                status: code(e),
                loss: 0.0,
                grad: Vec::new(),
                state: state_words(state),
            },
            Vec::new(),
        )
    };
    let mut g = match Ghm::<L>::from_state(*state) {
        Ok(g) => g,
        Err(e) => return fail(e),
    };
    if let Err(e) = g.set_isa(isa) {
        return fail(e);
    }
    let s = split.min(a.len());
    let wsplit = |lo: bool| w.map(|w| if lo { &w[..s] } else { &w[s..] });
    let mut st1 = g.stats();
    let mut st2 = g.stats();
    if let Err(e) = g.accumulate(&mut st1, &a[..s], &b[..s], wsplit(true)) {
        return fail(e);
    }
    if let Err(e) = g.accumulate(&mut st2, &a[s..], &b[s..], wsplit(false)) {
        return fail(e);
    }
    st1.merge(&st2);
    let counts = st1.count.to_vec();
    let weights = match g.commit(&st1) {
        Ok(x) => x,
        Err(e) => return fail(e),
    };
    let mut grad = vec![0.0f32; a.len()];
    let (g1, g2) = grad.split_at_mut(s);
    let r = weights
        .apply(&a[..s], &b[..s], wsplit(true), Output::GRADIENT, g1)
        .and_then(|_| weights.apply(&a[s..], &b[s..], wsplit(false), Output::GRADIENT, g2));
    if let Err(e) = r {
        return fail(e);
    }
    (
        Outcome {
            status: GHM_OK,
            loss: weights.loss().unwrap(),
            grad,
            state: state_words(g.state()),
        },
        counts,
    )
}

/// The largest per-region coefficient `lambda * beta_k / tot` a commit of the batch gives.
pub fn coefficient_max(kind: Kind, state: &State, a: &[f32], b: &[f32], w: Option<&[f32]>) -> f32 {
    fn go<L: Loss>(state: &State, a: &[f32], b: &[f32], w: Option<&[f32]>) -> Option<f32> {
        let mut g = Ghm::<L>::from_state(*state).ok()?;
        let mut st = g.stats();
        g.accumulate(&mut st, a, b, w).ok()?;
        let weights = g.commit(&st).ok()?;
        Some(
            weights
                .coefficients()
                .iter()
                .fold(0.0f32, |m, c| m.max(c.abs())),
        )
    }
    match kind {
        Kind::C => go::<Classification>(state, a, b, w),
        Kind::R => go::<Regression>(state, a, b, w),
    }
    .unwrap_or(0.0)
}

/// Per-region counts of a batch through `isa` (None if accumulate refuses it).
pub fn counts<L: Loss>(
    state: &State,
    a: &[f32],
    b: &[f32],
    w: Option<&[f32]>,
    isa: Isa,
) -> Option<Vec<f64>> {
    let mut g = Ghm::<L>::from_state(*state).ok()?;
    g.set_isa(isa).ok()?;
    let mut st = g.stats();
    g.accumulate(&mut st, a, b, w).ok()?;
    Some(st.count.to_vec())
}

pub fn one_shot(
    kind: Kind,
    state: &State,
    a: &[f32],
    b: &[f32],
    w: Option<&[f32]>,
    want_grad: bool,
    in_place: bool,
    isa: Isa,
) -> Outcome {
    match kind {
        Kind::C => safe_one_shot::<Classification>(state, a, b, w, want_grad, in_place, isa),
        Kind::R => safe_one_shot::<Regression>(state, a, b, w, want_grad, in_place, isa),
    }
}

pub fn three_phase(
    kind: Kind,
    state: &State,
    a: &[f32],
    b: &[f32],
    w: Option<&[f32]>,
    split: usize,
    isa: Isa,
) -> (Outcome, Vec<f64>) {
    match kind {
        Kind::C => safe_three_phase::<Classification>(state, a, b, w, split, isa),
        Kind::R => safe_three_phase::<Regression>(state, a, b, w, split, isa),
    }
}

pub fn region_counts(
    kind: Kind,
    state: &State,
    a: &[f32],
    b: &[f32],
    w: Option<&[f32]>,
    isa: Isa,
) -> Option<Vec<f64>> {
    match kind {
        Kind::C => counts::<Classification>(state, a, b, w, isa),
        Kind::R => counts::<Regression>(state, a, b, w, isa),
    }
}

/// The C entry point of `kind`.
pub unsafe fn c_loss(
    kind: Kind,
    state: *mut u32,
    a: *const f32,
    b: *const f32,
    w: *const f32,
    n: usize,
    loss: *mut f32,
    grad: *mut f32,
) -> i32 {
    let f = match kind {
        Kind::C => ghm_c_loss,
        Kind::R => ghm_r_loss,
    };
    f(state.cast(), a, b, w, n, loss, grad)
}

pub unsafe fn c_init(kind: Kind, state: *mut u32, config: *const Config) -> i32 {
    match kind {
        Kind::C => ghm_c_init(state.cast(), config),
        Kind::R => ghm_r_init(state.cast(), config),
    }
}

/// Compares the C call's outcome with the independent computations; panics on a mismatch.
pub fn check_against_safe(
    kind: Kind,
    got: &Outcome,
    state: &State,
    a: &[f32],
    b: &[f32],
    w: Option<&[f32]>,
    want_grad: bool,
    in_place: bool,
    split: usize,
) {
    // 1. The same computation through the safe API (same ISA): bit-identical.
    let same = one_shot(kind, state, a, b, w, want_grad, in_place, Isa::Auto);
    assert_eq!(got.status, same.status, "C vs safe API status");
    if got.status != GHM_OK {
        return;
    }
    assert_eq!(
        got.loss.to_bits(),
        same.loss.to_bits(),
        "C vs safe API loss"
    );
    assert!(bits_equal(&got.grad, &same.grad), "C vs safe API gradient");
    assert_eq!(got.state, same.state, "C vs safe API state");

    // 2. Three-phase (accumulate two chunks, merge, commit, apply each): same counts, same
    //    next state; loss and gradient equal up to the order of f64 sums.
    let (tp, _) = three_phase(kind, state, a, b, w, split, Isa::Auto);
    // The two find the loss in different orders (the commit from per-region sums, the
    // one-shot call element by element): at f32's edge, on either side of 0 (a negative
    // loss weight), one may round to f32::MAX in magnitude and the other overflow.
    if tp.status == GHM_ERR_OVERFLOW && got.loss.abs() >= f32::MAX * (1.0 - 1e-6) {
        return;
    }
    assert_eq!(
        tp.status, GHM_OK,
        "three-phase refused what one-shot accepted"
    );
    assert_eq!(tp.state, got.state, "three-phase vs one-shot state");
    assert!(
        close(tp.loss, got.loss, 1e-5, 1e-30),
        "three-phase loss {} vs {}",
        tp.loss,
        got.loss
    );
    if want_grad {
        for (x, y) in tp.grad.iter().zip(&got.grad) {
            assert!(
                close(*x, *y, 1e-5, 1e-37),
                "three-phase gradient {x} vs {y}"
            );
        }
    }

    // 3. The scalar path: whenever it bins every element alike (the SIMD path may round a
    //    gradient norm across a region edge), loss and gradient agree closely.
    let auto_counts = region_counts(kind, state, a, b, w, Isa::Auto);
    let scalar_counts = region_counts(kind, state, a, b, w, Isa::Scalar);
    assert!(
        scalar_counts.is_some(),
        "scalar path refused what the default path accepted"
    );
    if auto_counts != scalar_counts {
        return;
    }
    let sc = one_shot(kind, state, a, b, w, want_grad, in_place, Isa::Scalar);
    if std::env::var_os("GHM_FUZZ_DUMP").is_some() {
        eprintln!(
            "kind {kind:?} config {:?}\na {a:?}\nb {b:?}\nw {w:?}",
            state.config()
        );
        eprintln!(
            "default path: loss {} grad {:?}\nscalar path:  loss {} grad {:?}",
            got.loss, got.grad, sc.loss, sc.grad
        );
    }
    assert_eq!(sc.status, GHM_OK, "scalar path status {}", sc.status);
    assert_eq!(sc.state, got.state, "scalar vs default path state");
    // The scalar path's mul_add is not fused: a loss term like `(1 - b) * a` for a large
    // logit and a target near 1 cancels there and is off by up to an ulp of `a` (absolute).
    let coef_max = coefficient_max(kind, state, a, b, w);
    // (a target that is not finite reaches here only where it is not read: GHM-C's gradient
    // input, which ignores `b`)
    let mass: f64 = a
        .iter()
        .zip(b)
        .map(|(x, y)| {
            f64::from(x.abs())
                + if y.is_finite() {
                    f64::from(y.abs())
                } else {
                    0.0
                }
        })
        .sum();
    let slack = (f64::from(coef_max) * mass * 2e-7 + 1e-30) as f32; // may round to +inf: fine
    assert!(
        close(sc.loss, got.loss, 1e-4, slack),
        "scalar loss {} vs {}",
        sc.loss,
        got.loss
    );
    if want_grad {
        let gmax = got
            .grad
            .iter()
            .chain(&sc.grad)
            .fold(0.0f32, |m, g| m.max(g.abs()));
        for (x, y) in sc.grad.iter().zip(&got.grad) {
            assert!(
                close(*x, *y, 1e-4, 1e-5 * gmax + 1e-37),
                "scalar gradient {x} vs {y} (max {gmax})"
            );
        }
    }
}
