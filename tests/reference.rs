//! The kernels agree with a float64 reference that follows the reference semantics
//! literally (tests/common: a loop over regions, as mmdetection writes it), over bins
//! 1/10/30/64, momentum 0/0.7/0.75, mu 0.02/1, loss_weight 1/10, with and without label
//! weights, in sequences of calls that exercise the EMA; and with the library's count prior
//! and normalisation by positives.

mod common;

use common::{away_from_edges, batch, close_all, reference_call, rel_close, RefState, Rng};
use ghm::{Config, Ghm, Kind, Loss};

fn run_sequence<L: Loss>(kind: Kind, cfg: Config, seed: u64, weights: bool) {
    let mut rng = Rng::new(seed);
    let mut ghm = Ghm::<L>::new(cfg).unwrap();
    let mut st = RefState::new(&cfg);
    for call in 0..6 {
        let n = [0usize, 1, 7, 300, 1000, 2049][(rng.next_u64() % 6) as usize];
        let (mut a, b, w) = batch(kind, &mut rng, n, weights);
        away_from_edges(kind, &cfg, &mut a, &b, 1e-5);
        let (want_loss, want_grad, _) = reference_call(kind, &cfg, &mut st, &a, &b, w.as_deref());
        let mut grad = vec![f32::NAN; n];
        let loss = ghm.loss_grad(&a, &b, w.as_deref(), &mut grad).unwrap();
        let ctx = format!("{kind:?} {cfg:?} seed {seed} call {call} n {n}");
        assert!(
            rel_close(f64::from(loss), want_loss, 2e-6),
            "{ctx}: loss {loss} vs {want_loss}"
        );
        close_all(&grad, &want_grad, 1e-5, 1e-6).unwrap_or_else(|e| panic!("{ctx}: {e}"));
        for (k, (&s, &r)) in ghm.state().ema().iter().zip(&st.ema).enumerate() {
            assert!(
                rel_close(f64::from(s), r, 1e-5),
                "{ctx}: ema[{k}] {s} vs {r}"
            );
        }
    }
}

fn configs(kind: Kind) -> Vec<Config> {
    let mut out = Vec::new();
    for &bins in &[1u32, 10, 30, 64] {
        for &momentum in &[0.0f32, 0.7, 0.75] {
            for &loss_weight in &[1.0f32, 10.0] {
                let mus: &[f32] = if kind == Kind::Regression {
                    &[0.02, 1.0]
                } else {
                    &[0.02]
                };
                for &mu in mus {
                    out.push(Config {
                        bins,
                        momentum,
                        mu,
                        loss_weight,
                        ..Config::ghm_c()
                    });
                }
            }
        }
    }
    // the library's count prior, and (GHM-C) its normalisation by positives
    let positives = if kind == Kind::Classification {
        ghm::OPT_NORM_BY_POSITIVES
    } else {
        0
    };
    for &bins in &[1u32, 10, 30] {
        for (count_prior, options) in [(0.1f32, 0), (0.0, positives), (0.5, positives)] {
            out.push(Config {
                bins,
                momentum: 0.75,
                options,
                count_prior,
                ..Config::default_for(kind)
            });
        }
    }
    out
}

#[test]
fn ghm_c_matches_float64_reference_over_configs_and_call_sequences() {
    for (i, cfg) in configs(Kind::Classification).into_iter().enumerate() {
        run_sequence::<ghm::Classification>(Kind::Classification, cfg, i as u64, i % 2 == 0);
    }
}

#[test]
fn ghm_r_matches_float64_reference_over_configs_and_call_sequences() {
    for (i, cfg) in configs(Kind::Regression).into_iter().enumerate() {
        run_sequence::<ghm::Regression>(Kind::Regression, cfg, 100 + i as u64, i % 2 == 1);
    }
}

fn loss_only_and_in_place_equal_separate_gradient<L: Loss>(kind: Kind) {
    let mut rng = Rng::new(7);
    let (a, b, w) = batch(kind, &mut rng, 777, true);
    let cfg = Config {
        bins: 30,
        momentum: 0.75,
        ..Config::default_for(kind)
    };
    let fresh = || Ghm::<L>::new(cfg).unwrap();
    let (mut separate, mut in_place, mut loss_only) = (fresh(), fresh(), fresh());
    let mut g1 = vec![0.0; a.len()];
    let l1 = separate.loss_grad(&a, &b, w.as_deref(), &mut g1).unwrap();
    let mut g2 = a.clone();
    let l2 = in_place
        .loss_grad_in_place(&mut g2, &b, w.as_deref())
        .unwrap();
    let l3 = loss_only.loss(&a, &b, w.as_deref()).unwrap();
    assert_eq!(l1.to_bits(), l2.to_bits());
    assert_eq!(l1.to_bits(), l3.to_bits());
    assert_eq!(g1, g2);
    assert_eq!(separate.state(), in_place.state());
    assert_eq!(separate.state(), loss_only.state());
}

#[test]
fn loss_only_equals_loss_with_gradient_and_in_place_equals_separate() {
    loss_only_and_in_place_equal_separate_gradient::<ghm::Classification>(Kind::Classification);
    loss_only_and_in_place_equal_separate_gradient::<ghm::Regression>(Kind::Regression);
}
