//! The init's own memory use, for the host's report.

use core::ops::ControlFlow;
use guestinit::parse::lines::LineSplitter;
use guestinit::parse::num::parse_dec_u64;

/// VmHWM of PID 1 in KiB: its peak resident set.
pub fn peak_rss_kib() -> Option<u64> {
    let file = rustix::fs::open(
        c"/proc/self/status",
        rustix::fs::OFlags::RDONLY,
        rustix::fs::Mode::empty(),
    )
    .ok()?;
    let mut buf = [0u8; 2048];
    let mut lines: LineSplitter<128> = LineSplitter::new();
    let mut found = None;
    let mut on_line = |line: &[u8]| match line.strip_prefix(b"VmHWM:") {
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
