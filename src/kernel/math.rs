//! The per-element math, written once for every [`Vector`] instantiation.
//!
//! Each loss is a [`Model`]: from the two inputs of an element it yields the gradient
//! direction `dir` (the derivative of the unweighted term; its absolute value is the
//! gradient norm `g` that is binned) and the term itself. The passes in `passes.rs` combine
//! these with the harmonizing weights.
//!
//! Accuracy of the vectorised functions, measured over every f32 in the range used by
//! `tests/ulp_exhaustive.rs` (which asserts these bounds) for each ISA path: the scalar
//! path and the fused (FMA) AVX2 path have the same maxima, though not at the same
//! arguments; the NEON path (also fused) showed the same maxima on every 61st f32 (run
//! under qemu with `GHM_ULP_STRIDE=61`).
//! - [`exp_nonpos`] on `[-87.33, 0]`: at most 1 ULP from `libm::expf`; below -87.33 it
//!   returns 0 where libm returns a subnormal (absolute error < 1.2e-38).
//! - [`log1p_unit`] on `[0, 1]`: at most 2 ULP from `libm::log1pf`.
//! - the sigmoid in [`Bce`]: at most 2 ULP from the correctly rounded value wherever the
//!   result is normal (`x >= -87.33`).

use super::bins::Bins;
use super::vector::Vector;
use crate::error::Error;

const LOG2_E: f32 = core::f32::consts::LOG2_E;
/// ln 2 split so that `n * LN2_HI` is exact for |n| < 2^15.
const LN2_HI: f32 = 0.693_359_4;
const LN2_LO: f32 = -2.121_944_4e-4;
/// Below this, e^x is under f32::MIN_POSITIVE and [`exp_nonpos`] returns 0.
const EXP_MIN_ARG: f32 = -87.33;
/// exp(r) = 1 + r + r^2 (Q0 + Q1 r + ...) on |r| <= ln2/2 (least-squares fit, relative error
/// below 1 ULP in f32 arithmetic).
const EXP_Q: [f32; 5] = [
    0.5,
    0.166_665_78,
    0.041_666_854,
    0.008_363_141,
    0.001_390_130_3,
];
/// log1p(e) = e (P0 + P1 e + ...) on [0, 1] (least-squares fit in relative error).
const LOG1P_P: [f32; 10] = [
    1.0,
    -0.499_999_02,
    0.333_299_64,
    -0.249_541_34,
    0.196_759_4,
    -0.153_055_97,
    0.106_036_6,
    -0.056_959_59,
    0.019_851_493,
    -0.003_244_032,
];

/// ln(1 + u) = u (P0 + P1 u + ...) on [sqrt(1/2) - 1, sqrt(2) - 1] (least-squares fit in
/// relative error).
const LOG1P_MID: [f32; 9] = [
    1.0,
    -0.499_999_88,
    0.333_341_87,
    -0.250_020_74,
    0.199_568_33,
    -0.165_623_92,
    0.149_522_65,
    -0.143_668_5,
    0.087_223_716,
];
const LN2: f32 = core::f32::consts::LN_2;

/// `c[0] + x (c[1] + x (c[2] + ...))` for a coefficient array `c`, given its indices from
/// the last down to 0: straight-line code (a loop over the coefficients is not unrolled at
/// opt-level "s", where it cost the Cortex-M about a fifth of its instructions).
macro_rules! horner {
    ($x:expr, $c:expr; $last:literal $($i:literal)*) => {{
        const { assert!($last + 1 == $c.len()) };
        let x = $x;
        let acc = V::splat($c[$last]);
        $(let acc = acc.mul_add(x, V::splat($c[$i]));)*
        acc
    }};
}

/// e^x for x <= 0 (x must not be NaN).
#[inline(always)]
pub(crate) unsafe fn exp_nonpos<V: Vector>(x: V) -> V {
    // SAFETY: `V`'s target features are enabled (this function's contract), all the `Vector`
    // methods need.
    unsafe {
        // Lanes below EXP_MIN_ARG are not clamped first (a step in the chain of dependent
        // operations that bounds the passes): whatever they compute, even NaN, the select
        // at the end replaces.
        let n = x.mul_add(V::splat(LOG2_E), V::splat(0.5));
        let n = if V::LANES == 1 {
            V::splat(floor_in_i32(n.first()))
        } else {
            n.floor()
        };
        let r = n.mul_add(V::splat(-LN2_HI), x);
        let r = n.mul_add(V::splat(-LN2_LO), r);
        let y = if V::LANES == 1 {
            // Horner's rule, the fewest operations and registers (a single-precision FPU
            // gains nothing from a shorter chain)
            let q = horner!(r, EXP_Q; 4 3 2 1 0);
            r.mul(r).mul_add(q, r).add(V::splat(1.0)).mul(V::pow2(n))
        } else {
            // Estrin's scheme: a shorter chain of dependent operations than Horner's rule
            // (the passes' bound), within the same 1-ULP accuracy on every f32 in range
            // (`tests/ulp_exhaustive.rs`); and (r^2 q + r) 2^n + 2^n, the 1 added in the
            // same fused step as the scaling
            let r2 = r.mul(r);
            let q01 = r.mul_add(V::splat(EXP_Q[1]), V::splat(EXP_Q[0]));
            let q23 = r.mul_add(V::splat(EXP_Q[3]), V::splat(EXP_Q[2]));
            let q03 = r2.mul_add(q23, q01);
            let q = r2.mul(r2).mul_add(V::splat(EXP_Q[4]), q03);
            let s = V::pow2(n);
            r2.mul_add(q, r).mul_add(s, s)
        };
        V::select(x.lt(V::splat(EXP_MIN_ARG)), V::splat(0.0), y)
    }
}

/// `floor(x)` for `|x| < 2^31` (x not NaN) by a truncation and a correction: two
/// conversions, a comparison and a subtraction on a single-precision FPU, where the general
/// floor also tests for |x| >= 2^23 and integral x. Its bits are floor's except that -0.0
/// gives +0.0; beyond the range the truncation saturates. For the one-lane paths, where the
/// argument's range is known.
#[inline(always)]
pub(crate) fn floor_in_i32(x: f32) -> f32 {
    let t = (x as i32) as f32;
    if t > x {
        t - 1.0
    } else {
        t
    }
}

/// ln(1 + e) for e in [0, 1]. (Horner's rule on every path: Estrin's scheme, which
/// shortens the chain, cost this polynomial its 2-ULP bound on the vector paths, and the
/// log is not on the chain from the logit to the gradient.)
#[inline(always)]
pub(crate) unsafe fn log1p_unit<V: Vector>(e: V) -> V {
    // SAFETY: `V`'s target features are enabled (this function's contract), all the `Vector`
    // methods need.
    unsafe { e.mul(horner!(e, LOG1P_P; 9 8 7 6 5 4 3 2 1 0)) }
}

/// ln(p) for p in [0, 1] (about -104 for 0, which every caller clamps).
#[inline(always)]
pub(crate) unsafe fn ln_unit<V: Vector>(p: V) -> V {
    // SAFETY: `V`'s target features are enabled (this function's contract), all the `Vector`
    // methods need.
    unsafe {
        let tiny = p.lt(V::splat(f32::MIN_POSITIVE));
        let (m, e) = V::select(tiny, p.mul(V::splat(8_388_608.0)), p).split_exp();
        let e = V::select(tiny, e.sub(V::splat(23.0)), e);
        let u = m.sub(V::splat(1.0));
        e.mul_add(
            V::splat(LN2),
            u.mul(horner!(u, LOG1P_MID; 8 7 6 5 4 3 2 1 0)),
        )
    }
}

/// What a loss computes per element.
pub(crate) trait Model: Copy {
    /// All-true lanes where the element's inputs are acceptable.
    unsafe fn valid<V: Vector>(&self, a: V, b: V) -> V;
    /// [`valid`](Model::valid) for targets that a layout makes (class-index targets 0 and
    /// 1), which are always acceptable: the test of `a` alone.
    unsafe fn valid_input<V: Vector>(&self, a: V) -> V;
    /// The specific error for one element that [`valid`](Model::valid) rejects.
    fn error(&self, a: f32, b: f32) -> Error;
    /// `(dir, term)`.
    unsafe fn forward<V: Vector>(&self, a: V, b: V) -> (V, V);
    /// `dir` alone (cheaper where the term needs more work).
    unsafe fn direction<V: Vector>(&self, a: V, b: V) -> V;

    /// The thresholds [`ends`](Model::ends) compares with, for these regions.
    fn ends_for(&self, bins: &Bins) -> Ends;
    /// For valid inputs: the lanes certainly in the first region, in the second and in the
    /// last, by a test cheaper than binning the gradient norm. Conservative: a lane in a
    /// mask is in that region, a lane in none may still be in any.
    unsafe fn ends<V: Vector>(&self, a: V, b: V, e: &Ends) -> EndMasks<V>;
    /// A per-element magnitude whose maximum `m` over the valid elements bounds every term:
    /// `term <= term_bound(m)`.
    unsafe fn magnitude<V: Vector>(&self, a: V, b: V) -> V;
    fn term_bound(&self, m: f32) -> f64;
    /// Whether the first pass tallies the positives P (see [`positive`](Model::positive)).
    fn counts_positives(&self) -> bool;
    /// The element's share of the batch's positives P (its target).
    unsafe fn positive<V: Vector>(&self, a: V, b: V) -> V;
}

/// The thresholds of [`Model::ends`] on the model's own statistic `s` of an element: the
/// first region where `s < lo`, the second where `second.0 <= s < second.1`, the last
/// where `hi <= s`; `lo <= second.0 <= second.1 <= hi`, so an element is undecided exactly
/// in `[lo, second.0)` or `[second.1, hi)`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Ends {
    lo: f32,
    hi: f32,
    second: (f32, f32),
}

/// The masks of [`Model::ends`]: lanes certainly in the first and in the last region, and
/// lanes it cannot place. Where no lane is undecided, the lanes in neither the first nor
/// the last region are in the second (none with fewer than three regions).
pub(crate) struct EndMasks<V> {
    pub first: V,
    pub last: V,
    pub undecided: V,
}

impl Ends {
    /// The masks for statistic `s` (finite: the inputs passed validation); the lanes
    /// outside `eligible` are undecided. Four comparisons: each band's two masks nest, so
    /// "in one but not the other" is a select.
    #[inline(always)]
    unsafe fn masks<V: Vector>(&self, s: V, eligible: V) -> EndMasks<V> {
        // SAFETY: `V`'s target features are enabled (this function's contract).
        unsafe {
            let (a, b) = self.second;
            if V::LANES == 1 {
                // one lane: branches, most elements leaving at the first (compare-to-mask
                // code costs a single-precision FPU about four instructions a comparison)
                let (x, ok) = (s.first(), eligible.first().to_bits() != 0);
                let (first, last, undecided) = if !ok {
                    (false, false, true)
                } else if x < self.lo {
                    (true, false, false)
                } else if self.hi <= x {
                    (false, true, false)
                } else {
                    (false, false, !(a <= x && x < b))
                };
                return EndMasks {
                    first: mask_if(first),
                    last: mask_if(last),
                    undecided: mask_if(undecided),
                };
            }
            let none = V::splat(0.0);
            let first = s.lt(V::splat(self.lo));
            let last = V::splat(self.hi).le(s);
            let below_second = V::select(first, none, s.lt(V::splat(a)));
            let above_second = V::select(last, none, V::splat(b).le(s));
            let undecided = below_second.or(above_second);
            EndMasks {
                first,
                last,
                undecided: V::select(eligible, undecided, none.le(none)),
            }
        }
    }

    /// The second region's band for `(lo, hi)` and the band `(a, b)` (infinite where there
    /// is none): empty at `hi` with fewer than three regions (then everything in `[lo, hi)`
    /// is undecided), and kept within `[lo, hi]`.
    fn with_second(lo: f32, hi: f32, (a, b): (f32, f32)) -> Ends {
        let second = if a.is_finite() {
            (a.max(lo), b.min(hi).max(a.max(lo)))
        } else {
            (hi, hi)
        };
        Ends { lo, hi, second }
    }

    /// No element is placed: every one is binned.
    fn undecided() -> Ends {
        Ends::with_second(
            f32::NEG_INFINITY,
            f32::INFINITY,
            (f32::INFINITY, f32::INFINITY),
        )
    }

    /// Exact thresholds for a statistic that is the gradient norm itself.
    fn exact(bins: &Bins) -> Ends {
        let (lo, hi) = bins.inner_edges();
        Ends::with_second(lo, hi, bins.second_region())
    }

    /// Thresholds `map(edge)` moved inwards by `margin` (`lo` down, `hi` up, the second
    /// region's band inwards at both ends) for a statistic that determines the gradient
    /// norm through `map`, increasing, which the computed norm follows to within far less
    /// than the margin. Infinite edges (one region: everything is in the first, nothing
    /// counts as the last) stay infinite.
    fn mapped(bins: &Bins, map: impl Fn(f32) -> f32, margin: impl Fn(f32) -> f32) -> Ends {
        let (e1, e_last) = bins.inner_edges();
        if e1.is_infinite() {
            return Ends::with_second(e1, e_last, (f32::INFINITY, f32::INFINITY));
        }
        let (a, b) = bins.second_region();
        // the edges mapped in one loop (one inlined copy of `map`), each moved inwards:
        // down where it ends a region (`e_1` for the first, `e_2` for the second), up where
        // it starts one (`e_{M-1}` the last, `e_1` the second)
        let mut t = [e1, e_last, a, b];
        for (k, v) in t.iter_mut().enumerate() {
            if v.is_finite() {
                let m = map(*v);
                *v = if k % 3 == 0 {
                    m - margin(m)
                } else {
                    m + margin(m)
                };
            }
        }
        Ends::with_second(t[0], t[1], (t[2], t[3]))
    }
}

/// How far [`Ends`] on a logit stay from the exact threshold: the sigmoid's slope there is at
/// least `(1/64)(63/64)`, so the gradient norm is at least 1.5e-5 from the edge, against
/// computation errors below 1e-6.
const LOGIT_MARGIN: f32 = 1e-3;
/// The same, relative, for GHM-R's residual: the norm `|d| / sqrt(d^2 + mu^2)` moves by at
/// least `3e-5` of itself over this relative change of `|d|` near any edge.
const RESIDUAL_MARGIN: f32 = 1e-3;
/// 2^-100: GHM-R's thresholds for a smaller mu (at least `mu / 64`, less the margin) would
/// not stay far enough above f32's subnormals for [`RESIDUAL_MARGIN`] to hold.
const ENDS_MIN_MU: f32 = 7.888_609e-31;

/// GHM-C's element: sigmoid binary cross-entropy on logit `a` with target `b` in [0, 1].
/// `dir = sigmoid(a) - b`, `term = max(a, 0) - a b + ln(1 + e^-|a|)`.
///
/// With `probabilities`, `a` is already `p = sigmoid(logit)` (as Darknet holds it): the term
/// is PyTorch's `binary_cross_entropy`, `-(b max(ln p, -100) + (1 - b) max(ln(1 - p), -100))`,
/// and `dir = p - b` is still the derivative with respect to the logit.
///
/// With `gradient`, `a` is the gradient itself, `d = p - t` in [-1, 1], and `b` is not used:
/// `dir = d` and `term = -max(ln(1 - |d|), -100)`, the cross-entropy of a binary target.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Bce {
    pub probabilities: bool,
    pub gradient: bool,
    /// Tally the positives P (`GHM_OPT_NORM_BY_POSITIVES`); off, the pass skips that sum.
    pub positives: bool,
}

/// PyTorch's floor on the logs of `binary_cross_entropy`.
const LOG_FLOOR: f32 = -100.0;

impl Bce {
    #[inline(always)]
    unsafe fn bce_on_probability<V: Vector>(p: V, t: V) -> V {
        // SAFETY: `V`'s target features are enabled (this function's contract), all the `Vector`
        // methods need.
        unsafe {
            let one = V::splat(1.0);
            let lp = ln_unit(p).max(V::splat(LOG_FLOOR));
            let lq = ln_unit(one.sub(p)).max(V::splat(LOG_FLOOR));
            V::splat(0.0).sub(t.mul_add(lp, one.sub(t).mul(lq)))
        }
    }

    /// `(e^-|x|, sigmoid(x))`, stable for every finite x.
    #[inline(always)]
    unsafe fn exp_sigmoid<V: Vector>(x: V) -> (V, V) {
        // SAFETY: `V`'s target features are enabled (this function's contract), all the `Vector`
        // methods need.
        unsafe {
            // -|x| by setting the sign bit: one bitwise operation where a subtraction would
            // lengthen the chain of dependent operations that bounds the passes (the same
            // value, but for the sign of a zero, which the exponential ignores)
            let e = exp_nonpos(x.or(V::splat(-0.0)));
            let num = V::select(V::splat(0.0).le(x), V::splat(1.0), e);
            (e, num.div(e.add(V::splat(1.0))))
        }
    }
}

/// All-true lanes where `v` is in `[0, 1]`. (A function, not a closure: a closure does
/// not inherit the `arch/` entry point's target features, and when LLVM leaves one out of
/// line, every vector operation in it becomes a call; `scripts/nostd-symbols.sh` checks
/// that none is left.)
#[inline(always)]
unsafe fn in_unit<V: Vector>(v: V) -> V {
    // SAFETY: `V`'s target features are enabled (this function's contract).
    unsafe { V::splat(0.0).le(v).and(v.le(V::splat(1.0))) }
}

impl Model for Bce {
    #[inline(always)]
    unsafe fn valid<V: Vector>(&self, x: V, t: V) -> V {
        // SAFETY: `V`'s target features are enabled (this function's contract), all the `Vector`
        // methods need.
        unsafe {
            let ok = self.valid_input(x);
            if self.gradient {
                ok
            } else {
                ok.and(in_unit(t))
            }
        }
    }

    #[inline(always)]
    unsafe fn valid_input<V: Vector>(&self, x: V) -> V {
        // SAFETY: `V`'s target features are enabled (this function's contract), all the `Vector`
        // methods need.
        unsafe {
            if self.gradient {
                x.abs().le(V::splat(1.0))
            } else if self.probabilities {
                in_unit(x)
            } else {
                x.abs().lt(V::splat(f32::INFINITY))
            }
        }
    }

    fn error(&self, x: f32, t: f32) -> Error {
        if !x.is_finite() {
            Error::NonFinite
        } else if self.gradient {
            if x.abs() <= 1.0 {
                Error::Internal
            } else {
                Error::Probability
            }
        } else if self.probabilities && !(0.0..=1.0).contains(&x) {
            Error::Probability
        } else if !(0.0..=1.0).contains(&t) {
            Error::Target
        } else {
            Error::Internal
        }
    }

    #[inline(always)]
    unsafe fn forward<V: Vector>(&self, x: V, t: V) -> (V, V) {
        // SAFETY: `V`'s target features are enabled (this function's contract), all the `Vector`
        // methods need.
        unsafe {
            if self.gradient {
                let lq = ln_unit(V::splat(1.0).sub(x.abs())).max(V::splat(LOG_FLOOR));
                return (x, V::splat(0.0).sub(lq));
            }
            if self.probabilities {
                return (x.sub(t), Self::bce_on_probability(x, t));
            }
            let (e, p) = Self::exp_sigmoid(x);
            // max(x, 0) - x t, as a product of non-negative factors: no cancellation
            let zero = V::splat(0.0);
            let positive = zero.le(x);
            let factor = V::select(positive, V::splat(1.0).sub(t), t);
            let term = x.abs().mul(factor);
            (p.sub(t), term.add(log1p_unit(e)))
        }
    }

    #[inline(always)]
    unsafe fn direction<V: Vector>(&self, x: V, t: V) -> V {
        // SAFETY: `V`'s target features are enabled (this function's contract), all the `Vector`
        // methods need.
        unsafe {
            if self.gradient {
                return x;
            }
            if self.probabilities {
                return x.sub(t);
            }
            Self::exp_sigmoid(x).1.sub(t)
        }
    }

    fn ends_for(&self, bins: &Bins) -> Ends {
        if self.gradient || self.probabilities {
            return Ends::exact(bins);
        }
        // g = sigmoid(s) with s = x for target 0 and s = -x for target 1: the edge e is at
        // s = ln(e / (1 - e)).
        // SAFETY: the portable instantiation needs no target feature.
        let logit = |e: f32| unsafe { ln_unit(e) - ln_unit(1.0 - e) };
        Ends::mapped(bins, logit, |_| LOGIT_MARGIN)
    }

    #[inline(always)]
    unsafe fn ends<V: Vector>(&self, x: V, t: V, e: &Ends) -> EndMasks<V> {
        // SAFETY: `V`'s target features are enabled (this function's contract), all the `Vector`
        // methods need.
        unsafe {
            let all = V::splat(0.0).le(V::splat(0.0));
            if self.gradient || self.probabilities {
                return e.masks(self.direction(x, t).abs(), all);
            }
            // only binary targets: a soft target's norm is not a function of s alone
            let one = t.eq(V::splat(1.0));
            let binary = one.or(t.eq(V::splat(0.0)));
            let s = V::select(one, V::splat(0.0).sub(x), x);
            e.masks(s, binary)
        }
    }

    #[inline(always)]
    unsafe fn magnitude<V: Vector>(&self, x: V, _t: V) -> V {
        // SAFETY: `V`'s target features are enabled (this function's contract).
        unsafe {
            if self.gradient || self.probabilities {
                V::splat(0.0)
            } else {
                x.abs()
            }
        }
    }

    fn term_bound(&self, m: f32) -> f64 {
        // logits: |x| (1 - t or t) + ln(1 + e^-|x|) <= |x| + ln 2; otherwise the logs'
        // floor: at most -LOG_FLOOR
        f64::from(m) + 1.0 - f64::from(LOG_FLOOR)
    }

    fn counts_positives(&self) -> bool {
        self.positives
    }

    #[inline(always)]
    unsafe fn positive<V: Vector>(&self, x: V, t: V) -> V {
        // SAFETY: `V`'s target features are enabled (this function's contract).
        unsafe {
            if self.gradient {
                // the target is not known: d = p - t < 0 means t = 1 for binary targets
                let zero = V::splat(0.0);
                V::select(x.lt(zero), V::splat(1.0), zero)
            } else {
                t
            }
        }
    }
}

/// GHM-R's element: "authentic smooth L1" on the residual `d = a - b`.
/// `term = sqrt(d^2 + mu^2) - mu`, `dir = d / sqrt(d^2 + mu^2)`.
///
/// The root is computed as the reference does (`sqrt(d*d + mu*mu)` in f32, so the gradient
/// norm and its region match) wherever that cannot overflow or underflow, and by scaling
/// elsewhere, so every finite `d` gives a finite term and direction.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Asl1 {
    mu: f32,
    mu2: f32,
    /// `mu` is in the range where `mu * mu` is a normal f32 with room to spare.
    mu_plain: bool,
}

/// |d| and mu below this (and mu above its inverse) keep `d*d + mu*mu` normal and finite.
const PLAIN_LIMIT: f32 = 1.152_921_5e18; // 2^60

impl Asl1 {
    pub(crate) fn new(mu: f32) -> Self {
        let mu2 = (f64::from(mu) * f64::from(mu)) as f32;
        let mu_plain = (1.0 / PLAIN_LIMIT..PLAIN_LIMIT).contains(&mu);
        Asl1 { mu, mu2, mu_plain }
    }

    /// `(h, d, term)` with `h = sqrt(d^2 + mu^2)` and `term = h - mu`, the latter computed
    /// as `d^2 / (h + mu)` where `d` is small enough, which does not cancel for |d| << mu.
    #[inline(always)]
    unsafe fn root<V: Vector>(&self, a: V, b: V) -> (V, V, V) {
        // SAFETY: `V`'s target features are enabled (this function's contract), all the `Vector`
        // methods need.
        unsafe {
            let mu = V::splat(self.mu);
            let d = a.sub(b);
            let ad = d.abs();
            let dd = d.mul(d);
            let h = dd.add(V::splat(self.mu2)).sqrt();
            let plain_ok = ad
                .lt(V::splat(PLAIN_LIMIT))
                .and(mask_if::<V>(self.mu_plain));
            if plain_ok.bitmask() == full::<V>() {
                return (h, d, dd.div(h.add(mu)));
            }
            let big = ad.max(mu);
            let ratio = ad.min(mu).div(big);
            let scaled = big.mul(ratio.mul(ratio).add(V::splat(1.0)).sqrt());
            let h = V::select(plain_ok, h, scaled);
            let term = V::select(plain_ok, dd.div(h.add(mu)), h.sub(mu));
            (h, d, term)
        }
    }
}

impl Model for Asl1 {
    #[inline(always)]
    unsafe fn valid<V: Vector>(&self, a: V, b: V) -> V {
        // SAFETY: `V`'s target features are enabled (this function's contract), all the `Vector`
        // methods need.
        unsafe {
            let inf = V::splat(f32::INFINITY);
            let ok = a.abs().lt(inf).and(b.abs().lt(inf));
            ok.and(a.sub(b).abs().lt(inf))
        }
    }

    #[inline(always)]
    unsafe fn valid_input<V: Vector>(&self, a: V) -> V {
        // SAFETY: `V`'s target features are enabled (this function's contract).
        unsafe { a.abs().lt(V::splat(f32::INFINITY)) }
    }

    fn error(&self, a: f32, b: f32) -> Error {
        if !a.is_finite() || !b.is_finite() {
            Error::NonFinite
        } else if !(a - b).is_finite() {
            Error::Overflow
        } else {
            Error::Internal
        }
    }

    #[inline(always)]
    unsafe fn forward<V: Vector>(&self, a: V, b: V) -> (V, V) {
        // SAFETY: `V`'s target features are enabled (this function's contract), all the `Vector`
        // methods need.
        unsafe {
            let (h, d, term) = self.root(a, b);
            (d.div(h), term)
        }
    }

    #[inline(always)]
    unsafe fn direction<V: Vector>(&self, a: V, b: V) -> V {
        // SAFETY: `V`'s target features are enabled (this function's contract), all the `Vector`
        // methods need.
        unsafe {
            let (h, d, _) = self.root(a, b);
            d.div(h)
        }
    }

    fn ends_for(&self, bins: &Bins) -> Ends {
        // Below ENDS_MIN_MU the thresholds would come near f32's subnormals, where a
        // relative margin rounds away: no shortcut, every element is binned.
        if self.mu < ENDS_MIN_MU {
            return Ends::undecided();
        }
        // g = |d| / sqrt(d^2 + mu^2): the edge e is at |d| = mu e / sqrt(1 - e^2)
        let mu = f64::from(self.mu);
        let at = |e: f32| {
            let e = f64::from(e);
            // SAFETY: the portable instantiation needs no target feature.
            let root = unsafe { Vector::sqrt((1.0 - e * e) as f32) };
            (mu * e / f64::from(root)) as f32
        };
        Ends::mapped(bins, at, |d| d * RESIDUAL_MARGIN)
    }

    #[inline(always)]
    unsafe fn ends<V: Vector>(&self, a: V, b: V, e: &Ends) -> EndMasks<V> {
        // SAFETY: `V`'s target features are enabled (this function's contract).
        unsafe {
            let all = V::splat(0.0).le(V::splat(0.0));
            e.masks(a.sub(b).abs(), all)
        }
    }

    #[inline(always)]
    unsafe fn magnitude<V: Vector>(&self, a: V, b: V) -> V {
        // SAFETY: `V`'s target features are enabled (this function's contract).
        unsafe { a.sub(b).abs() }
    }

    fn term_bound(&self, m: f32) -> f64 {
        // h - mu <= |d|, computed to within a few ulp
        f64::from(m) * 1.001
    }

    fn counts_positives(&self) -> bool {
        false
    }

    #[inline(always)]
    unsafe fn positive<V: Vector>(&self, _a: V, _b: V) -> V {
        // SAFETY: `V`'s target features are enabled (this function's contract).
        unsafe { V::splat(0.0) }
    }
}

/// The bitmask of a vector whose lanes are all true.
#[inline(always)]
pub(crate) fn full<V: Vector>() -> u32 {
    if V::LANES >= 32 {
        u32::MAX
    } else {
        (1u32 << V::LANES) - 1
    }
}

#[inline(always)]
unsafe fn mask_if<V: Vector>(b: bool) -> V {
    // SAFETY: `V`'s target features are enabled (this function's contract), all the `Vector`
    // methods need.
    unsafe { V::splat(f32::from_bits(if b { u32::MAX } else { 0 })) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ulps(a: f32, b: f32) -> u32 {
        if a == b {
            return 0;
        }
        (a.to_bits() as i64 - b.to_bits() as i64).unsigned_abs() as u32
    }

    #[test]
    fn exp_nonpos_is_within_2_ulp_of_libm_on_samples() {
        let mut x = 0.0f32;
        while x > -87.33 {
            let got = unsafe { exp_nonpos(x) };
            let want = libm::expf(x);
            assert!(ulps(got, want) <= 2, "x={x} got={got} want={want}");
            x -= 0.000_731;
        }
        assert_eq!(unsafe { exp_nonpos(-100.0f32) }, 0.0);
        assert_eq!(unsafe { exp_nonpos(f32::MIN) }, 0.0);
    }

    /// The one-lane floor equals libm's bit for bit on every 31st f32 bit pattern with
    /// |x| < 2^31 (each sign), -0.0 excepted (it gives +0.0).
    #[test]
    fn floor_in_i32_is_libms_floor_within_its_range() {
        for bits in (0..0x4f00_0000u32).step_by(31) {
            for x in [f32::from_bits(bits), -f32::from_bits(bits)] {
                let want = if x == 0.0 { 0.0 } else { libm::floorf(x) };
                assert_eq!(floor_in_i32(x).to_bits(), want.to_bits(), "x={x:e}");
            }
        }
    }

    #[test]
    fn log1p_unit_is_within_3_ulp_of_libm_on_samples() {
        for i in 0..=1_000_000u32 {
            let e = i as f32 / 1e6;
            let got = unsafe { log1p_unit(e) };
            let want = libm::log1pf(e);
            assert!(ulps(got, want) <= 3, "e={e} got={got} want={want}");
        }
    }

    #[test]
    fn ln_unit_is_within_3_ulp_of_libm_on_samples_and_floors_at_zero() {
        // every 997th f32 in (0, 1], subnormals included
        for bits in (1..=1.0f32.to_bits()).step_by(997) {
            let p = f32::from_bits(bits);
            let got = unsafe { ln_unit(p) };
            let want = libm::logf(p);
            assert!(ulps(got, want) <= 3, "p={p:e} got={got} want={want}");
        }
        assert!(unsafe { ln_unit(0.0f32) } < LOG_FLOOR);
    }

    #[test]
    fn bce_is_finite_and_accurate_for_extreme_logits() {
        for &x in &[
            f32::MAX,
            -f32::MAX,
            1e30,
            -1e30,
            100.0,
            -100.0,
            0.0,
            -0.0,
            1e-30,
        ] {
            for &t in &[0.0f32, 0.3, 1.0] {
                let (dir, term) = unsafe {
                    Bce {
                        probabilities: false,
                        gradient: false,
                        positives: false,
                    }
                    .forward(x, t)
                };
                let xd = f64::from(x);
                let want = xd.max(0.0) - xd * f64::from(t) + (-xd.abs()).exp().ln_1p();
                assert!(dir.is_finite() && term.is_finite(), "x={x} t={t}");
                let tol = 1e-6 * want.abs().max(1.0);
                assert!(
                    (f64::from(term) - want).abs() <= tol,
                    "x={x} t={t} {term} {want}"
                );
            }
        }
    }

    /// `Model::ends` never misplaces an element: a lane it puts in the first (second, last)
    /// region bins there, for M of every kind, every model and inputs swept across the
    /// thresholds and the region edges themselves (every ulp within 64 of them, every 5th
    /// out to 3000) and around the middle of the second region; and it does place the
    /// elements far from the edges (the shortcut is taken).
    #[test]
    fn ends_place_only_elements_that_bin_there() {
        let bce = |probabilities, gradient| Bce {
            probabilities,
            gradient,
            positives: false,
        };
        type Check<'a> = &'a dyn Fn(&Bins, f32, f32) -> ([bool; 3], usize);
        // (name, check, whether it places elements: not for a mu too small for its
        // thresholds, down to the smallest subnormal)
        let models: [(&str, Check, bool); 10] = [
            (
                "bce",
                &|b, x, t| check_ends(&bce(false, false), b, x, t),
                true,
            ),
            (
                "bce probabilities",
                &|b, x, t| check_ends(&bce(true, false), b, x, t),
                true,
            ),
            (
                "bce gradient",
                &|b, x, t| check_ends(&bce(false, true), b, x, t),
                true,
            ),
            (
                "asl1 0.02",
                &|b, x, t| check_ends(&Asl1::new(0.02), b, x, t),
                true,
            ),
            (
                "asl1 1",
                &|b, x, t| check_ends(&Asl1::new(1.0), b, x, t),
                true,
            ),
            (
                "asl1 1e-20",
                &|b, x, t| check_ends(&Asl1::new(1e-20), b, x, t),
                true,
            ),
            (
                "asl1 1e15",
                &|b, x, t| check_ends(&Asl1::new(1e15), b, x, t),
                true,
            ),
            (
                "asl1 1e-41",
                &|b, x, t| check_ends(&Asl1::new(1e-41), b, x, t),
                false,
            ),
            (
                "asl1 1e-43",
                &|b, x, t| check_ends(&Asl1::new(1e-43), b, x, t),
                false,
            ),
            (
                "asl1 1.4e-45",
                &|b, x, t| check_ends(&Asl1::new(f32::from_bits(1)), b, x, t),
                false,
            ),
        ];
        // bin counts of every kind (1, small, primes, the reference's 10 and 30, powers of
        // two and the largest), not all 64: the sweep below is long under emulation
        for m in [1u32, 2, 3, 5, 7, 10, 16, 29, 30, 31, 33, 63, 64] {
            let bins = Bins::new(m);
            for (name, check, places) in models.iter() {
                let (e1, e_last) = bins.inner_edges();
                let model_is_bce = name.starts_with("bce");
                let mut centres = [0.0f32; 33];
                centres[..5].copy_from_slice(&[0.0, 1.0, -1.0, 20.0, -20.0]);
                let mut n = 5;
                if e1.is_finite() {
                    let mu = name.split(' ').nth(1).and_then(|v| v.parse::<f32>().ok());
                    let (_, e2) = bins.second_region();
                    let mid = if e2.is_finite() { (e1 + e2) / 2.0 } else { e1 };
                    for e in [e1, e_last, e2.min(e_last), mid] {
                        let logit = libm::logf(e / (1.0 - e));
                        let d = mu.map_or(0.0, |mu| mu * e / libm::sqrtf(1.0 - e * e));
                        for v in [e, logit, -logit, d, -d, 2.0 * d, -2.0 * d] {
                            centres[n] = v;
                            n += 1;
                        }
                    }
                }
                let (mut first, mut second, mut last) = (0, 0, 0);
                for &c in &centres[..n] {
                    // every ulp near the centre, every 5th out to 3000 ulps
                    let near = -64i32..=64;
                    let far = (-3000i32..-64).step_by(5).chain((65..=3000).step_by(5));
                    for d in near.chain(far) {
                        let x = f32::from_bits((c.to_bits() as i32).wrapping_add(d) as u32);
                        if !x.is_finite() {
                            continue;
                        }
                        let targets: &[f32] = if model_is_bce {
                            &[0.0, 1.0, 0.5]
                        } else {
                            &[0.0]
                        };
                        for &t in targets {
                            let ([f, s, l], k) = check(&bins, x, t);
                            assert!(!f || k == 0, "{name} m={m} x={x:e} t={t}: first, bins {k}");
                            assert!(!s || k == 1, "{name} m={m} x={x:e} t={t}: second, bins {k}");
                            let end = bins.len() - 1;
                            assert!(!l || k == end, "{name} m={m} x={x:e} t={t}: last, bins {k}");
                            assert!(
                                u8::from(f) + u8::from(s) + u8::from(l) <= 1,
                                "{name} m={m} x={x:e}"
                            );
                            first += usize::from(f);
                            second += usize::from(s);
                            last += usize::from(l);
                        }
                    }
                }
                if !places {
                    assert_eq!(first + second + last, 0, "{name} m={m}: placed");
                    continue;
                }
                assert!(first > 0, "{name} m={m}: never placed in the first region");
                assert!(
                    last > 0 || m == 1,
                    "{name} m={m}: never placed in the last region"
                );
                assert!(
                    second > 0 || m < 3,
                    "{name} m={m}: never placed in the second region"
                );
            }
        }
    }

    /// `([in first, in second, in last], bin)` of one element whose inputs the model
    /// accepts (else all false), as the counting pass reads the masks: nothing for an
    /// undecided lane, else the first, the last or (neither) the second.
    fn check_ends<M: Model>(model: &M, bins: &Bins, a: f32, b: f32) -> ([bool; 3], usize) {
        unsafe {
            if model.valid::<f32>(a, b).to_bits() == 0 {
                return ([false; 3], 0);
            }
            let e = model.ends::<f32>(a, b, &model.ends_for(bins));
            let k = bins.index_exact(model.direction::<f32>(a, b).abs());
            let set = |m: f32| m.to_bits() != 0;
            let (first, last) = (set(e.first), set(e.last));
            if set(e.undecided) {
                return ([false; 3], k);
            }
            ([first, !first && !last, last], k)
        }
    }

    #[test]
    fn asl1_is_finite_for_every_finite_residual() {
        for &mu in &[0.02f32, 1.0, 1e-30, 1e30, f32::MAX] {
            let m = Asl1::new(mu);
            for &d in &[0.0f32, 1e-40, 1e-20, 0.5, 1e19, 3e19, 1e38, f32::MAX] {
                for &(a, b) in &[(d, 0.0f32), (0.0, d)] {
                    let (dir, term) = unsafe { m.forward(a, b) };
                    assert!(
                        dir.is_finite() && dir.abs() <= 1.0,
                        "mu={mu} d={d} dir={dir}"
                    );
                    // Only a mu near f32::MAX can overflow the root; configurations refuse
                    // any mu above MAX_MU (1e18), where every term is finite.
                    assert!(term >= 0.0, "mu={mu} d={d} term={term}");
                    assert!(term.is_finite() || mu > 1e38, "mu={mu} d={d} term={term}");
                }
            }
        }
    }
}
