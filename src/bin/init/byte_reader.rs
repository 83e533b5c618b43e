//! One read of a non-blocking descriptor that carries the host's control
//! messages (hvc0 in test mode, the control port): what a read's outcome
//! means, apart from what the messages do.

use crate::console::warning;
use guestinit::fmt::ErrnoText;
use rustix::fd::OwnedFd;
use rustix::io::Errno;

/// The bytes `fd` holds, read into `buf`; none when nothing came yet. At
/// the end (EOF, or an error, which is warned of with `what` naming the
/// descriptor) `fd` is dropped, so its source is done.
pub fn read<'b>(fd: &mut Option<OwnedFd>, buf: &'b mut [u8], what: &str) -> &'b [u8] {
    let Some(open) = fd else { return &[] };
    match rustix::io::read(open, &mut *buf) {
        Ok(n @ 1..) => return &buf[..n],
        Ok(0) => {}
        Err(Errno::AGAIN | Errno::INTR) => return &[],
        Err(e) => warning!("read {what}: {}", ErrnoText(e)),
    }
    *fd = None;
    &[]
}
