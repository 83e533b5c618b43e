//! Shell and exec modes: busybox's `sh`, interactive on hvc0 through a PTY
//! (its session's controlling terminal, so Ctrl-C and job control work),
//! or `sh -c` of /exec_cmd with its output framed like a payload's.

use crate::clock;
use crate::console::warning;
use crate::environ;
use crate::link::Link;
use crate::payload::Payload;
use crate::pty;
use crate::reactor::{Ctx, Interests, Rank, Source};
use crate::small_file::{read_file, read_prefix};
use crate::spawn::{self, Command, Stdio};
use crate::tty_relay::TtyRelay;
use crate::wake;
use core::ffi::CStr;
use core::fmt::Write;
use guestinit::cell::TakeOnce;
use guestinit::fmt::{ErrnoText, Lossy, SliceWriter};
use guestinit::parse::args;
use guestinit::proto;
use guestinit::sys::process::Reaped;
use rustix::event::PollFlags;
use rustix::fd::{AsFd, OwnedFd};
use rustix::io::Errno;
use rustix::process::{kill_process, kill_process_group, Pid, Signal};

/// [`proto::path::BUSYBOX`], as execve takes it.
const BUSYBOX: &CStr = c"/bin/busybox";

/// The relay's side of the PTY master (hvc0 is side 0).
const MASTER: usize = 1;

/// After the shell exits, how long what it left behind may hold the PTY
/// before its last output is given up.
const DRAIN_MS: u64 = 2000;
/// After a stop, how long the shell has to exit on SIGHUP before SIGKILL.
const STOP_GRACE_MS: u64 = 5000;

/// /exec_cmd, NUL-terminated in place.
static EXEC_CMD: TakeOnce<[u8; args::MAX_BYTES + 1]> = TakeOnce::new([0; args::MAX_BYTES + 1]);

/// Why the shell or the command could not start.
pub enum StartError {
    Pty(Errno),
    /// hvc0 is missing or stays cooked.
    Hvc0,
    ExecCmd(Errno),
    ExecCmdTooLong,
    Environ(environ::Error),
    Spawn(Errno),
}

impl core::fmt::Display for StartError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            StartError::Pty(e) => write!(f, "open a PTY for the shell: {}", ErrnoText(*e)),
            StartError::Hvc0 => write!(f, "hvc0 cannot carry the shell"),
            StartError::ExecCmd(e) => {
                write!(f, "read {}: {}", proto::path::EXEC_CMD, ErrnoText(*e))
            }
            StartError::ExecCmdTooLong => write!(
                f,
                "{} exceeds {} bytes",
                proto::path::EXEC_CMD,
                args::MAX_BYTES
            ),
            StartError::Environ(e) => write!(f, "{e}"),
            StartError::Spawn(e) => write!(f, "start busybox sh: {}", ErrnoText(*e)),
        }
    }
}

/// `sh -c "$(cat /exec_cmd)"`, its output framed like the payload's.
pub fn start_exec() -> Result<Payload, StartError> {
    let buf = EXEC_CMD.take().expect("the command starts once");
    let len = read_file(proto::path::EXEC_CMD.as_bytes(), &mut buf[..args::MAX_BYTES])
        .map_err(StartError::ExecCmd)?
        .ok_or(StartError::ExecCmdTooLong)?;
    buf[len] = 0;
    let cmd = CStr::from_bytes_until_nul(&buf[..]).map_err(|_| StartError::ExecCmdTooLong)?;
    let environ = environ::read().map_err(StartError::Environ)?;
    let spawned = spawn::spawn(&Command {
        path: BUSYBOX,
        argv: &[c"sh", c"-c", cmd],
        env: &environ.vars,
        cwd: environ.cwd,
        stdin: Stdio::Null,
        stdout: Stdio::Pipe,
        stderr: Stdio::Pipe,
    })
    .map_err(StartError::Spawn)?;
    let [_, Some(stdout), Some(stderr)] = spawned.streams else {
        unreachable!("stdout and stderr are piped")
    };
    Ok(Payload::new(spawned.pid, stdout, stderr))
}

/// Starts the interactive shell on a new PTY relayed to hvc0, the MOTD
/// first; the shell, and a second descriptor of the PTY's master (for the
/// window size).
pub fn start(scheduler: bool) -> Result<(Shell, OwnedFd), StartError> {
    let pty = pty::open().map_err(StartError::Pty)?;
    let hvc0 = wake::open().ok_or(StartError::Hvc0)?;
    let master = rustix::io::fcntl_dupfd_cloexec(&pty.master, 0).map_err(StartError::Pty)?;
    let environ = environ::read().map_err(StartError::Environ)?;
    let spawned = spawn::spawn(&Command {
        path: BUSYBOX,
        argv: &[c"sh"],
        env: &environ.vars,
        cwd: environ.cwd,
        stdin: Stdio::Terminal(pty.slave.as_fd()),
        stdout: Stdio::Terminal(pty.slave.as_fd()),
        stderr: Stdio::Terminal(pty.slave.as_fd()),
    })
    .map_err(StartError::Spawn)?;
    // The init keeps no slave: the shell's last exit is the master's EOF.
    drop(pty.slave);
    let mut relay = TtyRelay::new(hvc0, pty.master);
    let mut motd = [0u8; 256];
    relay.queue(MASTER, motd_line(&mut motd, scheduler));
    let shell = Shell {
        pid: spawned.pid,
        relay,
        ended: None,
        deadline: None,
    };
    Ok((shell, master))
}

/// One line about the VM: kernel, memory, CPUs, the scheduler.
fn motd_line(buf: &mut [u8], scheduler: bool) -> &[u8] {
    let uname = rustix::system::uname();
    let info = rustix::system::sysinfo();
    let mib = (info.totalram as u64 * info.mem_unit as u64) >> 20;
    let cpus = rustix::thread::sched_getaffinity(None).map_or(1, |set| set.count());
    let mut ops = [0u8; 64];
    let ops_len = match scheduler {
        true => read_prefix(b"/sys/kernel/sched_ext/root/ops", &mut ops).unwrap_or(0),
        false => 0,
    };
    let name = ops[..ops_len].trim_ascii();
    let mut w = SliceWriter::new(buf);
    let _ = write!(
        w,
        "guestinit shell: Linux {}, {mib} MiB, {cpus} CPU{}",
        Lossy(uname.release().to_bytes()),
        if cpus == 1 { "" } else { "s" }
    );
    if !name.is_empty() {
        let _ = write!(w, ", scheduler {}", Lossy(name));
    }
    // hvc0 is raw: the line ends as a terminal needs it to.
    let _ = write!(w, "\r\n");
    let len = w.written().len();
    &buf[..len]
}

/// The interactive shell as the run's workload: its PTY relayed to hvc0.
pub struct Shell {
    pid: i32,
    relay: TtyRelay,
    ended: Option<Reaped>,
    /// After its exit, when its output is given up; before, when a stopped
    /// shell is killed.
    deadline: Option<u64>,
}

impl Shell {
    /// How it ended; `Some` once the reactor has run it to its end.
    pub fn ended(&self) -> Option<&Reaped> {
        self.ended.as_ref()
    }

    /// Signals the shell's process group, and the shell itself: a stop can
    /// come before the child's setsid, when its group does not exist yet.
    fn signal(&self, signal: Signal) {
        if let Some(pid) = Pid::from_raw(self.pid) {
            let _ = kill_process(pid, signal);
            let _ = kill_process_group(pid, signal);
        }
    }
}

fn ms_from_now(ms: u64) -> u64 {
    clock::now_ns() + ms * 1_000_000
}

impl Source for Shell {
    fn rank(&self) -> Rank {
        Rank::Workload
    }

    fn start(&mut self, ctx: &mut Ctx<'_>) {
        ctx.watch_child(self.pid);
    }

    fn interests<'s>(&'s self, _link: &Link, out: &mut Interests<'s>) {
        self.relay.interests(0, out);
    }

    fn on_ready(&mut self, token: u8, events: PollFlags, _ctx: &mut Ctx<'_>) {
        self.relay.on_ready(token as usize, events);
    }

    fn deadline(&self) -> Option<u64> {
        self.deadline
    }

    fn on_deadline(&mut self, _ctx: &mut Ctx<'_>) {
        self.deadline = None;
        if self.ended.is_some() {
            warning!("the shell exited but its terminal is still open after {DRAIN_MS} ms: closing it");
            self.relay.close(MASTER);
        } else {
            warning!("the shell still runs {STOP_GRACE_MS} ms after SIGHUP: killing it");
            self.signal(Signal::KILL);
        }
    }

    fn on_exit(&mut self, reaped: Reaped, _ctx: &mut Ctx<'_>) {
        self.ended = Some(reaped);
        self.deadline = Some(ms_from_now(DRAIN_MS));
    }

    /// A stop hangs the shell up, as closing a terminal window does.
    fn on_stop(&mut self, _ctx: &mut Ctx<'_>) {
        if self.ended.is_some() {
            return;
        }
        self.signal(Signal::HUP);
        self.deadline.get_or_insert(ms_from_now(STOP_GRACE_MS));
    }

    fn done(&self) -> bool {
        self.ended.is_some() && !self.relay.open(MASTER)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reactor::Reactor;
    use crate::testkit::link;
    use guestinit::sys::process::Exit;
    use rustix::pty::{ioctl_tiocgptpeer, openpt, unlockpt, OpenptFlags};

    /// A shell source over a real PTY running `script`, hvc0 a socket pair;
    /// the host's end of it.
    fn shell(script: &CStr) -> (Shell, OwnedFd) {
        let flags = OpenptFlags::RDWR | OpenptFlags::NOCTTY | OpenptFlags::CLOEXEC;
        let master = openpt(flags).unwrap();
        unlockpt(&master).unwrap();
        let slave = ioctl_tiocgptpeer(&master, flags).unwrap();
        rustix::fs::fcntl_setfl(&master, rustix::fs::OFlags::NONBLOCK).unwrap();
        let tty = Stdio::Terminal(slave.as_fd());
        let spawned = spawn::spawn(&Command {
            path: c"/bin/sh",
            argv: &[c"sh", c"-c", script],
            env: &[c"PATH=/usr/bin:/bin"],
            cwd: None,
            stdin: tty,
            stdout: tty,
            stderr: tty,
        })
        .unwrap();
        drop(slave);
        let (guest, host) = rustix::net::socketpair(
            rustix::net::AddressFamily::UNIX,
            rustix::net::SocketType::STREAM,
            rustix::net::SocketFlags::NONBLOCK | rustix::net::SocketFlags::CLOEXEC,
            None,
        )
        .unwrap();
        let mut relay = TtyRelay::new(guest, master);
        relay.queue(MASTER, b"motd\r\n");
        let shell = Shell {
            pid: spawned.pid,
            relay,
            ended: None,
            deadline: None,
        };
        (shell, host)
    }

    fn read_all(fd: &OwnedFd) -> std::string::String {
        let mut got = std::vec::Vec::new();
        let mut buf = [0u8; 4096];
        while let Ok(n @ 1..) = rustix::io::read(fd, &mut buf) {
            got.extend_from_slice(&buf[..n]);
        }
        std::string::String::from_utf8_lossy(&got).into_owned()
    }

    #[test]
    fn the_shell_is_done_once_it_exited_and_all_it_wrote_crossed_over() {
        let (mut shell, host) = shell(c"echo one; echo two; exit 3");
        let (mut link, _r) = link();
        Reactor::new(None).run(&mut link, &mut [&mut shell]);
        assert_eq!(shell.ended().unwrap().exit, Exit::Exited(3));
        // The PTY's ONLCR ends the lines as a raw terminal needs.
        assert_eq!(read_all(&host), "motd\r\none\r\ntwo\r\n");
    }

    #[test]
    fn a_stop_hangs_the_shell_up() {
        let (mut shell, host) = shell(c"exec sleep 60");
        let (mut link, _r) = link();
        /// Asks the run to stop once the terminal's first bytes (the MOTD)
        /// reached the host: the shell is running by then.
        struct StopWhenReady<'a>(&'a OwnedFd, bool);
        impl Source for StopWhenReady<'_> {
            fn rank(&self) -> Rank {
                Rank::Relay
            }
            fn interests<'s>(&'s self, _link: &Link, out: &mut Interests<'s>) {
                if !self.1 {
                    out.add(self.0.as_fd(), PollFlags::IN, 0);
                }
            }
            fn on_ready(&mut self, _: u8, _: PollFlags, ctx: &mut Ctx<'_>) {
                ctx.stop_run();
                self.1 = true;
            }
            fn done(&self) -> bool {
                self.1
            }
        }
        let mut stopper = StopWhenReady(&host, false);
        Reactor::new(None).run(&mut link, &mut [&mut shell, &mut stopper]);
        let signal = linux_raw_sys::general::SIGHUP as u8;
        assert!(matches!(shell.ended().unwrap().exit, Exit::Signaled { signal: s, .. } if s == signal));
    }

    #[test]
    fn busybox_is_where_the_host_packs_it() {
        assert_eq!(super::BUSYBOX.to_str(), Ok(guestinit::proto::path::BUSYBOX));
    }

    #[test]
    fn the_motd_is_one_terminal_line() {
        let mut buf = [0u8; 256];
        let line = super::motd_line(&mut buf, false);
        let text = std::str::from_utf8(line).unwrap();
        assert!(text.starts_with("guestinit shell: Linux "), "{text}");
        let cpus = text.ends_with(" CPUs\r\n") || text.ends_with(" CPU\r\n");
        assert!(text.contains(" MiB, ") && cpus, "{text}");
        assert_eq!(text.matches('\n').count(), 1);
    }
}
