//! The stats relay's count of scx_stats' lines. The host pairs replies
//! with requests by their order alone, so every request line it sends
//! gets exactly one line back: the scheduler's reply, or an error line
//! when there is no scheduler to ask or it went away before answering
//! (then a reply it had begun is ended with a newline, cut short).

/// The longest error line: `{"errno":NNNN,"args":{}}` and a newline. The
/// relay keeps room for one per request it may yet have to answer.
pub const REPLY_MAX: usize = 32;

#[derive(Default)]
pub struct Lines {
    /// Request lines sent to the scheduler and not answered yet.
    outstanding: usize,
    /// The host is in the middle of a request line.
    request_open: bool,
    /// That open line is answered with an error line: it began while there
    /// was no scheduler, or lost it; the rest of it is not sent.
    open_unsent: bool,
    /// The scheduler is in the middle of a reply line.
    reply_open: bool,
}

/// What to do with bytes of the host's.
#[derive(Debug, PartialEq, Eq)]
pub struct HostSent {
    /// Where the bytes for the scheduler begin (the rest are sent).
    pub send_from: usize,
    /// Error lines to answer with now.
    pub errors: usize,
}

/// What to send the host once the scheduler is gone.
#[derive(Debug, PartialEq, Eq)]
pub struct Lost {
    /// A newline ends the reply the scheduler had begun.
    pub end_reply: bool,
    pub errors: usize,
}

fn newlines(bytes: &[u8]) -> usize {
    bytes.iter().filter(|&&b| b == b'\n').count()
}

impl Lines {
    /// Bytes of the port's that may be read now, so that every line they
    /// may end can still be answered: each needs [`REPLY_MAX`] of the
    /// `room` left for the host, as each request already sent does.
    pub fn port_budget(&self, room: usize) -> usize {
        (room / REPLY_MAX).saturating_sub(self.outstanding)
    }

    /// Bytes of the scheduler's that may be read into `room` now: what
    /// the answers owed do not need.
    pub fn socket_budget(&self, room: usize) -> usize {
        room.saturating_sub(self.outstanding * REPLY_MAX)
    }

    /// `bytes` came from the host; `connected` says whether there is a
    /// scheduler to send them to.
    pub fn host_sent(&mut self, bytes: &[u8], connected: bool) -> HostSent {
        let Some(&last) = bytes.last() else {
            return HostSent {
                send_from: bytes.len(),
                errors: 0,
            };
        };
        if !connected {
            self.request_open = last != b'\n';
            self.open_unsent = self.request_open;
            return HostSent {
                send_from: bytes.len(),
                errors: newlines(bytes),
            };
        }
        let mut from = 0;
        let mut errors = 0;
        if self.open_unsent {
            let Some(end) = bytes.iter().position(|&b| b == b'\n') else {
                return HostSent {
                    send_from: bytes.len(),
                    errors: 0,
                };
            };
            from = end + 1;
            errors = 1;
            self.open_unsent = false;
        }
        self.outstanding += newlines(&bytes[from..]);
        self.request_open = last != b'\n';
        HostSent {
            send_from: from,
            errors,
        }
    }

    /// `bytes` came from the scheduler, on their way to the host.
    pub fn scheduler_sent(&mut self, bytes: &[u8]) {
        let Some(&last) = bytes.last() else { return };
        self.outstanding = self.outstanding.saturating_sub(newlines(bytes));
        self.reply_open = last != b'\n';
    }

    /// The scheduler's socket is gone, with what it was sent: the answers
    /// still owed, and the open request's rest answered by an error.
    pub fn lost(&mut self) -> Lost {
        let end_reply = self.reply_open;
        let errors = self.outstanding - usize::from(end_reply && self.outstanding > 0);
        self.outstanding = 0;
        self.reply_open = false;
        self.open_unsent = self.request_open;
        Lost { end_reply, errors }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host(lines: &mut Lines, bytes: &[u8], connected: bool) -> (usize, usize) {
        let r = lines.host_sent(bytes, connected);
        (r.send_from, r.errors)
    }

    #[test]
    fn without_a_scheduler_every_line_gets_an_error_and_nothing_is_sent() {
        let mut lines = Lines::default();
        assert_eq!(host(&mut lines, b"{}\n{}\n", false), (6, 2));
        assert_eq!(host(&mut lines, b"{\"req\"", false), (6, 0));
        assert_eq!(host(&mut lines, b":1}\n", false), (4, 1));
    }

    #[test]
    fn a_line_begun_before_the_scheduler_came_is_answered_as_it_began() {
        let mut lines = Lines::default();
        assert_eq!(host(&mut lines, b"{\"req\":\"st", false), (10, 0));
        // The socket connects: the line's rest is not the scheduler's.
        assert_eq!(host(&mut lines, b"ats\"}\n{}\n", true), (6, 1));
        assert_eq!(lines.outstanding, 1);
        lines.scheduler_sent(b"{\"errno\":0}\n");
        assert_eq!(lines.outstanding, 0);
    }

    #[test]
    fn a_scheduler_lost_owes_one_line_per_request_sent() {
        let mut lines = Lines::default();
        assert_eq!(host(&mut lines, b"{}\n{}\n{", true), (0, 0));
        lines.scheduler_sent(b"{\"errno\":0,\"args\":{\"resp\":");
        // One reply begun (ended with a newline), one not begun, one line open.
        assert_eq!(
            lines.lost(),
            Lost {
                end_reply: true,
                errors: 1
            }
        );
        assert_eq!(host(&mut lines, b"}\n", false), (2, 1));
        assert_eq!(
            lines.lost(),
            Lost {
                end_reply: false,
                errors: 0
            }
        );
    }

    #[test]
    fn a_line_half_sent_when_the_scheduler_went_is_answered_by_an_error() {
        let mut lines = Lines::default();
        assert_eq!(host(&mut lines, b"{\"req\"", true), (0, 0));
        assert_eq!(
            lines.lost(),
            Lost {
                end_reply: false,
                errors: 0
            }
        );
        // A new scheduler is there by the time the line's rest comes.
        assert_eq!(host(&mut lines, b":1}\n{}\n", true), (4, 1));
        assert_eq!(lines.outstanding, 1);
    }

    #[test]
    fn the_budgets_keep_room_for_every_answer_owed() {
        let mut lines = Lines::default();
        assert_eq!(lines.port_budget(4096), 128);
        host(&mut lines, b"{}\n{}\n", true);
        assert_eq!(lines.port_budget(4096), 126);
        assert_eq!(lines.socket_budget(4096), 4096 - 64);
        assert_eq!(lines.socket_budget(40), 0);
        assert_eq!(lines.port_budget(40), 0);
    }
}
