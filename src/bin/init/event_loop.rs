//! The one poll loop of a run: the payload's stdout and stderr pipes, the
//! signalfd and the bulk port. A pipe is polled only while a buffer is free
//! for what it holds, so a slow host slows the payload and loses nothing.
//! New sources (scheduler pidfd, stats relay, trace_pipe, hvc0) are new
//! variants of [`Source`].

use crate::boot::Outbox;
use crate::clock;
use crate::console::warning;
use crate::payload::Payload;
use guestinit::fmt::ErrnoText;
use guestinit::outbox::Pumped;
use guestinit::sys::process::{wait4, Child, Reaped};
use guestinit::sys::signal::{signalfd_signo, SIGNALFD_INFO_LEN};
use guestinit::wire::Tag;
use heapless::Vec;
use linux_raw_sys::general::SIGCHLD;
use rustix::event::{poll, PollFd, PollFlags};
use rustix::fd::OwnedFd;
use rustix::io::Errno;

/// Buffers kept back from the pipes so that control frames always find one.
const RESERVED: usize = 2;
/// After the payload exits, how long what it left behind may keep its
/// output pipes open before its process group is killed.
pub const DRAIN_GRACE_MS: u64 = 2000;
/// After that kill, how long until the pipes are closed regardless (a
/// process that left the group can hold them forever).
pub const DRAIN_KILL_MS: u64 = 1000;

/// After SIGTERM, SIGINT or SIGPWR reaches PID 1 and is forwarded, how long
/// the payload has to exit before its process group is killed.
pub const STOP_GRACE_MS: u64 = 5000;

/// What a finished run produced.
pub struct Outcome {
    pub reaped: Reaped,
    pub exit_ns: u64,
}

#[derive(Clone, Copy)]
enum Source {
    Pipe(usize),
    Signals,
    Port,
}

struct Pipe {
    fd: Option<OwnedFd>,
    tag: Tag,
}

/// Runs until the payload has exited and its output has been queued.
pub fn run(outbox: &mut Outbox<'_>, payload: Payload, signals: &OwnedFd) -> Outcome {
    let mut pipes = [
        Pipe {
            fd: Some(payload.stdout),
            tag: Tag::SOUT,
        },
        Pipe {
            fd: Some(payload.stderr),
            tag: Tag::SERR,
        },
    ];
    let mut ended: Option<Outcome> = None;
    let mut drain = Drain::Waiting;
    let mut stop: Option<u64> = None;
    loop {
        let open = pipes.iter().any(|p| p.fd.is_some());
        match (&ended, open) {
            (Some(_), false) => break,
            (Some(o), true) => drain.step(o.exit_ns, payload.pid, &mut pipes),
            (None, _) => enforce_stop(&mut stop, payload.pid),
        }
        let mut sources: Vec<Source, 8> = Vec::new();
        let mut fds: Vec<PollFd<'_>, 8> = Vec::new();
        let readable = outbox.spare() > RESERVED;
        for (i, pipe) in pipes.iter().enumerate() {
            if let (Some(fd), true) = (&pipe.fd, readable) {
                let _ = sources.push(Source::Pipe(i));
                let _ = fds.push(PollFd::new(fd, PollFlags::IN));
            }
        }
        let _ = sources.push(Source::Signals);
        let _ = fds.push(PollFd::new(signals, PollFlags::IN));
        if !outbox.is_empty() {
            let _ = sources.push(Source::Port);
            let _ = fds.push(PollFd::from_borrowed_fd(outbox.sink().fd(), PollFlags::OUT));
        }
        let timeout = match &ended {
            Some(o) => Some(drain.deadline(o.exit_ns)),
            None => stop,
        };
        match poll_until(&mut fds, timeout) {
            Ok(0) | Err(Errno::INTR) => continue,
            Ok(_) => {}
            Err(e) => {
                warning!("poll: {}", ErrnoText(e));
                clock::sleep_ms(10);
            }
        }
        let ready: Vec<Source, 8> = sources
            .iter()
            .zip(fds.iter())
            .filter(|(_, fd)| !fd.revents().is_empty())
            .map(|(s, _)| *s)
            .collect();
        drop(fds);
        for source in ready {
            match source {
                Source::Pipe(i) => forward(outbox, &mut pipes[i]),
                Source::Signals => on_signals(signals, payload.pid, &mut ended, &mut stop),
                // Writable: the pump below runs after every round anyway.
                Source::Port => {}
            }
        }
        pump(outbox);
    }
    ended.expect("the loop ends only after the payload")
}

fn poll_until(fds: &mut [PollFd<'_>], deadline_ns: Option<u64>) -> Result<usize, Errno> {
    let timeout = deadline_ns.map(clock::timespec_until);
    poll(fds, timeout.as_ref())
}

/// Moves one read of a pipe into a frame; EOF closes the pipe.
fn forward(outbox: &mut Outbox<'_>, pipe: &mut Pipe) {
    let Some(fd) = &pipe.fd else { return };
    let Some(id) = outbox.reserve() else { return };
    match rustix::io::read(fd, outbox.payload_area(&id)) {
        Ok(0) => {
            outbox.release(id);
            pipe.fd = None;
        }
        Ok(n) => outbox.commit(id, pipe.tag, n),
        Err(Errno::AGAIN | Errno::INTR) => outbox.release(id),
        Err(e) => {
            outbox.release(id);
            warning!("read payload {}: {}", pipe.tag, ErrnoText(e));
            pipe.fd = None;
        }
    }
}

/// Writes what the port takes now. A port that fails for good loses the
/// queued output, loudly, rather than wedging the run.
pub fn pump(outbox: &mut Outbox<'_>) {
    match outbox.pump() {
        Ok(Pumped::Empty | Pumped::Blocked) => {}
        Err(e) => {
            warning!(
                "bulk port write failed ({}): queued output dropped",
                ErrnoText(e)
            );
            outbox.discard();
        }
    }
}

fn on_signals(
    signals: &OwnedFd,
    payload: i32,
    ended: &mut Option<Outcome>,
    stop: &mut Option<u64>,
) {
    let mut record = [0u8; SIGNALFD_INFO_LEN];
    while let Ok(SIGNALFD_INFO_LEN) = rustix::io::read(signals, &mut record) {
        match signalfd_signo(&record) {
            SIGCHLD => reap(payload, ended),
            signo => request_stop(signo, payload, stop),
        }
    }
}

/// SIGTERM, SIGINT (Ctrl-Alt-Del) or SIGPWR to PID 1: an orderly shutdown.
/// The signal goes on to the payload's process group; the run then ends
/// as usual when the payload exits, or when `enforce_stop` kills it at the
/// deadline kept in `stop`.
fn request_stop(signo: u32, payload: i32, stop: &mut Option<u64>) {
    warning!("signal {signo} received: stopping the payload");
    if let (Some(pgid), Some(sig)) = (
        rustix::process::Pid::from_raw(payload),
        rustix::process::Signal::from_named_raw(signo as i32),
    ) {
        let _ = rustix::process::kill_process_group(pgid, sig);
    }
    stop.get_or_insert(clock::now_ns() + STOP_GRACE_MS * 1_000_000);
}

/// Kills the payload's group once the stop deadline has passed, once.
fn enforce_stop(stop: &mut Option<u64>, payload: i32) {
    if stop.is_some_and(|deadline| clock::now_ns() >= deadline) {
        warning!("payload still running {STOP_GRACE_MS} ms after the stop signal: killing it");
        kill_group(payload);
        *stop = None;
    }
}

fn kill_group(pgid: i32) {
    if let Some(pgid) = rustix::process::Pid::from_raw(pgid) {
        let _ = rustix::process::kill_process_group(pgid, rustix::process::Signal::KILL);
    }
}

/// Reaps every child that has exited: the payload's status is kept, orphans
/// re-parented to PID 1 are just collected.
fn reap(payload: i32, ended: &mut Option<Outcome>) {
    while let Ok(Some(child)) = wait4(Child::Any, false) {
        if child.pid == payload {
            *ended = Some(Outcome {
                reaped: child,
                exit_ns: clock::now_ns(),
            });
        }
    }
}

/// The bounded wait for EOF after the payload exits.
enum Drain {
    Waiting,
    Killed,
}

impl Drain {
    fn deadline(&self, exit_ns: u64) -> u64 {
        let ms = match self {
            Drain::Waiting => DRAIN_GRACE_MS,
            Drain::Killed => DRAIN_GRACE_MS + DRAIN_KILL_MS,
        };
        exit_ns + ms * 1_000_000
    }

    fn step(&mut self, exit_ns: u64, pgid: i32, pipes: &mut [Pipe]) {
        if clock::now_ns() < self.deadline(exit_ns) {
            return;
        }
        match self {
            Drain::Waiting => {
                warning!("payload exited but its output is still open after {DRAIN_GRACE_MS} ms: killing its process group");
                if let Some(pgid) = rustix::process::Pid::from_raw(pgid) {
                    let _ =
                        rustix::process::kill_process_group(pgid, rustix::process::Signal::KILL);
                }
                *self = Drain::Killed;
            }
            Drain::Killed => {
                warning!("payload output still open {DRAIN_KILL_MS} ms after the kill: closing it");
                for pipe in pipes {
                    pipe.fd = None;
                }
            }
        }
    }
}
