//! The losses compared: BCE and focal loss (written here, with exact gradients) against
//! GHM-C (as the reference computes it, with this crate's weight cap, and this crate's robust
//! preset), and smooth L1 and plain ASL1 (written here) against GHM-R (this crate).
//!
//! Each computes the loss of a batch and writes dLoss/dOutput per element. BCE and focal are
//! normalised by the number of positive labels (as RetinaNet does), smooth L1 and ASL1 by
//! the element count, GHM by its own `tot`; Adam makes the scale immaterial.

use ghm::{Config, GhmC, GhmR};

pub const FOCAL_ALPHA: f32 = 0.25;
pub const FOCAL_GAMMA: f32 = 2.0;
pub const SMOOTH_L1_BETA: f32 = 1.0 / 9.0;
pub const ASL1_MU: f32 = 0.02;

/// The classification losses.
pub enum ClsLoss {
    Bce,
    Focal,
    Ghm(Box<GhmC>),
}

impl ClsLoss {
    pub const NAMES: [&'static str; 5] = ["BCE", "Focal", "GHM-C", "GHM-C cap", "GHM-C robust"];

    /// Loss number `i` of [`NAMES`](Self::NAMES), in its initial state.
    pub fn by_index(i: usize) -> ClsLoss {
        match i {
            0 => ClsLoss::Bce,
            1 => ClsLoss::Focal,
            2 => ClsLoss::Ghm(Box::new(ghm_c())),
            3 => ClsLoss::Ghm(Box::new(ghm_c_capped())),
            _ => ClsLoss::Ghm(Box::new(ghm_c_robust())),
        }
    }

    /// The batch's loss; dLoss/dlogit goes to `grad`.
    pub fn loss_grad(&mut self, logits: &[f32], targets: &[f32], grad: &mut [f32]) -> f32 {
        let positives = targets.iter().filter(|&&t| t > 0.5).count().max(1) as f32;
        let per_element: fn(f32, f32) -> (f32, f32) = match self {
            ClsLoss::Ghm(loss) => {
                return loss
                    .loss_grad(logits, targets, None, grad)
                    .expect("finite inputs of equal length");
            }
            ClsLoss::Bce => bce,
            ClsLoss::Focal => focal,
        };
        let mut total = 0.0f64;
        for ((g, &x), &t) in grad.iter_mut().zip(logits).zip(targets) {
            let (l, d) = per_element(x, t);
            total += f64::from(l);
            *g = d / positives;
        }
        (total / f64::from(positives)) as f32
    }
}

/// GHM-C as in the COCO RetinaNet configuration: 30 bins, momentum 0.75.
pub fn ghm_c() -> GhmC {
    GhmC::new(Config {
        bins: 30,
        momentum: 0.75,
        ..Config::ghm_c()
    })
    .expect("valid GHM-C config")
}

/// The largest harmonizing weight beta that [`ghm_c_capped`] lets one element have.
pub const WEIGHT_CAP: f32 = 50.0;

/// GHM-C as above, plus this crate's `weight_cap` option: no element's harmonizing weight
/// beta exceeds [`WEIGHT_CAP`] (the reference gives a lone element in a region a weight of
/// thousands here: tot / (1 * n) with 100k anchors).
pub fn ghm_c_capped() -> GhmC {
    GhmC::new(Config {
        bins: 30,
        momentum: 0.75,
        weight_cap: WEIGHT_CAP,
        ..Config::ghm_c()
    })
    .expect("valid GHM-C config")
}

/// This crate's robust GHM-C preset ([`Config::ghm_c_robust`]): the COCO settings plus a
/// count prior of 0.1 and the loss normalised by the batch's positives.
pub fn ghm_c_robust() -> GhmC {
    GhmC::new(Config::ghm_c_robust()).expect("valid GHM-C config")
}

/// GHM-R as in the COCO RetinaNet configuration: mu 0.02, 10 bins, momentum 0.7.
pub fn ghm_r() -> GhmR {
    GhmR::new(Config {
        bins: 10,
        momentum: 0.7,
        mu: ASL1_MU,
        ..Config::ghm_r()
    })
    .expect("valid GHM-R config")
}

/// log(1 + e^z) without overflow.
fn softplus(z: f32) -> f32 {
    z.max(0.0) + (-z.abs()).exp().ln_1p()
}

pub fn sigmoid(x: f32) -> f32 {
    if x >= 0.0 {
        1.0 / (1.0 + (-x).exp())
    } else {
        let e = x.exp();
        e / (1.0 + e)
    }
}

/// BCE-with-logits: (loss, dloss/dx).
pub fn bce(x: f32, t: f32) -> (f32, f32) {
    (softplus(x) - x * t, sigmoid(x) - t)
}

/// Sigmoid focal loss for a binary target: (loss, dloss/dx).
///
/// With p_t the probability of the true class and a_t = alpha (t = 1) or 1 - alpha (t = 0):
/// FL = -a_t (1 - p_t)^gamma log p_t, and with s = +1 (t = 1) or -1 (t = 0)
/// dFL/dx = s a_t [gamma (1 - p_t)^gamma p_t log p_t - (1 - p_t)^(gamma + 1)].
pub fn focal(x: f32, t: f32) -> (f32, f32) {
    let positive = t > 0.5;
    let (s, a_t, z) = if positive {
        (1.0, FOCAL_ALPHA, x)
    } else {
        (-1.0, 1.0 - FOCAL_ALPHA, -x)
    };
    let log_pt = -softplus(-z);
    let pt = sigmoid(z);
    let q = sigmoid(-z); // 1 - p_t, without cancellation
    let qg = q.powf(FOCAL_GAMMA);
    let loss = -a_t * qg * log_pt;
    let grad = s * a_t * (FOCAL_GAMMA * qg * pt * log_pt - qg * q);
    (loss, grad)
}

/// The regression losses.
pub enum RegLoss {
    SmoothL1,
    Asl1,
    Ghm(Box<GhmR>),
}

impl RegLoss {
    pub const NAMES: [&'static str; 3] = ["Smooth L1", "ASL1", "GHM-R"];

    pub fn by_index(i: usize) -> RegLoss {
        match i {
            0 => RegLoss::SmoothL1,
            1 => RegLoss::Asl1,
            _ => RegLoss::Ghm(Box::new(ghm_r())),
        }
    }

    /// The batch's loss; dLoss/dpred goes to `grad`.
    pub fn loss_grad(&mut self, pred: &[f32], target: &[f32], grad: &mut [f32]) -> f32 {
        let per_element: fn(f32) -> (f32, f32) = match self {
            RegLoss::Ghm(loss) => {
                return loss
                    .loss_grad(pred, target, None, grad)
                    .expect("finite inputs of equal length");
            }
            RegLoss::SmoothL1 => smooth_l1,
            RegLoss::Asl1 => asl1,
        };
        let n = pred.len().max(1) as f32;
        let mut total = 0.0f64;
        for ((g, &p), &t) in grad.iter_mut().zip(pred).zip(target) {
            let (l, d) = per_element(p - t);
            total += f64::from(l);
            *g = d / n;
        }
        (total / f64::from(n)) as f32
    }
}

/// Smooth L1 of a residual d (beta = 1/9): (loss, dloss/dd).
pub fn smooth_l1(d: f32) -> (f32, f32) {
    let beta = SMOOTH_L1_BETA;
    if d.abs() < beta {
        (0.5 * d * d / beta, d / beta)
    } else {
        (d.abs() - 0.5 * beta, d.signum())
    }
}

/// Authentic smooth L1, sqrt(d^2 + mu^2) - mu, un-harmonized: (loss, dloss/dd).
pub fn asl1(d: f32) -> (f32, f32) {
    let r = d.hypot(ASL1_MU);
    (r - ASL1_MU, d / r)
}

/// ASL1's gradient norm |d| / sqrt(d^2 + mu^2), the g that GHM-R bins.
pub fn asl1_norm(d: f32) -> f32 {
    asl1(d).1.abs()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gradients_match_finite_differences() {
        for &x in &[-6.0f32, -1.3, -0.2, 0.0, 0.7, 3.1] {
            for &t in &[0.0f32, 1.0] {
                for f in [bce, focal] {
                    let h = 1e-3f64;
                    let l = |x: f64| f64::from(f(x as f32, t).0);
                    let fd = (l(f64::from(x) + h) - l(f64::from(x) - h)) / (2.0 * h);
                    assert!((fd - f64::from(f(x, t).1)).abs() < 2e-3, "x {x} t {t}");
                }
            }
        }
    }
}
