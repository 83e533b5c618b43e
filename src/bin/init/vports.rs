//! virtio-console ports by name: the host names each port
//! (`virtserialport,name=...`), sysfs tells which `/dev/vportNpM` carries
//! which name, and the device node appears asynchronously after
//! virtio_console probes, so finding one may take a bounded wait. The wait
//! sleeps on the kernel's uevents: one comes when the port is added and one
//! when the host's name for it lands in sysfs (KOBJ_CHANGE).

use crate::clock;
use guestinit::cell::Exclusive;
use heapless::Vec;
use rustix::event::{poll, PollFd, PollFlags};
use rustix::fd::OwnedFd;
use rustix::fs::OFlags;
use rustix::io::Errno;
use rustix::net::netlink::{self, SocketAddrNetlink};
use rustix::net::{AddressFamily, RecvFlags, SocketFlags, SocketType};

const PORTS_DIR: &str = "/sys/class/virtio-ports";
/// The most named ports `learn` keeps (the host makes six at most).
const LEARNED_MAX: usize = 8;

/// The named ports one scan found (`learn`): `find` goes straight to their
/// device nodes, as sysfs reads are cold kernel code after a restore.
static LEARNED: Exclusive<Vec<(Name, Path), LEARNED_MAX>> = Exclusive::new(Vec::new());

/// Why a port could not be had.
pub enum PortError {
    NotFound,
    Open(Errno),
}

/// Which port to open.
pub struct Wanted<'a> {
    /// Any of these names.
    pub names: &'a [&'a str],
    /// Else this port, if it carries no name at all (hosts that name none);
    /// it is also looked at first, being where hosts usually put the port.
    pub unnamed: Option<&'a str>,
}

impl Wanted<'_> {
    fn has(&self, name: &[u8]) -> bool {
        self.names.iter().any(|n| n.as_bytes() == name)
    }
}

/// Waits up to `wait_ms` for the port and opens it with `flags`.
pub fn open(wanted: &Wanted<'_>, flags: OFlags, wait_ms: u64) -> Result<OwnedFd, PortError> {
    let deadline = clock::now_ns() + wait_ms * 1_000_000;
    // None until the first look fails: the port is usually there already,
    // and a first netlink socket costs up to 10 ms of cold kernel code
    // under TCG.
    let mut uevents: Option<Option<OwnedFd>> = None;
    loop {
        if let Some(path) = find(wanted) {
            return crate::small_file::open(&path[..], flags).map_err(PortError::Open);
        }
        if clock::now_ns() >= deadline {
            return Err(PortError::NotFound);
        }
        match &uevents {
            // Subscribed before the next look: a port added in between
            // still wakes us.
            None => uevents = Some(uevent_socket()),
            Some(Some(socket)) => await_uevent(socket, deadline),
            // No netlink (CONFIG_NET off): look again a little later.
            Some(None) => clock::sleep_ms(10),
        }
    }
}

/// A socket on the kernel's uevent broadcast (multicast group 1).
fn uevent_socket() -> Option<OwnedFd> {
    let socket = rustix::net::socket_with(
        AddressFamily::NETLINK,
        SocketType::DGRAM,
        SocketFlags::CLOEXEC | SocketFlags::NONBLOCK,
        Some(netlink::KOBJECT_UEVENT),
    ).ok()?;
    rustix::net::bind(&socket, &SocketAddrNetlink::new(0, 1)).ok()?;
    Some(socket)
}

/// Sleeps until a uevent or the deadline, then drops the queued uevents:
/// any of them is only a reason to look again.
fn await_uevent(socket: &OwnedFd, deadline: u64) {
    let mut fds = [PollFd::new(socket, PollFlags::IN)];
    let _ = poll(&mut fds, Some(&clock::timespec_until(deadline)));
    // A message's text is not needed, only its arrival: a small buffer cuts
    // each datagram and the kernel drops the rest.
    let mut sink = [0u8; 16];
    while rustix::net::recv(socket, &mut sink, RecvFlags::empty()).is_ok() {}
}

/// Bytes, not `str`: sysfs names need no UTF-8 check to be opened.
type Path = Vec<u8, 64>;
type Name = Vec<u8, 64>;

/// Remembers every named port there is now (a machine about to be
/// snapshotted: each restore opens its ports without reading sysfs).
pub fn learn() {
    let _ = LEARNED.with(|learned| {
        scan(None, |port, name| {
            let name = Name::from_slice(name).ok().filter(|n| !n.is_empty())?;
            let full = learned.push((name, dev_node(port)?)).is_err();
            full.then_some(())
        })
    });
}

/// The learned device node of a wanted port.
fn learned(wanted: &Wanted<'_>) -> Option<Path> {
    LEARNED.with(|learned| {
        let (_, node) = learned.iter().find(|(name, _)| wanted.has(name))?;
        Some(node.clone())
    })?
}

/// `parts` end to end; `None` if they do not fit.
fn join(parts: &[&[u8]]) -> Option<Path> {
    let mut path = Path::new();
    for part in parts {
        path.extend_from_slice(part).ok()?;
    }
    Some(path)
}

/// The device node of the wanted port, once it exists.
fn find(wanted: &Wanted<'_>) -> Option<Path> {
    if let Some(node) = learned(wanted) {
        return Some(node);
    }
    let usual = wanted.unnamed.map(str::as_bytes);
    // The usual place first: one name read instead of a directory's worth,
    // and the scan below passes it by.
    let mut usual_unnamed = false;
    if let Some(port) = usual {
        let mut name = [0u8; 64];
        match port_name(port, &mut name) {
            Some(name) if wanted.has(name) => return dev_node(port),
            Some(b"") => usual_unnamed = true,
            _ => {}
        }
    }
    match scan(usual, |port, name| wanted.has(name).then(|| dev_node(port))) {
        Some(found) => found,
        None => usual.filter(|_| usual_unnamed).and_then(dev_node),
    }
}

/// Calls `each` with every port but `skip` and its name, until it returns
/// something.
fn scan<R>(skip: Option<&[u8]>, mut each: impl FnMut(&[u8], &[u8]) -> Option<R>) -> Option<R> {
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC;
    let dir = crate::small_file::open(PORTS_DIR.as_bytes(), flags).ok()?;
    let mut buf = [core::mem::MaybeUninit::<u8>::uninit(); 1024];
    let mut entries = rustix::fs::RawDir::new(&dir, &mut buf);
    while let Some(Ok(entry)) = entries.next() {
        let port = entry.file_name().to_bytes();
        if Some(port) == skip {
            continue;
        }
        let mut name = [0u8; 64];
        let Some(name) = port_name(port, &mut name) else { continue };
        if let Some(found) = each(port, name) {
            return Some(found);
        }
    }
    None
}

/// The sysfs `name` of `port`, without its newline.
fn port_name<'n>(port: &[u8], name: &'n mut [u8; 64]) -> Option<&'n [u8]> {
    let path = join(&[PORTS_DIR.as_bytes(), b"/", port, b"/name"])?;
    let file = crate::small_file::open(&path[..], OFlags::RDONLY | OFlags::CLOEXEC).ok()?;
    let n = rustix::io::read(&file, &mut name[..]).ok()?;
    Some(name[..n].strip_suffix(b"\n").unwrap_or(&name[..n]))
}

fn dev_node(port: &[u8]) -> Option<Path> {
    let dev = join(&[b"/dev/", port])?;
    let exists = crate::small_file::exists(&dev[..]);
    exists.then_some(dev)
}
