//! What the caller's buffers look like: the class-index layout of the logits, and what an
//! apply writes. Plain data shared by the kernels, the safe API and the C boundary.

/// Where the logits and labels of a class-index layout lie.
///
/// A layout is `images * boxes` *blocks* (for Darknet's yolo layer: one per image and anchor
/// box); in each, element (anchor r, class c) is at offset `r * anchor_stride + c *
/// class_stride`, and block (image i, box b) starts at `i * image_stride + b * box_stride`.
/// One of `anchor_stride` and `class_stride` is 1: `[anchors][classes]` (mmdetection) has
/// `class_stride` 1, planes of anchors per class (Darknet's yolo output, anchors being the
/// h*w locations) have `anchor_stride` 1.
///
/// Labels: `labels_per_anchor` (K) per anchor, the anchor's labels contiguous, anchors in
/// block order: label s of anchor r of block (i, b) is `labels[((i * boxes + b) * anchors +
/// r) * K + s]`. Class c's target at that anchor is 1 if any of its K labels is c (several
/// classes in one cell), else 0; labels outside `[0, classes)` (such as -1) name no class.
/// Anchor weights: one per anchor, `anchor_weights[(i * boxes + b) * anchors + r]`.
///
/// The fields `labels_per_anchor`, `boxes` and `images` read 0 as 1 (one label, one block),
/// so a layout whose new fields are zero means what a four-field layout meant; strides of a
/// level with count 0 or 1 are not used.
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
    /// Labels per anchor K (0 reads as 1); unused label slots hold -1.
    pub labels_per_anchor: usize,
    /// Blocks per image (Darknet: the anchor boxes of the layer; 0 reads as 1).
    pub boxes: usize,
    /// Distance in floats between consecutive blocks of an image.
    pub box_stride: usize,
    /// Number of images (0 reads as 1).
    pub images: usize,
    /// Distance in floats between consecutive images.
    pub image_stride: usize,
}

impl ClassLayout {
    /// The contiguous `[anchors][classes]` layout.
    pub const fn rows(anchors: usize, classes: usize) -> ClassLayout {
        ClassLayout {
            anchors,
            classes,
            anchor_stride: classes,
            class_stride: 1,
            labels_per_anchor: 1,
            boxes: 1,
            box_stride: 0,
            images: 1,
            image_stride: 0,
        }
    }

    /// Planes of anchors per class: `anchor_stride` 1, `class_stride` `anchors` (one block of
    /// Darknet's class entries).
    pub const fn planes(anchors: usize, classes: usize) -> ClassLayout {
        ClassLayout {
            anchor_stride: 1,
            class_stride: anchors,
            ..ClassLayout::rows(anchors, classes)
        }
    }

    /// This layout repeated as `boxes` blocks per image `box_stride` apart, over `images`
    /// images `image_stride` apart.
    pub const fn batched(
        self,
        boxes: usize,
        box_stride: usize,
        images: usize,
        image_stride: usize,
    ) -> ClassLayout {
        ClassLayout {
            boxes,
            box_stride,
            images,
            image_stride,
            ..self
        }
    }

    /// This layout with `k` labels per anchor.
    pub const fn with_labels_per_anchor(self, k: usize) -> ClassLayout {
        ClassLayout {
            labels_per_anchor: k,
            ..self
        }
    }

    /// Labels per anchor, 0 read as 1.
    pub fn labels_per(&self) -> usize {
        self.labels_per_anchor.max(1)
    }

    /// Number of blocks (`images * boxes`, 0 read as 1), if it fits.
    pub fn blocks(&self) -> Option<usize> {
        self.images.max(1).checked_mul(self.boxes.max(1))
    }

    /// Number of anchors over all blocks (the length of the anchor weights), if it fits.
    pub fn cells(&self) -> Option<usize> {
        self.blocks()?.checked_mul(self.anchors)
    }

    /// Number of labels (`cells * labels_per_anchor`), if it fits.
    pub fn label_count(&self) -> Option<usize> {
        self.cells()?.checked_mul(self.labels_per())
    }

    /// Number of elements (`cells * classes`), if it fits.
    pub fn elements(&self) -> Option<usize> {
        self.cells()?.checked_mul(self.classes)
    }

    /// Number of f32 of one block, from its first element to one past its last (0 when
    /// empty), if it fits.
    fn block_extent(&self) -> Option<usize> {
        if self.anchors == 0 || self.classes == 0 {
            return Some(0);
        }
        let last_row = (self.anchors - 1).checked_mul(self.anchor_stride)?;
        let last_col = (self.classes - 1).checked_mul(self.class_stride)?;
        last_row.checked_add(last_col)?.checked_add(1)
    }

    /// Number of f32 of one image's blocks, if it fits.
    fn image_extent(&self) -> Option<usize> {
        let e = self.block_extent()?;
        if e == 0 || self.boxes <= 1 {
            return Some(e);
        }
        (self.boxes - 1)
            .checked_mul(self.box_stride)?
            .checked_add(e)
    }

    /// Number of f32 from the first element to one past the last (0 when empty), if it fits.
    pub fn extent(&self) -> Option<usize> {
        let e = self.image_extent()?;
        if e == 0 || self.images <= 1 {
            return Some(e);
        }
        (self.images - 1)
            .checked_mul(self.image_stride)?
            .checked_add(e)
    }

    /// Offset of block `k` (in image-major order) in floats. Valid for `k < blocks()` of a
    /// layout whose extent fits.
    pub(crate) fn block_start(&self, k: usize) -> usize {
        let boxes = self.boxes.max(1);
        let (image, block) = (k.checked_div(boxes), k.checked_rem(boxes));
        image.unwrap_or(0) * self.image_stride + block.unwrap_or(0) * self.box_stride
    }

    /// Whether the layout can be walked in contiguous runs (rows of classes with
    /// `class_stride` 1, or planes of anchors with `anchor_stride` 1), its elements are
    /// distinct (blocks do not overlap: `box_stride` at least a block's extent and
    /// `image_stride` at least an image's, where there are several), and its class count compares exactly as f32 (at most 2^24). An empty
    /// layout is always supported.
    pub fn is_supported(&self) -> bool {
        let empty = self.anchors == 0 || self.classes == 0;
        let (Some(block), Some(image)) = (self.block_extent(), self.image_extent()) else {
            return false;
        };
        let blocks_apart = (self.boxes <= 1 || self.box_stride >= block)
            && (self.images <= 1 || self.image_stride >= image);
        self.classes <= 1 << 24 && (empty || ((self.by_rows() || self.by_planes()) && blocks_apart))
    }

    /// Walked as rows of classes (else as planes of anchors): walkable so, and not a layout
    /// that planes walk in longer runs (one class whose anchors are contiguous, such as
    /// Darknet's objectness plane).
    pub(crate) fn walk_rows(&self) -> bool {
        self.by_rows() && (!self.by_planes() || self.classes >= self.anchors)
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

/// How an apply writes: `out = s * value`, or `out += s * value` with `add`, where `s` is
/// `scale`, or `scale * tot` (the commit's normaliser) with `sum`.
///
/// The loss and its values are mean-reduced (divided by `tot`); `sum` undoes that, giving
/// the summed reduction Darknet's deltas use. Darknet's delta (the negative gradient of the
/// summed loss times a factor) is `Gradient` with `scale = -factor` and `sum`.
///
/// Elements whose label weight is 0 get the value 0: an overwrite writes 0 there, an add
/// leaves them as they were.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Output {
    /// Which value.
    pub kind: OutputKind,
    /// Finite factor on every value written.
    pub scale: f32,
    /// Add to what the buffer holds instead of overwriting it.
    pub add: bool,
    /// Multiply `scale` by the commit's `tot`: summed instead of mean-reduced values.
    pub sum: bool,
}

impl Output {
    /// The gradient, overwriting the buffer.
    pub const GRADIENT: Output = Output {
        kind: OutputKind::Gradient,
        scale: 1.0,
        add: false,
        sum: false,
    };
}
