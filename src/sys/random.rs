//! The kernel's random pool after a restore: a snapshot's every restore
//! starts from the same pool, so the host's fresh bytes are credited
//! (RNDADDENTROPY) and the CRNG reseeded from them at once
//! (RNDRESEEDCRNG), before anything reads a random number. rustix has
//! neither ioctl.

use super::raw::{check, syscall3};
use super::Result;
use linux_raw_sys::general::__NR_ioctl;
use linux_raw_sys::ioctl::{RNDADDENTROPY, RNDRESEEDCRNG};
use rustix::fd::{AsRawFd, BorrowedFd};

/// The most bytes credited at once.
pub const MAX: usize = 64;

/// `struct rand_pool_info` with room for [`MAX`] bytes.
#[repr(C)]
struct PoolInfo {
    entropy_count: i32,
    buf_size: i32,
    buf: [u8; MAX],
}

/// Mixes `bytes` (at most [`MAX`]) into the pool of the random device
/// `random`, credited as full entropy, then reseeds the CRNG from it.
pub fn reseed(random: BorrowedFd<'_>, bytes: &[u8]) -> Result<()> {
    let len = bytes.len().min(MAX);
    let mut info = PoolInfo {
        entropy_count: (len * 8) as i32,
        buf_size: len as i32,
        buf: [0; MAX],
    };
    info.buf[..len].copy_from_slice(&bytes[..len]);
    let fd = random.as_raw_fd() as usize;
    // SAFETY: RNDADDENTROPY reads a rand_pool_info of `buf_size` bytes, inside `info`.
    check(unsafe {
        syscall3(
            __NR_ioctl,
            fd,
            RNDADDENTROPY as usize,
            &info as *const PoolInfo as usize,
        )
    })?;
    // SAFETY: RNDRESEEDCRNG takes no argument.
    check(unsafe { syscall3(__NR_ioctl, fd, RNDRESEEDCRNG as usize, 0) })?;
    Ok(())
}
