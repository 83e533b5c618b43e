//! Overflow-checked number parsing shared by the line parsers.
//!
//! Both take the digits only (no sign, no `0x`, no surrounding space) and
//! reject an empty input, a stray byte or a value past `u64::MAX`.

/// Parses hexadecimal digits (either case) into a `u64`.
pub fn parse_hex_u64(s: &[u8]) -> Option<u64> {
    parse_radix(s, 16)
}

/// Parses decimal digits into a `u64`.
pub fn parse_dec_u64(s: &[u8]) -> Option<u64> {
    parse_radix(s, 10)
}

fn parse_radix(s: &[u8], radix: u32) -> Option<u64> {
    if s.is_empty() {
        return None;
    }
    s.iter().try_fold(0u64, |acc, &b| {
        let digit = (b as char).to_digit(radix)?;
        acc.checked_mul(radix as u64)?.checked_add(digit as u64)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_reads_kernel_addresses() {
        assert_eq!(
            parse_hex_u64(b"ffffffff81000000"),
            Some(0xffff_ffff_8100_0000)
        );
        assert_eq!(parse_hex_u64(b"00000000000A"), Some(10));
        assert_eq!(parse_hex_u64(b"0"), Some(0));
    }

    #[test]
    fn hex_rejects_overflow_and_strays() {
        assert_eq!(parse_hex_u64(b"ffffffffffffffff"), Some(u64::MAX));
        assert_eq!(parse_hex_u64(b"1ffffffffffffffff"), None);
        // Leading zeros do not count towards overflow.
        assert_eq!(parse_hex_u64(b"00000000000000000001"), Some(1));
        for bad in [&b""[..], b"0x10", b"12 ", b"-1", b"g", b"+1"] {
            assert_eq!(parse_hex_u64(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn dec_reads_and_checks_overflow() {
        assert_eq!(parse_dec_u64(b"18446744073709551615"), Some(u64::MAX));
        assert_eq!(parse_dec_u64(b"18446744073709551616"), None);
        assert_eq!(parse_dec_u64(b"0042"), Some(42));
        for bad in [&b""[..], b"1a", b" 1", b"-0", b"\xff"] {
            assert_eq!(parse_dec_u64(bad), None, "{bad:?}");
        }
    }
}
