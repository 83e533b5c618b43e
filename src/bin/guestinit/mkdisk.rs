//! `guestinit mkdisk`: a new sparse image, formatted inside a VM by the
//! host's mkfs (packed with its libraries, as any payload), so that the
//! filesystem has only features the guest kernel knows. The guest checks
//! the superblock's magic and syncs; the host checks it again after.

use std::fs::{self, OpenOptions};
use std::io::ErrorKind;
use std::path::{Path, PathBuf};

use crate::cli::{GuestMode, MkdiskArgs, RunArgs, VmArgs};
use crate::disk::{self, Disk, FsType};
use crate::error::{Error, Result};
use crate::locate;
use crate::run::{self, Verdict};

pub fn main(args: MkdiskArgs) -> Result<Verdict> {
    let mkfs = find_mkfs(args.fs)?;
    create(&args.file, args.size)?;
    // From here on, an image that was not finished is removed.
    let made = format(&args.file, args.fs, args.size, args.vm, &mkfs);
    if !matches!(made, Ok(Verdict::Exited(0))) {
        let _ = fs::remove_file(&args.file);
    }
    made
}

/// The mkfs program for `fs`, on PATH or in the sbin directories a user's
/// PATH often lacks.
fn find_mkfs(fs: FsType) -> Result<PathBuf> {
    let (program, package) = fs.program();
    locate::on_path(program.as_ref())
        .or_else(|| {
            ["/usr/sbin", "/sbin"]
                .iter()
                .map(|dir| Path::new(dir).join(program))
                .find(|p| p.is_file())
        })
        .ok_or(Error::MkfsMissing {
            program,
            package,
            fs: fs.name(),
        })
}

/// A new sparse file of `size` bytes; an existing one is refused. When the
/// size cannot be set (over the filesystem's limit), the file just made is
/// removed, so that a retry with a smaller size is not refused as existing.
fn create(path: &Path, size: u64) -> Result<()> {
    let file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .map_err(|source| match source.kind() {
            ErrorKind::AlreadyExists => Error::DiskExists {
                path: path.to_owned(),
            },
            _ => Error::Write {
                path: path.to_owned(),
                source,
            },
        })?;
    file.set_len(size).map_err(|source| {
        drop(file);
        // create_new made this file: it held nothing of the user's.
        let _ = fs::remove_file(path);
        Error::Write {
            path: path.to_owned(),
            source,
        }
    })
}

/// Boots the VM (as `vm` asks) that formats the image at `file`, then
/// checks its magic here too.
fn format(file: &Path, fs: FsType, size: u64, vm: VmArgs, mkfs: &Path) -> Result<Verdict> {
    let program = std::iter::once(mkfs.as_os_str().to_owned())
        .chain(
            fs.args(guestinit::proto::disk::TEMPLATE)
                .into_iter()
                .map(Into::into),
        )
        .collect();
    let run_args = RunArgs {
        vm,
        // The template is the VM's one disk.
        disks: vec![Disk::new(file, false)],
        program,
        mode: GuestMode::Mkdisk(fs),
        ..RunArgs::default()
    };
    let verdict = run::main(run_args)?;
    if verdict != Verdict::Exited(0) {
        return Ok(verdict);
    }
    match disk::holds(file, fs.fs())? {
        true => {
            crate::say::say_errln!(
                "guestinit: {}: {} filesystem, {size} bytes",
                file.display(),
                fs.name(),
            );
            Ok(Verdict::Exited(0))
        }
        false => Err(Error::DiskNotFormatted {
            path: file.to_owned(),
            fs: fs.name(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_existing_file_is_never_overwritten() {
        let dir = crate::scratch::ScratchDir::new("mkdisk-test").unwrap();
        let path = dir.path().join("disk.img");
        create(&path, 1 << 20).unwrap();
        assert_eq!(fs::metadata(&path).unwrap().len(), 1 << 20);
        fs::write(&path, b"keep").unwrap();
        let err = create(&path, 1 << 20).unwrap_err();
        assert_eq!(err.exit_code(), 249);
        assert!(err.to_string().contains("never overwrites"), "{err}");
        assert_eq!(fs::read(&path).unwrap(), b"keep");
    }

    #[test]
    fn a_size_that_cannot_be_set_leaves_no_file_behind() {
        let dir = crate::scratch::ScratchDir::new("mkdisk-test").unwrap();
        let path = dir.path().join("disk.img");
        // Past off_t: set_len fails on every filesystem.
        let err = create(&path, u64::MAX).unwrap_err();
        assert_eq!(err.exit_code(), 249);
        assert!(err.to_string().contains("disk.img"), "{err}");
        assert!(!path.exists(), "a failed create left {}", path.display());
        // So the retry is not refused as existing.
        create(&path, 1 << 20).unwrap();
        assert_eq!(fs::metadata(&path).unwrap().len(), 1 << 20);
    }
}
