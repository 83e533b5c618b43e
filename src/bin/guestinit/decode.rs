//! `guestinit decode`: the events of a saved bulk-port capture, one line
//! each, as text or JSON. Also the event loop shared with `run`.

use std::fs::File;
use std::io::{self, Read, Write};

use guestinit::wire::{Decoder, Event, MAX_PAYLOAD};

use crate::cli::DecodeArgs;
use crate::error::{Error, Result};
use crate::render;

/// A decoder buffer as large as the biggest frame the host accepts.
pub fn decoder_buffer() -> Vec<u8> {
    vec![0; Decoder::buffer_len(MAX_PAYLOAD)]
}

/// Feeds all of `input` to `decoder`, handing each event to `on_event`.
pub fn feed(decoder: &mut Decoder<'_>, mut input: &[u8], mut on_event: impl FnMut(Event<'_>)) {
    loop {
        let (taken, event) = decoder.push(input);
        input = &input[taken..];
        match event {
            Some(event) => on_event(event),
            None if input.is_empty() => return,
            None => {}
        }
    }
}

/// Resolves what is left at the end of the stream (a truncated tail).
pub fn finish(decoder: &mut Decoder<'_>, mut on_event: impl FnMut(Event<'_>)) {
    while let Some(event) = decoder.finish() {
        on_event(event);
    }
}

/// Bytes read from the capture at a time: the listing's memory stays this
/// and the decoder's buffer, whatever the file's size. Frames split across
/// reads are copied into the decoder's window, the others read in place:
/// 256 KiB splits one 16 KiB frame in 16 (64 KiB split one in 4).
const READ_CHUNK: usize = 256 * 1024;

/// Why a listing stopped before the end of its input.
#[derive(Debug)]
enum Stopped {
    Read(io::Error),
    /// The output failed or was closed.
    Write,
}

pub fn main(args: DecodeArgs) -> Result<()> {
    let read_error = |source| Error::Read {
        path: args.file.clone(),
        source,
    };
    let file = File::open(&args.file).map_err(read_error)?;
    // Block-buffered: a line-buffered stdout costs a write(2) per event.
    let stdout = io::BufWriter::with_capacity(READ_CHUNK, io::stdout().lock());
    match write_events(file, args.json, stdout) {
        Err(Stopped::Read(source)) => Err(read_error(source)),
        // A closed stdout (`| head`) ends the listing quietly.
        Err(Stopped::Write) | Ok(()) => Ok(()),
    }
}

/// Writes one line per event of the stream `input` to `out`, reading it in
/// chunks.
fn write_events(
    mut input: impl Read,
    json: bool,
    out: impl Write,
) -> std::result::Result<(), Stopped> {
    let mut buffer = decoder_buffer();
    let mut decoder = Decoder::new(&mut buffer);
    let mut chunk = vec![0u8; READ_CHUNK];
    let mut listing = Listing {
        out,
        json,
        written: Ok(()),
    };
    // Reading stops once stdout is gone: nobody would see the rest.
    while listing.written.is_ok() {
        let n = match input.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(Stopped::Read(e)),
        };
        feed(&mut decoder, &chunk[..n], |e| listing.line(e, false));
        // Out once a chunk: a reader gone (`| head -1`) is seen within one
        // chunk of input, not once the buffered lines would fill the buffer.
        listing.flush();
    }
    finish(&mut decoder, |e| listing.line(e, true));
    listing.end()
}

/// The output side of a listing: lines until the first write error.
struct Listing<W> {
    out: W,
    json: bool,
    written: io::Result<()>,
}

impl<W: Write> Listing<W> {
    fn line(&mut self, event: Event<'_>, at_end: bool) {
        if self.written.is_ok() {
            let text = if self.json {
                render::event_json(&event, at_end).to_string()
            } else {
                render::event_text(&event, at_end)
            };
            self.written = writeln!(self.out, "{text}");
        }
    }

    fn flush(&mut self) {
        if self.written.is_ok() {
            self.written = self.out.flush();
        }
    }

    fn end(self) -> std::result::Result<(), Stopped> {
        let Listing {
            mut out, written, ..
        } = self;
        written
            .and_then(|()| out.flush())
            .map_err(|_| Stopped::Write)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use guestinit::wire::msg::{Exit, KernelAddrs, Mark, Phase, Timeline, WaitStatus};
    use guestinit::wire::{encode, encoded_len, Tag, HEADER_LEN};

    /// One encoded frame, for the host's tests.
    pub(crate) fn frame(tag: Tag, payload: &[u8]) -> Vec<u8> {
        let mut out = vec![0; encoded_len(payload.len())];
        encode(tag, payload, &mut out).unwrap();
        out
    }

    fn stream() -> Vec<u8> {
        let mut s = b"boot noise".to_vec();
        s.extend(frame(
            Tag::KADR,
            &KernelAddrs {
                phys_base: Some(0x100_0000),
                page_offset_base: 0xffff_8880_0000_0000,
                text: None,
            }
            .to_bytes(),
        ));
        s.extend(frame(Tag::SRDY, b""));
        let mut life = vec![Phase::PayloadStarting as u8];
        life.extend(b"go");
        s.extend(frame(Tag::LIFE, &life));
        s.extend(frame(Tag::SOUT, b"hi\n\t\xff\"q\""));
        let mut bad = frame(Tag::SERR, b"oops");
        bad[HEADER_LEN] ^= 0x20;
        s.extend(bad);
        let mut time = Timeline::entry(Mark::InitEntry, 1_500_000).to_vec();
        time.extend(Timeline::entry(Mark::PayloadExit, 2_000_000_000));
        s.extend(frame(Tag::TIME, &time));
        let wait = WaitStatus {
            exit: Exit::Signaled {
                signal: 9,
                core_dumped: true,
            },
            user_us: 7,
            system_us: 0,
            max_rss_kib: 1024,
            init_hwm_kib: 0,
        };
        s.extend(frame(Tag::WAIT, &wait.to_bytes()));
        s.extend(frame(Tag::EXIT, &(-1i32).to_le_bytes()));
        s.extend(frame(Tag::EXIT, &[1, 2]));
        let tail = frame(Tag::SOUT, b"cut");
        s.extend(&tail[..tail.len() - 1]);
        s
    }

    fn decoded(json: bool) -> String {
        let mut out = Vec::new();
        write_events(&stream()[..], json, &mut out).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn text_rendering_of_every_kind_of_event() {
        let crc = crc32fast::hash(b"Oops");
        let expected = format!(
            "\
skipped 10 bytes
KADR 24 phys_base=0x1000000 page_offset_base=0xffff888000000000 text=unknown
SRDY 0
LIFE 3 phase=PayloadStarting reason=\"go\"
SOUT 8 \"hi\\n\\t\\xff\\\"q\\\"\"
CRC mismatch: SERR frame of 4 bytes (header {:#010x}, payload {crc:#010x})
skipped 19 bytes
TIME 18 init_entry=1.500ms payload_exit=2000.000ms
WAIT 36 killed signal=9 core_dumped user_us=7 system_us=0 max_rss_kib=1024 init_hwm_kib=0
EXIT 4 code=-1
EXIT 2 \"\\u{{1}}\\u{{2}}\"
truncated: 18 bytes at the end complete no frame
",
            crc32fast::hash(b"oops")
        );
        assert_eq!(decoded(false), expected);
    }

    /// Endless SOUT frames, counting the bytes read.
    struct Frames {
        frame: Vec<u8>,
        read: usize,
    }

    impl Read for Frames {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let at = self.read % self.frame.len();
            let n = (self.frame.len() - at).min(buf.len());
            buf[..n].copy_from_slice(&self.frame[at..at + n]);
            self.read += n;
            Ok(n)
        }
    }

    /// A pipe whose reader leaves after its first line (`| head -1`).
    struct Head(bool);

    impl Write for Head {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            if std::mem::replace(&mut self.0, true) {
                return Err(io::ErrorKind::BrokenPipe.into());
            }
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_reader_that_leaves_stops_the_listing_within_a_chunk() {
        let mut input = Frames {
            frame: frame(Tag::SOUT, &[b'x'; 16 << 10]),
            read: 0,
        };
        // As `main` buffers stdout.
        let out = io::BufWriter::with_capacity(READ_CHUNK, Head(false));
        assert!(matches!(
            write_events(&mut input, false, out),
            Err(Stopped::Write)
        ));
        assert!(input.read <= 2 * READ_CHUNK, "read {} bytes", input.read);
    }

    #[test]
    fn every_life_phase_renders_by_name() {
        let text = |phase: u8| render::frame_text(Tag::LIFE, &[phase]);
        assert_eq!(text(5), "LIFE 1 phase=WorkloadDispatched");
        assert_eq!(text(6), "LIFE 1 phase=SchedulerAttached");
        assert_eq!(text(0), "LIFE 1 phase=invalid(0)");
        assert_eq!(text(7), "LIFE 1 phase=invalid(7)");
        let json = render::event_json(
            &Event::Frame {
                tag: Tag::LIFE,
                payload: &[6],
            },
            false,
        );
        assert_eq!(json["phase"], "SchedulerAttached");
        assert_eq!(json["phase_code"], 6);
    }

    #[test]
    fn json_lines_parse_back() {
        let lines: Vec<serde_json::Value> = decoded(true)
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 12);
        assert_eq!(lines[0]["event"], "skipped");
        assert_eq!(lines[1]["tag"], "KADR");
        assert_eq!(lines[1]["phys_base"], 0x100_0000);
        assert!(lines[1]["text_addr"].is_null());
        assert_eq!(lines[3]["phase"], "PayloadStarting");
        assert_eq!(lines[3]["reason"], "go");
        assert_eq!(lines[4]["text"], "hi\n\t\u{fffd}\"q\"");
        assert_eq!(lines[5]["event"], "crc_mismatch");
        assert_eq!(lines[5]["tag"], "SERR");
        assert_eq!(lines[7]["marks"][1]["mark"], "payload exit");
        assert_eq!(lines[7]["marks"][1]["ns"], 2_000_000_000u64);
        assert_eq!(lines[8]["signal"], 9);
        assert_eq!(lines[9]["code"], -1);
        assert_eq!(lines[11]["event"], "truncated");
        assert_eq!(lines[11]["bytes"], 18);
    }
}
