//! Bytes waiting for a non-blocking descriptor (a serial console): a
//! bounded queue that takes what fits, writes what the descriptor takes,
//! and waits only when asked to, so the one loop never blocks on a slow
//! line.

use heapless::deque::DequeView;
use heapless::Deque;
use rustix::event::{poll, PollFd, PollFlags};
use rustix::fd::BorrowedFd;
use rustix::io::Errno;

pub struct Backlog<const CAP: usize> {
    queue: Deque<u8, CAP>,
}

impl<const CAP: usize> Backlog<CAP> {
    /// Empty; all zeros, so a static one costs no file size.
    pub const fn new() -> Self {
        Backlog {
            queue: Deque::new(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    /// Bytes the queue can still take.
    pub fn room(&self) -> usize {
        CAP - self.queue.len()
    }

    /// Drops what the queue holds.
    pub fn clear(&mut self) {
        self.queue.clear();
    }

    /// Queues what fits of `bytes`; how many bytes that was.
    pub fn push(&mut self, bytes: &[u8]) -> usize {
        push(self.queue.as_mut_view(), bytes)
    }

    /// One non-blocking write of the queue's front to `fd`; `Err(AGAIN)`
    /// when it takes nothing now.
    pub fn write_some(&mut self, fd: BorrowedFd<'_>) -> Result<(), Errno> {
        write_some(self.queue.as_mut_view(), fd)
    }

    /// Queues all of `bytes`, waiting for `fd` only while the queue is
    /// full; false when `fd` fails for good.
    pub fn write_all(&mut self, fd: BorrowedFd<'_>, bytes: &[u8]) -> bool {
        write_all(self.queue.as_mut_view(), fd, bytes)
    }

    /// Writes out the whole queue, waiting as needed.
    pub fn flush(&mut self, fd: BorrowedFd<'_>) {
        flush(self.queue.as_mut_view(), fd)
    }
}

// The work is done on the queue's capacity-free view: one copy of the
// code serves every queue size.

fn push(queue: &mut DequeView<u8>, bytes: &[u8]) -> usize {
    bytes
        .iter()
        .take_while(|&&b| queue.push_back(b).is_ok())
        .count()
}

fn write_some(queue: &mut DequeView<u8>, fd: BorrowedFd<'_>) -> Result<(), Errno> {
    let (front, _) = queue.as_slices();
    if front.is_empty() {
        return Ok(());
    }
    let n = rustix::io::write(fd, front)?;
    for _ in 0..n {
        queue.pop_front();
    }
    Ok(())
}

fn write_all(queue: &mut DequeView<u8>, fd: BorrowedFd<'_>, mut bytes: &[u8]) -> bool {
    loop {
        bytes = &bytes[push(queue, bytes)..];
        match write_some(queue, fd) {
            Ok(()) | Err(Errno::INTR) => {}
            Err(Errno::AGAIN) if !bytes.is_empty() => wait_writable(fd),
            Err(Errno::AGAIN) => {}
            Err(_) => return false,
        }
        if bytes.is_empty() {
            return true;
        }
    }
}

fn flush(queue: &mut DequeView<u8>, fd: BorrowedFd<'_>) {
    while !queue.is_empty() {
        match write_some(queue, fd) {
            Ok(()) | Err(Errno::INTR) => {}
            Err(Errno::AGAIN) => wait_writable(fd),
            Err(_) => return,
        }
    }
}

fn wait_writable(fd: BorrowedFd<'_>) {
    let mut fds = [PollFd::from_borrowed_fd(fd, PollFlags::OUT)];
    let _ = poll(&mut fds, None);
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustix::fd::{AsFd, OwnedFd};
    use rustix::fs::OFlags;

    fn pipe() -> (OwnedFd, OwnedFd) {
        let (r, w) = crate::test_pipe::pipe();
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
        let w = w.as_fd();
        let capacity = rustix::pipe::fcntl_getpipe_size(w).unwrap();
        let mut backlog: Backlog<64> = Backlog::new();
        // Fill the pipe as a slow UART would be full.
        let filler = std::vec![b'x'; capacity];
        assert!(backlog.write_all(w, &filler));
        backlog.flush(w);
        assert_eq!(backlog.push(b"late line\n"), 10);
        assert_eq!(backlog.write_some(w), Err(Errno::AGAIN));
        assert!(!backlog.is_empty(), "the line waits in the queue");
        assert_eq!(drain(&r), capacity);
        backlog.write_some(w).unwrap();
        assert!(backlog.is_empty());
        let mut buf = [0u8; 16];
        let n = rustix::io::read(&r, &mut buf).unwrap();
        assert_eq!(&buf[..n], b"late line\n");
    }

    #[test]
    fn push_takes_only_what_fits() {
        let mut backlog: Backlog<8> = Backlog::new();
        assert_eq!(backlog.push(b"0123456789"), 8);
        assert_eq!(backlog.push(b"x"), 0);
        assert_eq!(backlog.room(), 0);
    }
}
