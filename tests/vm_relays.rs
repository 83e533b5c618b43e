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

/// A payload that writes `n` numbered trace_marker lines.
const MARKERS: &str = "i=0; while [ $i -lt 3000 ]; do echo \"marker-$i\" > \
                       /sys/kernel/tracing/trace_marker; i=$((i+1)); done; echo ok";

#[test]
fn three_thousand_trace_markers_all_reach_the_trace_file_in_order() {
    let dir = scratch("relays-trace-3000");
    let trace = dir.join("trace.txt");
    let out = sh(&["--trace", trace.to_str().unwrap()], MARKERS);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let text = std::fs::read_to_string(&trace).unwrap();
    // The numbers, in order (a console line may land inside a trace line:
    // both share COM1, as in ktstr).
    let markers: Vec<u32> = text
        .lines()
        .filter_map(|l| l.split("tracing_mark_write: marker-").nth(1))
        .map(|n| {
            n.bytes()
                .take_while(u8::is_ascii_digit)
                .fold(0, |v, d| v * 10 + u32::from(d - b'0'))
        })
        .collect();
    let gaps: Vec<_> = markers
        .windows(2)
        .filter(|w| w[1] != w[0] + 1)
        .take(5)
        .collect();
    assert!(
        markers.len() == 3000 && gaps.is_empty(),
        "{} markers, gaps {gaps:?}",
        markers.len()
    );
    assert!(!stderr(&out).contains("overran"), "{}", stderr(&out));
}

/// A trace that outgrows COM1 whatever the machine's speed: with the
/// interrupt events on, every few bytes COM1 carries raise an interrupt
/// that traces two lines of some 60 bytes, so relaying the trace makes more
/// of it than it moves, and a 4 KiB buffer must overrun. The events go off
/// before the last marker, which must still arrive after the loss.
const FLOOD: &str = "t=/sys/kernel/tracing; \
                     echo 1 > $t/events/irq/irq_handler_entry/enable; \
                     echo 1 > $t/events/irq/irq_handler_exit/enable; \
                     echo seed > $t/trace_marker; sleep 2; \
                     echo 0 > $t/events/irq/irq_handler_entry/enable; \
                     echo 0 > $t/events/irq/irq_handler_exit/enable; \
                     echo after-the-loss > $t/trace_marker; sleep 1; echo ok";

#[test]
fn events_the_kernel_lost_are_marked_in_the_trace_and_counted() {
    let dir = scratch("relays-trace-lost");
    let trace = dir.join("trace.txt");
    // A 4 KiB buffer (the user's --append overrides the host's size).
    let out = sh(
        &[
            "--trace",
            trace.to_str().unwrap(),
            "--append",
            "guestinit.trace_kb=4",
        ],
        FLOOD,
    );
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let text = std::fs::read_to_string(&trace).unwrap();
    let marked: u64 = text
        .lines()
        .filter_map(|l| {
            l.split("[LOST ")
                .nth(1)?
                .strip_suffix(" EVENTS]")?
                .parse::<u64>()
                .ok()
        })
        .sum();
    let tail = || text.lines().rev().take(40).collect::<Vec<_>>().join("\n");
    assert!(marked > 0, "no LOST line; the trace ends:\n{}", tail());
    let err = stderr(&out);
    let said = format!("the kernel's trace buffer overran: {marked} events were lost");
    assert!(err.contains(&said), "{err}");
    // The relay goes on after a loss: the last marker follows every LOST line.
    let last_lost = text.rfind("[LOST ").unwrap();
    assert!(
        text[last_lost..].contains("tracing_mark_write: after-the-loss"),
        "the marker after the flood is missing; the trace ends:\n{}",
        tail()
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
            // It goes on once the dump is in the kernel's log, however
            // long the host takes to ask: no fixed sleep to outlast.
            "echo before; until dmesg | grep -qi sysrq; do sleep 0.1; done; echo after",
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
    // Counted from QEMU's start, so the boot is in it: 45 s leave a boot
    // far slower than a loaded machine's 18 s time to start the payload.
    let out = Command::new(guestinit())
        .args([
            "run",
            "--timeout",
            "45",
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
