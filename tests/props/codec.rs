//! Properties of the frame codec, shared by the property tests
//! (tests/codec_props.rs) and the fuzz targets (fuzz/fuzz_targets/). Each
//! checks one property on any input and panics when it fails.

use arbitrary::{Arbitrary, Unstructured};
use guestinit::wire::msg::{
    code_from_bytes, BuildId, KernelAddrs, Mark, Phase, Timeline, WaitStatus,
};
use guestinit::wire::{
    encode, encoded_len, write_header, Decoder, EncodeError, Event, Header, Tag, HEADER_LEN,
    MAX_PAYLOAD,
};

/// The largest payload bound tested: the decoder's logic does not depend on
/// its size, and a small one keeps the properties fast.
pub const MAX_TESTED_PAYLOAD: usize = 4096;

/// A decoder event, owned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Ev {
    Frame {
        tag: Tag,
        payload: Vec<u8>,
    },
    CrcMismatch {
        tag: Tag,
        len: u32,
        expected: u32,
        actual: u32,
    },
    Skipped(usize),
}

impl Ev {
    fn new(event: Event<'_>) -> Ev {
        match event {
            Event::Frame { tag, payload } => Ev::Frame {
                tag,
                payload: payload.to_vec(),
            },
            Event::CrcMismatch {
                tag,
                len,
                expected,
                actual,
            } => Ev::CrcMismatch {
                tag,
                len,
                expected,
                actual,
            },
            Event::Skipped { bytes } => Ev::Skipped(bytes),
        }
    }

    /// Stream bytes the event accounts for: a mismatched header is scanned
    /// again from its second byte, so it accounts for one.
    fn span(&self) -> usize {
        match self {
            Ev::Frame { payload, .. } => encoded_len(payload.len()),
            Ev::CrcMismatch { .. } => 1,
            Ev::Skipped(bytes) => *bytes,
        }
    }
}

/// The header at `stream[at..]` if it is plausible (well-formed tag, zero
/// pad, length within `max`) and its whole frame lies in `stream`.
fn complete_header(stream: &[u8], at: usize, max: usize) -> Option<Header> {
    let bytes: &[u8; HEADER_LEN] = stream.get(at..at + HEADER_LEN)?.try_into().ok()?;
    let h = Header::from_bytes(bytes);
    let len = h.len as usize;
    let plausible = h.tag.is_well_formed() && h.pad == 0 && len <= max;
    (plausible && at + encoded_len(len) <= stream.len()).then_some(h)
}

fn payload_of(stream: &[u8], at: usize, h: Header) -> &[u8] {
    &stream[at + HEADER_LEN..at + encoded_len(h.len as usize)]
}

/// The oracle: crc32fast, which the host decodes with, while the encoder
/// (the init's) hashes with `wire::slice16`; every check against this
/// cross-checks the two.
fn crc_of(payload: &[u8]) -> u32 {
    crc32fast::hash(payload)
}

fn frame(tag: Tag, payload: &[u8]) -> Vec<u8> {
    let mut out = vec![0u8; encoded_len(payload.len())];
    encode(tag, payload, &mut out).expect("sized for the frame");
    out
}

/// Checks that `ev`, found at offset `at`, tells the truth about `stream`.
fn check_event(stream: &[u8], max: usize, at: usize, ev: &Ev) {
    match ev {
        Ev::Frame { tag, payload } => {
            assert!(tag.is_well_formed() && payload.len() <= max, "{ev:?}");
            let end = at + encoded_len(payload.len());
            assert!(end <= stream.len(), "frame past the end at {at}");
            assert_eq!(stream[at..end], frame(*tag, payload), "frame at {at}");
        }
        Ev::CrcMismatch {
            tag,
            len,
            expected,
            actual,
        } => {
            let h = complete_header(stream, at, max).expect("mismatch without a header");
            assert_eq!((h.tag, h.len, h.crc), (*tag, *len, *expected), "at {at}");
            assert_eq!(crc_of(payload_of(stream, at, h)), *actual, "at {at}");
            assert_ne!(actual, expected, "a matching CRC reported as mismatched");
        }
        Ev::Skipped(bytes) => {
            assert!(*bytes > 0, "empty skip at {at}");
            for q in at..at + bytes {
                assert!(
                    complete_header(stream, q, max).is_none(),
                    "skipped a complete plausible frame at {q}"
                );
            }
        }
    }
}

/// Decodes `stream` through a decoder sized for payloads of up to `max`
/// bytes, fed in chunks of the `cuts` sizes (then the rest at once), checking
/// every event against the stream and the decoder's bounds. Returns the
/// events with their offsets.
pub fn decode_checked(
    stream: &[u8],
    max: usize,
    cuts: impl IntoIterator<Item = usize>,
) -> Vec<(usize, Ev)> {
    let mut buf = vec![0u8; Decoder::buffer_len(max)];
    let mut dec = Decoder::new(&mut buf);
    assert_eq!(dec.max_payload(), max);
    let mut events = Vec::new();
    let (mut at, mut taken, mut calls, mut chunks) = (0, 0, 0, 0);
    let mut record = |event: Event<'_>, at: &mut usize| {
        let ev = Ev::new(event);
        check_event(stream, max, *at, &ev);
        let span = ev.span();
        events.push((*at, ev));
        *at += span;
    };
    let mut cuts = cuts.into_iter();
    let mut rest = stream;
    while !rest.is_empty() {
        let size = cuts.next().unwrap_or(rest.len()).min(rest.len());
        let (mut input, after) = rest.split_at(size);
        rest = after;
        chunks += 1;
        loop {
            calls += 1;
            let (n, event) = dec.push(input);
            assert!(n <= input.len());
            input = &input[n..];
            taken += n;
            let yielded = event.is_some();
            if let Some(event) = event {
                record(event, &mut at);
            }
            assert!(n > 0 || yielded || input.is_empty(), "push stalled");
            assert_eq!(taken - dec.pending(), at, "pending() disagrees");
            if input.is_empty() && !yielded {
                break;
            }
        }
    }
    while let Some(event) = dec.finish() {
        calls += 1;
        record(event, &mut at);
    }
    assert_eq!((at, dec.pending()), (stream.len(), 0), "bytes unaccounted");
    // Each call takes a byte or accounts for one, or ends a chunk.
    assert!(calls <= 2 * stream.len() + chunks + 1, "{calls} calls");
    events
}

/// Chunk sizes from a seed: mostly small, sometimes empty, 0 = no cuts.
fn cuts_from_seed(seed: u8, total: usize) -> Vec<usize> {
    let mut state = u32::from(seed).wrapping_mul(0x9e37_79b9) | 1;
    let mut cuts = Vec::new();
    let mut sum = 0;
    while seed != 0 && sum < total {
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        let size = (state >> 8) as usize % (2 << (state % 8));
        cuts.push(size);
        sum += size;
    }
    cuts
}

/// Target 1: the decoder on arbitrary bytes. The first two bytes bound the
/// payload, the third seeds the chunking, the rest is the stream.
pub fn decode_bytes(data: &[u8]) {
    let [a, b, seed, stream @ ..] = data else {
        return;
    };
    let max = 1 + usize::from(u16::from_le_bytes([*a, *b])) % MAX_TESTED_PAYLOAD;
    decode_checked(stream, max, cuts_from_seed(*seed, stream.len()));
}

/// One message; `tag` is made well-formed, as the decoder only finds such.
#[derive(Clone, Debug, Arbitrary)]
pub struct Msg {
    pub tag: [u8; 4],
    pub payload: Vec<u8>,
}

impl Msg {
    pub fn tag(&self) -> Tag {
        const TAG_BYTES: &[u8; 36] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
        Tag::from_ascii(
            self.tag
                .map(|b| TAG_BYTES[usize::from(b) % TAG_BYTES.len()]),
        )
    }
}

/// Messages, the chunking of their stream and the decoder's spare room.
#[derive(Clone, Debug, Arbitrary)]
pub struct Frames {
    pub msgs: Vec<Msg>,
    pub spare: u16,
    pub cuts: Vec<u16>,
}

impl Frames {
    /// The encoded messages and the events they must decode to.
    fn encode(&self, at: usize) -> (Vec<u8>, Vec<(usize, Ev)>) {
        let mut stream = Vec::new();
        let mut want = Vec::new();
        for m in &self.msgs {
            let ev = Ev::Frame {
                tag: m.tag(),
                payload: m.payload.clone(),
            };
            want.push((at + stream.len(), ev));
            stream.extend(frame(m.tag(), &m.payload));
        }
        (stream, want)
    }

    /// A payload bound that admits the largest message, with some spare.
    fn max_payload(&self) -> Option<usize> {
        let largest = self.msgs.iter().map(|m| m.payload.len()).max().unwrap_or(0);
        let max = largest.max(1) + usize::from(self.spare) % 512;
        (max <= MAX_TESTED_PAYLOAD).then_some(max)
    }

    fn cuts(&self) -> impl Iterator<Item = usize> + '_ {
        self.cuts.iter().map(|&c| usize::from(c))
    }
}

/// Target 2: encoded messages, cut anyhow, decode to exactly themselves.
pub fn round_trip(input: &Frames) {
    let Some(max) = input.max_payload() else {
        return;
    };
    let (stream, want) = input.encode(0);
    assert_eq!(decode_checked(&stream, max, input.cuts()), want);
}

/// Garbage, then valid frames.
#[derive(Clone, Debug, Arbitrary)]
pub struct Resync {
    pub garbage: Vec<u8>,
    pub frames: Frames,
}

/// Whether a CRC-valid frame starts inside `stream[..garbage]` and ends past
/// it: the one case the decoder's resync guarantee leaves out.
pub fn frame_straddles(stream: &[u8], garbage: usize, max: usize) -> bool {
    (0..garbage).any(|at| {
        complete_header(stream, at, max).is_some_and(|h| {
            at + encoded_len(h.len as usize) > garbage && crc_of(payload_of(stream, at, h)) == h.crc
        })
    })
}

/// Target 3: after garbage G, the valid frames are decoded exactly, each
/// once, unless a CRC-valid frame starts inside G and extends past it (the
/// guarantee in src/wire/decode.rs). Returns whether the input qualified.
pub fn resync(input: &Resync) -> bool {
    let Some(max) = input.frames.max_payload() else {
        return false;
    };
    let g = input.garbage.len();
    let (frames, want) = input.frames.encode(g);
    let stream = [&input.garbage[..], &frames].concat();
    if frame_straddles(&stream, g, max) {
        return false;
    }
    let events = decode_checked(&stream, max, input.frames.cuts());
    let after = events.iter().position(|(at, _)| *at >= g);
    assert_eq!(events[after.unwrap_or(events.len())..], want[..]);
    true
}

/// How many payload bytes `write_header` is told are in place.
#[derive(Clone, Debug, Arbitrary)]
pub enum Claim {
    /// Around the buffer's size.
    Near(u16),
    Any(u64),
}

/// A frame to encode into a buffer of `buf_len` bytes.
#[derive(Clone, Debug, Arbitrary)]
pub struct EncodeInto {
    pub tag: u32,
    pub payload: Vec<u8>,
    /// Use instead a payload this much over `MAX_PAYLOAD`.
    pub oversize: Option<u8>,
    pub buf_len: u16,
    pub claim: Claim,
    pub fill: u8,
}

/// What `encode` and `write_header` must answer.
fn expected(payload_len: usize, available: usize) -> Result<usize, EncodeError> {
    if payload_len > MAX_PAYLOAD {
        return Err(EncodeError::PayloadTooLarge { len: payload_len });
    }
    let needed = HEADER_LEN + payload_len;
    if needed > available {
        return Err(EncodeError::BufferTooSmall { needed, available });
    }
    Ok(needed)
}

/// Target 4: encoding into a buffer of any size writes the frame and
/// nothing past it, or reports that it does not fit and writes nothing.
pub fn encode_into(input: &EncodeInto) {
    let tag = Tag(input.tag);
    let payload = match input.oversize {
        Some(over) => vec![input.fill; MAX_PAYLOAD + 1 + usize::from(over)],
        None => input.payload.clone(),
    };
    let avail = usize::from(input.buf_len);
    // The buffer given is a prefix of a larger one, to see stray writes.
    let before: Vec<u8> = (0..avail + 64)
        .map(|i| (i as u8).wrapping_mul(31) ^ input.fill)
        .collect();

    let mut out = before.clone();
    let result = encode(tag, &payload, &mut out[..avail]);
    assert_eq!(result, expected(payload.len(), avail));
    let written = result.unwrap_or(0);
    if written > 0 {
        assert_eq!(out[..written], frame_by_hand(tag, &payload));
        let events = decode_checked(&out[..written], payload.len().max(1), []);
        if tag.is_well_formed() {
            assert_eq!(events, [(0, Ev::Frame { tag, payload })]);
        }
    }
    assert_eq!(out[written..], before[written..], "wrote past the frame");

    let len = match input.claim {
        Claim::Near(n) => usize::from(n) % (avail + 8),
        Claim::Any(n) => n as usize,
    };
    let mut out = before.clone();
    let result = write_header(tag, &mut out[..avail], len);
    assert_eq!(result, expected(len, avail));
    if let Ok(n) = result {
        let header = Header::for_payload(tag, &before[HEADER_LEN..n]).to_bytes();
        assert_eq!(out[..HEADER_LEN], header);
        assert_eq!(
            out[HEADER_LEN..],
            before[HEADER_LEN..],
            "wrote past the header"
        );
    } else {
        assert_eq!(out, before, "wrote on failure");
    }
}

/// The frame's bytes per the protocol's table, independently of `encode`.
fn frame_by_hand(tag: Tag, payload: &[u8]) -> Vec<u8> {
    let crc = crc_of(payload);
    let words = [tag.0, payload.len() as u32, crc, 0];
    let mut out: Vec<u8> = words.iter().flat_map(|w| w.to_le_bytes()).collect();
    out.extend(payload);
    out
}

/// A payload under some tag, as the host receives it.
#[derive(Clone, Debug, Arbitrary)]
pub struct MsgInput {
    pub tag: u32,
    pub payload: Vec<u8>,
}

/// The structured payload readers on any bytes: they answer, and what they
/// read encodes back to the same (or an equivalent) payload.
pub fn msg_payload(input: &MsgInput) {
    let p = &input.payload[..];
    let code_tags = [Tag::EXIT, Tag::SCDX, Tag::EXCX];
    for tag in code_tags.into_iter().chain([Tag(input.tag)]) {
        match code_from_bytes(tag, p) {
            Some(code) => assert!(code_tags.contains(&tag) && code.to_le_bytes() == p),
            None => assert!(!code_tags.contains(&tag) || p.len() != 4),
        }
    }
    match KernelAddrs::from_bytes(p) {
        Some(k) => assert_eq!(k.to_bytes(), p),
        None => assert_ne!(p.len(), KernelAddrs::LEN),
    }
    match BuildId::from_bytes(p) {
        Some(id) => assert_eq!(id.as_bytes(), p),
        None => assert!(p.len() > BuildId::MAX),
    }
    if let Some(w) = WaitStatus::from_bytes(p) {
        assert_eq!(WaitStatus::from_bytes(&w.to_bytes()), Some(w));
        assert!((0..=255 + 128).contains(&w.exit.shell_code()));
    }
    let entries: Vec<_> = Timeline::entries(p).collect();
    assert_eq!(entries.len(), p.len() / Timeline::ENTRY_LEN);
    for (i, (mark, ns)) in entries.into_iter().enumerate() {
        let raw = &p[i * Timeline::ENTRY_LEN..][..Timeline::ENTRY_LEN];
        if let Some(m) = Mark::from_u8(mark) {
            assert_eq!(Timeline::entry(m, ns), raw);
        }
    }
    if let Some(&first) = p.first() {
        assert!(Phase::from_u8(first).is_none_or(|ph| ph as u8 == first));
        assert!(Mark::from_u8(first).is_none_or(|m| m as u8 == first));
    }
}

/// Runs the property of fuzz target `target` on its raw input, decoded as
/// libFuzzer's harness decodes it; `false` if no such target.
pub fn replay(target: &str, data: &[u8]) -> bool {
    fn typed<'a, T: Arbitrary<'a>>(data: &'a [u8], check: impl FnOnce(&T)) {
        if let Ok(input) = T::arbitrary_take_rest(Unstructured::new(data)) {
            check(&input);
        }
    }
    match target {
        "decode" => decode_bytes(data),
        "roundtrip" => typed(data, round_trip),
        "resync" => typed(data, |input| {
            resync(input);
        }),
        "encode" => typed(data, encode_into),
        "msg" => typed(data, msg_payload),
        _ => return false,
    }
    true
}
