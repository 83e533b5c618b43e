//! The user's terminal in shell mode: raw while the VM runs (every key,
//! Ctrl-C included, goes to the guest; output is not cooked twice) and
//! restored on every way out: the guard's drop on a normal end, a timeout
//! or a stop signal (all return through `run`), and a panic hook for a
//! crash, since the host aborts on panic and unwinds nothing.
//! rustix (already the init's syscall crate, and `vm`'s) gives termios
//! without libc glue.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::sync::Mutex;

use rustix::fd::BorrowedFd;
use rustix::termios::{tcgetattr, tcsetattr, OptionalActions, Termios};

/// `file` as rustix takes it (rustix is built without std here: the init
/// shares its features, so std's descriptor types are not its own).
#[allow(unsafe_code, reason = "a File as rustix's fd: no safe conversion here")]
pub fn borrow(file: &File) -> BorrowedFd<'_> {
    // SAFETY: `file` keeps the descriptor open for the borrow's lifetime.
    unsafe { BorrowedFd::borrow_raw(file.as_raw_fd()) }
}

fn io_error(e: rustix::io::Errno) -> io::Error {
    io::Error::from_raw_os_error(e.raw_os_error())
}

/// The settings to restore, while the terminal is raw.
static SAVED: Mutex<Option<(File, Termios)>> = Mutex::new(None);

/// The raw terminal; dropping it restores the user's settings.
pub struct RawTerminal {
    /// stdin opened anew, non-blocking for the reactor: a descriptor of its
    /// own, so stdout (often the same terminal) keeps blocking writes.
    pub input: File,
}

impl RawTerminal {
    /// Puts the terminal on stdin into raw mode.
    pub fn enter() -> io::Result<RawTerminal> {
        let input = OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags((rustix::fs::OFlags::NONBLOCK | rustix::fs::OFlags::NOCTTY).bits() as i32)
            .open("/proc/self/fd/0")?;
        let saved = tcgetattr(borrow(&input)).map_err(io_error)?;
        let mut raw = saved.clone();
        raw.make_raw();
        let restore_on_crash = input.try_clone()?;
        install_panic_hook();
        *SAVED.lock().unwrap_or_else(|e| e.into_inner()) = Some((restore_on_crash, saved));
        tcsetattr(borrow(&input), OptionalActions::Now, &raw).map_err(io_error)?;
        Ok(RawTerminal { input })
    }
}

impl Drop for RawTerminal {
    fn drop(&mut self) {
        restore();
    }
}

/// Puts back the saved settings, once; output queued for the terminal is
/// written first (TCSADRAIN).
fn restore() {
    let saved = SAVED.lock().unwrap_or_else(|e| e.into_inner()).take();
    if let Some((tty, termios)) = saved {
        let _ = tcsetattr(borrow(&tty), OptionalActions::Drain, &termios);
    }
}

fn install_panic_hook() {
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        restore();
        previous(info);
    }));
}
