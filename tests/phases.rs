//! The three-phase API (accumulate, commit, apply): the one-shot calls equal the three in a
//! row, chunks and workers merge exactly, caller-filled stats commit, class-index layouts
//! equal materialised one-hot targets, and every output mode writes what it says.

mod common;

use common::{batch, Rng};
use ghm::{
    ClassLayout, Config, Error, Ghm, GhmC, GhmR, Kind, Loss, Output, OutputKind, Stats, STATS_LEN,
};

fn cfg(kind: Kind) -> Config {
    Config {
        bins: 30,
        momentum: 0.75,
        ..Config::default_for(kind)
    }
}

/// A state that has seen a few calls.
fn warmed<L: Loss>(kind: Kind, seed: u64) -> Ghm<L> {
    warmed_with::<L>(kind, cfg(kind), seed)
}

fn warmed_with<L: Loss>(kind: Kind, config: Config, seed: u64) -> Ghm<L> {
    let mut g = Ghm::<L>::new(config).unwrap();
    let mut rng = Rng::new(seed);
    for _ in 0..3 {
        let (a, b, w) = batch(kind, &mut rng, 300, true);
        g.loss(&a, &b, w.as_deref()).unwrap();
    }
    g
}

/// With `far`, some inputs (logits, residuals) are 1e25 or -1e25: past the loose bound the
/// vector paths' first pass keeps on the magnitudes (2^64), so the one-shot call looks for
/// the exact largest one before it decides how to find its loss. With a tiny loss weight
/// (1e-30: coefficients near 1e-33) the run that finds a large loss first, with
/// coefficients scaled down, would lose it to underflow: the results must still be the
/// three phases'.
fn phases_equal_one_shot<L: Loss>(kind: Kind, far: bool, loss_weight: f32) {
    let mut rng = Rng::new(11);
    let (mut a, b, w) = batch(kind, &mut rng, 1234, true);
    if far {
        for i in (5..a.len()).step_by(97) {
            a[i] = if i % 2 == 0 { 1e25 } else { -1e25 };
        }
    }
    let config = Config {
        loss_weight,
        ..cfg(kind)
    };
    let mut one = warmed_with::<L>(kind, config, 5);
    let mut three = one.clone();
    let mut g1 = vec![0.0; a.len()];
    let l1 = one.loss_grad(&a, &b, w.as_deref(), &mut g1).unwrap();

    let mut stats = three.stats();
    three.accumulate(&mut stats, &a, &b, w.as_deref()).unwrap();
    let weights = three.commit(&stats).unwrap();
    let mut g3 = vec![0.0; a.len()];
    weights
        .apply(&a, &b, w.as_deref(), Output::GRADIENT, &mut g3)
        .unwrap();
    let l3 = weights.loss().unwrap();
    if far {
        // the commit sums each region's terms, the one-shot call each element's product
        // with its coefficient: with a few terms near 1e25 they may round differently
        assert!((l1 - l3).abs() <= 1e-6 * l3.abs(), "{l1} vs {l3}");
    } else {
        assert_eq!(l1.to_bits(), l3.to_bits());
    }
    assert_eq!(g1, g3);
    assert_eq!(one.state(), three.state());
    // the loss as one chunk's share (the apply that sums it): the one-shot call's, bit for bit
    let share = weights
        .apply_loss(&a, &b, w.as_deref(), Output::GRADIENT, None)
        .unwrap();
    assert_eq!((share as f32).to_bits(), l1.to_bits(), "{share} vs {l1}");
}

#[test]
fn one_shot_equals_accumulate_commit_apply() {
    phases_equal_one_shot::<ghm::Classification>(Kind::Classification, false, 1.0);
    phases_equal_one_shot::<ghm::Regression>(Kind::Regression, false, 1.0);
}

#[test]
fn one_shot_with_magnitudes_past_the_first_pass_bound_equals_the_three_phases() {
    for loss_weight in [1.0, 1e-30] {
        phases_equal_one_shot::<ghm::Classification>(Kind::Classification, true, loss_weight);
        phases_equal_one_shot::<ghm::Regression>(Kind::Regression, true, loss_weight);
    }
}

/// Chunks accumulated separately (as threads would) and merged give the same counts, the
/// same EMA step and the same gradients as one pass; the loss differs at most by f64
/// summation order. Merging by a flat sum of doubles (an allreduce) is the same as `merge`.
fn chunks_merge_exactly<L: Loss>(kind: Kind) {
    let mut rng = Rng::new(21);
    let (a, b, w) = batch(kind, &mut rng, 2000, true);
    let w = w.unwrap();
    let base = warmed::<L>(kind, 9);
    let mut whole = base.stats();
    base.accumulate(&mut whole, &a, &b, Some(&w)).unwrap();

    let cuts = [0usize, 3, 517, 518, 1400, 2000];
    let mut parts: Vec<Stats> = Vec::new();
    for c in cuts.windows(2) {
        let mut s = base.stats();
        base.accumulate(&mut s, &a[c[0]..c[1]], &b[c[0]..c[1]], Some(&w[c[0]..c[1]]))
            .unwrap();
        parts.push(s);
    }
    let mut merged = parts[0];
    for p in &parts[1..] {
        merged.merge(p);
    }
    assert_eq!(merged.count, whole.count);
    for k in 0..ghm::MAX_BINS {
        assert!((merged.loss_sum[k] - whole.loss_sum[k]).abs() <= 1e-9 * whole.loss_sum[k].abs());
    }

    // A flat sum of the doubles, as MPI_Allreduce(MPI_SUM) does.
    let as_doubles = |s: &Stats| -> Vec<f64> {
        assert_eq!(std::mem::size_of::<Stats>(), STATS_LEN * 8);
        let p = s as *const Stats as *const f64;
        (0..STATS_LEN).map(|i| unsafe { *p.add(i) }).collect()
    };
    let mut flat = vec![0.0f64; STATS_LEN];
    for p in &parts {
        for (f, x) in flat.iter_mut().zip(as_doubles(p)) {
            *f += x;
        }
    }
    let mut reduced = base.stats();
    unsafe {
        std::ptr::copy_nonoverlapping(
            flat.as_ptr(),
            &mut reduced as *mut Stats as *mut f64,
            STATS_LEN,
        )
    };
    assert_eq!(reduced, merged);

    let (mut x, mut y) = (base.clone(), base.clone());
    let wx = x.commit(&merged).unwrap();
    let wy = y.commit(&whole).unwrap();
    assert_eq!(x.state(), y.state());
    assert!((wx.loss().unwrap() - wy.loss().unwrap()).abs() <= 1e-6 * wy.loss().unwrap().abs());
    assert_eq!(wx.coefficients(), wy.coefficients());
}

#[test]
fn chunked_and_merged_stats_equal_one_pass() {
    chunks_merge_exactly::<ghm::Classification>(Kind::Classification);
    chunks_merge_exactly::<ghm::Regression>(Kind::Regression);
}

/// A trainer that histograms on its own device ships only the counts (and tot): the
/// weights are those of the full stats; the loss is then the caller's business (0 here).
fn caller_filled_counts<L: Loss>(kind: Kind) {
    let mut rng = Rng::new(31);
    let (a, b, w) = batch(kind, &mut rng, 999, true);
    let mut g = Ghm::<L>::new(cfg(kind)).unwrap();
    let mut h = g.clone();
    let mut full = g.stats();
    g.accumulate(&mut full, &a, &b, w.as_deref()).unwrap();
    let mut counts = h.stats();
    counts.count = full.count;
    counts.weight_sum = full.weight_sum;
    let (wa, wb) = (g.commit(&full).unwrap(), h.commit(&counts).unwrap());
    assert_eq!(wa.coefficients(), wb.coefficients());
    assert_eq!(wb.loss().unwrap(), 0.0);
    assert!(wa.loss().unwrap() > 0.0);
}

#[test]
fn caller_filled_counts_commit_to_the_same_weights() {
    caller_filled_counts::<ghm::Classification>(Kind::Classification);
    caller_filled_counts::<ghm::Regression>(Kind::Regression);
}

#[test]
fn mismatched_stats_and_weights_are_refused() {
    let mut c = GhmC::new(cfg(Kind::Classification)).unwrap();
    let mut r = GhmR::new(cfg(Kind::Regression)).unwrap();
    let other_bins = GhmC::new(Config {
        bins: 10,
        ..cfg(Kind::Classification)
    })
    .unwrap();
    let before = *c.state();
    assert_eq!(c.commit(&r.stats()), Err(Error::StatsMismatch));
    assert_eq!(c.commit(&other_bins.stats()), Err(Error::StatsMismatch));
    let mut s = c.stats();
    assert_eq!(
        c.accumulate(&mut r.stats(), &[0.0], &[0.0], None),
        Err(Error::StatsMismatch)
    );
    s.count[40] = 1.0; // beyond 30 bins
    assert_eq!(c.commit(&s), Err(Error::StatsMismatch));
    let mut s = c.stats();
    s.count[2] = -1.0;
    assert_eq!(c.commit(&s), Err(Error::StatsMismatch));
    assert_eq!(c.state(), &before, "a refused commit leaves the state");
    // RegionWeights of one loss applied as the other loss's (through the C boundary's rule).
    let wr = r.commit(&r.stats()).unwrap();
    let mut out = [7.0f32];
    let st = unsafe {
        ghm::ffi::ghm_c_apply(
            &wr,
            [0.5f32].as_ptr(),
            [1.0f32].as_ptr(),
            std::ptr::null(),
            1,
            std::ptr::null(),
            out.as_mut_ptr(),
        )
    };
    assert_eq!(st, ghm::ffi::GHM_ERR_WRONG_LOSS);
    assert_eq!(out, [7.0]);
}

/// Class-index targets give exactly what materialised one-hot targets and per-element
/// weights give, for mmdetection's `[anchors][classes]` rows and for Darknet-style planes
/// (the transpose, written at the transposed positions).
#[test]
fn class_index_layouts_equal_materialised_one_hot() {
    let (anchors, classes) = (53usize, 7usize);
    let mut rng = Rng::new(41);
    let logits: Vec<f32> = (0..anchors * classes)
        .map(|_| -3.0 + 2.0 * rng.normal())
        .collect();
    let labels: Vec<i32> = (0..anchors)
        .map(|i| match i % 9 {
            0 => -1,
            1..=3 => (rng.next_u64() % classes as u64) as i32,
            _ => classes as i32,
        })
        .collect();
    let aw: Vec<f32> = (0..anchors)
        .map(|i| if i % 11 == 0 { 0.0 } else { 1.0 })
        .collect();
    let onehot: Vec<f32> = (0..anchors * classes)
        .map(|i| f32::from(u8::from(labels[i / classes] == (i % classes) as i32)))
        .collect();
    let ew: Vec<f32> = (0..anchors * classes).map(|i| aw[i / classes]).collect();

    let base = warmed::<ghm::Classification>(Kind::Classification, 3);
    let (mut v, mut r, mut p) = (base.clone(), base.clone(), base.clone());
    let mut gv = vec![0.0; logits.len()];
    let lv = v.loss_grad(&logits, &onehot, Some(&ew), &mut gv).unwrap();
    let mut gr = vec![0.0; logits.len()];
    let lr = r
        .loss_grad_labels(
            &logits,
            ClassLayout::rows(anchors, classes),
            &labels,
            Some(&aw),
            &mut gr,
        )
        .unwrap();
    assert_eq!(lv.to_bits(), lr.to_bits());
    assert_eq!(gv, gr);
    assert_eq!(v.state(), r.state());

    // Planes: element (anchor i, class c) at c * anchors + i.
    let planes = ClassLayout {
        anchors,
        classes,
        anchor_stride: 1,
        class_stride: anchors,
        ..ClassLayout::rows(0, 0)
    };
    let mut t = vec![0.0; logits.len()];
    for i in 0..anchors {
        for c in 0..classes {
            t[c * anchors + i] = logits[i * classes + c];
        }
    }
    let mut gp = vec![0.0; logits.len()];
    let lp = p
        .loss_grad_labels(&t, planes, &labels, Some(&aw), &mut gp)
        .unwrap();
    assert!((lp - lv).abs() <= 1e-6 * lv.abs());
    for i in 0..anchors {
        for c in 0..classes {
            assert_eq!(gp[c * anchors + i], gv[i * classes + c]);
        }
    }
    assert_eq!(p.state(), v.state());

    let bad = ClassLayout {
        anchors,
        classes,
        anchor_stride: 2,
        class_stride: 3,
        ..ClassLayout::rows(0, 0)
    };
    assert_eq!(
        p.clone().loss_grad_labels(&t, bad, &labels, None, &mut gp),
        Err(Error::Layout)
    );
}

/// Element weights are the gradient divided by the direction; element losses sum to the
/// loss times tot; `scale` and `accumulate` do what they say; Darknet's delta is `-factor`
/// times the gradient.
#[test]
fn output_modes_write_weights_losses_deltas_and_accumulate() {
    for kind in [Kind::Classification, Kind::Regression] {
        let mut rng = Rng::new(51);
        let (a, b, w) = batch(kind, &mut rng, 500, true);
        let w = w.unwrap();
        let (weights, grad) = match kind {
            Kind::Classification => {
                let mut g = GhmC::new(cfg(kind)).unwrap();
                let mut s = g.stats();
                g.accumulate(&mut s, &a, &b, Some(&w)).unwrap();
                let wt = g.commit(&s).unwrap();
                let mut grad = vec![0.0; a.len()];
                wt.apply(&a, &b, Some(&w), Output::GRADIENT, &mut grad)
                    .unwrap();
                (wt, grad)
            }
            Kind::Regression => {
                let mut g = GhmR::new(cfg(kind)).unwrap();
                let mut s = g.stats();
                g.accumulate(&mut s, &a, &b, Some(&w)).unwrap();
                let wt = g.commit(&s).unwrap();
                let mut grad = vec![0.0; a.len()];
                wt.apply(&a, &b, Some(&w), Output::GRADIENT, &mut grad)
                    .unwrap();
                (wt, grad)
            }
        };
        let run = |kind_out: OutputKind, scale: f32, accumulate: bool, init: f32| {
            let mut out = vec![init; a.len()];
            let o = Output {
                kind: kind_out,
                scale,
                add: accumulate,
                sum: false,
            };
            weights.apply(&a, &b, Some(&w), o, &mut out).unwrap();
            out
        };
        let ew = run(OutputKind::ElementWeight, 1.0, false, 0.0);
        let el = run(OutputKind::ElementLoss, 1.0, false, 0.0);
        let mut loss_sum = 0.0f64;
        for i in 0..a.len() {
            let (_, term, dir) = common::element(kind, cfg(kind).mu, a[i], b[i]);
            let want = f64::from(ew[i]) * dir;
            // f32 direction vs f64: cancellation in p - t costs up to ~1e-7 absolute
            let tol = 1e-6 * want.abs() + 2e-7 * f64::from(ew[i]);
            assert!((f64::from(grad[i]) - want).abs() <= tol, "{kind:?} {i}");
            assert_eq!(ew[i] == 0.0, w[i] == 0.0);
            let want_l = f64::from(ew[i]) * weights.tot() * term;
            assert!((f64::from(el[i]) - want_l).abs() <= 1e-5 * want_l.abs() + 1e-12);
            loss_sum += f64::from(el[i]);
        }
        let mean = loss_sum / weights.tot();
        assert!(
            (mean - f64::from(weights.loss().unwrap())).abs() <= 1e-5 * mean.abs(),
            "{kind:?}"
        );
        let delta = run(OutputKind::Gradient, -2.5, false, 0.0);
        let acc = run(OutputKind::Gradient, 1.0, true, 0.25);
        for i in 0..a.len() {
            assert_eq!(delta[i], -2.5 * grad[i]);
            assert_eq!(acc[i], 0.25 + grad[i]);
        }
        let inf = Output {
            kind: OutputKind::Gradient,
            scale: f32::INFINITY,
            add: false,
            sum: false,
        };
        let mut out = vec![1.0; a.len()];
        assert_eq!(
            weights.apply(&a, &b, Some(&w), inf, &mut out),
            Err(Error::Output)
        );
        assert!(out.iter().all(|&x| x == 1.0));
    }
}

/// GHM-R given the residuals equals GHM-R given predictions and targets whose difference
/// is exact: the first pass's stats, and the apply's gradient and loss share bit for bit,
/// with label weights and without. (Without, every element is valid with target 0: the
/// one-shot plan's loop takes such stretches four vectors a step from the residuals alone,
/// while targets given go through its general step.)
#[test]
fn ghm_r_residual_input_equals_pred_minus_target() {
    let mut rng = Rng::new(61);
    let d: Vec<f32> = (0..1003).map(|_| rng.normal() * 0.1).collect();
    let pred: Vec<f32> = d.iter().map(|&x| x + 1.0).collect();
    let target = vec![1.0f32; d.len()];
    // exact: pred lies within [0.5, 2] of the target 1
    let d: Vec<f32> = pred.iter().zip(&target).map(|(p, t)| p - t).collect();
    let mut g = GhmR::new(cfg(Kind::Regression)).unwrap();
    let (mut s1, mut s2) = (g.stats(), g.stats());
    g.accumulate(&mut s1, &pred, &target, None).unwrap();
    g.accumulate_residual(&mut s2, &d, None).unwrap();
    assert_eq!(s1, s2);
    let weights = g.commit(&s1).unwrap();
    let w: Vec<f32> = (0..d.len()).map(|i| (i % 9) as f32 / 4.0).collect();
    let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    for lw in [None, Some(&w[..])] {
        let (mut g1, mut g2) = (vec![0f32; d.len()], vec![0f32; d.len()]);
        let given = weights.apply_loss(&pred, &target, lw, Output::GRADIENT, Some(&mut g1));
        let residual = weights.apply_residual_loss(&d, lw, Output::GRADIENT, Some(&mut g2));
        let case = format!("label weights {}", lw.is_some());
        assert_eq!(
            given.map(f64::to_bits),
            residual.map(f64::to_bits),
            "{case}"
        );
        assert!(given.is_ok_and(|l| l > 0.0), "{case}");
        assert!(bits(&g1) == bits(&g2), "{case}");
        assert!(g1.iter().any(|&x| x != 0.0), "{case}");
    }
}

/// An apply whose scaled or accumulated values would overflow f32 refuses with
/// `Error::Overflow` and writes nothing (the committed weights themselves are finite).
#[test]
fn apply_that_would_overflow_writes_nothing() {
    let mut g = GhmC::new(Config {
        loss_weight: 100.0,
        ..Config::ghm_c()
    })
    .unwrap();
    let (x, t) = ([3.0f32, -2.0], [0.0f32, 1.0]);
    let mut s = g.stats();
    g.accumulate(&mut s, &x, &t, None).unwrap();
    let w = g.commit(&s).unwrap();
    let huge = Output {
        kind: OutputKind::Gradient,
        scale: 3e38,
        add: false,
        sum: false,
    };
    let mut out = [1.5f32, 2.5];
    assert_eq!(w.apply(&x, &t, None, huge, &mut out), Err(Error::Overflow));
    assert_eq!(out, [1.5, 2.5]);
    // finite on its own (|value| < 1e38), infinite when added to f32::MAX
    let add = Output {
        kind: OutputKind::Gradient,
        scale: 1e36,
        add: true,
        sum: false,
    };
    let mut big = [f32::MAX, -f32::MAX];
    assert_eq!(w.apply(&x, &t, None, add, &mut big), Err(Error::Overflow));
    assert_eq!(big, [f32::MAX, -f32::MAX]);
    let mut fine = [0.0f32; 2];
    assert_eq!(w.apply(&x, &t, None, add, &mut fine), Ok(()));
}

/// Stats merged from two other bin counts whose tags average to this loss's are refused too.
#[test]
fn merged_stats_of_other_bin_counts_are_refused_even_when_their_tags_average_out() {
    let three = GhmC::new(Config {
        bins: 3,
        ..Config::ghm_c()
    })
    .unwrap();
    let two = GhmC::new(Config {
        bins: 2,
        ..Config::ghm_c()
    })
    .unwrap();
    let four = GhmC::new(Config {
        bins: 4,
        ..Config::ghm_c()
    })
    .unwrap();
    let mut s = two.stats();
    s.merge(&four.stats());
    let mut three = three;
    assert_eq!(three.commit(&s), Err(Error::StatsMismatch));
}

/// A fresh state given a warmed state's EMA with `set_ema` computes what the warmed one
/// computes (an imported checkpoint resumes the run); bad values change nothing.
fn imported_ema_resumes<L: Loss>(kind: Kind) {
    let mut warm = warmed::<L>(kind, 41);
    let mut state = *Ghm::<L>::new(cfg(kind)).unwrap().state();
    state.set_ema(warm.state().ema()).unwrap();
    assert_eq!(state.ema(), warm.state().ema());
    let mut imported = Ghm::<L>::from_state(state).unwrap();
    let (a, b, w) = batch(kind, &mut Rng::new(42), 500, true);
    let (mut g1, mut g2) = (vec![0f32; a.len()], vec![0f32; a.len()]);
    let l1 = warm.loss_grad(&a, &b, w.as_deref(), &mut g1).unwrap();
    let l2 = imported.loss_grad(&a, &b, w.as_deref(), &mut g2).unwrap();
    assert_eq!((l1, &g1), (l2, &g2), "{kind:?}");
    assert_eq!(warm.state().ema(), imported.state().ema(), "{kind:?}");

    let before = state;
    let bins = cfg(kind).bins as usize;
    assert_eq!(state.set_ema(&vec![1.0; bins - 1]), Err(Error::Length));
    for bad in [-1.0, f32::NAN, f32::INFINITY] {
        let mut ema = vec![1.0; bins];
        ema[bins / 2] = bad;
        assert_eq!(state.set_ema(&ema), Err(Error::StatsMismatch), "{bad}");
    }
    assert_eq!(state, before);
}

#[test]
fn an_imported_ema_resumes_the_run_and_bad_values_change_nothing() {
    imported_ema_resumes::<ghm::Classification>(Kind::Classification);
    imported_ema_resumes::<ghm::Regression>(Kind::Regression);
}

/// Contiguous rows of every width around the vector widths and beyond (a vector spans
/// rows, walked by a cursor over the rows with a label in range and one over the rows'
/// weights), with one and two labels per anchor, labels dense or mostly background (long
/// stretches without a label in range, which the cursor skips a vector of labels at a
/// time; out-of-range labels of every size, also beyond f32's exact integers), anchor
/// weights (some zero) or none, and as blocks of one anchor each (Darknet's boxes), on
/// every path this CPU has: the same loss, gradient and state, bit for bit, as
/// materialised targets and per-element weights.
#[test]
fn rows_of_every_width_equal_materialised_targets() {
    let base = warmed::<ghm::Classification>(Kind::Classification, 5);
    let isas: Vec<ghm::Isa> = ghm::Isa::ALL
        .iter()
        .copied()
        .filter(|&i| base.clone().set_isa(i).is_ok())
        .collect();
    let mut rng = Rng::new(19);
    let widths = [
        1usize, 2, 3, 4, 5, 7, 8, 9, 15, 16, 17, 31, 32, 33, 63, 64, 65, 80, 129,
    ];
    let cases = widths.iter().flat_map(|&c| {
        [false, true].into_iter().flat_map(move |sparse| {
            [
                (c, 1usize, true, sparse),
                (c, 2, true, sparse),
                (c, 1, false, sparse),
                (c, 2, false, sparse),
            ]
        })
    });
    let out_of_range = |classes: usize, r: u64| match r % 6 {
        0 => -1,
        1 => classes as i32 + 3,
        2 => i32::MAX,
        3 => i32::MIN,
        4 => (1 << 24) + 1,
        _ => classes as i32,
    };
    for (classes, k, weighted, sparse) in cases {
        let anchors = if sparse { 300 } else { 41 };
        let labels: Vec<i32> = (0..anchors * k)
            .map(|_| match rng.next_u64() % if sparse { 40 } else { 5 } {
                0 => out_of_range(classes, rng.next_u64()),
                1 => classes as i32 + 3,
                2..=4 => (rng.next_u64() % classes as u64) as i32,
                // background, as most anchors are
                _ => classes as i32,
            })
            .collect();
        let aw: Vec<f32> = (0..anchors)
            .map(|i| if i % 6 == 4 { 0.0 } else { 0.5 + rng.uniform() })
            .collect();
        let aw = weighted.then_some(aw);
        let logits: Vec<f32> = (0..anchors * classes).map(|_| 4.0 * rng.normal()).collect();
        let hot = |i: usize| {
            let row = &labels[i / classes * k..i / classes * k + k];
            f32::from(u8::from(row.contains(&((i % classes) as i32))))
        };
        let targets: Vec<f32> = (0..logits.len()).map(hot).collect();
        let ew: Option<Vec<f32>> = aw
            .as_ref()
            .map(|aw| (0..logits.len()).map(|i| aw[i / classes]).collect());
        // one block of rows, and one block per anchor (rows right after each other)
        let layouts = [
            ClassLayout::rows(anchors, classes),
            ClassLayout::rows(1, classes).batched(anchors, classes, 1, 0),
        ];
        for (layout, &isa) in layouts
            .iter()
            .flat_map(|l| isas.iter().map(move |i| (l.with_labels_per_anchor(k), i)))
        {
            let (mut v, mut r) = (base.clone(), base.clone());
            v.set_isa(isa).unwrap();
            r.set_isa(isa).unwrap();
            let mut gv = vec![0.0; logits.len()];
            let lv = v
                .loss_grad(&logits, &targets, ew.as_deref(), &mut gv)
                .unwrap();
            let mut gr = vec![0.0; logits.len()];
            let lr = r
                .loss_grad_labels(&logits, layout, &labels, aw.as_deref(), &mut gr)
                .unwrap();
            let case = format!("{isa:?}, {layout:?}, weights {weighted}, sparse {sparse}");
            assert_eq!(lv.to_bits(), lr.to_bits(), "{case}");
            assert_eq!(gv, gr, "{case}");
            assert_eq!(v.state(), r.state(), "{case}");
        }
    }
}

/// A batched layout (images of anchor-box blocks, with gaps between classes, blocks and
/// images) with several labels per anchor, in rows and in planes, equals materialised
/// multi-hot targets through the element-wise API: gradients bit for bit, states equal, the
/// loss bit for bit in row order (the element-wise order) and within rounding in planes
/// order; positions outside the layout are never written. With `sum`, the output is the
/// gradient times tot, bit for bit.
#[test]
fn batched_multi_label_layouts_equal_materialised_multi_hot() {
    let (images, boxes, anchors, classes, k) = (2usize, 3usize, 37usize, 11usize, 3usize);
    let cells = images * boxes * anchors;
    let mut rng = Rng::new(77);
    // labels: none, one, two distinct, a repeated one, out of range ones
    let labels: Vec<i32> = (0..cells * k)
        .map(|i| {
            let cell = i / k;
            let slot = i % k;
            let r = (rng.next_u64() % classes as u64) as i32;
            match (cell % 7, slot) {
                (0, _) => -1,
                (1, 0) | (2, 0) | (2, 1) | (3, _) => r,
                (4, 0) => r,
                (4, _) => classes as i32 + slot as i32 * 1000,
                (5, 1) => -5,
                (6, 2) => r,
                _ => -1,
            }
        })
        .collect();
    let aw: Vec<f32> = (0..cells)
        .map(|i| if i % 13 == 5 { 0.0 } else { 1.0 })
        .collect();
    let hot = |cell: usize, c: usize| labels[cell * k..cell * k + k].contains(&(c as i32));
    // element-wise reference, element order: cell-major, classes within (rows order)
    let logits: Vec<f32> = (0..cells * classes).map(|_| 6.0 * rng.normal()).collect();
    let multihot: Vec<f32> = (0..cells * classes)
        .map(|i| f32::from(u8::from(hot(i / classes, i % classes))))
        .collect();
    assert!(
        (0..cells).any(|cell| (0..classes).filter(|&c| hot(cell, c)).count() >= 2),
        "some cell has two classes"
    );
    let ew: Vec<f32> = (0..cells * classes).map(|i| aw[i / classes]).collect();
    let base = warmed::<ghm::Classification>(Kind::Classification, 9);

    let rows = ClassLayout::rows(anchors, classes);
    let planes = ClassLayout {
        class_stride: anchors + 2,
        ..ClassLayout::planes(anchors, classes)
    };
    // every path this CPU has (the runs' vector code, and its scalar instantiation)
    let isas: Vec<ghm::Isa> = ghm::Isa::ALL
        .iter()
        .copied()
        .filter(|&i| base.clone().set_isa(i).is_ok())
        .collect();
    let layouts = [(rows, true), (planes, false)];
    for ((layout, by_rows), isa) in layouts
        .into_iter()
        .flat_map(|l| isas.iter().map(move |&i| (l, i)))
    {
        let block = layout.extent().unwrap();
        let layout = layout
            .batched(boxes, block + 5, images, boxes * (block + 5) + 3)
            .with_labels_per_anchor(k);
        assert!(layout.is_supported());
        assert_eq!(layout.cells(), Some(cells));
        let pos = |cell: usize, c: usize| {
            let (blk, r) = (cell / anchors, cell % anchors);
            let (i, b) = (blk / boxes, blk % boxes);
            i * layout.image_stride
                + b * layout.box_stride
                + r * layout.anchor_stride
                + c * layout.class_stride
        };
        let sentinel = f32::from_bits(0x7fa5_a5a5);
        let mut x = vec![sentinel; layout.extent().unwrap()];
        for cell in 0..cells {
            for c in 0..classes {
                x[pos(cell, c)] = logits[cell * classes + c];
            }
        }
        // the element-wise reference on the same path
        let mut v = base.clone();
        v.set_isa(isa).unwrap();
        let mut gv = vec![0.0; logits.len()];
        let lv = v.loss_grad(&logits, &multihot, Some(&ew), &mut gv).unwrap();
        let mut l = base.clone();
        l.set_isa(isa).unwrap();
        let mut g = vec![sentinel; x.len()];
        let ll = l
            .loss_grad_labels(&x, layout, &labels, Some(&aw), &mut g)
            .unwrap();
        if by_rows {
            assert_eq!(ll.to_bits(), lv.to_bits());
        } else {
            assert!((ll - lv).abs() <= 1e-6 * lv.abs(), "{ll} vs {lv}");
        }
        assert_eq!(l.state(), v.state());
        let mut written = 0;
        for cell in 0..cells {
            for c in 0..classes {
                let (got, want) = (g[pos(cell, c)], gv[cell * classes + c]);
                assert_eq!(
                    got.to_bits(),
                    want.to_bits(),
                    "{isa:?} cell {cell} class {c}"
                );
                written += 1;
            }
        }
        let untouched = g
            .iter()
            .filter(|y| y.to_bits() == sentinel.to_bits())
            .count();
        assert_eq!(untouched + written, g.len(), "a gap was written");

        // the three phases, with the summed output (Darknet's delta: scale -1, sum); an
        // apply of region weights runs on the fastest path: compare with that path's g
        if isa == *isas.last().unwrap() {
            let three = base.clone();
            let mut stats = three.stats();
            three
                .accumulate_labels(&mut stats, &x, layout, &labels, Some(&aw))
                .unwrap();
            let wt = three.clone().commit(&stats).unwrap();
            let delta = Output {
                kind: OutputKind::Gradient,
                scale: -1.0,
                add: false,
                sum: true,
            };
            let mut d = vec![sentinel; x.len()];
            wt.apply_labels(&x, layout, &labels, Some(&aw), delta, &mut d)
                .unwrap();
            let tot = -(wt.tot() as f32);
            assert!(wt.tot() > 1.0);
            for (cell, &weight) in aw.iter().enumerate() {
                for c in 0..classes {
                    let i = pos(cell, c);
                    // weight 0: an overwrite writes +0
                    let want = if weight > 0.0 { g[i] * tot } else { 0.0 };
                    assert_eq!(d[i].to_bits(), want.to_bits(), "cell {cell} class {c}");
                }
            }
        }
        // too few labels for K per anchor
        assert_eq!(
            l.loss_grad_labels(&x, layout, &labels[1..], Some(&aw), &mut g),
            Err(Error::Length)
        );
    }
}

/// Blocks that overlap (box or image strides shorter than what they hold) are refused, sizes
/// that overflow have no extent or count, and a
/// layout whose new fields are 0 means what the four-field layout meant.
#[test]
fn batched_layouts_refuse_overlapping_blocks_and_read_zero_counts_as_one() {
    let rows = ClassLayout::rows(4, 3);
    assert!(!rows.batched(2, 11, 1, 0).is_supported());
    assert!(rows.batched(2, 12, 1, 0).is_supported());
    assert!(!rows.batched(2, 12, 2, 23).is_supported());
    assert!(rows.batched(2, 12, 2, 24).is_supported());
    assert_eq!(rows.batched(1, 0, 2, usize::MAX).extent(), None);
    assert_eq!(rows.batched(usize::MAX, 12, 2, 0).cells(), None);
    let zero = ClassLayout {
        labels_per_anchor: 0,
        boxes: 0,
        box_stride: 0,
        images: 0,
        image_stride: 0,
        ..rows
    };
    assert_eq!(zero.elements(), rows.elements());
    assert_eq!(zero.extent(), rows.extent());
    assert_eq!(zero.label_count(), Some(4));
    let mut rng = Rng::new(3);
    let x: Vec<f32> = (0..12).map(|_| rng.normal()).collect();
    let labels = [0, 2, -1, 1];
    let (mut a, mut b) = (
        warmed::<ghm::Classification>(Kind::Classification, 2),
        warmed::<ghm::Classification>(Kind::Classification, 2),
    );
    let (mut ga, mut gb) = (vec![0.0; 12], vec![0.0; 12]);
    let la = a
        .loss_grad_labels(&x, rows, &labels, None, &mut ga)
        .unwrap();
    let lb = b
        .loss_grad_labels(&x, zero, &labels, None, &mut gb)
        .unwrap();
    assert_eq!((la.to_bits(), ga), (lb.to_bits(), gb));
}

/// Region weights that are not intact are refused as such (`NotCommitted`) before any of
/// their fields is used, even by an output whose scale multiplies their `tot`.
#[test]
fn corrupted_region_weights_are_refused_before_their_fields_are_used() {
    let mut g = warmed::<ghm::Classification>(Kind::Classification, 7);
    let (a, b, _) = batch(Kind::Classification, &mut Rng::new(8), 200, false);
    let mut st = g.stats();
    g.accumulate(&mut st, &a, &b, None).unwrap();
    let mut w = g.commit(&st).unwrap();
    // SAFETY: RegionWeights is plain data (u32, f32 and f64 fields): any bytes are a value.
    unsafe {
        core::ptr::write_bytes(
            (&mut w as *mut ghm::RegionWeights).cast::<u8>(),
            0x7f,
            core::mem::size_of::<ghm::RegionWeights>(),
        );
    }
    let mut out = vec![0.0; a.len()];
    for sum in [false, true] {
        let spec = Output {
            sum,
            ..Output::GRADIENT
        };
        assert_eq!(
            w.apply(&a, &b, None, spec, &mut out),
            Err(Error::NotCommitted),
            "sum {sum}"
        );
    }
    assert!(out.iter().all(|&v| v == 0.0), "a refused apply wrote");
}

/// A loss that overflows f32 is refused (`Overflow`) and nothing is written, whatever the
/// sign of the loss weight: the one-shot calls bound the loss before their second pass.
#[test]
fn a_loss_that_overflows_is_refused_for_either_sign_of_the_loss_weight() {
    for loss_weight in [1e38f32, -1e38] {
        let mut g = GhmC::new(Config {
            loss_weight,
            ..cfg(Kind::Classification)
        })
        .unwrap();
        let before = *g.state();
        let x = vec![1e3f32; 64];
        let t = vec![0.0f32; 64];
        let mut grad = vec![7.0f32; 64];
        assert_eq!(
            g.loss_grad(&x, &t, None, &mut grad),
            Err(Error::Overflow),
            "loss weight {loss_weight}"
        );
        assert_eq!(g.loss(&x, &t, None), Err(Error::Overflow));
        assert!(grad.iter().all(|&v| v == 7.0), "a refused call wrote");
        assert_eq!(*g.state(), before, "a refused call changed the state");
        // and a batch whose loss fits gives a finite loss of the weight's sign
        let small = vec![-1.0f32; 64];
        let loss = g.loss_grad(&small, &t, None, &mut grad).unwrap();
        assert!(
            loss.is_finite() && loss.signum() == loss_weight.signum(),
            "{loss}"
        );
    }
}

/// At f32's edge the one-shot call (each element's `coef * term`, summed) and the three
/// phases (each region's terms summed, times its coefficient) may round to opposite sides of
/// f32::MAX, and only there: a loss both accept agrees to 1e-6, one refuses only when the
/// other's loss is within 1e-6 of f32::MAX, and the loss weight's sign flips the loss and
/// nothing else (the same decision, the negated bits). A GHM-R batch whose loss is 30
/// residuals near f32::MAX, its loss weight scanned across the edge, on every path this CPU
/// has (found by fuzzing with a loss weight of -4: the fuzz target's check of the edge
/// ignored the sign).
#[test]
fn at_f32s_edge_one_shot_and_three_phases_differ_only_by_rounding_for_either_sign() {
    let m = f32::MAX;
    let mut a = vec![0.0f32; 68];
    let mut b = vec![-9.835_294f32; 68];
    a[4..19].fill(m);
    b[40..55].fill(m);
    a[28..50].fill(-9.835_294);
    a[50..59].fill(11.623_529);
    let run = |isa: ghm::Isa, loss_weight: f32| {
        let mut one = GhmR::new(Config {
            bins: 17,
            momentum: 0.0,
            mu: 0.02,
            loss_weight,
            ..Config::ghm_r()
        })
        .unwrap();
        one.set_isa(isa).unwrap();
        let three = one.clone();
        let mut g = vec![0.0; a.len()];
        let l1 = one.loss_grad(&a, &b, None, &mut g);
        let (mut s, mut s2) = (three.stats(), three.stats());
        three.accumulate(&mut s, &a[..61], &b[..61], None).unwrap();
        three.accumulate(&mut s2, &a[61..], &b[61..], None).unwrap();
        s.merge(&s2);
        let l3 = three.clone().commit(&s).map(|w| w.loss().unwrap());
        (l1, l3)
    };
    for &isa in ghm::Isa::ALL.iter().filter(|i| i.is_available()) {
        // the loss weight at which the loss reaches f32::MAX, then 64 weights around it
        let edge = f64::from(m) / f64::from(run(isa, 1.0).1.unwrap());
        let mut refused = 0;
        for step in -32..32 {
            let lw = (edge * (1.0 + 4e-8 * f64::from(step))) as f32;
            let (p1, p3) = run(isa, lw);
            let (n1, n3) = run(isa, -lw);
            let neg = |r: Result<f32, Error>| r.map(|v| (-v).to_bits());
            assert_eq!(
                neg(p1),
                n1.map(f32::to_bits),
                "{isa:?} one-shot, weight {lw}"
            );
            assert_eq!(
                neg(p3),
                n3.map(f32::to_bits),
                "{isa:?} three phases, weight {lw}"
            );
            match (p1, p3) {
                (Ok(x), Ok(y)) => assert!((x - y).abs() <= 1e-6 * y.abs(), "{x} vs {y}"),
                (Ok(v), Err(e)) | (Err(e), Ok(v)) => {
                    assert_eq!(e, Error::Overflow);
                    assert!(v.abs() >= m * (1.0 - 1e-6), "{isa:?} refused against {v}");
                    refused += 1;
                }
                (Err(e1), Err(e3)) => assert_eq!((e1, e3), (Error::Overflow, Error::Overflow)),
            }
        }
        // the scan crosses the edge: both accept below it, both refuse above it, and the
        // two orders decide some weight in between differently (a property of this batch,
        // two weights on every path today, which shows the scan reaches the case; a change
        // to either order's rounding may move it without a bug)
        let (below, above) = (
            run(isa, (edge * 0.999) as f32),
            run(isa, (edge * 1.001) as f32),
        );
        assert!(below.0.is_ok() && below.1.is_ok(), "{isa:?}");
        assert!(above.0.is_err() && above.1.is_err(), "{isa:?}");
        assert!(
            refused > 0,
            "{isa:?}: no loss weight was decided differently"
        );
    }
}

/// An apply bounds its loss by its largest coefficient for every element, which a region
/// with no elements may hold (a count prior gives every region a coefficient): a loose
/// bound, past which the loss is decided first with every coefficient scaled by 2^-32. A
/// small loss of huge terms under a subnormal coefficient must survive that: the shares of
/// the counting applies, with and without an output, equal the one-shot loss bit for bit,
/// on every path this CPU has. (Found by fuzzing: two logits at f32::MAX with target 0 in a region whose
/// coefficient is 1.1e-40, the empty regions' 3.6e-4; the shares were 0 against 0.0769.)
#[test]
fn a_small_loss_found_past_a_loose_bound_keeps_its_subnormal_coefficients() {
    let n = 2749;
    let mut a = vec![0f32; n];
    a[..4].copy_from_slice(&[12.0, 12.748_733_5, f32::MAX, f32::MAX]);
    let t = vec![0f32; n];
    let cfg = Config {
        bins: 26,
        momentum: 0.0,
        loss_weight: f32::MIN_POSITIVE,
        options: ghm::OPT_EMA_BIAS_CORRECTION | ghm::OPT_DECAY_EMPTY_BINS,
        count_prior: f32::MIN_POSITIVE,
        ..Config::ghm_c()
    };
    for &isa in ghm::Isa::ALL.iter().filter(|i| i.is_available()) {
        let mut one = GhmC::new(cfg).unwrap();
        one.set_isa(isa).unwrap();
        let three = one.clone();
        let mut g1 = vec![0f32; n];
        let l1 = one.loss_grad(&a, &t, None, &mut g1).unwrap();
        assert!(l1 > 0.07, "{isa:?}: {l1}");
        let mut stats = three.counting_stats();
        three.accumulate(&mut stats, &a, &t, None).unwrap();
        let weights = three.clone().commit(&stats).unwrap();
        assert!(weights.coefficients().iter().any(|&c| c > 0.0 && c < 1e-39));
        let mut g3 = vec![0f32; n];
        let with_output = weights.apply_loss(&a, &t, None, Output::GRADIENT, Some(&mut g3));
        let alone = weights.apply_loss(&a, &t, None, Output::GRADIENT, None);
        for share in [with_output, alone] {
            let share = share.unwrap() as f32;
            assert_eq!(share.to_bits(), l1.to_bits(), "{isa:?}: {share} vs {l1}");
        }
        assert_eq!(g1, g3, "{isa:?}");
    }
}

/// The committed loss uses the f32 coefficients apply multiplies by, so the three phases and
/// a one-shot call agree even where a coefficient rounds to 0 in f32 (a subnormal loss weight:
/// the commit's loss was -5e-17 in f64 while every applied value was 0; found by fuzzing).
#[test]
fn committed_loss_uses_the_coefficients_apply_uses() {
    let cfg = Config {
        bins: 30,
        momentum: 0.0,
        mu: f32::from_bits(1_047_345_179),
        loss_weight: -f32::from_bits(1), // the negative subnormal nearest 0
        count_prior: f32::from_bits(1_050_213_529),
        ..Config::ghm_r()
    };
    let mut a = vec![0.0f32; 16];
    a[..3].copy_from_slice(&[-2.396_108e30, 3.735_764_3e-6, -95.97363]);
    let b = vec![0.0f32; 16];
    let mut one = ghm::GhmR::new(cfg).unwrap();
    let three = one.clone();
    let l1 = one.loss(&a, &b, None).unwrap();
    let mut s = three.stats();
    three.accumulate(&mut s, &a, &b, None).unwrap();
    let w = three.clone().commit(&s).unwrap();
    assert_eq!(w.loss().unwrap(), l1);
}

/// Rows at least a vector wide with anchor weights have their weights checked ahead of the
/// run when all are acceptable; when one is not, the first invalid element in element
/// order still decides the error, on every path this CPU has, in the one-shot and the
/// accumulate calls: a NaN logit in row 0 before a negative weight in row 3 is
/// `NonFinite`, a NaN weight on row 0 (its first element) before a NaN logit in its
/// second column is `Weight`, a negative or infinite weight alone is `Weight`; and nothing
/// is written or changed.
#[test]
fn wide_weighted_rows_report_the_first_invalid_element() {
    let (anchors, classes) = (6usize, 32usize);
    let labels: Vec<i32> = (0..anchors as i32).map(|i| i % 40).collect();
    let cases: [(usize, Option<usize>, f32, Error); 4] = [
        // (row of the bad weight, element of the NaN logit, the weight, expected)
        (3, Some(5), -1.0, Error::NonFinite),
        (0, Some(1), f32::NAN, Error::Weight),
        (4, None, -1.0, Error::Weight),
        (5, None, f32::INFINITY, Error::Weight),
    ];
    for &(bad_row, nan_at, bad_weight, want) in &cases {
        let mut logits = vec![-2.0f32; anchors * classes];
        if let Some(i) = nan_at {
            logits[i] = f32::NAN;
        }
        let mut aw = vec![1.0f32; anchors];
        aw[bad_row] = bad_weight;
        for &isa in ghm::Isa::ALL {
            let mut g = warmed::<ghm::Classification>(Kind::Classification, 3);
            if g.set_isa(isa).is_err() {
                continue;
            }
            let before = *g.state();
            let layout = ClassLayout::rows(anchors, classes);
            let mut grad = vec![7.0f32; logits.len()];
            let r = g.loss_grad_labels(&logits, layout, &labels, Some(&aw), &mut grad);
            assert_eq!(r, Err(want), "{isa:?} one-shot, weight row {bad_row}");
            assert!(grad.iter().all(|&v| v == 7.0), "{isa:?}: written");
            assert_eq!(*g.state(), before, "{isa:?}: state changed");
            let mut stats = g.stats();
            let empty = stats;
            let r = g.accumulate_labels(&mut stats, &logits, layout, &labels, Some(&aw));
            assert_eq!(r, Err(want), "{isa:?} accumulate, weight row {bad_row}");
            assert_eq!(stats, empty, "{isa:?}: stats changed");
        }
    }
}

/// A NaN or infinite input among elements of target 0 and label weights above 0 (which the
/// one-shot call's counting pass takes from the inputs alone where the end regions place
/// every lane) is refused with `NonFinite` wherever it lies, on every path this CPU has:
/// a logit among class-index rows without a label in range, without anchor weights and
/// with one per anchor (one of them 0), through the one-shot call and the counting
/// accumulate, and a GHM-R residual through the counting accumulate; nothing is written or
/// changed.
#[test]
fn a_non_finite_input_among_background_elements_is_refused() {
    let (anchors, classes) = (40usize, 16usize);
    let n = anchors * classes;
    // every label out of range: background everywhere
    let labels = vec![classes as i32; anchors];
    let layout = ClassLayout::rows(anchors, classes);
    let mut aw = vec![1.0f32; anchors];
    aw[5] = 0.0;
    for (bad, aw) in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY]
        .into_iter()
        .flat_map(|bad| [(bad, None), (bad, Some(&aw[..]))])
    {
        for at in [17, 333, n - 1, 0] {
            // logits of target 0 far in the first region, residuals too
            let mut logits = vec![-5.0f32; n];
            let mut d = vec![0.001f32; n];
            logits[at] = bad;
            d[at] = bad;
            for &isa in ghm::Isa::ALL {
                let mut c = warmed::<ghm::Classification>(Kind::Classification, 3);
                let mut r = warmed::<ghm::Regression>(Kind::Regression, 3);
                if c.set_isa(isa).is_err() || r.set_isa(isa).is_err() {
                    continue;
                }
                let what = format!("{isa:?}, {bad} at {at}, anchor weights {}", aw.is_some());
                let before = *c.state();
                let mut grad = vec![7.0f32; n];
                let got = c.loss_grad_labels(&logits, layout, &labels, aw, &mut grad);
                assert_eq!(got, Err(Error::NonFinite), "{what}: one-shot");
                assert!(grad.iter().all(|&v| v == 7.0), "{what}: written");
                assert_eq!(*c.state(), before, "{what}: state changed");
                let mut stats = c.counting_stats();
                let empty = stats;
                let got = c.accumulate_labels(&mut stats, &logits, layout, &labels, aw);
                assert_eq!(got, Err(Error::NonFinite), "{what}: accumulate");
                assert_eq!(stats, empty, "{what}: stats changed");
                let mut stats = r.counting_stats();
                let empty = stats;
                let got = r.accumulate_residual(&mut stats, &d, None);
                assert_eq!(got, Err(Error::NonFinite), "{what}: residual");
                assert_eq!(stats, empty, "{what}: residual stats changed");
            }
        }
    }
}

/// Counting stats: the first pass counts only, the commit has no loss, and the applies sum
/// it. Over the whole batch in one chunk, the loss is the one-shot call's bit for bit, and
/// so are the gradient and the state; over chunks (as threads would), the shares add up to
/// it to rounding, with the same gradient and state.
fn counting_phases_equal_one_shot<L: Loss>(kind: Kind) {
    let mut rng = Rng::new(41);
    let (a, b, w) = batch(kind, &mut rng, 2000, true);
    let w = w.unwrap();
    let base = warmed::<L>(kind, 13);
    let mut one = base.clone();
    let mut g1 = vec![0.0; a.len()];
    let l1 = one.loss_grad(&a, &b, Some(&w), &mut g1).unwrap();

    let mut whole = base.clone();
    let mut stats = whole.counting_stats();
    assert!(stats.is_counting() && !whole.stats().is_counting());
    whole.accumulate(&mut stats, &a, &b, Some(&w)).unwrap();
    assert!(
        stats.loss_sum.iter().all(|&s| s == 0.0),
        "counting stats sum no terms"
    );
    let weights = whole.commit(&stats).unwrap();
    assert!(weights.is_counting());
    assert_eq!(weights.loss(), Err(Error::NoLoss));
    let mut g3 = vec![f32::NAN; a.len()];
    let share = weights
        .apply_loss(&a, &b, Some(&w), Output::GRADIENT, Some(&mut g3))
        .unwrap();
    assert_eq!((share as f32).to_bits(), l1.to_bits());
    assert_eq!(g1, g3);
    assert_eq!(one.state(), whole.state());
    // the loss alone: the same value, nothing written
    let alone = weights.apply_loss(&a, &b, Some(&w), Output::GRADIENT, None);
    assert_eq!(alone.map(f64::to_bits), Ok(share.to_bits()));

    let mut split = base.clone();
    let cuts = [0usize, 3, 517, 518, 1400, 2000];
    let mut merged = split.counting_stats();
    for c in cuts.windows(2) {
        let mut s = split.counting_stats();
        let r = c[0]..c[1];
        split
            .accumulate(&mut s, &a[r.clone()], &b[r.clone()], Some(&w[r]))
            .unwrap();
        merged.merge(&s);
    }
    assert_eq!(merged.count, stats.count);
    assert_eq!(merged.weight_sum, stats.weight_sum);
    let weights = split.commit(&merged).unwrap();
    let mut g4 = vec![f32::NAN; a.len()];
    let mut total = 0.0f64;
    for c in cuts.windows(2) {
        let r = c[0]..c[1];
        total += weights
            .apply_loss(
                &a[r.clone()],
                &b[r.clone()],
                Some(&w[r.clone()]),
                Output::GRADIENT,
                Some(&mut g4[r]),
            )
            .unwrap();
    }
    assert!(
        (total - f64::from(l1)).abs() <= 1e-6 * f64::from(l1).abs(),
        "{total} vs {l1}"
    );
    assert_eq!(g1, g4);
    assert_eq!(one.state(), split.state());

    // weights committed from full stats: the shares add up to the commit's loss
    let mut full = base.clone();
    let mut fs = full.stats();
    full.accumulate(&mut fs, &a, &b, Some(&w)).unwrap();
    let fw = full.commit(&fs).unwrap();
    let total: f64 = cuts
        .windows(2)
        .map(|c| {
            let r = c[0]..c[1];
            fw.apply_loss(
                &a[r.clone()],
                &b[r.clone()],
                Some(&w[r]),
                Output::GRADIENT,
                None,
            )
            .unwrap()
        })
        .sum();
    let committed = f64::from(fw.loss().unwrap());
    assert!((total - committed).abs() <= 1e-6 * committed.abs());
}

#[test]
fn counting_stats_leave_the_loss_to_the_applies_and_equal_one_shot() {
    counting_phases_equal_one_shot::<ghm::Classification>(Kind::Classification);
    counting_phases_equal_one_shot::<ghm::Regression>(Kind::Regression);
}

/// Class-index targets through counting stats, split by anchors: the one-shot call's
/// gradient and state, and its loss to rounding (bit for bit in one chunk).
#[test]
fn counting_stats_with_class_index_targets_equal_one_shot() {
    let (anchors, classes) = (333, 7);
    let mut rng = Rng::new(43);
    let logits: Vec<f32> = (0..anchors * classes)
        .map(|_| 3.0 * rng.normal() - 2.0)
        .collect();
    let labels: Vec<i32> = (0..anchors)
        .map(|_| (rng.next_u64() % (classes as u64 + 2)) as i32 - 1)
        .collect();
    let aw: Vec<f32> = (0..anchors).map(|i| (i % 9 != 0) as i32 as f32).collect();
    let base = warmed::<ghm::Classification>(Kind::Classification, 17);
    let mut one = base.clone();
    let mut g1 = vec![0.0; logits.len()];
    let layout = ClassLayout::rows(anchors, classes);
    let l1 = one
        .loss_grad_labels(&logits, layout, &labels, Some(&aw), &mut g1)
        .unwrap();

    let mut three = base.clone();
    let cut = 120;
    let parts = [(0, cut), (cut, anchors)];
    let mut stats = three.counting_stats();
    for &(lo, hi) in &parts {
        let mut s = three.counting_stats();
        three
            .accumulate_labels(
                &mut s,
                &logits[lo * classes..hi * classes],
                ClassLayout::rows(hi - lo, classes),
                &labels[lo..hi],
                Some(&aw[lo..hi]),
            )
            .unwrap();
        if lo == 0 {
            stats = s;
        } else {
            stats.merge(&s);
        }
    }
    let weights = three.commit(&stats).unwrap();
    assert_eq!(one.state(), three.state());
    let mut g3 = vec![f32::NAN; logits.len()];
    let mut total = 0.0;
    for &(lo, hi) in &parts {
        let span = lo * classes..hi * classes;
        total += weights
            .apply_labels_loss(
                &logits[span.clone()],
                ClassLayout::rows(hi - lo, classes),
                &labels[lo..hi],
                Some(&aw[lo..hi]),
                Output::GRADIENT,
                Some(&mut g3[span]),
            )
            .unwrap();
    }
    assert!((total - f64::from(l1)).abs() <= 1e-6 * f64::from(l1));
    assert_eq!(g1, g3);
    let whole = weights
        .apply_labels_loss(&logits, layout, &labels, Some(&aw), Output::GRADIENT, None)
        .unwrap();
    assert_eq!((whole as f32).to_bits(), l1.to_bits());
}

/// Counting stats and stats that sum the loss do not mix: a merge of the two, or counting
/// stats holding loss sums, is refused by the commit, which then changes nothing.
#[test]
fn counting_and_summing_stats_do_not_mix() {
    let kind = Kind::Classification;
    let mut rng = Rng::new(47);
    let (a, b, w) = batch(kind, &mut rng, 500, true);
    let mut g = warmed::<ghm::Classification>(kind, 19);
    let before = *g.state();
    let (mut counting, mut summing) = (g.counting_stats(), g.stats());
    g.accumulate(&mut counting, &a, &b, w.as_deref()).unwrap();
    g.accumulate(&mut summing, &a, &b, w.as_deref()).unwrap();
    let mut mixed = counting;
    mixed.merge(&summing);
    assert_eq!(g.commit(&mixed), Err(Error::StatsMismatch));
    let mut mixed = summing;
    mixed.merge(&counting);
    assert_eq!(g.commit(&mixed), Err(Error::StatsMismatch));
    let mut filled = counting;
    filled.loss_sum[3] = 1.0;
    assert_eq!(g.commit(&filled), Err(Error::StatsMismatch));
    let mut s = filled;
    assert_eq!(
        g.accumulate(&mut s, &a, &b, w.as_deref()),
        Err(Error::StatsMismatch)
    );
    assert_eq!(
        s, filled,
        "a refused accumulate leaves the stats as they were"
    );
    assert_eq!(g.state(), &before);
    // one kind merged with itself is fine either way
    let mut twice = counting;
    twice.merge(&counting);
    assert!(g.commit(&twice).is_ok());
}

/// An apply whose loss share reaches f32's range returns [`Error::Overflow`] and writes
/// nothing; a share that is large but in range is returned (through the dry run the bound
/// on the loss calls for).
#[test]
fn apply_loss_that_would_overflow_writes_nothing() {
    let n = 64;
    let huge = |d: f32, loss_weight: f32| {
        // no momentum: every coefficient is loss_weight / n, the share loss_weight * d
        let config = Config {
            loss_weight,
            momentum: 0.0,
            ..cfg(Kind::Regression)
        };
        let mut g = GhmR::new(config).unwrap();
        let pred = vec![d; n];
        let target = vec![0.0; n];
        let mut stats = g.counting_stats();
        g.accumulate(&mut stats, &pred, &target, None).unwrap();
        let weights = g.commit(&stats).unwrap();
        let mut out = vec![7.0f32; n];
        let r = weights.apply_loss(&pred, &target, None, Output::GRADIENT, Some(&mut out));
        (r, out)
    };
    let (r, out) = huge(3.0e38, 2.0);
    assert_eq!(r, Err(Error::Overflow));
    assert!(out.iter().all(|&v| v == 7.0));
    let (r, out) = huge(2.5e38, 1.0);
    let share = r.unwrap();
    assert!((share / 2.5e38 - 1.0).abs() < 1e-3, "{share}");
    assert!(out.iter().all(|&v| v != 7.0 && v.is_finite()));
}
