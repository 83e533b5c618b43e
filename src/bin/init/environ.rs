//! The payload's environment and working directory: /.guestinit/env and
//! /.guestinit/cwd when the host wrote them, read into static buffers
//! (bounded, so an oversized file is an error, never a truncation).

use crate::small_file::read_file;
use core::ffi::CStr;
use guestinit::cell::TakeOnce;
use guestinit::fmt::ErrnoText;
use guestinit::proto::{self, limit};
use heapless::Vec;
use rustix::io::Errno;

/// Each file's bytes and one byte for a terminator the file may lack.
static ENV: TakeOnce<[u8; limit::ENV_BYTES + 1]> = TakeOnce::new([0; limit::ENV_BYTES + 1]);
static CWD: TakeOnce<[u8; limit::CWD_BYTES + 1]> = TakeOnce::new([0; limit::CWD_BYTES + 1]);

pub type Vars = Vec<&'static CStr, { limit::ENV_VARS }>;

/// What the payload starts with.
pub struct Environ {
    pub vars: Vars,
    pub cwd: Option<&'static CStr>,
}

/// Why the environment cannot be read.
pub enum Error {
    Read(&'static str, Errno),
    TooLong(&'static str, usize),
    TooMany,
}

impl core::fmt::Display for Error {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Error::Read(path, e) => write!(f, "read {path}: {}", ErrnoText(*e)),
            Error::TooLong(path, max) => write!(f, "{path} exceeds {max} bytes"),
            Error::TooMany => write!(
                f,
                "{} has more than {} variables",
                proto::path::ENV,
                limit::ENV_VARS
            ),
        }
    }
}

/// Reads both files; without them, the default environment and no chdir.
pub fn read() -> Result<Environ, Error> {
    let env = read_terminated(proto::path::ENV, ENV.take().expect("read once"))?;
    let cwd = read_terminated(proto::path::CWD, CWD.take().expect("read once"))?;
    let vars = match env {
        Some(text) => split(text)?,
        None => proto::DEFAULT_ENV.iter().copied().collect(),
    };
    Ok(Environ {
        vars,
        cwd: cwd.and_then(|c| CStr::from_bytes_until_nul(c).ok()),
    })
}

/// The file at `path` in `buf` with a NUL after it; `None` when absent.
fn read_terminated(path: &'static str, buf: &'static mut [u8]) -> Result<Option<&'static [u8]>, Error> {
    let room = buf.len() - 1;
    let len = match read_file(path.as_bytes(), &mut buf[..room]) {
        Err(Errno::NOENT) => return Ok(None),
        Err(e) => return Err(Error::Read(path, e)),
        Ok(None) => return Err(Error::TooLong(path, room)),
        Ok(Some(len)) => len,
    };
    buf[len] = 0;
    Ok(Some(&buf[..=len]))
}

/// The NUL-terminated entries of `text` (which ends in NUL), empty ones
/// skipped.
fn split(text: &'static [u8]) -> Result<Vars, Error> {
    let mut vars = Vars::new();
    let mut rest = text;
    while let Ok(var) = CStr::from_bytes_until_nul(rest) {
        rest = &rest[var.to_bytes().len() + 1..];
        if !var.is_empty() {
            vars.push(var).map_err(|_| Error::TooMany)?;
        }
    }
    Ok(vars)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leak(bytes: &[u8]) -> &'static [u8] {
        std::vec::Vec::leak(bytes.to_vec())
    }

    #[test]
    fn entries_split_at_nul_and_empty_ones_are_skipped() {
        let vars = split(leak(b"A=1\0\0B=two words\0")).ok().unwrap();
        assert_eq!(vars.as_slice(), [c"A=1", c"B=two words"]);
        let vars = split(leak(b"LAST=x\0")).ok().unwrap();
        assert_eq!(vars.as_slice(), [c"LAST=x"]);
    }

    #[test]
    fn more_variables_than_the_bound_are_refused() {
        let many = "V=1\0".repeat(limit::ENV_VARS + 1) + "\0";
        assert!(matches!(split(leak(many.as_bytes())), Err(Error::TooMany)));
        let fits = "V=1\0".repeat(limit::ENV_VARS) + "\0";
        assert!(split(leak(fits.as_bytes())).is_ok());
    }
}
