//! `ghm_c_config_check` / `ghm_r_config_check`: they name a field exactly when the init of
//! that loss refuses the config, the first invalid one in the struct's order, with its
//! range; and they keep the C contract for their own pointers.

use std::ffi::{c_char, CStr};
use std::ptr;

use ghm::ffi::{
    ghm_c_config_check, ghm_c_init, ghm_r_config_check, ghm_r_init, ghm_status, GHM_ERR_NULL,
    GHM_ERR_OVERLAP, GHM_OK,
};
use ghm::{Config, State, OPT_ALL, OPT_NORM_BY_POSITIVES, OPT_PROBABILITY_INPUT};

type Check =
    unsafe extern "C" fn(*const Config, *mut *const c_char, *mut *const c_char) -> ghm_status;
type Init = unsafe extern "C" fn(*mut State, *const Config) -> ghm_status;

const LOSSES: [(&str, Check, Init); 2] = [
    ("GHM-C", ghm_c_config_check, ghm_c_init),
    ("GHM-R", ghm_r_config_check, ghm_r_init),
];

/// (field, range) named by the check, or None for a valid config.
fn check(f: Check, c: &Config) -> Option<(String, String)> {
    let mut field: *const c_char = ptr::null();
    let mut allowed: *const c_char = ptr::null();
    assert_eq!(unsafe { f(c, &mut field, &mut allowed) }, GHM_OK);
    assert_eq!(field.is_null(), allowed.is_null());
    if field.is_null() {
        return None;
    }
    let s = |p| unsafe { CStr::from_ptr(p) }.to_str().unwrap().to_owned();
    Some((s(field), s(allowed)))
}

fn init_accepts(f: Init, c: &Config) -> bool {
    let mut st = std::mem::MaybeUninit::<State>::uninit();
    unsafe { f(st.as_mut_ptr(), c) == GHM_OK }
}

/// Values of every field: valid ones, the edges of the ranges and beyond them.
fn field_values() -> (Vec<u32>, Vec<f32>, Vec<f32>, Vec<u32>) {
    let bins = vec![0, 1, 2, 30, 63, 64, 65, 100, u32::MAX];
    let unit = vec![
        0.0,
        -0.0,
        0.5,
        0.75,
        f32::from_bits(1.0f32.to_bits() - 1),
        1.0,
        -1e-30,
        -1.0,
        2.0,
        1e18,
        1.0000001e18,
        f32::MAX,
        f32::INFINITY,
        f32::NEG_INFINITY,
        f32::NAN,
    ];
    let small = vec![0.0, 0.02, 1.0, -1.0, f32::INFINITY, f32::NAN, 1e19];
    let options = vec![
        0,
        1,
        2,
        4,
        OPT_PROBABILITY_INPUT,
        OPT_ALL,
        16,
        OPT_NORM_BY_POSITIVES,
        OPT_ALL | 64,
        u32::MAX,
    ];
    (bins, unit, small, options)
}

#[test]
fn a_field_is_named_exactly_when_init_refuses_the_config() {
    let (bins, unit, small, options) = field_values();
    let mut named = [0usize; 2];
    let mut checked = 0usize;
    for (li, (name, chk, init)) in LOSSES.iter().enumerate() {
        for &b in &bins {
            for &m in &unit {
                for &mu in &small {
                    for (i, &lw) in small.iter().enumerate() {
                        for &o in &options {
                            for (j, &cap) in small.iter().enumerate() {
                                // every count prior, against varying other fields
                                let prior = small[(i + j) % small.len()];
                                let c = Config {
                                    bins: b,
                                    momentum: m,
                                    mu,
                                    loss_weight: lw,
                                    options: o,
                                    weight_cap: cap,
                                    count_prior: prior,
                                };
                                let got = check(*chk, &c);
                                let accepted = init_accepts(*init, &c);
                                assert_eq!(
                                    got.is_none(),
                                    accepted,
                                    "{name}: check says {got:?}, init accepts: {accepted}, config {c:?}"
                                );
                                if got.is_some() {
                                    named[li] += 1;
                                }
                                checked += 1;
                            }
                        }
                    }
                }
            }
        }
    }
    // Both outcomes occur for both losses (the grid is not all valid or all invalid).
    assert!(
        named.iter().all(|&n| n > 0 && n < checked / 2),
        "{named:?} of {checked}"
    );
}

#[test]
fn the_first_invalid_field_in_struct_order_is_named_with_its_range() {
    let ok = Config {
        bins: 30,
        momentum: 0.75,
        ..Config::ghm_c()
    };
    let cases: [(&str, Config, Option<&str>, Option<&str>); 11] = [
        ("valid", ok, None, None),
        (
            "bins",
            Config { bins: 100, ..ok },
            Some("bins"),
            Some("bins"),
        ),
        (
            "momentum",
            Config {
                momentum: 1.0,
                ..ok
            },
            Some("momentum"),
            Some("momentum"),
        ),
        ("mu", Config { mu: 0.0, ..ok }, None, Some("mu")),
        (
            "loss_weight",
            Config {
                loss_weight: f32::NAN,
                ..ok
            },
            Some("loss_weight"),
            Some("loss_weight"),
        ),
        (
            "options",
            Config { options: 128, ..ok },
            Some("options"),
            Some("options"),
        ),
        (
            "probability input",
            Config {
                options: OPT_PROBABILITY_INPUT,
                ..ok
            },
            None,
            Some("options"),
        ),
        (
            "weight_cap",
            Config {
                weight_cap: -1.0,
                ..ok
            },
            Some("weight_cap"),
            Some("weight_cap"),
        ),
        (
            "count_prior",
            Config {
                count_prior: f32::INFINITY,
                ..ok
            },
            Some("count_prior"),
            Some("count_prior"),
        ),
        (
            "positives normalisation",
            Config {
                options: OPT_NORM_BY_POSITIVES,
                ..ok
            },
            None,
            Some("options"),
        ),
        (
            "several",
            Config {
                bins: 0,
                momentum: 2.0,
                weight_cap: -1.0,
                ..ok
            },
            Some("bins"),
            Some("bins"),
        ),
    ];
    for (what, c, want_c, want_r) in cases {
        for ((name, chk, _), want) in LOSSES.iter().zip([want_c, want_r]) {
            let got = check(*chk, &c);
            assert_eq!(
                got.as_ref().map(|g| g.0.as_str()),
                want,
                "{name}, {what}: {got:?}"
            );
            if let Some((_, range)) = got {
                assert!(!range.is_empty(), "{name}, {what}: empty range text");
            }
        }
    }
    let (_, range) = check(ghm_c_config_check, &Config { bins: 65, ..ok }).unwrap();
    assert_eq!(range, format!("an integer in 1..={}", ghm::MAX_BINS));
    let (_, range) = check(
        ghm_r_config_check,
        &Config {
            momentum: -0.5,
            ..ok
        },
    )
    .unwrap();
    assert_eq!(range, "[0, 1)");
}

#[test]
fn bad_pointers_are_refused_without_writing() {
    let c = Config::ghm_c();
    for (name, chk, _) in LOSSES {
        let sentinel = c"untouched".as_ptr();
        let mut field = sentinel;
        let mut allowed = sentinel;
        let calls: [(&str, ghm_status); 3] = unsafe {
            [
                ("config NULL", chk(ptr::null(), &mut field, &mut allowed)),
                ("field NULL", chk(&c, ptr::null_mut(), &mut allowed)),
                ("allowed NULL", chk(&c, &mut field, ptr::null_mut())),
            ]
        };
        for (what, s) in calls {
            assert_eq!(s, GHM_ERR_NULL, "{name}: {what}");
        }
        let same = unsafe { chk(&c, &mut field, &mut field) };
        assert_eq!(
            same, GHM_ERR_OVERLAP,
            "{name}: field and allowed the same pointer"
        );
        assert!(
            field == sentinel && allowed == sentinel,
            "{name}: written on error"
        );
    }
}
