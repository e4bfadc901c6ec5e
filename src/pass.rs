//! The passes over buffers, written once for every [`Vector`] instantiation.
//!
//! - [`validate`]: read-only; the first invalid element's specific error, if any.
//! - [`accumulate`]: read-only. Validates every element, bins its gradient norm and adds the
//!   valid elements' counts, loss terms and label weights to a [`Stats`]. It stops at the
//!   first invalid element and reports its specific error, adding nothing.
//! - [`apply`]: writes one value per element from the committed per-region coefficients
//!   (the gradient by default; see [`Output`]). Its inputs must have passed one of the above.
//!
//! The passes walk *runs*: contiguous stretches of elements that share how their targets and
//! weights are found. Element-wise inputs are one run; the class-index layout is one run per
//! anchor (its row of class logits, whose targets are one-hot in its label and whose weight is
//! the anchor's). Pointers are raw so that the output may be the first input itself (in
//! place); the safe callers establish their validity. A run's tail shorter than a vector goes
//! through the same vector code on a padded copy.

use crate::histogram::{Bins, Stats, MAX_BINS};
use crate::math::{full, Bce, Model};
use crate::status::Error;
use crate::vector::Vector;

/// Where the elements' targets come from.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Targets {
    /// One value per element.
    Values(*const f32),
    /// Class-index targets: element (anchor r, class c) of the layout has target 1 if
    /// `labels[r] == c`, else 0.
    Labels {
        labels: *const i32,
        layout: ClassLayout,
    },
    /// Target 0 for every element (GHM-R given the residual itself).
    Zero,
}

/// Where the logits of a class-index layout lie: element (anchor r, class c) is at offset
/// `r * anchor_stride + c * class_stride`. One of the strides is 1: `[anchors][classes]`
/// (mmdetection) has `class_stride` 1, planes of anchors per class (Darknet's yolo output,
/// anchors being the h*w locations) have `anchor_stride` 1.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClassLayout {
    /// Number of anchors (rows; for Darknet, the h*w locations of one anchor box).
    pub anchors: usize,
    /// Number of classes C.
    pub classes: usize,
    /// Distance in floats between consecutive anchors of a class.
    pub anchor_stride: usize,
    /// Distance in floats between consecutive classes of an anchor.
    pub class_stride: usize,
}

impl ClassLayout {
    /// The contiguous `[anchors][classes]` layout.
    pub const fn rows(anchors: usize, classes: usize) -> ClassLayout {
        ClassLayout {
            anchors,
            classes,
            anchor_stride: classes,
            class_stride: 1,
        }
    }

    /// Number of elements (`anchors * classes`), if it fits.
    pub fn elements(&self) -> Option<usize> {
        self.anchors.checked_mul(self.classes)
    }

    /// Number of f32 from the first element to one past the last (0 when empty), if it fits.
    pub fn extent(&self) -> Option<usize> {
        if self.anchors == 0 || self.classes == 0 {
            return Some(0);
        }
        let last_row = (self.anchors - 1).checked_mul(self.anchor_stride)?;
        let last_col = (self.classes - 1).checked_mul(self.class_stride)?;
        last_row.checked_add(last_col)?.checked_add(1)
    }

    /// Whether the layout can be walked in contiguous runs (rows of classes with
    /// `class_stride` 1, or planes of anchors with `anchor_stride` 1), its elements are
    /// distinct, and its class count compares exactly as f32 (at most 2^24). An empty layout
    /// is always supported.
    pub fn is_supported(&self) -> bool {
        let empty = self.anchors == 0 || self.classes == 0;
        self.classes <= 1 << 24 && (empty || self.by_rows() || self.by_planes())
    }

    /// Walkable as rows of classes: contiguous rows that do not overlap.
    fn by_rows(&self) -> bool {
        (self.class_stride == 1 || self.classes == 1)
            && (self.anchors == 1 || self.anchor_stride >= self.classes)
    }

    /// Walkable as planes of anchors: contiguous planes that do not overlap.
    fn by_planes(&self) -> bool {
        (self.anchor_stride == 1 || self.anchors == 1)
            && (self.classes == 1 || self.class_stride >= self.anchors)
    }
}

/// The inputs of a pass: `a` (logits, predictions or residuals), the targets, `n` elements,
/// and label weights `w`: null (every element valid with weight 1), one per element, or, for
/// [`Targets::Labels`], one per anchor.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Inputs {
    pub a: *const f32,
    pub b: Targets,
    pub w: *const f32,
    pub n: usize,
}

/// What [`apply`] writes for each element.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u32)]
pub enum OutputKind {
    /// dL/da: the gradient with respect to the logit (GHM-C) or prediction (GHM-R).
    Gradient = 0,
    /// The element's weight in the loss, `loss_weight * beta_i / tot`, for frameworks that
    /// compute the loss themselves (0 for ignored elements).
    ElementWeight = 1,
    /// The reference's reduction "none": `loss_weight * beta_i * term_i`.
    ElementLoss = 2,
}

/// How [`apply`] writes: `out = scale * value`, or `out += scale * value` when accumulating.
/// Darknet's delta (the negative gradient times a factor) is `Gradient` with `scale = -factor`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Output {
    pub kind: OutputKind,
    pub scale: f32,
    pub accumulate: bool,
}

impl Output {
    /// The gradient, overwriting the buffer.
    pub const GRADIENT: Output = Output {
        kind: OutputKind::Gradient,
        scale: 1.0,
        accumulate: false,
    };
}

/// How the targets and weights of one run are found.
#[derive(Clone, Copy)]
enum RunTargets {
    Values(*const f32),
    /// One-hot along the run: the position that is 1 (-1: none).
    Hot(f32),
    /// Per element, 1 where `labels[j] == class`.
    LabelIs {
        labels: *const i32,
        class: f32,
    },
    Zero,
}

#[derive(Clone, Copy)]
enum RunWeights {
    Each(*const f32),
    All(f32),
}

#[derive(Clone, Copy)]
struct Run {
    /// Offset of the run's first element in `a` (and in the output).
    start: usize,
    len: usize,
    b: RunTargets,
    w: RunWeights,
}

const IOTA: [f32; 16] = [
    0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0, 11.0, 12.0, 13.0, 14.0, 15.0,
];

impl Run {
    /// Element `j` of the run: `(a, b, w)`.
    #[inline(always)]
    unsafe fn element(&self, x: &Inputs, j: usize) -> (f32, f32, f32) {
        let a = *x.a.add(self.start + j);
        let b = match self.b {
            RunTargets::Values(p) => *p.add(j),
            RunTargets::Hot(h) => f32::from(u8::from(h == j as f32)),
            RunTargets::LabelIs { labels, class } => {
                f32::from(u8::from(*labels.add(j) as f32 == class))
            }
            RunTargets::Zero => 0.0,
        };
        let w = match self.w {
            RunWeights::Each(p) => *p.add(j),
            RunWeights::All(w) => w,
        };
        (a, b, w)
    }

    /// `V::LANES` elements from `j`, padded past the run's end with a valid element of weight 0.
    #[inline(always)]
    unsafe fn load<V: Vector>(&self, x: &Inputs, j: usize) -> (V, V, V) {
        if j + V::LANES > self.len {
            let (mut a, mut b, mut w) = ([0f32; 16], [0f32; 16], [0f32; 16]);
            let lanes = a.iter_mut().zip(b.iter_mut()).zip(w.iter_mut());
            for (l, ((a, b), w)) in lanes.take(self.len - j).enumerate() {
                (*a, *b, *w) = self.element(x, j + l);
            }
            return (
                V::load(a.as_ptr()),
                V::load(b.as_ptr()),
                V::load(w.as_ptr()),
            );
        }
        let a = V::load(x.a.add(self.start + j));
        let b = match self.b {
            RunTargets::Values(p) => V::load(p.add(j)),
            RunTargets::Hot(h) => {
                let col = V::load(IOTA.as_ptr()).add(V::splat(j as f32));
                V::select(col.eq(V::splat(h)), V::splat(1.0), V::splat(0.0))
            }
            RunTargets::LabelIs { labels, class } => {
                let is = V::load_i32(labels.add(j)).eq(V::splat(class));
                V::select(is, V::splat(1.0), V::splat(0.0))
            }
            RunTargets::Zero => V::splat(0.0),
        };
        let w = match self.w {
            RunWeights::Each(p) => V::load(p.add(j)),
            RunWeights::All(w) => V::splat(w),
        };
        (a, b, w)
    }
}

/// The runs of `x`, in element order.
///
/// An iterator, not a function taking the pass body as a closure: closures do not inherit
/// the `#[target_feature]`s of the `arch/` entry point the passes are inlined into, so a
/// body in a closure that LLVM does not inline (it may duplicate the call site, e.g. by
/// loop unswitching) is compiled without them and every vector operation in it becomes an
/// out-of-line call.
struct Runs<'x> {
    x: &'x Inputs,
    r: usize,
    count: usize,
}

impl<'x> Runs<'x> {
    #[inline(always)]
    fn new(x: &'x Inputs) -> Self {
        let by_rows = |l: &ClassLayout| l.by_rows();
        let count = match x.b {
            Targets::Labels { .. } if x.n == 0 => 0,
            Targets::Labels { layout, .. } if by_rows(&layout) => layout.anchors,
            Targets::Labels { layout, .. } => layout.classes,
            Targets::Values(_) | Targets::Zero => 1,
        };
        Runs { x, r: 0, count }
    }

    /// # Safety
    /// The pointers of `x` are valid for reads of the lengths they describe.
    #[inline(always)]
    unsafe fn next(&mut self) -> Option<Run> {
        if self.r >= self.count {
            return None;
        }
        let (x, r) = (self.x, self.r);
        self.r += 1;
        let by_rows = |l: &ClassLayout| l.by_rows();
        let weight = |i: usize| {
            if x.w.is_null() {
                RunWeights::All(1.0)
            } else {
                RunWeights::Each(x.w.add(i))
            }
        };
        Some(match x.b {
            Targets::Values(b) => Run {
                start: 0,
                len: x.n,
                b: RunTargets::Values(b),
                w: weight(0),
            },
            Targets::Zero => Run {
                start: 0,
                len: x.n,
                b: RunTargets::Zero,
                w: weight(0),
            },
            // one run per anchor: its row of class logits, one-hot in its label
            Targets::Labels { labels, layout } if by_rows(&layout) => {
                let label = i64::from(*labels.add(r));
                let hot = if (0..layout.classes as i64).contains(&label) {
                    label as f32
                } else {
                    -1.0
                };
                let w = if x.w.is_null() { 1.0 } else { *x.w.add(r) };
                Run {
                    start: r * layout.anchor_stride,
                    len: layout.classes,
                    b: RunTargets::Hot(hot),
                    w: RunWeights::All(w),
                }
            }
            // one run per class: its plane of anchors
            Targets::Labels { labels, layout } => Run {
                start: r * layout.class_stride,
                len: layout.anchors,
                b: RunTargets::LabelIs {
                    labels,
                    class: r as f32,
                },
                w: weight(0),
            },
        })
    }
}

/// All-true lanes where a label weight is acceptable: finite and not negative.
#[inline(always)]
unsafe fn weight_ok<V: Vector>(w: V) -> V {
    V::splat(0.0).le(w).and(w.lt(V::splat(f32::INFINITY)))
}

/// Checks `V::LANES` elements of a run from `j`; the first one's specific error otherwise.
#[inline(always)]
unsafe fn check<V: Vector, M: Model>(
    model: &M,
    x: &Inputs,
    run: &Run,
    j: usize,
    a: V,
    b: V,
    w: V,
) -> Result<(), Error> {
    let ok = model.valid(a, b).and(weight_ok(w));
    if ok.bitmask() == full::<V>() {
        return Ok(());
    }
    Err(first_error(model, x, run, j))
}

#[cold]
unsafe fn first_error<M: Model>(model: &M, x: &Inputs, run: &Run, j: usize) -> Error {
    for l in j..run.len {
        let (a, b, w) = run.element(x, l);
        if model.valid::<f32>(a, b).to_bits() == 0 {
            return model.error(a, b);
        }
        if weight_ok::<f32>(w).to_bits() == 0 {
            return Error::Weight;
        }
    }
    Error::Internal
}

/// One lane's share of the tally: separate tables per lane keep consecutive elements of the
/// same region from waiting on each other's stores.
#[derive(Clone, Copy)]
pub(crate) struct LaneTable {
    count: [u64; MAX_BINS],
    sum: [f64; MAX_BINS],
}

impl LaneTable {
    pub(crate) const EMPTY: LaneTable = LaneTable {
        count: [0; MAX_BINS],
        sum: [0.0; MAX_BINS],
    };
}

/// The validation pass alone.
///
/// # Safety
/// The pointers of `x` are valid for reads of the lengths they describe; the target
/// features `V` needs are enabled.
#[inline(always)]
pub(crate) unsafe fn validate<V: Vector, M: Model>(model: &M, x: &Inputs) -> Result<(), Error> {
    let mut runs = Runs::new(x);
    while let Some(run) = runs.next() {
        let run = &run;
        let mut j = 0;
        while j < run.len {
            let (a, b, w) = run.load::<V>(x, j);
            check(model, x, run, j, a, b, w)?;
            j += V::LANES;
        }
    }
    Ok(())
}

/// The read-only pass; adds to `stats` only on success.
///
/// # Safety
/// As for [`validate`].
#[inline(always)]
pub(crate) unsafe fn accumulate<V: Vector, M: Model, const T: usize>(
    model: &M,
    bins: &Bins,
    x: &Inputs,
    tables: &mut [LaneTable; T],
    stats: &mut Stats,
) -> Result<(), Error> {
    // The two end regions hold most elements (GHM-C's easy negatives near g = 0, GHM-R's
    // large residuals near g = 1): they are summed in vector registers; the elements of the
    // other regions go to per-lane tables one by one.
    let zero = V::splat(0.0);
    let last = bins.len() - 1;
    let last_v = V::splat(if last == 0 { -1.0 } else { last as f32 });
    let (mut n_first, mut n_last) = (0u64, 0u64);
    let (mut sum_first, mut sum_last, mut weight) = (V::sum_zero(), V::sum_zero(), V::sum_zero());
    let mut runs = Runs::new(x);
    while let Some(run) = runs.next() {
        let run = &run;
        let mut j = 0;
        while j < run.len {
            let (a, b, w) = run.load::<V>(x, j);
            check(model, x, run, j, a, b, w)?;
            let (dir, term) = model.forward(a, b);
            let k = bins.index(dir.abs());
            let valid = zero.lt(w);
            let first = k.eq(zero).and(valid);
            let end = k.eq(last_v).and(valid);
            n_first += u64::from(first.bitmask().count_ones());
            n_last += u64::from(end.bitmask().count_ones());
            sum_first = V::select(first, term, zero).sum_add(sum_first);
            sum_last = V::select(end, term, zero).sum_add(sum_last);
            weight = V::select(valid, w, zero).sum_add(weight);
            let mut rest = valid.bitmask() & !(first.bitmask() | end.bitmask());
            if rest != 0 {
                let (mut idx, mut terms) = ([0u8; 16], [0f32; 16]);
                k.indices(&mut idx);
                term.store(terms.as_mut_ptr());
                while rest != 0 {
                    let l = rest.trailing_zeros() as usize & 15;
                    rest &= rest - 1;
                    let t = &mut tables[l % T];
                    let k = usize::from(idx[l]) & (MAX_BINS - 1);
                    t.count[k] += 1;
                    t.sum[k] += f64::from(terms[l]);
                }
            }
            j += V::LANES;
        }
    }
    for t in tables.iter() {
        for k in 0..MAX_BINS {
            stats.count[k] += t.count[k] as f64;
            stats.loss_sum[k] += t.sum[k];
        }
    }
    stats.count[0] += n_first as f64;
    stats.loss_sum[0] += V::sum_total(sum_first);
    stats.count[last & (MAX_BINS - 1)] += n_last as f64;
    stats.loss_sum[last & (MAX_BINS - 1)] += V::sum_total(sum_last);
    stats.weight_sum += V::sum_total(weight);
    Ok(())
}

/// What [`apply`] needs from a commit: per-region coefficients `lambda * beta_k / tot`, the
/// normaliser `tot`, the output, and whether to write it or only to check that every value
/// it would write is finite (a dry run).
pub(crate) struct Plan<'a> {
    pub coef: &'a [f32; MAX_BINS],
    pub tot: f32,
    pub output: Output,
    pub write: bool,
}

/// The writing pass: for element i of region k, `value = coef[k] * dir_i` (or the element
/// weight or loss), 0 where the label weight is 0; `out[i] = scale * value` or `+=`. With
/// `plan.write` false it writes nothing and only reports whether every value is finite.
///
/// # Safety
/// As for [`validate`], and `out` is valid for reads and writes of `x.n` f32; `out` may equal
/// `x.a` but must not otherwise overlap the inputs. The inputs have passed [`validate`].
#[inline(always)]
pub(crate) unsafe fn apply<V: Vector, M: Model>(
    model: &M,
    bins: &Bins,
    plan: &Plan<'_>,
    x: &Inputs,
    out: *mut f32,
) -> bool {
    let scale = V::splat(plan.output.scale);
    let mut finite = V::splat(0.0).le(V::splat(0.0));
    let mut runs = Runs::new(x);
    while let Some(run) = runs.next() {
        let run = &run;
        let dst = out.add(run.start);
        let mut j = 0;
        while j < run.len {
            let (a, b, w) = run.load::<V>(x, j);
            let (dir, term) = match plan.output.kind {
                OutputKind::ElementLoss => model.forward(a, b),
                _ => (model.direction(a, b), V::splat(0.0)),
            };
            let c = bins.index(dir.abs()).lookup(plan.coef);
            let v = match plan.output.kind {
                OutputKind::Gradient => c.mul(dir),
                OutputKind::ElementWeight => c,
                OutputKind::ElementLoss => c.mul(V::splat(plan.tot)).mul(term),
            };
            let v = V::select(V::splat(0.0).lt(w), v.mul(scale), V::splat(0.0));
            let full_vector = j + V::LANES <= run.len;
            let mut lanes = [0f32; 16];
            let v = if plan.output.accumulate {
                if full_vector {
                    V::load(dst.add(j)).add(v)
                } else {
                    for (l, o) in lanes.iter_mut().enumerate().take(run.len - j) {
                        *o = *dst.add(j + l);
                    }
                    V::load(lanes.as_ptr()).add(v)
                }
            } else {
                v
            };
            if !plan.write {
                finite = finite.and(v.abs().lt(V::splat(f32::INFINITY)));
            } else if full_vector {
                v.store(dst.add(j));
            } else {
                v.store(lanes.as_mut_ptr());
                for (l, o) in lanes.iter().enumerate().take(run.len - j) {
                    *dst.add(j + l) = *o;
                }
            }
            j += V::LANES;
        }
    }
    finite.bitmask() == full::<V>()
}

/// Plain (not harmonized) mean BCE-with-logits in one pass, with the same per-element math:
/// the sum of the terms, and `out[i] = scale * (sigmoid(x_i) - t_i)`. Inputs are not
/// validated. It exists as a baseline for the benchmarks: what any loss costs.
///
/// # Safety
/// `x` and `t` are valid for reads and `out` for writes of `n` f32; the target features `V`
/// needs are enabled.
#[inline(always)]
pub(crate) unsafe fn plain_bce<V: Vector>(
    x: *const f32,
    t: *const f32,
    n: usize,
    scale: f32,
    out: *mut f32,
) -> f64 {
    let model = Bce {
        probabilities: false,
    };
    let mut sum = V::sum_zero();
    let mut i = 0;
    while i + V::LANES <= n {
        let (dir, term) = model.forward(V::load(x.add(i)), V::load(t.add(i)));
        sum = term.sum_add(sum);
        dir.mul(V::splat(scale)).store(out.add(i));
        i += V::LANES;
    }
    let mut total = V::sum_total(sum);
    for j in i..n {
        let (dir, term) = model.forward(*x.add(j), *t.add(j));
        total += f64::from(term);
        *out.add(j) = dir * scale;
    }
    total
}
