//! Formatting into fixed buffers: the init's messages are built without a heap.

use core::fmt;

/// A `fmt::Write` over a byte slice that keeps what fits and remembers
/// that the rest was cut.
pub struct SliceWriter<'a> {
    buf: &'a mut [u8],
    len: usize,
    truncated: bool,
}

impl<'a> SliceWriter<'a> {
    pub fn new(buf: &'a mut [u8]) -> SliceWriter<'a> {
        SliceWriter {
            buf,
            len: 0,
            truncated: false,
        }
    }

    pub fn written(&self) -> &[u8] {
        &self.buf[..self.len]
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn truncated(&self) -> bool {
        self.truncated
    }

    /// Appends raw bytes (not necessarily UTF-8), cutting what does not fit.
    pub fn push_bytes(&mut self, bytes: &[u8]) {
        let room = self.buf.len() - self.len;
        let n = bytes.len().min(room);
        self.buf[self.len..self.len + n].copy_from_slice(&bytes[..n]);
        self.len += n;
        self.truncated |= n < bytes.len();
    }

    /// Replaces the last bytes with `marker` if the text was cut, so a
    /// reader sees that it was; the marker itself must fit the buffer.
    pub fn mark_truncation(&mut self, marker: &[u8]) {
        if self.truncated && marker.len() <= self.buf.len() {
            let at = self.len.min(self.buf.len() - marker.len());
            self.buf[at..at + marker.len()].copy_from_slice(marker);
            self.len = at + marker.len();
        }
    }
}

impl fmt::Write for SliceWriter<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        self.push_bytes(s.as_bytes());
        // Never an error: a cut message is still worth writing.
        Ok(())
    }
}

/// Lossy display of bytes that should be text: invalid UTF-8 shows as U+FFFD.
pub struct Lossy<'a>(pub &'a [u8]);

impl fmt::Display for Lossy<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for chunk in self.0.utf8_chunks() {
            f.write_str(chunk.valid())?;
            if !chunk.invalid().is_empty() {
                f.write_str("\u{fffd}")?;
            }
        }
        Ok(())
    }
}

/// The C library's text for the errnos a user can cause when starting a
/// program, opening a device or mounting a disk; others print as `errno N`.
pub struct ErrnoText(pub rustix::io::Errno);

impl fmt::Display for ErrnoText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use rustix::io::Errno;
        let text = match self.0 {
            Errno::PERM => "Operation not permitted",
            Errno::NOENT => "No such file or directory",
            Errno::NOEXEC => "Exec format error",
            Errno::NOMEM => "Cannot allocate memory",
            Errno::ACCESS => "Permission denied",
            Errno::BUSY => "Device or resource busy",
            Errno::EXIST => "File exists",
            Errno::NOTDIR => "Not a directory",
            Errno::ISDIR => "Is a directory",
            Errno::INVAL => "Invalid argument",
            Errno::MFILE => "Too many open files",
            Errno::TXTBSY => "Text file busy",
            Errno::NOSPC => "No space left on device",
            Errno::TOOBIG => "Argument list too long",
            Errno::NAMETOOLONG => "File name too long",
            Errno::LOOP => "Too many levels of symbolic links",
            Errno::NODEV => "No such device",
            Errno::NOSYS => "Function not implemented",
            Errno::LIBBAD => "Accessing a corrupted shared library",
            Errno::OPNOTSUPP => "Operation not supported",
            Errno::ROFS => "Read-only file system",
            Errno::UCLEAN => "Structure needs cleaning",
            Errno::IO => "Input/output error",
            Errno::NXIO => "No such device or address",
            other => return write!(f, "errno {}", other.raw_os_error()),
        };
        f.write_str(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::fmt::Write;

    #[test]
    fn keeps_what_fits_and_marks_the_cut() {
        let mut buf = [0u8; 12];
        let mut w = SliceWriter::new(&mut buf);
        w.write_str("PANIC: a long message").unwrap();
        assert!(w.truncated());
        w.mark_truncation(b"...");
        assert_eq!(w.written(), b"PANIC: a ...");
    }

    #[test]
    fn errno_text_matches_the_c_library() {
        let mut buf = [0u8; 64];
        let mut w = SliceWriter::new(&mut buf);
        write!(
            w,
            "{}; {}",
            ErrnoText(rustix::io::Errno::NOENT),
            ErrnoText(rustix::io::Errno::from_raw_os_error(200))
        )
        .unwrap();
        assert_eq!(w.written(), b"No such file or directory; errno 200");
    }

    #[test]
    fn a_disks_errnos_are_named_as_the_c_library_names_them() {
        use rustix::io::Errno;
        for (errno, want) in [
            (Errno::ROFS, "Read-only file system"),
            (Errno::NOSPC, "No space left on device"),
            (Errno::BUSY, "Device or resource busy"),
            (Errno::UCLEAN, "Structure needs cleaning"),
            (Errno::INVAL, "Invalid argument"),
            (Errno::NOENT, "No such file or directory"),
            (Errno::ACCESS, "Permission denied"),
            (Errno::IO, "Input/output error"),
            (Errno::NODEV, "No such device"),
            (Errno::NXIO, "No such device or address"),
        ] {
            let mut buf = [0u8; 64];
            let mut w = SliceWriter::new(&mut buf);
            write!(w, "{}", ErrnoText(errno)).unwrap();
            assert_eq!(
                w.written(),
                want.as_bytes(),
                "errno {}",
                errno.raw_os_error()
            );
        }
    }

    #[test]
    fn lossy_replaces_invalid_bytes() {
        let mut buf = [0u8; 32];
        let mut w = SliceWriter::new(&mut buf);
        write!(w, "{}", Lossy(b"ok\xffok")).unwrap();
        assert_eq!(w.written(), "ok\u{fffd}ok".as_bytes());
        assert!(!w.truncated());
    }
}
