//! Two descriptors copied into each other (the shell's PTY master and
//! hvc0), each way through a small buffer: a side is read only while its
//! buffer is empty, so a slow reader holds the writer back and no byte is
//! lost.

use crate::console::warning;
use crate::reactor::Interests;
use guestinit::fmt::ErrnoText;
use rustix::event::PollFlags;
use rustix::fd::{AsFd, OwnedFd};
use rustix::io::Errno;

const BUF: usize = 1024;

/// One direction: bytes read from one side, not yet written to the other.
struct Lane {
    buf: [u8; BUF],
    start: usize,
    end: usize,
    /// Its source has not reached EOF (or an error).
    reading: bool,
}

impl Lane {
    fn buffered(&self) -> &[u8] {
        &self.buf[self.start..self.end]
    }

    /// More to come: its source is open or bytes wait.
    fn open(&self) -> bool {
        self.reading || self.start < self.end
    }
}

pub struct TtyRelay {
    fds: [OwnedFd; 2],
    /// `lanes[i]` carries `fds[i]`'s bytes to the other side.
    lanes: [Lane; 2],
}

impl TtyRelay {
    /// Relays `a` and `b` (both non-blocking).
    pub fn new(a: OwnedFd, b: OwnedFd) -> TtyRelay {
        let lane = || Lane {
            buf: [0; BUF],
            start: 0,
            end: 0,
            reading: true,
        };
        TtyRelay {
            fds: [a, b],
            lanes: [lane(), lane()],
        }
    }

    /// Queues `bytes` (at most what one buffer holds) as if side `from` had
    /// sent them first.
    pub fn queue(&mut self, from: usize, bytes: &[u8]) {
        let lane = &mut self.lanes[from];
        let n = bytes.len().min(BUF);
        lane.buf[..n].copy_from_slice(&bytes[..n]);
        (lane.start, lane.end) = (0, n);
    }

    /// Side `from` may still send bytes the other side has not had.
    pub fn open(&self, from: usize) -> bool {
        self.lanes[from].open()
    }

    /// Gives up side `from`'s bytes, read or not.
    pub fn close(&mut self, from: usize) {
        let lane = &mut self.lanes[from];
        lane.reading = false;
        lane.start = lane.end;
    }

    /// Each side: readable while its lane is empty, writable while the
    /// other lane holds bytes; tokens `base` and `base + 1`.
    pub fn interests<'s>(&'s self, base: u8, out: &mut Interests<'s>) {
        for (i, fd) in self.fds.iter().enumerate() {
            let mut events = PollFlags::empty();
            let own = &self.lanes[i];
            if own.reading && own.buffered().is_empty() {
                events |= PollFlags::IN;
            }
            if !self.lanes[1 - i].buffered().is_empty() {
                events |= PollFlags::OUT;
            }
            if !events.is_empty() {
                out.add(fd.as_fd(), events, base + i as u8);
            }
        }
    }

    pub fn on_ready(&mut self, side: usize, events: PollFlags) {
        if events.intersects(PollFlags::OUT | PollFlags::ERR) {
            self.write_to(side);
        }
        if events.intersects(PollFlags::IN | PollFlags::HUP | PollFlags::ERR) {
            self.read_from(side);
        }
    }

    fn read_from(&mut self, side: usize) {
        let lane = &mut self.lanes[side];
        if !lane.reading || !lane.buffered().is_empty() {
            return;
        }
        match rustix::io::read(&self.fds[side], &mut lane.buf) {
            Ok(0) => lane.reading = false,
            Ok(n) => (lane.start, lane.end) = (0, n),
            Err(Errno::AGAIN | Errno::INTR) => {}
            // A master whose slave is closed by all reads EIO: its EOF.
            Err(Errno::IO) => lane.reading = false,
            Err(e) => {
                warning!("tty relay read: {}", ErrnoText(e));
                lane.reading = false;
            }
        }
        // Straight on: the other side is usually ready, saving a round.
        self.write_to(1 - side);
    }

    fn write_to(&mut self, side: usize) {
        let lane = &mut self.lanes[1 - side];
        if lane.buffered().is_empty() {
            return;
        }
        match rustix::io::write(&self.fds[side], lane.buffered()) {
            Ok(n) => lane.start += n,
            Err(Errno::AGAIN | Errno::INTR) => {}
            Err(e) => {
                // Nobody reads this side any more: what waits is lost to no one.
                warning!("tty relay write: {}", ErrnoText(e));
                self.close(1 - side);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::link::Link;
    use crate::reactor::{Ctx, Rank, Reactor, Source};
    use crate::testkit::link;
    use rustix::fs::OFlags;

    /// The relay as a workload done when side 1 has sent all it will.
    struct Relay(TtyRelay);

    impl Source for Relay {
        fn rank(&self) -> Rank {
            Rank::Workload
        }
        fn interests<'s>(&'s self, _link: &Link, out: &mut Interests<'s>) {
            self.0.interests(0, out);
        }
        fn on_ready(&mut self, token: u8, events: PollFlags, _ctx: &mut Ctx<'_>) {
            self.0.on_ready(token as usize, events);
        }
        fn done(&self) -> bool {
            !self.0.open(1)
        }
    }

    fn nonblocking(fd: &OwnedFd) {
        rustix::fs::fcntl_setfl(fd, OFlags::NONBLOCK).unwrap();
    }

    #[test]
    fn every_byte_crosses_a_pty_and_the_queued_line_comes_first() {
        // Side 0 stands for hvc0 (a socket pair to the "host"), side 1 is a
        // PTY master whose raw slave echoes like a shell's terminal would.
        let flags = rustix::pty::OpenptFlags::RDWR | rustix::pty::OpenptFlags::CLOEXEC;
        let master = rustix::pty::openpt(flags).unwrap();
        rustix::pty::unlockpt(&master).unwrap();
        let slave = rustix::pty::ioctl_tiocgptpeer(&master, flags).unwrap();
        let mut raw = rustix::termios::tcgetattr(&slave).unwrap();
        raw.make_raw();
        rustix::termios::tcsetattr(&slave, rustix::termios::OptionalActions::Now, &raw).unwrap();
        nonblocking(&master);
        let (guest_hvc, host_hvc) = rustix::net::socketpair(
            rustix::net::AddressFamily::UNIX,
            rustix::net::SocketType::STREAM,
            rustix::net::SocketFlags::CLOEXEC,
            None,
        )
        .unwrap();
        nonblocking(&guest_hvc);
        let sent: std::vec::Vec<u8> = (0..50_000u32).map(|i| b'a' + (i % 26) as u8).collect();
        // The "shell": echoes what the slave reads, then closes it (EOF).
        let echo = {
            let sent_len = sent.len();
            std::thread::spawn(move || {
                let mut got = 0;
                let mut buf = [0u8; 4096];
                while got < sent_len {
                    let n = rustix::io::read(&slave, &mut buf).unwrap();
                    let mut rest = &buf[..n];
                    while !rest.is_empty() {
                        rest = &rest[rustix::io::write(&slave, rest).unwrap()..];
                    }
                    got += n;
                }
            })
        };
        let host = {
            let sent = sent.clone();
            std::thread::spawn(move || {
                let writer = rustix::io::fcntl_dupfd_cloexec(&host_hvc, 0).unwrap();
                let w = std::thread::spawn(move || {
                    let mut rest = &sent[..];
                    while !rest.is_empty() {
                        rest = &rest[rustix::io::write(&writer, rest).unwrap()..];
                    }
                });
                let mut all = std::vec::Vec::new();
                let mut buf = [0u8; 4096];
                while let Ok(n @ 1..) = rustix::io::read(&host_hvc, &mut buf) {
                    all.extend_from_slice(&buf[..n]);
                }
                w.join().unwrap();
                all
            })
        };
        let (mut link, _r) = link();
        let mut relay = Relay(TtyRelay::new(guest_hvc, master));
        relay.0.queue(1, b"motd\r\n");
        Reactor::new(None).run(&mut link, &mut [&mut relay]);
        echo.join().unwrap();
        drop(relay);
        let got = host.join().unwrap();
        assert_eq!(&got[..6], b"motd\r\n");
        assert!(got[6..] == sent[..], "{} of {} bytes echoed back", got.len() - 6, sent.len());
    }
}
