//! Every way a run can end tells the user what happened: init crashes, an
//! initramfs that did not unpack, stray children, stop signals, slow hosts.

mod common;
use common::*;

#[test]
fn an_init_panic_is_reported_with_its_line() {
    let out = sh(&["--append", "guestinit.crash=panic"], "true");
    assert_eq!(code(&out), 253, "{}", stderr(&out));
    assert!(
        stderr(&out).contains("PANIC: crash requested by guestinit.crash=panic at "),
        "{}",
        stderr(&out)
    );
}

#[test]
fn an_init_fault_is_reported_with_its_address() {
    let out = sh(&["--append", "guestinit.crash=segv"], "true");
    assert_eq!(code(&out), 253, "{}", stderr(&out));
    assert!(
        stderr(&out).contains("PANIC: fatal signal SIGSEGV at addr 0x0 ip 0x"),
        "{}",
        stderr(&out)
    );
}

/// Packs busybox, then repacks it without `drop` (unpacked as root, so
/// device nodes too), boots that and returns the run and its COM2 text.
fn run_truncated(name: &str, drop: &str) -> (std::process::Output, String) {
    let dir = scratch(name);
    let whole = dir.join("whole.cpio");
    pack(&whole, &["/bin/busybox", "true"]);
    host_sh(
        &format!(
            "mkdir tree && cd tree && cpio -idm --quiet < ../whole.cpio && rm -r {drop} \
             && find . | cpio -o -H newc --quiet > ../cut.cpio"
        ),
        &dir,
    );
    let com2 = dir.join("com2.log");
    let out = run(
        &[
            "--initramfs",
            dir.join("cut.cpio").to_str().unwrap(),
            "--com2-log",
            com2.to_str().unwrap(),
        ],
        &[],
    );
    (out, std::fs::read_to_string(&com2).unwrap())
}

#[test]
fn a_missing_sentinel_is_fatal_with_the_kernel_log() {
    let (out, com2) = run_truncated("sentinel", ".guestinit-complete");
    assert_eq!(code(&out), 254, "{}", stderr(&out));
    assert!(
        stderr(&out).contains("FATAL: initramfs incomplete"),
        "{}",
        stderr(&out)
    );
    assert!(
        com2.contains("Linux version"),
        "the kernel log's first line reaches COM2"
    );
}

#[test]
fn an_archive_cut_before_its_modules_names_the_cut_not_the_port() {
    // No virtio modules, so no port: the cause is still the truncation.
    let (out, com2) = run_truncated("no-modules", ".guestinit-complete modules");
    assert_eq!(code(&out), 254, "{}", stderr(&out));
    assert!(
        stderr(&out).contains("FATAL: initramfs incomplete"),
        "{}",
        stderr(&out)
    );
    assert!(
        com2.contains("Linux version"),
        "the kernel log reaches COM2 without a port"
    );
}

#[test]
fn hundreds_of_orphans_leave_no_zombie_and_no_hang() {
    let out = sh(
        &[],
        "i=0; while [ $i -lt 300 ]; do (true &); i=$((i+1)); done; echo spawned; exit 4",
    );
    assert_eq!(code(&out), 4, "{}", stderr(&out));
    assert_eq!(stdout(&out), "spawned\n");
}

/// The guest's milliseconds at `mark` in a `--timeline` report.
fn mark_ms(report: &str, mark: &str) -> f64 {
    let line = report
        .lines()
        .find(|l| l.trim_start().starts_with(mark))
        .unwrap_or_else(|| panic!("no {mark} mark:\n{report}"));
    line.trim_start()[mark.len()..]
        .split_whitespace()
        .next()
        .and_then(|ms| ms.parse().ok())
        .unwrap_or_else(|| panic!("unreadable {mark} mark: {line}"))
}

#[test]
fn a_background_child_holding_stdout_is_killed_after_the_grace() {
    let com2 = scratch("faults-held-stdout").join("com2.log");
    let out = sh(
        &["--timeline", "--com2-log", com2.to_str().unwrap()],
        "sleep 1000 & echo left-behind; exit 6",
    );
    assert_eq!(code(&out), 6, "{}", stderr(&out));
    assert_eq!(stdout(&out), "left-behind\n");
    // The init's own clock: output drained after the 2 s grace (the group is
    // killed then), not when the 1000 s sleeper would have ended; the upper
    // bound leaves a starved vCPU room.
    let err = stderr(&out);
    let held = mark_ms(&err, "output drained") - mark_ms(&err, "payload exit");
    assert!(
        (2000.0..30_000.0).contains(&held),
        "drained {held} ms after the exit"
    );
    // And the grace's kill is what ended it, as the init says on COM2.
    let com2 = std::fs::read_to_string(&com2).unwrap();
    assert!(
        com2.contains(
            "guestinit: payload exited but its output is still open after 2000 ms: \
             killing its process group"
        ),
        "{com2}"
    );
}

#[test]
fn sigterm_to_pid_1_stops_the_payload_in_order() {
    let out = sh(&[], "echo before; kill -TERM 1; sleep 100; echo never");
    assert_eq!(code(&out), 128 + 15, "{}", stderr(&out));
    assert_eq!(stdout(&out), "before\n");
}

#[test]
fn a_payload_that_ignores_sigterm_is_killed_after_the_grace() {
    let out = sh(
        &[],
        "trap '' TERM; echo stubborn; kill -TERM 1; sleep 100; echo never",
    );
    assert_eq!(code(&out), 128 + 9, "{}", stderr(&out));
    assert_eq!(stdout(&out), "stubborn\n");
}

#[test]
fn a_slow_host_loses_no_byte() {
    // 0.9 MB read at 64 KiB/s: the guest must hold back, not drop. Most of
    // it is still in flight when the payload exits (without the EACK
    // handshake half of it was lost at power-off).
    let out = sh(&["--throttle-bulk", "64"], "seq 1 150000");
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let expected: String = (1..=150_000).map(|i| format!("{i}\n")).collect();
    assert_eq!(out.stdout.len(), expected.len());
    assert_eq!(
        crc32fast::hash(&out.stdout),
        crc32fast::hash(expected.as_bytes())
    );
}

/// docs/BENCHMARKS.md: with this kernel and a busybox payload, the kernel
/// reaches /init at 74 MiB and guestinit runs the payload at 74 MiB too.
const MEMORY_FLOOR_MIB: u32 = 74;

#[test]
fn a_payload_runs_just_above_the_memory_floor() {
    // The floor was measured with the 64 KiB release init; an unoptimised
    // one (plain `cargo test`) makes the archive, and so the floor, larger.
    let init = std::fs::metadata(guestinit().with_file_name("init"))
        .unwrap()
        .len();
    let extra_mib = (init / (1024 * 1024)) as u32 * 2;
    let memory = (MEMORY_FLOOR_MIB + 4 + extra_mib).to_string();
    let out = sh(&["--memory", &memory], "echo fits; exit 9");
    assert_eq!(code(&out), 9, "{}", stderr(&out));
    assert_eq!(stdout(&out), "fits\n");
}

#[test]
fn a_kernel_that_panics_before_init_is_reported_with_the_console_tail() {
    // The kernel finds no such init, then no root filesystem, and panics.
    let out = sh(&["--append", "rdinit=/nope"], "true");
    assert_eq!(code(&out), 251, "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("VM ended without an exit code"), "{err}");
    assert!(
        err.contains("Kernel Offset"),
        "the COM1 tail shows the panic's end:\n{err}"
    );
}

/// A kernel that panics in its early setup, before its console and before
/// `panic=` (here: `mem=` leaves no room to place a 100 MiB initrd), spins
/// instead of rebooting. It used to do so in silence until --timeout (252);
/// the early console shows its panic and the host ends the run on it.
#[test]
fn a_kernel_that_panics_before_its_console_is_reported_in_seconds() {
    require_vm_prerequisites();
    let dir = scratch("early-panic");
    let big = dir.join("big.bin");
    std::fs::File::create(&big)
        .and_then(|f| f.set_len(100 << 20))
        .unwrap();
    let started = std::time::Instant::now();
    let out = std::process::Command::new(guestinit())
        // Cold: a warm machine boots its small base archive, and the init
        // refuses the include it cannot unpack instead (FATAL, ENOSPC).
        .args([
            "run",
            "--cold",
            "--timeout",
            "60",
            "--memory",
            "512",
            "--include",
        ])
        .arg(&big)
        .args(["--append", "mem=110M", "--", "/bin/busybox", "true"])
        .output()
        .unwrap();
    let took = started.elapsed();
    let _ = std::fs::remove_dir_all(&dir);
    let err = stderr(&out);
    eprintln!("{err}took {took:?}");
    assert_eq!(code(&out), 251, "{err}");
    assert!(
        err.contains("never reached the init (no frame arrived): Kernel panic - not syncing: Cannot find place for new RAMDISK"),
        "{err}"
    );
    assert!(took < std::time::Duration::from_secs(40), "{took:?}");
}

#[test]
fn the_timeout_kills_the_vm_and_says_so() {
    require_vm_prerequisites();
    let out = std::process::Command::new(guestinit())
        .args([
            "run",
            "--timeout",
            "30",
            "--",
            "/bin/busybox",
            "sleep",
            "1000",
        ])
        .output()
        .unwrap();
    assert_eq!(code(&out), 252, "{}", stderr(&out));
    assert!(
        stderr(&out).contains("timeout: the VM ran longer than 30 s"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn ctrl_alt_del_reaches_the_payload_as_sigterm() {
    // Ctrl-Alt-Del arrives at PID 1 as SIGINT; the payload gets SIGTERM.
    let out = sh(
        &[],
        "trap 'echo got TERM; exit 7' TERM; kill -INT 1; sleep 1000 & wait",
    );
    assert_eq!(code(&out), 7, "{}", stderr(&out));
    assert_eq!(stdout(&out), "got TERM\n");
}
