//! # GHM on a synthetic dense-prediction task: `cargo run --release --example train`
//!
//! Trains tiny MLPs with this crate's losses on two synthetic tasks that have the problems
//! the GHM paper (Li, Liu, Wang, AAAI 2019) addresses, and compares them with the usual
//! alternatives, averaged over seeds:
//!
//! 1. Classification (anchor "objectness"): ~1 positive per 1000 anchors, a large majority of
//!    trivially easy negatives, a few hard negatives, and flipped labels as outliers
//!    (`train/data.rs`). BCE vs focal loss (alpha 0.25, gamma 2) vs GHM-C (30 bins,
//!    momentum 0.75, as the reference computes it) vs the same GHM-C with this crate's
//!    `weight_cap` (50) vs this crate's robust preset (`Config::ghm_c_robust`: count prior
//!    0.1, normalised by positives); metric: average precision (AP) on a clean held-out set, next to
//!    the AP of the true posterior (the best any model can do).
//! 2. Box-offset regression with 4% garbage targets: smooth L1 (beta 1/9) vs plain ASL1
//!    (mu 0.02) vs GHM-R (mu 0.02, 10 bins, momentum 0.7); metric: mean |pred - true offset|
//!    on a held-out set (the error on inliers; the training noise's floor does not apply).
//!
//! Every loss gets the same model, initialisation, data and step budget, and its own Adam
//! learning rate picked from a small grid by the validation metric (mean over seeds); the
//! test set is only reported. Runs are spread over the available cores; each run is
//! deterministic (fixed seeds, own RNG), so the numbers do not depend on the scheduling.
//!
//! It then writes three SVG figures to `docs/` (`train/figures.rs`): the gradient-norm
//! density of the BCE-trained model, and how each loss redistributes the gradient over the
//! gradient-norm axis (classification and regression).
//!
//! Layout: `train/rng.rs` (RNG), `train/data.rs` (tasks), `train/model.rs` (MLP, Adam),
//! `train/losses.rs` (losses), `train/metrics.rs` (AP), `train/svg.rs` (plotting),
//! `train/figures.rs` (the figures).

mod data;
mod figures;
mod losses;
mod metrics;
mod model;
mod rng;
mod svg;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use data::{BoxTask, Set, FEATURES, OFFSETS};
use losses::{ClsLoss, RegLoss};
use metrics::{average_precision, summary};
use model::{Adam, Mlp};
use rng::Rng;

const SEEDS: [u64; 3] = [1, 2, 3];
const BATCH: usize = 100_000; // elements per step (anchors, or anchors x offsets)

// Classification: 1M training anchors (10 batches), 1M validation, 2M test.
const CLS_TRAIN: usize = 1_000_000;
const CLS_VAL: usize = 1_000_000;
const CLS_TEST: usize = 2_000_000;
const CLS_HIDDEN: usize = 16;
const CLS_EPOCHS: usize = 15;
const CLS_LRS: [f32; 3] = [1e-2, 3e-2, 1e-1];
/// RetinaNet's prior for the initial output bias, the same for every loss.
const PRIOR: f32 = 0.01;

// Regression: 250k training anchors x 4 offsets (10 batches), 50k validation, 100k test.
const REG_TRAIN: usize = 250_000;
const REG_VAL: usize = 50_000;
const REG_TEST: usize = 100_000;
const REG_HIDDEN: usize = 32;
const REG_EPOCHS: usize = 15;
const REG_LRS: [f32; 3] = [1e-2, 3e-2, 1e-1];

/// Train / validation / test sets of one seed.
struct Split {
    train: Set,
    val: Set,
    test: Set,
}

/// One trained model and its scores.
struct Run {
    loss: usize,
    lr: usize,
    seed: usize,
    val: f64,
    test: f64,
    model: Mlp,
}

fn main() {
    let start = Instant::now();
    println!(
        "GHM example: tiny MLPs on synthetic dense prediction, {} seeds",
        SEEDS.len()
    );

    println!("\n[1/3] classification: generating data");
    let cls_data = parallel(SEEDS.len(), |s| classification_split(SEEDS[s]));
    let cls_jobs = SEEDS.len() * ClsLoss::NAMES.len() * CLS_LRS.len();
    let cls_runs = parallel(cls_jobs, |job| {
        let (seed, loss, lr) = unpack(job, ClsLoss::NAMES.len(), CLS_LRS.len());
        train_classifier(&cls_data[seed], seed, loss, lr)
    });

    println!("\n[2/3] regression: generating data");
    let reg_data = parallel(SEEDS.len(), |s| regression_split(SEEDS[s]));
    let reg_jobs = SEEDS.len() * RegLoss::NAMES.len() * REG_LRS.len();
    let reg_runs = parallel(reg_jobs, |job| {
        let (seed, loss, lr) = unpack(job, RegLoss::NAMES.len(), REG_LRS.len());
        train_regressor(&reg_data[seed], seed, loss, lr)
    });

    println!("\n[3/3] figures");
    let bce = best_model(&cls_runs, 0, true);
    let asl1 = best_model(&reg_runs, 1, false);
    figures::write_all(bce, &cls_data[0].train, asl1, &reg_data[0].train);

    println!(
        "\nResults (test set, mean over {} seeds, [min, max]; lr picked on validation)",
        SEEDS.len()
    );
    let bayes: Vec<f64> = cls_data.iter().map(|d| bayes_ap(&d.test)).collect();
    let (mean, min, max) = summary(&bayes);
    let title =
        format!("Classification: AP (Bayes-optimal ranking: {mean:.4} [{min:.4}, {max:.4}])");
    print_table(&title, &ClsLoss::NAMES, &CLS_LRS, &cls_runs, true, 4);
    print_table(
        "Regression: mean |pred - true offset|",
        &RegLoss::NAMES,
        &REG_LRS,
        &reg_runs,
        false,
        5,
    );
    println!("\ntotal time {:.1} s", start.elapsed().as_secs_f64());
}

/// AP of the true posterior on a set: the ceiling for any model.
fn bayes_ap(set: &Set) -> f64 {
    let scores: Vec<f32> = set
        .x
        .chunks_exact(FEATURES)
        .map(data::bayes_score)
        .collect();
    let labels: Vec<bool> = set.y.iter().map(|&y| y > 0.5).collect();
    average_precision(&scores, &labels)
}

/// Job index -> (seed index, loss index, lr index).
fn unpack(job: usize, losses: usize, lrs: usize) -> (usize, usize, usize) {
    (job / (losses * lrs), job / lrs % losses, job % lrs)
}

/// Runs `f(0..jobs)` on all cores; results in job order.
fn parallel<T: Send>(jobs: usize, f: impl Fn(usize) -> T + Sync) -> Vec<T> {
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(jobs);
    let next = AtomicUsize::new(0);
    let mut results: Vec<(usize, T)> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                scope.spawn(|| {
                    let mut done = Vec::new();
                    loop {
                        let job = next.fetch_add(1, Ordering::Relaxed);
                        if job >= jobs {
                            return done;
                        }
                        done.push((job, f(job)));
                    }
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|w| w.join().expect("worker"))
            .collect()
    });
    results.sort_by_key(|r| r.0);
    results.into_iter().map(|r| r.1).collect()
}

fn classification_split(seed: u64) -> Split {
    Split {
        train: data::classification(seed, 1, CLS_TRAIN, true),
        val: data::classification(seed, 2, CLS_VAL, false),
        test: data::classification(seed, 3, CLS_TEST, false),
    }
}

fn regression_split(seed: u64) -> Split {
    let task = BoxTask::new(seed);
    Split {
        train: task.sample(seed, 1, REG_TRAIN, true),
        val: task.sample(seed, 2, REG_VAL, false),
        test: task.sample(seed, 3, REG_TEST, false),
    }
}

/// Trains `model` for `epochs` passes over `train` in batches of `anchors` anchors, with
/// `loss_grad(outputs, targets, grad)` giving dLoss/dOutputs.
fn fit(
    model: &mut Mlp,
    train: &Set,
    lr: f32,
    epochs: usize,
    anchors: usize,
    mut loss_grad: impl FnMut(&[f32], &[f32], &mut [f32]) -> f32,
) {
    let steps = epochs * train.n.div_ceil(anchors);
    let mut adam = Adam::new(lr, steps, model.params.len());
    let (mut act, mut out, mut dout) = (Vec::new(), Vec::new(), Vec::new());
    let mut grad = vec![0.0f32; model.params.len()];
    for _ in 0..epochs {
        for start in (0..train.n).step_by(anchors) {
            let len = anchors.min(train.n - start);
            let (x, y) = train.slice(start, len, model.outputs);
            model.forward(x, &mut act, &mut out);
            dout.resize(out.len(), 0.0);
            loss_grad(&out, y, &mut dout);
            grad.fill(0.0);
            model.backward(x, &act, &dout, &mut grad);
            adam.step(&mut model.params, &grad);
        }
    }
}

fn train_classifier(split: &Split, seed: usize, loss: usize, lr: usize) -> Run {
    let clock = Instant::now();
    let mut rng = Rng::new(SEEDS[seed], 100);
    let bias = -((1.0 - PRIOR) / PRIOR).ln();
    let mut model = Mlp::new(FEATURES, CLS_HIDDEN, 1, bias, &mut rng);
    let mut criterion = ClsLoss::by_index(loss);
    fit(
        &mut model,
        &split.train,
        CLS_LRS[lr],
        CLS_EPOCHS,
        BATCH,
        |o, t, g| criterion.loss_grad(o, t, g),
    );
    let ap = |set: &Set| {
        let labels: Vec<bool> = set.y.iter().map(|&y| y > 0.5).collect();
        average_precision(&model.predict(&set.x), &labels)
    };
    let (val, test) = (ap(&split.val), ap(&split.test));
    println!(
        "  seed {} {:<6} lr {:.0e}: val AP {:.4}  test AP {:.4}  ({:.1} s)",
        SEEDS[seed],
        ClsLoss::NAMES[loss],
        CLS_LRS[lr],
        val,
        test,
        clock.elapsed().as_secs_f64()
    );
    Run {
        loss,
        lr,
        seed,
        val,
        test,
        model,
    }
}

fn train_regressor(split: &Split, seed: usize, loss: usize, lr: usize) -> Run {
    let clock = Instant::now();
    let mut rng = Rng::new(SEEDS[seed], 200);
    let mut model = Mlp::new(FEATURES, REG_HIDDEN, OFFSETS, 0.0, &mut rng);
    let mut criterion = RegLoss::by_index(loss);
    fit(
        &mut model,
        &split.train,
        REG_LRS[lr],
        REG_EPOCHS,
        BATCH / OFFSETS,
        |o, t, g| criterion.loss_grad(o, t, g),
    );
    let error = |set: &Set| {
        let pred = model.predict(&set.x);
        let sum: f64 = pred
            .iter()
            .zip(&set.y)
            .map(|(p, t)| f64::from((p - t).abs()))
            .sum();
        sum / pred.len() as f64
    };
    let (val, test) = (error(&split.val), error(&split.test));
    println!(
        "  seed {} {:<9} lr {:.0e}: val err {:.5}  test err {:.5}  ({:.1} s)",
        SEEDS[seed],
        RegLoss::NAMES[loss],
        REG_LRS[lr],
        val,
        test,
        clock.elapsed().as_secs_f64()
    );
    Run {
        loss,
        lr,
        seed,
        val,
        test,
        model,
    }
}

/// The learning rate (index) with the best mean validation score for `loss`.
fn best_lr(runs: &[Run], loss: usize, lrs: usize, higher_is_better: bool) -> usize {
    let mean_val = |lr: usize| {
        let vals: Vec<f64> = runs
            .iter()
            .filter(|r| r.loss == loss && r.lr == lr)
            .map(|r| r.val)
            .collect();
        let m = summary(&vals).0;
        if higher_is_better {
            m
        } else {
            -m
        }
    };
    (0..lrs)
        .max_by(|&a, &b| mean_val(a).total_cmp(&mean_val(b)))
        .unwrap_or(0)
}

/// The first seed's model of `loss` at its selected learning rate.
fn best_model(runs: &[Run], loss: usize, higher_is_better: bool) -> &Mlp {
    let lrs = runs.iter().map(|r| r.lr + 1).max().unwrap_or(1);
    let lr = best_lr(runs, loss, lrs, higher_is_better);
    let run = runs
        .iter()
        .find(|r| r.loss == loss && r.lr == lr && r.seed == 0);
    &run.expect("every job ran").model
}

/// The test scores of each loss at its selected learning rate; `p` decimals.
fn print_table(
    title: &str,
    names: &[&str],
    lrs: &[f32],
    runs: &[Run],
    higher_is_better: bool,
    p: usize,
) {
    println!("\n{title}");
    println!(
        "  {:<12} {:>5} {:>8} {:>20} {:>9}",
        "loss", "lr", "val", "test [min, max]", "per seed"
    );
    for (loss, name) in names.iter().enumerate() {
        let lr = best_lr(runs, loss, lrs.len(), higher_is_better);
        let chosen: Vec<&Run> = runs
            .iter()
            .filter(|r| r.loss == loss && r.lr == lr)
            .collect();
        let val = summary(&chosen.iter().map(|r| r.val).collect::<Vec<_>>()).0;
        let tests: Vec<f64> = chosen.iter().map(|r| r.test).collect();
        let (mean, min, max) = summary(&tests);
        let per_seed: Vec<String> = tests.iter().map(|t| format!("{t:.p$}")).collect();
        println!(
            "  {:<12} {:>5.0e} {:>8.p$} {:>8.p$} [{:.p$}, {:.p$}]  {}",
            name,
            lrs[lr],
            val,
            mean,
            min,
            max,
            per_seed.join(" ")
        );
    }
}
