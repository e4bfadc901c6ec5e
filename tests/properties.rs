//! Properties of the losses, checked with quickcheck over random batches and
//! configurations.

mod common;

use common::{away_from_edges, batch, Rng};
use ghm::{Config, Ghm, Kind, Loss, State};
use quickcheck::{QuickCheck, TestResult};

/// A small random configuration and batch for `kind`, from a seed.
fn setup(
    kind: Kind,
    seed: u64,
    n: usize,
    weights: bool,
) -> (Config, Vec<f32>, Vec<f32>, Option<Vec<f32>>) {
    let mut rng = Rng::new(seed);
    let bins = [1u32, 3, 10, 30, 64][(rng.next_u64() % 5) as usize];
    let momentum = [0.0f32, 0.7, 0.75][(rng.next_u64() % 3) as usize];
    let mu = [0.02f32, 1.0][(rng.next_u64() % 2) as usize];
    let cfg = Config {
        bins,
        momentum,
        mu,
        loss_weight: 1.0,
        ..Config::ghm_c()
    };
    let (mut a, b, w) = batch(kind, &mut rng, n, weights);
    away_from_edges(kind, &cfg, &mut a, &b, 1e-4);
    (cfg, a, b, w)
}

/// Runs one call from `state` on a copy; returns (loss, grad, state after).
fn call<L: Loss>(state: &State, a: &[f32], b: &[f32], w: Option<&[f32]>) -> (f32, Vec<f32>, State) {
    let mut g = Ghm::<L>::from_state(*state).unwrap();
    let mut grad = vec![0.0; a.len()];
    let loss = g.loss_grad(a, b, w, &mut grad).unwrap();
    (loss, grad, *g.state())
}

/// A state that has seen a few calls, so the EMA is not at its start.
fn warmed<L: Loss>(kind: Kind, cfg: Config, seed: u64) -> State {
    let mut g = Ghm::<L>::new(cfg).unwrap();
    let mut rng = Rng::new(seed ^ 0xabc);
    for _ in 0..3 {
        let (a, b, w) = batch(kind, &mut rng, 200, true);
        g.loss(&a, &b, w.as_deref()).unwrap();
    }
    *g.state()
}

fn qc() -> QuickCheck {
    QuickCheck::new()
        .tests(150)
        .max_tests(3000)
        .min_tests_passed(100)
}

/// Checks a property of both losses: quickcheck picks the loss, the seed and the size.
macro_rules! check_both_losses {
    ($prop:ident) => {{
        fn either(seed: u64, n: u16, regression: bool) -> TestResult {
            if regression {
                $prop::<ghm::Regression>(Kind::Regression, seed, n)
            } else {
                $prop::<ghm::Classification>(Kind::Classification, seed, n)
            }
        }
        qc().quickcheck(either as fn(u64, u16, bool) -> TestResult);
    }};
}

/// dL/da_i equals the central difference of the loss, with the harmonizing weights held
/// fixed: same start state, and a step that moves no element to another region (confirmed
/// by an unchanged EMA and unchanged gradients of all other elements).
#[test]
fn gradient_equals_finite_difference_of_loss_with_weights_fixed() {
    fn prop<L: Loss>(kind: Kind, seed: u64, n: u16) -> TestResult {
        let n = 1 + n as usize % 40;
        let (cfg, a, b, w) = setup(kind, seed, n, seed.is_multiple_of(2));
        let state = warmed::<L>(kind, cfg, seed);
        let (_, grad, s0) = call::<L>(&state, &a, &b, w.as_deref());
        let i = (seed as usize / 7) % n;
        let h = 1e-3f32 * (1.0 + a[i].abs());
        let (mut up, mut down) = (a.clone(), a.clone());
        up[i] += h;
        down[i] -= h;
        let (lu, gu, su) = call::<L>(&state, &up, &b, w.as_deref());
        let (ld, gd, sd) = call::<L>(&state, &down, &b, w.as_deref());
        // Same EMA and the same gradient for every other element: the same weights.
        let others_same =
            |g2: &[f32]| (0..n).all(|j| j == i || g2[j].to_bits() == grad[j].to_bits());
        if su != s0 || sd != s0 || !others_same(&gu) || !others_same(&gd) {
            return TestResult::discard(); // the step moved element i to another region
        }
        let fd = (f64::from(lu) - f64::from(ld)) / f64::from(up[i] - down[i]);
        let g = f64::from(grad[i]);
        let noise =
            4.0 * f64::from(f32::EPSILON) * f64::from(lu.abs().max(ld.abs())) / f64::from(h);
        TestResult::from_bool((fd - g).abs() <= 0.02 * g.abs() + noise + 1e-7)
    }
    check_both_losses!(prop);
}

/// Permuting the elements permutes the gradient (bit for bit), keeps the loss (to f64
/// summation order) and gives the same state.
#[test]
fn permutation_permutes_gradient_and_keeps_loss_and_state() {
    fn prop<L: Loss>(kind: Kind, seed: u64, n: u16) -> TestResult {
        let n = n as usize % 600;
        let (cfg, a, b, w) = setup(kind, seed, n, seed.is_multiple_of(3));
        let state = warmed::<L>(kind, cfg, seed);
        let mut perm: Vec<usize> = (0..n).collect();
        let mut rng = Rng::new(seed);
        for i in (1..n).rev() {
            perm.swap(i, (rng.next_u64() % (i as u64 + 1)) as usize);
        }
        let pa: Vec<f32> = perm.iter().map(|&j| a[j]).collect();
        let pb: Vec<f32> = perm.iter().map(|&j| b[j]).collect();
        let pw: Option<Vec<f32>> = w.as_ref().map(|w| perm.iter().map(|&j| w[j]).collect());
        let (l1, g1, s1) = call::<L>(&state, &a, &b, w.as_deref());
        let (l2, g2, s2) = call::<L>(&state, &pa, &pb, pw.as_deref());
        let grads_permuted = perm
            .iter()
            .enumerate()
            .all(|(i, &j)| g2[i].to_bits() == g1[j].to_bits());
        let loss_same = (l1 - l2).abs() <= 1e-6 * l1.abs();
        TestResult::from_bool(grads_permuted && loss_same && s1 == s2)
    }
    check_both_losses!(prop);
}

/// Inserting an element with label weight 0 changes nothing: same loss and state, the other
/// gradients unchanged, and its own gradient 0.
#[test]
fn zero_weight_element_is_the_same_as_no_element() {
    fn prop<L: Loss>(kind: Kind, seed: u64, n: u16) -> TestResult {
        let n = n as usize % 600;
        let (cfg, a, b, w) = setup(kind, seed, n, true);
        let w = w.unwrap();
        let state = warmed::<L>(kind, cfg, seed);
        let at = (seed as usize) % (n + 1);
        let (mut a2, mut b2, mut w2) = (a.clone(), b.clone(), w.clone());
        a2.insert(at, 3.0 * (seed % 5) as f32 - 6.0);
        b2.insert(at, 0.5);
        w2.insert(at, 0.0);
        let (l1, g1, s1) = call::<L>(&state, &a, &b, Some(&w));
        let (l2, mut g2, s2) = call::<L>(&state, &a2, &b2, Some(&w2));
        let own = g2.remove(at);
        let loss_same = (l1 - l2).abs() <= 1e-6 * l1.abs();
        TestResult::from_bool(own == 0.0 && g1 == g2 && loss_same && s1 == s2)
    }
    check_both_losses!(prop);
}

/// The loss and the gradient scale linearly with loss_weight; the EMA does not depend on it.
#[test]
fn loss_and_gradient_scale_with_loss_weight() {
    fn prop<L: Loss>(kind: Kind, seed: u64, n: u16) -> TestResult {
        let n = n as usize % 600;
        let (cfg, a, b, w) = setup(kind, seed, n, seed % 2 == 1);
        let lambda = [0.5f32, 2.0, 10.0, -3.0][(seed % 4) as usize];
        let (l1, g1, s1) = call::<L>(
            &Ghm::<L>::new(cfg).unwrap().state().clone(),
            &a,
            &b,
            w.as_deref(),
        );
        let scaled = Config {
            loss_weight: lambda,
            ..cfg
        };
        let (l2, g2, s2) = call::<L>(
            &Ghm::<L>::new(scaled).unwrap().state().clone(),
            &a,
            &b,
            w.as_deref(),
        );
        let lam = f64::from(lambda);
        let close = |x: f32, y: f32| {
            (f64::from(y) - lam * f64::from(x)).abs() <= 1e-6 * (lam * f64::from(x)).abs() + 1e-30
        };
        TestResult::from_bool(
            close(l1, l2) && g1.iter().zip(&g2).all(|(&x, &y)| close(x, y)) && s1.ema() == s2.ema(),
        )
    }
    check_both_losses!(prop);
}

/// With the same number of elements in every region, every harmonizing weight is 1: the
/// loss is loss_weight times the plain mean of the terms and the gradient is
/// loss_weight * dir / n.
#[test]
fn uniform_gradient_norm_distribution_gives_every_weight_one() {
    fn prop<L: Loss>(kind: Kind, seed: u64, per_bin: u16) -> TestResult {
        let per = 1 + per_bin as usize % 20;
        let bins = 1 + (seed % 64) as u32;
        let cfg = Config {
            bins,
            momentum: 0.0,
            mu: 0.5,
            loss_weight: 3.0,
            ..Config::ghm_c()
        };
        let mut rng = Rng::new(seed);
        let (mut a, mut b) = (Vec::new(), Vec::new());
        for k in 0..bins {
            for _ in 0..per {
                // a gradient norm strictly inside region k
                let g = (f64::from(k) + 0.2 + 0.6 * f64::from(rng.uniform())) / f64::from(bins);
                let sign = if rng.uniform() < 0.5 { 1.0 } else { -1.0 };
                match kind {
                    Kind::Classification => {
                        a.push((g / (1.0 - g)).ln() as f32); // sigmoid(a) = g, target 0
                        b.push(0.0);
                    }
                    Kind::Regression => {
                        a.push((sign * 0.5 * g / (1.0 - g * g).sqrt()) as f32); // |d|/h = g
                        b.push(0.0);
                    }
                }
            }
        }
        let n = a.len();
        let (loss, grad, _) = call::<L>(Ghm::<L>::new(cfg).unwrap().state(), &a, &b, None);
        let mut mean = 0.0f64;
        for i in 0..n {
            let (_, term, dir) = common::element(kind, cfg.mu, a[i], b[i]);
            mean += term / n as f64;
            let want = 3.0 * dir / n as f64;
            if (f64::from(grad[i]) - want).abs() > 1e-5 * want.abs() + 1e-9 {
                return TestResult::failed();
            }
        }
        TestResult::from_bool((f64::from(loss) - 3.0 * mean).abs() <= 1e-5 * 3.0 * mean)
    }
    check_both_losses!(prop);
}

/// n = 0 gives loss 0 and leaves the state exactly as it was.
#[test]
fn empty_batch_gives_zero_loss_and_unchanged_state() {
    fn prop<L: Loss>(kind: Kind, seed: u64, _n: u16) -> TestResult {
        let (cfg, _, _, _) = setup(kind, seed, 0, false);
        let state = warmed::<L>(kind, cfg, seed);
        let (loss, grad, after) = call::<L>(&state, &[], &[], None);
        let mut g = Ghm::<L>::from_state(state).unwrap();
        let loss_only = g.loss(&[], &[], Some(&[])).unwrap();
        TestResult::from_bool(
            loss == 0.0
                && loss_only == 0.0
                && grad.is_empty()
                && after == state
                && *g.state() == state,
        )
    }
    check_both_losses!(prop);
}
