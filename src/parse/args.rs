//! `/args`: the payload's argv, one argument per line. Every line ends with
//! `\n` except perhaps the last, which counts all the same; an empty line is
//! an empty argument. The first argument is the program to run.

/// The largest `/args` file the init takes, in bytes (one more byte of its
/// buffer holds the last argument's terminator).
pub const MAX_BYTES: usize = 32 * 1024 - 1;
/// The most arguments, program included, the init takes.
pub const MAX_ARGS: usize = 1024;

/// Why an `/args` file cannot become an argv.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ArgsError {
    /// The file is empty or its first line is: there is no program to run.
    NoProgram,
    /// Argument number `index` (0 = the program) holds a NUL byte, which an
    /// `execve` argument string cannot carry.
    Nul { index: usize },
}

impl core::fmt::Display for ArgsError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            ArgsError::NoProgram => write!(f, "/args names no program"),
            ArgsError::Nul { index } => write!(f, "argument {index} of /args holds a NUL byte"),
        }
    }
}

/// The arguments of a checked `/args` file, in order.
#[derive(Clone, Debug)]
pub struct Args<'a> {
    /// The unread lines; `None` once the last has been yielded.
    rest: Option<&'a [u8]>,
}

impl<'a> Iterator for Args<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        let rest = self.rest?;
        match rest.iter().position(|&b| b == b'\n') {
            Some(nl) => {
                let after = &rest[nl + 1..];
                // A final `\n` ends the last argument; it starts no new one.
                self.rest = (!after.is_empty()).then_some(after);
                Some(&rest[..nl])
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
    };
    if args.clone().next().is_none_or(|program| program.is_empty()) {
        return Err(ArgsError::NoProgram);
    }
    if let Some(index) = args.clone().position(|arg| arg.contains(&0)) {
        return Err(ArgsError::Nul { index });
    }
    Ok(args)
}

/// The number of arguments in `file` (which need not pass [`split`]'s checks).
pub fn count(file: &[u8]) -> usize {
    let newlines = file.iter().filter(|&&b| b == b'\n').count();
    newlines + usize::from(file.last().is_some_and(|&b| b != b'\n'))
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
    fn no_program_is_an_error() {
        assert_eq!(argv(b""), Err(ArgsError::NoProgram));
        assert_eq!(argv(b"\n"), Err(ArgsError::NoProgram));
        assert_eq!(argv(b"\nx\n"), Err(ArgsError::NoProgram));
        assert_eq!((count(b""), count(b"\n")), (0, 1));
    }

    #[test]
    fn nul_is_an_error_naming_the_argument() {
        assert_eq!(argv(b"\0"), Err(ArgsError::Nul { index: 0 }));
        assert_eq!(argv(b"/bin/x\na\nb\0c\n"), Err(ArgsError::Nul { index: 2 }));
    }

    #[test]
    fn count_matches_split() {
        for file in [&b"a"[..], b"a\n", b"a\n\n", b"a\nb", b"a\n\nb\n\n\n"] {
            assert_eq!(count(file), split(file).unwrap().count(), "{file:?}");
        }
    }
}
