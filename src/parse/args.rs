//! `/args`: the payload's argv, in one of two formats told apart by their
//! bytes. A file holding a NUL is NUL-terminated (what `guestinit pack`
//! writes: any argument without NUL survives, newlines included); a file
//! without one has one argument per line (what ktstr writes). Either way each
//! argument ends with its terminator except perhaps the last, which counts
//! all the same; an empty entry is an empty argument. The first is the program.

/// The largest `/args` file the init takes, in bytes (one more byte of its
/// buffer holds the last argument's terminator).
pub const MAX_BYTES: usize = 32 * 1024 - 1;
/// The most arguments, program included, the init takes.
pub const MAX_ARGS: usize = 1024;

/// Why an `/args` file cannot become an argv.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ArgsError {
    /// The file is empty or its first argument is: there is no program to run.
    NoProgram,
}

impl core::fmt::Display for ArgsError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            ArgsError::NoProgram => write!(f, "/args names no program"),
        }
    }
}

/// The byte that ends each argument of `file`: NUL when the file holds one
/// (an argument of the line format cannot, as execve could not take it),
/// else `\n`.
pub fn terminator(file: &[u8]) -> u8 {
    if file.contains(&0) {
        0
    } else {
        b'\n'
    }
}

/// The arguments of a checked `/args` file, in order.
#[derive(Clone, Debug)]
pub struct Args<'a> {
    /// The unread entries; `None` once the last has been yielded.
    rest: Option<&'a [u8]>,
    terminator: u8,
}

impl<'a> Iterator for Args<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        let rest = self.rest?;
        match rest.iter().position(|&b| b == self.terminator) {
            Some(end) => {
                let after = &rest[end + 1..];
                // A final terminator ends the last argument; it starts no new one.
                self.rest = (!after.is_empty()).then_some(after);
                Some(&rest[..end])
            }
            None => {
                self.rest = None;
                Some(rest)
            }
        }
    }
}

/// Checks `file` and returns its arguments.
pub fn split(file: &[u8]) -> Result<Args<'_>, ArgsError> {
    let args = Args {
        rest: (!file.is_empty()).then_some(file),
        terminator: terminator(file),
    };
    if args.clone().next().is_none_or(|program| program.is_empty()) {
        return Err(ArgsError::NoProgram);
    }
    Ok(args)
}

/// The number of arguments in `file` (which need not pass [`split`]'s checks).
pub fn count(file: &[u8]) -> usize {
    let end = terminator(file);
    let terminators = file.iter().filter(|&&b| b == end).count();
    terminators + usize::from(file.last().is_some_and(|&b| b != end))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(file: &[u8]) -> Result<Vec<&[u8]>, ArgsError> {
        split(file).map(Iterator::collect)
    }

    #[test]
    fn one_argument_per_line() {
        let want: Vec<&[u8]> = vec![b"/bin/sh", b"-c", b"echo a  b", b""];
        assert_eq!(argv(b"/bin/sh\n-c\necho a  b\n\n"), Ok(want.clone()));
        assert_eq!(count(b"/bin/sh\n-c\necho a  b\n\n"), 4);
        // The last line needs no newline.
        assert_eq!(argv(b"/bin/sh\n-c\necho a  b\n"), Ok(want[..3].to_vec()));
        assert_eq!(argv(b"/bin/sh\n-c\necho a  b"), Ok(want[..3].to_vec()));
        assert_eq!(count(b"/bin/sh\n-c\necho a  b"), 3);
        assert_eq!(argv(b"/bin/true"), Ok(vec![&b"/bin/true"[..]]));
    }

    #[test]
    fn nul_terminated_arguments_keep_their_newlines() {
        let want: Vec<&[u8]> = vec![b"/bin/sh", b"-c", b"echo a\necho b\n", b""];
        assert_eq!(argv(b"/bin/sh\0-c\0echo a\necho b\n\0\0"), Ok(want.clone()));
        assert_eq!(count(b"/bin/sh\0-c\0echo a\necho b\n\0\0"), 4);
        assert_eq!(
            argv(b"/bin/sh\0-c\0echo a\necho b\n"),
            Ok(want[..3].to_vec())
        );
        assert_eq!(argv(b"/bin/true\0"), Ok(vec![&b"/bin/true"[..]]));
        assert_eq!((terminator(b"a\nb"), terminator(b"a\nb\0")), (b'\n', 0));
    }

    #[test]
    fn no_program_is_an_error() {
        assert_eq!(argv(b""), Err(ArgsError::NoProgram));
        assert_eq!(argv(b"\n"), Err(ArgsError::NoProgram));
        assert_eq!(argv(b"\nx\n"), Err(ArgsError::NoProgram));
        assert_eq!(argv(b"\0"), Err(ArgsError::NoProgram));
        assert_eq!(argv(b"\0x\n"), Err(ArgsError::NoProgram));
        assert_eq!((count(b""), count(b"\n"), count(b"\0")), (0, 1, 1));
    }

    #[test]
    fn count_matches_split() {
        for file in [
            &b"a"[..],
            b"a\n",
            b"a\n\n",
            b"a\nb",
            b"a\n\nb\n\n\n",
            b"a\0b\nc",
            b"a\n\0",
        ] {
            assert_eq!(count(file), split(file).unwrap().count(), "{file:?}");
        }
    }
}
