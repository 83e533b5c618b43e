//! The bulk virtio-console port: found by its name in sysfs (the device
//! node appears asynchronously after virtio_console probes), opened
//! non-blocking so a slow host holds frames back instead of stalling the loop.

use crate::clock;
use core::fmt::Write;
use guestinit::outbox::Sink;
use guestinit::proto;
use heapless::String;
use rustix::event::{poll, PollFd, PollFlags};
use rustix::fd::{AsFd, BorrowedFd, OwnedFd};
use rustix::fs::{Mode, OFlags};
use rustix::io::Errno;

/// The names a host gives the port (`virtserialport,name=...`): this
/// project's, and ktstr's VMM's.
const PORT_NAMES: [&str; 2] = [proto::BULK_PORT, proto::KTSTR_BULK_PORT];
/// The port used when no port carries one of [`PORT_NAMES`]: the first
/// device's port 1.
const FALLBACK: &str = "vport0p1";
const PORTS_DIR: &str = "/sys/class/virtio-ports";
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

/// Why the port could not be had.
pub enum PortError {
    NotFound,
    Open(Errno),
}

/// Waits up to [`WAIT_MS`] for the port and opens it read-write (the host
/// replies on it; a second open would fail with EBUSY).
pub fn open() -> Result<Port, PortError> {
    let deadline = clock::now_ns() + WAIT_MS * 1_000_000;
    loop {
        if let Some(path) = find() {
            let flags = OFlags::RDWR | OFlags::NONBLOCK | OFlags::NOCTTY | OFlags::CLOEXEC;
            return match rustix::fs::open(path.as_str(), flags, Mode::empty()) {
                Ok(fd) => Ok(Port::from_fd(fd)),
                Err(e) => Err(PortError::Open(e)),
            };
        }
        if clock::now_ns() >= deadline {
            return Err(PortError::NotFound);
        }
        clock::sleep_ms(10);
    }
}

type Path = String<64>;

/// `/dev/vportNpM` of a port named one of [`PORT_NAMES`] in sysfs, else of
/// an unnamed `vport0p1` (hosts that name no port), once the node exists.
fn find() -> Option<Path> {
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC;
    let dir = rustix::fs::open(PORTS_DIR, flags, Mode::empty()).ok()?;
    let mut buf = [core::mem::MaybeUninit::<u8>::uninit(); 1024];
    let mut entries = rustix::fs::RawDir::new(&dir, &mut buf);
    let mut unnamed_fallback = false;
    while let Some(Ok(entry)) = entries.next() {
        let Ok(port) = entry.file_name().to_str() else {
            continue;
        };
        let mut name = [0u8; 64];
        match port_name(port, &mut name) {
            Some(name) if PORT_NAMES.iter().any(|n| n.as_bytes() == name) => {
                return dev_node(port)
            }
            Some(b"") if port == FALLBACK => unnamed_fallback = true,
            _ => {}
        }
    }
    if unnamed_fallback {
        return dev_node(FALLBACK);
    }
    None
}

/// The sysfs `name` of `port`, without its newline.
fn port_name<'n>(port: &str, name: &'n mut [u8; 64]) -> Option<&'n [u8]> {
    let mut path = Path::new();
    write!(path, "{PORTS_DIR}/{port}/name").ok()?;
    let file = rustix::fs::open(
        path.as_str(),
        OFlags::RDONLY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .ok()?;
    let n = rustix::io::read(&file, &mut name[..]).ok()?;
    Some(name[..n].strip_suffix(b"\n").unwrap_or(&name[..n]))
}

fn dev_node(port: &str) -> Option<Path> {
    let mut dev = Path::new();
    write!(dev, "/dev/{port}").ok()?;
    let exists = rustix::fs::access(dev.as_str(), rustix::fs::Access::EXISTS).is_ok();
    exists.then_some(dev)
}
