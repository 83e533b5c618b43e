//! The bulk port's frame stream, decoded live: payload output is relayed
//! as it arrives, the rest kept for the end of the run.

use std::io::{self, Read, Write};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use guestinit::wire::msg::{code_from_bytes, Timeline, WaitStatus};
use guestinit::wire::{encode, Decoder, Event, Tag, HEADER_LEN};

use crate::decode::{decoder_buffer, feed, finish};
use crate::render;

/// What the run keeps from the stream.
#[derive(Debug, Default)]
pub struct Collected {
    /// The code of the last CRC-valid EXIT frame.
    pub exit_code: Option<i32>,
    /// When that EXIT frame arrived.
    pub exit_at: Option<Instant>,
    /// TIME entries: (raw mark, CLOCK_BOOTTIME ns).
    pub timeline: Vec<(u8, u64)>,
    pub wait: Option<WaitStatus>,
    /// Kernel log text the init sent (DMSG), shown if the run fails.
    pub dmsg: Vec<u8>,
    pub sched: super::sched::SchedFrames,
}

/// Routes events: SOUT to `stdout`, SERR and diagnostics to `stderr`.
pub struct Relay<O: Write, E: Write> {
    stdout: O,
    stderr: E,
    verbose: bool,
    stdout_closed: bool,
    collected: Collected,
}

impl<O: Write, E: Write> Relay<O, E> {
    pub fn new(stdout: O, stderr: E, verbose: bool) -> Self {
        Relay {
            stdout,
            stderr,
            verbose,
            stdout_closed: false,
            collected: Collected::default(),
        }
    }

    /// Whether a valid EXIT frame has arrived.
    pub fn exit_seen(&self) -> bool {
        self.collected.exit_code.is_some()
    }

    /// What the stream left to report, releasing stdout and stderr.
    pub fn into_collected(self) -> Collected {
        self.collected
    }

    /// Writes to our stderr; if that fails there is nowhere left to report.
    fn note(&mut self, line: &str) {
        let _ = writeln!(self.stderr, "{line}");
    }

    fn relay_stdout(&mut self, bytes: &[u8]) {
        if self.stdout_closed {
            return;
        }
        if let Err(e) = self
            .stdout
            .write_all(bytes)
            .and_then(|()| self.stdout.flush())
        {
            // Keep draining the port so the guest is not blocked; drop output.
            self.stdout_closed = true;
            self.note(&format!(
                "guestinit: warning: cannot write to stdout ({e}); discarding the payload's output"
            ));
        }
    }

    /// Handles one event; `at_end` marks those from `Decoder::finish`.
    pub fn on_event(&mut self, event: Event<'_>, at_end: bool) {
        match event {
            Event::Frame { tag, payload } => self.on_frame(tag, payload),
            Event::CrcMismatch { tag, len, .. } => self.note(&format!(
                "guestinit: warning: CRC mismatch on {tag} frame of {len} bytes"
            )),
            Event::Skipped { bytes } if at_end => self.note(&format!(
                "guestinit: warning: the bulk stream ended inside a frame ({bytes} bytes dropped)"
            )),
            Event::Skipped { bytes } => self.note(&format!(
                "guestinit: warning: skipped {bytes} bytes of garbage on the bulk port"
            )),
        }
    }

    fn on_frame(&mut self, tag: Tag, payload: &[u8]) {
        match tag {
            Tag::SOUT => return self.relay_stdout(payload),
            Tag::SERR => {
                let _ = self
                    .stderr
                    .write_all(payload)
                    .and_then(|()| self.stderr.flush());
                return;
            }
            Tag::DMSG => self.collected.dmsg.extend_from_slice(payload),
            Tag::SCLG | Tag::SCDX | Tag::LIFE => self.collected.sched.on_frame(tag, payload),
            Tag::TIME => self.collected.timeline.extend(Timeline::entries(payload)),
            Tag::WAIT => match WaitStatus::from_bytes(payload) {
                Some(wait) => self.collected.wait = Some(wait),
                None => self.note(&format!(
                    "guestinit: warning: malformed WAIT frame of {} bytes",
                    payload.len()
                )),
            },
            Tag::EXIT => match code_from_bytes(tag, payload) {
                Some(code) => {
                    self.collected.exit_code = Some(code);
                    self.collected.exit_at = Some(Instant::now());
                }
                None => self.note(&format!(
                    "guestinit: warning: malformed EXIT frame of {} bytes",
                    payload.len()
                )),
            },
            _ => {}
        }
        if self.verbose && tag != Tag::DMSG {
            let line = format!("guestinit: {}", render::frame_text(tag, payload));
            self.note(&line);
        }
    }
}

/// The read timeout `pump` needs on its stream to notice the deadline.
pub const READ_TICK: Duration = Duration::from_millis(100);

/// How the pump stopped.
#[derive(Debug, PartialEq, Eq)]
pub enum End {
    /// The stream closed: QEMU exited (or closed the port).
    Closed,
    /// The deadline passed first.
    Deadline,
}

/// Limits on reading the port.
pub struct PumpOptions<'a> {
    /// Saves every byte read, exactly.
    pub log: Option<&'a mut dyn Write>,
    /// Test aid: at most this many KiB/s, so the guest meets backpressure.
    pub throttle_kib: Option<u32>,
    pub deadline: Option<Instant>,
}

/// Reads `stream` (set up with a [`READ_TICK`] read timeout) to its end or
/// the deadline, feeding the decoder and the relay. Errors are those of the
/// log; a read error ends the stream with a warning.
pub fn pump<O: Write, E: Write>(
    stream: &mut UnixStream,
    relay: &mut Relay<O, E>,
    mut options: PumpOptions<'_>,
) -> io::Result<End> {
    let chunk_len = options.throttle_kib.map_or(64 * 1024, |kib| {
        (kib as usize * 1024 / 20).clamp(64, 64 * 1024)
    });
    let mut chunk = vec![0u8; chunk_len];
    let mut buffer = decoder_buffer();
    let mut decoder = Decoder::new(&mut buffer);
    let started = Instant::now();
    let mut total: u64 = 0;
    let mut acked = false;
    let end = loop {
        if options.deadline.is_some_and(|d| Instant::now() >= d) {
            break End::Deadline;
        }
        let n = match stream.read(&mut chunk) {
            Ok(0) => break End::Closed,
            Ok(n) => n,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock
                        | io::ErrorKind::TimedOut
                        | io::ErrorKind::Interrupted
                ) =>
            {
                continue
            }
            Err(e) => {
                relay.note(&format!(
                    "guestinit: warning: reading the bulk port failed: {e}"
                ));
                break End::Closed;
            }
        };
        if let Some(log) = options.log.as_mut() {
            log.write_all(&chunk[..n])?;
        }
        feed(&mut decoder, &chunk[..n], |e| relay.on_event(e, false));
        if !acked && relay.exit_seen() {
            acked = true;
            acknowledge_exit(stream, relay);
        }
        total += n as u64;
        if let Some(kib) = options.throttle_kib {
            let due = started + Duration::from_secs_f64(total as f64 / (kib as f64 * 1024.0));
            let until = options.deadline.map_or(due, |d| due.min(d));
            std::thread::sleep(until.saturating_duration_since(Instant::now()));
        }
    };
    finish(&mut decoder, |e| relay.on_event(e, true));
    if let Some(log) = options.log.as_mut() {
        log.flush()?;
    }
    Ok(end)
}

/// Tells the guest (which waits for it under `guestinit.ack`) that EXIT,
/// and so everything before it, was read: it may power off.
fn acknowledge_exit<O: Write, E: Write>(stream: &mut UnixStream, relay: &mut Relay<O, E>) {
    let mut frame = [0u8; HEADER_LEN];
    let frame_len = encode(Tag::EACK, &[], &mut frame).expect("an empty frame fits its header");
    if let Err(e) = stream.write_all(&frame[..frame_len]) {
        relay.note(&format!(
            "guestinit: warning: could not acknowledge EXIT ({e}); the guest powers off after its wait"
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::tests::frame;
    use guestinit::wire::msg::Mark;

    fn pair() -> (UnixStream, UnixStream) {
        let (tx, rx) = UnixStream::pair().unwrap();
        rx.set_read_timeout(Some(READ_TICK)).unwrap();
        (tx, rx)
    }

    fn relay_all(stream: &[u8], verbose: bool) -> (Vec<u8>, String, Collected) {
        let (mut tx, mut rx) = pair();
        let data = stream.to_vec();
        let writer = std::thread::spawn(move || tx.write_all(&data));
        let mut relay = Relay::new(Vec::new(), Vec::new(), verbose);
        let mut log = Vec::new();
        let end = pump(
            &mut rx,
            &mut relay,
            PumpOptions {
                log: Some(&mut log),
                throttle_kib: None,
                deadline: None,
            },
        )
        .unwrap();
        writer.join().unwrap().unwrap();
        assert_eq!(end, End::Closed);
        assert_eq!(log, stream, "the bulk log holds exactly the bytes read");
        let Relay {
            stdout,
            stderr,
            collected,
            ..
        } = relay;
        (stdout, String::from_utf8(stderr).unwrap(), collected)
    }

    #[test]
    fn output_is_relayed_and_the_last_valid_exit_wins() {
        let mut s = frame(Tag::SRDY, b"");
        s.extend(frame(Tag::SOUT, b"hello "));
        s.extend(frame(Tag::SERR, b"warn\n"));
        s.extend(frame(Tag::SOUT, b"world\n"));
        s.extend(frame(Tag::TIME, &Timeline::entry(Mark::InitEntry, 5)));
        s.extend(frame(Tag::EXIT, &3i32.to_le_bytes()));
        let mut corrupt = frame(Tag::EXIT, &9i32.to_le_bytes());
        corrupt[HEADER_LEN] ^= 1;
        s.extend(corrupt);
        s.extend(frame(Tag::DMSG, b"kernel says"));
        let (out, err, collected) = relay_all(&s, false);
        assert_eq!(out, b"hello world\n");
        assert!(
            err.starts_with("warn\nguestinit: warning: CRC mismatch on EXIT frame of 4 bytes\n"),
            "{err}"
        );
        assert!(err.contains("guestinit: warning: skipped "), "{err}");
        assert!(!err.contains("SRDY"), "quiet without -v: {err}");
        assert_eq!(collected.exit_code, Some(3));
        assert_eq!(collected.timeline, vec![(Mark::InitEntry as u8, 5)]);
        assert_eq!(collected.dmsg, b"kernel says");
    }

    #[test]
    fn verbose_shows_lifecycle_frames_and_a_truncated_tail_is_reported() {
        let mut s = frame(Tag::SRDY, b"");
        s.extend(frame(Tag::LIFE, &[1]));
        s.extend(&frame(Tag::SOUT, b"lost")[..10]);
        let (_, err, collected) = relay_all(&s, true);
        assert_eq!(
            err,
            "guestinit: SRDY 0\nguestinit: LIFE 1 phase=InitStarted\n\
             guestinit: warning: the bulk stream ended inside a frame (10 bytes dropped)\n"
        );
        assert_eq!(collected.exit_code, None);
    }

    #[test]
    fn throttling_slows_reading_but_loses_nothing() {
        let payload = vec![b'x'; 8 * 1024];
        let mut s = Vec::new();
        for _ in 0..4 {
            s.extend(frame(Tag::SOUT, &payload));
        }
        let (mut tx, mut rx) = pair();
        let data = s.clone();
        let writer = std::thread::spawn(move || tx.write_all(&data));
        let mut relay = Relay::new(Vec::new(), Vec::new(), false);
        let started = Instant::now();
        let options = PumpOptions {
            log: None,
            throttle_kib: Some(64),
            deadline: None,
        };
        pump(&mut rx, &mut relay, options).unwrap();
        writer.join().unwrap().unwrap();
        // 32 KiB at 64 KiB/s takes about half a second.
        assert!(started.elapsed() >= Duration::from_millis(400));
        assert_eq!(relay.stdout.len(), 4 * payload.len());
    }

    #[test]
    fn the_deadline_ends_a_silent_stream() {
        let (_tx, mut rx) = pair();
        let mut relay = Relay::new(Vec::new(), Vec::new(), false);
        let options = PumpOptions {
            log: None,
            throttle_kib: None,
            deadline: Some(Instant::now() + Duration::from_millis(150)),
        };
        assert_eq!(pump(&mut rx, &mut relay, options).unwrap(), End::Deadline);
    }
}
