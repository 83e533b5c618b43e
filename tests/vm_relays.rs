//! The relays inside the init's one loop: the kernel trace to COM1 and the
//! host's wake bytes on hvc0 (a debug dump on SIGUSR1, a dump then an
//! orderly stop at the timeout).

mod common;
use common::*;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

#[test]
fn a_trace_marker_line_reaches_the_hosts_trace_file() {
    let dir = scratch("relays-trace");
    let trace = dir.join("trace.txt");
    let out = sh(
        &["--trace", trace.to_str().unwrap()],
        "echo from-the-payload > /sys/kernel/tracing/trace_marker; echo ok",
    );
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let text = std::fs::read_to_string(&trace).unwrap();
    assert!(
        text.lines()
            .any(|l| l.contains("tracing_mark_write: from-the-payload")),
        "{text}"
    );
    assert!(
        !text.contains("Linux version"),
        "console lines stay out: {text}"
    );
}

#[test]
fn sigusr1_asks_the_guest_for_a_sysrq_dump_and_the_run_goes_on() {
    require_vm_prerequisites();
    let dir = scratch("relays-usr1");
    let com1 = dir.join("com1.log");
    let mut child = Command::new(guestinit())
        .args(["run", "--timeout", VM_TIMEOUT_SECS, "--com1-log"])
        .arg(&com1)
        .args([
            "--",
            "/bin/busybox",
            "sh",
            "-c",
            "echo before; sleep 6; echo after",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    assert_eq!(line, "before\n");
    let sent = Command::new("kill")
        .args(["-USR1", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
    line.clear();
    stdout.read_line(&mut line).unwrap();
    let status = child.wait().unwrap();
    assert_eq!(line, "after\n");
    assert_eq!(status.code(), Some(0));
    let console = std::fs::read_to_string(&com1).unwrap().to_lowercase();
    assert!(console.contains("sysrq"), "no SysRq on COM1:\n{console}");
}

#[test]
fn the_timeout_asks_for_a_dump_then_stops_the_payload_in_order() {
    require_vm_prerequisites();
    let script = "trap 'echo stopped in order; exit 9' TERM; echo started; sleep 1000 & wait";
    let out = Command::new(guestinit())
        .args([
            "run",
            "--timeout",
            "20",
            "--",
            "/bin/busybox",
            "sh",
            "-c",
            script,
        ])
        .output()
        .unwrap();
    assert_eq!(code(&out), 252, "{}", stderr(&out));
    assert_eq!(stdout(&out), "started\nstopped in order\n");
    assert!(stderr(&out).contains("debug dump"), "{}", stderr(&out));
}

#[test]
fn a_stats_request_without_a_scheduler_gets_an_error_line() {
    require_vm_prerequisites();
    let socket = scratch("relays-stats").join("stats.sock");
    let mut child = Command::new(guestinit())
        .args(["run", "--timeout", VM_TIMEOUT_SECS, "--stats-socket"])
        .arg(&socket)
        .args(["--", "/bin/busybox", "sleep", "8"])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (reply, _) = stats_request(&socket, std::time::Duration::from_secs(60));
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(0));
    assert_eq!(reply, "{\"errno\":2,\"args\":{}}\n");
    assert!(!socket.exists(), "the socket outlived the run");
}
