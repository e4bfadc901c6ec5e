//! Every unsafe pass on small inputs, sized for Miri (also runs, fast, under `cargo test`):
//! both losses; lengths 0, 1, one vector, odd tails; sub-slices at odd offsets; the three
//! phases; residual inputs; gradients in place; errors in the tail; class-index layouts (rows
//! and planes, apply_labels) with logits and probability inputs; and the C entry points
//! with NULL, length 0, in place, overlapping and misaligned buffers.
//!
//!   cargo +nightly miri test --features libm/force-soft-floats --test miri
//!   RUSTFLAGS='-C target-feature=+avx2,+fma' \
//!     cargo +nightly miri test --features libm/force-soft-floats --test miri
//!
//! (`libm/force-soft-floats`: libm's default `arch` feature computes sqrt with inline
//! assembly, which Miri cannot run.)
//!
//! Under Miri the SIMD path is used only when compiled in with `target-feature` (Miri cannot
//! run the cpuid probe), and the C entry points, which pick the path at run time, only then.

use ghm::{ClassLayout, Config, Error, GhmC, GhmR, Isa, Output, OutputKind, OPT_PROBABILITY_INPUT};

const LENS: &[usize] = &[0, 1, 7, 8, 9, 17];

/// The paths this run can take without a run-time CPU probe under Miri.
fn isas() -> Vec<Isa> {
    if cfg!(miri) && cfg!(all(target_feature = "avx2", target_feature = "fma")) {
        // The SIMD run of Miri: the scalar path has its own run.
        return vec![Isa::Avx2];
    }
    let mut v = vec![Isa::Scalar];
    if auto_path_runs() {
        v.extend(
            Isa::ALL
                .iter()
                .copied()
                .filter(|i| *i != Isa::Scalar && i.is_available()),
        );
    }
    v
}

/// Whether `Isa::Auto` can run: always natively; under Miri only if no CPU probe is needed.
fn auto_path_runs() -> bool {
    !cfg!(miri)
        || cfg!(all(target_feature = "avx2", target_feature = "fma"))
        || !cfg!(target_arch = "x86_64")
}

/// Deterministic values in [-6, 6).
fn values(n: usize, seed: u32) -> Vec<f32> {
    let mut x = seed.wrapping_mul(2_654_435_761).wrapping_add(1);
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            (x >> 8) as f32 / (1u32 << 24) as f32 * 12.0 - 6.0
        })
        .collect()
}

fn targets_c(n: usize) -> Vec<f32> {
    (0..n).map(|i| [0.0, 1.0, 0.25][i % 3]).collect()
}

fn weights(n: usize) -> Vec<f32> {
    (0..n).map(|i| [1.0, 0.0, 2.5][i % 3]).collect()
}

fn config() -> Config {
    Config {
        bins: 7,
        momentum: 0.5,
        ..Config::ghm_c()
    }
}

#[test]
fn one_shot_both_losses_every_length_and_path() {
    for isa in isas() {
        for &n in LENS {
            // Sub-slices at offset 1 of a longer buffer: not aligned to the vector width.
            let buf = values(n + 2, n as u32);
            let a = &buf[1..n + 1];
            let bc = targets_c(n);
            let br = values(n, 99);
            let w = weights(n);
            for wopt in [None, Some(&w[..])] {
                let mut c = GhmC::new(config()).unwrap();
                c.set_isa(isa).unwrap();
                let mut grad = vec![0.0; n];
                let l1 = c.loss_grad(a, &bc, wopt, &mut grad).unwrap();
                let mut inplace = a.to_vec();
                let mut c2 = GhmC::new(config()).unwrap();
                c2.set_isa(isa).unwrap();
                let l2 = c2.loss_grad_in_place(&mut inplace, &bc, wopt).unwrap();
                assert_eq!(l1.to_bits(), l2.to_bits());
                assert_eq!(grad, inplace);
                assert!(c.loss(a, &bc, wopt).unwrap().is_finite());

                let mut r = GhmR::new(config()).unwrap();
                r.set_isa(isa).unwrap();
                let mut grad = vec![0.0; n];
                assert!(r.loss_grad(a, &br, wopt, &mut grad).unwrap().is_finite());
                let mut inplace = a.to_vec();
                let mut r2 = GhmR::new(config()).unwrap();
                r2.set_isa(isa).unwrap();
                r2.loss_grad_in_place(&mut inplace, &br, wopt).unwrap();
                assert_eq!(grad, inplace);
            }
        }
    }
}

#[test]
fn three_phases_in_chunks_and_residuals() {
    for isa in isas() {
        let n = 19;
        let a = values(n, 5);
        let b = targets_c(n);
        let w = weights(n);
        let mut c = GhmC::new(config()).unwrap();
        c.set_isa(isa).unwrap();
        let mut stats = c.stats();
        c.accumulate(&mut stats, &a[..5], &b[..5], Some(&w[..5]))
            .unwrap();
        let mut rest = c.stats();
        c.accumulate(&mut rest, &a[5..], &b[5..], Some(&w[5..]))
            .unwrap();
        stats.merge(&rest);
        let weights = c.commit(&stats).unwrap();
        let mut r = GhmR::new(config()).unwrap();
        r.set_isa(isa).unwrap();
        let mut stats = r.stats();
        r.accumulate_residual(&mut stats, &a[1..], None).unwrap();
        assert!(r.commit(&stats).unwrap().loss().unwrap().is_finite());
        if !auto_path_runs() {
            continue; // `RegionWeights::apply` takes the run-time-detected path.
        }
        let mut out = vec![0.0; n];
        let (lo, hi) = out.split_at_mut(5);
        weights
            .apply(&a[..5], &b[..5], Some(&w[..5]), Output::GRADIENT, lo)
            .unwrap();
        weights
            .apply(&a[5..], &b[5..], Some(&w[5..]), Output::GRADIENT, hi)
            .unwrap();
        let mut inplace = a.clone();
        weights
            .apply_in_place(&mut inplace, &b, Some(&w), Output::GRADIENT)
            .unwrap();
        assert_eq!(out, inplace);
    }
}

/// Background elements (target 0, every lane valid), which the one-shot passes take from
/// the inputs alone, give what materialised targets give: class-index rows with no label in
/// range but in the last row, without anchor weights and with one per anchor (one of them
/// 0), long enough for four-vector steps and, at 16 classes, for weights checked ahead of
/// the first pass; and residuals without weights through the counting accumulate and the
/// apply.
#[test]
fn background_elements_equal_materialised_targets() {
    for isa in isas() {
        for (anchors, classes) in [(9usize, 5usize), (5, 16)] {
            let n = anchors * classes;
            // far below 0 (target 0: the first regions), as a detector's easy negatives
            let logits: Vec<f32> = values(n, 11).iter().map(|x| x / 2.0 - 7.0).collect();
            let mut labels = vec![classes as i32; anchors];
            labels[anchors - 1] = 1;
            let targets: Vec<f32> = (0..n)
                .map(|i| f32::from(u8::from(labels[i / classes] == (i % classes) as i32)))
                .collect();
            let mut aw = vec![1.0f32; anchors];
            aw[2] = 0.0;
            let ew: Vec<f32> = (0..n).map(|i| aw[i / classes]).collect();
            for weighted in [false, true] {
                let mut c = GhmC::new(config()).unwrap();
                c.set_isa(isa).unwrap();
                let mut v = c.clone();
                let (mut gl, mut gv) = (vec![0.0; n], vec![0.0; n]);
                let layout = ClassLayout::rows(anchors, classes);
                let (aw, ew) = if weighted {
                    (Some(&aw[..]), Some(&ew[..]))
                } else {
                    (None, None)
                };
                let ll = c.loss_grad_labels(&logits, layout, &labels, aw, &mut gl);
                let lv = v.loss_grad(&logits, &targets, ew, &mut gv);
                let case = format!("{isa:?} {anchors}x{classes} weighted {weighted}");
                assert_eq!(ll.map(f32::to_bits), lv.map(f32::to_bits), "{case}");
                assert_eq!(gl, gv, "{case}");
                assert_eq!(c.state(), v.state(), "{case}");
            }
        }
        let n = 40;
        let d: Vec<f32> = values(n, 13).iter().map(|x| x / 600.0).collect();
        let pred: Vec<f32> = d.iter().map(|x| x + 1.0).collect();
        let target = vec![1.0f32; n];
        // exact: pred lies within [0.5, 2] of the target 1
        let d: Vec<f32> = pred.iter().zip(&target).map(|(p, t)| p - t).collect();
        let mut r = GhmR::new(config()).unwrap();
        r.set_isa(isa).unwrap();
        let (mut s1, mut s2) = (r.counting_stats(), r.counting_stats());
        r.accumulate_residual(&mut s1, &d, None).unwrap();
        r.accumulate(&mut s2, &pred, &target, None).unwrap();
        assert_eq!(s1, s2, "{isa:?}");
        if !auto_path_runs() {
            continue; // `RegionWeights::apply` takes the run-time-detected path.
        }
        let weights = r.commit(&s1).unwrap();
        let (mut g1, mut g2) = (vec![0.0; n], vec![0.0; n]);
        let l1 = weights.apply_residual_loss(&d, None, Output::GRADIENT, Some(&mut g1));
        let l2 = weights.apply_loss(&pred, &target, None, Output::GRADIENT, Some(&mut g2));
        assert_eq!(l1.map(f64::to_bits), l2.map(f64::to_bits), "{isa:?}");
        assert_eq!(g1, g2, "{isa:?}");
    }
}

#[test]
fn errors_in_the_tail_write_nothing() {
    for isa in isas() {
        for &n in &LENS[1..] {
            let mut a = values(n, 3);
            let b = targets_c(n);
            a[n - 1] = f32::NAN;
            let mut c = GhmC::new(config()).unwrap();
            c.set_isa(isa).unwrap();
            let before = c.clone();
            let mut grad = vec![7.0; n];
            assert_eq!(c.loss_grad(&a, &b, None, &mut grad), Err(Error::NonFinite));
            assert!(grad.iter().all(|g| *g == 7.0));
            let mut inplace = a.clone();
            assert_eq!(
                c.loss_grad_in_place(&mut inplace, &b, None),
                Err(Error::NonFinite)
            );
            assert_eq!(inplace[..n - 1], a[..n - 1]);
            assert_eq!(c, before);
            let mut w = weights(n);
            w[n - 1] = -1.0;
            a[n - 1] = 0.5;
            assert_eq!(c.loss(&a, &b, Some(&w)), Err(Error::Weight));
        }
    }
}

/// Logits of a 3 x 5 class-index batch (logits or, with `prob`, probabilities) in the rows
/// layout, and the same values in a padded planes layout (class c of anchor r at
/// `r + c * 5`) whose gaps hold NaN, which no pass may read.
fn class_batch(prob: bool) -> (ClassLayout, Vec<f32>, ClassLayout, Vec<f32>) {
    let (anchors, classes) = (3, 5);
    let v = values(anchors * classes, 13);
    let rows: Vec<f32> = if prob {
        v.iter().map(|x| (x + 6.0) / 12.0).collect()
    } else {
        v
    };
    let planes = ClassLayout {
        anchors,
        classes,
        anchor_stride: 1,
        class_stride: anchors + 2,
        ..ClassLayout::rows(0, 0)
    };
    let mut p = vec![f32::NAN; planes.extent().unwrap()];
    for r in 0..anchors {
        for c in 0..classes {
            p[r + c * planes.class_stride] = rows[r * classes + c];
        }
    }
    (ClassLayout::rows(anchors, classes), rows, planes, p)
}

/// A label of every kind (a class, none, background) and a zero anchor weight.
const LABELS: [i32; 3] = [2, -1, 5];
const ANCHOR_WEIGHTS: [f32; 3] = [1.0, 0.0, 2.5];

#[test]
fn class_index_rows_and_planes_with_probability_inputs() {
    for isa in isas() {
        for prob in [false, true] {
            let cfg = Config {
                options: if prob { OPT_PROBABILITY_INPUT } else { 0 },
                ..config()
            };
            let (rows, x, planes, xp) = class_batch(prob);
            let w = Some(&ANCHOR_WEIGHTS[..]);
            let mut one = GhmC::new(cfg).unwrap();
            one.set_isa(isa).unwrap();
            let mut grad = vec![0.0; x.len()];
            let loss = one
                .loss_grad_labels(&x, rows, &LABELS, w, &mut grad)
                .unwrap();
            assert!(loss.is_finite());

            // Both layouts, the planes one in two chunks of anchors: the same counts, EMA
            // step and loss.
            let mut c = GhmC::new(cfg).unwrap();
            c.set_isa(isa).unwrap();
            let mut by_rows = c.stats();
            c.accumulate_labels(&mut by_rows, &x, rows, &LABELS, w)
                .unwrap();
            let mut by_planes = c.stats();
            let first = ClassLayout {
                anchors: 1,
                ..planes
            };
            let rest = ClassLayout {
                anchors: 2,
                ..planes
            };
            c.accumulate_labels(
                &mut by_planes,
                &xp,
                first,
                &LABELS[..1],
                Some(&ANCHOR_WEIGHTS[..1]),
            )
            .unwrap();
            let mut tail = c.stats();
            c.accumulate_labels(
                &mut tail,
                &xp[1..],
                rest,
                &LABELS[1..],
                Some(&ANCHOR_WEIGHTS[1..]),
            )
            .unwrap();
            by_planes.merge(&tail);
            assert_eq!(by_rows.count, by_planes.count);
            let mut c2 = c.clone();
            let weights = c.commit(&by_rows).unwrap();
            assert_eq!(weights.loss().unwrap().to_bits(), loss.to_bits());
            assert_eq!(c.state(), one.state());
            let wp = c2.commit(&by_planes).unwrap();
            assert!((wp.loss().unwrap() - loss).abs() <= 1e-6 * loss.abs());
            assert_eq!(c2.state(), one.state());

            // A probability outside [0, 1] is refused (only with the option).
            let mut bad = x.clone();
            bad[7] = 1.5;
            let mut s = c.stats();
            let r = c.accumulate_labels(&mut s, &bad, rows, &LABELS, w);
            assert_eq!(r.is_err(), prob);
            if prob {
                assert_eq!(r, Err(Error::Probability));
            }

            if !auto_path_runs() {
                continue; // `RegionWeights::apply_labels` takes the run-time-detected path.
            }
            // apply_labels: the one-shot gradient, at the layout's elements only.
            let mut out = vec![0.0; x.len()];
            weights
                .apply_labels(&x, rows, &LABELS, w, Output::GRADIENT, &mut out)
                .unwrap();
            assert_eq!(out, grad);
            let mut outp = vec![f32::from_bits(0x7fc0_dead); xp.len()];
            let delta = Output {
                kind: OutputKind::Gradient,
                scale: -2.0,
                add: false,
                sum: false,
            };
            weights
                .apply_labels(&xp, planes, &LABELS, w, delta, &mut outp)
                .unwrap();
            for (i, o) in outp.iter().enumerate() {
                let (c, r) = (i / planes.class_stride, i % planes.class_stride);
                if r < planes.anchors {
                    assert_eq!(*o, -2.0 * grad[r * rows.classes + c]);
                } else {
                    assert_eq!(o.to_bits(), 0x7fc0_dead, "a gap was written");
                }
            }
        }
    }
}

/// The C entry points choose the path at run time; under Miri only when it is compiled in.
#[cfg(any(
    not(miri),
    all(target_feature = "avx2", target_feature = "fma"),
    not(target_arch = "x86_64")
))]
mod c_abi {
    use super::*;
    use core::ptr::{null, null_mut};
    use ghm::ffi::*;
    use ghm::State;
    use std::mem::MaybeUninit;

    fn init_c() -> State {
        let mut st = MaybeUninit::<State>::uninit();
        let cfg = ghm_c_config_default();
        assert_eq!(unsafe { ghm_c_init(st.as_mut_ptr(), &cfg) }, GHM_OK);
        unsafe { st.assume_init() }
    }

    #[test]
    fn null_len0_in_place_overlap_misaligned() {
        unsafe {
            let mut st = init_c();
            let mut loss = -1.0f32;
            // n = 0 with NULL arrays: loss 0, state unchanged.
            let before = st;
            assert_eq!(
                ghm_c_loss(&mut st, null(), null(), null(), 0, &mut loss, null_mut()),
                GHM_OK
            );
            assert_eq!(loss, 0.0);
            assert_eq!(st, before);
            // NULL where required.
            assert_eq!(
                ghm_c_loss(&mut st, null(), null(), null(), 3, &mut loss, null_mut()),
                GHM_ERR_NULL
            );
            assert_eq!(
                ghm_c_loss(null_mut(), null(), null(), null(), 0, &mut loss, null_mut()),
                GHM_ERR_NULL
            );

            for &n in &LENS[1..] {
                let mut buf = values(2 * n + 1, n as u32);
                let b = targets_c(n);
                let mut r = ghm_r_config_default();
                r.bins = 5;
                let mut rst = MaybeUninit::<State>::uninit();
                assert_eq!(ghm_r_init(rst.as_mut_ptr(), &r), GHM_OK);
                let mut rst = rst.assume_init();
                // Separate gradient, then in place: the same bits.
                let mut g = vec![0.0; n];
                let mut s1 = init_c();
                let a = buf[1..n + 1].to_vec();
                assert_eq!(
                    ghm_c_loss(
                        &mut s1,
                        a.as_ptr(),
                        b.as_ptr(),
                        null(),
                        n,
                        &mut loss,
                        g.as_mut_ptr()
                    ),
                    GHM_OK
                );
                let mut s2 = init_c();
                let mut l2 = 0.0;
                let p = buf.as_mut_ptr().add(1);
                assert_eq!(
                    ghm_c_loss(&mut s2, p, b.as_ptr(), null(), n, &mut l2, p),
                    GHM_OK
                );
                assert_eq!(loss.to_bits(), l2.to_bits());
                assert_eq!(&buf[1..n + 1], &g[..]);
                assert_eq!(s1, s2);
                // Partial overlap of the gradient with the input: refused, nothing written.
                let snapshot = buf.clone();
                let st_before = s2;
                let q = buf.as_mut_ptr();
                if n > 1 {
                    let e = ghm_c_loss(&mut s2, q.add(1), b.as_ptr(), null(), n, &mut l2, q.add(2));
                    assert_eq!(e, GHM_ERR_OVERLAP);
                    assert_eq!(buf, snapshot);
                    assert_eq!(s2, st_before);
                }
                // A misaligned float pointer.
                let bytes = buf.as_mut_ptr().cast::<u8>().add(1).cast::<f32>();
                let e = ghm_r_loss(
                    &mut rst,
                    b.as_ptr(),
                    b.as_ptr(),
                    null(),
                    n - 1,
                    &mut l2,
                    bytes,
                );
                assert_eq!(e, GHM_ERR_MISALIGNED);
                // GHM-R with weights, then the wrong loss's state.
                let w = weights(n);
                let mut gr = vec![0.0; n];
                assert_eq!(
                    ghm_r_loss(
                        &mut rst,
                        a.as_ptr(),
                        b.as_ptr(),
                        w.as_ptr(),
                        n,
                        &mut l2,
                        gr.as_mut_ptr()
                    ),
                    GHM_OK
                );
                assert_eq!(
                    ghm_r_loss(
                        &mut s1,
                        a.as_ptr(),
                        b.as_ptr(),
                        null(),
                        n,
                        &mut l2,
                        null_mut()
                    ),
                    GHM_ERR_WRONG_LOSS
                );
            }
            // Never initialised.
            let mut junk = MaybeUninit::<State>::zeroed().assume_init();
            assert_eq!(
                ghm_c_loss(&mut junk, null(), null(), null(), 0, &mut loss, null_mut()),
                GHM_ERR_STATE
            );
        }
    }

    /// Counting stats through the C ABI: class-index rows in two chunks, commit without a
    /// loss (and refused with one), `ghm_c_apply_labels_loss` per chunk and for the share
    /// alone; the one-shot call's gradient and state, its loss to rounding (bit for bit in
    /// one chunk).
    #[test]
    fn counting_phases_through_the_c_abi() {
        unsafe {
            let cfg = config();
            let mut st = MaybeUninit::<State>::uninit();
            assert_eq!(ghm_c_init(st.as_mut_ptr(), &cfg), GHM_OK);
            let st = st.assume_init();
            let (rows, x, _, _) = class_batch(false);
            let (l, w) = (LABELS.as_ptr(), ANCHOR_WEIGHTS.as_ptr());
            let mut one = st;
            let (mut loss, mut grad) = (0.0f32, vec![0.0f32; x.len()]);
            let r = ghm_c_loss_labels(
                &mut one,
                x.as_ptr(),
                3,
                5,
                l,
                w,
                &mut loss,
                grad.as_mut_ptr(),
            );
            assert_eq!(r, GHM_OK);

            let mut three = st;
            let mut total = MaybeUninit::<ghm::Stats>::uninit();
            let mut part = MaybeUninit::<ghm::Stats>::uninit();
            assert_eq!(ghm_stats_init_counting(&three, total.as_mut_ptr()), GHM_OK);
            assert_eq!(ghm_stats_init_counting(&three, part.as_mut_ptr()), GHM_OK);
            let (mut total, mut part) = (total.assume_init(), part.assume_init());
            let (first, rest) = (
                ClassLayout { anchors: 1, ..rows },
                ClassLayout { anchors: 2, ..rows },
            );
            let c = rows.classes;
            let r = ghm_c_accumulate_labels(&three, x.as_ptr(), &first, l, w, &mut total);
            assert_eq!(r, GHM_OK);
            let r = ghm_c_accumulate_labels(
                &three,
                x.as_ptr().add(c),
                &rest,
                l.add(1),
                w.add(1),
                &mut part,
            );
            assert_eq!(r, GHM_OK);
            assert_eq!(ghm_stats_merge(&part, &mut total), GHM_OK);
            let mut weights = MaybeUninit::<ghm::RegionWeights>::uninit();
            let mut l3 = 0.0f32;
            let r = ghm_commit(&total, &mut three, weights.as_mut_ptr(), &mut l3);
            assert_eq!(r, GHM_ERR_NO_LOSS);
            let r = ghm_commit(&total, &mut three, weights.as_mut_ptr(), null_mut());
            assert_eq!(r, GHM_OK);
            let weights = weights.assume_init();
            assert_eq!(three, one);
            assert_eq!(ghm_region_weights_loss(&weights, &mut l3), GHM_ERR_NO_LOSS);

            let mut out = vec![0.0f32; x.len()];
            let mut shares = [0.0f64; 3];
            let r = ghm_c_apply_labels_loss(
                &weights,
                x.as_ptr(),
                &first,
                l,
                w,
                null(),
                out.as_mut_ptr(),
                &mut shares[0],
            );
            assert_eq!(r, GHM_OK);
            let r = ghm_c_apply_labels_loss(
                &weights,
                x.as_ptr().add(c),
                &rest,
                l.add(1),
                w.add(1),
                null(),
                out.as_mut_ptr().add(c),
                &mut shares[1],
            );
            assert_eq!(r, GHM_OK);
            assert_eq!(out, grad);
            let r = ghm_c_apply_labels_loss(
                &weights,
                x.as_ptr(),
                &rows,
                l,
                w,
                null(),
                null_mut(),
                &mut shares[2],
            );
            assert_eq!(r, GHM_OK);
            assert_eq!((shares[2] as f32).to_bits(), loss.to_bits());
            let sum = shares[0] + shares[1];
            assert!((sum - f64::from(loss)).abs() <= 1e-6 * f64::from(loss));
        }
    }

    /// Element-wise counting phases in place through the C ABI, both losses.
    #[test]
    fn counting_apply_loss_in_place_through_the_c_abi() {
        unsafe {
            let n = 37;
            let (a, w) = (values(n, 3), weights(n));
            for c in [true, false] {
                let b = if c { targets_c(n) } else { values(n, 4) };
                let (a, b, w) = (a.as_ptr(), b.as_ptr(), w.as_ptr());
                let cfg = if c { config() } else { Config::ghm_r() };
                let mut st = MaybeUninit::<State>::uninit();
                let r = if c {
                    ghm_c_init(st.as_mut_ptr(), &cfg)
                } else {
                    ghm_r_init(st.as_mut_ptr(), &cfg)
                };
                assert_eq!(r, GHM_OK);
                let st = st.assume_init();
                let (mut one, mut three) = (st, st);
                let (mut loss, mut grad) = (0.0f32, vec![0.0f32; n]);
                let g = grad.as_mut_ptr();
                let r = if c {
                    ghm_c_loss(&mut one, a, b, w, n, &mut loss, g)
                } else {
                    ghm_r_loss(&mut one, a, b, w, n, &mut loss, g)
                };
                assert_eq!(r, GHM_OK);
                let mut stats = MaybeUninit::<ghm::Stats>::uninit();
                assert_eq!(ghm_stats_init_counting(&three, stats.as_mut_ptr()), GHM_OK);
                let mut stats = stats.assume_init();
                let r = if c {
                    ghm_c_accumulate(&three, a, b, w, n, &mut stats)
                } else {
                    ghm_r_accumulate(&three, a, b, w, n, &mut stats)
                };
                assert_eq!(r, GHM_OK);
                let mut weights = MaybeUninit::<ghm::RegionWeights>::uninit();
                let r = ghm_commit(&stats, &mut three, weights.as_mut_ptr(), null_mut());
                assert_eq!(r, GHM_OK);
                let weights = weights.assume_init();
                let mut buf = std::slice::from_raw_parts(a, n).to_vec();
                let mut share = 0.0f64;
                let p = buf.as_mut_ptr();
                let r = if c {
                    ghm_c_apply_loss(&weights, p, b, w, n, null(), p, &mut share)
                } else {
                    ghm_r_apply_loss(&weights, p, b, w, n, null(), p, &mut share)
                };
                assert_eq!(r, GHM_OK);
                assert_eq!(buf, grad);
                assert_eq!((share as f32).to_bits(), loss.to_bits());
                assert_eq!(three, one);
            }
        }
    }

    /// The class-index C entry points: stats_init, accumulate_labels (planes, in two
    /// chunks), merge, commit and apply_labels with a `ghm_output`, against
    /// `ghm_c_loss_labels` on the rows layout; probability inputs; layout errors.
    #[test]
    fn class_index_phases_through_the_c_abi() {
        for prob in [false, true] {
            unsafe {
                let mut cfg = config();
                cfg.options = if prob { OPT_PROBABILITY_INPUT } else { 0 };
                let mut st = MaybeUninit::<State>::uninit();
                assert_eq!(ghm_c_init(st.as_mut_ptr(), &cfg), GHM_OK);
                let st = st.assume_init();
                let (rows, x, planes, xp) = class_batch(prob);
                let (l, w) = (LABELS.as_ptr(), ANCHOR_WEIGHTS.as_ptr());

                let mut one = st;
                let (mut loss, mut grad) = (0.0f32, vec![0.0f32; x.len()]);
                let r = ghm_c_loss_labels(
                    &mut one,
                    x.as_ptr(),
                    3,
                    5,
                    l,
                    w,
                    &mut loss,
                    grad.as_mut_ptr(),
                );
                assert_eq!(r, GHM_OK);

                let mut three = st;
                let mut total = MaybeUninit::<ghm::Stats>::uninit();
                let mut part = MaybeUninit::<ghm::Stats>::uninit();
                assert_eq!(ghm_stats_init(&three, total.as_mut_ptr()), GHM_OK);
                assert_eq!(ghm_stats_init(&three, part.as_mut_ptr()), GHM_OK);
                let (mut total, mut part) = (total.assume_init(), part.assume_init());
                let first = ClassLayout {
                    anchors: 1,
                    ..planes
                };
                let rest = ClassLayout {
                    anchors: 2,
                    ..planes
                };
                let acc = |lay: &ClassLayout, off: usize, into: &mut ghm::Stats| {
                    ghm_c_accumulate_labels(
                        &three,
                        xp.as_ptr().add(off),
                        lay,
                        l.add(off),
                        w.add(off),
                        into,
                    )
                };
                assert_eq!(acc(&first, 0, &mut total), GHM_OK);
                assert_eq!(acc(&rest, 1, &mut part), GHM_OK);
                assert_eq!(ghm_stats_merge(&part, &mut total), GHM_OK);
                assert_eq!(ghm_stats_merge(&total, &mut total), GHM_ERR_OVERLAP);
                let mut weights = MaybeUninit::<ghm::RegionWeights>::uninit();
                let mut l3 = 0.0f32;
                assert_eq!(
                    ghm_commit(&total, &mut three, weights.as_mut_ptr(), &mut l3),
                    GHM_OK
                );
                let weights = weights.assume_init();
                assert_eq!(three, one);
                assert!((l3 - loss).abs() <= 1e-6 * loss.abs());

                // Darknet's delta: the negative gradient, written at the layout's elements.
                let delta = ghm_output {
                    kind: GHM_OUTPUT_GRADIENT,
                    scale: -1.0,
                    add: 0,
                    sum: 0,
                };
                let mut out = vec![f32::from_bits(0x7fc0_dead); xp.len()];
                let r = ghm_c_apply_labels(
                    &weights,
                    xp.as_ptr(),
                    &planes,
                    l,
                    w,
                    &delta,
                    out.as_mut_ptr(),
                );
                assert_eq!(r, GHM_OK);
                for (i, o) in out.iter().enumerate() {
                    let (c, r) = (i / planes.class_stride, i % planes.class_stride);
                    if r < planes.anchors {
                        assert_eq!(*o, -grad[r * rows.classes + c]);
                    } else {
                        assert_eq!(o.to_bits(), 0x7fc0_dead, "a gap was written");
                    }
                }
                // Rows with NULL output (the gradient), accumulating element losses.
                let mut outr = vec![0.0f32; x.len()];
                let r = ghm_c_apply_labels(
                    &weights,
                    x.as_ptr(),
                    &rows,
                    l,
                    w,
                    null(),
                    outr.as_mut_ptr(),
                );
                assert_eq!(r, GHM_OK);
                assert_eq!(outr, grad);
                let add_loss = ghm_output {
                    kind: GHM_OUTPUT_ELEMENT_LOSS,
                    scale: 1.0,
                    add: 1,
                    sum: 0,
                };
                let r = ghm_c_apply_labels(
                    &weights,
                    x.as_ptr(),
                    &rows,
                    l,
                    w,
                    &add_loss,
                    outr.as_mut_ptr(),
                );
                assert_eq!(r, GHM_OK);
                assert!(outr.iter().all(|v| v.is_finite()));

                // Errors write nothing: overlapping rows, a bad output, out over the logits.
                let snapshot = out.clone();
                let overlapping = ClassLayout {
                    anchor_stride: 4,
                    ..rows
                };
                let r = ghm_c_apply_labels(
                    &weights,
                    x.as_ptr(),
                    &overlapping,
                    l,
                    w,
                    null(),
                    out.as_mut_ptr(),
                );
                assert_eq!(r, GHM_ERR_LAYOUT);
                let bad = ghm_output { kind: 3, ..delta };
                let r = ghm_c_apply_labels(
                    &weights,
                    xp.as_ptr(),
                    &planes,
                    l,
                    w,
                    &bad,
                    out.as_mut_ptr(),
                );
                assert_eq!(r, GHM_ERR_OUTPUT);
                assert_eq!(
                    out.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                    snapshot.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
                );
                let r = ghm_c_apply_labels(
                    &weights,
                    xp.as_ptr(),
                    &planes,
                    l,
                    w,
                    null(),
                    xp.as_ptr().cast_mut(),
                );
                assert_eq!(r, GHM_ERR_OVERLAP);
                if prob {
                    let mut bad = x.clone();
                    bad[4] = -0.5;
                    let before = total;
                    let r = ghm_c_accumulate_labels(&three, bad.as_ptr(), &rows, l, w, &mut total);
                    assert_eq!(r, GHM_ERR_PROBABILITY);
                    assert_eq!(total, before);
                }
            }
        }
    }
}
