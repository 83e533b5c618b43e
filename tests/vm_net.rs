//! The guest's network: `lo` is up in every run, so a local server
//! answers over 127.0.0.1; the guest has a host name. Boots the real
//! kernel under QEMU (never skipped; see tests/common). Each run carries a
//! marker on its kernel command line, and no QEMU with it may outlive the
//! test.

mod common;

use common::{code, run, sh, stderr, stdout};
use std::time::{Duration, Instant};

/// A kernel parameter only this test's QEMU has on its command line.
fn marker(test: &str) -> String {
    format!("guestinit.test-marker={test}-{}", std::process::id())
}

/// Whether a process whose command line holds `marker` still runs
/// (QEMU's `-append` carries it), waiting up to 5 s for it to go.
fn qemu_left(marker: &str) -> bool {
    let until = Instant::now() + Duration::from_secs(5);
    loop {
        let found = std::fs::read_dir("/proc").unwrap().flatten().any(|entry| {
            let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
            cmdline
                .windows(marker.len())
                .any(|w| w == marker.as_bytes())
        });
        if !found || Instant::now() > until {
            return found;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `sh` with the test's marker appended; asserts that no QEMU is left.
fn sh_marked(test: &str, vm_args: &[&str], script: &str) -> std::process::Output {
    let marker = marker(test);
    let mut args = vm_args.to_vec();
    args.extend(["--append", &marker]);
    let out = sh(&args, script);
    assert!(!qemu_left(&marker), "a QEMU of {test} outlived its run");
    out
}

#[test]
fn a_local_tcp_server_answers_over_127_0_0_1() {
    // Before: "nc: can't connect to remote host (127.0.0.1): Network is unreachable".
    let out = sh_marked(
        "loopback",
        &[],
        "nc -l -p 5000 -e /bin/busybox echo hi-over-lo & sleep 0.5; nc 127.0.0.1 5000; wait",
    );
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(stdout(&out), "hi-over-lo\n", "{}", stderr(&out));
}

#[test]
fn the_guest_is_named_guestinit_or_what_hostname_says() {
    // Before: "(none)".
    let out = sh_marked("hostname", &[], "hostname; cat /proc/sys/kernel/hostname");
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(stdout(&out), "guestinit\nguestinit\n");
    let out = sh_marked("hostname-named", &["--hostname", "vm-1.test"], "hostname");
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(stdout(&out), "vm-1.test\n");
}

#[test]
fn a_hostname_the_guest_cannot_take_is_refused_before_the_boot() {
    let long = "a".repeat(65);
    for (name, why) in [
        ("a_b", "'_' is not allowed"),
        ("a b", "' ' is not allowed"),
        (long.as_str(), "65 bytes: a host name has at most 64"),
        ("", "a host name cannot be empty"),
    ] {
        let started = Instant::now();
        let out = run(&["--hostname", name], &["/bin/true"]);
        assert_eq!(code(&out), 249, "{name:?}: {}", stderr(&out));
        let err = stderr(&out);
        assert!(
            err.contains(&format!("--hostname {name:?}: {why}")),
            "{err}"
        );
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "refused before the boot"
        );
    }
}
