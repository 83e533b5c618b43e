//! `guestinit shell` in a real VM: the interactive shell driven through a
//! real terminal (tmux), its exit and the terminal restored after it, and
//! exec mode's output and exit codes.

mod common;
use common::*;

use std::process::Command;
use std::time::{Duration, Instant};

/// How long any one thing may take to show on the terminal: a bound on a
/// wait under TCG on a noisy machine, not a measurement.
const WAIT: Duration = Duration::from_secs(240);

/// A tmux server of its own with one window of a fixed size, running
/// `guestinit shell`; then the exit status and the terminal's settings.
struct Tmux {
    socket: String,
}

impl Tmux {
    fn start(name: &str, rows: u16, cols: u16) -> Tmux {
        require_vm_prerequisites();
        let tmux = Command::new("tmux").arg("-V").output();
        assert!(
            tmux.is_ok_and(|o| o.status.success()),
            "tmux is not installed: run scripts/setup-tests.sh"
        );
        let socket = format!("guestinit-{name}-{}", std::process::id());
        let script = format!(
            "TERM=xterm-256color {} shell --timeout {VM_TIMEOUT_SECS}; echo EXITED=$?; stty -a; sleep 600",
            guestinit().display()
        );
        let t = Tmux { socket };
        let (rows, cols) = (rows.to_string(), cols.to_string());
        t.tmux(&[
            "new-session",
            "-d",
            "-s",
            "t",
            "-x",
            &cols,
            "-y",
            &rows,
            &script,
        ]);
        t
    }

    fn tmux(&self, args: &[&str]) -> String {
        let out = Command::new("tmux")
            .args(["-L", &self.socket, "-f", "/dev/null"])
            .args(args)
            .output()
            .expect("run tmux");
        assert!(
            out.status.success(),
            "tmux {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn screen(&self) -> String {
        self.tmux(&["capture-pane", "-p", "-J", "-S", "-200", "-t", "t"])
    }

    /// Waits until the screen shows `text`; the screen.
    fn wait_for(&self, text: &str) -> String {
        let start = Instant::now();
        loop {
            let screen = self.screen();
            if screen.contains(text) {
                return screen;
            }
            assert!(
                start.elapsed() < WAIT,
                "{text:?} never showed; the screen:\n{screen}"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Types `line` and Enter.
    fn type_line(&self, line: &str) {
        self.tmux(&["send-keys", "-t", "t", "-l", line]);
        self.tmux(&["send-keys", "-t", "t", "Enter"]);
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .args(["-L", &self.socket, "kill-server"])
            .output();
    }
}

/// The terminal as `stty -a` printed it after guestinit ended: cooked again.
fn assert_restored(screen: &str) {
    let after = screen.split("EXITED=").nth(1).expect("the exit line");
    let flags: Vec<&str> = after.split_whitespace().collect();
    for flag in ["icanon", "echo", "isig", "opost"] {
        assert!(flags.contains(&flag), "{flag} is not back on:\n{after}");
    }
}

#[test]
fn the_shell_runs_on_the_users_terminal_with_its_size_term_and_ctrl_c() {
    let t = Tmux::start("shell", 30, 100);
    let screen = t.wait_for("/ # ");
    assert!(
        screen.contains("guestinit shell: Linux "),
        "no MOTD:\n{screen}"
    );
    t.type_line("stty size | tr ' ' x; echo \"term=$TERM\" | tr a-z A-Z");
    t.wait_for("30x100");
    t.wait_for("TERM=XTERM-256COLOR");
    // Ctrl-C stops the foreground job, not the VM, and the shell answers
    // (the sleep outlasts every wait: only its interruption lets it answer).
    // The job prints the marker itself, so it is the foreground job by then.
    t.type_line("sh -c 'echo started-$((3*3)); exec sleep 300'");
    t.wait_for("started-9");
    t.tmux(&["send-keys", "-t", "t", "C-c"]);
    t.type_line("echo alive-$((6*7))");
    t.wait_for("alive-42");
    // The window's new size reaches the shell (SIGWINCH, then the control port).
    t.tmux(&["resize-window", "-t", "t", "-x", "90", "-y", "25"]);
    t.type_line("until [ \"$(stty size)\" = '25 90' ]; do sleep 0.2; done; echo resized-$((1+1))");
    t.wait_for("resized-2");
    t.type_line("exit 5");
    t.wait_for("EXITED=5");
    t.wait_for("werase");
    assert_restored(&t.screen());
}

#[test]
fn ctrl_a_x_quits_the_vm_and_restores_the_terminal() {
    let t = Tmux::start("quit", 24, 80);
    t.wait_for("/ # ");
    t.tmux(&["send-keys", "-t", "t", "C-a", "x"]);
    t.wait_for("EXITED=251");
    t.wait_for("werase");
    assert_restored(&t.screen());
}

#[test]
fn without_a_terminal_the_shell_is_refused_and_exec_suggested() {
    let out = Command::new(guestinit())
        .args(["shell", "--timeout", "5"])
        .stdin(std::process::Stdio::null())
        .output()
        .expect("start guestinit");
    assert_eq!(code(&out), 249);
    let err = stderr(&out);
    assert!(
        err.contains("needs a terminal on stdin") && err.contains("--exec"),
        "{err}"
    );
}

fn exec(cmd: &str) -> std::process::Output {
    require_vm_prerequisites();
    let out = Command::new(guestinit())
        .args(["shell", "--timeout", VM_TIMEOUT_SECS, "--exec", cmd])
        .stdin(std::process::Stdio::null())
        .output()
        .expect("start guestinit");
    eprintln!("--- guestinit stderr ---\n{}", stderr(&out));
    out
}

#[test]
fn exec_streams_the_commands_output_and_exits_with_its_code() {
    let out = exec("echo out; echo err >&2; ls /bin/stty; exit 4");
    assert_eq!(code(&out), 4);
    assert_eq!(
        stdout(&out),
        "out\n/bin/stty\n",
        "no CR added, applets linked"
    );
    assert!(stderr(&out).lines().any(|l| l == "err"), "{}", stderr(&out));
}

#[test]
fn exec_reports_a_signal_as_128_plus_it() {
    let out = exec("kill -9 $$");
    assert_eq!(code(&out), 128 + 9);
}

/// Debian unstable's kernel (sched_ext) and scx_bpfland, from scripts/setup-tests.sh.
fn sched_ext_args() -> Vec<String> {
    let cache = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(".cache");
    let modules = std::fs::read_dir(cache.join("kernel-sid/usr/lib/modules"))
        .ok()
        .and_then(|mut d| d.find_map(|e| e.ok().map(|e| e.path())))
        .filter(|d| d.join("vmlinuz").is_file())
        .expect("no sched_ext kernel under .cache/kernel-sid: run scripts/setup-tests.sh");
    let bpfland = cache.join("scx/bin/scx_bpfland");
    assert!(
        bpfland.is_file(),
        "{} is missing: run scripts/setup-tests.sh",
        bpfland.display()
    );
    let path = |p: &std::path::Path| p.to_str().unwrap().to_owned();
    [
        "--kernel".into(),
        path(&modules.join("vmlinuz")),
        "--modules".into(),
        path(&modules),
        "--cpus".into(),
        "2".into(),
        "--memory".into(),
        "512".into(),
        "--scheduler".into(),
        path(&bpfland),
    ]
    .into()
}

#[test]
fn exec_runs_under_the_scheduler_after_its_enable_script() {
    let enable = scratch("shell-sched").join("enable");
    std::fs::write(
        &enable,
        "echo 50 > /proc/sys/kernel/sched_rr_timeslice_ms\n",
    )
    .unwrap();
    let out = Command::new(guestinit())
        .arg("shell")
        .args(sched_ext_args())
        .args(["--sched-enable", enable.to_str().unwrap()])
        .args(["--timeout", VM_TIMEOUT_SECS, "--exec"])
        .arg("cat /sys/kernel/sched_ext/state /proc/sys/kernel/sched_rr_timeslice_ms; exit 3")
        .stdin(std::process::Stdio::null())
        .output()
        .expect("start guestinit");
    assert_eq!(code(&out), 3, "{}", stderr(&out));
    assert_eq!(stdout(&out), "enabled\n50\n");
}
