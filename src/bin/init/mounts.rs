//! The filesystems PID 1 mounts before anything else. The required ones
//! carry the rest of the boot; the optional ones serve payloads (tracing,
//! BPF, cgroups) and may be missing from a kernel.

use crate::console::warning;
use core::ffi::CStr;
use guestinit::fmt::{ErrnoText, Lossy};
use rustix::fs::Mode;
use rustix::io::Errno;
use rustix::mount::{mount, MountFlags};

struct Mount {
    fstype: &'static CStr,
    target: &'static CStr,
    required: bool,
    flags: MountFlags,
}

const fn m(
    fstype: &'static CStr,
    target: &'static CStr,
    required: bool,
    flags: MountFlags,
) -> Mount {
    Mount {
        fstype,
        target,
        required,
        flags,
    }
}

const NOSUID_NODEV: MountFlags = MountFlags::NOSUID.union(MountFlags::NODEV);

/// In order: each target's parent exists by the time it is mounted (the
/// required ones go first).
const MOUNTS: [Mount; 10] = [
    m(
        c"proc",
        c"/proc",
        true,
        NOSUID_NODEV.union(MountFlags::NOEXEC),
    ),
    m(
        c"sysfs",
        c"/sys",
        true,
        NOSUID_NODEV.union(MountFlags::NOEXEC),
    ),
    m(c"devtmpfs", c"/dev", true, MountFlags::NOSUID),
    m(c"tmpfs", c"/tmp", true, NOSUID_NODEV),
    m(c"debugfs", c"/sys/kernel/debug", false, NOSUID_NODEV),
    m(c"tracefs", c"/sys/kernel/tracing", false, NOSUID_NODEV),
    m(c"bpf", c"/sys/fs/bpf", false, NOSUID_NODEV),
    m(c"cgroup2", c"/sys/fs/cgroup", false, NOSUID_NODEV),
    m(c"tmpfs", c"/dev/shm", false, NOSUID_NODEV),
    m(c"tmpfs", c"/run", false, NOSUID_NODEV),
];

/// A required mount that failed: the boot goes on to report it.
pub struct Failed {
    pub target: &'static CStr,
    pub errno: Errno,
}

/// The mounts the boot needs before SRDY; returns the first that failed.
pub fn mount_required() -> Option<Failed> {
    mount_each(true)
}

/// The mounts only payloads use. They wait until after SRDY: under TCG a
/// mount runs kernel code for the first time, and cgroup2's alone can cost
/// 2-15 ms.
pub fn mount_optional() {
    mount_each(false);
}

/// Mounts the entries whose `required` is `required`, in order; returns
/// the first required one that failed.
fn mount_each(required: bool) -> Option<Failed> {
    let mut first_failure = None;
    for entry in MOUNTS.iter().filter(|m| m.required == required) {
        if let Err(errno) = mount_one(entry) {
            if entry.required && first_failure.is_none() {
                first_failure = Some(Failed {
                    target: entry.target,
                    errno,
                });
            }
            // A filesystem the kernel lacks (ENODEV) is no news for an optional mount.
            if entry.required || errno != Errno::NODEV {
                warning!(
                    "mount {} on {}: {}",
                    Lossy(entry.fstype.to_bytes()),
                    Lossy(entry.target.to_bytes()),
                    ErrnoText(errno)
                );
            }
        }
    }
    first_failure
}

fn mount_one(entry: &Mount) -> Result<(), Errno> {
    match rustix::fs::mkdir(entry.target, Mode::from_raw_mode(0o755)) {
        Ok(()) | Err(Errno::EXIST) => {}
        Err(e) => return Err(e),
    }
    mount(
        entry.fstype,
        entry.target,
        entry.fstype,
        entry.flags,
        None::<&CStr>,
    )
}
