//! The end of a run in words and an exit status: the payload's code when
//! its own WAIT and EXIT frames arrived, else why the VM gave none, from
//! what the serial links said. A [`Verdict`] is how the VM's run ended,
//! never a failure of the tool's own (those are `crate::error::Error`).

use std::fmt;

use guestinit::proto;
use guestinit::wire::msg::{Exit, WaitStatus};
use signal_hook::low_level::signal_name;

use crate::error::{self, Result, INIT_PANIC, NO_EXIT, SCHED_FAILED, TIMEOUT};

use super::events::End;
use super::qmp_event::Event;
use super::sched::Failure;
use super::stop::HostStop;
use super::stream::Collected;

/// How a run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The payload's exit code (the shell's, mkfs's): the run's status.
    Exited(u8),
    /// 248, with `--scheduler`: it could not start, did not attach, or
    /// died during the run.
    Scheduler(Failure),
    /// 247, with `--kernel-warnings fail`: the payload exited 0, but the
    /// kernel logged `count` splats, the first summed up in `first`.
    KernelWarnings { count: u64, first: String },
    /// 251: the VM ended without an exit code.
    NoExit {
        panic: Option<String>,
        first_error: Option<String>,
        com1_tail: String,
    },
    /// 251: no frame came at all.
    NeverReachedInit {
        memory_mib: u32,
        panic: Option<String>,
        /// COM1 shows the kernel short of memory.
        memory_trouble: bool,
        com1_tail: String,
    },
    /// 251: QEMU said the guest could not go on (paused on a host disk
    /// error, a STOP, a guest panic), and the host ended the run at once.
    Halted {
        event: Event,
        /// The kernel's panic line on COM1, if it printed one.
        panic: Option<String>,
        com1_tail: String,
    },
    /// 251: the user quit the shell's VM with Ctrl-A X.
    Quit,
    /// 252: `--timeout` passed.
    Timeout { secs: u64 },
    /// 253: a COM2 line starting `PANIC:`.
    InitPanic { line: String },
    /// 254: a COM2 line starting `FATAL:`.
    Fatal { line: String },
    /// 128 + n: the host was told to stop.
    Stopped {
        signal: String,
        number: i32,
        how: &'static str,
    },
}

impl Verdict {
    pub fn exit_code(&self) -> u8 {
        match self {
            Verdict::Exited(code) => *code,
            Verdict::Scheduler(_) => SCHED_FAILED,
            Verdict::KernelWarnings { .. } => error::KERNEL_WARNINGS,
            Verdict::NoExit { .. }
            | Verdict::NeverReachedInit { .. }
            | Verdict::Halted { .. }
            | Verdict::Quit => NO_EXIT,
            Verdict::Timeout { .. } => TIMEOUT,
            Verdict::InitPanic { .. } => INIT_PANIC,
            Verdict::Fatal { .. } => error::FATAL,
            Verdict::Stopped { number, .. } => 128u8.saturating_add(*number as u8),
        }
    }

    /// A short name for `--events`' `end`: what kind of end it was.
    pub fn kind(&self) -> &'static str {
        match self {
            Verdict::Exited(_) => "exited",
            Verdict::Scheduler(_) => "scheduler_failed",
            Verdict::KernelWarnings { .. } => "kernel_warnings",
            Verdict::NoExit { .. } => "no_exit",
            Verdict::NeverReachedInit { .. } => "never_reached_init",
            Verdict::Halted { .. } => "halted",
            Verdict::Quit => "quit",
            Verdict::Timeout { .. } => "timeout",
            Verdict::InitPanic { .. } => "init_panic",
            Verdict::Fatal { .. } => "fatal",
            Verdict::Stopped { .. } => "stopped",
        }
    }

    /// Lines that explain the verdict further (the kernel's first error,
    /// the COM1 tail, the scheduler's log), printed after its line.
    pub fn details(&self) -> Vec<(&'static str, String)> {
        let tail = |t: &String| ("last lines of COM1", t.clone());
        let all = match self {
            Verdict::NoExit {
                first_error,
                com1_tail,
                ..
            } => {
                let first = first_error
                    .iter()
                    .map(|l| ("first error on COM1", l.clone()));
                first.chain([tail(com1_tail)]).collect()
            }
            Verdict::NeverReachedInit { com1_tail, .. } => vec![tail(com1_tail)],
            // A disk error says all; a STOP or panic may have more on COM1.
            Verdict::Halted {
                event: Event::BlockIoError(_),
                ..
            } => Vec::new(),
            Verdict::Halted { com1_tail, .. } => vec![tail(com1_tail)],
            Verdict::Scheduler(failure) => {
                let earlier = failure
                    .log_earlier
                    .iter()
                    .map(|e| ("the scheduler's log before its last lines", e.clone()));
                let tail = (
                    "last lines of the scheduler's log",
                    failure.log_tail.clone(),
                );
                earlier.chain([tail]).collect()
            }
            _ => Vec::new(),
        };
        all.into_iter()
            .filter(|(_, text)| !text.trim().is_empty())
            .collect()
    }

    /// The `--events` end of a run that ended so, or failed with `error`.
    pub fn end(result: &Result<Verdict>) -> End {
        match result {
            Ok(v) => End {
                exit_code: v.exit_code(),
                verdict: v.kind(),
                error: (!matches!(v, Verdict::Exited(_))).then(|| v.to_string()),
                crash: match v {
                    Verdict::InitPanic { line } => Some(("crash", line.clone())),
                    Verdict::Fatal { line } => Some(("fatal", line.clone())),
                    _ => None,
                },
            },
            Err(e) => End {
                exit_code: e.exit_code(),
                verdict: "error",
                error: Some(e.to_string()),
                crash: None,
            },
        }
    }

    /// Says on stderr why the run ended, unless the payload's own code
    /// does; the status to exit with.
    pub fn conclude(self) -> u8 {
        if !matches!(self, Verdict::Exited(_)) {
            error::report(&self, &self.details());
        }
        self.exit_code()
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Verdict::Exited(code) => write!(f, "the payload exited with {code}"),
            Verdict::Scheduler(failure) => f.write_str(&failure.line),
            Verdict::KernelWarnings { count, first } => write!(
                f,
                "the payload passed, but the kernel logged {count} warning{} (--kernel-warnings fail); the first: {first}",
                if *count == 1 { "" } else { "s" }
            ),
            Verdict::NoExit { panic, .. } => {
                write!(f, "VM ended without an exit code{}", colon(panic.as_deref()))
            }
            Verdict::NeverReachedInit {
                memory_mib,
                panic,
                memory_trouble,
                ..
            } => write!(
                f,
                "VM ended without an exit code: the kernel never reached the init (no frame arrived){}",
                never_reached(*memory_mib, panic.as_deref(), *memory_trouble)
            ),
            Verdict::Halted { event, panic, .. } => write!(
                f,
                "VM ended without an exit code: {event}{}; the run was ended at once, with the output so far",
                colon(panic.as_deref())
            ),
            Verdict::Quit => f.write_str("the VM was quit with Ctrl-A X before the shell exited"),
            Verdict::Timeout { secs } => write!(
                f,
                "timeout: the VM ran longer than {secs} s and was stopped; a debug dump (SysRq D) went to the trace on COM1 first: keep it with --trace FILE or --com1-log FILE"
            ),
            Verdict::InitPanic { line } => write!(f, "init crashed: {line}"),
            Verdict::Fatal { line } => write!(f, "init failed: {line}"),
            Verdict::Stopped { signal, how, .. } => write!(f, "stopped by {signal}: {how}"),
        }
    }
}

fn colon(text: Option<&str>) -> String {
    text.map_or(String::new(), |t| format!(": {t}"))
}

/// The cause of a kernel that never ran the init: its panic, and a hint at
/// memory when nothing else explains it.
fn never_reached(memory_mib: u32, panic: Option<&str>, memory_trouble: bool) -> String {
    let hint = format!("the VM likely needs more memory than {memory_mib} MiB (--memory)");
    match (panic, memory_trouble) {
        (None, _) => format!(": {hint}"),
        (Some(panic), false) => format!(": {panic}"),
        (Some(panic), true) => format!(": {panic}; {hint}"),
    }
}

/// A stop signal's verdict.
pub fn stopped(signal: i32, how: &'static str) -> Verdict {
    Verdict::Stopped {
        signal: signal_text(signal),
        number: signal,
        how,
    }
}

/// How the kernel's panic line begins.
pub const PANIC_LINE: &str = "Kernel panic - not syncing:";

/// Lines of COM1 shown when the VM ends without an exit code.
pub const COM1_TAIL_LINES: usize = 20;

/// Everything the verdict reads.
pub struct Evidence<'a> {
    pub collected: &'a Collected,
    pub host_stop: Option<HostStop>,
    pub qemu_failed: bool,
    pub com1: &'a str,
    pub com2: &'a str,
    pub memory_mib: u32,
    pub timeout_secs: u64,
    /// QEMU's event after which the guest could not go on.
    pub halt: Option<&'a Event>,
}

/// The first line that starts with `prefix` (serial lines may end in `\r`).
pub fn first_line_starting<'a>(text: &'a str, prefix: &str) -> Option<&'a str> {
    text.lines()
        .map(|l| l.trim_end_matches('\r'))
        .find(|l| l.starts_with(prefix))
}

/// The first line containing `needle`, from `needle` on (the kernel log's
/// timestamp dropped).
fn first_line_with<'a>(text: &'a str, needle: &str) -> Option<&'a str> {
    text.lines()
        .find_map(|l| l.find(needle).map(|at| &l[at..]))
        .map(|l| l.trim_end_matches('\r'))
}

/// The last `n` lines of `text`.
pub fn last_lines(text: &str, n: usize) -> String {
    let lines: Vec<_> = text.lines().map(|l| l.trim_end_matches('\r')).collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// A signal as its name, `SIGKILL`, or its number when unknown.
pub fn signal_text(signal: i32) -> String {
    signal_name(signal).map_or(format!("signal {signal}"), str::to_owned)
}

/// How the run ended, from what the host did and what the VM said.
pub fn decide(e: &Evidence<'_>) -> Verdict {
    let c = e.collected;
    match e.host_stop {
        Some(HostStop::Signal { signal, killed }) => {
            let how = if killed {
                "QEMU was killed (a second signal, or no exit code within 15 s)"
            } else {
                "the guest was stopped in order"
            };
            return stopped(signal, how);
        }
        Some(HostStop::Timeout) => {
            return Verdict::Timeout {
                secs: e.timeout_secs,
            }
        }
        Some(HostStop::Quit) => return Verdict::Quit,
        Some(HostStop::Halted) | None => {}
    }
    // The payload's own WAIT then EXIT: the init ran it to the end, so a
    // FATAL or PANIC line on COM2 is the payload's text, not a verdict.
    // Exec mode's EXCX is the command's own code (EXIT may be the
    // scheduler's 248, which `sched::verdict` explains).
    if let (Some(code), Some(_)) = (c.excx.or(c.exit_code), c.wait) {
        return Verdict::Exited((code & 0xff) as u8);
    }
    // QEMU's word outranks the links': after a halt they stopped short.
    if let (Some(HostStop::Halted), Some(event)) = (e.host_stop, e.halt) {
        return Verdict::Halted {
            event: event.clone(),
            panic: first_line_with(e.com1, PANIC_LINE).map(str::to_owned),
            com1_tail: last_lines(e.com1, COM1_TAIL_LINES),
        };
    }
    if let Some(line) = first_line_starting(e.com2, proto::prefix::FATAL) {
        return Verdict::Fatal { line: line.into() };
    }
    if let Some(code) = c.exit_code {
        // As a shell reports exit(-1): the code modulo 256.
        return Verdict::Exited((code & 0xff) as u8);
    }
    if let Some(line) = first_line_starting(e.com2, proto::prefix::PANIC) {
        return Verdict::InitPanic { line: line.into() };
    }
    no_exit(e)
}

/// Why the VM gave no exit code, from COM1: the kernel's panic line and
/// its first BUG/Oops line, then the tail.
fn no_exit(e: &Evidence<'_>) -> Verdict {
    let panic = first_line_with(e.com1, PANIC_LINE).map(str::to_owned);
    let first_error = ["BUG:", "Oops:"]
        .iter()
        .filter_map(|needle| first_line_with(e.com1, needle))
        .next()
        .map(str::to_owned);
    let com1_tail = last_lines(e.com1, COM1_TAIL_LINES);
    if e.collected.frames == 0 && !e.qemu_failed {
        let memory_trouble = [
            "Out of memory",
            "Initramfs unpacking failed",
            "memory map backing failed",
            "Cannot find place for new RAMDISK",
        ]
        .iter()
        .any(|needle| e.com1.contains(needle));
        return Verdict::NeverReachedInit {
            memory_mib: e.memory_mib,
            panic,
            memory_trouble,
            com1_tail,
        };
    }
    Verdict::NoExit {
        panic,
        first_error,
        com1_tail,
    }
}

/// A word on how the payload died, when a signal killed it: which signal,
/// and whether the kernel's OOM killer sent it.
pub fn death_note(wait: Option<&WaitStatus>, com1: &str) -> Option<String> {
    let Exit::Signaled {
        signal,
        core_dumped,
    } = wait?.exit
    else {
        return None;
    };
    let core = if core_dumped { " (core dumped)" } else { "" };
    let mut note = format!(
        "guestinit: the payload was killed by {}{core}",
        signal_text(signal as i32)
    );
    if let Some(line) = first_line_with(com1, "Out of memory: Killed process") {
        note.push_str(&format!(
            "\nguestinit: the kernel's OOM killer killed it: {line}"
        ));
    }
    Some(note)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A WAIT status with no resource use.
    fn status(exit: Exit) -> WaitStatus {
        WaitStatus {
            exit,
            user_us: 0,
            system_us: 0,
            max_rss_kib: 0,
            init_hwm_kib: 0,
        }
    }

    fn evidence<'a>(collected: &'a Collected, com1: &'a str, com2: &'a str) -> Evidence<'a> {
        Evidence {
            collected,
            host_stop: None,
            qemu_failed: false,
            com1,
            com2,
            memory_mib: 256,
            timeout_secs: 0,
            halt: None,
        }
    }

    fn ran_to_the_end(code: i32) -> Collected {
        Collected {
            exit_code: Some(code),
            wait: Some(status(Exit::Exited(code as u8))),
            frames: 9,
            ..Collected::default()
        }
    }

    #[test]
    fn kernel_warnings_are_247_and_say_the_count_and_the_first() {
        let v = Verdict::KernelWarnings {
            count: 2,
            first: "kernel warning at 1.000000s: WARNING: CPU: 0 PID: 1 at m.c:8 f".into(),
        };
        assert_eq!((v.exit_code(), v.kind()), (247, "kernel_warnings"));
        assert_eq!(
            v.to_string(),
            "the payload passed, but the kernel logged 2 warnings (--kernel-warnings fail); \
             the first: kernel warning at 1.000000s: WARNING: CPU: 0 PID: 1 at m.c:8 f"
        );
        let end = Verdict::end(&Ok(v));
        assert_eq!((end.exit_code, end.verdict), (247, "kernel_warnings"));
        assert!(end.error.is_some(), "the status is not the payload's code");
    }

    #[test]
    fn com2_lines_decide_between_253_254_and_251() {
        let some_frames = Collected {
            frames: 3,
            ..Collected::default()
        };
        let e = decide(&evidence(&some_frames, "", "x\r\nPANIC: init: bad\r\n"));
        assert_eq!(
            (e.exit_code(), e.to_string()),
            (253, "init crashed: PANIC: init: bad".into())
        );
        let com2 = "PANIC: later\nFATAL: no /.guestinit-complete\n";
        let e = decide(&evidence(&some_frames, "", com2));
        assert_eq!(e.exit_code(), 254);
        assert_eq!(e.to_string(), "init failed: FATAL: no /.guestinit-complete");
        let com1: String = (0..25).map(|i| format!("k{i}\n")).collect();
        let e = decide(&evidence(&some_frames, &com1, ""));
        assert_eq!(e.to_string(), "VM ended without an exit code");
        match e {
            Verdict::NoExit { com1_tail, .. } => {
                assert_eq!(com1_tail.lines().count(), COM1_TAIL_LINES);
                assert!(com1_tail.starts_with("k5\n") && com1_tail.ends_with("k24"));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn the_payloads_own_exit_outranks_its_com2_text() {
        let done = ran_to_the_end(0);
        assert_eq!(
            decide(&evidence(&done, "", "FATAL: spoofed\n")),
            Verdict::Exited(0)
        );
        assert_eq!(
            decide(&evidence(&done, "", "PANIC: spoofed\n")),
            Verdict::Exited(0)
        );
        // The init's own failure: EXIT 1 without WAIT, its FATAL line.
        let failed = Collected {
            exit_code: Some(1),
            frames: 4,
            ..Collected::default()
        };
        let e = decide(&evidence(&failed, "", "FATAL: no /args\n"));
        assert_eq!(e.exit_code(), 254);
    }

    #[test]
    fn a_kernel_panic_names_its_cause() {
        let com1 = "[ 1.0] boot\n[ 2.0] BUG: kernel NULL pointer dereference, address: 0\n\
                    [ 2.1] Oops: 0002 [#1] SMP\n[ 2.2] RIP: x\n\
                    [ 2.3] Kernel panic - not syncing: Fatal exception\n[ 2.4] Kernel Offset: y\n";
        let frames = Collected {
            frames: 5,
            ..Collected::default()
        };
        let e = decide(&evidence(&frames, com1, ""));
        assert_eq!(
            e.to_string(),
            "VM ended without an exit code: Kernel panic - not syncing: Fatal exception"
        );
        let details = e.details();
        assert_eq!(
            details[0],
            (
                "first error on COM1",
                "BUG: kernel NULL pointer dereference, address: 0".to_owned()
            )
        );
        assert!(details[1].1.ends_with("Kernel Offset: y"));
    }

    #[test]
    fn no_frame_at_all_means_the_kernel_never_reached_the_init() {
        let nothing = Collected::default();
        let e = decide(&evidence(&nothing, "", ""));
        assert_eq!(e.exit_code(), 251);
        let text = e.to_string();
        assert!(text.contains("never reached the init"), "{text}");
        assert!(text.contains("more memory than 256 MiB"), "{text}");
    }

    #[test]
    fn the_events_end_tells_a_crash_a_payloads_code_and_a_tool_error_apart() {
        let crash = Verdict::end(&Ok(Verdict::InitPanic {
            line: "PANIC: boom".into(),
        }));
        assert_eq!(
            (crash.exit_code, crash.verdict, crash.crash),
            (253, "init_panic", Some(("crash", "PANIC: boom".to_owned())))
        );
        let exited = Verdict::end(&Ok(Verdict::Exited(4)));
        assert_eq!((exited.exit_code, exited.error), (4, None));
        let failed = Verdict::end(&Err(crate::error::Error::QemuMissing));
        assert_eq!((failed.exit_code, failed.verdict), (250, "error"));
    }

    #[test]
    fn a_halt_before_exit_is_the_verdict_and_names_its_cause() {
        use super::super::qmp_event::BlockIoError;
        let event = Event::BlockIoError(BlockIoError {
            device: "disk0".into(),
            operation: "write".into(),
            action: "stop".into(),
            reason: "No space left on device".into(),
            nospace: true,
            image: Some("/t/d.img".into()),
        });
        let some_frames = Collected {
            frames: 7,
            exit_code: None,
            ..Collected::default()
        };
        let mut e = evidence(&some_frames, "[ 1.0] boot\n", "");
        e.host_stop = Some(HostStop::Halted);
        e.halt = Some(&event);
        let v = decide(&e);
        assert_eq!((v.exit_code(), v.kind()), (251, "halted"));
        assert_eq!(
            v.to_string(),
            "VM ended without an exit code: disk0 (/t/d.img): write failed on the host: \
             No space left on device (the host file system holding the image is full); \
             QEMU paused the guest; the run was ended at once, with the output so far"
        );
        // The payload's own end came first: its code stands.
        let done = ran_to_the_end(3);
        let mut e = evidence(&done, "", "");
        e.host_stop = Some(HostStop::Halted);
        e.halt = Some(&event);
        assert_eq!(decide(&e), Verdict::Exited(3));
        // A panic event with the kernel's line on COM1.
        let panicked = Event::GuestPanicked {
            action: "pause".into(),
        };
        let com1 = "[ 2.0] Kernel panic - not syncing: sysrq triggered crash\n";
        let mut e = evidence(&some_frames, com1, "");
        e.host_stop = Some(HostStop::Halted);
        e.halt = Some(&panicked);
        let text = decide(&e).to_string();
        assert!(
            text.contains("action pause): Kernel panic - not syncing: sysrq"),
            "{text}"
        );
    }

    #[test]
    fn a_signal_death_is_named_and_an_oom_kill_is_said() {
        let wait = status(Exit::Signaled {
            signal: 9,
            core_dumped: false,
        });
        let com1 = "[ 9.1] Out of memory: Killed process 71 (busybox) total-vm:1kB\r\n";
        assert_eq!(
            death_note(Some(&wait), com1).unwrap(),
            "guestinit: the payload was killed by SIGKILL\n\
             guestinit: the kernel's OOM killer killed it: \
             Out of memory: Killed process 71 (busybox) total-vm:1kB"
        );
        let segv = status(Exit::Signaled {
            signal: 11,
            core_dumped: true,
        });
        assert_eq!(
            death_note(Some(&segv), "").unwrap(),
            "guestinit: the payload was killed by SIGSEGV (core dumped)"
        );
        assert_eq!(death_note(Some(&status(Exit::Exited(0))), ""), None);
    }
}
