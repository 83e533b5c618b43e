//! The host's stdin, relayed to the payload's: bytes from the stdin port go
//! to a pipe that is the payload's fd 0, and the host closing its end (its
//! stdin reached EOF) closes the pipe, so the payload reads EOF too. Without
//! the port (the host's stdin is a terminal) the payload reads /dev/null.

use crate::console::warning;
use crate::link::Link;
use crate::reactor::{Ctx, Interests, Rank, Source};
use crate::vports::{self, Wanted};
use guestinit::cell::TakeOnce;
use guestinit::fmt::ErrnoText;
use guestinit::proto;
use rustix::event::PollFlags;
use rustix::fd::{AsFd, OwnedFd};
use rustix::fs::OFlags;
use rustix::io::Errno;

/// How long the stdin port may take to appear once the bulk port has.
const WAIT_MS: u64 = 1000;

/// The stdin port, when the host asked for one; a warning when it never
/// appears (the payload then reads /dev/null).
pub fn open_port() -> Option<OwnedFd> {
    let wanted = Wanted {
        names: &[proto::STDIN_PORT],
        unnamed: None,
    };
    let flags = OFlags::RDONLY | OFlags::NONBLOCK | OFlags::NOCTTY | OFlags::CLOEXEC;
    vports::open(&wanted, flags, WAIT_MS)
        .map_err(|_| warning!("no {} port: the payload's stdin is /dev/null", proto::STDIN_PORT))
        .ok()
}

const PORT: u8 = 0;
const PIPE: u8 = 1;

/// In .bss, not in the relay: the relay lives in a stack frame, which
/// stack probes make resident whole, used or not.
static BUF: TakeOnce<[u8; 4096]> = TakeOnce::new([0; 4096]);

/// Copies port to pipe through a small buffer: the port is read only while
/// the buffer is empty, so a payload that reads slowly holds the host back.
pub struct StdinRelay {
    port: Option<OwnedFd>,
    pipe: Option<OwnedFd>,
    buf: &'static mut [u8; 4096],
    start: usize,
    end: usize,
}

impl StdinRelay {
    pub fn new(port: OwnedFd, pipe: OwnedFd) -> StdinRelay {
        StdinRelay {
            port: Some(port),
            pipe: Some(pipe),
            buf: BUF.take().expect("one stdin relay per boot"),
            start: 0,
            end: 0,
        }
    }

    fn buffered(&self) -> bool {
        self.start < self.end
    }

    fn read_port(&mut self) {
        let Some(port) = &self.port else { return };
        match rustix::io::read(port, &mut self.buf[..]) {
            Ok(0) => self.hold_port(),
            Ok(n) => (self.start, self.end) = (0, n),
            Err(Errno::AGAIN | Errno::INTR) => {}
            Err(e) => {
                warning!("read the stdin port: {}", ErrnoText(e));
                self.hold_port();
            }
        }
        self.close_pipe_at_eof();
    }

    fn write_pipe(&mut self) {
        let Some(pipe) = &self.pipe else { return };
        match rustix::io::write(pipe, &self.buf[self.start..self.end]) {
            Ok(n) => self.start += n,
            Err(Errno::AGAIN | Errno::INTR) => {}
            // The payload closed its stdin: the rest is for nobody.
            Err(_) => self.close(),
        }
        self.close_pipe_at_eof();
    }

    /// The host's EOF reaches the payload once what came before it has.
    fn close_pipe_at_eof(&mut self) {
        if self.port.is_none() && !self.buffered() {
            self.pipe = None;
        }
    }

    fn close(&mut self) {
        self.hold_port();
        self.pipe = None;
    }

    /// Done with the port, which stays open to power-off (the descriptor is
    /// let go of, never closed): a virtio port has one opener at a time, so
    /// the payload cannot open it, where a write would block until the
    /// timeout, since the host never reads it.
    fn hold_port(&mut self) {
        core::mem::forget(self.port.take());
    }
}

impl Source for StdinRelay {
    fn rank(&self) -> Rank {
        Rank::Relay
    }

    fn interests<'s>(&'s self, _link: &Link, out: &mut Interests<'s>) {
        match (&self.port, &self.pipe, self.buffered()) {
            (_, Some(pipe), true) => out.add(pipe.as_fd(), PollFlags::OUT, PIPE),
            (Some(port), Some(_), false) => out.add(port.as_fd(), PollFlags::IN, PORT),
            _ => {}
        }
    }

    fn on_ready(&mut self, token: u8, _events: PollFlags, _ctx: &mut Ctx<'_>) {
        match token {
            PORT => self.read_port(),
            _ => self.write_pipe(),
        }
    }

    /// The payload has ended: nobody reads its stdin any more.
    fn cleanup(&mut self, _ctx: &mut Ctx<'_>) {
        self.close();
    }

    fn done(&self) -> bool {
        self.pipe.is_none()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reactor::Reactor;
    use crate::testkit::link;

    /// A workload that is done once the relay's pipe has given EOF.
    struct Reader {
        fd: Option<OwnedFd>,
        got: std::vec::Vec<u8>,
    }

    impl Source for Reader {
        fn rank(&self) -> Rank {
            Rank::Workload
        }

        fn interests<'s>(&'s self, _link: &Link, out: &mut Interests<'s>) {
            if let Some(fd) = &self.fd {
                out.add(fd.as_fd(), PollFlags::IN, 0);
            }
        }

        fn on_ready(&mut self, _: u8, _: PollFlags, _: &mut Ctx<'_>) {
            let Some(fd) = &self.fd else { return };
            let mut buf = [0u8; 1000];
            match rustix::io::read(fd, &mut buf) {
                Ok(0) => self.fd = None,
                Ok(n) => self.got.extend_from_slice(&buf[..n]),
                Err(_) => {}
            }
        }

        fn done(&self) -> bool {
            self.fd.is_none()
        }
    }

    fn nonblocking_pipe() -> (OwnedFd, OwnedFd) {
        let (r, w) = crate::test_pipe::pipe();
        rustix::fs::fcntl_setfl(&r, OFlags::NONBLOCK).unwrap();
        rustix::fs::fcntl_setfl(&w, OFlags::NONBLOCK).unwrap();
        (r, w)
    }

    #[test]
    fn every_byte_then_eof_reaches_the_payload() {
        let (port, host) = nonblocking_pipe();
        let (payload_stdin, pipe) = nonblocking_pipe();
        let sent: std::vec::Vec<u8> = (0..100_000u32).map(|i| i as u8).collect();
        let writer = {
            let sent = sent.clone();
            std::thread::spawn(move || {
                rustix::fs::fcntl_setfl(&host, OFlags::empty()).unwrap();
                let mut rest = &sent[..];
                while !rest.is_empty() {
                    rest = &rest[rustix::io::write(&host, rest).unwrap()..];
                }
                // Dropping `host` is the host's EOF.
            })
        };
        let (mut link, _r) = link();
        let mut relay = StdinRelay::new(port, pipe);
        let mut reader = Reader {
            fd: Some(payload_stdin),
            got: std::vec::Vec::new(),
        };
        Reactor::new(None).run(&mut link, &mut [&mut reader, &mut relay]);
        writer.join().unwrap();
        assert!(reader.got == sent, "{} of {} bytes", reader.got.len(), sent.len());
        assert!(relay.done());
    }
}
