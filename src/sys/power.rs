//! reboot(2): how PID 1 ends the VM (rustix does not wrap it).

use super::raw::{check, syscall4};
use super::Result;
use linux_raw_sys::general::{
    __NR_reboot, LINUX_REBOOT_CMD_CAD_OFF, LINUX_REBOOT_CMD_POWER_OFF, LINUX_REBOOT_CMD_RESTART,
    LINUX_REBOOT_MAGIC1, LINUX_REBOOT_MAGIC2,
};

fn reboot(cmd: u32) -> Result<()> {
    // SAFETY: reboot takes magic numbers and a command, no pointers.
    let ret = unsafe {
        syscall4(
            __NR_reboot,
            LINUX_REBOOT_MAGIC1 as usize,
            LINUX_REBOOT_MAGIC2 as usize,
            cmd as usize,
            0,
        )
    };
    check(ret).map(drop)
}

/// Powers the machine off; the VMM exits. Returns only on failure.
pub fn power_off() -> Result<()> {
    reboot(LINUX_REBOOT_CMD_POWER_OFF)
}

/// Restarts the machine, which `-no-reboot` turns into a VMM exit.
pub fn restart() -> Result<()> {
    reboot(LINUX_REBOOT_CMD_RESTART)
}

/// Routes Ctrl-Alt-Del to PID 1 as SIGINT instead of an immediate reboot.
pub fn ctrl_alt_del_as_signal() -> Result<()> {
    reboot(LINUX_REBOOT_CMD_CAD_OFF)
}
