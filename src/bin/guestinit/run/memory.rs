//! The guest's memory: what the kernel needs to unpack its initramfs and
//! reach the init, as a function of the archive's size, measured with
//! `scripts/bench.sh sizes` (docs/BENCHMARKS.md) and fitted to a line.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::Path;

/// The floor measured on the Debian 6.1 cloud kernel (1 MiB steps): 74 MiB
/// at a 2.4 MiB archive, 151 at 34.4, 345 at 98.4, 664 at 202.4. It grows
/// faster than linearly, so the line takes the steepest slope seen (3.07
/// per MiB), rounded up, near the smallest point, plus a margin.
const FLOOR_BASE_MIB: f64 = 68.0;
const FLOOR_PER_MIB: f64 = 3.1;
/// Above the line, for kernels and machines that differ a little.
const MARGIN_MIB: f64 = 8.0;
/// What a guest gets at least without `--memory`: room for the payload's
/// own work beyond the boot.
pub const DEFAULT_MIB: u32 = 256;

/// The least memory, in MiB, with which an archive of `bytes` boots.
pub fn estimate_mib(bytes: u64) -> u32 {
    let archive_mib = bytes as f64 / (1024.0 * 1024.0);
    (FLOOR_BASE_MIB + FLOOR_PER_MIB * archive_mib + MARGIN_MIB).ceil() as u32
}

/// The archive's unpacked size: the file's, or for a gzip file the size
/// its trailer records (modulo 4 GiB, as gzip keeps it).
pub fn archive_bytes(path: &Path) -> io::Result<u64> {
    let mut file = File::open(path)?;
    let mut magic = [0u8; 2];
    let len = file.metadata()?.len();
    if len < 18 || file.read_exact(&mut magic).is_err() || magic != [0x1f, 0x8b] {
        return Ok(len);
    }
    let mut isize = [0u8; 4];
    file.seek(SeekFrom::End(-4))?;
    file.read_exact(&mut isize)?;
    Ok(u64::from(u32::from_le_bytes(isize)).max(len))
}

/// The guest's memory: `--memory` if given, else the estimate plus the
/// default's room for the payload; and a warning when `--memory` is below
/// the estimate.
pub fn choose(explicit: Option<u32>, bytes: u64) -> (u32, Option<String>) {
    let estimate = estimate_mib(bytes);
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

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1024 * 1024;

    #[test]
    fn the_estimate_is_above_every_measured_floor() {
        let measured = [
            (2_485_688, 74),
            (36_044_344, 151),
            (103_161_656, 345),
            (212_227_288, 664),
        ];
        for (bytes, floor) in measured {
            let estimate = estimate_mib(bytes);
            let near = floor + 1..=floor + 48;
            assert!(near.contains(&estimate), "{bytes}: {estimate}");
        }
    }

    #[test]
    fn the_estimate_grows_with_the_archive() {
        assert!(estimate_mib(2 * MIB) < estimate_mib(100 * MIB));
        assert_eq!(
            choose(None, 2 * MIB).0,
            DEFAULT_MIB.max(estimate_mib(2 * MIB) + 128)
        );
        assert!(choose(None, 400 * MIB).0 > estimate_mib(400 * MIB));
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
        assert_eq!(archive_bytes(&path).unwrap(), 3 * MIB);
        std::fs::write(&path, b"plain").unwrap();
        assert_eq!(archive_bytes(&path).unwrap(), 5);
    }

    #[test]
    fn an_explicit_size_stands_and_is_warned_about_when_too_small() {
        assert_eq!(choose(Some(512), 2 * MIB), (512, None));
        let (mib, warning) = choose(Some(64), 2 * MIB);
        assert_eq!(mib, 64);
        let warning = warning.unwrap();
        assert!(warning.contains("--memory 64 is below the"), "{warning}");
    }
}
