//! Signal dispositions, masks, the alternate stack and signalfd. rustix keeps
//! sigaction in its private `runtime` module; this one passes the restorer
//! that x86_64 requires (`SA_RESTORER`) itself, for the one handler it sets.

use super::raw::{check, syscall2, syscall4};
use super::Result;
use core::sync::atomic::{AtomicUsize, Ordering};
use linux_raw_sys::general::{
    __NR_rt_sigaction, __NR_rt_sigprocmask, __NR_sigaltstack, __NR_signalfd4,
    __kernel_sighandler_t, kernel_sigaction, kernel_sigset_t, stack_t, _NSIG, SA_ONSTACK,
    SA_RESTORER, SA_SIGINFO, SIGKILL, SIGSTOP, SIG_BLOCK, SIG_SETMASK,
};

/// A set of signals 1..=64.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SigSet(u64);

impl SigSet {
    pub const EMPTY: SigSet = SigSet(0);

    pub const fn with(self, sig: u32) -> SigSet {
        SigSet(self.0 | 1 << (sig - 1))
    }

    pub const fn contains(self, sig: u32) -> bool {
        self.0 & (1 << (sig - 1)) != 0
    }

    fn raw(self) -> kernel_sigset_t {
        kernel_sigset_t { sig: [self.0] }
    }
}

/// The head of the kernel's siginfo: enough to name a fault.
#[repr(C)]
struct SigInfo {
    signo: i32,
    errno: i32,
    code: i32,
    _pad: i32,
    /// For SIGSEGV/SIGBUS/SIGILL/SIGFPE: the faulting address.
    addr: usize,
}

/// Offset of the saved RIP in x86_64's ucontext: uc_flags, uc_link and
/// uc_stack (40 bytes), then gregs[REG_RIP = 16].
const UCONTEXT_RIP: usize = 40 + 16 * 8;

/// A fault signal as its handler sees it.
#[derive(Clone, Copy, Debug)]
pub struct Fault {
    pub signo: u32,
    /// The faulting address (SIGSEGV, SIGBUS, SIGILL, SIGFPE).
    pub addr: usize,
    /// Where the faulting instruction is.
    pub ip: usize,
    /// The kernel raised it (si_code > 0); otherwise a process sent it with
    /// kill or sigqueue, and nothing faulted.
    pub raised_by_kernel: bool,
}

/// What a fault handler is: it may return only for a signal the kernel
/// did not raise (returning from a real fault re-runs the instruction).
pub type FaultHandler = fn(&Fault);

/// The one fault handler, for the trampoline the kernel calls.
static FAULT_HANDLER: AtomicUsize = AtomicUsize::new(0);

/// Runs `handler` for each signal of `signals`, on the alternate stack,
/// with all of them blocked while it runs.
pub fn on_faults(signals: SigSet, handler: FaultHandler) -> Result<()> {
    FAULT_HANDLER.store(handler as *const () as usize, Ordering::Release);
    (1..=64)
        .filter(|&sig| signals.contains(sig))
        .try_for_each(|sig| set_handler(sig, signals))
}

/// The SA_SIGINFO entry point: decodes siginfo and ucontext into a
/// [`Fault`] and calls the installed handler.
unsafe extern "C" fn fault_trampoline(sig: i32, info: *mut SigInfo, ctx: *mut core::ffi::c_void) {
    // SAFETY: the kernel passes valid siginfo and ucontext pointers to an
    // SA_SIGINFO handler.
    let (code, addr, ip) = unsafe {
        (
            (*info).code,
            (*info).addr,
            *(ctx.cast::<u8>().add(UCONTEXT_RIP) as *const usize),
        )
    };
    let fault = Fault {
        signo: sig as u32,
        addr,
        ip,
        raised_by_kernel: code > 0,
    };
    let handler = FAULT_HANDLER.load(Ordering::Acquire);
    if handler != 0 {
        // SAFETY: only `on_faults` stores here, and it stores a FaultHandler.
        let handler = unsafe { core::mem::transmute::<usize, FaultHandler>(handler) };
        handler(&fault);
    }
}

/// Faults now with a real SIGSEGV, as the kernel raises it (crash tests).
pub fn segfault() -> ! {
    // SAFETY: the store to address 0 faults on purpose, in asm so that the
    // compiler assumes nothing of it.
    unsafe { core::arch::asm!("mov byte ptr [0], 0", options(nostack)) };
    unreachable!("the store to address 0 faults")
}

core::arch::global_asm!(
    ".pushsection .text.guestinit_restore_rt,\"ax\",@progbits",
    ".globl guestinit_restore_rt",
    "guestinit_restore_rt:",
    "mov eax, {nr}",
    "syscall",
    "ud2",
    ".popsection",
    nr = const linux_raw_sys::general::__NR_rt_sigreturn,
);

extern "C" {
    /// Returns from a handler through rt_sigreturn; x86_64 has no vDSO
    /// trampoline, so every SA_RESTORER handler needs one.
    fn guestinit_restore_rt();
}

/// rt_sigaction(2): the fault trampoline on the alternate stack, with
/// `mask` blocked while it runs.
fn set_handler(sig: u32, mask: SigSet) -> Result<()> {
    let handler = fault_trampoline as *const () as usize;
    let flags = SA_SIGINFO | SA_ONSTACK | SA_RESTORER;
    sigaction(sig, handler, flags, mask)
}

/// What a signal does when no handler takes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Disposition {
    /// SIG_DFL: the kernel's default action (end, ignore, stop, continue).
    Default,
    /// SIG_IGN: dropped; unlike a handler, this survives execve.
    Ignore,
}

/// rt_sigaction(2) to SIG_DFL or SIG_IGN.
pub fn set_disposition(sig: u32, to: Disposition) -> Result<()> {
    let handler = match to {
        Disposition::Default => 0, // SIG_DFL
        Disposition::Ignore => 1,  // SIG_IGN
    };
    sigaction(sig, handler, 0, SigSet::EMPTY)
}

/// Every signal a process can catch (all but SIGKILL and SIGSTOP) back to
/// SIG_DFL. A child runs this before execve, as tini and catatonit do: the
/// exec resets handlers but keeps ignored signals (`nohup`'s SIGHUP, a
/// background job's SIGINT and SIGQUIT). Raw syscalls only, no allocation,
/// so it is safe in a child forked from a threaded process.
pub fn reset_dispositions() {
    // 1..=64 as a half-open range: no exhaustion flag, a smaller loop.
    for sig in 1.._NSIG + 1 {
        if sig != SIGKILL && sig != SIGSTOP {
            let _ = set_disposition(sig, Disposition::Default);
        }
    }
}

/// rt_sigaction(2) with `handler` as the kernel reads it: SIG_DFL (0),
/// SIG_IGN (1) or a function's address; the old action is not read.
fn sigaction(sig: u32, handler: usize, flags: u32, mask: SigSet) -> Result<()> {
    let act = kernel_sigaction {
        // SAFETY: the field is only a pointer slot the kernel reads: a
        // handler's address, or 0 or 1 (None, and a pointer never called).
        sa_handler_kernel: unsafe { core::mem::transmute::<usize, __kernel_sighandler_t>(handler) },
        sa_flags: flags as _,
        sa_restorer: match flags & SA_RESTORER {
            0 => None,
            _ => Some(guestinit_restore_rt),
        },
        sa_mask: mask.raw(),
    };
    // SAFETY: act is a valid kernel_sigaction; the old action is not read.
    let ret = unsafe {
        syscall4(
            __NR_rt_sigaction,
            sig as usize,
            &act as *const kernel_sigaction as usize,
            0,
            core::mem::size_of::<kernel_sigset_t>(),
        )
    };
    check(ret).map(drop)
}

/// How [`mask`] changes the blocked signals.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mask {
    /// Adds the set to those blocked.
    Block,
    /// Makes the set the whole mask.
    Replace,
}

/// rt_sigprocmask(2).
pub fn mask(set: SigSet, how: Mask) -> Result<()> {
    let how = match how {
        Mask::Block => SIG_BLOCK,
        Mask::Replace => SIG_SETMASK,
    };
    let raw = set.raw();
    // SAFETY: raw is a valid sigset for the duration of the call.
    let ret = unsafe {
        syscall4(
            __NR_rt_sigprocmask,
            how as usize,
            &raw as *const kernel_sigset_t as usize,
            0,
            core::mem::size_of::<kernel_sigset_t>(),
        )
    };
    check(ret).map(drop)
}

/// Blocks every signal (SIGKILL and SIGSTOP stay deliverable, as the
/// kernel wants); the mask it replaced, for [`mask`] to put back.
pub fn block_all() -> Result<SigSet> {
    let all = SigSet(!0).raw();
    let mut old = SigSet::EMPTY.raw();
    // SAFETY: all and old are valid sigsets for the duration of the call;
    // the kernel writes only old.
    let ret = unsafe {
        syscall4(
            __NR_rt_sigprocmask,
            SIG_BLOCK as usize,
            &all as *const kernel_sigset_t as usize,
            &mut old as *mut kernel_sigset_t as usize,
            core::mem::size_of::<kernel_sigset_t>(),
        )
    };
    check(ret).map(|_| SigSet(old.sig[0]))
}

/// Installs `stack` as the alternate signal stack for this thread.
pub fn set_alt_stack(stack: &'static mut [u8]) -> Result<()> {
    let ss = stack_t {
        ss_sp: stack.as_mut_ptr().cast(),
        ss_flags: 0,
        ss_size: stack.len() as _,
    };
    // SAFETY: the stack is 'static and exclusively given to the kernel.
    let ret = unsafe { syscall2(__NR_sigaltstack, &ss as *const stack_t as usize, 0) };
    check(ret).map(drop)
}

/// A signalfd for `set` (which the caller blocks), non-blocking, close-on-exec.
pub fn signalfd(set: SigSet) -> Result<rustix::fd::OwnedFd> {
    let raw = set.raw();
    let flags = rustix::fs::OFlags::NONBLOCK.bits() | rustix::fs::OFlags::CLOEXEC.bits();
    // SAFETY: raw is a valid sigset; -1 asks for a new fd.
    let ret = unsafe {
        syscall4(
            __NR_signalfd4,
            -1isize as usize,
            &raw as *const kernel_sigset_t as usize,
            core::mem::size_of::<kernel_sigset_t>(),
            flags as usize,
        )
    };
    let fd = check(ret)? as i32;
    // SAFETY: the kernel just returned this fd, owned by nobody else.
    Ok(unsafe { <rustix::fd::OwnedFd as rustix::fd::FromRawFd>::from_raw_fd(fd) })
}

/// Bytes of one `struct signalfd_siginfo`.
pub const SIGNALFD_INFO_LEN: usize = 128;

/// The signal number of a `signalfd_siginfo` record read from a signalfd.
pub fn signalfd_signo(record: &[u8; SIGNALFD_INFO_LEN]) -> u32 {
    u32::from_le_bytes([record[0], record[1], record[2], record[3]])
}
