//! The cold boot's levers that depend on the kernel and the host, chosen
//! once before the boot (docs/DESIGN.md, "Cold boot levers"): the
//! firmware, the file `-kernel` loads, and the kernel's rootfs option.

use std::path::{Path, PathBuf};

use super::{firmware, memory, pvh, qemu};
use crate::pack;

/// How QEMU boots `kernel`.
pub struct BootLevers {
    /// qboot, where QEMU has it and the kernel uses ACPI.
    pub firmware: Option<PathBuf>,
    /// The kernel's vmlinux by PVH, when it has one; else the image boots.
    pub vmlinux: Option<PathBuf>,
    /// `initramfs_options=` for kernels that read it.
    pub initramfs_options: Option<&'static str>,
}

impl BootLevers {
    /// The levers for the kernel image `kernel` (its companions, as its
    /// release, are found from the image's own path, not the vmlinux's)
    /// and the user's `--append`.
    pub fn find(kernel: &Path, append: Option<&str>) -> BootLevers {
        let release = pack::kernel::companions(kernel)
            .ok()
            .and_then(|c| c.release);
        BootLevers {
            firmware: firmware::choose(qemu::QEMU, append),
            vmlinux: pvh::vmlinux(kernel),
            initramfs_options: memory::rootfs_option(release.as_deref()),
        }
    }
}
