//! The init's own memory use, for the host's report.

use core::ops::ControlFlow;
use guestinit::parse::lines::LineSplitter;
use guestinit::parse::num::parse_dec_u64;
use rustix::fs::OFlags;

/// PID 1's peak resident set in KiB. The init never frees or unmaps memory,
/// so its resident set only grows and the current `Rss` of smaps_rollup is
/// its peak. VmHWM would be simpler, but kernels before 6.2 update it from
/// per-task counters synced every 64 faults, so a small process reads ~4 KiB.
pub fn peak_rss_kib() -> Option<u64> {
    let file = crate::small_file::open(b"/proc/self/smaps_rollup", OFlags::RDONLY).ok()?;
    let mut buf = [0u8; 2048];
    let mut lines: LineSplitter<128> = LineSplitter::new();
    let mut found = None;
    let mut on_line = |line: &[u8]| match line.strip_prefix(b"Rss:") {
        Some(rest) => {
            let digits = rest
                .trim_ascii()
                .strip_suffix(b"kB")
                .map(<[u8]>::trim_ascii);
            found = digits.and_then(parse_dec_u64);
            ControlFlow::Break(())
        }
        None => ControlFlow::Continue(()),
    };
    loop {
        let n = rustix::io::read(&file, &mut buf).ok()?;
        if n == 0 || lines.feed(&buf[..n], &mut on_line).is_break() {
            break;
        }
    }
    found
}
