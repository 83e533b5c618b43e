//! Before the scheduler starts: sched_ext must exist, its cgroups are made,
//! BPF statistics are on and /sched_enable has run; then it is spawned and
//! moved into its cgroup (`spawn_in`, also for a start on request; the
//! `Sched` is built by `sched::start`). /sched_disable runs after it stops. Each failure
//! is a typed value naming its step; the boot reports it and exits 248.

use crate::console::warning;
use crate::small_file::{read_prefix, write_file};
use crate::spawn::{spawn, Command, Stdio};
use core::ffi::CStr;
use core::fmt::{self, Write};
use guestinit::cell::TakeOnce;
use guestinit::fmt::{ErrnoText, Lossy, SliceWriter};
use guestinit::parse::sched_script::{parse_line, ScriptError};
use guestinit::proto::{path, sched};
use heapless::Vec;
use rustix::fs::Mode;
use rustix::fd::OwnedFd;
use rustix::io::Errno;

/// A cgroup directory the init builds: short, so errors that name it stay
/// small; a longer cgroup is refused (the host checks it first).
pub type PathBuf = Vec<u8, 96>;

/// Arguments the scheduler takes at most, and /sched_args' size.
const MAX_ARGS: usize = guestinit::proto::limit::SCHED_ARGS + 1;
const ARGS_CAP: usize = guestinit::proto::limit::SCHED_ARGS_BYTES;
static ARGS: TakeOnce<[u8; ARGS_CAP + 1]> = TakeOnce::new([0; ARGS_CAP + 1]);

/// What the cgroup directories get enabled for their children.
const CONTROLLERS: &[u8] = b"+cpuset +cpu";

/// Why the scheduler could not be started.
pub enum SetupError {
    NoSchedExt,
    Mkdir(PathBuf, Errno),
    Controllers(PathBuf, Errno),
    Join(PathBuf, Errno),
    /// A script's line, 1-based, could not be parsed or written.
    Script(&'static str, usize, LineError),
    Args(Errno),
    Spawn(Errno),
}

pub enum LineError {
    Parse(ScriptError),
    /// The write failed (the line names the file).
    Write(Errno),
    TooLong,
}

impl fmt::Display for SetupError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SetupError::NoSchedExt => write!(
                f,
                "the kernel has no sched_ext ({} is missing): it needs CONFIG_SCHED_CLASS_EXT=y",
                sched::SYSFS
            ),
            SetupError::Mkdir(p, e) => write!(f, "cgroup: mkdir {}: {}", Lossy(p), ErrnoText(*e)),
            SetupError::Controllers(p, e) => write!(
                f,
                "cgroup: enable +cpuset +cpu in {}/cgroup.subtree_control: {}",
                Lossy(p),
                ErrnoText(*e)
            ),
            SetupError::Join(p, e) => {
                write!(f, "cgroup: move the scheduler into {}: {}", Lossy(p), ErrnoText(*e))
            }
            SetupError::Script(script, line, LineError::Parse(why)) => write!(f, "{script}:{line}: {why}"),
            SetupError::Script(script, line, LineError::Write(e)) => {
                write!(f, "{script}:{line}: write: {}", ErrnoText(*e))
            }
            SetupError::Script(script, line, LineError::TooLong) => write!(f, "{script}:{line}: value too long"),
            SetupError::Args(e) => write!(f, "{}: {}", path::SCHED_ARGS, ErrnoText(*e)),
            SetupError::Spawn(e) => write!(f, "start {}: {}", path::SCHEDULER, ErrnoText(*e)),
        }
    }
}

/// The kernel must have sched_ext: nothing else here makes sense without it.
pub fn check_sched_ext() -> Result<(), SetupError> {
    crate::small_file::exists(sched::SYSFS.as_bytes()).then_some(()).ok_or(SetupError::NoSchedExt)
}

/// Makes the workload's and the scheduler's cgroups; the scheduler's
/// directory, if it has one.
pub fn make_cgroups() -> Result<Option<PathBuf>, SetupError> {
    make_cgroup(path::WORKLOAD_CGROUP)?;
    make_cgroup(path::SCHEDULER_CGROUP)
}

/// `mkdir -p` of the cgroup the file `list` names (under the cgroup2 root),
/// with `+cpuset +cpu` enabled in each ancestor, top down.
fn make_cgroup(list: &str) -> Result<Option<PathBuf>, SetupError> {
    let mut buf = [0u8; 192];
    let Ok(n) = read_prefix(list.as_bytes(), &mut buf) else { return Ok(None) };
    let mut dir = PathBuf::new();
    let _ = dir.extend_from_slice(sched::CGROUP_ROOT.as_bytes());
    for part in buf[..n].trim_ascii().split(|&b| b == b'/').filter(|p| !p.is_empty()) {
        write_file(&file_in(&dir, b"cgroup.subtree_control")[..], CONTROLLERS)
            .map_err(|e| SetupError::Controllers(dir.clone(), e))?;
        if dir.push(b'/').is_err() || dir.extend_from_slice(part).is_err() {
            return Err(SetupError::Mkdir(dir, Errno::NAMETOOLONG));
        }
        match rustix::fs::mkdir(&dir[..], Mode::from_raw_mode(0o755)) {
            Ok(()) | Err(Errno::EXIST) => {}
            Err(e) => return Err(SetupError::Mkdir(dir, e)),
        }
    }
    Ok(Some(dir))
}

/// BPF programs' run time and counts, which schedulers' statistics read.
pub fn enable_bpf_stats() {
    if let Err(e) = write_file(b"/proc/sys/kernel/bpf_stats_enabled", b"1") {
        warning!("bpf_stats_enabled: {}", ErrnoText(e));
    }
}

/// Runs a script of `echo VALUE > /path` lines; a missing one is no error.
pub fn run_script(script: &'static str) -> Result<(), SetupError> {
    let mut buf = [0u8; 4096];
    let Ok(n) = read_prefix(script.as_bytes(), &mut buf) else { return Ok(()) };
    for (i, line) in buf[..n].split(|&b| b == b'\n').enumerate() {
        run_line(line).map_err(|why| SetupError::Script(script, i + 1, why))?;
    }
    Ok(())
}

/// One line: its value and echo's `\n` in one write, as a shell's echo does.
fn run_line(line: &[u8]) -> Result<(), LineError> {
    let Some(w) = parse_line(line).map_err(LineError::Parse)? else { return Ok(()) };
    let mut buf = [0u8; 256];
    let len = w.value.len();
    let value = buf.get_mut(..=len).ok_or(LineError::TooLong)?;
    value[..len].copy_from_slice(w.value);
    value[len] = b'\n';
    write_file(w.path, value).map_err(LineError::Write)
}

/// /sched_disable after the scheduler has stopped; a failure is a warning.
pub fn disable() {
    if let Err(e) = run_script(path::SCHED_DISABLE) {
        warning!("{e}");
    }
}

/// /sched_args' buffer, for the boot's start (a restart reads the file
/// again into the control socket's).
pub fn boot_args() -> &'static mut [u8] {
    &mut ARGS.take().expect("the scheduler starts once")[..]
}

/// Spawns /scheduler with `argv` and moves it into `cgroup`: its pid and
/// its log's pipes.
pub fn spawn_in(argv: &[&CStr], cgroup: Option<&PathBuf>) -> Result<(i32, OwnedFd, OwnedFd), SetupError> {
    let spawned = spawn(&Command {
        path: c"/scheduler",
        argv,
        env: &guestinit::proto::DEFAULT_ENV,
        cwd: None,
        stdin: Stdio::Null,
        stdout: Stdio::Pipe,
        stderr: Stdio::Pipe,
    })
    .map_err(SetupError::Spawn)?;
    let [_, Some(out), Some(err)] = spawned.streams else {
        unreachable!("stdout and stderr are piped")
    };
    if let Some(dir) = cgroup {
        // Moved just after the fork: its first instants run in the root cgroup.
        let mut pid = [0u8; 12];
        let mut w = SliceWriter::new(&mut pid);
        let _ = write!(w, "{}", spawned.pid);
        write_file(&file_in(dir, b"cgroup.procs")[..], w.written())
            .map_err(|e| SetupError::Join(dir.clone(), e))?;
    }
    Ok((spawned.pid, out, err))
}

/// `dir/name`: a file in a cgroup directory (which leaves room for it).
fn file_in(dir: &PathBuf, name: &[u8]) -> Vec<u8, 128> {
    let mut path = Vec::new();
    for part in [&dir[..], b"/", name] {
        let _ = path.extend_from_slice(part);
    }
    path
}

/// argv from /sched_args (whitespace-separated), read into `buf` (one byte
/// over its bound) and NUL-terminated in place.
pub fn read_args(buf: &mut [u8]) -> Result<Vec<&CStr, MAX_ARGS>, SetupError> {
    let cap = buf.len().min(ARGS_CAP + 1) - 1;
    let len = match read_prefix(path::SCHED_ARGS.as_bytes(), &mut buf[..cap]) {
        Ok(n) => n,
        Err(Errno::NOENT) => 0,
        Err(e) => return Err(SetupError::Args(e)),
    };
    for b in buf[..=len].iter_mut().filter(|b| b.is_ascii_whitespace()) {
        *b = 0;
    }
    buf[len] = 0;
    argv_of(&buf[..=len]).ok_or(SetupError::Args(Errno::TOOBIG))
}

/// `/scheduler` then the non-empty words of `text`, each NUL-terminated;
/// None past [`MAX_ARGS`].
pub fn argv_of(text: &[u8]) -> Option<Vec<&CStr, MAX_ARGS>> {
    let mut argv = Vec::new();
    let _ = argv.push(c"/scheduler");
    let mut at = 0;
    while let Some(Ok(arg)) = text.get(at..).map(CStr::from_bytes_until_nul) {
        at += arg.to_bytes().len() + 1;
        if !arg.is_empty() {
            argv.push(arg).ok()?;
        }
    }
    Some(argv)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leak(s: String) -> &'static str {
        Box::leak(s.into_boxed_str())
    }

    #[test]
    fn a_script_writes_each_value_with_a_newline_and_names_a_failing_line() {
        let dir = std::env::temp_dir().join(format!("guestinit-script-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let target = dir.join("value");
        std::fs::write(&target, "").unwrap();
        let script = dir.join("enable");
        let text = format!("# set it\necho 'on' > {}\n\necho 1 > {}/missing/x\n", target.display(), dir.display());
        std::fs::write(&script, text).unwrap();
        let script = leak(script.display().to_string());
        let err = run_script(script).expect_err("line 4 fails");
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "on\n");
        assert_eq!(std::format!("{err}"), std::format!("{script}:4: write: No such file or directory"));
        std::fs::write(script, "printf 1 > /x\n").unwrap();
        let err = run_script(script).expect_err("line 1 is refused");
        assert_eq!(std::format!("{err}"), std::format!("{script}:1: not an echo command"));
        assert!(run_script(leak(dir.join("absent").display().to_string())).is_ok());
    }
}
