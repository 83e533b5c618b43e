//! fork, execve, wait4 and exit_group: what rustix keeps in its private
//! `runtime` module or does not offer (wait4's resource usage).

use super::raw::{check, syscall1, syscall2, syscall4};
use super::{signal, Errno, Result};
use crate::cell::Exclusive;
use crate::fmt::{ErrnoText, Lossy, SliceWriter};
use crate::parse::args::MAX_ARGS;
use crate::wire::msg::WaitStatus;
use core::ffi::CStr;
use core::fmt::Write;
use linux_raw_sys::general::{
    __NR_clone, __NR_execve, __NR_exit_group, __NR_fcntl, __NR_kill, __NR_wait4, rusage, F_GETFD,
};
use rustix::fd::BorrowedFd;

/// Which side of a fork this is.
#[derive(Debug, PartialEq, Eq)]
pub enum Fork {
    Child,
    Parent { pid: i32 },
}

/// kill(-1, SIGKILL): every process but the caller (and kernel threads).
/// rustix offers kill for one process or one group only.
pub fn kill_all_others() -> Result<()> {
    let sigkill = linux_raw_sys::general::SIGKILL as usize;
    // SAFETY: kill takes no pointers; -1 is "every process we may signal".
    check(unsafe { syscall2(__NR_kill, -1isize as usize, sigkill) }).map(drop)
}

/// fork(2), as clone(SIGCHLD) with no shared state.
///
/// # Safety
/// In a multi-threaded process the child may only call async-signal-safe
/// code (this layer's syscalls) before execve or exit_group.
pub unsafe fn fork() -> Result<Fork> {
    let sigchld = linux_raw_sys::general::SIGCHLD as usize;
    // SAFETY: clone with only an exit signal and null stack/tid pointers
    // duplicates the process like fork(2); no memory is passed in.
    let pid = check(unsafe { syscall2(__NR_clone, sigchld, 0) })?;
    Ok(match pid {
        0 => Fork::Child,
        pid => Fork::Parent { pid: pid as i32 },
    })
}

/// execve(2). Returns only on failure.
///
/// # Safety
/// `argv` and `envp` are null-terminated arrays of pointers to NUL-terminated
/// strings that stay valid for the call; `path` is NUL-terminated.
pub unsafe fn execve(path: *const u8, argv: *const *const u8, envp: *const *const u8) -> Errno {
    // SAFETY: the caller guarantees the pointer arguments' validity.
    let ret = unsafe { syscall4(__NR_execve, path as usize, argv as usize, envp as usize, 0) };
    match check(ret) {
        Err(e) => e,
        Ok(_) => unreachable!("execve returned success"),
    }
}

/// Variables one child's environment holds at most: the bound the
/// protocol names for the payload's environment.
pub const MAX_ENV: usize = crate::proto::limit::ENV_VARS;

/// What a child executes, and where.
pub struct Program<'a> {
    pub path: &'a CStr,
    pub argv: &'a [&'a CStr],
    pub env: &'a [&'a CStr],
    /// The directory to change to before exec; `None`: the parent's.
    pub cwd: Option<&'a CStr>,
    /// Take stdin, a terminal, as the controlling terminal of the new session.
    pub ctty: bool,
}

/// Forks a child that starts a session of its own, resets every signal's
/// disposition to the default and unblocks them all (an ignored signal
/// would survive the exec; signals sent before that wait, blocked), takes `stdio` as its descriptors 0, 1 and 2 (and stdin as its
/// controlling terminal if `ctty`), changes to the program's
/// `cwd` and executes it; its pid. Too many arguments or variables are
/// E2BIG, before any fork. A chdir or exec that fails is reported by the
/// child itself on its stderr (`exec PATH: reason`, `chdir DIR: reason`),
/// which then exits 127 for a missing file and 126 otherwise, as shells do.
pub fn spawn(program: &Program<'_>, stdio: [BorrowedFd<'_>; 3]) -> Result<i32> {
    // PID 1 has one thread, so only threads of host tests ever wait here.
    loop {
        if let Some(spawned) = POINTERS.with(|p| spawn_with(program, stdio, p)) {
            return spawned;
        }
        core::hint::spin_loop();
    }
}

/// The argv and envp arrays execve reads, as addresses (which are `Send`),
/// in .bss rather than on the stack: a frame of 8 KiB is probed page by
/// page, so all of it would stay resident in PID 1; here only what is used.
struct Pointers {
    argv: heapless::Vec<usize, { MAX_ARGS + 1 }>,
    envp: heapless::Vec<usize, { MAX_ENV + 1 }>,
}

static POINTERS: Exclusive<Pointers> = Exclusive::new(Pointers {
    argv: heapless::Vec::new(),
    envp: heapless::Vec::new(),
});

fn spawn_with(program: &Program<'_>, stdio: [BorrowedFd<'_>; 3], p: &mut Pointers) -> Result<i32> {
    pointers(&mut p.argv, program.argv).ok_or(Errno::TOOBIG)?;
    pointers(&mut p.envp, program.env).ok_or(Errno::TOOBIG)?;
    let (argv, envp) = (p.argv.as_ptr().cast(), p.envp.as_ptr().cast());
    // Every signal blocked across the fork: one sent to the child before
    // its reset (a stop can come that early) waits for the default action
    // instead of meeting the parent's disposition, which may drop it.
    let blocked = signal::block_all()?;
    // SAFETY: between fork and exec the child makes only raw syscalls on
    // memory it owns, which is sound even in a threaded process.
    let forked = match unsafe { fork() } {
        Ok(Fork::Child) => exec_child(program, stdio, argv, envp),
        Ok(Fork::Parent { pid }) => Ok(pid),
        Err(e) => Err(e),
    };
    let _ = signal::mask(blocked, signal::Mask::Replace);
    forked
}

/// The child's side of [`spawn`]: its session, signals, descriptors and
/// directory, then execve; a failure is reported on its stderr.
fn exec_child(
    program: &Program<'_>,
    stdio: [BorrowedFd<'_>; 3],
    argv: *const *const u8,
    envp: *const *const u8,
) -> ! {
    let path = program.path;
    let _ = rustix::process::setsid();
    // Dispositions first, then the mask: what is pending meets the defaults.
    signal::reset_dispositions();
    let _ = signal::mask(signal::SigSet::EMPTY, signal::Mask::Replace);
    let wired = rustix::stdio::dup2_stdin(stdio[0])
        .and_then(|()| rustix::stdio::dup2_stdout(stdio[1]))
        .and_then(|()| rustix::stdio::dup2_stderr(stdio[2]));
    let ctty = || match program.ctty {
        // SAFETY: fd 0 was just wired above and stays open.
        true => rustix::process::ioctl_tiocsctty(unsafe { rustix::stdio::stdin() }),
        false => Ok(()),
    };
    if let Err(e) = wired.and_then(|()| ctty()) {
        exit_group(report_failure("exec", path, e));
    }
    if let Some(cwd) = program.cwd {
        if let Err(e) = rustix::process::chdir(cwd) {
            exit_group(report_failure("chdir", cwd, e));
        }
    }
    // SAFETY: argv and envp are null-terminated arrays of pointers to
    // NUL-terminated strings that outlive the call.
    let errno = unsafe { execve(path.as_ptr().cast(), argv, envp) };
    exit_group(report_failure("exec", path, errno))
}

/// Fills `out` with a null-terminated array of the addresses of `strings`;
/// None if over `N - 1`.
fn pointers<const N: usize>(out: &mut heapless::Vec<usize, N>, strings: &[&CStr]) -> Option<()> {
    out.clear();
    for s in strings {
        out.push(s.as_ptr() as usize).ok()?;
    }
    out.push(0).ok()
}

/// Writes `WHAT PATH: REASON` to the child's stderr and returns the shell's
/// exit code for it: 127 for a missing file, 126 otherwise.
fn report_failure(what: &str, path: &CStr, errno: Errno) -> i32 {
    let mut buf = [0u8; 512];
    let mut w = SliceWriter::new(&mut buf);
    let _ = writeln!(w, "{what} {}: {}", Lossy(path.to_bytes()), ErrnoText(errno));
    // SAFETY: fd 2 is open in every child: its stderr was wired above, or
    // is the init's own, which it keeps open.
    let _ = rustix::io::write(unsafe { rustix::stdio::stderr() }, w.written());
    if errno == Errno::NOENT || errno == Errno::NOTDIR {
        127
    } else {
        126
    }
}

/// Whether descriptor `fd` is open (fcntl F_GETFD succeeds), asked of a
/// raw number: what PID 1 inherits from the kernel has no owner to borrow from.
pub fn fd_is_open(fd: i32) -> bool {
    // SAFETY: F_GETFD takes no pointer and changes nothing.
    let ret = unsafe { syscall2(__NR_fcntl, fd as usize, F_GETFD as usize) };
    check(ret).is_ok()
}

/// Ends the whole process with `code`.
pub fn exit_group(code: i32) -> ! {
    loop {
        // SAFETY: exit_group takes no pointers and does not return.
        unsafe { syscall1(__NR_exit_group, code as usize) };
    }
}

/// How a child ended: the codec's type (WAIT carries it), which this layer
/// decodes wait4's status word into.
pub use crate::wire::msg::Exit;

/// The exit wait4's status word `status` holds; `None` for a stop or a
/// continue (0x7f), which wait4 without WUNTRACED does not report, so it is
/// treated as not-an-exit all the same.
fn exit_from_status(status: u32) -> Option<Exit> {
    let signal = (status & 0x7f) as u8;
    match signal {
        0 => Some(Exit::Exited(((status >> 8) & 0xff) as u8)),
        0x7f => None,
        _ => Some(Exit::Signaled {
            signal,
            core_dumped: status & 0x80 != 0,
        }),
    }
}

/// Resource use of a reaped child, in the units the init reports.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Usage {
    pub user_us: u64,
    pub system_us: u64,
    pub max_rss_kib: u64,
}

/// One reaped child.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Reaped {
    pub pid: i32,
    pub exit: Exit,
    pub usage: Usage,
}

impl Reaped {
    /// WAIT's payload for this child, with the init's peak RSS beside it.
    pub fn wait_status(&self, init_hwm_kib: u64) -> WaitStatus {
        WaitStatus {
            exit: self.exit,
            user_us: self.usage.user_us,
            system_us: self.usage.system_us,
            max_rss_kib: self.usage.max_rss_kib,
            init_hwm_kib,
        }
    }
}

/// Which children `wait4` may reap.
#[derive(Clone, Copy, Debug)]
pub enum Child {
    Any,
    Pid(i32),
}

/// Whether [`wait4`] waits for a child to end.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Wait {
    Block,
    /// WNOHANG: `Ok(None)` when no child has ended yet.
    NoHang,
}

/// wait4(2): `Ok(None)` when, without blocking, no child has changed state
/// yet; `Err(ECHILD)` when there is no child at all.
pub fn wait4(which: Child, wait: Wait) -> Result<Option<Reaped>> {
    let pid = match which {
        Child::Any => -1isize,
        Child::Pid(p) => p as isize,
    };
    let options = match wait {
        Wait::Block => 0,
        Wait::NoHang => linux_raw_sys::general::WNOHANG as usize,
    };
    let mut status: u32 = 0;
    // SAFETY: rusage is plain old data the kernel fills in.
    let mut ru: rusage = unsafe { core::mem::zeroed() };
    // SAFETY: status and ru are valid, exclusively borrowed out-pointers.
    let ret = unsafe {
        syscall4(
            __NR_wait4,
            pid as usize,
            &mut status as *mut u32 as usize,
            options,
            &mut ru as *mut rusage as usize,
        )
    };
    let reaped = check(ret)? as i32;
    if reaped == 0 {
        return Ok(None);
    }
    let Some(exit) = exit_from_status(status) else {
        return Ok(None);
    };
    let micros = |tv: linux_raw_sys::general::__kernel_old_timeval| {
        (tv.tv_sec as u64) * 1_000_000 + tv.tv_usec as u64
    };
    Ok(Some(Reaped {
        pid: reaped,
        exit,
        usage: Usage {
            user_us: micros(ru.ru_utime),
            system_us: micros(ru.ru_stime),
            max_rss_kib: ru.ru_maxrss as u64,
        },
    }))
}
