//! The frame codec of the bulk port: a 16-byte little-endian header
//! (tag, length, CRC-32 of the payload, zero pad) followed by the payload.
//! See docs/PROTOCOL.md for the contract.

mod crc;
mod decode;
mod encode;
mod header;
pub mod msg;
mod prefix;
pub mod slice16;
mod tag;

pub use decode::{Decoder, Event};
pub use encode::{encode, encoded_len, write_header, EncodeError};
pub use header::{Extend, Header, HEADER_LEN, MAX_PAYLOAD};
pub use tag::Tag;

#[cfg(test)]
mod tests;
