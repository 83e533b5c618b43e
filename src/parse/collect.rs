//! `/.guestinit/collect`: what the init sends back after the payload
//! (`run --collect`, `--collect-cores`), as records of two NUL-ended
//! fields, a key and its value: `max` with the total bytes in decimal,
//! `dir` with an absolute guest directory, `cores` with the directory the
//! kernel's core dumps go to (collected too). Roots are numbered in file
//! order, `dir` and `cores` alike: the number an entry frame carries
//! (`proto::collect`). A file, as for shares: a path may hold any byte but
//! NUL, which the kernel command line cannot carry.

use super::num::parse_dec_u64;
use core::ffi::CStr;

pub const MAX: &[u8] = b"max";
pub const DIR: &[u8] = b"dir";
pub const CORES: &[u8] = b"cores";

/// One record, as the host writes it and the init reads it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Record<'a> {
    /// The bound on the bytes of every file sent, all roots together.
    MaxBytes(u64),
    /// A directory whose tree is sent back.
    Dir(&'a CStr),
    /// A directory sent back like [`Record::Dir`], which `core_pattern` names.
    Cores(&'a CStr),
}

/// Why a record is not one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Bad {
    /// The file ends inside a record.
    Truncated,
    /// A key this init does not know.
    Key,
    /// A `max` that is not a decimal u64.
    Number,
    /// A directory that is not absolute.
    Dir,
}

impl core::fmt::Display for Bad {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            Bad::Truncated => "a record is cut short",
            Bad::Key => "an unknown key",
            Bad::Number => "a bound that is not a number",
            Bad::Dir => "a directory is not absolute",
        })
    }
}

impl Record<'_> {
    /// The record's bytes, as [`split`] reads them back.
    pub fn write_to(&self, out: &mut impl Extend<u8>) {
        let mut digits = [0u8; 20];
        let (key, value): (&[u8], &[u8]) = match self {
            Record::MaxBytes(n) => (MAX, decimal(*n, &mut digits)),
            Record::Dir(dir) => (DIR, dir.to_bytes()),
            Record::Cores(dir) => (CORES, dir.to_bytes()),
        };
        for field in [key, value] {
            out.extend(field.iter().copied());
            out.extend([0]);
        }
    }
}

/// `n` in decimal, in the tail of `buf`.
fn decimal(mut n: u64, buf: &mut [u8; 20]) -> &[u8] {
    let mut at = buf.len();
    loop {
        at -= 1;
        buf[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            return &buf[at..];
        }
    }
}

/// The records of `file`, in order: a bad one is an `Err` and the next is
/// read after it; a cut-short end is the last item.
pub fn split(file: &[u8]) -> Records<'_> {
    Records { rest: file }
}

/// The iterator of [`split`].
#[derive(Clone, Debug)]
pub struct Records<'a> {
    rest: &'a [u8],
}

impl<'a> Records<'a> {
    fn field(&mut self) -> Option<&'a CStr> {
        let field = CStr::from_bytes_until_nul(self.rest).ok()?;
        self.rest = &self.rest[field.to_bytes().len() + 1..];
        Some(field)
    }
}

impl<'a> Iterator for Records<'a> {
    type Item = Result<Record<'a>, Bad>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.rest.is_empty() {
            return None;
        }
        let (Some(key), Some(value)) = (self.field(), self.field()) else {
            self.rest = &[];
            return Some(Err(Bad::Truncated));
        };
        let absolute = |dir: &'a CStr| match dir.to_bytes().first() {
            Some(b'/') => Ok(dir),
            _ => Err(Bad::Dir),
        };
        Some(match key.to_bytes() {
            MAX => parse_dec_u64(value.to_bytes())
                .map(Record::MaxBytes)
                .ok_or(Bad::Number),
            DIR => absolute(value).map(Record::Dir),
            CORES => absolute(value).map(Record::Cores),
            _ => Err(Bad::Key),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::vec::Vec;

    #[test]
    fn records_read_back_in_order() {
        let records = [
            Record::MaxBytes(0),
            Record::Dir(c"/tmp/out dir"),
            Record::Cores(c"/tmp/cores"),
            Record::MaxBytes(u64::MAX),
        ];
        let mut file = Vec::new();
        for r in &records {
            r.write_to(&mut file);
        }
        assert_eq!(&file[..22], b"max\x000\0dir\0/tmp/out dir");
        let read: Vec<_> = split(&file).collect();
        assert_eq!(read, records.map(Ok));
    }

    #[test]
    fn bad_records_are_errors_and_the_next_is_still_read() {
        let file = b"max\0-1\0dir\0rel\0who\0/x\0max\x0099999999999999999999\0dir\0/y\0cores";
        let read: Vec<_> = split(file).collect();
        assert_eq!(
            read,
            [
                Err(Bad::Number),
                Err(Bad::Dir),
                Err(Bad::Key),
                Err(Bad::Number),
                Ok(Record::Dir(c"/y")),
                Err(Bad::Truncated)
            ]
        );
    }
}
