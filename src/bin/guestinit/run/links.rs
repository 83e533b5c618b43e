//! The connections between the host and QEMU: one socket pair per chardev
//! (and one for QEMU's stderr). QEMU gets its ends as inherited descriptors
//! (`fd=N`), so no socket path exists: nothing to outgrow SUN_LEN under a
//! long TMPDIR, nothing to clean up however the host ends.

use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;

use crate::error::{Error, Result};

use super::qemu::LinkFds;

/// The host's ends, non-blocking, read by the reactor.
pub struct HostEnds {
    pub bulk: UnixStream,
    pub com1: UnixStream,
    pub com2: UnixStream,
    pub qmp: UnixStream,
    pub stderr: UnixStream,
    /// hvc0: the host writes wake bytes.
    pub hvc0: UnixStream,
    /// The payload's stdin, when the host's is no terminal.
    pub stdin: Option<UnixStream>,
    /// The stats relay, with `--stats-socket`.
    pub stats: Option<UnixStream>,
    /// Shell and exec modes: control messages (window size, dump, stop).
    pub control: Option<UnixStream>,
}

/// QEMU's ends: inherited by QEMU, then dropped by the host so that QEMU's
/// exit reads as the end of every link.
pub struct GuestEnds {
    pub bulk: OwnedFd,
    pub com1: OwnedFd,
    pub com2: OwnedFd,
    pub qmp: OwnedFd,
    pub stderr: OwnedFd,
    pub hvc0: OwnedFd,
    pub stdin: Option<OwnedFd>,
    pub stats: Option<OwnedFd>,
    pub control: Option<OwnedFd>,
}

impl GuestEnds {
    /// The descriptors QEMU names on its command line (`fd=N`).
    pub fn fds(&self) -> LinkFds {
        LinkFds {
            bulk: self.bulk.as_raw_fd(),
            com1: self.com1.as_raw_fd(),
            com2: self.com2.as_raw_fd(),
            qmp: self.qmp.as_raw_fd(),
            hvc0: self.hvc0.as_raw_fd(),
            stdin: self.stdin.as_ref().map(|fd| fd.as_raw_fd()),
            stats: self.stats.as_ref().map(|fd| fd.as_raw_fd()),
            control: self.control.as_ref().map(|fd| fd.as_raw_fd()),
        }
    }

    /// The descriptors QEMU must inherit (its stderr is set up apart).
    pub fn inherited(&self) -> Vec<RawFd> {
        let fds =
            [&self.bulk, &self.com1, &self.com2, &self.qmp, &self.hvc0].map(|fd| fd.as_raw_fd());
        fds.into_iter()
            .chain(self.stdin.as_ref().map(|fd| fd.as_raw_fd()))
            .chain(self.stats.as_ref().map(|fd| fd.as_raw_fd()))
            .chain(self.control.as_ref().map(|fd| fd.as_raw_fd()))
            .collect()
    }
}

fn pair(what: &str) -> Result<(UnixStream, OwnedFd)> {
    let setup = |source| Error::VmSetup {
        what: format!("creating the {what} socket pair"),
        source,
    };
    let (host, guest) = UnixStream::pair().map_err(setup)?;
    host.set_nonblocking(true).map_err(setup)?;
    Ok((host, guest.into()))
}

/// Whether the VM gets a link for the host's stdin.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Stdin {
    Relayed,
    Null,
}

/// Optional links: the host's stdin, the stats relay, the control port.
pub struct Wanted {
    pub stdin: Stdin,
    pub stats: bool,
    pub control: bool,
}

/// A socket pair for each link of a test VM.
pub fn new(wanted: Wanted) -> Result<(HostEnds, GuestEnds)> {
    let (bulk, bulk_guest) = pair("bulk port")?;
    let (com1, com1_guest) = pair("COM1")?;
    let (com2, com2_guest) = pair("COM2")?;
    let (qmp, qmp_guest) = pair("QMP")?;
    let (stderr, stderr_guest) = pair("QEMU stderr")?;
    let (hvc0, hvc0_guest) = pair("hvc0")?;
    let (stats, stats_guest) = match wanted.stats {
        true => pair("stats port").map(|(h, g)| (Some(h), Some(g)))?,
        false => (None, None),
    };
    let (control, control_guest) = match wanted.control {
        true => pair("control port").map(|(h, g)| (Some(h), Some(g)))?,
        false => (None, None),
    };
    let (stdin, stdin_guest) = match wanted.stdin {
        Stdin::Relayed => pair("stdin").map(|(h, g)| (Some(h), Some(g)))?,
        Stdin::Null => (None, None),
    };
    let host = HostEnds {
        bulk,
        com1,
        com2,
        qmp,
        stderr,
        hvc0,
        stdin,
        stats,
        control,
    };
    let guest = GuestEnds {
        bulk: bulk_guest,
        com1: com1_guest,
        com2: com2_guest,
        qmp: qmp_guest,
        stderr: stderr_guest,
        hvc0: hvc0_guest,
        stdin: stdin_guest,
        stats: stats_guest,
        control: control_guest,
    };
    Ok((host, guest))
}
