//! The phases of PID 1, in order, each a short function. A failure that
//! ends the run goes through `failure`; every path ends in `power::off`.

use crate::console::{self, warning};
use crate::collect::Collect;
use crate::control::{self, Control};
use crate::link::{self, Ack, Link};
use crate::payload::{self, Payload};
use crate::reactor::{Reactor, Source};
use crate::sched::{self, AttachWait, Sched};
use crate::serial_drain::Com2Drain;
use crate::spawn::Stdio;
use crate::stats_relay::{self, StatsRelay};
use crate::stdin_relay::{self, StdinRelay};
use crate::wake;
use crate::{clock, crash, disks, failure, handover, kernel_addrs, kmsg, modules, mounts, net, power, rss, shares, shell, trace};
use guestinit::cell::TakeOnce;
use guestinit::parse::cmdline::Cmdline;
use guestinit::parse::superblock::Fs;
use guestinit::proto;
use guestinit::proto::boot::{BootParams, Mode, Unknown};
use rustix::system::{reboot, RebootCommand};
use guestinit::sys::signal::{self, Mask, SigSet};
use guestinit::fmt::{ErrnoText, Lossy};
use guestinit::wire::msg::{BuildId, Mark, Phase, Timeline};
use guestinit::wire::Tag;
use heapless::Vec;
use linux_raw_sys::general::{SIGCHLD, SIGINT, SIGPWR, SIGTERM};
use rustix::fd::OwnedFd;

/// SRDY goes out within min(10 s + 150 ms per CPU, 90 s), else a warning.
const SRDY_BASE_MS: u64 = 10_000;

static CMDLINE: TakeOnce<[u8; 4096]> = TakeOnce::new([0; 4096]);

/// A mode the init does not know is warned of; it runs the payload.
fn warn_unknown_mode(unknown: &Unknown<'_>) {
    if let Some(v) = unknown.mode {
        warning!("unknown {}={}: running the payload", proto::key::MODE, Lossy(v));
    }
}

/// The run's CLOCK_BOOTTIME marks, sent as TIME before EXIT.
struct Marks(Vec<(Mark, u64), { Mark::ALL.len() }>);

impl Marks {
    fn add(&mut self, mark: Mark, ns: u64) {
        let _ = self.0.push((mark, ns));
    }
}

pub fn run(entry_ns: u64) -> ! {
    crash::install();
    let mut marks = Marks(Vec::new());
    marks.add(Mark::InitEntry, entry_ns);
    let mount_failure = mounts::mount_required();
    marks.add(Mark::MountsDone, clock::now_ns());
    console::ensure_std_fds();
    let (params, unknown) = read_params();
    crash::requested(params.crash, unknown.crash);
    modules::load_all();
    marks.add(Mark::ModulesLoaded, clock::now_ns());
    let complete = crate::small_file::exists(proto::path::SENTINEL.as_bytes());
    let signals = block_signals();
    let port = link::open();
    marks.add(Mark::PortFound, clock::now_ns());
    if !complete {
        failure::initramfs_incomplete(port.ok().map(Link::new));
    }
    if let Some(failed) = mount_failure {
        failure::mount_failed(&failed, port.ok().map(Link::new));
    }
    let mut link = port.map(Link::new).unwrap_or_else(|e| failure::no_port(e));
    announce(&mut link, &mut marks, params.pob);
    settle(&mut link);
    // A machine that may be snapshotted stops here until its run comes.
    let (params, unknown) = match params.handover {
        true => handover::receive(&mut link),
        false => (params, unknown),
    };
    let ack = match params.ack {
        true => Ack::Await,
        false => Ack::None,
    };
    net::setup(&mut link, &params);
    trace::size_buffer(params.trace_kb);
    disks::mount_all(&mut link, params.disks, unknown.disks);
    let shared = shares::mount_all(&mut link);
    warn_unknown_mode(&unknown);
    let code = match params.mode {
        mode @ (Mode::Test | Mode::Exec) => {
            test_mode(&mut link, &mut marks, signals, &params, mode)
        }
        Mode::Shell => shell_mode(&mut link, signals, &params),
        Mode::Mkdisk(fs) => mkdisk_mode(&mut link, &mut marks, signals, &params, fs),
    };
    disks::unmount_all(&mut link, params.disks);
    // A share's pages written through a mapping reach the host now, before EXIT.
    if shared {
        rustix::fs::sync();
    }
    link.finish(code, ack);
    power::off()
}

/// What only payloads and later steps need, done after SRDY so that the
/// host hears from the guest sooner, and before a snapshot (every run of
/// the machine needs it). Until the serial devices open, the console
/// writes its warnings by port I/O.
fn settle(link: &mut Link) {
    console::open_serial();
    // Ctrl-Alt-Del arrives as SIGINT, which the reactor handles, not as a reset.
    let _ = reboot(RebootCommand::CadOff);
    mounts::mount_optional();
    net::loopback(link);
}

/// The host's keys on the kernel command line, read once.
fn read_params() -> (BootParams<'static>, Unknown<'static>) {
    let buf = CMDLINE.take().expect("read once");
    let n = crate::small_file::read_prefix(b"/proc/cmdline", &mut buf[..]).unwrap_or(0);
    BootParams::parse(&Cmdline::new(&buf[..n]))
}

/// Blocks the signals the reactor reads from a signalfd (before any child
/// exists, so no SIGCHLD slips by).
fn block_signals() -> OwnedFd {
    let set = SigSet::EMPTY
        .with(SIGCHLD)
        .with(SIGTERM)
        .with(SIGINT)
        .with(SIGPWR);
    let blocked = signal::mask(set, Mask::Block).and_then(|()| signal::signalfd(set));
    match blocked {
        Ok(fd) => fd,
        Err(e) => panic!("signalfd: {}", ErrnoText(e)),
    }
}

/// KADR, SRDY and LIFE InitStarted: the host learns the guest is up.
fn announce(link: &mut Link, marks: &mut Marks, pob_offset: Option<u64>) {
    if let Some(r) = link.reserve_control() {
        let addrs = kernel_addrs::read(link.payload_area(&r), pob_offset);
        link.release(r);
        marks.add(Mark::KernelAddrsRead, clock::now_ns());
        link.send(Tag::KADR, &addrs.to_bytes());
    }
    // ktstr 0.50's hosts check their vmlinux against it before SRDY.
    if let Some(r) = link.reserve_control() {
        let mut id = [0u8; BuildId::MAX];
        let read = kernel_addrs::build_id(link.payload_area(&r));
        let len = read.len();
        id[..len].copy_from_slice(read);
        link.release(r);
        link.send(Tag::KBID, &id[..len]);
    }
    link.send(Tag::SRDY, &[]);
    let budget = srdy_budget_ms();
    if link.flush_within(Some(budget)).is_err() {
        warning!("the host took no frame within {budget} ms; going on");
    }
    marks.add(Mark::SystemReady, clock::now_ns());
    link.send(Tag::LIFE, &[Phase::InitStarted as u8]);
}

fn srdy_budget_ms() -> u64 {
    let cpus = rustix::thread::sched_getaffinity(None).map_or(1, |set| set.count() as u64);
    (SRDY_BASE_MS + cpus * 150).min(90_000)
}

/// The attach wait the host asked for (`guestinit.attach_timeout`).
fn attach_timeout_ms(params: &BootParams) -> u64 {
    let secs = params.attach_timeout_s;
    secs.unwrap_or(proto::sched::ATTACH_TIMEOUT_TCG_S).saturating_mul(1000)
}

/// The scheduler, if there is one, attached; `Err(248)` for EXIT when it
/// failed (it was stopped and /sched_disable has run).
fn scheduler(link: &mut Link, reactor: &mut Reactor, params: &BootParams) -> Result<Option<Sched>, i32> {
    let mut sched = start_scheduler(link, reactor, attach_timeout_ms(params));
    if let Some(s) = sched.as_mut().filter(|s| s.failed()) {
        reactor.run(link, &mut [s, &mut Com2Drain]);
        sched::setup::disable();
        return Err(proto::sched::FAILED);
    }
    Ok(sched)
}

/// Test and exec modes: the scheduler, if there is one, must attach; the
/// payload (/args, or `sh -c` of /exec_cmd) runs to its end in the reactor
/// beside the scheduler and the relays; SCPP, TIME and WAIT follow, and
/// EXCX in exec mode. The exit code for EXIT: 248 when the scheduler
/// failed.
fn test_mode(link: &mut Link, marks: &mut Marks, signals: OwnedFd, params: &BootParams, mode: Mode) -> i32 {
    let mut reactor = Reactor::new(Some(signals));
    let mut sched = match scheduler(link, &mut reactor, params) {
        Ok(sched) => sched,
        Err(code) => return code,
    };
    // The payload may stop, restart or replace it from here on.
    if let Some(s) = sched.as_mut() {
        s.serve();
    }
    let stdin_port = (params.stdin && mode != Mode::Exec)
        .then(stdin_relay::open_port)
        .flatten();
    let stdin = match stdin_port {
        Some(_) => Stdio::Pipe,
        None => Stdio::Null,
    };
    let mut collect = Collect::read(link);
    let (mut payload, stdin_pipe) = match mode {
        Mode::Exec => start_payload(link, marks, || shell::start_exec().map(|p| (p, None))),
        _ => start_payload(link, marks, || payload::start(stdin)),
    };
    let mut relay = stdin_port.zip(stdin_pipe).map(|(port, pipe)| StdinRelay::new(port, pipe));
    // In exec mode the host's dump and stop come on the control port.
    let mut control = match mode {
        Mode::Exec => control::open_port().map(|port| Control::new(port, None)),
        _ => wake::open().map(Control::on_hvc0),
    };
    let mut stats = params
        .stats
        .then(stats_relay::open_port)
        .flatten()
        .map(StatsRelay::new);
    let mut trace = trace::open();
    let mut kmsg = kmsg::open();
    let others = [
        collect.as_mut().map(|s| s as &mut dyn Source),
        sched.as_mut().map(|s| s as &mut dyn Source),
        relay.as_mut().map(|s| s as &mut dyn Source),
        stats.as_mut().map(|s| s as &mut dyn Source),
        control.as_mut().map(|s| s as &mut dyn Source),
        trace.as_mut().map(|s| s as &mut dyn Source),
        kmsg.as_mut().map(|s| s as &mut dyn Source),
    ];
    run_sources(&mut reactor, link, &mut payload, others);
    if sched.is_some() {
        sched::setup::disable();
    }
    let ended = payload.ended().expect("the reactor runs until the payload ends");
    marks.add(Mark::PayloadExit, ended.exit_ns);
    link.send(Tag::SCPP, &[]);
    let status = ended.reaped.wait_status(rss::peak_rss_kib().unwrap_or(0));
    marks.add(Mark::OutputDrained, clock::now_ns());
    let mut timeline = [0u8; Mark::ALL.len() * Timeline::ENTRY_LEN];
    let len = Timeline::encode(&marks.0, &mut timeline);
    link.send(Tag::TIME, &timeline[..len]);
    link.send(Tag::WAIT, &status.to_bytes());
    let code = status.exit.shell_code();
    if mode == Mode::Exec {
        link.send(Tag::EXCX, &code.to_le_bytes());
    }
    match sched.as_ref().is_some_and(Sched::failed) {
        true => proto::sched::FAILED,
        false => code,
    }
}

/// Runs the reactor over a mode's workload, the other sources it has, and
/// COM2's drain.
fn run_sources<const N: usize>(
    reactor: &mut Reactor,
    link: &mut Link,
    workload: &mut dyn Source,
    others: [Option<&mut dyn Source>; N],
) {
    let mut com2 = Com2Drain;
    // Test mode has 9 today (the workload, the collector, six others, COM2).
    let mut sources: Vec<&mut dyn Source, 12> = Vec::new();
    let _ = sources.push(workload);
    for source in others.into_iter().flatten() {
        let _ = sources.push(source);
    }
    let _ = sources.push(&mut com2);
    reactor.run(link, &mut sources);
}

/// Shell mode: the scheduler as in test mode, then the shell on hvc0 in
/// the reactor with the control port (window size, dump, stop) until it
/// exits; its exit code (or 248) for EXIT. /sched_disable runs after it.
/// Not inlined into `run`: its 7 KiB of stack frame would be probed
/// resident whole in every mode.
#[inline(never)]
fn shell_mode(link: &mut Link, signals: OwnedFd, params: &BootParams) -> i32 {
    let mut reactor = Reactor::new(Some(signals));
    let mut sched = match scheduler(link, &mut reactor, params) {
        Ok(sched) => sched,
        Err(code) => return code,
    };
    // The payload may stop, restart or replace it from here on.
    if let Some(s) = sched.as_mut() {
        s.serve();
    }
    let (mut shell, master) = match shell::start(sched.is_some()) {
        Ok(started) => started,
        Err(e) => failure::fail(link, format_args!("{e}")),
    };
    let mut control = control::open_port().map(|port| Control::new(port, Some(master)));
    let mut trace = trace::open();
    let others = [
        sched.as_mut().map(|s| s as &mut dyn Source),
        control.as_mut().map(|s| s as &mut dyn Source),
        trace.as_mut().map(|s| s as &mut dyn Source),
    ];
    run_sources(&mut reactor, link, &mut shell, others);
    if sched.is_some() {
        sched::setup::disable();
    }
    let reaped = shell.ended().expect("the reactor runs until the shell ends");
    match sched.as_ref().is_some_and(Sched::failed) {
        true => proto::sched::FAILED,
        false => reaped.exit.shell_code(),
    }
}

/// Disk-template mode: the payload is the host's mkfs for the template
/// disk; once it succeeded, the disk must hold `fs`, synced, or the run
/// fails saying so.
fn mkdisk_mode(
    link: &mut Link,
    marks: &mut Marks,
    signals: OwnedFd,
    params: &BootParams,
    fs: Option<Fs>,
) -> i32 {
    let code = test_mode(link, marks, signals, params, Mode::Mkdisk(fs));
    if code != 0 {
        return code;
    }
    match disks::check_template(fs) {
        Ok(()) => 0,
        Err(e) => failure::fail(link, format_args!("mkdisk: {e}")),
    }
}

/// With a /scheduler: sched_ext, cgroups, BPF stats, /sched_enable, the
/// start and the attach wait, in the reactor. A setup failure ends the run.
fn start_scheduler(link: &mut Link, reactor: &mut Reactor, attach_ms: u64) -> Option<Sched> {
    crate::small_file::exists(proto::path::SCHEDULER.as_bytes()).then_some(())?;
    let started = sched::setup::check_sched_ext()
        .and_then(|()| sched::setup::make_cgroups())
        .and_then(|cgroup| {
            sched::setup::enable_bpf_stats();
            sched::setup::run_script(proto::path::SCHED_ENABLE)?;
            sched::start(link, cgroup, attach_ms)
        });
    let mut sched = match started {
        Ok(s) => s,
        Err(e) => failure::fail_with(link, proto::sched::FAILED, format_args!("{e}")),
    };
    reactor.run(link, &mut [&mut AttachWait(&mut sched), &mut Com2Drain]);
    if !sched.failed() {
        link.send(Tag::LIFE, &[Phase::WorkloadDispatched as u8]);
    }
    Some(sched)
}

/// Starts the payload; one that cannot start ends the run.
fn start_payload<E: core::fmt::Display>(
    link: &mut Link,
    marks: &mut Marks,
    start: impl FnOnce() -> Result<(Payload, Option<OwnedFd>), E>,
) -> (Payload, Option<OwnedFd>) {
    link.send(Tag::LIFE, &[Phase::PayloadStarting as u8]);
    let started = match start() {
        Ok(started) => started,
        Err(e) => failure::fail(link, format_args!("{e}")),
    };
    marks.add(Mark::PayloadStart, clock::now_ns());
    link.send(Tag::SCST, &[]);
    started
}
