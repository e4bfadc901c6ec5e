//! The C boundary (`include/ghm.h`, generated from this file by cbindgen).
//!
//! Each function checks its pointers and lengths, converts them to slices, calls the safe
//! core and maps its error to a status code. Rules every function keeps:
//! - it never allocates, never panics, and touches memory only inside the ranges it is given;
//! - inputs come before outputs; outputs (the state included) are written only when it
//!   returns `GHM_OK`, so a failed call leaves every byte as it was;
//! - it is thread-safe for calls on distinct states; calls sharing a state must be
//!   serialised by the caller.

#![allow(non_camel_case_types)]

use core::ffi::c_char;
use core::mem::{align_of, size_of};

use crate::config::{Config, Kind, OPT_GRADIENT_INPUT};
use crate::error::Error;
use crate::io::{ClassLayout, Output, OutputKind};
use crate::loss::{Dest, Ghm, InPlace, Loss};
use crate::state::{RegionWeights, State, Stats};
use crate::{Classification, Regression};

/// A status code: `GHM_OK` (0) or one of the `GHM_ERR_*` codes.
pub type ghm_status = i32;

/// Success.
pub const GHM_OK: ghm_status = 0;
/// A required pointer is NULL (array pointers may be NULL when the length is 0).
pub const GHM_ERR_NULL: ghm_status = 1;
/// A float pointer is not 4-byte aligned, or a state or config pointer is not aligned for
/// its type.
pub const GHM_ERR_MISALIGNED: ghm_status = 2;
/// A length is too large for the address space.
pub const GHM_ERR_LENGTH: ghm_status = 3;
/// An output overlaps an input or another output. The gradient may be exactly the
/// logits/pred buffer (in place); any other overlap is refused.
pub const GHM_ERR_OVERLAP: ghm_status = 4;
/// A configuration field is out of range: bins not in 1..=GHM_MAX_BINS, momentum not in
/// [0, 1), loss_weight not finite, GHM-R mu not in (0, 1e18], unknown option bits or a
/// GHM-C-only option on GHM-R, GHM_OPT_PROBABILITY_INPUT with GHM_OPT_GRADIENT_INPUT,
/// weight_cap or count_prior negative or not finite. Also: a class-index function given a GHM-C state or
/// weights with GHM_OPT_GRADIENT_INPUT.
pub const GHM_ERR_CONFIG: ghm_status = 5;
/// The state was never initialised or is corrupted.
pub const GHM_ERR_STATE: ghm_status = 6;
/// The state belongs to the other loss (a GHM-C state passed to GHM-R or the reverse).
pub const GHM_ERR_WRONG_LOSS: ghm_status = 7;
/// NaN or infinity in a logit, prediction or GHM-R target.
pub const GHM_ERR_NONFINITE: ghm_status = 8;
/// A GHM-C target is outside [0, 1] (NaN and infinities included).
pub const GHM_ERR_TARGET: ghm_status = 9;
/// A label weight is negative, NaN or infinite.
pub const GHM_ERR_WEIGHT: ghm_status = 10;
/// A result is not representable as a finite float: `pred - target` overflows, or the loss,
/// a harmonized weight, or a value an apply would write (scaled, or added to the buffer).
pub const GHM_ERR_OVERFLOW: ghm_status = 11;
/// An internal invariant failed (never expected).
pub const GHM_ERR_INTERNAL: ghm_status = 12;
/// The requested instruction-set path is not available on this CPU or in this build.
pub const GHM_ERR_ISA: ghm_status = 13;
/// Stats for another loss or bin count (or corrupted, or counting stats merged with
/// summing ones, or counting stats holding loss sums) given to `ghm_commit` or an
/// accumulate.
pub const GHM_ERR_STATS_MISMATCH: ghm_status = 14;
/// RegionWeights that no successful `ghm_commit` produced (or corrupted) given to an apply.
pub const GHM_ERR_NOT_COMMITTED: ghm_status = 15;
/// A class layout the library cannot walk: neither stride is 1, elements would overlap, or
/// more than 2^24 classes.
pub const GHM_ERR_LAYOUT: ghm_status = 16;
/// A `ghm_output` with an unknown kind or flag, or a scale that is not finite.
pub const GHM_ERR_OUTPUT: ghm_status = 17;
/// A GHM-C probability input (GHM_OPT_PROBABILITY_INPUT) outside [0, 1], or a gradient
/// input (GHM_OPT_GRADIENT_INPUT) outside [-1, 1].
pub const GHM_ERR_PROBABILITY: ghm_status = 18;
/// The loss of a batch committed from counting stats (`ghm_stats_init_counting`) was asked
/// of `ghm_commit` or `ghm_region_weights_loss`: such a batch's loss is the sum of what its
/// `ghm_*_apply_loss` calls write.
pub const GHM_ERR_NO_LOSS: ghm_status = 19;

/// `ghm_output.kind`: dL/dlogit (GHM-C) or dL/dpred (GHM-R).
pub const GHM_OUTPUT_GRADIENT: u32 = 0;
/// `ghm_output.kind`: each element's weight in the loss, `loss_weight * beta_i / tot`.
pub const GHM_OUTPUT_ELEMENT_WEIGHT: u32 = 1;
/// `ghm_output.kind`: each element's loss, the reference's reduction "none".
pub const GHM_OUTPUT_ELEMENT_LOSS: u32 = 2;

/// What an apply writes: `out[i] = s * value_i`, or `out[i] += s * value_i` when `add` is 1,
/// where `s` is `scale`, or `scale * tot` (the committed batch's normaliser, see
/// `ghm_region_weights_tot`) when `sum` is 1.
///
/// Values are those of the mean-reduced loss (divided by tot) unless `sum` is 1, which gives
/// those of the summed loss. Darknet's delta (minus the gradient of its summed loss, times a
/// factor) is `{GHM_OUTPUT_GRADIENT, -factor, 0, 1}`.
///
/// Elements with label weight 0 (ignored) get the value 0: an overwrite writes 0 there, an
/// add leaves them unchanged. Zero-initialise the struct (`= {0}`) so that fields a later
/// version adds read as 0.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct ghm_output {
    /// `GHM_OUTPUT_GRADIENT`, `GHM_OUTPUT_ELEMENT_WEIGHT` or `GHM_OUTPUT_ELEMENT_LOSS`.
    pub kind: u32,
    /// Finite factor on every value written.
    pub scale: f32,
    /// 0: overwrite; 1: add to what the buffer holds.
    pub add: u32,
    /// 0: scale as given (mean reduction); 1: scale times the commit's tot (summed).
    pub sum: u32,
}

impl ghm_output {
    fn to_output(self) -> Result<Output, Error> {
        let kind = match self.kind {
            GHM_OUTPUT_GRADIENT => OutputKind::Gradient,
            GHM_OUTPUT_ELEMENT_WEIGHT => OutputKind::ElementWeight,
            GHM_OUTPUT_ELEMENT_LOSS => OutputKind::ElementLoss,
            _ => return Err(Error::Output),
        };
        if self.add > 1 || self.sum > 1 || !self.scale.is_finite() {
            return Err(Error::Output);
        }
        Ok(Output {
            kind,
            scale: self.scale,
            add: self.add == 1,
            sum: self.sum == 1,
        })
    }
}

fn status(r: Result<(), Error>) -> ghm_status {
    match r {
        Ok(()) => GHM_OK,
        Err(e) => e.code(),
    }
}

/// A static, NUL-terminated description of `status` ("unknown status" for codes this
/// library does not define). Never NULL; the caller must not free it.
#[no_mangle]
pub extern "C" fn ghm_status_str(status: ghm_status) -> *const c_char {
    // Every message is NUL-terminated (see `error.rs`).
    Error::c_message(status).as_ptr().cast()
}

/// mmdetection's `GHMC()` defaults: bins 10, momentum 0, mu 0.02 (unused), loss_weight 1.
#[no_mangle]
pub extern "C" fn ghm_c_config_default() -> Config {
    Config::ghm_c()
}

/// mmdetection's `GHMR()` defaults: bins 10, momentum 0, mu 0.02, loss_weight 1.
#[no_mangle]
pub extern "C" fn ghm_r_config_default() -> Config {
    Config::ghm_r()
}

/// The robust GHM-C preset: bins 30, momentum 0.75, count_prior 0.1 and
/// GHM_OPT_NORM_BY_POSITIVES (the loss normalised by the batch's positives, as detectors
/// normalise focal loss). Not mmdetection's numbers; `ghm_c_config_default` is. A trainer that
/// sums its deltas without normalising (Darknet) takes the summed values (`ghm_output.sum`
/// = 1), which the normaliser does not change.
#[no_mangle]
pub extern "C" fn ghm_c_config_robust() -> Config {
    Config::ghm_c_robust()
}

/// Says which field of `*config` `ghm_c_init` would refuse, for an error message that names
/// it: writes the name of the first field out of range, in the struct's order (`"bins"`,
/// `"momentum"`, `"loss_weight"`, `"options"`, `"weight_cap"`, `"count_prior"`; GHM-C ignores
/// `mu`), to
/// `*field` and its valid range in words to `*allowed` (for `bins`: `"an integer in
/// 1..=64"`), or NULL to both when `ghm_c_init` accepts the config. The strings are static
/// and NUL-terminated; the caller must not free them.
///
/// Errors: GHM_ERR_NULL (any pointer NULL), GHM_ERR_MISALIGNED, GHM_ERR_OVERLAP (an output
/// overlaps the config or the other output). An invalid config is not an error of this
/// function: it returns GHM_OK and names the field.
///
/// # Safety
/// Every non-NULL pointer is valid for a read or write of its type.
#[no_mangle]
pub unsafe extern "C" fn ghm_c_config_check(
    config: *const Config,
    field: *mut *const c_char,
    allowed: *mut *const c_char,
) -> ghm_status {
    // SAFETY: the pointers go unchanged to the body, which checks each with `span` before
    // any access; this function's contract (# Safety) is the rest of what it needs.
    status(unsafe { config_check(Kind::Classification, config, field, allowed) })
}

/// As `ghm_c_config_check`, for `ghm_r_init` (which also checks `"mu"`, after `"momentum"`,
/// and refuses GHM-C-only option bits).
///
/// # Safety
/// As for `ghm_c_config_check`.
#[no_mangle]
pub unsafe extern "C" fn ghm_r_config_check(
    config: *const Config,
    field: *mut *const c_char,
    allowed: *mut *const c_char,
) -> ghm_status {
    // SAFETY: the pointers go unchanged to the body, which checks each with `span` before
    // any access; this function's contract (# Safety) is the rest of what it needs.
    status(unsafe { config_check(Kind::Regression, config, field, allowed) })
}

unsafe fn config_check(
    kind: Kind,
    config: *const Config,
    field: *mut *const c_char,
    allowed: *mut *const c_char,
) -> Result<(), Error> {
    let c = span(config, 1, false)?;
    let f = span(field, 1, false)?;
    let a = span(allowed, 1, false)?;
    disjoint(&[f, a], &[c])?;
    // SAFETY: the three pointers were checked above (non-NULL, aligned, in range, outputs
    // disjoint from the input); the caller guarantees they are valid.
    let invalid = unsafe { config.read() }.first_invalid(kind);
    // The texts are NUL-terminated (see `Config::first_invalid`).
    let (name, range) = match invalid {
        Some((n, r)) => (n.as_ptr().cast::<c_char>(), r.as_ptr().cast::<c_char>()),
        None => (core::ptr::null(), core::ptr::null()),
    };
    // SAFETY: as above.
    unsafe {
        field.write(name);
        allowed.write(range);
    }
    Ok(())
}

/// Initialises `*state` for GHM-C with a copy of `*config` (EMA at 0).
///
/// `state`: caller-owned, written only on success. `config`: read only, not retained.
/// Errors: GHM_ERR_NULL, GHM_ERR_MISALIGNED, GHM_ERR_OVERLAP (the two overlap),
/// GHM_ERR_CONFIG.
///
/// # Safety
/// `state` and `config` are NULL or valid for a write / read of their type.
#[no_mangle]
pub unsafe extern "C" fn ghm_c_init(state: *mut State, config: *const Config) -> ghm_status {
    // SAFETY: the pointers go unchanged to the body, which checks each with `span` before any
    // access; this function's contract (# Safety) is the rest of what it needs.
    unsafe { status(init(Kind::Classification, state, config)) }
}

/// Initialises `*state` for GHM-R with a copy of `*config` (EMA at 0). As `ghm_c_init`.
///
/// # Safety
/// As for `ghm_c_init`.
#[no_mangle]
pub unsafe extern "C" fn ghm_r_init(state: *mut State, config: *const Config) -> ghm_status {
    // SAFETY: the pointers go unchanged to the body, which checks each with `span` before any
    // access; this function's contract (# Safety) is the rest of what it needs.
    unsafe { status(init(Kind::Regression, state, config)) }
}

/// Replaces the EMA (the per-region density S_k) of `*state` with `ema[n]`, for example
/// another implementation's checkpoint (mmdetection's `acc_sum` buffer); `n` must equal the
/// state's `bins`. Regions with a positive value count as fully warmed up for
/// GHM_OPT_EMA_BIAS_CORRECTION, regions at 0 as never hit.
///
/// `ema`: read only, not retained, finite values >= 0. `*state`: an initialised state of
/// either loss, rewritten only on success.
/// Errors: GHM_ERR_NULL, GHM_ERR_MISALIGNED, GHM_ERR_LENGTH (`n` is not the state's bins),
/// GHM_ERR_OVERLAP, GHM_ERR_STATE, GHM_ERR_STATS_MISMATCH (a value negative or not finite).
///
/// # Safety
/// `ema` is NULL or valid for reads of `n` floats; `state` is NULL or valid for a read and
/// a write of a `ghm_state`.
#[no_mangle]
pub unsafe extern "C" fn ghm_state_set_ema(
    ema: *const f32,
    n: usize,
    state: *mut State,
) -> ghm_status {
    status((|| {
        disjoint(&[span(state, 1, false)?], &[span(ema, n, false)?])?;
        // SAFETY: both pointers were checked above (non-NULL, aligned, in range, disjoint);
        // the caller guarantees they are valid for the lengths given.
        let mut st = unsafe { state.read() };
        st.kind()?;
        st.set_ema(unsafe { slice(ema, n) })?;
        unsafe { state.write(st) };
        Ok(())
    })())
}

/// GHM-C over `n` elements: the loss (mean reduction, times loss_weight) and, if `grad` is
/// not NULL, dL/dlogit; updates the EMA in `*state`.
///
/// With GHM_OPT_GRADIENT_INPUT, `logits` holds `d = p - t` in [-1, 1] and `targets` is not
/// read (NULL allowed); the loss term is then `-ln(1 - |d|)` (see the option).
/// Inputs (read only, not retained): `logits[n]` finite, `targets[n]` in [0, 1],
/// `label_weights[n]` finite and >= 0 or NULL for all valid (only `> 0` matters).
/// Outputs (written only on success): `*state`, `*loss`, `grad[n]` (may be exactly `logits`).
/// Array pointers may be NULL when `n` is 0; `n` = 0 gives loss 0 and leaves the state as it
/// was. Float pointers must be 4-byte aligned.
/// Errors: GHM_ERR_NULL, GHM_ERR_MISALIGNED, GHM_ERR_LENGTH, GHM_ERR_OVERLAP, GHM_ERR_STATE,
/// GHM_ERR_WRONG_LOSS, GHM_ERR_NONFINITE, GHM_ERR_TARGET, GHM_ERR_PROBABILITY (with
/// GHM_OPT_PROBABILITY_INPUT), GHM_ERR_WEIGHT, GHM_ERR_OVERFLOW.
///
/// # Safety
/// Every non-NULL pointer is valid for the reads or writes of the length stated.
#[no_mangle]
pub unsafe extern "C" fn ghm_c_loss(
    state: *mut State,
    logits: *const f32,
    targets: *const f32,
    label_weights: *const f32,
    n: usize,
    loss: *mut f32,
    grad: *mut f32,
) -> ghm_status {
    // SAFETY: the pointers go unchanged to the body, which checks each with `span` before any
    // access; this function's contract (# Safety) is the rest of what it needs.
    unsafe {
        status(run::<Classification>(
            state,
            logits,
            targets,
            label_weights,
            n,
            loss,
            grad,
        ))
    }
}

/// GHM-R over `n` elements: the loss (mean reduction, times loss_weight) and, if `grad` is
/// not NULL, dL/dpred; updates the EMA in `*state`.
///
/// Inputs (read only, not retained): `pred[n]` and `target[n]` finite with `pred - target`
/// finite, `label_weights[n]` finite and >= 0 or NULL for all 1 (their sum normalises).
/// Outputs (written only on success): `*state`, `*loss`, `grad[n]` (may be exactly `pred`).
/// `target` is required here; the accumulate and apply functions also take residuals.
/// Array pointers may be NULL when `n` is 0; `n` = 0 gives loss 0 and leaves the state as it
/// was. Float pointers must be 4-byte aligned.
/// Errors: GHM_ERR_NULL, GHM_ERR_MISALIGNED, GHM_ERR_LENGTH, GHM_ERR_OVERLAP, GHM_ERR_STATE,
/// GHM_ERR_WRONG_LOSS, GHM_ERR_NONFINITE, GHM_ERR_WEIGHT, GHM_ERR_OVERFLOW.
///
/// # Safety
/// Every non-NULL pointer is valid for the reads or writes of the length stated.
#[no_mangle]
pub unsafe extern "C" fn ghm_r_loss(
    state: *mut State,
    pred: *const f32,
    target: *const f32,
    label_weights: *const f32,
    n: usize,
    loss: *mut f32,
    grad: *mut f32,
) -> ghm_status {
    // SAFETY: the pointers go unchanged to the body, which checks each with `span` before any
    // access; this function's contract (# Safety) is the rest of what it needs.
    unsafe {
        status(run::<Regression>(
            state,
            pred,
            target,
            label_weights,
            n,
            loss,
            grad,
        ))
    }
}

/// GHM-C with class-index targets (mmdetection's heads): `logits[n_anchors][n_classes]`
/// row-major, `labels[n_anchors]` (a label in `[0, n_classes)` makes that class's target 1
/// and the others 0; any other value, such as `n_classes` for background or -1, gives an
/// all-zero row), `anchor_weights[n_anchors]` or NULL (all valid), applying to every class of
/// the anchor. Otherwise as `ghm_c_loss`; `grad[n_anchors * n_classes]` may not alias `logits`.
/// Errors: as `ghm_c_loss`; GHM_ERR_LENGTH if n_anchors * n_classes overflows;
/// GHM_ERR_LAYOUT for n_classes above 2^24; GHM_ERR_CONFIG for a state with
/// GHM_OPT_GRADIENT_INPUT. 0 anchors or 0 classes (at most 2^24) is an empty
/// batch: loss 0, state unchanged.
///
/// # Safety
/// Every non-NULL pointer is valid for the reads or writes of the length stated.
#[no_mangle]
pub unsafe extern "C" fn ghm_c_loss_labels(
    state: *mut State,
    logits: *const f32,
    n_anchors: usize,
    n_classes: usize,
    labels: *const i32,
    anchor_weights: *const f32,
    loss: *mut f32,
    grad: *mut f32,
) -> ghm_status {
    // SAFETY: the pointers go unchanged to the body, which checks each with `span` before any
    // access; this function's contract (# Safety) is the rest of what it needs.
    unsafe {
        let layout = ClassLayout::rows(n_anchors, n_classes);
        status(loss_labels(
            state,
            logits,
            &layout,
            labels,
            anchor_weights,
            loss,
            grad,
        ))
    }
}

/// Makes empty stats for the loss and bin count of `*state` (which is only read). Phase 1
/// adds each chunk's counts and loss sums to them; the commit then writes the batch's loss.
/// Errors: GHM_ERR_NULL, GHM_ERR_MISALIGNED, GHM_ERR_OVERLAP, GHM_ERR_STATE.
///
/// # Safety
/// `state` and `stats` are NULL or valid for a read / write of their type.
#[no_mangle]
pub unsafe extern "C" fn ghm_stats_init(state: *const State, stats: *mut Stats) -> ghm_status {
    // SAFETY: the caller's contract, passed on.
    unsafe { status(stats_init(state, stats, false)) }
}

/// As `ghm_stats_init`, for counting stats: phase 1 adds only counts (and label weights) to
/// them, about half its work, and the commit has no loss (pass NULL for it). The batch's loss
/// is then the sum of the `loss` values its `ghm_*_apply_loss` calls write, one per chunk:
/// the fast way to split a batch over threads. Counting stats merged with stats of the
/// other kind are refused with GHM_ERR_STATS_MISMATCH by `ghm_commit` and the accumulate
/// functions.
/// Errors: as `ghm_stats_init`.
///
/// # Safety
/// As for `ghm_stats_init`.
#[no_mangle]
pub unsafe extern "C" fn ghm_stats_init_counting(
    state: *const State,
    stats: *mut Stats,
) -> ghm_status {
    // SAFETY: the caller's contract, passed on.
    unsafe { status(stats_init(state, stats, true)) }
}

/// The body of `ghm_stats_init` and `ghm_stats_init_counting`.
unsafe fn stats_init(state: *const State, stats: *mut Stats, counting: bool) -> Result<(), Error> {
    disjoint(&[span(stats, 1, false)?], &[span(state, 1, false)?])?;
    // SAFETY: both pointers were checked above (non-NULL, aligned, disjoint); the caller
    // guarantees they are valid.
    unsafe {
        let st = state.read();
        stats.write(Stats::new(st.kind()?, st.config().bins, counting));
    }
    Ok(())
}

/// Adds `*from` into `*into`, element-wise: the same as summing the two as
/// `sizeof(ghm_stats) / sizeof(double)` doubles (which an MPI or NCCL allreduce may do
/// instead). Mismatched stats are detected by `ghm_commit`.
/// Errors: GHM_ERR_NULL, GHM_ERR_MISALIGNED, GHM_ERR_OVERLAP.
///
/// # Safety
/// `from` and `into` are NULL or valid for a read / read-write of their type.
#[no_mangle]
pub unsafe extern "C" fn ghm_stats_merge(from: *const Stats, into: *mut Stats) -> ghm_status {
    // SAFETY: the pointers go unchanged to the body, which checks each with `span` before any
    // access; this function's contract (# Safety) is the rest of what it needs.
    unsafe {
        status((|| {
            disjoint(&[span(into, 1, false)?], &[span(from, 1, false)?])?;
            let mut merged = into.read();
            merged.merge(&from.read());
            into.write(merged);
            Ok(())
        })())
    }
}

/// Phase 1 of GHM-C: validates a chunk of `n` elements (as `ghm_c_loss`) and adds its
/// per-region counts and (unless the stats are counting ones) loss sums to `*stats`. With GHM_OPT_GRADIENT_INPUT, `logits` holds
/// `d = p - t` in [-1, 1] and `targets` is not read (NULL allowed). Reads `*state` (its configuration) without
/// changing it, so threads may accumulate disjoint chunks into their own stats at once.
/// Errors: as `ghm_c_loss`, and GHM_ERR_STATS_MISMATCH.
///
/// # Safety
/// Every non-NULL pointer is valid for the reads or writes of the length stated.
#[no_mangle]
pub unsafe extern "C" fn ghm_c_accumulate(
    state: *const State,
    logits: *const f32,
    targets: *const f32,
    label_weights: *const f32,
    n: usize,
    stats: *mut Stats,
) -> ghm_status {
    // SAFETY: the pointers go unchanged to the body, which checks each with `span` before any
    // access; this function's contract (# Safety) is the rest of what it needs.
    unsafe {
        status(accumulate::<Classification>(
            state,
            logits,
            targets,
            label_weights,
            n,
            stats,
        ))
    }
}

/// Phase 1 of GHM-R, as `ghm_c_accumulate`; `target` NULL means `pred` holds the residuals
/// `pred - target` themselves.
///
/// # Safety
/// Every non-NULL pointer is valid for the reads or writes of the length stated.
#[no_mangle]
pub unsafe extern "C" fn ghm_r_accumulate(
    state: *const State,
    pred: *const f32,
    target: *const f32,
    label_weights: *const f32,
    n: usize,
    stats: *mut Stats,
) -> ghm_status {
    // SAFETY: the pointers go unchanged to the body, which checks each with `span` before any
    // access; this function's contract (# Safety) is the rest of what it needs.
    unsafe {
        status(accumulate::<Regression>(
            state,
            pred,
            target,
            label_weights,
            n,
            stats,
        ))
    }
}

/// Phase 1 of GHM-C with class-index targets in any supported layout (see
/// `ghm_class_layout`): in block (image i, box b), the logit of anchor `r`, class `c` is
/// `logits[i * image_stride + b * box_stride + r * anchor_stride + c * class_stride]` (one of
/// anchor_stride and class_stride must be 1: `[anchors][classes]` rows as mmdetection, or
/// per-class planes of anchors as Darknet's yolo output). `labels[cells * labels_per_anchor]`
/// and `anchor_weights[cells]` or NULL, where cells = images * boxes * anchors (counts of 0
/// read as 1); a class is target 1 at an anchor if one of its labels names it.
/// Errors: as `ghm_c_accumulate`, GHM_ERR_LAYOUT, GHM_ERR_LENGTH (a count or the extent
/// overflows), GHM_ERR_CONFIG (a state with GHM_OPT_GRADIENT_INPUT).
///
/// # Safety
/// Every non-NULL pointer is valid for the reads or writes of the length stated; `logits`
/// spans the layout's extent.
#[no_mangle]
pub unsafe extern "C" fn ghm_c_accumulate_labels(
    state: *const State,
    logits: *const f32,
    layout: *const ClassLayout,
    labels: *const i32,
    anchor_weights: *const f32,
    stats: *mut Stats,
) -> ghm_status {
    // SAFETY: the pointers go unchanged to the body, which checks each with `span` before any
    // access; this function's contract (# Safety) is the rest of what it needs.
    unsafe {
        status(accumulate_labels(
            state,
            logits,
            layout,
            labels,
            anchor_weights,
            stats,
        ))
    }
}

/// Phase 2: updates the EMA in `*state` once from `*stats` (accumulated, merged, or filled
/// by the caller), and writes the batch's weights and, unless `loss` is NULL, its loss.
/// `loss` must be NULL for counting stats (`ghm_stats_init_counting`), which hold no loss.
/// Errors: GHM_ERR_NULL, GHM_ERR_MISALIGNED, GHM_ERR_OVERLAP, GHM_ERR_STATE,
/// GHM_ERR_STATS_MISMATCH (stats of another loss or bin count, negative or non-finite
/// values), GHM_ERR_OVERFLOW, GHM_ERR_NO_LOSS (counting stats and `loss` not NULL).
///
/// # Safety
/// Every non-NULL pointer is valid for the reads or writes of its type.
#[no_mangle]
pub unsafe extern "C" fn ghm_commit(
    stats: *const Stats,
    state: *mut State,
    weights: *mut RegionWeights,
    loss: *mut f32,
) -> ghm_status {
    // SAFETY: the pointers go unchanged to the body, which checks each with `span` before any
    // access; this function's contract (# Safety) is the rest of what it needs.
    unsafe {
        status((|| {
            let outputs = [
                span(state, 1, false)?,
                span(weights, 1, false)?,
                span(loss, 1, true)?,
            ];
            disjoint(&outputs, &[span(stats, 1, false)?])?;
            // in place: the commit changes the state only once it has succeeded
            let st = &mut *state;
            st.kind()?;
            let w = st.commit(&*stats, !loss.is_null())?;
            weights.write(w);
            if let Ok(l) = w.loss() {
                if !loss.is_null() {
                    loss.write(l);
                }
            }
            Ok(())
        })())
    }
}

/// The normaliser `tot` of the batch `*weights` were committed for: its valid elements
/// (GHM-C; its positives with GHM_OPT_NORM_BY_POSITIVES) or the sum of its label weights
/// (GHM-R), at least 1. The committed loss and every
/// value an apply writes are divided by it (mean reduction); multiply by it for a summed
/// reduction (or apply with `ghm_output.sum` 1).
/// Errors: GHM_ERR_NULL, GHM_ERR_MISALIGNED, GHM_ERR_OVERLAP, GHM_ERR_NOT_COMMITTED.
///
/// # Safety
/// Every non-NULL pointer is valid for the reads or writes of its type.
#[no_mangle]
pub unsafe extern "C" fn ghm_region_weights_tot(
    weights: *const RegionWeights,
    tot: *mut f64,
) -> ghm_status {
    // SAFETY: the body checks both pointers with `span` before any access; this function's
    // contract (# Safety) is the rest of what it needs.
    unsafe { status(read_weights(weights, tot, |w| Ok(w.tot()))) }
}

/// The loss of the batch `*weights` were committed for (mean reduction, times loss_weight;
/// the value `ghm_commit` wrote). Times `ghm_region_weights_tot` it is the summed loss.
/// Errors: as `ghm_region_weights_tot`, and GHM_ERR_NO_LOSS for weights committed from
/// counting stats.
///
/// # Safety
/// Every non-NULL pointer is valid for the reads or writes of its type.
#[no_mangle]
pub unsafe extern "C" fn ghm_region_weights_loss(
    weights: *const RegionWeights,
    loss: *mut f32,
) -> ghm_status {
    // SAFETY: as for `ghm_region_weights_tot`.
    unsafe { status(read_weights(weights, loss, |w| w.loss())) }
}

/// beta_k, the harmonizing weight `N / (density_k * n)` (capped by weight_cap; N is the
/// batch's valid elements for GHM-C, its label-weight sum for GHM-R) of an
/// element whose gradient norm falls in region `region` (0 for a region that was empty or
/// at or past `bins`); its gradient in the mean-reduced loss is
/// `loss_weight * beta_k / tot` times `p - t` (GHM-C) or `d / sqrt(d^2 + mu^2)` (GHM-R).
/// Errors: as `ghm_region_weights_tot`.
///
/// # Safety
/// Every non-NULL pointer is valid for the reads or writes of its type.
#[no_mangle]
pub unsafe extern "C" fn ghm_region_weight(
    weights: *const RegionWeights,
    region: usize,
    beta: *mut f32,
) -> ghm_status {
    // SAFETY: as for `ghm_region_weights_tot`.
    unsafe { status(read_weights(weights, beta, |w| Ok(w.region_weight(region)))) }
}

/// The body of the region-weights accessors: checks the pointers and the weights, writes
/// `get(weights)` to `out` unless it fails.
unsafe fn read_weights<T>(
    weights: *const RegionWeights,
    out: *mut T,
    get: impl FnOnce(&RegionWeights) -> Result<T, Error>,
) -> Result<(), Error> {
    disjoint(&[span(out, 1, false)?], &[span(weights, 1, false)?])?;
    // SAFETY: both pointers were checked above (non-NULL, aligned, in range, disjoint); the
    // caller guarantees they are valid.
    let w = unsafe { weights.read() };
    w.kind()?;
    let value = get(&w)?;
    // SAFETY: as above.
    unsafe { out.write(value) };
    Ok(())
}

/// Phase 3 of GHM-C: validates a chunk (as `ghm_c_loss`) and writes `out[n]` from committed
/// weights: by default (`output` NULL) the gradient. `out` may be exactly `logits`. Elements
/// of label weight 0 get 0 (written, or with `output->add` added, so they keep their value).
/// With GHM_OPT_GRADIENT_INPUT, `logits` holds `d = p - t` and `targets` is not read. Only
/// reads `*weights`, so threads may apply the same weights to disjoint chunks at once.
/// Errors: GHM_ERR_NULL, GHM_ERR_MISALIGNED, GHM_ERR_LENGTH, GHM_ERR_OVERLAP,
/// GHM_ERR_NOT_COMMITTED, GHM_ERR_WRONG_LOSS (weights of the other loss), GHM_ERR_OUTPUT, the
/// input errors of `ghm_c_loss` (GHM_ERR_NONFINITE, GHM_ERR_TARGET, GHM_ERR_PROBABILITY,
/// GHM_ERR_WEIGHT), and GHM_ERR_OVERFLOW if a value it would write overflows.
///
/// # Safety
/// Every non-NULL pointer is valid for the reads or writes of the length stated.
#[no_mangle]
pub unsafe extern "C" fn ghm_c_apply(
    weights: *const RegionWeights,
    logits: *const f32,
    targets: *const f32,
    label_weights: *const f32,
    n: usize,
    output: *const ghm_output,
    out: *mut f32,
) -> ghm_status {
    // SAFETY: the pointers go unchanged to the body, which checks each with `span` before any
    // access; this function's contract (# Safety) is the rest of what it needs.
    unsafe {
        status(apply::<Classification>(
            weights,
            logits,
            targets,
            label_weights,
            n,
            output,
            out,
            None,
        ))
    }
}

/// Phase 3 of GHM-R, as `ghm_c_apply`; `target` NULL means `pred` holds the residuals.
///
/// # Safety
/// Every non-NULL pointer is valid for the reads or writes of the length stated.
#[no_mangle]
pub unsafe extern "C" fn ghm_r_apply(
    weights: *const RegionWeights,
    pred: *const f32,
    target: *const f32,
    label_weights: *const f32,
    n: usize,
    output: *const ghm_output,
    out: *mut f32,
) -> ghm_status {
    // SAFETY: the pointers go unchanged to the body, which checks each with `span` before any
    // access; this function's contract (# Safety) is the rest of what it needs.
    unsafe {
        status(apply::<Regression>(
            weights,
            pred,
            target,
            label_weights,
            n,
            output,
            out,
            None,
        ))
    }
}

/// Phase 3 of GHM-C with class-index targets (layout as `ghm_c_accumulate_labels`): writes
/// the output at the layout's elements of `out`, which has the same layout as `logits` and
/// may not overlap it. Errors: as `ghm_c_apply`, GHM_ERR_LAYOUT, GHM_ERR_LENGTH, and
/// GHM_ERR_CONFIG (weights of a state with GHM_OPT_GRADIENT_INPUT).
///
/// # Safety
/// Every non-NULL pointer is valid for the reads or writes of the length stated; `logits`
/// and `out` span the layout's extent.
#[no_mangle]
pub unsafe extern "C" fn ghm_c_apply_labels(
    weights: *const RegionWeights,
    logits: *const f32,
    layout: *const ClassLayout,
    labels: *const i32,
    anchor_weights: *const f32,
    output: *const ghm_output,
    out: *mut f32,
) -> ghm_status {
    // SAFETY: the pointers go unchanged to the body, which checks each with `span` before any
    // access; this function's contract (# Safety) is the rest of what it needs.
    unsafe {
        status(apply_labels(
            weights,
            logits,
            layout,
            labels,
            anchor_weights,
            output,
            out,
            None,
        ))
    }
}

/// As `ghm_c_apply` (`out` NULL: nothing is written), and writes `*loss`, the chunk's share
/// of the batch's loss: the sum over its valid elements of each one's loss term times its
/// region's coefficient (mean reduction, times loss_weight; times `ghm_region_weights_tot`
/// for the summed loss). The shares of a batch's chunks add up to its loss, to rounding;
/// one chunk that is the whole batch gets the loss `ghm_c_loss` returns, bit for bit once
/// cast to float. With weights committed from counting stats (`ghm_stats_init_counting`)
/// this is how the batch's loss is had. `loss` is a caller-owned double, written only on
/// success; it may not overlap any other buffer.
/// Errors: as `ghm_c_apply`, and GHM_ERR_OVERFLOW if the share, rounded to float, is not
/// finite (then neither is the batch's loss).
///
/// # Safety
/// Every non-NULL pointer is valid for the reads or writes of the length stated.
#[no_mangle]
pub unsafe extern "C" fn ghm_c_apply_loss(
    weights: *const RegionWeights,
    logits: *const f32,
    targets: *const f32,
    label_weights: *const f32,
    n: usize,
    output: *const ghm_output,
    out: *mut f32,
    loss: *mut f64,
) -> ghm_status {
    // SAFETY: the pointers go unchanged to the body, which checks each with `span` before any
    // access; this function's contract (# Safety) is the rest of what it needs.
    unsafe {
        status(apply::<Classification>(
            weights,
            logits,
            targets,
            label_weights,
            n,
            output,
            out,
            Some(loss),
        ))
    }
}

/// As `ghm_r_apply` (`out` NULL: nothing is written), and writes `*loss`, the chunk's share
/// of the batch's loss, as `ghm_c_apply_loss` does: `loss` is a caller-owned double,
/// written only on success, that may not overlap any other buffer.
/// Errors: as `ghm_r_apply`, and GHM_ERR_OVERFLOW as for `ghm_c_apply_loss`.
///
/// # Safety
/// Every non-NULL pointer is valid for the reads or writes of the length stated.
#[no_mangle]
pub unsafe extern "C" fn ghm_r_apply_loss(
    weights: *const RegionWeights,
    pred: *const f32,
    target: *const f32,
    label_weights: *const f32,
    n: usize,
    output: *const ghm_output,
    out: *mut f32,
    loss: *mut f64,
) -> ghm_status {
    // SAFETY: the pointers go unchanged to the body, which checks each with `span` before any
    // access; this function's contract (# Safety) is the rest of what it needs.
    unsafe {
        status(apply::<Regression>(
            weights,
            pred,
            target,
            label_weights,
            n,
            output,
            out,
            Some(loss),
        ))
    }
}

/// As `ghm_c_apply_labels` (`out` NULL: nothing is written), with the chunk's loss written
/// to `*loss` as in `ghm_c_apply_loss`.
/// Errors: as `ghm_c_apply_labels`, and GHM_ERR_OVERFLOW as for `ghm_c_apply_loss`.
///
/// # Safety
/// Every non-NULL pointer is valid for the reads or writes of the length stated; `logits`
/// and `out` (if not NULL) span the layout's extent.
#[no_mangle]
pub unsafe extern "C" fn ghm_c_apply_labels_loss(
    weights: *const RegionWeights,
    logits: *const f32,
    layout: *const ClassLayout,
    labels: *const i32,
    anchor_weights: *const f32,
    output: *const ghm_output,
    out: *mut f32,
    loss: *mut f64,
) -> ghm_status {
    // SAFETY: the pointers go unchanged to the body, which checks each with `span` before any
    // access; this function's contract (# Safety) is the rest of what it needs.
    unsafe {
        status(apply_labels(
            weights,
            logits,
            layout,
            labels,
            anchor_weights,
            output,
            out,
            Some(loss),
        ))
    }
}

/// A byte range `[start, end)` of caller memory.
#[derive(Clone, Copy, PartialEq, Eq)]
struct Span {
    start: usize,
    end: usize,
}

impl Span {
    const EMPTY: Span = Span { start: 0, end: 0 };

    /// Empty ranges overlap nothing.
    fn overlaps(self, other: Span) -> bool {
        let both_nonempty = self.start < self.end && other.start < other.end;
        both_nonempty && self.start < other.end && other.start < self.end
    }
}

/// Checks a pointer to `count` values of `T`: NULL (allowed only when `count` is 0, or when
/// `optional`), alignment, and that the range fits the address space.
fn span<T>(p: *const T, count: usize, optional: bool) -> Result<Span, Error> {
    if p.is_null() {
        return if count == 0 || optional {
            Ok(Span::EMPTY)
        } else {
            Err(Error::Null)
        };
    }
    if !(p as usize).is_multiple_of(align_of::<T>()) {
        return Err(Error::Misaligned);
    }
    let bytes = count
        .checked_mul(size_of::<T>())
        .filter(|&b| b <= isize::MAX as usize)
        .ok_or(Error::Length)?;
    let start = p as usize;
    let end = start.checked_add(bytes).ok_or(Error::Length)?;
    Ok(Span { start, end })
}

/// Fails with [`Error::Overlap`] if any output overlaps any input or another output.
fn disjoint(outputs: &[Span], inputs: &[Span]) -> Result<(), Error> {
    // split_first rather than `&outputs[i + 1..]`: no bounds check, so no panic path.
    let mut rest = outputs;
    while let Some((o, tail)) = rest.split_first() {
        if inputs.iter().chain(tail).any(|s| o.overlaps(*s)) {
            return Err(Error::Overlap);
        }
        rest = tail;
    }
    Ok(())
}

unsafe fn init(kind: Kind, state: *mut State, config: *const Config) -> Result<(), Error> {
    // SAFETY: every pointer was checked by `span` (NULL only where allowed, aligned, in range,
    // outputs disjoint from inputs), and the caller guarantees each is valid for the length given
    // (this function's contract).
    unsafe {
        let s = span(state, 1, false)?;
        let c = span(config, 1, false)?;
        disjoint(&[s], &[c])?;
        let fresh = State::new(kind, &config.read())?;
        state.write(fresh);
        Ok(())
    }
}

/// The body of `ghm_c_loss` and `ghm_r_loss`.
unsafe fn run<L: Loss>(
    state: *mut State,
    a: *const f32,
    b: *const f32,
    w: *const f32,
    n: usize,
    loss: *mut f32,
    grad: *mut f32,
) -> Result<(), Error> {
    // SAFETY: every pointer was checked by `span` (NULL only where allowed, aligned, in range,
    // outputs disjoint from inputs), and the caller guarantees each is valid for the length given
    // (this function's contract).
    unsafe {
        let in_place = run_pointers(state, a, b, w, n, loss, grad, L::KIND)?;
        // the caller's state, updated in place only on success
        let ghm = InPlace::<L>::new(&mut *state)?;
        let b = targets(L::KIND, ghm.config(), b, n)?;
        let w = (!w.is_null()).then(|| slice(w, n));
        let value = if grad.is_null() {
            ghm.loss_values(slice(a, n), b, w)?
        } else if in_place {
            ghm.loss_grad_in_place_values(core::slice::from_raw_parts_mut(grad, n), b, w)?
        } else {
            ghm.loss_grad_values(slice(a, n), b, w, core::slice::from_raw_parts_mut(grad, n))?
        };
        loss.write(value);
        Ok(())
    }
}

/// The pointer rules of `ghm_c_loss` and `ghm_r_loss` (`b` optional for GHM-C, which may
/// not read it); whether `grad` is exactly `a` (in place). Its own frame, left before the
/// call runs (the Cortex-M stack figures).
#[inline(never)]
#[allow(clippy::too_many_arguments)]
fn run_pointers(
    state: *mut State,
    a: *const f32,
    b: *const f32,
    w: *const f32,
    n: usize,
    loss: *mut f32,
    grad: *mut f32,
    kind: Kind,
) -> Result<bool, Error> {
    let s_span = span(state, 1, false)?;
    let l_span = span(loss, 1, false)?;
    let a_span = span(a, n, false)?;
    let b_span = span(b, n, kind == Kind::Classification)?;
    let w_span = span(w, n, true)?;
    let g_span = span(grad, n, true)?;
    let in_place = !grad.is_null() && n > 0 && g_span == a_span;
    let grad_vs_inputs: &[Span] = if in_place {
        &[b_span, w_span]
    } else {
        &[a_span, b_span, w_span]
    };
    disjoint(&[g_span], grad_vs_inputs)?;
    disjoint(&[s_span, l_span], &[a_span, b_span, w_span, g_span])?;
    Ok(in_place)
}

/// The body of `ghm_c_loss_labels`.
unsafe fn loss_labels(
    state: *mut State,
    logits: *const f32,
    layout: &ClassLayout,
    labels: *const i32,
    w: *const f32,
    loss: *mut f32,
    grad: *mut f32,
) -> Result<(), Error> {
    // SAFETY: every pointer was checked by `span` (NULL only where allowed, aligned, in range,
    // outputs disjoint from inputs), and the caller guarantees each is valid for the length given
    // (this function's contract).
    unsafe {
        let n = labels_pointers(state, logits, layout, labels, w, loss, grad)?;
        // the caller's state, updated in place only on success
        let ghm = InPlace::<Classification>::new(&mut *state)?;
        let logits = slice(logits, n);
        let labels = slice(labels, layout.anchors);
        let w = (!w.is_null()).then(|| slice(w, layout.anchors));
        let grad = (!grad.is_null()).then(|| slice_mut(grad, n));
        let value = ghm.loss_labels(logits, *layout, labels, w, grad)?;
        loss.write(value);
        Ok(())
    }
}

/// The pointer rules of `ghm_c_loss_labels`; the layout's element count. Its own frame,
/// as [`run_pointers`].
#[inline(never)]
fn labels_pointers(
    state: *mut State,
    logits: *const f32,
    layout: &ClassLayout,
    labels: *const i32,
    w: *const f32,
    loss: *mut f32,
    grad: *mut f32,
) -> Result<usize, Error> {
    let n = layout.elements().ok_or(Error::Length)?;
    let inputs = [
        span(logits, n, false)?,
        span(labels, layout.anchors, false)?,
        span(w, layout.anchors, true)?,
    ];
    let g_span = span(grad, n, true)?;
    disjoint(
        &[span(state, 1, false)?, span(loss, 1, false)?, g_span],
        &inputs,
    )?;
    Ok(n)
}

/// The body of `ghm_c_accumulate` and `ghm_r_accumulate` (GHM-R: `b` NULL for residuals).
unsafe fn accumulate<L: Loss>(
    state: *const State,
    a: *const f32,
    b: *const f32,
    w: *const f32,
    n: usize,
    stats: *mut Stats,
) -> Result<(), Error> {
    // SAFETY: every pointer was checked by `span` (NULL only where allowed, aligned, in range,
    // outputs disjoint from inputs), and the caller guarantees each is valid for the length given
    // (this function's contract).
    unsafe {
        let inputs = [
            span(state, 1, false)?,
            span(a, n, false)?,
            span(b, n, true)?,
            span(w, n, true)?,
        ];
        disjoint(&[span(stats, 1, false)?], &inputs)?;
        let ghm = Ghm::<L>::from_state(state.read())?;
        let b = targets_or_residual(L::KIND, ghm.config(), b, n)?;
        let mut into = stats.read();
        let (a, w) = (slice(a, n), (!w.is_null()).then(|| slice(w, n)));
        ghm.accumulate_values(&mut into, a, b, w)?;
        stats.write(into);
        Ok(())
    }
}

/// The body of `ghm_c_accumulate_labels`.
unsafe fn accumulate_labels(
    state: *const State,
    logits: *const f32,
    layout: *const ClassLayout,
    labels: *const i32,
    w: *const f32,
    stats: *mut Stats,
) -> Result<(), Error> {
    // SAFETY: every pointer was checked by `span` (NULL only where allowed, aligned, in range,
    // outputs disjoint from inputs), and the caller guarantees each is valid for the length given
    // (this function's contract).
    unsafe {
        let l_span = span(layout, 1, false)?;
        let layout = layout.read();
        let extent = layout.extent().ok_or(Error::Length)?;
        let (cells, nl) = cells_and_labels(&layout)?;
        let inputs = [
            span(state, 1, false)?,
            l_span,
            span(logits, extent, false)?,
            span(labels, nl, false)?,
            span(w, cells, true)?,
        ];
        disjoint(&[span(stats, 1, false)?], &inputs)?;
        let ghm = Ghm::<Classification>::from_state(state.read())?;
        let mut into = stats.read();
        let w = (!w.is_null()).then(|| slice(w, cells));
        ghm.accumulate_labels(
            &mut into,
            slice(logits, extent),
            layout,
            slice(labels, nl),
            w,
        )?;
        stats.write(into);
        Ok(())
    }
}

/// The targets of an element-wise one-shot call (`ghm_c_loss`, `ghm_r_loss`): required,
/// except for GHM-C with GHM_OPT_GRADIENT_INPUT, which does not read them (NULL or not).
/// `b` has passed `span` for `n` floats, NULL allowed.
unsafe fn targets<'a>(
    kind: Kind,
    config: &Config,
    b: *const f32,
    n: usize,
) -> Result<Option<&'a [f32]>, Error> {
    if kind == Kind::Classification && config.options & OPT_GRADIENT_INPUT != 0 {
        return Ok(None);
    }
    if b.is_null() && n > 0 {
        return Err(Error::Null);
    }
    // SAFETY: checked by `span` (the caller's contract) and not NULL unless `n` is 0.
    Ok(Some(unsafe { slice(b, n) }))
}

/// The targets of an accumulate or apply: as [`targets`], and GHM-R's NULL targets mean the
/// first input holds the residuals.
unsafe fn targets_or_residual<'a>(
    kind: Kind,
    config: &Config,
    b: *const f32,
    n: usize,
) -> Result<Option<&'a [f32]>, Error> {
    if kind == Kind::Regression && b.is_null() {
        return Ok(None);
    }
    // SAFETY: the caller's contract.
    unsafe { targets(kind, config, b, n) }
}

/// The output spec of an apply (NULL: the gradient, overwriting).
unsafe fn output_spec(output: *const ghm_output) -> Result<Output, Error> {
    // SAFETY: every pointer was checked by `span` (NULL only where allowed, aligned, in range,
    // outputs disjoint from inputs), and the caller guarantees each is valid for the length given
    // (this function's contract).
    unsafe {
        if output.is_null() {
            return Ok(Output::GRADIENT);
        }
        span(output, 1, false)?;
        output.read().to_output()
    }
}

/// The body of `ghm_c_apply`, `ghm_r_apply` and, with `loss` (the caller's double, not
/// NULL-checked yet), their `_loss` forms, whose `out` may be NULL (GHM-R: `b` NULL for
/// residuals).
#[allow(clippy::too_many_arguments)]
unsafe fn apply<L: Loss>(
    weights: *const RegionWeights,
    a: *const f32,
    b: *const f32,
    w: *const f32,
    n: usize,
    output: *const ghm_output,
    out: *mut f32,
    loss: Option<*mut f64>,
) -> Result<(), Error> {
    // SAFETY: every pointer was checked by `span` (NULL only where allowed, aligned, in range,
    // outputs disjoint from inputs), and the caller guarantees each is valid for the length given
    // (this function's contract).
    unsafe {
        let a_span = span(a, n, false)?;
        let others = [
            span(weights, 1, false)?,
            span(b, n, true)?,
            span(w, n, true)?,
            span(output, 1, true)?,
        ];
        let o_span = span(out, n, loss.is_some())?;
        let l_span = loss_span(loss)?;
        let in_place = n > 0 && o_span == a_span;
        disjoint(&[o_span, l_span], &others)?;
        disjoint(&[l_span], &[a_span])?;
        if !in_place {
            disjoint(&[o_span], &[a_span])?;
        }
        let spec = output_spec(output)?;
        let weights = weights.read();
        weights.check(L::KIND)?;
        let w = (!w.is_null()).then(|| slice(w, n));
        let b = targets_or_residual(L::KIND, weights.config(), b, n)?;
        let share = if in_place {
            weights.apply_values_in_place(slice_mut(out, n), b, w, spec, loss.is_some())
        } else {
            let dest = dest(out, n, loss);
            weights.apply_values(slice(a, n), b, w, spec, dest)
        }?;
        if let Some(p) = loss {
            p.write(share);
        }
        Ok(())
    }
}

/// The body of `ghm_c_apply_labels` and, with `loss`, `ghm_c_apply_labels_loss`.
#[allow(clippy::too_many_arguments)]
unsafe fn apply_labels(
    weights: *const RegionWeights,
    logits: *const f32,
    layout: *const ClassLayout,
    labels: *const i32,
    w: *const f32,
    output: *const ghm_output,
    out: *mut f32,
    loss: Option<*mut f64>,
) -> Result<(), Error> {
    // SAFETY: every pointer was checked by `span` (NULL only where allowed, aligned, in range,
    // outputs disjoint from inputs), and the caller guarantees each is valid for the length given
    // (this function's contract).
    unsafe {
        let l_span = span(layout, 1, false)?;
        let layout = layout.read();
        let extent = layout.extent().ok_or(Error::Length)?;
        let (cells, nl) = cells_and_labels(&layout)?;
        let inputs = [
            span(weights, 1, false)?,
            l_span,
            span(logits, extent, false)?,
            span(labels, nl, false)?,
            span(w, cells, true)?,
            span(output, 1, true)?,
        ];
        let outputs = [span(out, extent, loss.is_some())?, loss_span(loss)?];
        disjoint(&outputs, &inputs)?;
        let spec = output_spec(output)?;
        let weights = weights.read();
        let w = (!w.is_null()).then(|| slice(w, cells));
        let labels = slice(labels, nl);
        let dest = dest(out, extent, loss);
        let share =
            weights.apply_class_index(slice(logits, extent), layout, labels, w, spec, dest)?;
        if let Some(p) = loss {
            p.write(share);
        }
        Ok(())
    }
}

/// The span of an apply's loss share, if it has one: a double, not NULL.
fn loss_span(loss: Option<*mut f64>) -> Result<Span, Error> {
    loss.map_or(Ok(Span::EMPTY), |p| span(p, 1, false))
}

/// Where an apply writes: `out[n]`, or with a loss share `out[n]` if `out` is not NULL.
/// `out` has passed `span` for `n` floats (NULL allowed only with a loss).
unsafe fn dest<'a>(out: *mut f32, n: usize, loss: Option<*mut f64>) -> Dest<'a> {
    // SAFETY: the caller's contract.
    unsafe {
        match loss {
            None => Dest::Output(slice_mut(out, n)),
            Some(_) => Dest::Share((!out.is_null()).then(|| slice_mut(out, n))),
        }
    }
}

/// The anchor count over all blocks of `layout` (the anchor weights' length) and its label
/// count; [`Error::Length`] if either overflows.
fn cells_and_labels(layout: &ClassLayout) -> Result<(usize, usize), Error> {
    layout
        .cells()
        .zip(layout.label_count())
        .ok_or(Error::Length)
}

/// A slice over checked caller memory; empty (and never dereferenced) when `n` is 0.
unsafe fn slice<'a, T>(p: *const T, n: usize) -> &'a [T] {
    // SAFETY: every pointer was checked by `span` (NULL only where allowed, aligned, in range,
    // outputs disjoint from inputs), and the caller guarantees each is valid for the length given
    // (this function's contract).
    unsafe {
        if n == 0 {
            &[]
        } else {
            core::slice::from_raw_parts(p, n)
        }
    }
}

/// A mutable slice over checked caller memory; empty when `n` is 0.
unsafe fn slice_mut<'a, T>(p: *mut T, n: usize) -> &'a mut [T] {
    // SAFETY: every pointer was checked by `span` (NULL only where allowed, aligned, in range,
    // outputs disjoint from inputs), and the caller guarantees each is valid for the length given
    // (this function's contract).
    unsafe {
        if n == 0 {
            &mut []
        } else {
            core::slice::from_raw_parts_mut(p, n)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every Rust error has the C constant of the same code and its own description.
    #[test]
    fn status_codes_match_errors_and_have_distinct_descriptions() {
        let constants = [
            GHM_ERR_NULL,
            GHM_ERR_MISALIGNED,
            GHM_ERR_LENGTH,
            GHM_ERR_OVERLAP,
            GHM_ERR_CONFIG,
            GHM_ERR_STATE,
            GHM_ERR_WRONG_LOSS,
            GHM_ERR_NONFINITE,
            GHM_ERR_TARGET,
            GHM_ERR_WEIGHT,
            GHM_ERR_OVERFLOW,
            GHM_ERR_INTERNAL,
            GHM_ERR_ISA,
            GHM_ERR_STATS_MISMATCH,
            GHM_ERR_NOT_COMMITTED,
            GHM_ERR_LAYOUT,
            GHM_ERR_OUTPUT,
            GHM_ERR_PROBABILITY,
            GHM_ERR_NO_LOSS,
        ];
        let codes: [i32; Error::ALL.len()] = Error::ALL.map(Error::code);
        assert_eq!(codes, constants);
        let text = |s| unsafe { core::ffi::CStr::from_ptr(ghm_status_str(s)) };
        for (i, &a) in constants.iter().enumerate() {
            assert_eq!(Error::from_code(a), Some(Error::ALL[i]));
            // One table: C's text is the Rust message, word for word.
            assert_eq!(text(a).to_str(), Ok(Error::ALL[i].message()));
            for &b in &constants[i + 1..] {
                assert_ne!(text(a), text(b));
            }
            assert_ne!(text(a), text(GHM_OK));
        }
        assert_eq!(text(GHM_OK).to_bytes(), b"ok");
        assert_eq!(text(-1).to_bytes(), b"unknown status");
        assert_eq!(text(1000).to_bytes(), b"unknown status");
    }
}
