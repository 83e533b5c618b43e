//! `--share HOST_DIR[:GUEST_DIR][,ro]`: host directories in the guest over
//! virtiofs. A read-only share refuses writes, a writable one's writes are
//! on the host when the run ends, a program on a share runs from it
//! unpacked, the usage errors come before the boot, and no virtiofsd or
//! QEMU outlives a run, however it ends. Boots the Debian 12 kernel
//! (virtiofs and fuse are modules there) under QEMU; never skipped: a
//! missing virtiofsd fails these tests with the remedy (see tests/common).

mod common;

use common::{code, executable, guestinit, require_vm_prerequisites, scratch, stderr, stdout};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::thread;
use std::time::{Duration, Instant};

/// Fails the test, with the remedy, when no virtiofsd is there.
fn require_virtiofsd() {
    let built = Path::new(env!("CARGO_MANIFEST_DIR")).join(".cache/virtiofsd/bin/virtiofsd");
    let on_path = std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join("virtiofsd").is_file()));
    assert!(
        built.is_file() || on_path || std::env::var_os("GUESTINIT_VIRTIOFSD").is_some(),
        "virtiofsd is missing: run scripts/setup-tests.sh (it builds it into {})",
        built.display()
    );
}

/// `guestinit run` with `args`, its QEMU marked by `dir` (the test's own
/// scratch directory, which its shares' daemons name too), so `left`
/// finds whatever of the run survives it.
fn command(dir: &Path, args: &[&str], program: &[&str]) -> Command {
    require_vm_prerequisites();
    require_virtiofsd();
    let mut cmd = Command::new(guestinit());
    cmd.arg("run")
        .env("XDG_CACHE_HOME", common::shared_cache())
        .env_remove("GUESTINIT_VIRTIOFSD")
        .args(["--append", &format!("guestinit_test={}", dir.display())])
        .args(args)
        .arg("--")
        .args(program);
    cmd
}

fn run(dir: &Path, args: &[&str], program: &[&str]) -> Output {
    let mut with_timeout = vec!["--timeout", common::VM_TIMEOUT_SECS];
    with_timeout.extend_from_slice(args);
    let out = command(dir, &with_timeout, program).output().unwrap();
    eprintln!("--- guestinit stderr ---\n{}", stderr(&out));
    out
}

/// The processes whose command line names `dir` (pgrep -f), but this one.
fn left(dir: &Path) -> Vec<String> {
    let out = Command::new("pgrep")
        .args(["-a", "-f"])
        .arg(dir)
        .output()
        .expect("pgrep (procps) is installed");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_owned)
        .collect()
}

/// Asserts that nothing of the run is left, waiting `limit` for it.
fn nothing_left(dir: &Path, limit: Duration) {
    let until = Instant::now() + limit;
    let mut found = left(dir);
    while !found.is_empty() && Instant::now() < until {
        thread::sleep(Duration::from_millis(50));
        found = left(dir);
    }
    assert!(found.is_empty(), "left after the run: {found:?}");
}

/// A directory shared by a test, with a file from the host in it.
fn host_dir(dir: &Path, name: &str) -> PathBuf {
    let shared = dir.join(name);
    std::fs::create_dir_all(&shared).unwrap();
    std::fs::write(shared.join("note"), "from-the-host\n").unwrap();
    shared
}

#[test]
fn a_read_only_share_refuses_writes_and_one_that_cannot_be_mounted_is_warned_of() {
    let dir = scratch("share-ro");
    let shared = host_dir(&dir, "ro");
    let other = host_dir(&dir, "other");
    let ro = format!("{}:/mnt/ro,ro", shared.display());
    // Its GUEST_DIR cannot be made: /mnt/ro is read-only.
    let nested = format!("{}:/mnt/ro/sub", other.display());
    let out = run(
        &dir,
        &["--share", &ro, "--share", &nested],
        &[
            "/bin/busybox",
            "sh",
            "-c",
            "cat /mnt/ro/note; grep -c ' /mnt/ro virtiofs ro,' /proc/mounts; \
             if echo x > /mnt/ro/new; then echo wrote; fi; \
             if mkdir /mnt/ro/d; then echo made; fi; \
             if rm /mnt/ro/note; then echo removed; fi; echo done",
        ],
    );
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(stdout(&out), "from-the-host\n1\ndone\n");
    let err = stderr(&out);
    assert!(
        err.contains("can't create /mnt/ro/new: Read-only file system"),
        "{err}"
    );
    assert!(
        err.contains("guestinit: share /mnt/ro/sub is not mounted: mkdir: "),
        "{err}"
    );
    let mut names: Vec<_> = std::fs::read_dir(&shared)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    names.sort();
    assert_eq!(names, ["note"], "the host's directory is untouched");
    nothing_left(&dir, Duration::from_secs(2));
}

#[test]
fn a_writable_shares_writes_are_on_the_host_when_the_run_ends() {
    let dir = scratch("share-rw");
    let shared = host_dir(&dir, "rw");
    let guest = shared.display().to_string();
    let script = format!(
        "cd {guest} && echo written-in-the-vm > new && mkdir -p a/b && \
         seq 1 1000 > a/b/numbers && echo more >> note && rm note && echo ok"
    );
    let out = run(
        &dir,
        &["--share", &guest],
        &["/bin/busybox", "sh", "-c", &script],
    );
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(stdout(&out), "ok\n");
    let read = |name: &str| std::fs::read_to_string(shared.join(name)).unwrap();
    assert_eq!(read("new"), "written-in-the-vm\n");
    let numbers: String = (1..=1000).map(|i| format!("{i}\n")).collect();
    assert_eq!(read("a/b/numbers"), numbers);
    assert!(!shared.join("note").exists());
    nothing_left(&dir, Duration::from_secs(2));
}

#[test]
fn shell_exec_sees_its_shares_too() {
    let dir = scratch("share-shell");
    let shared = host_dir(&dir, "data");
    let share = format!("{}:/data,ro", shared.display());
    let out = Command::new(guestinit())
        .args(["shell", "--timeout", common::VM_TIMEOUT_SECS])
        .args(["--append", &format!("guestinit_test={}", dir.display())])
        .args(["--share", &share, "--exec", "cat /data/note"])
        .env("XDG_CACHE_HOME", common::shared_cache())
        .env_remove("GUESTINIT_VIRTIOFSD")
        .output()
        .unwrap();
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(stdout(&out), "from-the-host\n");
    nothing_left(&dir, Duration::from_secs(2));
}

#[test]
fn a_share_works_beside_numa_nodes_whose_memory_it_shares() {
    let dir = scratch("share-numa");
    let shared = host_dir(&dir, "data");
    let share = format!("{}:/data", shared.display());
    let out = run(
        &dir,
        &["--topology", "2,1,1,1", "--share", &share],
        &[
            "/bin/busybox",
            "sh",
            "-c",
            "cat /data/note; echo from-the-guest > /data/back; ls -d /sys/devices/system/node/node*",
        ],
    );
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(
        stdout(&out),
        "from-the-host\n/sys/devices/system/node/node0\n/sys/devices/system/node/node1\n"
    );
    let back = std::fs::read_to_string(shared.join("back")).unwrap();
    assert_eq!(back, "from-the-guest\n");
    nothing_left(&dir, Duration::from_secs(2));
}

/// The host's /usr, behind a link of the test's own, so that its daemon
/// names the test's directory.
fn usr_link(dir: &Path) -> PathBuf {
    let link = dir.join("usr");
    std::os::unix::fs::symlink("/usr", &link).unwrap();
    link
}

/// A dynamic program of the host's /usr and its arguments, printing
/// `from-the-share 3`: python3 where it is installed, else perl.
fn dynamic_program(usr: &str) -> Vec<String> {
    let (name, code) = match Path::new("/usr/bin/python3").exists() {
        true => ("python3", "print('from-the-share', 1 + 2)"),
        false => ("perl", "print 'from-the-share ', 1 + 2, \"\\n\""),
    };
    let flag = if name == "perl" { "-e" } else { "-c" };
    vec![format!("{usr}/bin/{name}"), flag.into(), code.into()]
}

#[test]
fn a_program_on_a_share_runs_from_it_unpacked() {
    let dir = scratch("share-program");
    let usr = usr_link(&dir);
    // At a GUEST_DIR the host does not have: the program could not have
    // been packed from there.
    let moved = format!("{}:/opt/hostusr,ro", usr.display());
    let program = dynamic_program("/opt/hostusr");
    let argv: Vec<&str> = program.iter().map(String::as_str).collect();
    let out = run(&dir, &["--share", &moved], &argv);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(stdout(&out), "from-the-share 3\n");
    nothing_left(&dir, Duration::from_secs(2));

    // As a user writes it: `--share /usr -- /usr/bin/python3 ...`.
    let same = format!("{}:/usr,ro", usr.display());
    let program = dynamic_program("/usr");
    let argv: Vec<&str> = program.iter().map(String::as_str).collect();
    let out = run(&dir, &["--share", &same], &argv);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(stdout(&out), "from-the-share 3\n");
    nothing_left(&dir, Duration::from_secs(2));
}

/// `run` with a share until the payload printed `before`: the host, and
/// its stderr collected.
fn boot_until_before(
    dir: &Path,
    shared: &Path,
    args: &[&str],
) -> (Child, thread::JoinHandle<String>) {
    let share = shared.display().to_string();
    let mut all = vec!["--share", share.as_str()];
    all.extend_from_slice(args);
    let mut child = command(
        dir,
        &all,
        &[
            "/bin/busybox",
            "sh",
            "-c",
            "cat $0/note; echo before; sleep 1000",
        ],
    )
    .arg(&share)
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut err = child.stderr.take().unwrap();
    let err = thread::spawn(move || {
        let mut text = String::new();
        let _ = std::io::Read::read_to_string(&mut err, &mut text);
        text
    });
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    assert_eq!(line, "from-the-host\n");
    line.clear();
    stdout.read_line(&mut line).unwrap();
    assert_eq!(line, "before\n");
    thread::spawn(move || std::io::copy(&mut stdout, &mut std::io::sink()));
    let running = left(dir);
    assert!(
        running.iter().any(|p| p.contains("virtiofsd"))
            && running.iter().any(|p| p.contains("qemu")),
        "a virtiofsd and QEMU run: {running:?}"
    );
    (child, err)
}

fn signal(pid: u32, name: &str) {
    let status = Command::new("kill")
        .args([&format!("-{name}"), &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

#[test]
fn a_killed_host_takes_its_virtiofsd_and_qemu_along() {
    let dir = scratch("share-sigkill");
    let shared = host_dir(&dir, "data");
    let (mut child, _err) =
        boot_until_before(&dir, &shared, &["--timeout", common::VM_TIMEOUT_SECS]);
    child.kill().unwrap();
    child.wait().unwrap();
    nothing_left(&dir, Duration::from_secs(5));
}

#[test]
fn a_stopped_or_timed_out_run_leaves_no_virtiofsd() {
    let dir = scratch("share-stop");
    let shared = host_dir(&dir, "data");
    let (mut child, err) =
        boot_until_before(&dir, &shared, &["--timeout", common::VM_TIMEOUT_SECS]);
    signal(child.id(), "TERM");
    let status = child.wait().unwrap();
    let err = err.join().unwrap();
    assert_eq!(status.code(), Some(128 + 15), "{err}");
    nothing_left(&dir, Duration::from_secs(2));

    // The deadline may come during the boot or during the payload, as the
    // machine's speed has it; either way the share's virtiofsd, which runs
    // from before QEMU's start, must be gone once the run has ended 252.
    let share = shared.display().to_string();
    let program = [
        "/bin/busybox",
        "sh",
        "-c",
        "cat $0/note; echo before; sleep 1000",
    ];
    let child = command(&dir, &["--share", &share, "--timeout", "30"], &program)
        .arg(&share)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let until = Instant::now() + Duration::from_secs(60);
    while !left(&dir).iter().any(|p| p.contains("virtiofsd")) {
        assert!(Instant::now() < until, "no virtiofsd served the share");
        thread::sleep(Duration::from_millis(50));
    }
    let out = child.wait_with_output().unwrap();
    eprintln!("stdout at the timeout: {:?}", stdout(&out));
    assert_eq!(code(&out), 252, "{}", stderr(&out));
    nothing_left(&dir, Duration::from_secs(2));
}

/// `guestinit run` that must stop before the boot: its output.
fn refused(args: &[&str], env: &[(&str, &str)]) -> Output {
    let started = Instant::now();
    let out = Command::new(guestinit())
        .arg("run")
        .args(args)
        .args(["--", "/bin/true"])
        .envs(env.iter().copied())
        .output()
        .unwrap();
    assert!(started.elapsed() < Duration::from_secs(30), "no boot");
    assert_eq!(stdout(&out), "");
    out
}

#[test]
fn bad_shares_are_usage_errors_before_the_boot_naming_them() {
    let dir = scratch("share-usage");
    let file = dir.join("file");
    std::fs::write(&file, "x").unwrap();
    let (file, missing) = (
        file.display().to_string(),
        dir.join("missing").display().to_string(),
    );
    let here = dir.display().to_string();
    let twice = [format!("{here}:/g"), format!("{here}:/g/,ro")];
    for (args, says) in [
        (
            vec!["--share".to_owned(), missing.clone()],
            format!("--share {missing}: No such file"),
        ),
        (
            vec!["--share".to_owned(), file.clone()],
            format!("--share {file}: not a directory"),
        ),
        (
            vec!["--share".to_owned(), format!("{here}:data")],
            "GUEST_DIR \"data\" is not absolute".to_owned(),
        ),
        (
            vec!["--share".to_owned(), format!("{here}:/proc")],
            "GUEST_DIR /proc is where the guest mounts its own filesystem".to_owned(),
        ),
        (
            vec!["--share".to_owned(), format!("{here}:/sys/x")],
            "under /sys".to_owned(),
        ),
        (
            vec!["--share".to_owned(), format!("{here}:/")],
            "GUEST_DIR / would hide".to_owned(),
        ),
        (
            vec![
                "--share".to_owned(),
                twice[0].clone(),
                "--share".to_owned(),
                twice[1].clone(),
            ],
            "GUEST_DIR /g is given twice".to_owned(),
        ),
    ] {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = refused(&args, &[]);
        assert_eq!(code(&out), 249, "{args:?}: {}", stderr(&out));
        assert!(stderr(&out).contains(&says), "{args:?}: {}", stderr(&out));
    }
    let missing_daemon = dir.join("no-virtiofsd").display().to_string();
    let out = refused(
        &["--share", &here],
        &[("GUESTINIT_VIRTIOFSD", &missing_daemon)],
    );
    assert_eq!(code(&out), 249, "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains(&missing_daemon)
            && err.contains("scripts/setup-tests.sh")
            && err.contains("cargo install virtiofsd --locked"),
        "{err}"
    );
    nothing_left(&dir, Duration::from_secs(1));
}

#[test]
fn a_virtiofsd_that_fails_to_start_is_said_with_its_words_before_qemu_starts() {
    let dir = scratch("share-daemon-fails");
    let fake = dir.join("virtiofsd");
    executable(
        &fake,
        "#!/bin/sh\necho 'Error entering sandbox: no luck' >&2\nexit 1\n",
    );
    let here = dir.display().to_string();
    let out = refused(
        &["--share", &here],
        &[("GUESTINIT_VIRTIOFSD", fake.to_str().unwrap())],
    );
    assert_eq!(code(&out), 250, "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains(&format!(
            "virtiofsd for --share {here} ended before it was ready"
        )),
        "{err}"
    );
    assert!(err.contains("Error entering sandbox: no luck"), "{err}");
    nothing_left(&dir, Duration::from_secs(1));
}
