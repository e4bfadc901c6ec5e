//! The inputs of a pass and how the passes walk them.
//!
//! A pass walks *runs*: contiguous stretches of elements that share how their targets and
//! weights are found. Element-wise inputs are one run; the class-index layout is, in each of
//! its blocks (image, anchor box), one run per anchor (its row of class logits, whose targets
//! are 1 at its labels and whose weight is the anchor's) or one run per class (its plane of
//! anchors), found from the layout's strides without copying; on the vector paths, rows
//! that follow each other (`anchor_stride == classes`, or one anchor) make one run per
//! block, whose vectors span rows, walked by cursors over the rows with a label in range
//! and over the rows' weights (the one-lane path, which has no padded tails, keeps one run
//! per row). Pointers are raw so that
//! the output may be the first input itself (in place); the safe callers establish their
//! validity. A run's tail shorter than a vector goes through the same vector code on a
//! padded copy.

use super::vector::{Vector, MAX_LANES};
use crate::io::ClassLayout;

/// Where the elements' targets come from.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Targets {
    /// One value per element.
    Values(*const f32),
    /// Class-index targets: element (anchor r, class c) of the layout has target 1 if one of
    /// the anchor's labels is c, else 0 (see [`ClassLayout`]).
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
    /// Along a row of classes: 1 at the classes its `k` labels name; `first` is the column
    /// of the first label, found once per run, and `col` the same as an integer
    /// (`usize::MAX`: none).
    Hot {
        labels: *const i32,
        k: usize,
        first: f32,
        col: usize,
    },
    /// Per element j of a plane, 1 where one of `labels[j * k .. j * k + k]` is `class`.
    LabelIs {
        labels: *const i32,
        k: usize,
        class: f32,
    },
    /// A block of rows of `classes` elements each, one right after the other: element j is
    /// class `j % classes` of row `j / classes`, whose `k` labels are at `labels[row * k..]`.
    Rows {
        labels: *const i32,
        k: usize,
    },
    Zero,
}

/// A label as the column it makes hot (-1: none, for labels outside `[0, classes)`).
#[inline(always)]
fn hot_column(label: i32, classes: usize) -> f32 {
    if (label as u32) < in_range_bound(classes) {
        label as f32
    } else {
        -1.0
    }
}

/// A label as the column it makes hot, as an index (`usize::MAX`: none). (The same test as
/// [`hot_column`], written out: `hot_column` written through this function moved the one
/// lane's registers and cost 5-7 instructions per element on the Cortex-M4F.)
#[inline(always)]
fn hot_index(label: i32, classes: usize) -> usize {
    if (label as u32) < in_range_bound(classes) {
        label as usize
    } else {
        usize::MAX
    }
}

#[derive(Clone, Copy)]
pub(super) enum RunWeights {
    Each(*const f32),
    All(f32),
    /// One per row of `classes` elements ([`RunTargets::Rows`]).
    Rows(*const f32),
}

pub(super) struct Run {
    /// Offset of the run's first element in `a` (and in the output).
    pub start: usize,
    pub len: usize,
    /// The layout's class count (for the labels of a row).
    classes: usize,
    b: RunTargets,
    w: RunWeights,
    /// For [`RunTargets::Rows`], whose targets [`load`](Run::load) finds with a cursor:
    /// the first element of the next row that may have a label in range (no row before it
    /// has one whose element is still to be loaded), or at least `len`. The cursors rely on
    /// every pass loading a run's vectors in order from its start (a run's last, partial
    /// vector goes through [`element`](Run::element), which reads no cursor). `hot_row` is
    /// that row (`hot_at = hot_row * classes`: the row of an element would otherwise take a
    /// division).
    hot_at: usize,
    hot_row: usize,
    /// For [`RunWeights::Rows`]: the row of the last vector's first element, and that
    /// row's first element.
    w_row: usize,
    w_start: usize,
}

/// The state of a run's test for background elements ([`Run::background`],
/// [`Run::in_background`]): for weights per row, those weights and a cursor over the rows
/// whose weight is not above 0, the first element `idle_at` of the next such row and the
/// first element after it, `idle_end` (`idle_at` is the run's length where there is none;
/// `idle_end` 0 at the start: nothing found yet). Kept by the loops that test, one per run,
/// so that a [`Run`], which the one lane makes for every class-index row, does not carry it.
#[derive(Clone, Copy)]
pub(super) struct Background {
    row_weights: Option<*const f32>,
    idle_at: usize,
    idle_end: usize,
}

/// What every run of a pass's inputs loads its targets from, for the vector passes' loops,
/// which are compiled once per shape (`Inputs::shape`): a loop that knows its runs' kind
/// holds only the loads it needs, and its registers are not spilled around the others.
/// [`ANY`] loops find each run's kind per vector (the one-lane path and the other layouts).
pub(super) const ANY: u8 = 0;
/// Element-wise targets ([`RunTargets::Values`]).
pub(super) const VALUES: u8 = 1;
/// Targets 0 ([`RunTargets::Zero`]).
pub(super) const ZERO: u8 = 2;
/// Blocks of rows of class-index targets ([`RunTargets::Rows`]).
pub(super) const ROWS: u8 = 3;

impl Inputs {
    /// The shape of every run [`Runs::new`] makes for `lanes`-lane vectors: [`ANY`] for one
    /// lane.
    #[inline(always)]
    #[cfg_attr(ghm_unspecialised, allow(dead_code))] // (unoptimised builds: see build.rs)
    pub(super) fn shape(&self, lanes: usize) -> u8 {
        if lanes == 1 {
            return ANY;
        }
        match self.b {
            Targets::Values(_) => VALUES,
            Targets::Zero => ZERO,
            Targets::Labels { layout, .. } if blocks_of_rows(&layout, lanes) => ROWS,
            Targets::Labels { .. } => ANY,
        }
    }
}

/// Whether a class-index layout is walked as blocks of rows, each right after the last
/// (one run per block), on vectors of `lanes`: see [`Runs::new`].
#[inline(always)]
fn blocks_of_rows(layout: &ClassLayout, lanes: usize) -> bool {
    lanes > 1
        && layout.walk_rows()
        && layout.classes >= 1
        && (layout.anchors == 1 || layout.anchor_stride == layout.classes)
}

/// The fewest classes a run of rows has for the passes to test its vectors for target 0
/// ahead of their loads ([`Run::has_background`]): with one, a detector's rows hold a label
/// every few vectors (one anchor in 100 labelled: every 100 elements), where the test
/// mispredicts more than skipping the loads gains (the one-shot second pass, AVX-512 on a
/// Zen 4, class-index calls on the benchmark's batch: 3-10% slower at one class, 7% faster
/// at two and about 10% at 80; AVX2 within 2% either way).
pub(super) const BACKGROUND_ROWS: usize = 2;

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
        // SAFETY: the pointers of `x` are valid for the elements they describe (this
        // function's contract).
        unsafe {
            let (b, w) = self.target_weight(j);
            (*x.a.add(self.start + j), b, w)
        }
    }

    /// The target and weight of element `j` of the run.
    ///
    /// # Safety
    /// As for [`element`](Self::element).
    #[inline(always)]
    unsafe fn target_weight(&self, j: usize) -> (f32, f32) {
        // SAFETY: the run's pointers are valid for its elements (this function's contract).
        unsafe {
            let b = match self.b {
                RunTargets::Values(p) => *p.add(j),
                RunTargets::Hot { labels, k, .. } => {
                    let hit = (0..k).any(|s| hot_column(*labels.add(s), self.classes) == j as f32);
                    f32::from(u8::from(hit))
                }
                RunTargets::LabelIs { labels, k, class } => {
                    let hit = (0..k).any(|s| *labels.add(j * k + s) as f32 == class);
                    f32::from(u8::from(hit))
                }
                RunTargets::Rows { labels, k } => {
                    // `classes >= 1` for a run of rows (see `Runs::new`)
                    let c = self.classes.max(1);
                    let (row, col) = (j / c, (j % c) as f32);
                    let hit = (0..k).any(|s| hot_column(*labels.add(row * k + s), c) == col);
                    f32::from(u8::from(hit))
                }
                RunTargets::Zero => 0.0,
            };
            let w = match self.w {
                RunWeights::Each(p) => *p.add(j),
                RunWeights::All(w) => w,
                RunWeights::Rows(p) => *p.add(j / self.classes.max(1)),
            };
            (b, w)
        }
    }

    /// The state of the test for background elements ([`in_background`](Self::in_background))
    /// if most of the run's elements may be: runs of zero targets, and runs of rows of at
    /// least [`BACKGROUND_ROWS`] classes, with one label weight above 0 for all or one per
    /// row; `None` for the others.
    #[inline(always)]
    pub(super) fn background(&self) -> Option<Background> {
        let targets = match self.b {
            RunTargets::Zero => true,
            RunTargets::Rows { .. } => self.classes >= BACKGROUND_ROWS,
            RunTargets::Values(_) | RunTargets::Hot { .. } | RunTargets::LabelIs { .. } => false,
        };
        let row_weights = match self.w {
            RunWeights::All(w) if 0.0 < w => None,
            RunWeights::Rows(weights) => Some(weights),
            RunWeights::All(_) | RunWeights::Each(_) => return None,
        };
        targets.then_some(Background {
            row_weights,
            idle_at: 0,
            idle_end: 0,
        })
    }

    /// Whether the `n` elements from `j`, all within the run, are background for certain
    /// without loading them: target 0 (a run of zero targets, or a run of rows whose cursor
    /// over the labelled rows is past them, left as it is, as [`load`](Self::load) leaves it
    /// for such elements) and a label weight above 0 (the run's one, or for weights per
    /// row, by `bg`'s cursor over the rows whose weight is not, moved forward to the first
    /// such row not ending before `j`: so `j` must not go back; out of line, the scan for
    /// it). `bg` is this run's, from [`background`](Self::background).
    ///
    /// # Safety
    /// The run's pointers are valid for its elements.
    #[inline(always)]
    pub(super) unsafe fn in_background(&self, bg: &mut Background, j: usize, n: usize) -> bool {
        let zero = match self.b {
            RunTargets::Zero => true,
            RunTargets::Rows { .. } => self.hot_at >= j + n,
            RunTargets::Values(_) | RunTargets::Hot { .. } | RunTargets::LabelIs { .. } => false,
        };
        zero && match bg.row_weights {
            None => true,
            Some(weights) => {
                if bg.idle_end <= j {
                    // SAFETY: `weights` holds one weight per row of the run (this
                    // function's contract)
                    (bg.idle_at, bg.idle_end) = unsafe { self.next_idle(j, weights) };
                }
                bg.idle_at >= j + n
            }
        }
    }

    /// The first element of the first row whose weight is not above 0, from the row holding
    /// `j` on, and the first element after that row (the rows before it are passed; the
    /// last one found ended at or before `j`, so none is skipped).
    ///
    /// # Safety
    /// `weights` holds one weight per row of the run.
    #[inline(never)]
    unsafe fn next_idle(&self, j: usize, weights: *const f32) -> (usize, usize) {
        let c = self.classes.max(1);
        let rows = self.len / c;
        let mut r = j / c;
        // SAFETY: `r < rows`, rows of the run (this function's contract)
        while r < rows && unsafe { *weights.add(r) } > 0.0 {
            r += 1;
        }
        (r * c, r * c + c)
    }

    /// The label weight of every element of the run, if they all have the same.
    pub(super) fn uniform_weight(&self) -> Option<f32> {
        match self.w {
            RunWeights::All(w) => Some(w),
            RunWeights::Each(_) | RunWeights::Rows(_) => None,
        }
    }

    /// For a run of rows with weights, each row at least [`MAX_LANES`] wide: `None` if a
    /// row's weight fails `ok`, else the sum of the positive ones times the row width, in
    /// f64 (one test and one addition per row, where per-vector sums cost more). `None`
    /// for every other run.
    ///
    /// # Safety
    /// The run's pointers are valid for its elements.
    pub(super) unsafe fn row_weight_total(&self, ok: impl Fn(f32) -> bool) -> Option<f64> {
        let RunWeights::Rows(weights) = self.w else {
            return None;
        };
        if self.classes < MAX_LANES {
            return None;
        }
        let mut sum = 0f64;
        for r in 0..self.len / self.classes {
            // SAFETY: row `r` is one of the run's (this function's contract)
            let w = unsafe { *weights.add(r) };
            if !ok(w) {
                return None;
            }
            if w > 0.0 {
                sum += f64::from(w);
            }
        }
        Some(sum * self.classes as f64)
    }

    /// `V::LANES` elements from `j`, padded past the run's end with a valid element of weight
    /// 0: `(a, b, w, made)`, where `made` says that the targets `b` were made here (0 and 1
    /// of a class-index row with one label per anchor, on the one lane), so that validation
    /// need not test them. Each arm returns its own constant, so the compiler can take the
    /// test out of that arm's path instead of testing the flag per element (on the
    /// Cortex-M4F: 12 instructions per class-index element fewer, GHM-C with value targets
    /// unchanged, GHM-R 2 more; a flag read from the run per element cost value targets 6).
    #[inline(always)]
    pub(super) unsafe fn load<V: Vector>(&mut self, x: &Inputs, j: usize) -> (V, V, V, bool) {
        // SAFETY: the pointers of `x` are valid for the elements they describe and `V`'s target
        // features are enabled (this function's contract).
        unsafe {
            if j + V::LANES > self.len {
                return self.load_lanes(x, j);
            }
            let a = V::load(x.a.add(self.start + j));
            let b = match self.b {
                RunTargets::Values(p) => V::load(p.add(j)),
                // one lane, one label: an integer comparison (a conversion and a
                // floating-point one per element otherwise, in both passes)
                RunTargets::Hot { k: 1, col, .. } if V::LANES == 1 => {
                    let b = V::splat(if j == col { 1.0 } else { 0.0 });
                    return (a, b, self.weights::<V>(j), true);
                }
                RunTargets::Hot {
                    labels, k, first, ..
                } => {
                    let col = V::load(IOTA.as_ptr()).add(V::splat(j as f32));
                    let mut is = col.eq(V::splat(first));
                    for s in 1..k {
                        let h = hot_column(*labels.add(s), self.classes);
                        is = is.or(col.eq(V::splat(h)));
                    }
                    V::select(is, V::splat(1.0), V::splat(0.0))
                }
                RunTargets::LabelIs {
                    labels,
                    k: 1,
                    class,
                } => {
                    let is = V::load_i32(labels.add(j)).eq(V::splat(class));
                    V::select(is, V::splat(1.0), V::splat(0.0))
                }
                RunTargets::LabelIs { labels, k, class } => {
                    // several labels per anchor: each lane's target found one by one
                    let mut b = [0f32; MAX_LANES];
                    plane_targets(labels.add(j * k), k, class, &mut b[..V::LANES]);
                    V::load(b.as_ptr())
                }
                // (the one-lane path makes no runs of rows)
                RunTargets::Rows { labels, k } if V::LANES > 1 => self.hot_rows::<V>(j, labels, k),
                RunTargets::Rows { .. } => V::splat(self.target_weight(j).0),
                RunTargets::Zero => V::splat(0.0),
            };
            let w = self.weights::<V>(j);
            (a, b, w, false)
        }
    }

    /// [`load`](Self::load) in a loop compiled for runs of shape `S` (see [`ANY`]): runs of
    /// another shape, and a run's last, partial vector, take the general load out of line.
    ///
    /// # Safety
    /// As for [`load`](Self::load).
    #[inline(always)]
    pub(super) unsafe fn load_as<V: Vector, const S: u8>(
        &mut self,
        x: &Inputs,
        j: usize,
    ) -> (V, V, V, bool) {
        // SAFETY: as for `load` (this function's contract).
        unsafe {
            if S == ANY {
                return self.load(x, j);
            }
            if j + V::LANES > self.len {
                return self.load_lanes(x, j);
            }
            let b = match (S, self.b) {
                (VALUES, RunTargets::Values(p)) => V::load(p.add(j)),
                (ZERO, RunTargets::Zero) => V::splat(0.0),
                (ROWS, RunTargets::Rows { labels, k }) => self.hot_rows::<V>(j, labels, k),
                // not made by `Runs` for inputs of shape `S`; correct all the same
                _ => return self.load_lanes(x, j),
            };
            // `weights` written out, not called: through the call (inlined all the same),
            // the AVX-512 class-index loops took 20-33% longer at 2 to 80 classes (`cargo
            // bench --bench ghm`, its class-index rows, interleaved runs of both builds,
            // 2026-12-07); AVX2 and the one lane, which loads through `load`, unchanged
            let w = match self.w {
                RunWeights::Each(p) => V::load(p.add(j)),
                RunWeights::All(w) => V::splat(w),
                RunWeights::Rows(p) => self.row_weights::<V>(j, p),
            };
            (V::load(x.a.add(self.start + j)), b, w, false)
        }
    }

    /// The label weights of the `V::LANES` elements from `j`, all within the run. (For
    /// [`load`](Self::load); [`load_as`](Self::load_as) has the same match written out,
    /// for its speed: see there.)
    ///
    /// # Safety
    /// As for [`load`](Self::load), and `j + V::LANES <= self.len`.
    #[inline(always)]
    unsafe fn weights<V: Vector>(&mut self, j: usize) -> V {
        // SAFETY: this function's contract.
        unsafe {
            match self.w {
                RunWeights::Each(p) => V::load(p.add(j)),
                RunWeights::All(w) => V::splat(w),
                RunWeights::Rows(p) => self.row_weights::<V>(j, p),
            }
        }
    }

    /// [`load`](Self::load) element by element (out of line, in [`padded`](Self::padded)):
    /// for a run's last, partial vector, padded with valid elements of weight 0; its targets
    /// are to be tested (`made` false).
    ///
    /// # Safety
    /// As for [`load`](Self::load), and `j < self.len`.
    #[inline(always)]
    unsafe fn load_lanes<V: Vector>(&self, x: &Inputs, j: usize) -> (V, V, V, bool) {
        // SAFETY: this function's contract; `V`'s target features are enabled.
        unsafe {
            let mut p = [[0f32; MAX_LANES]; 3];
            self.padded(x, j, &mut p);
            let [a, b, w] = &p;
            (
                V::load(a.as_ptr()),
                V::load(b.as_ptr()),
                V::load(w.as_ptr()),
                false,
            )
        }
    }

    /// The run's elements from `j` to its end as `[a, b, w]` lanes, the rest left as they
    /// are (zero: a valid element of weight 0). Out of line: the set-up of its loop would
    /// otherwise run for every vector.
    ///
    /// # Safety
    /// As for [`element`](Self::element), and `j < self.len`; at most [`MAX_LANES`] elements
    /// are read.
    #[inline(never)]
    #[cold]
    unsafe fn padded(&self, x: &Inputs, j: usize, p: &mut [[f32; MAX_LANES]; 3]) {
        let [a, b, w] = p;
        let lanes = a.iter_mut().zip(b.iter_mut()).zip(w.iter_mut());
        for (l, ((a, b), w)) in lanes.take(self.len - j).enumerate() {
            // SAFETY: element `j + l` is one of the run's (this function's contract)
            (*a, *b, *w) = unsafe { self.element(x, j + l) };
        }
    }

    /// Targets of the `V::LANES` elements from `j` of a [`RunTargets::Rows`] run, all
    /// within it, by a cursor over its rows: most anchors have no label in range
    /// (background), so most vectors cost one comparison; the others find their hot lanes
    /// out of line ([`hot_lanes`](Self::hot_lanes)), which keeps the loop's registers for
    /// the common case. Loads go forward in `j`.
    ///
    /// # Safety
    /// As for [`load`](Self::load), and `j + V::LANES <= self.len`.
    #[inline(always)]
    unsafe fn hot_rows<V: Vector>(&mut self, j: usize, labels: *const i32, k: usize) -> V {
        // SAFETY: `V`'s target features are enabled and the run's pointers are valid
        // (this function's contract).
        unsafe {
            if self.hot_at >= j + V::LANES {
                return V::splat(0.0);
            }
            // one comparison per hot lane (rarely more than one)
            let mut hot_lanes = self.hot_lanes(j, V::LANES, labels, k);
            let (iota, mut hot) = (V::load(IOTA.as_ptr()), V::splat(0.0));
            while hot_lanes != 0 {
                let lane = V::splat(hot_lanes.trailing_zeros() as f32);
                hot = hot.or(iota.eq(lane));
                hot_lanes &= hot_lanes - 1;
            }
            V::select(hot, V::splat(1.0), V::splat(0.0))
        }
    }

    /// The hot elements among the `n` from `j` of a [`RunTargets::Rows`] run, as a mask
    /// (bit `l` for element `j + l`), moving the cursor `hot_at` past the rows that begin
    /// before `j + n` that hold a label in range (the others are skipped by
    /// [`next_hit_row`]). Out of line, so it needs no vector type.
    ///
    /// # Safety
    /// `labels` is valid for the run's rows, `n <= 64` and `j + n <= self.len`.
    #[inline(never)]
    unsafe fn hot_lanes(&mut self, j: usize, n: usize, labels: *const i32, k: usize) -> u64 {
        // SAFETY: every row whose labels are read here begins before `j + n <= self.len`,
        // so it is one of the run's; `next_hit_row` reads labels of rows below
        // `self.len / c`, the run's rows (this function's contract).
        unsafe {
            let c = self.classes.max(1);
            let top = in_range_bound(c);
            let end = j + n;
            let mut hot = 0u64;
            // rows that begin before the vector's end; a row ending within it is done
            while self.hot_at < end {
                let (row, first) = (self.hot_row, self.hot_at);
                for s in 0..k {
                    let label = *labels.add(row * k + s);
                    if (label as u32) < top {
                        let pos = first + label as usize;
                        if (j..end).contains(&pos) {
                            hot |= 1 << ((pos - j) & 63);
                        }
                    }
                }
                if first + c > end {
                    break;
                }
                self.hot_row = next_hit_row(labels, k, c, self.len / c, row + 1);
                self.hot_at = self.hot_row * c;
            }
            hot
        }
    }

    /// Weights of the `V::LANES` elements from `j` of a run with [`RunWeights::Rows`], all
    /// within it: each row's weight fills its lanes, found by a cursor over
    /// the rows (`w_row`, whose first element is `w_start`; loads go forward) instead of a
    /// division per vector.
    ///
    /// # Safety
    /// As for [`load`](Self::load), `weights` is valid for the run's rows, and
    /// `j + V::LANES <= self.len`.
    #[inline(always)]
    unsafe fn row_weights<V: Vector>(&mut self, j: usize, weights: *const f32) -> V {
        // SAFETY: every row read holds one of the vector's elements, so it is one of the
        // run's (this function's contract); `V`'s target features are enabled.
        unsafe {
            let c = self.classes.max(1);
            while self.w_start + c <= j {
                self.w_row += 1;
                self.w_start += c;
            }
            let mut w = V::splat(*weights.add(self.w_row));
            let (mut row, mut start) = (self.w_row + 1, self.w_start + c);
            let iota = V::load(IOTA.as_ptr());
            while start < j + V::LANES {
                let from = V::splat((start - j) as f32).le(iota);
                w = V::select(from, V::splat(*weights.add(row)), w);
                row += 1;
                start += c;
            }
            w
        }
    }
}

/// `top` such that a label is in `[0, classes)` exactly when `label as u32 < top`: negative
/// labels are 2^31 or more as u32, and every class count from 2^31 on admits every
/// non-negative label alike.
#[inline(always)]
fn in_range_bound(classes: usize) -> u32 {
    classes.min(1 << 31) as u32
}

/// The first row at or after `from` (of `rows`, `k` labels each from `labels`) with a
/// label in `[0, classes)`; `rows` if there is none. Sixteen labels at a time by a test
/// without branches (which the compiler vectorises with the target's baseline vector
/// instructions: this runs out of line, without the path's features), then one by one.
///
/// # Safety
/// `labels` is valid for reads of `rows * k` labels.
#[inline(always)]
unsafe fn next_hit_row(
    labels: *const i32,
    k: usize,
    classes: usize,
    rows: usize,
    from: usize,
) -> usize {
    const CHUNK: usize = 16;
    let k = k.max(1);
    let total = rows * k;
    let mut i = from * k;
    let top = in_range_bound(classes);
    let in_range = |label: i32| (label as u32) < top;
    // SAFETY: every label read is below `total` (this function's contract); a chunk is
    // read as an array of i32, whose alignment the pointer has, and nothing writes the
    // labels during a pass (the callers' slices are shared borrows).
    unsafe {
        while i + CHUNK <= total {
            let chunk = &*labels.add(i).cast::<[i32; CHUNK]>();
            if chunk.iter().fold(false, |hit, &l| hit | in_range(l)) {
                break;
            }
            i += CHUNK;
        }
        while i < total {
            if in_range(*labels.add(i)) {
                return if k == 1 { i } else { i / k };
            }
            i += 1;
        }
    }
    rows
}

/// The targets of consecutive anchors of a plane of class `class`, `k` labels each from
/// `labels`: one per element of `out`. Out of line: inlined, its per-lane label pointers
/// were computed for every vector of every run, whatever the run's kind.
///
/// # Safety
/// `labels` is valid for reads of `out.len() * k` labels.
#[inline(never)]
unsafe fn plane_targets(labels: *const i32, k: usize, class: f32, out: &mut [f32]) {
    for (l, o) in out.iter_mut().enumerate() {
        // SAFETY: within the `out.len() * k` labels (this function's contract)
        let hit = (0..k).any(|s| unsafe { *labels.add(l * k + s) } as f32 == class);
        *o = f32::from(u8::from(hit));
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
    /// Runs per block of a class-index layout.
    per_block: usize,
    /// Class-index layouts: walked by rows (else by planes), labels per anchor, and the
    /// position of the next run: its block, its index in the block and the block's start.
    rows: bool,
    k: usize,
    blk: usize,
    i: usize,
    base: usize,
    /// Rows, one right after the other, on a vector path: one run per block.
    blocks_of_rows: bool,
}

impl<'x> Runs<'x> {
    /// The runs for vectors of `lanes` elements.
    #[inline(always)]
    pub(super) fn new(x: &'x Inputs, lanes: usize) -> Self {
        let by_rows = |l: &ClassLayout| l.walk_rows();
        let per_block = match x.b {
            Targets::Labels { .. } if x.n == 0 => 0,
            Targets::Labels { layout, .. } if by_rows(&layout) => layout.anchors,
            Targets::Labels { layout, .. } => layout.classes,
            Targets::Values(_) | Targets::Zero => 1,
        };
        // `x.n` (the layout's elements) fits, so the block count does too
        let blocks = match x.b {
            Targets::Labels { layout, .. } => layout.blocks().unwrap_or(0),
            Targets::Values(_) | Targets::Zero => 1,
        };
        let (rows, k) = match x.b {
            Targets::Labels { layout, .. } => (by_rows(&layout), layout.labels_per()),
            Targets::Values(_) | Targets::Zero => (true, 1),
        };
        // rows, each right after the last: one run per block, whose vectors neither end each
        // row with a padded tail nor pay a run's set-up per row (one lane has no tails)
        let blocks_of_rows = match x.b {
            Targets::Labels { layout, .. } => blocks_of_rows(&layout, lanes),
            Targets::Values(_) | Targets::Zero => false,
        };
        let per_block = if blocks_of_rows && per_block > 0 {
            1
        } else {
            per_block
        };
        Runs {
            x,
            r: 0,
            count: per_block.saturating_mul(blocks),
            per_block,
            rows,
            k,
            blk: 0,
            i: 0,
            base: 0,
            blocks_of_rows,
        }
    }

    /// # Safety
    /// The pointers of `x` are valid for reads of the lengths they describe.
    #[inline(always)]
    pub(super) unsafe fn next(&mut self) -> Option<Run> {
        // SAFETY: the pointers of `x` are valid for the elements they describe (this
        // function's contract).
        unsafe {
            if self.r >= self.count {
                return None;
            }
            let x = self.x;
            self.r += 1;
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
                    classes: 0,
                    b: RunTargets::Values(b),
                    w: weight(0),
                    hot_at: 0,
                    hot_row: 0,
                    w_row: 0,
                    w_start: 0,
                },
                Targets::Zero => Run {
                    start: 0,
                    len: x.n,
                    classes: 0,
                    b: RunTargets::Zero,
                    w: weight(0),
                    hot_at: 0,
                    hot_row: 0,
                    w_row: 0,
                    w_start: 0,
                },
                Targets::Labels { labels, layout } => {
                    // block `blk` (image-major), run `i` within it; the block's anchors are
                    // cells `blk * anchors ..` of the labels and weights
                    let (blk, i, base) = (self.blk, self.i, self.base);
                    self.i += 1;
                    if self.i == self.per_block {
                        self.i = 0;
                        self.blk += 1;
                        self.base = layout.block_start(self.blk);
                    }
                    let k = self.k;
                    let cell0 = blk * layout.anchors;
                    if self.blocks_of_rows {
                        // the block's rows as one run; its element count fits (`x.n` does)
                        return Some(Run {
                            start: base,
                            len: layout.anchors * layout.classes,
                            classes: layout.classes,
                            b: RunTargets::Rows {
                                labels: labels.add(cell0 * k),
                                k,
                            },
                            w: if x.w.is_null() {
                                RunWeights::All(1.0)
                            } else {
                                RunWeights::Rows(x.w.add(cell0))
                            },
                            hot_at: 0,
                            hot_row: 0,
                            w_row: 0,
                            w_start: 0,
                        });
                    }
                    if self.rows {
                        // one run per anchor: its row of class logits, hot at its labels
                        let cell = cell0 + i;
                        let w = if x.w.is_null() { 1.0 } else { *x.w.add(cell) };
                        Run {
                            start: base + i * layout.anchor_stride,
                            len: layout.classes,
                            classes: layout.classes,
                            b: RunTargets::Hot {
                                labels: labels.add(cell * k),
                                k,
                                first: hot_column(*labels.add(cell * k), layout.classes),
                                col: hot_index(*labels.add(cell * k), layout.classes),
                            },
                            w: RunWeights::All(w),
                            hot_at: 0,
                            hot_row: 0,
                            w_row: 0,
                            w_start: 0,
                        }
                    } else {
                        // one run per class: its plane of anchors
                        Run {
                            start: base + i * layout.class_stride,
                            len: layout.anchors,
                            classes: layout.classes,
                            b: RunTargets::LabelIs {
                                labels: labels.add(cell0 * k),
                                k,
                                class: i as f32,
                            },
                            w: weight(cell0),
                            hot_at: 0,
                            hot_row: 0,
                            w_row: 0,
                            w_start: 0,
                        }
                    }
                }
            })
        }
    }
}
