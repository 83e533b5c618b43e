//! Disks: the data disks the host attached (`run --disk`), each mounted at
//! /mnt/diskN as the filesystem its superblock's magic names, and the check
//! that `mkdisk`'s mkfs made the filesystem it was asked for. A data disk
//! that cannot be mounted is warned of and the run goes on.

use crate::clock;
use crate::link::Link;
use core::ffi::CStr;
use core::fmt;
use guestinit::fmt::{ErrnoText, Lossy};
use guestinit::parse::superblock::{self, Fs};
use guestinit::proto::boot::Disks;
use guestinit::proto::disk;
use guestinit::sys::process::{self, Child, Wait};
use rustix::fd::{AsFd, OwnedFd};
use rustix::fs::OFlags;
use rustix::io::Errno;
use rustix::mount::{mount, MountFlags, UnmountFlags};

/// Mounts disk N at /mnt/diskN for each disk of the host's
/// `guestinit.disks` ([`guestinit::proto::key::DISKS`]); `more` when it listed more
/// than [`disk::MAX`], which is warned of once those are mounted.
pub fn mount_all(link: &mut Link, disks: Disks, more: bool) {
    if disks.is_empty() {
        return;
    }
    if let Err(e) = crate::small_file::make_dir(c"/mnt") {
        link.warn(format_args!("mkdir /mnt: {}", ErrnoText(e)));
        return;
    }
    for (index, read_only) in disks.iter().enumerate() {
        if let Err(e) = mount_disk(index, read_only) {
            link.warn(format_args!("disk{index} is not mounted: {e}"));
        }
    }
    if more {
        link.warn(format_args!("only the first {} disks are mounted", disk::MAX));
    }
}

/// Unmounts the data disks `mount_all` mounted, so that what the payload
/// wrote is on the images (and an ext4 journal is clean for a read-only
/// mount next time) when QEMU exits. A disk still busy (a daemon the
/// payload left, with a file open there) is unmounted once every process
/// left is killed and reaped.
pub fn unmount_all(link: &mut Link, disks: Disks) {
    if disks.is_empty() {
        return;
    }
    let mut killed = false;
    for index in 0..disks.len() {
        let mut result = unmount(index);
        if result == Err(Errno::BUSY) && !killed {
            link.warn(format_args!("disk{index} is busy: killing what is left"));
            kill_the_rest();
            killed = true;
            result = unmount(index);
        }
        if let Err(e) = result {
            link.warn(format_args!("unmount disk{index}: {}", ErrnoText(e)));
        }
    }
    // What a busy disk still holds in the page cache goes out all the same.
    rustix::fs::sync();
}

/// Unmounts disk `index`; one that was never mounted (a warning said why)
/// is no error.
fn unmount(index: usize) -> Result<(), Errno> {
    let mut buf = [0u8; TARGET_LEN];
    match rustix::mount::unmount(target(index, &mut buf), UnmountFlags::empty()) {
        Ok(()) | Err(Errno::INVAL) | Err(Errno::NOENT) => Ok(()),
        Err(e) => Err(e),
    }
}

/// SIGKILL to every process but PID 1, then reap them (they are all ours
/// by now) until none is left or [`REAP_MS`] pass: a process in
/// uninterruptible I/O may take a while to die.
fn kill_the_rest() {
    let _ = process::kill_all_others();
    for _ in 0..REAP_MS / 10 {
        loop {
            match process::wait4(Child::Any, Wait::NoHang) {
                Ok(Some(_)) => continue,
                Ok(None) => break,
                Err(_) => return, // ECHILD: no process is left
            }
        }
        let _ = rustix::thread::nanosleep(&clock::timespec_ms(10));
    }
}

/// How long [`kill_the_rest`] waits for the killed to die.
const REAP_MS: u32 = 2_000;

/// Why a data disk is not mounted, or why `mkdisk`'s disk is not right.
enum Error {
    Open(&'static CStr, Errno),
    Mkdir(Errno),
    /// No filesystem magic the init knows (ext2/3/4, btrfs, xfs, vfat).
    Unknown(&'static CStr),
    Mount(&'static CStr, Fs, Errno),
    /// `mkdisk` was asked for a type the init cannot check.
    UnknownFs,
    /// mkfs ended well but the disk lacks the filesystem's magic.
    NoMagic(Fs),
    Sync(Errno),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Open(dev, e) => write!(f, "open {}: {}", Lossy(dev.to_bytes()), ErrnoText(*e)),
            Error::Mkdir(e) => write!(f, "mkdir: {}", ErrnoText(*e)),
            Error::Unknown(dev) => write!(
                f,
                "{} holds no filesystem the init knows (ext2/3/4, btrfs, xfs, vfat)",
                Lossy(dev.to_bytes())
            ),
            Error::Mount(dev, fs, e) => write!(
                f,
                "mount {} as {}: {}",
                Lossy(dev.to_bytes()),
                fs.mount_type(),
                ErrnoText(*e)
            ),
            Error::UnknownFs => write!(f, "no filesystem type the init can check"),
            Error::NoMagic(fs) => write!(
                f,
                "mkfs succeeded but {} has no {} superblock magic",
                disk::TEMPLATE,
                fs.mount_type()
            ),
            Error::Sync(e) => write!(f, "sync {}: {}", disk::TEMPLATE, ErrnoText(*e)),
        }
    }
}

/// Room for `/mnt/diskN` and its NUL.
const TARGET_LEN: usize = disk::MOUNT_PREFIX.len() + 3;

/// `/mnt/diskN` for disk `index` (below [`disk::MAX`]), written in `buf`.
fn target(index: usize, buf: &mut [u8; TARGET_LEN]) -> &CStr {
    let prefix = disk::MOUNT_PREFIX.as_bytes();
    buf[..prefix.len()].copy_from_slice(prefix);
    let digits = [b'0' + (index / 10) as u8, b'0' + (index % 10) as u8, 0];
    let digits = if index < 10 { &digits[1..] } else { &digits[..] };
    buf[prefix.len()..prefix.len() + digits.len()].copy_from_slice(digits);
    CStr::from_bytes_until_nul(&buf[..]).unwrap_or_default()
}

fn mount_disk(index: usize, read_only: bool) -> Result<(), Error> {
    let device = DEVICES[index];
    let file = open(device, OFlags::RDONLY).map_err(|e| Error::Open(device, e))?;
    let fs = superblock::detect(reader(&file)).ok_or(Error::Unknown(device))?;
    drop(file);
    let mut buf = [0u8; TARGET_LEN];
    let target = target(index, &mut buf);
    crate::small_file::make_dir(target).map_err(Error::Mkdir)?;
    let flags = match read_only {
        true => MountFlags::RDONLY,
        false => MountFlags::empty(),
    };
    mount(device, target, fs.mount_type(), flags, None::<&CStr>)
        .map_err(|e| Error::Mount(device, fs, e))
}

/// Disk N's device: virtio-blk disks are named in the order QEMU attaches them.
/// (C strings: they go to syscalls as they are.)
const DEVICES: [&CStr; disk::MAX] = [
    c"/dev/vda", c"/dev/vdb", c"/dev/vdc", c"/dev/vdd", c"/dev/vde", c"/dev/vdf", c"/dev/vdg",
    c"/dev/vdh", c"/dev/vdi", c"/dev/vdj", c"/dev/vdk", c"/dev/vdl", c"/dev/vdm", c"/dev/vdn",
    c"/dev/vdo", c"/dev/vdp",
];

/// `mkdisk`'s disk, [`disk::TEMPLATE`].
const TEMPLATE: &CStr = DEVICES[0];

/// `mkdisk`'s last step: the disk carries the magic of `fs` (from
/// [`guestinit::proto::key::FS`]; `None`: one the init cannot check), and is synced.
pub fn check_template(fs: Option<Fs>) -> Result<(), impl fmt::Display> {
    let fs = fs.ok_or(Error::UnknownFs)?;
    let file = open(TEMPLATE, OFlags::RDWR).map_err(|e| Error::Open(TEMPLATE, e))?;
    // mkfs wrote through the page cache: the host reads the file after
    // QEMU exits, so the guest's writes must reach the device first.
    rustix::fs::fsync(&file).map_err(Error::Sync)?;
    rustix::fs::sync();
    let found = fs.found_in(&mut reader(&file));
    match found {
        true => Ok(()),
        false => Err(Error::NoMagic(fs)),
    }
}

fn open(path: &CStr, flags: OFlags) -> Result<OwnedFd, Errno> {
    crate::small_file::open(path.to_bytes(), flags | OFlags::CLOEXEC)
}

/// The superblock parser's `read_at` over a device.
fn reader(file: &OwnedFd) -> impl FnMut(u64, &mut [u8]) -> bool + '_ {
    move |offset, buf| rustix::io::pread(file.as_fd(), &mut *buf, offset) == Ok(buf.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn disk_n_is_vd_letter_n_at_mnt_disk_n() {
        for (index, device) in DEVICES.iter().enumerate() {
            let letter = char::from(b'a' + index as u8);
            let name = std::format!("{}{letter}", disk::DEVICE_PREFIX);
            assert_eq!(device.to_str(), Ok(name.as_str()));
            let mut buf = [0u8; TARGET_LEN];
            let want = std::format!("/mnt/disk{index}");
            assert_eq!(target(index, &mut buf).to_str(), Ok(want.as_str()));
        }
        assert_eq!(TEMPLATE.to_str(), Ok(disk::TEMPLATE));
    }

    #[test]
    fn the_superblock_is_read_from_a_file_at_its_offsets() {
        let path = std::env::temp_dir().join(std::format!("guestinit-disks-{}", std::process::id()));
        let mut image = std::vec![0u8; 4096];
        image[1080..1082].copy_from_slice(&[0x53, 0xEF]);
        std::fs::write(&path, &image).unwrap();
        let path_c = std::ffi::CString::new(path.to_str().unwrap()).unwrap();
        let file = open(&path_c, OFlags::RDONLY).unwrap();
        assert_eq!(superblock::detect(reader(&file)), Some(Fs::Ext));
        // btrfs's magic lies past this file's end: a short read is no match.
        assert!(!Fs::Btrfs.found_in(&mut reader(&file)));
        std::fs::remove_file(&path).unwrap();
    }
}
