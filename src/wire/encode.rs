//! Encoding frames into caller-provided buffers: nothing allocates.

use super::header::{Header, HEADER_LEN, MAX_PAYLOAD};
use super::tag::Tag;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EncodeError {
    /// The payload exceeds [`MAX_PAYLOAD`].
    PayloadTooLarge { len: usize },
    /// The output buffer cannot hold the frame.
    BufferTooSmall { needed: usize, available: usize },
}

impl core::fmt::Display for EncodeError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            EncodeError::PayloadTooLarge { len } => {
                write!(
                    f,
                    "payload of {len} bytes exceeds the {MAX_PAYLOAD}-byte cap"
                )
            }
            EncodeError::BufferTooSmall { needed, available } => {
                write!(f, "frame needs {needed} bytes, buffer holds {available}")
            }
        }
    }
}

/// Bytes a frame with a payload of `payload_len` bytes takes on the wire.
pub const fn encoded_len(payload_len: usize) -> usize {
    HEADER_LEN + payload_len
}

/// Writes the frame `tag` + `payload` at the start of `out`; returns its length.
pub fn encode(tag: Tag, payload: &[u8], out: &mut [u8]) -> Result<usize, EncodeError> {
    let needed = check(payload.len(), out.len())?;
    out[HEADER_LEN..needed].copy_from_slice(payload);
    out[..HEADER_LEN].copy_from_slice(&Header::for_payload(tag, payload).to_bytes());
    Ok(needed)
}

/// Completes a frame whose payload is already in place at
/// `buf[HEADER_LEN..HEADER_LEN + payload_len]` (read there straight from a
/// pipe, so the bytes are never copied); returns the frame's length.
pub fn write_header(tag: Tag, buf: &mut [u8], payload_len: usize) -> Result<usize, EncodeError> {
    let needed = check(payload_len, buf.len())?;
    let header = Header::for_payload(tag, &buf[HEADER_LEN..needed]);
    buf[..HEADER_LEN].copy_from_slice(&header.to_bytes());
    Ok(needed)
}

fn check(payload_len: usize, available: usize) -> Result<usize, EncodeError> {
    if payload_len > MAX_PAYLOAD {
        return Err(EncodeError::PayloadTooLarge { len: payload_len });
    }
    let needed = encoded_len(payload_len);
    if needed > available {
        return Err(EncodeError::BufferTooSmall { needed, available });
    }
    Ok(needed)
}
