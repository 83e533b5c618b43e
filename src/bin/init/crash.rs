//! The init's own crashes: a panic or a fatal signal writes one `PANIC:` line
//! to COM2 then COM1 by port I/O (no allocation, no locks, no virtio), waits
//! for the UARTs to drain and reboots, so the kernel never sees PID 1 die.
//! A fault signal some process sent with kill is no crash: it is ignored.

use core::fmt::Write;
use guestinit::cell::TakeOnce;
use guestinit::fmt::SliceWriter;
use guestinit::proto;
use guestinit::proto::boot::Crash;
use rustix::system::{reboot, RebootCommand};
use guestinit::sys::signal::{self, Fault, SigSet};
use guestinit::sys::uart::{self, Uart};
use linux_raw_sys::general::{SIGABRT, SIGBUS, SIGFPE, SIGILL, SIGSEGV};

const FATAL_SIGNALS: [(u32, &str); 5] = [
    (SIGSEGV, "SIGSEGV"),
    (SIGBUS, "SIGBUS"),
    (SIGILL, "SIGILL"),
    (SIGFPE, "SIGFPE"),
    (SIGABRT, "SIGABRT"),
];

/// The alternate stack: a fault from stack overflow still gets a handler.
static ALT_STACK: TakeOnce<[u8; 16384]> = TakeOnce::new([0; 16384]);

/// Catches the fatal signals on the alternate stack.
pub fn install() {
    if let Some(stack) = ALT_STACK.take() {
        let _ = signal::set_alt_stack(stack);
    }
    let all = FATAL_SIGNALS
        .iter()
        .fold(SigSet::EMPTY, |s, (n, _)| s.with(*n));
    let _ = signal::on_faults(all, on_fault);
}

fn on_fault(fault: &Fault) {
    if !fault.raised_by_kernel {
        // kill -SEGV 1 from a payload: nothing faulted, nothing to report.
        return;
    }
    let name = FATAL_SIGNALS
        .iter()
        .find(|(n, _)| *n == fault.signo)
        .map_or("signal", |(_, name)| name);
    let mut buf = [0u8; 160];
    let mut w = SliceWriter::new(&mut buf);
    let _ = writeln!(
        w,
        "{}fatal signal {name} at addr {:#x} ip {:#x}",
        proto::prefix::PANIC,
        fault.addr,
        fault.ip
    );
    report_and_reboot(w.written())
}

/// The panic message's buffer: static, so a panic on a nearly exhausted
/// stack still has room to format.
static PANIC_LINE: TakeOnce<[u8; 512]> = TakeOnce::new([0; 512]);

/// The panic handler's body: `PANIC: <message> at <file>:<line>`.
pub fn on_panic(info: &core::panic::PanicInfo<'_>) -> ! {
    let Some(buf) = PANIC_LINE.take() else {
        // Formatting the first panic panicked: say so and go.
        report_and_reboot(b"PANIC: panic while reporting a panic\n")
    };
    let mut w = SliceWriter::new(buf);
    let _ = write!(w, "{}{}", proto::prefix::PANIC, info.message());
    if let Some(at) = info.location() {
        let _ = write!(w, " at {}:{}", at.file(), u64::from(at.line()));
    }
    w.mark_truncation(b"...");
    w.push_bytes(b"\n");
    report_and_reboot(w.written())
}

fn report_and_reboot(line: &[u8]) -> ! {
    uart::write(Uart::Com2, line);
    uart::write(Uart::Com1, line);
    uart::drain(Uart::Com2);
    uart::drain(Uart::Com1);
    // panic=-1 and the VMM's -no-reboot make a restart end the VM.
    let _ = reboot(RebootCommand::Restart);
    guestinit::sys::process::exit_group(1)
}

/// The test hook `guestinit.crash=panic|segv`: proves the paths above.
/// A value the init does not know (`unknown`) is warned of and ignored.
pub fn requested(how: Option<Crash>, unknown: bool) {
    match how {
        Some(Crash::Panic) => panic!("crash requested by guestinit.crash=panic"),
        Some(Crash::Segv) => signal::segfault(),
        None if unknown => crate::console::warning!("unknown guestinit.crash value ignored"),
        None => {}
    }
}
