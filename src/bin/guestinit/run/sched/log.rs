//! The scheduler's log (SCLG), in bounded memory whatever the guest sends:
//! its last bytes for the failure's last lines, the last line naming the
//! kernel's exit reason, and the whole log streamed as it arrives to
//! `--sched-log` through a spool (which the bulk port's gate watches).

use guestinit::proto::sched;

use crate::run::spool::Spool;

/// The log's last bytes kept for the failure's last lines: ten lines fit
/// while they average 1.6 KiB. Trimmed back to this once twice as long.
pub const TAIL_BYTES: usize = 16 << 10;
/// How much of a line is looked at for the kernel's exit reason (`EXIT:`
/// and what follows it); the rest of a longer line is not kept.
pub const REASON_LINE_BYTES: usize = 1024;

/// What the run keeps of the log.
#[derive(Debug, Default)]
pub struct SchedLog {
    /// The last bytes, ktstr's markers left out.
    tail: Vec<u8>,
    /// The line being read, its first [`REASON_LINE_BYTES`].
    line: Vec<u8>,
    /// The last whole line that holds `EXIT:`.
    exit_line: Option<Vec<u8>>,
    /// Log bytes in all, markers left out.
    total: u64,
    /// `--sched-log`: every byte, as it arrives.
    file: Option<Spool>,
}

/// The log's last lines, and how many bytes came before them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LastLines {
    pub text: String,
    pub earlier: u64,
}

impl SchedLog {
    pub fn new(file: Option<Spool>) -> SchedLog {
        SchedLog {
            file,
            ..SchedLog::default()
        }
    }

    /// The file's spool, if the run writes one.
    pub fn file(&self) -> Option<&Spool> {
        self.file.as_ref()
    }

    /// One SCLG payload. The init sends ktstr's markers as frames of their
    /// own; they are left out.
    pub fn push(&mut self, payload: &[u8]) {
        let markers = [sched::LOG_START, sched::LOG_END];
        if markers.iter().any(|m| m.as_bytes() == payload) {
            return;
        }
        self.total += payload.len() as u64;
        if let Some(file) = &self.file {
            file.push(payload);
        }
        self.tail.extend_from_slice(payload);
        if self.tail.len() > 2 * TAIL_BYTES {
            self.tail.drain(..self.tail.len() - TAIL_BYTES);
        }
        for piece in payload.split_inclusive(|&b| b == b'\n') {
            let (text, ends) = match piece.strip_suffix(b"\n") {
                Some(text) => (text, true),
                None => (piece, false),
            };
            let room = REASON_LINE_BYTES - self.line.len();
            self.line.extend_from_slice(&text[..text.len().min(room)]);
            if ends {
                if names_exit(&self.line) {
                    self.exit_line = Some(self.line.clone());
                }
                self.line.clear();
            }
        }
    }

    /// Why the kernel ejected it: the text after `EXIT:` on the last line
    /// that has it (scx schedulers print the kernel's exit reason so).
    pub fn exit_reason(&self) -> Option<String> {
        let line = Some(&self.line)
            .filter(|l| names_exit(l))
            .or(self.exit_line.as_ref())?;
        let line = String::from_utf8_lossy(line);
        Some(line.split_once("EXIT:")?.1.trim().to_owned())
    }

    /// The last `n` lines. A line cut at the tail's start is left out
    /// (unless it is the only one), so its bytes count as earlier.
    pub fn last_lines(&self, n: usize) -> LastLines {
        let tail = &self.tail[..];
        let body = tail.strip_suffix(b"\n").unwrap_or(tail);
        let mut newlines = body.iter().enumerate().rev().filter(|&(_, &b)| b == b'\n');
        // After the n-th newline from the end; the start when there are fewer.
        let mut start = newlines.nth(n.saturating_sub(1)).map_or(0, |(i, _)| i + 1);
        let cut = (tail.len() as u64) < self.total;
        if cut && start == 0 {
            start = body.iter().position(|&b| b == b'\n').map_or(0, |i| i + 1);
        }
        let text = String::from_utf8_lossy(&body[start..]);
        let text: Vec<&str> = text.lines().collect();
        LastLines {
            text: text.join("\n"),
            earlier: self.total - (tail.len() - start) as u64,
        }
    }
}

fn names_exit(line: &[u8]) -> bool {
    line.windows(5).any(|w| w == b"EXIT:")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::run::spool::{Captured, Finish};

    fn pushed(chunks: &[&[u8]]) -> SchedLog {
        let mut log = SchedLog::default();
        for chunk in chunks {
            log.push(chunk);
        }
        log
    }

    #[test]
    fn markers_are_left_out_and_the_last_lines_are_the_logs() {
        let start = sched::LOG_START.as_bytes();
        let end = sched::LOG_END.as_bytes();
        let log = pushed(&[start, b"one\ntw", b"o\nthree\n", end]);
        let last = log.last_lines(2);
        assert_eq!(last.text, "two\nthree");
        assert_eq!(last.earlier, 4);
        assert_eq!(log.last_lines(10).text, "one\ntwo\nthree");
        assert_eq!(log.last_lines(10).earlier, 0);
    }

    #[test]
    fn a_flood_keeps_a_bounded_tail_and_counts_what_came_before_it() {
        let mut log = SchedLog::default();
        let chunk = b"y\n".repeat(8000);
        for _ in 0..10_000 {
            log.push(&chunk);
            assert!(log.tail.len() <= 2 * TAIL_BYTES);
            assert!(log.line.len() <= REASON_LINE_BYTES);
        }
        let last = log.last_lines(10);
        assert_eq!(last.text, ["y"; 10].join("\n"));
        assert_eq!(last.earlier, 10_000 * 16_000 - 20);
    }

    #[test]
    fn the_exit_reason_is_the_last_exit_line_however_much_follows() {
        let mut log = pushed(&[b"EXIT: first\nstats\nEXIT: disabled by", b" sysrq-S\n"]);
        for _ in 0..1000 {
            log.push(&b"after\n".repeat(100));
        }
        assert_eq!(log.exit_reason().as_deref(), Some("disabled by sysrq-S"));
        // A last line without its newline counts too.
        log.push(b"EXIT: unregistered");
        assert_eq!(log.exit_reason().as_deref(), Some("unregistered"));
        assert_eq!(pushed(&[b"no reason\n"]).exit_reason(), None);
    }

    #[test]
    fn one_endless_line_is_cut_to_the_tail_and_said_so() {
        let mut log = SchedLog::default();
        for _ in 0..100 {
            log.push(&[b'x'; 4096]);
        }
        let last = log.last_lines(10);
        assert!(last.text.len() <= 2 * TAIL_BYTES && !last.text.is_empty());
        assert_eq!(last.earlier, 100 * 4096 - last.text.len() as u64);
    }

    #[test]
    fn the_file_gets_every_byte_but_the_markers() {
        let file = Captured::default();
        let mut log = SchedLog::new(Some(file.spool()));
        log.push(sched::LOG_START.as_bytes());
        let flood = b"y\n".repeat(100_000);
        log.push(&flood);
        log.push(b"EXIT: done\n");
        log.push(sched::LOG_END.as_bytes());
        let spool = log.file().unwrap();
        assert!(matches!(
            spool.finish(None, || false),
            Finish::Written(None)
        ));
        assert_eq!(file.take(), [&flood[..], b"EXIT: done\n"].concat());
    }
}
