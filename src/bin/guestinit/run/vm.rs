//! The QEMU process: started in its own process group (a terminal's Ctrl-C
//! reaches the host alone, which stops the guest in order) and bound to the
//! host's life (PR_SET_PDEATHSIG), so a killed host leaves no VM behind.

use std::ffi::OsString;
use std::io;
use std::os::fd::{OwnedFd, RawFd};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::Instant;

use rustix::fd::BorrowedFd;
use rustix::io::{fcntl_setfd, FdFlags};
use rustix::process::{getppid, set_parent_process_death_signal, Pid, Signal};

use crate::error::{Error, Result};

use super::qemu::QEMU;

/// A running QEMU. Dropping it kills the VM if it still runs.
pub struct Vm {
    child: Child,
    pub spawned: Instant,
}

/// In the forked child, before exec: die with the host, and keep `fds`
/// open across exec. Only async-signal-safe system calls.
#[allow(unsafe_code, reason = "borrow_raw of the fds QEMU keeps, in the child")]
fn prepare_child(parent: Option<Pid>, fds: &[RawFd]) -> io::Result<()> {
    let errno = |e: rustix::io::Errno| io::Error::from_raw_os_error(e.raw_os_error());
    crate::dispositions::reset();
    set_parent_process_death_signal(Some(Signal::KILL)).map_err(errno)?;
    // The host may have died before the line above: then nobody would kill us.
    if getppid() != parent {
        return Err(io::ErrorKind::BrokenPipe.into());
    }
    for &fd in fds {
        // SAFETY: `fd` is one of the descriptors the caller of `spawn` keeps
        // open until QEMU has been spawned, so it is valid in the forked child.
        let fd = unsafe { BorrowedFd::borrow_raw(fd) };
        fcntl_setfd(fd, FdFlags::empty()).map_err(errno)?;
    }
    Ok(())
}

impl Vm {
    /// Starts QEMU with `args`; it inherits `fds` (which must stay open
    /// until this returns) and writes its stderr to `stderr`.
    #[allow(unsafe_code, reason = "pre_exec; prepare_child is async-signal-safe")]
    pub fn spawn(args: &[OsString], fds: &[RawFd], stderr: OwnedFd) -> Result<Vm> {
        let parent = Some(rustix::process::getpid());
        let fds = fds.to_vec();
        let mut command = Command::new(QEMU);
        command
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .process_group(0);
        // SAFETY: `prepare_child` makes only async-signal-safe system calls
        // (prctl, getppid, fcntl) and allocates nothing, as a pre_exec hook must.
        unsafe {
            command.pre_exec(move || prepare_child(parent, &fds));
        }
        let child = command.spawn().map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => Error::QemuMissing,
            _ => Error::QemuSpawn(e),
        })?;
        Ok(Vm {
            child,
            spawned: Instant::now(),
        })
    }

    /// QEMU's status once it has exited.
    pub fn try_wait(&mut self) -> Result<Option<ExitStatus>> {
        self.child.try_wait().map_err(|source| Error::VmSetup {
            what: "waiting for QEMU".into(),
            source,
        })
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
