//! Small files read whole into the init's fixed buffers (/args,
//! /.guestinit/exec and env, sysfs and cgroup files, scripts) and sysfs
//! knobs written in one go, as `echo` does, and directories made; every
//! open of the init goes through [`open`].

use core::ffi::CStr;
use rustix::fs::{Mode, OFlags};
use rustix::io::Errno;

/// `open(2)` with no mode, out of line: inlined at each of the init's
/// call sites, rustix's path copy and descriptor checks cost about a
/// hundred bytes apiece.
#[inline(never)]
pub fn open(path: &[u8], flags: OFlags) -> Result<rustix::fd::OwnedFd, Errno> {
    rustix::fs::open(path, flags, Mode::empty())
}

/// Writes `bytes` whole to a blocking `fd` (a UART, an unpacked file),
/// resuming short writes and EINTR.
pub fn write_all(fd: rustix::fd::BorrowedFd<'_>, mut bytes: &[u8]) -> Result<(), Errno> {
    while !bytes.is_empty() {
        match rustix::io::write(fd, bytes) {
            Ok(n) => bytes = &bytes[n..],
            Err(Errno::INTR) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Whether `path` exists (following symlinks, as access(F_OK) does). An
/// O_PATH open rather than access(2): it shares `open`'s one path copy.
pub fn exists(path: &[u8]) -> bool {
    open(path, OFlags::PATH | OFlags::CLOEXEC).is_ok()
}

/// Reads `path` into `buf` up to its end or `buf`'s: the bytes read.
pub fn read_prefix(path: &[u8], buf: &mut [u8]) -> Result<usize, Errno> {
    let file = open(path, OFlags::RDONLY | OFlags::CLOEXEC)?;
    let mut len = 0;
    while len < buf.len() {
        match rustix::io::read(&file, &mut buf[len..]) {
            Ok(0) => break,
            Ok(n) => len += n,
            Err(Errno::INTR) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(len)
}

/// Reads the file at `path` into `buf`; `None` when it fills `buf` (it
/// may not fit).
pub fn read_file(path: &[u8], buf: &mut [u8]) -> Result<Option<usize>, Errno> {
    let len = read_prefix(path, buf)?;
    Ok((len < buf.len()).then_some(len))
}

/// One write of `bytes` to an existing file, as `echo` to sysfs does.
pub fn write_file(path: &[u8], bytes: &[u8]) -> Result<(), Errno> {
    let file = open(path, OFlags::WRONLY | OFlags::CLOEXEC)?;
    rustix::io::write(&file, bytes).map(drop)
}

/// `mkdir` that takes an existing directory as made.
pub fn make_dir(path: &CStr) -> Result<(), Errno> {
    match rustix::fs::mkdir(path, Mode::from_raw_mode(0o755)) {
        Ok(()) | Err(Errno::EXIST) => Ok(()),
        Err(e) => Err(e),
    }
}
