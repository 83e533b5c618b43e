//! syslog(2): read the kernel's log buffer without /dev/kmsg.

use super::raw::{check, syscall3};
use super::Result;

const SYSLOG_ACTION_READ_ALL: usize = 3;
const SYSLOG_ACTION_SIZE_BUFFER: usize = 10;

/// Bytes of the kernel log buffer.
pub fn buffer_size() -> Result<usize> {
    // SAFETY: SIZE_BUFFER takes no buffer.
    check(unsafe { syscall3(__nr(), SYSLOG_ACTION_SIZE_BUFFER, 0, 0) })
}

/// Copies the newest `buf.len()` bytes of the log into `buf` (without
/// consuming them); returns how many were written.
pub fn read_all(buf: &mut [u8]) -> Result<usize> {
    // SAFETY: the kernel writes at most buf.len() bytes into buf.
    check(unsafe {
        syscall3(
            __nr(),
            SYSLOG_ACTION_READ_ALL,
            buf.as_mut_ptr() as usize,
            buf.len(),
        )
    })
}

const fn __nr() -> u32 {
    linux_raw_sys::general::__NR_syslog
}
