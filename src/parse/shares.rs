//! `/.guestinit/shares`: the host directories the guest mounts over
//! virtiofs (`run --share`), one record per share in mount order, each of
//! three NUL-terminated fields: the virtio-fs tag, the absolute guest
//! directory, and `rw` or `ro`. A file rather than a kernel command-line
//! key: a path may hold spaces, quotes and commas, and up to 4095 bytes,
//! which the command line (2 KiB, no quote inside a value) cannot carry.
//! The fields end in NUL, so the init mounts straight from its buffer.

use core::ffi::CStr;

/// The mode field of a writable share, and of a read-only one; the init
/// takes anything but [`RW`] as read-only, the safe side.
pub const RW: &[u8] = b"rw";
pub const RO: &[u8] = b"ro";

/// A virtio-fs tag's bytes at most (the device's config field).
pub const TAG_MAX: usize = 36;

/// One share, as the host writes it and the init mounts it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Share<'a> {
    /// The tag QEMU's `vhost-user-fs-pci` device carries: `mount -t virtiofs TAG`.
    pub tag: &'a CStr,
    /// Where the guest mounts it: an absolute path.
    pub dir: &'a CStr,
    pub read_only: bool,
}

/// Why a record is not a share.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Bad {
    /// The file ends inside a record: its last fields are missing.
    Truncated,
    /// A tag that is empty or longer than [`TAG_MAX`].
    Tag,
    /// A directory that is not absolute.
    Dir,
}

impl core::fmt::Display for Bad {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            Bad::Truncated => "a record is cut short",
            Bad::Tag => "a tag is empty or too long",
            Bad::Dir => "a directory is not absolute",
        })
    }
}

impl Share<'_> {
    /// The record for this share, as [`split`] reads it back.
    pub fn write_to(&self, out: &mut impl Extend<u8>) {
        let mode = if self.read_only { RO } else { RW };
        for field in [self.tag.to_bytes(), self.dir.to_bytes(), mode] {
            out.extend(field.iter().copied());
            out.extend([0]);
        }
    }
}

/// The records of `file`, in order: a bad one is an `Err` and the next
/// record is read after it; a cut-short end is the last item.
pub fn split(file: &[u8]) -> Shares<'_> {
    Shares { rest: file }
}

/// The iterator of [`split`].
#[derive(Clone, Debug)]
pub struct Shares<'a> {
    rest: &'a [u8],
}

impl<'a> Shares<'a> {
    /// The next NUL-terminated field.
    fn field(&mut self) -> Option<&'a CStr> {
        let field = CStr::from_bytes_until_nul(self.rest).ok()?;
        self.rest = &self.rest[field.to_bytes().len() + 1..];
        Some(field)
    }
}

impl<'a> Iterator for Shares<'a> {
    type Item = Result<Share<'a>, Bad>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.rest.is_empty() {
            return None;
        }
        let (Some(tag), Some(dir), Some(mode)) = (self.field(), self.field(), self.field()) else {
            self.rest = &[];
            return Some(Err(Bad::Truncated));
        };
        let tag_len = tag.to_bytes().len();
        Some(if tag_len == 0 || tag_len > TAG_MAX {
            Err(Bad::Tag)
        } else if dir.to_bytes().first() != Some(&b'/') {
            Err(Bad::Dir)
        } else {
            Ok(Share {
                tag,
                dir,
                read_only: mode.to_bytes() != RW,
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::vec::Vec;

    #[test]
    fn records_read_back_in_order_and_anything_but_rw_is_read_only() {
        let usr = Share {
            tag: c"share0",
            dir: c"/usr",
            read_only: true,
        };
        let data = Share {
            tag: c"share1",
            dir: c"/srv/a b,c",
            read_only: false,
        };
        let mut file = Vec::new();
        usr.write_to(&mut file);
        data.write_to(&mut file);
        assert_eq!(file, b"share0\0/usr\0ro\0share1\0/srv/a b,c\0rw\0");
        let read: Vec<_> = split(&file).collect();
        assert_eq!(read, [Ok(usr), Ok(data)]);
        let odd: Vec<_> = split(b"t\0/x\0RW\0").collect();
        assert_eq!(
            odd,
            [Ok(Share {
                tag: c"t",
                dir: c"/x",
                read_only: true
            })]
        );
        assert_eq!(split(b"").count(), 0);
    }

    #[test]
    fn a_bad_record_is_an_error_and_the_next_is_still_read() {
        let file = b"\0/x\0rw\0t\0rel\0rw\0t\0/y\0rw\0t\0/z";
        let read: Vec<_> = split(file).collect();
        let ok = Share {
            tag: c"t",
            dir: c"/y",
            read_only: false,
        };
        assert_eq!(
            read,
            [Err(Bad::Tag), Err(Bad::Dir), Ok(ok), Err(Bad::Truncated)]
        );
        let long = [&[b'a'; TAG_MAX + 1][..], b"\0/x\0rw\0"].concat();
        assert_eq!(split(&long).next(), Some(Err(Bad::Tag)));
    }
}
