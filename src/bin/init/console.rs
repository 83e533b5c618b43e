//! The init's own diagnostics: warnings on COM2 (`/dev/ttyS1`), FATAL lines
//! on COM2 then COM1. Through the tty driver once /dev exists, else by port
//! I/O, so a message is never lost for want of a device file.

use crate::uart;
use core::fmt::{self, Write};
use core::sync::atomic::{AtomicI32, Ordering};
use guestinit::fmt::SliceWriter;
use guestinit::proto;
use rustix::fd::{BorrowedFd, IntoRawFd};
use rustix::fs::{Mode, OFlags};

static COM1_FD: AtomicI32 = AtomicI32::new(-1);
static COM2_FD: AtomicI32 = AtomicI32::new(-1);

/// Opens the serial devices once devtmpfs is mounted.
pub fn open_serial() {
    for (path, slot) in [(c"/dev/ttyS0", &COM1_FD), (c"/dev/ttyS1", &COM2_FD)] {
        let flags = OFlags::WRONLY | OFlags::NOCTTY | OFlags::CLOEXEC;
        if let Ok(fd) = rustix::fs::open(path, flags, Mode::empty()) {
            slot.store(fd.into_raw_fd(), Ordering::Release);
        }
    }
}

/// Makes sure fds 0-2 are open (on /dev/null when the archive had no
/// /dev/console), so that no later pipe lands on them and gets clobbered
/// when the payload's stdio is wired.
pub fn ensure_std_fds() {
    while let Ok(fd) = rustix::fs::open(c"/dev/null", OFlags::RDWR | OFlags::NOCTTY, Mode::empty())
    {
        if rustix::fd::AsRawFd::as_raw_fd(&fd) > 2 {
            break; // dropped: 0-2 were open already
        }
        // Kept open for good as one of 0-2.
        let _ = fd.into_raw_fd();
    }
}

fn write_to(slot: &AtomicI32, base: u16, bytes: &[u8]) {
    let raw = slot.load(Ordering::Acquire);
    if raw >= 0 {
        // SAFETY: the fd was stored by open_serial and is never closed.
        let fd = unsafe { BorrowedFd::borrow_raw(raw) };
        if write_all(fd, bytes) {
            return;
        }
    }
    uart::write(base, bytes);
}

fn write_all(fd: BorrowedFd<'_>, mut bytes: &[u8]) -> bool {
    while !bytes.is_empty() {
        match rustix::io::write(fd, bytes) {
            Ok(n) => bytes = &bytes[n..],
            Err(rustix::io::Errno::INTR) => {}
            Err(_) => return false,
        }
    }
    true
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
    write_to(&COM2_FD, uart::COM2, w.written());
}

/// A fatal error: `FATAL: ...` on COM2 (where the host looks) and COM1.
pub fn fatal(args: fmt::Arguments<'_>) {
    let mut buf = [0u8; 512];
    let w = line(&mut buf, proto::prefix::FATAL, args);
    write_to(&COM2_FD, uart::COM2, w.written());
    write_to(&COM1_FD, uart::COM1, w.written());
}

/// Raw bytes to COM2 (kernel log dumps).
pub fn com2(bytes: &[u8]) {
    write_to(&COM2_FD, uart::COM2, bytes);
}

macro_rules! warning {
    ($($arg:tt)*) => { $crate::console::warn_args(format_args!($($arg)*)) };
}
pub(crate) use warning;
