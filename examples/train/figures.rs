//! The three figures, written to `docs/` as SVG:
//! - `gradient-norm-density.svg`: how the gradient norm g = |p - t| of the BCE-trained
//!   model is distributed over its training set (the paper's Figure 1);
//! - `harmonized-contribution.svg`: the share of the total gradient norm each g region
//!   contributes under BCE, focal loss and GHM-C (with and without a weight cap), for that same model's predictions;
//! - `ghmr-contribution.svg`: the same for regression: smooth L1, ASL1 and GHM-R on the
//!   residuals of the ASL1-trained model, over ASL1's g = |d| / sqrt(d^2 + mu^2).

use std::path::PathBuf;

use super::data::Set;
use super::losses::{self, asl1_norm, sigmoid, smooth_l1};
use super::model::Mlp;
use super::svg::{Chart, Note, Series, Style};
use super::BATCH;

const BLUE: &str = "#1f77b4";
const ORANGE: &str = "#ff7f0e";
const GREEN: &str = "#2ca02c";
const GREY: &str = "#7f7f7f";
const PURPLE: &str = "#9467bd";

/// Writes the three figures; `classifier` was trained with BCE, `regressor` with ASL1.
pub fn write_all(classifier: &Mlp, cls_train: &Set, regressor: &Mlp, reg_train: &Set) {
    let logits = classifier.predict(&cls_train.x);
    save(
        "gradient-norm-density.svg",
        &density_chart(&logits, &cls_train.y),
    );
    save(
        "harmonized-contribution.svg",
        &classification_chart(&logits, &cls_train.y),
    );
    let residuals: Vec<f32> = regressor
        .predict(&reg_train.x)
        .iter()
        .zip(&reg_train.y)
        .map(|(p, t)| p - t)
        .collect();
    save("ghmr-contribution.svg", &regression_chart(&residuals));
}

fn save(name: &str, chart: &Chart) {
    let path: PathBuf = [env!("CARGO_MANIFEST_DIR"), "docs", name].iter().collect();
    match std::fs::write(&path, chart.render()) {
        Ok(()) => println!("  wrote {}", path.display()),
        Err(e) => eprintln!("  could not write {}: {e}", path.display()),
    }
}

/// Sums `value` of each element into `bins` equal regions of g in [0, 1] (g = 1 goes to the
/// last), then divides by the total: each region's share.
fn shares(g: &[f32], value: impl Fn(usize) -> f64, bins: usize) -> Vec<f64> {
    let mut sum = vec![0.0f64; bins];
    for (i, &gi) in g.iter().enumerate() {
        let k = ((gi * bins as f32) as usize).min(bins - 1);
        sum[k] += value(i);
    }
    let total: f64 = sum.iter().sum();
    sum.iter()
        .map(|s| s / total.max(f64::MIN_POSITIVE))
        .collect()
}

/// Bin centres paired with values.
fn centred(values: &[f64]) -> Vec<(f64, f64)> {
    let w = 1.0 / values.len() as f64;
    values
        .iter()
        .enumerate()
        .map(|(k, &v)| ((k as f64 + 0.5) * w, v))
        .collect()
}

/// Decades spanning every positive value of the series.
fn decades(series: &[Series]) -> (i32, i32) {
    let values = series
        .iter()
        .flat_map(|s| s.points.iter().map(|p| p.1))
        .filter(|&v| v > 0.0);
    let (lo, hi) = values.fold((f64::INFINITY, 0.0f64), |(lo, hi), v| {
        (lo.min(v), hi.max(v))
    });
    (
        lo.log10().floor() as i32,
        hi.log10().ceil().max(lo.log10().floor() + 1.0) as i32,
    )
}

fn unit_ticks() -> Vec<f64> {
    (0..=10).map(|i| f64::from(i) / 10.0).collect()
}

fn density_chart(logits: &[f32], targets: &[f32]) -> Chart {
    const BINS: usize = 50;
    let g: Vec<f32> = logits
        .iter()
        .zip(targets)
        .map(|(&x, &t)| (sigmoid(x) - t).abs())
        .collect();
    let fraction = shares(&g, |_| 1.0, BINS);
    let series = vec![Series {
        name: "fraction of anchors".into(),
        color: BLUE,
        style: Style::Bars {
            width: 1.0 / BINS as f64,
        },
        points: centred(&fraction),
    }];
    let y_decades = decades(&series);
    Chart {
        title: "Gradient norm of a BCE-trained model at convergence".into(),
        subtitle: format!(
            "{} training anchors (noisy labels), g = |sigmoid(x) - t| in {BINS} regions; log scale",
            group(g.len())
        ),
        x_label: "gradient norm g".into(),
        y_label: "fraction of anchors".into(),
        x_range: (0.0, 1.0),
        x_ticks: unit_ticks(),
        y_decades,
        notes: vec![
            note(0.035, fraction[0] * 0.5, "easy negatives", "start"),
            note(0.985, fraction[BINS - 1] * 2.2, "outliers", "end"),
        ],
        series,
        legend_low: false,
    }
}

fn classification_chart(logits: &[f32], targets: &[f32]) -> Chart {
    const BINS: usize = 30;
    let g: Vec<f32> = logits
        .iter()
        .zip(targets)
        .map(|(&x, &t)| (sigmoid(x) - t).abs())
        .collect();
    let ghm_share = |mut loss: ghm::GhmC| {
        let grad = ghm_gradient(|o, t, g| loss.loss_grad(o, t, None, g), logits, targets);
        shares(&g, |i| f64::from(grad[i].abs()), BINS)
    };
    let bce = shares(&g, |i| f64::from(g[i]), BINS);
    let focal = shares(
        &g,
        |i| f64::from(losses::focal(logits[i], targets[i]).1.abs()),
        BINS,
    );
    let series = vec![
        line("BCE", GREY, &bce, true),
        line("focal loss (alpha 0.25, gamma 2)", ORANGE, &focal, false),
        line(
            "GHM-C (30 regions)",
            GREEN,
            &ghm_share(losses::ghm_c()),
            false,
        ),
        line(
            "GHM-C, weight cap 50",
            PURPLE,
            &ghm_share(losses::ghm_c_capped()),
            true,
        ),
        line(
            "GHM-C robust preset (count prior 0.1)",
            BLUE,
            &ghm_share(losses::ghm_c_robust()),
            false,
        ),
    ];
    Chart {
        title: "Where the gradient comes from: BCE, focal loss, GHM-C".into(),
        subtitle: "Share of the total gradient norm per g region, same predictions (the BCE-trained model)".into(),
        x_label: "gradient norm g = |sigmoid(x) - t|".into(),
        y_label: "share of total gradient norm".into(),
        x_range: (0.0, 1.0),
        x_ticks: unit_ticks(),
        y_decades: decades(&series),
        notes: Vec::new(),
        series,
        legend_low: true,
    }
}

fn regression_chart(residuals: &[f32]) -> Chart {
    const BINS: usize = 20;
    let g: Vec<f32> = residuals.iter().map(|&d| asl1_norm(d)).collect();
    let zeros = vec![0.0f32; residuals.len()];
    let mut loss = losses::ghm_r();
    let ghm_grad = ghm_gradient(|o, t, g| loss.loss_grad(o, t, None, g), residuals, &zeros);
    let sl1 = shares(&g, |i| f64::from(smooth_l1(residuals[i]).1.abs()), BINS);
    let asl1 = shares(&g, |i| f64::from(g[i]), BINS);
    let ghm = shares(&g, |i| f64::from(ghm_grad[i].abs()), BINS);
    let series = vec![
        line("smooth L1 (beta 1/9)", GREY, &sl1, true),
        line("ASL1 (mu 0.02)", BLUE, &asl1, false),
        line("GHM-R (mu 0.02, 10 regions)", GREEN, &ghm, false),
    ];
    Chart {
        title: "Where the gradient comes from: ASL1 vs GHM-R".into(),
        subtitle: format!(
            "Share of the total gradient norm per g region; {} offsets of the ASL1-trained model (4% garbage)",
            group(residuals.len())
        ),
        x_label: "gradient norm g = |d| / sqrt(d\u{b2} + mu\u{b2})".into(),
        y_label: "share of total gradient norm".into(),
        x_range: (0.0, 1.0),
        x_ticks: unit_ticks(),
        y_decades: decades(&series),
        notes: Vec::new(),
        series,
        legend_low: true,
    }
}

/// A GHM loss's gradient over a training set, called batch by batch as in training: a
/// first pass warms the EMA up, the second writes the gradient.
fn ghm_gradient(
    mut loss_grad: impl FnMut(&[f32], &[f32], &mut [f32]) -> Result<f32, ghm::Error>,
    outputs: &[f32],
    targets: &[f32],
) -> Vec<f32> {
    let mut grad = vec![0.0f32; outputs.len()];
    for _ in 0..2 {
        let batches = outputs.chunks(BATCH).zip(targets.chunks(BATCH));
        for ((o, t), g) in batches.zip(grad.chunks_mut(BATCH)) {
            loss_grad(o, t, g).expect("finite outputs");
        }
    }
    grad
}

fn line(name: &str, color: &'static str, values: &[f64], dashed: bool) -> Series {
    Series {
        name: name.into(),
        color,
        style: Style::Line { dashed },
        points: centred(values),
    }
}

fn note(x: f64, y: f64, text: &str, anchor: &'static str) -> Note {
    Note {
        x,
        y,
        text: text.into(),
        anchor,
    }
}

/// 1000000 -> "1,000,000"
fn group(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}
