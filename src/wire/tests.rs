use super::msg::{Exit, KernelAddrs, Timeline, WaitStatus};
use super::*;

fn frame(tag: Tag, payload: &[u8]) -> Vec<u8> {
    let mut out = vec![0u8; encoded_len(payload.len())];
    let n = encode(tag, payload, &mut out).unwrap();
    assert_eq!(n, out.len());
    out
}

/// Decodes `stream` fed in chunks of `chunk` bytes, then finishes it.
fn decode_all(stream: &[u8], chunk: usize, cap: usize) -> Vec<String> {
    let mut storage = vec![0u8; cap];
    let mut dec = Decoder::new(&mut storage);
    let mut out = Vec::new();
    let mut record = |ev: Event<'_>| {
        out.push(match ev {
            Event::Frame { tag, payload } => format!("{tag}:{}", String::from_utf8_lossy(payload)),
            Event::CrcMismatch { tag, len, .. } => format!("crc {tag} {len}"),
            Event::Skipped { bytes } => format!("skip {bytes}"),
        })
    };
    for piece in stream.chunks(chunk.max(1)) {
        let mut input = piece;
        loop {
            let (n, ev) = dec.push(input);
            input = &input[n..];
            let done = ev.is_none() && input.is_empty();
            if let Some(ev) = ev {
                record(ev);
            }
            if done {
                break;
            }
        }
    }
    while let Some(ev) = dec.finish() {
        record(ev);
    }
    out
}

#[test]
fn exit_tag_is_little_endian_on_the_wire() {
    assert_eq!(Tag::EXIT.0, 0x4558_4954);
    let bytes = frame(Tag::EXIT, &3i32.to_le_bytes());
    assert_eq!(&bytes[0..4], &[0x54, 0x49, 0x58, 0x45]);
    assert_eq!(&bytes[4..8], &[4, 0, 0, 0]);
    assert_eq!(&bytes[8..12], &crc32fast::hash(&[3, 0, 0, 0]).to_le_bytes());
    assert_eq!(&bytes[12..16], &[0, 0, 0, 0]);
    assert_eq!(&bytes[16..], &[3, 0, 0, 0]);
}

#[test]
fn core_tag_values_match_the_contract() {
    let expect = [
        (Tag::SRDY, 0x5352_4459),
        (Tag::KADR, 0x4b41_4452),
        (Tag::LIFE, 0x4c49_4645),
        (Tag::SOUT, 0x534f_5554),
        (Tag::SERR, 0x5345_5252),
        (Tag::SCLG, 0x5343_4c47),
        (Tag::DMSG, 0x444d_5347),
        (Tag::SCST, 0x5343_5354),
        (Tag::SCPP, 0x5343_5050),
        (Tag::SCDX, 0x5343_4458),
        (Tag::EXCX, 0x4558_4358),
        (Tag::PROB, 0x5052_4f42),
    ];
    for (tag, value) in expect {
        assert_eq!(tag.0, value, "{tag}");
    }
    let mut seen = Tag::KNOWN.to_vec();
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), Tag::KNOWN.len(), "two tags share a value");
}

#[test]
fn every_ktstr_tag_is_known_and_rawo_is_not() {
    // The message types of ktstr 0.50's src/vmm/wire.rs, by value.
    let ktstr: [u32; 39] = [
        0x5354_494d,
        0x5354_454e,
        0x5343_5354,
        0x5343_5050,
        0x5343_5252,
        0x5343_454e,
        0x4558_4954,
        0x5445_5354,
        0x5343_4458,
        0x4352_5348,
        0x504d_4554,
        0x5052_4157,
        0x5750_5246,
        0x5750_5243,
        0x5444_4252,
        0x5444_4241,
        0x534e_5251,
        0x534e_5250,
        0x5352_4459,
        0x424d_5259,
        0x5244_5754,
        0x5343_5357,
        0x4154_5441,
        0x534f_5554,
        0x5345_5252,
        0x5343_4c47,
        0x5353_544f,
        0x5353_5445,
        0x5353_4f46,
        0x5353_4546,
        0x4c49_4645,
        0x4b41_4452,
        0x4b42_4944,
        0x5750_5247,
        0x4558_4358,
        0x444d_5347,
        0x5052_4f42,
        0x4b4f_5251,
        0x4b4f_5250,
    ];
    for value in ktstr {
        assert!(Tag(value).is_known(), "{}", Tag(value));
    }
    let ours = [
        Tag::TIME,
        Tag::WAIT,
        Tag::EACK,
        Tag::HRDY,
        Tag::KWRN,
        Tag::CENT,
        Tag::CDAT,
        Tag::CEND,
    ];
    for tag in &ours {
        assert!(!ktstr.contains(&tag.0), "{tag} is one of ktstr's");
    }
    assert_eq!(Tag::KNOWN.len(), ktstr.len() + ours.len());
    assert!(!Tag::from_ascii(*b"RAWO").is_known());
}

#[test]
fn encode_reports_small_buffers_and_oversized_payloads() {
    let mut small = [0u8; 19];
    assert_eq!(
        encode(Tag::SOUT, b"abcd", &mut small),
        Err(EncodeError::BufferTooSmall {
            needed: 20,
            available: 19
        })
    );
    let big = vec![0u8; MAX_PAYLOAD + 1];
    let mut out = vec![0u8; encoded_len(big.len())];
    assert_eq!(
        encode(Tag::SOUT, &big, &mut out),
        Err(EncodeError::PayloadTooLarge {
            len: MAX_PAYLOAD + 1
        })
    );
}

#[test]
fn write_header_completes_a_payload_in_place() {
    let mut buf = [0u8; 32];
    buf[HEADER_LEN..HEADER_LEN + 5].copy_from_slice(b"hello");
    let n = write_header(Tag::SERR, &mut buf, 5).unwrap();
    assert_eq!(&buf[..n], frame(Tag::SERR, b"hello").as_slice());
}

#[test]
fn any_chunking_decodes_the_same() {
    let mut stream = frame(Tag::SOUT, b"one");
    stream.extend(frame(Tag::SERR, b""));
    stream.extend(frame(Tag::SOUT, &[b'x'; 300]));
    stream.extend(frame(Tag::EXIT, &0i32.to_le_bytes()));
    let whole = decode_all(&stream, stream.len(), 1024);
    assert_eq!(whole.len(), 4);
    assert_eq!(whole[0], "SOUT:one");
    for chunk in [1, 2, 7, 16, 17, 100] {
        assert_eq!(decode_all(&stream, chunk, 1024), whole, "chunk {chunk}");
    }
}

#[test]
fn garbage_is_skipped_and_reported() {
    let mut stream = b"\x00\xffboot noise\n".to_vec();
    stream.extend(frame(Tag::SOUT, b"after"));
    let events = decode_all(&stream, 3, 1024);
    assert_eq!(events.last().unwrap(), "SOUT:after");
    let skipped: usize = events
        .iter()
        .filter_map(|e| e.strip_prefix("skip "))
        .map(|n| n.parse::<usize>().unwrap())
        .sum();
    assert_eq!(skipped, 13);
}

#[test]
fn crc_mismatch_is_reported_and_the_next_frame_recovered() {
    let mut stream = frame(Tag::SOUT, b"corrupted");
    stream[HEADER_LEN] ^= 1;
    stream.extend(frame(Tag::SOUT, b"intact"));
    let events = decode_all(&stream, 5, 1024);
    assert_eq!(events[0], "crc SOUT 9");
    assert_eq!(events.last().unwrap(), "SOUT:intact");
}

#[test]
fn resync_lands_on_every_known_tag_including_kadr_time_and_wait() {
    for &tag in Tag::KNOWN {
        let payload = match tag {
            Tag::KADR => KernelAddrs::default().to_bytes().to_vec(),
            Tag::TIME => Timeline::entry(msg::Mark::InitEntry, 9).to_vec(),
            Tag::WAIT => WaitStatus {
                exit: Exit::Exited(0),
                user_us: 1,
                system_us: 2,
                max_rss_kib: 3,
                init_hwm_kib: 4,
            }
            .to_bytes()
            .to_vec(),
            _ => b"x".to_vec(),
        };
        let wanted = frame(tag, &payload);
        // Noise, then a frame whose bad CRC spans the wanted frame's start.
        let mut liar = frame(Tag::SOUT, &[b'L'; 40]);
        liar[HEADER_LEN] ^= 1;
        let mut stream = b"\x00noise SOUT".to_vec();
        stream.extend(&liar[..HEADER_LEN + 3]);
        stream.extend(&wanted);
        let events = decode_all(&stream, 7, 256);
        let want = format!("{tag}:{}", String::from_utf8_lossy(&payload));
        assert_eq!(events.last(), Some(&want), "{tag}: {events:?}");
    }
}

#[test]
fn oversized_length_is_garbage_not_a_stall() {
    let mut stream = frame(Tag::SOUT, &[b'a'; 100]);
    stream.extend(frame(Tag::SOUT, b"small"));
    // A 64-byte buffer cannot hold the first frame: it must be skipped.
    let events = decode_all(&stream, 4, 64);
    assert_eq!(events.last().unwrap(), "SOUT:small");
    assert!(events.iter().all(|e| !e.starts_with("SOUT:a")));
}

#[test]
fn truncated_tail_is_resolved_at_finish() {
    let mut stream = frame(Tag::SOUT, b"whole");
    let tail = frame(Tag::SOUT, b"cut short");
    stream.extend(&tail[..tail.len() - 3]);
    let events = decode_all(&stream, 8, 1024);
    assert_eq!(events[0], "SOUT:whole");
    let skipped: usize = events[1..]
        .iter()
        .map(|e| e.strip_prefix("skip ").unwrap().parse::<usize>().unwrap())
        .sum();
    assert_eq!(skipped, tail.len() - 3);
}

#[test]
fn kernel_addrs_round_trip_with_unknowns() {
    let k = KernelAddrs {
        phys_base: Some(0),
        page_offset_base: 0xffff_8880_0000_0000,
        text: None,
    };
    let b = k.to_bytes();
    assert_eq!(&b[0..8], &1u64.to_le_bytes());
    assert_eq!(&b[16..24], &0u64.to_le_bytes());
    assert_eq!(KernelAddrs::from_bytes(&b), Some(k));
}

#[test]
fn life_phases_have_ktstrs_numbers() {
    let numbers: Vec<u8> = msg::Phase::ALL.iter().map(|&p| p as u8).collect();
    assert_eq!(numbers, [1, 2, 3, 4, 5, 6]);
    assert_eq!(msg::Phase::from_u8(5), Some(msg::Phase::WorkloadDispatched));
    assert_eq!(msg::Phase::from_u8(6), Some(msg::Phase::SchedulerAttached));
    assert_eq!(msg::Phase::from_u8(0), None);
    assert_eq!(msg::Phase::from_u8(7), None);
}

#[test]
fn wait_status_round_trips_and_gives_shell_codes() {
    let killed = WaitStatus {
        exit: Exit::Signaled {
            signal: 9,
            core_dumped: true,
        },
        user_us: 5,
        system_us: 6,
        max_rss_kib: 1024,
        init_hwm_kib: 7,
    };
    assert_eq!(killed.exit.shell_code(), 137);
    assert_eq!(WaitStatus::from_bytes(&killed.to_bytes()), Some(killed));
    let exited = WaitStatus {
        exit: Exit::Exited(3),
        ..killed
    };
    assert_eq!(exited.exit.shell_code(), 3);
    assert_eq!(WaitStatus::from_bytes(&exited.to_bytes()), Some(exited));
    let mut unknown_kind = exited.to_bytes();
    unknown_kind[0] = 2;
    assert_eq!(WaitStatus::from_bytes(&unknown_kind), None);
}

#[test]
fn timeline_entries_read_back() {
    let mut payload = Vec::new();
    payload.extend(Timeline::entry(msg::Mark::InitEntry, 7));
    payload.extend(Timeline::entry(msg::Mark::PayloadExit, u64::MAX));
    payload.push(0xaa);
    let got: Vec<_> = Timeline::entries(&payload).collect();
    assert_eq!(got, vec![(1, 7), (4, u64::MAX)]);
}
