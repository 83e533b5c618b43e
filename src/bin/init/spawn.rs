//! Starting a child: argv and environment, each standard stream a pipe to
//! the init or /dev/null, in a session of its own (so a stop reaches all it
//! started, and it may take a controlling terminal). Every child of the
//! init starts here: the payload now; the scheduler, the shell and exec
//! mode later, adding the stream kinds they need (a PTY).

use core::ffi::CStr;
use core::fmt::Write;
use guestinit::fmt::{ErrnoText, Lossy, SliceWriter};
use guestinit::parse::args::MAX_ARGS;
use guestinit::sys::process::{execve, exit_group, fork, Fork};
use guestinit::sys::signal::{self, SigSet};
use heapless::Vec;
use rustix::fd::{AsFd, BorrowedFd, OwnedFd};
use rustix::fs::{Mode, OFlags};
use rustix::io::Errno;

/// Variables one child's environment holds at most.
pub const MAX_ENV: usize = 32;

/// Where one of the child's standard streams goes.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Stdio {
    /// A pipe whose other end the init gets back (non-blocking).
    Pipe,
    /// /dev/null.
    Null,
}

pub struct Command<'a> {
    /// The program to execute; argv[0] need not name it.
    pub path: &'a CStr,
    pub argv: &'a [&'a CStr],
    pub env: &'a [&'a CStr],
    pub stdin: Stdio,
    pub stdout: Stdio,
    pub stderr: Stdio,
}

/// A started child, with the init's ends of its piped streams (stdin,
/// stdout, stderr; `None` for the others).
pub struct Spawned {
    pub pid: i32,
    pub streams: [Option<OwnedFd>; 3],
}

/// Why a child could not be started (its exec failing is reported by the
/// child itself, on its stderr, with exit code 127 or 126).
#[derive(Debug, PartialEq, Eq)]
pub enum SpawnError {
    TooManyArgs,
    TooManyVars,
    /// pipe, open or fork failed.
    Sys(Errno),
}

impl core::fmt::Display for SpawnError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            SpawnError::TooManyArgs => write!(f, "more than {MAX_ARGS} arguments"),
            SpawnError::TooManyVars => write!(f, "more than {MAX_ENV} environment variables"),
            SpawnError::Sys(e) => write!(f, "{}", ErrnoText(*e)),
        }
    }
}

/// The child's end and the init's end of one stream.
struct Wired {
    child: OwnedFd,
    ours: Option<OwnedFd>,
}

pub fn spawn(cmd: &Command<'_>) -> Result<Spawned, SpawnError> {
    let argv = pointers::<{ MAX_ARGS + 1 }>(cmd.argv).ok_or(SpawnError::TooManyArgs)?;
    let envp = pointers::<{ MAX_ENV + 1 }>(cmd.env).ok_or(SpawnError::TooManyVars)?;
    let stdin = wire(cmd.stdin, Direction::ToChild)?;
    let stdout = wire(cmd.stdout, Direction::FromChild)?;
    let stderr = wire(cmd.stderr, Direction::FromChild)?;
    // SAFETY: between fork and exec the child makes only raw syscalls on
    // memory it owns (async-signal-safe, so also sound in threaded tests).
    match unsafe { fork() }.map_err(SpawnError::Sys)? {
        Fork::Child => exec_child(cmd, &argv, &envp, [&stdin, &stdout, &stderr]),
        Fork::Parent { pid } => Ok(Spawned {
            pid,
            streams: [stdin.ours, stdout.ours, stderr.ours],
        }),
    }
}

/// A null-terminated array of pointers to `strings`.
fn pointers<const N: usize>(strings: &[&CStr]) -> Option<Vec<*const u8, N>> {
    let mut out: Vec<*const u8, N> = Vec::new();
    for s in strings {
        out.push(s.as_ptr().cast()).ok()?;
    }
    out.push(core::ptr::null()).ok()?;
    Some(out)
}

#[derive(Clone, Copy)]
enum Direction {
    ToChild,
    FromChild,
}

fn wire(stdio: Stdio, direction: Direction) -> Result<Wired, SpawnError> {
    match stdio {
        Stdio::Null => {
            let null = rustix::fs::open(c"/dev/null", OFlags::RDWR | OFlags::CLOEXEC, Mode::empty())
                .map_err(SpawnError::Sys)?;
            Ok(Wired {
                child: null,
                ours: None,
            })
        }
        Stdio::Pipe => {
            let (r, w) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)
                .map_err(SpawnError::Sys)?;
            let (child, ours) = match direction {
                Direction::ToChild => (r, w),
                Direction::FromChild => (w, r),
            };
            // The init polls its end; the child's stays blocking, as
            // programs expect of their standard streams.
            rustix::fs::fcntl_setfl(&ours, OFlags::NONBLOCK).map_err(SpawnError::Sys)?;
            Ok(Wired {
                child,
                ours: Some(ours),
            })
        }
    }
}

fn exec_child(
    cmd: &Command<'_>,
    argv: &[*const u8],
    envp: &[*const u8],
    streams: [&Wired; 3],
) -> ! {
    let _ = rustix::process::setsid();
    let _ = signal::mask(SigSet::EMPTY, false);
    for (target, stream) in (0..3).zip(streams) {
        if let Err(e) = dup_to(stream.child.as_fd(), target) {
            exit_group(report_exec_failure(cmd.path, e));
        }
    }
    // SAFETY: argv and envp are null-terminated arrays of pointers to the
    // NUL-terminated strings of `cmd`, alive until exec.
    let errno = unsafe { execve(cmd.path.as_ptr().cast(), argv.as_ptr(), envp.as_ptr()) };
    exit_group(report_exec_failure(cmd.path, errno))
}

/// Makes `fd` the child's descriptor `target` (0, 1 or 2).
fn dup_to(fd: BorrowedFd<'_>, target: i32) -> Result<(), Errno> {
    match target {
        0 => rustix::stdio::dup2_stdin(fd),
        1 => rustix::stdio::dup2_stdout(fd),
        _ => rustix::stdio::dup2_stderr(fd),
    }
}

/// Writes `exec PATH: REASON` to the child's stderr, as shells do, and
/// returns their exit code: 127 for a missing program, 126 otherwise.
fn report_exec_failure(path: &CStr, errno: Errno) -> i32 {
    let mut buf = [0u8; 512];
    let mut w = SliceWriter::new(&mut buf);
    let _ = writeln!(w, "exec {}: {}", Lossy(path.to_bytes()), ErrnoText(errno));
    // SAFETY: fd 2 is open in every child: the init keeps 0-2 open
    // (console::ensure_std_fds) and the child's own stderr replaced it.
    let _ = rustix::io::write(unsafe { rustix::stdio::stderr() }, w.written());
    if errno == Errno::NOENT || errno == Errno::NOTDIR {
        127
    } else {
        126
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use guestinit::sys::process::{wait4, Child, Exit};

    fn read_all(fd: &OwnedFd) -> std::vec::Vec<u8> {
        rustix::fs::fcntl_setfl(fd, OFlags::empty()).unwrap();
        let mut out = std::vec::Vec::new();
        let mut buf = [0u8; 256];
        loop {
            match rustix::io::read(fd, &mut buf).unwrap() {
                0 => return out,
                n => out.extend_from_slice(&buf[..n]),
            }
        }
    }

    fn sh(script: &CStr, env: &[&CStr]) -> Spawned {
        spawn(&Command {
            path: c"/bin/sh",
            argv: &[c"sh", c"-c", script],
            env,
            stdin: Stdio::Null,
            stdout: Stdio::Pipe,
            stderr: Stdio::Pipe,
        })
        .unwrap()
    }

    #[test]
    fn pipes_carry_output_and_env_and_a_new_session_is_made() {
        let child = sh(
            c"echo \"$GREETING\"; echo err >&2; read -r _ _ _ _ _ sid _ </proc/$$/stat; [ $sid = $$ ] && echo leader",
            &[c"GREETING=hello", c"PATH=/usr/bin:/bin"],
        );
        assert_eq!(read_all(child.streams[1].as_ref().unwrap()), b"hello\nleader\n");
        assert_eq!(read_all(child.streams[2].as_ref().unwrap()), b"err\n");
        let reaped = wait4(Child::Pid(child.pid), true).unwrap().unwrap();
        assert_eq!(reaped.exit, Exit::Exited(0));
        assert!(child.streams[0].is_none());
    }

    #[test]
    fn a_missing_program_exits_127_with_its_reason_on_stderr() {
        let child = spawn(&Command {
            path: c"/nonexistent/prog",
            argv: &[c"prog"],
            env: &[],
            stdin: Stdio::Null,
            stdout: Stdio::Null,
            stderr: Stdio::Pipe,
        })
        .unwrap();
        let err = read_all(child.streams[2].as_ref().unwrap());
        assert_eq!(err, b"exec /nonexistent/prog: No such file or directory\n");
        let reaped = wait4(Child::Pid(child.pid), true).unwrap().unwrap();
        assert_eq!(reaped.exit, Exit::Exited(127));
    }

    #[test]
    fn too_many_variables_are_refused_before_any_fork() {
        let vars = [c"A=1"; MAX_ENV + 1];
        let cmd = Command {
            path: c"/bin/true",
            argv: &[c"true"],
            env: &vars,
            stdin: Stdio::Null,
            stdout: Stdio::Null,
            stderr: Stdio::Null,
        };
        assert_eq!(spawn(&cmd).err(), Some(SpawnError::TooManyVars));
    }
}
