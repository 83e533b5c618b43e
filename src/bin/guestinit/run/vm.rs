//! The QEMU process: started in its own process group (a terminal's Ctrl-C
//! reaches the host alone, which stops the guest in order) and bound to the
//! host's life (PR_SET_PDEATHSIG, `child`), so a killed host leaves no VM
//! behind; and the share daemons its devices use, which end after it.

use std::ffi::OsString;
use std::io;
use std::os::fd::{OwnedFd, RawFd};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::Instant;

use crate::error::{Error, Result};

use super::child;
use super::qemu::QEMU;
use super::virtiofsd::Daemons;

/// A running QEMU, and the daemons its devices use. Dropping it kills the
/// VM if it still runs, then the daemons (a field drops after `drop`).
pub struct Vm {
    child: Child,
    pub spawned: Instant,
    daemons: Daemons,
}

impl Vm {
    /// Starts QEMU with `args`; it inherits `fds` (which must stay open
    /// until this returns) and writes its stderr to `stderr`.
    pub fn spawn(
        args: &[OsString],
        fds: &[RawFd],
        stderr: OwnedFd,
        daemons: Daemons,
    ) -> Result<Vm> {
        let mut command = Command::new(QEMU);
        command
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr);
        child::bind_to_host(&mut command, fds);
        let child = command.spawn().map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => Error::QemuMissing,
            _ => Error::QemuSpawn(e),
        })?;
        Ok(Vm {
            child,
            spawned: Instant::now(),
            daemons,
        })
    }

    /// QEMU's status once it has exited.
    /// A descriptor that polls readable once QEMU has exited (a pidfd), so
    /// the host learns of the exit at once rather than at its next tick;
    /// `None` where the kernel has no pidfds (before 5.3).
    pub fn exit_fd(&self) -> Option<rustix::fd::OwnedFd> {
        let pid = rustix::process::Pid::from_raw(self.child.id() as i32)?;
        rustix::process::pidfd_open(pid, rustix::process::PidfdFlags::empty()).ok()
    }

    pub fn try_wait(&mut self) -> Result<Option<ExitStatus>> {
        self.child.try_wait().map_err(|source| Error::VmSetup {
            what: "waiting for QEMU".into(),
            source,
        })
    }

    /// Once QEMU has exited: its daemons end now (killed and reaped).
    pub fn end_daemons(&mut self) {
        self.daemons.end();
    }

    /// Ends QEMU now (SIGKILL) and reaps it.
    pub fn kill(&mut self) -> Result<ExitStatus> {
        if let Some(status) = self.try_wait()? {
            return Ok(status);
        }
        // It may exit between the check and the kill: wait() settles it.
        let _ = self.child.kill();
        self.child.wait().map_err(|source| Error::VmSetup {
            what: "waiting for QEMU".into(),
            source,
        })
    }
}

impl Drop for Vm {
    fn drop(&mut self) {
        // Best effort: the VM is abandoned either way.
        let _ = self.kill();
    }
}
