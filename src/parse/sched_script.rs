//! Lines of the `/sched_enable` and `/sched_disable` scripts. The init runs
//! them without a shell, so it accepts only the one command they use,
//! `echo VALUE > /path` (plus blank lines and `#` comments), and rejects
//! any other shell syntax rather than give it a meaning a shell would not.
//!
//! VALUE is one word, bare or in single or double quotes; the caller writes
//! it followed by `\n`, as `echo` would. A comment may follow the path.

/// One write the script asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Write<'a> {
    /// The bytes to write, quotes removed, without echo's `\n`.
    pub value: &'a [u8],
    /// The absolute path of the file to write.
    pub path: &'a [u8],
}

/// Why a script line is not a write the init can perform.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ScriptError {
    /// The command is not `echo`.
    NotEcho,
    /// `echo` has no value before the redirection.
    MissingValue,
    /// A quote opens and never closes.
    UnterminatedQuote,
    /// The value is not followed by `>` (e.g. it has several words).
    MissingRedirect,
    /// Nothing follows the `>`.
    MissingPath,
    /// The path does not start with `/`.
    RelativePath,
    /// Words follow the path.
    TrailingText,
    /// Shell syntax beyond this subset: expansions, other redirections,
    /// pipes, echo options, words glued to quotes.
    Unsupported,
}

impl core::fmt::Display for ScriptError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            ScriptError::NotEcho => "not an echo command",
            ScriptError::MissingValue => "echo without a value",
            ScriptError::UnterminatedQuote => "unterminated quote",
            ScriptError::MissingRedirect => "expected `> /path` after the value",
            ScriptError::MissingPath => "no path after `>`",
            ScriptError::RelativePath => "the path is not absolute",
            ScriptError::TrailingText => "text after the path",
            ScriptError::Unsupported => "shell syntax beyond `echo VALUE > /path`",
        })
    }
}

/// Parses one line (without its `\n`): `Ok(None)` for a blank line or a
/// comment, `Ok(Some(write))` for an echo.
pub fn parse_line(line: &[u8]) -> Result<Option<Write<'_>>, ScriptError> {
    let line = trim_start(line);
    if line.is_empty() || line[0] == b'#' {
        return Ok(None);
    }
    let rest = match line.strip_prefix(b"echo") {
        Some([]) => return Err(ScriptError::MissingValue),
        Some(rest) if is_blank(rest[0]) => trim_start(rest),
        _ => return Err(ScriptError::NotEcho),
    };
    let (value, rest) = value(rest)?;
    let rest = trim_start(rest);
    let rest = match rest.split_first() {
        Some((b'>', rest)) => rest,
        _ => return Err(ScriptError::MissingRedirect),
    };
    if rest.first() == Some(&b'>') {
        // `>>` appends; a sysfs write needs no such nuance, but a file would.
        return Err(ScriptError::Unsupported);
    }
    let rest = trim_start(rest);
    let (path, rest) = rest.split_at(word_len(rest));
    match path.first() {
        None => return Err(ScriptError::MissingPath),
        Some(b'/') => {}
        Some(_) => return Err(ScriptError::RelativePath),
    }
    if path.iter().any(|&b| is_special(b)) {
        return Err(ScriptError::Unsupported);
    }
    let rest = trim_start(rest);
    if !rest.is_empty() && rest[0] != b'#' {
        return Err(ScriptError::TrailingText);
    }
    Ok(Some(Write { value, path }))
}

/// Splits the value at the start of `s` (no leading blank) from the rest.
fn value(s: &[u8]) -> Result<(&[u8], &[u8]), ScriptError> {
    let (value, rest) = match s.first() {
        None => return Err(ScriptError::MissingValue),
        Some(&q @ (b'\'' | b'"')) => {
            let body = &s[1..];
            let close = body
                .iter()
                .position(|&b| b == q)
                .ok_or(ScriptError::UnterminatedQuote)?;
            let value = &body[..close];
            // Inside double quotes a shell still expands `$` and `` ` ``; in
            // any quotes, some echos (dash's) read `\` escapes and others
            // do not; and quotes do not stop echo from taking `-n` as option.
            let expands = |b: &u8| *b == b'\\' || (q == b'"' && matches!(b, b'$' | b'`'));
            if value.iter().any(expands) || is_echo_option(value) {
                return Err(ScriptError::Unsupported);
            }
            (value, &body[close + 1..])
        }
        Some(b'>') => return Err(ScriptError::MissingValue),
        // `echo #x` is an echo of nothing followed by a comment.
        Some(b'#') => return Err(ScriptError::Unsupported),
        Some(_) => {
            // Ends at a blank: `1>/x` is one word, rejected for its `>`, as
            // a shell would read it as a redirection of descriptor 1.
            let (value, rest) = s.split_at(word_len(s));
            if value.iter().any(|&b| is_special(b)) || is_echo_option(value) {
                return Err(ScriptError::Unsupported);
            }
            return Ok((value, rest));
        }
    };
    // `'a'b` would glue two words into one; `'a'>/x` is a plain redirection.
    match rest.first() {
        Some(&b) if !is_blank(b) && b != b'>' => Err(ScriptError::Unsupported),
        _ => Ok((value, rest)),
    }
}

/// Bytes up to the next blank.
fn word_len(s: &[u8]) -> usize {
    s.iter().take_while(|&&b| !is_blank(b)).count()
}

fn trim_start(s: &[u8]) -> &[u8] {
    &s[s.iter().take_while(|&&b| is_blank(b)).count()..]
}

/// Blanks between words; `\r` too, so a script saved with CRLF still reads.
fn is_blank(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r')
}

/// Bytes a shell would give a meaning in a bare word.
fn is_special(b: u8) -> bool {
    matches!(
        b,
        b'$' | b'`'
            | b'\\'
            | b'\''
            | b'"'
            | b';'
            | b'|'
            | b'&'
            | b'<'
            | b'>'
            | b'('
            | b')'
            | b'*'
            | b'?'
            | b'['
            | b'{'
            | b'~'
    )
}

/// `-n`, `-e`, `-E` and their combinations are options to echo, not values.
fn is_echo_option(word: &[u8]) -> bool {
    match word.split_first() {
        Some((b'-', opts)) => !opts.is_empty() && opts.iter().all(|b| b"neE".contains(b)),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write<'a>(value: &'a str, path: &'a str) -> Result<Option<Write<'a>>, ScriptError> {
        Ok(Some(Write {
            value: value.as_bytes(),
            path: path.as_bytes(),
        }))
    }

    #[test]
    fn echo_lines() {
        let path = "/sys/kernel/debug/sched/migration_cost_ns";
        let cases: &[&[u8]] = &[
            b"echo 0 > /sys/kernel/debug/sched/migration_cost_ns",
            b"  echo\t0\t>/sys/kernel/debug/sched/migration_cost_ns  ",
            b"echo '0' > /sys/kernel/debug/sched/migration_cost_ns # why",
            b"echo \"0\">/sys/kernel/debug/sched/migration_cost_ns\r",
        ];
        for line in cases {
            assert_eq!(
                parse_line(line),
                write("0", path),
                "{:?}",
                String::from_utf8_lossy(line)
            );
        }
        assert_eq!(parse_line(b"echo 'a b$' > /x"), write("a b$", "/x"));
        assert_eq!(parse_line(b"echo \"\" > /x"), write("", "/x"));
        assert_eq!(parse_line(b"echo 0-3,a#b > /x"), write("0-3,a#b", "/x"));
    }

    #[test]
    fn blanks_and_comments_are_skipped() {
        for line in [&b""[..], b"   \t", b"# comment", b"  #echo 1 > /x"] {
            assert_eq!(parse_line(line), Ok(None));
        }
    }

    #[test]
    fn errors_are_typed() {
        use ScriptError::*;
        let cases: &[(&[u8], ScriptError)] = &[
            (b"printf 1 > /x", NotEcho),
            (b"echo1 > /x", NotEcho),
            (b"echo", MissingValue),
            (b"echo   ", MissingValue),
            (b"echo > /x", MissingValue),
            (b"echo 'abc > /x", UnterminatedQuote),
            (b"echo \"abc > /x", UnterminatedQuote),
            (b"echo 1", MissingRedirect),
            (b"echo 1 2 > /x", MissingRedirect),
            (b"echo 1 >", MissingPath),
            (b"echo 1 >  ", MissingPath),
            (b"echo 1 > x", RelativePath),
            (b"echo 1 > 'x'", RelativePath),
            (b"echo 1 > /x y", TrailingText),
            (b"echo 1 >> /x", Unsupported),
            (b"echo 1>/x", Unsupported),
            (b"echo $V > /x", Unsupported),
            (b"echo \"$V\" > /x", Unsupported),
            (b"echo 'a'b > /x", Unsupported),
            (b"echo -n 1 > /x", Unsupported),
            (b"echo '-n' > /x", Unsupported),
            (b"echo 'a\\tb' > /x", Unsupported),
            (b"echo #1 > /x", Unsupported),
            (b"echo 1 > /x;reboot", Unsupported),
            (b"echo 1 > /x'y'", Unsupported),
        ];
        for (line, err) in cases {
            assert_eq!(
                parse_line(line),
                Err(*err),
                "{:?}",
                String::from_utf8_lossy(line)
            );
        }
    }

    #[test]
    fn a_dash_value_that_is_no_option_is_kept() {
        assert_eq!(parse_line(b"echo -1 > /x"), write("-1", "/x"));
        assert_eq!(parse_line(b"echo - > /x"), write("-", "/x"));
    }
}
