//! The `syscall` instruction. Linux x86_64: number in rax, arguments in
//! rdi, rsi, rdx, r10, r8, r9; rcx and r11 are clobbered; -4095..-1 is -errno.

use super::{Errno, Result};

/// Converts a raw return value into a result.
pub(crate) fn check(ret: isize) -> Result<usize> {
    if (-4095..0).contains(&ret) {
        Err(Errno::from_raw_os_error(-ret as i32))
    } else {
        Ok(ret as usize)
    }
}

/// # Safety
/// The caller upholds the contract of syscall `nr` for these arguments
/// (valid pointers, owned fds, no aliasing of what the kernel writes).
pub(crate) unsafe fn syscall4(nr: u32, a: usize, b: usize, c: usize, d: usize) -> isize {
    let ret: isize;
    // SAFETY: the caller vouches for the arguments; the asm only clobbers
    // what the syscall ABI says it does.
    unsafe {
        core::arch::asm!(
            "syscall",
            inlateout("rax") nr as isize => ret,
            in("rdi") a,
            in("rsi") b,
            in("rdx") c,
            in("r10") d,
            lateout("rcx") _,
            lateout("r11") _,
            options(nostack),
        );
    }
    ret
}

/// # Safety
/// As [`syscall4`].
pub(crate) unsafe fn syscall3(nr: u32, a: usize, b: usize, c: usize) -> isize {
    // SAFETY: forwarded contract; the fourth register is ignored by the kernel.
    unsafe { syscall4(nr, a, b, c, 0) }
}

/// # Safety
/// As [`syscall4`].
pub(crate) unsafe fn syscall2(nr: u32, a: usize, b: usize) -> isize {
    // SAFETY: forwarded contract.
    unsafe { syscall4(nr, a, b, 0, 0) }
}

/// # Safety
/// As [`syscall4`].
pub(crate) unsafe fn syscall1(nr: u32, a: usize) -> isize {
    // SAFETY: forwarded contract.
    unsafe { syscall4(nr, a, 0, 0, 0) }
}
