//! What every host child that serves the VM (QEMU, each share's virtiofsd)
//! does between fork and exec: die with the host (PR_SET_PDEATHSIG), so a
//! SIGKILLed or crashed host leaves none behind, and keep the descriptors
//! it inherits.

use std::io;
use std::os::fd::RawFd;
use std::os::unix::process::CommandExt;
use std::process::Command;

use rustix::fd::BorrowedFd;
use rustix::io::{fcntl_setfd, FdFlags};
use rustix::process::{getpid, getppid, set_parent_process_death_signal, Pid, Signal};

/// In the forked child, before exec: every signal at its default, SIGKILL
/// when the host dies, and `fds` open across exec. Only async-signal-safe
/// system calls.
#[allow(
    unsafe_code,
    reason = "borrow_raw of the fds the child keeps, in the child"
)]
fn prepare(parent: Option<Pid>, fds: &[RawFd]) -> io::Result<()> {
    let errno = |e: rustix::io::Errno| io::Error::from_raw_os_error(e.raw_os_error());
    crate::dispositions::reset();
    set_parent_process_death_signal(Some(Signal::KILL)).map_err(errno)?;
    // The host may have died before the line above: then nobody would kill us.
    if getppid() != parent {
        return Err(io::ErrorKind::BrokenPipe.into());
    }
    for &fd in fds {
        // SAFETY: `fd` is one of the descriptors the caller of `bind_to_host`
        // keeps open until the child has been spawned, so it is valid in
        // the forked child.
        let fd = unsafe { BorrowedFd::borrow_raw(fd) };
        fcntl_setfd(fd, FdFlags::empty()).map_err(errno)?;
    }
    Ok(())
}

/// Makes `command`'s child die with this process and inherit `fds`
/// (which must stay open until it has been spawned), in a process group
/// of its own: a terminal's Ctrl-C reaches the host alone, which stops
/// the guest in order.
#[allow(unsafe_code, reason = "pre_exec; prepare is async-signal-safe")]
pub fn bind_to_host(command: &mut Command, fds: &[RawFd]) {
    let parent = Some(getpid());
    let fds = fds.to_vec();
    command.process_group(0);
    // SAFETY: `prepare` makes only async-signal-safe system calls
    // (sigaction, prctl, getppid, fcntl) and allocates nothing, as a
    // pre_exec hook must.
    unsafe {
        command.pre_exec(move || prepare(parent, &fds));
    }
}
