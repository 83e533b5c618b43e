//! Every failure of the host tool as a typed value, and the exit statuses
//! of `guestinit`. How a VM's run ended (the payload's code, 248, 251-254,
//! 128+n) is a `run::Verdict`, not an error: errors are the tool's own
//! failures (249, 250).
//!
//! Exit status of `guestinit run`:
//! - 0..=255: the payload's exit code, from the last CRC-valid EXIT frame
//!   (a negative or larger code is reduced modulo 256, as a shell does);
//! - 248 ([`SCHED_FAILED`]), with `--scheduler`: the kernel has no sched_ext,
//!   or the scheduler did not start, did not attach, or died during the run;
//! - 249 ([`USAGE`]): bad arguments, missing program, kernel, module, library or
//!   init binary, unreadable input, and command-line errors (not clap's 2,
//!   which a payload's own failure often is);
//! - 250 ([`QEMU`]): QEMU is not on PATH or failed (or a share's virtiofsd
//!   did not start);
//! - 251 ([`NO_EXIT`]): the VM ended without an EXIT frame (or never ran
//!   the init at all, or QEMU paused it: a host disk error, a STOP, a
//!   guest panic);
//! - 252 ([`TIMEOUT`]): `--timeout` was reached and QEMU killed;
//! - 253 ([`INIT_PANIC`]): COM2 has a line starting `PANIC:` (the init crashed);
//! - 254 ([`FATAL`]): COM2 has a line starting `FATAL:`: the init reported a
//!   fatal error, e.g. the initramfs did not fully unpack;
//! - 128 + n: the host got stop signal n (SIGHUP, SIGINT, SIGTERM).
//!
//! A COM2 verdict counts only when the payload's own WAIT and EXIT frames
//! did not arrive: the payload can write to /dev/ttyS1 too.
//!
//! `pack` and `decode` exit 0 or 249. `mkdisk` exits as `run` does, 249
//! also for an existing FILE or a missing mkfs, and 254 when the image
//! lacks the filesystem's magic after all.

use std::io;
use std::path::PathBuf;
use std::process::ExitStatus;

/// `--kernel-warnings fail`: the payload passed, the kernel warned.
pub const KERNEL_WARNINGS: u8 = 247;
pub const SCHED_FAILED: u8 = 248;
pub const USAGE: u8 = 249;
pub const QEMU: u8 = 250;
pub const NO_EXIT: u8 = 251;
pub const TIMEOUT: u8 = 252;
pub const INIT_PANIC: u8 = 253;
pub const FATAL: u8 = 254;

/// The exit statuses as `run --help` shows them.
pub const EXIT_CODES_HELP: &str = "\
Exit status:
  0-255  the payload's exit code (from the guest's EXIT frame)
  247    with --kernel-warnings fail: the payload exited 0 but the kernel
         logged a splat (WARNING, BUG, Oops, KASAN, UBSAN, lockdep, hung
         task, soft lockup, RCU stall)
  248    with --scheduler: no sched_ext in the kernel, or the scheduler did not
         start, did not attach, or died during the run
  249    usage or pack error (unknown option, missing program, kernel,
         module, library, init, a --net-forward port that is taken, a bad
         --share)
  250    qemu-system-x86_64 missing or failed to start (or, with --share,
         virtiofsd)
  251    the VM ended without an exit code (kernel panic, init died, QEMU
         paused it on a host disk error)
  252    --timeout reached; QEMU was killed
  253    the init crashed (a COM2 line starting PANIC:)
  254    the init reported a fatal error, e.g. an initramfs that did not
         fully unpack (a COM2 line starting FATAL:)
  128+n  guestinit got SIGHUP, SIGINT or SIGTERM (129, 130, 143) and
         stopped the guest in order (a second signal kills QEMU)";

/// The exit statuses as `shell --help` shows them.
pub const SHELL_HELP: &str = "\
Keys: Ctrl-A X quits the VM; Ctrl-A Ctrl-A sends one Ctrl-A.

Exit status:
  0-255  the shell's exit code (`exit N`), or with --exec the command's
         (128+n when signal n ended it)
  248-254, 128+n  as for `guestinit run` (see `guestinit run --help`);
         251 also when Ctrl-A X quit the VM, 249 without a terminal on stdin";

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("`guestinit shell` needs a terminal on stdin for its interactive shell; to run a command without one, use `guestinit shell --exec 'CMD'`")]
    NotATerminal,
    #[error("busybox not found at {path}: install busybox-static (scripts/setup.sh)")]
    NoBusybox { path: &'static str },
    #[error("the --exec command ({bytes} bytes) exceeds the init's limit of {max} bytes")]
    ExecTooLong { bytes: usize, max: usize },
    // ---- 249: usage and pack errors ----
    #[error("cannot read {}: {source}", path.display())]
    Read { path: PathBuf, source: io::Error },
    #[error("cannot write {}: {source}", path.display())]
    Write { path: PathBuf, source: io::Error },
    #[error("argument {arg:?} contains a NUL byte, which no program argument can hold")]
    BadArgument { arg: String },
    #[error(
        "the payload's argv ({bytes} bytes, {count} arguments) exceeds the init's limits ({} bytes, {} arguments)",
        guestinit::parse::args::MAX_BYTES,
        guestinit::parse::args::MAX_ARGS
    )]
    ArgsTooLong { bytes: usize, count: usize },
    #[error("program `{name}` not found on PATH")]
    ProgramNotFound { name: String },
    #[error("{} is not an executable file", path.display())]
    NotExecutable { path: PathBuf },
    #[error("path {} is not UTF-8; initramfs names must be", path.display())]
    NonUtf8Path { path: PathBuf },
    #[error("{}: not a readable ELF file: {reason}", path.display())]
    BadElf {
        path: PathBuf,
        reason: object::Error,
    },
    #[error("library {name} (needed by {}) not found in its RUNPATH/RPATH or the system library directories", needed_by.display())]
    LibraryNotFound { name: String, needed_by: PathBuf },
    #[error("interpreter {} (of {}) not found", interpreter.display(), script.display())]
    InterpreterNotFound {
        interpreter: PathBuf,
        script: PathBuf,
    },
    #[error("`{name}` (run through env by {}) not found on PATH", script.display())]
    EnvProgramNotFound { name: String, script: PathBuf },
    #[error("{} (run through env by {}) is outside the guest's PATH {}", program.display(), script.display(), guestinit::proto::GUEST_PATH)]
    EnvProgramOutsidePath { program: PathBuf, script: PathBuf },
    #[error("{what} {} (of {}) is under {dir}, which the guest mounts over, and is opened by that path", path.display(), needed_by.display())]
    MountedOver {
        path: PathBuf,
        what: &'static str,
        needed_by: PathBuf,
        dir: &'static str,
    },
    #[error("{}: more than {max} levels of #! interpreters", script.display())]
    InterpreterLoop { script: PathBuf, max: usize },
    #[error("payload file {} would replace one of guestinit's own initramfs entries", path.display())]
    Collision { path: PathBuf },
    #[error("no kernel found (tried {tried}): run scripts/setup.sh or pass --kernel")]
    NoKernel { tried: String },
    #[error("kernel {spec}: {why}")]
    KernelFetch { spec: String, why: String },
    #[error("guestinit matrix does not take {option}: {why}")]
    MatrixOption {
        option: &'static str,
        why: &'static str,
    },
    #[error("kernel {} not found", path.display())]
    KernelNotFound { path: PathBuf },
    #[error("kernel {} needs modules ({needs} not built in) and has no module tree (tried {tried}); pass --modules DIR", kernel.display())]
    NoModuleTree {
        kernel: PathBuf,
        needs: String,
        tried: String,
    },
    #[error("kernel module {name} not found under {} (as {name}.ko, .ko.xz or .ko.zst) and not built in", dir.display())]
    ModuleNotFound { name: String, dir: PathBuf },
    #[error("kernel module {}: {reason}", path.display())]
    BadModule { path: PathBuf, reason: String },
    #[error("kernel module dependency cycle: {chain}")]
    ModuleCycle { chain: String },
    #[error("--include {spec}: {reason}")]
    BadInclude { spec: String, reason: String },
    #[error("--env {var:?}: {reason}")]
    BadEnv { var: String, reason: &'static str },
    #[error(
        "the payload's environment ({bytes} bytes, {count} variables) exceeds the init's limits ({} bytes, {} variables)",
        guestinit::proto::limit::ENV_BYTES,
        guestinit::proto::limit::ENV_VARS
    )]
    EnvTooLong { bytes: usize, count: usize },
    #[error("--cwd {}: {reason}", path.display())]
    BadCwd { path: PathBuf, reason: &'static str },
    #[error("disk {}: {source}", path.display())]
    Disk { path: PathBuf, source: io::Error },
    #[error("disk {}: {kind}, not an image: give a regular file or a block device", path.display())]
    DiskNotAnImage { path: PathBuf, kind: &'static str },
    #[error(
        "{count} disks: the guest mounts at most {}",
        guestinit::proto::disk::MAX
    )]
    TooManyDisks { count: usize },
    #[error("--share {}: {why}", path.display())]
    ShareHostDir { path: PathBuf, why: String },
    #[error("--share: GUEST_DIR {} is given twice (the second mount would hide the first)", dir.display())]
    ShareTwice { dir: PathBuf },
    #[error("{0}")]
    Collect(String),
    #[error("{count} shares: the guest mounts at most {max}")]
    TooManyShares { count: usize, max: usize },
    #[error(
        "the shares' GUEST_DIRs ({bytes} bytes in /.guestinit/shares) exceed the init's limit of {} bytes",
        guestinit::proto::limit::SHARES_BYTES
    )]
    SharesTooLong { bytes: usize },
    #[error("virtiofsd, which --share needs, is not found (tried {tried}): run scripts/setup-tests.sh or `cargo install virtiofsd --locked`, or set GUESTINIT_VIRTIOFSD")]
    VirtiofsdMissing { tried: String },
    #[error("--stats-socket {}: {why}", path.display())]
    StatsSocketTaken { path: PathBuf, why: &'static str },
    #[error("{} exists already: mkdisk makes a new image and never overwrites one; remove it or choose another name", path.display())]
    DiskExists { path: PathBuf },
    #[error("{program} is missing on this host: install {package} to make {fs} images")]
    MkfsMissing {
        program: &'static str,
        package: &'static str,
        fs: &'static str,
    },
    #[error("mkdisk: {} does not hold a {fs} filesystem after mkfs succeeded", path.display())]
    DiskNotFormatted { path: PathBuf, fs: &'static str },
    #[error(
        "the initramfs ({archive_mib:.1} MiB) cannot boot with --memory {memory_mib}: the kernel holds the archive and its unpacked files at once, at least {least_mib} MiB (short of that it fails, and with an archive that fills the memory it halts before its console is up); give --memory {estimate_mib} (the estimate for this archive) or more"
    )]
    MemoryTooSmall {
        archive_mib: f64,
        memory_mib: u32,
        least_mib: u32,
        estimate_mib: u32,
    },
    #[error("--cpus {cpus} and --topology {topology} disagree: the topology has {} vCPUs; give --cpus {} or leave --cpus out", topology.cpus(), topology.cpus())]
    CpusDisagree {
        cpus: u32,
        topology: crate::topology::Topology,
    },
    #[error("--memory {memory_mib} over --topology's {nodes} NUMA nodes is {node_mib} MiB a node, below the {least_mib} MiB each node needs; give --memory {give_mib} or more")]
    NodeMemoryTooSmall {
        memory_mib: u32,
        nodes: u32,
        node_mib: u32,
        least_mib: u32,
        give_mib: u32,
    },
    #[error("--hostname {name:?}: {reason}")]
    BadHostname {
        name: String,
        reason: guestinit::proto::net::BadHostname,
    },
    #[error("--net-forward: host port {port} is forwarded twice")]
    ForwardTwice { port: u16 },
    #[error("--net-forward: host port 127.0.0.1:{port} is taken (another program listens there): choose another")]
    PortTaken { port: u16 },
    #[error("--net-forward: cannot bind host port 127.0.0.1:{port}: {source}")]
    PortUnusable { port: u16, source: io::Error },
    #[error("--net user needs virtio_net, which kernel {} lacks: {option} is not =y and {}", kernel.display(), match tree { Some(tree) => format!("{} has no virtio_net module", tree.display()), None => "it has no module tree".to_owned() })]
    NoNetDriver {
        kernel: PathBuf,
        option: &'static str,
        tree: Option<PathBuf>,
    },
    #[error("init binary not found at {}: run `cargo build --release` (or pass --init)", path.display())]
    InitNotFound { path: PathBuf },
    #[error("{}:{line}: {why}", file.display())]
    BadScript {
        file: PathBuf,
        line: usize,
        why: String,
    },
    #[error("{option} {path:?}: {why}")]
    BadCgroup {
        option: &'static str,
        path: String,
        why: &'static str,
    },
    #[error("no config for kernel {} (looked for {}): libbpf in the guest needs it", kernel.display(), looked.join(", "))]
    NoKernelConfig {
        kernel: PathBuf,
        looked: Vec<String>,
    },

    // ---- 250: QEMU could not be started ----
    #[error("qemu-system-x86_64 not found on PATH: run scripts/setup.sh (Debian package qemu-system-x86)")]
    QemuMissing,
    #[error("cannot start qemu-system-x86_64: {0}")]
    QemuSpawn(io::Error),
    #[error("qemu-system-x86_64 failed ({status})")]
    QemuFailed { status: ExitStatus, stderr: String },
    #[error("cannot set up the VM: {what}: {source}")]
    VmSetup { what: String, source: io::Error },
    #[error("--sandbox on: qemu-system-x86_64 cannot run under its seccomp filter here: {why}")]
    NoSandbox { why: String },
    #[error("virtiofsd for --share {} {why}", share.display())]
    Virtiofsd {
        share: PathBuf,
        why: String,
        stderr: String,
    },
}

pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::QemuMissing
            | Error::QemuSpawn(_)
            | Error::QemuFailed { .. }
            | Error::VmSetup { .. }
            | Error::NoSandbox { .. }
            | Error::Virtiofsd { .. } => QEMU,
            Error::Read { .. }
            | Error::Write { .. }
            | Error::BadArgument { .. }
            | Error::ArgsTooLong { .. }
            | Error::ProgramNotFound { .. }
            | Error::NotExecutable { .. }
            | Error::NonUtf8Path { .. }
            | Error::BadElf { .. }
            | Error::LibraryNotFound { .. }
            | Error::InterpreterNotFound { .. }
            | Error::InterpreterLoop { .. }
            | Error::EnvProgramNotFound { .. }
            | Error::EnvProgramOutsidePath { .. }
            | Error::MountedOver { .. }
            | Error::Collision { .. }
            | Error::NoKernel { .. }
            | Error::KernelFetch { .. }
            | Error::KernelNotFound { .. }
            | Error::MatrixOption { .. }
            | Error::NoModuleTree { .. }
            | Error::ModuleNotFound { .. }
            | Error::BadModule { .. }
            | Error::ModuleCycle { .. }
            | Error::InitNotFound { .. }
            | Error::BadScript { .. }
            | Error::BadCgroup { .. }
            | Error::NoKernelConfig { .. }
            | Error::BadInclude { .. }
            | Error::BadEnv { .. }
            | Error::EnvTooLong { .. }
            | Error::BadCwd { .. }
            | Error::NotATerminal
            | Error::NoBusybox { .. }
            | Error::ExecTooLong { .. }
            | Error::Disk { .. }
            | Error::DiskNotAnImage { .. }
            | Error::TooManyDisks { .. }
            | Error::DiskExists { .. }
            | Error::StatsSocketTaken { .. }
            | Error::ShareHostDir { .. }
            | Error::ShareTwice { .. }
            | Error::Collect(_)
            | Error::TooManyShares { .. }
            | Error::SharesTooLong { .. }
            | Error::VirtiofsdMissing { .. }
            | Error::MkfsMissing { .. }
            | Error::MemoryTooSmall { .. }
            | Error::CpusDisagree { .. }
            | Error::NodeMemoryTooSmall { .. }
            | Error::BadHostname { .. }
            | Error::ForwardTwice { .. }
            | Error::PortTaken { .. }
            | Error::PortUnusable { .. }
            | Error::NoNetDriver { .. } => USAGE,
            // The VM ran and said it succeeded: a fatal, not a usage error.
            Error::DiskNotFormatted { .. } => FATAL,
        }
    }

    /// Lines that explain the error further (QEMU's stderr), printed
    /// after the one-line message.
    pub fn details(&self) -> Vec<(&'static str, String)> {
        match self {
            Error::QemuFailed { stderr, .. } if !stderr.trim().is_empty() => {
                vec![("qemu-system-x86_64 stderr", stderr.clone())]
            }
            Error::Virtiofsd { stderr, .. } if !stderr.trim().is_empty() => {
                vec![("virtiofsd stderr", stderr.clone())]
            }
            _ => Vec::new(),
        }
    }

    /// Prints the error and its details to stderr.
    pub fn report(&self) {
        report(self, &self.details());
    }
}

/// A one-line message on stderr, then each detail: on its line when it is
/// one line, else indented under its label.
pub fn report(message: &dyn std::fmt::Display, details: &[(&'static str, String)]) {
    crate::say::say_errln!("guestinit: {message}");
    for (label, text) in details {
        match text.lines().count() {
            1 => crate::say::say_errln!("guestinit: {label}: {text}"),
            _ => {
                crate::say::say_errln!("guestinit: {label}:");
                for line in text.lines() {
                    crate::say::say_errln!("  {line}");
                }
            }
        }
    }
}
