//! CRC-32 (IEEE) arithmetic: the CRC of a range of bytes from the CRCs of
//! two prefixes, so that checking a candidate frame costs a few polynomial
//! multiplications instead of hashing its whole payload again.
//!
//! CRC-32 is linear: `crc(A ++ B) = crc(A) * x^(8|B|) + crc(B)` modulo its
//! polynomial, in the bit-reflected representation (bit 31 is `x^0`).

/// The CRC-32 polynomial, bit-reflected.
const POLY: u32 = 0xedb8_8320;

/// `x^0`, the multiplicative identity, bit-reflected.
const ONE: u32 = 1 << 31;

/// `a * b` modulo the polynomial.
const fn mul(a: u32, mut b: u32) -> u32 {
    let mut product = 0;
    let mut bit = ONE;
    while bit != 0 {
        if a & bit != 0 {
            product ^= b;
        }
        // b *= x: a right shift, reduced when x^31 overflows.
        b = if b & 1 != 0 { (b >> 1) ^ POLY } else { b >> 1 };
        bit >>= 1;
    }
    product
}

/// `POWERS[d][v]` is `x^(8 * v * 16^d)`: the factor that appends `v * 16^d`
/// zero bytes, so a shift by any u32 length takes at most 8 products.
const POWERS: [[u32; 16]; 8] = powers();

const fn powers() -> [[u32; 16]; 8] {
    let mut table = [[ONE; 16]; 8];
    // x^8: one zero byte.
    let mut step = mul(ONE >> 4, ONE >> 4);
    let mut digit = 0;
    while digit < 8 {
        let mut v = 1;
        while v < 16 {
            table[digit][v] = mul(table[digit][v - 1], step);
            v += 1;
        }
        step = mul(table[digit][15], step);
        digit += 1;
    }
    table
}

/// `crc * x^(8 * len)`: what `crc`'s bytes contribute to the CRC of them
/// followed by `len` more bytes.
fn shift(mut crc: u32, len: u32) -> u32 {
    for (digit, factors) in POWERS.iter().enumerate() {
        let v = (len >> (4 * digit)) & 15;
        if v != 0 {
            crc = mul(factors[v as usize], crc);
        }
    }
    crc
}

/// The CRC of `B` from `crc(A)`, `crc(A ++ B)` and `|B|`.
pub(super) fn of_suffix(crc_prefix: u32, crc_whole: u32, suffix_len: u32) -> u32 {
    crc_whole ^ shift(crc_prefix, suffix_len)
}

/// The CRC of `crc_before`'s bytes followed by `bytes`.
pub(super) fn extend(crc_before: u32, bytes: &[u8]) -> u32 {
    let mut hasher = crc32fast::Hasher::new_with_initial(crc_before);
    hasher.update(bytes);
    hasher.finalize()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_suffix_crc_comes_from_its_prefixes() {
        let data: std::vec::Vec<u8> = (0..5000u32).map(|i| (i * 7 + i / 13) as u8).collect();
        for (cut, end) in [
            (0, 0),
            (0, 5000),
            (1, 2),
            (17, 300),
            (255, 4097),
            (4999, 5000),
        ] {
            let prefix = crc32fast::hash(&data[..cut]);
            let whole = crc32fast::hash(&data[..end]);
            let want = crc32fast::hash(&data[cut..end]);
            let len = (end - cut) as u32;
            assert_eq!(of_suffix(prefix, whole, len), want, "{cut}..{end}");
        }
    }

    #[test]
    fn extending_continues_the_hash() {
        let crc = extend(crc32fast::hash(b"hello, "), b"world");
        assert_eq!(crc, crc32fast::hash(b"hello, world"));
    }

    #[test]
    fn shifts_by_long_lengths_compose() {
        let crc = 0x1234_5678;
        for (a, b) in [
            (1, 1),
            (15, 1),
            (16, 240),
            (1 << 20, 12345),
            (u32::MAX >> 1, 7),
        ] {
            assert_eq!(shift(shift(crc, a), b), shift(crc, a + b), "{a}+{b}");
        }
    }
}
