//! GHM-C and GHM-R on one synthetic RetinaNet-sized batch: 100k anchors x 80 classes with
//! about 1% positive anchors, as mmdetection's heads pass them (class-index labels for the
//! classifier, 4 box offsets per positive anchor for the regressor), with the COCO settings.
//! Prints the loss, each region's count and harmonizing weight, and the time taken.
//!
//! `cargo run --release --example retinanet`

use std::time::Instant;

use ghm::{ClassLayout, Config, GhmC, GhmR, Output};

const ANCHORS: usize = 100_000;
const CLASSES: usize = 80;

/// xorshift64*: deterministic, no dependency.
struct Rng(u64);

impl Rng {
    fn uniform(&mut self) -> f32 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 40) as f32 / (1u64 << 24) as f32
    }
    fn normal(&mut self) -> f32 {
        let (u, v) = (self.uniform().max(1e-7), self.uniform());
        (-2.0 * u.ln()).sqrt() * (std::f32::consts::TAU * v).cos()
    }
}

fn main() -> Result<(), ghm::Error> {
    let mut rng = Rng(0x5eed_1234_abcd_ef01);
    // Labels: ~1% positives with a class, ~2% ignored (weight 0), the rest background (= C).
    let labels: Vec<i32> = (0..ANCHORS)
        .map(|_| {
            if rng.uniform() < 0.01 {
                (rng.uniform() * CLASSES as f32) as i32 % CLASSES as i32
            } else {
                CLASSES as i32
            }
        })
        .collect();
    let anchor_weights: Vec<f32> = (0..ANCHORS)
        .map(|_| if rng.uniform() < 0.02 { 0.0 } else { 1.0 })
        .collect();
    // Logits of a half-trained detector: easy negatives, uncertain positives, a few outliers.
    let logits: Vec<f32> = (0..ANCHORS * CLASSES)
        .map(|i| {
            let positive = labels[i / CLASSES] == (i % CLASSES) as i32;
            if positive {
                0.5 + 2.0 * rng.normal()
            } else if rng.uniform() < 0.001 {
                4.0 + rng.normal()
            } else {
                -4.5 + 1.2 * rng.normal()
            }
        })
        .collect();

    let mut ghmc = GhmC::new(Config {
        bins: 30,
        momentum: 0.75,
        ..Config::ghm_c()
    })?;
    let layout = ClassLayout::rows(ANCHORS, CLASSES);
    let mut grad = vec![0.0f32; logits.len()];
    let start = Instant::now();
    let mut stats = ghmc.stats();
    ghmc.accumulate_labels(&mut stats, &logits, layout, &labels, Some(&anchor_weights))?;
    let weights = ghmc.commit(&stats)?;
    weights.apply_labels(
        &logits,
        layout,
        &labels,
        Some(&anchor_weights),
        Output::GRADIENT,
        &mut grad,
    )?;
    let took = start.elapsed();
    println!(
        "GHM-C, bins 30, momentum 0.75: {ANCHORS} anchors x {CLASSES} classes = {} elements",
        logits.len()
    );
    println!(
        "  loss {:.6}   loss + gradient in {:.2} ms",
        weights.loss().unwrap(),
        took.as_secs_f64() * 1e3
    );
    print_regions(&stats.count, |k| weights.region_weight(k), 30);

    // Box regression: 4 offsets per positive anchor, residuals at several scales, 3% outliers.
    let positives = labels.iter().filter(|&&l| l < CLASSES as i32).count();
    let target: Vec<f32> = (0..positives * 4).map(|_| 0.5 * rng.normal()).collect();
    let pred: Vec<f32> = target
        .iter()
        .map(|&t| {
            if rng.uniform() < 0.03 {
                t + 3.0 * rng.normal()
            } else {
                t + 0.05 * rng.normal()
            }
        })
        .collect();
    let mut ghmr = GhmR::new(Config {
        mu: 0.02,
        bins: 10,
        momentum: 0.7,
        loss_weight: 10.0,
        ..Config::ghm_r()
    })?;
    let mut rgrad = vec![0.0f32; pred.len()];
    let start = Instant::now();
    let mut rstats = ghmr.stats();
    ghmr.accumulate(&mut rstats, &pred, &target, None)?;
    let rweights = ghmr.commit(&rstats)?;
    rweights.apply(&pred, &target, None, Output::GRADIENT, &mut rgrad)?;
    let took = start.elapsed();
    println!(
        "\nGHM-R, mu 0.02, bins 10, momentum 0.7, loss_weight 10: {} box offsets",
        pred.len()
    );
    println!(
        "  loss {:.6}   loss + gradient in {:.3} ms",
        rweights.loss().unwrap(),
        took.as_secs_f64() * 1e3
    );
    print_regions(&rstats.count, |k| rweights.region_weight(k), 10);
    Ok(())
}

/// One line per region: its gradient-norm range, count R_k and harmonizing weight beta_k.
fn print_regions(count: &[f64], weight: impl Fn(usize) -> f32, bins: usize) {
    println!("  {:>13} {:>12} {:>10}", "g region", "count", "weight");
    for (k, c) in count.iter().enumerate().take(bins) {
        let (lo, hi) = (k as f64 / bins as f64, (k + 1) as f64 / bins as f64);
        println!("  [{lo:.3}, {hi:.3}) {c:>12} {:>10.4}", weight(k));
    }
}
