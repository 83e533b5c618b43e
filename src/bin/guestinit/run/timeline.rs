//! The `--timeline` report: the guest's TIME marks on CLOCK_BOOTTIME (which
//! counts from the kernel's start), their deltas, the payload's resource use,
//! and the host's wall time from spawning QEMU to the EXIT frame.

use std::fmt::Write;
use std::time::Duration;

use guestinit::wire::msg::{Mark, WaitStatus};

pub fn report(
    marks: &[(u8, u64)],
    wait: Option<&WaitStatus>,
    spawn_to_exit: Option<Duration>,
) -> String {
    let mut out = String::from("guestinit: timeline (guest CLOCK_BOOTTIME, from kernel start):\n");
    if marks.is_empty() {
        out.push_str("  no TIME frame received\n");
    }
    let mut previous: Option<u64> = None;
    for &(raw, ns) in marks {
        let name = Mark::from_u8(raw).map_or(format!("mark {raw}"), |m| m.name().to_owned());
        let _ = write!(out, "  {name:<16} {:>10.3} ms", ms(ns));
        if let Some(prev) = previous {
            let _ = write!(out, "  (+{:.3} ms)", ms(ns.saturating_sub(prev)));
        }
        out.push('\n');
        previous = Some(ns);
    }
    if let Some(w) = wait {
        let _ = writeln!(
            out,
            "  payload: user {:.3} s, system {:.3} s, max RSS {} KiB; init peak RSS {} KiB",
            w.user_us as f64 / 1e6,
            w.system_us as f64 / 1e6,
            w.max_rss_kib,
            w.init_hwm_kib
        );
    }
    match spawn_to_exit {
        Some(d) => {
            let _ = writeln!(out, "  host: QEMU spawn to EXIT {:.3} s", d.as_secs_f64());
        }
        None => out.push_str("  host: no EXIT frame\n"),
    }
    out
}

fn ms(ns: u64) -> f64 {
    ns as f64 / 1e6
}

#[cfg(test)]
mod tests {
    use super::*;
    use guestinit::wire::msg::Exit;

    #[test]
    fn marks_with_deltas_and_host_time() {
        let marks = [(1, 1_200_000_000), (2, 1_250_500_000), (42, 1_300_000_000)];
        let wait = WaitStatus {
            exit: Exit::Exited(0),
            user_us: 1500,
            system_us: 500,
            max_rss_kib: 2048,
            init_hwm_kib: 300,
        };
        let text = report(&marks, Some(&wait), Some(Duration::from_millis(4321)));
        assert_eq!(
            text,
            "guestinit: timeline (guest CLOCK_BOOTTIME, from kernel start):\n\
             \x20 init entry         1200.000 ms\n\
             \x20 system ready       1250.500 ms  (+50.500 ms)\n\
             \x20 mark 42            1300.000 ms  (+49.500 ms)\n\
             \x20 payload: user 0.002 s, system 0.001 s, max RSS 2048 KiB; init peak RSS 300 KiB\n\
             \x20 host: QEMU spawn to EXIT 4.321 s\n"
        );
    }

    #[test]
    fn says_what_is_missing() {
        let text = report(&[], None, None);
        assert!(text.contains("no TIME frame received") && text.contains("no EXIT frame"));
    }
}
