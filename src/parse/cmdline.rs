//! The kernel command line (`/proc/cmdline`), split as the kernel's own
//! `next_arg()` (kernel/params.c) splits it, so the init reads the same
//! parameters the kernel saw.
//!
//! - Whitespace (the kernel's `isspace`: space, `\t\n\v\f\r` and 0xA0)
//!   separates parameters, except inside double quotes.
//! - The key ends at the first `=` after the key's first byte.
//! - A value that starts with `"` loses that quote and a `"` ending the
//!   parameter: `key="a b"` gives `a b`.
//! - A parameter that starts with `"` loses that quote and a `"` ending it:
//!   `"key=a b"` gives `key` = `a b`. Other quotes stay as they are.
//! - A NUL ends the line, as it ends the kernel's C string.
//! - A bare `--` ends the kernel's parameters: what follows went to init as
//!   its argv. [`Cmdline::iter`] and [`Cmdline::get`] stop there, so a
//!   `key=value` meant for init never reads as a kernel parameter;
//!   [`Cmdline::after_dashes`] gives the rest.

/// One parameter: `key`, `key=value` or `key=` (an empty value).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Param<'a> {
    pub key: &'a [u8],
    /// `None` for a bare flag.
    pub value: Option<&'a [u8]>,
}

/// A kernel command line, borrowed.
#[derive(Clone, Copy, Debug)]
pub struct Cmdline<'a> {
    text: &'a [u8],
}

impl<'a> Cmdline<'a> {
    pub fn new(text: &'a [u8]) -> Self {
        let end = text.iter().position(|&b| b == 0).unwrap_or(text.len());
        Cmdline { text: &text[..end] }
    }

    /// The kernel's parameters, in order, up to a bare `--`.
    pub fn iter(&self) -> Params<'a> {
        Params {
            rest: skip_spaces(self.text),
            after_dashes: None,
        }
    }

    /// The value of the last `key` parameter: `Some(None)` for a bare flag,
    /// `None` if absent. Keys compare byte for byte.
    pub fn get(&self, key: &[u8]) -> Option<Option<&'a [u8]>> {
        self.iter().filter(|p| p.key == key).last().map(|p| p.value)
    }

    /// The text after a bare `--` (the init's own arguments), if there is one.
    pub fn after_dashes(&self) -> Option<&'a [u8]> {
        let mut params = self.iter();
        while params.next().is_some() {}
        params.after_dashes
    }
}

/// Iterator over the parameters of a [`Cmdline`].
#[derive(Clone, Debug)]
pub struct Params<'a> {
    /// Unparsed text, starting at a parameter or empty.
    rest: &'a [u8],
    after_dashes: Option<&'a [u8]>,
}

impl<'a> Iterator for Params<'a> {
    type Item = Param<'a>;

    fn next(&mut self) -> Option<Param<'a>> {
        if self.rest.is_empty() {
            return None;
        }
        let (param, rest) = next_arg(self.rest);
        if param.key == b"--" && param.value.is_none() {
            self.after_dashes = Some(rest);
            self.rest = &[];
            return None;
        }
        self.rest = rest;
        Some(param)
    }
}

/// Splits the parameter at the start of `args` (non-empty, no leading
/// space) from the rest, which starts at the next parameter or is empty.
fn next_arg(args: &[u8]) -> (Param<'_>, &[u8]) {
    let quoted = args[0] == b'"';
    let body = if quoted { &args[1..] } else { args };
    let mut in_quote = quoted;
    let mut equals = None;
    let mut end = 0;
    while end < body.len() {
        let b = body[end];
        if is_space(b) && !in_quote {
            break;
        }
        // The kernel tests `equals == 0`, so a `=` at offset 0 is no split.
        if equals.is_none() && b == b'=' && end > 0 {
            equals = Some(end);
        }
        if b == b'"' {
            in_quote = !in_quote;
        }
        end += 1;
    }
    let token = &body[..end];
    let rest = skip_spaces(body.get(end + 1..).unwrap_or(&[]));
    // Whether the token's last byte, a quote, was already stripped.
    let mut stripped = false;
    let param = match equals {
        None => Param {
            key: token,
            value: None,
        },
        Some(eq) => {
            let mut value = &token[eq + 1..];
            if value.first() == Some(&b'"') {
                value = &value[1..];
                if let Some(v) = value.strip_suffix(b"\"") {
                    value = v;
                }
                // Even when that quote was the value's opening one.
                stripped = token.last() == Some(&b'"');
            }
            Param {
                key: &token[..eq],
                value: Some(value),
            }
        }
    };
    if !quoted || stripped || token.last() != Some(&b'"') {
        return (param, rest);
    }
    let param = match param.value {
        Some(v) => Param {
            value: Some(&v[..v.len() - 1]),
            ..param
        },
        None => Param {
            key: &param.key[..param.key.len() - 1],
            ..param
        },
    };
    (param, rest)
}

fn skip_spaces(s: &[u8]) -> &[u8] {
    let n = s.iter().take_while(|&&b| is_space(b)).count();
    &s[n..]
}

/// The kernel's `isspace` (lib/ctype.c), which counts Latin-1 NBSP.
fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r' | 0xa0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(text: &[u8]) -> Vec<(String, Option<String>)> {
        let s = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
        Cmdline::new(text)
            .iter()
            .map(|p| (s(p.key), p.value.map(s)))
            .collect()
    }

    fn p(key: &str, value: Option<&str>) -> (String, Option<String>) {
        (key.into(), value.map(Into::into))
    }

    #[test]
    fn splits_flags_and_values() {
        assert_eq!(
            params(b"  console=ttyS0 panic=-1\trdinit=/init quiet empty=\n"),
            vec![
                p("console", Some("ttyS0")),
                p("panic", Some("-1")),
                p("rdinit", Some("/init")),
                p("quiet", None),
                p("empty", Some("")),
            ]
        );
        assert!(params(b"").is_empty());
        assert!(params(b" \n").is_empty());
    }

    #[test]
    fn quotes_group_and_are_stripped_like_the_kernel() {
        assert_eq!(
            params(br#"a="x y" "b=u v" "flag" c=d"e f"g h="#),
            vec![
                p("a", Some("x y")),
                p("b", Some("u v")),
                p("flag", None),
                p("c", Some("d\"e f\"g")),
                p("h", Some("")),
            ]
        );
        // An opening quote that is also the last byte strips once.
        assert_eq!(params(br#"k=""#), vec![p("k", Some(""))]);
        assert_eq!(params(br#""k=""#), vec![p("k", Some(""))]);
        assert_eq!(params(br#"""#), vec![p("", None)]);
        // An unterminated quote runs to the end of the line.
        assert_eq!(params(br#"k="a b"#), vec![p("k", Some("a b"))]);
    }

    #[test]
    fn key_split_skips_a_leading_equals() {
        assert_eq!(params(b"=a=b ="), vec![p("=a", Some("b")), p("=", None)]);
    }

    #[test]
    fn double_dash_ends_kernel_params() {
        let line = Cmdline::new(b"quiet mode=test -- mode=shell x\n");
        let keys: Vec<_> = line.iter().map(|p| p.key).collect();
        assert_eq!(keys, vec![&b"quiet"[..], b"mode"]);
        assert_eq!(line.get(b"mode"), Some(Some(&b"test"[..])));
        assert_eq!(line.after_dashes(), Some(&b"mode=shell x\n"[..]));
        assert_eq!(Cmdline::new(b"a --=1").after_dashes(), None);
        assert_eq!(Cmdline::new(b"a --").after_dashes(), Some(&b""[..]));
    }

    #[test]
    fn get_takes_the_last_occurrence() {
        let line = Cmdline::new(b"mode=a debug mode=b");
        assert_eq!(line.get(b"mode"), Some(Some(&b"b"[..])));
        assert_eq!(line.get(b"debug"), Some(None));
        assert_eq!(line.get(b"absent"), None);
    }

    #[test]
    fn nul_ends_the_line() {
        assert_eq!(params(b"a=1\0b=2"), vec![p("a", Some("1"))]);
    }
}
