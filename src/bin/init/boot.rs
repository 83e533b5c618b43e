//! The phases of PID 1, in order. Each phase is a short function; a failure
//! that ends the run goes through `fail`, which names it on COM2, sends a
//! non-zero EXIT when the port works, and powers off.

use crate::bulk::{self, Port, PortError};
use crate::console::{self, warning};
use crate::event_loop::{self, Outcome};
use crate::payload::{self, Payload};
use crate::{clock, crash, kaddr, modules, mounts, shutdown};
use core::fmt::{self, Write};
use guestinit::cell::TakeOnce;
use guestinit::fmt::{ErrnoText, Lossy, SliceWriter};
use guestinit::parse::cmdline::Cmdline;
use guestinit::pool::Pool;
use guestinit::proto;
use guestinit::sys::process::Exit;
use guestinit::sys::signal::{self, SigSet};
use guestinit::sys::{klog, power};
use guestinit::wire::msg::{Mark, Phase, Timeline, WaitStatus};
use guestinit::wire::Tag;
use heapless::Vec;
use linux_raw_sys::general::{SIGCHLD, SIGINT, SIGPWR, SIGTERM};
use rustix::fd::OwnedFd;

/// Frame buffers: 8 x 16 KiB in .bss, resident only once used.
const POOL_BUFS: usize = 8;
const BUF_SIZE: usize = 16 * 1024;
static POOL: TakeOnce<Pool<POOL_BUFS, BUF_SIZE>> = TakeOnce::new(Pool::new());

pub type Outbox<'p> = guestinit::outbox::Outbox<'p, Port, POOL_BUFS, BUF_SIZE>;

/// The last entry the host writes to the initramfs: if the kernel ran out of
/// memory while unpacking, it is missing.
const SENTINEL: &str = proto::path::SENTINEL;
/// SRDY goes out within min(10 s + 150 ms per CPU, 90 s), else a warning.
const SRDY_BASE_MS: u64 = 10_000;

static CMDLINE: TakeOnce<[u8; 4096]> = TakeOnce::new([0; 4096]);

/// The run's CLOCK_BOOTTIME marks, sent as TIME before EXIT.
struct Marks(Vec<(Mark, u64), 8>);

impl Marks {
    fn add(&mut self, mark: Mark, ns: u64) {
        let _ = self.0.push((mark, ns));
    }
}

pub fn run(entry_ns: u64) -> ! {
    crash::install();
    let mount_failure = mounts::mount_all();
    console::ensure_std_fds();
    console::open_serial();
    let cmdline = read_cmdline();
    if let Some(Some(how)) = cmdline.get(proto::key::CRASH.as_bytes()) {
        crash::requested(how);
    }
    // Ctrl-Alt-Del arrives as SIGINT, which the loop handles, not as a reset.
    let _ = power::ctrl_alt_del_as_signal();
    modules::load_all();
    let complete = rustix::fs::access(SENTINEL, rustix::fs::Access::EXISTS).is_ok();
    let signals = block_signals();
    let port = bulk::open();
    if !complete {
        // A truncated archive may lack the modules too: this, not the port,
        // is the cause to report.
        initramfs_incomplete(port.ok());
    }
    if let Some(failed) = mount_failure {
        mount_failed(&failed, port.ok());
    }
    let mut outbox = with_pool(port);
    let mut marks = Marks(Vec::new());
    marks.add(Mark::InitEntry, entry_ns);
    announce(&mut outbox, &mut marks);
    let payload = start_payload(&mut outbox, &mut marks);
    let outcome = event_loop::run(&mut outbox, payload, &signals);
    finish(
        &mut outbox,
        marks,
        outcome,
        cmdline.get(proto::key::ACK.as_bytes()).is_some(),
    )
}

fn read_cmdline() -> Cmdline<'static> {
    let buf = CMDLINE.take().expect("read once");
    let n = rustix::fs::open(
        c"/proc/cmdline",
        rustix::fs::OFlags::RDONLY,
        rustix::fs::Mode::empty(),
    )
    .and_then(|f| rustix::io::read(&f, &mut buf[..]))
    .unwrap_or(0);
    Cmdline::new(&buf[..n])
}

/// Blocks the signals the loop reads from a signalfd (before any child
/// exists, so no SIGCHLD slips by).
fn block_signals() -> OwnedFd {
    let set = SigSet::EMPTY
        .with(SIGCHLD)
        .with(SIGTERM)
        .with(SIGINT)
        .with(SIGPWR);
    let blocked = signal::mask(set, true).and_then(|()| signal::signalfd(set));
    match blocked {
        Ok(fd) => fd,
        Err(e) => panic!("signalfd: {}", ErrnoText(e)),
    }
}

/// The outbox over the opened port, or the end of the run without one.
fn with_pool(port: Result<Port, PortError>) -> Outbox<'static> {
    let pool = POOL.take().expect("one pool");
    match port {
        Ok(port) => Outbox::new(port, pool),
        Err(PortError::NotFound) => fatal_without_port(format_args!(
            "no virtio port named {} after {} ms (are virtio_console and virtio_pci in /modules?)",
            proto::BULK_PORT,
            bulk::WAIT_MS
        )),
        Err(PortError::Open(e)) => {
            fatal_without_port(format_args!("open the bulk port: {}", ErrnoText(e)))
        }
    }
}

/// KADR, SRDY and LIFE InitStarted: the host learns the guest is up.
fn announce(outbox: &mut Outbox<'_>, marks: &mut Marks) {
    if let Some(id) = outbox.reserve() {
        let addrs = kaddr::read(outbox.payload_area(&id));
        outbox.release(id);
        send(outbox, Tag::KADR, &addrs.to_bytes());
    }
    send(outbox, Tag::SRDY, &[]);
    let budget = srdy_budget_ms();
    let mut wait = |port: &mut Port| shutdown::wait_writable(port, Some(budget));
    if outbox.flush(&mut wait).is_err() {
        warning!("the host took no frame within {budget} ms; going on");
    }
    marks.add(Mark::SystemReady, clock::now_ns());
    send(outbox, Tag::LIFE, &[Phase::InitStarted as u8]);
}

fn srdy_budget_ms() -> u64 {
    let cpus = rustix::thread::sched_getaffinity(None).map_or(1, |set| set.count() as u64);
    (SRDY_BASE_MS + cpus * 150).min(90_000)
}

/// Starts the payload; one that cannot start ends the run.
fn start_payload(outbox: &mut Outbox<'_>, marks: &mut Marks) -> Payload {
    send(outbox, Tag::LIFE, &[Phase::PayloadStarting as u8]);
    let payload = match payload::start() {
        Ok(p) => p,
        Err(e) => fail(outbox, format_args!("{e}")),
    };
    marks.add(Mark::PayloadStart, clock::now_ns());
    send(outbox, Tag::SCST, &[]);
    payload
}

/// SCPP, TIME, WAIT and EXIT, then power off.
fn finish(outbox: &mut Outbox<'_>, mut marks: Marks, outcome: Outcome, ack: bool) -> ! {
    marks.add(Mark::PayloadExit, outcome.exit_ns);
    send(outbox, Tag::SCPP, &[]);
    let status = wait_status(&outcome);
    marks.add(Mark::OutputDrained, clock::now_ns());
    let mut timeline = [0u8; 8 * Timeline::ENTRY_LEN];
    let mut len = 0;
    for (mark, ns) in &marks.0 {
        timeline[len..len + Timeline::ENTRY_LEN].copy_from_slice(&Timeline::entry(*mark, *ns));
        len += Timeline::ENTRY_LEN;
    }
    send(outbox, Tag::TIME, &timeline[..len]);
    send(outbox, Tag::WAIT, &status.to_bytes());
    shutdown::send_exit(outbox, status.shell_code(), ack);
    shutdown::power_off()
}

fn wait_status(outcome: &Outcome) -> WaitStatus {
    let usage = outcome.reaped.usage;
    let (exit_code, signal, core_dumped) = match outcome.reaped.exit {
        Exit::Exited(code) => (Some(code), None, false),
        Exit::Signaled {
            signal,
            core_dumped,
        } => (None, Some(signal), core_dumped),
    };
    WaitStatus {
        exit_code,
        signal,
        core_dumped,
        user_us: usage.user_us,
        system_us: usage.system_us,
        max_rss_kib: usage.max_rss_kib,
        init_hwm_kib: crate::memory::peak_rss_kib().unwrap_or(0),
    }
}

/// Queues a frame, waiting for the port as long as it takes.
fn send(outbox: &mut Outbox<'_>, tag: Tag, payload: &[u8]) {
    let mut wait = |port: &mut Port| shutdown::wait_writable(port, None);
    if let Err(e) = outbox.send(tag, payload, &mut wait) {
        warning!("send {tag}: {}", ErrnoText(e));
        outbox.discard();
    }
    event_loop::pump(outbox);
}

/// The kernel ran out of memory while unpacking the initramfs: say so, with
/// the end of the kernel log (on COM2 and as DMSG), and stop.
fn initramfs_incomplete(port: Option<Port>) -> ! {
    console::fatal(format_args!(
        "initramfs incomplete: {} is missing; the kernel ran out of memory unpacking it. Give the VM more memory.",
        SENTINEL
    ));
    match port {
        Some(port) => {
            let mut outbox = with_pool(Ok(port));
            forward_kernel_log(&mut outbox);
            shutdown::send_exit(&mut outbox, 1, false);
        }
        None => kernel_log_to_com2(),
    }
    shutdown::power_off()
}

/// The whole kernel log to COM2 alone, when there is no port for DMSG.
fn kernel_log_to_com2() {
    let mut buf = [0u8; 2048];
    while let Ok(n @ 1..) = klog::read_unread(&mut buf) {
        console::com2(&buf[..n]);
    }
}

/// The whole kernel log, oldest first, a pool buffer at a time, to COM2 and
/// as DMSG frames.
fn forward_kernel_log(outbox: &mut Outbox<'_>) {
    loop {
        let Some(id) = outbox.reserve() else {
            event_loop::pump(outbox);
            let mut wait = |port: &mut Port| shutdown::wait_writable(port, None);
            if outbox.flush(&mut wait).is_err() {
                return;
            }
            continue;
        };
        let area = outbox.payload_area(&id);
        match klog::read_unread(area) {
            Ok(n) if n > 0 => {
                console::com2(&area[..n]);
                outbox.commit(id, Tag::DMSG, n);
                event_loop::pump(outbox);
            }
            _ => return outbox.release(id),
        }
    }
}

/// A required mount failed: the run ends, reported on the port if there is one.
fn mount_failed(failed: &mounts::Failed, port: Option<Port>) -> ! {
    let (target, errno) = (Lossy(failed.target.to_bytes()), ErrnoText(failed.errno));
    match port {
        Some(port) => fail(
            &mut with_pool(Ok(port)),
            format_args!("mount {target}: {errno}"),
        ),
        None => fatal_without_port(format_args!("mount {target}: {errno}")),
    }
}

/// A failure that ends the run while the port works.
fn fail(outbox: &mut Outbox<'_>, args: fmt::Arguments<'_>) -> ! {
    console::fatal(args);
    let mut buf = [0u8; 512];
    let mut w = SliceWriter::new(&mut buf);
    let _ = writeln!(w, "guestinit: {args}");
    send(outbox, Tag::SERR, w.written());
    shutdown::send_exit(outbox, 1, false);
    shutdown::power_off()
}

/// A failure with no port to report it on: COM2 only.
fn fatal_without_port(args: fmt::Arguments<'_>) -> ! {
    console::fatal(args);
    shutdown::power_off()
}
