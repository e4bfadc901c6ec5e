//! The three-phase C API through its `extern "C"` entry points: `ghm_stats_init` /
//! `ghm_stats_init_counting`, `ghm_c_accumulate` / `ghm_r_accumulate` (target NULL:
//! residuals) / `ghm_c_accumulate_labels`, `ghm_stats_merge`, `ghm_commit`, `ghm_c_apply` /
//! `ghm_r_apply` / `ghm_c_apply_labels` (with counting stats their `_loss` forms, whose
//! shares make the loss), and the one-shot `ghm_c_loss` / `ghm_r_loss` / `ghm_c_loss_labels`
//! they are compared with.
//!
//! Every buffer (state, stats, weights, loss, `ghm_output`, `ghm_class_layout`, inputs,
//! outputs) lives in one arena. A run draws a config (options included, GHM_OPT_PROBABILITY_INPUT
//! among them), a state (fresh, warmed up, the other loss's, corrupted, arbitrary bytes), an
//! element-wise batch or a class-index layout (rows, planes, padded, arbitrary strides that
//! overlap or are unsupported, lengths beyond the address space; labels of any i32), a split
//! into chunks, and then runs the pipeline: stats_init, accumulate each chunk (directly, or
//! into its own stats merged in), maybe merge mismatching stats or use arbitrary bytes as
//! stats, commit, maybe corrupt or replace the weights, apply each chunk with a `ghm_output`
//! (NULL, valid, arbitrary bytes) into an output buffer (separate or in place).
//!
//! Any call may first be repeated as a *probe* with one pointer NULL, misaligned, exactly
//! aliasing another buffer or pointing into its middle (the arena is restored afterwards).
//! Checked on every call:
//! - the status is a defined one; the pointer rules' status when they are broken;
//! - an error leaves every byte of the arena unchanged;
//! - success writes only the call's outputs (apply_labels: only the layout's elements), and
//!   gives a finite loss, finite weights, a valid state and finite outputs;
//! - clean calls: the status and every output bit equal the safe Rust API on copies.
//!
//! Checked on the whole pipeline, whenever its inputs are valid:
//! - chunked accumulate + merge equals one accumulate over the batch: counts exact,
//!   loss sums and weight sum within f64 summation-order error;
//! - commit + apply equal the one-shot call on a copy of the state: same status, state
//!   bitwise, loss (the commit's, or with counting stats the sum of the applies' shares)
//!   within 1e-6 relative, gradient bitwise (GHM-R: bitwise when the weight
//!   sums agree, else within 1e-6 relative); class-index layouts also equal `ghm_c_loss`
//!   on gathered logits and materialised one-hot targets.
#![no_main]

mod common;

use core::mem::size_of;

use common::{
    close, config, known_status, reseal, special, state_words, uniform, value, Kind, STATE_WORDS,
};
use ghm::ffi::*;
use ghm::{
    ClassLayout, Classification, Ghm, Output, OutputKind, RegionWeights, Regression, State, Stats,
};
use libfuzzer_sys::arbitrary::{Result, Unstructured};
use libfuzzer_sys::fuzz_target;

const PATTERN: u32 = 0x7fc0_dead; // a NaN: never a value the library would write
const STATS_WORDS: usize = size_of::<Stats>() / 4;
const WEIGHTS_WORDS: usize = size_of::<RegionWeights>() / 4;
const LAYOUT_WORDS: usize = size_of::<ClassLayout>() / 4;
const SPEC_WORDS: usize = size_of::<ghm_output>() / 4;
/// Largest logits extent (and element count) a run places in the arena.
const MAX_EXTENT: usize = 6000;

fuzz_target!(|data: &[u8]| {
    let _ = run(&mut Unstructured::new(data));
});

/// With `GHM_FUZZ_TRACE` set, names each check reached (to see what a corpus covers).
fn trace(what: &str) {
    static ON: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    if *ON.get_or_init(|| std::env::var_os("GHM_FUZZ_TRACE").is_some()) {
        eprintln!("trace: {what}");
    }
}

// ---------------------------------------------------------------------------------------
// The arena and the pointer-rule model.

/// One pointer argument of a call.
#[derive(Clone, Copy, Debug)]
struct Arg {
    p: usize,
    /// Number of values; None when it does not fit a usize (a layout's extent).
    count: Option<usize>,
    size: usize,
    align: usize,
    out: bool,
    optional: bool,
    /// An output written only at this layout's elements.
    elements: Option<ClassLayout>,
    /// Whether a probe may point it at another buffer (not the layout: its contents would
    /// describe memory that does not exist).
    movable: bool,
    /// NULL here is not a pointer rule but decided later, by the state or region weights
    /// (GHM-C's targets, optional with GHM_OPT_GRADIENT_INPUT): the statuses a NULL may get.
    null_decided_by: Option<&'static [i32]>,
}

impl Arg {
    fn input<T>(p: *const T, count: usize) -> Arg {
        Arg {
            p: p as usize,
            count: Some(count),
            size: size_of::<T>(),
            align: core::mem::align_of::<T>(),
            out: false,
            optional: false,
            elements: None,
            movable: true,
            null_decided_by: None,
        }
    }
    fn output<T>(p: *mut T, count: usize) -> Arg {
        Arg {
            out: true,
            ..Arg::input(p as *const T, count)
        }
    }
    fn optional(self) -> Arg {
        Arg {
            optional: true,
            ..self
        }
    }
    fn null_decided_by(self, statuses: &'static [i32]) -> Arg {
        Arg {
            null_decided_by: Some(statuses),
            ..self
        }
    }
    fn bytes(&self) -> Option<usize> {
        self.count
            .and_then(|c| c.checked_mul(self.size))
            .filter(|b| *b <= isize::MAX as usize)
    }
}

#[derive(Debug)]
enum Verdict {
    /// The call must fail with one of these.
    Fail(Vec<i32>),
    /// The pointers are acceptable; `degenerate`: an empty array lies strictly inside
    /// another buffer, which the library may count as an overlap.
    Ok { degenerate: bool },
}

fn pointer_status(st: i32) -> bool {
    [
        GHM_ERR_NULL,
        GHM_ERR_MISALIGNED,
        GHM_ERR_LENGTH,
        GHM_ERR_OVERLAP,
    ]
    .contains(&st)
}

/// The contract's pointer rules: NULL where required (arrays may be NULL when empty),
/// alignment, lengths that fit the address space, then no output overlapping an input or
/// another output (`in_place`: a pair that may be exactly equal).
fn verdict(args: &[Arg], in_place: Option<(usize, usize)>) -> Verdict {
    let mut errs = Vec::new();
    let mut spans = Vec::new();
    let mut decided_later = None;
    for a in args {
        if a.count.is_none() {
            errs.push(GHM_ERR_LENGTH);
        }
        if a.p == 0 {
            if a.count != Some(0) && a.null_decided_by.is_some() {
                decided_later = a.null_decided_by;
            } else if a.count != Some(0) && !a.optional {
                errs.push(GHM_ERR_NULL);
            }
            spans.push((0, 0));
            continue;
        }
        if a.p % a.align != 0 {
            errs.push(GHM_ERR_MISALIGNED);
        }
        match a.bytes().and_then(|b| a.p.checked_add(b)) {
            Some(end) => spans.push((a.p, end)),
            None => {
                errs.push(GHM_ERR_LENGTH);
                spans.push((a.p, a.p));
            }
        }
    }
    if !errs.is_empty() {
        return Verdict::Fail(errs);
    }
    let (mut strict, mut degenerate) = (false, false);
    for (i, a) in args.iter().enumerate() {
        if !a.out {
            continue;
        }
        for j in 0..args.len() {
            if i == j {
                continue;
            }
            let (s, t) = (spans[i], spans[j]);
            let pair = in_place.is_some_and(|(x, y)| (x, y) == (i, j) || (y, x) == (i, j));
            if pair && s == t && s.0 < s.1 {
                continue;
            }
            let touches = s.0 < t.1 && t.0 < s.1;
            let nonempty = s.0 < s.1 && t.0 < t.1;
            if touches && nonempty {
                strict = true;
            } else if touches {
                degenerate = true;
            }
        }
    }
    if strict {
        return Verdict::Fail(vec![GHM_ERR_OVERLAP]);
    }
    match decided_later {
        Some(statuses) => {
            let mut errs = statuses.to_vec();
            if degenerate {
                errs.push(GHM_ERR_OVERLAP);
            }
            Verdict::Fail(errs)
        }
        None => Verdict::Ok { degenerate },
    }
}

/// What a NULL GHM-C targets pointer gets from an accumulate: the state's error, or
/// GHM_ERR_NULL from a state without GHM_OPT_GRADIENT_INPUT (which these runs never set).
const NULL_TARGETS_ACCUMULATE: &[i32] = &[GHM_ERR_NULL, GHM_ERR_STATE, GHM_ERR_WRONG_LOSS];
/// The same for an apply: a bad output spec or the region weights' error come first.
const NULL_TARGETS_APPLY: &[i32] = &[
    GHM_ERR_NULL,
    GHM_ERR_OUTPUT,
    GHM_ERR_NOT_COMMITTED,
    GHM_ERR_WRONG_LOSS,
];

/// Word offsets of the buffers in the arena.
#[derive(Clone, Copy, Debug, Default)]
struct Slots {
    state: usize,
    stats: usize,
    part: usize,
    single: usize,
    foreign: usize,
    weights: usize,
    loss: usize,
    share: usize,
    spec: usize,
    layout: usize,
    a: usize,
    b: usize,
    w: usize,
    labels: usize,
    out: usize,
}

struct Arena {
    mem: Vec<u64>,
}

impl Arena {
    fn words(&self) -> &[u32] {
        unsafe { core::slice::from_raw_parts(self.mem.as_ptr().cast(), self.mem.len() * 2) }
    }
    fn words_mut(&mut self) -> &mut [u32] {
        unsafe { core::slice::from_raw_parts_mut(self.mem.as_mut_ptr().cast(), self.mem.len() * 2) }
    }
    fn ptr<T>(&mut self, word: usize) -> *mut T {
        assert!(word <= self.mem.len() * 2);
        unsafe { self.mem.as_mut_ptr().cast::<u32>().add(word).cast() }
    }
    fn base(&self) -> usize {
        self.mem.as_ptr() as usize
    }
    fn end(&self) -> usize {
        self.base() + self.mem.len() * 8
    }
    fn read<T: Copy>(&self, word: usize) -> T {
        assert!(word * 4 + size_of::<T>() <= self.mem.len() * 8);
        // SAFETY: in bounds; only used for plain-data types (every bit pattern is a value).
        unsafe { core::ptr::read_unaligned(self.words().as_ptr().add(word).cast()) }
    }
    fn write<T: Copy>(&mut self, word: usize, v: &T) {
        assert!(word * 4 + size_of::<T>() <= self.mem.len() * 8);
        unsafe { core::ptr::write_unaligned(self.words_mut().as_mut_ptr().add(word).cast(), *v) }
    }
    fn floats(&self, word: usize, n: usize) -> Vec<f32> {
        self.words()[word..word + n]
            .iter()
            .map(|w| f32::from_bits(*w))
            .collect()
    }
    fn ints(&self, word: usize, n: usize) -> Vec<i32> {
        self.words()[word..word + n]
            .iter()
            .map(|w| *w as i32)
            .collect()
    }
    fn raw_words(&self, word: usize, n: usize) -> Vec<u32> {
        self.words()[word..word + n].to_vec()
    }

    /// Maybe turns the call into a probe first: one pointer NULL, misaligned, or at (or
    /// inside) another buffer; runs it with every generic check, then restores the arena.
    fn probe(
        &mut self,
        u: &mut Unstructured,
        args: &[Arg],
        in_place: Option<(usize, usize)>,
        f: &dyn Fn(&[usize]) -> i32,
    ) -> Result<()> {
        // (Rare branches take the high values: an exhausted input reads zeros.)
        if u.int_in_range(0u8..=4)? != 4 {
            return Ok(());
        }
        let mut bad = args.to_vec();
        let i = u.choose_index(bad.len())?;
        let others: Vec<usize> = (0..bad.len())
            .filter(|&j| j != i && bad[j].p != 0 && bad[j].bytes().is_some())
            .collect();
        let how = u.int_in_range(0u8..=5)?;
        let a = &mut bad[i];
        match how {
            0 => a.p = 0,
            1 | 2 if a.p != 0 => a.p += usize::from(how),
            3 if a.p != 0 && a.movable => a.p += 4,
            4 | 5 if a.movable && !others.is_empty() => {
                let j = *u.choose(&others)?;
                let words = args[j].bytes().unwrap_or(0) / 4;
                let k = if how == 4 {
                    0
                } else {
                    u.int_in_range(0..=words)?
                };
                a.p = args[j].p + 4 * k;
            }
            _ => a.p = 0,
        }
        // A probe that the rules accept must stay inside the arena (the end padding is as
        // large as any buffer); a layout's extent that does not fit is never accepted.
        if let Verdict::Ok { .. } = verdict(&bad, in_place) {
            for x in bad.iter().filter(|x| x.p != 0) {
                let end = x.p + x.bytes().unwrap();
                if x.p < self.base() || end > self.end() {
                    return Ok(()); // would be the caller's fault, not a test
                }
            }
        }
        let snapshot = self.mem.clone();
        let (st, _) = self.call(&bad, in_place, f);
        trace(&format!("probe {how} status {st}"));
        self.mem.copy_from_slice(&snapshot);
        Ok(())
    }

    /// Runs a call and checks the generic rules; returns its status and whether the
    /// pointers were acceptable.
    fn call(
        &mut self,
        args: &[Arg],
        in_place: Option<(usize, usize)>,
        f: &dyn Fn(&[usize]) -> i32,
    ) -> (i32, bool) {
        let v = verdict(args, in_place);
        let before = self.mem.clone();
        let p: Vec<usize> = args.iter().map(|a| a.p).collect();
        let st = f(&p);
        assert!(known_status(st), "unknown status {st}");
        let ok_pointers = match &v {
            Verdict::Fail(errs) => {
                assert!(
                    errs.contains(&st),
                    "pointer rules {errs:?} broken, status {st} ({args:?})"
                );
                false
            }
            Verdict::Ok { degenerate } => {
                assert!(
                    !pointer_status(st) || (*degenerate && st == GHM_ERR_OVERLAP),
                    "acceptable pointers refused with {st} ({args:?})"
                );
                st != GHM_ERR_OVERLAP
            }
        };
        if st != GHM_OK {
            assert!(
                self.mem == before,
                "failed call (status {st}) wrote caller memory"
            );
            return (st, ok_pointers);
        }
        // Nothing but the outputs changed.
        let base = self.base();
        let before_w: &[u32] =
            unsafe { core::slice::from_raw_parts(before.as_ptr().cast(), before.len() * 2) };
        let mut masks: Vec<Option<Vec<bool>>> = Vec::new();
        for a in args {
            masks.push(a.elements.map(|l| {
                let extent = l.extent().unwrap();
                let mut m = vec![false; extent];
                for r in 0..l.anchors {
                    for c in 0..l.classes {
                        m[r * l.anchor_stride + c * l.class_stride] = true;
                    }
                }
                m
            }));
        }
        for (i, (x, y)) in self.words().iter().zip(before_w).enumerate() {
            if x == y {
                continue;
            }
            let addr = base + 4 * i;
            let allowed = args.iter().zip(&masks).any(|(a, m)| {
                let inside = a.out && a.p != 0 && a.p <= addr && addr < a.p + a.bytes().unwrap();
                inside && m.as_ref().is_none_or(|m| m[(addr - a.p) / 4])
            });
            assert!(allowed, "word {i} written outside the outputs ({args:?})");
        }
        (st, ok_pointers)
    }

    /// A clean call, maybe preceded by a probe.
    fn step(
        &mut self,
        u: &mut Unstructured,
        args: &[Arg],
        in_place: Option<(usize, usize)>,
        f: &dyn Fn(&[usize]) -> i32,
    ) -> Result<(i32, bool)> {
        self.probe(u, args, in_place, f)?;
        Ok(self.call(args, in_place, f))
    }
}

// ---------------------------------------------------------------------------------------
// Inputs.

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    C,
    R,
    Labels,
}

/// A logit (a probability with GHM_OPT_PROBABILITY_INPUT), target or weight.
fn input(u: &mut Unstructured, kind: Kind, prob: bool, role: u8) -> Result<f32> {
    if prob && role == 0 {
        return Ok(match u.int_in_range(0u8..=15)? {
            0 => special(u)?,
            1 => f32::from_bits(u.arbitrary()?),
            2 => 0.0,
            3 => 1.0,
            4 => uniform(u, 0.0, 1.0e-6)?,
            _ => uniform(u, 0.0, 1.0)?,
        });
    }
    value(u, kind, role)
}

fn label(u: &mut Unstructured, classes: usize) -> Result<i32> {
    Ok(match u.int_in_range(0u8..=9)? {
        0 => u.arbitrary()?,
        1 => -1,
        2 => classes as i32,
        3 => *u.choose(&[i32::MIN, i32::MAX, 1 << 24, (1 << 24) + 1, -2, 255])?,
        _ if classes > 0 => u.int_in_range(0..=classes - 1)? as i32,
        _ => 0,
    })
}

/// A class layout; `fits` is false for the ones whose extent or label count does not fit
/// the address space (or an arena), which every call must refuse before reading.
fn layout(u: &mut Unstructured) -> Result<(ClassLayout, bool)> {
    let l = |anchors, classes, anchor_stride, class_stride| ClassLayout {
        anchors,
        classes,
        anchor_stride,
        class_stride,
        ..ClassLayout::rows(0, 0)
    };
    if u.int_in_range(0u8..=19)? == 19 {
        let big = *u.choose(&[
            l(1 << 62, 1, 1, 1),
            l(usize::MAX, 2, 2, 1),
            l(3, usize::MAX / 2, usize::MAX / 2, 1),
            l(1 << 62, 0, 0, 1),
            l(2, 3, usize::MAX, 1),
            l(0, (1 << 24) + 1, 1, 1),
            l(0, usize::MAX, 0, 0),
            // (Not l(0, 1 << 24, 1, 1): walked as 2^24 empty planes, 16M steps per call.)
            l(0, 1 << 24, 1 << 24, 1),
        ])?;
        let fits = big.anchors == 0;
        return Ok((big, fits));
    }
    let classes = match u.int_in_range(0u8..=9)? {
        0 => 0,
        1 => 1,
        2 => u.int_in_range(2..=300)?,
        _ => u.int_in_range(2..=20)?,
    };
    let max_anchors = if classes == 0 {
        64
    } else {
        (3000 / classes).max(1)
    };
    let anchors = match u.int_in_range(0u8..=9)? {
        0 => 0,
        1 => 1,
        _ => u.int_in_range(1..=max_anchors.min(200))?,
    };
    let pad = if u.ratio(1u8, 3)? {
        u.int_in_range(1..=5)?
    } else {
        0
    };
    let lay = match u.int_in_range(0u8..=7)? {
        0..=2 => l(anchors, classes, classes + pad, 1),
        3..=5 => l(anchors, classes, 1, anchors + pad),
        6 => {
            // Off by one: rows or planes that overlap their neighbours.
            if u.arbitrary()? {
                l(anchors, classes, classes.saturating_sub(1), 1)
            } else {
                l(anchors, classes, 1, anchors.saturating_sub(1))
            }
        }
        _ => l(
            anchors,
            classes,
            u.int_in_range(0..=70)?,
            u.int_in_range(0..=70)?,
        ),
    };
    let fits = lay.extent().is_some_and(|e| e <= MAX_EXTENT);
    Ok((lay, fits))
}

/// The layout's elements gathered into `[anchors][classes]` rows.
fn gather(l: &ClassLayout, logits: &[f32]) -> Vec<f32> {
    let mut g = Vec::with_capacity(l.anchors * l.classes);
    for r in 0..l.anchors {
        for c in 0..l.classes {
            g.push(logits[r * l.anchor_stride + c * l.class_stride]);
        }
    }
    g
}

/// A layout's sub-layout of anchors `lo..hi`, and its first element's offset (an empty one
/// starts no further than the layout's end).
fn sub_layout(l: &ClassLayout, lo: usize, hi: usize) -> (ClassLayout, usize) {
    let sub = ClassLayout {
        anchors: hi - lo,
        ..*l
    };
    let off = lo.wrapping_mul(l.anchor_stride);
    match (sub.extent(), l.extent()) {
        (Some(0), Some(end)) => (sub, off.min(end)),
        _ => (sub, off),
    }
}

fn spec_output(s: &ghm_output) -> Option<Output> {
    let kind = match s.kind {
        GHM_OUTPUT_GRADIENT => OutputKind::Gradient,
        GHM_OUTPUT_ELEMENT_WEIGHT => OutputKind::ElementWeight,
        GHM_OUTPUT_ELEMENT_LOSS => OutputKind::ElementLoss,
        _ => return None,
    };
    (s.add <= 1 && s.sum <= 1 && s.scale.is_finite()).then_some(Output {
        kind,
        scale: s.scale,
        add: s.add == 1,
        sum: s.sum == 1,
    })
}

// ---------------------------------------------------------------------------------------
// The safe API on copies: the statuses and bits each clean call must give.

fn code<T>(r: core::result::Result<T, ghm::Error>) -> i32 {
    r.map_or_else(|e| e.code(), |_| GHM_OK)
}

fn words_of<T: Copy>(v: &T) -> Vec<u32> {
    assert_eq!(size_of::<T>() % 4, 0);
    let p = (v as *const T).cast::<u32>();
    (0..size_of::<T>() / 4)
        .map(|i| unsafe { p.add(i).read_unaligned() })
        .collect()
}

fn safe_stats(st: &State, counting: bool) -> core::result::Result<Stats, ghm::Error> {
    match Ghm::<Classification>::from_state(*st) {
        Ok(g) if counting => Ok(g.counting_stats()),
        Ok(g) => Ok(g.stats()),
        Err(_) => Ghm::<Regression>::from_state(*st)
            .map(|g| {
                if counting {
                    g.counting_stats()
                } else {
                    g.stats()
                }
            })
            .map_err(|_| ghm::Error::State),
    }
}

fn safe_accumulate(
    kind: Kind,
    st: &State,
    stats: &mut Stats,
    a: &[f32],
    b: Option<&[f32]>,
    w: Option<&[f32]>,
) -> i32 {
    code(match kind {
        Kind::C => Ghm::<Classification>::from_state(*st)
            .and_then(|g| g.accumulate(stats, a, b.unwrap_or(&[]), w)),
        Kind::R => Ghm::<Regression>::from_state(*st).and_then(|g| match b {
            Some(b) => g.accumulate(stats, a, b, w),
            None => g.accumulate_residual(stats, a, w),
        }),
    })
}

fn safe_commit(
    st: &State,
    stats: &Stats,
) -> core::result::Result<(State, RegionWeights), ghm::Error> {
    match Ghm::<Classification>::from_state(*st) {
        Ok(mut g) => g.commit(stats).map(|w| (*g.state(), w)),
        Err(_) => match Ghm::<Regression>::from_state(*st) {
            Ok(mut g) => g.commit(stats).map(|w| (*g.state(), w)),
            Err(_) => Err(ghm::Error::State),
        },
    }
}

fn kind_word(kind: Kind) -> u32 {
    match kind {
        Kind::C => ghm::Kind::Classification as u32,
        Kind::R => ghm::Kind::Regression as u32,
    }
}

/// The status an element-wise or class-index apply of `kind` must give, from the safe
/// API's (which applies weights of either loss): the weights' loss must match the call's.
fn apply_status(kind: Kind, weights: &RegionWeights, safe: i32) -> Vec<i32> {
    let kind_at = words_of(weights)[1];
    if safe == GHM_ERR_NOT_COMMITTED {
        vec![GHM_ERR_NOT_COMMITTED, GHM_ERR_WRONG_LOSS]
    } else if kind_at != kind_word(kind) {
        vec![GHM_ERR_WRONG_LOSS]
    } else {
        vec![safe]
    }
}

// ---------------------------------------------------------------------------------------
// One run.

fn run(u: &mut Unstructured) -> Result<()> {
    let mode = match u.int_in_range(0u8..=2)? {
        0 => Mode::C,
        1 => Mode::R,
        _ => Mode::Labels,
    };
    let kind = if mode == Mode::R { Kind::R } else { Kind::C };
    let mut cfg = config(u, kind)?;
    if kind == Kind::C && u.ratio(1u8, 3)? {
        cfg.options |= ghm::OPT_PROBABILITY_INPUT;
    }
    let prob = kind == Kind::C && cfg.options & ghm::OPT_PROBABILITY_INPUT != 0;
    let residual = mode == Mode::R && u.ratio(1u8, 3)?;

    // The batch: n elements, or a layout of anchors.
    let (lay, fits) = if mode == Mode::Labels {
        layout(u)?
    } else {
        let n = match u.int_in_range(0u8..=15)? {
            0 => 0,
            1..=9 => u.int_in_range(1..=40)?,
            10..=13 => u.int_in_range(41..=400)?,
            _ => u.int_in_range(401..=4100)?,
        };
        (ClassLayout::rows(n, 1), true)
    };
    let anchors = if fits {
        lay.anchors
    } else {
        lay.anchors.min(64)
    };
    let extent = if fits { lay.extent().unwrap() } else { 64 };
    let n = if mode == Mode::Labels {
        extent
    } else {
        anchors
    }; // floats of a / out

    // Placement: every buffer in one arena, 8-byte aligned, with small gaps.
    let mut cursor = 2usize;
    let mut slots = Slots::default();
    let mut largest = 0;
    let gaps: u8 = u.arbitrary()?;
    let mut place = |words: usize, k: u32| {
        let at = cursor + 2 * usize::from((gaps >> (k % 4)) & 1);
        cursor = (at + words + 1) & !1;
        largest = largest.max(words);
        at
    };
    slots.state = place(STATE_WORDS, 0);
    slots.stats = place(STATS_WORDS, 1);
    slots.part = place(STATS_WORDS, 2);
    slots.single = place(STATS_WORDS, 3);
    slots.foreign = place(STATS_WORDS, 4);
    slots.weights = place(WEIGHTS_WORDS, 5);
    slots.loss = place(1, 6);
    slots.share = place(2, 6);
    slots.spec = place(SPEC_WORDS, 7);
    slots.layout = place(LAYOUT_WORDS, 8);
    slots.a = place(n, 9);
    let b_alias = mode != Mode::Labels && !residual && u.int_in_range(0u8..=11)? == 11;
    slots.b = if b_alias { slots.a } else { place(n, 10) };
    slots.w = match u.int_in_range(0u8..=11)? {
        10 if mode != Mode::Labels => slots.a,
        11 if mode != Mode::Labels => slots.b,
        _ => place(anchors, 11),
    };
    slots.labels = place(anchors, 12);
    let in_place = mode != Mode::Labels && u.int_in_range(0u8..=5)? == 5;
    slots.out = if in_place { slots.a } else { place(n, 13) };
    let total = cursor + largest + 16;
    let mut ar = Arena {
        mem: vec![u64::from(PATTERN) << 32 | u64::from(PATTERN); total / 2 + 1],
    };

    // Values, in order (later roles win where buffers alias); layout gaps stay NaN.
    let use_w = u.ratio(2u8, 3)?;
    if mode == Mode::Labels {
        for r in 0..anchors {
            for c in 0..lay.classes {
                let at = r
                    .wrapping_mul(lay.anchor_stride)
                    .wrapping_add(c.wrapping_mul(lay.class_stride));
                if fits {
                    let v = input(u, kind, prob, 0)?;
                    ar.words_mut()[slots.a + at] = v.to_bits();
                }
            }
        }
        for r in 0..anchors {
            let lb = label(u, lay.classes)?;
            ar.words_mut()[slots.labels + r] = lb as u32;
        }
    } else {
        for i in 0..n {
            let v = input(u, kind, prob, 0)?;
            ar.words_mut()[slots.a + i] = v.to_bits();
        }
        if !residual {
            for i in 0..n {
                let v = input(u, kind, prob, 1)?;
                ar.words_mut()[slots.b + i] = v.to_bits();
            }
        }
    }
    if use_w {
        for i in 0..anchors {
            let v = input(u, kind, prob, 2)?;
            ar.words_mut()[slots.w + i] = v.to_bits();
        }
    }
    if !in_place {
        let fill = u.int_in_range(0u8..=3)?;
        for i in 0..n {
            let v = match fill {
                0 => f32::from_bits(PATTERN),
                1 => 0.0,
                _ => uniform(u, -2.0, 2.0)?,
            };
            ar.words_mut()[slots.out + i] = v.to_bits();
        }
    }
    // Copies of the batch, for the independent computations.
    let a0 = ar.floats(slots.a, n);
    let b0 = (!residual && mode != Mode::Labels).then(|| ar.floats(slots.b, n));
    let w0 = use_w.then(|| ar.floats(slots.w, anchors));
    let labels0 = ar.ints(slots.labels, anchors);

    // The state.
    let state_p = ar.ptr::<State>(slots.state);
    let init = |kind: Kind, st: *mut State, c: &ghm::Config| unsafe {
        match kind {
            Kind::C => ghm_c_init(st, c),
            Kind::R => ghm_r_init(st, c),
        }
    };
    let mut state_ok;
    match u.int_in_range(0u8..=15)? {
        0..=11 => {
            let args = [Arg::output(state_p, 1)];
            let (st, _) = ar.call(&args, None, &|p| init(kind, p[0] as *mut State, &cfg));
            let expect = match kind {
                Kind::C => code(Ghm::<Classification>::new(cfg)),
                Kind::R => code(Ghm::<Regression>::new(cfg)),
            };
            assert_eq!(st, expect, "init vs safe API");
            state_ok = st == GHM_OK;
        }
        12 => {
            let dflt = ghm_c_config_default();
            assert_eq!(init(kind.other(), state_p, &dflt), GHM_OK);
            state_ok = false;
        }
        13 => {
            init(kind, state_p, &cfg);
            let i = u.int_in_range(0..=STATE_WORDS - 1)?;
            ar.words_mut()[slots.state + i] ^= u.arbitrary::<u32>()?.max(1);
            state_ok = false;
        }
        14 => {
            for i in 0..STATE_WORDS {
                ar.words_mut()[slots.state + i] = u.arbitrary()?;
            }
            state_ok = false;
        }
        _ => {
            init(kind, state_p, &cfg);
            let i = u.int_in_range(0..=STATE_WORDS - 2)?;
            ar.words_mut()[slots.state + i] = u.int_in_range(0u32..=70)?;
            let s = slots.state;
            reseal(&mut ar.words_mut()[s..s + STATE_WORDS]);
            state_ok = false;
        }
    }
    // Maybe warm the EMA up with a one-shot call on the batch.
    if mode != Mode::Labels && !residual && fits && u.arbitrary()? {
        let (sp, ap, bp) = (
            ar.ptr::<State>(slots.state),
            ar.ptr::<f32>(slots.a),
            ar.ptr::<f32>(slots.b),
        );
        let wp = if use_w {
            ar.ptr::<f32>(slots.w)
        } else {
            core::ptr::null_mut()
        };
        let lp = ar.ptr::<f32>(slots.loss);
        let st = unsafe {
            match kind {
                Kind::C => ghm_c_loss(sp, ap, bp, wp, n, lp, core::ptr::null_mut()),
                Kind::R => ghm_r_loss(sp, ap, bp, wp, n, lp, core::ptr::null_mut()),
            }
        };
        assert!(known_status(st));
        ar.words_mut()[slots.loss] = PATTERN;
    }
    let state0: State = ar.read(slots.state);
    if ghm_state_kind(&state0) != Some(kind) {
        state_ok = false;
    }

    // Chunks: split points over the anchors (elements).
    let chunks = u.int_in_range(1usize..=4)?;
    let mut cuts: Vec<usize> = (1..chunks)
        .map(|_| u.int_in_range(0..=anchors))
        .collect::<Result<_>>()?;
    cuts.push(0);
    cuts.push(anchors);
    cuts.sort_unstable();

    // Phase 0: stats for the batch.
    let mut stats_ok = state_ok; // made by stats_init from the run's own valid state
    let s_main = slots.stats;
    // counting stats: phase 1 counts only, the applies' shares make the loss
    let counting = u.ratio(1u8, 3)?;
    init_stats(&mut ar, u, slots.state, s_main, counting)?;
    match u.int_in_range(0u8..=15)? {
        14 => {
            for i in 0..STATS_WORDS {
                ar.words_mut()[s_main + i] = u.arbitrary()?;
            }
            stats_ok = false;
        }
        15 => {
            foreign_stats(&mut ar, u, kind, &cfg, s_main)?;
            stats_ok = false;
        }
        _ => {}
    }

    // Phase 1: accumulate every chunk, directly or into its own stats merged in.
    let mut first_err = GHM_OK;
    let mut clean = fits;
    for c in 0..chunks {
        let (lo, hi) = (cuts[c], cuts[c + 1]);
        let direct = u.ratio(1u8, 3)?;
        let into = if direct { s_main } else { slots.part };
        if !direct {
            init_stats(&mut ar, u, slots.state, into, counting)?;
        }
        let st = accumulate(
            &mut ar, u, mode, kind, &slots, &lay, fits, lo, hi, use_w, residual, into,
        )?;
        if st.is_none() {
            clean = false;
            continue;
        }
        let st = st.unwrap();
        if first_err == GHM_OK && st != GHM_OK {
            first_err = st;
        }
        if !direct {
            merge(&mut ar, u, into, s_main)?;
        }
        if u.int_in_range(0u8..=19)? == 19 {
            // Merge stats of another loss or bin count, or garbage: commit must refuse.
            foreign_stats(&mut ar, u, kind, &cfg, slots.foreign)?;
            merge(&mut ar, u, slots.foreign, s_main)?;
            stats_ok = false;
        }
    }

    // The same batch in one accumulate.
    init_stats(&mut ar, u, slots.state, slots.single, counting)?;
    let single_st = accumulate(
        &mut ar,
        u,
        mode,
        kind,
        &slots,
        &lay,
        fits,
        0,
        anchors,
        use_w,
        residual,
        slots.single,
    )?;
    if state_ok && stats_ok && clean && first_err == GHM_OK && single_st == Some(GHM_OK) {
        trace(&format!("chunked-vs-single {mode:?} chunks {chunks}"));
        let (m, s): (Stats, Stats) = (ar.read(s_main), ar.read(slots.single));
        assert_eq!(m.count, s.count, "chunked vs single counts");
        let tol = |x: f64, y: f64| x == y || (x - y).abs() <= 1e-12 * x.abs().max(y.abs());
        assert!(
            tol(m.weight_sum, s.weight_sum),
            "weight_sum {} vs {}",
            m.weight_sum,
            s.weight_sum
        );
        for k in 0..ghm::MAX_BINS {
            assert!(
                tol(m.loss_sum[k], s.loss_sum[k]),
                "loss_sum[{k}] {} vs {}",
                m.loss_sum[k],
                s.loss_sum[k]
            );
        }
    }

    // Phase 2: commit.
    let commit_st = {
        // the loss may be NULL; with counting stats it must be (they hold no loss), which a
        // few runs break on purpose
        let with_loss = if counting {
            u.int_in_range(0u8..=7)? == 7
        } else {
            u.int_in_range(0u8..=7)? != 7
        };
        let loss_p = if with_loss {
            ar.ptr::<f32>(slots.loss)
        } else {
            core::ptr::null_mut()
        };
        let args = [
            Arg::input(ar.ptr::<Stats>(s_main), 1),
            Arg::output(ar.ptr::<State>(slots.state), 1),
            Arg::output(ar.ptr::<RegionWeights>(slots.weights), 1),
            Arg::output(loss_p, 1).optional(),
        ];
        let (stats_in, st_in): (Stats, State) = (ar.read(s_main), ar.read(slots.state));
        let (st, _) = ar.step(u, &args, None, &|p| unsafe {
            ghm_commit(
                p[0] as *const Stats,
                p[1] as *mut State,
                p[2] as *mut RegionWeights,
                p[3] as *mut f32,
            )
        })?;
        let safe = safe_commit(&st_in, &stats_in);
        // a loss pointer with counting stats: refused once the state and the stats pass their
        // checks, before the weighing (whose overflow the safe API would report)
        let early = matches!(safe, Err(ghm::Error::State | ghm::Error::StatsMismatch));
        match safe {
            _ if with_loss && stats_in.is_counting() && !early => {
                // the rules checked that nothing was written; the pipeline stops here
                assert_eq!(st, GHM_ERR_NO_LOSS, "commit of counting stats with a loss");
                clean = false;
            }
            Ok((next, w)) => {
                assert_eq!(st, GHM_OK, "commit vs safe API");
                assert_eq!(
                    ar.raw_words(slots.state, STATE_WORDS),
                    words_of(&next),
                    "commit state"
                );
                assert_eq!(
                    ar.raw_words(slots.weights, WEIGHTS_WORDS),
                    words_of(&w),
                    "commit weights"
                );
                if stats_in.is_counting() {
                    assert_eq!(w.loss(), Err(ghm::Error::NoLoss), "counting commit loss");
                } else if with_loss {
                    let loss = f32::from_bits(ar.words()[slots.loss]);
                    assert_eq!(loss.to_bits(), w.loss().unwrap().to_bits(), "commit loss");
                    assert!(loss.is_finite(), "non-finite loss");
                }
                assert!(
                    w.coefficients().iter().all(|c| c.is_finite()),
                    "non-finite weights"
                );
                let valid = Ghm::<Classification>::from_state(next).is_ok()
                    || Ghm::<Regression>::from_state(next).is_ok();
                assert!(valid, "commit left a state the library refuses");
            }
            Err(e) => assert_eq!(st, e.code(), "commit status vs safe API"),
        }
        trace(&format!("commit status {st}"));
        st
    };
    let mut weights_ok = true;
    match u.int_in_range(0u8..=15)? {
        13 => {
            let i = u.int_in_range(0..=WEIGHTS_WORDS - 1)?;
            ar.words_mut()[slots.weights + i] ^= u.arbitrary::<u32>()?.max(1);
            weights_ok = false;
        }
        14 => {
            for i in 0..WEIGHTS_WORDS {
                ar.words_mut()[slots.weights + i] = u.arbitrary()?;
            }
            weights_ok = false;
        }
        15 => {
            // RegionWeights committed by the other loss.
            let other = kind.other();
            let mut st = vec![0u32; STATE_WORDS];
            let dflt = ghm_r_config_default();
            assert_eq!(init(other, st.as_mut_ptr().cast(), &dflt), GHM_OK);
            let mut stats = [0u64; STATS_WORDS / 2];
            let mut loss = 0f32;
            unsafe {
                assert_eq!(
                    ghm_stats_init(st.as_ptr().cast(), stats.as_mut_ptr().cast()),
                    GHM_OK
                );
                let wp = ar.ptr::<RegionWeights>(slots.weights);
                assert_eq!(
                    ghm_commit(stats.as_ptr().cast(), st.as_mut_ptr().cast(), wp, &mut loss),
                    GHM_OK
                );
            }
            weights_ok = false;
        }
        _ => {}
    }

    // Phase 3: apply every chunk.
    let spec_p = match u.int_in_range(0u8..=5)? {
        0..=2 => None,
        3 | 4 => {
            let kinds = [
                GHM_OUTPUT_GRADIENT,
                GHM_OUTPUT_ELEMENT_WEIGHT,
                GHM_OUTPUT_ELEMENT_LOSS,
            ];
            let scale = match u.int_in_range(0u8..=5)? {
                0 => special(u)?,
                1 => *u.choose(&[-1.0, -2.0, 1.0e38, f32::MAX, -3.0e38])?,
                2 => uniform(u, -4.0, 4.0)?,
                _ => 1.0,
            };
            let s = ghm_output {
                kind: *u.choose(&kinds)?,
                scale,
                add: u.int_in_range(0u32..=1)?,
                sum: u.int_in_range(0u32..=1)?,
            };
            ar.write(slots.spec, &s);
            Some(s)
        }
        _ => {
            let s = ghm_output {
                kind: u.arbitrary()?,
                scale: f32::from_bits(u.arbitrary()?),
                add: u.arbitrary()?,
                sum: u.arbitrary()?,
            };
            ar.write(slots.spec, &s);
            Some(s)
        }
    };
    let gradient_out = spec_p.is_none_or(|s| {
        s.kind == GHM_OUTPUT_GRADIENT && s.scale == 1.0 && s.add == 0 && s.sum == 0
    });
    let mut apply_err = GHM_OK;
    let mut shares = 0.0f64;
    // with counting stats, some runs take the shares alone (`out` NULL): no gradient
    let share_only = counting && u.int_in_range(0u8..=5)? == 5;
    for c in 0..chunks {
        let (lo, hi) = (cuts[c], cuts[c + 1]);
        let st = apply(
            &mut ar, u, mode, kind, &slots, &lay, fits, lo, hi, use_w, residual, in_place, spec_p,
            counting, share_only,
        )?;
        match st {
            None => clean = false,
            Some(st) if apply_err == GHM_OK => {
                apply_err = st;
                if st == GHM_OK && counting {
                    shares += ar.read::<f64>(slots.share);
                }
            }
            _ => {}
        }
    }

    // The pipeline against the one-shot call on a copy of the state.
    if !(state_ok && stats_ok && weights_ok && clean && gradient_out) {
        return Ok(());
    }
    // With counting stats the loss is the applies': a share past float's range is their
    // error, and so is a sum of shares past it (the caller's loss is then no float).
    let pipeline_st = if first_err != GHM_OK {
        first_err
    } else if commit_st != GHM_OK || !counting {
        commit_st
    } else if apply_err != GHM_OK {
        apply_err
    } else if !(shares as f32).is_finite() {
        GHM_ERR_OVERFLOW
    } else {
        GHM_OK
    };
    let out = ar.floats(slots.out, n);
    let weights: RegionWeights = ar.read(slots.weights);
    let m: Stats = ar.read(s_main);
    let single: Stats = ar.read(slots.single);
    let exact_tot = m.weight_sum == single.weight_sum;
    let compare = |what: &str,
                   st: i32,
                   next: &[u32],
                   loss: f32,
                   grad: &[f32],
                   at: &dyn Fn(usize) -> usize| {
        trace(&format!("{what} {mode:?} status {st} n {n}"));
        // A class-index batch is validated in its layout's walking order (planes: class by
        // class) and in chunks of anchors, so with several bad elements the first one found
        // may differ from the one-shot's on rows; it is still an element error.
        let element = [
            GHM_ERR_NONFINITE,
            GHM_ERR_TARGET,
            GHM_ERR_WEIGHT,
            GHM_ERR_PROBABILITY,
        ];
        let either =
            mode == Mode::Labels && element.contains(&pipeline_st) && element.contains(&st);
        if !either {
            assert_eq!(pipeline_st, st, "{what}: three-phase vs one-shot status");
        }
        if st != GHM_OK {
            return;
        }
        assert_eq!(
            apply_err, GHM_OK,
            "{what}: apply refused what one-shot accepted"
        );
        assert_eq!(
            ar.raw_words(slots.state, STATE_WORDS),
            next,
            "{what}: state"
        );
        let three = if counting {
            shares as f32
        } else {
            weights.loss().unwrap()
        };
        assert!(
            close(three, loss, 1e-6, f32::MIN_POSITIVE),
            "{what}: loss {three} vs {loss} (counting {counting})"
        );
        if share_only {
            return;
        }
        for (i, g) in grad.iter().enumerate() {
            let x = out[at(i)];
            if kind == Kind::C || exact_tot {
                assert_eq!(x.to_bits(), g.to_bits(), "{what}: gradient {i}: {x} vs {g}");
            } else {
                assert!(
                    close(x, *g, 1e-6, 1e-37),
                    "{what}: gradient {i}: {x} vs {g}"
                );
            }
        }
    };
    let mut st = state_words(&state0);
    let mut loss = f32::from_bits(PATTERN);
    if mode == Mode::Labels {
        let rows = gather(&lay, &a0);
        let mut grad = vec![f32::from_bits(PATTERN); rows.len()];
        let s = unsafe {
            ghm_c_loss_labels(
                st.as_mut_ptr().cast(),
                rows.as_ptr(),
                lay.anchors,
                lay.classes,
                labels0.as_ptr(),
                w0.as_ref().map_or(core::ptr::null(), |w| w.as_ptr()),
                &mut loss,
                grad.as_mut_ptr(),
            )
        };
        let at =
            |i: usize| (i / lay.classes) * lay.anchor_stride + (i % lay.classes) * lay.class_stride;
        if lay.is_supported() {
            compare("loss_labels", s, &st, loss, &grad, &at);
        }
        // And element-wise, with materialised one-hot targets and per-element weights.
        let hot: Vec<f32> = (0..rows.len())
            .map(|i| {
                f32::from(u8::from(
                    labels0[i / lay.classes] == (i % lay.classes) as i32,
                ))
            })
            .collect();
        let we: Option<Vec<f32>> = w0
            .as_ref()
            .map(|w| (0..rows.len()).map(|i| w[i / lay.classes]).collect());
        let mut st = state_words(&state0);
        let s = unsafe {
            ghm_c_loss(
                st.as_mut_ptr().cast(),
                rows.as_ptr(),
                hot.as_ptr(),
                we.as_ref().map_or(core::ptr::null(), |w| w.as_ptr()),
                rows.len(),
                &mut loss,
                grad.as_mut_ptr(),
            )
        };
        if lay.is_supported() {
            compare("one-hot loss", s, &st, loss, &grad, &at);
        }
    } else {
        let zeros = vec![0.0f32; n];
        let b = b0.as_deref().unwrap_or(&zeros);
        let mut grad = vec![f32::from_bits(PATTERN); n];
        let wp = w0.as_ref().map_or(core::ptr::null(), |w| w.as_ptr());
        let s = unsafe {
            match kind {
                Kind::C => ghm_c_loss(
                    st.as_mut_ptr().cast(),
                    a0.as_ptr(),
                    b.as_ptr(),
                    wp,
                    n,
                    &mut loss,
                    grad.as_mut_ptr(),
                ),
                Kind::R => ghm_r_loss(
                    st.as_mut_ptr().cast(),
                    a0.as_ptr(),
                    b.as_ptr(),
                    wp,
                    n,
                    &mut loss,
                    grad.as_mut_ptr(),
                ),
            }
        };
        compare("loss", s, &st, loss, &grad, &|i| i);
    }
    Ok(())
}

fn ghm_state_kind(st: &State) -> Option<Kind> {
    match st.kind() {
        Ok(ghm::Kind::Classification) => Some(Kind::C),
        Ok(ghm::Kind::Regression) => Some(Kind::R),
        Err(_) => None,
    }
}

/// `ghm_stats_init(state, stats)`, checked against the safe API.
fn init_stats(
    ar: &mut Arena,
    u: &mut Unstructured,
    state: usize,
    stats: usize,
    counting: bool,
) -> Result<()> {
    let args = [
        Arg::input(ar.ptr::<State>(state), 1),
        Arg::output(ar.ptr::<Stats>(stats), 1),
    ];
    let st_in: State = ar.read(state);
    let f = if counting {
        ghm_stats_init_counting
    } else {
        ghm_stats_init
    };
    let (st, _) = ar.step(u, &args, None, &|p| unsafe {
        f(p[0] as *const State, p[1] as *mut Stats)
    })?;
    match safe_stats(&st_in, counting) {
        Ok(s) => {
            assert_eq!(st, GHM_OK, "stats_init vs safe API");
            assert_eq!(
                ar.raw_words(stats, STATS_WORDS),
                words_of(&s),
                "stats_init bits"
            );
        }
        Err(e) => assert_eq!(st, e.code(), "stats_init status"),
    }
    Ok(())
}

/// `ghm_stats_merge(from, into)`, checked against `Stats::merge`.
fn merge(ar: &mut Arena, u: &mut Unstructured, from: usize, into: usize) -> Result<()> {
    let args = [
        Arg::input(ar.ptr::<Stats>(from), 1),
        Arg::output(ar.ptr::<Stats>(into), 1),
    ];
    let (f, mut i): (Stats, Stats) = (ar.read(from), ar.read(into));
    let (st, _) = ar.step(u, &args, None, &|p| unsafe {
        ghm_stats_merge(p[0] as *const Stats, p[1] as *mut Stats)
    })?;
    assert_eq!(st, GHM_OK, "merge refused disjoint stats");
    i.merge(&f);
    assert_eq!(
        canonical_nans(&ar.raw_words(into, STATS_WORDS)),
        canonical_nans(&words_of(&i)),
        "merge bits"
    );
    Ok(())
}

/// The f64 values of stats' words, each NaN replaced by one canonical NaN: which NaN the sum
/// of two NaNs is depends on the order the compiled addition takes its operands in (IEEE
/// 754 and Rust leave it open), so merging garbage stats may differ there and only there.
fn canonical_nans(words: &[u32]) -> Vec<u64> {
    words
        .chunks_exact(2)
        .map(|w| f64::from_bits(u64::from(w[0]) | u64::from(w[1]) << 32))
        .map(|v| if v.is_nan() { f64::NAN } else { v }.to_bits())
        .collect()
}

/// Stats another state would make (the other loss, or another bin count), or garbage.
fn foreign_stats(
    ar: &mut Arena,
    u: &mut Unstructured,
    kind: Kind,
    cfg: &ghm::Config,
    at: usize,
) -> Result<()> {
    match u.int_in_range(0u8..=2)? {
        0 => {
            for i in 0..STATS_WORDS {
                ar.words_mut()[at + i] = u.arbitrary()?;
            }
        }
        which => {
            let mut st = vec![0u32; STATE_WORDS];
            let (k, mut c) = if which == 1 {
                (kind.other(), ghm_r_config_default())
            } else {
                (kind, ghm_r_config_default())
            };
            if which == 2 {
                c.bins = if cfg.bins == 7 { 8 } else { 7 };
            }
            let sp: *mut State = st.as_mut_ptr().cast();
            let r = unsafe {
                match k {
                    Kind::C => ghm_c_init(sp, &c),
                    Kind::R => ghm_r_init(sp, &c),
                }
            };
            assert_eq!(r, GHM_OK);
            let out = ar.ptr::<Stats>(at);
            assert_eq!(unsafe { ghm_stats_init(sp, out) }, GHM_OK);
        }
    }
    Ok(())
}

/// Accumulates anchors (elements) `lo..hi` into the stats at `into`; the status, or None if
/// the call was skipped (a layout too large to place whose pointers the rules accept).
#[allow(clippy::too_many_arguments)]
fn accumulate(
    ar: &mut Arena,
    u: &mut Unstructured,
    mode: Mode,
    kind: Kind,
    s: &Slots,
    lay: &ClassLayout,
    fits: bool,
    lo: usize,
    hi: usize,
    use_w: bool,
    residual: bool,
    into: usize,
) -> Result<Option<i32>> {
    let st_in: State = ar.read(s.state);
    let mut stats: Stats = ar.read(into);
    let w_p = |ar: &mut Arena| {
        if use_w {
            ar.ptr::<f32>(s.w + lo)
        } else {
            core::ptr::null_mut()
        }
    };
    if mode == Mode::Labels {
        let (sub, off) = sub_layout(lay, lo, hi);
        ar.write(s.layout, &sub);
        let extent = sub.extent();
        let logits_p = if fits {
            ar.ptr::<f32>(s.a + off)
        } else {
            ar.ptr::<f32>(s.a)
        };
        let wp = w_p(ar);
        let args = [
            Arg::input(ar.ptr::<State>(s.state), 1),
            Arg {
                count: extent,
                ..Arg::input(logits_p, 0)
            },
            Arg {
                movable: false,
                ..Arg::input(ar.ptr::<ClassLayout>(s.layout), 1)
            },
            Arg::input(ar.ptr::<i32>(s.labels + if fits { lo } else { 0 }), hi - lo),
            Arg::input(wp, hi - lo).optional(),
            Arg::output(ar.ptr::<Stats>(into), 1),
        ];
        let v = verdict(&args, None);
        if !fits && matches!(v, Verdict::Ok { .. }) {
            return Ok(None);
        }
        let (st, ok) = ar.step(u, &args, None, &|p| unsafe {
            ghm_c_accumulate_labels(
                p[0] as *const State,
                p[1] as *const f32,
                p[2] as *const ClassLayout,
                p[3] as *const i32,
                p[4] as *const f32,
                p[5] as *mut Stats,
            )
        })?;
        if !ok || !fits {
            return Ok(None);
        }
        let e = extent.unwrap();
        let logits = ar.floats(s.a + off, e);
        let labels = ar.ints(s.labels + lo, hi - lo);
        let w = use_w.then(|| ar.floats(s.w + lo, hi - lo));
        let safe =
            code(Ghm::<Classification>::from_state(st_in).and_then(|g| {
                g.accumulate_labels(&mut stats, &logits, sub, &labels, w.as_deref())
            }));
        assert_eq!(st, safe, "accumulate_labels vs safe API");
        if st == GHM_OK {
            assert_eq!(
                ar.raw_words(into, STATS_WORDS),
                words_of(&stats),
                "accumulate_labels bits"
            );
        }
        return Ok(Some(st));
    }
    let nn = hi - lo;
    let (ap, bp) = (ar.ptr::<f32>(s.a + lo), ar.ptr::<f32>(s.b + lo));
    let bp = if residual { core::ptr::null_mut() } else { bp };
    let wp = w_p(ar);
    let b_arg = Arg::input(bp, nn);
    let args = [
        Arg::input(ar.ptr::<State>(s.state), 1),
        Arg::input(ap, nn),
        if kind == Kind::R {
            b_arg.optional()
        } else {
            b_arg.null_decided_by(NULL_TARGETS_ACCUMULATE)
        },
        Arg::input(wp, nn).optional(),
        Arg::output(ar.ptr::<Stats>(into), 1),
    ];
    let (st, ok) = ar.step(u, &args, None, &|p| unsafe {
        let f = match kind {
            Kind::C => ghm_c_accumulate,
            Kind::R => ghm_r_accumulate,
        };
        f(
            p[0] as *const State,
            p[1] as *const f32,
            p[2] as *const f32,
            p[3] as *const f32,
            nn,
            p[4] as *mut Stats,
        )
    })?;
    if !ok {
        return Ok(None);
    }
    let a = ar.floats(s.a + lo, nn);
    let b = (!residual).then(|| ar.floats(s.b + lo, nn));
    let w = use_w.then(|| ar.floats(s.w + lo, nn));
    let safe = safe_accumulate(kind, &st_in, &mut stats, &a, b.as_deref(), w.as_deref());
    assert_eq!(st, safe, "accumulate vs safe API");
    if st == GHM_OK {
        assert_eq!(
            ar.raw_words(into, STATS_WORDS),
            words_of(&stats),
            "accumulate bits"
        );
    }
    Ok(Some(st))
}

/// Applies the committed weights to anchors (elements) `lo..hi`; the status, or None if
/// skipped.
#[allow(clippy::too_many_arguments)]
fn apply(
    ar: &mut Arena,
    u: &mut Unstructured,
    mode: Mode,
    kind: Kind,
    s: &Slots,
    lay: &ClassLayout,
    fits: bool,
    lo: usize,
    hi: usize,
    use_w: bool,
    residual: bool,
    in_place: bool,
    spec: Option<ghm_output>,
    counting: bool,
    share_only: bool,
) -> Result<Option<i32>> {
    let weights: RegionWeights = ar.read(s.weights);
    // with counting stats, the `_loss` form: its share is one more output
    let share_arg = Arg::output(ar.ptr::<f64>(s.share), 1);
    let spec_p = if spec.is_some() {
        ar.ptr::<ghm_output>(s.spec)
    } else {
        core::ptr::null_mut()
    };
    let output = spec.map_or(Some(Output::GRADIENT), |s| spec_output(&s));
    let wp = if use_w {
        ar.ptr::<f32>(s.w + lo)
    } else {
        core::ptr::null_mut()
    };
    let spec_arg = Arg::input(spec_p, 1).optional();
    let (st, ok, out_at, out_len, before) = if mode == Mode::Labels {
        let (sub, off) = sub_layout(lay, lo, hi);
        ar.write(s.layout, &sub);
        let extent = sub.extent();
        let (logits_p, mut out_p) = if fits {
            (ar.ptr::<f32>(s.a + off), ar.ptr::<f32>(s.out + off))
        } else {
            (ar.ptr::<f32>(s.a), ar.ptr::<f32>(s.out))
        };
        if share_only {
            out_p = core::ptr::null_mut();
        }
        let args = [
            Arg::input(ar.ptr::<RegionWeights>(s.weights), 1),
            Arg {
                count: extent,
                ..Arg::input(logits_p, 0)
            },
            Arg {
                movable: false,
                ..Arg::input(ar.ptr::<ClassLayout>(s.layout), 1)
            },
            Arg::input(ar.ptr::<i32>(s.labels + if fits { lo } else { 0 }), hi - lo),
            Arg::input(wp, hi - lo).optional(),
            spec_arg,
            Arg {
                count: extent,
                elements: fits.then_some(sub),
                // the `_loss` form takes NULL for the share alone
                optional: counting,
                ..Arg::output(out_p, 0)
            },
            share_arg,
        ];
        let args = &args[..if counting { 8 } else { 7 }];
        let v = verdict(args, None);
        if !fits && matches!(v, Verdict::Ok { .. }) {
            return Ok(None);
        }
        let before = if fits {
            ar.floats(s.out + off, extent.unwrap())
        } else {
            Vec::new()
        };
        let (st, ok) = ar.step(u, args, None, &|p| unsafe {
            let (wt, x, l, lb, aw, o, out) = (
                p[0] as *const RegionWeights,
                p[1] as *const f32,
                p[2] as *const ClassLayout,
                p[3] as *const i32,
                p[4] as *const f32,
                p[5] as *const ghm_output,
                p[6] as *mut f32,
            );
            if counting {
                ghm_c_apply_labels_loss(wt, x, l, lb, aw, o, out, p[7] as *mut f64)
            } else {
                ghm_c_apply_labels(wt, x, l, lb, aw, o, out)
            }
        })?;
        if !ok || !fits {
            return Ok(None);
        }
        let e = extent.unwrap();
        let logits = ar.floats(s.a + off, e);
        let labels = ar.ints(s.labels + lo, hi - lo);
        let w = use_w.then(|| ar.floats(s.w + lo, hi - lo));
        let mut out = before.clone();
        let expect = match output {
            None => vec![GHM_ERR_OUTPUT],
            Some(o) => {
                let (safe, share) = if counting {
                    let dest = (!share_only).then_some(&mut out[..]);
                    let r = weights.apply_labels_loss(&logits, sub, &labels, w.as_deref(), o, dest);
                    (code(r), r.ok())
                } else {
                    let r = weights.apply_labels(&logits, sub, &labels, w.as_deref(), o, &mut out);
                    (code(r), None)
                };
                if safe == GHM_OK {
                    assert_eq!(st, GHM_OK, "apply_labels vs safe API");
                    if let Some(share) = share {
                        let got: f64 = ar.read(s.share);
                        assert_eq!(got.to_bits(), share.to_bits(), "apply_labels_loss share");
                    }
                    let got = ar.floats(s.out + off, e);
                    for (i, (x, y)) in got.iter().zip(&out).enumerate() {
                        assert_eq!(
                            x.to_bits(),
                            y.to_bits(),
                            "apply_labels value {i}: {x} vs {y}"
                        );
                    }
                }
                vec![safe]
            }
        };
        assert!(
            expect.contains(&st),
            "apply_labels status {st}, expected {expect:?}"
        );
        trace(&format!("apply_labels status {st}"));
        (st, ok, s.out + off, e, before)
    } else {
        let nn = hi - lo;
        let ap = ar.ptr::<f32>(s.a + lo);
        let bp = if residual {
            core::ptr::null_mut()
        } else {
            ar.ptr::<f32>(s.b + lo)
        };
        let out_p = if share_only {
            core::ptr::null_mut()
        } else {
            ar.ptr::<f32>(s.out + lo)
        };
        let b_arg = Arg::input(bp, nn);
        let args = [
            Arg::input(ar.ptr::<RegionWeights>(s.weights), 1),
            Arg::input(ap, nn),
            if kind == Kind::R {
                b_arg.optional()
            } else {
                b_arg.null_decided_by(NULL_TARGETS_APPLY)
            },
            Arg::input(wp, nn).optional(),
            spec_arg,
            Arg {
                // the `_loss` form takes NULL for the share alone
                optional: counting,
                ..Arg::output(out_p, nn)
            },
            share_arg,
        ];
        let args = &args[..if counting { 7 } else { 6 }];
        let a = ar.floats(s.a + lo, nn);
        let b = (!residual).then(|| ar.floats(s.b + lo, nn));
        let w = use_w.then(|| ar.floats(s.w + lo, nn));
        let before = ar.floats(s.out + lo, nn);
        let (st, ok) = ar.step(u, args, Some((1, 5)), &|p| unsafe {
            let (wt, a, b, w, o, out) = (
                p[0] as *const RegionWeights,
                p[1] as *const f32,
                p[2] as *const f32,
                p[3] as *const f32,
                p[4] as *const ghm_output,
                p[5] as *mut f32,
            );
            match (kind, counting) {
                (Kind::C, false) => ghm_c_apply(wt, a, b, w, nn, o, out),
                (Kind::R, false) => ghm_r_apply(wt, a, b, w, nn, o, out),
                (Kind::C, true) => ghm_c_apply_loss(wt, a, b, w, nn, o, out, p[6] as *mut f64),
                (Kind::R, true) => ghm_r_apply_loss(wt, a, b, w, nn, o, out, p[6] as *mut f64),
            }
        })?;
        if !ok {
            return Ok(None);
        }
        let mut out = before.clone();
        let expect = match output {
            None => vec![GHM_ERR_OUTPUT],
            Some(o) => {
                let (r, share) = match (&b, counting) {
                    (Some(b), false) => (weights.apply(&a, b, w.as_deref(), o, &mut out), None),
                    (None, false) => (weights.apply_residual(&a, w.as_deref(), o, &mut out), None),
                    (Some(b), true) => {
                        let dest = (!share_only).then_some(&mut out[..]);
                        let r = weights.apply_loss(&a, b, w.as_deref(), o, dest);
                        (r.map(drop), r.ok())
                    }
                    (None, true) => {
                        let dest = (!share_only).then_some(&mut out[..]);
                        let r = weights.apply_residual_loss(&a, w.as_deref(), o, dest);
                        (r.map(drop), r.ok())
                    }
                };
                let expect = apply_status(kind, &weights, code(r));
                if st == GHM_OK && expect == [GHM_OK] {
                    if let Some(share) = share {
                        let got: f64 = ar.read(s.share);
                        assert_eq!(got.to_bits(), share.to_bits(), "apply_loss share");
                    }
                    let got = ar.floats(s.out + lo, nn);
                    for (i, (x, y)) in got.iter().zip(&out).enumerate() {
                        assert_eq!(
                            x.to_bits(),
                            y.to_bits(),
                            "apply value {i}: {x} vs {y} (in place {in_place})"
                        );
                    }
                }
                expect
            }
        };
        assert!(
            expect.contains(&st),
            "apply status {st}, expected {expect:?}"
        );
        trace(&format!("apply {kind:?} status {st} in_place {in_place}"));
        (st, ok, s.out + lo, nn, before)
    };
    // Success gives finite values wherever it wrote (accumulating: onto finite ones).
    if st == GHM_OK && ok {
        let acc = spec.is_some_and(|s| s.add == 1);
        let got = ar.floats(out_at, out_len);
        for (i, (x, y)) in got.iter().zip(&before).enumerate() {
            if x.to_bits() != y.to_bits() && !(acc && !y.is_finite()) {
                assert!(
                    x.is_finite(),
                    "apply returned GHM_OK but wrote {x} at {i} (was {y}, output {spec:?})"
                );
            }
        }
    }
    Ok(Some(st))
}
