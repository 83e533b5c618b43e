//! syslog(2): read the kernel's log buffer without /dev/kmsg.

use super::raw::{check, syscall3};
use super::Result;

const SYSLOG_ACTION_READ: usize = 2;
const SYSLOG_ACTION_SIZE_UNREAD: usize = 9;

/// Reads the oldest unread part of the log into `buf`, consuming it, so
/// that repeated calls walk the whole log in order. Returns 0 when all has
/// been read: it never waits for new messages.
pub fn read_unread(buf: &mut [u8]) -> Result<usize> {
    // SAFETY: SIZE_UNREAD takes no buffer.
    let unread = check(unsafe { syscall3(__nr(), SYSLOG_ACTION_SIZE_UNREAD, 0, 0) })?;
    if unread == 0 || buf.is_empty() {
        return Ok(0);
    }
    let len = buf.len().min(unread);
    // SAFETY: the kernel writes at most len <= buf.len() bytes into buf;
    // with unread > 0 the read does not block.
    check(unsafe { syscall3(__nr(), SYSLOG_ACTION_READ, buf.as_mut_ptr() as usize, len) })
}

const fn __nr() -> u32 {
    linux_raw_sys::general::__NR_syslog
}
