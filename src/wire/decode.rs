//! A streaming frame decoder over a caller-provided buffer.
//!
//! Guarantee (tested by unit tests and fuzz target `resync`): bytes that do
//! not start a plausible header (upper-case/digit tag, zero pad, length within
//! the decoder's bound) are skipped and reported; a plausible header whose
//! payload fails its CRC is reported and the scan resumes one byte after it.
//! So for a stream `G ++ F1 ++ .. ++ Fn` of garbage and valid frames, every
//! `Fi` is decoded exactly unless a CRC-valid frame starts inside `G` and
//! extends past it.
//!
//! Work per input byte is bounded by a constant, whatever the input: a frame
//! that starts where nothing is pending is checked where it lies (hashed once,
//! not copied); other bytes are copied about twice (the window is compacted
//! only once half the buffer is spent). The window's first candidate frame
//! is hashed whole; later ones, which overlap it, are checked from a table of
//! prefix CRCs built once per window, so each plausible header costs at most
//! `2 * prefix::BLOCK` bytes of hashing and eight multiplications, however
//! long a payload it claims (see `crc`).

use super::header::{Extend, Header, HEADER_LEN};
use super::prefix::{self, Prefixes};
use super::tag::is_tag_byte;
use super::tag::Tag;

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
/// size: see [`Decoder::buffer_len`].
pub struct Decoder<'b> {
    /// The window `data[start..end]`: bytes taken in, not yet resolved.
    data: &'b mut [u8],
    prefixes: Prefixes<'b>,
    max_payload: usize,
    start: usize,
    end: usize,
}

impl<'b> Decoder<'b> {
    /// Bytes of buffer for a decoder that accepts payloads of `max_payload`
    /// bytes: room for two largest frames (so the window moves at most once
    /// per frame's worth of input) and their prefix CRCs.
    pub const fn buffer_len(max_payload: usize) -> usize {
        let data = 2 * (HEADER_LEN + max_payload);
        data + prefix::table_len(data)
    }

    /// A decoder over `buf`, accepting the largest payloads it has room for;
    /// `buf` must hold at least `buffer_len(1)` bytes. CRCs by crc32fast.
    pub fn new(buf: &'b mut [u8]) -> Decoder<'b> {
        Self::with_crc(buf, super::crc::extend)
    }

    /// [`Decoder::new`] checking CRCs with `crc` (the init passes
    /// [`super::slice16::extend`], so crc32fast's table stays out of it).
    pub fn with_crc(buf: &'b mut [u8], crc: Extend) -> Decoder<'b> {
        let max_payload = Self::max_payload_for(buf.len());
        let data_len = 2 * (HEADER_LEN + max_payload);
        let (table, data) = buf.split_at_mut(prefix::table_len(data_len));
        Decoder {
            data: &mut data[..data_len],
            prefixes: Prefixes::new(table, crc),
            max_payload,
            start: 0,
            end: 0,
        }
    }

    /// The largest `m` with `buffer_len(m) <= len`.
    fn max_payload_for(len: usize) -> usize {
        assert!(
            len >= Self::buffer_len(1),
            "decoder buffer holds no payload"
        );
        // The table takes 4 of every BLOCK + 4 bytes: start just below.
        let data = len / (prefix::BLOCK + 4) * prefix::BLOCK;
        let mut m = (data / 2).saturating_sub(HEADER_LEN);
        while Self::buffer_len(m + 1) <= len {
            m += 1;
        }
        while Self::buffer_len(m) > len {
            m -= 1;
        }
        m
    }

    /// The largest payload this decoder accepts.
    pub fn max_payload(&self) -> usize {
        self.max_payload
    }

    /// Bytes taken in but not yet resolved into an event.
    pub fn pending(&self) -> usize {
        self.end - self.start
    }

    /// Takes bytes from `input` and returns how many it took, with at most
    /// one event. Each call takes input or yields an event (or both) unless
    /// `input` is empty; call again with the rest until both are exhausted.
    pub fn push<'s>(&'s mut self, input: &'s [u8]) -> (usize, Option<Event<'s>>) {
        if self.pending() == 0 {
            // Nothing before it: the window would hold only these bytes.
            self.start = 0;
            self.end = 0;
            self.prefixes.reset();
            if let Some((taken, tag, payload)) = self.frame_in_place(input) {
                return (taken, Some(Event::Frame { tag, payload }));
            }
        }
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

    /// A valid frame at the start of `input`, read where it lies instead of
    /// copied into the window: with nothing pending the window would judge
    /// it alike. A frame failing its CRC is left to the window to report;
    /// all of it fits there, so no byte is hashed here twice.
    fn frame_in_place<'i>(&self, input: &'i [u8]) -> Option<(usize, Tag, &'i [u8])> {
        if input.is_empty() {
            return None;
        }
        let Judged::Frame(h) = self.judge(input) else {
            return None;
        };
        let end = HEADER_LEN + h.len as usize;
        let payload = &input[HEADER_LEN..end];
        (self.prefixes.hash(payload) == h.crc).then_some((end, h.tag, payload))
    }

    /// At the end of the stream: resolves the bytes still pending, one event
    /// per call, as if no more input could complete them. `None` once empty.
    pub fn finish(&mut self) -> Option<Event<'_>> {
        let step = self.scan(true);
        self.resolve(step)
    }

    /// Takes what fits of `input`. The window never holds more than a
    /// largest frame, so once the buffer's end is reached at least half of
    /// it lies before the window: moving the window back is paid for.
    fn absorb(&mut self, input: &[u8]) -> usize {
        if self.end == self.data.len() {
            self.data.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
            self.prefixes.reset();
        }
        let room = self.wanted().min(self.data.len() - self.end);
        let n = input.len().min(room);
        self.data[self.end..self.end + n].copy_from_slice(&input[..n]);
        self.end += n;
        n
    }

    /// Bytes the window takes next: the rest of the header or frame it
    /// starts with, so that the input after a frame is read in place;
    /// else up to a largest frame.
    fn wanted(&self) -> usize {
        let window = &self.data[self.start..self.end];
        if window.is_empty() {
            return HEADER_LEN + self.max_payload;
        }
        if window.len() < HEADER_LEN {
            return HEADER_LEN - window.len();
        }
        match self.judge(window) {
            Judged::Undecided => {
                let len = u32::from_le_bytes([window[4], window[5], window[6], window[7]]);
                HEADER_LEN + len as usize - window.len()
            }
            _ => HEADER_LEN + self.max_payload - window.len(),
        }
    }

    /// Classifies the bytes at the start of the window without consuming them.
    fn scan(&self, at_eof: bool) -> Step {
        let window = &self.data[self.start..self.end];
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
            h.tag.is_well_formed() && h.pad == 0 && (h.len as usize) <= self.max_payload;
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
                let payload_end = body + h.len as usize;
                let actual = self.prefixes.range(self.data, body, payload_end);
                if actual != h.crc {
                    self.start += 1;
                    return Some(Event::CrcMismatch {
                        tag: h.tag,
                        len: h.len,
                        expected: h.crc,
                        actual,
                    });
                }
                self.start = payload_end;
                if self.start == self.end {
                    // Drained: rewind so the next input needs no compaction.
                    // The payload stays where it lies until then.
                    self.start = 0;
                    self.end = 0;
                    self.prefixes.reset();
                }
                Some(Event::Frame {
                    tag: h.tag,
                    payload: &self.data[body..payload_end],
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
