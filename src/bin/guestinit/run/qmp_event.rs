//! QEMU's QMP lines as the host reads them: which events mean the guest
//! cannot go on (a disk error QEMU paused it for, a STOP the host never
//! asks for, a guest panic). Pure: a line in, a value out, never a panic,
//! whatever the bytes.

use std::fmt;
use std::path::PathBuf;

use serde_json::{Map, Value};

/// Longest text kept of one field (a device name, a reason): QEMU's are
/// short; a longer one is cut so no line can grow the host's memory.
pub const MAX_FIELD: usize = 256;

/// One line of the monitor, as far as the host cares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Line {
    /// An event the host acts on.
    Event(Event),
    /// The greeting, a reply, or an event the host has no use for.
    Other,
    /// A command's error reply: its description.
    Error(String),
    /// Not a JSON object: never fatal, only counted.
    Garbage,
}

/// The events the host acts on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    BlockIoError(BlockIoError),
    /// The VM stopped running. The host never sends `stop`, so this is
    /// QEMU's own doing (a disk error, a panic's `pause`, another monitor).
    Stop,
    /// The guest told QEMU it panicked (pvpanic, `--qemu-arg -device pvpanic`).
    GuestPanicked {
        action: String,
    },
    /// The VM runs again (after a snapshot's `cont`).
    Resume,
    /// A migration's state changed (`completed`, `failed`, ...): the host
    /// migrates only to take a snapshot (`warm`), with events asked for.
    Migration {
        status: String,
    },
}

/// QEMU's `BLOCK_IO_ERROR`: a request of the guest's failed on the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockIoError {
    /// The drive's id (`disk0`), else its node name.
    pub device: String,
    /// `read` or `write`.
    pub operation: String,
    /// `stop` (the guest is paused), `report` (it got an error), `ignore`.
    pub action: String,
    /// The host's error (`No space left on device`).
    pub reason: String,
    /// QEMU says the cause is a full host file system.
    pub nospace: bool,
    /// The image behind the device, named by the host (not QEMU).
    pub image: Option<PathBuf>,
}

impl Event {
    /// Whether the guest cannot go on after this event: it was paused, or
    /// its kernel panicked; an error reported to the guest is not one.
    pub fn halts(&self) -> bool {
        match self {
            Event::BlockIoError(e) => e.stops(),
            Event::Stop | Event::GuestPanicked { .. } => true,
            Event::Migration { .. } | Event::Resume => false,
        }
    }
}

impl BlockIoError {
    pub fn stops(&self) -> bool {
        self.action == "stop"
    }
}

/// Reads one line (without its `\n`; a `\r` is allowed).
pub fn parse(line: &[u8]) -> Line {
    let Ok(Value::Object(object)) = serde_json::from_slice::<Value>(line) else {
        return Line::Garbage;
    };
    if let Some(Value::Object(error)) = object.get("error") {
        return Line::Error(field(error, "desc"));
    }
    let Some(name) = object.get("event").and_then(Value::as_str) else {
        return Line::Other;
    };
    let empty = Map::new();
    let data = object
        .get("data")
        .and_then(Value::as_object)
        .unwrap_or(&empty);
    let text = |key: &str| field(data, key);
    let event = match name {
        "BLOCK_IO_ERROR" => Event::BlockIoError(BlockIoError {
            device: Some(text("device"))
                .filter(|d| !d.is_empty())
                .unwrap_or_else(|| text("node-name")),
            operation: text("operation"),
            action: text("action"),
            reason: text("reason"),
            nospace: data.get("nospace").and_then(Value::as_bool) == Some(true),
            image: None,
        }),
        "STOP" => Event::Stop,
        "RESUME" => Event::Resume,
        "GUEST_PANICKED" => Event::GuestPanicked {
            action: text("action"),
        },
        "MIGRATION" => Event::Migration {
            status: text("status"),
        },
        _ => return Line::Other,
    };
    Line::Event(event)
}

/// A string field of `data`, cut at [`MAX_FIELD`] bytes; empty if absent.
fn field(data: &Map<String, Value>, key: &str) -> String {
    let text = data.get(key).and_then(Value::as_str).unwrap_or_default();
    let mut end = text.len().min(MAX_FIELD);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].to_owned()
}

impl fmt::Display for BlockIoError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let device = if self.device.is_empty() {
            "a disk"
        } else {
            &self.device
        };
        write!(f, "{device}")?;
        if let Some(image) = &self.image {
            write!(f, " ({})", image.display())?;
        }
        let operation = if self.operation.is_empty() {
            "an I/O request"
        } else {
            &self.operation
        };
        let reason = if self.reason.is_empty() {
            "no reason given"
        } else {
            &self.reason
        };
        write!(f, ": {operation} failed on the host: {reason}")?;
        if self.nospace {
            f.write_str(" (the host file system holding the image is full)")?;
        }
        Ok(())
    }
}

impl fmt::Display for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Event::BlockIoError(e) if e.stops() => write!(f, "{e}; QEMU paused the guest"),
            Event::BlockIoError(e) => write!(f, "{e}; the guest got an I/O error"),
            Event::Stop => f.write_str("QEMU paused the guest (a STOP the host did not ask for)"),
            Event::GuestPanicked { action } if action.is_empty() => {
                f.write_str("the guest kernel panicked (QEMU's GUEST_PANICKED)")
            }
            Event::GuestPanicked { action } => write!(
                f,
                "the guest kernel panicked (QEMU's GUEST_PANICKED, action {action})"
            ),
            Event::Migration { status } => write!(f, "the snapshot's migration is {status}"),
            Event::Resume => f.write_str("the VM runs again"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ENOSPC: &str = r##"{"timestamp": {"seconds": 1718000000, "microseconds": 5}, "event": "BLOCK_IO_ERROR", "data": {"device": "disk0", "nospace": true, "node-name": "#block146", "reason": "No space left on device", "operation": "write", "action": "stop"}}"##;

    #[test]
    fn a_migrations_state_is_read_and_never_halts() {
        let line = br#"{"timestamp": {"seconds": 1, "microseconds": 2}, "event": "MIGRATION", "data": {"status": "completed"}}"#;
        let Line::Event(event) = parse(line) else {
            panic!("not an event")
        };
        assert_eq!(
            event,
            Event::Migration {
                status: "completed".into()
            }
        );
        assert!(!event.halts());
    }

    #[test]
    fn a_full_host_disk_is_a_block_error_that_stops() {
        let Line::Event(event) = parse(ENOSPC.as_bytes()) else {
            panic!("not an event");
        };
        assert!(event.halts());
        let Event::BlockIoError(mut e) = event.clone() else {
            panic!("{event:?}")
        };
        assert_eq!(
            (e.device.as_str(), e.operation.as_str(), e.nospace),
            ("disk0", "write", true)
        );
        e.image = Some("/tmp/d.img".into());
        assert_eq!(
            Event::BlockIoError(e).to_string(),
            "disk0 (/tmp/d.img): write failed on the host: No space left on device \
             (the host file system holding the image is full); QEMU paused the guest"
        );
    }

    #[test]
    fn a_reported_error_does_not_halt_and_a_missing_device_falls_back_to_the_node() {
        let line = br#"{"event":"BLOCK_IO_ERROR","data":{"device":"","node-name":"n1","operation":"read","action":"report","reason":"Input/output error"}}"#;
        let Line::Event(event) = parse(line) else {
            panic!()
        };
        assert!(!event.halts());
        assert_eq!(
            event.to_string(),
            "n1: read failed on the host: Input/output error; the guest got an I/O error"
        );
    }

    #[test]
    fn stop_and_guest_panicked_halt() {
        let stop = br#"{"timestamp":{"seconds":1,"microseconds":2},"event":"STOP"}"#;
        assert_eq!(parse(stop), Line::Event(Event::Stop));
        let panicked =
            b"{\"event\":\"GUEST_PANICKED\",\"data\":{\"action\":\"pause\",\"info\":{}}}\r";
        let Line::Event(event) = parse(panicked) else {
            panic!()
        };
        assert!(event.halts());
        assert!(event.to_string().contains("action pause"), "{event}");
    }

    #[test]
    fn replies_greetings_and_unknown_events_are_other() {
        let error = br#"{"error": {"class": "GenericError", "desc": "x"}}"#;
        assert_eq!(parse(error), Line::Error("x".into()));
        assert_eq!(parse(br#"{"event": "RESUME"}"#), Line::Event(Event::Resume));
        for line in [
            &br#"{"QMP": {"version": {}, "capabilities": ["oob"]}}"#[..],
            br#"{"return": {}}"#,
            br#"{"event": "SHUTDOWN", "data": {"guest": true, "reason": "guest-shutdown"}}"#,
            br#"{"event": 7}"#,
        ] {
            assert_eq!(
                parse(line),
                Line::Other,
                "{}",
                String::from_utf8_lossy(line)
            );
        }
    }

    #[test]
    fn garbage_and_partial_lines_are_garbage_never_a_panic() {
        let cut = &ENOSPC.as_bytes()[..ENOSPC.len() / 2];
        for line in [
            &b""[..],
            b"\xff\xfe",
            b"[1,2]",
            b"\"event\"",
            b"{\"event\":\"STOP\"",
            cut,
        ] {
            assert_eq!(
                parse(line),
                Line::Garbage,
                "{}",
                String::from_utf8_lossy(line)
            );
        }
        // Wrong types inside a known event: empty fields, still an event.
        let odd = br#"{"event":"BLOCK_IO_ERROR","data":{"device":5,"action":["stop"]}}"#;
        let Line::Event(event) = parse(odd) else {
            panic!()
        };
        assert!(!event.halts());
        assert_eq!(
            event.to_string(),
            "a disk: an I/O request failed on the host: no reason given; the guest got an I/O error"
        );
    }

    #[test]
    fn a_long_field_is_cut_on_a_character_boundary() {
        let reason = "é".repeat(MAX_FIELD);
        let line = format!(r#"{{"event":"BLOCK_IO_ERROR","data":{{"reason":"{reason}"}}}}"#);
        let Line::Event(Event::BlockIoError(e)) = parse(line.as_bytes()) else {
            panic!()
        };
        assert!(e.reason.len() <= MAX_FIELD && e.reason.chars().all(|c| c == 'é'));
    }
}
