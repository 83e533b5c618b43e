//! The bulk port's frame stream, decoded live: payload output is handed to
//! the spooled writers as it arrives, EXIT is acknowledged the moment it is
//! decoded, and the rest is kept for the end of the run.

use std::io::{self, Write};
use std::time::{Duration, Instant};

use mio::net::UnixStream;

use guestinit::wire::msg::{code_from_bytes, BuildId, KernelAddrs, Timeline, WaitStatus};
use guestinit::wire::{encode, Decoder, Event, Tag, HEADER_LEN};

use crate::decode::{feed, finish};
use crate::render;

use super::diag::Diagnostics;
use super::flow::{read_ready, Flow};
use super::gate::Gate;
use super::spool::Spool;

/// What the run keeps from the stream.
#[derive(Debug, Default)]
pub struct Collected {
    /// The code of the last CRC-valid EXIT frame.
    pub exit_code: Option<i32>,
    /// When that EXIT frame arrived.
    pub exit_at: Option<Instant>,
    /// Exec mode: the command's exit code (EXCX).
    pub excx: Option<i32>,
    /// TIME entries: (raw mark, CLOCK_BOOTTIME ns).
    pub timeline: Vec<(u8, u64)>,
    pub wait: Option<WaitStatus>,
    /// Kernel log text the init sent (DMSG), shown if the run fails.
    pub dmsg: Vec<u8>,
    /// CRC-valid frames decoded: none means the init never ran.
    pub frames: u64,
    /// The last well-formed KADR: what `page_offset_base`'s offset is learned from.
    pub kernel_addrs: Option<KernelAddrs>,
    pub sched: super::sched::SchedFrames,
    /// What `--collect` kept.
    pub kept: super::collect::Kept,
    /// HRDY came: the machine waits for its run on the handover port.
    pub handover_ready: bool,
    /// KBID: the booted kernel's build-id, empty when the guest had none.
    pub build_id: Option<Vec<u8>>,
    /// The kernel's splats (KWRN).
    pub kernel: super::kwarn::KernelWarnings,
}

/// The build-id of the ELF that QEMU boots (the vmlinux by PVH), which
/// the guest's KBID should repeat.
#[derive(Debug)]
pub struct ExpectedBuildId {
    pub id: Vec<u8>,
    pub elf: std::path::PathBuf,
}

/// Routes events: SOUT to `stdout`, SERR and the host's words to the
/// diagnostics' stderr.
pub struct Relay {
    stdout: Spool,
    diag: Diagnostics,
    verbose: bool,
    pub collected: Collected,
    pub expected_build_id: Option<ExpectedBuildId>,
    /// `--collect`: where CENT, CDAT and CEND go.
    pub collect: Option<super::collect::Receiver>,
}

impl Relay {
    pub fn new(stdout: Spool, diag: Diagnostics, verbose: bool) -> Self {
        Relay {
            stdout,
            diag,
            verbose,
            collected: Collected::default(),
            expected_build_id: None,
            collect: None,
        }
    }

    fn warn(&self, text: &str) {
        self.diag.warn(text);
    }

    pub fn diag(&self) -> &Diagnostics {
        &self.diag
    }

    /// The stdout writer and what was collected, for the end of the run.
    pub fn into_parts(mut self) -> (Spool, Collected) {
        if let Some(mut receiver) = self.collect.take() {
            self.collected.kept = receiver.finish();
            for warning in receiver.take_warnings() {
                self.diag.warn(&warning);
            }
        }
        (self.stdout, self.collected)
    }

    /// Handles one event; `at_end` marks those from `Decoder::finish`.
    pub fn on_event(&mut self, event: Event<'_>, at_end: bool) {
        match event {
            Event::Frame { tag, payload } => self.on_frame(tag, payload),
            Event::CrcMismatch { tag, len, .. } => {
                self.warn(&format!("CRC mismatch on {tag} frame of {len} bytes"))
            }
            Event::Skipped { bytes } if at_end => self.warn(&format!(
                "the bulk stream ended inside a frame ({bytes} bytes dropped)"
            )),
            Event::Skipped { bytes } => self.warn(&format!(
                "skipped {bytes} bytes of garbage on the bulk port"
            )),
        }
    }

    fn on_frame(&mut self, tag: Tag, payload: &[u8]) {
        self.collected.frames += 1;
        self.diag.events().frame(tag, payload);
        match tag {
            Tag::SOUT => return self.stdout.push(payload),
            Tag::SERR => return self.diag.stderr().push(payload),
            Tag::DMSG => self.collected.dmsg.extend_from_slice(payload),
            Tag::SCLG | Tag::SCDX | Tag::LIFE => self.collected.sched.on_frame(tag, payload),
            Tag::KADR => self.collected.kernel_addrs = KernelAddrs::from_bytes(payload),
            Tag::HRDY => self.collected.handover_ready = true,
            Tag::KBID => self.on_build_id(payload),
            Tag::KWRN => self.collected.kernel.on_frame(payload, &self.diag),
            Tag::CENT | Tag::CDAT | Tag::CEND => {
                if let Some(receiver) = &mut self.collect {
                    receiver.on_frame(tag, payload);
                    for warning in receiver.take_warnings() {
                        self.diag.warn(&warning);
                    }
                }
                // Data is not worth a line of its own, even with -v.
                return;
            }
            Tag::TIME => self.collected.timeline.extend(Timeline::entries(payload)),
            Tag::WAIT => match WaitStatus::from_bytes(payload) {
                Some(wait) => self.collected.wait = Some(wait),
                None => self.warn(&format!("malformed WAIT frame of {} bytes", payload.len())),
            },
            Tag::EXCX => match code_from_bytes(tag, payload) {
                Some(code) => self.collected.excx = Some(code),
                None => self.warn(&format!("malformed EXCX frame of {} bytes", payload.len())),
            },
            Tag::EXIT => match code_from_bytes(tag, payload) {
                Some(code) => {
                    self.collected.exit_code = Some(code);
                    self.collected.exit_at = Some(Instant::now());
                }
                None => self.warn(&format!("malformed EXIT frame of {} bytes", payload.len())),
            },
            _ => {}
        }
        if self.verbose && tag != Tag::DMSG {
            self.diag
                .line(&format!("guestinit: {}", render::frame_text(tag, payload)));
        }
    }

    /// KBID: kept, and checked against the ELF QEMU booted. An empty one
    /// (the guest could not read its notes) is not checked, as ktstr does.
    fn on_build_id(&mut self, payload: &[u8]) {
        let Some(BuildId(id)) = BuildId::from_bytes(payload) else {
            return self.warn(&format!("malformed KBID frame of {} bytes", payload.len()));
        };
        let id = id.unwrap_or_default();
        if let Some(want) = self.expected_build_id.as_ref().filter(|_| !id.is_empty()) {
            if want.id != id {
                self.warn(&format!(
                    "the guest runs the kernel of build-id {}, not that of {} ({})",
                    render::hex(id),
                    want.elf.display(),
                    render::hex(&want.id)
                ));
            }
        }
        self.collected.build_id = Some(id.to_vec());
    }
}

/// `--throttle-bulk`, a test aid: read at most `kib` KiB/s, so the guest
/// meets backpressure.
struct Throttle {
    kib: u32,
    started: Instant,
    total: u64,
}

impl Throttle {
    /// Sleeps until `total` bytes are due at the throttled rate.
    fn pace(&mut self, n: usize) {
        self.total += n as u64;
        let rate = self.kib as f64 * 1024.0;
        let due = self.started + Duration::from_secs_f64(self.total as f64 / rate);
        std::thread::sleep(due.saturating_duration_since(Instant::now()));
    }
}

/// The bulk port as a reactor source.
pub struct Bulk<'b> {
    pub stream: UnixStream,
    decoder: Decoder<'b>,
    pub relay: Relay,
    /// `--bulk-log`: every byte read, exactly.
    log: Option<Spool>,
    throttle: Option<Throttle>,
    chunk: Vec<u8>,
    acked: bool,
    /// The spools its frames feed: the port is read while they have room.
    pub gate: Gate,
    /// Every byte up to HRDY, for a snapshot to replay (`warm`), at most
    /// one byte past what a snapshot keeps.
    pub recorded: Option<Vec<u8>>,
}

impl<'b> Bulk<'b> {
    pub fn new(
        stream: UnixStream,
        buffer: &'b mut [u8],
        relay: Relay,
        log: Option<Spool>,
        throttle_kib: Option<u32>,
    ) -> Self {
        // Throttled, one read is a twentieth of a second's worth.
        let chunk_len = throttle_kib.map_or(64 * 1024, |kib| {
            (kib as usize * 1024 / 20).clamp(64, 64 * 1024)
        });
        let diag = relay.diag();
        let gate = Gate::new(diag)
            .feeds(Some(&relay.stdout), "stdout")
            .feeds(Some(diag.stderr()), "stderr")
            .feeds(diag.events().spool(), "the --events output")
            .feeds(log.as_ref(), "the --bulk-log file")
            .feeds(relay.collected.sched.log_file(), "the --sched-log file");
        Bulk {
            stream,
            decoder: Decoder::new(buffer),
            relay,
            log,
            throttle: throttle_kib.map(|kib| Throttle {
                kib,
                started: Instant::now(),
                total: 0,
            }),
            chunk: vec![0; chunk_len],
            acked: false,
            gate,
            recorded: None,
        }
    }

    /// What a restored machine sent before its snapshot, as if it came now.
    pub fn replay(&mut self, bytes: &[u8]) {
        if let Some(log) = &self.log {
            log.push(bytes);
        }
        let relay = &mut self.relay;
        feed(&mut self.decoder, bytes, |e| relay.on_event(e, false));
    }

    /// Reads what the port holds (one chunk when throttled), decodes it and
    /// acknowledges EXIT as soon as it is decoded; pauses while a spool it
    /// feeds is full (one chunk past the bound at most).
    pub fn on_readable(&mut self) -> Flow {
        let Bulk {
            stream,
            decoder,
            relay,
            log,
            throttle,
            chunk,
            acked,
            gate,
            recorded,
        } = self;
        if !gate.open() {
            return Flow::Paused;
        }
        let read = read_ready(&*stream, chunk, |bytes| {
            if let Some(log) = log {
                log.push(bytes);
            }
            if let Some(recorded) = recorded
                .as_mut()
                .filter(|_| !relay.collected.handover_ready)
            {
                let room = (super::warm::store::REPLAY_MAX + 1).saturating_sub(recorded.len());
                recorded.extend_from_slice(&bytes[..room.min(bytes.len())]);
            }
            feed(decoder, bytes, |e| relay.on_event(e, false));
            if !*acked && relay.collected.exit_code.is_some() {
                *acked = true;
                acknowledge_exit(stream, relay);
            }
            if !gate.open() {
                return Some(Flow::Paused);
            }
            throttle.as_mut()?.pace(bytes.len());
            Some(Flow::Again)
        });
        read.unwrap_or_else(|e| {
            // A reset is QEMU gone with bytes of ours unread (it was killed
            // at the timeout): a close, whose cause QEMU's exit tells.
            if e.kind() != io::ErrorKind::ConnectionReset {
                relay.warn(&format!("reading the bulk port failed: {e}"));
            }
            Flow::Closed
        })
    }

    /// Resolves a truncated tail once the stream has ended.
    pub fn finish(mut self) -> (Relay, Option<Spool>) {
        let relay = &mut self.relay;
        finish(&mut self.decoder, |e| relay.on_event(e, true));
        (self.relay, self.log)
    }
}

/// Tells the guest (which waits for it under `guestinit.ack`) that EXIT,
/// and so everything before it, was read: it may power off.
fn acknowledge_exit(mut stream: &UnixStream, relay: &Relay) {
    let mut frame = [0u8; HEADER_LEN];
    let len = encode(Tag::EACK, &[], &mut frame).expect("an empty frame fits its header");
    // 16 bytes into an idle socket's buffer: a short write cannot happen.
    if let Err(e) = stream.write_all(&frame[..len]) {
        relay.warn(&format!(
            "could not acknowledge EXIT ({e}); the guest powers off after its wait"
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::decoder_buffer;
    use crate::decode::tests::frame;
    use crate::run::events::Events;
    use crate::run::spool::{Captured, Finish};
    use guestinit::wire::msg::Mark;
    use std::io::Read;

    struct Outcome {
        stdout: Vec<u8>,
        stderr: String,
        log: Vec<u8>,
        collected: Collected,
        /// What the guest got back (EACK).
        acks: Vec<u8>,
    }

    fn relay_all(stream: &[u8], verbose: bool, throttle_kib: Option<u32>) -> Outcome {
        relay_expecting(stream, verbose, throttle_kib, None)
    }

    fn relay_expecting(
        stream: &[u8],
        verbose: bool,
        throttle_kib: Option<u32>,
        expected_build_id: Option<ExpectedBuildId>,
    ) -> Outcome {
        let (mut guest, host) = std::os::unix::net::UnixStream::pair().unwrap();
        host.set_nonblocking(true).unwrap();
        let data = stream.to_vec();
        let writer = std::thread::spawn(move || {
            guest.write_all(&data).unwrap();
            guest.shutdown(std::net::Shutdown::Write).unwrap();
            let mut acks = Vec::new();
            guest.read_to_end(&mut acks).unwrap();
            acks
        });
        let (out, err, log) = (
            Captured::default(),
            Captured::default(),
            Captured::default(),
        );
        let diag = Diagnostics::new(err.spool(), Events::new(None));
        let mut relay = Relay::new(out.spool(), diag.clone(), verbose);
        relay.expected_build_id = expected_build_id;
        let mut buffer = decoder_buffer();
        let stream = UnixStream::from_std(host);
        let mut bulk = Bulk::new(stream, &mut buffer, relay, Some(log.spool()), throttle_kib);
        while bulk.on_readable() != Flow::Closed {
            std::thread::sleep(Duration::from_millis(1));
        }
        let (relay, log_spool) = bulk.finish();
        let (stdout_spool, collected) = relay.into_parts();
        for spool in [stdout_spool, log_spool.unwrap()] {
            assert!(matches!(
                spool.finish(None, || false),
                Finish::Written(None)
            ));
        }
        assert!(matches!(diag.finish(None, || false), Finish::Written(None)));
        Outcome {
            stdout: out.take(),
            stderr: String::from_utf8(err.take()).unwrap(),
            log: log.take(),
            collected,
            acks: writer.join().unwrap(),
        }
    }

    #[test]
    fn output_is_relayed_exit_is_acknowledged_and_the_last_valid_exit_wins() {
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
        let got = relay_all(&s, false, None);
        assert_eq!(got.stdout, b"hello world\n");
        let err = got.stderr;
        assert!(
            err.starts_with("warn\nguestinit: warning: CRC mismatch on EXIT frame of 4 bytes\n"),
            "{err}"
        );
        assert!(err.contains("guestinit: warning: skipped "), "{err}");
        assert!(!err.contains("SRDY"), "quiet without -v: {err}");
        assert_eq!(got.log, s, "the bulk log holds exactly the bytes read");
        assert_eq!(got.acks, frame(Tag::EACK, b""), "one EACK");
        let collected = got.collected;
        assert_eq!(collected.exit_code, Some(3));
        assert_eq!(collected.frames, 7);
        assert_eq!(collected.timeline, vec![(Mark::InitEntry as u8, 5)]);
        assert_eq!(collected.dmsg, b"kernel says");
    }

    #[test]
    fn a_build_id_other_than_the_booted_elfs_is_warned_of_and_an_empty_one_is_not_checked() {
        let expect = || {
            Some(ExpectedBuildId {
                id: vec![0xab; 20],
                elf: "/cache/vmlinux".into(),
            })
        };
        let same = relay_expecting(&frame(Tag::KBID, &[0xab; 20]), false, None, expect());
        assert_eq!(same.stderr, "");
        assert_eq!(same.collected.build_id, Some(vec![0xab; 20]));
        let empty = relay_expecting(&frame(Tag::KBID, b""), false, None, expect());
        assert_eq!(empty.stderr, "");
        assert_eq!(empty.collected.build_id, Some(vec![]));
        let other = relay_expecting(&frame(Tag::KBID, &[0x01, 0x02]), false, None, expect());
        assert_eq!(
            other.stderr,
            format!(
                "guestinit: warning: the guest runs the kernel of build-id 0102, not that of \
                 /cache/vmlinux ({})\n",
                "ab".repeat(20)
            )
        );
        let long = relay_all(&frame(Tag::KBID, &[1; 65]), false, None);
        assert_eq!(
            long.stderr,
            "guestinit: warning: malformed KBID frame of 65 bytes\n"
        );
    }

    #[test]
    fn verbose_shows_lifecycle_frames_and_a_truncated_tail_is_reported() {
        let mut s = frame(Tag::SRDY, b"");
        s.extend(frame(Tag::LIFE, &[1]));
        s.extend(&frame(Tag::SOUT, b"lost")[..10]);
        let got = relay_all(&s, true, None);
        assert_eq!(
            got.stderr,
            "guestinit: SRDY 0\nguestinit: LIFE 1 phase=InitStarted\n\
             guestinit: warning: the bulk stream ended inside a frame (10 bytes dropped)\n"
        );
        assert_eq!(got.collected.exit_code, None);
        assert!(got.acks.is_empty(), "no EXIT, no EACK");
    }

    #[test]
    fn a_reset_by_qemu_gone_is_a_close_without_a_warning() {
        let (guest, host) = std::os::unix::net::UnixStream::pair().unwrap();
        // Bytes the guest's end never read, then it goes: the host's next
        // read is ECONNRESET, as when QEMU is killed at the timeout.
        (&host).write_all(b"wake").unwrap();
        (&guest).write_all(&frame(Tag::SRDY, b"")).unwrap();
        drop(guest);
        host.set_nonblocking(true).unwrap();
        let err = Captured::default();
        let diag = Diagnostics::new(err.spool(), Events::new(None));
        let relay = Relay::new(Captured::default().spool(), diag.clone(), false);
        let mut buffer = decoder_buffer();
        let mut bulk = Bulk::new(UnixStream::from_std(host), &mut buffer, relay, None, None);
        while bulk.on_readable() != Flow::Closed {}
        drop(bulk.finish());
        diag.finish(None, || false);
        assert_eq!(String::from_utf8(err.take()).unwrap(), "");
    }

    #[test]
    fn throttling_slows_reading_but_loses_nothing() {
        let payload = vec![b'x'; 8 * 1024];
        let mut s = Vec::new();
        for _ in 0..4 {
            s.extend(frame(Tag::SOUT, &payload));
        }
        let started = Instant::now();
        let got = relay_all(&s, false, Some(64));
        // 32 KiB at 64 KiB/s takes about half a second.
        assert!(started.elapsed() >= Duration::from_millis(400));
        assert_eq!(got.stdout.len(), 4 * payload.len());
    }
}
