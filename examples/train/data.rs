//! The two synthetic tasks, built to have the problems GHM addresses.
//!
//! Classification ("is there an object at this anchor?"), 16 features per anchor:
//! - 0.1% positives, 2% hard negatives that share half of the positives' signal (and have a
//!   wider spread, so the best boundary is curved), and ~98% easy negatives far away;
//! - label noise: 3% of the positive labels are dropped (set to 0) and 0.01% of the
//!   background anchors get a spurious positive label (~10% as many as the real ones). Those
//!   flipped labels are the outliers a converged model cannot fit (g near 1).
//!   Validation and test labels are clean.
//!
//! Regression ("box offsets" of positive anchors), 16 features, 4 offsets per anchor: a fixed
//! random teacher network of the features (offsets of about unit scale, like normalised box
//! deltas) plus N(0, 0.02^2) noise; 4% of the training anchors have all four offsets replaced
//! by large garbage (uniform in [-5, 5]). Validation and test targets are the exact offsets.

use super::model::Mlp;
use super::rng::Rng;

/// Features per anchor.
pub const FEATURES: usize = 16;
/// Box offsets per anchor in the regression task.
pub const OFFSETS: usize = 4;

const P_POSITIVE: f64 = 0.001;
const P_HARD: f64 = 0.02;
const P_DROP_POSITIVE: f64 = 0.03;
const P_SPURIOUS: f64 = 0.0001;
const P_GARBAGE: f64 = 0.04;
const INLIER_NOISE: f64 = 0.02;

/// Anchors with features `x` (row-major `[n][FEATURES]`) and labels `y`.
pub struct Set {
    pub n: usize,
    pub x: Vec<f32>,
    pub y: Vec<f32>,
}

impl Set {
    fn with_capacity(n: usize, width: usize) -> Set {
        Set {
            n: 0,
            x: Vec::with_capacity(n * FEATURES),
            y: Vec::with_capacity(n * width),
        }
    }

    /// Anchors `start..start + len`: their features and labels (`width` labels per anchor).
    pub fn slice(&self, start: usize, len: usize, width: usize) -> (&[f32], &[f32]) {
        let x = &self.x[start * FEATURES..(start + len) * FEATURES];
        (x, &self.y[start * width..(start + len) * width])
    }
}

/// One classification anchor: its kind decides where its features are drawn.
#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Positive,
    Hard,
    Easy,
}

/// (mean, std) of the four signal features of each kind; the other 12 are N(0, 1) nuisance.
fn signal(kind: Kind) -> [(f64, f64); 4] {
    match kind {
        Kind::Positive => [(1.5, 1.0), (1.5, 1.0), (2.0, 0.7), (2.0, 0.7)],
        Kind::Hard => [(1.5, 1.0), (1.5, 1.0), (0.0, 1.6), (0.0, 1.6)],
        Kind::Easy => [(-1.5, 1.0), (-1.5, 1.0), (0.0, 1.6), (0.0, 1.6)],
    }
}

fn class_features(rng: &mut Rng, kind: Kind, out: &mut Vec<f32>) {
    for (mean, std) in signal(kind) {
        out.push((mean + std * rng.normal()) as f32);
    }
    for _ in signal(kind).len()..FEATURES {
        out.push(rng.normal() as f32);
    }
}

/// The Bayes-optimal score (log-odds of the true posterior of a clean positive), for
/// reference: no model can rank the test set better.
pub fn bayes_score(x: &[f32]) -> f32 {
    let log_density = |kind: Kind| -> f64 {
        let terms = signal(kind).into_iter().zip(x);
        terms
            .map(|((mean, std), &v)| -0.5 * ((f64::from(v) - mean) / std).powi(2) - std.ln())
            .sum()
    };
    let (pos, hard, easy) = (
        log_density(Kind::Positive),
        log_density(Kind::Hard),
        log_density(Kind::Easy),
    );
    let top = hard.max(easy);
    let negative =
        top + (P_HARD * (hard - top).exp() + (1.0 - P_POSITIVE - P_HARD) * (easy - top).exp()).ln();
    (P_POSITIVE.ln() + pos - negative) as f32
}

/// `n` classification anchors; labels are noisy if `noisy`, clean otherwise.
pub fn classification(seed: u64, stream: u64, n: usize, noisy: bool) -> Set {
    let mut rng = Rng::new(seed, stream);
    let mut set = Set::with_capacity(n, 1);
    for _ in 0..n {
        let u = rng.uniform();
        let kind = if u < P_POSITIVE {
            Kind::Positive
        } else if u < P_POSITIVE + P_HARD {
            Kind::Hard
        } else {
            Kind::Easy
        };
        class_features(&mut rng, kind, &mut set.x);
        let mut label = kind == Kind::Positive;
        if noisy {
            let flip = if label { P_DROP_POSITIVE } else { P_SPURIOUS };
            label ^= rng.bernoulli(flip);
        }
        set.y.push(f32::from(u8::from(label)));
    }
    set.n = n;
    set
}

/// The regression task's ground truth: a random teacher MLP (16 -> 8 ReLU -> 4) fixed by
/// `seed`; the student (16 -> 32 -> 4) can represent it exactly, so what separates the losses
/// is how they cope with the garbage targets, not the model's capacity.
pub struct BoxTask {
    teacher: Mlp,
}

impl BoxTask {
    pub fn new(seed: u64) -> BoxTask {
        let mut rng = Rng::new(seed, 0xB0C5);
        BoxTask {
            teacher: Mlp::teacher(FEATURES, 8, OFFSETS, &mut rng),
        }
    }

    /// `n` anchors with 4 offsets each: noisy, with a few garbage anchors, for training
    /// (`noisy`); the teacher's exact offsets otherwise (validation and test measure the
    /// error against the truth).
    pub fn sample(&self, seed: u64, stream: u64, n: usize, noisy: bool) -> Set {
        let mut rng = Rng::new(seed, stream);
        let mut set = Set::with_capacity(n, OFFSETS);
        for _ in 0..n {
            set.x.extend((0..FEATURES).map(|_| rng.normal() as f32));
        }
        set.y = self.teacher.predict(&set.x);
        if noisy {
            for offsets in set.y.chunks_exact_mut(OFFSETS) {
                if rng.bernoulli(P_GARBAGE) {
                    offsets.fill_with(|| rng.range(-5.0, 5.0) as f32);
                } else {
                    for t in offsets {
                        *t += (INLIER_NOISE * rng.normal()) as f32;
                    }
                }
            }
        }
        set.n = n;
        set
    }
}
