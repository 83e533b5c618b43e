//! The scheduler's side of a run: its attach timeout for the kernel command
//! line, its frames (SCLG, SCDX, LIFE) collected, and how it failed when
//! it did (the run's verdict is then exit 248).

use guestinit::proto::{prefix, sched};
use guestinit::wire::msg::{code_from_bytes, Phase};
use guestinit::wire::Tag;

use super::qemu::Accel;
use crate::cli::SchedRunArgs;

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
    /// SCLG bytes, markers included.
    log: Vec<u8>,
    /// SCDX: it died during the run, with this status (shell convention).
    died: Option<i32>,
    /// LIFE SchedulerNotAttached's reason.
    not_attached: Option<String>,
}

impl SchedFrames {
    pub fn on_frame(&mut self, tag: Tag, payload: &[u8]) {
        match tag {
            Tag::SCLG => self.log.extend_from_slice(payload),
            Tag::SCDX => self.died = code_from_bytes(tag, payload).or(Some(-1)),
            Tag::LIFE if payload.first() == Some(&(Phase::SchedulerNotAttached as u8)) => {
                self.not_attached = Some(String::from_utf8_lossy(&payload[1..]).into_owned());
            }
            _ => {}
        }
    }

    /// The log as the scheduler wrote it, without ktstr's markers.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.log)
            .lines()
            .filter(|l| ![sched::LOG_START, sched::LOG_END].contains(&&*format!("{l}\n")))
            .map(|l| format!("{l}\n"))
            .collect()
    }

    /// Why the kernel ejected it: the text after `EXIT:` in its log (scx
    /// schedulers print the kernel's exit reason so).
    fn kernel_reason(&self) -> Option<String> {
        let text = self.text();
        let line = text.lines().rev().find(|l| l.contains("EXIT:"))?;
        Some(line.split_once("EXIT:")?.1.trim().to_owned())
    }
}

/// How the scheduler failed: exit 248's one line, and its log's tail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub line: String,
    pub log_tail: String,
}

/// The scheduler's failure when the frames (or a FATAL line with EXIT 248)
/// show one; None when it did not fail.
pub fn failure(
    frames: &SchedFrames,
    exit_code: Option<i32>,
    fatal: Option<&str>,
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
    let line = match frames.kernel_reason() {
        Some(reason) => format!("{case}; kernel: {reason}"),
        None => case,
    };
    let text = frames.text();
    let lines: Vec<&str> = text.lines().collect();
    let log_tail = lines[lines.len().saturating_sub(LOG_TAIL_LINES)..].join("\n");
    Some(Failure { line, log_tail })
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
        let e = failure(&f, Some(248), None).unwrap();
        assert_eq!(
            e.line,
            "the scheduler died during the run (exited with 0); kernel: disabled by sysrq-S"
        );
        assert_eq!(f.text(), "starting\nEXIT: disabled by sysrq-S\n");
    }

    #[test]
    fn not_attached_and_fatal_cases_and_a_payloads_own_248() {
        let mut f = frames("");
        f.on_frame(Tag::LIFE, b"\x04sched_ext state is `disabled` after 30 s");
        let e = failure(&f, Some(248), None).unwrap();
        assert_eq!(
            e.line,
            "the scheduler did not attach: sched_ext state is `disabled` after 30 s"
        );
        let e = failure(
            &SchedFrames::default(),
            Some(248),
            Some("FATAL: no sched_ext"),
        )
        .unwrap();
        assert_eq!(e.line, "the scheduler could not start: no sched_ext");
        assert!(failure(&SchedFrames::default(), Some(248), None).is_none());
        let mut killed = frames("");
        killed.on_frame(Tag::SCDX, &137i32.to_le_bytes());
        assert!(failure(&killed, Some(248), None)
            .unwrap()
            .line
            .contains("killed by signal 9"));
    }
}
