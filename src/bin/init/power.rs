//! The end of every run: collect the remaining children, then power off.

use crate::console::{self, warning};
use guestinit::fmt::ErrnoText;
use rustix::system::{reboot, RebootCommand};
use guestinit::sys::process::{exit_group, wait4, Child, Wait};

/// Never returns: should power-off fail, a restart (ended by the VMM's
/// -no-reboot) follows, and as the very last resort PID 1 exits, which
/// panics the kernel (panic=-1 reboots it).
pub fn off() -> ! {
    while let Ok(Some(_)) = wait4(Child::Any, Wait::NoHang) {}
    console::flush();
    if let Err(e) = reboot(RebootCommand::PowerOff) {
        warning!("power off: {}", ErrnoText(e));
        console::flush();
    }
    let _ = reboot(RebootCommand::Restart);
    exit_group(1)
}
