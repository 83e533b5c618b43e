//! `guestinit run`: pack (or take) an initramfs, boot it in QEMU, relay the
//! payload's output from the bulk port, and turn the end of the VM into an
//! exit status (see `crate::error` for the codes).

mod accel;
mod boot_levers;
mod capture;
mod child;
pub use child::bind_to_host;
pub mod collect;
mod console;
mod diag;
mod events;
mod fd_pass;
mod firmware;
mod flow;
mod gate;
mod kwarn;
mod links;
mod memory;
mod nic;
mod pob_cache;
mod pvh;
mod qemu;
mod qmp;
mod qmp_event;
mod reactor;
mod sandbox;
pub mod sched;
mod spool;
mod stats;
mod stdin;
mod stop;
mod stream;
mod symbols;
mod terminal;
mod timeline;
mod trace;
mod verdict;
pub use verdict::Verdict;
mod virtiofsd;
mod vm;
mod warm;

use pob_cache::PobCache;
use std::fs::File;
use std::io::{self, IsTerminal};
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::ExitStatus;
use std::time::{Duration, Instant};

use mio::net::UnixStream;
use signal_hook_mio::v1_0::Signals;

use crate::cli::{CacheCommand, Compress, GuestMode, KernelWarnings, RunArgs, Setup};
use crate::decode::decoder_buffer;
use crate::disk;
use crate::error::{Error, Result};
use crate::locate;
use crate::net;
use crate::pack;
use crate::scratch;
use crate::share;
use crate::topology;
use accel::{Accel, TcgThread};
use guestinit::proto;
use guestinit::proto::boot::{BootParams, Disks, Mode};
use guestinit::proto::net::Hostname;
use links::{Link, Links};

use capture::Capture;
use console::Console;
use diag::Diagnostics;
use events::Events;
use reactor::Sources;
use spool::{Finish, Spool};
use stop::Stopper;
use stream::{Bulk, Relay};
use terminal::RawTerminal;

pub fn main(args: RunArgs) -> Result<Verdict> {
    let stdout = Spool::new(io::stdout());
    let events = Events::new(events_out(args.events.as_deref(), &stdout)?);
    let diag = Diagnostics::new(Spool::new(io::stderr()), events.clone());
    let result = run(&args, stdout, &diag);
    // A failure before the verdict (packing, QEMU) ends the events here.
    events.end(&Verdict::end(&result));
    events.close();
    diag.close();
    result
}

/// Where `--events` go: stdout's own spool for `-`, in order with the
/// payload's output, else a file.
fn events_out(path: Option<&Path>, stdout: &Spool) -> Result<Option<Spool>> {
    match path {
        Some(path) if path == Path::new("-") => Ok(Some(stdout.clone())),
        path => log_file(path),
    }
}

fn run(args: &RunArgs, stdout: Spool, diag: &Diagnostics) -> Result<Verdict> {
    // First of all: a stop signal from now on stops the run in order.
    let mut signals = Signals::new(reactor::SIGNALS).map_err(|source| Error::VmSetup {
        what: "handling stop signals".into(),
        source,
    })?;
    let mut files = OutputFiles::create(args)?;
    // Bound before the boot, so a path in use is a usage error now; its
    // file is removed when the run ends, however it ends.
    let mut stats_socket = args.stats_socket.as_deref().map(stats::bind).transpose()?;
    let mut machine = prepare(args, diag)?;
    // A signal while packing: nothing runs yet, so nothing to stop.
    if let Some(signal) = signals.pending().next() {
        return Ok(verdict::stopped(signal, "before the VM started"));
    }
    let learn_pob = machine.learn_pob.take();
    let memory_mib = machine.memory_mib;
    let booted_elf = machine.levers.vmlinux.clone();
    let Started {
        mut vm,
        mut links,
        warm,
    } = start(args, machine, diag)?;
    if let (Some(link), Some(socket)) = (links.take(Link::Stats), &mut stats_socket) {
        socket.serve(link)?;
    }
    let deadline = args
        .vm
        .timeout
        .map(|secs| vm.spawned + Duration::from_secs(secs));
    let mut buffer = decoder_buffer();
    let console_out = stdout.clone();
    let mut relay = Relay::new(stdout, diag.clone(), args.vm.verbose);
    // The scheduler's log streams to --sched-log as it arrives.
    relay.collected.sched = sched::SchedFrames::new(files.sched_log.take());
    // What the guest's KBID should say, when QEMU boots an ELF we have.
    relay.expected_build_id = booted_elf
        .and_then(|elf| pvh::build_id(&elf).map(|id| stream::ExpectedBuildId { id, elf }));
    relay.collected.kernel = kwarn::KernelWarnings::new(files.kernel_log.take());
    relay.collect = collect_receiver(args);
    // Shell mode: raw from here to the end of `run`, however it ends.
    let terminal = match args.mode {
        GuestMode::Shell => Some(RawTerminal::enter().map_err(|source| Error::VmSetup {
            what: "putting the terminal in raw mode".into(),
            source,
        })?),
        _ => None,
    };
    let polled = links.polled();
    let console = match &terminal {
        Some(terminal) => Some(console(
            terminal,
            links.take_always(Link::Hvc0)?,
            console_out,
            diag,
        )?),
        None => None,
    };
    let mut sources = sources(args, links, polled, &mut buffer, relay, signals, &mut files)?;
    sources.console = console;
    if let Some(warm) = warm {
        match warm.replay {
            Some(replay) => sources.bulk.replay(&replay),
            None => sources.bulk.recorded = Some(Vec::new()),
        }
        sources.warm = Some(warm.session);
    }
    // The shell starts at the terminal's size (queued until the guest
    // opens its control port).
    sources.resize();
    let mut stopper = Stopper::new(deadline);
    let status = reactor::run(&mut sources, &mut vm, &mut stopper);
    if let Some(session) = sources.warm.take() {
        session.finish(args.vm.verbose);
    }
    let status = status?;
    // QEMU is gone: nothing uses the shares' daemons any more.
    vm.end_daemons();
    if let Some(console) = &mut sources.console {
        console.finish_line();
    }
    let mut after = AfterQemu::from(sources, args);
    if let (Some(cache), Some(addrs)) = (&learn_pob, &after.collected.kernel_addrs) {
        cache.store(addrs);
    }
    let outcome = conclude(args, &after, &stopper, status, (vm.spawned, memory_mib));
    diag.events().end(&Verdict::end(&outcome));
    // Output still queued when the run timed out gets a moment, no more.
    let floor = Instant::now() + Duration::from_secs(1);
    match after.finish_writers(deadline.map(|d| d.max(floor)), args) {
        Some(unwritten) => Ok(unwritten),
        None => outcome,
    }
}

/// The receiver of `--collect` and `--collect-cores`, if either is given.
fn collect_receiver(args: &RunArgs) -> Option<collect::Receiver> {
    let roots = crate::collect::roots(&args.vm.collects, args.vm.collect_cores.as_deref());
    let max = args.vm.collect_max;
    (!roots.is_empty()).then(|| {
        let roots = roots
            .into_iter()
            .map(|r| collect::Root::new(r.guest_dir, r.host_dir))
            .collect();
        collect::Receiver::new(
            roots,
            max.unwrap_or(guestinit::proto::collect::DEFAULT_MAX_BYTES),
        )
    })
}

/// What a run boots, found and packed before QEMU starts.
struct Machine<'a> {
    kernel: PathBuf,
    /// The firmware, the file `-kernel` loads, the rootfs option.
    levers: boot_levers::BootLevers,
    accel: Accel,
    /// QEMU runs under its seccomp filter (`--sandbox`).
    sandbox: bool,
    /// The init's keys on the kernel command line.
    params: BootParams<'a>,
    initrd: Initrd,
    memory_mib: u32,
    /// `--cpus`, or `--topology`'s product.
    cpus: u32,
    /// The cache entry to learn `page_offset_base`'s offset into, when
    /// this run has to scan for it.
    learn_pob: Option<PobCache>,
    /// The virtiofsd that serves `--share`, when there is one.
    virtiofsd: Option<PathBuf>,
    /// A machine that may be snapshotted or restored: `initrd` is its base
    /// archive, and this the run it is handed.
    warm: Option<WarmRun>,
}

/// What a machine that may be warm is handed, and what keys its snapshot.
struct WarmRun {
    /// The base archive's bytes (a part of the snapshot's key).
    base: Vec<u8>,
    /// The payload's archive.
    payload: File,
}

/// Why this run cannot be restored, if it cannot: what it has that a
/// snapshot cannot hold or QEMU 7.2 cannot migrate.
fn cold_reason(args: &RunArgs) -> Option<&'static str> {
    if args.vm.cold {
        Some("--cold")
    } else if args.initramfs.is_some() {
        Some("--initramfs (the whole archive is the user's)")
    } else if !matches!(args.mode, GuestMode::Test | GuestMode::Exec(_)) {
        Some("shell and mkdisk modes")
    } else if !args.disks.is_empty() {
        Some("--disk (the guest would keep a stale view of the image)")
    } else if !args.vm.shares.is_empty() {
        Some("--share (vhost-user-fs does not migrate)")
    } else if args.vm.net.is_some() {
        Some("--net (not restored yet)")
    } else {
        None
    }
}

/// Finds the kernel, builds its command line, packs the archive and sizes
/// the memory: every check that can fail before the boot.
fn prepare<'a>(args: &'a RunArgs, diag: &Diagnostics) -> Result<Machine<'a>> {
    let topology = args.vm.topology;
    let cpus = topology::cpu_count(args.vm.cpus, topology).map_err(|d| Error::CpusDisagree {
        cpus: d.cpus,
        topology: d.topology,
    })?;
    let disks = disks(&args.disks, &args.mode)?;
    net::check_forwards(&args.vm.net_forwards)?;
    let virtiofsd = shares(&args.vm.shares)?;
    let roots = crate::collect::roots(&args.vm.collects, args.vm.collect_cores.as_deref());
    crate::collect::check(&roots).map_err(Error::Collect)?;
    let kernel = locate::kernel(args.vm.kernel.as_deref())?;
    // A packed archive must be able to drive the NIC; the user's own
    // `--initramfs` is the user's to fill (the guest warns without eth0).
    if args.vm.net.is_some() && args.initramfs.is_none() {
        nic::check_driver(&kernel, args.vm.modules.as_deref())?;
    }
    let pob = Pob::find(&kernel);
    let accel = accel::detect();
    let sandbox = sandbox::decide(args.vm.sandbox, diag)?;
    let params = boot_params(args, &pob, disks.access, accel)?;
    let mut device_modules = disks.modules;
    if args.vm.net.is_some() {
        device_modules.extend(net::MODULES);
    }
    if virtiofsd.is_some() {
        device_modules.extend(share::MODULES);
    }
    let cold = cold_reason(args);
    if let (Some(reason), true) = (cold, args.vm.verbose) {
        diag.line(&format!("guestinit: booting cold: {reason}"));
    }
    let (initrd, warm, sizes) = match cold {
        Some(_) => {
            let initrd = initramfs(args, &kernel, device_modules)?;
            let sizes = memory::archive_sizes(&initrd.path).map_err(|source| Error::Read {
                path: initrd.path.clone(),
                source,
            })?;
            (initrd, None, sizes)
        }
        None => {
            let (initrd, warm) = warm_archives(args, &kernel, device_modules)?;
            let len = warm.base.len() as u64 + warm.payload.metadata().map_or(0, |m| m.len());
            let sizes = memory::Sizes {
                loaded: len,
                unpacked: len,
            };
            (initrd, Some(warm), sizes)
        }
    };
    let levers = boot_levers::BootLevers::find(&kernel, args.vm.append.as_deref());
    let floor = memory::Floor::for_option(levers.initramfs_options);
    let (memory_mib, warning) = memory::choose(args.vm.memory, sizes.unpacked, floor);
    // One snapshot serves payloads of many sizes: the default is rounded up.
    let memory_mib = match (&warm, args.vm.memory) {
        (Some(_), None) => memory_mib.div_ceil(memory::DEFAULT_MIB) * memory::DEFAULT_MIB,
        _ => memory_mib,
    };
    let nodes = topology.map_or(1, |t| t.nodes);
    let (memory_mib, rounded) = memory::spread(memory_mib, args.vm.memory.is_some(), nodes)
        .map_err(|t| Error::NodeMemoryTooSmall {
            memory_mib: t.memory_mib,
            nodes: t.nodes,
            node_mib: t.node_mib,
            least_mib: memory::NODE_LEAST_MIB,
            give_mib: t.give_mib,
        })?;
    // An archive that cannot boot would hang silently: refused, not warned.
    memory::check(memory_mib, sizes, floor).map_err(|t| Error::MemoryTooSmall {
        archive_mib: t.archive_mib,
        memory_mib: t.memory_mib,
        least_mib: t.least_mib,
        estimate_mib: t.estimate_mib,
    })?;
    for warning in [warning, rounded].into_iter().flatten() {
        diag.warn(&warning);
    }
    Ok(Machine {
        levers,
        kernel,
        accel,
        sandbox,
        params,
        initrd,
        memory_mib,
        cpus,
        learn_pob: pob.learn,
        virtiofsd,
        warm,
    })
}

/// The shares checked (each HOST_DIR a directory here, no GUEST_DIR twice)
/// and the virtiofsd that will serve them; `None` without shares.
fn shares(shares: &[share::Share]) -> Result<Option<PathBuf>> {
    if shares.is_empty() {
        return Ok(None);
    }
    share::check_list(shares)?;
    for share in shares {
        share.check_host()?;
    }
    locate::virtiofsd().map(Some)
}

/// `page_offset_base`'s offset from `_text`, for the guest's KADR.
struct Pob {
    offset: Option<u64>,
    /// Where to learn it when it is not known yet.
    learn: Option<PobCache>,
}

impl Pob {
    /// From the kernel's System.map, else (Debian's is a stub) from what
    /// an earlier run's KADR taught the cache.
    fn find(kernel: &Path) -> Pob {
        let map = pack::kernel::companions(kernel)
            .ok()
            .and_then(|c| c.system_map);
        let map_offset = map.as_deref().and_then(symbols::map_offset);
        let cache = map_offset
            .is_none()
            .then(|| PobCache::for_kernel(kernel))
            .flatten();
        let offset = map_offset.or_else(|| cache.as_ref()?.load());
        Pob {
            offset,
            learn: cache.filter(|_| offset.is_none()),
        }
    }
}

/// The host's keys for the init (the user's `--append` comes after them,
/// so it can override them); a `--hostname` the guest could not take is
/// refused here.
fn boot_params<'a>(
    args: &'a RunArgs,
    pob: &Pob,
    access: Disks,
    accel: Accel,
) -> Result<BootParams<'a>> {
    let with_scheduler = args.sched.scheduler.is_some();
    let hostname = args.vm.hostname.as_deref().map(|name| {
        Hostname::new(name.as_bytes()).map_err(|reason| Error::BadHostname {
            name: name.to_owned(),
            reason,
        })
    });
    Ok(BootParams {
        pob: pob.offset,
        attach_timeout_s: sched::attach_timeout(with_scheduler, &args.sched_run, accel),
        mode: match args.mode {
            GuestMode::Test => Mode::Test,
            GuestMode::Shell => Mode::Shell,
            GuestMode::Exec(_) => Mode::Exec,
            GuestMode::Mkdisk(fs) => Mode::Mkdisk(Some(fs.fs())),
        },
        disks: access,
        trace_kb: args.trace.as_ref().map(|_| TRACE_BUFFER_KB),
        hostname: hostname.transpose()?,
        net: args.vm.net.is_some(),
        ..BootParams::default()
    })
}

/// The kernel's trace buffer with `--trace`, in KiB per CPU: some 20,000
/// events, where the unexpanded buffer holds a hundred or so.
const TRACE_BUFFER_KB: u64 = 1024;

/// The links a run has.
fn wanted(args: &RunArgs) -> links::Wanted {
    links::Wanted {
        // Shell and exec modes read no stdin: the shell has the terminal.
        stdin: !io::stdin().is_terminal() && args.mode == GuestMode::Test,
        stats: args.stats_socket.is_some(),
        control: matches!(args.mode, GuestMode::Shell | GuestMode::Exec(_)),
        console: args.mode == GuestMode::Shell,
        handover: false,
    }
}

/// The VM as it runs: QEMU, and the host's ends of its links.
struct Started {
    vm: vm::Vm,
    links: Links,
    warm: Option<WarmStart>,
}

/// A machine that may be warm, as it starts.
struct WarmStart {
    session: warm::Session,
    /// A restored machine's frames from before its snapshot; `None` when
    /// this run boots (and records them).
    replay: Option<Vec<u8>>,
}

/// Opens the links and starts QEMU on `machine`.
fn start(args: &RunArgs, machine: Machine, diag: &Diagnostics) -> Result<Started> {
    let wanted = links::Wanted {
        handover: machine.warm.is_some(),
        ..wanted(args)
    };
    // The kernel's line of a machine that may be warm holds only what every
    // run of it shares; the run's keys are handed over.
    let line_params = match machine.warm {
        Some(_) => BootParams {
            pob: machine.params.pob,
            handover: true,
            ..BootParams::default()
        },
        None => machine.params,
    };
    let warm_line = machine.warm.is_some();
    let mut links = Links::open(wanted)?;
    // Each daemon is ready before QEMU starts (`virtiofsd`).
    let (daemons, shares) = match &machine.virtiofsd {
        Some(binary) => virtiofsd::start(binary, &args.vm.shares)?,
        None => Default::default(),
    };
    let tcg_thread = match machine.accel {
        Accel::Kvm => TcgThread::Multi,
        Accel::Tcg => accel::tcg_thread(accel::qemu_version(qemu::QEMU)),
    };
    let qemu_args = qemu::args(&qemu::VmConfig {
        accel: machine.accel,
        tcg_thread,
        sandbox: machine.sandbox.then_some(sandbox::SETTINGS),
        kernel: machine.levers.vmlinux.as_deref().unwrap_or(&machine.kernel),
        initrd: &machine.initrd.path,
        firmware: machine.levers.firmware.as_deref(),
        initramfs_options: machine.levers.initramfs_options,
        memory_mib: machine.memory_mib,
        cpus: machine.cpus,
        topology: args.vm.topology,
        params: line_params,
        append: args.vm.append.as_deref().filter(|a| !a.is_empty()),
        disks: &args.disks,
        net: args.vm.net,
        forwards: &args.vm.net_forwards,
        shares: shares.iter().map(virtiofsd::Device::qemu).collect(),
        extra: &args.vm.qemu_args,
        links: links.qemu_args(),
        stdin: wanted.stdin && !warm_line,
        stats: wanted.stats && !warm_line,
    });
    let mut qemu_args = qemu_args;
    let mut warm_plan = None;
    if let Some(run) = &machine.warm {
        // The slot names the image, not the vmlinux extracted from it (whose
        // path follows the image's identity, a part of its own).
        let vmlinux = machine.levers.vmlinux.as_deref().map(Path::as_os_str);
        let keyed: Vec<_> = qemu_args
            .iter()
            .map(|a| match Some(a.as_os_str()) == vmlinux {
                true => machine.kernel.clone().into_os_string(),
                false => a.clone(),
            })
            .collect();
        let plan = warm_plan_for(&keyed, &machine.kernel, run, diag, args.vm.verbose);
        if let warm::Plan::Restore(snapshot) = &plan {
            qemu_args.extend(qemu::incoming(snapshot.file.as_raw_fd()));
        }
        warm_plan = Some(plan);
    }
    if args.vm.verbose {
        let shown: Vec<_> = qemu_args.iter().map(|a| a.to_string_lossy()).collect();
        diag.line(&format!("guestinit: {} {}", qemu::QEMU, shown.join(" ")));
    }
    let mut inherited = links.inherited();
    inherited.extend(machine.initrd.fd.as_ref().map(|fd| fd.as_raw_fd()));
    if let Some(warm::Plan::Restore(snapshot)) = &warm_plan {
        inherited.push(snapshot.file.as_raw_fd());
    }
    inherited.extend(shares.iter().map(virtiofsd::Device::fd));
    let stderr = links.take_qemu_stderr().ok_or_else(|| Error::VmSetup {
        what: "QEMU's stderr link".into(),
        source: io::ErrorKind::NotFound.into(),
    })?;
    let vm = vm::Vm::spawn(&qemu_args, &inherited, stderr, daemons)?;
    // QEMU holds its ends now; the host's copies would hide QEMU's exit
    // (and keep a share's daemon serving after it).
    links.close_guest_ends();
    drop(shares);
    drop(machine.initrd);
    if let Some(link) = links.take(Link::Stdin).filter(|_| wanted.stdin) {
        stdin::forward(link);
    }
    let warm = match (machine.warm, warm_plan) {
        (Some(run), Some(plan)) => {
            let handover = links.take_always(Link::Handover)?;
            let replay = match &plan {
                warm::Plan::Restore(snapshot) => Some(snapshot.replay.clone()),
                _ => None,
            };
            let run = warm::handover::Run {
                params: handover_params(args, &machine.params, wanted),
                archive: run.payload,
            };
            Some(WarmStart {
                session: warm::Session::start(plan, handover, run, diag),
                replay,
            })
        }
        _ => None,
    };
    Ok(Started { vm, links, warm })
}

/// The keys a machine that may be warm is handed: those a cold run's
/// kernel line holds, the user's `--append` last as there.
fn handover_params(args: &RunArgs, params: &BootParams, wanted: links::Wanted) -> String {
    let params = BootParams {
        ack: true,
        stdin: wanted.stdin,
        stats: wanted.stats,
        ..*params
    };
    let mut line = String::new();
    params.write_to(&mut line).expect("a String takes any text");
    if let Some(append) = args.vm.append.as_deref().filter(|a| !a.is_empty()) {
        line.push(' ');
        line.push_str(append);
    }
    line
}

/// The snapshot plan of a machine booted with `qemu_args`: none (boot and
/// hand over) when the QEMU binary cannot be found to key it by.
fn warm_plan_for(
    qemu_args: &[std::ffi::OsString],
    kernel: &Path,
    run: &WarmRun,
    diag: &Diagnostics,
    verbose: bool,
) -> warm::Plan {
    let key = locate::on_path(std::ffi::OsStr::new(qemu::QEMU))
        .and_then(|qemu| warm::key::of(qemu_args, kernel, &run.base, &qemu).ok());
    match key {
        Some(key) => warm::plan(&key, diag, verbose),
        None => warm::Plan::Boot,
    }
}

/// `guestinit cache clean`.
pub fn cache_command(command: CacheCommand) -> Result<()> {
    let CacheCommand::Clean = command;
    let Some(dir) = crate::cache::cache_dir() else {
        return Ok(());
    };
    let freed = warm::store::clean_all(&dir).map_err(|source| Error::Write {
        path: dir.clone(),
        source,
    })?;
    crate::say::say_outln!(
        "guestinit: removed {:.1} MiB from {}",
        freed as f64 / (1 << 20) as f64,
        dir.display()
    );
    Ok(())
}

/// The data disks' access for the kernel command line (none in mkdisk
/// mode, whose disk is the template) and the modules they need.
struct DiskPlan {
    access: Disks,
    modules: Vec<&'static str>,
}

/// The disks of the run; every image is checked first, so a missing or
/// unusable one stops the run here.
fn disks(disks: &[disk::Disk], mode: &GuestMode) -> Result<DiskPlan> {
    let access =
        disk::access_list(disks).map_err(|_| Error::TooManyDisks { count: disks.len() })?;
    let files = disks
        .iter()
        .map(disk::Disk::check)
        .collect::<Result<Vec<_>>>()?;
    Ok(match mode {
        GuestMode::Mkdisk(fs) => DiskPlan {
            access: Disks::default(),
            modules: disk::modules([fs.fs()]),
        },
        _ if disks.is_empty() => DiskPlan {
            access: Disks::default(),
            modules: vec![],
        },
        _ => DiskPlan {
            access,
            modules: disk::modules(files.iter().filter_map(disk::detect)),
        },
    })
}

/// What the run left once QEMU is gone: its texts and its writers.
struct AfterQemu {
    collected: stream::Collected,
    /// QEMU's event after which the guest could not go on, if one came.
    halt: Option<qmp_event::Event>,
    com1: String,
    com2: String,
    qemu_stderr: String,
    stdout: Spool,
    diag: Diagnostics,
    /// The log files asked for, with their paths.
    logs: Vec<(Spool, PathBuf)>,
    signals: Signals,
}

impl AfterQemu {
    fn from(mut sources: Sources<'_>, args: &RunArgs) -> AfterQemu {
        let (relay, bulk_log) = sources.bulk.finish();
        let trace = sources.com1.take_trace().map(trace::TraceTee::finish);
        let (com1, com1_log) = sources.com1.into_parts();
        let (com2, com2_log) = sources.com2.into_parts();
        let (qemu_stderr, _) = sources.qemu_stderr.into_parts();
        let (stdout, collected) = relay.into_parts();
        let diag = sources.diag;
        if args.vm.verbose {
            let replies = sources.qmp.replies();
            diag.line(&format!("guestinit: QMP said:\n{}", replies.trim_end()));
        }
        let (trace, lost) = trace.unzip();
        if let (Some(lost @ 1..), Some(path)) = (lost, &args.trace) {
            diag.warn(&format!(
                "the kernel's trace buffer overran: {lost} events were lost \
                 (each gap is marked `CPU:N [LOST M EVENTS]` in {})",
                path.display()
            ));
        }
        let sched_log = collected.sched.log_file().cloned();
        let kernel_log = collected.kernel.log_file().cloned();
        let logs = [
            (bulk_log, &args.bulk_log),
            (com1_log, &args.vm.com1_log),
            (com2_log, &args.vm.com2_log),
            (trace, &args.trace),
            (sched_log, &args.sched_run.sched_log),
            (kernel_log, &args.kernel_log),
        ];
        let logs = logs
            .into_iter()
            .filter_map(|(spool, path)| Some((spool?, path.clone()?)))
            .collect();
        AfterQemu {
            collected,
            halt: sources.qmp.halt().cloned(),
            com1,
            com2,
            qemu_stderr,
            stdout,
            diag,
            logs,
            signals: sources.signals,
        }
    }

    /// Waits for every writer: the logs, then stdout and stderr. The
    /// verdict that replaces the run's when one could not be written in
    /// time.
    fn finish_writers(&mut self, deadline: Option<Instant>, args: &RunArgs) -> Option<Verdict> {
        let mut drain = OutputDrain {
            deadline,
            signals: &mut self.signals,
            timeout_secs: args.vm.timeout.unwrap_or_default(),
            diag: &self.diag,
        };
        for (spool, path) in &self.logs {
            let name = path.display().to_string();
            if let Some(unwritten) = drain.finish(|d, give_up| spool.finish(d, give_up), &name) {
                return Some(unwritten);
            }
        }
        let stdout = &self.stdout;
        if let Some(unwritten) = drain.finish(|d, give_up| stdout.finish(d, give_up), "stdout") {
            return Some(unwritten);
        }
        let diag = &self.diag;
        drain.finish(|d, give_up| diag.finish(d, give_up), "stderr")
    }
}

/// The run's status, with its words queued on stderr: the timeline, how
/// the payload died, the kernel log the init sent.
fn conclude(
    args: &RunArgs,
    after: &AfterQemu,
    stopper: &Stopper,
    status: ExitStatus,
    (spawned, memory_mib): (Instant, u32),
) -> Result<Verdict> {
    let c = &after.collected;
    if args.timeline {
        let spawn_to_exit = c.exit_at.map(|at| at.saturating_duration_since(spawned));
        after.diag.text(&timeline::report(
            &c.timeline,
            c.wait.as_ref(),
            spawn_to_exit,
        ));
    }
    let mut verdict = verdict::decide(&verdict::Evidence {
        collected: c,
        host_stop: stopper.host_stop,
        qemu_failed: !status.success(),
        com1: &after.com1,
        com2: &after.com2,
        memory_mib,
        timeout_secs: args.vm.timeout.unwrap_or_default(),
        halt: after.halt.as_ref(),
    });
    // A halt that is not the verdict (EXIT came first, or a stop was under
    // way) is still said: it is why QEMU was quit.
    if let (Some(halt), false) = (&after.halt, matches!(verdict, Verdict::Halted { .. })) {
        after.diag.warn(&format!("the VM could not go on: {halt}"));
    }
    // No exit code and QEMU failed: QEMU's failure, the tool's error.
    if matches!(
        verdict,
        Verdict::NoExit { .. } | Verdict::NeverReachedInit { .. }
    ) && !status.success()
    {
        return Err(Error::QemuFailed {
            status,
            stderr: after.qemu_stderr.clone(),
        });
    }
    // The scheduler's failure explains the exit code or FATAL line it caused.
    let fatal = verdict::first_line_starting(&after.com2, guestinit::proto::prefix::FATAL);
    let sched_log = args.sched_run.sched_log.as_deref();
    if let Some(failed) = sched::failure(&c.sched, c.exit_code, fatal, sched_log) {
        if status.success() && stopper.host_stop.is_none() {
            verdict = Verdict::Scheduler(failed);
        }
    }
    // `--kernel-warnings fail`: the kernel's splats fail a passing run.
    if let (Verdict::Exited(0), KernelWarnings::Fail, Some(first)) =
        (&verdict, args.kernel_warnings, &c.kernel.first)
    {
        verdict = Verdict::KernelWarnings {
            count: c.kernel.count,
            first: first.clone(),
        };
    }
    let note = match &verdict {
        Verdict::Exited(_) => verdict::death_note(c.wait.as_ref(), &after.com1)
            .map(|note| with_cores(note, args, &c.kept)),
        _ if !c.dmsg.is_empty() => Some(format!(
            "guestinit: kernel log sent by the init:\n{}",
            String::from_utf8_lossy(&c.dmsg).trim_end()
        )),
        _ => None,
    };
    if let Some(note) = note {
        after.diag.line(&note);
    }
    Ok(verdict)
}

/// A signal death's note with the core files `--collect-cores` brought
/// back, which the payload (or what it started) dumped.
fn with_cores(mut note: String, args: &RunArgs, kept: &collect::Kept) -> String {
    let Some(_) = args.vm.collect_cores else {
        return note;
    };
    let cores_root = args.vm.collects.len();
    let cores: Vec<_> = kept
        .files
        .iter()
        .filter(|(root, _)| *root == cores_root)
        .collect();
    match cores.as_slice() {
        [] => note.push_str("\nguestinit: no core file came back (--collect-cores)"),
        cores => {
            for (_, path) in cores {
                note.push_str(&format!("\nguestinit: its core file: {}", path.display()));
            }
        }
    }
    note
}

/// The initramfs QEMU boots: a path, and the descriptor behind it when
/// it was packed for this run.
struct Initrd {
    path: PathBuf,
    fd: Option<OwnedFd>,
}

/// The user's initramfs, or one packed for this run into a file that
/// never has a name (QEMU reads `/dev/fd/N`), so no temporary file outlives
/// the host, however it ends (SIGKILL mid-packing included).
fn initramfs(args: &RunArgs, kernel: &Path, device_modules: Vec<&'static str>) -> Result<Initrd> {
    match &args.initramfs {
        Some(path) if path.is_file() => Ok(Initrd {
            path: path.clone(),
            fd: None,
        }),
        Some(path) => Err(Error::Read {
            path: path.clone(),
            source: io::ErrorKind::NotFound.into(),
        }),
        None => {
            let spec = pack_spec(args, kernel, device_modules);
            let file = scratch::anonymous_file().map_err(|source| Error::VmSetup {
                what: "creating a temporary file for the initramfs".into(),
                source,
            })?;
            let named = std::env::temp_dir().join("(the initramfs)");
            let plan = pack::plan(&spec)?;
            let writer = file.try_clone().map_err(|source| Error::VmSetup {
                what: "duplicating the initramfs' descriptor".into(),
                source,
            })?;
            pack::write_to(&plan, writer, &named, Compress::None)?;
            let fd = OwnedFd::from(file);
            Ok(Initrd {
                path: PathBuf::from(format!("/dev/fd/{}", fd.as_raw_fd())),
                fd: Some(fd),
            })
        }
    }
}

/// What `run` packs for `args`.
fn pack_spec(args: &RunArgs, kernel: &Path, device_modules: Vec<&'static str>) -> pack::Spec {
    pack::Spec {
        argv: args.program.clone(),
        init: args.vm.init.clone(),
        kernel: Some(kernel.to_owned()),
        modules: args.vm.modules.clone(),
        sched: args.sched.clone(),
        setup: cargo_cwd(&args.mode, args.setup.clone()),
        shell: match &args.mode {
            GuestMode::Test | GuestMode::Mkdisk(_) => None,
            GuestMode::Shell => Some(pack::Shell { exec_cmd: None }),
            GuestMode::Exec(cmd) => Some(pack::Shell {
                exec_cmd: Some(cmd.clone()),
            }),
        },
        device_modules,
        net: args.vm.net.is_some(),
        shares: args.vm.shares.clone(),
        collect: crate::collect::file(
            &args.vm.collects,
            args.vm.collect_cores.as_deref(),
            args.vm.collect_max,
        ),
    }
}

/// A machine that may be warm: its base archive, which QEMU boots (in an
/// unnamed file, as `initramfs`'), and the payload's, which is handed over.
fn warm_archives(
    args: &RunArgs,
    kernel: &Path,
    device_modules: Vec<&'static str>,
) -> Result<(Initrd, WarmRun)> {
    let plan = pack::plan(&pack_spec(args, kernel, device_modules))?;
    let setup = |what: &str| {
        let what = what.to_owned();
        move |source| Error::VmSetup { what, source }
    };
    let mut base = Vec::new();
    pack::write_part(
        &plan,
        pack::Part::Base,
        &mut base,
        Path::new("(the base archive)"),
        Compress::None,
    )?;
    let mut base_file =
        scratch::anonymous_file().map_err(setup("creating a file for the base archive"))?;
    io::Write::write_all(&mut base_file, &base).map_err(setup("writing the base archive"))?;
    let payload =
        scratch::anonymous_file().map_err(setup("creating a file for the payload's archive"))?;
    let writer = payload
        .try_clone()
        .map_err(setup("duplicating the payload archive's descriptor"))?;
    let named = std::env::temp_dir().join("(the payload's archive)");
    pack::write_part(
        &plan,
        pack::Part::Payload,
        io::BufWriter::new(writer),
        &named,
        Compress::None,
    )?;
    let fd = OwnedFd::from(base_file);
    let initrd = Initrd {
        path: PathBuf::from(format!("/dev/fd/{}", fd.as_raw_fd())),
        fd: Some(fd),
    };
    Ok((initrd, WarmRun { base, payload }))
}

/// As cargo's runner for tests, the payload starts in the package's folder,
/// as `cargo test` starts it: cargo runs the runner there and names that
/// folder in CARGO_MANIFEST_DIR. An explicit `--cwd` wins; the folder is
/// made in the guest (empty unless `--include` fills it), except under a
/// folder the guest mounts over (`/tmp`), where it could not be.
fn cargo_cwd(mode: &GuestMode, mut setup: Setup) -> Setup {
    let Some(dir) = std::env::var_os("CARGO_MANIFEST_DIR").map(PathBuf::from) else {
        return setup;
    };
    let hidden = proto::path::MOUNTED.iter().any(|m| dir.starts_with(m));
    let here = std::env::current_dir().is_ok_and(|here| here == dir);
    if matches!(mode, GuestMode::Test) && setup.cwd.is_none() && here && !hidden {
        setup.cwd = Some(dir);
    }
    setup
}

/// Every file a run writes, made before the boot: a path that cannot be
/// written is a usage error then, never a late one that hides the verdict.
struct OutputFiles {
    bulk_log: Option<Spool>,
    com1_log: Option<Spool>,
    com2_log: Option<Spool>,
    trace: Option<Spool>,
    sched_log: Option<Spool>,
    kernel_log: Option<Spool>,
}

impl OutputFiles {
    fn create(args: &RunArgs) -> Result<OutputFiles> {
        Ok(OutputFiles {
            bulk_log: log_file(args.bulk_log.as_deref())?,
            com1_log: log_file(args.vm.com1_log.as_deref())?,
            com2_log: log_file(args.vm.com2_log.as_deref())?,
            trace: log_file(args.trace.as_deref())?,
            sched_log: log_file(args.sched_run.sched_log.as_deref())?,
            kernel_log: log_file(args.kernel_log.as_deref())?,
        })
    }
}

/// A spooled writer for a log file the user asked for.
fn log_file(path: Option<&Path>) -> Result<Option<Spool>> {
    let Some(path) = path else { return Ok(None) };
    let file = File::create(path).map_err(|source| Error::Write {
        path: path.to_owned(),
        source,
    })?;
    Ok(Some(Spool::new(file)))
}

/// The reactor's sources over the host's ends of the links.
fn sources<'b>(
    args: &RunArgs,
    mut links: Links,
    polled: Vec<(Link, std::os::fd::RawFd, mio::Interest)>,
    buffer: &'b mut [u8],
    relay: Relay,
    signals: Signals,
    files: &mut OutputFiles,
) -> Result<Sources<'b>> {
    let diag = relay.diag().clone();
    let mut stream = |link| links.take_always(link).map(UnixStream::from_std);
    let images = args.disks.iter().map(|d| d.path.clone()).collect();
    let qmp = qmp::Qmp::new(stream(Link::Qmp)?, images).map_err(|source| Error::VmSetup {
        what: "talking to QEMU's monitor".into(),
        source,
    })?;
    Ok(Sources {
        bulk: Bulk::new(
            stream(Link::Bulk)?,
            buffer,
            relay,
            files.bulk_log.take(),
            args.throttle_bulk,
        ),
        com1: Capture::new(
            stream(Link::Com1)?,
            files.com1_log.take(),
            &diag,
            "the --com1-log file",
        )
        .watching(stop::DUMP_LINE)
        .watching(verdict::PANIC_LINE.as_bytes())
        .tracing(files.trace.take().map(trace::TraceTee::new)),
        com2: Capture::new(
            stream(Link::Com2)?,
            files.com2_log.take(),
            &diag,
            "the --com2-log file",
        ),
        qemu_stderr: Capture::new(stream(Link::QemuStderr)?, None, &diag, "QEMU's stderr"),
        qmp,
        console: None,
        signals,
        links,
        polled,
        diag,
        wakes: match args.mode {
            GuestMode::Shell | GuestMode::Exec(_) => Link::Control,
            GuestMode::Test | GuestMode::Mkdisk(_) => Link::Hvc0,
        },
        warm: None,
    })
}

/// Shell mode's console over the raw terminal and hvc0.
fn console(
    terminal: &RawTerminal,
    hvc0: std::os::unix::net::UnixStream,
    out: Spool,
    diag: &Diagnostics,
) -> Result<Console> {
    let input = terminal
        .input
        .try_clone()
        .map_err(|source| Error::VmSetup {
            what: "relaying the terminal to hvc0".into(),
            source,
        })?;
    Ok(Console::new(input, hvc0, out, diag))
}

/// The last phase: every writer finishes, within the deadline and unless
/// a stop signal comes first.
struct OutputDrain<'a> {
    deadline: Option<Instant>,
    signals: &'a mut Signals,
    timeout_secs: u64,
    diag: &'a Diagnostics,
}

impl OutputDrain<'_> {
    /// Runs one writer's `finish`; the verdict that replaces the run's when
    /// its output could not all be written.
    fn finish(
        &mut self,
        finish: impl FnOnce(Option<Instant>, &mut dyn FnMut() -> bool) -> Finish,
        name: &str,
    ) -> Option<Verdict> {
        let mut caught = None;
        let signals = &mut *self.signals;
        let mut give_up = || {
            caught = caught.or_else(|| signals.pending().next());
            caught.is_some()
        };
        match finish(self.deadline, &mut give_up) {
            Finish::Written(None) => None,
            Finish::Written(Some(e)) => {
                // The output had nowhere to go; the run's status still stands.
                self.diag.warn(&format!(
                    "cannot write to {name} ({e}); output was discarded"
                ));
                None
            }
            Finish::Deadline => Some(Verdict::Timeout {
                secs: self.timeout_secs,
            }),
            Finish::GaveUp => Some(verdict::stopped(
                caught.unwrap_or_default(),
                "the output was not fully written",
            )),
        }
    }
}
