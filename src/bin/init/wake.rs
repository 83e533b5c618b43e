//! hvc0, raw. In test mode the host wakes the init there (a dump, a stop:
//! the control messages, read by `control`); in shell mode it is the
//! shell's terminal, and the wakes come on the control port.

use crate::console::warning;
use guestinit::fmt::ErrnoText;
use rustix::fd::{AsFd, OwnedFd};
use rustix::fs::OFlags;

/// hvc0 as a raw tty: every byte arrives as it is sent, none is echoed.
pub fn open() -> Option<OwnedFd> {
    let flags = OFlags::RDWR | OFlags::NONBLOCK | OFlags::NOCTTY | OFlags::CLOEXEC;
    let tty = crate::small_file::open(b"/dev/hvc0", flags).ok()?;
    match guestinit::sys::tty::make_raw(tty.as_fd()) {
        Ok(()) => Some(tty),
        Err(e) => {
            warning!("hvc0 stays cooked ({}): the host's wakes are not read", ErrnoText(e));
            None
        }
    }
}
