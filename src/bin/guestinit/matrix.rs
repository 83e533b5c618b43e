//! `guestinit matrix`: the payload on every kernel × topology cell.
//!
//! A cell is a child `guestinit run` (this very executable), so each cell
//! is exactly a run: memory sized as run sizes it, every failure as run's.
//! Its stdout, stderr and `--events` go to files in a private scratch dir,
//! never to memory; the verdict is read from its events' `end` line. Only
//! what `run` cannot say before a boot of its own is checked here: a
//! topology that does not parse or disagrees with `--cpus` fails its cell
//! at once, without a child. Cells are spawned and reaped from the main
//! thread alone, since a child's PR_SET_PDEATHSIG fires when the *thread*
//! that forked it ends.

use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io::{self, BufRead, BufReader, IsTerminal, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Map, Value};
use signal_hook::iterator::Signals;

use crate::cli::{forwarded_options, MatrixArgs};
use crate::error::{Error, Result, USAGE};
use crate::scratch::ScratchDir;
use crate::topology::{self, Topology};

/// How much of a cell's stdout and stderr its JUnit testcase keeps: the end.
const TAIL: u64 = 64 * 1024;

/// What stops the matrix (and, forwarded, each running cell), as for run.
const STOP_SIGNALS: [i32; 3] = [libc::SIGTERM, libc::SIGINT, libc::SIGHUP];

/// How often the main thread looks at its children and signals.
const TICK: Duration = Duration::from_millis(50);

struct Cell {
    kernel: OsString,
    topology: Option<OsString>,
    /// Why the cell cannot start, known before any boot.
    refused: Option<String>,
}

impl Cell {
    fn kernel(&self) -> String {
        self.kernel.to_string_lossy().into_owned()
    }
    fn topology(&self) -> String {
        self.topology
            .as_ref()
            .map_or_else(|| "-".into(), |t| t.to_string_lossy().into_owned())
    }
    fn name(&self) -> String {
        format!("{} × {}", self.kernel(), self.topology())
    }
    fn tag(&self) -> Value {
        json!({"kernel": self.kernel(), "topology": self.topology.as_ref().map(|t| t.to_string_lossy())})
    }
}

/// How a cell ended.
#[derive(Clone)]
struct Outcome {
    exit_code: u8,
    /// The `end` event's verdict (`exited`, `timeout`, `error`, ...).
    verdict: String,
    /// Its one-line message: null when the payload's code is the status.
    error: Option<String>,
    time: Duration,
}

impl Outcome {
    fn passed(&self) -> bool {
        self.exit_code == 0 && self.verdict == "exited"
    }
    /// `passed`, `failed` (the payload's own code), or run's verdict.
    fn word(&self) -> &str {
        match self.verdict.as_str() {
            _ if self.passed() => "passed",
            "exited" => "failed",
            other => other,
        }
    }
    fn first_line(&self) -> String {
        match &self.error {
            Some(error) => error.lines().next().unwrap_or_default().to_owned(),
            None if self.passed() => String::new(),
            None => format!("the payload exited with {}", self.exit_code),
        }
    }
}

/// The files of one cell in the scratch dir.
struct Files {
    stdout: PathBuf,
    stderr: PathBuf,
    events: PathBuf,
}

fn files(dir: &Path, index: usize) -> Files {
    let at = |ext| dir.join(format!("cell-{index}.{ext}"));
    Files {
        stdout: at("stdout"),
        stderr: at("stderr"),
        events: at("events"),
    }
}

struct Running {
    index: usize,
    child: Child,
    started: Instant,
}

pub fn main(args: MatrixArgs) -> Result<u8> {
    let began = Instant::now();
    let opts = &args.opts;
    for (given, option) in [
        (opts.vm.com1_log.is_some(), "--com1-log"),
        (opts.vm.com2_log.is_some(), "--com2-log"),
    ] {
        if given {
            return Err(Error::MatrixOption {
                option,
                why: "every cell would write the same file",
            });
        }
    }
    let cells = cells(&args);
    // Checked, and created, before any boot: a report that cannot be
    // written is found now, not after the last cell.
    let junit = match &opts.junit {
        Some(path) => Some((path, create(path)?)),
        None => None,
    };
    let events_to_stdout = opts.events.as_deref() == Some(Path::new("-"));
    let mut events: Option<Box<dyn Write>> = match &opts.events {
        None => None,
        Some(_) if events_to_stdout => Some(Box::new(io::stdout())),
        Some(path) => Some(Box::new(io::BufWriter::new(create(path)?))),
    };
    let jobs = opts.jobs.map_or_else(
        || std::thread::available_parallelism().map_or(1, |n| n.get()),
        |n| n as usize,
    );
    let scratch = ScratchDir::new("matrix").map_err(|source| Error::VmSetup {
        what: "creating the matrix's scratch dir".into(),
        source,
    })?;
    let exe = std::env::current_exe().map_err(|source| Error::VmSetup {
        what: "finding guestinit's own executable for the cells".into(),
        source,
    })?;
    let raw: Vec<OsString> = std::env::args_os().skip(2).collect();
    let forwarded = forwarded_options(&raw);
    let mut signals = Signals::new(STOP_SIGNALS).map_err(|source| Error::VmSetup {
        what: "handling stop signals".into(),
        source,
    })?;

    emit(
        &mut events,
        json!({"event": "matrix_start", "t": 0.0, "jobs": jobs,
               "cells": cells.iter().map(Cell::tag).collect::<Vec<_>>()}),
    );
    let mut progress = Progress::new(cells.len());
    let mut outcomes: Vec<Option<Outcome>> = vec![None; cells.len()];
    let mut running: Vec<Running> = Vec::new();
    // Said first, before any boot: the cells that cannot start.
    for (index, cell) in cells.iter().enumerate() {
        let Some(why) = &cell.refused else { continue };
        let outcome = Outcome {
            exit_code: USAGE,
            verdict: "error".into(),
            error: Some(why.clone()),
            time: Duration::ZERO,
        };
        progress.finished(index, cell, &outcome);
        emit(
            &mut events,
            json!({"event": "end", "t": 0.0, "exit_code": USAGE, "verdict": "error",
                   "error": why, "cell": cell.tag()}),
        );
        outcomes[index] = Some(outcome);
    }
    let mut next = 0;
    let mut stop: Option<i32> = None;
    loop {
        for signal in signals.pending() {
            stop.get_or_insert(signal);
            // Each cell's run stops its VM in order; a second signal, as
            // for run, kills QEMU.
            for cell in &running {
                forward(&cell.child, signal);
            }
        }
        while stop.is_none() && running.len() < jobs && next < cells.len() {
            let index = next;
            next += 1;
            let cell = &cells[index];
            if outcomes[index].is_some() {
                continue; // refused before the loop
            }
            let f = files(scratch.path(), index);
            let child = spawn(&exe, cell, &forwarded, &opts.program, &f);
            match child {
                Ok(child) => {
                    progress.started(index, cell);
                    running.push(Running {
                        index,
                        child,
                        started: Instant::now(),
                    });
                }
                Err(source) => {
                    // Nothing of this cell ran; the matrix cannot go on sanely.
                    stop_all(&mut running, libc::SIGTERM);
                    return Err(Error::VmSetup {
                        what: format!("starting {} for cell {}", exe.display(), cell.name()),
                        source,
                    });
                }
            }
        }
        let mut i = 0;
        while i < running.len() {
            match running[i].child.try_wait() {
                Ok(Some(status)) => {
                    let done = running.swap_remove(i);
                    let cell = &cells[done.index];
                    let f = files(scratch.path(), done.index);
                    let outcome = outcome(&f, status, done.started.elapsed());
                    progress.finished(done.index, cell, &outcome);
                    relay_events(&mut events, &f.events, cell);
                    outcomes[done.index] = Some(outcome);
                }
                Ok(None) => i += 1,
                Err(_) => i += 1,
            }
        }
        if running.is_empty() && (next == cells.len() || stop.is_some()) {
            break;
        }
        std::thread::sleep(TICK);
    }
    progress.clear();

    let first_failure = outcomes
        .iter()
        .enumerate()
        .find_map(|(i, o)| o.as_ref().filter(|o| !o.passed()).map(|o| (i, o)));
    let summary = summary(&cells, &outcomes, first_failure.map(|(i, _)| i));
    if events_to_stdout {
        crate::say::say_err!("{summary}");
    } else {
        crate::say::say_out!("{summary}");
    }
    if let Some((path, file)) = junit {
        write_junit(
            path,
            file,
            &cells,
            &outcomes,
            scratch.path(),
            began.elapsed(),
        )?;
    }
    let code = match (stop, first_failure) {
        (Some(signal), _) => 128 + signal as u8,
        (None, Some((_, outcome))) => outcome.exit_code,
        (None, None) => 0,
    };
    let passed = outcomes.iter().flatten().filter(|o| o.passed()).count();
    emit(
        &mut events,
        json!({"event": "matrix_end", "t": secs(began.elapsed()), "exit_code": code,
               "passed": passed, "failed": outcomes.iter().flatten().count() - passed,
               "not_run": outcomes.iter().filter(|o| o.is_none()).count(),
               "first_failure": first_failure.map(|(i, _)| cells[i].tag())}),
    );
    if let Some(events) = &mut events {
        let _ = events.flush();
    }
    Ok(code)
}

/// Every cell, kernel-major; a topology that cannot be a cell's is
/// refused with the message run would give for it.
fn cells(args: &MatrixArgs) -> Vec<Cell> {
    let topologies: Vec<Option<&OsString>> = match args.topologies.is_empty() {
        true => vec![None],
        false => args.topologies.iter().map(Some).collect(),
    };
    let mut cells = Vec::new();
    for kernel in &args.kernels {
        for topology in &topologies {
            cells.push(Cell {
                kernel: kernel.clone(),
                topology: topology.cloned(),
                refused: topology.and_then(|t| refusal(t, args.opts.vm.cpus)),
            });
        }
    }
    cells
}

fn refusal(spec: &OsStr, cpus: Option<u32>) -> Option<String> {
    let text = spec.to_string_lossy();
    match Topology::parse(&text) {
        Err(why) => Some(format!("invalid value '{text}' for '--topology': {why}")),
        Ok(t) => topology::cpu_count(cpus, Some(t)).err().map(|d| {
            Error::CpusDisagree {
                cpus: d.cpus,
                topology: d.topology,
            }
            .to_string()
        }),
    }
}

fn create(path: &Path) -> Result<File> {
    File::create(path).map_err(|source| Error::Write {
        path: path.to_owned(),
        source,
    })
}

/// `guestinit run --kernel K [--topology T] --events FILE [options] -- PROGRAM`.
fn spawn(
    exe: &Path,
    cell: &Cell,
    forwarded: &[OsString],
    program: &[OsString],
    f: &Files,
) -> io::Result<Child> {
    let mut command = Command::new(exe);
    command.arg("run").arg("--kernel").arg(&cell.kernel);
    if let Some(topology) = &cell.topology {
        command.arg("--topology").arg(topology);
    }
    command
        .arg("--events")
        .arg(&f.events)
        .args(forwarded)
        .arg("--")
        .args(program)
        .stdin(Stdio::null())
        .stdout(File::create(&f.stdout)?)
        .stderr(File::create(&f.stderr)?);
    // Its own process group (a terminal's Ctrl-C reaches the matrix, which
    // sends each cell one signal), and it dies with the matrix.
    crate::run::bind_to_host(&mut command, &[]);
    command.spawn()
}

fn forward(child: &Child, signal: i32) {
    let pid = rustix::process::Pid::from_raw(child.id() as i32);
    if let (Some(pid), Some(signal)) = (pid, rustix::process::Signal::from_named_raw(signal)) {
        let _ = rustix::process::kill_process(pid, signal);
    }
}

fn stop_all(running: &mut Vec<Running>, signal: i32) {
    for cell in running.iter() {
        forward(&cell.child, signal);
    }
    for mut cell in running.drain(..) {
        let _ = cell.child.wait();
    }
}

/// The cell's verdict from its events' `end` line; without one (run did
/// not get that far: a usage error, a crash), its exit status and the
/// first line of its stderr.
fn outcome(f: &Files, status: ExitStatus, time: Duration) -> Outcome {
    let end = File::open(&f.events).ok().and_then(|file| {
        BufReader::new(file)
            .lines()
            .map_while(io::Result::ok)
            .filter_map(|line| serde_json::from_str::<Value>(&line).ok())
            .filter(|v| v["event"] == "end")
            .last()
    });
    let code = status.code().map_or_else(
        || 128 + std::os::unix::process::ExitStatusExt::signal(&status).unwrap_or(0) as u8,
        |c| c as u8,
    );
    match end {
        // The process's status wins: a stop signal after `end` gives 128+n.
        Some(end) => Outcome {
            exit_code: code,
            verdict: end["verdict"].as_str().unwrap_or("error").to_owned(),
            error: end["error"].as_str().map(str::to_owned),
            time,
        },
        None => Outcome {
            exit_code: code,
            verdict: "error".into(),
            error: Some(first_line(&f.stderr).unwrap_or_else(|| format!("run exited {code}"))),
            time,
        },
    }
}

/// The first non-empty line of a file, from its first 4 KiB.
fn first_line(path: &Path) -> Option<String> {
    let mut head = Vec::new();
    File::open(path)
        .ok()?
        .take(4096)
        .read_to_end(&mut head)
        .ok()?;
    String::from_utf8_lossy(&head)
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .map(str::to_owned)
}

/// The last [`TAIL`] bytes of a file.
fn tail(path: &Path) -> Vec<u8> {
    let Ok(mut file) = File::open(path) else {
        return Vec::new();
    };
    let len = file.metadata().map_or(0, |m| m.len());
    let mut bytes = Vec::new();
    if file.seek(SeekFrom::Start(len.saturating_sub(TAIL))).is_ok() {
        let _ = file.take(TAIL).read_to_end(&mut bytes);
    }
    bytes
}

fn secs(d: Duration) -> f64 {
    (d.as_secs_f64() * 1000.0).round() / 1000.0
}

fn emit(events: &mut Option<Box<dyn Write>>, mut event: Value) {
    let Some(out) = events else { return };
    if let Some(object) = event.as_object_mut() {
        object.insert("v".into(), 1.into());
    }
    let _ = writeln!(out, "{event}");
}

/// A finished cell's own events, each with its cell added, in its order.
fn relay_events(events: &mut Option<Box<dyn Write>>, path: &Path, cell: &Cell) {
    let Some(out) = events else { return };
    let Ok(file) = File::open(path) else { return };
    for line in BufReader::new(file).lines().map_while(io::Result::ok) {
        if let Ok(Value::Object(mut object)) = serde_json::from_str::<Value>(&line) {
            object.insert("cell".into(), cell.tag());
            let _ = writeln!(out, "{}", Value::Object(Map::from_iter(object)));
        }
    }
    let _ = out.flush();
}

fn summary(cells: &[Cell], outcomes: &[Option<Outcome>], first: Option<usize>) -> String {
    let mut rows = vec![[
        "KERNEL".to_owned(),
        "TOPOLOGY".into(),
        "VERDICT".into(),
        "EXIT".into(),
        "TIME".into(),
        "FAILURE".into(),
    ]];
    for (cell, outcome) in cells.iter().zip(outcomes) {
        rows.push(match outcome {
            Some(o) => [
                cell.kernel(),
                cell.topology(),
                o.word().into(),
                o.exit_code.to_string(),
                format!("{:.1} s", o.time.as_secs_f64()),
                o.first_line(),
            ],
            None => [
                cell.kernel(),
                cell.topology(),
                "not run".into(),
                "-".into(),
                "-".into(),
                "stopped before it started".into(),
            ],
        });
    }
    let widths: Vec<usize> = (0..5)
        .map(|c| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0))
        .collect();
    let mut text = String::new();
    for row in &rows {
        let mut line = String::new();
        for (c, width) in widths.iter().enumerate() {
            line += &format!("{:<width$}  ", row[c]);
        }
        line += &row[5];
        text += line.trim_end();
        text.push('\n');
    }
    let ran = outcomes.iter().flatten().count();
    let failed = outcomes.iter().flatten().filter(|o| !o.passed()).count();
    text += &match first {
        None if ran == cells.len() => format!("all {ran} cells passed\n"),
        None => format!("{ran} of {} cells ran, all passed\n", cells.len()),
        Some(i) => format!(
            "{failed} of {} cells failed; the first: {} (exit {})\n",
            cells.len(),
            cells[i].name(),
            outcomes[i].as_ref().map_or(0, |o| o.exit_code)
        ),
    };
    text
}

fn write_junit(
    path: &Path,
    file: File,
    cells: &[Cell],
    outcomes: &[Option<Outcome>],
    dir: &Path,
    time: Duration,
) -> Result<()> {
    use quick_junit::{NonSuccessKind, Report, TestCase, TestCaseStatus, TestSuite};
    let mut suite = TestSuite::new("guestinit matrix");
    for (index, (cell, outcome)) in cells.iter().zip(outcomes).enumerate() {
        let status = match outcome {
            Some(o) if o.passed() => TestCaseStatus::success(),
            Some(o) => {
                let mut status = TestCaseStatus::non_success(NonSuccessKind::Failure);
                status
                    .set_message(format!("exit {}: {}", o.exit_code, o.first_line()))
                    .set_type(o.verdict.as_str());
                status
            }
            None => {
                let mut status = TestCaseStatus::skipped();
                status.set_message("stopped before it started");
                status
            }
        };
        let mut case = TestCase::new(cell.name(), status);
        case.set_classname(cell.kernel());
        if let Some(o) = outcome {
            let f = files(dir, index);
            case.set_time(o.time)
                .set_system_out_lossy(tail(&f.stdout))
                .set_system_err_lossy(tail(&f.stderr));
            if let Some(why) = o.error.as_ref().filter(|_| cell.refused.is_some()) {
                case.set_system_err(why.as_str());
            }
        }
        suite.add_test_case(case);
    }
    suite.set_time(time);
    let mut report = Report::new("guestinit matrix");
    report.add_test_suite(suite).set_time(time);
    let mut out = io::BufWriter::new(file);
    let write_error = |source| Error::Write {
        path: path.to_owned(),
        source,
    };
    report
        .serialize(&mut out)
        .map_err(|e| write_error(io::Error::other(e)))?;
    out.flush().map_err(write_error)
}

/// Progress as cells start and end: indicatif's live lines on a terminal
/// (indicatif: the maintained crate for several redrawn lines at once,
/// which cargo and nextest use), plain lines when stderr is a file or pipe.
enum Progress {
    Live {
        bars: indicatif::MultiProgress,
        cells: Vec<Option<indicatif::ProgressBar>>,
    },
    Plain,
}

impl Progress {
    fn new(cells: usize) -> Progress {
        match io::stderr().is_terminal() {
            true => Progress::Live {
                bars: indicatif::MultiProgress::new(),
                cells: vec![None; cells],
            },
            false => Progress::Plain,
        }
    }

    fn started(&mut self, index: usize, cell: &Cell) {
        match self {
            Progress::Plain => crate::say::say_errln!("cell {}: started", cell.name()),
            Progress::Live { bars, cells } => {
                let bar = bars.add(indicatif::ProgressBar::new_spinner());
                if let Ok(style) =
                    indicatif::ProgressStyle::with_template("{spinner} {prefix} {elapsed} {msg}")
                {
                    bar.set_style(style);
                }
                bar.set_prefix(cell.name());
                bar.set_message("running");
                bar.enable_steady_tick(Duration::from_millis(100));
                cells[index] = Some(bar);
            }
        }
    }

    fn finished(&mut self, index: usize, cell: &Cell, outcome: &Outcome) {
        let text = match outcome.passed() {
            true => format!("passed in {:.1} s", outcome.time.as_secs_f64()),
            false => format!(
                "{} (exit {}): {}",
                outcome.word(),
                outcome.exit_code,
                outcome.first_line()
            ),
        };
        match self {
            Progress::Plain => crate::say::say_errln!("cell {}: {text}", cell.name()),
            Progress::Live { bars, cells } => {
                let bar = cells[index]
                    .take()
                    .unwrap_or_else(|| bars.add(indicatif::ProgressBar::new_spinner()));
                bar.set_prefix(cell.name());
                bar.set_message(text);
                if let Ok(style) = indicatif::ProgressStyle::with_template("{prefix}: {msg}") {
                    bar.set_style(style);
                }
                bar.finish();
            }
        }
    }

    /// Leaves the finished lines on the terminal, the cursor on a line
    /// of its own below them for the summary.
    fn clear(self) {
        if let Progress::Live { bars, cells } = self {
            for bar in cells.iter().flatten() {
                bar.finish();
            }
            drop(cells);
            drop(bars);
            crate::say::say_errln!();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_topology_is_refused_with_runs_reason_before_any_boot() {
        let refused = |spec: &str, cpus| refusal(OsStr::new(spec), cpus);
        assert_eq!(refused("1,1,2,1", None), None);
        assert_eq!(refused("1,1,2,1", Some(2)), None);
        assert_eq!(
            refused("1,x,1,1", None).as_deref(),
            Some("invalid value '1,x,1,1' for '--topology': LLCS must be a number from 1 to 64")
        );
        let disagree = refused("1,1,2,1", Some(3)).unwrap();
        assert!(
            disagree.starts_with("--cpus 3 and --topology 1,1,2,1 disagree"),
            "{disagree}"
        );
    }

    #[test]
    fn a_cells_tail_is_its_last_64_kib_and_its_first_line_skips_blank_ones() {
        let dir = ScratchDir::new("matrix-test").unwrap();
        let path = dir.path().join("out");
        let mut text = String::from("\n\n  first\nsecond\n");
        text += &"x".repeat(100 * 1024);
        text += "END";
        std::fs::write(&path, &text).unwrap();
        assert_eq!(first_line(&path).as_deref(), Some("first"));
        let end = tail(&path);
        assert_eq!(end.len() as u64, TAIL);
        assert!(end.ends_with(b"xEND"));
        assert!(tail(&dir.path().join("none")).is_empty());
    }
}
