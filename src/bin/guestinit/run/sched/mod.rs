//! The scheduler's side of a run: its attach timeout for the kernel command
//! line, its frames (SCLG, SCDX, LIFE) collected (the log in bounded
//! memory: `log`), and how it failed when it did (the run's verdict is then
//! exit 248).

mod log;

use std::path::Path;

use guestinit::proto::{prefix, sched};
use guestinit::wire::msg::{code_from_bytes, Phase};
use guestinit::wire::Tag;

use super::qemu::Accel;
use super::spool::Spool;
use crate::cli::SchedRunArgs;
pub use log::SchedLog;

/// Lines of the scheduler's log shown when it failed.
const LOG_TAIL_LINES: usize = 10;

/// The kernel command line's attach timeout in seconds, with a scheduler:
/// `--attach-timeout`, else the default for the accelerator.
pub fn attach_timeout(with_scheduler: bool, args: &SchedRunArgs, accel: Accel) -> Option<u64> {
    with_scheduler.then(|| {
        args.attach_timeout.unwrap_or(match accel {
            Accel::Kvm => sched::ATTACH_TIMEOUT_KVM_S,
            Accel::Tcg => sched::ATTACH_TIMEOUT_TCG_S,
        })
    })
}

/// The scheduler's frames of a run.
#[derive(Debug, Default)]
pub struct SchedFrames {
    /// SCLG: its tail and exit reason, the whole of it in `--sched-log`.
    log: SchedLog,
    /// SCDX: it died during the run, with this status (shell convention).
    died: Option<i32>,
    /// LIFE SchedulerNotAttached's reason.
    not_attached: Option<String>,
}

impl SchedFrames {
    /// The frames of a run that streams the log to `file` (`--sched-log`).
    pub fn new(file: Option<Spool>) -> SchedFrames {
        SchedFrames {
            log: SchedLog::new(file),
            ..SchedFrames::default()
        }
    }

    /// The `--sched-log` file's spool, if the run writes one.
    pub fn log_file(&self) -> Option<&Spool> {
        self.log.file()
    }

    pub fn on_frame(&mut self, tag: Tag, payload: &[u8]) {
        match tag {
            Tag::SCLG => self.log.push(payload),
            Tag::SCDX => self.died = code_from_bytes(tag, payload).or(Some(-1)),
            Tag::LIFE if payload.first() == Some(&(Phase::SchedulerNotAttached as u8)) => {
                self.not_attached = Some(String::from_utf8_lossy(&payload[1..]).into_owned());
            }
            _ => {}
        }
    }
}

/// How the scheduler failed: exit 248's one line, and its log's tail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub line: String,
    pub log_tail: String,
    /// How much of the log came before the tail, and where it is, when
    /// anything did.
    pub log_earlier: Option<String>,
}

/// The scheduler's failure when the frames (or a FATAL line with EXIT 248)
/// show one; None when it did not fail.
pub fn failure(
    frames: &SchedFrames,
    exit_code: Option<i32>,
    fatal: Option<&str>,
    sched_log: Option<&Path>,
) -> Option<Failure> {
    let case = if let Some(reason) = &frames.not_attached {
        format!("the scheduler did not attach: {reason}")
    } else if let Some(status) = frames.died {
        format!(
            "the scheduler died during the run ({})",
            status_text(status)
        )
    } else if let (Some(line), Some(sched::FAILED)) = (fatal, exit_code) {
        format!(
            "the scheduler could not start: {}",
            line.trim_start_matches(prefix::FATAL)
        )
    } else {
        return None;
    };
    let line = match frames.log.exit_reason() {
        Some(reason) => format!("{case}; kernel: {reason}"),
        None => case,
    };
    let last = frames.log.last_lines(LOG_TAIL_LINES);
    let log_earlier = (last.earlier > 0).then(|| match sched_log {
        Some(path) => format!("{} bytes, in {}", last.earlier, path.display()),
        None => format!(
            "{} bytes, not kept (the host keeps the log's last {} KiB): \
             --sched-log FILE keeps the whole log",
            last.earlier,
            log::TAIL_BYTES >> 10
        ),
    });
    Some(Failure {
        line,
        log_tail: last.text,
        log_earlier,
    })
}

/// A status in the shell's convention as words.
fn status_text(status: i32) -> String {
    match status {
        129..=192 => format!("killed by signal {}", status - 128),
        code => format!("exited with {code}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frames(log: &str) -> SchedFrames {
        let mut f = SchedFrames::default();
        f.on_frame(Tag::SCLG, sched::LOG_START.as_bytes());
        f.on_frame(Tag::SCLG, log.as_bytes());
        f.on_frame(Tag::SCLG, sched::LOG_END.as_bytes());
        f
    }

    #[test]
    fn the_attach_timeout_goes_on_the_command_line_only_with_a_scheduler() {
        let key = |secs: Option<u64>| {
            let mut text = String::new();
            let params = guestinit::proto::boot::BootParams {
                attach_timeout_s: secs,
                ..Default::default()
            };
            params.write_to(&mut text).unwrap();
            text
        };
        let args = SchedRunArgs::default();
        assert_eq!(key(attach_timeout(false, &args, Accel::Tcg)), "");
        let tcg = attach_timeout(true, &args, Accel::Tcg);
        assert_eq!(key(tcg), " guestinit.attach_timeout=30");
        let kvm = attach_timeout(true, &args, Accel::Kvm);
        assert_eq!(key(kvm), " guestinit.attach_timeout=10");
        let given = SchedRunArgs {
            attach_timeout: Some(5),
            sched_log: None,
        };
        let given = attach_timeout(true, &given, Accel::Kvm);
        assert_eq!(key(given), " guestinit.attach_timeout=5");
    }

    #[test]
    fn a_death_names_the_status_and_the_kernels_reason() {
        let mut f = frames("starting\nEXIT: disabled by sysrq-S\n");
        f.on_frame(Tag::SCDX, &0i32.to_le_bytes());
        let e = failure(&f, Some(248), None, None).unwrap();
        assert_eq!(
            e.line,
            "the scheduler died during the run (exited with 0); kernel: disabled by sysrq-S"
        );
        assert_eq!(e.log_tail, "starting\nEXIT: disabled by sysrq-S");
        assert_eq!(e.log_earlier, None);
    }

    #[test]
    fn a_long_log_says_how_many_bytes_came_before_its_tail_and_where_they_are() {
        let log: String = (0..100).map(|i| format!("line {i:02}\n")).collect();
        let mut f = frames(&log);
        f.on_frame(Tag::SCDX, &1i32.to_le_bytes());
        let e = failure(&f, Some(248), None, None).unwrap();
        assert!(e.log_tail.starts_with("line 90\n") && e.log_tail.ends_with("line 99"));
        let earlier = e.log_earlier.unwrap();
        assert!(earlier.starts_with("720 bytes, not kept"), "{earlier}");
        assert!(earlier.contains("--sched-log FILE"), "{earlier}");
        let path = Path::new("/tmp/s.log");
        let e = failure(&f, Some(248), None, Some(path)).unwrap();
        assert_eq!(e.log_earlier.unwrap(), "720 bytes, in /tmp/s.log");
    }

    #[test]
    fn not_attached_and_fatal_cases_and_a_payloads_own_248() {
        let mut f = frames("");
        f.on_frame(Tag::LIFE, b"\x04sched_ext state is `disabled` after 30 s");
        let e = failure(&f, Some(248), None, None).unwrap();
        assert_eq!(
            e.line,
            "the scheduler did not attach: sched_ext state is `disabled` after 30 s"
        );
        let e = failure(
            &SchedFrames::default(),
            Some(248),
            Some("FATAL: no sched_ext"),
            None,
        )
        .unwrap();
        assert_eq!(e.line, "the scheduler could not start: no sched_ext");
        assert!(failure(&SchedFrames::default(), Some(248), None, None).is_none());
        let mut killed = frames("");
        killed.on_frame(Tag::SCDX, &137i32.to_le_bytes());
        assert!(failure(&killed, Some(248), None, None)
            .unwrap()
            .line
            .contains("killed by signal 9"));
    }
}
