//! Properties of the handover's header (`proto::handover`): the round trip
//! (tests/codec_props.rs) and the decoder on any bytes, which the fuzz
//! target `handover` shares. Each panics when its property fails.

use guestinit::proto::handover::{Header, HeaderError, ENTROPY_LEN, MAGIC, PARAMS_MAX, VERSION};

/// Any header with valid fields (those out of range are brought in)
/// encodes and decodes to itself, and a change of any one byte of its
/// encoding is refused.
pub fn round_trip(header: &Header, flip: u8) {
    let header = Header {
        realtime_ns: header.realtime_ns % 1_000_000_000,
        params_len: header.params_len % (PARAMS_MAX as u32 + 1),
        ..*header
    };
    let bytes = header.encode();
    assert_eq!(Header::decode(&bytes), Ok(header));
    let flip = flip.max(1);
    for at in 0..Header::LEN {
        let mut bad = bytes;
        bad[at] ^= flip;
        assert!(
            Header::decode(&bad).is_err(),
            "byte {at} ^ {flip:#x} accepted"
        );
    }
}

/// The contract's checks, in its order, independently of `decode`.
fn model(bytes: &[u8; Header::LEN]) -> Result<(), HeaderError> {
    let word = |at: usize| u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap());
    if bytes[..4] != MAGIC {
        return Err(HeaderError::BadMagic);
    }
    if word(4) != VERSION {
        return Err(HeaderError::Version(word(4)));
    }
    let end = Header::LEN - 4;
    if crc32fast::hash(&bytes[..end]) != word(end) {
        return Err(HeaderError::BadCrc);
    }
    if word(20 + ENTROPY_LEN) as usize > PARAMS_MAX {
        return Err(HeaderError::ParamsTooLong(word(20 + ENTROPY_LEN)));
    }
    if word(16) >= 1_000_000_000 {
        return Err(HeaderError::BadTime);
    }
    Ok(())
}

/// Target `handover`: the init's decode of any bytes (padded or cut to a
/// header's length) never panics, agrees with the model, and what it
/// accepts encodes back to the same bytes. The same bytes given the magic,
/// version and CRC (so that the fields' checks are reached) as well.
pub fn decode_bytes(data: &[u8]) {
    let mut bytes = [0u8; Header::LEN];
    for (to, from) in bytes.iter_mut().zip(data) {
        *to = *from;
    }
    let mut sealed = bytes;
    sealed[..4].copy_from_slice(&MAGIC);
    sealed[4..8].copy_from_slice(&VERSION.to_le_bytes());
    let end = Header::LEN - 4;
    let crc = crc32fast::hash(&sealed[..end]);
    sealed[end..].copy_from_slice(&crc.to_le_bytes());
    for bytes in [bytes, sealed] {
        let decoded = Header::decode(&bytes);
        assert_eq!(decoded.map(|_| ()), model(&bytes));
        if let Ok(header) = decoded {
            assert_eq!(header.encode(), bytes);
        }
    }
}

/// Runs the property of fuzz target `target` on its raw input, decoded as
/// libFuzzer's harness decodes it; `false` if no such target.
pub fn replay(target: &str, data: &[u8]) -> bool {
    match target {
        "handover" => decode_bytes(data),
        _ => return false,
    }
    true
}
