//! The sched_ext scheduler as a reactor source: its log framed as SCLG
//! under its own quota, the liveness and attach waits on a 100 ms timer,
//! its death during the run (SCDX, LIFE SchedulerDied, the run stopped),
//! and its ordered stop at cleanup (SIGINT, SIGKILL after a grace, a
//! bounded reap). `setup` prepares and starts it; `AttachWait` runs the
//! attach wait as a reactor run of its own, before the payload exists.
//! Once served (`serve`), the payload's requests on the control socket
//! (`ctl`) stop, restart or replace it and ask its status; `client` is
//! the payload's side, the init binary run as `/init sched ...`.

pub mod client;
pub mod ctl;
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
use guestinit::proto::sched_ctl::{Code, Request};
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
/// After SIGINT, how long it has to unregister before SIGKILL: bpfland
/// takes 1.1 s under TCG (a fixed 1 s of it), more on a loaded machine.
pub const KILL_GRACE_MS: u64 = 8000;
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
    /// Cleanup, or a stop the payload asked for: SIGKILL at `kill_at`
    /// unless `killed`; given up at `give_up_at`; sysfs read at
    /// `next_check` once it has exited.
    Stopping { kill_at: u64, killed: bool, give_up_at: u64, next_check: u64 },
    /// Stopped at the payload's request, sched_ext disabled: no process,
    /// and no error (a start may follow).
    Stopped,
}

/// A request's verb, apart from its arguments (which stay in `ctl`).
#[derive(Clone, Copy)]
enum Verb {
    Stop,
    Start,
    Status,
}

/// The payload's change under way (the death monitor's rule: the exit of
/// a scheduler being stopped on request is no death).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Asked {
    /// Stop, and answer when sched_ext is disabled.
    Stop,
    /// Stop if running, then start, and answer when it has attached.
    Start,
    /// A failed start being cleared away; its answer has gone.
    Settle,
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
    /// The payload's control socket, once served.
    ctl: Option<ctl::Ctl>,
    asked: Option<Asked>,
    /// When the change under way was asked for.
    asked_at: u64,
    /// What a start on request needs again.
    attach_ms: u64,
    cgroup: Option<setup::PathBuf>,
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
            ctl: None,
            asked: None,
            asked_at: 0,
            attach_ms,
            cgroup: None,
        }
    }

    /// Opens the control socket: the payload may ask from now on.
    pub fn serve(&mut self) {
        self.ctl = ctl::Ctl::listen();
    }

    /// No change is under way: a request may be read.
    fn settled(&self) -> bool {
        self.asked.is_none() && matches!(self.state, State::Attached | State::Stopped)
    }

    /// Answers the request being served, if any.
    fn reply(&mut self, code: Code, text: core::fmt::Arguments<'_>) {
        if let Some(ctl) = &mut self.ctl {
            ctl.reply(code, text);
        }
    }

    /// Ms since the request.
    fn since_asked(&self) -> u64 {
        (clock::now_ns() - self.asked_at) / MS
    }

    /// The request just read whole: answered now, or a change begun.
    fn on_request(&mut self, ctx: &mut Ctx<'_>) {
        let Some(Ok(request)) = self.ctl.as_ref().map(ctl::Ctl::request) else { return };
        let verb = match request {
            Request::Status => Verb::Status,
            Request::Stop => Verb::Stop,
            Request::Start { .. } => Verb::Start,
        };
        self.asked_at = clock::now_ns();
        let running = matches!(self.state, State::Attached);
        match verb {
            Verb::Status if running => {
                let (mut state, mut ops) = ([0u8; 32], [0u8; 64]);
                let state = read_trimmed(self.sysfs, "state", &mut state);
                let ops = read_trimmed(self.sysfs, "root/ops", &mut ops);
                let pid = self.pid;
                self.reply(
                    Code::Ok,
                    format_args!("running: pid {pid}, sched_ext {}, ops {}", Lossy(state), Lossy(ops)),
                );
            }
            Verb::Status | Verb::Stop if !running => {
                let mut state = [0u8; 32];
                let state = read_trimmed(self.sysfs, "state", &mut state);
                self.reply(Code::NotRunning, format_args!("not running: sched_ext {}", Lossy(state)));
            }
            Verb::Start if !running => {
                self.asked = Some(Asked::Start);
                self.start_again(ctx);
            }
            Verb::Start => self.stop_asked(Asked::Start),
            Verb::Stop | Verb::Status => self.stop_asked(Asked::Stop),
        }
    }

    /// An asked-for stop whose scheduler has exited and log closed: sysfs
    /// is read until it says `disabled`.
    fn stop_checking(&self) -> bool {
        self.asked.is_some() && self.exit.is_some() && !self.log.open()
    }

    /// The cleanup's stop, asked for by the payload: no death, no END.
    fn stop_asked(&mut self, asked: Asked) {
        self.asked = Some(asked);
        self.state = stopping(self.exit.is_some());
        self.signal(Signal::INT);
    }

    /// An asked-for stop, as far as it has gone: once the scheduler has
    /// exited, its log is closed and sched_ext reads `disabled` (within the
    /// stop's bounds), the payload is answered or the start follows.
    fn stop_progress(&mut self, ctx: &mut Ctx<'_>) {
        let State::Stopping { give_up_at, next_check, .. } = &mut self.state else { return };
        let Some(asked) = self.asked else { return };
        let now = clock::now_ns();
        if self.exit.is_none() || self.log.open() || now < *next_check {
            return;
        }
        let mut state = [0u8; 32];
        let state = read_trimmed(self.sysfs, "state", &mut state);
        let disabled = state == b"disabled";
        if !disabled && now < *give_up_at {
            *next_check = now + CHECK_MS * MS;
            return;
        }
        self.state = State::Stopped;
        self.asked = None;
        let (pid, ms) = (self.pid, self.since_asked());
        match (disabled, asked) {
            (false, Asked::Settle) => {}
            (false, _) => {
                self.reply(Code::Failed, format_args!("failed: sched_ext is `{}` {ms} ms after the stop", Lossy(state)))
            }
            (true, Asked::Stop) => self.reply(Code::Ok, format_args!("detached: pid {pid} stopped, sched_ext disabled, in {ms} ms")),
            (true, Asked::Settle) => {}
            (true, Asked::Start) => {
                self.asked = Some(Asked::Start);
                self.start_again(ctx);
            }
        }
    }

    /// Starts /scheduler again, with the request's arguments or else
    /// /sched_args, in its cgroup; the attach wait follows.
    fn start_again(&mut self, ctx: &mut Ctx<'_>) {
        let Some(ctl) = &mut self.ctl else { return };
        let (request, rest) = ctl.split_buf();
        let argv = match Request::decode(request) {
            Ok(Request::Start { args }) if !args.is_empty() => {
                setup::argv_of(args.bytes()).ok_or(setup::SetupError::Args(rustix::io::Errno::TOOBIG))
            }
            _ => setup::read_args(rest),
        };
        let started = argv.and_then(|argv| setup::spawn_in(&argv, self.cgroup.as_ref()));
        match started {
            Ok((pid, out, err)) => {
                let now = clock::now_ns();
                self.pid = pid;
                self.exit = None;
                self.log = Output::new([out, err], [Tag::SCLG, Tag::SCLG], QUOTA);
                self.state = State::Waiting {
                    since: now,
                    deadline: now + self.attach_ms.max(LIVENESS_MS) * MS,
                    next_check: now + LIVENESS_MS * MS,
                };
                ctx.watch_child(pid);
            }
            Err(e) => {
                warning!("the scheduler's start on request: {e}");
                self.asked = None;
                self.reply(Code::Failed, format_args!("failed: {e}"));
            }
        }
    }

    /// The attach wait of a start on request is over: answered; one that
    /// failed is cleared away, killed at once if it still lives.
    fn start_decided(&mut self, failure: Option<core::fmt::Arguments<'_>>) {
        let (pid, ms) = (self.pid, self.since_asked());
        match failure {
            None => {
                self.asked = None;
                self.reply(Code::Ok, format_args!("attached: pid {pid}, {ms} ms after the request"));
            }
            Some(why) => {
                warning!("the scheduler's start on request failed: {why}");
                self.reply(Code::Failed, format_args!("failed: {why}"));
                self.asked = Some(Asked::Settle);
                self.state = stopping(true);
                self.signal(Signal::KILL);
            }
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
        let restartable = self.asked.is_some() || matches!(self.state, State::Stopped);
        if !self.over && self.exit.is_some() && !self.log_open() && !restartable {
            link.send(Tag::SCLG, proto::sched::LOG_END.as_bytes());
            self.over = true;
        }
    }

    fn check_attach(&mut self, link: &mut Link) {
        let State::Waiting { since, deadline, next_check } = self.state else { return };
        let now = clock::now_ns();
        if now < next_check {
            return;
        }
        let mut state = [0u8; 32];
        let state = read_trimmed(self.sysfs, "state", &mut state);
        let mut ops = [0u8; 64];
        if state == b"enabled" && !read_trimmed(self.sysfs, "root/ops", &mut ops).is_empty() {
            self.state = State::Attached;
            link.send(Tag::LIFE, &[Phase::SchedulerAttached as u8]);
            if self.asked.is_some() {
                self.start_decided(None);
            }
        } else if now >= deadline {
            let secs = (now - since) / (1000 * MS);
            let why = format_args!("sched_ext state is `{}` after {secs} s", Lossy(state));
            if self.asked.is_some() {
                return self.start_decided(Some(why));
            }
            not_attached(link, why);
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
            State::Waiting { .. } if self.asked.is_some() => {
                self.start_decided(Some(format_args!("the scheduler {} before attaching", ExitText(exit))));
            }
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
                self.reply(Code::Refused, format_args!("refused: the scheduler died"));
                self.ctl = None;
            }
            State::NotAttached | State::Stopping { .. } | State::Stopped => {}
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
        if let Some(ctl) = &self.ctl {
            ctl.interests(self.settled(), out);
        }
    }

    fn on_ready(&mut self, token: u8, _events: PollFlags, ctx: &mut Ctx<'_>) {
        match token {
            ctl::LISTENER | ctl::CONN => {
                let event = self.ctl.as_mut().map(|c| c.on_ready(token));
                if let Some(ctl::Event::Request) = event {
                    self.on_request(ctx);
                }
            }
            _ => self.log.on_ready(token, ctx.link),
        }
        self.stop_progress(ctx);
        self.finish_if_over(ctx.link);
    }

    fn deadline(&self) -> Option<u64> {
        let state = match self.state {
            State::Waiting { next_check, .. } => Some(next_check),
            State::Stopping { next_check, .. } if self.stop_checking() => Some(next_check),
            State::Stopping { kill_at, killed: false, .. } => Some(kill_at),
            State::Stopping { give_up_at, .. } if !self.over => Some(give_up_at),
            _ => None,
        };
        let ctl = self.ctl.as_ref().and_then(ctl::Ctl::deadline);
        state.into_iter().chain(ctl).min()
    }

    fn on_deadline(&mut self, ctx: &mut Ctx<'_>) {
        if let Some(ctl) = &mut self.ctl {
            ctl.on_deadline();
        }
        let (now, checking) = (clock::now_ns(), self.stop_checking());
        match &mut self.state {
            State::Waiting { .. } => self.check_attach(ctx.link),
            State::Stopping { .. } if checking => self.stop_progress(ctx),
            State::Stopping { kill_at, .. } if now < *kill_at => {}
            State::Stopping { killed: killed @ false, .. } => {
                *killed = true;
                // It may have exited with its log still held open by another.
                if self.exit.is_none() {
                    warning!("the scheduler ignored SIGINT for {KILL_GRACE_MS} ms: SIGKILL");
                    self.signal(Signal::KILL);
                }
            }
            State::Stopping { give_up_at, .. } if now < *give_up_at => {}
            State::Stopping { .. } => {
                self.give_up(ctx.link);
                self.stop_progress(ctx);
            }
            _ => {}
        }
    }

    fn on_exit(&mut self, reaped: Reaped, ctx: &mut Ctx<'_>) {
        self.exit = Some(reaped.exit);
        self.exited(reaped.exit, ctx);
        self.stop_progress(ctx);
        self.finish_if_over(ctx.link);
    }

    /// A stop before the boot's attach ends the wait: the payload will not run.
    fn on_stop(&mut self, ctx: &mut Ctx<'_>) {
        if let (State::Waiting { .. }, None) = (self.state, self.asked) {
            not_attached(ctx.link, format_args!("the run was stopped before the scheduler attached"));
            self.state = State::NotAttached;
            self.failed = true;
        }
    }

    /// After the payload: SIGINT so it unregisters from sched_ext cleanly;
    /// its exit from here on is no death. A request still served is
    /// refused, and one stopped on request just ends its log.
    fn cleanup(&mut self, ctx: &mut Ctx<'_>) {
        self.reply(Code::Refused, format_args!("refused: the run is ending"));
        self.ctl = None;
        self.asked = None;
        self.state = stopping(self.exit.is_some());
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

/// Starts /scheduler with /sched_args, in `cgroup` if given; its log's
/// start marker goes out first.
pub fn start(link: &mut Link, cgroup: Option<setup::PathBuf>, attach_ms: u64) -> Result<Sched, setup::SetupError> {
    let argv = setup::read_args(setup::boot_args())?;
    let (pid, out, err) = setup::spawn_in(&argv, cgroup.as_ref())?;
    link.send(Tag::SCLG, proto::sched::LOG_START.as_bytes());
    let mut sched = Sched::new(pid, out, err, attach_ms, proto::sched::SYSFS);
    sched.cgroup = cgroup;
    Ok(sched)
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

/// A stop's bounds from now: SIGINT's grace then the reap's, or only the
/// reap's (or its log's end) when it has `exited` already.
fn stopping(exited: bool) -> State {
    let now = clock::now_ns();
    let kill_at = now + KILL_GRACE_MS * MS;
    match exited {
        false => State::Stopping { kill_at, killed: false, give_up_at: kill_at + REAP_MS * MS, next_check: now },
        true => State::Stopping { kill_at: now, killed: true, give_up_at: now + REAP_MS * MS, next_check: now },
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

/// Whether sched_ext (its sysfs directory `sysfs`) has a scheduler.
pub fn enabled(sysfs: &str) -> bool {
    let mut state = [0u8; 32];
    read_trimmed(sysfs, "state", &mut state) == b"enabled"
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
