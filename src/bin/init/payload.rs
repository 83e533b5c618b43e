//! The payload: its argv from /args, started through `spawn` with stdout and
//! stderr on pipes, stdin on the host's relay or /dev/null, a session of its own (so what it
//! leaves behind can be killed as one); then, as a reactor source, its
//! output framed onto the link, its exit, and the bounded waits after it.

use crate::clock;
use crate::console::warning;
use crate::environ;
use crate::small_file::read_file;
use crate::link::Link;
use crate::output::Output;
use crate::reactor::{Ctx, Interests, Rank, Source};
use crate::spawn::{self, Command, Stdio};
use core::ffi::CStr;
use guestinit::cell::TakeOnce;
use guestinit::fmt::ErrnoText;
use guestinit::outbox::Quota;
use guestinit::parse::args::{self, ArgsError, MAX_ARGS};
use guestinit::proto;
use guestinit::sys::process::Reaped;
use guestinit::wire::Tag;
use heapless::Vec;
use rustix::event::PollFlags;
use rustix::fd::OwnedFd;
use rustix::io::Errno;
use rustix::process::{kill_process_group, Pid, Signal};

/// The payload's share of the frame pool: all but the kept-back buffers,
/// until other sources need theirs.
pub const QUOTA: Quota = Quota { lane: 1, max: 6 };

/// After the payload exits, how long what it left behind may keep its
/// output pipes open before its process group is killed.
pub const DRAIN_GRACE_MS: u64 = 2000;
/// After that kill, how long until the pipes are closed regardless (a
/// process that left the group can hold them forever).
pub const DRAIN_KILL_MS: u64 = 1000;
/// After a stop signal is forwarded, how long the payload has to exit
/// before its process group is killed.
pub const STOP_GRACE_MS: u64 = 5000;

/// The /args buffer: the file and one byte for the last terminator.
const ARGS_CAP: usize = args::MAX_BYTES + 1;

/// The file's bytes, NUL-terminated in place for execve.
static ARGS: TakeOnce<[u8; ARGS_CAP]> = TakeOnce::new([0; ARGS_CAP]);

/// Why there is no payload to run.
pub enum StartError {
    /// /args is missing or unreadable.
    Read(Errno),
    TooLong,
    TooMany,
    Args(ArgsError),
    /// /.guestinit/exec exists but cannot be read.
    Exec(Errno),
    /// /.guestinit/env or /.guestinit/cwd cannot be used.
    Environ(environ::Error),
    /// A pipe or the fork failed, or argv is too long (E2BIG).
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
            StartError::Environ(e) => write!(f, "{e}"),
            StartError::Spawn(e) => write!(f, "start the payload: {}", ErrnoText(*e)),
        }
    }
}

type Argv = Vec<&'static CStr, MAX_ARGS>;
/// 16 KiB: in .bss only the pages used are resident, where on the stack
/// every page of the frame is probed, and stays resident in PID 1.
static ARGV: TakeOnce<Argv> = TakeOnce::new(Vec::new());

/// Reads /args and starts the program it names, its stdin as `stdin` says;
/// the payload, and the init's end of its stdin when that is a pipe.
pub fn start(stdin: Stdio) -> Result<(Payload, Option<OwnedFd>), StartError> {
    let once = "the payload starts once";
    let (path, argv) = read_program(ARGS.take().expect(once), ARGV.take().expect(once))?;
    let environ = environ::read().map_err(StartError::Environ)?;
    let spawned = spawn::spawn(&Command {
        path,
        argv,
        env: &environ.vars,
        cwd: environ.cwd,
        stdin,
        stdout: Stdio::Pipe,
        stderr: Stdio::Pipe,
    })
    .map_err(StartError::Spawn)?;
    let [stdin, Some(stdout), Some(stderr)] = spawned.streams else {
        unreachable!("stdout and stderr are piped")
    };
    Ok((Payload::new(spawned.pid, stdout, stderr), stdin))
}

/// The path to execute and the argv, from /args and /.guestinit/exec, all
/// NUL-terminated in place in `buf` (the exec path in the part /args left).
fn read_program(
    buf: &'static mut [u8; ARGS_CAP],
    argv: &'static mut Argv,
) -> Result<(&'static CStr, &'static Argv), StartError> {
    // One byte stays free for the last argument's terminator.
    let len = read_file(proto::path::ARGS.as_bytes(), &mut buf[..ARGS_CAP - 1])
        .map_err(StartError::Read)?
        .ok_or(StartError::TooLong)?;
    let (text, tail) = buf.split_at_mut(len + 1);
    let argv = nul_terminate(text, argv)?;
    let path = read_exec_path(tail)?.unwrap_or(argv[0]);
    Ok((path, argv))
}

/// /.guestinit/exec, the path the host moved the program to, read into
/// `buf`; `None` without the file (ktstr's archives: argv[0] is the path).
fn read_exec_path(buf: &'static mut [u8]) -> Result<Option<&'static CStr>, StartError> {
    // One byte stays free for the path's NUL.
    let room = buf.len().saturating_sub(1);
    let len = match read_file(proto::path::EXEC.as_bytes(), &mut buf[..room]) {
        Err(Errno::NOENT) => return Ok(None),
        Err(e) => return Err(StartError::Exec(e)),
        Ok(None) => return Err(StartError::TooLong),
        Ok(Some(len)) => len,
    };
    buf[len] = 0;
    Ok(CStr::from_bytes_until_nul(buf).ok())
}

/// Checks the arguments in `text` but its last byte (which is free), ends
/// each with a NUL (NUL-separated files already are; ktstr's one per line
/// get theirs in place of the newline) and collects the strings.
fn nul_terminate(text: &'static mut [u8], argv: &'static mut Argv) -> Result<&'static Argv, StartError> {
    let len = text.len() - 1;
    let end = args::terminator(&text[..len]);
    let count = args::split(&text[..len]).map_err(StartError::Args)?.count();
    if count > MAX_ARGS {
        return Err(StartError::TooMany);
    }
    text[len] = end;
    for b in text.iter_mut().filter(|b| **b == end) {
        *b = 0;
    }
    let mut rest: &'static [u8] = text;
    for _ in 0..count {
        // Every one of the `count` arguments was NUL-terminated above.
        let Ok(arg) = CStr::from_bytes_until_nul(rest) else {
            break;
        };
        rest = &rest[arg.to_bytes().len() + 1..];
        let _ = argv.push(arg);
    }
    Ok(argv)
}

/// How the payload exited (its reaped status), and when.
pub struct PayloadExit {
    pub reaped: Reaped,
    pub exit_ns: u64,
}

/// The bounded wait for EOF after the payload exits.
enum Drain {
    Waiting,
    Killed,
}

/// The running payload as a reactor source.
pub struct Payload {
    pid: i32,
    output: Output,
    ended: Option<PayloadExit>,
    drain: Drain,
    /// When the payload's group is killed after a stop signal.
    stop_deadline: Option<u64>,
}

impl Payload {
    pub fn new(pid: i32, stdout: OwnedFd, stderr: OwnedFd) -> Payload {
        Payload {
            pid,
            output: Output::new([stdout, stderr], [Tag::SOUT, Tag::SERR], QUOTA),
            ended: None,
            drain: Drain::Waiting,
            stop_deadline: None,
        }
    }

    /// How it ended; `Some` once the reactor has run it to its end.
    pub fn ended(&self) -> Option<&PayloadExit> {
        self.ended.as_ref()
    }

    fn output_open(&self) -> bool {
        self.output.open()
    }

    fn kill_group(&self) {
        if let Some(pgid) = Pid::from_raw(self.pid) {
            let _ = kill_process_group(pgid, Signal::KILL);
        }
    }

    fn drain_deadline(&self, exit_ns: u64) -> u64 {
        let ms = match self.drain {
            Drain::Waiting => DRAIN_GRACE_MS,
            Drain::Killed => DRAIN_GRACE_MS + DRAIN_KILL_MS,
        };
        exit_ns + ms * 1_000_000
    }

    /// The drain's next step once its deadline has passed.
    fn drain_step(&mut self) {
        match self.drain {
            Drain::Waiting => {
                warning!("payload exited but its output is still open after {DRAIN_GRACE_MS} ms: killing its process group");
                self.kill_group();
                self.drain = Drain::Killed;
            }
            Drain::Killed => {
                warning!("payload output still open {DRAIN_KILL_MS} ms after the kill: closing it");
                self.output.close();
            }
        }
    }
}

impl Source for Payload {
    fn rank(&self) -> Rank {
        Rank::Workload
    }

    fn start(&mut self, ctx: &mut Ctx<'_>) {
        ctx.watch_child(self.pid);
    }

    fn interests<'s>(&'s self, link: &Link, out: &mut Interests<'s>) {
        self.output.interests(link, out);
    }

    fn on_ready(&mut self, token: u8, _events: PollFlags, ctx: &mut Ctx<'_>) {
        self.output.on_ready(token, ctx.link);
    }

    fn deadline(&self) -> Option<u64> {
        match &self.ended {
            Some(e) if self.output_open() => Some(self.drain_deadline(e.exit_ns)),
            Some(_) => None,
            None => self.stop_deadline,
        }
    }

    fn on_deadline(&mut self, _ctx: &mut Ctx<'_>) {
        if self.ended.is_some() {
            self.drain_step();
        } else {
            warning!("payload still running {STOP_GRACE_MS} ms after the stop signal: killing it");
            self.kill_group();
            self.stop_deadline = None;
        }
    }

    fn on_exit(&mut self, reaped: Reaped, _ctx: &mut Ctx<'_>) {
        self.ended = Some(PayloadExit {
            reaped,
            exit_ns: clock::now_ns(),
        });
    }

    /// Whatever asked PID 1 to stop (SIGTERM, Ctrl-Alt-Del's SIGINT,
    /// SIGPWR), the payload's group gets SIGTERM, the signal programs take
    /// as "stop in order"; the run then ends as usual when the payload
    /// exits, or at the deadline with a kill.
    fn on_stop(&mut self, _ctx: &mut Ctx<'_>) {
        if self.ended.is_some() {
            return;
        }
        if let Some(pgid) = Pid::from_raw(self.pid) {
            let _ = kill_process_group(pgid, Signal::TERM);
        }
        self.stop_deadline
            .get_or_insert(clock::now_ns() + STOP_GRACE_MS * 1_000_000);
    }

    fn done(&self) -> bool {
        self.ended.is_some() && !self.output_open()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reactor::Reactor;
    use crate::testkit::{self, collect, link, output};
    use guestinit::sys::process::Exit;

    fn sh(script: &str) -> Payload {
        let (pid, out, err) = testkit::sh(script);
        Payload::new(pid, out, err)
    }

    fn exit_of(p: &Payload) -> Exit {
        p.ended().expect("ended").reaped.exit
    }

    #[test]
    fn two_children_exiting_in_either_order_each_get_their_own_status() {
        for (first, second) in [("0", "0.3"), ("0.3", "0")] {
            let (mut link, r) = link();
            let script_a = format!("sleep {first}; echo a; exit 3");
            let script_b = format!("sleep {second}; echo b >&2; exit 5");
            let mut a = sh(&script_a);
            let mut b = sh(&script_b);
            Reactor::new(None).run(&mut link, &mut [&mut a, &mut b]);
            assert_eq!(exit_of(&a), Exit::Exited(3));
            assert_eq!(exit_of(&b), Exit::Exited(5));
            let frames = collect(link, r);
            assert_eq!(output(&frames, Tag::SOUT), b"a\n");
            assert_eq!(output(&frames, Tag::SERR), b"b\n");
        }
    }

    #[test]
    fn the_drain_deadline_fires_and_kills_what_holds_the_output_open() {
        let (mut link, r) = link();
        // The background sleep keeps stdout open long after the shell exits.
        let mut p = sh("sleep 60 & echo started; exit 0");
        let t0 = std::time::Instant::now();
        Reactor::new(None).run(&mut link, &mut [&mut p]);
        let waited = t0.elapsed().as_millis() as u64;
        assert_eq!(exit_of(&p), Exit::Exited(0));
        assert!(
            (crate::payload::DRAIN_GRACE_MS..30_000).contains(&waited),
            "the run ended after {waited} ms: at the grace, not when the sleep ended"
        );
        assert_eq!(output(&collect(link, r), Tag::SOUT), b"started\n");
    }


    fn argv_of(text: &[u8]) -> Result<&'static Argv, StartError> {
        let buf: &'static mut [u8] = Box::leak(std::vec![0u8; text.len() + 1].into_boxed_slice());
        buf[..text.len()].copy_from_slice(text);
        nul_terminate(buf, Box::leak(Box::new(Vec::new())))
    }

    #[test]
    fn args_become_nul_terminated_strings_empty_ones_included() {
        let argv = argv_of(b"/bin/sh\n-c\n\necho hi\n").ok().unwrap();
        let got: std::vec::Vec<&[u8]> = argv.iter().map(|a| a.to_bytes()).collect();
        assert_eq!(got, [&b"/bin/sh"[..], b"-c", b"", b"echo hi"]);
        let last = argv_of(b"prog\nlast-without-newline").ok().unwrap();
        assert_eq!(last[1].to_bytes(), b"last-without-newline");
    }

    #[test]
    fn a_nul_separated_file_keeps_newlines_inside_arguments() {
        let argv = argv_of(b"/bin/sh\0-c\0echo a\necho b\0").ok().unwrap();
        let got: std::vec::Vec<&[u8]> = argv.iter().map(|a| a.to_bytes()).collect();
        assert_eq!(got, [&b"/bin/sh"[..], b"-c", b"echo a\necho b"]);
    }

    #[test]
    fn too_many_or_no_arguments_are_refused() {
        let many = "x\n".repeat(MAX_ARGS + 1);
        assert!(matches!(argv_of(many.as_bytes()), Err(StartError::TooMany)));
        assert!(matches!(
            argv_of(b""),
            Err(StartError::Args(ArgsError::NoProgram))
        ));
    }
}
