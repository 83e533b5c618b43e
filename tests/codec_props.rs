//! The codec's fuzz properties (tests/props/codec.rs), the control
//! messages' (tests/props/control.rs) and the handover header's
//! (tests/props/handover.rs) as property tests, so that stable
//! `cargo test` runs them; plus a replay of the fuzz corpus seeds and of
//! every crash the fuzzing kept as a regression.

#[path = "props/control.rs"]
mod control;
#[path = "props/handover.rs"]
mod handover;
#[path = "props/codec.rs"]
mod props;
#[path = "props/replay.rs"]
mod replay;
#[path = "props/sched_ctl.rs"]
mod sched_ctl;

use guestinit::proto::control as control_kind;
use guestinit::wire::{encode, encoded_len, slice16, Decoder, Tag, HEADER_LEN};
use props::{Claim, EncodeInto, Ev, Frames, Msg, MsgInput, Resync};
use proptest::prelude::*;

fn frame(tag: Tag, payload: &[u8]) -> Vec<u8> {
    let mut out = vec![0u8; encoded_len(payload.len())];
    encode(tag, payload, &mut out).unwrap();
    out
}

fn msg() -> impl Strategy<Value = Msg> {
    (any::<[u8; 4]>(), prop::collection::vec(any::<u8>(), 0..300))
        .prop_map(|(tag, payload)| Msg { tag, payload })
}

fn frames() -> impl Strategy<Value = Frames> {
    (
        prop::collection::vec(msg(), 0..6),
        any::<u16>(),
        prop::collection::vec(0u16..80, 0..24),
    )
        .prop_map(|(msgs, spare, cuts)| Frames { msgs, spare, cuts })
}

/// Bytes that look like frames more than random bytes do: valid, corrupted
/// and truncated frames, frame headers, tag letters and plain noise.
fn noisy_stream() -> impl Strategy<Value = Vec<u8>> {
    let piece = prop_oneof![
        msg().prop_map(|m| frame(m.tag(), &m.payload)),
        (msg(), any::<prop::sample::Index>(), 1u8..).prop_map(|(m, at, bit)| {
            let mut f = frame(m.tag(), &m.payload);
            let i = at.index(f.len());
            f[i] ^= bit;
            f
        }),
        (msg(), any::<prop::sample::Index>()).prop_map(|(m, cut)| {
            let f = frame(m.tag(), &m.payload);
            f[..cut.index(f.len())].to_vec()
        }),
        prop::collection::vec(prop::sample::select(&b"SOUTEXIT0\0"[..]), 0..24),
        prop::collection::vec(any::<u8>(), 0..40),
    ];
    prop::collection::vec(piece, 0..8).prop_map(|pieces| pieces.concat())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn decoder_accounts_for_every_byte(
        stream in noisy_stream(),
        max in 1usize..600,
        cuts in prop::collection::vec(0usize..70, 0..32),
    ) {
        props::decode_checked(&stream, max, cuts);
    }

    #[test]
    fn decoder_takes_the_largest_bound_its_buffer_fits(len in 38usize..1 << 20) {
        let mut buf = vec![0u8; len];
        let max = Decoder::new(&mut buf).max_payload();
        prop_assert!(Decoder::buffer_len(max) <= len && len < Decoder::buffer_len(max + 1));
    }

    #[test]
    fn decoder_on_raw_bytes(data in prop::collection::vec(any::<u8>(), 0..2000)) {
        props::decode_bytes(&data);
    }

    #[test]
    fn round_trip(input in frames()) {
        props::round_trip(&input);
    }

    #[test]
    fn resync_after_garbage(garbage in noisy_stream(), frames in frames()) {
        let input = Resync { garbage, frames };
        // Inputs outside the guarantee are rare with these strategies.
        prop_assume!(props::resync(&input));
    }

    #[test]
    fn encode_into_any_buffer(
        tag in prop_oneof![any::<u32>(), prop::sample::select(Tag::KNOWN).prop_map(|t| t.0)],
        payload in prop::collection::vec(any::<u8>(), 0..300),
        oversize in prop::option::weighted(0.05, any::<u8>()),
        buf_len in 0u16..400,
        claim in prop_oneof![any::<u16>().prop_map(Claim::Near), any::<u64>().prop_map(Claim::Any)],
        fill in any::<u8>(),
    ) {
        props::encode_into(&EncodeInto { tag, payload, oversize, buf_len, claim, fill });
    }

    #[test]
    fn slice16_is_crc32fast(start in any::<u32>(), bytes in prop::collection::vec(any::<u8>(), 0..600)) {
        let mut want = crc32fast::Hasher::new_with_initial(start);
        want.update(&bytes);
        prop_assert_eq!(slice16::extend(start, &bytes), want.finalize());
    }

    #[test]
    fn payload_readers(
        tag in prop_oneof![any::<u32>(), prop::sample::select(Tag::KNOWN).prop_map(|t| t.0)],
        payload in prop_oneof![
            prop::collection::vec(any::<u8>(), 0..50),
            prop::collection::vec(any::<u8>(), 24),
            prop::collection::vec(0u8..4, 36),
        ],
    ) {
        props::msg_payload(&MsgInput { tag, payload });
    }
}

#[test]
fn a_straddling_frame_is_what_the_guarantee_leaves_out() {
    // A valid frame starts inside the garbage and swallows the next frame's
    // start: the precondition check must see it.
    let inner = frame(Tag::SOUT, b"x");
    let outer = frame(Tag::SERR, &[&b"pad"[..], &inner[..4]].concat());
    let garbage = &outer[..outer.len() - 4];
    let stream = [garbage, &inner[..]].concat();
    assert!(props::frame_straddles(&stream, garbage.len(), 64));
    assert!(!props::frame_straddles(&stream, 0, 64));
    // And the decoder does lose that next frame.
    let events = props::decode_checked(&stream, 64, []);
    let frames: Vec<_> = events
        .iter()
        .filter(|(_, e)| matches!(e, Ev::Frame { .. }))
        .collect();
    assert_eq!(frames.len(), 1);
    assert!(matches!(&frames[0].1, Ev::Frame { tag, .. } if *tag == Tag::SERR));
}

#[test]
fn long_candidates_are_checked_exactly_across_window_moves() {
    // Long frames with a bad CRC, each hiding a short valid frame, then a
    // long valid frame: the long payloads take the prefix-CRC path.
    let long: Vec<u8> = (0..70_000u32).map(|i| (i % 251) as u8).collect();
    let inner = frame(Tag::SERR, b"inner");
    let mut stream = Vec::new();
    for at in [1000, 30_000, 69_000] {
        let mut liar = frame(Tag::SOUT, &long);
        liar[HEADER_LEN + at..][..inner.len()].copy_from_slice(&inner);
        stream.extend(liar);
    }
    stream.extend(frame(Tag::EXIT, &long));
    for cut in [997, 4096, 65_536] {
        // decode_checked checks each mismatch's reported CRC by hashing.
        let events = props::decode_checked(&stream, 80_000, std::iter::repeat_n(cut, 400));
        let count = |want: &dyn Fn(&Ev) -> bool| events.iter().filter(|(_, e)| want(e)).count();
        assert_eq!(
            count(&|e| matches!(e, Ev::CrcMismatch { len: 70_000, .. })),
            3
        );
        assert_eq!(count(&|e| matches!(e, Ev::Frame { tag: Tag::SERR, .. })), 3);
        assert!(matches!(
            events.last(),
            Some((_, Ev::Frame { tag: Tag::EXIT, .. }))
        ));
    }
}

fn control_message() -> impl Strategy<Value = control::Msg> {
    prop_oneof![
        Just(control::Msg::Dump),
        Just(control::Msg::Stop),
        (any::<u16>(), any::<u16>()).prop_map(|(rows, cols)| control::Msg::Resize { rows, cols }),
    ]
}

/// Bytes rich in the control messages' kinds.
fn control_bytes() -> impl Strategy<Value = Vec<u8>> {
    let kinds = &[control_kind::DUMP, control_kind::STOP, control_kind::RESIZE][..];
    let byte = prop_oneof![1 => prop::sample::select(kinds), 2 => any::<u8>()];
    prop::collection::vec(byte, 0..64)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn control_messages_round_trip(
        messages in prop::collection::vec(control_message(), 0..12),
        noise in prop::collection::vec((any::<u16>(), any::<u8>()), 0..8),
        cuts in prop::collection::vec(any::<u16>(), 0..16),
    ) {
        control::round_trip(&control::ControlStream { messages, noise, cuts });
    }

    #[test]
    fn control_decoder_on_any_bytes(data in control_bytes()) {
        control::decode_bytes(&data);
    }
}

fn handover_header() -> impl Strategy<Value = guestinit::proto::handover::Header> {
    use guestinit::proto::handover::{Header, PARAMS_MAX};
    let ns = prop_oneof![0u32..1_000_000_000, Just(999_999_999), any::<u32>()];
    let params = prop_oneof![
        0u32..=PARAMS_MAX as u32,
        Just(PARAMS_MAX as u32),
        any::<u32>()
    ];
    (
        any::<u64>(),
        ns,
        any::<[u8; 64]>(),
        params,
        any::<u64>(),
        any::<u32>(),
    )
        .prop_map(
            |(realtime_s, realtime_ns, entropy, params_len, archive_len, archive_crc)| Header {
                realtime_s,
                realtime_ns,
                entropy,
                params_len,
                archive_len,
                archive_crc,
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn handover_header_round_trip(header in handover_header(), flip in any::<u8>()) {
        handover::round_trip(&header, flip);
    }

    #[test]
    fn handover_decode_any_bytes(data in prop::collection::vec(any::<u8>(), 0..120)) {
        handover::decode_bytes(&data);
    }
}

/// Words rich in the verbs, and arguments up to past the bounds.
fn sched_words() -> impl Strategy<Value = sched_ctl::Words> {
    let word = prop::collection::vec(any::<u8>(), 0..12);
    let long = prop::collection::vec(any::<u8>(), 0..5000);
    let args = prop_oneof![
        4 => prop::collection::vec(word, 0..8),
        1 => prop::collection::vec(prop::collection::vec(any::<u8>(), 1..3), 60..70),
        1 => long.prop_map(|w| vec![w]),
    ];
    (any::<u8>(), args).prop_map(|(verb, args)| sched_ctl::Words { verb, args })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn sched_requests_round_trip_as_the_protocol_says(words in sched_words()) {
        sched_ctl::round_trip(&words);
    }

    #[test]
    fn sched_request_decoder_on_any_bytes(data in prop::collection::vec(prop_oneof![
        1 => Just(0u8), 1 => prop::sample::select(&b"stopartu"[..]), 1 => any::<u8>()], 0..40)) {
        sched_ctl::decode_bytes(&data);
    }

    #[test]
    fn sched_replies_round_trip(code in any::<u8>(), text in prop::collection::vec(any::<u8>(), 0..300)) {
        sched_ctl::reply_round_trip(code, &text);
    }
}

#[test]
fn fuzz_corpus_seeds_and_regressions_replay() {
    replay::all(
        &[
            "decode",
            "roundtrip",
            "resync",
            "encode",
            "msg",
            "control",
            "handover",
            "sched_ctl",
        ],
        |target, data| {
            props::replay(target, data)
                || control::replay(target, data)
                || handover::replay(target, data)
                || sched_ctl::replay(target, data)
        },
    );
}

#[test]
fn tag_dictionary_lists_every_known_tag_in_wire_order() {
    let dict = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/fuzz/dict/tags.dict"))
        .expect("fuzz/dict/tags.dict");
    let entries: Vec<&str> = dict
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .collect();
    for tag in Tag::KNOWN {
        let wire = tag.0.to_le_bytes().map(char::from);
        let entry = format!("{tag}=\"{}\"", String::from_iter(wire));
        assert!(entries.contains(&entry.as_str()), "missing {entry}");
    }
    assert_eq!(
        entries.len(),
        Tag::KNOWN.len() + 1,
        "one pad entry besides the tags"
    );
}

use guestinit::proto::splat::{Kind, Splat, MAX_LEN, TEXT_MAX};

proptest! {
    /// KWRN: every splat within the bound round-trips; one byte of text
    /// over it is refused both ways.
    #[test]
    fn splat_round_trip(
        kind in prop::sample::select(&Kind::ALL[..]),
        cut in any::<bool>(), seq in any::<u64>(), ts_usec in any::<u64>(),
        text in prop::collection::vec(any::<u8>(), 0..TEXT_MAX + 1),
    ) {
        let s = Splat { kind, cut, seq, ts_usec, text: &text };
        let mut buf = vec![0u8; MAX_LEN + 1];
        let n = s.encode(&mut buf).expect("within the bound");
        prop_assert_eq!(Splat::decode(&buf[..n]), Some(s));
        let long = vec![b'x'; TEXT_MAX + 1];
        prop_assert_eq!(Splat { text: &long, ..s }.encode(&mut buf), None);
        let mut over = buf[..n].to_vec();
        over.resize(MAX_LEN + 1, b'x');
        prop_assert_eq!(Splat::decode(&over), None);
    }
}
