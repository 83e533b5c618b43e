//! Temporary space: a private directory removed on drop, and a file that
//! never has a name. Hand-rolled because the `tempfile` crate turns on
//! rustix's `std` feature, which the no_std init (same package, unified
//! features) must not get.

use std::fs::{DirBuilder, File, OpenOptions};
use std::io;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// A read-write file in TMPDIR that no name ever points to (`O_TMPFILE`),
/// so nothing is left behind even when the host is SIGKILLed mid-write.
/// Where the file system has no `O_TMPFILE`, a file unlinked right after
/// its creation, which leaves a window of one syscall.
pub fn anonymous_file() -> io::Result<File> {
    let dir = std::env::temp_dir();
    let tmpfile = OpenOptions::new()
        .read(true)
        .write(true)
        .mode(0o600)
        .custom_flags(libc::O_TMPFILE)
        .open(&dir);
    match tmpfile {
        Err(e) if matches!(e.raw_os_error(), Some(libc::EOPNOTSUPP | libc::EISDIR)) => {
            let scratch = ScratchDir::new("file")?;
            let path = scratch.path().join("f");
            let file = OpenOptions::new()
                .read(true)
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&path)?;
            drop(scratch);
            Ok(file)
        }
        result => result,
    }
}

pub struct ScratchDir {
    path: PathBuf,
}

impl ScratchDir {
    /// Creates `$TMPDIR/guestinit-{purpose}-{unique}` with mode 0700.
    pub fn new(purpose: &str) -> io::Result<ScratchDir> {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        loop {
            let nanos = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.subsec_nanos());
            let unique = format!(
                "guestinit-{purpose}-{}-{}-{nanos:08x}",
                std::process::id(),
                COUNTER.fetch_add(1, Ordering::Relaxed)
            );
            let path = std::env::temp_dir().join(unique);
            match DirBuilder::new().mode(0o700).create(&path) {
                Ok(()) => return Ok(ScratchDir { path }),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(e),
            }
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        // Best effort: a leftover temp dir is not worth failing a run for.
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Seek, Write};
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn an_anonymous_file_has_no_name_and_reopens_through_its_descriptor() {
        let mut file = anonymous_file().unwrap();
        file.write_all(b"archive").unwrap();
        file.rewind().unwrap();
        let fd = std::os::fd::AsRawFd::as_raw_fd(&file);
        // QEMU opens the initramfs as /dev/fd/N: that must work.
        let mut again = File::open(format!("/dev/fd/{fd}")).unwrap();
        let mut text = String::new();
        again.read_to_string(&mut text).unwrap();
        assert_eq!(text, "archive");
        let link = std::fs::read_link(format!("/proc/self/fd/{fd}")).unwrap();
        assert!(link.to_string_lossy().ends_with("(deleted)"), "{link:?}");
    }

    #[test]
    fn a_scratch_directory_is_the_users_alone_and_goes_when_dropped() {
        let scratch = ScratchDir::new("mode-test").unwrap();
        let mode = std::fs::metadata(scratch.path())
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o700, "mode {mode:o}");
        let path = scratch.path().to_owned();
        drop(scratch);
        assert!(!path.exists());
    }
}
