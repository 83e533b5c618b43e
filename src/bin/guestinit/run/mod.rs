//! `guestinit run`: pack (or take) an initramfs, boot it in QEMU, relay the
//! payload's output from the bulk port, and turn the end of the VM into an
//! exit status (see `crate::error` for the codes).

mod accel;
mod capture;
mod console;
mod events;
mod links;
mod memory;
mod pob_cache;
mod qemu;
mod qmp;
mod reactor;
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
mod vm;

use pob_cache::PobCache;
use std::fs::File;
use std::io::{self, IsTerminal};
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::ExitStatus;
use std::time::{Duration, Instant};

use mio::net::UnixStream;
use signal_hook_mio::v1_0::Signals;

use crate::cli::{Compress, GuestMode, RunArgs};
use crate::decode::decoder_buffer;
use crate::disk;
use crate::error::{Error, Result};
use crate::locate;
use crate::pack;
use crate::scratch::ScratchDir;
use guestinit::proto;

use capture::Capture;
use console::Console;
use events::Events;
use reactor::Sources;
use spool::{Finish, Spool};
use stop::Stopper;
use stream::{Bulk, Relay};
use terminal::RawTerminal;

pub fn main(args: RunArgs) -> Result<u8> {
    let stdout = Spool::new(io::stdout());
    let events = Events::new(events_out(args.events.as_deref(), &stdout)?);
    let result = run(&args, stdout, &events);
    // A failure before the verdict (packing, QEMU) ends the events here.
    events.end(&result);
    events.close();
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

fn run(args: &RunArgs, stdout: Spool, events: &Events) -> Result<u8> {
    // First of all: a stop signal from now on stops the run in order.
    let mut signals = Signals::new(reactor::SIGNALS).map_err(|source| Error::VmSetup {
        what: "handling stop signals".into(),
        source,
    })?;
    let (mut vm, mut host, memory_mib, learn_pob) = boot(args, &mut signals, events)?;
    // Removed from the file system when the run ends, however it ends.
    let _stats_socket = match (host.stats.take(), &args.stats_socket) {
        (Some(link), Some(path)) => Some(stats::serve(path, link)?),
        _ => None,
    };
    let deadline = args
        .vm
        .timeout
        .map(|secs| vm.spawned + Duration::from_secs(secs));
    let mut buffer = decoder_buffer();
    let console_out = stdout.clone();
    let relay = Relay::new(
        stdout,
        Spool::new(io::stderr()),
        args.vm.verbose,
        events.clone(),
    );
    // Shell mode: raw from here to the end of `run`, however it ends.
    let terminal = match args.mode {
        GuestMode::Shell => Some(RawTerminal::enter().map_err(|source| Error::VmSetup {
            what: "putting the terminal in raw mode".into(),
            source,
        })?),
        _ => None,
    };
    let mut sources = sources(args, host, &mut buffer, relay, signals)?;
    if let Some(terminal) = &terminal {
        sources.console = Some(console(terminal, &sources.hvc0, console_out)?);
        // The shell starts at the terminal's size (queued until the guest
        // opens its control port).
        sources.resize();
    }
    let mut stopper = Stopper::new(deadline);
    let status = reactor::run(&mut sources, &mut vm, &mut stopper)?;
    if let Some(console) = &mut sources.console {
        console.finish_line();
    }
    let mut ended = Ended::from(sources, args);
    if let (Some(cache), Some(addrs)) = (&learn_pob, &ended.collected.kernel_addrs) {
        cache.store(addrs);
    }
    let outcome = conclude(args, &ended, &stopper, status, (vm.spawned, memory_mib));
    events.end(&outcome);
    if let Some(path) = &args.trace {
        trace::save(&ended.com1, path)?;
    }
    if let Some(path) = &args.sched_run.sched_log {
        sched::save_log(&ended.collected.sched, path)?;
    }
    // Output still queued when the run timed out gets a moment, no more.
    let floor = Instant::now() + Duration::from_secs(1);
    ended.finish_writers(deadline.map(|d| d.max(floor)), args)?;
    outcome
}

/// Packs, links and starts QEMU: the running VM, the host's link ends,
/// the guest's memory in MiB, and the cache entry to learn
/// `page_offset_base`'s offset into when this run has to scan for it.
fn boot(
    args: &RunArgs,
    signals: &mut Signals,
    events: &Events,
) -> Result<(vm::Vm, links::HostEnds, u32, Option<PobCache>)> {
    let (disk_key, disk_modules) = disks(&args.disks, &args.mode)?;
    let kernel = locate::kernel(args.vm.kernel.as_deref())?;
    // The user's --append comes last, so it can override what the host adds.
    let map = pack::kernel::companions(&kernel)
        .ok()
        .and_then(|c| c.system_map);
    let map_offset = map.as_deref().and_then(symbols::map_offset);
    // Debian's System.map is a stub: an earlier run's KADR may know instead.
    let pob_cache = map_offset
        .is_none()
        .then(|| PobCache::for_kernel(&kernel))
        .flatten();
    let pob_offset = map_offset.or_else(|| pob_cache.as_ref()?.load());
    let learn_pob = pob_cache.filter(|_| pob_offset.is_none());
    let accel = accel::detect();
    let with_scheduler = args.sched.scheduler.is_some();
    let sched_keys = sched::append(None, with_scheduler, &args.sched_run, accel);
    let mode_key = match args.mode {
        GuestMode::Test => None,
        GuestMode::Shell => Some(proto::mode::SHELL),
        GuestMode::Exec(_) => Some(proto::mode::EXEC),
        GuestMode::Mkdisk(_) => Some(proto::mode::MKDISK),
    }
    .map(|mode| format!("{}={mode}", proto::key::MODE));
    let append: Vec<String> = [
        pob_offset.map(symbols::append_key),
        sched_keys,
        mode_key,
        disk_key,
        args.vm.append.clone(),
    ]
    .into_iter()
    .flatten()
    .collect();
    let append = append.join(" ");
    let initrd = initramfs(args, &kernel, disk_modules)?;
    let size = memory::archive_bytes(&initrd.path).map_err(|source| Error::Read {
        path: initrd.path.clone(),
        source,
    })?;
    let (memory_mib, warning) = memory::choose(args.vm.memory, size);
    if let Some(warning) = warning {
        eprintln!("guestinit: warning: {warning}");
        events.warning(&warning);
    }
    // A signal while packing: nothing runs yet, so nothing to stop.
    if let Some(signal) = signals.pending().next() {
        return Err(Error::Stopped {
            signal: verdict::signal_text(signal),
            number: signal,
            how: "before the VM started",
        });
    }
    // Shell and exec modes read no stdin: the shell has the terminal.
    let stdin = if io::stdin().is_terminal() || args.mode != GuestMode::Test {
        links::Stdin::Null
    } else {
        links::Stdin::Relayed
    };
    let (mut host, guest) = links::new(links::Wanted {
        stdin,
        stats: args.stats_socket.is_some(),
        control: matches!(args.mode, GuestMode::Shell | GuestMode::Exec(_)),
    })?;
    let mut inherited = guest.inherited();
    inherited.extend(initrd.fd.as_ref().map(|fd| fd.as_raw_fd()));
    let qemu_args = qemu::args(&qemu::VmConfig {
        accel,
        kernel: &kernel,
        initrd: &initrd.path,
        memory_mib,
        cpus: args.vm.cpus,
        append: Some(&append).filter(|a| !a.is_empty()).map(String::as_str),
        disks: &args.disks,
        extra: &args.vm.qemu_args,
        fds: guest.fds(),
    });
    if args.vm.verbose {
        let shown: Vec<_> = qemu_args.iter().map(|a| a.to_string_lossy()).collect();
        eprintln!("guestinit: {} {}", qemu::QEMU, shown.join(" "));
    }
    let vm = vm::Vm::spawn(&qemu_args, &inherited, guest.stderr)?;
    // QEMU holds its ends now; the host's copies would hide QEMU's exit.
    drop((
        guest.bulk,
        guest.com1,
        guest.com2,
        guest.qmp,
        guest.hvc0,
        guest.stdin,
        guest.stats,
        guest.control,
        initrd,
    ));
    if let Some(link) = host.stdin.take() {
        stdin::forward(link);
    }
    Ok((vm, host, memory_mib, learn_pob))
}

/// The disks' kernel command-line keys and the modules they need; every
/// image is checked first, so a missing or unusable one stops the run here.
fn disks(disks: &[disk::Disk], mode: &GuestMode) -> Result<(Option<String>, Vec<&'static str>)> {
    if disks.len() > guestinit::proto::disk::MAX {
        return Err(Error::TooManyDisks { count: disks.len() });
    }
    let files = disks
        .iter()
        .map(disk::Disk::check)
        .collect::<Result<Vec<_>>>()?;
    Ok(match mode {
        GuestMode::Mkdisk(fs) => (
            Some(format!("{}={}", proto::key::FS, fs.name())),
            disk::modules([fs.fs()]),
        ),
        _ if disks.is_empty() => (None, vec![]),
        _ => (
            disk::append_key(disks),
            disk::modules(files.iter().filter_map(disk::detect)),
        ),
    })
}

/// What the run left once QEMU is gone: its texts and its writers.
struct Ended {
    collected: stream::Collected,
    com1: String,
    com2: String,
    qemu_stderr: String,
    stdout: Spool,
    stderr: Spool,
    /// The log files asked for, with their paths.
    logs: Vec<(Spool, PathBuf)>,
    signals: Signals,
}

impl Ended {
    fn from(sources: Sources<'_>, args: &RunArgs) -> Ended {
        let (relay, bulk_log) = sources.bulk.finish();
        let (com1, com1_log) = sources.com1.into_parts();
        let (com2, com2_log) = sources.com2.into_parts();
        let (qemu_stderr, _) = sources.qemu_stderr.into_parts();
        let (stdout, stderr, collected) = relay.into_parts();
        if args.vm.verbose {
            let replies = sources.qmp.replies();
            stderr.push(format!("guestinit: QMP said:\n{}\n", replies.trim_end()).as_bytes());
        }
        let logs = [
            (bulk_log, &args.bulk_log),
            (com1_log, &args.vm.com1_log),
            (com2_log, &args.vm.com2_log),
        ];
        let logs = logs
            .into_iter()
            .filter_map(|(spool, path)| Some((spool?, path.clone()?)))
            .collect();
        Ended {
            collected,
            com1,
            com2,
            qemu_stderr,
            stdout,
            stderr,
            logs,
            signals: sources.signals,
        }
    }

    /// Waits for every writer: the logs, then stdout and stderr.
    fn finish_writers(&mut self, deadline: Option<Instant>, args: &RunArgs) -> Result<()> {
        let mut ending = Ending {
            deadline,
            signals: &mut self.signals,
            timeout_secs: args.vm.timeout.unwrap_or_default(),
        };
        for (spool, path) in &self.logs {
            ending.finish(spool, &path.display().to_string())?;
        }
        ending.finish(&self.stdout, "stdout")?;
        ending.finish(&self.stderr, "stderr")
    }
}

/// The run's status, with its words queued on stderr: the timeline, how
/// the payload died, the kernel log the init sent.
fn conclude(
    args: &RunArgs,
    ended: &Ended,
    stopper: &Stopper,
    status: ExitStatus,
    (spawned, memory_mib): (Instant, u32),
) -> Result<u8> {
    let c = &ended.collected;
    if args.timeline {
        let spawn_to_exit = c.exit_at.map(|at| at.saturating_duration_since(spawned));
        let report = timeline::report(&c.timeline, c.wait.as_ref(), spawn_to_exit);
        ended.stderr.push(report.as_bytes());
    }
    let outcome = verdict::decide(&verdict::Evidence {
        collected: c,
        ending: stopper.ending,
        qemu_failed: !status.success(),
        com1: &ended.com1,
        com2: &ended.com2,
        memory_mib,
        timeout_secs: args.vm.timeout.unwrap_or_default(),
    })
    .map_err(|e| match e {
        Error::NoExit { .. } | Error::NeverReachedInit { .. } if !status.success() => {
            Error::QemuFailed {
                status,
                stderr: ended.qemu_stderr.clone(),
            }
        }
        other => other,
    });
    // The scheduler's failure explains the exit code or FATAL line it caused.
    let fatal = verdict::first_line_starting(&ended.com2, guestinit::proto::prefix::FATAL);
    let outcome = match sched::verdict(&c.sched, c.exit_code, fatal) {
        Some(e) if status.success() && stopper.ending.is_none() => Err(e),
        _ => outcome,
    };
    let note = match &outcome {
        Ok(_) => verdict::death_note(c.wait.as_ref(), &ended.com1),
        Err(_) if !c.dmsg.is_empty() => Some(format!(
            "guestinit: kernel log sent by the init:\n{}",
            String::from_utf8_lossy(&c.dmsg).trim_end()
        )),
        Err(_) => None,
    };
    if let Some(note) = note {
        ended.stderr.push(format!("{note}\n").as_bytes());
    }
    outcome
}

/// The initramfs QEMU boots: a path, and the descriptor behind it when
/// it was packed for this run.
struct Initrd {
    path: PathBuf,
    fd: Option<OwnedFd>,
}

/// The user's initramfs, or one packed for this run. A packed one is open
/// and already unlinked when QEMU starts (QEMU reads `/dev/fd/N`), so no
/// temporary file outlives the host, however it ends.
fn initramfs(args: &RunArgs, kernel: &Path, disk_modules: Vec<&'static str>) -> Result<Initrd> {
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
            let spec = pack::Spec {
                argv: args.program.clone(),
                init: args.vm.init.clone(),
                kernel: Some(kernel.to_owned()),
                modules: args.vm.modules.clone(),
                sched: args.sched.clone(),
                setup: args.setup.clone(),
                shell: match &args.mode {
                    GuestMode::Test | GuestMode::Mkdisk(_) => None,
                    GuestMode::Shell => Some(pack::Shell { exec_cmd: None }),
                    GuestMode::Exec(cmd) => Some(pack::Shell {
                        exec_cmd: Some(cmd.clone()),
                    }),
                },
                disk_modules,
            };
            let scratch = ScratchDir::new("run").map_err(|source| Error::VmSetup {
                what: "creating a temporary directory".into(),
                source,
            })?;
            let path = scratch.path().join("initramfs.cpio");
            pack::write(&pack::plan(&spec)?, &path, Compress::None)?;
            let file = File::open(&path).map_err(|source| Error::Read { path, source })?;
            let fd = OwnedFd::from(file);
            Ok(Initrd {
                path: PathBuf::from(format!("/dev/fd/{}", fd.as_raw_fd())),
                fd: Some(fd),
            })
        }
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
    host: links::HostEnds,
    buffer: &'b mut [u8],
    relay: Relay,
    signals: Signals,
) -> Result<Sources<'b>> {
    let stream = UnixStream::from_std;
    let qmp = qmp::Qmp::new(stream(host.qmp)).map_err(|source| Error::VmSetup {
        what: "talking to QEMU's monitor".into(),
        source,
    })?;
    Ok(Sources {
        bulk: Bulk::new(
            stream(host.bulk),
            buffer,
            relay,
            log_file(args.bulk_log.as_deref())?,
            args.throttle_bulk,
        ),
        com1: Capture::new(stream(host.com1), log_file(args.vm.com1_log.as_deref())?)
            .watching(stop::DUMP_LINE),
        com2: Capture::new(stream(host.com2), log_file(args.vm.com2_log.as_deref())?),
        qemu_stderr: Capture::new(stream(host.stderr), None),
        qmp,
        hvc0: host.hvc0,
        control: host.control,
        console: None,
        signals,
    })
}

/// Shell mode's console over the raw terminal and hvc0.
fn console(
    terminal: &RawTerminal,
    hvc0: &std::os::unix::net::UnixStream,
    out: Spool,
) -> Result<Console> {
    let setup = |source| Error::VmSetup {
        what: "relaying the terminal to hvc0".into(),
        source,
    };
    let input = terminal.input.try_clone().map_err(setup)?;
    let hvc0 = hvc0.try_clone().map_err(setup)?;
    Ok(Console::new(input, hvc0, out))
}

/// The last phase: every writer finishes, within the deadline and unless
/// a stop signal comes first.
struct Ending<'a> {
    deadline: Option<Instant>,
    signals: &'a mut Signals,
    timeout_secs: u64,
}

impl Ending<'_> {
    fn finish(&mut self, spool: &Spool, name: &str) -> Result<()> {
        let mut caught = None;
        let signals = &mut *self.signals;
        let give_up = || {
            caught = caught.or_else(|| signals.pending().next());
            caught.is_some()
        };
        match spool.finish(self.deadline, give_up) {
            Finish::Written(None) => Ok(()),
            Finish::Written(Some(e)) => {
                // The output had nowhere to go; the run's status still stands.
                eprintln!("guestinit: warning: cannot write to {name} ({e}); output was discarded");
                Ok(())
            }
            Finish::Deadline => Err(Error::Timeout {
                secs: self.timeout_secs,
            }),
            Finish::GaveUp => {
                let signal = caught.unwrap_or_default();
                Err(Error::Stopped {
                    signal: verdict::signal_text(signal),
                    number: signal,
                    how: "the output was not fully written",
                })
            }
        }
    }
}
