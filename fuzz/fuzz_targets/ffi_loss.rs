//! `ghm_c_loss` / `ghm_r_loss` through their `extern "C"` entry points, on buffers laid out
//! in one arena at fuzzed offsets (disjoint, in place, partly overlapping, aliased inputs,
//! misaligned, NULL), with fuzzed lengths (0, odd tails, large, beyond the address space),
//! values (NaN, +-Inf, subnormals, -0.0, huge) and states (fresh, the other loss's,
//! corrupted, never initialised). Checked on every call:
//! - the status is one the library defines, and the pointer rules' status when they are broken;
//! - an error leaves every byte of the arena, the state and the loss untouched;
//! - success gives a finite loss and gradient and writes nothing but the state, the loss and
//!   the gradient;
//! - the result equals the safe Rust API on copies (bit for bit), the three-phase
//!   accumulate/merge/commit/apply API (same state, loss and gradient up to f64 summation
//!   order), and the scalar path (closely, whenever it bins every element alike).
#![no_main]

mod common;

use common::*;
use ghm::ffi::*;
use libfuzzer_sys::arbitrary::{Result, Unstructured};
use libfuzzer_sys::fuzz_target;

const PATTERN: u32 = 0x7fc0_dead; // a NaN: never a value the library would write

fuzz_target!(|data: &[u8]| {
    let _ = run(&mut Unstructured::new(data));
});

fn run(u: &mut Unstructured) -> Result<()> {
    let kind = Kind::pick(u)?;

    // The state buffer: one spare word so the state can be misaligned by a byte.
    let mut state_buf = vec![PATTERN; STATE_WORDS + 1];
    match u.int_in_range(0u8..=15)? {
        0..=11 => {
            let cfg = config(u, kind)?;
            let before = state_buf.clone();
            let st = unsafe { c_init(kind, state_buf.as_mut_ptr(), &cfg) };
            let expect = match kind {
                Kind::C => ghm::GhmC::new(cfg).map(|g| *g.state()),
                Kind::R => ghm::GhmR::new(cfg).map(|g| *g.state()),
            };
            match expect {
                Ok(s) => {
                    assert_eq!(st, GHM_OK, "init refused a config the safe API accepts");
                    assert_eq!(
                        &state_buf[..STATE_WORDS],
                        &state_words(&s)[..],
                        "init vs safe API"
                    );
                }
                Err(e) => {
                    assert_eq!(st, e.code(), "init status vs safe API");
                    assert_eq!(state_buf, before, "failed init wrote the state");
                    let dflt = ghm_c_config_default();
                    assert_eq!(
                        unsafe { c_init(kind, state_buf.as_mut_ptr(), &dflt) },
                        GHM_OK
                    );
                }
            }
        }
        12 => {
            let cfg = ghm_r_config_default();
            assert_eq!(
                unsafe { c_init(kind.other(), state_buf.as_mut_ptr(), &cfg) },
                GHM_OK
            );
        }
        13 => {
            let cfg = config(u, kind)?;
            unsafe { c_init(kind, state_buf.as_mut_ptr(), &cfg) };
            let i = u.int_in_range(0..=STATE_WORDS - 1)?;
            state_buf[i] ^= u.arbitrary::<u32>()?.max(1);
        }
        _ => {
            for w in state_buf.iter_mut() {
                *w = u.arbitrary()?;
            }
        }
    }

    // Length.
    let n: usize = match u.int_in_range(0u8..=31)? {
        0..=2 => 0,
        3..=20 => u.int_in_range(1..=40)?,
        21..=27 => u.int_in_range(41..=300)?,
        28..=30 => u.int_in_range(1000..=4100)?,
        _ => *u.choose(&[usize::MAX, usize::MAX / 4 + 1, isize::MAX as usize, 1 << 62])?,
    };
    let huge = n > 1 << 20;
    let len = if huge { 64 } else { n };

    // Layout: word offsets of a, b, w, grad in one arena.
    let arena_len = 4 * len + 64;
    let mut arena = vec![PATTERN; arena_len];
    let max_off = arena_len - len;
    let (mut oa, mut ob, mut ow, mut og) = (0, len + 4, 2 * len + 8, 3 * len + 12);
    match u.int_in_range(0u8..=9)? {
        0..=3 => {}
        4 => og = oa,                                                     // in place
        5 => ob = oa, // aliased inputs (allowed)
        6 => ow = ob, // aliased inputs (allowed)
        7 => og = oa + u.int_in_range(1..=len.max(1))?.min(max_off - oa), // partial overlap
        _ => {
            for o in [&mut oa, &mut ob, &mut ow, &mut og] {
                *o = u.int_in_range(0..=max_off)?;
            }
        }
    }
    let use_w = u.int_in_range(0u8..=2)? > 0;
    let use_grad = u.int_in_range(0u8..=3)? > 0;
    let calls = u.int_in_range(1u8..=3)?;
    let split_seed: usize = u.arbitrary::<u16>()?.into();

    // Where the state and the loss live: their own buffers, or inside the arena.
    let state_in_arena = u.int_in_range(0u8..=15)? == 0 && arena_len > STATE_WORDS;
    let os = if state_in_arena {
        u.int_in_range(0..=arena_len - STATE_WORDS)?
    } else {
        0
    };
    if state_in_arena {
        arena[os..os + STATE_WORDS].copy_from_slice(&state_buf[..STATE_WORDS]);
    }
    let mut loss_buf = [PATTERN; 2];
    let loss_mode = u.int_in_range(0u8..=15)?;
    let ol = u.int_in_range(0..=arena_len - 1)?;
    // Which pointer (if any) is NULL or misaligned by a byte.
    let nulled = if u.int_in_range(0u8..=9)? == 0 {
        u.int_in_range(0u8..=5)?
    } else {
        9
    };
    let skewed = if u.int_in_range(0u8..=19)? == 0 {
        u.int_in_range(0u8..=5)?
    } else {
        9
    };

    for _ in 0..calls {
        // Values, written in order (later roles win where buffers alias).
        for (off, role) in [(oa, 0u8), (ob, 1), (ow, 2)] {
            if role == 2 && !use_w {
                continue;
            }
            for i in 0..len {
                arena[off + i] = value(u, kind, role)?.to_bits();
            }
        }
        let base = arena.as_mut_ptr();
        let mut p: [*mut u8; 6] = unsafe {
            [
                if state_in_arena {
                    base.add(os).cast()
                } else {
                    state_buf.as_mut_ptr().cast()
                },
                base.add(oa).cast(),
                base.add(ob).cast(),
                if use_w {
                    base.add(ow).cast()
                } else {
                    core::ptr::null_mut()
                },
                match loss_mode {
                    0 => base.add(ol).cast(),
                    _ => loss_buf.as_mut_ptr().cast(),
                },
                if use_grad {
                    base.add(og).cast()
                } else {
                    core::ptr::null_mut()
                },
            ]
        };
        if nulled < 6 {
            p[nulled as usize] = core::ptr::null_mut();
        }
        if skewed < 6 && !p[skewed as usize].is_null() {
            // Stay inside the allocation: step back a word when possible, then skew.
            p[skewed as usize] = p[skewed as usize].wrapping_add(1);
        }
        let [ps, pa, pb, pw, pl, pg] = p;
        let (ps, pa, pb, pw, pl, pg) = (
            ps.cast::<u32>(),
            pa.cast::<f32>(),
            pb.cast::<f32>(),
            pw.cast::<f32>(),
            pl.cast::<f32>(),
            pg.cast::<f32>(),
        );

        // A skewed pointer reads one byte past its buffer only if the library ignored the
        // misalignment; the pointer rules below make that a failure before any read.
        let verdict = pointer_errors(ps, pa, pb, kind == Kind::C, pw, n, pl, pg);
        assert!(verdict.is_some() || skewed >= 6 || p[skewed as usize].is_null());
        // GHM-C's targets may be NULL only with GHM_OPT_GRADIENT_INPUT, which the state holds.
        let null_b = verdict.is_none() && n > 0 && pb.is_null();
        let null_b_status = if null_b {
            null_targets(&read_state(unsafe {
                core::slice::from_raw_parts(ps, STATE_WORDS)
            }))
        } else {
            None
        };

        // Copies for the independent computations (taken before the call: in place
        // overwrites a).
        let copies = if verdict.is_none() && null_b_status.is_none() {
            let rd = |q: *const f32| {
                if n == 0 {
                    Vec::new()
                } else {
                    unsafe { core::slice::from_raw_parts(q, n).to_vec() }
                }
            };
            let state = read_state(unsafe { core::slice::from_raw_parts(ps, STATE_WORDS) });
            // NULL targets (gradient input, which does not read them): any values will do.
            let b = if pb.is_null() { vec![0.0; n] } else { rd(pb) };
            Some((state, rd(pa), b, (!pw.is_null()).then(|| rd(pw))))
        } else {
            None
        };
        let (arena0, state0, loss0) = (arena.clone(), state_buf.clone(), loss_buf);

        let st = unsafe { c_loss(kind, ps, pa, pb, pw, n, pl, pg) };

        assert!(known_status(st), "unknown status {st}");
        if let Some(errs) = &verdict {
            assert!(
                errs.contains(&st),
                "pointer rules broken ({errs:?}) but status {st}"
            );
        }
        if let Some(want) = null_b_status {
            assert_eq!(st, want, "NULL targets: status");
        }
        if st != GHM_OK {
            assert!(
                arena == arena0,
                "failed call (status {st}) wrote caller memory"
            );
            assert_eq!(
                state_buf, state0,
                "failed call (status {st}) wrote the state"
            );
            assert_eq!(loss_buf, loss0, "failed call (status {st}) wrote the loss");
        }
        let Some((state, a, b, w)) = copies else {
            return Ok(());
        };
        let in_place = !pg.is_null() && n > 0 && pg == pa;
        let mut got = Outcome {
            status: st,
            loss: 0.0,
            grad: Vec::new(),
            state: [0; STATE_WORDS],
        };
        if st == GHM_OK {
            got.loss = unsafe { pl.read() };
            assert!(got.loss.is_finite(), "non-finite loss {}", got.loss);
            if !pg.is_null() {
                got.grad = unsafe { core::slice::from_raw_parts(pg, n).to_vec() };
                assert!(
                    got.grad.iter().all(|g| g.is_finite()),
                    "non-finite gradient"
                );
            }
            got.state
                .copy_from_slice(unsafe { core::slice::from_raw_parts(ps, STATE_WORDS) });
            // Nothing outside the outputs changed.
            let lo = |q: *const f32| (q as usize).wrapping_sub(arena.as_ptr() as usize) / 4;
            for (i, (x, y)) in arena.iter().zip(&arena0).enumerate() {
                let in_grad = !pg.is_null() && (lo(pg)..lo(pg) + n).contains(&i);
                let in_state = state_in_arena && (os..os + STATE_WORDS).contains(&i);
                let in_loss = loss_mode == 0 && i == ol;
                assert!(
                    x == y || in_grad || in_state || in_loss,
                    "word {i} written outside the outputs"
                );
            }
        }
        let split = split_seed % (n + 1);
        check_against_safe(
            kind,
            &got,
            &state,
            &a,
            &b,
            w.as_deref(),
            !pg.is_null(),
            in_place,
            split,
        );
        if st != GHM_OK {
            return Ok(());
        }
    }
    Ok(())
}
