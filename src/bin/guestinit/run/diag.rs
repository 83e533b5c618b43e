//! The run's one channel for the host's own words. A warning goes to
//! stderr, in order with the payload's stderr while that is spooled (plain
//! `say_errln!` once the spool is finished), and with `--events` it is a
//! `warning` event too. Lines that are no warning (`-v`'s frames, the
//! timeline, notes on how the payload died) go to stderr only.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::events::Events;
use super::spool::{Finish, Spool};

#[derive(Clone)]
pub struct Diagnostics {
    stderr: Spool,
    events: Events,
    /// The stderr spool was finished: write directly.
    closed: Arc<AtomicBool>,
}

impl Diagnostics {
    pub fn new(stderr: Spool, events: Events) -> Diagnostics {
        Diagnostics {
            stderr,
            events,
            closed: Arc::default(),
        }
    }

    /// `guestinit: warning: TEXT` on stderr, and a `warning` event.
    pub fn warn(&self, text: &str) {
        self.events.warning(text);
        self.line(&format!("guestinit: warning: {text}"));
    }

    /// A line of the host's own on stderr (no event).
    pub fn line(&self, line: &str) {
        self.text(&format!("{line}\n"));
    }

    /// Text of the host's own on stderr, as it is.
    pub fn text(&self, text: &str) {
        if self.closed.load(Ordering::SeqCst) {
            crate::say::say_err!("{text}");
        } else {
            self.stderr.push(text.as_bytes());
        }
    }

    /// The payload's stderr (SERR), in order with the host's lines.
    pub fn stderr(&self) -> &Spool {
        &self.stderr
    }

    pub fn events(&self) -> &Events {
        &self.events
    }

    /// Writes what stderr's spool holds: within `deadline`, unless
    /// `give_up` says otherwise. Later words go straight to stderr.
    pub fn finish(&self, deadline: Option<Instant>, give_up: impl FnMut() -> bool) -> Finish {
        let finish = self.stderr.finish(deadline, give_up);
        self.closed.store(true, Ordering::SeqCst);
        finish
    }

    /// The run is over (or failed before its end): stderr's queue goes out
    /// before the error that follows it, for a few seconds at most.
    pub fn close(&self) {
        let _ = self.finish(Some(Instant::now() + Duration::from_secs(5)), || false);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::run::spool::Captured;

    #[test]
    fn a_warning_is_a_stderr_line_and_an_event_in_order_with_the_payloads_stderr() {
        let (stderr, events) = (Captured::default(), Captured::default());
        let diag = Diagnostics::new(stderr.spool(), Events::new(Some(events.spool())));
        diag.stderr().push(b"payload\n");
        diag.warn("QMP \"quit\" failed: broken pipe");
        diag.line("guestinit: a note");
        diag.close();
        diag.events().close();
        let text = String::from_utf8(stderr.take()).unwrap();
        assert_eq!(
            text,
            "payload\nguestinit: warning: QMP \"quit\" failed: broken pipe\nguestinit: a note\n"
        );
        let events = String::from_utf8(events.take()).unwrap();
        let lines: Vec<serde_json::Value> = events
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 1);
        assert_eq!(lines[0]["event"], "warning");
        assert_eq!(lines[0]["text"], "QMP \"quit\" failed: broken pipe");
    }
}
