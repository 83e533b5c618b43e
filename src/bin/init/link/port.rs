//! The bulk virtio-console port: found by its name, opened non-blocking so
//! a slow host holds frames back instead of stalling the loop.

use crate::clock;
use crate::vports::{self, PortError, Wanted};
use guestinit::outbox::Sink;
use guestinit::proto;
use rustix::event::{poll, PollFd, PollFlags};
use rustix::fd::{AsFd, BorrowedFd, OwnedFd};
use rustix::fs::OFlags;
use rustix::io::Errno;

/// The names a host gives the port (`virtserialport,name=...`): this
/// project's, and ktstr's VMM's.
const PORT_NAMES: [&str; 2] = [proto::BULK_PORT, proto::KTSTR_BULK_PORT];
/// The port used when no port carries one of [`PORT_NAMES`]: the first
/// device's port 1.
const FALLBACK: &str = "vport0p1";
/// How long the port may take to appear after the modules load.
pub const WAIT_MS: u64 = 5000;

/// The port, as a sink that waits for room until its deadline (if any).
pub struct Port {
    fd: OwnedFd,
    deadline_ns: Option<u64>,
}

impl Sink for Port {
    fn write(&mut self, bytes: &[u8]) -> Result<usize, Errno> {
        rustix::io::write(&self.fd, bytes)
    }

    fn wait_writable(&mut self) -> Result<(), Errno> {
        let mut fds = [PollFd::new(&self.fd, PollFlags::OUT)];
        let timeout = self.deadline_ns.map(clock::timespec_until);
        match poll(&mut fds, timeout.as_ref()) {
            Ok(0) => Err(Errno::TIMEDOUT),
            Ok(_) | Err(Errno::INTR) => Ok(()),
            Err(e) => Err(e),
        }
    }
}

impl Port {
    /// A port over an open, non-blocking descriptor (a pipe in tests).
    pub fn from_fd(fd: OwnedFd) -> Port {
        Port {
            fd,
            deadline_ns: None,
        }
    }

    pub fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// Bounds every later wait for room (None: without bound).
    pub fn set_deadline(&mut self, deadline_ns: Option<u64>) {
        self.deadline_ns = deadline_ns;
    }

    /// Makes writes wait until the host has taken each buffer: the last
    /// frames go out this way.
    pub fn set_blocking(&self) -> Result<(), Errno> {
        rustix::fs::fcntl_setfl(&self.fd, OFlags::empty())
    }
}

/// Waits up to [`WAIT_MS`] for the port and opens it read-write (the host
/// replies on it; a second open would fail with EBUSY).
pub fn open() -> Result<Port, PortError> {
    let wanted = Wanted {
        names: &PORT_NAMES,
        unnamed: Some(FALLBACK),
    };
    let flags = OFlags::RDWR | OFlags::NONBLOCK | OFlags::NOCTTY | OFlags::CLOEXEC;
    vports::open(&wanted, flags, WAIT_MS).map(Port::from_fd)
}
