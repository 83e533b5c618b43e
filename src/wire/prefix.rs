//! CRCs of a buffer's prefixes, kept every [`BLOCK`] bytes, so that the CRC
//! of any range of it costs at most `2 * BLOCK` bytes of hashing and a few
//! multiplications: candidate frames that overlap are not re-hashed whole.

use super::crc;
use super::header::Extend;

/// Bytes between two kept prefix CRCs.
pub(super) const BLOCK: usize = 256;

/// Bytes of table needed for `data_len` bytes of data: one u32 per block
/// boundary in `0..=data_len`.
pub(super) const fn table_len(data_len: usize) -> usize {
    (data_len / BLOCK + 1) * 4
}

/// Prefix CRCs of a data buffer, in a caller's byte table (little-endian
/// u32s). Entry `k` is the CRC of `data[..k * BLOCK]`; entry 0 is always 0.
pub(super) struct Prefixes<'b> {
    table: &'b mut [u8],
    crc: Extend,
    /// Entries computed so far.
    known: usize,
    /// A range was hashed whole since the last reset: the next builds the
    /// table instead, so bytes are hashed at most twice between resets.
    hashed_whole: bool,
}

impl<'b> Prefixes<'b> {
    pub(super) fn new(table: &'b mut [u8], crc: Extend) -> Prefixes<'b> {
        table[..4].fill(0);
        Prefixes {
            table,
            crc,
            known: 1,
            hashed_whole: false,
        }
    }

    /// The CRC of `bytes` alone, by the same function as the table's.
    pub(super) fn hash(&self, bytes: &[u8]) -> u32 {
        (self.crc)(0, bytes)
    }

    /// Forgets every entry but the first: the data moved.
    pub(super) fn reset(&mut self) {
        self.known = 1;
        self.hashed_whole = false;
    }

    /// Computes the entries up to `end`, hashing each byte of `data` once.
    fn extend(&mut self, data: &[u8], end: usize) {
        while self.known * BLOCK <= end {
            let k = self.known;
            let crc = (self.crc)(self.entry(k - 1), &data[(k - 1) * BLOCK..k * BLOCK]);
            self.table[k * 4..k * 4 + 4].copy_from_slice(&crc.to_le_bytes());
            self.known += 1;
        }
    }

    /// The CRC of `data[from..to]`. The first long range after a reset is
    /// hashed in one call (most windows hold one frame, and the table's
    /// short blocks hash slower); later ones extend the table up to `to`.
    pub(super) fn range(&mut self, data: &[u8], from: usize, to: usize) -> u32 {
        if to - from <= 2 * BLOCK || !self.hashed_whole {
            self.hashed_whole |= to - from > 2 * BLOCK;
            return (self.crc)(0, &data[from..to]);
        }
        self.extend(data, to);
        let len = (to - from) as u32;
        crc::of_suffix(self.up_to(data, from), self.up_to(data, to), len)
    }

    /// The CRC of `data[..at]`, from the entry at or before `at`.
    fn up_to(&self, data: &[u8], at: usize) -> u32 {
        let k = at / BLOCK;
        (self.crc)(self.entry(k), &data[k * BLOCK..at])
    }

    fn entry(&self, k: usize) -> u32 {
        let mut word = [0u8; 4];
        word.copy_from_slice(&self.table[k * 4..k * 4 + 4]);
        u32::from_le_bytes(word)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn any_range_has_the_crc_of_its_bytes() {
        let data: std::vec::Vec<u8> = (0..3000u32).map(|i| (i * 31 % 251) as u8).collect();
        let mut table = std::vec![0xaau8; table_len(data.len())];
        let mut prefixes = Prefixes::new(&mut table, crc::extend);
        for (from, to) in [
            (0, 0),
            (3, 9),
            (0, 513),
            (1, 2999),
            (255, 1025),
            (600, 3000),
        ] {
            let want = crc32fast::hash(&data[from..to]);
            assert_eq!(prefixes.range(&data, from, to), want, "{from}..{to}");
        }
        prefixes.reset();
        let want = crc32fast::hash(&data[701..2001]);
        assert_eq!(prefixes.range(&data[1..], 700, 2000), want);
    }
}
