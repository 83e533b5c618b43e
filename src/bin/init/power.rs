//! The end of every run: collect the remaining children, then power off.

use crate::console::{self, warning};
use guestinit::fmt::ErrnoText;
use guestinit::sys::power;
use guestinit::sys::process::{exit_group, wait4, Child};

/// Never returns: should power-off fail, a restart (ended by the VMM's
/// -no-reboot) follows, and as the very last resort PID 1 exits, which
/// panics the kernel (panic=-1 reboots it).
pub fn off() -> ! {
    while let Ok(Some(_)) = wait4(Child::Any, false) {}
    console::flush();
    if let Err(e) = power::power_off() {
        warning!("power off: {}", ErrnoText(e));
        console::flush();
    }
    let _ = power::restart();
    exit_group(1)
}
