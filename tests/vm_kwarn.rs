//! The kernel's warnings (`/dev/kmsg` splats): a module whose init calls
//! `WARN_ON(1)`, built against the Debian 12 kernel's headers
//! (scripts/setup-tests.sh), is loaded in the guest; the host says the
//! splat, emits its event, keeps it in `--kernel-log`, and fails the run
//! with 247 under `--kernel-warnings fail`. A payload's own `WARNING:`
//! written to /dev/kmsg counts for nothing.

mod common;

use common::*;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The module of tests/kwarn_module, built once per test binary against
/// the headers of the kernel in .cache/kernel.
fn module() -> PathBuf {
    static BUILT: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    BUILT.get_or_init(build_module).clone()
}

fn build_module() -> PathBuf {
    let release = std::fs::read_dir(cache().join("kernel/lib/modules"))
        .ok()
        .and_then(|mut d| d.find_map(|e| e.ok()))
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .expect("no module tree in .cache/kernel: run scripts/setup.sh");
    let src = cache().join("kernel-headers/usr/src");
    let flavour = src.join(format!("linux-headers-{release}"));
    // Debian's flavour Makefile includes the -common one by its installed
    // path (/usr/src/...); naming it with -f builds from the cache instead.
    let common_dir = std::fs::read_dir(&src)
        .ok()
        .and_then(|d| {
            d.filter_map(|e| e.ok().map(|e| e.path()))
                .find(|p| p.to_string_lossy().ends_with("-common"))
        })
        .filter(|_| flavour.join("Makefile").is_file())
        .unwrap_or_else(|| {
            panic!(
                "no kernel headers for {release} in {}: run scripts/setup-tests.sh",
                src.display()
            )
        });
    let dir = scratch("kwarn-module");
    let here = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/kwarn_module");
    for f in ["kwarn.c", "Kbuild"] {
        std::fs::copy(here.join(f), dir.join(f)).unwrap();
    }
    let out = Command::new("make")
        .arg("-C")
        .arg(&flavour)
        .arg("-f")
        .arg(common_dir.join("Makefile"))
        .arg(format!("M={}", dir.display()))
        .arg("CC=gcc-12")
        .arg("modules")
        .output()
        .expect("make (build-essential) and gcc-12 are installed");
    assert!(
        out.status.success(),
        "building the module failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    dir.join("kwarn.ko")
}

fn events(path: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

const SUMMARY: &str = "guestinit: kernel warning at ";

#[test]
fn a_modules_warn_on_is_said_kept_and_fails_the_run_with_247_under_fail() {
    let ko = module();
    let dir = scratch("kwarn-fail");
    let (ev, log) = (dir.join("events.jsonl"), dir.join("kernel.log"));
    let include = format!("{}:/kwarn.ko", ko.display());
    let out = sh(
        &[
            "--include",
            &include,
            "--events",
            ev.to_str().unwrap(),
            "--kernel-log",
            log.to_str().unwrap(),
            "--kernel-warnings",
            "fail",
        ],
        "busybox insmod /kwarn.ko && echo loaded",
    );
    let err = stderr(&out);
    assert_eq!(code(&out), 247, "{err}");
    assert_eq!(stdout(&out), "loaded\n", "the payload itself passed");
    let summary = err
        .lines()
        .find(|l| l.starts_with(SUMMARY))
        .expect("a summary line");
    assert!(
        summary.contains("WARNING: CPU: ") && summary.contains("kwarn_init"),
        "{summary}"
    );
    assert!(
        err.contains("  ---[ end trace"),
        "the splat up to its end, indented:\n{err}"
    );
    assert_eq!(err.matches(SUMMARY).count(), 1, "one splat:\n{err}");
    assert!(
        err.contains("the kernel logged 1 warning (--kernel-warnings fail)"),
        "why 247:\n{err}"
    );
    let lines = events(&ev);
    let kw: Vec<_> = lines
        .iter()
        .filter(|l| l["event"] == "kernel_warning")
        .collect();
    assert_eq!(kw.len(), 1, "{lines:?}");
    assert_eq!(kw[0]["kind"], "warning");
    assert_eq!(kw[0]["cut"], false);
    assert!(
        kw[0]["text"].as_str().unwrap().contains("Call Trace:"),
        "{:?}",
        kw[0]
    );
    let end = lines.last().unwrap();
    assert_eq!(
        (&end["event"], &end["exit_code"], &end["verdict"]),
        (&"end".into(), &247.into(), &"kernel_warnings".into())
    );
    let kept = std::fs::read_to_string(&log).unwrap();
    assert!(
        kept.starts_with("kernel warning at ")
            && kept.contains("kwarn_init")
            && kept.contains("---[ end trace"),
        "{kept}"
    );
}

#[test]
fn by_default_a_warning_is_reported_and_the_payloads_code_stands() {
    let ko = module();
    let include = format!("{}:/kwarn.ko", ko.display());
    let out = sh(&["--include", &include], "busybox insmod /kwarn.ko");
    let err = stderr(&out);
    assert_eq!(code(&out), 0, "{err}");
    assert_eq!(
        err.matches(SUMMARY).count(),
        1,
        "the summary still printed:\n{err}"
    );
}

#[test]
fn a_payloads_warning_written_to_dev_kmsg_is_not_counted() {
    // With and without a priority: the kernel gives both LOG_USER.
    let script = "echo 'WARNING: forged' > /dev/kmsg; \
                  echo '<4>WARNING: CPU: 0 PID: 1 at forged.c:1 forged+0x0/0x0' > /dev/kmsg; \
                  echo '<0>BUG: forged' > /dev/kmsg; busybox dmesg | busybox grep -c forged";
    let out = sh(&["--kernel-warnings", "fail"], script);
    let err = stderr(&out);
    assert_eq!(code(&out), 0, "{err}");
    assert_eq!(
        stdout(&out),
        "3\n",
        "the three lines are in the kernel's log"
    );
    assert!(!err.contains("guestinit: kernel "), "no summary:\n{err}");
}
