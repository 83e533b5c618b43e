//! The guest's memory: what the kernel needs to unpack its initramfs and
//! reach the init, as a function of the archive's size, measured with
//! `scripts/bench.sh sizes` (docs/BENCHMARKS.md) and fitted to a line; and
//! the bound below which an archive can never boot, which is refused.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::Path;

/// The least memory an archive boots in, as a line in its size.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Floor {
    base_mib: f64,
    per_mib: f64,
}

/// The floor measured on the Debian 6.1 cloud kernel (1 MiB steps): 74 MiB
/// at a 2.4 MiB archive, 151 at 34.4, 345 at 98.4, 664 at 202.4. It grows
/// faster than linearly, so the line takes the steepest slope seen (3.07
/// per MiB), rounded up, near the smallest point, plus a margin. Every
/// kernel without `initramfs_options=` has it.
pub const FLOOR: Floor = Floor {
    base_mib: 68.0,
    per_mib: 3.1,
};

/// The floor with `initramfs_options=size=90%` (`rootfs_option`),
/// measured on Debian unstable's 7.2 cloud kernel (1 MiB steps): 80 MiB
/// at a 2.1 MiB archive, 147 at 34.1, 279 at 98.1, 494 at 202.1 (without
/// the option 80, 159 and 353 up to 98.1: the rootfs tmpfs's default half
/// of the memory bounded it). Linear (2.09, 2.06 and 2.07 per MiB), so
/// the line takes 2.2 per MiB through the smallest point, plus the margin.
pub const FLOOR_ROOTFS_OPTION: Floor = Floor {
    base_mib: 76.0,
    per_mib: 2.2,
};
/// Above the line, for kernels and machines that differ a little.
const MARGIN_MIB: f64 = 8.0;
/// What a guest gets at least without `--memory`: room for the payload's
/// own work beyond the boot.
pub const DEFAULT_MIB: u32 = 256;
/// What the kernel itself needs beside the archive and its unpacked files,
/// at the very least: half the measured floor's base (68 MiB at a 2.4 MiB
/// archive), so the bound below never refuses an archive that could boot.
const KERNEL_LEAST_MIB: u64 = 32;

const MIB: u64 = 1024 * 1024;

/// An archive's sizes: as QEMU loads it into the guest's memory, and
/// unpacked (the same for a cpio; a gzip's trailer says the other).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sizes {
    pub loaded: u64,
    pub unpacked: u64,
}

/// An archive that cannot boot in the memory given, whatever the kernel.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TooSmall {
    pub memory_mib: u32,
    pub archive_mib: f64,
    /// The least any kernel needs: both copies and the kernel's own.
    pub least_mib: u32,
    /// What [`estimate_mib`] says to give.
    pub estimate_mib: u32,
}

/// Refuses `memory_mib` when the archive can never boot in it: the kernel
/// keeps the loaded archive while it unpacks its files beside it (at least
/// their unpacked bytes: a file's page or inode outweighs its cpio header),
/// so both must fit with the kernel. Such a run only fails, and the worst
/// of them silently: an archive that fills the memory leaves the kernel no
/// room for its memory map (502 MiB in 512: "memory map backing failed",
/// an oops in setup_arch), and it panics before its console is up and
/// before `panic=` is read, so it spins and QEMU never exits.
pub fn check(memory_mib: u32, sizes: Sizes, floor: Floor) -> Result<(), TooSmall> {
    let least = sizes.loaded + sizes.unpacked + KERNEL_LEAST_MIB * MIB;
    if u64::from(memory_mib) * MIB >= least {
        return Ok(());
    }
    Err(TooSmall {
        memory_mib,
        archive_mib: sizes.loaded as f64 / MIB as f64,
        least_mib: u32::try_from(least.div_ceil(MIB)).unwrap_or(u32::MAX),
        estimate_mib: floor.estimate_mib(sizes.unpacked),
    })
}

impl Floor {
    /// The floor of a kernel that is given `rootfs_option` (or none).
    pub fn for_option(rootfs_option: Option<&str>) -> Floor {
        match rootfs_option {
            Some(_) => FLOOR_ROOTFS_OPTION,
            None => FLOOR,
        }
    }

    /// The least memory, in MiB, with which an archive of `bytes` boots.
    pub fn estimate_mib(self, bytes: u64) -> u32 {
        let archive_mib = bytes as f64 / (1024.0 * 1024.0);
        (self.base_mib + self.per_mib * archive_mib + MARGIN_MIB).ceil() as u32
    }
}

/// The archive's sizes: the file's, and unpacked the file's or for a gzip
/// file the size its trailer records (modulo 4 GiB, as gzip keeps it).
pub fn archive_sizes(path: &Path) -> io::Result<Sizes> {
    let mut file = File::open(path)?;
    let mut magic = [0u8; 2];
    let len = file.metadata()?.len();
    let sizes = |unpacked| Sizes {
        loaded: len,
        unpacked,
    };
    if len < 18 || file.read_exact(&mut magic).is_err() || magic != [0x1f, 0x8b] {
        return Ok(sizes(len));
    }
    let mut isize = [0u8; 4];
    file.seek(SeekFrom::End(-4))?;
    file.read_exact(&mut isize)?;
    Ok(sizes(u64::from(u32::from_le_bytes(isize)).max(len)))
}

/// The guest's memory: `--memory` if given, else the estimate plus the
/// default's room for the payload; and a warning when `--memory` is below
/// the estimate.
pub fn choose(explicit: Option<u32>, bytes: u64, floor: Floor) -> (u32, Option<String>) {
    let estimate = floor.estimate_mib(bytes);
    match explicit {
        Some(mib) if mib < estimate => {
            let warning = format!(
                "--memory {mib} is below the {estimate} MiB a {:.1} MiB initramfs needs to boot; the kernel may not reach the init",
                bytes as f64 / (1024.0 * 1024.0)
            );
            (mib, Some(warning))
        }
        Some(mib) => (mib, None),
        None => (DEFAULT_MIB.max(estimate + DEFAULT_MIB / 2), None),
    }
}

/// The rootfs tmpfs's bound on kernels that take it (`initramfs_options=`,
/// Linux 6.18 on): 90 % of the memory, where the default is half, so an
/// archive may unpack into more than half the guest's memory (as ktstr
/// passes it).
const ROOTFS_OPTION: &str = "initramfs_options=size=90%";

/// The first release that reads `initramfs_options=`.
const ROOTFS_OPTION_SINCE: (u32, u32) = (6, 18);

/// `initramfs_options=` for a kernel of `release` that reads it; `None`
/// for older ones and an unknown release (an unknown parameter would
/// reach the init's environment).
pub fn rootfs_option(release: Option<&str>) -> Option<&'static str> {
    (version(release?)? >= ROOTFS_OPTION_SINCE).then_some(ROOTFS_OPTION)
}

/// `MAJOR.MINOR` of a release such as `7.2.13+deb14-cloud-amd64`.
fn version(release: &str) -> Option<(u32, u32)> {
    let mut parts = release.split(|c: char| !c.is_ascii_digit());
    Some((parts.next()?.parse().ok()?, parts.next()?.parse().ok()?))
}

/// What each NUMA node gets at least with `--topology`: a node's memory
/// map, zones and its CPUs' per-CPU areas come out of its own memory, and
/// x86 Linux drops a node under 4 MiB (`NODE_MIN_SIZE`) altogether. Twice
/// the least measured to boot (8 nodes of 16 MiB, Debian's 6.1 kernel).
pub const NODE_LEAST_MIB: u32 = 32;

/// An explicit `--memory` too small for its NUMA nodes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NodesTooSmall {
    pub memory_mib: u32,
    pub nodes: u32,
    pub node_mib: u32,
    /// What to give instead: [`NODE_LEAST_MIB`] a node.
    pub give_mib: u32,
}

/// The memory over `nodes` equal NUMA nodes, as QEMU's `-m` must be the
/// sum of theirs: `mib` rounded up to a multiple of `nodes` (with a
/// warning when the user chose `mib`); the default raised to
/// [`NODE_LEAST_MIB`] a node, an explicit `--memory` below that refused.
pub fn spread(
    mib: u32,
    explicit: bool,
    nodes: u32,
) -> Result<(u32, Option<String>), NodesTooSmall> {
    let nodes = nodes.max(1);
    if nodes == 1 {
        return Ok((mib, None));
    }
    let least = nodes.saturating_mul(NODE_LEAST_MIB);
    if explicit && mib < least {
        return Err(NodesTooSmall {
            memory_mib: mib,
            nodes,
            node_mib: mib / nodes,
            give_mib: least,
        });
    }
    let raised = if explicit { mib } else { mib.max(least) };
    // Up to a multiple; at the very top of u32, down to one.
    let total = raised
        .div_ceil(nodes)
        .checked_mul(nodes)
        .unwrap_or(raised / nodes * nodes);
    let warning = (explicit && total != mib).then(|| {
        format!(
            "--memory {mib} is not a multiple of --topology's {nodes} NUMA nodes: the guest gets {total} MiB, {} a node",
            total / nodes
        )
    });
    Ok((total, warning))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_estimate_is_above_every_measured_floor() {
        let measured = [
            (2_485_688, 74),
            (36_044_344, 151),
            (103_161_656, 345),
            (212_227_288, 664),
        ];
        for (bytes, floor) in measured {
            let estimate = FLOOR.estimate_mib(bytes);
            let near = floor + 1..=floor + 48;
            assert!(near.contains(&estimate), "{bytes}: {estimate}");
        }
    }

    #[test]
    fn the_rootfs_options_estimate_is_above_its_measured_floors_and_below_the_old() {
        let measured = [
            (2_202_384, 80),
            (35_761_040, 147),
            (102_878_352, 279),
            (211_943_984, 494),
        ];
        for (bytes, floor) in measured {
            let estimate = FLOOR_ROOTFS_OPTION.estimate_mib(bytes);
            assert!(
                (floor + 1..=floor + 48).contains(&estimate),
                "{bytes}: {estimate}"
            );
            assert!(
                estimate < FLOOR.estimate_mib(bytes) || bytes < 4 * MIB,
                "{bytes}"
            );
        }
        assert_eq!(Floor::for_option(None), FLOOR);
        let option = rootfs_option(Some("7.2.13+deb14-cloud-amd64"));
        assert_eq!(Floor::for_option(option), FLOOR_ROOTFS_OPTION);
        // Whatever the size, its estimate passes the bound that never boots.
        for mib in [1, 2, 34, 98, 202, 700, 3000] {
            let sizes = Sizes {
                loaded: mib * MIB,
                unpacked: mib * MIB,
            };
            let estimate = FLOOR_ROOTFS_OPTION.estimate_mib(sizes.unpacked);
            assert_eq!(check(estimate, sizes, FLOOR_ROOTFS_OPTION), Ok(()), "{mib}");
        }
    }

    #[test]
    fn the_estimate_grows_with_the_archive() {
        assert!(FLOOR.estimate_mib(2 * MIB) < FLOOR.estimate_mib(100 * MIB));
        assert_eq!(
            choose(None, 2 * MIB, FLOOR).0,
            DEFAULT_MIB.max(FLOOR.estimate_mib(2 * MIB) + 128)
        );
        assert!(choose(None, 400 * MIB, FLOOR).0 > FLOOR.estimate_mib(400 * MIB));
    }

    #[test]
    fn a_gzip_archive_counts_its_unpacked_size() {
        use std::io::Write;
        let dir = crate::scratch::ScratchDir::new("test").unwrap();
        let path = dir.path().join("a.gz");
        let mut gz = flate2::write::GzEncoder::new(
            File::create(&path).unwrap(),
            flate2::Compression::default(),
        );
        gz.write_all(&vec![0u8; 3 * MIB as usize]).unwrap();
        gz.finish().unwrap();
        let sizes = archive_sizes(&path).unwrap();
        assert_eq!(sizes.unpacked, 3 * MIB);
        assert!(sizes.loaded < MIB, "{sizes:?}");
        std::fs::write(&path, b"plain").unwrap();
        let plain = archive_sizes(&path).unwrap();
        assert_eq!((plain.loaded, plain.unpacked), (5, 5));
    }

    #[test]
    fn an_explicit_size_stands_and_is_warned_about_when_too_small() {
        assert_eq!(choose(Some(512), 2 * MIB, FLOOR), (512, None));
        let (mib, warning) = choose(Some(64), 2 * MIB, FLOOR);
        assert_eq!(mib, 64);
        let warning = warning.unwrap();
        assert!(warning.contains("--memory 64 is below the"), "{warning}");
    }

    #[test]
    fn an_archive_that_can_never_boot_is_refused_and_one_that_may_is_not() {
        let cpio = |mib: u64| Sizes {
            loaded: mib * MIB,
            unpacked: mib * MIB,
        };
        // The case: a 500 MiB file in --memory 512.
        let e = check(512, cpio(502), FLOOR).unwrap_err();
        assert_eq!(
            (e.least_mib, e.estimate_mib),
            (1036, FLOOR.estimate_mib(502 * MIB))
        );
        // The warned case of vm_harness (a 98.4 MiB archive in 256 MiB)
        // may yet boot far enough to say why it fails: not refused.
        assert_eq!(check(256, cpio(98), FLOOR), Ok(()));
        assert_eq!(check(228, cpio(98), FLOOR), Ok(()));
        assert!(check(227, cpio(98), FLOOR).is_err());
        // Whatever the size, the estimate (and so the default) passes.
        for mib in [1, 2, 34, 98, 202, 700, 3000] {
            let sizes = cpio(mib);
            assert_eq!(
                check(FLOOR.estimate_mib(sizes.unpacked), sizes, FLOOR),
                Ok(()),
                "{mib}"
            );
            assert_eq!(
                check(choose(None, sizes.unpacked, FLOOR).0, sizes, FLOOR),
                Ok(()),
                "{mib}"
            );
        }
        // A gzip archive: what is loaded is what the kernel must hold.
        let gz = Sizes {
            loaded: 100 * MIB,
            unpacked: 400 * MIB,
        };
        assert_eq!(check(532, gz, FLOOR), Ok(()));
        assert_eq!(
            check(531, gz, FLOOR).unwrap_err().estimate_mib,
            FLOOR.estimate_mib(400 * MIB)
        );
    }

    #[test]
    fn the_rootfs_option_is_for_618_and_later() {
        let option = |r| rootfs_option(Some(r));
        assert_eq!(option("7.2.13+deb14-cloud-amd64"), Some(ROOTFS_OPTION));
        assert_eq!(option("6.18.0"), Some(ROOTFS_OPTION));
        assert_eq!(option("6.18-rc1"), Some(ROOTFS_OPTION));
        assert_eq!(option("10.0.1-custom"), Some(ROOTFS_OPTION));
        assert_eq!(option("6.17.9"), None);
        assert_eq!(option("6.1.0-57-cloud-amd64"), None);
        assert_eq!(option("5.19"), None);
        assert_eq!(option("custom"), None);
        assert_eq!(option("7"), None);
        assert_eq!(rootfs_option(None), None);
    }

    #[test]
    fn numa_nodes_split_the_memory_evenly_with_enough_each() {
        // One node: the memory as chosen.
        assert_eq!(spread(300, true, 1), Ok((300, None)));
        assert_eq!(spread(256, false, 1), Ok((256, None)));
        // A multiple stands; another is rounded up, with a word when chosen.
        assert_eq!(spread(1024, true, 2), Ok((1024, None)));
        let (mib, warning) = spread(1000, true, 3).unwrap();
        assert_eq!(mib, 1002);
        let warning = warning.unwrap();
        assert!(warning.contains("1002 MiB, 334 a node"), "{warning}");
        assert_eq!(spread(257, false, 2), Ok((258, None)));
        // The default is raised to the floor a node; --memory is refused.
        assert_eq!(spread(256, false, 8), Ok((256, None)));
        assert_eq!(spread(256, false, 16), Ok((16 * NODE_LEAST_MIB, None)));
        assert_eq!(
            spread(256, true, 16),
            Err(NodesTooSmall {
                memory_mib: 256,
                nodes: 16,
                node_mib: 16,
                give_mib: 512
            })
        );
        assert_eq!(spread(128, true, 2), Ok((128, None)));
        // Never more than u32 holds.
        assert_eq!(spread(u32::MAX, true, 2).unwrap().0, u32::MAX - 1);
        for nodes in 1..=64 {
            for mib in [16, 100, 256, 999, 4096] {
                for explicit in [false, true] {
                    if let Ok((total, _)) = spread(mib, explicit, nodes) {
                        assert_eq!(total % nodes, 0, "{mib} {nodes}");
                        assert!(total >= mib, "{mib} {nodes}");
                        assert!(nodes == 1 || total / nodes >= NODE_LEAST_MIB);
                    }
                }
            }
        }
    }
}
