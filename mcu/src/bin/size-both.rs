//! Flash-size probe: the smallest firmware that calls GHM-C and GHM-R (loss and gradient).
//! `mcu/run.sh` compares its sections with the baseline's.
#![no_std]
#![no_main]

use core::hint::black_box;
use cortex_m_rt::entry;

#[entry]
fn main() -> ! {
    let x = black_box([0.5f32, -2.0, 3.0, 0.0]);
    let t = black_box([1.0f32, 0.0, 0.0, 1.0]);
    let mut g = [0.0f32; 4];
    let mut ok = true;
    let cfg = black_box(ghm::Config::ghm_c());
    match ghm::GhmC::new(cfg).and_then(|mut l| l.loss_grad(&x, &t, None, &mut g)) {
        Ok(v) => ok &= black_box(v).is_finite(),
        Err(_) => ok = false,
    }
    let cfg = black_box(ghm::Config::ghm_r());
    match ghm::GhmR::new(cfg).and_then(|mut l| l.loss_grad(&x, &t, None, &mut g)) {
        Ok(v) => ok &= black_box(v).is_finite(),
        Err(_) => ok = false,
    }
    black_box((&x, &t, &g));
    ghm_mcu::exit(black_box(ok))
}
