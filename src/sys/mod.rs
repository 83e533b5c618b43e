//! The syscalls rustix does not expose, or exposes at a size the init does
//! not pay, hand-rolled on linux-raw-sys: process creation and reaping
//! (clone, execve, wait4 with rusage, exit_group), signal dispositions with a
//! restorer, masks, the alternate stack and signalfd, the kernel log
//! (syslog), the UARTs by x86 port I/O, raw ttys (without rustix's baud
//! table), the boot clock without the vDSO, and an interface's IPv4 setup
//! over rtnetlink (which rustix does not build messages for). One module per kernel
//! subsystem, each a thin safe wrapper; everything else the init does,
//! module loading and reboot included, goes through rustix.

#[cfg(not(all(target_os = "linux", target_arch = "x86_64")))]
compile_error!("guestinit's syscall layer supports x86_64 Linux only");

pub mod clock;
pub mod klog;
pub mod net;
pub mod process;
pub mod random;
mod raw;
pub mod signal;
pub mod tty;
pub mod uart;

pub use rustix::io::Errno;

pub type Result<T> = core::result::Result<T, Errno>;

#[cfg(test)]
mod tests;
