//! The scheduler's lifecycle with fake schedulers (`sh -c` scripts) and a
//! fake sched_ext sysfs directory.

use super::*;
use crate::payload::Payload;
use crate::testkit::{self, collect, link, output};
use crate::reactor::Reactor;
use std::time::Instant;
use std::vec::Vec as StdVec;

fn sched(script: &str, state: &str, attach_ms: u64) -> Sched {
    let (pid, out, err) = testkit::sh(script);
    Sched::new(pid, out, err, attach_ms, testkit::sched_ext_sysfs(state))
}

fn payload(script: &str) -> Payload {
    let (pid, out, err) = testkit::sh(script);
    Payload::new(pid, out, err)
}

fn phases(frames: &[(Tag, StdVec<u8>)]) -> StdVec<u8> {
    frames.iter().filter(|(t, _)| *t == Tag::LIFE).map(|(_, p)| p[0]).collect()
}

fn life_text(frames: &[(Tag, StdVec<u8>)], phase: Phase) -> String {
    let (_, p) = frames
        .iter()
        .find(|(t, p)| *t == Tag::LIFE && p[0] == phase as u8)
        .expect("the phase was sent");
    String::from_utf8_lossy(&p[1..]).into_owned()
}

#[test]
fn it_attaches_after_the_liveness_second_and_stops_cleanly_on_sigint() {
    let (mut link, r) = link();
    let mut s = sched(
        "echo hello; trap 'echo bye; exit 0' INT; while :; do sleep 0.05; done",
        "enabled",
        5000,
    );
    let mut reactor = Reactor::new(None);
    let t0 = Instant::now();
    reactor.run(&mut link, &mut [&mut AttachWait(&mut s)]);
    let waited = t0.elapsed().as_millis() as u64;
    assert!(s.decided() && !s.failed());
    assert!((LIVENESS_MS..3000).contains(&waited), "attached after {waited} ms");
    let mut p = payload("echo work");
    reactor.run(&mut link, &mut [&mut p, &mut s]);
    assert!(s.done() && !s.failed(), "the cleanup's SIGINT is no death");
    let frames = collect(link, r);
    assert_eq!(phases(&frames), [Phase::SchedulerAttached as u8]);
    assert!(!frames.iter().any(|(t, _)| *t == Tag::SCDX));
    let log = String::from_utf8(output(&frames, Tag::SCLG)).unwrap();
    // The start marker is setup's, which these tests bypass.
    assert_eq!(log, "hello\nbye\n===SCHED_OUTPUT_END===\n");
    assert_eq!(output(&frames, Tag::SOUT), b"work\n");
}

#[test]
fn a_scheduler_that_never_attaches_is_reported_at_the_deadline_and_killed() {
    let (mut link, r) = link();
    let mut s = sched("exec sleep 30", "disabled", 1500);
    let mut reactor = Reactor::new(None);
    let t0 = Instant::now();
    reactor.run(&mut link, &mut [&mut AttachWait(&mut s)]);
    let waited = t0.elapsed().as_millis();
    assert!(s.failed());
    assert!((1500..2500).contains(&waited), "gave up after {waited} ms");
    reactor.run(&mut link, &mut [&mut s]);
    assert!(s.done());
    let frames = collect(link, r);
    assert_eq!(phases(&frames), [Phase::SchedulerNotAttached as u8]);
    assert_eq!(
        life_text(&frames, Phase::SchedulerNotAttached),
        "sched_ext state is `disabled` after 1 s"
    );
}

#[test]
fn a_scheduler_that_exits_early_is_not_attached_with_its_exit() {
    let (mut link, r) = link();
    let mut s = sched("echo oops >&2; exit 3", "enabled", 5000);
    let t0 = Instant::now();
    let mut reactor = Reactor::new(None);
    reactor.run(&mut link, &mut [&mut AttachWait(&mut s)]);
    assert!(t0.elapsed().as_millis() < LIVENESS_MS as u128, "no wait for the deadline");
    reactor.run(&mut link, &mut [&mut s]);
    assert!(s.failed() && s.done());
    let frames = collect(link, r);
    assert_eq!(
        life_text(&frames, Phase::SchedulerNotAttached),
        "the scheduler exited with 3 before attaching"
    );
    let log = String::from_utf8(output(&frames, Tag::SCLG)).unwrap();
    assert_eq!(log, "oops\n===SCHED_OUTPUT_END===\n");
}

#[test]
fn a_death_during_the_run_sends_scdx_and_stops_the_payload() {
    let (mut link, r) = link();
    let mut s = sched("sleep 1.5; echo dying; exit 7", "enabled", 5000);
    let mut reactor = Reactor::new(None);
    reactor.run(&mut link, &mut [&mut AttachWait(&mut s)]);
    assert!(!s.failed());
    let mut p = payload("exec sleep 30");
    let t0 = Instant::now();
    reactor.run(&mut link, &mut [&mut p, &mut s]);
    assert!(t0.elapsed().as_secs() < 5, "the payload was stopped, not waited for");
    assert!(s.failed() && s.done());
    let exit = p.ended().unwrap().reaped.exit;
    assert_eq!(exit, Exit::Signaled { signal: 15, core_dumped: false }, "SIGTERM first");
    let frames = collect(link, r);
    assert_eq!(output(&frames, Tag::SCDX), 7i32.to_le_bytes());
    assert_eq!(phases(&frames), [Phase::SchedulerAttached as u8, Phase::SchedulerDied as u8]);
    assert!(String::from_utf8(output(&frames, Tag::SCLG)).unwrap().ends_with("dying\n===SCHED_OUTPUT_END===\n"));
}

#[test]
fn a_scheduler_that_ignores_sigint_is_killed_after_the_grace() {
    let (mut link, r) = link();
    let mut s = sched("trap '' INT; exec sleep 60", "enabled", 5000);
    let mut reactor = Reactor::new(None);
    reactor.run(&mut link, &mut [&mut AttachWait(&mut s)]);
    let t0 = Instant::now();
    let mut p = payload("true");
    reactor.run(&mut link, &mut [&mut p, &mut s]);
    let waited = t0.elapsed().as_millis() as u64;
    assert!((KILL_GRACE_MS..KILL_GRACE_MS + 2000).contains(&waited), "killed after {waited} ms");
    assert!(s.done() && !s.failed(), "the cleanup's SIGKILL is no death");
    assert!(!collect(link, r).iter().any(|(t, _)| *t == Tag::SCDX));
}

/// Asks the run to stop, as a stop signal to PID 1 would, at `at`.
struct Stopper {
    at: Option<u64>,
}

impl Source for Stopper {
    fn rank(&self) -> Rank {
        Rank::Console
    }

    fn interests<'s>(&'s self, _link: &Link, _out: &mut Interests<'s>) {}

    fn on_ready(&mut self, _: u8, _: PollFlags, _: &mut Ctx<'_>) {}

    fn deadline(&self) -> Option<u64> {
        self.at
    }

    fn on_deadline(&mut self, ctx: &mut Ctx<'_>) {
        self.at = None;
        ctx.stop_run();
    }

    fn done(&self) -> bool {
        self.at.is_none()
    }
}

#[test]
fn a_stop_during_the_attach_wait_ends_it_and_the_payload_never_runs() {
    let (mut link, r) = link();
    let mut s = sched("exec sleep 30", "disabled", 20_000);
    let mut stopper = Stopper {
        at: Some(clock::now_ns() + 300 * MS),
    };
    let t0 = Instant::now();
    let mut reactor = Reactor::new(None);
    reactor.run(&mut link, &mut [&mut AttachWait(&mut s), &mut stopper]);
    assert!(t0.elapsed().as_secs() < 2, "no wait for the attach deadline");
    reactor.run(&mut link, &mut [&mut s]);
    assert!(s.failed() && s.done());
    let frames = collect(link, r);
    assert_eq!(
        life_text(&frames, Phase::SchedulerNotAttached),
        "the run was stopped before the scheduler attached"
    );
}

#[test]
fn a_stop_the_payload_asked_for_is_no_death_and_the_log_ends_at_cleanup() {
    let (mut link, r) = link();
    // The fake sysfs reads `disabled`, as sched_ext does once it has left.
    let mut s = sched("echo hello; trap 'echo bye; exit 0' INT; while :; do sleep 0.05; done", "disabled", 5000);
    s.state = State::Attached;
    std::thread::sleep(std::time::Duration::from_millis(300));
    s.stop_asked(Asked::Stop);
    let mut p = payload("sleep 1; echo work");
    let mut reactor = Reactor::new(None);
    reactor.run(&mut link, &mut [&mut p, &mut s]);
    assert!(s.done() && !s.failed(), "stopped on request, not restarted: no error");
    let frames = collect(link, r);
    assert!(!frames.iter().any(|(t, _)| *t == Tag::SCDX), "no death");
    assert!(phases(&frames).is_empty(), "no LIFE for a stop on request");
    let log = String::from_utf8(output(&frames, Tag::SCLG)).unwrap();
    assert_eq!(log, "hello\nbye\n===SCHED_OUTPUT_END===\n", "one end marker, at cleanup");
    assert_eq!(output(&frames, Tag::SOUT), b"work\n");
}

#[test]
fn a_start_on_request_that_exits_before_attaching_fails_no_run() {
    let (mut link, r) = link();
    let mut s = sched("echo bad flag >&2; exit 2", "disabled", 5000);
    s.asked = Some(Asked::Start);
    let mut p = payload("sleep 1");
    let mut reactor = Reactor::new(None);
    reactor.run(&mut link, &mut [&mut p, &mut s]);
    assert!(s.done() && !s.failed(), "the payload was answered; the run goes on");
    let frames = collect(link, r);
    assert!(phases(&frames).is_empty(), "no SchedulerNotAttached, which would fail the run");
    assert!(!frames.iter().any(|(t, _)| *t == Tag::SCDX));
    let log = String::from_utf8(output(&frames, Tag::SCLG)).unwrap();
    assert_eq!(log, "bad flag\n===SCHED_OUTPUT_END===\n");
}
