//! Signal dispositions, masks, the alternate stack and signalfd. rustix keeps
//! sigaction in its private `runtime` module; this one passes the restorer
//! that x86_64 requires (`SA_RESTORER`) itself.

use super::raw::{check, syscall2, syscall4};
use super::Result;
use linux_raw_sys::general::{
    __NR_rt_sigaction, __NR_rt_sigprocmask, __NR_sigaltstack, __NR_signalfd4, kernel_sigaction,
    kernel_sigset_t, stack_t, SA_ONSTACK, SA_RESTORER, SA_SIGINFO, SIG_BLOCK, SIG_SETMASK,
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

/// A handler taking (signal, siginfo, ucontext), as SA_SIGINFO delivers.
pub type Handler = unsafe extern "C" fn(i32, *mut SigInfo, *mut core::ffi::c_void);

/// The head of the kernel's siginfo: enough to name a fault.
#[repr(C)]
pub struct SigInfo {
    pub signo: i32,
    pub errno: i32,
    pub code: i32,
    _pad: i32,
    /// For SIGSEGV/SIGBUS/SIGILL/SIGFPE: the faulting address.
    pub addr: usize,
}

/// What to do on a signal.
pub enum Action {
    Default,
    Ignore,
    /// Run `Handler` on the alternate stack with these signals blocked.
    Handle(Handler, SigSet),
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

/// rt_sigaction(2).
pub fn set_action(sig: u32, action: Action) -> Result<()> {
    let (handler, flags, mask) = match action {
        Action::Default => (0usize, 0, SigSet::EMPTY),
        Action::Ignore => (1usize, 0, SigSet::EMPTY),
        Action::Handle(h, mask) => (h as usize, SA_SIGINFO | SA_ONSTACK, mask),
    };
    let act = kernel_sigaction {
        // SAFETY: 0 (SIG_DFL), 1 (SIG_IGN) and a handler address are the
        // values the kernel accepts here; the field is only a pointer slot.
        sa_handler_kernel: unsafe {
            core::mem::transmute::<usize, linux_raw_sys::general::__kernel_sighandler_t>(handler)
        },
        sa_flags: (flags | SA_RESTORER) as _,
        sa_restorer: Some(guestinit_restore_rt),
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

/// Adds `set` to the blocked signals (`block`) or makes it the whole mask.
pub fn mask(set: SigSet, block: bool) -> Result<()> {
    let how = if block { SIG_BLOCK } else { SIG_SETMASK };
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
