//! Starting a child: argv and environment, each standard stream a pipe to
//! the init, /dev/null or a terminal, in a session of its own (so a stop
//! reaches all it started). A child whose stdin is a terminal takes it as
//! its controlling terminal (the shell's job control needs one). Every
//! child of the init starts here: the payload, the scheduler, the shell.

use core::ffi::CStr;
use guestinit::sys::process;
use rustix::fd::{AsFd, BorrowedFd, OwnedFd};
use rustix::fs::OFlags;
use rustix::io::Errno;

/// Where one of the child's standard streams goes.
#[derive(Clone, Copy)]
pub enum Stdio<'a> {
    /// A pipe whose other end the init gets back (non-blocking).
    Pipe,
    /// /dev/null.
    Null,
    /// A terminal (a PTY's slave); as stdin, the child's controlling one.
    Terminal(BorrowedFd<'a>),
}

pub struct Command<'a> {
    /// The program to execute; argv[0] need not name it.
    pub path: &'a CStr,
    pub argv: &'a [&'a CStr],
    pub env: &'a [&'a CStr],
    /// The directory the child changes to before exec; `None`: the init's.
    pub cwd: Option<&'a CStr>,
    pub stdin: Stdio<'a>,
    pub stdout: Stdio<'a>,
    pub stderr: Stdio<'a>,
}

/// A started child, with the init's ends of its piped streams (stdin,
/// stdout, stderr; `None` for the others).
pub struct Spawned {
    pub pid: i32,
    pub streams: [Option<OwnedFd>; 3],
}

/// The child's end and the init's end of one stream.
struct Wired {
    child: OwnedFd,
    ours: Option<OwnedFd>,
}

#[derive(Clone, Copy)]
enum Direction {
    ToChild,
    FromChild,
}

/// Starts `cmd`; an error when a pipe, /dev/null or the fork failed, or
/// when argv or the environment is too long (E2BIG).
pub fn spawn(cmd: &Command<'_>) -> Result<Spawned, Errno> {
    let stdin = wire(cmd.stdin, Direction::ToChild)?;
    let stdout = wire(cmd.stdout, Direction::FromChild)?;
    let stderr = wire(cmd.stderr, Direction::FromChild)?;
    let stdio = [stdin.child.as_fd(), stdout.child.as_fd(), stderr.child.as_fd()];
    let pid = process::spawn(
        &process::Program {
            path: cmd.path,
            argv: cmd.argv,
            env: cmd.env,
            cwd: cmd.cwd,
            ctty: matches!(cmd.stdin, Stdio::Terminal(_)),
        },
        stdio,
    )?;
    Ok(Spawned {
        pid,
        streams: [stdin.ours, stdout.ours, stderr.ours],
    })
}

fn wire(stdio: Stdio<'_>, direction: Direction) -> Result<Wired, Errno> {
    match stdio {
        Stdio::Terminal(tty) => Ok(Wired {
            child: tty.try_clone_to_owned()?,
            ours: None,
        }),
        Stdio::Null => {
            let flags = OFlags::RDWR | OFlags::CLOEXEC;
            let null = crate::small_file::open(b"/dev/null", flags)?;
            Ok(Wired {
                child: null,
                ours: None,
            })
        }
        Stdio::Pipe => {
            let (r, w) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)?;
            let (child, ours) = match direction {
                Direction::ToChild => (r, w),
                Direction::FromChild => (w, r),
            };
            // The init polls its end; the child's stays blocking, as
            // programs expect of their standard streams.
            rustix::fs::fcntl_setfl(&ours, OFlags::NONBLOCK)?;
            Ok(Wired {
                child,
                ours: Some(ours),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use guestinit::sys::process::{wait4, Child, Exit, Wait, MAX_ENV};

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

    fn command<'a>(path: &'a CStr, argv: &'a [&'a CStr], env: &'a [&'a CStr]) -> Command<'a> {
        Command {
            path,
            argv,
            env,
            cwd: None,
            stdin: Stdio::Null,
            stdout: Stdio::Pipe,
            stderr: Stdio::Pipe,
        }
    }

    #[test]
    fn pipes_carry_output_and_env_and_a_new_session_is_made() {
        let script = c"echo \"$GREETING\"; echo err >&2; read -r _ _ _ _ _ sid _ </proc/$$/stat; [ $sid = $$ ] && echo leader";
        let argv = [c"sh", c"-c", script];
        let env = [c"GREETING=hello", c"PATH=/usr/bin:/bin"];
        let child = spawn(&command(c"/bin/sh", &argv, &env)).unwrap();
        assert_eq!(read_all(child.streams[1].as_ref().unwrap()), b"hello\nleader\n");
        assert_eq!(read_all(child.streams[2].as_ref().unwrap()), b"err\n");
        let reaped = wait4(Child::Pid(child.pid), Wait::Block).unwrap().unwrap();
        assert_eq!(reaped.exit, Exit::Exited(0));
        assert!(child.streams[0].is_none());
    }

    #[test]
    fn the_child_runs_in_its_cwd_and_a_missing_one_exits_127() {
        let cmd = Command {
            cwd: Some(c"/proc"),
            ..command(c"/bin/pwd", &[c"pwd"], &[])
        };
        let child = spawn(&cmd).unwrap();
        assert_eq!(read_all(child.streams[1].as_ref().unwrap()), b"/proc\n");
        let cmd = Command {
            cwd: Some(c"/nonexistent"),
            ..command(c"/bin/pwd", &[c"pwd"], &[])
        };
        let child = spawn(&cmd).unwrap();
        let err = read_all(child.streams[2].as_ref().unwrap());
        assert_eq!(err, b"chdir /nonexistent: No such file or directory\n");
        let reaped = wait4(Child::Pid(child.pid), Wait::Block).unwrap().unwrap();
        assert_eq!(reaped.exit, Exit::Exited(127));
    }

    #[test]
    fn a_missing_program_exits_127_with_its_reason_on_stderr() {
        let child = spawn(&command(c"/nonexistent/prog", &[c"prog"], &[])).unwrap();
        let err = read_all(child.streams[2].as_ref().unwrap());
        assert_eq!(err, b"exec /nonexistent/prog: No such file or directory\n");
        let reaped = wait4(Child::Pid(child.pid), Wait::Block).unwrap().unwrap();
        assert_eq!(reaped.exit, Exit::Exited(127));
    }

    /// Reads the master until `text` has come; all read so far.
    fn read_until(master: &OwnedFd, text: &str) -> std::string::String {
        let mut got = std::vec::Vec::new();
        let mut buf = [0u8; 256];
        while !std::string::String::from_utf8_lossy(&got).contains(text) {
            let n = rustix::io::read(master, &mut buf).unwrap();
            assert!(n > 0, "EOF before {text:?}: {:?}", std::string::String::from_utf8_lossy(&got));
            got.extend_from_slice(&buf[..n]);
        }
        std::string::String::from_utf8_lossy(&got).into_owned()
    }

    #[test]
    fn a_terminal_stdin_is_the_controlling_one_and_ctrl_c_interrupts_the_child() {
        use rustix::pty::{ioctl_tiocgptpeer, openpt, unlockpt, OpenptFlags};
        let flags = OpenptFlags::RDWR | OpenptFlags::NOCTTY | OpenptFlags::CLOEXEC;
        let master = openpt(flags).unwrap();
        unlockpt(&master).unwrap();
        let slave = ioctl_tiocgptpeer(&master, flags).unwrap();
        // Field 7 of /proc/PID/stat is the controlling terminal (0: none).
        let script = c"read -r _ _ _ _ _ _ tty _ </proc/$$/stat; [ $tty != 0 ] && echo has-ctty; trap 'echo interrupted; exit 7' INT; echo ready; while :; do sleep 0.1; done";
        let tty = Stdio::Terminal(slave.as_fd());
        let child = spawn(&Command {
            stdin: tty,
            stdout: tty,
            stderr: tty,
            ..command(c"/bin/sh", &[c"sh", c"-c", script], &[c"PATH=/usr/bin:/bin"])
        })
        .unwrap();
        drop(slave);
        assert!(child.streams.iter().all(Option::is_none));
        assert!(read_until(&master, "ready").contains("has-ctty"));
        rustix::io::write(&master, b"\x03").unwrap();
        read_until(&master, "interrupted");
        let reaped = wait4(Child::Pid(child.pid), Wait::Block).unwrap().unwrap();
        assert_eq!(reaped.exit, Exit::Exited(7));
    }

    /// The `SigIgn:` mask of /proc/PID/status (bit n-1 for signal n).
    fn ignored(status: &[u8]) -> u64 {
        let text = std::str::from_utf8(status).unwrap();
        let line = text.lines().find_map(|l| l.strip_prefix("SigIgn:")).unwrap();
        u64::from_str_radix(line.trim(), 16).unwrap()
    }

    #[test]
    fn a_child_starts_with_no_signal_ignored_even_when_the_init_ignores_some() {
        use guestinit::sys::signal::{set_disposition, Disposition};
        use linux_raw_sys::general::{SIGHUP, SIGINT, SIGQUIT};
        use rustix::process::{kill_process, Pid, Signal};
        // As `nohup` and a shell's background job start a process; what
        // was not ignored before is set back after.
        let before = ignored(&std::fs::read("/proc/self/status").unwrap());
        let signals = [SIGHUP, SIGINT, SIGQUIT, 64];
        for sig in signals {
            set_disposition(sig, Disposition::Ignore).unwrap();
        }
        let mine = ignored(&std::fs::read("/proc/self/status").unwrap());
        let cat = spawn(&command(c"/bin/cat", &[c"cat", c"/proc/self/status"], &[]));
        // A hang-up at once, likely before the child's reset: it waits
        // for the default action instead of meeting the inherited SIG_IGN.
        let sleep = spawn(&command(c"/bin/sleep", &[c"sleep", c"60"], &[]));
        let hung_up = sleep
            .as_ref()
            .ok()
            .map(|s| kill_process(Pid::from_raw(s.pid).unwrap(), Signal::HUP).is_ok());
        for sig in signals.into_iter().filter(|&s| before & 1 << (s - 1) == 0) {
            set_disposition(sig, Disposition::Default).unwrap();
        }
        let (cat, sleep) = (cat.unwrap(), sleep.unwrap());
        assert_eq!(hung_up, Some(true));
        let status = read_all(cat.streams[1].as_ref().unwrap());
        let reaped = wait4(Child::Pid(cat.pid), Wait::Block).unwrap().unwrap();
        assert_eq!(reaped.exit, Exit::Exited(0));
        assert!(signals.iter().all(|s| mine & 1 << (s - 1) != 0), "{mine:#x}");
        let theirs = ignored(&status);
        assert_eq!(theirs, 0, "the child ignores {theirs:#x}");
        let reaped = wait4(Child::Pid(sleep.pid), Wait::Block).unwrap().unwrap();
        let hup = SIGHUP as u8;
        assert!(matches!(reaped.exit, Exit::Signaled { signal, .. } if signal == hup), "{:?}", reaped.exit);
    }

    #[test]
    fn too_many_variables_are_refused_before_any_fork() {
        let vars = [c"A=1"; MAX_ENV + 1];
        let cmd = command(c"/bin/true", &[c"true"], &vars);
        assert_eq!(spawn(&cmd).err(), Some(Errno::TOOBIG));
    }
}
