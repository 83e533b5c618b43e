//! A machine booted from the base archive is handed its run on the
//! handover port (`guestinit.handover`, docs/PROTOCOL.md): after HRDY the
//! host may snapshot the VM, then it sends the header, the run's keys and
//! the payload's archive. Whether the VM was just booted or restored from
//! a snapshot, the clock is set to the host's and the CRNG reseeded with
//! the host's entropy before anything reads either; the archive is
//! unpacked under / as the kernel unpacks an initramfs, checked whole by
//! its CRC. One blocking read loop before any child exists: the host
//! writes as fast as the init unpacks, which is the backpressure.

use crate::failure;
use crate::kmsg;
use crate::link::Link;
use crate::vports::{self, Wanted};
use crate::wake;
use core::ffi::CStr;
use guestinit::cell::TakeOnce;
use guestinit::fmt::{ErrnoText, Lossy};
use guestinit::parse::cmdline::Cmdline;
use guestinit::parse::newc::{self, Failed, Header as Entry, Kind, Reader, Sink};
use guestinit::proto::boot::{BootParams, Unknown};
use guestinit::proto::handover::{Header, PARAMS_MAX};
use guestinit::proto::HANDOVER_PORT;
use guestinit::wire::{slice16, Tag};
use rustix::fd::{AsFd, OwnedFd};
use rustix::fs::{Mode, OFlags, CWD};
use rustix::io::Errno;

/// How long the port may take to appear once the bulk port has.
const WAIT_MS: u64 = 5000;
const CHUNK: usize = 16 * 1024;

/// The run's keys (they outlive the handover: the params borrow them), the
/// archive's chunks, and a symlink's name and target.
static KEYS: TakeOnce<[u8; PARAMS_MAX]> = TakeOnce::new([0; PARAMS_MAX]);
static CHUNKS: TakeOnce<[u8; CHUNK]> = TakeOnce::new([0; CHUNK]);
static LINK: TakeOnce<([u8; newc::NAME_MAX], [u8; newc::NAME_MAX + 1])> =
    TakeOnce::new(([0; newc::NAME_MAX], [0; newc::NAME_MAX + 1]));
static READER: TakeOnce<Reader> = TakeOnce::new(Reader::new());

/// Says HRDY, waits for the run and installs it: its keys come back.
pub fn receive(link: &mut Link) -> (BootParams<'static>, Unknown<'static>) {
    let wanted = Wanted {
        names: &[HANDOVER_PORT],
        unnamed: None,
    };
    let flags = OFlags::RDONLY | OFlags::NOCTTY | OFlags::CLOEXEC;
    let port = match vports::open(&wanted, flags, WAIT_MS) {
        Ok(port) => port,
        Err(_) => failure::fail(link, format_args!("no {HANDOVER_PORT} port")),
    };
    // What every run of the machine opens is had now, before a snapshot:
    // after a restore, the kernel code of finding it is cold under TCG.
    vports::learn();
    wake::open_ahead();
    kmsg::read_ahead();
    link.send(Tag::HRDY, &[]);
    let _ = link.flush_within(None);
    let mut fixed = [0u8; Header::LEN];
    read_exact(link, &port, &mut fixed);
    let header = match Header::decode(&fixed) {
        Ok(header) => header,
        Err(e) => failure::fail(link, format_args!("the handover's header: {e}")),
    };
    fresh(link, &header);
    let keys = KEYS.take().expect("one handover per boot");
    let len = (header.params_len as usize).min(PARAMS_MAX);
    read_exact(link, &port, &mut keys[..len]);
    unpack(link, &port, &header);
    BootParams::parse(&Cmdline::new(&keys[..len]))
}

/// What must differ from every other restore of the snapshot: the clock
/// and the random pool. A failure is a warning: the run can go on.
fn fresh(link: &mut Link, header: &Header) {
    let now = rustix::time::Timespec {
        tv_sec: header.realtime_s as i64,
        tv_nsec: header.realtime_ns as i64,
    };
    if let Err(e) = rustix::time::clock_settime(rustix::time::ClockId::Realtime, now) {
        link.warn(format_args!("setting the clock: {}", ErrnoText(e)));
    }
    let random = crate::small_file::open(b"/dev/urandom", OFlags::WRONLY | OFlags::CLOEXEC);
    let reseeded = random.and_then(|fd| guestinit::sys::random::reseed(fd.as_fd(), &header.entropy));
    if let Err(e) = reseeded {
        link.warn(format_args!("reseeding the random pool: {}", ErrnoText(e)));
    }
}

/// Reads `buf` whole from the port; the host ending first ends the run.
fn read_exact(link: &mut Link, port: &OwnedFd, buf: &mut [u8]) {
    let mut at = 0;
    while at < buf.len() {
        match rustix::io::read(port, &mut buf[at..]) {
            Ok(0) => failure::fail(link, format_args!("the handover was cut short")),
            Ok(n) => at += n,
            Err(Errno::INTR) => {}
            Err(e) => failure::fail(link, format_args!("reading the handover: {}", ErrnoText(e))),
        }
    }
}

/// The archive, unpacked as it arrives; its CRC is checked at its end.
fn unpack(link: &mut Link, port: &OwnedFd, header: &Header) {
    let chunk = CHUNKS.take().expect("one handover per boot");
    let reader = READER.take().expect("one handover per boot");
    let (name, target) = LINK.take().expect("one handover per boot");
    let mut sink = Unpack {
        file: None,
        symlink: None,
        name,
        target,
        failed: None,
    };
    // The modes are the archive's, as the kernel's unpacker makes them.
    let umask = rustix::process::umask(Mode::empty());
    let mut left = header.archive_len;
    let mut crc = 0;
    while left > 0 {
        let want = chunk.len().min(usize::try_from(left).unwrap_or(usize::MAX));
        let n = match rustix::io::read(port, &mut chunk[..want]) {
            Ok(0) => failure::fail(link, format_args!("the payload's archive was cut short")),
            Ok(n) => n,
            Err(Errno::INTR) => continue,
            Err(e) => failure::fail(link, format_args!("reading the payload's archive: {}", ErrnoText(e))),
        };
        left -= n as u64;
        crc = slice16::extend(crc, &chunk[..n]);
        match reader.feed(&chunk[..n], &mut sink) {
            Ok(()) => {}
            Err(Failed::Archive(e)) => failure::fail(link, format_args!("the payload's archive: {e:?}")),
            Err(Failed::Sink(())) => {
                let (errno, what) = sink.failed.take().unwrap_or((Errno::IO, "unpack"));
                failure::fail(
                    link,
                    format_args!("{what} {}: {}", Lossy(trimmed(sink.name)), ErrnoText(errno)),
                )
            }
        }
    }
    rustix::process::umask(umask);
    if crc != header.archive_crc {
        failure::fail(link, format_args!("the payload's archive does not match its CRC"));
    }
    if let Err(e) = reader.finish() {
        failure::fail(link, format_args!("the payload's archive: {e:?}"));
    }
}

/// A name copied into a buffer, up to its NUL.
fn trimmed(buf: &[u8]) -> &[u8] {
    buf.split(|&b| b == 0).next().unwrap_or_default()
}

/// Each entry made at its name under / (the init's directory).
struct Unpack {
    file: Option<OwnedFd>,
    /// A symlink's target length so far, while its data arrives.
    symlink: Option<usize>,
    /// The entry's name, for a symlink (made at its end) and errors.
    name: &'static mut [u8; newc::NAME_MAX],
    target: &'static mut [u8; newc::NAME_MAX + 1],
    failed: Option<(Errno, &'static str)>,
}

impl Unpack {
    fn fail(&mut self, errno: Errno, what: &'static str) -> Result<(), ()> {
        self.failed = Some((errno, what));
        Err(())
    }
}

impl Sink for Unpack {
    type Error = ();

    fn entry(&mut self, header: &Entry, name: &CStr) -> Result<(), ()> {
        let bytes = name.to_bytes_with_nul();
        let len = bytes.len().min(self.name.len());
        self.name[..len].copy_from_slice(&bytes[..len]);
        let mode = Mode::from_raw_mode(header.mode & 0o7777);
        let made = match header.kind() {
            Kind::Dir => match rustix::fs::mkdirat(CWD, name, mode) {
                Err(Errno::EXIST) => Ok(()),
                other => other,
            },
            Kind::File => {
                let flags = OFlags::WRONLY | OFlags::CREATE | OFlags::TRUNC | OFlags::CLOEXEC;
                rustix::fs::openat(CWD, name, flags, mode).map(|fd| self.file = Some(fd))
            }
            Kind::Symlink => {
                self.symlink = Some(0);
                Ok(())
            }
            Kind::CharDevice | Kind::BlockDevice => {
                let kind = match header.kind() {
                    Kind::CharDevice => rustix::fs::FileType::CharacterDevice,
                    _ => rustix::fs::FileType::BlockDevice,
                };
                let dev = rustix::fs::makedev(header.rdev_major, header.rdev_minor);
                match rustix::fs::mknodat(CWD, name, kind, mode, dev) {
                    Err(Errno::EXIST) => Ok(()),
                    other => other,
                }
            }
            // The host packs none of these.
            _ => Ok(()),
        };
        made.or_else(|e| self.fail(e, "create"))
    }

    fn data(&mut self, bytes: &[u8]) -> Result<(), ()> {
        if let Some(len) = self.symlink.as_mut() {
            let room = self.target.len() - 1 - *len;
            if bytes.len() > room {
                return self.fail(Errno::NAMETOOLONG, "symlink");
            }
            self.target[*len..*len + bytes.len()].copy_from_slice(bytes);
            *len += bytes.len();
            return Ok(());
        }
        let Some(file) = &self.file else { return Ok(()) };
        match crate::small_file::write_all(file.as_fd(), bytes) {
            Ok(()) => Ok(()),
            Err(e) => self.fail(e, "write"),
        }
    }

    fn end(&mut self) -> Result<(), ()> {
        self.file = None;
        let Some(len) = self.symlink.take() else { return Ok(()) };
        self.target[len] = 0;
        let target = CStr::from_bytes_until_nul(&self.target[..]).map_err(|_| ())?;
        let name = CStr::from_bytes_until_nul(&self.name[..]).map_err(|_| ())?;
        match rustix::fs::symlinkat(target, CWD, name) {
            Ok(()) | Err(Errno::EXIST) => Ok(()),
            Err(e) => self.fail(e, "symlink"),
        }
    }
}
