//! Support shared by the firmware binaries: semihosting output and exit, the panic handler,
//! the stack paint-and-scan, and instruction counting with SysTick under QEMU `-icount`.
#![no_std]

pub mod agree;

use core::fmt::Write;
use cortex_m::peripheral::{syst::SystClkSource, SYST};
use cortex_m_semihosting::{debug, hio};

/// Prints a line on the host's standard output (semihosting).
#[macro_export]
macro_rules! println {
    ($($arg:tt)*) => {
        $crate::print_fmt(format_args!($($arg)*))
    };
}

#[doc(hidden)]
pub fn print_fmt(args: core::fmt::Arguments) {
    if let Ok(mut out) = hio::hstdout() {
        let _ = out.write_fmt(args);
        let _ = out.write_str("\n");
    }
}

/// Ends the emulation with exit status 0 (`ok`) or 1.
pub fn exit(ok: bool) -> ! {
    debug::exit(if ok {
        debug::EXIT_SUCCESS
    } else {
        debug::EXIT_FAILURE
    });
    #[allow(clippy::empty_loop)]
    loop {}
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    print_fmt(format_args!("PANIC: {info}"));
    exit(false)
}

/// Counts emulated instructions: SysTick on the processor clock, which QEMU's `-icount
/// shift=0` advances in step with the instructions executed. One tick is several
/// instructions; [`Timer::calibrate`] measures how many on a loop of known length.
pub struct Timer {
    syst: SYST,
    /// Instructions per SysTick tick, as measured by `calibrate`.
    pub per_tick: f64,
}

const RELOAD: u32 = 0x00ff_ffff;

impl Timer {
    pub fn new(mut syst: SYST) -> Timer {
        syst.set_clock_source(SystClkSource::Core);
        syst.set_reload(RELOAD);
        syst.clear_current();
        syst.enable_counter();
        Timer {
            syst,
            per_tick: 1.0,
        }
    }

    fn now(&self) -> u32 {
        SYST::get_current()
    }

    /// SysTick ticks taken by `f` (at most 2^24 - 1: the counter is not extended).
    pub fn ticks<R>(&mut self, f: impl FnOnce() -> R) -> (u32, R) {
        self.syst.clear_current();
        let _ = self.syst.has_wrapped();
        let t0 = self.now();
        let r = f();
        let t1 = self.now();
        let wrapped = self.syst.has_wrapped();
        if wrapped {
            crate::println!("timer: SysTick wrapped; measurement invalid");
            exit(false);
        }
        (t0.wrapping_sub(t1) & RELOAD, r)
    }

    /// Instructions taken by `f` (ticks times the calibrated factor).
    pub fn instructions<R>(&mut self, f: impl FnOnce() -> R) -> (f64, R) {
        let (t, r) = self.ticks(f);
        (f64::from(t) * self.per_tick, r)
    }

    /// Measures instructions per tick on a loop of exactly 2 instructions per iteration
    /// (`subs`, `bne`): the difference of two loop lengths cancels the fixed overhead.
    /// Returns the factor and the relative error of a third, independent loop length.
    pub fn calibrate(&mut self) -> (f64, f64) {
        let (a, _) = self.ticks(|| spin(200_000));
        let (b, _) = self.ticks(|| spin(1_200_000));
        self.per_tick = 2.0 * 1_000_000.0 / f64::from(b - a);
        let (c, _) = self.ticks(|| spin(700_000));
        let predicted = f64::from(c - a) * self.per_tick;
        let exact = 2.0 * 500_000.0;
        (self.per_tick, (predicted - exact) / exact)
    }
}

/// `n` iterations of a two-instruction loop.
#[inline(never)]
pub fn spin(n: u32) {
    if n == 0 {
        return;
    }
    unsafe {
        core::arch::asm!(
            "2:",
            "subs {0}, {0}, #1",
            "bne 2b",
            inout(reg) n => _,
            options(nomem, nostack),
        );
    }
}

const PAINT: u32 = 0xC0FF_EE55;
/// Bytes of stack below the caller painted and scanned.
pub const PAINT_BYTES: usize = 16 * 1024;

/// Paints `PAINT_BYTES` below the current stack pointer.
#[inline(never)]
fn paint(sp: usize) {
    let lo = sp - PAINT_BYTES;
    let mut p = lo;
    // Leave 64 bytes below `sp` unpainted: this function's own frame lives there.
    while p < sp - 64 {
        unsafe { core::ptr::write_volatile(p as *mut u32, PAINT) };
        p += 4;
    }
}

/// The lowest word below `sp` that is no longer the paint.
#[inline(never)]
fn scan(sp: usize) -> usize {
    let lo = sp - PAINT_BYTES;
    let mut p = lo;
    while p < sp - 64 {
        if unsafe { core::ptr::read_volatile(p as *const u32) } != PAINT {
            return p;
        }
        p += 4;
    }
    sp - 64
}

/// The stack high-water mark of `f` in bytes: paints the stack below the caller, runs `f`,
/// and finds the deepest word it changed. It counts `f`'s frames and the call into it (a
/// few words); the caller's locals (the state among them) are not counted.
#[inline(never)]
pub fn stack_used<R>(f: impl FnOnce() -> R) -> (usize, R) {
    let sp = cortex_m::register::msp::read() as usize;
    paint(sp);
    let r = f();
    let low = scan(sp);
    if low <= sp - PAINT_BYTES {
        crate::println!("stack: more than {PAINT_BYTES} bytes used; increase PAINT_BYTES");
        exit(false);
    }
    (sp - low, r)
}

/// Enables the FPU (CP10, CP11 full access); cortex-m-rt does it already for `eabihf`, this
/// only checks.
pub fn fpu_enabled() -> bool {
    let cpacr = unsafe { core::ptr::read_volatile(0xE000_ED88 as *const u32) };
    (cpacr >> 20) & 0xf == 0xf
}
