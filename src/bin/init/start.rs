//! The process entry: `_start` takes the kernel's initial stack, gives
//! rustix the auxiliary vector and hands over to `boot::run`.

use crate::{boot, clock, sched};

core::arch::global_asm!(
    ".globl _start",
    ".pushsection .text._start,\"ax\",@progbits",
    "_start:",
    // Mark the outermost frame, pass the initial stack (argc, argv, envp,
    // auxv) and align the stack as the C ABI requires before the call.
    "xor ebp, ebp",
    "mov rdi, rsp",
    "and rsp, -16",
    "call {entry}",
    "ud2",
    ".popsection",
    entry = sym entry,
);

/// # Safety
/// Called once, from `_start`, with the kernel's initial stack pointer.
unsafe extern "C" fn entry(sp: *const usize) -> ! {
    // SAFETY: the kernel lays out argc, argv[argc], NULL, envp..., NULL, auxv
    // at the initial stack pointer.
    unsafe {
        let argc = *sp;
        let envp = sp.add(1 + argc + 1) as *mut *mut u8;
        // Gives rustix the auxiliary vector (vDSO clocks, page size).
        rustix::param::init(envp);
    }
    // Not PID 1: the payload runs the binary as a command (`/init sched`).
    if rustix::process::getpid() != rustix::process::Pid::INIT {
        // SAFETY: argc is the initial stack's first word and argv[0..argc]
        // follow it, NUL-terminated strings on that stack, which lives as
        // long as the process.
        let (argc, argv) = unsafe { (*sp, sp.add(1) as *const *const core::ffi::c_char) };
        // SAFETY: as above, for each i < argc.
        let args = (0..argc).map(|i| unsafe { core::ffi::CStr::from_ptr(*argv.add(i)) }.to_bytes());
        // SAFETY: fds 1 and 2 are the process's standard streams; one that
        // is closed only fails the write.
        let std = unsafe { [rustix::stdio::stdout(), rustix::stdio::stderr()] };
        sched::client::main(args, std)
    }
    boot::run(clock::now_ns())
}

/// The precompiled `core` has unwinding landing pads that name this symbol;
/// LTO drops them in release builds, unoptimised builds still link them.
/// With `panic = "abort"` nothing ever unwinds, so it is never called.
#[no_mangle]
extern "C" fn rust_eh_personality() {}
