//! The sched_ext scheduler as a reactor source: its log framed as SCLG
//! under its own quota, the liveness and attach waits on a 100 ms timer,
//! its death during the run (SCDX, LIFE SchedulerDied, the run stopped),
//! and its ordered stop at cleanup (SIGINT, SIGKILL after a grace, a
//! bounded reap). `setup` prepares and starts it; `AttachWait` runs the
//! attach wait as a reactor run of its own, before the payload exists.

pub mod setup;

use crate::clock;
use crate::console::warning;
use crate::link::Link;
use crate::output::Output;
use crate::reactor::{Ctx, Interests, Rank, Source};
use core::fmt::Write;
use guestinit::fmt::{Lossy, SliceWriter};
use guestinit::outbox::Quota;
use guestinit::proto;
use guestinit::sys::process::{Exit, Reaped};
use guestinit::wire::msg::Phase;
use guestinit::wire::Tag;
use rustix::event::PollFlags;
use rustix::fd::OwnedFd;
use rustix::process::{kill_process, Pid, Signal};

/// The scheduler log's share of the pool, beside the payload's.
pub const QUOTA: Quota = Quota { lane: 2, max: 2 };
/// It must still live this long after its start (ktstr's liveness check).
pub const LIVENESS_MS: u64 = 1000;
/// How often sysfs is read while waiting for the attach.
const CHECK_MS: u64 = 100;
/// After SIGINT, how long it has to unregister before SIGKILL.
pub const KILL_GRACE_MS: u64 = 3000;
/// After SIGKILL (or its exit), how long until it is given up on and its
/// log closed.
pub const REAP_MS: u64 = 3000;

const MS: u64 = 1_000_000;

/// Where the scheduler stands.
#[derive(Clone, Copy)]
enum State {
    /// Started at `since`; it must attach by `deadline`.
    Waiting { since: u64, deadline: u64, next_check: u64 },
    Attached,
    /// It exited or timed out before attaching; the payload does not run.
    NotAttached,
    /// Cleanup: SIGKILL at `kill_at` unless `killed`; given up at `give_up_at`.
    Stopping { kill_at: u64, killed: bool, give_up_at: u64 },
}

/// The running scheduler.
pub struct Sched {
    pid: i32,
    log: Output,
    state: State,
    exit: Option<Exit>,
    /// It did not attach, or it died during the run.
    failed: bool,
    /// The end marker has gone out: nothing more comes from it.
    over: bool,
    /// The sched_ext sysfs directory (a scratch directory in tests).
    sysfs: &'static str,
}

impl Sched {
    /// The scheduler started as `pid`, its log on `stdout` and `stderr`;
    /// it must attach within `attach_ms`.
    pub fn new(pid: i32, stdout: OwnedFd, stderr: OwnedFd, attach_ms: u64, sysfs: &'static str) -> Sched {
        let now = clock::now_ns();
        Sched {
            pid,
            log: Output::new([stdout, stderr], [Tag::SCLG, Tag::SCLG], QUOTA),
            state: State::Waiting {
                since: now,
                deadline: now + attach_ms.max(LIVENESS_MS) * MS,
                next_check: now + LIVENESS_MS * MS,
            },
            exit: None,
            failed: false,
            over: false,
            sysfs,
        }
    }

    /// The attach wait is over, either way.
    pub fn decided(&self) -> bool {
        !matches!(self.state, State::Waiting { .. })
    }

    /// It did not attach, or it died during the run.
    pub fn failed(&self) -> bool {
        self.failed
    }

    fn signal(&self, sig: Signal) {
        if let (Some(pid), None) = (Pid::from_raw(self.pid), self.exit) {
            let _ = kill_process(pid, sig);
        }
    }

    fn log_open(&self) -> bool {
        self.log.open()
    }

    /// Once it has exited and its log is closed: the end marker.
    fn finish_if_over(&mut self, link: &mut Link) {
        if !self.over && self.exit.is_some() && !self.log_open() {
            link.send(Tag::SCLG, proto::sched::LOG_END.as_bytes());
            self.over = true;
        }
    }

    fn check_attach(&mut self, link: &mut Link) {
        let State::Waiting { since, deadline, .. } = self.state else { return };
        let now = clock::now_ns();
        let mut state = [0u8; 32];
        let state = read_trimmed(self.sysfs, "state", &mut state);
        let mut ops = [0u8; 64];
        if state == b"enabled" && !read_trimmed(self.sysfs, "root/ops", &mut ops).is_empty() {
            self.state = State::Attached;
            link.send(Tag::LIFE, &[Phase::SchedulerAttached as u8]);
        } else if now >= deadline {
            let secs = (now - since) / (1000 * MS);
            not_attached(link, format_args!("sched_ext state is `{}` after {secs} s", Lossy(state)));
            self.state = State::NotAttached;
            self.failed = true;
        } else if let State::Waiting { next_check, .. } = &mut self.state {
            *next_check = now + CHECK_MS * MS;
        }
    }

    /// Its exit: before the attach, the reason it did not; while attached,
    /// a death that stops the run.
    fn exited(&mut self, exit: Exit, ctx: &mut Ctx<'_>) {
        match self.state {
            State::Waiting { .. } => {
                not_attached(ctx.link, format_args!("the scheduler {} before attaching", ExitText(exit)));
                self.state = State::NotAttached;
                self.failed = true;
            }
            State::Attached => {
                self.failed = true;
                warning!("the scheduler {} during the run: stopping the payload", ExitText(exit));
                ctx.link.send(Tag::SCDX, &exit.shell_code().to_le_bytes());
                ctx.link.send(Tag::LIFE, &[Phase::SchedulerDied as u8]);
                ctx.stop_run();
            }
            State::NotAttached | State::Stopping { .. } => {}
        }
    }
}

impl Source for Sched {
    fn rank(&self) -> Rank {
        Rank::Scheduler
    }

    fn start(&mut self, ctx: &mut Ctx<'_>) {
        if self.exit.is_none() {
            ctx.watch_child(self.pid);
        }
    }

    fn interests<'s>(&'s self, link: &Link, out: &mut Interests<'s>) {
        self.log.interests(link, out);
    }

    fn on_ready(&mut self, token: u8, _events: PollFlags, ctx: &mut Ctx<'_>) {
        self.log.on_ready(token, ctx.link);
        self.finish_if_over(ctx.link);
    }

    fn deadline(&self) -> Option<u64> {
        match self.state {
            State::Waiting { next_check, .. } => Some(next_check),
            State::Stopping { kill_at, killed: false, .. } => Some(kill_at),
            State::Stopping { give_up_at, .. } if !self.over => Some(give_up_at),
            _ => None,
        }
    }

    fn on_deadline(&mut self, ctx: &mut Ctx<'_>) {
        match &mut self.state {
            State::Waiting { .. } => self.check_attach(ctx.link),
            State::Stopping { killed: killed @ false, .. } => {
                *killed = true;
                // It may have exited with its log still held open by another.
                if self.exit.is_none() {
                    warning!("the scheduler ignored SIGINT for {KILL_GRACE_MS} ms: SIGKILL");
                    self.signal(Signal::KILL);
                }
            }
            State::Stopping { .. } => self.give_up(ctx.link),
            _ => {}
        }
    }

    fn on_exit(&mut self, reaped: Reaped, ctx: &mut Ctx<'_>) {
        self.exit = Some(reaped.exit);
        self.exited(reaped.exit, ctx);
        self.finish_if_over(ctx.link);
    }

    /// A stop before the attach ends the wait: the payload will not run.
    fn on_stop(&mut self, ctx: &mut Ctx<'_>) {
        if let State::Waiting { .. } = self.state {
            not_attached(ctx.link, format_args!("the run was stopped before the scheduler attached"));
            self.state = State::NotAttached;
            self.failed = true;
        }
    }

    /// After the payload: SIGINT so it unregisters from sched_ext cleanly;
    /// its exit from here on is no death.
    fn cleanup(&mut self, ctx: &mut Ctx<'_>) {
        let now = clock::now_ns();
        let kill_at = now + KILL_GRACE_MS * MS;
        self.state = match self.exit {
            None => State::Stopping { kill_at, killed: false, give_up_at: kill_at + REAP_MS * MS },
            Some(_) => State::Stopping { kill_at: now, killed: true, give_up_at: now + REAP_MS * MS },
        };
        self.signal(Signal::INT);
        self.finish_if_over(ctx.link);
    }

    fn done(&self) -> bool {
        self.over
    }
}

impl Sched {
    /// Not reaped, or its log still open, long after SIGKILL: close the log
    /// and end without it.
    fn give_up(&mut self, link: &mut Link) {
        warning!("the scheduler's log is still open {REAP_MS} ms after it ended or was killed: closing it");
        self.log.close();
        self.exit.get_or_insert(Exit::Signaled { signal: Signal::KILL.as_raw() as u8, core_dumped: false });
        self.finish_if_over(link);
    }
}

/// The attach wait as the workload of a reactor run of its own: the run
/// ends once the scheduler has attached or failed to.
pub struct AttachWait<'a>(pub &'a mut Sched);

impl Source for AttachWait<'_> {
    fn rank(&self) -> Rank {
        Rank::Workload
    }

    fn start(&mut self, ctx: &mut Ctx<'_>) {
        self.0.start(ctx);
    }

    fn interests<'s>(&'s self, link: &Link, out: &mut Interests<'s>) {
        self.0.interests(link, out);
    }

    fn on_ready(&mut self, token: u8, events: PollFlags, ctx: &mut Ctx<'_>) {
        self.0.on_ready(token, events, ctx);
    }

    fn deadline(&self) -> Option<u64> {
        self.0.deadline()
    }

    fn on_deadline(&mut self, ctx: &mut Ctx<'_>) {
        self.0.on_deadline(ctx);
    }

    fn on_exit(&mut self, reaped: Reaped, ctx: &mut Ctx<'_>) {
        self.0.on_exit(reaped, ctx);
    }

    fn on_stop(&mut self, ctx: &mut Ctx<'_>) {
        self.0.on_stop(ctx);
    }

    fn done(&self) -> bool {
        self.0.decided()
    }
}

/// LIFE SchedulerNotAttached with its reason, also on COM2.
fn not_attached(link: &mut Link, reason: core::fmt::Arguments<'_>) {
    warning!("{reason}");
    let mut buf = [0u8; 128];
    let mut w = SliceWriter::new(&mut buf);
    let _ = w.write_char(Phase::SchedulerNotAttached as u8 as char);
    let _ = w.write_fmt(reason);
    link.send(Tag::LIFE, w.written());
}

/// `exited with N` or `was killed by signal N` (as i32: one integer
/// formatter fewer in the init).
struct ExitText(Exit);

impl core::fmt::Display for ExitText {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self.0 {
            Exit::Exited(code) => write!(f, "exited with {}", i32::from(code)),
            Exit::Signaled { signal, .. } => write!(f, "was killed by signal {}", i32::from(signal)),
        }
    }
}

/// The first line of `dir/name`, without blanks around it; empty when
/// unreadable.
fn read_trimmed<'b>(dir: &str, name: &str, buf: &'b mut [u8]) -> &'b [u8] {
    let mut path = heapless::Vec::<u8, 128>::new();
    for part in [dir, "/", name] {
        let _ = path.extend_from_slice(part.as_bytes());
    }
    let n = crate::small_file::read_prefix(&path[..], buf).unwrap_or(0);
    let text = &buf[..n];
    let end = text.iter().position(|&b| b == b'\n').unwrap_or(n);
    text[..end].trim_ascii()
}

#[cfg(test)]
mod tests;
