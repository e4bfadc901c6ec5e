//! The options that fix the reference's weak points (off by default) each do what they say,
//! and the trainer conventions (probability inputs) follow PyTorch's definitions.

mod common;

use common::{batch, Rng};
use ghm::{
    Config, Error, GhmC, GhmR, Kind, Output, OutputKind, Stats, OPT_DECAY_EMPTY_BINS,
    OPT_EMA_BIAS_CORRECTION, OPT_NORM_BY_BINS, OPT_PROBABILITY_INPUT,
};

fn ghmc(options: u32, momentum: f32, bins: u32) -> GhmC {
    GhmC::new(Config {
        bins,
        momentum,
        options,
        ..Config::ghm_c()
    })
    .unwrap()
}

/// Logits whose gradient norms fall in regions 0 and 1 of 10 (targets 0): g = sigmoid(x).
fn two_region_batch(n0: usize, n1: usize) -> (Vec<f32>, Vec<f32>) {
    let logit = |g: f64| ((g / (1.0 - g)).ln()) as f32;
    let mut x: Vec<f32> = (0..n0)
        .map(|i| logit(0.01 + 0.08 * i as f64 / n0 as f64))
        .collect();
    x.extend((0..n1).map(|i| logit(0.11 + 0.08 * i as f64 / n1 as f64)));
    let t = vec![0.0; x.len()];
    (x, t)
}

/// Normalising by M instead of the n non-empty regions scales a batch that fills 2 of 10
/// regions by 2/10.
#[test]
fn norm_by_bins_divides_by_m_instead_of_nonempty_regions() {
    let (x, t) = two_region_batch(300, 20);
    let plain = ghmc(0, 0.0, 10).loss(&x, &t, None).unwrap();
    let by_m = ghmc(OPT_NORM_BY_BINS, 0.0, 10).loss(&x, &t, None).unwrap();
    assert!((by_m / plain - 0.2).abs() < 1e-6, "{by_m} vs {plain}");
}

/// The reference's EMA starts at 0, so a region's first hit has density (1 - alpha) R and
/// its weight is inflated by 1 / (1 - alpha); with bias correction the first call equals
/// the momentum-0 result.
#[test]
fn ema_bias_correction_removes_the_first_hit_inflation() {
    let (x, t) = two_region_batch(300, 20);
    let no_ema = ghmc(0, 0.0, 10).loss(&x, &t, None).unwrap();
    let raw = ghmc(0, 0.75, 10).loss(&x, &t, None).unwrap();
    let corrected = ghmc(OPT_EMA_BIAS_CORRECTION, 0.75, 10)
        .loss(&x, &t, None)
        .unwrap();
    assert!(
        (raw / no_ema - 4.0).abs() < 1e-5,
        "inflated by 1/(1-0.75): {raw} vs {no_ema}"
    );
    assert!(
        (corrected / no_ema - 1.0).abs() < 1e-6,
        "{corrected} vs {no_ema}"
    );
}

/// With decay, a region that is empty in a call still decays (S <- alpha S); the reference
/// leaves it unchanged.
#[test]
fn decay_empty_bins_updates_every_region_every_call() {
    let (x, t) = two_region_batch(300, 20);
    let (x0, t0) = two_region_batch(50, 0);
    for (options, want_region1) in [
        (0u32, 0.25f32 * 20.0),
        (OPT_DECAY_EMPTY_BINS, 0.75 * 0.25 * 20.0),
    ] {
        let mut g = ghmc(options, 0.75, 10);
        g.loss(&x, &t, None).unwrap();
        g.loss(&x0, &t0, None).unwrap(); // region 1 empty
        let s1 = g.state().ema()[1];
        assert!(
            (s1 - want_region1).abs() < 1e-5,
            "options {options}: {s1} vs {want_region1}"
        );
    }
}

/// A cap bounds every element's weight beta; without it a sparse region's weight exceeds it.
#[test]
fn weight_cap_bounds_every_element_weight() {
    let (x, t) = two_region_batch(1000, 2);
    let beta_max = |cap: f32| {
        let mut g = GhmC::new(Config {
            weight_cap: cap,
            ..Config::ghm_c()
        })
        .unwrap();
        let mut s = g.stats();
        g.accumulate(&mut s, &x, &t, None).unwrap();
        let w = g.commit(&s).unwrap();
        let mut ew = vec![0.0; x.len()];
        let o = Output {
            kind: OutputKind::ElementWeight,
            scale: 1.0,
            add: false,
            sum: false,
        };
        w.apply(&x, &t, None, o, &mut ew).unwrap();
        ew.iter()
            .map(|&e| f64::from(e) * w.tot())
            .fold(0.0, f64::max)
    };
    let uncapped = beta_max(0.0);
    assert!(
        uncapped > 100.0,
        "sparse region gets weight tot/(2 R) = {uncapped}"
    );
    let capped = beta_max(10.0);
    assert!((capped - 10.0).abs() < 1e-4, "{capped}");
}

#[test]
fn options_are_validated() {
    for (kind, options) in [
        (Kind::Classification, 1u32 << 20),
        (Kind::Regression, OPT_PROBABILITY_INPUT),
    ] {
        let c = Config {
            options,
            ..Config::default_for(kind)
        };
        assert_eq!(c.validate(kind), Err(Error::Config));
    }
    for mu in [0.0f32, -1.0, 1.1e18, f32::MAX, f32::INFINITY, f32::NAN] {
        let c = Config {
            mu,
            ..Config::ghm_r()
        };
        assert_eq!(c.validate(Kind::Regression), Err(Error::Config), "mu {mu}");
    }
    assert_eq!(
        Config {
            mu: 1e18,
            ..Config::ghm_r()
        }
        .validate(Kind::Regression),
        Ok(())
    );
    for cap in [-1.0f32, f32::NAN, f32::INFINITY] {
        assert_eq!(
            GhmR::new(Config {
                weight_cap: cap,
                ..Config::ghm_r()
            }),
            Err(Error::Config)
        );
    }
}

/// Probability inputs (Darknet's convention): the term is PyTorch's binary_cross_entropy on
/// p (logs floored at -100) and the gradient, still with respect to the logit, equals the one
/// computed from the logit itself.
#[test]
fn probability_input_follows_binary_cross_entropy_and_keeps_logit_gradient() {
    let mut rng = Rng::new(77);
    let (x, t, w) = batch(Kind::Classification, &mut rng, 800, true);
    let p: Vec<f32> = x
        .iter()
        .map(|&x| (1.0 / (1.0 + (-f64::from(x)).exp())) as f32)
        .collect();
    let mut from_p = ghmc(OPT_PROBABILITY_INPUT, 0.0, 30);
    let mut s = from_p.stats();
    from_p.accumulate(&mut s, &p, &t, w.as_deref()).unwrap();
    let wt = from_p.commit(&s).unwrap();
    let o = Output {
        kind: OutputKind::ElementLoss,
        scale: 1.0,
        add: false,
        sum: false,
    };
    let mut el = vec![0.0; p.len()];
    wt.apply(&p, &t, w.as_deref(), o, &mut el).unwrap();
    let mut ew = vec![0.0; p.len()];
    let ow = Output {
        kind: OutputKind::ElementWeight,
        ..o
    };
    wt.apply(&p, &t, w.as_deref(), ow, &mut ew).unwrap();
    let mut grad = vec![0.0; p.len()];
    wt.apply(&p, &t, w.as_deref(), Output::GRADIENT, &mut grad)
        .unwrap();
    for i in 0..p.len() {
        let (pd, td) = (f64::from(p[i]), f64::from(t[i]));
        let bce = -(td * pd.ln().max(-100.0) + (1.0 - td) * (1.0 - pd).ln().max(-100.0));
        let want = f64::from(ew[i]) * wt.tot() * bce;
        assert!(
            (f64::from(el[i]) - want).abs() <= 1e-5 * want.abs() + 1e-7,
            "{i}: {} vs {want}",
            el[i]
        );
        let want_g = f64::from(ew[i]) * (pd - td);
        assert!(
            (f64::from(grad[i]) - want_g).abs() <= 1e-6 * want_g.abs() + 1e-9,
            "{i}"
        );
    }
    // floors: p = 0 with target 1 costs 100, not infinity
    let mut g = ghmc(OPT_PROBABILITY_INPUT, 0.0, 10);
    let l = g.loss(&[0.0, 1.0], &[1.0, 0.0], None).unwrap();
    assert!((l - 100.0).abs() < 1e-3, "{l}");
    assert_eq!(g.loss(&[1.5], &[1.0], None), Err(Error::Probability));
    assert_eq!(g.loss(&[f32::NAN], &[1.0], None), Err(Error::NonFinite));
}

/// An empty batch is no step, even for the option that decays empty regions every call.
#[test]
fn empty_batch_leaves_the_state_even_with_decay_of_empty_bins() {
    let (x, t) = two_region_batch(300, 20);
    let mut g = ghmc(OPT_DECAY_EMPTY_BINS, 0.75, 10);
    g.loss(&x, &t, None).unwrap();
    let before = *g.state();
    assert_eq!(g.loss(&[], &[], None), Ok(0.0));
    assert_eq!(*g.state(), before);
}

/// GHM_OPT_GRADIENT_INPUT: given `d = p - t` for binary targets, the same regions, state and
/// gradient (bit for bit) as the probability input given p and t, and the loss within
/// rounding (its term `-ln(1 - |d|)` is the BCE of a binary target); inputs outside [-1, 1]
/// are refused; the labels API refuses the option; it excludes GHM_OPT_PROBABILITY_INPUT
/// and is GHM-C only.
#[test]
fn gradient_input_equals_probability_input_for_binary_targets() {
    use ghm::{ClassLayout, OPT_GRADIENT_INPUT};
    let mut rng = Rng::new(404);
    let n = 777;
    let p: Vec<f32> = (0..n)
        .map(|i| if i == 3 { 1.0 } else { rng.uniform() })
        .collect();
    let t: Vec<f32> = (0..n).map(|i| f32::from(u8::from(i % 5 == 0))).collect();
    let w: Vec<f32> = (0..n)
        .map(|i| if i % 17 == 1 { 0.0 } else { 1.0 })
        .collect();
    let d: Vec<f32> = p.iter().zip(&t).map(|(p, t)| p - t).collect();
    let mut prob = ghmc(OPT_PROBABILITY_INPUT, 0.75, 20);
    let mut grad = ghmc(OPT_GRADIENT_INPUT, 0.75, 20);
    for step in 0..3 {
        let mut gp = vec![0.0; n];
        let lp = prob.loss_grad(&p, &t, Some(&w), &mut gp).unwrap();
        let mut sg = grad.stats();
        grad.accumulate_gradient(&mut sg, &d, Some(&w)).unwrap();
        let wt = grad.commit(&sg).unwrap();
        let mut gg = vec![0.0; n];
        wt.apply_residual(&d, Some(&w), Output::GRADIENT, &mut gg)
            .unwrap();
        assert_eq!(gp, gg, "step {step}");
        assert_eq!(prob.state().ema(), grad.state().ema(), "step {step}");
        assert!(
            (wt.loss().unwrap() - lp).abs() <= 1e-5 * lp,
            "{} vs {lp}",
            wt.loss().unwrap()
        );
        // the one-shot call ignores targets
        let mut once = grad.clone();
        let lo = once.loss(&d, &t, Some(&w)).unwrap();
        assert!(lo.is_finite());
    }
    let mut bad = d.clone();
    bad[10] = 1.0 + f32::EPSILON;
    let mut s = grad.stats();
    assert_eq!(
        grad.accumulate_gradient(&mut s, &bad, None),
        Err(Error::Probability)
    );
    bad[10] = f32::NAN;
    assert_eq!(
        grad.accumulate_gradient(&mut s, &bad, None),
        Err(Error::NonFinite)
    );
    assert_eq!(s, grad.stats());
    let layout = ClassLayout::rows(7, 111);
    assert_eq!(
        grad.accumulate_labels(&mut s, &d, layout, &[0; 7], None),
        Err(Error::Config)
    );
    assert_eq!(
        prob.accumulate_gradient(&mut s, &d, None),
        Err(Error::Config)
    );
    let both = Config {
        options: OPT_GRADIENT_INPUT | OPT_PROBABILITY_INPUT,
        ..Config::ghm_c()
    };
    assert_eq!(GhmC::new(both).err(), Some(Error::Config));
    let r = Config {
        options: OPT_GRADIENT_INPUT,
        ..Config::ghm_r()
    };
    assert_eq!(GhmR::new(r).err(), Some(Error::Config));
    // the reported loss: -ln(1 - |d|) per element, mean over the valid ones times beta
    let one = ghmc(OPT_GRADIENT_INPUT, 0.0, 1);
    let dd = [0.5f32, -0.25, 0.0, -1.0];
    let mut st = one.stats();
    one.accumulate_gradient(&mut st, &dd, None).unwrap();
    let l = one.clone().commit(&st).unwrap().loss().unwrap();
    let want = (-(0.5f64.ln()) - 0.75f64.ln() + 100.0) / 4.0;
    assert!((f64::from(l) - want).abs() <= 1e-6 * want, "{l} vs {want}");
}

/// GHM_OPT_NORM_BY_POSITIVES divides the loss and gradient by the valid elements' target
/// sum P instead of their count (`tot` reports P; the harmonizing weights are unchanged):
/// P is tallied (only with the option) by every input mode and layout alike (probabilities, gradient input, where
/// a negative `d` counts as a positive, and class-index labels), and stats merged from two
/// halves hold the whole batch's P.
#[test]
fn norm_by_positives_divides_by_the_batch_positives() {
    use ghm::{ClassLayout, OPT_GRADIENT_INPUT, OPT_NORM_BY_POSITIVES};
    let (anchors, classes) = (301usize, 5usize);
    let mut rng = Rng::new(5150);
    let x: Vec<f32> = (0..anchors * classes)
        .map(|_| -3.0 + 2.0 * rng.normal())
        .collect();
    let labels: Vec<i32> = (0..anchors)
        .map(|i| match i % 7 {
            0 => -1,
            1 | 2 => (rng.next_u64() % classes as u64) as i32,
            _ => classes as i32,
        })
        .collect();
    let aw: Vec<f32> = (0..anchors)
        .map(|i| if i % 13 == 0 { 0.0 } else { 1.0 })
        .collect();
    let t: Vec<f32> = (0..anchors * classes)
        .map(|i| f32::from(u8::from(labels[i / classes] == (i % classes) as i32)))
        .collect();
    let w: Vec<f32> = (0..anchors * classes).map(|i| aw[i / classes]).collect();
    let positives = (0..anchors)
        .filter(|&i| aw[i] > 0.0 && (0..classes as i32).contains(&labels[i]))
        .count() as f64;
    let valid = w.iter().filter(|&&w| w > 0.0).count() as f64;
    assert!(positives > 10.0 && positives < valid / 10.0);

    let by_count = ghmc(OPT_PROBABILITY_INPUT, 0.75, 30);
    let by_pos = ghmc(OPT_PROBABILITY_INPUT | OPT_NORM_BY_POSITIVES, 0.75, 30);
    let p: Vec<f32> = x
        .iter()
        .map(|&x| (1.0 / (1.0 + (-f64::from(x)).exp())) as f32)
        .collect();
    let commit = |g: &GhmC, a: &[f32]| {
        let mut s = g.stats();
        g.accumulate(&mut s, a, &t, Some(&w)).unwrap();
        (s, g.clone().commit(&s).unwrap())
    };
    let (s_count, w_count) = commit(&by_count, &p);
    let (s_pos, w_pos) = commit(&by_pos, &p);
    // the positives are tallied only for the option; the rest of the tally is the same
    assert_eq!((s_count.positive_sum, s_pos.positive_sum), (0.0, positives));
    assert_eq!(
        Stats {
            positive_sum: positives,
            ..s_count
        },
        s_pos
    );
    assert_eq!(w_count.tot(), valid);
    assert_eq!(w_pos.tot(), positives);
    let ratio = valid / positives;
    let l_ratio = f64::from(w_pos.loss().unwrap()) / f64::from(w_count.loss().unwrap());
    assert!((l_ratio / ratio - 1.0).abs() < 1e-6, "{l_ratio} vs {ratio}");
    let (mut g_count, mut g_pos) = (vec![0.0; p.len()], vec![0.0; p.len()]);
    w_count
        .apply(&p, &t, Some(&w), Output::GRADIENT, &mut g_count)
        .unwrap();
    w_pos
        .apply(&p, &t, Some(&w), Output::GRADIENT, &mut g_pos)
        .unwrap();
    for (i, (&a, &b)) in g_count.iter().zip(&g_pos).enumerate() {
        let want = f64::from(a) * ratio;
        assert!((f64::from(b) - want).abs() <= 1e-6 * want.abs(), "{i}");
    }
    for k in 0..30 {
        let (a, b) = (w_count.region_weight(k), w_pos.region_weight(k));
        assert!((a - b).abs() <= 1e-6 * a, "beta_{k}: {a} vs {b}");
    }

    // gradient input: a negative d counts as one positive; the same weights bit for bit
    let d: Vec<f32> = p.iter().zip(&t).map(|(p, t)| p - t).collect();
    let grad_in = ghmc(OPT_GRADIENT_INPUT | OPT_NORM_BY_POSITIVES, 0.75, 30);
    let mut s = grad_in.stats();
    grad_in.accumulate_gradient(&mut s, &d, Some(&w)).unwrap();
    assert_eq!(s.positive_sum, positives);
    let wg = grad_in.clone().commit(&s).unwrap();
    let mut gg = vec![0.0; d.len()];
    wg.apply_residual(&d, Some(&w), Output::GRADIENT, &mut gg)
        .unwrap();
    assert_eq!(gg, g_pos);
    // without label weights (every element valid with target 0, which the one-shot plan's
    // loop takes from the gradients alone) the same as given unused targets, bit for bit
    let (mut g1, mut g2) = (vec![0.0; d.len()], vec![0.0; d.len()]);
    let zeros = vec![0.0f32; d.len()];
    let l1 = wg.apply_residual_loss(&d, None, Output::GRADIENT, Some(&mut g1));
    let l2 = wg.apply_loss(&d, &zeros, None, Output::GRADIENT, Some(&mut g2));
    assert_eq!(l1.map(f64::to_bits), l2.map(f64::to_bits));
    assert!(l1.is_ok_and(|l| l > 0.0));
    assert_eq!(g1, g2);
    // counting stats without label weights, on gradients all in the first two regions
    // (whose pass counts such vectors from the inputs alone): every negative d counts
    let small: Vec<f32> = (0..4001)
        .map(|i| if i % 3 == 0 { -0.01 } else { 0.04 })
        .collect();
    let mut s = grad_in.counting_stats();
    grad_in.accumulate_gradient(&mut s, &small, None).unwrap();
    assert_eq!(s.positive_sum, 1334.0);
    assert_eq!((s.count[0], s.count[1]), (1334.0, 2667.0));

    // class-index labels (logits) tally the same P as their one-hot values
    let on_logits = ghmc(OPT_NORM_BY_POSITIVES, 0.75, 30);
    let mut sv = on_logits.stats();
    on_logits.accumulate(&mut sv, &x, &t, Some(&w)).unwrap();
    let mut sl = on_logits.stats();
    on_logits
        .accumulate_labels(
            &mut sl,
            &x,
            ClassLayout::rows(anchors, classes),
            &labels,
            Some(&aw),
        )
        .unwrap();
    assert_eq!(sl, sv);

    // merged halves hold the whole batch's P
    let half = anchors / 2 * classes;
    let (mut s1, mut s2) = (on_logits.stats(), on_logits.stats());
    on_logits
        .accumulate(&mut s1, &x[..half], &t[..half], Some(&w[..half]))
        .unwrap();
    on_logits
        .accumulate(&mut s2, &x[half..], &t[half..], Some(&w[half..]))
        .unwrap();
    s1.merge(&s2);
    assert_eq!(s1.positive_sum, positives);
}

/// The count prior adds `count_prior * N / M` to every region's count before the EMA step:
/// on a batch that fills two of ten regions, every region's EMA moves by the prior's share,
/// and every region counts as non-empty (n = M).
#[test]
fn count_prior_adds_its_share_of_the_batch_to_every_region() {
    let (x, t) = two_region_batch(300, 20);
    let mut g = GhmC::new(Config {
        bins: 10,
        momentum: 0.5,
        count_prior: 0.25,
        ..Config::ghm_c()
    })
    .unwrap();
    let mut s = g.stats();
    g.accumulate(&mut s, &x, &t, None).unwrap();
    let w = g.commit(&s).unwrap();
    let share = 0.25 * 320.0 / 10.0;
    let want = [300.0 + share, 20.0 + share, share];
    for (k, &e) in g.state().ema().iter().enumerate() {
        let r = want[k.min(2)];
        assert!(
            (f64::from(e) - 0.5 * r).abs() < 1e-4,
            "ema[{k}] {e} vs {r}/2"
        );
    }
    // beta_k = N / (density_k * M): the empty regions get the largest weight, 320/(4*10)
    for (k, &r) in want.iter().enumerate() {
        let beta = 320.0 / (0.5 * r * 10.0);
        let got = f64::from(w.region_weight(k));
        assert!((got / beta - 1.0).abs() < 1e-6, "beta_{k} {got} vs {beta}");
    }
}

/// The robust preset is what its documentation says, in Rust and in C, and is valid for
/// GHM-C (its options are GHM-C only).
#[test]
fn robust_preset_is_the_documented_setting() {
    let c = Config::ghm_c_robust();
    assert_eq!(
        (c.bins, c.momentum, c.count_prior, c.options, c.weight_cap),
        (30, 0.75, 0.1, ghm::OPT_NORM_BY_POSITIVES, 0.0)
    );
    assert_eq!(ghm::ffi::ghm_c_config_robust(), c);
    assert!(GhmC::new(c).is_ok());
    assert_eq!(GhmR::new(c).err(), Some(Error::Config));
}
