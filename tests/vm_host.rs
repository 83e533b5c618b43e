//! The host tool under real use: slow readers, guests that cannot power
//! off, stop signals, long temp paths, and a word for every way a run ends.

mod common;
use common::*;

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

/// `guestinit run` with piped stdout and stderr, not yet waited for.
fn spawn(vm_args: &[&str], script: &str, tmpdir: Option<&std::path::Path>) -> Child {
    require_vm_prerequisites();
    let mut cmd = Command::new(guestinit());
    cmd.arg("run")
        .args(vm_args)
        .args(["--", "/bin/busybox", "sh", "-c", script])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(dir) = tmpdir {
        cmd.env("TMPDIR", dir);
    }
    cmd.spawn().expect("start guestinit")
}

/// Reads a child's stream to its end on a thread of its own.
fn collect(stream: impl Read + Send + 'static) -> thread::JoinHandle<Vec<u8>> {
    thread::spawn(move || {
        let mut all = Vec::new();
        let mut stream = stream;
        stream.read_to_end(&mut all).unwrap();
        all
    })
}

/// Collects `stream` as `collect` does, and makes the file `go` once a
/// line holding `said` has come, or once `limit` has passed without one.
fn release_on(
    stream: impl Read + Send + 'static,
    said: &'static str,
    go: std::path::PathBuf,
    limit: Duration,
) -> thread::JoinHandle<Vec<u8>> {
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    let gate = go.clone();
    thread::spawn(move || {
        let _ = rx.recv_timeout(limit);
        std::fs::write(&gate, b"").unwrap();
    });
    thread::spawn(move || {
        let mut all = Vec::new();
        let mut lines = BufReader::new(stream);
        let mut line = Vec::new();
        while lines.read_until(b'\n', &mut line).unwrap() > 0 {
            if String::from_utf8_lossy(&line).contains(said) {
                let _ = tx.send(());
            }
            all.append(&mut line);
        }
        // The run ended without it: free the reader all the same.
        let _ = tx.send(());
        all
    })
}

/// Waits for `child` at most `limit`; kills it (and says so) past that.
fn wait_at_most(child: &mut Child, limit: Duration) -> Option<i32> {
    let until = Instant::now() + limit;
    while Instant::now() < until {
        if let Some(status) = child.try_wait().unwrap() {
            return status.code();
        }
        thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
    None
}

/// The pids whose parent is `parent`.
fn children_of(parent: u32) -> Vec<u32> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // Fields after the command's closing parenthesis: state, ppid, ...
        let after = &stat[stat.rfind(')').unwrap() + 2..];
        let ppid: u32 = after.split(' ').nth(1).unwrap().parse().unwrap();
        if ppid == parent {
            found.push(pid);
        }
    }
    found
}

/// Whether `pid` still runs (a zombie does not count).
fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .is_ok_and(|s| !s[s.rfind(')').unwrap() + 2..].starts_with('Z'))
}

fn gone_within(pid: u32, limit: Duration) -> bool {
    let until = Instant::now() + limit;
    while Instant::now() < until {
        if !alive(pid) {
            return true;
        }
        thread::sleep(Duration::from_millis(50));
    }
    false
}

fn expected_seq(n: u32) -> Vec<u8> {
    (1..=n)
        .map(|i| format!("{i}\n"))
        .collect::<String>()
        .into_bytes()
}

#[test]
fn a_downstream_reader_stalled_for_40_s_loses_nothing() {
    let go = scratch("stalled-reader").join("go");
    let mut child = spawn(
        &["--timeout", VM_TIMEOUT_SECS],
        "seq 1 50000; echo seq-done >&2; exit 3",
        None,
    );
    let err = release_on(
        child.stderr.take().unwrap(),
        "seq-done",
        go.clone(),
        Duration::from_secs(240),
    );
    // Nobody reads stdout for 40 s after the payload's end, however long
    // the boot took: longer than the guest's 30 s EACK wait.
    while !go.exists() {
        thread::sleep(Duration::from_millis(50));
    }
    thread::sleep(Duration::from_secs(40));
    let out = collect(child.stdout.take().unwrap());
    let code = wait_at_most(&mut child, Duration::from_secs(120));
    let (out, err) = (out.join().unwrap(), err.join().unwrap());
    let err = String::from_utf8_lossy(&err);
    assert_eq!(code, Some(3), "{err}");
    assert_eq!(out.len(), expected_seq(50000).len(), "{err}");
    assert!(out == expected_seq(50000));
    assert!(err.contains("seq-done\n"), "{err}");
}

#[test]
fn the_timeout_holds_while_stdout_is_blocked() {
    // 1.2 MB that nobody reads: the host is stuck on its stdout, not the VM.
    let mut child = spawn(&["--timeout", "20"], "seq 1 200000; exit 0", None);
    let err = collect(child.stderr.take().unwrap());
    let started = Instant::now();
    let code = wait_at_most(&mut child, Duration::from_secs(70));
    let took = started.elapsed();
    let err = String::from_utf8_lossy(&err.join().unwrap()).into_owned();
    assert_eq!(code, Some(252), "{err}");
    assert!(took < Duration::from_secs(35), "took {took:?}");
    assert!(err.contains("longer than 20 s"), "{err}");
}

#[test]
fn a_guest_that_cannot_power_off_still_gives_the_payloads_code() {
    let started = Instant::now();
    let mut child = spawn(
        &["--timeout", "120", "--append", "acpi=off"],
        "echo hi; exit 5",
        None,
    );
    let err = collect(child.stderr.take().unwrap());
    let out = collect(child.stdout.take().unwrap());
    let code = wait_at_most(&mut child, Duration::from_secs(150));
    let err = String::from_utf8_lossy(&err.join().unwrap()).into_owned();
    assert_eq!(code, Some(5), "{err}");
    assert_eq!(out.join().unwrap(), b"hi\n");
    assert!(started.elapsed() < Duration::from_secs(60), "{err}");
}

#[test]
fn a_com2_log_on_stderr_does_not_hang() {
    let mut child = spawn(
        &["--timeout", VM_TIMEOUT_SECS, "--com2-log", "/dev/stderr"],
        "echo hello-com2 > /dev/ttyS1; exit 4",
        None,
    );
    let err = collect(child.stderr.take().unwrap());
    let out = collect(child.stdout.take().unwrap());
    let code = wait_at_most(&mut child, Duration::from_secs(90));
    let err = String::from_utf8_lossy(&err.join().unwrap()).into_owned();
    out.join().unwrap();
    assert_eq!(code, Some(4), "{err}");
    assert!(err.contains("hello-com2"), "COM2 went to the log: {err}");
}

#[test]
fn a_long_tmpdir_does_not_break_run() {
    let tmp = scratch("long-tmpdir").join("d".repeat(120));
    std::fs::create_dir_all(&tmp).unwrap();
    let mut child = spawn(
        &["--timeout", VM_TIMEOUT_SECS],
        "echo fits; exit 6",
        Some(&tmp),
    );
    let err = collect(child.stderr.take().unwrap());
    let out = collect(child.stdout.take().unwrap());
    let code = wait_at_most(&mut child, Duration::from_secs(120));
    let err = String::from_utf8_lossy(&err.join().unwrap()).into_owned();
    assert_eq!(code, Some(6), "{err}");
    assert_eq!(out.join().unwrap(), b"fits\n");
    assert_eq!(
        std::fs::read_dir(&tmp).unwrap().count(),
        0,
        "nothing left in TMPDIR"
    );
}

/// Boots `script` (which prints `before` first), waits for that line, then
/// returns the running child, its QEMU's pid and the stdout reader.
type Booted = (
    Child,
    u32,
    thread::JoinHandle<Vec<u8>>,
    thread::JoinHandle<Vec<u8>>,
);

fn boot_until_before(script: &str, tmpdir: &std::path::Path, own_group: bool) -> Booted {
    boot_with_until_before(&[], script, tmpdir, own_group)
}

/// `run` with `vm_args` until the payload printed `before`: the host, its
/// QEMU's pid, and their stdout and stderr being collected.
fn boot_with_until_before(
    vm_args: &[&str],
    script: &str,
    tmpdir: &std::path::Path,
    own_group: bool,
) -> Booted {
    require_vm_prerequisites();
    let mut cmd = Command::new(guestinit());
    cmd.args(["run", "--timeout", VM_TIMEOUT_SECS])
        .args(vm_args)
        .args(["--", "/bin/busybox", "sh", "-c", script])
        .env("TMPDIR", tmpdir)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if own_group {
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
    }
    let mut child = cmd.spawn().unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    assert_eq!(line, "before\n");
    let qemu = children_of(child.id());
    assert_eq!(qemu.len(), 1, "one QEMU child: {qemu:?}");
    let err = collect(child.stderr.take().unwrap());
    (child, qemu[0], collect(stdout), err)
}

fn kill(pid: i32, signal: &str) {
    let status = Command::new("kill")
        .args([&format!("-{signal}"), "--", &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

/// A stop signal to the host: the guest stops in order, the host exits
/// 128 + signal, and nothing is left behind.
fn stops_in_order(signal: &str, number: i32, to_group: bool) -> Duration {
    let tmp = scratch(&format!("stop-{signal}"));
    let (mut child, qemu, out, err) =
        boot_until_before("echo before; sleep 1000; echo never", &tmp, to_group);
    let sent = Instant::now();
    let target = child.id() as i32;
    // Ctrl-C in a terminal signals the whole foreground process group.
    kill(if to_group { -target } else { target }, signal);
    let code = wait_at_most(&mut child, Duration::from_secs(60));
    let took = sent.elapsed();
    let err = String::from_utf8_lossy(&err.join().unwrap()).into_owned();
    eprintln!("{signal}: host exited {took:?} after the signal\n{err}");
    assert_eq!(code, Some(128 + number), "{err}");
    assert!(err.contains("the guest was stopped in order"), "{err}");
    assert_eq!(out.join().unwrap(), b"", "nothing after `before`");
    assert!(!alive(qemu), "QEMU {qemu} is left running");
    assert_eq!(
        std::fs::read_dir(&tmp).unwrap().count(),
        0,
        "nothing left in TMPDIR"
    );
    took
}

#[test]
fn sigterm_to_the_host_stops_the_guest_in_order() {
    let took = stops_in_order("TERM", 15, false);
    assert!(took < Duration::from_secs(15), "took {took:?}");
}

#[test]
fn sighup_to_the_host_stops_the_guest_in_order() {
    stops_in_order("HUP", 1, false);
}

#[test]
fn ctrl_c_to_the_whole_group_stops_the_guest_in_order() {
    stops_in_order("INT", 2, true);
}

#[test]
fn a_second_signal_kills_qemu_at_once() {
    let tmp = scratch("second-signal");
    // The payload ignores the stop: only the second signal ends the run.
    let (mut child, qemu, _out, err) =
        boot_until_before("trap '' INT TERM; echo before; sleep 1000", &tmp, false);
    let first = Instant::now();
    kill(child.id() as i32, "TERM");
    // Two signals of a kind that the host has not taken yet are one, so
    // TERM goes again every 300 ms until the host has exited.
    let code = loop {
        thread::sleep(Duration::from_millis(300));
        if let Some(status) = child.try_wait().unwrap() {
            break status.code();
        }
        if first.elapsed() > Duration::from_secs(60) {
            let _ = child.kill();
            panic!("the host outlived a minute of TERMs");
        }
        kill(child.id() as i32, "TERM");
    };
    let took = first.elapsed();
    let err = String::from_utf8_lossy(&err.join().unwrap()).into_owned();
    assert_eq!(code, Some(143), "{err}");
    // Killed, not stopped in order (the init's SIGKILL of the payload 5 s
    // after the stop), and before the host's 15 s wait for EXIT could.
    assert!(err.contains("QEMU was killed"), "{err}");
    assert!(took < Duration::from_secs(15), "took {took:?}");
    assert!(!alive(qemu));
    assert_eq!(std::fs::read_dir(&tmp).unwrap().count(), 0);
}

#[test]
fn a_killed_host_takes_its_qemu_along() {
    let tmp = scratch("sigkill");
    let (mut child, qemu, _out, _err) = boot_until_before("echo before; sleep 1000", &tmp, false);
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(
        gone_within(qemu, Duration::from_secs(5)),
        "QEMU {qemu} outlived its host"
    );
    assert_eq!(
        std::fs::read_dir(&tmp).unwrap().count(),
        0,
        "no temporary file outlives a killed host"
    );
}

#[test]
fn a_kernel_panic_shows_its_panic_line() {
    let out = sh(&[], "echo c > /proc/sysrq-trigger; sleep 100");
    assert_eq!(code(&out), 251, "{}", stderr(&out));
    let first = stderr(&out).lines().next().unwrap_or_default().to_owned();
    assert_eq!(
        first,
        "guestinit: VM ended without an exit code: Kernel panic - not syncing: sysrq triggered crash"
    );
}

#[test]
fn a_vm_too_small_to_reach_the_init_says_so() {
    let out = sh(&["--memory", "64"], "true");
    assert_eq!(code(&out), 251, "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("the kernel never reached the init"), "{err}");
    assert!(err.contains("more memory than 64 MiB"), "{err}");
}

#[test]
fn a_signal_death_names_the_signal() {
    let out = sh(&[], "kill -SEGV $$");
    assert_eq!(code(&out), 128 + 11, "{}", stderr(&out));
    assert!(
        stderr(&out).contains("guestinit: the payload was killed by SIGSEGV"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn an_oom_kill_of_the_payload_is_said() {
    // The shell holds 200 MB of `a`s in a 128 MiB VM.
    let out = sh(
        &["--memory", "128"],
        "x=$(head -c 200000000 /dev/zero | tr '\\0' a); echo survived",
    );
    assert_eq!(code(&out), 128 + 9, "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("killed by SIGKILL"), "{err}");
    assert!(err.contains("the kernel's OOM killer killed it"), "{err}");
}

#[test]
fn fatal_or_panic_lines_written_by_the_payload_are_not_verdicts() {
    let out = sh(&[], "echo 'FATAL: spoofed' > /dev/ttyS1; exit 0");
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let out = sh(&[], "echo 'PANIC: spoofed' > /dev/ttyS1; exit 0");
    assert_eq!(code(&out), 0, "{}", stderr(&out));
}

/// A field of /proc/PID/status (`Seccomp:` and the like), trimmed.
fn status_field(pid: u32, name: &str) -> String {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix(name))
        .map(|v| v.trim().to_owned())
        .unwrap_or_else(|| panic!("no {name} in /proc/{pid}/status:\n{status}"))
}

/// QEMU's seccomp mode (2: a filter) and argv while the payload runs.
fn qemu_seccomp(vm_args: &[&str], name: &str) -> (String, String, Vec<String>) {
    let tmp = scratch(name);
    let (mut child, qemu, _out, err) =
        boot_with_until_before(vm_args, "echo before; sleep 1000", &tmp, false);
    let seccomp = status_field(qemu, "Seccomp:");
    let no_new_privs = status_field(qemu, "NoNewPrivs:");
    let argv: Vec<String> = std::fs::read(format!("/proc/{qemu}/cmdline"))
        .unwrap()
        .split(|&b| b == 0)
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect();
    kill(child.id() as i32, "TERM");
    let code = wait_at_most(&mut child, Duration::from_secs(60));
    let err = String::from_utf8_lossy(&err.join().unwrap()).into_owned();
    assert_eq!(code, Some(143), "{err}");
    (seccomp, no_new_privs, argv)
}

#[test]
fn qemu_runs_under_its_seccomp_filter_unless_told_not_to() {
    let (seccomp, no_new_privs, argv) = qemu_seccomp(&[], "seccomp-on");
    assert_eq!(seccomp, "2", "QEMU's seccomp mode (2: filter)");
    assert_eq!(no_new_privs, "1");
    let at = argv.iter().position(|a| a == "-sandbox").expect("-sandbox");
    assert_eq!(
        argv[at + 1],
        "on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny"
    );
    let (seccomp, _, argv) = qemu_seccomp(&["--sandbox", "off"], "seccomp-off");
    assert_eq!(seccomp, "0", "--sandbox off");
    assert!(!argv.iter().any(|a| a == "-sandbox"), "{argv:?}");
}

#[test]
fn a_reader_stalled_until_a_4_mib_tmpdir_is_full_gets_stdout_whole_and_in_order() {
    require_vm_prerequisites();
    let tmp = Tmpfs::mount(&scratch("small-tmpdir"), "4m");
    let dir = scratch("small-tmpdir-out");
    let out_file = dir.join("stdout");
    let go = dir.join("go");
    let _ = std::fs::remove_file(&go);
    // The reader takes the first line, then stalls until the host says
    // TMPDIR is full (a fixed stall was too short when a loaded machine's
    // TCG wrote slowly), or for at most 240 s, when the warning assertion
    // below fails.
    let reader_script = "IFS= read -r first; while [ ! -e \"$2\" ]; do sleep 0.2; done; \
         { printf '%s\\n' \"$first\"; exec cat; } > \"$1\"";
    let mut reader = Command::new("sh")
        .args(["-c", reader_script, "reader"])
        .arg(&out_file)
        .arg(&go)
        .stdin(Stdio::piped())
        .spawn()
        .expect("start the reader");
    let mut child = Command::new(guestinit())
        // Cold: the 4 MiB are sized for the whole initramfs that QEMU
        // holds in TMPDIR while the run lasts.
        .args(["run", "--cold", "--timeout", VM_TIMEOUT_SECS, "--"])
        .args(["/bin/busybox", "seq", "1", "2500000"])
        .env("TMPDIR", &tmp.0)
        .env("XDG_CACHE_HOME", shared_cache())
        .stdout(Stdio::from(reader.stdin.take().unwrap()))
        .stderr(Stdio::piped())
        .spawn()
        .expect("start guestinit");
    let err = release_on(
        child.stderr.take().unwrap(),
        "held back",
        go,
        Duration::from_secs(240),
    );
    let code = wait_at_most(&mut child, Duration::from_secs(300));
    let err = String::from_utf8_lossy(&err.join().unwrap()).into_owned();
    let reader_code = wait_at_most(&mut reader, Duration::from_secs(60));
    assert_eq!((code, reader_code), (Some(0), Some(0)), "{err}");
    let out = std::fs::read(&out_file).unwrap();
    let expected = expected_seq(2_500_000);
    assert_eq!(out.len(), expected.len(), "{err}");
    let first_wrong = out.iter().zip(&expected).position(|(a, b)| a != b);
    assert_eq!(first_wrong, None, "out of order from byte {first_wrong:?}");
    assert!(
        err.contains("is full") && err.contains("held back"),
        "the full TMPDIR is said: {err}"
    );
    assert_eq!(
        err.matches("held back").count(),
        1,
        "said once per output: {err}"
    );
}
