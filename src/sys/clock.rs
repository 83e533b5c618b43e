//! CLOCK_BOOTTIME by the plain syscall. rustix reads clocks through the
//! vDSO, whose ELF lookup costs the static init about 2 KB; the init reads
//! the clock a few times per wake-up, where a syscall's cost is noise.

use super::raw::syscall2;
use linux_raw_sys::general::{__NR_clock_gettime, __kernel_timespec, CLOCK_BOOTTIME};

/// Nanoseconds since the kernel started, counting suspend. Out of line:
/// inlined at the init's thirty call sites it would cost 1 KB.
#[inline(never)]
pub fn boottime_ns() -> u64 {
    let mut ts = __kernel_timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // CLOCK_BOOTTIME exists on every kernel the init supports; a failure
    // would leave `ts` at zero, which reads as "the clock's start".
    // SAFETY: the kernel writes one timespec into `ts`, which outlives the call.
    let _ = unsafe {
        syscall2(
            __NR_clock_gettime,
            CLOCK_BOOTTIME as usize,
            &mut ts as *mut _ as usize,
        )
    };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}
