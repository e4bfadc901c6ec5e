//! Throughput of GHM-C and GHM-R, loss only and loss + gradient, in elements/s.

use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use ghm::{Config, GhmC, GhmR};

/// A deterministic RetinaNet-like batch: mostly easy negatives, ~1% positives.
fn batch(n: usize) -> (Vec<f32>, Vec<f32>) {
    let mut s = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        (s >> 40) as f32 / (1u64 << 24) as f32
    };
    let t: Vec<f32> = (0..n)
        .map(|_| if next() < 0.01 { 1.0 } else { 0.0 })
        .collect();
    let x = t
        .iter()
        .map(|&t| (next() - 0.5) * 6.0 + if t > 0.0 { 1.0 } else { -4.0 })
        .collect();
    (x, t)
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("ghm");
    for &n in &[1_000usize, 100_000, 1_000_000] {
        let (x, t) = batch(n);
        let mut grad = vec![0.0f32; n];
        group.throughput(Throughput::Elements(n as u64));
        let cfg = Config {
            bins: 30,
            momentum: 0.75,
            ..Config::ghm_c()
        };
        let mut ghmc = GhmC::new(cfg).unwrap();
        group.bench_with_input(BenchmarkId::new("ghmc_loss_grad", n), &n, |b, _| {
            b.iter(|| ghmc.loss_grad(black_box(&x), &t, None, &mut grad).unwrap())
        });
        let mut ghmr = GhmR::new(Config::ghm_r()).unwrap();
        group.bench_with_input(BenchmarkId::new("ghmr_loss_grad", n), &n, |b, _| {
            b.iter(|| ghmr.loss_grad(black_box(&x), &t, None, &mut grad).unwrap())
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
