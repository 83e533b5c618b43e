//! The 16550 UARTs COM1 and COM2, written by x86 port I/O: synchronous, no
//! locks, no device file. The crash paths use it, and the console falls back
//! to it when /dev/ttyS* cannot be opened. Only these two UARTs' ports are
//! reachable, which is what makes the API safe.

use super::raw::{check, syscall3};
use core::sync::atomic::{AtomicBool, Ordering};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Uart {
    Com1,
    Com2,
}

impl Uart {
    fn base(self) -> u16 {
        match self {
            Uart::Com1 => 0x3f8,
            Uart::Com2 => 0x2f8,
        }
    }
}

/// Line status register offset and its bits.
const LSR: u16 = 5;
const LSR_THR_EMPTY: u8 = 0x20;
const LSR_IDLE: u8 = 0x40;
/// The registers of one UART.
const PORTS: u16 = 8;

/// Spins before a byte is written anyway: a UART that never reports room
/// (absent device) must not hang a crash path.
const SPIN_LIMIT: u32 = 100_000;

static GRANTED: AtomicBool = AtomicBool::new(false);

/// Writes `bytes` to `uart`; false when port access is denied.
pub fn write(uart: Uart, bytes: &[u8]) -> bool {
    if !grant() {
        return false;
    }
    for &b in bytes {
        wait_for(uart, LSR_THR_EMPTY);
        // SAFETY: the port is a granted UART's data register, which takes
        // any byte and touches no memory.
        unsafe { outb(uart.base(), b) };
    }
    true
}

/// Waits (bounded) until `uart` has shifted out everything written to it.
pub fn drain(uart: Uart) {
    if grant() {
        wait_for(uart, LSR_IDLE);
    }
}

/// Asks for both UARTs' ports once (needs CAP_SYS_RAWIO, which PID 1 has).
fn grant() -> bool {
    if GRANTED.load(Ordering::Acquire) {
        return true;
    }
    let ok = ioperm(Uart::Com2.base()) && ioperm(Uart::Com1.base());
    GRANTED.store(ok, Ordering::Release);
    ok
}

fn ioperm(from: u16) -> bool {
    // SAFETY: ioperm takes plain integers.
    let ret = unsafe {
        syscall3(
            linux_raw_sys::general::__NR_ioperm,
            from as usize,
            PORTS as usize,
            1,
        )
    };
    check(ret).is_ok()
}

fn wait_for(uart: Uart, bit: u8) {
    for _ in 0..SPIN_LIMIT {
        // SAFETY: a granted UART's line status register; reading it has no
        // side effects.
        if unsafe { inb(uart.base() + LSR) } & bit != 0 {
            return;
        }
        core::hint::spin_loop();
    }
}

/// # Safety
/// `ioperm` granted the port, and writing `value` to it has no effect on
/// memory safety.
unsafe fn outb(port: u16, value: u8) {
    // SAFETY: the caller vouches for the port; `out` touches no memory.
    unsafe {
        core::arch::asm!("out dx, al", in("dx") port, in("al") value, options(nomem, nostack))
    };
}

/// # Safety
/// As [`outb`]: the port is granted and reading it is side-effect free.
unsafe fn inb(port: u16) -> u8 {
    let value: u8;
    // SAFETY: the caller vouches for the port; `in` touches no memory.
    unsafe {
        core::arch::asm!("in al, dx", in("dx") port, out("al") value, options(nomem, nostack))
    };
    value
}
