//! Instruction profile workload: three GHM-C (COCO settings) loss and gradient
//! calls on 1200 detector-like elements; `mcu/analyze.sh` runs it under QEMU's execution
//! log and attributes the instructions to functions.
#![no_std]
#![no_main]

use cortex_m_rt::entry;

#[entry]
fn main() -> ! {
    static mut BUF: [[f32; ghm_mcu::agree::N]; 4] = [[0.0; ghm_mcu::agree::N]; 4];
    let [a, b, w, g] = BUF;
    ghm_mcu::agree::fill(7, a, b, w, &mut [0; 1]);
    let ok = ghm_mcu::agree::profile_c(a, b, g);
    ghm_mcu::exit(ok)
}
