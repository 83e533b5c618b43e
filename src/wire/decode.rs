//! A streaming frame decoder over a caller-provided buffer.
//!
//! Guarantee (tested by unit tests and fuzz target `resync`): bytes that do
//! not start a plausible header (upper-case/digit tag, zero pad, length within
//! the buffer's bound) are skipped and reported; a plausible header whose
//! payload fails its CRC is reported and the scan resumes one byte after it.
//! So for a stream `G ++ F1 ++ .. ++ Fn` of garbage and valid frames, every
//! `Fi` is decoded exactly unless a CRC-valid frame starts inside `G` and
//! extends past it. Work per input byte is bounded by the buffer size.

use super::tag::is_tag_byte;
use super::{Header, Tag, HEADER_LEN};

/// What the decoder recognised in the stream.
#[derive(Debug, PartialEq, Eq)]
pub enum Event<'a> {
    /// A frame whose CRC matches.
    Frame { tag: Tag, payload: &'a [u8] },
    /// A plausible frame whose payload does not match its CRC. Its bytes are
    /// scanned again from one past its first byte.
    CrcMismatch {
        tag: Tag,
        len: u32,
        expected: u32,
        actual: u32,
    },
    /// Bytes that start no plausible frame, passed over.
    Skipped { bytes: usize },
}

/// Decodes frames from input of any chunking. The buffer bounds the payload
/// size: a frame needs `HEADER_LEN + len` bytes of it.
pub struct Decoder<'b> {
    buf: &'b mut [u8],
    start: usize,
    end: usize,
}

impl<'b> Decoder<'b> {
    /// A decoder over `buf`, which must hold more than a header.
    pub fn new(buf: &'b mut [u8]) -> Decoder<'b> {
        assert!(buf.len() > HEADER_LEN, "decoder buffer holds no payload");
        Decoder {
            buf,
            start: 0,
            end: 0,
        }
    }

    /// The largest payload this decoder accepts.
    pub fn max_payload(&self) -> usize {
        self.buf.len() - HEADER_LEN
    }

    /// Bytes taken in but not yet resolved into an event.
    pub fn pending(&self) -> usize {
        self.end - self.start
    }

    /// Takes bytes from `input` and returns how many it took, with at most
    /// one event. Each call takes input or yields an event (or both) unless
    /// `input` is empty; call again with the rest until both are exhausted.
    pub fn push(&mut self, input: &[u8]) -> (usize, Option<Event<'_>>) {
        let mut step = self.scan(false);
        let mut taken = 0;
        if let Step::NeedMore = step {
            taken = self.absorb(input);
            if taken > 0 {
                step = self.scan(false);
            }
        }
        (taken, self.resolve(step))
    }

    /// At the end of the stream: resolves the bytes still pending, one event
    /// per call, as if no more input could complete them. `None` once empty.
    pub fn finish(&mut self) -> Option<Event<'_>> {
        let step = self.scan(true);
        self.resolve(step)
    }

    fn absorb(&mut self, input: &[u8]) -> usize {
        if self.end == self.buf.len() && self.start > 0 {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        let n = input.len().min(self.buf.len() - self.end);
        self.buf[self.end..self.end + n].copy_from_slice(&input[..n]);
        self.end += n;
        n
    }

    /// Classifies the bytes at the start of the window without consuming them.
    fn scan(&self, at_eof: bool) -> Step {
        let window = &self.buf[self.start..self.end];
        let mut skip = 0;
        while skip < window.len() {
            match self.judge(&window[skip..]) {
                Judged::Implausible => skip += 1,
                Judged::Undecided if at_eof => skip += 1,
                Judged::Undecided => break,
                Judged::Frame(h) if skip == 0 => return Step::Frame(h),
                Judged::Frame(_) => break,
            }
        }
        if skip > 0 {
            Step::Skip(skip)
        } else {
            Step::NeedMore
        }
    }

    fn judge(&self, at: &[u8]) -> Judged {
        if !is_tag_byte(at[0]) {
            return Judged::Implausible;
        }
        if at.len() < HEADER_LEN {
            let tag_prefix = &at[..at.len().min(4)];
            return if tag_prefix.iter().all(|&b| is_tag_byte(b)) {
                Judged::Undecided
            } else {
                Judged::Implausible
            };
        }
        let mut bytes = [0u8; HEADER_LEN];
        bytes.copy_from_slice(&at[..HEADER_LEN]);
        let h = Header::from_bytes(&bytes);
        let plausible =
            h.tag.is_well_formed() && h.pad == 0 && (h.len as usize) <= self.max_payload();
        match (plausible, at.len() >= HEADER_LEN + h.len as usize) {
            (false, _) => Judged::Implausible,
            (true, true) => Judged::Frame(h),
            (true, false) => Judged::Undecided,
        }
    }

    fn resolve(&mut self, step: Step) -> Option<Event<'_>> {
        match step {
            Step::NeedMore => None,
            Step::Skip(bytes) => {
                self.start += bytes;
                Some(Event::Skipped { bytes })
            }
            Step::Frame(h) => {
                let body = self.start + HEADER_LEN;
                let actual = crc32fast::hash(&self.buf[body..body + h.len as usize]);
                if actual != h.crc {
                    self.start += 1;
                    return Some(Event::CrcMismatch {
                        tag: h.tag,
                        len: h.len,
                        expected: h.crc,
                        actual,
                    });
                }
                self.start = body + h.len as usize;
                if self.start == self.end {
                    // Drained: rewind so the next input needs no compaction.
                    // The payload stays where it lies until then.
                    self.start = 0;
                    self.end = 0;
                }
                Some(Event::Frame {
                    tag: h.tag,
                    payload: &self.buf[body..body + h.len as usize],
                })
            }
        }
    }
}

enum Step {
    NeedMore,
    Skip(usize),
    Frame(Header),
}

enum Judged {
    Implausible,
    Undecided,
    Frame(Header),
}
