//! Starting the payload: argv from /args, stdout and stderr on pipes the
//! event loop reads, stdin on /dev/null, its own session and process group
//! (so what it leaves behind can be killed as one), a clean signal mask.

use core::fmt::Write;
use guestinit::cell::TakeOnce;
use guestinit::fmt::{ErrnoText, Lossy, SliceWriter};
use guestinit::parse::args::{self, ArgsError, MAX_ARGS};
use guestinit::proto;
use guestinit::sys::process::{execve, exit_group, fork, Fork};
use guestinit::sys::signal::{self, SigSet};
use heapless::Vec;
use rustix::fd::OwnedFd;
use rustix::fs::{Mode, OFlags};
use rustix::io::Errno;

/// The /args buffer: the file and one byte for the last terminator.
const ARGS_CAP: usize = args::MAX_BYTES + 1;

/// The file's bytes, NUL-terminated in place for execve.
static ARGS: TakeOnce<[u8; ARGS_CAP]> = TakeOnce::new([0; ARGS_CAP]);

/// What execve gives every payload.
const ENV: [&core::ffi::CStr; 4] = [
    c"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    c"HOME=/tmp",
    c"TERM=linux",
    c"LANG=C.UTF-8",
];

pub struct Payload {
    pub pid: i32,
    pub stdout: OwnedFd,
    pub stderr: OwnedFd,
}

/// Why there is no payload to run.
pub enum StartError {
    /// /args is missing or unreadable.
    Read(Errno),
    TooLong,
    TooMany,
    Args(ArgsError),
    /// /.guestinit/exec exists but cannot be read.
    Exec(Errno),
    /// pipe, open or fork failed.
    Spawn(Errno),
}

impl core::fmt::Display for StartError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            StartError::Read(e) => write!(f, "read /args: {}", ErrnoText(*e)),
            StartError::TooLong => write!(
                f,
                "/args (with {}) exceeds {} bytes",
                proto::path::EXEC,
                args::MAX_BYTES
            ),
            StartError::TooMany => write!(f, "/args has more than {MAX_ARGS} arguments"),
            StartError::Args(e) => write!(f, "{e}"),
            StartError::Exec(e) => write!(f, "read {}: {}", proto::path::EXEC, ErrnoText(*e)),
            StartError::Spawn(e) => write!(f, "start the payload: {}", ErrnoText(*e)),
        }
    }
}

/// Reads /args and starts the program it names.
pub fn start() -> Result<Payload, StartError> {
    let buf = ARGS.take().expect("the payload starts once");
    let len = read_args(buf)?;
    let mut argv: Vec<*const u8, { MAX_ARGS + 2 }> = Vec::new();
    load_argv(buf, len, &mut argv)?;
    spawn(&argv)
}

fn read_args(buf: &mut [u8; ARGS_CAP]) -> Result<usize, StartError> {
    let file = rustix::fs::open(
        proto::path::ARGS,
        OFlags::RDONLY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(StartError::Read)?;
    let mut len = 0;
    // One byte stays free for the last argument's terminator.
    while len < ARGS_CAP - 1 {
        match rustix::io::read(&file, &mut buf[len..ARGS_CAP - 1]) {
            Ok(0) => return Ok(len),
            Ok(n) => len += n,
            Err(Errno::INTR) => {}
            Err(e) => return Err(StartError::Read(e)),
        }
    }
    Err(StartError::TooLong)
}

/// Builds `argv` from /args in `buf[..len]`: `argv[0]` is the path to
/// execve (the contents of /.guestinit/exec, read into the free tail of
/// `buf`, else the program), `argv[1..]` the argument vector, NUL-terminated.
fn load_argv(
    buf: &mut [u8; ARGS_CAP],
    len: usize,
    argv: &mut Vec<*const u8, { MAX_ARGS + 2 }>,
) -> Result<(), StartError> {
    let end = args::terminator(&buf[..len]);
    let count = args::split(&buf[..len]).map_err(StartError::Args)?.count();
    if count > MAX_ARGS {
        return Err(StartError::TooMany);
    }
    let (text, tail) = buf.split_at_mut(len + 1);
    let exec = match rustix::fs::open(
        proto::path::EXEC,
        OFlags::RDONLY | OFlags::CLOEXEC,
        Mode::empty(),
    ) {
        // ktstr's archives have no exec file: the program is argv[0].
        Err(Errno::NOENT) => None,
        Err(e) => return Err(StartError::Exec(e)),
        Ok(file) => {
            // One byte stays free for the path's NUL; a path that fills the
            // rest may be cut, so it is refused (the host packs it shorter).
            let room = tail.len().saturating_sub(1);
            let mut got = 0;
            while got < room {
                match rustix::io::read(&file, &mut tail[got..room]) {
                    Ok(0) => break,
                    Ok(n) => got += n,
                    Err(Errno::INTR) => {}
                    Err(e) => return Err(StartError::Exec(e)),
                }
            }
            if got == room {
                return Err(StartError::TooLong);
            }
            tail[got] = 0;
            Some(tail.as_ptr())
        }
    };
    text[len] = end;
    // The program starts the text: it is argv[0] of the argument vector.
    let _ = argv.push(exec.unwrap_or(text.as_ptr()));
    let mut start = 0;
    for _ in 0..count {
        let stop = start
            + text[start..]
                .iter()
                .position(|&b| b == end)
                .expect("counted");
        text[stop] = 0;
        let _ = argv.push(text[start..].as_ptr());
        start = stop + 1;
    }
    let _ = argv.push(core::ptr::null());
    Ok(())
}

fn spawn(argv: &[*const u8]) -> Result<Payload, StartError> {
    let (out_r, out_w) = pipe()?;
    let (err_r, err_w) = pipe()?;
    let null = rustix::fs::open(c"/dev/null", OFlags::RDWR | OFlags::CLOEXEC, Mode::empty())
        .map_err(StartError::Spawn)?;
    // SAFETY: the init is single-threaded; the child only makes syscalls.
    match unsafe { fork() }.map_err(StartError::Spawn)? {
        Fork::Child => exec_child(argv, &null, &out_w, &err_w),
        Fork::Parent { pid } => Ok(Payload {
            pid,
            stdout: out_r,
            stderr: err_r,
        }),
    }
}

/// A pipe whose read end the loop polls without blocking; the write end
/// stays blocking, as programs expect of their stdout.
fn pipe() -> Result<(OwnedFd, OwnedFd), StartError> {
    let (r, w) =
        rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC).map_err(StartError::Spawn)?;
    rustix::fs::fcntl_setfl(&r, OFlags::NONBLOCK).map_err(StartError::Spawn)?;
    Ok((r, w))
}

fn exec_child(argv: &[*const u8], null: &OwnedFd, out: &OwnedFd, err: &OwnedFd) -> ! {
    let _ = rustix::process::setsid();
    let _ = signal::mask(SigSet::EMPTY, false);
    let wired = rustix::stdio::dup2_stdin(null)
        .and_then(|()| rustix::stdio::dup2_stdout(out))
        .and_then(|()| rustix::stdio::dup2_stderr(err));
    if let Err(e) = wired {
        exit_group(report_exec_failure(argv[0], e, err));
    }
    let mut envp: [*const u8; ENV.len() + 1] = [core::ptr::null(); ENV.len() + 1];
    for (slot, var) in envp.iter_mut().zip(ENV) {
        *slot = var.as_ptr().cast();
    }
    // SAFETY: argv[1..] and envp are null-terminated arrays of NUL-terminated
    // strings (the static /args buffer and C literals) alive until exec;
    // argv[0], the path to exec, is NUL-terminated in the same buffer.
    let errno = unsafe { execve(argv[0], argv[1..].as_ptr(), envp.as_ptr()) };
    exit_group(report_exec_failure(argv[0], errno, err))
}

/// Writes `exec PATH: REASON` to the payload's stderr, as shells do, and
/// returns their exit code: 127 for a missing program, 126 otherwise.
fn report_exec_failure(path: *const u8, errno: Errno, stderr: &OwnedFd) -> i32 {
    // SAFETY: path is the exec path, NUL-terminated in the static /args buffer.
    let path = unsafe { core::ffi::CStr::from_ptr(path.cast()) }.to_bytes();
    let mut buf = [0u8; 512];
    let mut w = SliceWriter::new(&mut buf);
    let _ = writeln!(w, "exec {}: {}", Lossy(path), ErrnoText(errno));
    let _ = rustix::io::write(stderr, w.written());
    if errno == Errno::NOENT || errno == Errno::NOTDIR {
        127
    } else {
        126
    }
}
