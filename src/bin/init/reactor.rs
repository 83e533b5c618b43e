//! The one poll loop of PID 1. Every event source (the payload's pipes, and
//! later the scheduler, the relays, hvc0) is a [`Source`] in one table; each
//! child is watched through a pidfd in a table keyed by pid that hands its
//! status to its owner, and orphans are reaped on SIGCHLD; one timer, the
//! earliest deadline of any source, bounds each poll. The bulk port is
//! polled for room while frames wait for it.

use crate::clock;
use crate::console::warning;
use crate::link::Link;
use guestinit::fmt::ErrnoText;
use guestinit::sys::process::{wait4, Child as Which, Reaped, Wait};
use guestinit::sys::signal::{signalfd_signo, SIGNALFD_INFO_LEN};
use heapless::Vec;
use linux_raw_sys::general::SIGCHLD;
use rustix::event::{poll, PollFd, PollFlags};
use rustix::fd::{BorrowedFd, OwnedFd};
use rustix::io::Errno;
use rustix::process::{pidfd_open, Pid, PidfdFlags};

/// A source's index in the table [`Reactor::run`] was given.
pub type SourceId = usize;

/// Descriptors one round polls at most.
const MAX_FDS: usize = 16;
/// Children watched at once.
const MAX_CHILDREN: usize = 8;

/// When a source's cleanup comes. The run lasts while a workload source is
/// not done; then the others are asked to clean up, lowest rank first, each
/// rank once the one before it is done (docs/PROTOCOL.md, cleanup order).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Rank {
    /// What the run is for: the payload.
    Workload,
    /// `--collect`: the files the payload left, sent before the scheduler
    /// stops (src/bin/init/collect.rs).
    Collect,
    /// The sched_ext scheduler: stopped, reaped and its log sent before
    /// the consoles drain (docs/PROTOCOL.md, cleanup order).
    Scheduler,
    /// Relays that serve the workload: the host's stdin.
    Relay,
    /// Writers that must drain last: the serial consoles.
    Console,
}

/// The descriptors a source wants polled this round, each with a token
/// that comes back to its [`Source::on_ready`].
pub struct Interests<'s> {
    fds: Vec<(PollFd<'s>, u8), 4>,
}

impl<'s> Interests<'s> {
    pub fn add(&mut self, fd: BorrowedFd<'s>, events: PollFlags, token: u8) {
        if self.fds.push((PollFd::from_borrowed_fd(fd, events), token)).is_err() {
            warning!("a source asked for more than 4 descriptors");
        }
    }
}

/// What a handler may touch: the link to the host, and the child table
/// (to watch the children it starts).
pub struct Ctx<'a> {
    pub link: &'a mut Link,
    children: &'a mut Children,
    me: SourceId,
    stop: &'a mut bool,
}

impl Ctx<'_> {
    /// Sends `pid`'s status to this source's [`Source::on_exit`].
    pub fn watch_child(&mut self, pid: i32) {
        self.children.watch(pid, self.me);
    }

    /// Stops the run as SIGTERM to PID 1 would: every source's
    /// [`Source::on_stop`] is called once this handler returns.
    pub fn stop_run(&mut self) {
        *self.stop = true;
    }
}

/// One event source of the loop. Only `rank`, `interests`, `on_ready` and
/// `done` are required; the rest default to doing nothing.
pub trait Source {
    fn rank(&self) -> Rank;

    /// Once, before the first round of each run: watch children started
    /// earlier (the child table starts empty, as owners are indices).
    fn start(&mut self, _ctx: &mut Ctx<'_>) {}

    /// The descriptors to poll now; `link` tells whether frames fit.
    fn interests<'s>(&'s self, link: &Link, out: &mut Interests<'s>);

    fn on_ready(&mut self, token: u8, events: PollFlags, ctx: &mut Ctx<'_>);

    /// The next time (CLOCK_BOOTTIME ns) [`Source::on_deadline`] is due.
    fn deadline(&self) -> Option<u64> {
        None
    }

    fn on_deadline(&mut self, _ctx: &mut Ctx<'_>) {}

    /// A watched child has ended.
    fn on_exit(&mut self, _reaped: Reaped, _ctx: &mut Ctx<'_>) {}

    /// The run was asked to stop: a stop signal to PID 1 (SIGTERM, SIGINT
    /// from Ctrl-Alt-Del, SIGPWR) or a source's [`Ctx::stop_run`].
    fn on_stop(&mut self, _ctx: &mut Ctx<'_>) {}

    /// Its rank's turn to wind down, once the workload is done.
    fn cleanup(&mut self, _ctx: &mut Ctx<'_>) {}

    fn done(&self) -> bool;
}

struct Watched {
    pid: i32,
    /// None where pidfds are missing (before Linux 5.3): SIGCHLD reaps it.
    pidfd: Option<OwnedFd>,
    owner: SourceId,
}

/// Children by pid, each with the source its status goes to.
struct Children {
    table: Vec<Watched, MAX_CHILDREN>,
}

impl Children {
    fn watch(&mut self, pid: i32, owner: SourceId) {
        let pidfd = Pid::from_raw(pid).and_then(|p| pidfd_open(p, PidfdFlags::NONBLOCK).ok());
        if self.table.push(Watched { pid, pidfd, owner }).is_err() {
            warning!("more than {MAX_CHILDREN} children watched: pid {pid} is not");
        }
    }

    /// The owner of `pid`, which is no longer watched.
    fn take(&mut self, pid: i32) -> Option<SourceId> {
        let at = self.table.iter().position(|w| w.pid == pid)?;
        Some(self.table.swap_remove(at).owner)
    }
}

/// Where a ready descriptor's event goes.
#[derive(Clone, Copy)]
enum Target {
    Signals,
    Child(i32),
    Source(SourceId, u8),
    Port,
}

/// One round's descriptors and where each one's events go.
struct PollSet<'a> {
    fds: Vec<PollFd<'a>, MAX_FDS>,
    targets: Vec<Target, MAX_FDS>,
}

impl<'a> PollSet<'a> {
    fn add(&mut self, fd: PollFd<'a>, target: Target) {
        if self.fds.push(fd).is_ok() {
            let _ = self.targets.push(target);
        } else {
            warning!("more than {MAX_FDS} descriptors to poll");
        }
    }
}

pub struct Reactor {
    /// SIGCHLD and the stop signals; None in host tests, where the test
    /// harness's other threads would take them.
    signals: Option<OwnedFd>,
    children: Children,
    /// A source asked to stop the run ([`Ctx::stop_run`]).
    stop: bool,
}

impl Reactor {
    pub fn new(signals: Option<OwnedFd>) -> Reactor {
        Reactor {
            signals,
            children: Children { table: Vec::new() },
            stop: false,
        }
    }

    /// Runs until every workload source is done and every other source has
    /// cleaned up, rank by rank. Queued frames may remain on `link`.
    pub fn run(&mut self, link: &mut Link, sources: &mut [&mut dyn Source]) {
        self.children.table.clear();
        self.each(link, sources, |s, ctx| s.start(ctx));
        let mut cleaning: Option<Rank> = None;
        loop {
            self.fire_deadlines(link, sources);
            self.stop_if_asked(link, sources);
            match next_rank_to_clean(sources) {
                None => return,
                Some(Rank::Workload) => {}
                Some(rank) if cleaning != Some(rank) => {
                    cleaning = Some(rank);
                    self.each(link, sources, |s, ctx| {
                        if s.rank() == rank && !s.done() {
                            s.cleanup(ctx);
                        }
                    });
                    continue;
                }
                Some(_) => {}
            }
            let ready = self.wait(link, sources);
            for (target, events) in ready {
                self.dispatch(target, events, link, sources);
            }
            self.stop_if_asked(link, sources);
            link.pump();
        }
    }

    fn ctx<'a>(&'a mut self, link: &'a mut Link, me: SourceId) -> Ctx<'a> {
        Ctx {
            link,
            children: &mut self.children,
            me,
            stop: &mut self.stop,
        }
    }

    /// Calls `f` on every source with its context.
    fn each(
        &mut self,
        link: &mut Link,
        sources: &mut [&mut dyn Source],
        mut f: impl FnMut(&mut dyn Source, &mut Ctx<'_>),
    ) {
        for (id, source) in sources.iter_mut().enumerate() {
            f(&mut **source, &mut self.ctx(link, id));
        }
    }

    fn stop_if_asked(&mut self, link: &mut Link, sources: &mut [&mut dyn Source]) {
        if core::mem::take(&mut self.stop) {
            self.each(link, sources, |s, ctx| s.on_stop(ctx));
        }
    }

    fn fire_deadlines(&mut self, link: &mut Link, sources: &mut [&mut dyn Source]) {
        let now = clock::now_ns();
        self.each(link, sources, |s, ctx| {
            if s.deadline().is_some_and(|at| at <= now) {
                s.on_deadline(ctx);
            }
        });
    }

    /// One poll over everything that wants attention, until the earliest
    /// deadline; the targets that are ready.
    fn wait(&self, link: &Link, sources: &[&mut dyn Source]) -> Vec<(Target, PollFlags), MAX_FDS> {
        let mut set = PollSet {
            fds: Vec::new(),
            targets: Vec::new(),
        };
        if let Some(signals) = &self.signals {
            set.add(PollFd::new(signals, PollFlags::IN), Target::Signals);
        }
        for w in &self.children.table {
            if let Some(pidfd) = &w.pidfd {
                set.add(PollFd::new(pidfd, PollFlags::IN), Target::Child(w.pid));
            }
        }
        for (id, source) in sources.iter().enumerate() {
            let mut wanted = Interests { fds: Vec::new() };
            source.interests(link, &mut wanted);
            for (fd, token) in wanted.fds {
                set.add(fd, Target::Source(id, token));
            }
        }
        if link.pending() {
            set.add(PollFd::from_borrowed_fd(link.fd(), PollFlags::OUT), Target::Port);
        }
        let PollSet { mut fds, targets } = set;
        let deadline = sources.iter().filter_map(|s| s.deadline()).min();
        let timeout = deadline.map(clock::timespec_until);
        match poll(&mut fds, timeout.as_ref()) {
            Ok(_) | Err(Errno::INTR) => {}
            Err(e) => {
                warning!("poll: {}", ErrnoText(e));
                clock::sleep_ms(10);
            }
        }
        fds.iter()
            .zip(targets)
            .filter(|(fd, _)| !fd.revents().is_empty())
            .map(|(fd, target)| (target, fd.revents()))
            .collect()
    }

    fn dispatch(
        &mut self,
        target: Target,
        events: PollFlags,
        link: &mut Link,
        sources: &mut [&mut dyn Source],
    ) {
        match target {
            Target::Signals => self.on_signals(link, sources),
            Target::Child(pid) => {
                if let Ok(Some(reaped)) = wait4(Which::Pid(pid), Wait::NoHang) {
                    self.deliver(reaped, link, sources);
                }
            }
            Target::Source(id, token) => sources[id].on_ready(token, events, &mut self.ctx(link, id)),
            // Room on the port: the pump after every round uses it.
            Target::Port => {}
        }
    }

    /// Hands a reaped status to its owner; an orphan's is dropped.
    fn deliver(&mut self, reaped: Reaped, link: &mut Link, sources: &mut [&mut dyn Source]) {
        if let Some(owner) = self.children.take(reaped.pid) {
            sources[owner].on_exit(reaped, &mut self.ctx(link, owner));
        }
    }

    fn on_signals(&mut self, link: &mut Link, sources: &mut [&mut dyn Source]) {
        let mut record = [0u8; SIGNALFD_INFO_LEN];
        loop {
            let Some(signals) = &self.signals else { return };
            let Ok(SIGNALFD_INFO_LEN) = rustix::io::read(signals, &mut record) else {
                return;
            };
            match signalfd_signo(&record) {
                SIGCHLD => self.reap_all(link, sources),
                signo => {
                    warning!("signal {} received: stopping the payload", u64::from(signo));
                    self.stop = true;
                }
            }
        }
    }

    /// Reaps every child that has ended: watched ones go to their owners,
    /// orphans re-parented to PID 1 are just collected.
    fn reap_all(&mut self, link: &mut Link, sources: &mut [&mut dyn Source]) {
        while let Ok(Some(reaped)) = wait4(Which::Any, Wait::NoHang) {
            self.deliver(reaped, link, sources);
        }
    }
}

/// The lowest rank with a source not yet done; None when all are done.
fn next_rank_to_clean(sources: &[&mut dyn Source]) -> Option<Rank> {
    sources.iter().filter(|s| !s.done()).map(|s| s.rank()).min()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::{collect, link};
    use guestinit::outbox::Quota;
    use guestinit::wire::Tag;
    use rustix::fd::AsFd;
    use rustix::fs::OFlags;

    /// Reads a pipe into frames under its own quota until cleanup closes it.
    struct Reader {
        fd: Option<OwnedFd>,
        quota: Quota,
        tag: Tag,
    }

    impl Source for Reader {
        fn rank(&self) -> Rank {
            Rank::Console
        }

        fn interests<'s>(&'s self, link: &Link, out: &mut Interests<'s>) {
            if let (Some(fd), true) = (&self.fd, link.has_room(self.quota)) {
                out.add(fd.as_fd(), PollFlags::IN, 0);
            }
        }

        fn on_ready(&mut self, _token: u8, _events: PollFlags, ctx: &mut Ctx<'_>) {
            let (Some(fd), Some(r)) = (&self.fd, ctx.link.reserve(self.quota)) else {
                return;
            };
            match rustix::io::read(fd, ctx.link.payload_area(&r)) {
                Ok(n @ 1..) => ctx.link.commit(r, self.tag, n),
                _ => ctx.link.release(r),
            }
        }

        fn cleanup(&mut self, _ctx: &mut Ctx<'_>) {
            self.fd = None;
        }

        fn done(&self) -> bool {
            self.fd.is_none()
        }
    }

    /// A workload that is done once its deadline has fired.
    struct Timer {
        at: Option<u64>,
    }

    impl Source for Timer {
        fn rank(&self) -> Rank {
            Rank::Workload
        }

        fn interests<'s>(&'s self, _link: &Link, _out: &mut Interests<'s>) {}

        fn on_ready(&mut self, _: u8, _: PollFlags, _: &mut Ctx<'_>) {}

        fn deadline(&self) -> Option<u64> {
            self.at
        }

        fn on_deadline(&mut self, _ctx: &mut Ctx<'_>) {
            self.at = None;
        }

        fn done(&self) -> bool {
            self.at.is_none()
        }
    }

    /// A pipe full of bytes, for a reader that never runs dry.
    fn full_pipe() -> OwnedFd {
        let (r, w) = crate::test_pipe::pipe();
        rustix::fs::fcntl_setfl(&w, OFlags::NONBLOCK).unwrap();
        rustix::fs::fcntl_setfl(&r, OFlags::NONBLOCK).unwrap();
        while rustix::io::write(&w, &[b'x'; 4096]).is_ok() {}
        std::mem::forget(w); // no EOF while the test runs
        r
    }

    #[test]
    fn a_source_at_its_quota_is_held_back_while_others_take_their_share() {
        let (mut link, r) = link();
        // The host reads nothing yet: every frame stays queued.
        let port = link.fd().try_clone_to_owned().unwrap();
        while rustix::io::write(&port, &[0u8; 4096]).is_ok() {}
        let mut chatty = Reader {
            fd: Some(full_pipe()),
            quota: Quota { lane: 2, max: 1 },
            tag: Tag::SCLG,
        };
        let mut quiet = Reader {
            fd: Some(full_pipe()),
            quota: Quota { lane: 1, max: 6 },
            tag: Tag::SOUT,
        };
        let mut timer = Timer {
            at: Some(crate::clock::now_ns() + 200_000_000),
        };
        Reactor::new(None).run(&mut link, &mut [&mut timer, &mut chatty, &mut quiet]);
        drop(port);
        assert!(timer.done() && chatty.done() && quiet.done(), "the deadline ended the run and cleanup closed the readers");
        // Control frames still find the kept-back buffers.
        let control = link.reserve_control().expect("a kept-back buffer");
        link.release(control);
        let frames = collect(link, r);
        let count = |tag| frames.iter().filter(|(t, _)| *t == tag).count();
        assert_eq!(count(Tag::SCLG), 1, "chatty held to its quota of one buffer");
        assert_eq!(count(Tag::SOUT), 5, "quiet took the rest but the kept-back two");
    }
}
