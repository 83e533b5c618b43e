//! `--collect`: the files the init sends back after the payload, on the
//! bulk port (docs/PROTOCOL.md, collect). Each entry is a CENT frame (its
//! [`Entry`] header: root, kind, mode, mtime, size, path), then for a file
//! or a symlink its bytes (the link's target) in CDAT frames, then a CEND
//! frame ([`End`]) with the CRC-32 of those bytes, which the host checks
//! before it keeps the file. A directory has no CDAT and no CEND.
//!
//! Paths are relative to their root, components split by `/`; the host
//! takes them from an untrusted guest and writes nothing whose path
//! [`check_path`] refuses.

/// Entries (files, directories, links) sent at most, all roots together.
pub const MAX_ENTRIES: u32 = 10_000;
/// A relative path's bytes at most.
pub const MAX_PATH: usize = 1024;
/// Directories deep under a root the init descends at most.
pub const MAX_DEPTH: usize = 16;
/// Roots (`--collect` and `--collect-cores`) at most.
pub const MAX_ROOTS: usize = 8;
/// `--collect-max`'s default: the bytes of every file sent, all together.
pub const DEFAULT_MAX_BYTES: u64 = 256 << 20;

/// What an entry is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Kind {
    File = 1,
    Dir = 2,
    Symlink = 3,
}

impl Kind {
    fn from_u8(b: u8) -> Option<Kind> {
        Some(match b {
            1 => Kind::File,
            2 => Kind::Dir,
            3 => Kind::Symlink,
            _ => return None,
        })
    }
}

/// A CENT frame's payload.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Entry<'a> {
    /// The root's number: its record's place in /.guestinit/collect.
    pub root: u8,
    pub kind: Kind,
    /// The permission bits (07777).
    pub mode: u32,
    /// The modification time, seconds and nanoseconds since the epoch.
    pub mtime_s: i64,
    pub mtime_ns: u32,
    /// The bytes that follow in CDAT frames (0 for a directory).
    pub size: u64,
    /// Relative to the root; raw bytes, never trusted.
    pub path: &'a [u8],
}

/// Bytes of an entry before its path.
pub const ENTRY_FIXED: usize = 1 + 1 + 4 + 8 + 4 + 8;
/// Bytes of a CEND payload.
pub const END_LEN: usize = 5;

/// Why a frame's payload is not a record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Bad {
    /// Shorter than its fixed fields, or a CEND of another length.
    Length,
    /// A kind or status byte this host does not know.
    Kind,
}

impl core::fmt::Display for Bad {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            Bad::Length => "a record of the wrong length",
            Bad::Kind => "an unknown kind",
        })
    }
}

impl<'a> Entry<'a> {
    /// Writes the payload into `out`; its length, or None when it does not fit.
    pub fn encode(&self, out: &mut [u8]) -> Option<usize> {
        let len = ENTRY_FIXED + self.path.len();
        let out = out.get_mut(..len)?;
        out[0] = self.root;
        out[1] = self.kind as u8;
        out[2..6].copy_from_slice(&self.mode.to_le_bytes());
        out[6..14].copy_from_slice(&self.mtime_s.to_le_bytes());
        out[14..18].copy_from_slice(&self.mtime_ns.to_le_bytes());
        out[18..26].copy_from_slice(&self.size.to_le_bytes());
        out[ENTRY_FIXED..].copy_from_slice(self.path);
        Some(len)
    }

    pub fn decode(bytes: &'a [u8]) -> Result<Entry<'a>, Bad> {
        if bytes.len() < ENTRY_FIXED {
            return Err(Bad::Length);
        }
        let u32_at = |at: usize| {
            u32::from_le_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]])
        };
        let u64_at = |at: usize| {
            let mut b = [0u8; 8];
            b.copy_from_slice(&bytes[at..at + 8]);
            u64::from_le_bytes(b)
        };
        Ok(Entry {
            root: bytes[0],
            kind: Kind::from_u8(bytes[1]).ok_or(Bad::Kind)?,
            mode: u32_at(2),
            mtime_s: u64_at(6) as i64,
            mtime_ns: u32_at(14),
            size: u64_at(18),
            path: &bytes[ENTRY_FIXED..],
        })
    }
}

/// A CEND frame's payload: how the entry's bytes ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct End {
    /// The guest read all `size` bytes; false when it could not (it said
    /// why in a warning), and the host drops the file.
    pub complete: bool,
    /// CRC-32 (IEEE) of the CDAT bytes sent.
    pub crc: u32,
}

impl End {
    pub fn encode(&self) -> [u8; END_LEN] {
        let mut out = [0u8; END_LEN];
        out[0] = u8::from(!self.complete);
        out[1..].copy_from_slice(&self.crc.to_le_bytes());
        out
    }

    pub fn decode(bytes: &[u8]) -> Result<End, Bad> {
        let [status, a, b, c, d] = *bytes else {
            return Err(Bad::Length);
        };
        let complete = match status {
            0 => true,
            1 => false,
            _ => return Err(Bad::Kind),
        };
        Ok(End {
            complete,
            crc: u32::from_le_bytes([a, b, c, d]),
        })
    }
}

/// Why a path is refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BadPath {
    Empty,
    TooLong,
    /// Starts with `/`.
    Absolute,
    /// An empty component (`a//b`, a trailing `/`), `.` or `..`.
    Component,
    Nul,
}

impl core::fmt::Display for BadPath {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            BadPath::Empty => "an empty path",
            BadPath::TooLong => "a path over the length bound",
            BadPath::Absolute => "an absolute path",
            BadPath::Component => "a path with an empty, `.` or `..` component",
            BadPath::Nul => "a path with a NUL byte",
        })
    }
}

/// Checks a path from the guest: relative, at most [`MAX_PATH`] bytes,
/// every component a plain name. A checked path names something under its
/// root, if no component on the way is a symlink (the host's writer opens
/// each with O_NOFOLLOW).
pub fn check_path(path: &[u8]) -> Result<(), BadPath> {
    if path.is_empty() {
        return Err(BadPath::Empty);
    }
    if path.len() > MAX_PATH {
        return Err(BadPath::TooLong);
    }
    if path[0] == b'/' {
        return Err(BadPath::Absolute);
    }
    if path.contains(&0) {
        return Err(BadPath::Nul);
    }
    match path
        .split(|&b| b == b'/')
        .any(|c| c.is_empty() || c == b"." || c == b"..")
    {
        true => Err(BadPath::Component),
        false => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_entry_and_an_end_read_back() {
        let e = Entry {
            root: 2,
            kind: Kind::Symlink,
            mode: 0o4755,
            mtime_s: -5,
            mtime_ns: 999_999_999,
            size: u64::MAX,
            path: b"a b/c\nd",
        };
        let mut buf = [0u8; 64];
        let n = e.encode(&mut buf).unwrap();
        assert_eq!(n, ENTRY_FIXED + 7);
        assert_eq!(Entry::decode(&buf[..n]), Ok(e));
        assert_eq!(e.encode(&mut buf[..n - 1]), None);
        assert_eq!(Entry::decode(&buf[..ENTRY_FIXED - 1]), Err(Bad::Length));
        buf[1] = 9;
        assert_eq!(Entry::decode(&buf[..n]), Err(Bad::Kind));
        let end = End {
            complete: false,
            crc: 0xdead_beef,
        };
        assert_eq!(End::decode(&end.encode()), Ok(end));
        assert_eq!(End::decode(&[0; 4]), Err(Bad::Length));
    }

    #[test]
    fn only_plain_relative_paths_pass() {
        for ok in [&b"a"[..], b"a b/c\nd", b"..a/b..", b".hidden"] {
            assert_eq!(check_path(ok), Ok(()), "{ok:?}");
        }
        assert_eq!(check_path(b""), Err(BadPath::Empty));
        assert_eq!(check_path(b"/etc/passwd"), Err(BadPath::Absolute));
        for bad in [&b".."[..], b"a/../../x", b"./a", b"a//b", b"a/", b"a/."] {
            assert_eq!(check_path(bad), Err(BadPath::Component), "{bad:?}");
        }
        assert_eq!(check_path(b"a\0b"), Err(BadPath::Nul));
        assert_eq!(check_path(&[b'a'; MAX_PATH + 1]), Err(BadPath::TooLong));
    }
}
