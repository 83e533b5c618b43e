//! The names both sides of the link agree on: port names, kernel
//! command-line keys, initramfs paths and the diagnostic line prefixes.
//! The init and the host tool both use these, so neither can drift.

/// The bulk port's name as this project's host sets it (`virtserialport,name=`).
pub const BULK_PORT: &str = "guestinit.bulk";
/// The bulk port's name under ktstr's VMM, accepted beside [`BULK_PORT`].
pub const KTSTR_BULK_PORT: &str = "ktstr-bulk";
/// The port that carries the host's stdin to the payload's.
pub const STDIN_PORT: &str = "guestinit.stdin";
/// The port relayed to the scheduler's stats socket.
pub const STATS_PORT: &str = "guestinit.stats";
/// The stats port's name under ktstr 0.50's VMM, accepted beside [`STATS_PORT`].
pub const KTSTR_STATS_PORT: &str = "ktstr-stats";
/// Shell and exec modes: the host's control messages to the init
/// ([`control`]): the window size, and the dump and stop that hvc0 carries
/// in test mode but cannot there, as it carries the user's keystrokes.
pub const CONTROL_PORT: &str = "guestinit.ctl";
/// Where the host hands a restored (or just-snapshotted) VM its run: the
/// [`handover`] header, the run's init keys, the payload's newc archive.
pub const HANDOVER_PORT: &str = "guestinit.handover";
/// Where scx schedulers serve their stats (scx_stats).
pub const STATS_SOCKET: &str = "/var/run/scx/root/stats";

/// The payload's PATH, as the init sets it: `#!/usr/bin/env X` finds X here.
pub const GUEST_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

pub mod boot;
pub mod collect;
pub mod control;
pub mod handover;
pub mod net;
pub mod sched_ctl;
pub mod splat;

/// The payload's environment when the archive has no [`path::ENV`] file;
/// the host merges `--env` over the same list.
pub const DEFAULT_ENV: [&core::ffi::CStr; 4] = [
    c"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    c"HOME=/tmp",
    c"TERM=linux",
    c"LANG=C.UTF-8",
];

/// The bounds of the files the init reads into static buffers; the host
/// refuses at pack time what would exceed them.
pub mod limit {
    /// [`super::path::ENV`]'s bytes, terminators included.
    pub const ENV_BYTES: usize = 8192;
    /// Variables in the payload's environment.
    pub const ENV_VARS: usize = 32;
    /// [`super::path::CWD`]'s bytes (PATH_MAX less the NUL).
    pub const CWD_BYTES: usize = 4095;
    /// [`super::path::SHARES`]' bytes (`parse::shares`).
    pub const SHARES_BYTES: usize = 8192;
    /// [`super::path::SCHED_ARGS`]' bytes, and the scheduler's arguments
    /// (its argv\[0\] aside); a `sched start`'s arguments too.
    pub const SCHED_ARGS_BYTES: usize = 4096;
    pub const SCHED_ARGS: usize = 63;
    /// [`super::path::COLLECT`]'s bytes (`parse::collect`).
    pub const COLLECT_BYTES: usize = 8192;
}

/// Kernel command-line keys the init reads; [`boot::BootParams`] holds
/// their values, and writes and parses them.
pub mod key {
    /// Present: the host acknowledges EXIT with EACK before power-off.
    pub const ACK: &str = "guestinit.ack";
    /// `panic` or `segv`: crash on purpose (tests of the crash path).
    pub const CRASH: &str = "guestinit.crash";
    /// `page_offset_base`'s link-time offset from `_text`, in hex, from the
    /// kernel's System.map: KADR then needs only `_text` from kallsyms.
    pub const PAGE_OFFSET_BASE: &str = "guestinit.pob";
    /// Present: the host relays a stats client on [`super::STATS_PORT`].
    pub const STATS: &str = "guestinit.stats";
    /// Present: the host relays its stdin on [`super::STDIN_PORT`].
    pub const STDIN: &str = "guestinit.stdin";
    /// Seconds the init waits for the scheduler to attach (default
    /// [`super::sched::ATTACH_TIMEOUT_TCG_S`]).
    pub const ATTACH_TIMEOUT: &str = "guestinit.attach_timeout";
    /// KiB per CPU of the kernel's trace buffer, which the init sets before
    /// the payload starts (`--trace`: the unexpanded buffer of a few KiB
    /// loses events); absent: the kernel's own size.
    pub const TRACE_KB: &str = "guestinit.trace_kb";
    /// What PID 1 does (see [`super::mode`]); absent: test mode.
    pub const MODE: &str = "guestinit.mode";
    /// The data disks' access, one [`super::disk::RW`] or [`super::disk::RO`]
    /// per disk in device order, comma-separated: `rw,ro`.
    pub const DISKS: &str = "guestinit.disks";
    /// In [`super::mode::MKDISK`]: the filesystem the payload (mkfs) makes
    /// on [`super::disk::TEMPLATE`], as `mkfs -t` names it.
    pub const FS: &str = "guestinit.fs";
    /// Present: the guest has a virtio-net NIC on QEMU's user network, which
    /// the init configures at [`super::net`]'s fixed addresses.
    pub const NET: &str = "guestinit.net";
    /// The guest's host name ([`super::net::Hostname`]); absent:
    /// [`super::net::DEFAULT_HOSTNAME`].
    pub const HOSTNAME: &str = "guestinit.hostname";
    /// Present: the machine boots from the base archive alone and, after
    /// SRDY and HRDY, reads its run on [`super::HANDOVER_PORT`]
    /// (docs/PROTOCOL.md, the handover port).
    pub const HANDOVER: &str = "guestinit.handover";
}

/// The data disks (`run --disk`) and the disk `mkdisk` formats.
pub mod disk {
    /// A disk mounted read-write, and one mounted read-only.
    pub const RW: &str = "rw";
    pub const RO: &str = "ro";
    /// Disks the init mounts at most: /dev/vda to /dev/vdp.
    pub const MAX: usize = 16;
    /// Disk N is the virtio-blk device `/dev/vd` + (b'a' + N), mounted at
    /// `/mnt/disk` + N.
    pub const DEVICE_PREFIX: &str = "/dev/vd";
    pub const MOUNT_PREFIX: &str = "/mnt/disk";
    /// The disk `mkdisk` formats: the only one of its VM.
    pub const TEMPLATE: &str = "/dev/vda";
}

/// Values of [`key::MODE`].
pub mod mode {
    /// An interactive busybox shell on hvc0, through a PTY.
    pub const SHELL: &str = "shell";
    /// `busybox sh -c` of [`super::path::EXEC_CMD`], its output as SOUT/SERR.
    pub const EXEC: &str = "exec";
    /// Format [`super::disk::TEMPLATE`] with the payload (the host's mkfs),
    /// check the filesystem's magic, sync.
    pub const MKDISK: &str = "mkdisk";
}

/// Paths in the initramfs the host builds.
pub mod path {
    /// The init itself.
    pub const INIT: &str = "/init";
    /// The payload's argv: NUL-terminated arguments (what guestinit packs),
    /// or one per line (ktstr); see `parse::args`.
    pub const ARGS: &str = "/args";
    /// Optional: the path the init passes to execve, when it is not argv[0]
    /// (the program was packed under [`ROOT`]). Its bytes are the path, with
    /// no terminator; absent, the init execs argv[0].
    pub const EXEC: &str = "/.guestinit/exec";
    /// Optional: the payload's whole environment, `K=V` entries each ending
    /// in NUL; absent, the init uses [`super::DEFAULT_ENV`].
    pub const ENV: &str = "/.guestinit/env";
    /// Optional: the payload's working directory, an absolute path without
    /// a terminator; absent, the init's own (`/`).
    pub const CWD: &str = "/.guestinit/cwd";
    /// Optional (`run --share`): the host directories to mount over
    /// virtiofs, in `parse::shares`' records; absent, none.
    pub const SHARES: &str = "/.guestinit/shares";
    /// What the init sends back after the payload (`parse::collect`).
    pub const COLLECT: &str = "/.guestinit/collect";
    /// Exec mode: the command `sh -c` runs.
    pub const EXEC_CMD: &str = "/exec_cmd";
    /// The busybox of shell and exec modes; its applets are links beside it.
    pub const BUSYBOX: &str = "/bin/busybox";
    /// Where `--include` puts files by default, as ktstr does.
    pub const INCLUDE: &str = "/include-files";
    /// Where the host packs payload files whose own path lies under one of
    /// [`MOUNTED`]: `/.guestinit/root/tmp/x/prog` for `/tmp/x/prog`.
    pub const ROOT: &str = "/.guestinit/root";
    /// The directories the init mounts filesystems over, hiding whatever the
    /// archive put there (the init's `mounts::MOUNTS` are all under these).
    pub const MOUNTED: [&str; 5] = ["/tmp", "/run", "/dev", "/proc", "/sys"];
    /// Kernel modules, `NNN-name.ko[.xz|.zst]`, loaded in name order.
    pub const MODULES: &str = "/modules";
    /// The archive's last entry; missing means the kernel ran out of memory
    /// while unpacking.
    pub const SENTINEL: &str = "/.guestinit-complete";
    /// The sched_ext scheduler, its whitespace-separated arguments, and the
    /// scripts run before it starts and after it stops.
    pub const SCHEDULER: &str = "/scheduler";
    pub const SCHED_ARGS: &str = "/sched_args";
    pub const SCHED_ENABLE: &str = "/sched_enable";
    pub const SCHED_DISABLE: &str = "/sched_disable";
    /// Cgroup paths (under the cgroup2 root) to create.
    pub const WORKLOAD_CGROUP: &str = "/workload_root_cgroup";
    pub const SCHEDULER_CGROUP: &str = "/scheduler_cgroup_parent";

    /// Whether `name` (an archive name: no leading `/`) is one of the
    /// init's own entries or under them, which a payload file would clash
    /// with and a share would hide. (`dev/...` cannot be: /dev is mounted
    /// over, so such files move.)
    pub fn is_reserved(name: &str) -> bool {
        fn own(path: &'static str) -> &'static str {
            path.trim_start_matches('/')
        }
        [
            own(INIT),
            own(ARGS),
            own(SENTINEL),
            own(MODULES),
            ".guestinit",
        ]
        .contains(&name)
            || [own(MODULES), ".guestinit"].iter().any(|dir| {
                name.strip_prefix(dir)
                    .is_some_and(|rest| rest.starts_with('/'))
            })
    }
}

/// The sched_ext scheduler's run (docs/PROTOCOL.md).
pub mod sched {
    /// The run's exit code when the scheduler failed: no sched_ext, it did
    /// not start or attach, or it died during the run.
    pub const FAILED: i32 = 248;
    /// Attach waits: TCG is an order of magnitude slower than KVM.
    pub const ATTACH_TIMEOUT_TCG_S: u64 = 30;
    pub const ATTACH_TIMEOUT_KVM_S: u64 = 10;
    /// ktstr's host takes the scheduler's log between these lines of SCLG.
    pub const LOG_START: &str = "===SCHED_OUTPUT_START===\n";
    pub const LOG_END: &str = "===SCHED_OUTPUT_END===\n";
    /// Where the kernel shows sched_ext, and where cgroup2 is mounted.
    pub const SYSFS: &str = "/sys/kernel/sched_ext";
    pub const CGROUP_ROOT: &str = "/sys/fs/cgroup";
}

/// How the init's lines on COM2 begin; the host's verdicts read them.
pub mod prefix {
    /// The init could not do its job; the rest of the line says why.
    pub const FATAL: &str = "FATAL: ";
    /// The init itself crashed (a panic or a fatal signal).
    pub const PANIC: &str = "PANIC: ";
    /// A warning: the init goes on.
    pub const WARNING: &str = "guestinit: ";
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_inits_own_entries_and_what_is_under_them_are_reserved() {
        use super::path::is_reserved;
        for name in [
            "init",
            "args",
            ".guestinit-complete",
            "modules",
            "modules/000-x.ko",
            ".guestinit",
            ".guestinit/env",
        ] {
            assert!(is_reserved(name), "{name}");
        }
        for name in [
            "initrd",
            "modulesx",
            ".guestinitx",
            "usr/init",
            "dev/console",
        ] {
            assert!(!is_reserved(name), "{name}");
        }
    }

    #[test]
    fn the_default_path_is_the_guest_path() {
        let path = super::DEFAULT_ENV[0].to_str().unwrap();
        assert_eq!(path.strip_prefix("PATH="), Some(super::GUEST_PATH));
    }
}
