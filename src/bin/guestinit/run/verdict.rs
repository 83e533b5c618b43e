//! The end of a run in words and an exit status: the payload's code when
//! its own WAIT and EXIT frames arrived, else why the VM gave none, from
//! what the serial links said.

use guestinit::proto;
use guestinit::wire::msg::{Exit, WaitStatus};
use signal_hook::low_level::signal_name;

use crate::error::{Error, Result};

use super::stop::Ending;
use super::stream::Collected;

/// Lines of COM1 shown when the VM ends without an exit code.
pub const COM1_TAIL_LINES: usize = 20;

/// Everything the verdict reads.
pub struct Evidence<'a> {
    pub collected: &'a Collected,
    pub ending: Option<Ending>,
    pub qemu_failed: bool,
    pub com1: &'a str,
    pub com2: &'a str,
    pub memory_mib: u32,
    pub timeout_secs: u64,
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

/// The status of the run, or the failure that ends it.
pub fn decide(e: &Evidence<'_>) -> Result<u8> {
    let c = e.collected;
    match e.ending {
        Some(Ending::Signal { signal, killed }) => {
            let how = if killed {
                "QEMU was killed (a second signal, or no exit code within 10 s)"
            } else {
                "the guest was stopped in order"
            };
            return Err(Error::Stopped {
                signal: signal_text(signal),
                number: signal,
                how,
            });
        }
        Some(Ending::Timeout) => {
            return Err(Error::Timeout {
                secs: e.timeout_secs,
            })
        }
        Some(Ending::Quit) => return Err(Error::Quit),
        None => {}
    }
    // The payload's own WAIT then EXIT: the init ran it to the end, so a
    // FATAL or PANIC line on COM2 is the payload's text, not a verdict.
    // Exec mode's EXCX is the command's own code (EXIT may be the
    // scheduler's 248, which `sched::verdict` explains).
    if let (Some(code), Some(_)) = (c.excx.or(c.exit_code), c.wait) {
        return Ok((code & 0xff) as u8);
    }
    if let Some(line) = first_line_starting(e.com2, proto::prefix::FATAL) {
        return Err(Error::Fatal { line: line.into() });
    }
    if let Some(code) = c.exit_code {
        // As a shell reports exit(-1): the code modulo 256.
        return Ok((code & 0xff) as u8);
    }
    if let Some(line) = first_line_starting(e.com2, proto::prefix::PANIC) {
        return Err(Error::InitPanic { line: line.into() });
    }
    Err(no_exit(e))
}

/// Why the VM gave no exit code, from COM1: the kernel's panic line and
/// its first BUG/Oops line, then the tail.
fn no_exit(e: &Evidence<'_>) -> Error {
    let panic = first_line_with(e.com1, "Kernel panic - not syncing:").map(str::to_owned);
    let first_error = ["BUG:", "Oops:"]
        .iter()
        .filter_map(|needle| first_line_with(e.com1, needle))
        .next()
        .map(str::to_owned);
    let com1_tail = last_lines(e.com1, COM1_TAIL_LINES);
    if e.collected.frames == 0 && !e.qemu_failed {
        let memory_trouble = ["Out of memory", "Initramfs unpacking failed"]
            .iter()
            .any(|needle| e.com1.contains(needle));
        return Error::NeverReachedInit {
            memory_mib: e.memory_mib,
            panic,
            memory_trouble,
            com1_tail,
        };
    }
    Error::NoExit {
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
            ending: None,
            qemu_failed: false,
            com1,
            com2,
            memory_mib: 256,
            timeout_secs: 0,
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
    fn com2_lines_decide_between_253_254_and_251() {
        let some_frames = Collected {
            frames: 3,
            ..Collected::default()
        };
        let e = decide(&evidence(&some_frames, "", "x\r\nPANIC: init: bad\r\n")).unwrap_err();
        assert_eq!(
            (e.exit_code(), e.to_string()),
            (253, "init crashed: PANIC: init: bad".into())
        );
        let com2 = "PANIC: later\nFATAL: no /.guestinit-complete\n";
        let e = decide(&evidence(&some_frames, "", com2)).unwrap_err();
        assert_eq!(e.exit_code(), 254);
        assert_eq!(e.to_string(), "init failed: FATAL: no /.guestinit-complete");
        let com1: String = (0..25).map(|i| format!("k{i}\n")).collect();
        let e = decide(&evidence(&some_frames, &com1, "")).unwrap_err();
        assert_eq!(e.to_string(), "VM ended without an exit code");
        match e {
            Error::NoExit { com1_tail, .. } => {
                assert_eq!(com1_tail.lines().count(), COM1_TAIL_LINES);
                assert!(com1_tail.starts_with("k5\n") && com1_tail.ends_with("k24"));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn the_payloads_own_exit_outranks_its_com2_text() {
        let done = ran_to_the_end(0);
        assert_eq!(decide(&evidence(&done, "", "FATAL: spoofed\n")).unwrap(), 0);
        assert_eq!(decide(&evidence(&done, "", "PANIC: spoofed\n")).unwrap(), 0);
        // The init's own failure: EXIT 1 without WAIT, its FATAL line.
        let failed = Collected {
            exit_code: Some(1),
            frames: 4,
            ..Collected::default()
        };
        let e = decide(&evidence(&failed, "", "FATAL: no /args\n")).unwrap_err();
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
        let e = decide(&evidence(&frames, com1, "")).unwrap_err();
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
        let e = decide(&evidence(&nothing, "", "")).unwrap_err();
        assert_eq!(e.exit_code(), 251);
        let text = e.to_string();
        assert!(text.contains("never reached the init"), "{text}");
        assert!(text.contains("more memory than 256 MiB"), "{text}");
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
