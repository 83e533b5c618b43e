//! Lines of `/proc/kallsyms`, as kernel/kallsyms.c prints them:
//! `%px %c %s` for the kernel's own symbols and `%px %c %s\t[%s]` for a
//! module's. The line is given without its `\n`.

use super::num::parse_hex_u64;

/// One symbol.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Symbol<'a> {
    /// The address; 0 when `kptr_restrict` hides it.
    pub addr: u64,
    /// The `nm`-style type letter, e.g. `T` (global text), `t` (local text).
    pub kind: u8,
    pub name: &'a [u8],
    /// The module the symbol belongs to, `None` for the kernel image.
    pub module: Option<&'a [u8]>,
}

/// Parses one line; `None` unless it has exactly the kernel's shape.
pub fn parse_line(line: &[u8]) -> Option<Symbol<'_>> {
    let (addr, rest) = split_once(line, b' ')?;
    let (&kind, rest) = rest.split_first()?;
    let rest = rest.strip_prefix(b" ")?;
    let (name, module) = match split_once(rest, b'\t') {
        Some((name, tail)) => {
            let module = tail.strip_prefix(b"[")?.strip_suffix(b"]")?;
            if module.is_empty() || module.iter().any(|&b| !is_word_byte(b)) {
                return None;
            }
            (name, Some(module))
        }
        None => (rest, None),
    };
    if !kind.is_ascii_graphic() || name.is_empty() || name.iter().any(|&b| !is_word_byte(b)) {
        return None;
    }
    Some(Symbol {
        addr: parse_hex_u64(addr)?,
        kind,
        name,
        module,
    })
}

/// Bytes a symbol or module name may hold: anything but space, control
/// bytes and the module brackets.
fn is_word_byte(b: u8) -> bool {
    b > b' ' && b != 0x7f && b != b'[' && b != b']'
}

fn split_once(s: &[u8], sep: u8) -> Option<(&[u8], &[u8])> {
    let at = s.iter().position(|&b| b == sep)?;
    Some((&s[..at], &s[at + 1..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_symbol() {
        assert_eq!(
            parse_line(b"ffffffff81000000 T _text"),
            Some(Symbol {
                addr: 0xffff_ffff_8100_0000,
                kind: b'T',
                name: b"_text",
                module: None,
            })
        );
    }

    #[test]
    fn module_symbol() {
        assert_eq!(
            parse_line(b"ffffffffc0123000 t foo.cold\t[virtio_console]"),
            Some(Symbol {
                addr: 0xffff_ffff_c012_3000,
                kind: b't',
                name: b"foo.cold",
                module: Some(b"virtio_console"),
            })
        );
    }

    #[test]
    fn hidden_addresses_read_as_zero() {
        let sym = parse_line(b"0000000000000000 D page_offset_base").unwrap();
        assert_eq!((sym.addr, sym.name), (0, &b"page_offset_base"[..]));
    }

    #[test]
    fn malformed_lines_are_rejected() {
        for bad in [
            &b""[..],
            b"ffffffff81000000",
            b"ffffffff81000000 T",
            b"ffffffff81000000 T ",
            b"ffffffff81000000  T x",
            b"ffffffff81000000 TT x",
            b"ffffffff81000000 T a b",
            b"ffffffff81000000 T x\n",
            b"ffffffff81000000 T x\t[]",
            b"ffffffff81000000 T x\t[m",
            b"ffffffff81000000 T x\t[m] ",
            b"ffffffff81000000 T x\t[m]\t[n]",
            b"ffffffff81000000 T \t[m]",
            b"1ffffffff81000000 T x",
            b"zz T x",
        ] {
            assert_eq!(parse_line(bad), None, "{:?}", String::from_utf8_lossy(bad));
        }
    }
}
