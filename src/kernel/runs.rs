//! The inputs of a pass and how the passes walk them.
//!
//! A pass walks *runs*: contiguous stretches of elements that share how their targets and
//! weights are found. Element-wise inputs are one run; the class-index layout is one run per
//! anchor (its row of class logits, whose targets are one-hot in its label and whose weight is
//! the anchor's) or one run per class (its plane of anchors). Pointers are raw so that the
//! output may be the first input itself (in place); the safe callers establish their
//! validity. A run's tail shorter than a vector goes through the same vector code on a
//! padded copy.

use super::vector::{Vector, MAX_LANES};
use crate::io::ClassLayout;

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

/// How the targets and weights of one run are found.
#[derive(Clone, Copy)]
pub(super) enum RunTargets {
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
pub(super) enum RunWeights {
    Each(*const f32),
    All(f32),
}

#[derive(Clone, Copy)]
pub(super) struct Run {
    /// Offset of the run's first element in `a` (and in the output).
    pub start: usize,
    pub len: usize,
    b: RunTargets,
    w: RunWeights,
}

/// `0, 1, 2, ...`: each lane's offset within a vector.
const IOTA: [f32; MAX_LANES] = {
    let mut v = [0f32; MAX_LANES];
    let mut i = 0;
    while i < MAX_LANES {
        v[i] = i as f32;
        i += 1;
    }
    v
};

impl Run {
    /// Element `j` of the run: `(a, b, w)`.
    #[inline(always)]
    pub(super) unsafe fn element(&self, x: &Inputs, j: usize) -> (f32, f32, f32) {
        // SAFETY: the pointers of `x` are valid for the elements they describe and `V`'s target
        // features are enabled (this function's contract).
        unsafe {
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
    }

    /// `V::LANES` elements from `j`, padded past the run's end with a valid element of weight 0.
    #[inline(always)]
    pub(super) unsafe fn load<V: Vector>(&self, x: &Inputs, j: usize) -> (V, V, V) {
        // SAFETY: the pointers of `x` are valid for the elements they describe and `V`'s target
        // features are enabled (this function's contract).
        unsafe {
            if j + V::LANES > self.len {
                let (mut a, mut b, mut w) =
                    ([0f32; MAX_LANES], [0f32; MAX_LANES], [0f32; MAX_LANES]);
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
}

/// The runs of `x`, in element order.
///
/// An iterator, not a function taking the pass body as a closure: closures do not inherit
/// the `#[target_feature]`s of the `arch/` entry point the passes are inlined into, so a
/// body in a closure that LLVM does not inline (it may duplicate the call site, e.g. by
/// loop unswitching) is compiled without them and every vector operation in it becomes an
/// out-of-line call.
pub(super) struct Runs<'x> {
    x: &'x Inputs,
    r: usize,
    count: usize,
}

impl<'x> Runs<'x> {
    #[inline(always)]
    pub(super) fn new(x: &'x Inputs) -> Self {
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
    pub(super) unsafe fn next(&mut self) -> Option<Run> {
        // SAFETY: the pointers of `x` are valid for the elements they describe and `V`'s target
        // features are enabled (this function's contract).
        unsafe {
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
}
