//! `guestinit matrix`: the payload on every kernel × topology cell, each
//! cell a `guestinit run` of its own.

mod common;

use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::*;

fn sid_kernel() -> PathBuf {
    sid_kernel_dir().join("vmlinuz")
}

fn matrix(args: &[&str], program: &[&str]) -> Output {
    let out = Command::new(guestinit())
        .env("XDG_CACHE_HOME", shared_cache())
        .arg("matrix")
        .args(args)
        .arg("--")
        .args(program)
        .stdin(Stdio::null())
        .output()
        .expect("start guestinit");
    eprintln!(
        "--- stdout ---\n{}--- stderr ---\n{}",
        stdout(&out),
        stderr(&out)
    );
    out
}

/// The summary's rows, each split on runs of two or more spaces.
fn rows(summary: &str) -> Vec<Vec<String>> {
    summary
        .lines()
        .skip(1)
        .filter(|l| !l.contains("cells"))
        .map(|l| {
            l.split("  ")
                .map(str::trim)
                .filter(|c| !c.is_empty())
                .map(str::to_owned)
                .collect()
        })
        .collect()
}

// The sid kernel with 2 vCPUs fails (exit 7); the three others pass.
const PAYLOAD: &str =
    "nproc; uname -r; case $(uname -r) in 6.1.*) ;; *) [ $(nproc) = 2 ] && exit 7;; esac; true";

#[test]
fn two_kernels_by_two_topologies_give_four_cells_a_junit_report_and_the_failing_cells_code() {
    require_vm_prerequisites();
    let (deb, sid) = (deb_kernel(), sid_kernel());
    let dir = scratch("vm_matrix_four_cells");
    let (junit, events) = (dir.join("report.xml"), dir.join("events.jsonl"));
    let out = matrix(
        &[
            "--kernel",
            deb.to_str().unwrap(),
            "--kernel",
            sid.to_str().unwrap(),
            "--topology",
            "1,1,1,1",
            "--topology",
            "1,1,2,1",
            "--jobs",
            "2",
            "--timeout",
            VM_TIMEOUT_SECS,
            "--junit",
            junit.to_str().unwrap(),
            "--events",
            events.to_str().unwrap(),
        ],
        &["/bin/busybox", "sh", "-c", PAYLOAD],
    );
    assert_eq!(code(&out), 7, "the failing cell's own code");

    // The summary: 4 rows in kernel-major order, the right verdicts.
    let summary = stdout(&out);
    let rows = rows(&summary);
    let cells: Vec<(String, &str, &str, &str)> = rows
        .iter()
        .map(|r| (r[0].clone(), r[1].as_str(), r[2].as_str(), r[3].as_str()))
        .collect();
    let (d, s) = (deb.to_str().unwrap(), sid.to_str().unwrap());
    assert_eq!(
        cells,
        [
            (d.to_owned(), "1,1,1,1", "passed", "0"),
            (d.to_owned(), "1,1,2,1", "passed", "0"),
            (s.to_owned(), "1,1,1,1", "passed", "0"),
            (s.to_owned(), "1,1,2,1", "failed", "7"),
        ],
        "{summary}"
    );
    assert!(
        rows[3][5].contains("the payload exited with 7"),
        "{summary}"
    );
    assert!(
        summary.contains(&format!(
            "1 of 4 cells failed; the first: {s} × 1,1,2,1 (exit 7)"
        )),
        "{summary}"
    );
    // Plain progress lines: stderr is not a terminal here.
    let progress = stderr(&out);
    assert_eq!(progress.matches(": started").count(), 4, "{progress}");
    assert!(
        progress.contains(&format!("cell {d} × 1,1,2,1: passed in ")),
        "{progress}"
    );
    assert!(
        progress.contains(&format!("cell {s} × 1,1,2,1: failed (exit 7)")),
        "{progress}"
    );

    // The JUnit report, parsed: one testcase per cell, each with its output.
    let xml = std::fs::read_to_string(&junit).unwrap();
    let doc = roxmltree::Document::parse(&xml).unwrap();
    let cases: Vec<_> = doc
        .descendants()
        .filter(|n| n.has_tag_name("testcase"))
        .collect();
    assert_eq!(cases.len(), 4, "{xml}");
    let text = |case: &roxmltree::Node, tag| {
        case.children()
            .find(|n| n.has_tag_name(tag))
            .and_then(|n| n.text())
            .unwrap_or_default()
            .to_owned()
    };
    for (case, (kernel, topology, release, cpus)) in cases.iter().zip([
        (d, "1,1,1,1", "6.1.", "1"),
        (d, "1,1,2,1", "6.1.", "2"),
        (s, "1,1,1,1", "7.", "1"),
        (s, "1,1,2,1", "7.", "2"),
    ]) {
        assert_eq!(
            case.attribute("name"),
            Some(&*format!("{kernel} × {topology}"))
        );
        let lines: Vec<String> = text(case, "system-out")
            .lines()
            .map(str::to_owned)
            .collect();
        assert_eq!(lines[0], cpus, "{xml}");
        assert!(lines[1].starts_with(release), "{xml}");
        let failure = case.children().find(|n| n.has_tag_name("failure"));
        match topology == "1,1,2,1" && kernel == s {
            true => {
                let failure = failure.expect("a failure element");
                assert_eq!(
                    failure.attribute("message"),
                    Some("exit 7: the payload exited with 7")
                );
                assert_eq!(failure.attribute("type"), Some("exited"));
            }
            false => assert!(failure.is_none(), "{xml}"),
        }
    }
    let suite = doc
        .descendants()
        .find(|n| n.has_tag_name("testsuite"))
        .unwrap();
    assert_eq!(
        (suite.attribute("tests"), suite.attribute("failures")),
        (Some("4"), Some("1"))
    );

    // The events: the matrix's start and end around every cell's, tagged.
    let lines: Vec<serde_json::Value> = std::fs::read_to_string(&events)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines[0]["event"], "matrix_start");
    assert_eq!(lines[0]["cells"].as_array().unwrap().len(), 4);
    let end = lines.last().unwrap();
    assert_eq!(
        (end["event"].as_str(), end["exit_code"].as_u64()),
        (Some("matrix_end"), Some(7))
    );
    assert_eq!(
        end["first_failure"],
        serde_json::json!({"kernel": s, "topology": "1,1,2,1"})
    );
    let ends: Vec<_> = lines.iter().filter(|l| l["event"] == "end").collect();
    assert_eq!(ends.len(), 4);
    assert!(lines[1..lines.len() - 1]
        .iter()
        .all(|l| l["cell"]["kernel"].is_string()));
    let failed = ends.iter().find(|e| e["exit_code"] == 7).unwrap();
    assert_eq!(
        failed["cell"],
        serde_json::json!({"kernel": s, "topology": "1,1,2,1"})
    );
}

#[test]
fn a_missing_kernel_or_a_bad_topology_fails_its_cells_alone_with_the_reason() {
    // Host only: no cell boots. The real kernel's cell runs as far as its
    // missing program, which shows it ran; the missing kernel's cell says so.
    let deb = deb_kernel();
    let dir = scratch("vm_matrix_missing_kernel");
    let (missing, junit) = (dir.join("no-such-vmlinuz"), dir.join("r.xml"));
    let out = matrix(
        &[
            "--kernel",
            missing.to_str().unwrap(),
            "--kernel",
            deb.to_str().unwrap(),
            "--topology",
            "1,1,1,1",
            "--topology",
            "1,x,1,1",
            "--jobs",
            "2",
            "--junit",
            junit.to_str().unwrap(),
        ],
        &["/no/such/program"],
    );
    assert_eq!(code(&out), 249);
    let summary = stdout(&out);
    let rows = rows(&summary);
    assert_eq!(rows.len(), 4, "{summary}");
    assert!(
        rows.iter().all(|r| r[2] == "error" && r[3] == "249"),
        "{summary}"
    );
    let missing = missing.display().to_string();
    assert_eq!(
        rows[0][5],
        format!("kernel {missing} not found"),
        "{summary}"
    );
    assert!(
        rows[2][5].contains("/no/such/program"),
        "the other kernel's cell ran: {summary}"
    );
    for row in [&rows[1], &rows[3]] {
        assert_eq!(
            row[5], "invalid value '1,x,1,1' for '--topology': LLCS must be a number from 1 to 64",
            "{summary}"
        );
    }
    assert!(
        summary.contains(&format!("the first: {missing} × 1,1,1,1 (exit 249)")),
        "{summary}"
    );
    // Said before any cell started.
    let progress = stderr(&out);
    let refused = progress.find("× 1,x,1,1: error (exit 249)").unwrap();
    assert!(refused < progress.find(": started").unwrap(), "{progress}");
    let xml = std::fs::read_to_string(&junit).unwrap();
    let doc = roxmltree::Document::parse(&xml).unwrap();
    assert_eq!(
        doc.descendants()
            .filter(|n| n.has_tag_name("failure"))
            .count(),
        4
    );
}

#[test]
fn a_matrix_refuses_what_every_cell_would_share_and_checks_its_report_path_first() {
    let dir = scratch("vm_matrix_usage");
    for (args, says) in [
        (
            vec!["--com1-log", "c1.log"],
            "does not take --com1-log".to_owned(),
        ),
        (
            vec!["--junit", "/no/such/dir/r.xml"],
            "cannot write /no/such/dir/r.xml".to_owned(),
        ),
    ] {
        let mut all = vec!["--kernel", "/no/such/kernel"];
        all.extend(args);
        let out = Command::new(guestinit())
            .current_dir(&dir)
            .arg("matrix")
            .args(&all)
            .args(["--", "true"])
            .output()
            .unwrap();
        assert_eq!(code(&out), 249, "{all:?}");
        assert!(stderr(&out).contains(&says), "{}", stderr(&out));
        assert!(!stderr(&out).contains("started"), "{}", stderr(&out));
    }
}

/// QEMUs whose command line holds `marker` (the host name is in the
/// kernel's command line).
fn qemus_with(marker: &str) -> usize {
    with_marker(marker)
        .iter()
        .filter(|p| p.contains(": qemu-system"))
        .count()
}

/// Processes whose command line holds `marker`: the matrix, its cells'
/// runs (`--hostname`) and their QEMUs.
fn with_marker(marker: &str) -> Vec<String> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
        let text = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        if text.contains(marker) && !text.contains("vm_matrix") {
            found.push(format!("{}: {text}", entry.file_name().to_string_lossy()));
        }
    }
    found
}

/// A matrix of one kernel by two topologies whose cells sleep (the
/// cells' host name is `marker`, to find their QEMUs), once both QEMUs are
/// up.
fn sleeping_matrix(marker: &str, stdio: fn() -> Stdio) -> std::process::Child {
    require_vm_prerequisites();
    let child = Command::new(guestinit())
        .env("XDG_CACHE_HOME", shared_cache())
        .args(["matrix", "--kernel"])
        .arg(deb_kernel())
        .args([
            "--topology",
            "1,1,1,1",
            "--topology",
            "1,1,2,1",
            "--jobs",
            "2",
        ])
        .args(["--timeout", VM_TIMEOUT_SECS, "--hostname", marker, "--cold"])
        .args(["--", "/bin/busybox", "sh", "-c", "echo up; sleep 600"])
        .stdin(Stdio::null())
        .stdout(stdio())
        .stderr(stdio())
        .spawn()
        .unwrap();
    let began = Instant::now();
    while qemus_with(marker) < 2 {
        assert!(
            began.elapsed() < Duration::from_secs(120),
            "no QEMUs came up"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    child
}

#[test]
fn sigterm_stops_every_cell_and_leaves_no_qemu() {
    let marker = format!("mx-stop-{}", std::process::id());
    let child = sleeping_matrix(&marker, Stdio::piped);
    std::thread::sleep(Duration::from_secs(2));
    let pid = rustix::process::Pid::from_raw(child.id() as i32).unwrap();
    rustix::process::kill_process(pid, rustix::process::Signal::TERM).unwrap();
    let out = child.wait_with_output().unwrap();
    eprintln!(
        "--- stdout ---\n{}--- stderr ---\n{}",
        stdout(&out),
        stderr(&out)
    );
    assert_eq!(code(&out), 143);
    assert!(
        with_marker(&marker).is_empty(),
        "{:?}",
        with_marker(&marker)
    );
    let summary = stdout(&out);
    let rows = rows(&summary);
    assert_eq!(rows.len(), 2, "{summary}");
    assert!(
        rows.iter().all(|r| r[2] == "stopped" && r[3] == "143"),
        "{summary}"
    );
}

#[test]
fn a_killed_matrix_takes_its_cells_and_their_qemus_along() {
    let marker = format!("mx-kill-{}", std::process::id());
    let mut child = sleeping_matrix(&marker, Stdio::null);
    child.kill().unwrap();
    child.wait().unwrap();
    let killed = Instant::now();
    while !with_marker(&marker).is_empty() {
        assert!(
            killed.elapsed() < Duration::from_secs(10),
            "left behind: {:?}",
            with_marker(&marker)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}
