//! A real sched_ext scheduler (scx_bpfland, from crates.io) on a kernel with
//! sched_ext (Debian unstable's cloud kernel), both from scripts/setup-tests.sh:
//! attach, a clean run, deaths mid-run, a scheduler that never attaches, a
//! kernel without sched_ext, cgroups and scripts. They never skip: what is
//! missing fails them with the remedy.

mod common;
use common::*;
use std::process::{Command, Output};
use std::time::Instant;

/// A busybox script run under `scheduler` on the sched_ext kernel, 2 vCPUs.
fn sched_sh(scheduler: &str, extra: &[&str], script: &str) -> Output {
    let dir = sid_kernel_dir();
    let (kernel, modules) = (dir.join("vmlinuz"), dir.to_str().unwrap().to_owned());
    let mut args = vec!["--kernel", kernel.to_str().unwrap(), "--modules", &modules];
    args.extend([
        "--cpus",
        "2",
        "--memory",
        "512",
        "-v",
        "--scheduler",
        scheduler,
    ]);
    args.extend(extra);
    sh(&args, script)
}

#[test]
fn bpfland_attaches_the_payload_runs_under_it_and_the_cleanup_kill_is_no_death() {
    let log = scratch("attach").join("sched.log");
    let t0 = Instant::now();
    let out = sched_sh(
        &bpfland(),
        &["--sched-log", log.to_str().unwrap()],
        "cat /sys/kernel/sched_ext/state /sys/kernel/sched_ext/root/ops",
    );
    eprintln!("whole run with the scheduler: {:?}", t0.elapsed());
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let lines: Vec<String> = stdout(&out).lines().map(str::to_owned).collect();
    assert_eq!(lines[0], "enabled");
    assert!(lines[1].starts_with("bpfland"), "{lines:?}");
    let err = stderr(&out);
    assert!(
        err.contains("phase=SchedulerAttached") && err.contains("phase=WorkloadDispatched"),
        "{err}"
    );
    assert!(
        !err.contains("SCDX") && !err.contains("SchedulerDied"),
        "{err}"
    );
    assert!(
        err.contains("SCLG 25 \"===SCHED_OUTPUT_START===\\n\""),
        "{err}"
    );
    assert!(
        err.contains("SCLG 23 \"===SCHED_OUTPUT_END===\\n\""),
        "{err}"
    );
    let log = std::fs::read_to_string(&log).unwrap();
    assert!(
        log.contains("scx_bpfland") && log.contains("EXIT: unregistered from user space"),
        "{log}"
    );
}

#[test]
fn sysrq_s_mid_run_ejects_the_scheduler_and_the_run_fails_naming_sysrq() {
    let out = sched_sh(
        &bpfland(),
        &[],
        "sleep 1; echo S > /proc/sysrq-trigger; sleep 60; echo survived",
    );
    assert_eq!(code(&out), 248, "{}", stderr(&out));
    assert!(
        !stdout(&out).contains("survived"),
        "the payload was stopped"
    );
    let err = stderr(&out);
    assert!(
        err.contains("SCDX") && err.contains("phase=SchedulerDied"),
        "{err}"
    );
    let verdict = err
        .lines()
        .find(|l| l.contains("died during the run"))
        .unwrap_or_default();
    assert!(verdict.contains("sysrq"), "{err}");
}

#[test]
fn a_scheduler_killed_mid_run_fails_the_run() {
    let out = sched_sh(
        &bpfland(),
        &[],
        "sleep 1; kill -9 $(pidof scheduler); sleep 60; echo survived",
    );
    assert_eq!(code(&out), 248, "{}", stderr(&out));
    assert!(!stdout(&out).contains("survived"));
    let err = stderr(&out);
    assert!(err.contains("SCDX 4 code=137"), "{err}");
    assert!(
        err.contains("the scheduler died during the run (killed by signal 9)"),
        "{err}"
    );
}

#[test]
fn a_scheduler_that_never_attaches_stops_the_run_before_the_payload() {
    let dir = scratch("never-attaches");
    let sleeper = dir.join("sleeper");
    executable(&sleeper, "#!/bin/busybox sh\nexec /bin/busybox sleep 600\n");
    let t0 = Instant::now();
    let out = sched_sh(
        sleeper.to_str().unwrap(),
        &["--attach-timeout", "5"],
        "echo payload ran",
    );
    assert_eq!(code(&out), 248, "{}", stderr(&out));
    assert!(
        t0.elapsed().as_secs() < 120,
        "within the bound: {:?}",
        t0.elapsed()
    );
    assert!(!stdout(&out).contains("payload ran"));
    let err = stderr(&out);
    assert!(err.contains("phase=SchedulerNotAttached"), "{err}");
    assert!(
        err.contains("the scheduler did not attach: sched_ext state is `disabled` after 5 s"),
        "{err}"
    );
    assert!(!err.contains("PayloadStarting"), "{err}");
}

#[test]
fn a_scheduler_flooding_its_log_gives_248_the_logs_tail_and_the_whole_log_in_its_file() {
    let dir = scratch("flooding-scheduler");
    let flooder = dir.join("flooder");
    executable(&flooder, "#!/bin/busybox sh\nexec /bin/busybox yes\n");
    let log = dir.join("sched.log");
    let kernel = sid_kernel_dir();
    // No -v: its frame lines would copy the whole flood onto stderr.
    let out = run(
        &[
            "--kernel",
            kernel.join("vmlinuz").to_str().unwrap(),
            "--modules",
            kernel.to_str().unwrap(),
            "--cpus",
            "2",
            "--memory",
            "512",
            "--scheduler",
            flooder.to_str().unwrap(),
            "--attach-timeout",
            "5",
            "--sched-log",
            log.to_str().unwrap(),
        ],
        &["/bin/busybox", "echo", "payload ran"],
    );
    assert_eq!(code(&out), 248, "{}", stderr(&out));
    assert!(!stdout(&out).contains("payload ran"));
    let err = stderr(&out);
    assert!(
        err.contains("the scheduler did not attach: sched_ext state is `disabled` after 5 s"),
        "{err}"
    );
    let tail = format!("last lines of the scheduler's log:\n{}", "  y\n".repeat(10));
    assert!(err.contains(&tail), "{err}");
    // The host keeps only the tail; what came before it is counted, and
    // is in the file, every byte.
    let said = format!(" bytes, in {}\n", log.display());
    let earlier: u64 = err
        .lines()
        .find_map(|l| l.strip_prefix("guestinit: the scheduler's log before its last lines: "))
        .and_then(|l| l.strip_suffix(said.trim_end()))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no count of the earlier bytes: {err}"));
    assert!(earlier > 1 << 20, "a flood, not a trickle: {earlier} bytes");
    let text = std::fs::read(&log).unwrap();
    assert_eq!(
        text.len() as u64,
        earlier + 20,
        "the tail's 10 lines are 20 bytes"
    );
    assert!(text.chunks(2).all(|c| c == b"y\n"), "only yes's lines");
}

#[test]
fn a_kernel_without_sched_ext_fails_in_seconds_naming_it() {
    let t0 = Instant::now();
    let out = sh(
        &["--cpus", "2", "--scheduler", &bpfland()],
        "echo payload ran",
    );
    assert_eq!(code(&out), 248, "{}", stderr(&out));
    assert!(t0.elapsed().as_secs() < 60, "{:?}", t0.elapsed());
    assert!(!stdout(&out).contains("payload ran"));
    let err = stderr(&out);
    assert!(
        err.contains("sched_ext") && err.contains("CONFIG_SCHED_CLASS_EXT"),
        "{err}"
    );
}

#[test]
fn cgroups_are_made_the_scheduler_joins_its_own_and_the_enable_script_ran() {
    let dir = scratch("cgroups");
    let enable = dir.join("enable");
    std::fs::write(
        &enable,
        "# shorter RR slices\necho 50 > /proc/sys/kernel/sched_rr_timeslice_ms\n",
    )
    .unwrap();
    let out = sched_sh(
        &bpfland(),
        &[
            "--workload-cgroup",
            "/ktstr/work",
            "--scheduler-cgroup",
            "/ktstr/sched",
            "--sched-enable",
            enable.to_str().unwrap(),
        ],
        "cd /sys/fs/cgroup; cat cgroup.subtree_control ktstr/cgroup.subtree_control; \
         ls -d ktstr/work; grep -qx $(pidof scheduler) ktstr/sched/cgroup.procs && echo joined; \
         cat /proc/sys/kernel/sched_rr_timeslice_ms",
    );
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let lines: Vec<String> = stdout(&out).lines().map(str::to_owned).collect();
    for controllers in &lines[..2] {
        let words: Vec<&str> = controllers.split_whitespace().collect();
        assert!(
            words.contains(&"cpu") && words.contains(&"cpuset"),
            "{lines:?}"
        );
    }
    assert_eq!(lines[2..], ["ktstr/work", "joined", "50"]);
}

#[test]
fn a_bad_script_is_refused_at_pack_time() {
    let dir = scratch("bad-script");
    let script = dir.join("enable");
    std::fs::write(
        &script,
        "echo 1 > /proc/sys/kernel/x\necho $(reboot) > /x\n",
    )
    .unwrap();
    let out = Command::new(guestinit())
        .args(["pack", "-o", "/dev/null", "--modules"])
        .arg(sid_kernel_dir())
        .args(["--scheduler", &bpfland(), "--sched-enable"])
        .arg(&script)
        .args(["--", "/bin/busybox", "true"])
        .output()
        .unwrap();
    assert_eq!(code(&out), 249, "{}", stderr(&out));
    assert!(
        stderr(&out).contains(&format!("{}:2: ", script.display())),
        "{}",
        stderr(&out)
    );
}

#[test]
fn the_stats_socket_relays_bpflands_own_stats() {
    let socket = scratch("stats").join("stats.sock");
    let dir = sid_kernel_dir();
    let kernel = dir.join("vmlinuz");
    let mut child = std::process::Command::new(guestinit())
        .args(["run", "--timeout", VM_TIMEOUT_SECS, "--kernel"])
        .arg(&kernel)
        .arg("--modules")
        .arg(&dir)
        .args(["--cpus", "2", "--memory", "512", "--scheduler", &bpfland()])
        .arg("--stats-socket")
        .arg(&socket)
        .args(["--", "/bin/busybox", "sleep", "1000"])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Sent before the scheduler serves: held in the port, then relayed.
    let (first, _) = stats_request(&socket, std::time::Duration::from_secs(120));
    assert!(first.starts_with("{\"errno\":0,"), "{first}");
    assert!(first.contains("\"nr_cpus\":2"), "{first}");
    let times: Vec<_> = (0..5)
        .map(|_| stats_request(&socket, std::time::Duration::from_secs(5)).1)
        .collect();
    eprintln!("stats round trips: {times:?}");
    // Clients at once beside an idle one: each gets a reply of its own.
    let idle = std::os::unix::net::UnixStream::connect(&socket).unwrap();
    let at_once: Vec<_> = (0..4)
        .map(|_| {
            let socket = socket.clone();
            std::thread::spawn(move || stats_request(&socket, std::time::Duration::from_secs(5)))
        })
        .collect();
    for client in at_once {
        let (reply, took) = client.join().unwrap();
        assert!(reply.starts_with("{\"errno\":0,"), "{reply}");
        eprintln!("a stats reply beside an idle client in {took:?}");
    }
    drop(idle);
    let _ = child.kill();
    let _ = child.wait();
}

/// ktstr 0.50's VMM names the stats port `ktstr-stats`: the init relays a
/// port of that name too. Here QEMU gets one from --qemu-arg (a socket
/// QEMU listens on) in place of guestinit's own.
#[test]
fn the_init_relays_stats_on_a_port_named_as_ktstr_names_it() {
    let socket = scratch("ktstr-stats").join("qemu.sock");
    let dir = sid_kernel_dir();
    let chardev = format!("socket,id=ks,path={},server=on,wait=off", socket.display());
    let port = [
        "-device",
        "virtio-serial-pci,id=ser1",
        "-chardev",
        &chardev,
        "-device",
        "virtserialport,bus=ser1.0,nr=1,chardev=ks,name=ktstr-stats",
    ];
    let mut child = std::process::Command::new(guestinit())
        .args(["run", "--cold", "--timeout", VM_TIMEOUT_SECS, "--kernel"])
        .arg(dir.join("vmlinuz"))
        .arg("--modules")
        .arg(&dir)
        .args(["--cpus", "2", "--memory", "512", "--scheduler", &bpfland()])
        // What --stats-socket tells the init, without guestinit's own port.
        .args(["--append", "guestinit.stats"])
        .args(port.iter().flat_map(|a| ["--qemu-arg", a]))
        .args(["--", "/bin/busybox", "sleep", "1000"])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let (reply, _) = stats_request(&socket, std::time::Duration::from_secs(120));
    let _ = child.kill();
    let _ = child.wait();
    assert!(reply.starts_with("{\"errno\":0,"), "{reply}");
    assert!(reply.contains("\"nr_cpus\":2"), "{reply}");
}

#[test]
fn the_timeout_takes_a_sched_ext_debug_dump_before_it_stops_the_run() {
    let trace = scratch("timeout-dump").join("trace.txt");
    let dir = sid_kernel_dir();
    let t0 = Instant::now();
    // Counted from QEMU's start: the boot and bpfland's attach must both
    // fit before it, with room for a machine a few times slower.
    let out = std::process::Command::new(guestinit())
        .args(["run", "--timeout", "75", "--kernel"])
        .arg(dir.join("vmlinuz"))
        .arg("--modules")
        .arg(&dir)
        .args(["--cpus", "2", "--memory", "512", "--scheduler", &bpfland()])
        .arg("--trace")
        .arg(&trace)
        .args(["--", "/bin/busybox", "sleep", "1000"])
        .output()
        .unwrap();
    let took = t0.elapsed();
    eprintln!("--timeout 75 to exit: {took:?}");
    assert_eq!(code(&out), 252, "{}", stderr(&out));
    assert!(stderr(&out).contains("debug dump"), "{}", stderr(&out));
    let text = std::fs::read_to_string(&trace).unwrap();
    assert!(text.contains("Debug dump triggered"), "{text}");
}

/// The payload's `/init sched ...`: a stop leaves sched_ext disabled, a
/// start brings it back, restarts are timed, a replacement takes other
/// arguments, bad requests are refused with a reason, and a scheduler
/// stopped on request at the payload's end is no failure.
#[test]
fn the_payload_stops_restarts_and_replaces_the_scheduler_through_the_init() {
    let log = scratch("sched-ctl").join("sched.log");
    let out = sched_sh(
        &bpfland(),
        &["--sched-log", log.to_str().unwrap()],
        "set -e; /init sched status; \
         /init sched stop; echo state=$(cat /sys/kernel/sched_ext/state); \
         /init sched status || echo status=$?; /init sched stop || echo again=$?; \
         /init sched start; echo state=$(cat /sys/kernel/sched_ext/state); \
         for i in 1 2 3; do /init sched start; done; \
         old=$(pidof scheduler); /init sched start --slice-us 2000; new=$(pidof scheduler); \
         [ \"$old\" != \"$new\" ] && echo new pid; /init sched status; \
         echo args=$(tr '\\0' ' ' < /proc/$new/cmdline); \
         /init sched frobnicate || echo bad=$?; /init sched stop now || echo extra=$?; \
         /init sched stop; echo state=$(cat /sys/kernel/sched_ext/state)",
    );
    let (text, err) = (stdout(&out), stderr(&out));
    eprintln!("{text}");
    assert_eq!(code(&out), 0, "{err}");
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines[0].starts_with("running: pid "), "{text}");
    assert!(
        lines[0].contains("sched_ext enabled, ops bpfland"),
        "{text}"
    );
    assert!(
        lines[1].starts_with("detached: pid ") && lines[1].contains("sched_ext disabled"),
        "{text}"
    );
    assert_eq!(lines[2], "state=disabled", "{text}");
    assert_eq!(lines[3], "status=3", "{text}");
    assert_eq!(lines[4], "again=3", "{text}");
    assert!(lines[5].starts_with("attached: pid "), "{text}");
    assert_eq!(lines[6], "state=enabled", "{text}");
    // The restart's time from the request to the attach, as the init
    // measured it (the stop of the running one included).
    let restarts: Vec<u64> = lines[7..10]
        .iter()
        .map(|l| {
            let ms = l
                .split(", ")
                .nth(1)
                .and_then(|t| t.strip_suffix(" ms after the request"));
            ms.and_then(|ms| ms.parse().ok())
                .unwrap_or_else(|| panic!("{l}"))
        })
        .collect();
    eprintln!("restarts, request to attach: {restarts:?} ms");
    assert!(lines[10].starts_with("attached: pid "), "{text}");
    assert_eq!(lines[11], "new pid", "{text}");
    assert!(lines[12].starts_with("running: pid "), "{text}");
    assert_eq!(lines[13], "args=/scheduler --slice-us 2000", "{text}");
    assert_eq!(lines[14], "bad=2", "{text}");
    assert_eq!(lines[15], "extra=2", "{text}");
    assert!(lines[16].starts_with("detached: "), "{text}");
    assert_eq!(lines[17], "state=disabled", "{text}");
    assert!(
        err.contains("refused: not stop, start [ARGS...] or status"),
        "{err}"
    );
    assert!(
        err.contains("refused: stop and status take no arguments"),
        "{err}"
    );
    assert!(err.contains("not running: sched_ext disabled"), "{err}");
    assert!(
        !err.contains("SCDX") && !err.contains("SchedulerDied"),
        "{err}"
    );
    assert_eq!(err.matches("phase=SchedulerAttached").count(), 6, "{err}");
    assert_eq!(err.matches("SCHED_OUTPUT_END").count(), 1, "{err}");
    // Every instance's log is in the one log, each unregistered cleanly.
    let log = std::fs::read_to_string(&log).unwrap();
    assert_eq!(
        log.matches("EXIT: unregistered from user space").count(),
        6,
        "{log}"
    );
}

/// A start on request that fails is answered and leaves no scheduler (no
/// failure of the run by itself); a scheduler started on request and then
/// killed from the payload is a death like any: SCDX 137, the payload
/// stopped, the run 248.
#[test]
fn a_scheduler_restarted_on_request_then_killed_is_a_death() {
    let out = sched_sh(
        &bpfland(),
        &[],
        "/init sched start --no-such-flag; echo failed=$?; /init sched status; echo status=$?; \
         /init sched start --slice-us 2000 && sleep 1 && kill -9 $(pidof scheduler); sleep 60; echo survived",
    );
    let (text, err) = (stdout(&out), stderr(&out));
    assert_eq!(code(&out), 248, "{err}");
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[..2], ["failed=1", "status=3"], "{text}");
    assert!(lines[2].starts_with("attached: pid "), "{text}");
    assert!(
        err.contains("failed: the scheduler exited with 2 before attaching"),
        "{err}"
    );
    assert!(!text.contains("survived"));
    assert_eq!(err.matches("SCDX").count(), 1, "{err}");
    assert!(err.contains("SCDX 4 code=137"), "{err}");
    assert!(
        err.contains("the scheduler died during the run (killed by signal 9)"),
        "{err}"
    );
}

/// Without --scheduler there is no control socket: the client says so.
#[test]
fn sched_status_without_a_scheduler_says_so_and_fails() {
    let out = sh(
        &["--cpus", "1"],
        "/init sched status; echo code=$?; /init frob; echo usage=$?",
    );
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(stdout(&out), "code=4\nusage=2\n");
    let err = stderr(&out);
    assert!(
        err.contains(
            "no scheduler control socket at /run/guestinit/sched.sock: the run has no scheduler"
        ),
        "{err}"
    );
    assert!(
        err.contains("usage: /init sched stop | start [ARGS...] | status"),
        "{err}"
    );
}
