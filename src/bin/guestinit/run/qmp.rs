//! The QMP monitor: how the host stops the VM, and what QEMU says of it.
//! Ctrl-Alt-Del reaches the guest's PID 1 as SIGINT (the init turns the
//! keyboard's reboot into a signal), `quit` ends QEMU when the guest cannot
//! power off. QEMU's events are read as they come: one that means the
//! guest cannot go on is kept as the run's [`Qmp::halt`].

use std::collections::BTreeSet;
use std::io::{self, Write};
use std::ops::ControlFlow;
use std::path::PathBuf;

use guestinit::parse::lines::LineSplitter;
use mio::net::UnixStream;

use super::flow::{read_ready, Flow};
use super::qemu;
use super::qmp_event::{self, Event, Line};

/// Leaves capability negotiation; QEMU reads it after its greeting.
const CAPABILITIES: &str = r#"{"execute":"qmp_capabilities"}"#;
const CTRL_ALT_DELETE: &str = r#"{"execute":"send-key","arguments":{"keys":[{"type":"qcode","data":"ctrl"},{"type":"qcode","data":"alt"},{"type":"qcode","data":"delete"}]}}"#;
const QUIT: &str = r#"{"execute":"quit"}"#;
/// A snapshot (`warm`): QEMU says when the migration ends (events), is not
/// held to its default 128 MiB/s, and writes to the file `getfd` hands it.
const MIGRATION_EVENTS: &str = r#"{"execute":"migrate-set-capabilities","arguments":{"capabilities":[{"capability":"events","state":true}]}}"#;
const MIGRATION_SPEED: &str =
    r#"{"execute":"migrate-set-parameters","arguments":{"max-bandwidth":68719476736}}"#;
const GETFD: &str = r#"{"execute":"getfd","arguments":{"fdname":"snapshot"}}"#;
const MIGRATE: &str = r#"{"execute":"migrate","arguments":{"uri":"fd:snapshot"}}"#;
/// The snapshot's source goes on (it is paused once its state is out).
const CONT: &str = r#"{"execute":"cont"}"#;

/// Longest QMP line read: QEMU's events and the replies to the host's few
/// commands are far shorter; a longer line is skipped and counted.
const MAX_LINE: usize = 8 * 1024;
/// What `-v` shows of QEMU's lines at most: an error reported to the guest
/// on every request makes an event each, so the text is bounded.
const KEEP_TEXT: usize = 64 * 1024;

/// What the host asks of the VM.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Command {
    /// An orderly stop: SIGINT to the guest's PID 1.
    CtrlAltDelete,
    /// End QEMU (the guest is done but did not power off).
    Quit,
}

pub struct Qmp {
    pub stream: UnixStream,
    /// The monitor's lines; boxed, it is [`MAX_LINE`] bytes inline.
    lines: Box<LineSplitter<MAX_LINE>>,
    seen: Seen,
}

/// What the host made of QEMU's lines so far.
#[derive(Default)]
struct Seen {
    /// QEMU's lines for `-v`, up to [`KEEP_TEXT`], and how many bytes more.
    text: Vec<u8>,
    dropped: usize,
    garbage: usize,
    /// The first event after which the guest could not go on; a bare STOP
    /// gives way to the event that caused it (which QEMU sends first, but
    /// the host does not rely on the order).
    halt: Option<Event>,
    /// The `--disk` images by index, to name a device's image.
    images: Vec<PathBuf>,
    /// Errors reported to the guest, warned of once per disk and operation.
    reported: BTreeSet<(String, String)>,
    notes: Vec<String>,
    /// A snapshot's migration is under way: its STOP is the host's doing.
    migrating: bool,
    /// How the migration ended (`completed`, or why it did not), once.
    migrated: Option<Result<(), String>>,
    /// `cont` was sent after a snapshot and the VM has not resumed yet;
    /// QEMU refuses it until the migration is finalized, just after its
    /// `completed` event, so a refused one is sent again.
    resuming: bool,
    cont_again: bool,
}

impl Qmp {
    pub fn new(stream: UnixStream, images: Vec<PathBuf>) -> io::Result<Qmp> {
        let mut qmp = Qmp {
            stream,
            lines: Box::new(LineSplitter::new()),
            seen: Seen {
                images,
                ..Seen::default()
            },
        };
        qmp.send(CAPABILITIES)?;
        Ok(qmp)
    }

    fn send(&mut self, line: &str) -> io::Result<()> {
        // One short line into the socket's buffer, which QEMU keeps empty.
        self.stream.write_all(format!("{line}\n").as_bytes())
    }

    /// Starts writing the VM's state into `file` (at its offset): the end
    /// comes as [`Qmp::take_migrated`].
    pub fn snapshot(&mut self, file: &std::fs::File) -> io::Result<()> {
        self.seen.migrating = true;
        self.send(MIGRATION_EVENTS)?;
        self.send(MIGRATION_SPEED)?;
        super::fd_pass::send_with_fd(&self.stream, format!("{GETFD}\n").as_bytes(), file)?;
        self.send(MIGRATE)
    }

    /// After the snapshot: the VM runs on.
    pub fn resume(&mut self) -> io::Result<()> {
        self.seen.migrating = false;
        self.seen.resuming = true;
        self.send(CONT)
    }

    /// How the snapshot's migration ended, once it has.
    pub fn take_migrated(&mut self) -> Option<Result<(), String>> {
        self.seen.migrated.take()
    }

    pub fn command(&mut self, command: Command) -> io::Result<()> {
        match command {
            Command::CtrlAltDelete => self.send(CTRL_ALT_DELETE),
            Command::Quit => self.send(QUIT),
        }
    }

    /// Reads QEMU's replies and events, so its writes never block.
    pub fn on_readable(&mut self) -> Flow {
        let mut chunk = [0u8; 4096];
        let (lines, seen) = (&mut self.lines, &mut self.seen);
        let flow = read_ready(&self.stream, &mut chunk, |bytes| {
            seen.keep(bytes);
            let _ = lines.feed(bytes, |line| {
                seen.line(line);
                ControlFlow::Continue(())
            });
            None
        })
        .unwrap_or(Flow::Closed);
        if std::mem::take(&mut self.seen.cont_again) {
            // Each round trip lets QEMU's main loop finalize the migration.
            if let Err(e) = self.send(CONT) {
                self.seen
                    .notes
                    .push(format!("QMP cont after the snapshot failed: {e}"));
            }
        }
        flow
    }

    /// The event that halted the guest, if one came.
    pub fn halt(&self) -> Option<&Event> {
        self.seen.halt.as_ref()
    }

    /// Warnings for the user since the last call (errors the guest was
    /// told of: it goes on, but the host's image had trouble).
    pub fn take_notes(&mut self) -> Vec<String> {
        std::mem::take(&mut self.seen.notes)
    }

    /// What QEMU said, for `-v`.
    pub fn replies(&self) -> String {
        let seen = &self.seen;
        let mut text = String::from_utf8_lossy(&seen.text).into_owned();
        if seen.dropped > 0 {
            text.push_str(&format!("\n[{} more bytes not kept]", seen.dropped));
        }
        let skipped = seen.garbage + self.lines.overlong();
        if skipped > 0 {
            text.push_str(&format!("\n[{skipped} lines not understood]"));
        }
        text
    }
}

impl Seen {
    fn keep(&mut self, bytes: &[u8]) {
        let room = KEEP_TEXT.saturating_sub(self.text.len()).min(bytes.len());
        self.text.extend_from_slice(&bytes[..room]);
        self.dropped += bytes.len() - room;
    }

    fn line(&mut self, line: &[u8]) {
        let mut event = match qmp_event::parse(line) {
            Line::Event(event) => event,
            Line::Error(desc) if self.migrating => {
                self.migrating = false;
                self.migrated = Some(Err(desc));
                return;
            }
            Line::Error(desc) if self.resuming && desc.contains("not finalized") => {
                self.cont_again = true;
                return;
            }
            Line::Other | Line::Error(_) => return,
            Line::Garbage => {
                self.garbage += 1;
                return;
            }
        };
        if let Event::BlockIoError(e) = &mut event {
            e.image = qemu::drive_index(&e.device)
                .and_then(|i| self.images.get(i))
                .cloned();
        }
        if let Event::Migration { status } = &event {
            match status.as_str() {
                "completed" => self.migrated = Some(Ok(())),
                "failed" | "cancelled" => {
                    self.migrating = false;
                    self.migrated = Some(Err(format!("the migration {status}")));
                }
                _ => {}
            }
            return;
        }
        // The snapshot's own pause, and its end.
        if self.migrating && event == Event::Stop {
            return;
        }
        if event == Event::Resume {
            self.resuming = false;
            return;
        }
        if !event.halts() {
            // An error the guest was told of: it goes on; the user hears once.
            if let Event::BlockIoError(e) = &event {
                let key = (e.device.clone(), e.operation.clone());
                if self.reported.len() < MAX_REPORTED && self.reported.insert(key) {
                    self.notes
                        .push(format!("{event} (warned once per disk and operation)"));
                }
            }
            return;
        }
        let replaces = match &self.halt {
            None => true,
            Some(Event::Stop) => event != Event::Stop,
            Some(_) => false,
        };
        if replaces {
            self.halt = Some(event);
        }
    }
}

/// Distinct disks and operations warned of: a disk each way at most.
const MAX_REPORTED: usize = 2 * guestinit::proto::disk::MAX;

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::net::UnixStream as StdStream;

    fn qmp() -> (Qmp, StdStream) {
        let (ours, qemus) = StdStream::pair().unwrap();
        ours.set_nonblocking(true).unwrap();
        let qmp = Qmp::new(UnixStream::from_std(ours), vec!["/i/a.img".into()]).unwrap();
        (qmp, qemus)
    }

    /// Writes `bytes` as QEMU would and lets the host read them.
    fn say(qmp: &mut Qmp, qemu: &mut StdStream, bytes: &[u8]) {
        qemu.write_all(bytes).unwrap();
        assert_eq!(qmp.on_readable(), Flow::Open);
    }

    const STOP: &[u8] =
        b"{\"event\": \"STOP\", \"timestamp\": {\"seconds\": 1, \"microseconds\": 2}}\r\n";
    const ENOSPC: &[u8] = b"{\"event\": \"BLOCK_IO_ERROR\", \"data\": {\"device\": \"disk0\", \"operation\": \"write\", \"action\": \"stop\", \"nospace\": true, \"reason\": \"No space left on device\"}}\r\n";

    #[test]
    fn an_event_split_across_reads_is_read_whole_and_names_its_image() {
        let (mut qmp, mut qemu) = qmp();
        say(
            &mut qmp,
            &mut qemu,
            b"{\"QMP\": {}}\r\n{\"return\": {}}\r\n",
        );
        assert_eq!(qmp.halt(), None);
        let (head, tail) = ENOSPC.split_at(40);
        say(&mut qmp, &mut qemu, head);
        assert_eq!(qmp.halt(), None, "half a line is not an event yet");
        say(&mut qmp, &mut qemu, tail);
        say(&mut qmp, &mut qemu, STOP);
        let halt = qmp.halt().unwrap().to_string();
        assert!(halt.starts_with("disk0 (/i/a.img): write failed"), "{halt}");
        assert!(qmp.replies().contains("BLOCK_IO_ERROR"));
    }

    #[test]
    fn a_bare_stop_gives_way_to_its_cause_but_nothing_else_replaces_a_halt() {
        let (mut qmp, mut qemu) = qmp();
        say(&mut qmp, &mut qemu, STOP);
        assert_eq!(qmp.halt(), Some(&Event::Stop));
        say(&mut qmp, &mut qemu, ENOSPC);
        assert!(matches!(qmp.halt(), Some(Event::BlockIoError(_))));
        say(&mut qmp, &mut qemu, STOP);
        say(&mut qmp, &mut qemu, b"{\"event\":\"GUEST_PANICKED\"}\n");
        assert!(matches!(qmp.halt(), Some(Event::BlockIoError(_))));
    }

    #[test]
    fn garbage_and_reported_errors_never_halt_and_errors_are_warned_once() {
        let (mut qmp, mut qemu) = qmp();
        let eio = b"{\"event\":\"BLOCK_IO_ERROR\",\"data\":{\"device\":\"disk0\",\"operation\":\"read\",\"action\":\"report\",\"reason\":\"Input/output error\"}}\n";
        say(&mut qmp, &mut qemu, b"\xff\xfe not json\n{\"event\":\"STO");
        say(&mut qmp, &mut qemu, b"P\"\n{broken\n");
        for _ in 0..3 {
            say(&mut qmp, &mut qemu, eio);
        }
        assert_eq!(qmp.halt(), None);
        let notes = qmp.take_notes();
        assert_eq!(notes.len(), 1, "{notes:?}");
        assert!(notes[0].contains("(/i/a.img): read failed on the host: Input/output error"));
        assert!(
            qmp.replies().ends_with("[3 lines not understood]"),
            "{}",
            qmp.replies()
        );
    }

    #[test]
    fn an_overlong_line_is_skipped_and_the_kept_text_is_bounded() {
        let (mut qmp, mut qemu) = qmp();
        let long = vec![b'x'; MAX_LINE + 1];
        let writer = std::thread::spawn(move || {
            qemu.write_all(&long).unwrap();
            qemu.write_all(b"\n").unwrap();
            for _ in 0..KEEP_TEXT / 16 {
                qemu.write_all(b"{\"return\": {}}\n").unwrap();
            }
            qemu.write_all(STOP).unwrap();
            qemu
        });
        let _qemu = loop {
            qmp.on_readable();
            if writer.is_finished() {
                let qemu = writer.join().unwrap();
                qmp.on_readable();
                break qemu;
            }
        };
        assert_eq!(qmp.halt(), Some(&Event::Stop));
        let replies = qmp.replies();
        assert!(replies.len() < KEEP_TEXT + 100, "{}", replies.len());
        assert!(replies.ends_with("[1 lines not understood]"), "{replies}");
    }

    #[test]
    fn a_closed_monitor_ends_the_link() {
        let (mut qmp, qemu) = qmp();
        drop(qemu);
        assert_eq!(qmp.on_readable(), Flow::Closed);
    }
}
