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

use crate::config::{Config, Kind};
use crate::histogram::State;
use crate::loss::{Ghm, Loss};
use crate::status::Error;
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
/// A configuration field is out of range (bins not in 1..=GHM_MAX_BINS, momentum not in
/// [0, 1), loss_weight not finite, GHM-R mu not finite and > 0).
pub const GHM_ERR_CONFIG: ghm_status = 5;
/// The state was never initialised or is corrupted.
pub const GHM_ERR_STATE: ghm_status = 6;
/// The state belongs to the other loss (a GHM-C state passed to GHM-R or the reverse).
pub const GHM_ERR_WRONG_LOSS: ghm_status = 7;
/// NaN or infinity in a logit, prediction or target.
pub const GHM_ERR_NONFINITE: ghm_status = 8;
/// A GHM-C target is outside [0, 1].
pub const GHM_ERR_TARGET: ghm_status = 9;
/// A label weight is negative, NaN or infinite.
pub const GHM_ERR_WEIGHT: ghm_status = 10;
/// A result is not representable as a finite float: `pred - target` overflows, or the loss
/// or a harmonized weight does.
pub const GHM_ERR_OVERFLOW: ghm_status = 11;
/// An internal invariant failed (never expected).
pub const GHM_ERR_INTERNAL: ghm_status = 12;
/// The requested instruction-set path is not available on this CPU or in this build.
pub const GHM_ERR_ISA: ghm_status = 13;

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
    let s: &'static core::ffi::CStr = match status {
        GHM_OK => c"ok",
        GHM_ERR_NULL => c"a required pointer is NULL",
        GHM_ERR_MISALIGNED => c"a pointer is not aligned for its type",
        GHM_ERR_LENGTH => c"a length does not fit the address space",
        GHM_ERR_OVERLAP => c"an output overlaps an input or another output",
        GHM_ERR_CONFIG => c"a configuration field is out of range",
        GHM_ERR_STATE => c"the state is uninitialised or corrupted",
        GHM_ERR_WRONG_LOSS => c"the state belongs to the other loss",
        GHM_ERR_NONFINITE => c"NaN or infinity in an input",
        GHM_ERR_TARGET => c"a target is outside [0, 1]",
        GHM_ERR_WEIGHT => c"a label weight is negative, NaN or infinite",
        GHM_ERR_OVERFLOW => c"a result overflows float",
        GHM_ERR_INTERNAL => c"internal error",
        GHM_ERR_ISA => c"the requested instruction-set path is not available",
        _ => c"unknown status",
    };
    s.as_ptr()
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
    status(init(Kind::Classification, state, config))
}

/// Initialises `*state` for GHM-R with a copy of `*config` (EMA at 0). As `ghm_c_init`.
///
/// # Safety
/// As for `ghm_c_init`.
#[no_mangle]
pub unsafe extern "C" fn ghm_r_init(state: *mut State, config: *const Config) -> ghm_status {
    status(init(Kind::Regression, state, config))
}

/// GHM-C over `n` elements: the loss (mean reduction, times loss_weight) and, if `grad` is
/// not NULL, dL/dlogit; updates the EMA in `*state`.
///
/// Inputs (read only, not retained): `logits[n]` finite, `targets[n]` in [0, 1],
/// `label_weights[n]` finite and >= 0 or NULL for all valid (only `> 0` matters).
/// Outputs (written only on success): `*state`, `*loss`, `grad[n]` (may be exactly `logits`).
/// Array pointers may be NULL when `n` is 0; `n` = 0 gives loss 0 and leaves the state as it
/// was. Float pointers must be 4-byte aligned.
/// Errors: GHM_ERR_NULL, GHM_ERR_MISALIGNED, GHM_ERR_LENGTH, GHM_ERR_OVERLAP, GHM_ERR_STATE,
/// GHM_ERR_WRONG_LOSS, GHM_ERR_NONFINITE, GHM_ERR_TARGET, GHM_ERR_WEIGHT, GHM_ERR_OVERFLOW.
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

/// GHM-R over `n` elements: the loss (mean reduction, times loss_weight) and, if `grad` is
/// not NULL, dL/dpred; updates the EMA in `*state`.
///
/// Inputs (read only, not retained): `pred[n]` and `target[n]` finite with `pred - target`
/// finite, `label_weights[n]` finite and >= 0 or NULL for all 1 (their sum normalises).
/// Outputs (written only on success): `*state`, `*loss`, `grad[n]` (may be exactly `pred`).
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

/// A byte range `[start, end)` of caller memory.
#[derive(Clone, Copy, PartialEq, Eq)]
struct Span {
    start: usize,
    end: usize,
}

impl Span {
    const EMPTY: Span = Span { start: 0, end: 0 };

    fn overlaps(self, other: Span) -> bool {
        self.start < other.end && other.start < self.end
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
    if (p as usize) % align_of::<T>() != 0 {
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
    for (i, o) in outputs.iter().enumerate() {
        let clash = inputs
            .iter()
            .chain(&outputs[i + 1..])
            .any(|s| o.overlaps(*s));
        if clash {
            return Err(Error::Overlap);
        }
    }
    Ok(())
}

unsafe fn init(kind: Kind, state: *mut State, config: *const Config) -> Result<(), Error> {
    let s = span(state, 1, false)?;
    let c = span(config, 1, false)?;
    disjoint(&[s], &[c])?;
    let fresh = State::new(kind, &config.read())?;
    state.write(fresh);
    Ok(())
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
    let s_span = span(state, 1, false)?;
    let l_span = span(loss, 1, false)?;
    let a_span = span(a, n, false)?;
    let b_span = span(b, n, false)?;
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

    let mut ghm = Ghm::<L>::from_state(state.read())?;
    let b = slice(b, n);
    let w = (!w.is_null()).then(|| slice(w, n));
    let value = if grad.is_null() {
        ghm.loss(slice(a, n), b, w)?
    } else if in_place {
        ghm.loss_grad_in_place(core::slice::from_raw_parts_mut(grad, n), b, w)?
    } else {
        ghm.loss_grad(slice(a, n), b, w, core::slice::from_raw_parts_mut(grad, n))?
    };
    state.write(*ghm.state());
    loss.write(value);
    Ok(())
}

/// A slice over checked caller memory; empty (and never dereferenced) when `n` is 0.
unsafe fn slice<'a>(p: *const f32, n: usize) -> &'a [f32] {
    if n == 0 {
        &[]
    } else {
        core::slice::from_raw_parts(p, n)
    }
}
