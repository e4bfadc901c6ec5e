//! Flash-size probe: the smallest firmware that uses no ghm (the baseline).
//! `mcu/run.sh` compares its sections with the baseline's.
#![no_std]
#![no_main]
#![allow(unused_mut)]

use core::hint::black_box;
use cortex_m_rt::entry;

#[entry]
fn main() -> ! {
    let x = black_box([0.5f32, -2.0, 3.0, 0.0]);
    let t = black_box([1.0f32, 0.0, 0.0, 1.0]);
    let mut g = [0.0f32; 4];
    let mut ok = true;
    black_box((&x, &t, &g));
    ghm_mcu::exit(black_box(ok))
}
