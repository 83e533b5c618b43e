//! The handover (docs/PROTOCOL.md, "The handover port"): what the host
//! sends first on [`super::HANDOVER_PORT`] when it hands a restored (or
//! just-snapshotted) VM its run. A fixed [`Header`], then `params_len`
//! bytes of init keys (the kernel command line's format, read by
//! [`super::boot::BootParams::parse`]), then `archive_len` bytes of an
//! uncompressed newc archive (`parse::newc`) of the payload's files.
//!
//! The host encodes and the init decodes, so each hashes as its side does
//! elsewhere: `encode` with crc32fast, `decode` with [`slice16`], which
//! keeps crc32fast's 16 KiB table out of the init.

use core::fmt;

use crate::wire::slice16;

/// The header's first bytes.
pub const MAGIC: [u8; 4] = *b"GIHO";
/// The layout's version; a header of another is refused.
pub const VERSION: u32 = 1;
/// Bytes of fresh entropy, which the init credits to the kernel's pool.
pub const ENTROPY_LEN: usize = 64;
/// The params' bytes at most (the kernel command line's size, with room).
pub const PARAMS_MAX: usize = 4096;

/// The handover's header: little-endian fields after [`MAGIC`] and
/// [`VERSION`], then the CRC-32 (IEEE) of every byte before it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    /// The host's wall clock (CLOCK_REALTIME) when it sent the header.
    pub realtime_s: u64,
    pub realtime_ns: u32,
    pub entropy: [u8; ENTROPY_LEN],
    /// Bytes of init keys after the header, at most [`PARAMS_MAX`].
    pub params_len: u32,
    /// Bytes of the newc archive after the params.
    pub archive_len: u64,
    /// The CRC-32 (IEEE) of the archive's bytes.
    pub archive_crc: u32,
}

/// Why a header is refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HeaderError {
    BadMagic,
    Version(u32),
    BadCrc,
    ParamsTooLong(u32),
    /// `realtime_ns` is 10^9 or more.
    BadTime,
}

impl fmt::Display for HeaderError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HeaderError::BadMagic => f.write_str("the handover does not begin with GIHO"),
            HeaderError::Version(v) => {
                write!(f, "handover version {v}: this init reads version {VERSION}")
            }
            HeaderError::BadCrc => f.write_str("the handover header's CRC does not match"),
            HeaderError::ParamsTooLong(len) => {
                write!(f, "{len} bytes of handover params: at most {PARAMS_MAX}")
            }
            HeaderError::BadTime => f.write_str("the handover's nanoseconds are 10^9 or more"),
        }
    }
}

/// Offsets of the fields in the encoding.
const AT_VERSION: usize = 4;
const AT_S: usize = 8;
const AT_NS: usize = 16;
const AT_ENTROPY: usize = 20;
const AT_PARAMS: usize = AT_ENTROPY + ENTROPY_LEN;
const AT_ARCHIVE_LEN: usize = AT_PARAMS + 4;
const AT_ARCHIVE_CRC: usize = AT_ARCHIVE_LEN + 8;
const AT_CRC: usize = AT_ARCHIVE_CRC + 4;

/// `N` bytes of `bytes` from `at`; the offsets are constants within it.
fn field<const N: usize>(bytes: &[u8; Header::LEN], at: usize) -> [u8; N] {
    let mut out = [0; N];
    if let Some(from) = bytes.get(at..at + N) {
        out.copy_from_slice(from);
    }
    out
}

impl Header {
    /// Bytes of the encoding: 104.
    pub const LEN: usize = AT_CRC + 4;

    /// The header's bytes, as the host sends them (CRC by crc32fast).
    pub fn encode(&self) -> [u8; Header::LEN] {
        let mut out = [0u8; Header::LEN];
        let (body, crc) = out.split_at_mut(AT_CRC);
        let fields: [&[u8]; 8] = [
            &MAGIC,
            &VERSION.to_le_bytes(),
            &self.realtime_s.to_le_bytes(),
            &self.realtime_ns.to_le_bytes(),
            &self.entropy,
            &self.params_len.to_le_bytes(),
            &self.archive_len.to_le_bytes(),
            &self.archive_crc.to_le_bytes(),
        ];
        let mut rest = &mut body[..];
        for bytes in fields {
            let (to, after) = rest.split_at_mut(bytes.len());
            to.copy_from_slice(bytes);
            rest = after;
        }
        crc.copy_from_slice(&crc32fast::hash(body).to_le_bytes());
        out
    }

    /// The header in `bytes`, as the init reads it (CRC by slice16). The
    /// version is checked before the CRC: another version's layout may
    /// put its CRC elsewhere.
    pub fn decode(bytes: &[u8; Header::LEN]) -> Result<Header, HeaderError> {
        if field::<4>(bytes, 0) != MAGIC {
            return Err(HeaderError::BadMagic);
        }
        let version = u32::from_le_bytes(field(bytes, AT_VERSION));
        if version != VERSION {
            return Err(HeaderError::Version(version));
        }
        let (body, _) = bytes.split_at(AT_CRC);
        if slice16::hash(body) != u32::from_le_bytes(field(bytes, AT_CRC)) {
            return Err(HeaderError::BadCrc);
        }
        let header = Header {
            realtime_s: u64::from_le_bytes(field(bytes, AT_S)),
            realtime_ns: u32::from_le_bytes(field(bytes, AT_NS)),
            entropy: field(bytes, AT_ENTROPY),
            params_len: u32::from_le_bytes(field(bytes, AT_PARAMS)),
            archive_len: u64::from_le_bytes(field(bytes, AT_ARCHIVE_LEN)),
            archive_crc: u32::from_le_bytes(field(bytes, AT_ARCHIVE_CRC)),
        };
        if header.params_len as usize > PARAMS_MAX {
            return Err(HeaderError::ParamsTooLong(header.params_len));
        }
        if header.realtime_ns >= 1_000_000_000 {
            return Err(HeaderError::BadTime);
        }
        Ok(header)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Header {
        Header {
            realtime_s: 0x0102_0304_0506_0708,
            realtime_ns: 999_999_999,
            entropy: core::array::from_fn(|i| i as u8),
            params_len: PARAMS_MAX as u32,
            archive_len: 0x1_0000_0000,
            archive_crc: 0xdead_beef,
        }
    }

    #[test]
    fn the_bytes_are_the_protocols() {
        let bytes = sample().encode();
        assert_eq!(Header::LEN, 104);
        assert_eq!(&bytes[..8], b"GIHO\x01\0\0\0");
        assert_eq!(&bytes[8..16], &[8, 7, 6, 5, 4, 3, 2, 1]);
        assert_eq!(&bytes[16..20], &999_999_999u32.to_le_bytes());
        assert_eq!(bytes[20], 0);
        assert_eq!(bytes[83], 63);
        assert_eq!(&bytes[84..88], &4096u32.to_le_bytes());
        assert_eq!(&bytes[88..96], &[0, 0, 0, 0, 1, 0, 0, 0]);
        assert_eq!(&bytes[96..100], &0xdead_beefu32.to_le_bytes());
        assert_eq!(bytes[100..], crc32fast::hash(&bytes[..100]).to_le_bytes());
        assert_eq!(Header::decode(&bytes), Ok(sample()));
    }

    #[test]
    fn each_refusal() {
        let good = sample().encode();
        let mut magic = good;
        magic[3] = b'0';
        assert_eq!(Header::decode(&magic), Err(HeaderError::BadMagic));
        let mut version = good;
        version[4] = 2;
        assert_eq!(Header::decode(&version), Err(HeaderError::Version(2)));
        let mut crc = good;
        crc[50] ^= 1;
        assert_eq!(Header::decode(&crc), Err(HeaderError::BadCrc));
        let long = Header {
            params_len: PARAMS_MAX as u32 + 1,
            ..sample()
        };
        assert_eq!(
            Header::decode(&long.encode()),
            Err(HeaderError::ParamsTooLong(4097))
        );
        let time = Header {
            realtime_ns: 1_000_000_000,
            ..sample()
        };
        assert_eq!(Header::decode(&time.encode()), Err(HeaderError::BadTime));
        assert_eq!(
            std::format!("{}", HeaderError::Version(2)),
            "handover version 2: this init reads version 1"
        );
    }
}
