//! x86 port I/O, for writing a 16550 UART when no device file can be opened
//! (before devtmpfs, out of fds, or on a crash path that must not block).

use super::raw::{check, syscall3};
use super::Result;

/// Grants this process access to `count` I/O ports from `from` (needs
/// CAP_SYS_RAWIO, which PID 1 has).
pub fn ioperm(from: u16, count: u16) -> Result<()> {
    // SAFETY: ioperm takes plain integers.
    check(unsafe {
        syscall3(
            linux_raw_sys::general::__NR_ioperm,
            from as usize,
            count as usize,
            1,
        )
    })
    .map(drop)
}

/// Writes one byte to an I/O port.
///
/// # Safety
/// `ioperm` granted the port, and writing `value` to it has no effect on
/// memory safety (true of a UART's data and control registers).
pub unsafe fn outb(port: u16, value: u8) {
    // SAFETY: the caller vouches for the port; `out` touches no memory.
    unsafe {
        core::arch::asm!("out dx, al", in("dx") port, in("al") value, options(nomem, nostack))
    };
}

/// Reads one byte from an I/O port.
///
/// # Safety
/// As [`outb`]: the port is granted and reading it is side-effect safe.
pub unsafe fn inb(port: u16) -> u8 {
    let value: u8;
    // SAFETY: the caller vouches for the port; `in` touches no memory.
    unsafe {
        core::arch::asm!("in al, dx", in("dx") port, out("al") value, options(nomem, nostack))
    };
    value
}
