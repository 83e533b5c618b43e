//! `--trace FILE`: the trace lines of COM1, where the init relays
//! trace_pipe beside the kernel's console, written as they arrive. A trace
//! line names its task and pid, then its CPU in brackets (`  sleep-74
//! [001] d..1.  2.5: ...`), a console line begins with its time (`[
//! 2.5] ...`). The kernel marks events its ring buffer lost with
//! `CPU:0 [LOST 339 EVENTS]`, kept where it fell and counted.

use super::spool::Spool;

/// The longest line kept while it is incomplete; a longer one is no line
/// of the trace (trace_marker writes are at most a page) and is dropped.
const MAX_LINE: usize = 64 << 10;

/// COM1's bytes in, the trace's lines out to the file's spool.
pub struct TraceTee {
    line: Vec<u8>,
    out: Spool,
    /// Events the kernel said it lost, summed over its LOST lines.
    lost: u64,
}

impl TraceTee {
    pub fn new(out: Spool) -> TraceTee {
        TraceTee {
            line: Vec::new(),
            out,
            lost: 0,
        }
    }

    /// The file's spool, for the reader's gate.
    pub fn spool(&self) -> &Spool {
        &self.out
    }

    pub fn feed(&mut self, mut bytes: &[u8]) {
        while let Some(at) = bytes.iter().position(|&b| b == b'\n') {
            self.take_line(&bytes[..at]);
            bytes = &bytes[at + 1..];
        }
        if self.line.len() + bytes.len() > MAX_LINE {
            self.line.clear();
            self.line.push(0); // not a trace line's first byte: dropped at its end
        } else {
            self.line.extend_from_slice(bytes);
        }
    }

    fn take_line(&mut self, tail: &[u8]) {
        let whole;
        let line = if self.line.is_empty() {
            tail
        } else {
            self.line.extend_from_slice(tail);
            whole = std::mem::take(&mut self.line);
            &whole[..]
        };
        let text = String::from_utf8_lossy(line);
        let text = text.trim_end_matches('\r');
        if let Some(lost) = lost_events(text) {
            self.lost += lost;
        } else if !is_trace_line(text) {
            return;
        }
        self.out.push(format!("{text}\n").as_bytes());
    }

    /// The file's spool to finish, and the events the kernel lost.
    pub fn finish(mut self) -> (Spool, u64) {
        let last = std::mem::take(&mut self.line);
        if !last.is_empty() {
            self.take_line(&last);
        }
        (self.out, self.lost)
    }
}

/// `M` of the kernel's `CPU:N [LOST M EVENTS]`.
fn lost_events(line: &str) -> Option<u64> {
    let rest = line.trim().strip_prefix("CPU:")?;
    let (cpu, rest) = rest.split_once(' ')?;
    let count = rest.strip_prefix("[LOST ")?.strip_suffix(" EVENTS]")?;
    cpu.parse::<u32>().ok()?;
    count.parse().ok()
}

/// Whether `line` has the shape of a trace_pipe line.
fn is_trace_line(line: &str) -> bool {
    let mut words = line.split_whitespace();
    let task_pid = words.next().unwrap_or("");
    let pid = task_pid.rsplit_once('-').map_or("", |(_, pid)| pid);
    let cpu = words
        .find(|w| w.starts_with('['))
        .and_then(|w| w.strip_prefix('[')?.strip_suffix(']'));
    !pid.is_empty()
        && pid.bytes().all(|b| b.is_ascii_digit())
        && cpu.is_some_and(|c| !c.is_empty() && c.bytes().all(|b| b.is_ascii_digit()))
}

#[cfg(test)]
mod tests {
    use super::super::spool::Captured;
    use super::*;

    #[test]
    fn keeps_trace_lines_and_lost_marks_and_drops_the_console() {
        let com1 = "[    2.500000] Run /init as init process\r\n\
                    \x20          <...>-74      [001] ..... 2.612: tracing_mark_write: hello\r\n\
                    CPU:0 [LOST 339 EVENTS]\r\n\
                    \x20  kworker/0:1-12   (     12) [000] d..1. 3.1: sched_ext_dump: x\r\n\
                    CPU:1 [LOST 2 EVENTS]\n\
                    [    3.000000] reboot: Power down\r\n";
        let captured = Captured::default();
        let mut tee = TraceTee::new(captured.spool());
        // Byte by byte: lines arrive in any pieces.
        for byte in com1.as_bytes() {
            tee.feed(std::slice::from_ref(byte));
        }
        let (spool, lost) = tee.finish();
        spool.finish(None, || false);
        assert_eq!(lost, 341);
        assert_eq!(
            String::from_utf8(captured.take()).unwrap(),
            "           <...>-74      [001] ..... 2.612: tracing_mark_write: hello\n\
             CPU:0 [LOST 339 EVENTS]\n\
             \x20  kworker/0:1-12   (     12) [000] d..1. 3.1: sched_ext_dump: x\n\
             CPU:1 [LOST 2 EVENTS]\n"
        );
    }

    #[test]
    fn an_overlong_line_is_dropped_and_a_last_line_without_newline_kept() {
        let captured = Captured::default();
        let mut tee = TraceTee::new(captured.spool());
        tee.feed(&vec![b'x'; MAX_LINE + 1]);
        tee.feed(b" sleep-74 [001] ...: after\n  cat-9 [000] ...: last");
        let (spool, lost) = tee.finish();
        spool.finish(None, || false);
        assert_eq!(lost, 0);
        assert_eq!(
            String::from_utf8(captured.take()).unwrap(),
            "  cat-9 [000] ...: last\n"
        );
        assert_eq!(lost_events("CPU:x [LOST 1 EVENTS]"), None);
        assert_eq!(lost_events("CPU:3 [LOST 12 EVENTS]"), Some(12));
    }
}
