//! The init's own diagnostics on the serial consoles: warnings on COM2
//! (`/dev/ttyS1`), FATAL lines on COM2 then COM1. COM2 is written through a
//! bounded non-blocking queue that the reactor drains as the UART takes
//! bytes (`serial_drain`), so the one loop never waits on a 115200-baud
//! line; only a full queue makes a writer wait. Before /dev exists, port I/O, so a message is
//! never lost for want of a device file. The crash path bypasses all this.

use core::fmt::{self, Write};
use guestinit::cell::{Exclusive, StaticFd};
use guestinit::fmt::SliceWriter;
use guestinit::proto;
use guestinit::sys::uart::Uart;
use heapless::Deque;
use rustix::event::{poll, PollFd, PollFlags};
use rustix::fd::{AsFd, BorrowedFd, IntoRawFd};
use rustix::fs::{Mode, OFlags};
use rustix::io::Errno;

/// Bytes COM2 may hold back: a burst of warnings.
const COM2_BACKLOG: usize = 4096;

static COM1_FD: StaticFd = StaticFd::new();
static COM2_FD: StaticFd = StaticFd::new();
static COM2: Exclusive<Option<Writer<BorrowedFd<'static>, COM2_BACKLOG>>> = Exclusive::new(None);

/// Opens the serial devices once devtmpfs is mounted.
pub fn open_serial() {
    let flags = OFlags::WRONLY | OFlags::NOCTTY | OFlags::CLOEXEC;
    if let Ok(fd) = rustix::fs::open(c"/dev/ttyS0", flags, Mode::empty()) {
        COM1_FD.set(fd);
    }
    if let Ok(fd) = rustix::fs::open(c"/dev/ttyS1", flags | OFlags::NONBLOCK, Mode::empty()) {
        COM2_FD.set(fd);
        COM2.with(|slot| *slot = COM2_FD.get().map(Writer::new));
    }
}

/// Makes sure fds 0-2 are open (on /dev/null when the archive had no
/// /dev/console), so that no later pipe lands on them and gets clobbered
/// when a child's stdio is wired.
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

/// A bounded queue in front of a non-blocking descriptor, owned or not.
pub struct Writer<F, const CAP: usize> {
    fd: F,
    queue: Deque<u8, CAP>,
}

impl<F: AsFd, const CAP: usize> Writer<F, CAP> {
    pub fn new(fd: F) -> Self {
        Writer {
            fd,
            queue: Deque::new(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    /// Drops what the queue holds.
    pub fn clear(&mut self) {
        self.queue.clear();
    }

    /// Bytes the queue can still take.
    pub fn room(&self) -> usize {
        CAP - self.queue.len()
    }

    pub fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// Queues what fits of `bytes`; how many bytes that was.
    pub fn push(&mut self, bytes: &[u8]) -> usize {
        bytes
            .iter()
            .take_while(|&&b| self.queue.push_back(b).is_ok())
            .count()
    }

    /// One non-blocking write of the queue's front; `Err(AGAIN)` when the
    /// descriptor takes nothing now.
    pub fn write_some(&mut self) -> Result<(), Errno> {
        let (front, _) = self.queue.as_slices();
        if front.is_empty() {
            return Ok(());
        }
        let n = rustix::io::write(&self.fd, front)?;
        for _ in 0..n {
            self.queue.pop_front();
        }
        Ok(())
    }

    /// Queues all of `bytes`, waiting for the descriptor only while the
    /// queue is full; false when the descriptor fails for good.
    pub fn write_all(&mut self, mut bytes: &[u8]) -> bool {
        loop {
            bytes = &bytes[self.push(bytes)..];
            match self.write_some() {
                Ok(()) | Err(Errno::INTR) => {}
                Err(Errno::AGAIN) if !bytes.is_empty() => self.wait_writable(),
                Err(Errno::AGAIN) => {}
                Err(_) => return false,
            }
            if bytes.is_empty() {
                return true;
            }
        }
    }

    /// Writes out the whole queue, waiting as needed.
    pub fn flush(&mut self) {
        while !self.queue.is_empty() {
            match self.write_some() {
                Ok(()) | Err(Errno::INTR) => {}
                Err(Errno::AGAIN) => self.wait_writable(),
                Err(_) => return,
            }
        }
    }

    fn wait_writable(&self) {
        let mut fds = [PollFd::new(&self.fd, PollFlags::OUT)];
        let _ = poll(&mut fds, None);
    }
}

/// COM2's descriptor while its queue holds bytes: what the reactor polls
/// for room.
pub fn com2_backlog() -> Option<BorrowedFd<'static>> {
    let pending = COM2.with(|w| w.as_ref().is_some_and(|w| !w.is_empty()));
    COM2_FD.get().filter(|_| pending == Some(true))
}

/// One non-blocking write of COM2's queue.
pub fn com2_write_some() {
    COM2.with(|w| w.as_mut().map(Writer::write_some));
}

/// Writes out what COM2 still holds (before power-off).
pub fn flush() {
    COM2.with(|w| w.as_mut().map(Writer::flush));
}

fn write_com2(bytes: &[u8]) {
    let queued = COM2.with(|w| w.as_mut().is_some_and(|w| w.write_all(bytes)));
    if queued != Some(true) {
        fallback(Uart::Com2, bytes);
    }
}

fn write_com1(bytes: &[u8]) {
    if COM1_FD.get().is_some_and(|fd| write_all_blocking(fd, bytes)) {
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

fn write_all_blocking(fd: BorrowedFd<'_>, mut bytes: &[u8]) -> bool {
    while !bytes.is_empty() {
        match rustix::io::write(fd, bytes) {
            Ok(n) => bytes = &bytes[n..],
            Err(Errno::INTR) => {}
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

#[cfg(test)]
mod tests {
    use super::*;
    use rustix::fd::OwnedFd;

    fn pipe() -> (OwnedFd, OwnedFd) {
        let (r, w) = rustix::pipe::pipe().unwrap();
        rustix::fs::fcntl_setfl(&w, OFlags::NONBLOCK).unwrap();
        rustix::fs::fcntl_setfl(&r, OFlags::NONBLOCK).unwrap();
        (r, w)
    }

    fn drain(r: &OwnedFd) -> usize {
        let mut buf = [0u8; 4096];
        let mut total = 0;
        while let Ok(n @ 1..) = rustix::io::read(r, &mut buf) {
            total += n;
        }
        total
    }

    #[test]
    fn a_full_line_holds_bytes_back_without_blocking_and_sends_them_later() {
        let (r, w) = pipe();
        let capacity = rustix::pipe::fcntl_getpipe_size(&w).unwrap();
        let mut writer: Writer<_, 64> = Writer::new(w);
        // Fill the pipe as a slow UART would be full.
        let filler = std::vec![b'x'; capacity];
        assert!(writer.write_all(&filler));
        writer.flush();
        assert_eq!(writer.push(b"late line\n"), 10);
        assert_eq!(writer.write_some(), Err(Errno::AGAIN));
        assert!(!writer.is_empty(), "the line waits in the queue");
        assert_eq!(drain(&r), capacity);
        writer.write_some().unwrap();
        assert!(writer.is_empty());
        let mut buf = [0u8; 16];
        let n = rustix::io::read(&r, &mut buf).unwrap();
        assert_eq!(&buf[..n], b"late line\n");
    }

    #[test]
    fn push_takes_only_what_fits() {
        let (_r, w) = pipe();
        let mut writer: Writer<_, 8> = Writer::new(w);
        assert_eq!(writer.push(b"0123456789"), 8);
        assert_eq!(writer.push(b"x"), 0);
    }
}
