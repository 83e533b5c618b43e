//! The syscall layer exercised for real on the host: fork, exec, reap.

use super::process::{execve, exit_group, fork, wait4, Child, Exit, Fork};
use super::signal::{mask, signalfd, signalfd_signo, SigSet, SIGNALFD_INFO_LEN};
use super::Errno;

/// Forks; the child runs `child` and exits with its result; returns the exit.
fn in_child(child: impl FnOnce() -> i32) -> Exit {
    // SAFETY: the child only makes raw syscalls before exit_group.
    match unsafe { fork() }.unwrap() {
        Fork::Child => exit_group(child()),
        Fork::Parent { pid } => wait4(Child::Pid(pid), true).unwrap().unwrap().exit,
    }
}

fn exec_sh(script: &[u8]) -> Errno {
    let sh = b"/bin/sh\0";
    let dash_c = b"-c\0";
    let argv = [
        sh.as_ptr(),
        dash_c.as_ptr(),
        script.as_ptr(),
        core::ptr::null(),
    ];
    let envp = [core::ptr::null()];
    // SAFETY: every pointer is NUL-terminated and outlives the call.
    unsafe { execve(sh.as_ptr(), argv.as_ptr(), envp.as_ptr()) }
}

#[test]
fn fork_exec_reap_reports_the_exit_code() {
    let exit = in_child(|| exec_sh(b"exit 3\0").raw_os_error());
    assert_eq!(exit, Exit::Exited(3));
}

#[test]
fn a_signal_death_is_reported_as_such() {
    let exit = in_child(|| exec_sh(b"kill -9 $$\0").raw_os_error());
    assert_eq!(
        exit,
        Exit::Signaled {
            signal: 9,
            core_dumped: false
        }
    );
}

#[test]
fn execve_of_a_missing_file_returns_enoent() {
    let path = b"/nonexistent/guestinit\0";
    let argv = [path.as_ptr(), core::ptr::null()];
    let envp = [core::ptr::null()];
    // SAFETY: NUL-terminated strings and null-terminated arrays.
    let err = unsafe { execve(path.as_ptr(), argv.as_ptr(), envp.as_ptr()) };
    assert_eq!(err, Errno::NOENT);
}

#[test]
fn wait4_reports_resource_use() {
    // SAFETY: the child only makes raw syscalls before exit_group.
    let pid = match unsafe { fork() }.unwrap() {
        Fork::Child => exit_group(
            exec_sh(b"i=0; while [ $i -lt 20000 ]; do i=$((i+1)); done\0").raw_os_error(),
        ),
        Fork::Parent { pid } => pid,
    };
    let reaped = wait4(Child::Pid(pid), true).unwrap().unwrap();
    assert_eq!(reaped.pid, pid);
    assert_eq!(reaped.exit, Exit::Exited(0));
    assert!(reaped.usage.max_rss_kib > 0, "{:?}", reaped.usage);
    assert!(
        reaped.usage.user_us + reaped.usage.system_us > 0,
        "{:?}",
        reaped.usage
    );
}

#[test]
fn wait4_without_block_returns_none_while_the_child_runs() {
    // SAFETY: the child only makes raw syscalls before exit_group.
    let pid = match unsafe { fork() }.unwrap() {
        Fork::Child => exit_group(exec_sh(b"sleep 1\0").raw_os_error()),
        Fork::Parent { pid } => pid,
    };
    assert_eq!(wait4(Child::Pid(pid), false).unwrap(), None);
    assert!(wait4(Child::Pid(pid), true).unwrap().is_some());
    assert_eq!(wait4(Child::Pid(pid), false), Err(Errno::CHILD));
}

#[test]
fn signalfd_receives_a_blocked_signal() {
    let usr1 = linux_raw_sys::general::SIGUSR1;
    let exit = in_child(|| {
        let set = SigSet::EMPTY.with(usr1);
        mask(set, true).unwrap();
        let fd = signalfd(set).unwrap();
        rustix::process::kill_process(rustix::process::getpid(), rustix::process::Signal::USR1)
            .unwrap();
        let mut record = [0u8; SIGNALFD_INFO_LEN];
        let n = rustix::io::read(&fd, &mut record).unwrap();
        (n == SIGNALFD_INFO_LEN && signalfd_signo(&record) == usr1) as i32
    });
    assert_eq!(exit, Exit::Exited(1));
}

/// What finit_module must answer for a file that is no module, given the
/// host's kernel and our capabilities; checked in the kernel's order.
fn finit_errno_here() -> Errno {
    const CAP_SYS_MODULE: u32 = 16;
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let cap_eff = status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .map(|hex| u64::from_str_radix(hex.trim(), 16).unwrap())
        .unwrap();
    let disabled = std::fs::read_to_string("/proc/sys/kernel/modules_disabled");
    if !std::path::Path::new("/proc/modules").exists() {
        Errno::NOSYS // CONFIG_MODULES=n
    } else if cap_eff & (1 << CAP_SYS_MODULE) == 0 || disabled.is_ok_and(|d| d.trim() == "1") {
        Errno::PERM
    } else {
        Errno::INVAL // procfs files report size 0, which kernel_read_file refuses
    }
}

#[test]
fn finit_module_rejects_a_file_that_is_no_module() {
    let file = rustix::fs::open(
        "/proc/self/stat",
        rustix::fs::OFlags::RDONLY,
        rustix::fs::Mode::empty(),
    )
    .unwrap();
    assert_eq!(
        super::module::finit_module(&file, 0),
        Err(finit_errno_here())
    );
}

#[test]
fn reading_the_kernel_log_into_no_room_consumes_nothing() {
    // Containers may forbid syslog(2); otherwise an empty buffer reads 0
    // bytes (the VM tests read the log for real).
    match super::klog::read_unread(&mut []) {
        Ok(n) => assert_eq!(n, 0),
        Err(e) => assert!(e == Errno::PERM || e == Errno::ACCESS, "{e:?}"),
    }
}
