//! The command line, declared with clap's derive so that options, help text
//! and usage errors come from one place.

use std::ffi::OsString;
use std::path::PathBuf;

use clap::{ArgAction, Args, FromArgMatches, Parser, Subcommand, ValueEnum};

use crate::error::{EXIT_CODES_HELP, SHELL_HELP, USAGE};

/// The command line, or the exit status after clap printed why not: 0 for
/// `--help` and `--version`, else [`USAGE`] (249) like every other host
/// error, not clap's 2, which a payload's own failure often is.
pub fn parse() -> Result<Cli, u8> {
    Cli::try_parse().map_err(|err| {
        let _ = err.print();
        exit_status(&err)
    })
}

fn exit_status(err: &clap::Error) -> u8 {
    if err.use_stderr() {
        USAGE
    } else {
        0
    }
}

#[derive(Debug, Parser)]
#[command(
    name = "guestinit",
    version,
    about = "Pack a program into an initramfs, boot it in QEMU under the guestinit init, relay its output"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Boot PROGRAM in a QEMU VM and relay its stdout/stderr; exit with its code.
    #[command(after_help = EXIT_CODES_HELP)]
    Run(Box<RunArgs>),
    /// Boot a VM with an interactive busybox shell on this terminal (Ctrl-A X quits), or run one command with --exec; exit with the shell's code.
    #[command(after_help = SHELL_HELP)]
    Shell(Box<ShellArgs>),
    /// Write the initramfs that `run` would boot.
    #[command(after_help = "Exit status: 0, or 249 on error.")]
    Pack(Box<PackArgs>),
    /// Make a disk image for `run --disk`: FILE of --size bytes, formatted
    /// inside a VM by the host's mkfs, so its features are the guest kernel's.
    #[command(after_help = MKDISK_EXIT_HELP)]
    Mkdisk(Box<MkdiskArgs>),
    /// Run PROGRAM on every --kernel x --topology cell, each cell a `guestinit run` of its own, in parallel; exit 0 when every cell passed.
    #[command(after_help = MATRIX_EXIT_HELP)]
    Matrix(Box<MatrixArgs>),
    /// Print the frames of a raw bulk-port capture (from `run --bulk-log`).
    #[command(after_help = "Exit status: 0 if FILE was read, 249 if not.")]
    Decode(DecodeArgs),
    /// Manage guestinit's cache ($XDG_CACHE_HOME/guestinit): the machines' snapshots, what runs learned.
    #[command(subcommand)]
    Cache(CacheCommand),
    /// Kernels by name: fetch one into the cache ($XDG_CACHE_HOME/guestinit/kernels), list them. `--kernel` takes the same names.
    #[command(subcommand)]
    Kernel(KernelCommand),
}

#[derive(Debug, Subcommand)]
pub enum KernelCommand {
    /// Fetch and unpack a kernel (unless cached) and print its image's path.
    #[command(after_help = KERNEL_FETCH_HELP)]
    Fetch(KernelFetchArgs),
    /// Show the cached kernels: entry, release, size, image, and the suites that name it.
    #[command(after_help = "Exit status: 0, or 249 on error.")]
    List,
}

const KERNEL_FETCH_HELP: &str = "\
SPEC:
  debian:SUITE      the cloud kernel SUITE's linux-image-cloud-amd64 points to
                    (bookworm, trixie, sid, ...), through a private apt state
                    against this machine's own Debian archive
  deb:A.deb[,B.deb] kernel packages on disk (an image package and the parts
                    newer kernels split off it: modules, base)
A cached SPEC is used without the network until --update.

Exit status: 0, or 249 on error (the message names the spec and what failed).";

#[derive(Debug, Args)]
pub struct KernelFetchArgs {
    /// debian:SUITE or deb:FILE.deb[,FILE.deb...].
    #[arg(value_name = "SPEC")]
    pub spec: std::ffi::OsString,
    /// Ask apt again for the suite's current kernel (fetched if it changed).
    #[arg(long)]
    pub update: bool,
    /// Print the unpacked tree's root instead of the image.
    #[arg(long)]
    pub root: bool,
}

#[derive(Debug, Subcommand)]
pub enum CacheCommand {
    /// Remove everything in the cache but the fetched kernels (the next run of each machine boots cold).
    #[command(after_help = "Exit status: 0, or 249 on error.")]
    Clean,
}

#[derive(Debug, Default, Args)]
pub struct RunArgs {
    /// Boot this initramfs instead of packing one.
    #[arg(long, value_name = "FILE",
          conflicts_with_all = ["program", "modules", "init", "scheduler", "include", "env", "cwd", "shares", "collects", "collect_cores"])]
    pub initramfs: Option<PathBuf>,

    /// Save the raw bytes read from the bulk port (see `guestinit decode`).
    #[arg(long, value_name = "FILE")]
    pub bulk_log: Option<PathBuf>,

    /// Serve the scheduler's stats (scx_stats' JSON lines) on a unix socket
    /// at PATH while the run lasts.
    #[arg(long, value_name = "PATH")]
    pub stats_socket: Option<PathBuf>,

    /// Save the kernel trace's lines from COM1 here (trace_pipe, the
    /// sched_ext debug dump).
    #[arg(long, value_name = "FILE")]
    pub trace: Option<PathBuf>,
    /// Save the kernel's splats (WARNING, BUG, Oops, KASAN, UBSAN, lockdep,
    /// hung task, soft lockup, RCU stall) here, each a summary line and
    /// its records.
    #[arg(long, value_name = "FILE")]
    pub kernel_log: Option<PathBuf>,

    /// What a kernel splat does to the run: `report` it on stderr, or also
    /// `fail` a run that otherwise passed, with 247.
    #[arg(long, value_enum, value_name = "WHAT", default_value_t = KernelWarnings::Report)]
    pub kernel_warnings: KernelWarnings,

    /// Write the run's events as JSON lines to FILE, or to stdout for `-` (schema: docs/EVENTS.md).
    #[arg(long, value_name = "FILE|-")]
    pub events: Option<PathBuf>,

    /// After the run, print the guest's boot timeline to stderr.
    #[arg(long)]
    pub timeline: bool,

    /// Test aid: read the bulk port at most this many KiB per second.
    #[arg(long, value_name = "KIB_PER_SEC", hide = true,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub throttle_bulk: Option<u32>,

    #[command(flatten)]
    pub vm: VmArgs,

    #[arg(long = "disk", value_name = "FILE[,ro|,rw]", help = DISK_HELP,
          value_parser = crate::disk::Disk::parse)]
    pub disks: Vec<crate::disk::Disk>,

    #[command(flatten)]
    pub setup: Setup,

    #[command(flatten)]
    pub sched: SchedArgs,

    #[command(flatten)]
    pub sched_run: SchedRunArgs,

    /// The program to run in the guest, and its arguments. Options for
    /// guestinit come first: from PROGRAM (or `--`) on, all is the program's.
    #[arg(
        value_name = "PROGRAM",
        trailing_var_arg = true,
        required_unless_present = "initramfs",
        help_heading = None::<&str>,
    )]
    pub program: Vec<OsString>,

    /// What the guest runs: `shell` sets this, `run` never does.
    #[arg(skip)]
    pub mode: GuestMode,
}

/// `--disk`'s help, the same for `run` and `shell`.
const DISK_HELP: &str = "Attach a disk image as a virtio-blk disk, mounted in the guest at \
/mnt/diskN (N counts from 0 in the order given) as the filesystem its superblock names; \
`,ro` makes it read-only, `,rw` (the default) names a FILE that itself ends in `,ro` (repeatable)";

/// The options that boot a VM, the same for every command that boots one
/// (`run`, `shell`, `mkdisk`): flattened into each, under one help heading.
#[derive(Debug, Default, PartialEq, Args)]
#[command(next_help_heading = "VM options")]
pub struct VmArgs {
    /// Kernel image, a kernel build tree, or a name `guestinit kernel fetch` takes (debian:SUITE, deb:FILE.deb) [default: $GUESTINIT_KERNEL, else a build tree here, .cache/kernel, /boot, /usr/lib/modules].
    #[arg(long, value_name = "PATH")]
    pub kernel: Option<PathBuf>,

    /// Where to find kernel modules [default: the kernel's own module tree, when its virtio drivers are modules].
    #[arg(long, value_name = "DIR")]
    pub modules: Option<PathBuf>,

    /// The guest init binary [default: `init` beside this executable].
    #[arg(long, value_name = "PATH")]
    pub init: Option<PathBuf>,

    /// Guest memory in MiB [default: 256, or for a large initramfs what it needs to boot + 128].
    #[arg(long, value_name = "MIB", value_parser = clap::value_parser!(u32).range(16..))]
    pub memory: Option<u32>,

    /// Number of virtual CPUs [default: 1, or the product of --topology, which it must equal].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=256))]
    pub cpus: Option<u32>,

    /// The CPU topology NODES,LLCS,CORES,THREADS, in ktstr's order: NUMA nodes, LLCs (L3 caches) per node, cores per LLC, threads per core; e.g. 2,2,2,2 is 16 vCPUs (at most 64). The memory is split evenly between the nodes.
    // A short value name: a long one turns every option's help into two lines.
    #[arg(long, value_name = "N,L,C,T",
          value_parser = crate::topology::Topology::parse)]
    pub topology: Option<crate::topology::Topology>,

    /// Kill the VM after this many seconds (exit status 252) [default: none].
    #[arg(long, value_name = "SECS", value_parser = clap::value_parser!(u64).range(1..))]
    pub timeout: Option<u64>,

    /// Extra kernel command-line arguments.
    #[arg(long, value_name = "ARGS", allow_hyphen_values = true)]
    pub append: Option<String>,

    /// The guest's host name: letters, digits, '-' and '.', at most 64 [default: guestinit].
    #[arg(long, value_name = "NAME")]
    pub hostname: Option<String>,

    /// A network for the guest: `user` is QEMU's user-mode network, eth0 at 10.0.2.15/24 with the host's 127.0.0.1 at 10.0.2.2 [default: none, the guest has only lo].
    #[arg(long, value_enum, value_name = "MODE")]
    pub net: Option<crate::net::NetMode>,

    /// Forward TCP on the host's 127.0.0.1:HOST to the guest's port GUEST (repeatable; needs --net user).
    // A short value name: a long one (over 40% of the width with its
    // option) turns every option's help into two lines.
    #[arg(long = "net-forward", value_name = "HOST:GUEST", requires = "net",
          value_parser = crate::net::Forward::parse)]
    pub net_forwards: Vec<crate::net::Forward>,

    /// Pass ARG to QEMU as it is, after guestinit's own arguments (repeatable; like vng's --qemu-opts).
    #[arg(long = "qemu-arg", value_name = "ARG", allow_hyphen_values = true)]
    pub qemu_args: Vec<OsString>,

    /// Save COM1 (kernel console) here instead of a temporary file.
    #[arg(long, value_name = "FILE")]
    pub com1_log: Option<PathBuf>,

    /// Save COM2 (init diagnostics) here instead of a temporary file.
    #[arg(long, value_name = "FILE")]
    pub com2_log: Option<PathBuf>,

    /// Print lifecycle frames (LIFE, KADR, SRDY, ...) and the QEMU command to stderr.
    #[arg(short, long)]
    pub verbose: bool,

    /// Share the host directory HOST with the guest over virtiofs (one virtiofsd each), mounted at GUEST [default: the same path] before the program starts; `,ro` refuses the guest's writes. A program under GUEST runs from the share, unpacked (repeatable).
    #[arg(long = "share", value_name = "HOST[:GUEST][,ro]",
          value_parser = crate::share::Share::parse)]
    pub shares: Vec<crate::share::Share>,

    /// After the program ends, copy the guest's GUEST_DIR tree into HOST_DIR [default: ./guestinit-out/GUEST_DIR], with modes, mtimes and symlinks, each file checked by CRC-32 (repeatable; limits in docs/PROTOCOL.md).
    #[arg(long = "collect", value_name = "GUEST_DIR[:HOST_DIR]",
          value_parser = crate::collect::Collect::parse)]
    pub collects: Vec<crate::collect::Collect>,

    /// The bytes --collect and --collect-cores send at most, all files together: bytes, or a number with K, M, G or T [default: 256M].
    #[arg(long, value_name = "SIZE", value_parser = crate::disk::parse_size)]
    pub collect_max: Option<u64>,

    /// Let the program dump core (RLIMIT_CORE unlimited) into a collected guest directory, and copy the cores into HOST_DIR; a signal death names its core file.
    #[arg(long, value_name = "HOST_DIR")]
    pub collect_cores: Option<PathBuf>,

    /// Boot cold: neither restore this machine's snapshot nor take one. Without it, a machine that can be restored (test and exec modes, no --disk, --share, --net or --initramfs) boots once, is snapshotted into the cache after it is up, and later runs restore it (GUESTINIT_SNAPSHOT_CACHE_MIB bounds the cache, default 4096).
    #[arg(long)]
    pub cold: bool,

    /// QEMU's seccomp filter (`-sandbox on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny`): `auto` where this QEMU and kernel have it, `on` or fail (250), `off` for a --qemu-arg that makes QEMU start a program (a tap script, smbd).
    #[arg(long, value_enum, value_name = "WHEN", default_value_t = Sandbox::Auto)]
    pub sandbox: Sandbox,
}

/// `--kernel-warnings`: what the kernel's splats do to the run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum KernelWarnings {
    #[default]
    Report,
    Fail,
}

/// When QEMU runs under its seccomp filter (`run::sandbox`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum Sandbox {
    #[default]
    Auto,
    On,
    Off,
}

/// What the init runs in the VM.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum GuestMode {
    /// The program of `run`.
    #[default]
    Test,
    /// `shell`: busybox's interactive shell on this terminal.
    Shell,
    /// `shell --exec CMD`: `busybox sh -c CMD`, its output streamed.
    Exec(String),
    /// `mkdisk`: the program is mkfs for the one disk, whose magic the
    /// guest then checks.
    Mkdisk(crate::disk::FsType),
}

#[derive(Debug, Args)]
pub struct ShellArgs {
    /// Run CMD under busybox `sh -c` with no terminal instead, stream its
    /// output and exit with its exit code (128+n for signal n).
    #[arg(long, value_name = "CMD")]
    pub exec: Option<String>,

    #[command(flatten)]
    pub vm: VmArgs,

    #[arg(long = "disk", value_name = "FILE[,ro|,rw]", help = DISK_HELP,
          value_parser = crate::disk::Disk::parse)]
    pub disks: Vec<crate::disk::Disk>,

    #[command(flatten)]
    pub setup: Setup,

    #[command(flatten)]
    pub sched: SchedArgs,

    #[command(flatten)]
    pub sched_run: SchedRunArgs,
}

#[derive(Debug, Args)]
pub struct PackArgs {
    /// Where to write the initramfs.
    #[arg(short, long, value_name = "FILE")]
    pub output: PathBuf,

    /// The kernel the archive is for: its modules are packed [default: as for `run`].
    #[arg(long, value_name = "PATH")]
    pub kernel: Option<PathBuf>,

    /// Take modules from this directory (searched recursively) instead of the kernel's own.
    #[arg(long, value_name = "DIR")]
    pub modules: Option<PathBuf>,

    /// The guest init binary [default: `init` beside this executable].
    #[arg(long, value_name = "PATH")]
    pub init: Option<PathBuf>,

    /// Compression of the archive.
    #[arg(long, value_enum, default_value_t = Compress::None)]
    pub compress: Compress,

    #[command(flatten)]
    pub setup: Setup,

    #[command(flatten)]
    pub sched: SchedArgs,

    /// The program to run in the guest, and its arguments. Options for
    /// guestinit come first: from PROGRAM (or `--`) on, all is the program's.
    #[arg(value_name = "PROGRAM", trailing_var_arg = true, required = true,
          help_heading = None::<&str>)]
    pub program: Vec<OsString>,
}

/// What the payload gets beside its argv: files, environment, working directory.
#[derive(Clone, Debug, Default, Args)]
#[command(next_help_heading = "Payload options")]
pub struct Setup {
    /// Pack a host file or folder at DST [default: /include-files/NAME]; an executable brings its libraries and its folder leads PATH (repeatable).
    #[arg(long, value_name = "SRC[:DST]")]
    pub include: Vec<OsString>,

    /// Set a variable of the payload's environment (repeatable).
    #[arg(long, value_name = "K=V")]
    pub env: Vec<OsString>,

    /// The payload's working directory in the guest [default: /].
    #[arg(long, value_name = "DIR")]
    pub cwd: Option<PathBuf>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Compress {
    None,
    Gzip,
}

/// The exit statuses as `matrix --help` shows them.
const MATRIX_EXIT_HELP: &str = "\
Exit status: 0 when every cell passed; else the first failing cell's status
(in the cells' order, kernel-major), as `guestinit run` gives it; 249 for
a usage error before any cell; 128+n when guestinit got SIGHUP, SIGINT or
SIGTERM (129, 130, 143) and stopped every cell.";

const MKDISK_EXIT_HELP: &str = "\
Exit status: 0 when FILE holds the filesystem; 249 when FILE exists already,
the mkfs program is missing on this host or the size is bad; else as for
`run` (mkfs's own exit code, or 250-254). A FILE that was not finished is
removed.";

#[derive(Debug, Args)]
pub struct MkdiskArgs {
    /// The filesystem to make.
    #[arg(long, value_enum)]
    pub fs: crate::disk::FsType,

    /// The image's size: bytes, or a number with K, M, G or T (powers of 1024).
    #[arg(long, value_name = "SIZE", default_value = "256M", value_parser = crate::disk::parse_size)]
    pub size: u64,

    #[command(flatten)]
    pub vm: VmArgs,

    /// The image to create; an existing file is refused, never overwritten.
    #[arg(value_name = "FILE", help_heading = None::<&str>)]
    pub file: PathBuf,
}

#[derive(Debug, Args)]
pub struct DecodeArgs {
    /// One JSON object per line instead of text.
    #[arg(long)]
    pub json: bool,

    /// A raw capture of the bulk port.
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
}

/// What `run` and `pack` pack for a scheduler.
#[derive(Clone, Debug, Default, Args)]
#[command(next_help_heading = "Scheduler options")]
pub struct SchedArgs {
    /// A sched_ext scheduler the init starts, and waits for to attach,
    /// before the payload (packed as /scheduler with its libraries).
    #[arg(long, value_name = "PROG")]
    pub scheduler: Option<OsString>,

    /// The scheduler's arguments, whitespace-separated.
    #[arg(
        long,
        value_name = "ARGS",
        requires = "scheduler",
        allow_hyphen_values = true
    )]
    pub sched_args: Option<String>,

    /// A script of `echo VALUE > /path` lines run before the scheduler starts.
    #[arg(long, value_name = "FILE", requires = "scheduler")]
    pub sched_enable: Option<PathBuf>,

    /// A script of `echo VALUE > /path` lines run after the scheduler stops.
    #[arg(long, value_name = "FILE", requires = "scheduler")]
    pub sched_disable: Option<PathBuf>,

    /// A cgroup (under the cgroup2 root) to create for the workload.
    #[arg(long, value_name = "PATH", requires = "scheduler")]
    pub workload_cgroup: Option<String>,

    /// A cgroup (under the cgroup2 root) to create and start the scheduler in.
    #[arg(long, value_name = "PATH", requires = "scheduler")]
    pub scheduler_cgroup: Option<String>,
}

/// What only `run` takes for a scheduler.
#[derive(Clone, Debug, Default, Args)]
#[command(next_help_heading = "Scheduler options")]
pub struct SchedRunArgs {
    /// Seconds the scheduler has to attach [default: 10 with KVM, 30 under TCG].
    #[arg(long, value_name = "SECS", requires = "scheduler",
          value_parser = clap::value_parser!(u64).range(1..))]
    pub attach_timeout: Option<u64>,

    /// Save the scheduler's whole log here.
    #[arg(long, value_name = "FILE", requires = "scheduler")]
    pub sched_log: Option<PathBuf>,
}

/// `matrix`'s command line: `run`'s VM options, with `--kernel` and
/// `--topology` repeatable. clap cannot declare `--kernel` twice, so the
/// flattened [`VmArgs`] keeps its own and `augment_args` turns it (and
/// `--topology`) into a list of strings: each value goes to its cell's
/// `run` as given, where a bad one fails that cell alone.
#[derive(Debug)]
pub struct MatrixArgs {
    pub kernels: Vec<OsString>,
    pub topologies: Vec<OsString>,
    pub opts: MatrixOpts,
}

#[derive(Debug, Args)]
pub struct MatrixOpts {
    /// Run at most N cells at once [default: the host's cores].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub jobs: Option<u32>,

    /// Write a JUnit XML report to FILE: one testcase per cell with its stdout, stderr and failure.
    #[arg(long, value_name = "FILE")]
    pub junit: Option<PathBuf>,

    /// Write the matrix's events as JSON lines to FILE, or to stdout for `-`, every cell's tagged with its cell (schema: docs/EVENTS.md).
    #[arg(long, value_name = "FILE|-")]
    pub events: Option<PathBuf>,

    #[command(flatten)]
    pub vm: VmArgs,

    #[command(flatten)]
    pub setup: Setup,

    #[command(flatten)]
    pub sched: SchedArgs,

    /// The program to run in every cell, and its arguments. Options for
    /// guestinit come first: from PROGRAM (or `--`) on, all is the program's.
    #[arg(value_name = "PROGRAM", trailing_var_arg = true, required = true,
          help_heading = None::<&str>)]
    pub program: Vec<OsString>,
}

const MATRIX_KERNEL_HELP: &str =
    "Kernel image, or a kernel build tree: one row of cells each (repeatable)";
const MATRIX_TOPOLOGY_HELP: &str = "A CPU topology N,L,C,T as for `run`: one column of cells each (repeatable) [default: one cell per kernel with --cpus]";

impl Args for MatrixArgs {
    fn augment_args(cmd: clap::Command) -> clap::Command {
        let list = |arg: clap::Arg, help| {
            arg.action(ArgAction::Append)
                .value_parser(clap::builder::OsStringValueParser::new())
                .help(help)
        };
        MatrixOpts::augment_args(cmd)
            .mut_arg("kernel", |a| list(a, MATRIX_KERNEL_HELP).required(true))
            .mut_arg("topology", |a| list(a, MATRIX_TOPOLOGY_HELP))
            // One file for every cell: refused (matrix::main), so not offered.
            .mut_arg("com1_log", |a| a.hide(true))
            .mut_arg("com2_log", |a| a.hide(true))
    }
    fn augment_args_for_update(cmd: clap::Command) -> clap::Command {
        Self::augment_args(cmd)
    }
}

impl FromArgMatches for MatrixArgs {
    fn from_arg_matches(matches: &clap::ArgMatches) -> Result<Self, clap::Error> {
        Self::from_arg_matches_mut(&mut matches.clone())
    }
    fn from_arg_matches_mut(matches: &mut clap::ArgMatches) -> Result<Self, clap::Error> {
        // Taken out before VmArgs reads its (single, typed) fields.
        let mut take = |id| {
            matches
                .remove_many::<OsString>(id)
                .map(Iterator::collect)
                .unwrap_or_default()
        };
        let kernels = take("kernel");
        let topologies = take("topology");
        let opts = MatrixOpts::from_arg_matches_mut(matches)?;
        Ok(MatrixArgs {
            kernels,
            topologies,
            opts,
        })
    }
    fn update_from_arg_matches(&mut self, matches: &clap::ArgMatches) -> Result<(), clap::Error> {
        *self = Self::from_arg_matches(matches)?;
        Ok(())
    }
}

/// `matrix`'s own options, which its cells' `run` does not get as given.
pub const MATRIX_OWN: [&str; 5] = ["kernel", "topology", "jobs", "junit", "events"];

/// The matrix's raw arguments (after `matrix`) that each cell's `run`
/// gets as given: every option but [`MATRIX_OWN`], up to the program.
/// Walked with clap's own table of which options take a value, so a value
/// that looks like an option (`--append --x`) stays with its option.
pub fn forwarded_options(raw: &[OsString]) -> Vec<OsString> {
    use clap::CommandFactory;
    let cli = Cli::command();
    let Some(matrix) = cli.find_subcommand("matrix") else {
        return Vec::new();
    };
    let mut out = Vec::new();
    let mut i = 0;
    while i < raw.len() {
        let token = raw[i].to_string_lossy();
        let Some(rest) = token.strip_prefix('-').filter(|r| !r.is_empty()) else {
            break; // the program
        };
        let mut width = 1;
        let mut own = false;
        if let Some(long) = rest.strip_prefix('-') {
            if long.is_empty() {
                break; // `--`
            }
            let (name, inline) = long
                .split_once('=')
                .map_or((long, false), |(n, _)| (n, true));
            if let Some(arg) = matrix.get_arguments().find(|a| a.get_long() == Some(name)) {
                own = MATRIX_OWN.contains(&arg.get_id().as_str());
                if arg.get_action().takes_values() && !inline {
                    width = 2;
                }
            }
        }
        let end = (i + width).min(raw.len());
        if !own {
            out.extend_from_slice(&raw[i..end]);
        }
        i = end;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::error::{ContextKind, ErrorKind};

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("guestinit").chain(args.iter().copied()))
    }

    fn program(cli: Cli) -> Vec<OsString> {
        match cli.command {
            Command::Run(args) => args.program,
            Command::Pack(args) => args.program,
            Command::Matrix(args) => args.opts.program,
            Command::Decode(_)
            | Command::Shell(_)
            | Command::Mkdisk(_)
            | Command::Cache(_)
            | Command::Kernel(_) => vec![],
        }
    }

    #[test]
    fn a_mistyped_option_is_named_and_the_near_one_suggested() {
        for (typo, args) in [
            ("--tiemout", &["run", "--tiemout", "5", "--", "prog"][..]),
            (
                "--kernal",
                &["pack", "-o", "x", "--kernal", "k", "--", "prog"],
            ),
        ] {
            let err = parse(args).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::UnknownArgument, "{args:?}");
            let text = err.render().to_string();
            assert!(text.contains(&format!("'{typo}'")), "{text}");
            assert!(err.get(ContextKind::SuggestedArg).is_some(), "{text}");
            assert_eq!(exit_status(&err), 249);
        }
        assert_eq!(exit_status(&parse(&["run", "--help"]).unwrap_err()), 0);
    }

    #[test]
    fn after_the_program_or_dashes_everything_is_the_programs() {
        let cli = parse(&["run", "--", "--tiemout", "-c", "--", "x"]).unwrap();
        assert_eq!(program(cli), ["--tiemout", "-c", "--", "x"]);
        let cli = parse(&["run", "--timeout", "5", "sh", "-c", "--timeout"]).unwrap();
        assert_eq!(program(cli), ["sh", "-c", "--timeout"]);
    }

    #[test]
    fn run_shell_and_mkdisk_parse_the_same_vm_options_alike() {
        let vm = [
            "--kernel",
            "k",
            "--modules",
            "m",
            "--init",
            "i",
            "--memory",
            "300",
            "--cpus",
            "2",
            "--topology",
            "2,2,2,2",
            "--timeout",
            "9",
            "--append",
            "loglevel=7",
            "--hostname",
            "vm-1",
            "--net",
            "user",
            "--net-forward",
            "8080:80",
            "--net-forward",
            "2222:22",
            "--qemu-arg",
            "-no-reboot",
            "--com1-log",
            "c1",
            "--com2-log",
            "c2",
            "--share",
            "/srv/data:/data,ro",
            "-v",
        ];
        let with = |head: &[&'static str], tail: &[&'static str]| {
            let args: Vec<_> = head.iter().chain(&vm).chain(tail).copied().collect();
            match parse(&args)
                .unwrap_or_else(|e| panic!("{head:?}: {e}"))
                .command
            {
                Command::Run(args) => args.vm,
                Command::Shell(args) => args.vm,
                Command::Mkdisk(args) => args.vm,
                Command::Matrix(args) => args.opts.vm,
                Command::Pack(_) | Command::Decode(_) | Command::Cache(_) | Command::Kernel(_) => {
                    unreachable!()
                }
            }
        };
        let run = with(&["run"], &["--", "prog"]);
        assert_eq!(run.modules.as_deref(), Some("m".as_ref()));
        assert_eq!(
            (run.memory, run.cpus, run.timeout),
            (Some(300), Some(2), Some(9))
        );
        assert_eq!(run.topology.map(|t| t.cpus()), Some(16));
        assert_eq!(run.hostname.as_deref(), Some("vm-1"));
        assert_eq!(run.net, Some(crate::net::NetMode::User));
        assert_eq!(run.net_forwards.len(), 2);
        assert_eq!(run.shares[0].guest_dir, std::path::Path::new("/data"));
        assert_eq!(with(&["shell"], &[]), run);
        assert_eq!(with(&["mkdisk", "--fs", "ext4"], &["disk.img"]), run);
    }

    #[test]
    fn a_bad_topology_is_a_usage_error_naming_the_value_and_the_field() {
        for command in [
            &["run"][..],
            &["shell"],
            &["mkdisk", "--fs", "ext4", "d.img"],
        ] {
            let mut args = command.to_vec();
            args.extend(["--topology", "2,x,2,1"]);
            if command == ["run"] {
                args.extend(["--", "prog"]);
            }
            let err = parse(&args).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::ValueValidation, "{args:?}");
            let text = err.render().to_string();
            assert!(
                text.contains("'2,x,2,1' for '--topology <N,L,C,T>'")
                    && text.contains("LLCS must be a number from 1 to 64"),
                "{text}"
            );
            assert_eq!(exit_status(&err), 249);
        }
    }

    #[test]
    fn a_forward_needs_the_network_and_a_bad_one_is_named() {
        let err = parse(&["run", "--net-forward", "8080:80", "--", "prog"]).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::MissingRequiredArgument);
        assert!(err.render().to_string().contains("--net <MODE>"), "{err}");
        let err = parse(&["run", "--net", "user", "--net-forward", "8080", "--", "p"]).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::ValueValidation);
        assert!(err
            .render()
            .to_string()
            .contains("HOST_PORT:GUEST_PORT, e.g. 8080:80"));
        assert_eq!(exit_status(&err), 249);
        let err = parse(&["run", "--net", "bridge", "--", "prog"]).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidValue);
    }

    #[test]
    fn pack_takes_kernel_and_modules_together_as_run_does() {
        for command in ["run", "pack"] {
            let mut args = vec![command, "--kernel", "k", "--modules", "m"];
            if command == "pack" {
                args.extend(["-o", "x"]);
            }
            args.extend(["--", "prog"]);
            assert!(parse(&args).is_ok(), "{command}: {:?}", parse(&args).err());
        }
    }

    #[test]
    fn matrix_takes_kernel_and_topology_again_and_again_and_the_vm_options_once() {
        let cli = parse(&[
            "matrix",
            "--kernel",
            "a",
            "--topology",
            "1,1,1,1",
            "--kernel=b",
            "--topology",
            "2,x",
            "--jobs",
            "2",
            "--memory",
            "300",
            "--append",
            "--kernel",
            "--",
            "sh",
            "-c",
            "--kernel",
        ])
        .unwrap();
        let Command::Matrix(args) = cli.command else {
            unreachable!()
        };
        assert_eq!(args.kernels, ["a", "b"]);
        // Not parsed here: a bad topology fails its cells alone.
        assert_eq!(args.topologies, ["1,1,1,1", "2,x"]);
        assert_eq!(args.opts.vm.append.as_deref(), Some("--kernel"));
        assert_eq!((args.opts.jobs, args.opts.vm.memory), (Some(2), Some(300)));
        assert_eq!(args.opts.program, ["sh", "-c", "--kernel"]);
        let err = parse(&["matrix", "--", "prog"]).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::MissingRequiredArgument);
        assert_eq!(exit_status(&err), 249);
    }

    #[test]
    fn a_cell_gets_the_matrix_options_as_given_but_the_matrix_own() {
        let raw: Vec<OsString> = [
            "--kernel",
            "a",
            "--memory=300",
            "--topology",
            "1,1,1,1",
            "-v",
            "--jobs",
            "2",
            "--append",
            "--kernel",
            "--events",
            "-",
            "--junit=j.xml",
            "--qemu-arg",
            "-S",
            "--cold",
            "--",
            "sh",
            "--memory",
        ]
        .iter()
        .map(OsString::from)
        .collect();
        assert_eq!(
            forwarded_options(&raw),
            [
                "--memory=300",
                "-v",
                "--append",
                "--kernel",
                "--qemu-arg",
                "-S",
                "--cold"
            ]
        );
        let raw: Vec<OsString> = ["--cpus", "2", "prog", "--cpus", "3"]
            .map(OsString::from)
            .into();
        assert_eq!(forwarded_options(&raw), ["--cpus", "2"]);
    }
}
