//! The kernel command line's keys for the init (docs/PROTOCOL.md, section
//! 5) as one type: the host writes a [`BootParams`] into the line it boots
//! with, the init parses it back once from `/proc/cmdline`. For each key
//! the last occurrence wins, so a user's `--append`, which the host puts
//! after its own keys, overrides them. What the init does not know (an
//! unknown mode, crash value, or disks past [`disk::MAX`]) is returned
//! beside the parameters as [`Unknown`], for the init to warn of.

use core::fmt::{self, Write};

use super::net::Hostname;
use super::{disk, key, mode};
use crate::parse::cmdline::Cmdline;
use crate::parse::num::{parse_dec_u64, parse_hex_u64};
use crate::parse::superblock::Fs;

/// Every key the host sets and the init reads.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BootParams<'a> {
    /// [`key::ACK`]: the host acknowledges EXIT with EACK.
    pub ack: bool,
    /// [`key::STDIN`]: the host relays its stdin on the stdin port.
    pub stdin: bool,
    /// [`key::STATS`]: the host relays a stats client on the stats port.
    pub stats: bool,
    /// [`key::NET`]: eth0 is on QEMU's user network.
    pub net: bool,
    /// [`key::PAGE_OFFSET_BASE`]: `page_offset_base - _text`.
    pub pob: Option<u64>,
    /// [`key::ATTACH_TIMEOUT`]: seconds the scheduler has to attach; `None`
    /// leaves it to the init ([`super::sched::ATTACH_TIMEOUT_TCG_S`]).
    pub attach_timeout_s: Option<u64>,
    /// [`key::TRACE_KB`]: the trace buffer's KiB per CPU.
    pub trace_kb: Option<u64>,
    /// [`key::MODE`] (and [`key::FS`] in mkdisk mode).
    pub mode: Mode,
    /// [`key::DISKS`]: the data disks' access, in device order.
    pub disks: Disks,
    /// [`key::CRASH`]: the init crashes on purpose (tests of the crash path).
    pub crash: Option<Crash>,
    /// [`key::HOSTNAME`]; `None` leaves it to the init
    /// ([`super::net::DEFAULT_HOSTNAME`]), as does a value that is no
    /// [`Hostname`].
    pub hostname: Option<Hostname<'a>>,
    /// [`key::HANDOVER`]: the run's keys and files come on the handover
    /// port once the machine is up (a snapshot may be taken before).
    pub handover: bool,
}

/// What PID 1 runs ([`key::MODE`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Mode {
    /// /args as the payload, its exit reported (the key absent).
    #[default]
    Test,
    /// `sh -c` of /exec_cmd as the payload; its exit goes as EXCX too.
    Exec,
    /// An interactive shell on hvc0; its exit is the run's.
    Shell,
    /// /args (the host's mkfs) on the template disk, which must then hold
    /// this filesystem ([`key::FS`]; `None`: absent or one the init cannot
    /// check, which fails the run once mkfs succeeded).
    Mkdisk(Option<Fs>),
}

/// How the init crashes on purpose ([`key::CRASH`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Crash {
    Panic,
    Segv,
}

impl Crash {
    fn name(self) -> &'static str {
        match self {
            Crash::Panic => "panic",
            Crash::Segv => "segv",
        }
    }
}

/// The data disks' access: up to [`disk::MAX`], each read-write or
/// read-only, in device order.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Disks {
    len: u8,
    /// Bit N: disk N is read-write.
    writable: u16,
}

/// [`Disks::push`] past [`disk::MAX`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TooManyDisks;

impl Disks {
    /// Adds the next disk; an error when [`disk::MAX`] are there already.
    pub fn push(&mut self, read_only: bool) -> Result<(), TooManyDisks> {
        let index = usize::from(self.len);
        if index == disk::MAX {
            return Err(TooManyDisks);
        }
        self.writable |= u16::from(!read_only) << index;
        self.len += 1;
        Ok(())
    }

    pub fn len(self) -> usize {
        usize::from(self.len)
    }

    pub fn is_empty(self) -> bool {
        self.len == 0
    }

    /// Each disk's `read_only`, in device order.
    pub fn iter(self) -> impl Iterator<Item = bool> {
        (0..self.len()).map(move |i| self.writable & (1 << i) == 0)
    }

    /// [`key::DISKS`]' value: one item per disk; anything but `rw` is
    /// read-only (the safe side), and items past [`disk::MAX`] are dropped
    /// (`true` when there were some).
    fn parse(value: &[u8]) -> (Disks, bool) {
        let mut disks = Disks::default();
        for item in value.split(|&b| b == b',') {
            if disks.push(item != disk::RW.as_bytes()).is_err() {
                return (disks, true);
            }
        }
        (disks, false)
    }
}

/// What the line held that the init does not know, beside [`BootParams`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Unknown<'a> {
    /// [`key::MODE`]'s value when it names no mode (empty for a bare key):
    /// the init warns, and runs test mode.
    pub mode: Option<&'a [u8]>,
    /// [`key::CRASH`] had a value but `panic` or `segv`: ignored.
    pub crash: bool,
    /// [`key::DISKS`] listed more than [`disk::MAX`] disks: the first are kept.
    pub disks: bool,
}

impl<'a> BootParams<'a> {
    /// The init's keys in `line` (up to a bare `--`, as the kernel reads its
    /// own), and what of them the init does not know.
    pub fn parse(line: &Cmdline<'a>) -> (BootParams<'a>, Unknown<'a>) {
        // One look per key (the same `get` for all): a single pass with a
        // slot per key measured some 700 bytes more in the init, to spare
        // scans of a line of a few hundred bytes.
        let last = |key: &str| line.get(key.as_bytes());
        let mut unknown = Unknown::default();
        let mode = match last(key::MODE) {
            None => Mode::Test,
            Some(Some(v)) if v == mode::SHELL.as_bytes() => Mode::Shell,
            Some(Some(v)) if v == mode::EXEC.as_bytes() => Mode::Exec,
            Some(Some(v)) if v == mode::MKDISK.as_bytes() => {
                Mode::Mkdisk(last(key::FS).flatten().and_then(Fs::from_name))
            }
            Some(v) => {
                unknown.mode = Some(v.unwrap_or_default());
                Mode::Test
            }
        };
        let crash = match last(key::CRASH) {
            Some(Some(b"panic")) => Some(Crash::Panic),
            Some(Some(b"segv")) => Some(Crash::Segv),
            Some(Some(_)) => {
                unknown.crash = true;
                None
            }
            _ => None,
        };
        let (disks, extra) = last(key::DISKS)
            .flatten()
            .map_or((Disks::default(), false), Disks::parse);
        unknown.disks = extra;
        let params = BootParams {
            ack: last(key::ACK).is_some(),
            stdin: last(key::STDIN).is_some(),
            stats: last(key::STATS).is_some(),
            net: last(key::NET).is_some(),
            pob: last(key::PAGE_OFFSET_BASE)
                .flatten()
                .and_then(parse_hex_u64),
            attach_timeout_s: last(key::ATTACH_TIMEOUT).flatten().and_then(parse_dec_u64),
            trace_kb: last(key::TRACE_KB).flatten().and_then(parse_dec_u64),
            mode,
            disks,
            crash,
            hostname: last(key::HOSTNAME)
                .flatten()
                .and_then(|v| Hostname::new(v).ok()),
            handover: last(key::HANDOVER).is_some(),
        };
        (params, unknown)
    }

    /// Writes the parameters into `out`, each after one space, so they go
    /// after whatever `out` holds: the keys the init needs and no others,
    /// which [`BootParams::parse`] reads back as they are.
    pub fn write_to(&self, out: &mut impl Write) -> fmt::Result {
        let flags = [
            (self.ack, key::ACK),
            (self.stdin, key::STDIN),
            (self.stats, key::STATS),
            (self.net, key::NET),
            (self.handover, key::HANDOVER),
        ];
        for (_, key) in flags.iter().filter(|(on, _)| *on) {
            write!(out, " {key}")?;
        }
        if let Some(offset) = self.pob {
            write!(out, " {}={offset:x}", key::PAGE_OFFSET_BASE)?;
        }
        if let Some(secs) = self.attach_timeout_s {
            write!(out, " {}={secs}", key::ATTACH_TIMEOUT)?;
        }
        if let Some(kb) = self.trace_kb {
            write!(out, " {}={kb}", key::TRACE_KB)?;
        }
        let name = match self.mode {
            Mode::Test => None,
            Mode::Exec => Some(mode::EXEC),
            Mode::Shell => Some(mode::SHELL),
            Mode::Mkdisk(_) => Some(mode::MKDISK),
        };
        if let Some(name) = name {
            write!(out, " {}={name}", key::MODE)?;
        }
        for (index, read_only) in self.disks.iter().enumerate() {
            match index {
                0 => write!(out, " {}=", key::DISKS)?,
                _ => out.write_char(',')?,
            }
            out.write_str(if read_only { disk::RO } else { disk::RW })?;
        }
        if let Mode::Mkdisk(Some(fs)) = self.mode {
            write!(out, " {}={}", key::FS, fs.mount_type())?;
        }
        if let Some(crash) = self.crash {
            write!(out, " {}={}", key::CRASH, crash.name())?;
        }
        if let Some(name) = &self.hostname {
            write!(out, " {}={}", key::HOSTNAME, name.as_str())?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::string::String;

    fn parsed(line: &str) -> (BootParams<'_>, Unknown<'_>) {
        BootParams::parse(&Cmdline::new(line.as_bytes()))
    }

    fn text(params: &BootParams) -> String {
        let mut out = String::new();
        params.write_to(&mut out).unwrap();
        out
    }

    #[test]
    fn every_key_in_the_hosts_order() {
        let mut disks = Disks::default();
        disks.push(false).unwrap();
        disks.push(true).unwrap();
        let params = BootParams {
            ack: true,
            stdin: true,
            stats: true,
            net: true,
            pob: Some(0x1a1c3d8),
            attach_timeout_s: Some(30),
            trace_kb: Some(1024),
            mode: Mode::Shell,
            disks,
            crash: Some(Crash::Segv),
            hostname: Some(Hostname::new(b"vm-1.test").unwrap()),
            handover: true,
        };
        assert_eq!(
            text(&params),
            " guestinit.ack guestinit.stdin guestinit.stats guestinit.net guestinit.handover guestinit.pob=1a1c3d8 \
             guestinit.attach_timeout=30 guestinit.trace_kb=1024 guestinit.mode=shell \
             guestinit.disks=rw,ro \
             guestinit.crash=segv guestinit.hostname=vm-1.test"
        );
        assert_eq!(parsed(&text(&params)), (params, Unknown::default()));
        let mkdisk = BootParams {
            mode: Mode::Mkdisk(Some(Fs::Btrfs)),
            ..BootParams::default()
        };
        assert_eq!(text(&mkdisk), " guestinit.mode=mkdisk guestinit.fs=btrfs");
        assert_eq!(text(&BootParams::default()), "");
    }

    #[test]
    fn the_last_occurrence_wins_and_flags_take_any_value() {
        let (params, unknown) = parsed(
            "guestinit.mode=exec guestinit.pob=10 quiet guestinit.mode=shell \
             guestinit.pob=zz guestinit.ack=0 guestinit.attach_timeout=5",
        );
        assert_eq!(params.mode, Mode::Shell);
        assert_eq!(params.pob, None, "the last is not hex");
        assert!(params.ack);
        assert_eq!(params.attach_timeout_s, Some(5));
        assert_eq!(unknown, Unknown::default());
    }

    #[test]
    fn what_the_init_does_not_know_is_returned_beside() {
        let (params, unknown) = parsed("guestinit.mode=test guestinit.crash=oops");
        assert_eq!(params.mode, Mode::Test);
        assert_eq!(unknown.mode, Some(&b"test"[..]));
        assert!(unknown.crash && params.crash.is_none());
        assert_eq!(parsed("guestinit.mode").1.mode, Some(&b""[..]));
        // A bare crash key is no request and no warning, as before.
        assert_eq!(
            parsed("guestinit.crash"),
            (BootParams::default(), Unknown::default())
        );
        let (params, _) = parsed("guestinit.mode=mkdisk guestinit.fs=ntfs");
        assert_eq!(params.mode, Mode::Mkdisk(None));
        let (params, _) = parsed("guestinit.fs=ext2 guestinit.mode=mkdisk");
        assert_eq!(params.mode, Mode::Mkdisk(Some(Fs::Ext)));
    }

    #[test]
    fn a_hostname_that_is_no_hostname_leaves_the_inits_default() {
        for line in [
            "guestinit.hostname",
            "guestinit.hostname=",
            "guestinit.hostname=a_b",
        ] {
            assert_eq!(
                parsed(line),
                (BootParams::default(), Unknown::default()),
                "{line}"
            );
        }
        let (params, _) = parsed("guestinit.hostname=a guestinit.hostname=b-2");
        assert_eq!(params.hostname, Some(Hostname::new(b"b-2").unwrap()));
    }

    #[test]
    fn disks_past_the_limit_are_dropped_and_anything_but_rw_is_read_only() {
        let (params, unknown) = parsed("guestinit.disks=rw,RW,,ro,rw");
        let access: std::vec::Vec<bool> = params.disks.iter().collect();
        assert_eq!(access, [false, true, true, true, false]);
        assert!(!unknown.disks);
        // An empty value is one disk (read-only); a bare key is none.
        assert_eq!(parsed("guestinit.disks=").0.disks.len(), 1);
        assert!(parsed("guestinit.disks").0.disks.is_empty());
        let many = std::format!("guestinit.disks={}", ["rw"; 17].join(","));
        let (params, unknown) = parsed(&many);
        assert_eq!(params.disks.len(), disk::MAX);
        assert!(unknown.disks && params.disks.iter().all(|ro| !ro));
        let mut full = params.disks;
        assert_eq!(full.push(false), Err(TooManyDisks));
    }

    #[test]
    fn keys_after_a_bare_double_dash_are_the_inits_arguments() {
        let (params, _) = parsed("guestinit.ack -- guestinit.mode=shell");
        assert!(params.ack);
        assert_eq!(params.mode, Mode::Test);
    }
}
