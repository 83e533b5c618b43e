//! A terminal made raw by the plain TCGETS/TCSETS ioctls. rustix's
//! `tcgetattr` decodes baud rates through a table the init never needs
//! (about 700 bytes of the static binary).

use super::raw::{check, syscall3};
use super::Result;
use linux_raw_sys::general::{
    __NR_ioctl, termios, BRKINT, CS8, CSIZE, ECHO, ECHONL, ICANON, ICRNL, IEXTEN, IGNBRK, IGNCR,
    INLCR, ISIG, ISTRIP, IXON, OPOST, PARENB, PARMRK, VMIN, VTIME,
};
use linux_raw_sys::ioctl::{TCGETS, TCSETS};
use rustix::fd::{AsRawFd, BorrowedFd};

/// cfmakeraw(3) on `tty`: bytes pass as they are sent, none is echoed,
/// no signal keys, a read returns from one byte on.
pub fn make_raw(tty: BorrowedFd<'_>) -> Result<()> {
    let mut t = termios {
        c_iflag: 0,
        c_oflag: 0,
        c_cflag: 0,
        c_lflag: 0,
        c_line: 0,
        c_cc: [0; 19],
    };
    let fd = tty.as_raw_fd() as usize;
    // SAFETY: TCGETS writes one `struct termios` into `t`, which outlives the call.
    check(unsafe {
        syscall3(
            __NR_ioctl,
            fd,
            TCGETS as usize,
            &mut t as *mut termios as usize,
        )
    })?;
    t.c_iflag &= !(IGNBRK | BRKINT | PARMRK | ISTRIP | INLCR | IGNCR | ICRNL | IXON);
    t.c_oflag &= !OPOST;
    t.c_lflag &= !(ECHO | ECHONL | ICANON | ISIG | IEXTEN);
    t.c_cflag = (t.c_cflag & !(CSIZE | PARENB)) | CS8;
    t.c_cc[VMIN as usize] = 1;
    t.c_cc[VTIME as usize] = 0;
    // SAFETY: TCSETS reads one `struct termios` from `t`.
    check(unsafe {
        syscall3(
            __NR_ioctl,
            fd,
            TCSETS as usize,
            &t as *const termios as usize,
        )
    })?;
    Ok(())
}
