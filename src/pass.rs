//! The passes over buffers, written once for every [`Vector`] instantiation.
//!
//! - [`accumulate`]: read-only. Validates every element, bins its gradient norm and adds the
//!   valid elements' counts, loss terms and label weights to a [`Tally`]. It stops at the
//!   first invalid element and reports its specific error.
//! - [`apply`]: writes `grad_i = coef[k_i] * dir_i` (0 for elements whose label weight is 0).
//!   Its inputs must have passed `accumulate`.
//!
//! Both work on raw pointers so that the gradient may be the first input buffer itself (in
//! place); the safe wrappers in `arch/` establish the pointers' validity. The tail shorter
//! than a vector goes through the same vector code on a padded copy.

use crate::histogram::{Bins, Tally, MAX_BINS};
use crate::math::{full, Model};
use crate::status::Error;
use crate::vector::Vector;

/// Element-wise inputs: `a` (logits or predictions), `b` (targets), optional label weights
/// `w` (null: every element valid with weight 1), all of length `n`.
#[derive(Clone, Copy)]
pub(crate) struct Inputs {
    pub a: *const f32,
    pub b: *const f32,
    pub w: *const f32,
    pub n: usize,
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

/// Loads `V::LANES` elements starting at `i`, padding past `n` with a valid, zero-weight
/// element.
#[inline(always)]
unsafe fn load<V: Vector>(x: &Inputs, i: usize) -> (V, V, V) {
    if i + V::LANES <= x.n {
        let w = if x.w.is_null() {
            V::splat(1.0)
        } else {
            V::load(x.w.add(i))
        };
        return (V::load(x.a.add(i)), V::load(x.b.add(i)), w);
    }
    let (mut a, mut b, mut w) = ([0f32; 16], [0f32; 16], [0f32; 16]);
    for j in 0..x.n - i {
        a[j] = *x.a.add(i + j);
        b[j] = *x.b.add(i + j);
        w[j] = if x.w.is_null() { 1.0 } else { *x.w.add(i + j) };
    }
    (
        V::load(a.as_ptr()),
        V::load(b.as_ptr()),
        V::load(w.as_ptr()),
    )
}

/// All-true lanes where a label weight is acceptable: finite and not negative.
#[inline(always)]
unsafe fn weight_ok<V: Vector>(w: V) -> V {
    V::splat(0.0).le(w).and(w.lt(V::splat(f32::INFINITY)))
}

/// The first invalid element at or after `i` (within one vector), as a specific error.
#[cold]
unsafe fn first_error<M: Model>(model: &M, x: &Inputs, i: usize, lanes: usize) -> Error {
    for j in i..(i + lanes).min(x.n) {
        let (a, b) = (*x.a.add(j), *x.b.add(j));
        if model.valid::<f32>(a, b).to_bits() == 0 {
            return model.error(a, b);
        }
        if !x.w.is_null() && weight_ok::<f32>(*x.w.add(j)).to_bits() == 0 {
            return Error::Weight;
        }
    }
    Error::Internal
}

/// The read-only pass; adds to `tally` only on success.
///
/// # Safety
/// `x.a`, `x.b` (and `x.w` unless null) are valid for reads of `x.n` f32; the target
/// features `V` needs are enabled.
#[inline(always)]
pub(crate) unsafe fn accumulate<V: Vector, M: Model, const T: usize>(
    model: &M,
    bins: &Bins,
    x: &Inputs,
    tables: &mut [LaneTable; T],
    tally: &mut Tally,
) -> Result<(), Error> {
    let mut weight = [0.0f64; T];
    let mut i = 0;
    while i < x.n {
        let (a, b, w) = load::<V>(x, i);
        let ok = model.valid(a, b).and(weight_ok(w));
        if ok.bitmask() != full::<V>() {
            return Err(first_error(model, x, i, V::LANES));
        }
        let (dir, term) = model.forward(a, b);
        let k = bins.index(dir.abs());
        let valid = V::splat(0.0).lt(w).bitmask();
        let (mut idx, mut terms, mut ws) = ([0u8; 16], [0f32; 16], [0f32; 16]);
        k.indices(&mut idx);
        term.store(terms.as_mut_ptr());
        w.store(ws.as_mut_ptr());
        for j in 0..V::LANES {
            if valid >> j & 1 != 0 {
                let t = &mut tables[j % T];
                let k = usize::from(idx[j]) & (MAX_BINS - 1);
                t.count[k] += 1;
                t.sum[k] += f64::from(terms[j]);
                weight[j % T] += f64::from(ws[j]);
            }
        }
        i += V::LANES;
    }
    for t in tables.iter() {
        for k in 0..MAX_BINS {
            tally.count[k] += t.count[k];
            tally.sum[k] += t.sum[k];
        }
    }
    tally.weight += weight.iter().sum::<f64>();
    Ok(())
}

/// The gradient pass: `out[i] = coef[k_i] * dir_i`, 0 where the label weight is 0.
///
/// # Safety
/// As for [`accumulate`], and `out` is valid for writes of `x.n` f32; `out` may equal `x.a`
/// but must not otherwise overlap the inputs. The inputs have passed [`accumulate`].
#[inline(always)]
pub(crate) unsafe fn apply<V: Vector, M: Model>(
    model: &M,
    bins: &Bins,
    coef: &[f32; MAX_BINS],
    x: &Inputs,
    out: *mut f32,
) {
    let mut i = 0;
    while i < x.n {
        let (a, b, w) = load::<V>(x, i);
        let dir = model.direction(a, b);
        let c = bins.index(dir.abs()).lookup(coef);
        let g = V::select(V::splat(0.0).lt(w), c.mul(dir), V::splat(0.0));
        if i + V::LANES <= x.n {
            g.store(out.add(i));
        } else {
            let mut lanes = [0f32; 16];
            g.store(lanes.as_mut_ptr());
            for (j, v) in lanes.iter().enumerate().take(x.n - i) {
                *out.add(i + j) = *v;
            }
        }
        i += V::LANES;
    }
}
