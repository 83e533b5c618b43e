//! Every child of the host starts with each signal at its default. An
//! ignored signal survives execve, so QEMU would inherit what the host was
//! started with (a background job's SIGQUIT); the host's own handlers
//! (SIGHUP, SIGINT, SIGTERM) are reset by the exec itself.

use linux_raw_sys::general::{kernel_sigaction, kernel_sigset_t};

/// Sets every catchable signal (1..=64 but SIGKILL and SIGSTOP) to
/// SIG_DFL. For a forked child before exec: rt_sigaction(2) only, which is
/// async-signal-safe, and nothing allocated. The raw syscall, not libc's
/// sigaction: glibc refuses its own signals (32, 33), which an exec keeps
/// ignored all the same.
#[allow(unsafe_code, reason = "rt_sigaction: in neither std nor rustix")]
pub fn reset() {
    // SAFETY: all-zero is SIG_DFL with no flags, no restorer and an empty
    // mask, a valid value of this plain C struct.
    let default: kernel_sigaction = unsafe { std::mem::zeroed() };
    for sig in 1..=64 {
        if sig == libc::SIGKILL || sig == libc::SIGSTOP {
            continue;
        }
        // SAFETY: `default` is a valid kernel_sigaction for the duration of
        // the call, the old action is not asked for, and the size is the
        // kernel's sigset's.
        unsafe {
            libc::syscall(
                libc::SYS_rt_sigaction,
                sig,
                &default as *const kernel_sigaction,
                std::ptr::null_mut::<kernel_sigaction>(),
                std::mem::size_of::<kernel_sigset_t>(),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::process::CommandExt;
    use std::process::Command;

    /// The `SigIgn:` mask of /proc/PID/status (bit n-1 for signal n).
    fn ignored(status: &str) -> u64 {
        let line = status
            .lines()
            .find_map(|l| l.strip_prefix("SigIgn:"))
            .unwrap();
        u64::from_str_radix(line.trim(), 16).unwrap()
    }

    fn child_ignores(reset: bool) -> u64 {
        let mut cat = Command::new("/bin/cat");
        cat.arg("/proc/self/status");
        if reset {
            // SAFETY: `reset` makes only async-signal-safe calls.
            #[allow(unsafe_code, reason = "pre_exec, as QEMU's")]
            unsafe {
                cat.pre_exec(|| {
                    super::reset();
                    Ok(())
                });
            }
        }
        let out = cat.output().unwrap();
        assert!(out.status.success());
        ignored(&String::from_utf8(out.stdout).unwrap())
    }

    /// SIG_IGN or SIG_DFL for `sig` in this process.
    #[allow(unsafe_code, reason = "sigaction, as in reset")]
    fn set(sig: i32, handler: libc::sighandler_t) {
        // SAFETY: a zeroed sigaction with a handler of SIG_IGN or SIG_DFL,
        // no flags and an empty mask; nothing else in these tests uses `sig`.
        unsafe {
            let mut act: libc::sigaction = std::mem::zeroed();
            act.sa_sigaction = handler;
            assert_eq!(libc::sigaction(sig, &act, std::ptr::null_mut()), 0);
        }
    }

    #[test]
    fn a_child_starts_with_no_signal_ignored_even_when_the_host_ignores_some() {
        // SIGQUIT, as a background job is started, and the last signal;
        // nothing in this process handles either, so both go back to SIG_DFL.
        let signals = [libc::SIGQUIT, 64];
        let bits = signals.iter().fold(0, |m, s| m | 1 << (s - 1));
        for sig in signals {
            set(sig, libc::SIG_IGN);
        }
        let (plain, reset) = (child_ignores(false), child_ignores(true));
        for sig in signals {
            set(sig, libc::SIG_DFL);
        }
        assert_eq!(plain & bits, bits, "std's spawn passes them on: {plain:#x}");
        assert_eq!(reset, 0, "the child ignores {reset:#x}");
    }
}
