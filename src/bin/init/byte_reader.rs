//! One read of a non-blocking descriptor that carries the host's command
//! bytes (hvc0's wake bytes, the control port): the sources that read them
//! share what a read's outcome means.

use crate::console::warning;
use guestinit::fmt::ErrnoText;
use rustix::fd::AsFd;
use rustix::io::Errno;

/// What one read of a command descriptor gave.
pub enum Read<'b> {
    /// Bytes to act on.
    Bytes(&'b [u8]),
    /// Nothing yet: poll again.
    Later,
    /// The end (EOF, or an error already warned of): drop the descriptor.
    Closed,
}

/// Reads what `fd` holds into `buf`; `what` names it in a warning.
pub fn read<'b>(fd: impl AsFd, buf: &'b mut [u8], what: &str) -> Read<'b> {
    match rustix::io::read(fd, &mut *buf) {
        Ok(0) => Read::Closed,
        Ok(n) => Read::Bytes(&buf[..n]),
        Err(Errno::AGAIN | Errno::INTR) => Read::Later,
        Err(e) => {
            warning!("read {what}: {}", ErrnoText(e));
            Read::Closed
        }
    }
}
