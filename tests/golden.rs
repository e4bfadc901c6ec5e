//! The crate reproduces mmdetection 3.3.0's own GHMC and GHMR (golden vectors in
//! tests/fixtures, made by tests/fixtures/generate.py) through the Rust API and the C API:
//! the loss, every gradient element and the EMA after every call of multi-call sequences.

mod common;

use common::{close_all, read_fixtures, rel_close, Case};
use ghm::{ffi, GhmC, GhmR, Kind, State};

/// Loss: relative 1e-5 (mmdetection sums in f32). Gradient: the vector-scaled tolerance of
/// tests/fixtures/README.md (PyTorch's f32 BCE and ASL1 cancel badly on tiny elements).
const LOSS_REL: f64 = 1e-5;
const GRAD_REL: f64 = 1e-5;
const GRAD_ABS_FRAC: f64 = 1e-6;

fn value_cases() -> Vec<Case> {
    let cases: Vec<Case> = read_fixtures()
        .into_iter()
        .filter(|c| !c.labels_layout)
        .collect();
    assert!(cases.len() >= 11, "fixtures lost cases: {}", cases.len());
    cases
}

/// Runs one call through whichever API; returns (loss, grad, state after).
type Runner<'a> = dyn FnMut(&common::Call) -> (f32, Vec<f32>, State) + 'a;

fn check_case(case: &Case, run: &mut Runner<'_>) {
    for (i, call) in case.calls.iter().enumerate() {
        let (loss, grad, state) = run(call);
        let ctx = format!("{} call {i}", case.name);
        assert!(
            rel_close(f64::from(loss), f64::from(call.loss), LOSS_REL),
            "{ctx}: loss {loss} vs mmdet {}",
            call.loss
        );
        let want: Vec<f64> = call.grad.iter().map(|&g| f64::from(g)).collect();
        close_all(&grad, &want, GRAD_REL, GRAD_ABS_FRAC)
            .unwrap_or_else(|e| panic!("{ctx}: grad {e}"));
        if let Some(acc) = &call.acc_sum {
            // The EMA rounds as mmdetection's does: bit for bit.
            for (k, (&s, &r)) in state.ema().iter().zip(acc).enumerate() {
                assert_eq!(s.to_bits(), r.to_bits(), "{ctx}: ema[{k}] {s} vs {r}");
            }
        } else {
            assert!(
                state.ema().iter().all(|&s| s == 0.0),
                "{ctx}: momentum 0 keeps no EMA"
            );
        }
    }
}

#[test]
fn rust_api_matches_mmdet_golden_vectors() {
    for case in value_cases() {
        let cfg = case.config;
        match case.kind {
            Kind::Classification => {
                let mut l = GhmC::new(cfg).unwrap();
                check_case(&case, &mut |c| {
                    let mut g = vec![0.0; c.n];
                    let v = l
                        .loss_grad(&c.pred, &c.target, c.weight.as_deref(), &mut g)
                        .unwrap();
                    (v, g, *l.state())
                });
            }
            Kind::Regression => {
                let mut l = GhmR::new(cfg).unwrap();
                check_case(&case, &mut |c| {
                    let mut g = vec![0.0; c.n];
                    let v = l
                        .loss_grad(&c.pred, &c.target, c.weight.as_deref(), &mut g)
                        .unwrap();
                    (v, g, *l.state())
                });
            }
        }
    }
}

#[test]
fn c_api_matches_mmdet_golden_vectors() {
    for case in value_cases() {
        let mut state = std::mem::MaybeUninit::<State>::uninit();
        let (init, loss_fn): (
            unsafe extern "C" fn(_, _) -> i32,
            unsafe extern "C" fn(_, _, _, _, _, _, _) -> i32,
        ) = match case.kind {
            Kind::Classification => (ffi::ghm_c_init, ffi::ghm_c_loss),
            Kind::Regression => (ffi::ghm_r_init, ffi::ghm_r_loss),
        };
        assert_eq!(
            unsafe { init(state.as_mut_ptr(), &case.config) },
            ffi::GHM_OK
        );
        let mut state = unsafe { state.assume_init() };
        check_case(&case, &mut |c| {
            let mut g = vec![0.0f32; c.n];
            let mut v = f32::NAN;
            let w = c.weight.as_ref().map_or(std::ptr::null(), |w| w.as_ptr());
            let st = unsafe {
                loss_fn(
                    &mut state,
                    c.pred.as_ptr(),
                    c.target.as_ptr(),
                    w,
                    c.n,
                    &mut v,
                    g.as_mut_ptr(),
                )
            };
            assert_eq!(st, ffi::GHM_OK);
            (v, g, state)
        });
    }
}

/// The three-phase API over every case, the class-index layout included: loss, gradient,
/// the reduction "none" values (mmdetection's `reduction_override='none'`) and the EMA.
#[test]
fn three_phase_api_with_class_index_and_reduction_none_matches_mmdet() {
    use ghm::{ClassLayout, Output, OutputKind};
    let none_out = Output {
        kind: OutputKind::ElementLoss,
        scale: 1.0,
        add: false,
        sum: false,
    };
    let cases = read_fixtures();
    assert!(
        cases.iter().filter(|c| c.labels_layout).count() >= 2,
        "labels cases missing"
    );
    for case in cases {
        let mut c = GhmC::new(case.config).unwrap();
        let mut r = GhmR::new(case.config).unwrap();
        check_case(&case, &mut |call| {
            let w = call.weight.as_deref();
            let mut grad = vec![0.0; call.pred.len()];
            let mut none = vec![0.0; call.pred.len()];
            let (weights, state) = match (case.kind, case.labels_layout) {
                (Kind::Classification, true) => {
                    let layout = ClassLayout::rows(call.n, case.classes);
                    let mut s = c.stats();
                    c.accumulate_labels(&mut s, &call.pred, layout, &call.labels, w)
                        .unwrap();
                    let wt = c.commit(&s).unwrap();
                    wt.apply_labels(
                        &call.pred,
                        layout,
                        &call.labels,
                        w,
                        Output::GRADIENT,
                        &mut grad,
                    )
                    .unwrap();
                    wt.apply_labels(&call.pred, layout, &call.labels, w, none_out, &mut none)
                        .unwrap();
                    (wt, *c.state())
                }
                (Kind::Classification, false) => (
                    phases(&mut c, call, none_out, &mut grad, &mut none),
                    *c.state(),
                ),
                (Kind::Regression, _) => (
                    phases(&mut r, call, none_out, &mut grad, &mut none),
                    *r.state(),
                ),
            };
            let want = call
                .none
                .as_ref()
                .expect("fixture has reduction none values");
            let want: Vec<f64> = want.iter().map(|&x| f64::from(x)).collect();
            close_all(&none, &want, GRAD_REL, GRAD_ABS_FRAC)
                .unwrap_or_else(|e| panic!("{} reduction none: {e}", case.name));
            (weights.loss().unwrap(), grad, state)
        });
    }
}

/// One call of element-wise inputs through accumulate, commit and apply: the gradient into
/// `grad` and the reduction "none" values into `none`.
fn phases<L: ghm::Loss>(
    g: &mut ghm::Ghm<L>,
    call: &common::Call,
    none_out: ghm::Output,
    grad: &mut [f32],
    none: &mut [f32],
) -> ghm::RegionWeights {
    let w = call.weight.as_deref();
    let mut s = g.stats();
    g.accumulate(&mut s, &call.pred, &call.target, w).unwrap();
    let wt = g.commit(&s).unwrap();
    wt.apply(&call.pred, &call.target, w, ghm::Output::GRADIENT, grad)
        .unwrap();
    wt.apply(&call.pred, &call.target, w, none_out, none)
        .unwrap();
    wt
}
