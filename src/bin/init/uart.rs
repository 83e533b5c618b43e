//! Direct 16550 UART output by port I/O: synchronous, no locks, no device
//! file. The crash paths use it, and the console falls back to it when
//! /dev/ttyS* cannot be opened. x86_64 only.

use core::sync::atomic::{AtomicBool, Ordering};
use guestinit::sys::port::{inb, ioperm, outb};

pub const COM1: u16 = 0x3f8;
pub const COM2: u16 = 0x2f8;

/// Line status register offset and its bits.
const LSR: u16 = 5;
const LSR_THR_EMPTY: u8 = 0x20;
const LSR_IDLE: u8 = 0x40;

/// Spins before a byte is written anyway: a UART that never reports room
/// (absent device) must not hang a crash path.
const SPIN_LIMIT: u32 = 100_000;

static GRANTED: AtomicBool = AtomicBool::new(false);

fn grant() -> bool {
    if GRANTED.load(Ordering::Acquire) {
        return true;
    }
    let ok = ioperm(COM2, 8).is_ok() && ioperm(COM1, 8).is_ok();
    GRANTED.store(ok, Ordering::Release);
    ok
}

fn wait_for(base: u16, bit: u8) {
    for _ in 0..SPIN_LIMIT {
        // SAFETY: the port was granted; reading LSR has no side effects.
        if unsafe { inb(base + LSR) } & bit != 0 {
            return;
        }
        core::hint::spin_loop();
    }
}

/// Writes `bytes` to the UART at `base`; false when port access is denied.
pub fn write(base: u16, bytes: &[u8]) -> bool {
    if !grant() {
        return false;
    }
    for &b in bytes {
        wait_for(base, LSR_THR_EMPTY);
        // SAFETY: the port was granted; THR takes any byte.
        unsafe { outb(base, b) };
    }
    true
}

/// Waits until the UART has shifted out everything written to it.
pub fn drain(base: u16) {
    if grant() {
        wait_for(base, LSR_IDLE);
    }
}
