//! What the caller's buffers look like: the class-index layout of the logits, and what an
//! apply writes. Plain data shared by the kernels, the safe API and the C boundary.

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
    pub(crate) fn by_rows(&self) -> bool {
        (self.class_stride == 1 || self.classes == 1)
            && (self.anchors == 1 || self.anchor_stride >= self.classes)
    }

    /// Walkable as planes of anchors: contiguous planes that do not overlap.
    pub(crate) fn by_planes(&self) -> bool {
        (self.anchor_stride == 1 || self.anchors == 1)
            && (self.classes == 1 || self.class_stride >= self.anchors)
    }
}

/// What an apply writes for each element.
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

/// How an apply writes: `out = scale * value`, or `out += scale * value` with `add`.
/// Darknet's delta (the negative gradient times a factor) is `Gradient` with `scale = -factor`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Output {
    /// Which value.
    pub kind: OutputKind,
    /// Finite factor on every value written.
    pub scale: f32,
    /// Add to what the buffer holds instead of overwriting it.
    pub add: bool,
}

impl Output {
    /// The gradient, overwriting the buffer.
    pub const GRADIENT: Output = Output {
        kind: OutputKind::Gradient,
        scale: 1.0,
        add: false,
    };
}
