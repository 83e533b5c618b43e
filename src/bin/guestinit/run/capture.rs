//! A text link read live (COM1, COM2, QEMU's stderr): its text is kept in
//! memory for the verdict, and teed to the user's log file when one was
//! asked for. A log path is only ever written, never read back.

use mio::net::UnixStream;

use super::diag::Diagnostics;
use super::flow::{read_ready, Flow};
use super::gate::Gate;
use super::spool::Spool;
use super::trace::TraceTee;

/// Text kept per link: the verdict reads the init's lines and the kernel's
/// panic; a long run keeps its most recent text.
const KEEP: usize = 4 << 20;

pub struct Capture {
    pub stream: UnixStream,
    kept: Kept,
    /// The log's spool: the link is read while it has room.
    pub gate: Gate,
}

/// What a capture keeps of its link's bytes.
struct Kept {
    text: Vec<u8>,
    log: Option<Spool>,
    /// Texts whose arrival the reactor wants to hear of (COM1: the lines
    /// of a sched_ext debug dump, the kernel's panic), each with whether it
    /// came since last asked.
    watches: Vec<(&'static [u8], bool)>,
    /// COM1 with `--trace`: the trace's lines go to their file as they come.
    trace: Option<TraceTee>,
}

impl Capture {
    /// `name` is the log's, for the warning when it cannot spill.
    pub fn new(stream: UnixStream, log: Option<Spool>, diag: &Diagnostics, name: &str) -> Capture {
        Capture {
            gate: Gate::new(diag).feeds(log.as_ref(), name),
            stream,
            kept: Kept {
                text: Vec::new(),
                log,
                watches: Vec::new(),
                trace: None,
            },
        }
    }

    /// Notes every arrival of `needle` (see [`Capture::take_watched`]).
    pub fn watching(mut self, needle: &'static [u8]) -> Capture {
        self.kept.watches.push((needle, false));
        self
    }

    /// Tees the trace's lines to `trace` (see [`Capture::take_trace`]).
    pub fn tracing(mut self, trace: Option<TraceTee>) -> Capture {
        if let Some(tee) = &trace {
            self.gate.add(tee.spool(), "the --trace file");
        }
        self.kept.trace = trace;
        self
    }

    /// The trace's tee, to finish once the link has closed.
    pub fn take_trace(&mut self) -> Option<TraceTee> {
        self.kept.trace.take()
    }

    /// Whether `needle`, if watched, arrived since the last call.
    pub fn take_watched(&mut self, needle: &[u8]) -> bool {
        let watch = self.kept.watches.iter_mut().find(|(n, _)| *n == needle);
        watch.is_some_and(|(_, seen)| std::mem::take(seen))
    }

    /// Reads all the link holds, while the log has room.
    pub fn on_readable(&mut self) -> Flow {
        let mut chunk = [0u8; 16 * 1024];
        let Capture { stream, kept, gate } = self;
        if !gate.open() {
            return Flow::Paused;
        }
        // A broken link ends like a closed one; QEMU's exit says why.
        read_ready(&*stream, &mut chunk, |bytes| {
            kept.keep(bytes);
            (!gate.open()).then_some(Flow::Paused)
        })
        .unwrap_or(Flow::Closed)
    }

    /// The text kept, and the log's writer to finish.
    pub fn into_parts(self) -> (String, Option<Spool>) {
        let kept = self.kept;
        (String::from_utf8_lossy(&kept.text).into_owned(), kept.log)
    }
}

impl Kept {
    fn keep(&mut self, bytes: &[u8]) {
        if let Some(log) = &self.log {
            log.push(bytes);
        }
        if let Some(trace) = &mut self.trace {
            trace.feed(bytes);
        }
        let start = self.text.len();
        self.text.extend_from_slice(bytes);
        for (needle, seen) in &mut self.watches {
            // A needle cut by the previous read is found across the cut.
            let fresh = &self.text[start.saturating_sub(needle.len().saturating_sub(1))..];
            *seen |= !needle.is_empty() && fresh.windows(needle.len()).any(|w| w == *needle);
        }
        if self.text.len() > 2 * KEEP {
            self.text.drain(..self.text.len() - KEEP);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_watched_text_is_seen_once_even_when_a_read_cuts_it() {
        let mut kept = Kept {
            text: Vec::new(),
            log: None,
            watches: vec![(&b"panic:"[..], false), (&b"dump:"[..], false)],
            trace: None,
        };
        kept.keep(b"boot\nKernel pan");
        assert!(!kept.watches.iter().any(|w| w.1));
        kept.keep(b"ic: x\n");
        assert_eq!(
            kept.watches,
            [(&b"panic:"[..], true), (&b"dump:"[..], false)]
        );
        kept.watches[0].1 = false;
        kept.keep(b"dum");
        kept.keep(b"p: y");
        assert_eq!(
            kept.watches,
            [(&b"panic:"[..], false), (&b"dump:"[..], true)]
        );
    }
}
