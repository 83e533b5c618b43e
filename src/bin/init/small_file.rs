//! Small files of the archive (/args, /.guestinit/exec, /.guestinit/env)
//! read whole into the init's fixed buffers.

use rustix::fs::{Mode, OFlags};
use rustix::io::Errno;

/// Reads the file at `path` into `buf`; `None` when it does not fit.
pub fn read_file(path: &str, buf: &mut [u8]) -> Result<Option<usize>, Errno> {
    let file = rustix::fs::open(path, OFlags::RDONLY | OFlags::CLOEXEC, Mode::empty())?;
    let mut len = 0;
    while len < buf.len() {
        match rustix::io::read(&file, &mut buf[len..]) {
            Ok(0) => return Ok(Some(len)),
            Ok(n) => len += n,
            Err(Errno::INTR) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(None)
}
