//! Running `guestinit` the way a user does, for the VM tests. These tests
//! boot the real kernel that `scripts/setup.sh` fetched; they never skip: a
//! missing QEMU or kernel fails them with the remedy.

#![allow(dead_code)] // each test binary uses its own subset

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Generous: TCG is slow and CI machines are noisy.
pub const VM_TIMEOUT_SECS: &str = "240";

pub fn guestinit() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_guestinit"))
}

/// Fails the test, with the remedy, when the VM prerequisites are missing.
pub fn require_vm_prerequisites() {
    let qemu = Command::new("qemu-system-x86_64").arg("--version").output();
    assert!(
        qemu.is_ok_and(|o| o.status.success()),
        "qemu-system-x86_64 is not installed: run scripts/setup.sh"
    );
    let kernels = Path::new(env!("CARGO_MANIFEST_DIR")).join(".cache/kernel/boot");
    let has_kernel = std::fs::read_dir(&kernels).is_ok_and(|mut d| {
        d.any(|e| e.is_ok_and(|e| e.file_name().to_string_lossy().starts_with("vmlinuz-")))
    });
    assert!(
        has_kernel || std::env::var_os("GUESTINIT_KERNEL").is_some(),
        "no kernel in {}: run scripts/setup.sh",
        kernels.display()
    );
    assert!(
        Path::new("/bin/busybox").exists(),
        "/bin/busybox is missing: run scripts/setup.sh"
    );
}

/// The tests' cache directory (XDG_CACHE_HOME), not the user's.
pub fn shared_cache() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join("xdg-cache")
}

/// `guestinit run [vm_args] -- program args` (no `--` without a program).
pub fn run(vm_args: &[&str], program: &[&str]) -> Output {
    run_cached(&shared_cache(), vm_args, program)
}

/// [`run`] with `cache` as XDG_CACHE_HOME.
pub fn run_cached(cache: &Path, vm_args: &[&str], program: &[&str]) -> Output {
    run_within(cache, VM_TIMEOUT_SECS, vm_args, program)
}

/// [`run`] with `--timeout timeout_secs`, for VMs slower than most.
pub fn run_timed(timeout_secs: &str, vm_args: &[&str], program: &[&str]) -> Output {
    run_within(&shared_cache(), timeout_secs, vm_args, program)
}

fn run_within(cache: &Path, timeout_secs: &str, vm_args: &[&str], program: &[&str]) -> Output {
    require_vm_prerequisites();
    let mut cmd = Command::new(guestinit());
    cmd.arg("run")
        .env("XDG_CACHE_HOME", cache)
        .args(["--timeout", timeout_secs])
        .args(vm_args);
    if !program.is_empty() {
        cmd.arg("--").args(program);
    }
    let out = cmd.output().expect("start guestinit");
    eprintln!(
        "--- guestinit stderr ---\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// `guestinit run -- program args` with `input` on its stdin (a pipe). A
/// payload need not read it all: a write the ended run refuses is fine.
pub fn run_with_stdin(program: &[&str], input: Vec<u8>) -> Output {
    use std::io::Write;
    require_vm_prerequisites();
    let mut child = Command::new(guestinit())
        .env("XDG_CACHE_HOME", shared_cache())
        .args(["run", "--timeout", VM_TIMEOUT_SECS, "--"])
        .args(program)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start guestinit");
    let mut stdin = child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || stdin.write_all(&input));
    let out = child.wait_with_output().expect("wait for guestinit");
    let _ = writer.join().unwrap();
    eprintln!(
        "--- guestinit stderr ---\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// A busybox shell script run in the VM.
pub fn sh(vm_args: &[&str], script: &str) -> Output {
    run(vm_args, &["/bin/busybox", "sh", "-c", script])
}

pub fn code(out: &Output) -> i32 {
    out.status.code().expect("guestinit exited normally")
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A scratch directory for one test.
pub fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// `guestinit pack -o FILE -- program args`.
pub fn pack(out: &Path, program: &[&str]) {
    require_vm_prerequisites();
    let status = Command::new(guestinit())
        .arg("pack")
        .arg("-o")
        .arg(out)
        .arg("--")
        .args(program)
        .status()
        .expect("start guestinit pack");
    assert!(status.success(), "pack failed");
}

/// Runs a shell command on the host (cpio work in the tests).
pub fn host_sh(script: &str, dir: &Path) {
    let status = Command::new("sh")
        .arg("-c")
        .arg(script)
        .current_dir(dir)
        .status()
        .unwrap();
    assert!(status.success(), "host command failed: {script}");
}

/// One scx_stats request on the unix socket at `path`, retried until the
/// socket exists (up to `wait`): the reply line, and how long it took.
pub fn stats_request(path: &Path, wait: std::time::Duration) -> (String, std::time::Duration) {
    use std::io::{BufRead, BufReader, Write};
    let start = std::time::Instant::now();
    let stream = loop {
        match std::os::unix::net::UnixStream::connect(path) {
            Ok(s) => break s,
            Err(e) if start.elapsed() < wait => {
                let _ = e;
                std::thread::sleep(std::time::Duration::from_millis(200));
            }
            Err(e) => panic!("no stats socket at {}: {e}", path.display()),
        }
    };
    stream
        .set_read_timeout(Some(std::time::Duration::from_secs(60)))
        .unwrap();
    let sent = std::time::Instant::now();
    (&stream)
        .write_all(b"{\"req\":\"stats\",\"args\":{}}\n")
        .unwrap();
    let mut line = String::new();
    BufReader::new(&stream).read_line(&mut line).unwrap();
    (line, sent.elapsed())
}

/// The project's fixture cache (scripts/setup-tests.sh fills it).
pub fn cache() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(".cache")
}

/// The kernel `scripts/setup.sh` fetched into .cache/kernel/boot.
pub fn deb_kernel() -> PathBuf {
    let boot = Path::new(env!("CARGO_MANIFEST_DIR")).join(".cache/kernel/boot");
    std::fs::read_dir(&boot)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("vmlinuz-")
        })
        .unwrap_or_else(|| panic!("no kernel in {}: run scripts/setup.sh", boot.display()))
}

/// The sched_ext kernel's module directory: vmlinuz, config, modules.builtin.
pub fn sid_kernel_dir() -> PathBuf {
    let root = cache().join("kernel-sid/usr/lib/modules");
    let dir = std::fs::read_dir(&root)
        .ok()
        .and_then(|mut d| d.find_map(|e| e.ok().map(|e| e.path())))
        .filter(|d| d.join("vmlinuz").is_file());
    dir.unwrap_or_else(|| {
        panic!(
            "no sched_ext kernel under {}: run scripts/setup-tests.sh",
            root.display()
        )
    })
}

/// scx_bpfland, built by scripts/setup-tests.sh.
pub fn bpfland() -> String {
    let path = cache().join("scx/bin/scx_bpfland");
    assert!(
        path.is_file(),
        "{} is missing: run scripts/setup-tests.sh",
        path.display()
    );
    path.to_str().unwrap().to_owned()
}

/// A tmpfs of `size` mounted at `dir` for one test, unmounted when dropped,
/// however the test ends (lazily, so a QEMU or a file still open in it
/// cannot keep it).
pub struct Tmpfs(pub PathBuf);

impl Tmpfs {
    pub fn mount(dir: &Path, size: &str) -> Tmpfs {
        std::fs::create_dir_all(dir).unwrap();
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .output()
            .expect("run mount");
        assert!(
            out.status.success(),
            "mounting a {size} tmpfs at {} failed (the test needs root): {}",
            dir.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        Tmpfs(dir.to_owned())
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// Writes `text` to `path` as an executable (mode 0755): a script for the
/// tests to hand guestinit as a program, a scheduler or a daemon.
pub fn executable(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap();
    let mode = <std::fs::Permissions as std::os::unix::fs::PermissionsExt>::from_mode(0o755);
    std::fs::set_permissions(path, mode).unwrap();
}
