//! guestinit as cargo-nextest's target runner: each test process is one VM
//! boot (the `--list --format terse` calls too, one per test binary), and
//! what a CI fleet does with it works: verdicts and output, partitions run
//! from two checkouts, an archive built once and run where no source tree
//! is, and nextest's JUnit file.

mod common;
use common::*;
use std::collections::BTreeSet;
use std::path::Path;
use std::process::Output;

/// The crate's tests, all but the failing one.
const PASSING: [&str; 3] = [
    "pid_1_is_the_init",
    "the_kernel_booted_guestinits_init",
    "runs_in_the_packages_folder",
];
const FAILING: &str = "fails_in_the_vm";

/// A crate of three tests that pass only in guestinit's VM and one that
/// fails there, with a `ci` profile that writes JUnit.
fn nextest_crate(dir: &Path) {
    std::fs::create_dir_all(dir.join("src")).unwrap();
    std::fs::create_dir_all(dir.join(".config")).unwrap();
    let manifest = "[package]\nname = \"in-vm\"\nversion = \"0.1.0\"\nedition = \"2021\"\n";
    std::fs::write(dir.join("Cargo.toml"), manifest).unwrap();
    let profile = "[profile.ci]\nfail-fast = false\n[profile.ci.junit]\npath = \"junit.xml\"\n";
    std::fs::write(dir.join(".config/nextest.toml"), profile).unwrap();
    let tests = r#"
#[test]
fn pid_1_is_the_init() {
    assert_eq!(std::fs::read("/proc/1/cmdline").unwrap(), b"/init\0");
}

#[test]
fn the_kernel_booted_guestinits_init() {
    let cmdline = std::fs::read_to_string("/proc/cmdline").unwrap();
    assert!(cmdline.contains("rdinit=/init"), "{cmdline}");
}

#[test]
fn runs_in_the_packages_folder() {
    let here = std::env::current_dir().unwrap();
    assert_eq!(here, std::path::Path::new(env!("CARGO_MANIFEST_DIR")));
}

#[test]
fn fails_in_the_vm() {
    println!("said before failing");
    panic!("failing on purpose");
}
"#;
    std::fs::write(dir.join("src/lib.rs"), tests).unwrap();
}

/// Fails the test, with the remedy, when cargo-nextest is missing.
fn require_nextest() {
    require_vm_prerequisites();
    let out = cargo().args(["nextest", "--version"]).output();
    assert!(
        out.is_ok_and(|o| o.status.success()),
        "cargo-nextest is not installed: run scripts/setup-tests.sh"
    );
}

fn cargo() -> std::process::Command {
    std::process::Command::new(std::env::var_os("CARGO").unwrap_or("cargo".into()))
}

/// `cargo nextest ARGS` in `dir` with guestinit as the runner, two tests
/// at a time (a 2-core machine), in its own target dir.
fn nextest(dir: &Path, args: &[&str]) -> Output {
    let runner = format!(
        "{} run --timeout {VM_TIMEOUT_SECS} --",
        guestinit().display()
    );
    let started = std::time::Instant::now();
    let out = cargo()
        .arg("nextest")
        .args(args)
        .args(if args[0] == "run" {
            &["-j", "2"][..]
        } else {
            &[]
        })
        .current_dir(dir)
        .env("CARGO_TARGET_X86_64_UNKNOWN_LINUX_GNU_RUNNER", runner)
        .env("NEXTEST_HIDE_PROGRESS_BAR", "1")
        .env_remove("CARGO_TARGET_DIR")
        .env_remove("NEXTEST_PROFILE")
        .output()
        .unwrap();
    eprintln!(
        "--- cargo nextest {} ({:?}) ---\n{}{}",
        args.join(" "),
        started.elapsed(),
        stdout(&out),
        stderr(&out)
    );
    out
}

/// The tests nextest's status lines give VERDICT (PASS or FAIL) for.
fn verdicts(out: &Output, verdict: &str) -> BTreeSet<String> {
    let text = format!("{}{}", stdout(out), stderr(out));
    text.lines()
        .filter(|l| l.trim_start().starts_with(&format!("{verdict} [")))
        .filter_map(|l| l.split_whitespace().last())
        .map(str::to_owned)
        .collect()
}

fn set(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|n| n.to_string()).collect()
}

fn copy_crate(from: &Path, to: &Path) {
    let _ = std::fs::remove_dir_all(to);
    std::fs::create_dir_all(to.join("src")).unwrap();
    std::fs::create_dir_all(to.join(".config")).unwrap();
    for f in ["Cargo.toml", "src/lib.rs", ".config/nextest.toml"] {
        std::fs::copy(from.join(f), to.join(f)).unwrap();
    }
}

#[test]
fn nextest_with_guestinit_as_runner_reports_partitions_archives_and_junit() {
    require_nextest();
    let root = scratch("vm-nextest");
    let a = root.join("a");
    nextest_crate(&a);
    let started = std::time::Instant::now();

    // The list goes through the runner too (`--list --format terse`).
    let out = nextest(&a, &["list", "--offline"]);
    assert_eq!(code(&out), 0);
    let listed: BTreeSet<String> = stdout(&out)
        .lines()
        .filter_map(|l| l.split_whitespace().last())
        .map(str::to_owned)
        .collect();
    let mut all = set(&PASSING);
    all.insert(FAILING.into());
    assert_eq!(listed, all, "{}", stdout(&out));

    // Each verdict as nextest gives it, the failure's output, a failing exit.
    let out = nextest(&a, &["run", "--offline", "--profile", "ci"]);
    assert_eq!(code(&out), 100, "nextest exits 100 for a failed test");
    assert_eq!(verdicts(&out, "PASS"), set(&PASSING));
    assert_eq!(verdicts(&out, "FAIL"), set(&[FAILING]));
    let text = stdout(&out) + &stderr(&out);
    assert!(text.contains("said before failing"), "{text}");
    assert!(text.contains("failing on purpose"), "{text}");
    assert!(text.contains("4 tests run: 3 passed, 1 failed"), "{text}");

    // JUnit: one testcase per test, the failing one with its failure.
    let junit = a.join("target/nextest/ci/junit.xml");
    let xml = std::fs::read_to_string(&junit).unwrap();
    let doc = roxmltree::Document::parse(&xml).unwrap();
    let cases: Vec<_> = doc
        .descendants()
        .filter(|n| n.has_tag_name("testcase"))
        .collect();
    let names: BTreeSet<String> = cases
        .iter()
        .map(|c| c.attribute("name").unwrap().to_owned())
        .collect();
    assert_eq!((cases.len(), names), (4, all.clone()), "{xml}");
    let failed: Vec<_> = cases
        .iter()
        .filter(|c| c.children().any(|k| k.has_tag_name("failure")))
        .map(|c| c.attribute("name").unwrap())
        .collect();
    assert_eq!(failed, [FAILING], "{xml}");

    // Two CI machines: two checkouts, a partition each, every test once.
    let b = root.join("b");
    copy_crate(&a, &b);
    let one = nextest(
        &a,
        &[
            "run",
            "--offline",
            "--no-fail-fast",
            "--partition",
            "count:1/2",
        ],
    );
    let two = nextest(
        &b,
        &[
            "run",
            "--offline",
            "--no-fail-fast",
            "--partition",
            "count:2/2",
        ],
    );
    let ran = |o: &Output| &verdicts(o, "PASS") | &verdicts(o, "FAIL");
    let (ran1, ran2) = (ran(&one), ran(&two));
    assert!(ran1.is_disjoint(&ran2), "{ran1:?} {ran2:?}");
    assert_eq!(&ran1 | &ran2, all);
    assert!(!ran1.is_empty() && !ran2.is_empty(), "{ran1:?} {ran2:?}");

    // Build once, run elsewhere: the archive, run where no source is.
    let archive = root.join("in-vm.tar.zst");
    let out = nextest(
        &a,
        &[
            "archive",
            "--offline",
            "--archive-file",
            archive.to_str().unwrap(),
        ],
    );
    assert_eq!(code(&out), 0);
    let remote = root.join("remote");
    let _ = std::fs::remove_dir_all(&remote);
    let workspace = remote.join("workspace");
    std::fs::create_dir_all(&workspace).unwrap();
    // nextest checks the remapped workspace for its root manifest, and
    // needs nothing else of the source tree: the manifest alone goes.
    std::fs::copy(a.join("Cargo.toml"), workspace.join("Cargo.toml")).unwrap();
    // The cwd test compares with the build's path, which the remap moves.
    let filter = format!("not test(={FAILING}) and not test(=runs_in_the_packages_folder)");
    let out = nextest(
        &remote,
        &[
            "run",
            "--archive-file",
            archive.to_str().unwrap(),
            "--workspace-remap",
            workspace.to_str().unwrap(),
            "-E",
            &filter,
        ],
    );
    assert_eq!(code(&out), 0);
    assert_eq!(
        verdicts(&out, "PASS"),
        set(&PASSING[..2]),
        "{}",
        stderr(&out)
    );
    assert!(!workspace.join("src").exists());
    eprintln!("nextest VM test: {:?}", started.elapsed());
}
