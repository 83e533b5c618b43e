//! The connections between the host and QEMU, one entry each in [`TABLE`]:
//! a socket pair whose guest end QEMU inherits (`fd=N`), the QEMU device
//! that names it, when a run has it, and how the reactor polls the host's
//! end. The socket pairs, the inherited descriptors, QEMU's link arguments
//! and the poll registrations all come from the table, so a new link is a
//! new entry (and its device function in `qemu`). No socket path exists:
//! nothing to outgrow SUN_LEN under a long TMPDIR, nothing to clean up
//! however the host ends.

use std::ffi::OsString;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;

use mio::Interest;

use crate::error::{Error, Result};

use super::qemu;

/// A link, and its index in [`TABLE`]; the reactor's poll token too.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Link {
    Com1,
    Com2,
    /// Wake bytes in test mode; the shell's console in shell mode.
    Hvc0,
    /// The frame stream.
    Bulk,
    /// The scheduler's stats, relayed by `stats`' threads.
    Stats,
    /// The host's stdin, copied by `stdin`'s thread.
    Stdin,
    /// Shell and exec modes: control messages (window size, dump, stop).
    Control,
    /// The run handed to a booted machine (`warm`), written by a thread.
    Handover,
    Qmp,
    /// QEMU's own stderr: not a chardev, QEMU's descriptor 2.
    QemuStderr,
}

/// What the run asks of its links.
#[derive(Clone, Copy, Debug, Default)]
pub struct Wanted {
    /// The host's stdin is relayed (it is no terminal, in test mode).
    pub stdin: bool,
    /// `--stats-socket`.
    pub stats: bool,
    /// Shell and exec modes.
    pub control: bool,
    /// Shell mode: the user's terminal on hvc0.
    pub console: bool,
    /// The machine may be snapshotted or restored (`warm`): it has the
    /// handover port, and every port a run may use, whether this run uses
    /// it or not, so that one snapshot serves every run of the machine.
    pub handover: bool,
}

/// How QEMU gets a link's guest end.
#[derive(Clone, Copy)]
pub enum Device {
    /// Inherited, and named by these arguments.
    Args(fn(RawFd) -> Vec<OsString>),
    /// As its stderr.
    Stderr,
}

/// One link.
pub struct Entry {
    pub link: Link,
    /// Its name in errors.
    what: &'static str,
    /// Whether a run has the link.
    when: fn(&Wanted) -> bool,
    device: Device,
    /// What the reactor waits for on the host's end; None when a thread
    /// reads it or the host only writes to it.
    poll: fn(&Wanted) -> Option<Interest>,
}

fn always(_: &Wanted) -> bool {
    true
}

fn readable(_: &Wanted) -> Option<Interest> {
    Some(Interest::READABLE)
}

fn unpolled(_: &Wanted) -> Option<Interest> {
    None
}

/// Every link, in QEMU's argument order (COM1 before COM2 makes them the
/// first and second UART).
pub const TABLE: [Entry; 10] = [
    Entry {
        link: Link::Com1,
        what: "COM1",
        when: always,
        device: Device::Args(qemu::com1),
        poll: readable,
    },
    Entry {
        link: Link::Com2,
        what: "COM2",
        when: always,
        device: Device::Args(qemu::com2),
        poll: readable,
    },
    Entry {
        link: Link::Hvc0,
        what: "hvc0",
        when: always,
        device: Device::Args(qemu::hvc0),
        // Writable too: keys that found hvc0 full go when it has room.
        poll: |w| w.console.then_some(Interest::READABLE | Interest::WRITABLE),
    },
    Entry {
        link: Link::Bulk,
        what: "bulk port",
        when: always,
        device: Device::Args(qemu::bulk_port),
        poll: readable,
    },
    Entry {
        link: Link::Stats,
        what: "stats port",
        when: |w| w.stats || w.handover,
        device: Device::Args(qemu::stats_port),
        poll: unpolled,
    },
    Entry {
        link: Link::Stdin,
        what: "stdin",
        when: |w| w.stdin || w.handover,
        device: Device::Args(qemu::stdin_port),
        poll: unpolled,
    },
    Entry {
        link: Link::Control,
        what: "control port",
        when: |w| w.control || w.handover,
        device: Device::Args(qemu::control_port),
        poll: unpolled,
    },
    Entry {
        link: Link::Handover,
        what: "handover port",
        when: |w| w.handover,
        device: Device::Args(qemu::handover_port),
        poll: unpolled,
    },
    Entry {
        link: Link::Qmp,
        what: "QMP",
        when: always,
        device: Device::Args(qemu::qmp),
        poll: readable,
    },
    Entry {
        link: Link::QemuStderr,
        what: "QEMU stderr",
        when: always,
        device: Device::Stderr,
        poll: readable,
    },
];

/// The links' count: the reactor's tokens past it are not links.
pub const COUNT: usize = TABLE.len();

impl Link {
    pub fn from_index(index: usize) -> Option<Link> {
        TABLE.get(index).map(|entry| entry.link)
    }
}

/// A link's two ends; the guest's is gone once QEMU holds it.
struct Pair {
    host: Option<UnixStream>,
    guest: Option<OwnedFd>,
}

/// A run's links, by [`Link`].
pub struct Links {
    wanted: Wanted,
    pairs: [Option<Pair>; COUNT],
}

impl Links {
    /// A socket pair for each link the run has; the host's ends are
    /// non-blocking, read by the reactor.
    pub fn open(wanted: Wanted) -> Result<Links> {
        let mut pairs = [const { None }; COUNT];
        for (slot, entry) in pairs.iter_mut().zip(&TABLE) {
            if (entry.when)(&wanted) {
                *slot = Some(pair(entry.what)?);
            }
        }
        Ok(Links { wanted, pairs })
    }

    fn guest_ends(&self) -> impl Iterator<Item = (&Entry, RawFd)> {
        TABLE.iter().zip(&self.pairs).filter_map(|(entry, pair)| {
            let fd = pair.as_ref()?.guest.as_ref()?.as_raw_fd();
            Some((entry, fd))
        })
    }

    /// QEMU's arguments for the links, in table order.
    pub fn qemu_args(&self) -> Vec<OsString> {
        self.guest_ends()
            .filter_map(|(entry, fd)| match entry.device {
                Device::Args(args) => Some(args(fd)),
                Device::Stderr => None,
            })
            .flatten()
            .collect()
    }

    /// The descriptors QEMU inherits (its stderr is set up apart).
    pub fn inherited(&self) -> Vec<RawFd> {
        self.guest_ends()
            .filter(|(entry, _)| matches!(entry.device, Device::Args(_)))
            .map(|(_, fd)| fd)
            .collect()
    }

    /// The guest end QEMU writes its stderr to.
    pub fn take_qemu_stderr(&mut self) -> Option<OwnedFd> {
        self.pairs[Link::QemuStderr as usize].as_mut()?.guest.take()
    }

    /// Once QEMU holds its ends: the host's copies would hide QEMU's exit.
    pub fn close_guest_ends(&mut self) {
        for pair in self.pairs.iter_mut().flatten() {
            pair.guest = None;
        }
    }

    /// The host's ends the reactor polls, with what it waits for.
    pub fn polled(&self) -> Vec<(Link, RawFd, Interest)> {
        TABLE
            .iter()
            .zip(&self.pairs)
            .filter_map(|(entry, pair)| {
                let fd = pair.as_ref()?.host.as_ref()?.as_raw_fd();
                Some((entry.link, fd, (entry.poll)(&self.wanted)?))
            })
            .collect()
    }

    /// The host's end of `link`, for its handler, if the run has it.
    pub fn take(&mut self, link: Link) -> Option<UnixStream> {
        self.pairs[link as usize].as_mut()?.host.take()
    }

    /// The host's end of a link every run has.
    pub fn take_always(&mut self, link: Link) -> Result<UnixStream> {
        self.take(link).ok_or_else(|| Error::VmSetup {
            what: format!("the {} link", TABLE[link as usize].what),
            source: std::io::ErrorKind::NotFound.into(),
        })
    }

    /// The host's end of `link`, left in place.
    pub fn host(&self, link: Link) -> Option<&UnixStream> {
        self.pairs[link as usize].as_ref()?.host.as_ref()
    }
}

fn pair(what: &str) -> Result<Pair> {
    let setup = |source| Error::VmSetup {
        what: format!("creating the {what} socket pair"),
        source,
    };
    let (host, guest) = UnixStream::pair().map_err(setup)?;
    host.set_nonblocking(true).map_err(setup)?;
    Ok(Pair {
        host: Some(host),
        guest: Some(guest.into()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_entry_sits_at_its_links_index() {
        for (index, entry) in TABLE.iter().enumerate() {
            assert_eq!(entry.link as usize, index, "{:?}", entry.link);
            assert_eq!(Link::from_index(index), Some(entry.link));
        }
        assert_eq!(Link::from_index(COUNT), None);
    }

    #[test]
    fn optional_links_exist_only_when_wanted_and_every_inherited_fd_is_named() {
        let links = Links::open(Wanted::default()).unwrap();
        for link in [Link::Stats, Link::Stdin, Link::Control, Link::Handover] {
            assert!(links.host(link).is_none(), "{link:?}");
        }
        let args: Vec<String> = links
            .qemu_args()
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        let inherited = links.inherited();
        // COM1, COM2, hvc0, bulk, QMP; QEMU's stderr is not inherited.
        assert_eq!(inherited.len(), 5);
        for fd in inherited {
            assert!(
                args.iter().any(|a| a.ends_with(&format!("fd={fd}"))),
                "{fd}"
            );
        }
        let all = Wanted {
            stdin: true,
            stats: true,
            control: true,
            console: true,
            handover: true,
        };
        let links = Links::open(all).unwrap();
        assert_eq!(links.inherited().len(), 9);
        let polled: Vec<Link> = links.polled().iter().map(|p| p.0).collect();
        assert_eq!(
            polled,
            [
                Link::Com1,
                Link::Com2,
                Link::Hvc0,
                Link::Bulk,
                Link::Qmp,
                Link::QemuStderr
            ]
        );
    }

    #[test]
    fn a_machine_that_may_be_restored_has_every_port_whatever_the_run_uses() {
        let warm = Wanted {
            handover: true,
            ..Wanted::default()
        };
        let links = Links::open(warm).unwrap();
        for link in [Link::Stats, Link::Stdin, Link::Control, Link::Handover] {
            assert!(links.host(link).is_some(), "{link:?}");
        }
    }

    #[test]
    fn hvc0_is_polled_only_for_the_console_and_taken_ends_are_not_polled() {
        let mut links = Links::open(Wanted::default()).unwrap();
        assert!(links.polled().iter().all(|p| p.0 != Link::Hvc0));
        assert!(links.take(Link::Bulk).is_some());
        assert!(links.polled().iter().all(|p| p.0 != Link::Bulk));
        assert!(links.take(Link::Bulk).is_none());
        assert!(links.take_always(Link::Bulk).is_err());
    }
}
