//! Properties of the host's control messages (`proto::control`): the round
//! trip (tests/codec_props.rs) and the decoder on any bytes, which the fuzz
//! target `control` shares. Each panics when its property fails.

use guestinit::proto::control::{Decoder, Message, DUMP, RESIZE, RESIZE_LEN, STOP};

/// One message, as the property tests build it.
#[derive(Clone, Copy, Debug)]
pub enum Msg {
    Dump,
    Stop,
    Resize { rows: u16, cols: u16 },
}

impl Msg {
    pub fn message(self) -> Message {
        match self {
            Msg::Dump => Message::Dump,
            Msg::Stop => Message::Stop,
            Msg::Resize { rows, cols } => Message::Resize { rows, cols },
        }
    }
}

/// Messages, bytes of unknown kinds between them, and the cuts of their
/// stream into the reads the init would get.
#[derive(Clone, Debug)]
pub struct ControlStream {
    pub messages: Vec<Msg>,
    /// (before which message, modulo their count + 1; a byte, made an
    /// unknown kind).
    pub noise: Vec<(u16, u8)>,
    /// Chunk lengths, cycled; 0 is an empty read.
    pub cuts: Vec<u16>,
}

/// `byte` as a kind no message has: the decoder passes it over.
fn unknown_kind(byte: u8) -> u8 {
    match byte {
        DUMP | STOP | RESIZE => byte ^ 1,
        b => b,
    }
}

/// `stream` fed to one decoder in reads cut by `cuts` (cycled, at least
/// one byte each once they run out): the messages it decodes.
fn decode_in_reads(stream: &[u8], cuts: &[u16]) -> Vec<Message> {
    let mut decoder = Decoder::default();
    let mut got = Vec::new();
    let mut rest = stream;
    let mut sizes = cuts.iter().map(|&c| usize::from(c) % 8);
    while !rest.is_empty() {
        let n = sizes.next().unwrap_or(rest.len()).min(rest.len());
        let (read, after) = rest.split_at(n);
        got.extend(read.iter().filter_map(|&b| decoder.push(b)));
        rest = after;
    }
    got
}

/// Any messages, encoded with unknown bytes between them and cut anywhere,
/// decode to exactly themselves.
pub fn round_trip(input: &ControlStream) {
    let want: Vec<Message> = input.messages.iter().map(|m| m.message()).collect();
    let slots = want.len() + 1;
    let mut stream = Vec::new();
    for slot in 0..slots {
        let before = input
            .noise
            .iter()
            .filter(|(at, _)| usize::from(*at) % slots == slot);
        stream.extend(before.map(|&(_, b)| unknown_kind(b)));
        if let Some(message) = want.get(slot) {
            stream.extend_from_slice(&message.encode());
        }
    }
    assert_eq!(decode_in_reads(&stream, &input.cuts), want);
}

/// The protocol's table read over a whole stream at once, independently of
/// `Decoder`: the messages it holds; a RESIZE cut short by the end is none.
fn model(stream: &[u8]) -> Vec<Message> {
    let mut got = Vec::new();
    let mut at = 0;
    while at < stream.len() {
        match stream[at] {
            DUMP => got.push(Message::Dump),
            STOP => got.push(Message::Stop),
            RESIZE => {
                let Some(m) = stream.get(at..at + RESIZE_LEN) else {
                    break;
                };
                let rows = u16::from(m[1]) | u16::from(m[2]) << 8;
                let cols = u16::from(m[3]) | u16::from(m[4]) << 8;
                got.push(Message::Resize { rows, cols });
                at += RESIZE_LEN;
                continue;
            }
            _ => {}
        }
        at += 1;
    }
    got
}

/// Target `control`: the init's decoder on any bytes (the first seeds the
/// cuts) agrees with the model, and what it decodes encodes back to a
/// stream that decodes to the same.
pub fn decode_bytes(data: &[u8]) {
    let [seed, stream @ ..] = data else {
        return;
    };
    let cuts: Vec<u16> = (0..16u16)
        .map(|i| (u16::from(*seed) >> (i % 8)) ^ i)
        .collect();
    let got = decode_in_reads(stream, &cuts);
    assert_eq!(got, model(stream));
    let encoded: Vec<u8> = got.iter().flat_map(|m| m.encode().to_vec()).collect();
    assert_eq!(decode_in_reads(&encoded, &[]), got);
}

/// Runs the property of fuzz target `target` on its raw input, decoded as
/// libFuzzer's harness decodes it; `false` if no such target.
pub fn replay(target: &str, data: &[u8]) -> bool {
    match target {
        "control" => decode_bytes(data),
        _ => return false,
    }
    true
}
