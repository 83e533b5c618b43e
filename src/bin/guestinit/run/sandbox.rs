//! QEMU's own seccomp filter, `-sandbox`. A test VM runs code that may not
//! be trusted (a pull request's), and QEMU is the wall around it: under
//! the filter, a guest that took QEMU over still cannot exec or fork,
//! change its uid, mount, reboot, load a kernel or raise its scheduling.
//! QEMU has the option only when built with libseccomp and the kernel has
//! SECCOMP_FILTER_FLAG_TSYNC, and loading it may still fail, so whether
//! it works is learned by starting this QEMU once under it (`-machine
//! none`, told to quit over QMP at once), then kept per QEMU binary and
//! kernel release in the cache: that start costs tens of milliseconds.

use std::ffi::OsStr;
use std::fs;
use std::io::{Read, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::cli::Sandbox;
use crate::error::{Error, Result};
use crate::locate;

use super::diag::Diagnostics;
use super::qemu::QEMU;
use crate::cache::{self, Entry};

/// `-sandbox`'s value: the filter, and every set of calls it can deny.
pub const SETTINGS: &str =
    "on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny";

/// How long the probe's QEMU may take to start and quit.
const PROBE_WAIT: Duration = Duration::from_secs(10);

/// QMP's handshake, then quit: QEMU ends at once once the filter loaded.
const QUIT: &[u8] = b"{\"execute\":\"qmp_capabilities\"}\n{\"execute\":\"quit\"}\n";

/// What starting QEMU under the filter showed.
#[derive(Debug, PartialEq, Eq)]
pub enum Probe {
    /// It started under the filter and quit.
    Works,
    /// It refused or failed: its first stderr line, or its status.
    Fails(String),
    /// No QEMU on PATH (the run's own start says so).
    Missing,
    /// No answer: it could not be started, was killed by a signal, or
    /// took longer than the wait. Never cached.
    Unknown(String),
}

/// Whether this run's QEMU gets `-sandbox` ([`SETTINGS`]).
pub fn decide(mode: Sandbox, diag: &Diagnostics) -> Result<bool> {
    if mode == Sandbox::Off {
        return Ok(false);
    }
    match (probe_cached(), mode) {
        (Probe::Works, _) => Ok(true),
        (Probe::Missing, Sandbox::On) => Err(Error::QemuMissing),
        (Probe::Fails(why) | Probe::Unknown(why), Sandbox::On) => Err(Error::NoSandbox { why }),
        (Probe::Unknown(why), _) => {
            diag.warn(&format!(
                "cannot tell whether QEMU can run under its seccomp filter ({why}); running it without"
            ));
            Ok(false)
        }
        (Probe::Fails(_) | Probe::Missing, _) => Ok(false),
    }
}

/// The probe of the QEMU on PATH, from the cache when an earlier run made
/// it with the same binary and kernel.
fn probe_cached() -> Probe {
    let Some(binary) = locate::on_path(OsStr::new(QEMU)) else {
        return Probe::Missing;
    };
    let entry = key(&binary).and_then(|key| Entry::new("sandbox", &key));
    if let Some(known) = entry.as_ref().and_then(|e| parse(&e.load()?)) {
        return known;
    }
    let found = probe(binary.as_os_str(), PROBE_WAIT);
    if let (Some(entry), Some(text)) = (&entry, record(&found)) {
        entry.store(&text);
    }
    found
}

/// What the probe's answer depends on: the binary (its libseccomp is
/// linked in at its build), the kernel, and the settings asked for.
fn key(binary: &Path) -> Option<Vec<u8>> {
    let mut key = cache::identity(&fs::metadata(binary).ok()?);
    key.push(0);
    key.extend(fs::read("/proc/sys/kernel/osrelease").unwrap_or_default());
    key.push(0);
    key.extend(SETTINGS.as_bytes());
    Some(key)
}

/// A cache entry's text for an answer worth keeping.
fn record(probe: &Probe) -> Option<String> {
    match probe {
        Probe::Works => Some("works\n".into()),
        Probe::Fails(why) => Some(format!("fails {why}\n")),
        Probe::Missing | Probe::Unknown(_) => None,
    }
}

fn parse(text: &str) -> Option<Probe> {
    let line = text.strip_suffix('\n')?;
    match line.split_once(' ') {
        None if line == "works" => Some(Probe::Works),
        Some(("fails", why)) => Some(Probe::Fails(why.into())),
        _ => None,
    }
}

/// Starts `qemu` under the filter with no machine, and asks it to quit.
pub fn probe(qemu: &OsStr, wait: Duration) -> Probe {
    let started = Command::new(qemu)
        .args(["-sandbox", SETTINGS, "-machine", "none", "-nodefaults"])
        .args(["-display", "none", "-qmp", "stdio"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn();
    let mut child = match started {
        Ok(child) => child,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Probe::Missing,
        Err(e) => return Probe::Unknown(format!("cannot start {}: {e}", qemu.to_string_lossy())),
    };
    if let Some(mut stdin) = child.stdin.take() {
        // A QEMU that refused the option has exited: EPIPE, which is fine.
        let _ = stdin.write_all(QUIT);
    }
    let deadline = Instant::now() + wait;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(5)),
            Ok(None) | Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                return Probe::Unknown(format!("no answer in {} s", wait.as_secs_f32()));
            }
        }
    };
    if status.success() {
        return Probe::Works;
    }
    // Killed (a Ctrl-C of the user's reaches it too): says nothing of QEMU.
    if status.code().is_none() {
        return Probe::Unknown(format!("the probe's QEMU ended by {status}"));
    }
    let mut stderr = String::new();
    if let Some(pipe) = child.stderr.take() {
        let _ = pipe.take(4096).read_to_string(&mut stderr);
    }
    let first = stderr.lines().map(str::trim).find(|l| !l.is_empty());
    Probe::Fails(first.map_or_else(|| status.to_string(), str::to_owned))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::run::events::Events;
    use crate::run::spool::Spool;
    use std::os::unix::fs::PermissionsExt;

    /// A stand-in for QEMU: a shell script in a scratch directory.
    fn script(dir: &Path, name: &str, body: &str) -> std::path::PathBuf {
        let path = dir.join(name);
        fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
        path
    }

    #[test]
    fn the_probe_tells_a_working_a_refusing_and_a_silent_qemu_apart() {
        let dir = crate::scratch::ScratchDir::new("sandbox-test").unwrap();
        let works = script(dir.path(), "works", "cat >/dev/null");
        assert_eq!(probe(works.as_os_str(), PROBE_WAIT), Probe::Works);
        let refuses = script(
            dir.path(),
            "refuses",
            "echo 'qemu-system-x86_64: -sandbox on: There is no option group' >&2; exit 1",
        );
        assert_eq!(
            probe(refuses.as_os_str(), PROBE_WAIT),
            Probe::Fails("qemu-system-x86_64: -sandbox on: There is no option group".into())
        );
        let silent = script(dir.path(), "silent", "exec sleep 10");
        let took = Instant::now();
        let found = probe(silent.as_os_str(), Duration::from_millis(200));
        assert!(matches!(found, Probe::Unknown(_)), "{found:?}");
        assert!(
            took.elapsed() < Duration::from_secs(5),
            "killed at the wait"
        );
        let missing = dir.path().join("nowhere");
        assert_eq!(probe(missing.as_os_str(), PROBE_WAIT), Probe::Missing);
    }

    #[test]
    fn only_answers_about_qemu_are_kept() {
        for probe in [Probe::Works, Probe::Fails("no option group".into())] {
            assert_eq!(parse(&record(&probe).unwrap()), Some(probe));
        }
        assert_eq!(record(&Probe::Unknown("killed".into())), None);
        assert_eq!(record(&Probe::Missing), None);
        assert_eq!(parse("garbage"), None);
    }

    #[test]
    fn every_set_of_calls_is_denied() {
        assert_eq!(
            SETTINGS,
            "on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny"
        );
    }

    #[test]
    fn off_is_off_without_a_probe() {
        let diag = Diagnostics::new(Spool::new(std::io::sink()), Events::new(None));
        assert!(!decide(Sandbox::Off, &diag).unwrap());
    }

    #[test]
    fn this_hosts_qemu_answers_the_probe() {
        let Some(qemu) = locate::on_path(OsStr::new(QEMU)) else {
            return crate::testenv::missing("qemu-system-x86_64");
        };
        let took = Instant::now();
        let found = probe(qemu.as_os_str(), PROBE_WAIT);
        eprintln!(
            "{} under -sandbox {SETTINGS}: {found:?} in {:?}",
            qemu.display(),
            took.elapsed()
        );
        assert!(matches!(found, Probe::Works | Probe::Fails(_)), "{found:?}");
    }
}
