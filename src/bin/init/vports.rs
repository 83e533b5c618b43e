//! virtio-console ports by name: the host names each port
//! (`virtserialport,name=...`), sysfs tells which `/dev/vportNpM` carries
//! which name, and the device node appears asynchronously after
//! virtio_console probes, so finding one may take a bounded wait.

use crate::clock;
use core::fmt::Write;
use heapless::String;
use rustix::fd::OwnedFd;
use rustix::fs::{Mode, OFlags};
use rustix::io::Errno;

const PORTS_DIR: &str = "/sys/class/virtio-ports";

/// Why a port could not be had.
pub enum PortError {
    NotFound,
    Open(Errno),
}

/// Which port to open.
pub struct Wanted<'a> {
    /// Any of these names.
    pub names: &'a [&'a str],
    /// Else this port, if it carries no name at all (hosts that name none).
    pub unnamed: Option<&'a str>,
}

/// Waits up to `wait_ms` for the port and opens it with `flags`.
pub fn open(wanted: &Wanted<'_>, flags: OFlags, wait_ms: u64) -> Result<OwnedFd, PortError> {
    let deadline = clock::now_ns() + wait_ms * 1_000_000;
    loop {
        if let Some(path) = find(wanted) {
            return rustix::fs::open(path.as_str(), flags, Mode::empty()).map_err(PortError::Open);
        }
        if clock::now_ns() >= deadline {
            return Err(PortError::NotFound);
        }
        clock::sleep_ms(10);
    }
}

type Path = String<64>;

/// The device node of the wanted port, once it exists.
fn find(wanted: &Wanted<'_>) -> Option<Path> {
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
            Some(name) if wanted.names.iter().any(|n| n.as_bytes() == name) => {
                return dev_node(port)
            }
            Some(b"") if Some(port) == wanted.unnamed => unnamed_fallback = true,
            _ => {}
        }
    }
    wanted.unnamed.filter(|_| unnamed_fallback).and_then(dev_node)
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
