//! Disk images on the host: `--disk FILE[,ro]` as the user wrote it, the
//! check that FILE can be used before the boot, the filesystem it holds
//! (to pack the modules the guest mounts it with), and `mkdisk`'s sizes
//! and filesystems.

use std::fs::{self, File, OpenOptions};
use std::io::Read;
use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};

use clap::ValueEnum;
use guestinit::parse::superblock::{self, Fs};
use guestinit::proto::boot::{Disks, TooManyDisks};

use crate::error::{Error, Result};
use crate::file_kind;

/// One `--disk`: the image and whether the guest may write it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Disk {
    pub path: PathBuf,
    pub read_only: bool,
}

impl Disk {
    /// The disk at `path`, made absolute against the current directory (as
    /// written, no symlink resolved): QEMU reads a relative `x:y.img` as
    /// protocol `x:`, and never a name that starts with `/`.
    pub fn new(path: impl Into<PathBuf>, read_only: bool) -> Disk {
        let path = path.into();
        let path = match std::path::absolute(&path) {
            Ok(absolute) => absolute,
            // No current directory: `./` still keeps QEMU off protocols.
            Err(_) if path.is_relative() => Path::new(".").join(path),
            Err(_) => path,
        };
        Disk { path, read_only }
    }

    /// `FILE`, `FILE,ro` or `FILE,rw` (the default, written out to name a
    /// file that itself ends in `,ro`). Only that last suffix is an option:
    /// any other comma belongs to the file's name.
    pub fn parse(spec: &str) -> std::result::Result<Disk, String> {
        let (path, read_only) = match (spec.strip_suffix(",ro"), spec.strip_suffix(",rw")) {
            (Some(path), _) => (path, true),
            (None, Some(path)) => (path, false),
            (None, None) => (spec, false),
        };
        if path.is_empty() {
            return Err("a disk needs a file: FILE, FILE,ro or FILE,rw".into());
        }
        Ok(Disk::new(path, read_only))
    }

    /// Opens the image as QEMU will (read-write unless `,ro`), so that a
    /// missing or unusable file is refused before the boot, by name. Only a
    /// regular file or a block device is an image: a directory, FIFO,
    /// socket or character device is refused (stat first, so a FIFO's open
    /// does not block).
    pub fn check(&self) -> Result<File> {
        if let Ok(meta) = fs::metadata(&self.path) {
            let kind = meta.file_type();
            if !kind.is_file() && !kind.is_block_device() {
                return Err(Error::DiskNotAnImage {
                    path: self.path.clone(),
                    kind: file_kind::describe(kind),
                });
            }
        }
        OpenOptions::new()
            .read(true)
            .write(!self.read_only)
            .open(&self.path)
            .map_err(|source| Error::Disk {
                path: self.path.clone(),
                source,
            })
    }
}

/// The access the guest mounts the data disks with ([`guestinit::proto::key::DISKS`]);
/// an error past [`guestinit::proto::disk::MAX`].
pub fn access_list(disks: &[Disk]) -> std::result::Result<Disks, TooManyDisks> {
    let mut access = Disks::default();
    for disk in disks {
        access.push(disk.read_only)?;
    }
    Ok(access)
}

/// Bytes read from an image's start: enough for every magic the parser
/// knows (btrfs's lies at 64 KiB + 64).
const HEAD_BYTES: u64 = 0x10048;

/// The filesystem `file` holds, by its superblock's magic; `None` for an
/// empty, unknown or unreadable image (the guest then says so).
pub fn detect(file: &File) -> Option<Fs> {
    let mut head = Vec::new();
    file.take(HEAD_BYTES).read_to_end(&mut head).ok()?;
    superblock::detect(superblock::read_from(&head))
}

/// Whether the image at `path` carries `fs`'s magic.
pub fn holds(path: &Path, fs: Fs) -> Result<bool> {
    let file = File::open(path).map_err(|source| Error::Disk {
        path: path.to_owned(),
        source,
    })?;
    Ok(detect(&file) == Some(fs))
}

/// The kernel modules a guest needs to see virtio disks and mount `fs`
/// (packed only where the kernel has them as modules). vfat also needs
/// the kernel's default codepage and charset (Debian: 437, ascii).
pub fn modules(fs: impl IntoIterator<Item = Fs>) -> Vec<&'static str> {
    let mut wanted = vec!["virtio_blk"];
    for fs in fs {
        let more: &[&str] = match fs {
            Fs::Ext => &["ext4"],
            Fs::Btrfs => &["btrfs"],
            Fs::Xfs => &["xfs"],
            Fs::Vfat => &["vfat", "nls_cp437", "nls_ascii"],
        };
        for module in more {
            if !wanted.contains(module) {
                wanted.push(module);
            }
        }
    }
    wanted
}

/// The filesystems `mkdisk` makes, each with the host program that does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum FsType {
    Ext4,
    Btrfs,
}

impl FsType {
    pub fn fs(self) -> Fs {
        match self {
            FsType::Ext4 => Fs::Ext,
            FsType::Btrfs => Fs::Btrfs,
        }
    }

    /// Its name, as `--fs` takes it and messages say it.
    pub fn name(self) -> &'static str {
        match self {
            FsType::Ext4 => "ext4",
            FsType::Btrfs => "btrfs",
        }
    }

    /// The mkfs program, and the Debian package that has it.
    pub fn program(self) -> (&'static str, &'static str) {
        match self {
            FsType::Ext4 => ("mke2fs", "e2fsprogs"),
            FsType::Btrfs => ("mkfs.btrfs", "btrfs-progs"),
        }
    }

    /// mkfs's arguments after its name, for `device`: quiet, and forced
    /// (the whole device, no partition table, is the point).
    pub fn args(self, device: &str) -> Vec<String> {
        let args: &[&str] = match self {
            FsType::Ext4 => &["-t", "ext4", "-F", "-q"],
            FsType::Btrfs => &["-f", "-q"],
        };
        args.iter()
            .map(|a| a.to_string())
            .chain([device.to_owned()])
            .collect()
    }
}

/// `--size`: bytes, or a number with K, M, G or T. The units are powers of
/// 1024, as `truncate -s` and `qemu-img` read them; size crates disagree
/// on whether M means 10^6 or 2^20, so the four suffixes are spelled here.
pub fn parse_size(text: &str) -> std::result::Result<u64, String> {
    let (number, shift) = match text.char_indices().last() {
        Some((at, unit @ ('K' | 'M' | 'G' | 'T' | 'k' | 'm' | 'g' | 't'))) => {
            let shift = match unit.to_ascii_uppercase() {
                'K' => 10,
                'M' => 20,
                'G' => 30,
                _ => 40,
            };
            (&text[..at], shift)
        }
        _ => (text, 0),
    };
    let bad = || format!("{text:?} is not a size: give bytes, or a number with K, M, G or T");
    let bytes = number
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(1 << shift))
        .ok_or_else(bad)?;
    match bytes {
        0 => Err(bad()),
        bytes => Ok(bytes),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_trailing_ro_makes_a_disk_read_only_and_other_commas_are_the_files() {
        let disk = |path: &str, read_only| Disk {
            path: std::env::current_dir().unwrap().join(path),
            read_only,
        };
        assert_eq!(Disk::parse("a.img"), Ok(disk("a.img", false)));
        assert_eq!(Disk::parse("a.img,ro"), Ok(disk("a.img", true)));
        assert_eq!(Disk::parse("x,y.img"), Ok(disk("x,y.img", false)));
        assert_eq!(Disk::parse("x,y.img,ro"), Ok(disk("x,y.img", true)));
        assert_eq!(Disk::parse("x,ro,rw"), Ok(disk("x,ro", false)));
        assert_eq!(Disk::parse("x,rw,ro"), Ok(disk("x,rw", true)));
        assert!(Disk::parse(",ro").is_err());
        assert!(Disk::parse(",rw").is_err());
        assert!(Disk::parse("").is_err());
    }

    #[test]
    fn a_relative_disk_is_made_absolute_as_written() {
        let cwd = std::env::current_dir().unwrap();
        let path = |spec| Disk::parse(spec).unwrap().path;
        assert_eq!(path("x:y.img"), cwd.join("x:y.img"));
        assert_eq!(path("x:y.img,ro"), cwd.join("x:y.img"));
        assert_eq!(path("../d/a.img"), cwd.join("../d/a.img"));
        // Absolute names stay as written: no `..` folded, no symlink read.
        assert_eq!(path("/d/../x:y.img"), Path::new("/d/../x:y.img"));
        assert_eq!(Disk::new("sub/x.img", true).path, cwd.join("sub/x.img"));
    }

    #[test]
    fn the_guest_learns_each_disks_access_in_order() {
        use guestinit::proto::boot::BootParams;
        let disks = [Disk::parse("a").unwrap(), Disk::parse("b,ro").unwrap()];
        let key = |disks: &[Disk]| {
            let params = BootParams {
                disks: access_list(disks).unwrap(),
                ..BootParams::default()
            };
            let mut text = String::new();
            params.write_to(&mut text).unwrap();
            text
        };
        assert_eq!(key(&disks), " guestinit.disks=rw,ro");
        assert_eq!(key(&[]), "");
        let many = vec![disks[0].clone(); guestinit::proto::disk::MAX + 1];
        assert_eq!(access_list(&many), Err(TooManyDisks));
    }

    #[test]
    fn a_missing_disk_is_an_error_naming_it() {
        let disk = Disk::parse("/nonexistent/disk.img,ro").unwrap();
        let err = disk.check().unwrap_err();
        assert_eq!(err.exit_code(), 249);
        assert!(err.to_string().contains("/nonexistent/disk.img"), "{err}");
    }

    #[test]
    fn a_directory_or_character_device_is_refused_as_a_disk_naming_it() {
        let dir = crate::scratch::ScratchDir::new("disk-test").unwrap();
        for (spec, kind) in [
            (format!("{},ro", dir.path().display()), "a directory"),
            (format!("{}", dir.path().display()), "a directory"),
            ("/dev/null,ro".to_owned(), "a character device"),
        ] {
            let err = Disk::parse(&spec).unwrap().check().unwrap_err();
            assert_eq!(err.exit_code(), 249, "{spec}: {err}");
            let text = err.to_string();
            let path = spec.trim_end_matches(",ro");
            assert!(text.contains(path) && text.contains(kind), "{spec}: {text}");
        }
        let image = dir.path().join("a.img");
        std::fs::write(&image, [0u8; 512]).unwrap();
        Disk::parse(image.to_str().unwrap())
            .unwrap()
            .check()
            .unwrap();
    }

    #[test]
    fn the_host_reads_the_magic_mkdisk_must_leave() {
        let dir = crate::scratch::ScratchDir::new("disk-test").unwrap();
        let path = dir.path().join("ext.img");
        let mut image = vec![0u8; 8192];
        image[1080..1082].copy_from_slice(&[0x53, 0xEF]);
        std::fs::write(&path, &image).unwrap();
        assert!(holds(&path, Fs::Ext).unwrap());
        assert!(!holds(&path, Fs::Btrfs).unwrap());
        std::fs::write(&path, [0xA5u8; 8192]).unwrap();
        assert!(!holds(&path, Fs::Ext).unwrap());
    }

    #[test]
    fn sizes_take_binary_suffixes_and_refuse_the_rest() {
        assert_eq!(parse_size("4096"), Ok(4096));
        assert_eq!(parse_size("256M"), Ok(256 << 20));
        assert_eq!(parse_size("1g"), Ok(1 << 30));
        assert_eq!(parse_size("2K"), Ok(2048));
        for bad in ["", "M", "0", "1.5G", "-1M", "12Q", "99999999999T"] {
            assert!(parse_size(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn vfat_brings_its_charsets_and_modules_come_once() {
        assert_eq!(modules([]), ["virtio_blk"]);
        assert_eq!(modules([Fs::Ext, Fs::Ext]), ["virtio_blk", "ext4"]);
        assert_eq!(
            modules([Fs::Vfat]),
            ["virtio_blk", "vfat", "nls_cp437", "nls_ascii"]
        );
    }
}
