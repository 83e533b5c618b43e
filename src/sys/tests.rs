//! The syscall layer exercised for real on the host: fork, exec, reap.

use super::process::{execve, exit_group, fork, wait4, Child, Exit, Fork, Wait};
use super::signal::{mask, signalfd, signalfd_signo, Mask, SigSet, SIGNALFD_INFO_LEN};
use super::Errno;

/// Forks; the child runs `child` and exits with its result; returns the exit.
fn in_child(child: impl FnOnce() -> i32) -> Exit {
    // SAFETY: the child only makes raw syscalls before exit_group.
    match unsafe { fork() }.unwrap() {
        Fork::Child => exit_group(child()),
        Fork::Parent { pid } => wait4(Child::Pid(pid), Wait::Block).unwrap().unwrap().exit,
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
    let reaped = wait4(Child::Pid(pid), Wait::Block).unwrap().unwrap();
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
    assert_eq!(wait4(Child::Pid(pid), Wait::NoHang).unwrap(), None);
    assert!(wait4(Child::Pid(pid), Wait::Block).unwrap().is_some());
    assert_eq!(wait4(Child::Pid(pid), Wait::NoHang), Err(Errno::CHILD));
}

#[test]
fn signalfd_receives_a_blocked_signal() {
    let usr1 = linux_raw_sys::general::SIGUSR1;
    let exit = in_child(|| {
        let set = SigSet::EMPTY.with(usr1);
        mask(set, Mask::Block).unwrap();
        let fd = signalfd(set).unwrap();
        rustix::process::kill_process(rustix::process::getpid(), rustix::process::Signal::USR1)
            .unwrap();
        let mut record = [0u8; SIGNALFD_INFO_LEN];
        let n = rustix::io::read(&fd, &mut record).unwrap();
        (n == SIGNALFD_INFO_LEN && signalfd_signo(&record) == usr1) as i32
    });
    assert_eq!(exit, Exit::Exited(1));
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

#[test]
fn boottime_agrees_with_rustix_and_never_goes_back() {
    let before = rustix::time::clock_gettime(rustix::time::ClockId::Boottime);
    let ours = super::clock::boottime_ns();
    let after = super::clock::boottime_ns();
    let before_ns = before.tv_sec as u64 * 1_000_000_000 + before.tv_nsec as u64;
    assert!(before_ns > 0 && before_ns <= ours && ours <= after);
}

#[test]
fn make_raw_sets_what_cfmakeraw_sets() {
    use rustix::fd::AsFd;
    use rustix::pty::{ioctl_tiocgptpeer, openpt, unlockpt, OpenptFlags};
    // Close-on-exec: the fork tests beside this one exec shells.
    let flags = OpenptFlags::RDWR | OpenptFlags::CLOEXEC;
    let master = openpt(flags).unwrap();
    unlockpt(&master).unwrap();
    let slave = ioctl_tiocgptpeer(&master, flags).unwrap();
    let mut want = rustix::termios::tcgetattr(&slave).unwrap();
    want.make_raw();
    super::tty::make_raw(slave.as_fd()).unwrap();
    let got = rustix::termios::tcgetattr(&slave).unwrap();
    assert_eq!(got.input_modes, want.input_modes);
    assert_eq!(got.output_modes, want.output_modes);
    assert_eq!(got.control_modes, want.control_modes);
    assert_eq!(got.local_modes, want.local_modes);
    use rustix::termios::SpecialCodeIndex as Cc;
    assert_eq!(
        (got.special_codes[Cc::VMIN], got.special_codes[Cc::VTIME]),
        (1, 0)
    );
}

#[test]
fn fd_is_open_tells_an_open_descriptor_from_a_closed_one() {
    use super::process::fd_is_open;
    use std::os::fd::AsRawFd;
    let file = std::fs::File::open("/dev/null").unwrap();
    let raw = file.as_raw_fd();
    assert!(fd_is_open(raw));
    drop(file);
    assert!(!fd_is_open(raw));
}

#[test]
fn reset_dispositions_clears_every_ignored_signal_an_exec_would_keep() {
    use super::signal::{reset_dispositions, set_disposition, Disposition};
    // Exit 0: none ignored after the exec. Without the reset, the same
    // script sees SIGHUP and signal 64 ignored (exit 1).
    let script = b"grep -q '^SigIgn:[[:space:]]*0*$' /proc/self/status\0";
    let exec_after = |reset: bool| {
        in_child(|| {
            for sig in [linux_raw_sys::general::SIGHUP, 64] {
                set_disposition(sig, Disposition::Ignore).unwrap();
            }
            if reset {
                reset_dispositions();
            }
            exec_sh(script).raw_os_error()
        })
    };
    assert_eq!(exec_after(false), Exit::Exited(1));
    assert_eq!(exec_after(true), Exit::Exited(0));
    // SIGKILL and SIGSTOP are the kernel's alone; the reset skips them.
    let refused = in_child(|| {
        let kill = set_disposition(linux_raw_sys::general::SIGKILL, Disposition::Default);
        (kill == Err(Errno::INVAL)) as i32
    });
    assert_eq!(refused, Exit::Exited(1));
}

/// In a network namespace of its own (a child's), as the init finds its
/// own at boot: only `lo`, down. Without root, in a user namespace too,
/// which gives the child CAP_NET_ADMIN there.
fn in_new_netns(child: impl FnOnce() -> bool) -> Exit {
    use rustix::thread::{unshare_unsafe, UnshareFlags};
    in_child(|| {
        // SAFETY: neither flag unshares the descriptor table; the forked
        // child has one thread.
        let unshared = unsafe {
            unshare_unsafe(UnshareFlags::NEWNET)
                .or_else(|_| unshare_unsafe(UnshareFlags::NEWUSER | UnshareFlags::NEWNET))
        };
        (unshared.is_ok() && child()) as i32
    })
}

/// The source address the routes pick towards `to` (a UDP connect sends
/// nothing).
fn source_towards(to: [u8; 4]) -> Option<[u8; 4]> {
    use rustix::net::{connect, getsockname, socket, AddressFamily, SocketAddrV4, SocketType};
    let socket = socket(AddressFamily::INET, SocketType::DGRAM, None).ok()?;
    connect(&socket, &SocketAddrV4::new(to.into(), 53)).ok()?;
    let local = SocketAddrV4::try_from(getsockname(&socket).ok()?).ok()?;
    Some(local.ip().octets())
}

#[test]
fn rtnetlink_brings_lo_up_and_routes_through_a_gateway() {
    use super::net::Rtnl;
    let exit = in_new_netns(|| {
        let rtnl = Rtnl::open().unwrap();
        let lo = rtnl.index(b"lo").unwrap();
        // "Network is unreachable" while lo is down, as a payload saw it.
        let down = source_towards([127, 0, 0, 1]).is_none();
        rtnl.set_up(lo).unwrap();
        let up = source_towards([127, 0, 0, 1]) == Some([127, 0, 0, 1]);
        // No route anywhere yet; then the address's subnet and the default.
        let unroutable = source_towards([192, 0, 2, 1]).is_none();
        rtnl.add_address(lo, [10, 0, 2, 15], 24).unwrap();
        rtnl.add_default_route([10, 0, 2, 2]).unwrap();
        let routed = source_towards([192, 0, 2, 1]) == Some([10, 0, 2, 15]);
        lo == 1 && down && up && unroutable && routed
    });
    assert_eq!(exit, Exit::Exited(1));
}

#[test]
fn rtnetlink_says_what_the_kernel_refused() {
    use super::net::Rtnl;
    let exit = in_new_netns(|| {
        let rtnl = Rtnl::open().unwrap();
        let no_device = rtnl.index(b"eth0") == Err(Errno::NODEV);
        // A gateway no route reaches; an address twice; an interface that is not.
        let unreachable = rtnl.add_default_route([10, 0, 2, 2]) == Err(Errno::NETUNREACH);
        rtnl.add_address(1, [10, 0, 2, 15], 24).unwrap();
        let twice = rtnl.add_address(1, [10, 0, 2, 15], 24) == Err(Errno::EXIST);
        let none = rtnl.set_up(999) == Err(Errno::NODEV);
        no_device && unreachable && twice && none
    });
    assert_eq!(exit, Exit::Exited(1));
}
