//! One virtiofsd per `--share`, each serving its HOST_DIR to one QEMU
//! `vhost-user-fs-pci` device. Its socket is made here, before the daemon
//! starts: bound in a 0700 scratch directory, connected at once (QEMU gets
//! that end as `fd=N`, like every other link), then unlinked, and its
//! listening end handed to the daemon (`--fd`). So QEMU never finds a
//! socket missing or not yet listening (the startup hang of virtme-ng
//! #418), and no socket path exists while the VM runs. QEMU still starts
//! only once each daemon says it is ready (its sandbox, seccomp filter and
//! filesystem set up), within a bound, so a daemon that fails to start is
//! an error with its own words. Each daemon dies with the host
//! (`child::bind_to_host`) and is killed and reaped when QEMU has gone.

use std::fs::File;
use std::io::Read;
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStderr, Command, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::scratch::ScratchDir;
use crate::share::{self, Share};

use super::child;

/// How long the daemons have, together, to get ready (they take
/// milliseconds; the bound is for a host under load).
const READY_WAIT: Duration = Duration::from_secs(10);

/// The line virtiofsd logs (at `info`) once it is set up and about to
/// accept its one connection: the same since the C virtiofsd.
const READY_LINE: &[u8] = b"Waiting for vhost-user socket connection";

/// The daemon's words kept for an error: the start of its log.
const LOG_KEPT: usize = 16 << 10;

/// QEMU's end of a share's socket, and the tag its device carries.
pub struct Device {
    pub socket: UnixStream,
    pub tag: String,
}

impl Device {
    pub fn fd(&self) -> RawFd {
        self.socket.as_raw_fd()
    }

    /// The device QEMU makes for it.
    pub fn qemu(&self) -> super::qemu::FsDevice {
        super::qemu::FsDevice {
            fd: self.fd(),
            tag: self.tag.clone(),
        }
    }
}

/// The running daemons; dropping them kills and reaps them.
#[derive(Default)]
pub struct Daemons {
    children: Vec<Child>,
}

impl Daemons {
    /// Kills and reaps every daemon (one that exited is only reaped).
    pub fn end(&mut self) {
        for mut child in self.children.drain(..) {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Daemons {
    fn drop(&mut self) {
        self.end();
    }
}

/// Starts `binary` for each share and waits until all are ready: the
/// daemons, and QEMU's ends of their sockets in share order.
pub fn start(binary: &Path, shares: &[Share]) -> Result<(Daemons, Vec<Device>)> {
    let setup = |what: &str| {
        let what = what.to_owned();
        move |source| Error::VmSetup { what, source }
    };
    let mut daemons = Daemons::default();
    let mut devices = Vec::new();
    let mut logs = Vec::new();
    if shares.is_empty() {
        return Ok((daemons, devices));
    }
    let scratch = ScratchDir::new("share").map_err(setup("making the shares' directory"))?;
    let dir = File::open(scratch.path()).map_err(setup("opening the shares' directory"))?;
    for (index, share) in shares.iter().enumerate() {
        let (listener, socket) = socket(&dir, index).map_err(setup("making a share's socket"))?;
        let mut child = spawn(binary, share, &listener).map_err(|e| Error::Virtiofsd {
            share: share.host_dir.clone(),
            why: format!("({}) could not start: {e}", binary.display()),
            stderr: String::new(),
        })?;
        logs.push(child.stderr.take().map(log));
        daemons.children.push(child);
        devices.push(Device {
            socket,
            tag: share::tag(index),
        });
        // The daemon holds the listening end now; ours would keep a
        // socket alive that nobody accepts on, should it die.
        drop(listener);
    }
    drop(scratch);
    let deadline = Instant::now() + READY_WAIT;
    for ((child, log), share) in daemons.children.iter_mut().zip(logs).zip(shares) {
        let mut text = Vec::new();
        let waited = match log {
            Some(log) => wait_ready(child, &log, &mut text, deadline),
            None => Err("has no stderr to say it is ready on".into()),
        };
        waited.map_err(|why| Error::Virtiofsd {
            share: share.host_dir.clone(),
            why,
            stderr: String::from_utf8_lossy(&text).into_owned(),
        })?;
    }
    Ok((daemons, devices))
}

/// Share `index`'s socket, listening, and QEMU's end connected to it; its
/// name gone again. Bound through the directory's descriptor, so the path
/// is short however long TMPDIR is (a socket path has 108 bytes).
fn socket(dir: &File, index: usize) -> std::io::Result<(UnixListener, UnixStream)> {
    let path = PathBuf::from(format!("/proc/self/fd/{}/fs{index}", dir.as_raw_fd()));
    let listener = UnixListener::bind(&path)?;
    let connected = UnixStream::connect(&path);
    let removed = std::fs::remove_file(&path);
    let socket = connected?;
    removed?;
    Ok((listener, socket))
}

/// virtiofsd for `share` on `listener`: the sandbox a daemon of this
/// user can enter (chroot into HOST_DIR as root; else its default, user,
/// mount, PID and network namespaces), the default cache (attributes
/// trusted for a second, so the host's own changes show), read-only for
/// `,ro`, and its log at `info` (the ready line) on a pipe.
fn spawn(binary: &Path, share: &Share, listener: &UnixListener) -> std::io::Result<Child> {
    let fd = listener.as_raw_fd();
    let sandbox = match rustix::process::geteuid().is_root() {
        true => "chroot",
        false => "namespace",
    };
    let mut command = Command::new(binary);
    command
        .arg("--fd")
        .arg(fd.to_string())
        .arg("--shared-dir")
        .arg(&share.host_dir)
        .args([
            "--sandbox",
            sandbox,
            "--cache",
            "auto",
            "--log-level",
            "info",
        ])
        .args(share.read_only.then_some("--readonly"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    child::bind_to_host(&mut command, &[fd]);
    command.spawn()
}

/// A thread that reads the daemon's stderr to its end: chunks go to the
/// receiver while one listens, then are dropped, so the daemon never
/// blocks on a full pipe.
fn log(mut stderr: ChildStderr) -> Receiver<Vec<u8>> {
    let (tx, rx) = mpsc::channel();
    let reader = move || {
        let mut buf = [0u8; 4096];
        while let Ok(n @ 1..) = stderr.read(&mut buf) {
            let _ = tx.send(buf[..n].to_vec());
        }
    };
    let spawned = std::thread::Builder::new()
        .name("virtiofsd-log".into())
        .stack_size(64 << 10)
        .spawn(reader);
    // No thread: the receiver disconnects and the wait says so.
    drop(spawned);
    rx
}

/// Waits until the daemon's log says it is ready, it dies, or `deadline`;
/// its words so far in `text`.
fn wait_ready(
    child: &mut Child,
    log: &Receiver<Vec<u8>>,
    text: &mut Vec<u8>,
    deadline: Instant,
) -> std::result::Result<(), String> {
    while !ready(text) {
        let left = deadline.saturating_duration_since(Instant::now());
        match log.recv_timeout(left) {
            Ok(chunk) => {
                let room = LOG_KEPT.saturating_sub(text.len());
                text.extend_from_slice(&chunk[..chunk.len().min(room)]);
            }
            Err(RecvTimeoutError::Timeout) => {
                return Err(format!(
                    "did not say it was ready within {} s",
                    READY_WAIT.as_secs()
                ))
            }
            Err(RecvTimeoutError::Disconnected) => {
                // Its stderr closed: it has exited, or is about to.
                let status = child.wait().map(|s| s.to_string());
                return Err(format!(
                    "ended before it was ready ({})",
                    status.unwrap_or_else(|e| e.to_string())
                ));
            }
        }
    }
    Ok(())
}

/// Whether the daemon's log so far says it is ready.
fn ready(text: &[u8]) -> bool {
    text.windows(READY_LINE.len()).any(|w| w == READY_LINE)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn the_ready_line_is_what_virtiofsd_logs_before_it_accepts() {
        let log = b"[2026-12-02T02:52:27Z WARN  virtiofsd::limits] Failure when trying to set the limit\n\
            [2026-12-02T02:52:27Z INFO  virtiofsd] Waiting for vhost-user socket connection...\n";
        assert!(ready(log));
        assert!(!ready(&log[..90]));
        assert!(!ready(b""));
    }

    /// A stand-in daemon: a shell script that logs, then behaves as told.
    fn fake(dir: &Path, body: &str) -> PathBuf {
        let path = dir.join("virtiofsd");
        std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        path
    }

    #[test]
    fn a_daemon_that_dies_first_is_an_error_with_its_words_and_a_ready_one_is_killed_at_the_end() {
        let dir = ScratchDir::new("virtiofsd-test").unwrap();
        let shares = [Share::parse(dir.path().to_str().unwrap()).unwrap()];
        let dies = fake(
            dir.path(),
            "echo 'Error entering sandbox: EPERM' >&2; exit 1",
        );
        let err = start(&dies, &shares).err().unwrap();
        assert_eq!(err.exit_code(), 250);
        assert!(
            err.to_string().contains("ended before it was ready"),
            "{err}"
        );
        assert!(
            err.details()[0].1.contains("Error entering sandbox: EPERM"),
            "{:?}",
            err.details()
        );

        let pid_file = dir.path().join("pid");
        let serves = fake(
            dir.path(),
            &format!(
                "echo $$ > {}; echo 'INFO Waiting for vhost-user socket connection...' >&2; \
                 exec sleep 60",
                pid_file.display()
            ),
        );
        let (mut daemons, devices) = start(&serves, &shares).unwrap();
        assert_eq!(devices[0].tag, "share0");
        let pid = std::fs::read_to_string(&pid_file).unwrap();
        let proc_dir = PathBuf::from(format!("/proc/{}", pid.trim()));
        assert!(proc_dir.exists());
        daemons.end();
        assert!(!proc_dir.exists(), "the daemon was killed and reaped");
    }

    #[test]
    fn a_share_socket_listens_under_a_directory_longer_than_a_socket_path_and_leaves_no_name() {
        let scratch = ScratchDir::new("virtiofsd-test").unwrap();
        let deep = scratch.path().join("d".repeat(100)).join("e".repeat(100));
        std::fs::create_dir_all(&deep).unwrap();
        assert!(deep.as_os_str().len() > 108);
        let dir = File::open(&deep).unwrap();
        let (listener, mut socket) = socket(&dir, 3).unwrap();
        assert_eq!(std::fs::read_dir(&deep).unwrap().count(), 0, "no name left");
        let (mut accepted, _) = listener.accept().unwrap();
        std::io::Write::write_all(&mut socket, b"hi").unwrap();
        let mut got = [0u8; 2];
        accepted.read_exact(&mut got).unwrap();
        assert_eq!(&got, b"hi");
    }

    #[test]
    fn a_daemon_that_never_says_it_is_ready_is_refused_within_the_bound() {
        let mut child = Command::new("sleep").arg("60").spawn().unwrap();
        let (_tx, rx) = mpsc::channel();
        let mut text = Vec::new();
        let soon = Instant::now() + Duration::from_millis(50);
        let err = wait_ready(&mut child, &rx, &mut text, soon).unwrap_err();
        assert!(err.contains("did not say it was ready"), "{err}");
        let _ = child.kill();
        let _ = child.wait();
    }
}
