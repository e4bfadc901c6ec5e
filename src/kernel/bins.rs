//! The unit regions over the gradient norm and the binning of a vector of norms: the
//! reference's edges, and the fast index that agrees with them exactly.

use super::vector::{Vector, MAX_LANES, VECTOR_PATHS};
use crate::config::MAX_BINS;

/// The unit regions `[e_k, e_{k+1})` of `[0, 1]`, with the reference's edges
/// `e_k = f32(k) / f32(M)`. (The reference's last edge, slightly above 1 for GHM-C and 1000
/// for GHM-R, lies above every gradient norm either loss can produce, so region `M - 1` is
/// simply everything at or above `e_{M-1}`.)
#[derive(Clone, Debug)]
pub(crate) struct Bins {
    m: usize,
    /// `M` and `M - 1` as f32, for the vector index.
    m_f32: f32,
    last_f32: f32,
    /// `e_k` for `k < M`, where edges are tabled (see [`EDGE_TABLE`]).
    edges: [f32; EDGE_TABLE],
}

/// The length of the edge table: the edges are tabled on targets with vector paths (the
/// condition under which `arch` builds them), where a lookup instead of a division in the
/// exactness check near edges was worth 6-8% of a GHM-C call with AVX-512 (`cargo bench
/// --bench ghm`, 2026-12-07); they are computed on one-lane targets, where the table would
/// be a quarter of a kilobyte in every pass's frame (the Cortex-M stack figures).
const EDGE_TABLE: usize = if VECTOR_PATHS { MAX_BINS } else { 0 };

/// Fractional parts this close to 1 (or exactly 0) may have been rounded across an integer
/// by `g * M`; the bound on that rounding is below 2^-18 for M <= 64.
const EDGE_SLACK: f32 = 1.0 - 1.0 / 65536.0;

impl Bins {
    /// `m` must be in `1..=MAX_BINS` (checked by `Config::validate`); larger values are
    /// clamped so that indexing stays in bounds regardless.
    pub(crate) fn new(m: u32) -> Bins {
        let m = (m as usize).clamp(1, MAX_BINS);
        let mut edges = [0.0; EDGE_TABLE];
        // (k < 64: through i32, whose conversion to f32 vectorises; from usize, each lane
        // went through a general register, in both passes of every call)
        for (k, e) in edges.iter_mut().enumerate().take(m) {
            *e = k as i32 as f32 / m as f32;
        }
        Bins {
            m,
            m_f32: m as f32,
            last_f32: (m - 1) as f32,
            edges,
        }
    }

    /// The lower edge `e_k = f32(k) / f32(M)` of region `k < M`: from the table where there
    /// is one, the same division otherwise.
    fn edge(&self, k: usize) -> f32 {
        match self.edges.get(k) {
            Some(&e) if k < self.m => e,
            _ => k as f32 / self.m_f32,
        }
    }

    /// Number of regions M.
    pub(crate) fn len(&self) -> usize {
        self.m
    }

    /// The lower edges of the second and of the last region, `(e_1, e_{M-1})`: a norm is in
    /// the first region below `e_1` and in the last at or above `e_{M-1}`. Both infinite for
    /// one region (whose first region is everything, and which has no other).
    pub(crate) fn inner_edges(&self) -> (f32, f32) {
        if self.m < 2 {
            return (f32::INFINITY, f32::INFINITY);
        }
        (self.edge(1), self.edge(self.m - 1))
    }

    /// The edges of the second region, `[e_1, e_2)`, for three regions or more; both
    /// infinite (an empty band) otherwise, where the second region is the last or absent.
    pub(crate) fn second_region(&self) -> (f32, f32) {
        if self.m < 3 {
            return (f32::INFINITY, f32::INFINITY);
        }
        (self.edge(1), self.edge(2))
    }

    /// The region of `g` by the reference's definition: the largest `k < M` with
    /// `e_k <= g` (0 for NaN, which validation rejects before it matters).
    pub(crate) fn index_exact(&self, g: f32) -> usize {
        let mut k = ((g * self.m_f32) as usize).min(self.m - 1);
        while k > 0 && g < self.edge(k) {
            k -= 1;
        }
        while k + 1 < self.m && g >= self.edge(k + 1) {
            k += 1;
        }
        k
    }

    /// The region of each lane, equal to [`index_exact`](Self::index_exact), as an f32
    /// whose truncation toward zero is the region (what [`Vector::indices`] and
    /// [`Vector::lookup`] take): `floor(g * M)` is exact except within a rounding of an
    /// edge, and those rare lanes are redone by comparisons. On vector paths the result is
    /// `min(g * M, M - 1)` itself, not its floor: the floor only decides whether a lane is
    /// near an edge (a branch, predicted), so that it is not in the chain of dependent
    /// operations from the gradient to its coefficient, which bounds the passes.
    #[inline(always)]
    pub(crate) unsafe fn index<V: Vector>(&self, g: V) -> V {
        // SAFETY: `V`'s target features are enabled (this function's contract), all the `Vector`
        // methods need.
        unsafe {
            if V::LANES == 1 {
                // one lane: the same test by branches (masks cost a single-precision FPU
                // about four instructions a comparison)
                let p = g.mul(V::splat(self.m_f32));
                // p >= 0 (g is a norm), so its floor is the truncation, one conversion
                // each way (a NaN norm, which validation keeps from mattering, gives region
                // 0 here as in `index_exact`, M - 1 on the vector paths)
                let p = p.first();
                let f = (p as i32) as f32;
                let frac = p - f;
                let near_edge = frac == 0.0 || EDGE_SLACK < frac;
                let k = if 0.0 < p && p < self.m_f32 && near_edge {
                    self.index_exact(g.first()) as f32
                } else if f < self.last_f32 {
                    f
                } else {
                    self.last_f32
                };
                return V::splat(k);
            }
            let m = V::splat(self.m_f32);
            let p = g.mul(m);
            let f = p.floor();
            let frac = p.sub(f);
            let inside = V::splat(0.0).lt(p).and(p.lt(m));
            let near_edge = frac.eq(V::splat(0.0)).or(V::splat(EDGE_SLACK).lt(frac));
            if !inside.and(near_edge).none() {
                let mut lanes = [0f32; MAX_LANES];
                g.store(lanes.as_mut_ptr());
                for v in lanes.iter_mut().take(V::LANES) {
                    *v = self.index_exact(*v) as f32;
                }
                return V::load(lanes.as_ptr());
            }
            p.min(V::splat(self.last_f32))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every f32 within `radius` ULP of every edge, for every supported M: the fast path
    /// agrees with the reference's comparisons. Away from edges `floor(g * M)` cannot be
    /// wrong, so this covers all of [0, 1].
    #[test]
    fn fast_region_index_matches_edge_comparisons_near_every_edge_for_every_m() {
        let radius = 2000i32;
        for m in 1..=MAX_BINS as u32 {
            let bins = Bins::new(m);
            for k in 0..=m as usize {
                let e = if k == m as usize { 1.0 } else { bins.edge(k) };
                for d in -radius..=radius {
                    let g = f32::from_bits((e.to_bits() as i32 + d).max(0) as u32);
                    if !(0.0..=1.0).contains(&g) {
                        continue;
                    }
                    let want = bins.index_exact(g);
                    let fast = unsafe { bins.index(g) } as usize;
                    assert_eq!(fast, want, "m={m} k={k} g={g:e}");
                    let by_def = (0..m as usize).rev().find(|&j| bins.edge(j) <= g).unwrap();
                    assert_eq!(want, by_def, "m={m} k={k} g={g:e}");
                }
            }
        }
    }
}
