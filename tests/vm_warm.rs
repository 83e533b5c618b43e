//! Boot once, run many: the first run of a machine snapshots it after it
//! is up, later runs restore it and are handed their run. Each test keeps
//! its own cache directory, so what it finds there is its own doing.

mod common;
use common::*;

use std::path::{Path, PathBuf};
use std::process::Output;

const SCRIPT: &str = "echo out; echo err >&2; printf 'a\\0b' | od -An -c; exit 7";

fn warm(cache: &Path, vm_args: &[&str], program: &[&str]) -> Output {
    let mut args = vec!["-v"];
    args.extend_from_slice(vm_args);
    run_cached(cache, &args, program)
}

fn script(cache: &Path, vm_args: &[&str], script: &str) -> Output {
    warm(cache, vm_args, &["/bin/busybox", "sh", "-c", script])
}

fn took(out: &Output) -> bool {
    stderr(out).contains("guestinit: snapshot saved to ")
}

fn restored(out: &Output) -> bool {
    stderr(out).contains("guestinit: warm start from ")
}

/// The payload's own lines of stderr (not guestinit's, which differ).
fn payload_stderr(out: &Output) -> Vec<String> {
    stderr(out)
        .lines()
        .filter(|l| !l.starts_with("guestinit") && !l.starts_with("  ") && !l.starts_with('{'))
        .map(str::to_owned)
        .collect()
}

/// The first run takes the snapshot, the second is warm: both exact.
fn exact_on(name: &str, vm_args: &[&str]) {
    let cache = scratch(name);
    let cold = script(&cache, vm_args, SCRIPT);
    assert_eq!(code(&cold), 7, "{}", stderr(&cold));
    assert!(took(&cold), "the first run took no snapshot");
    let hot = script(&cache, vm_args, SCRIPT);
    assert!(restored(&hot), "the second run was not warm");
    assert_eq!(code(&hot), 7);
    assert_eq!(stdout(&hot), stdout(&cold));
    assert_eq!(stdout(&hot), "out\n   a  \\0   b\n");
    assert_eq!(payload_stderr(&hot), payload_stderr(&cold));
    assert!(payload_stderr(&hot).contains(&"err".to_owned()));
    // The frames before the snapshot are replayed: SRDY and HRDY too.
    assert!(stderr(&hot).contains("guestinit: SRDY"), "{}", stderr(&hot));
}

#[test]
fn a_warm_run_gives_the_cold_runs_output_and_code_on_debian_12() {
    exact_on("warm-exact-deb", &[]);
}

#[test]
fn a_warm_run_gives_the_cold_runs_output_and_code_on_unstable() {
    let kernel = sid_kernel_dir().join("vmlinuz");
    exact_on("warm-exact-sid", &["--kernel", kernel.to_str().unwrap()]);
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

#[test]
fn two_warm_runs_read_different_random_bytes_and_the_hosts_clock() {
    let cache = scratch("warm-fresh");
    let probe = "head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \\n'; echo; \
                 cat /proc/sys/kernel/random/uuid; date +%s";
    assert!(took(&script(&cache, &[], probe)));
    let mut seen = Vec::new();
    for _ in 0..2 {
        let before = now();
        let out = script(&cache, &[], probe);
        let after = now();
        assert!(restored(&out), "{}", stderr(&out));
        assert_eq!(code(&out), 0);
        let text = stdout(&out);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3, "{text}");
        let guest: u64 = lines[2].parse().unwrap();
        assert!(
            guest + 2 >= before && guest <= after + 2,
            "guest clock {guest}, host {before}..{after}"
        );
        seen.push((lines[0].to_owned(), lines[1].to_owned()));
    }
    assert_ne!(seen[0].0, seen[1].0, "the same random bytes twice");
    assert_ne!(seen[0].1, seen[1].1, "the same uuid twice");
}

#[test]
fn nothing_one_warm_run_writes_is_seen_by_the_next() {
    let cache = scratch("warm-clean");
    let probe = "ls /tmp/left 2>&1; echo mark > /tmp/left; echo x > /left";
    assert!(took(&script(&cache, &[], probe)));
    for _ in 0..2 {
        let out = script(
            &cache,
            &[],
            "test -e /tmp/left || test -e /left || echo clean",
        );
        assert!(restored(&out));
        assert_eq!(stdout(&out), "clean\n", "{}", stderr(&out));
    }
}

/// The snapshot file of the one machine `cache` holds.
fn snapshot_in(cache: &Path) -> PathBuf {
    let dir = cache.join("guestinit/snapshots");
    let mut snaps: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "snap"))
        .collect();
    assert_eq!(snaps.len(), 1, "{snaps:?}");
    snaps.pop().unwrap()
}

/// After `spoil`, the next run says why it boots cold, is right, and leaves
/// a snapshot the run after restores.
fn spoiled_boots_cold(name: &str, vm_args: &[&str], spoil: impl Fn(&Path), why: &str) {
    let cache = scratch(name);
    assert!(took(&script(&cache, vm_args, "echo one")));
    spoil(&snapshot_in(&cache));
    let out = script(&cache, vm_args, "echo two");
    assert_eq!(stdout(&out), "two\n", "{}", stderr(&out));
    assert!(!restored(&out));
    assert!(stderr(&out).contains(why), "{}", stderr(&out));
    assert!(stderr(&out).contains("booting cold and replacing it"));
    assert!(took(&out), "not replaced");
    let again = script(&cache, vm_args, "echo three");
    assert!(restored(&again), "{}", stderr(&again));
    assert_eq!(stdout(&again), "three\n");
}

#[test]
fn a_corrupt_snapshot_boots_cold_and_is_replaced() {
    let flip = |path: &Path| {
        use std::os::unix::fs::FileExt;
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .unwrap();
        let at = file.metadata().unwrap().len() / 2;
        let mut byte = [0u8];
        file.read_exact_at(&mut byte, at).unwrap();
        file.write_all_at(&[byte[0] ^ 0x40], at).unwrap();
    };
    spoiled_boots_cold("warm-corrupt", &[], flip, "is corrupt");
}

/// A restore of a settled snapshot records its identity and the next one
/// skips reading it whole; a byte flipped after that is still found.
#[test]
fn a_snapshot_corrupted_after_restores_that_skipped_its_read_boots_cold() {
    let cache = scratch("warm-corrupt-later");
    assert!(took(&script(&cache, &[], "echo one")));
    let snapshot = snapshot_in(&cache);
    // The identity is recorded once the change time is 2 s old.
    std::thread::sleep(std::time::Duration::from_millis(2500));
    for word in ["two", "three"] {
        let out = script(&cache, &[], &format!("echo {word}"));
        assert!(restored(&out), "{}", stderr(&out));
        assert_eq!(stdout(&out), format!("{word}\n"));
    }
    let used = std::fs::read(snapshot.with_extension("used")).unwrap();
    assert!(!used.is_empty(), "no identity was recorded");
    {
        use std::os::unix::fs::FileExt;
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&snapshot)
            .unwrap();
        let at = file.metadata().unwrap().len() / 2;
        let mut byte = [0u8];
        file.read_exact_at(&mut byte, at).unwrap();
        file.write_all_at(&[byte[0] ^ 0x40], at).unwrap();
    }
    let out = script(&cache, &[], "echo four");
    assert_eq!(stdout(&out), "four\n", "{}", stderr(&out));
    assert!(!restored(&out));
    assert!(stderr(&out).contains("is corrupt"), "{}", stderr(&out));
}

#[test]
fn a_snapshot_cut_short_boots_cold_and_is_replaced() {
    let cut = |path: &Path| {
        let file = std::fs::OpenOptions::new().write(true).open(path).unwrap();
        let len = file.metadata().unwrap().len();
        file.set_len(len - 4096).unwrap();
    };
    spoiled_boots_cold("warm-cut", &[], cut, "is cut short");
}

#[test]
fn a_changed_init_makes_the_snapshot_stale() {
    let dir = scratch("warm-init");
    let init = dir.join("init");
    std::fs::copy(guestinit().with_file_name("init"), &init).unwrap();
    let grow = |_: &Path| {
        use std::io::Write;
        // A byte past the ELF's end: the same program, another archive.
        let mut file = std::fs::OpenOptions::new()
            .append(true)
            .open(&init)
            .unwrap();
        file.write_all(b"\0").unwrap();
    };
    spoiled_boots_cold(
        "warm-init-cache",
        &["--init", init.to_str().unwrap()],
        grow,
        "stale (the base archive changed",
    );
}

/// A copy of Debian 12's kernel image, its config, map and modules beside
/// it as links: a kernel of its own to change.
fn kernel_copy(dir: &Path) -> PathBuf {
    let boot = cache().join("kernel/boot");
    let image = deb_kernel();
    let name = image.file_name().unwrap().to_string_lossy().into_owned();
    let release = name.trim_start_matches("vmlinuz-").to_owned();
    std::fs::create_dir_all(dir.join("boot")).unwrap();
    std::fs::create_dir_all(dir.join("lib/modules")).unwrap();
    let copy = dir.join("boot").join(&name);
    std::fs::copy(&image, &copy).unwrap();
    for companion in [format!("config-{release}"), format!("System.map-{release}")] {
        std::os::unix::fs::symlink(boot.join(&companion), dir.join("boot").join(&companion))
            .unwrap();
    }
    std::os::unix::fs::symlink(
        cache().join("kernel/lib/modules").join(&release),
        dir.join("lib/modules").join(&release),
    )
    .unwrap();
    copy
}

#[test]
fn a_changed_kernel_makes_the_snapshot_stale() {
    let dir = scratch("warm-kernel");
    let kernel = kernel_copy(&dir);
    let rewrite = |_: &Path| {
        let bytes = std::fs::read(&kernel).unwrap();
        std::fs::write(&kernel, bytes).unwrap();
    };
    spoiled_boots_cold(
        "warm-kernel-cache",
        &["--kernel", kernel.to_str().unwrap()],
        rewrite,
        "stale (the kernel changed",
    );
}

#[test]
fn each_part_of_the_machine_is_its_own_snapshot() {
    let cache = scratch("warm-parts");
    assert!(took(&script(&cache, &[], "true")));
    for other in [
        &["--memory", "320"][..],
        &["--cpus", "2"],
        &["--append", "quiet"],
        &["--qemu-arg=-name", "--qemu-arg=other"],
        &["--topology", "1,1,2,1"],
    ] {
        let out = script(&cache, other, "echo ok");
        assert_eq!(stdout(&out), "ok\n", "{other:?}: {}", stderr(&out));
        assert!(
            !restored(&out),
            "{other:?} restored another machine's snapshot"
        );
        assert!(
            stderr(&out).contains("no snapshot of this machine yet"),
            "{other:?}: {}",
            stderr(&out)
        );
    }
    let same = script(&cache, &[], "true");
    assert!(restored(&same), "{}", stderr(&same));
}

#[test]
fn two_first_runs_at_once_both_pass_and_leave_a_snapshot_that_restores() {
    let cache = scratch("warm-race");
    let runs: Vec<_> = (0..2)
        .map(|n| {
            let cache = cache.clone();
            std::thread::spawn(move || script(&cache, &[], &format!("echo run{n}")))
        })
        .collect();
    for (n, run) in runs.into_iter().enumerate() {
        let out = run.join().unwrap();
        assert_eq!(code(&out), 0, "{}", stderr(&out));
        assert_eq!(stdout(&out), format!("run{n}\n"));
    }
    snapshot_in(&cache);
    let out = script(&cache, &[], "echo after");
    assert!(restored(&out), "{}", stderr(&out));
    assert_eq!(stdout(&out), "after\n");
}

#[test]
fn cold_is_used_when_asked_for() {
    let cache = scratch("warm-cold");
    assert!(took(&script(&cache, &[], "true")));
    let out = script(&cache, &["--cold"], "echo cold");
    assert_eq!(stdout(&out), "cold\n");
    assert!(!restored(&out) && !took(&out));
    assert!(stderr(&out).contains("guestinit: booting cold: --cold"));
    // Without it, the snapshot is still there.
    assert!(restored(&script(&cache, &[], "true")));
}

#[test]
fn a_large_payload_arrives_whole_after_a_restore() {
    let cache = scratch("warm-stdin");
    assert!(took(&script(&cache, &[], "true")));
    let big = scratch("warm-stdin-files");
    let blob = big.join("blob");
    let data: Vec<u8> = (0..3_000_000u32).map(|i| (i * 7 % 251) as u8).collect();
    std::fs::write(&blob, &data).unwrap();
    let include = format!("{}:/data/blob", blob.display());
    let out = script(&cache, &["--include", &include], "md5sum /data/blob");
    assert!(restored(&out), "{}", stderr(&out));
    let want = std::process::Command::new("md5sum")
        .arg(&blob)
        .output()
        .unwrap();
    let want = String::from_utf8_lossy(&want.stdout);
    assert_eq!(
        stdout(&out).split_whitespace().next(),
        want.split_whitespace().next()
    );
}

#[test]
fn cache_clean_removes_the_snapshots() {
    let cache = scratch("warm-clean-cmd");
    assert!(took(&script(&cache, &[], "true")));
    let out = std::process::Command::new(guestinit())
        .args(["cache", "clean"])
        .env("XDG_CACHE_HOME", &cache)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("removed"), "{}", stdout(&out));
    assert!(!cache.join("guestinit/snapshots").exists());
}
