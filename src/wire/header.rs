//! One frame's header as it stands on the wire, and the frame's bounds.

use super::slice16;
use super::tag::Tag;

/// A CRC-32 continued over more bytes: `extend(crc(A), B) = crc(A ++ B)`.
pub type Extend = fn(u32, &[u8]) -> u32;

/// Bytes in a frame header.
pub const HEADER_LEN: usize = 16;

/// The largest payload the host accepts (the ktstr host's cap).
pub const MAX_PAYLOAD: usize = 256 * 1024;

/// The header of one frame, as it stands on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    pub tag: Tag,
    pub len: u32,
    pub crc: u32,
    pub pad: u32,
}

impl Header {
    /// The header for `payload` under `tag`. Only the init encodes, so this
    /// hashes with [`slice16`], not crc32fast.
    pub fn for_payload(tag: Tag, payload: &[u8]) -> Header {
        Header {
            tag,
            len: payload.len() as u32,
            crc: slice16::hash(payload),
            pad: 0,
        }
    }

    pub fn to_bytes(self) -> [u8; HEADER_LEN] {
        let mut out = [0u8; HEADER_LEN];
        out[0..4].copy_from_slice(&self.tag.0.to_le_bytes());
        out[4..8].copy_from_slice(&self.len.to_le_bytes());
        out[8..12].copy_from_slice(&self.crc.to_le_bytes());
        out[12..16].copy_from_slice(&self.pad.to_le_bytes());
        out
    }

    pub fn from_bytes(b: &[u8; HEADER_LEN]) -> Header {
        let word = |i: usize| u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
        Header {
            tag: Tag(word(0)),
            len: word(4),
            crc: word(8),
            pad: word(12),
        }
    }
}
