//! finit_module(2): load a kernel module from an open file.

use super::raw::{check, syscall3};
use super::Result;
use rustix::fd::{AsFd, AsRawFd};

/// Lets the kernel decompress the file itself (needs CONFIG_MODULE_DECOMPRESS);
/// not yet in linux-raw-sys.
pub const MODULE_INIT_COMPRESSED_FILE: u32 = 4;

/// Loads the module in `file` with no parameters.
pub fn finit_module(file: impl AsFd, flags: u32) -> Result<()> {
    let params = b"\0";
    // SAFETY: the fd is borrowed for the call; params is a NUL-terminated
    // empty string that outlives it.
    let ret = unsafe {
        syscall3(
            linux_raw_sys::general::__NR_finit_module,
            file.as_fd().as_raw_fd() as usize,
            params.as_ptr() as usize,
            flags as usize,
        )
    };
    check(ret).map(drop)
}
