//! One GHM-C call on a synthetic class-index batch, for counting its instructions with
//! callgrind (repeatable where wall-clock timings are not):
//!
//! ```sh
//! cargo build --release --example count_instructions
//! valgrind --tool=callgrind --callgrind-out-file=target/cg.out \
//!     target/release/examples/count_instructions 10000 labels
//! callgrind_annotate --inclusive=yes target/cg.out | grep loss_grad
//! ```
//!
//! Arguments: the number of anchors; `labels` (class-index targets,
//! `loss_grad_labels`; `weighted` with per-anchor label weights, 2% zero), `values` (the
//! same targets materialised, `loss_grad`), `plain` (the
//! crate's plain BCE-with-logits pass on them, the baseline) or `phases` (phase 1 of the
//! three-phase API with class-index targets, `accumulate_labels`, and the commit), or, for
//! GHM-R, `residual` (`GhmR::loss_grad` on the benchmarks' residuals: mu 0.02, bins 10,
//! momentum 0.7) and `plain-asl1` (the plain ASL1 pass on them); the logits,
//! `uniform` in [-6, 2] (the default: most elements away from the first region) or `bench`
//! (the benchmarks' batch: negatives in [-6, -3], most in the first region, as a
//! detector's easy negatives are); the number of calls (default 1; the extra calls are
//! class-index ones, for the fixed cost of a call: run with 1 and with many calls and take
//! the difference); the number of classes (default 80; the anchors' count is then of rows
//! of this many). One anchor in 100 has a label; bins 30, momentum 0.75.

use ghm::{ClassLayout, Config, GhmC};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let anchors: usize = args.get(1).map_or(10_000, |a| a.parse().expect("anchors"));
    let mode = args.get(2).map_or("labels", String::as_str);
    let classes: usize = args.get(5).map_or(80, |a| a.parse().expect("classes"));
    let n = anchors * classes;
    let mut s = 12345u64;
    let mut uniform = || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        (s >> 40) as f32 / (1u64 << 24) as f32
    };
    let labels: Vec<i32> = (0..anchors)
        .map(|i| {
            if i % 100 == 0 {
                (i % classes) as i32
            } else {
                classes as i32
            }
        })
        .collect();
    let hot = |i: usize| labels[i / classes] == (i % classes) as i32;
    let logits: Vec<f32> = match args.get(3).map_or("uniform", String::as_str) {
        "uniform" => (0..n).map(|_| -6.0 + 8.0 * uniform()).collect(),
        // the benchmarks' batch: easy negatives, as a detector's are
        "bench" => (0..n)
            .map(|i| {
                if hot(i) {
                    0.5 + 4.0 * (uniform() - 0.5)
                } else {
                    -4.5 + 3.0 * (uniform() - 0.5)
                }
            })
            .collect(),
        other => panic!("logits {other}: uniform or bench"),
    };
    // GHM-R's inputs: the benchmarks' residuals (mostly within 0.05 of 0, 3% near 3) and
    // zero targets
    let residuals = |uniform: &mut dyn FnMut() -> f32| {
        let pred: Vec<f32> = (0..n)
            .map(|_| 0.1 * (uniform() - 0.5) + if uniform() < 0.03 { 3.0 } else { 0.0 })
            .collect();
        (pred, vec![0f32; n])
    };
    let mut grad = vec![0f32; n];
    let config = Config {
        bins: 30,
        momentum: 0.75,
        ..Config::ghm_c()
    };
    let calls: usize = args.get(4).map_or(1, |a| a.parse().expect("calls"));
    let mut ghm = GhmC::new(config).expect("config");
    for _ in 1..calls {
        let layout = ClassLayout::rows(anchors, classes);
        ghm.loss_grad_labels(&logits, layout, &labels, None, &mut grad)
            .expect("loss");
    }
    let loss = match mode {
        "labels" => {
            let layout = ClassLayout::rows(anchors, classes);
            ghm.loss_grad_labels(&logits, layout, &labels, None, &mut grad)
        }
        "weighted" => {
            // per-anchor label weights, 2% zero (ignored anchors), as mmdetection passes them
            let aw: Vec<f32> = (0..anchors)
                .map(|i| if i % 50 == 7 { 0.0 } else { 1.0 })
                .collect();
            let layout = ClassLayout::rows(anchors, classes);
            ghm.loss_grad_labels(&logits, layout, &labels, Some(&aw), &mut grad)
        }
        "values" => {
            let targets: Vec<f32> = (0..n).map(|i| f32::from(u8::from(hot(i)))).collect();
            ghm.loss_grad(&logits, &targets, None, &mut grad)
        }
        "plain" => {
            let targets: Vec<f32> = (0..n).map(|i| f32::from(u8::from(hot(i)))).collect();
            ghm::__test::plain_bce(ghm::Isa::Auto, &logits, &targets, &mut grad)
        }
        "phases" => {
            // phase 1 of the three-phase API (its terms summed per region), then the commit
            let layout = ClassLayout::rows(anchors, classes);
            let mut stats = ghm.stats();
            ghm.accumulate_labels(&mut stats, &logits, layout, &labels, None)
                .and_then(|()| ghm.commit(&stats))
                .and_then(|w| w.loss())
        }
        "residual" => {
            let (pred, zeros) = residuals(&mut uniform);
            let config = Config {
                mu: 0.02,
                bins: 10,
                momentum: 0.7,
                loss_weight: 10.0,
                ..Config::ghm_r()
            };
            ghm::GhmR::new(config).and_then(|mut r| r.loss_grad(&pred, &zeros, None, &mut grad))
        }
        "plain-asl1" => {
            let (pred, zeros) = residuals(&mut uniform);
            ghm::__test::plain_asl1(ghm::Isa::Auto, 0.02, &pred, &zeros, &mut grad)
        }
        other => {
            panic!("mode {other}: labels, weighted, values, plain, phases, residual or plain-asl1")
        }
    };
    println!("loss {}", loss.expect("loss"));
}
