//! The state and config rules through the `extern "C"` entry points: `ghm_c_init` /
//! `ghm_r_init` on arbitrary config bytes (and a config that overlaps the state), and
//! `ghm_c_loss` / `ghm_r_loss` on arbitrary bytes as a state, both as they come (never
//! initialised) and resealed with a valid checksum (so that the checks behind the checksum
//! are reached: magic, kind, every config field, the EMA's range, unused regions). Checked:
//! - init: the status equals the safe API's `Ghm::new`; an error leaves the state untouched;
//! - loss: the status equals the safe API's on a copy of the state; an error writes nothing;
//!   success gives a finite loss and gradient, a state the safe API accepts, and the bits the
//!   safe API computes.
#![no_main]

mod common;

use common::*;
use ghm::ffi::*;
use ghm::Config;
use libfuzzer_sys::arbitrary::{Result, Unstructured};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = run(&mut Unstructured::new(data));
});

fn run(u: &mut Unstructured) -> Result<()> {
    let kind = Kind::pick(u)?;

    // init on an arbitrary config, into a state filled with arbitrary bytes.
    let mut words = [0u32; STATE_WORDS + 8];
    for w in words.iter_mut() {
        *w = u.arbitrary()?;
    }
    let cfg = config(u, kind)?;
    let before = words;
    let st = if u.int_in_range(0u8..=15)? == 0 {
        // The config inside the state's own memory: an overlap.
        let p = words.as_mut_ptr();
        unsafe {
            p.add(2).cast::<Config>().write(cfg);
            let snapshot = words;
            let st = c_init(kind, p, p.add(2).cast());
            assert_eq!(st, GHM_ERR_OVERLAP, "config inside the state");
            assert_eq!(words, snapshot, "failed init wrote the state");
        }
        return Ok(());
    } else {
        unsafe { c_init(kind, words.as_mut_ptr(), &cfg) }
    };
    let expect = match kind {
        Kind::C => ghm::GhmC::new(cfg).map(|_| ()),
        Kind::R => ghm::GhmR::new(cfg).map(|_| ()),
    };
    assert_eq!(
        st,
        expect.err().map_or(GHM_OK, |e| e.code()),
        "init vs safe API"
    );
    if st != GHM_OK {
        assert_eq!(words, before, "failed init wrote the state");
    }

    // Then arbitrary edits of the state, maybe resealed.
    let edits = u.int_in_range(0u8..=4)?;
    for _ in 0..edits {
        let i = u.int_in_range(0..=STATE_WORDS - 1)?;
        words[i] = match u.int_in_range(0u8..=3)? {
            0 => u.arbitrary()?,
            1 => special(u)?.to_bits(),
            2 => words[i] ^ (1 << u.int_in_range(0u32..=31)?),
            _ => u.int_in_range(0u32..=70)?,
        };
    }
    if u.arbitrary::<bool>()? {
        reseal(&mut words[..STATE_WORDS]);
    }
    let loss_kind = if u.int_in_range(0u8..=7)? == 0 {
        kind.other()
    } else {
        kind
    };

    let n = u.int_in_range(0usize..=19)?;
    let mut a = vec![0f32; n];
    let mut b = vec![0f32; n];
    for i in 0..n {
        a[i] = value(u, loss_kind, 0)?;
        b[i] = value(u, loss_kind, 1)?;
    }
    let mut grad = vec![f32::from_bits(0x7fc0_dead); n];
    let mut loss = f32::from_bits(0x7fc0_dead);
    let state = read_state(&words);
    let (words0, grad0) = (words, grad.clone());
    let st = unsafe {
        c_loss(
            loss_kind,
            words.as_mut_ptr(),
            a.as_ptr(),
            b.as_ptr(),
            core::ptr::null(),
            n,
            &mut loss,
            grad.as_mut_ptr(),
        )
    };
    assert!(known_status(st), "unknown status {st}");
    if st != GHM_OK {
        assert_eq!(words, words0, "failed call wrote the state");
        assert!(bits_equal(&grad, &grad0), "failed call wrote the gradient");
        assert_eq!(loss.to_bits(), 0x7fc0_dead, "failed call wrote the loss");
    } else {
        assert!(
            loss.is_finite() && grad.iter().all(|g| g.is_finite()),
            "non-finite result"
        );
        assert_eq!(
            words[STATE_WORDS..],
            words0[STATE_WORDS..],
            "wrote past the state"
        );
        let next = read_state(&words);
        let ok = match loss_kind {
            Kind::C => ghm::GhmC::from_state(next).is_ok(),
            Kind::R => ghm::GhmR::from_state(next).is_ok(),
        };
        assert!(ok, "a successful call left a state the library refuses");
    }
    let mut got = Outcome {
        status: st,
        loss,
        grad: grad.clone(),
        state: [0; STATE_WORDS],
    };
    got.state.copy_from_slice(&words[..STATE_WORDS]);
    let split = n / 2;
    check_against_safe(loss_kind, &got, &state, &a, &b, None, true, false, split);
    Ok(())
}
