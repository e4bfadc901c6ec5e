//! Throughput in elements/s, per instruction-set path: GHM-C with value targets and with
//! class-index targets, GHM-R, each loss only and loss + gradient, at N = 1e3, 1e5, 1e6 and
//! 8e6; beside them the crate's own plain BCE-with-logits loss + gradient (what any loss
//! costs) and a copy of the same bytes (what memory allows).
//!
//! `cargo bench --bench ghm` (all), or e.g. `cargo bench --bench ghm -- 'avx2/ghmc_labels'`.
//! `GHM_BENCH_QUICK=1` keeps only N = 1e6 and 8e6.

use std::time::Duration;

use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use ghm::{ClassLayout, Config, GhmC, GhmR, Isa};

const CLASSES: usize = 80;

/// A RetinaNet-like batch of `n` elements (`n / 80` anchors x 80 classes, ~1% positive
/// anchors): logits, one-hot targets and class-index labels, plus GHM-R residuals.
struct Batch {
    logits: Vec<f32>,
    targets: Vec<f32>,
    labels: Vec<i32>,
    pred: Vec<f32>,
    zeros: Vec<f32>,
}

fn batch(n: usize) -> Batch {
    let mut s = 0x9e37_79b9_7f4a_7c15u64;
    let mut u = move || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        (s >> 40) as f32 / (1u64 << 24) as f32
    };
    let anchors = n.div_ceil(CLASSES);
    let labels: Vec<i32> = (0..anchors)
        .map(|_| {
            if u() < 0.01 {
                (u() * CLASSES as f32) as i32 % CLASSES as i32
            } else {
                CLASSES as i32
            }
        })
        .collect();
    let hot = |i: usize| labels[i / CLASSES] == (i % CLASSES) as i32;
    let targets: Vec<f32> = (0..n).map(|i| f32::from(u8::from(hot(i)))).collect();
    let logits = (0..n)
        .map(|i| {
            if hot(i) {
                0.5 + 4.0 * (u() - 0.5)
            } else {
                -4.5 + 3.0 * (u() - 0.5)
            }
        })
        .collect();
    let pred = (0..n)
        .map(|_| 0.1 * (u() - 0.5) + if u() < 0.03 { 3.0 } else { 0.0 })
        .collect();
    Batch {
        logits,
        targets,
        labels,
        pred,
        zeros: vec![0.0; n],
    }
}

fn bench(c: &mut Criterion) {
    let sizes: &[usize] = if std::env::var_os("GHM_BENCH_QUICK").is_some() {
        &[1_000_000, 8_000_000]
    } else {
        &[1_000, 100_000, 1_000_000, 8_000_000]
    };
    let coco_c = Config {
        bins: 30,
        momentum: 0.75,
        ..Config::ghm_c()
    };
    let coco_r = Config {
        mu: 0.02,
        bins: 10,
        momentum: 0.7,
        loss_weight: 10.0,
        ..Config::ghm_r()
    };
    for &isa in Isa::ALL.iter().filter(|i| i.is_available()) {
        let path = format!("{isa:?}").to_lowercase();
        let mut group = c.benchmark_group(path.as_str());
        group
            .warm_up_time(Duration::from_millis(500))
            .measurement_time(Duration::from_secs(2));
        for &n in sizes {
            if n >= 1_000_000 {
                group.sample_size(10);
            }
            let b = batch(n);
            let layout = ClassLayout::rows(n / CLASSES, CLASSES);
            let labelled = layout.elements().unwrap_or(0);
            let mut grad = vec![0.0f32; n];
            group.throughput(Throughput::Elements(n as u64));
            let mut ghmc = GhmC::new(coco_c).unwrap();
            ghmc.set_isa(isa).unwrap();
            let mut ghmr = GhmR::new(coco_r).unwrap();
            ghmr.set_isa(isa).unwrap();
            group.bench_function(BenchmarkId::new("ghmc_values/loss", n), |it| {
                it.iter(|| ghmc.loss(black_box(&b.logits), &b.targets, None).unwrap())
            });
            group.bench_function(BenchmarkId::new("ghmc_values/loss_grad", n), |it| {
                it.iter(|| {
                    ghmc.loss_grad(black_box(&b.logits), &b.targets, None, &mut grad)
                        .unwrap()
                })
            });
            let (x, l) = (&b.logits[..labelled], &b.labels[..labelled / CLASSES]);
            group.throughput(Throughput::Elements(labelled as u64));
            group.bench_function(BenchmarkId::new("ghmc_labels/loss", n), |it| {
                it.iter(|| {
                    let mut st = ghmc.stats();
                    ghmc.accumulate_labels(&mut st, black_box(x), layout, l, None)
                        .unwrap();
                    ghmc.commit(&st).unwrap().loss()
                })
            });
            group.bench_function(BenchmarkId::new("ghmc_labels/loss_grad", n), |it| {
                it.iter(|| {
                    ghmc.loss_grad_labels(black_box(x), layout, l, None, &mut grad[..labelled])
                        .unwrap()
                })
            });
            group.throughput(Throughput::Elements(n as u64));
            group.bench_function(BenchmarkId::new("ghmr/loss", n), |it| {
                it.iter(|| ghmr.loss(black_box(&b.pred), &b.zeros, None).unwrap())
            });
            group.bench_function(BenchmarkId::new("ghmr/loss_grad", n), |it| {
                it.iter(|| {
                    ghmr.loss_grad(black_box(&b.pred), &b.zeros, None, &mut grad)
                        .unwrap()
                })
            });
            group.bench_function(BenchmarkId::new("plain_bce/loss_grad", n), |it| {
                it.iter(|| {
                    ghm::__test::plain_bce(isa, black_box(&b.logits), &b.targets, &mut grad)
                        .unwrap()
                })
            });
            group.bench_function(BenchmarkId::new("copy", n), |it| {
                it.iter(|| grad.copy_from_slice(black_box(&b.logits)))
            });
        }
        group.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
