//! hvc0, raw. In test mode the host wakes the init there (a dump, a stop:
//! the control messages, read by `control`); in shell mode it is the
//! shell's terminal, and the wakes come on the control port.

use crate::console::warning;
use guestinit::cell::Exclusive;
use guestinit::fmt::ErrnoText;
use rustix::fd::{AsFd, OwnedFd};
use rustix::fs::OFlags;
use rustix::io::Errno;

/// hvc0 made raw before a snapshot (`open_ahead`), for `open` to hand out:
/// a restored run then skips the tty layer's cold kernel code.
static AHEAD: Exclusive<Option<OwnedFd>> = Exclusive::new(None);

/// hvc0 as a raw tty: every byte arrives as it is sent, none is echoed.
pub fn open() -> Option<OwnedFd> {
    let tty = match AHEAD.with(Option::take).flatten() {
        Some(tty) => Ok(tty),
        None => raw()?,
    };
    tty.map_err(|e| warning!("hvc0 stays cooked ({}): the host's wakes are not read", ErrnoText(e)))
        .ok()
}

/// Opens hvc0 raw now, for the next `open`; a failure is left to it.
pub fn open_ahead() {
    let tty = raw().and_then(Result::ok);
    let _ = AHEAD.with(|ahead| *ahead = tty);
}

/// hvc0 opened and made raw: `None` without hvc0, else the error of a tty
/// that stays cooked.
fn raw() -> Option<Result<OwnedFd, Errno>> {
    let flags = OFlags::RDWR | OFlags::NONBLOCK | OFlags::NOCTTY | OFlags::CLOEXEC;
    let tty = crate::small_file::open(b"/dev/hvc0", flags).ok()?;
    Some(guestinit::sys::tty::make_raw(tty.as_fd()).map(|()| tty))
}
