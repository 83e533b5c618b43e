//! `--scheduler` and its files: /scheduler with its ELF closure,
//! /sched_args, the enable/disable scripts (checked with the guest's own
//! parser), the cgroup files, and /boot/config-RELEASE, which libbpf in the
//! guest reads (docs/PROTOCOL.md).

use std::path::{Path, PathBuf};

use guestinit::parse::sched_script::parse_line;
use guestinit::proto;

use super::elf;
use super::entry::read;
use crate::cli::SchedArgs;
use crate::error::{Error, Result};
use crate::locate;

/// The scheduler's part of the archive.
pub struct SchedFiles {
    /// Its interpreter and libraries, stored at their host paths.
    pub libs: Vec<PathBuf>,
    /// Files at fixed names: (archive name, mode, bytes).
    pub files: Vec<(String, u32, Vec<u8>)>,
}

/// The scheduler's files; None without `--scheduler`. (The kernel's
/// config, which libbpf needs, is packed for every archive: `pack`
/// refuses a scheduler when none is found.)
pub fn plan(args: &SchedArgs) -> Result<Option<SchedFiles>> {
    let Some(program) = &args.scheduler else {
        return Ok(None);
    };
    let program = locate::program(program)?;
    let mut closure = elf::closure(&program)?.into_iter();
    let binary = closure.next().expect("the closure starts with the program");
    let mut files = vec![
        ("scheduler".to_owned(), 0o755, read(&binary)?),
        (
            "sched_args".to_owned(),
            0o644,
            sched_args(args.sched_args.as_deref()),
        ),
    ];
    for (name, script) in [
        ("sched_enable", &args.sched_enable),
        ("sched_disable", &args.sched_disable),
    ] {
        if let Some(path) = script {
            files.push((name.to_owned(), 0o644, checked_script(path)?));
        }
    }
    for (name, option, cgroup) in [
        (
            "workload_root_cgroup",
            "--workload-cgroup",
            &args.workload_cgroup,
        ),
        (
            "scheduler_cgroup_parent",
            "--scheduler-cgroup",
            &args.scheduler_cgroup,
        ),
    ] {
        if let Some(path) = cgroup {
            files.push((name.to_owned(), 0o644, cgroup_file(option, path)?));
        }
    }
    Ok(Some(SchedFiles {
        libs: closure.collect(),
        files,
    }))
}

fn sched_args(args: Option<&str>) -> Vec<u8> {
    let mut text = args.unwrap_or("").trim().to_owned();
    text.push('\n');
    text.into_bytes()
}

/// The script's bytes once every line parses as the init will parse it.
fn checked_script(path: &Path) -> Result<Vec<u8>> {
    let data = read(path)?;
    for (i, line) in data.split(|&b| b == b'\n').enumerate() {
        if let Err(why) = parse_line(line) {
            return Err(Error::BadScript {
                file: path.to_owned(),
                line: i + 1,
                why: why.to_string(),
            });
        }
    }
    Ok(data)
}

/// A cgroup path as the init reads it: absolute, under the cgroup2 root,
/// short enough for its buffer, without `..` or blanks.
fn cgroup_file(option: &'static str, path: &str) -> Result<Vec<u8>> {
    let bad = |why| Error::BadCgroup {
        option,
        path: path.to_owned(),
        why,
    };
    if !path.starts_with('/') {
        return Err(bad("must start with /"));
    }
    if path.split('/').any(|part| part == "..") || path.contains(char::is_whitespace) {
        return Err(bad("must not hold `..` or blanks"));
    }
    if proto::sched::CGROUP_ROOT.len() + path.len() > MAX_CGROUP_PATH {
        return Err(bad("too long for the init"));
    }
    Ok(format!("{path}\n").into_bytes())
}

/// The init's cgroup directory buffer (`init/sched/setup.rs`).
const MAX_CGROUP_PATH: usize = 96;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scratch::ScratchDir;
    use std::fs;

    #[test]
    fn a_bad_script_line_is_named_with_its_file_and_number() {
        let dir = ScratchDir::new("test").unwrap();
        let script = dir.path().join("enable");
        fs::write(&script, "# ok\necho 1 > /proc/sys/x\necho $X > /y\n").unwrap();
        let err = checked_script(&script).unwrap_err();
        assert_eq!(err.exit_code(), 249);
        assert_eq!(
            err.to_string(),
            format!(
                "{}:3: shell syntax beyond `echo VALUE > /path`",
                script.display()
            )
        );
    }

    #[test]
    fn cgroup_paths_are_checked() {
        assert_eq!(cgroup_file("--x", "/ktstr/w").unwrap(), b"/ktstr/w\n");
        for bad in ["ktstr", "/a/../b", "/a b", &format!("/{}", "x".repeat(90))] {
            assert!(cgroup_file("--x", bad).is_err(), "{bad}");
        }
    }
}
