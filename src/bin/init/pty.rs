//! The shell's pseudo-terminal: devpts mounted at /dev/pts, a master the
//! init polls and the slave the shell takes as its controlling terminal.

use rustix::fd::OwnedFd;
use rustix::fs::{Mode, OFlags};
use rustix::io::Errno;
use rustix::mount::{mount, MountFlags};
use rustix::pty::{ioctl_tiocgptpeer, openpt, unlockpt, OpenptFlags};

pub struct Pty {
    /// Non-blocking: the relay polls it.
    pub master: OwnedFd,
    /// Blocking, as the shell expects of its terminal.
    pub slave: OwnedFd,
}

/// Mounts devpts and opens a new PTY pair.
pub fn open() -> Result<Pty, Errno> {
    mount_devpts()?;
    let flags = OpenptFlags::RDWR | OpenptFlags::NOCTTY | OpenptFlags::CLOEXEC;
    let master = openpt(flags)?;
    unlockpt(&master)?;
    // TIOCGPTPEER opens this master's own slave, with no path to look up.
    let slave = ioctl_tiocgptpeer(&master, flags)?;
    rustix::fs::fcntl_setfl(&master, OFlags::RDWR | OFlags::NONBLOCK)?;
    Ok(Pty { master, slave })
}

/// devtmpfs's /dev/ptmx opens the devpts instance mounted at /dev/pts.
fn mount_devpts() -> Result<(), Errno> {
    match rustix::fs::mkdir(c"/dev/pts", Mode::from_raw_mode(0o755)) {
        Ok(()) | Err(Errno::EXIST) => {}
        Err(e) => return Err(e),
    }
    let flags = MountFlags::NOSUID | MountFlags::NOEXEC;
    match mount(c"devpts", c"/dev/pts", c"devpts", flags, c"ptmxmode=0666,mode=0620") {
        Ok(()) | Err(Errno::BUSY) => Ok(()),
        Err(e) => Err(e),
    }
}
