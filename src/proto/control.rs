//! The host's control messages to the init (docs/PROTOCOL.md): on the
//! control port in shell and exec modes, on hvc0 in test mode. Each is one
//! kind byte and that kind's fixed payload; the host encodes them with
//! [`Message::encode`], the init decodes them with [`Decoder`], which takes
//! a stream split anywhere and passes unknown kinds over.

use core::ops::Deref;

/// Ask for a sched_ext debug dump (SysRq D) into the trace. No payload.
pub const DUMP: u8 = 0xD1;
/// Stop the run in order, as a stop signal to PID 1 does. No payload.
pub const STOP: u8 = 0xD3;
/// The terminal's size: rows then columns, each u16 little-endian.
pub const RESIZE: u8 = b'W';
/// Bytes of a RESIZE message, the kind byte included.
pub const RESIZE_LEN: usize = 5;

/// One message from the host.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Message {
    Dump,
    Stop,
    Resize { rows: u16, cols: u16 },
}

impl Message {
    /// The longest message's bytes.
    pub const MAX_LEN: usize = RESIZE_LEN;

    /// The message's bytes on the wire.
    pub fn encode(self) -> Encoded {
        let mut bytes = [0u8; Self::MAX_LEN];
        let len = match self {
            Message::Dump => {
                bytes[0] = DUMP;
                1
            }
            Message::Stop => {
                bytes[0] = STOP;
                1
            }
            Message::Resize { rows, cols } => {
                bytes[0] = RESIZE;
                bytes[1..3].copy_from_slice(&rows.to_le_bytes());
                bytes[3..5].copy_from_slice(&cols.to_le_bytes());
                RESIZE_LEN
            }
        };
        Encoded { bytes, len }
    }
}

/// An encoded message: dereferences to its bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Encoded {
    bytes: [u8; Message::MAX_LEN],
    len: usize,
}

impl Deref for Encoded {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        &self.bytes[..self.len]
    }
}

/// Messages from a byte stream that may split them anywhere.
#[derive(Debug, Default)]
pub struct Decoder {
    /// The RESIZE message begun so far (`len` bytes of it).
    partial: [u8; RESIZE_LEN],
    len: usize,
}

impl Decoder {
    /// The message `byte` completes, if any; a byte that starts no known
    /// kind is passed over. Inside a RESIZE every byte is its size's.
    pub fn push(&mut self, byte: u8) -> Option<Message> {
        if self.len == 0 {
            match byte {
                DUMP => return Some(Message::Dump),
                STOP => return Some(Message::Stop),
                RESIZE => {}
                _ => return None,
            }
        }
        self.partial[self.len] = byte;
        self.len += 1;
        if self.len < RESIZE_LEN {
            return None;
        }
        self.len = 0;
        let p = &self.partial;
        Some(Message::Resize {
            rows: u16::from_le_bytes([p[1], p[2]]),
            cols: u16::from_le_bytes([p[3], p[4]]),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bytes_are_the_protocols() {
        assert_eq!(&*Message::Dump.encode(), [0xD1]);
        assert_eq!(&*Message::Stop.encode(), [0xD3]);
        let resize = Message::Resize {
            rows: 0x0102,
            cols: 0x0304,
        };
        assert_eq!(&*resize.encode(), b"W\x02\x01\x04\x03");
    }

    #[test]
    fn wake_bytes_inside_a_resize_are_its_size_and_unknown_bytes_are_skipped() {
        let stream = [b'?', DUMP, RESIZE, DUMP, 0, STOP, 0, STOP];
        let mut decoder = Decoder::default();
        let got: std::vec::Vec<Message> = stream.iter().filter_map(|&b| decoder.push(b)).collect();
        let size = Message::Resize {
            rows: 0xD1,
            cols: 0xD3,
        };
        assert_eq!(got, [Message::Dump, size, Message::Stop]);
    }
}
