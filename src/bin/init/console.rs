//! The init's own diagnostics on the serial consoles: warnings on COM2
//! (`/dev/ttyS1`), FATAL lines on COM2 then COM1. COM2 is written through a
//! bounded non-blocking queue that the reactor drains as the UART takes
//! bytes (`serial_drain`), so the one loop never waits on a 115200-baud
//! line; only a full queue makes a writer wait. Before /dev exists, port I/O, so a message is
//! never lost for want of a device file. The crash path bypasses all this.

use core::fmt::{self, Write};
use crate::backlog::Backlog;
use guestinit::cell::{Exclusive, StaticFd};
use guestinit::fmt::SliceWriter;
use guestinit::proto;
use guestinit::sys::uart::Uart;
use rustix::fd::{BorrowedFd, IntoRawFd};
use rustix::fs::OFlags;

/// Bytes COM2 may hold back: a burst of warnings.
const COM2_BACKLOG: usize = 4096;

static COM1_FD: StaticFd = StaticFd::new();
static COM2_FD: StaticFd = StaticFd::new();
static COM2: Exclusive<Backlog<COM2_BACKLOG>> = Exclusive::new(Backlog::new());

/// Opens the serial devices once devtmpfs is mounted.
pub fn open_serial() {
    let flags = OFlags::WRONLY | OFlags::NOCTTY | OFlags::CLOEXEC;
    if let Ok(fd) = crate::small_file::open(b"/dev/ttyS0", flags) {
        COM1_FD.set(fd);
    }
    if let Ok(fd) = crate::small_file::open(b"/dev/ttyS1", flags | OFlags::NONBLOCK) {
        COM2_FD.set(fd);
    }
}

/// Makes sure fds 0-2 are open (on /dev/null when the archive had no
/// /dev/console), so that no later pipe lands on them and gets clobbered
/// when a child's stdio is wired.
pub fn ensure_std_fds() {
    // The usual case (the kernel opened /dev/console) costs three fcntls,
    // not an open of /dev/null.
    if (0..=2).all(guestinit::sys::process::fd_is_open) {
        return;
    }
    while let Ok(fd) = crate::small_file::open(b"/dev/null", OFlags::RDWR | OFlags::NOCTTY)
    {
        if rustix::fd::AsRawFd::as_raw_fd(&fd) > 2 {
            break; // dropped: 0-2 were open already
        }
        // Kept open for good as one of 0-2.
        let _ = fd.into_raw_fd();
    }
}

/// COM2's descriptor while its queue holds bytes: what the reactor polls
/// for room.
pub fn com2_backlog() -> Option<BorrowedFd<'static>> {
    let pending = COM2.with(|b| !b.is_empty());
    COM2_FD.get().filter(|_| pending == Some(true))
}

/// One non-blocking write of COM2's queue.
pub fn com2_write_some() {
    if let Some(fd) = COM2_FD.get() {
        COM2.with(|b| b.write_some(fd));
    }
}

/// Writes out what COM2 still holds (before power-off).
pub fn flush() {
    if let Some(fd) = COM2_FD.get() {
        COM2.with(|b| b.flush(fd));
    }
}

fn write_com2(bytes: &[u8]) {
    let queued = COM2_FD
        .get()
        .and_then(|fd| COM2.with(|b| b.write_all(fd, bytes)));
    if queued != Some(true) {
        fallback(Uart::Com2, bytes);
    }
}

fn write_com1(bytes: &[u8]) {
    if COM1_FD.get().is_some_and(|fd| crate::small_file::write_all(fd, bytes).is_ok()) {
        return;
    }
    fallback(Uart::Com1, bytes);
}

/// No device file: port I/O.
#[cfg(not(test))]
fn fallback(uart: Uart, bytes: &[u8]) {
    guestinit::sys::uart::write(uart, bytes);
}

/// Host tests: their stderr, never the host's own UARTs.
#[cfg(test)]
fn fallback(_: Uart, bytes: &[u8]) {
    std::eprint!("{}", std::string::String::from_utf8_lossy(bytes));
}

/// Formats one line `prefix` + `args` + newline into a stack buffer.
fn line<'b>(buf: &'b mut [u8], prefix: &str, args: fmt::Arguments<'_>) -> SliceWriter<'b> {
    let mut w = SliceWriter::new(buf);
    let _ = w.write_str(prefix);
    let _ = w.write_fmt(args);
    w.mark_truncation(b"...\n");
    if !w.written().ends_with(b"\n") {
        w.push_bytes(b"\n");
    }
    w
}

/// A warning: the init goes on.
pub fn warn_args(args: fmt::Arguments<'_>) {
    let mut buf = [0u8; 512];
    let w = line(&mut buf, proto::prefix::WARNING, args);
    write_com2(w.written());
}

/// A fatal error: `FATAL: ...` on COM2 (where the host looks) and COM1,
/// after everything COM2 held before it.
pub fn fatal(args: fmt::Arguments<'_>) {
    let mut buf = [0u8; 512];
    let w = line(&mut buf, proto::prefix::FATAL, args);
    write_com2(w.written());
    flush();
    write_com1(w.written());
}

/// Raw bytes to COM2 (kernel log dumps).
pub fn com2(bytes: &[u8]) {
    write_com2(bytes);
}

macro_rules! warning {
    ($($arg:tt)*) => { $crate::console::warn_args(format_args!($($arg)*)) };
}
pub(crate) use warning;
