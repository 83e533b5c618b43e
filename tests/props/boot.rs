//! Properties of the kernel command line's contract (`proto::boot`), shared
//! by the property tests (tests/parser_props.rs) and the fuzz target
//! `boot_params`. Each panics when its property fails.

use guestinit::parse::cmdline::Cmdline;
use guestinit::parse::superblock::Fs;
use guestinit::proto::boot::{BootParams, Crash, Disks, Mode, Unknown};
use guestinit::proto::net::Hostname;
use guestinit::proto::{disk, key};

/// Every key the contract reads.
pub const KEYS: [&str; 12] = [
    key::ACK,
    key::STDIN,
    key::STATS,
    key::NET,
    key::PAGE_OFFSET_BASE,
    key::ATTACH_TIMEOUT,
    key::TRACE_KB,
    key::MODE,
    key::FS,
    key::DISKS,
    key::CRASH,
    key::HOSTNAME,
];

/// The text `params` writes.
pub fn text(params: &BootParams) -> String {
    let mut out = String::new();
    params.write_to(&mut out).expect("a String takes any text");
    out
}

fn parse(line: &[u8]) -> (BootParams<'_>, Unknown<'_>) {
    BootParams::parse(&Cmdline::new(line))
}

/// Any parameters, written among unrelated kernel parameters (`before` and
/// `after`, whole parameters whose keys are not the init's), parse back to
/// themselves, with nothing unknown.
pub fn round_trip(params: &BootParams, before: &[String], after: &[String]) {
    let line = [before.join(" "), text(params), " ".into(), after.join(" ")].concat();
    assert_eq!(
        parse(line.as_bytes()),
        (*params, Unknown::default()),
        "{line:?}"
    );
}

/// The host's keys, then a user's `--append` that sets some of them again:
/// the user's values win, and a flag either sets stays set (a later
/// parameter cannot unset a flag).
pub fn later_wins(host: &BootParams, user: &BootParams) {
    let line = [text(host), text(user)].concat();
    let fs_of = |mode: Mode| match mode {
        Mode::Mkdisk(fs) => fs,
        _ => None,
    };
    let mode = match (user.mode, host.mode) {
        (Mode::Test, host) => host,
        (user, _) => user,
    };
    let mode = match mode {
        // guestinit.fs is a key of its own: the last one written counts.
        Mode::Mkdisk(_) => Mode::Mkdisk(fs_of(user.mode).or(fs_of(host.mode))),
        mode => mode,
    };
    let want = BootParams {
        ack: host.ack || user.ack,
        stdin: host.stdin || user.stdin,
        stats: host.stats || user.stats,
        net: host.net || user.net,
        pob: user.pob.or(host.pob),
        attach_timeout_s: user.attach_timeout_s.or(host.attach_timeout_s),
        trace_kb: user.trace_kb.or(host.trace_kb),
        mode,
        disks: if user.disks.is_empty() {
            host.disks
        } else {
            user.disks
        },
        crash: user.crash.or(host.crash),
        hostname: user.hostname.or(host.hostname),
        handover: host.handover || user.handover,
    };
    assert_eq!(
        parse(line.as_bytes()),
        (want, Unknown::default()),
        "{line:?}"
    );
}

/// The digits of `value` in `radix`, as the protocol reads a number: digits
/// only, within u64.
fn number(value: Option<&[u8]>, radix: u32) -> Option<u64> {
    let text = std::str::from_utf8(value?).ok()?;
    let digits = !text.is_empty() && text.chars().all(|c| c.is_digit(radix));
    digits.then(|| u64::from_str_radix(text, radix).ok())?
}

/// docs/PROTOCOL.md's table of keys, read from the parameters the kernel
/// splits (`Cmdline::iter`, itself checked against the kernel's own
/// splitting): the model the parse must agree with.
fn model(line: &[u8]) -> (BootParams<'_>, Unknown<'_>) {
    let params: Vec<_> = Cmdline::new(line).iter().collect();
    let last = |key: &str| {
        params
            .iter()
            .rev()
            .find(|p| p.key == key.as_bytes())
            .map(|p| p.value)
    };
    let mut unknown = Unknown::default();
    let fs = match last(key::FS).flatten() {
        Some(b"ext2" | b"ext3" | b"ext4") => Some(Fs::Ext),
        Some(b"btrfs") => Some(Fs::Btrfs),
        Some(b"xfs") => Some(Fs::Xfs),
        Some(b"vfat") => Some(Fs::Vfat),
        _ => None,
    };
    let mode = match last(key::MODE) {
        None => Mode::Test,
        Some(Some(b"shell")) => Mode::Shell,
        Some(Some(b"exec")) => Mode::Exec,
        Some(Some(b"mkdisk")) => Mode::Mkdisk(fs),
        Some(other) => {
            unknown.mode = Some(other.unwrap_or(b""));
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
    let mut disks = Disks::default();
    if let Some(list) = last(key::DISKS).flatten() {
        let items: Vec<&[u8]> = list.split(|&b| b == b',').collect();
        unknown.disks = items.len() > disk::MAX;
        for item in items.into_iter().take(disk::MAX) {
            disks.push(item != b"rw").expect("at most MAX");
        }
    }
    // 1 to 64 bytes of letters, digits, '-' and '.'; else the init's default.
    let hostname = last(key::HOSTNAME).flatten().filter(|name| {
        (1..=64).contains(&name.len())
            && name
                .iter()
                .all(|&b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
    });
    let params = BootParams {
        ack: last(key::ACK).is_some(),
        stdin: last(key::STDIN).is_some(),
        stats: last(key::STATS).is_some(),
        net: last(key::NET).is_some(),
        pob: number(last(key::PAGE_OFFSET_BASE).flatten(), 16),
        attach_timeout_s: number(last(key::ATTACH_TIMEOUT).flatten(), 10),
        trace_kb: number(last(key::TRACE_KB).flatten(), 10),
        mode,
        disks,
        crash,
        hostname: hostname.map(|name| Hostname::new(name).expect("checked above")),
        handover: last(key::HANDOVER).is_some(),
    };
    (params, unknown)
}

/// Target `boot_params`: the init's parse of any command line (untrusted:
/// a user's `--append` is in it) agrees with the protocol's table, and what
/// it parses writes a line that parses to the same, with nothing unknown.
pub fn parse_any(line: &[u8]) {
    let (params, unknown) = parse(line);
    assert_eq!((params, unknown), model(line));
    let written = text(&params);
    assert_eq!(
        parse(written.as_bytes()),
        (params, Unknown::default()),
        "{written:?}"
    );
}

/// Runs the property of fuzz target `target` on its raw input; `false` if
/// no such target.
pub fn replay(target: &str, data: &[u8]) -> bool {
    match target {
        "boot_params" => parse_any(data),
        _ => return false,
    }
    true
}
