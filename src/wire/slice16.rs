//! CRC-32 (IEEE) by slicing-by-16, the algorithm crc32fast's portable path
//! runs, with its 16 KiB table built at first use in .bss instead of shipped
//! in .rodata: the init encodes with this and is 16 KiB smaller on disk.
//! Resident cost is the same (the table's pages are touched either way).
//! The host decodes with crc32fast; the codec props cross-check the two.

use core::sync::atomic::{AtomicBool, AtomicU32, Ordering};

/// The CRC-32 polynomial, bit-reflected.
const POLY: u32 = 0xedb8_8320;

/// `TABLE[k * 256 + b]`: the CRC of byte `b` followed by `k` zero bytes.
/// Atomics (plain loads and stores on x86) so that racing first users, on a
/// threaded host test, each fill in the same values without a data race.
static TABLE: [AtomicU32; 16 * 256] = [const { AtomicU32::new(0) }; 16 * 256];
static READY: AtomicBool = AtomicBool::new(false);

fn table() -> &'static [AtomicU32; 16 * 256] {
    if !READY.load(Ordering::Acquire) {
        fill();
        READY.store(true, Ordering::Release);
    }
    &TABLE
}

fn fill() {
    for b in 0..256u32 {
        let mut crc = b;
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ POLY
            } else {
                crc >> 1
            };
        }
        TABLE[b as usize].store(crc, Ordering::Relaxed);
    }
    // One more zero byte after row k - 1: a shift and a lookup in row 0.
    for i in 256..16 * 256 {
        let prev = TABLE[i - 256].load(Ordering::Relaxed);
        let low = TABLE[(prev & 0xff) as usize].load(Ordering::Relaxed);
        TABLE[i].store((prev >> 8) ^ low, Ordering::Relaxed);
    }
}

/// The CRC-32 of `bytes`.
pub fn hash(bytes: &[u8]) -> u32 {
    extend(0, bytes)
}

/// The CRC-32 of `crc`'s bytes followed by `bytes`.
pub fn extend(crc: u32, bytes: &[u8]) -> u32 {
    let t = table();
    let at = |row: usize, byte: u32| t[row * 256 + (byte & 0xff) as usize].load(Ordering::Relaxed);
    let mut crc = !crc;
    let mut blocks = bytes.chunks_exact(16);
    for block in &mut blocks {
        let word =
            |i: usize| u32::from_le_bytes([block[i], block[i + 1], block[i + 2], block[i + 3]]);
        let w0 = word(0) ^ crc;
        let (w1, w2, w3) = (word(4), word(8), word(12));
        crc = 0;
        for (k, w) in [w0, w1, w2, w3].into_iter().enumerate() {
            let row = 15 - 4 * k;
            crc ^= at(row, w) ^ at(row - 1, w >> 8) ^ at(row - 2, w >> 16) ^ at(row - 3, w >> 24);
        }
    }
    for &b in blocks.remainder() {
        crc = (crc >> 8) ^ at(0, crc ^ u32::from(b));
    }
    !crc
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agrees_with_crc32fast_on_every_length_and_start() {
        let data: std::vec::Vec<u8> = (0..300u32).map(|i| (i * 31 + i / 7) as u8).collect();
        for len in 0..data.len() {
            for start in [0, 1, 0xdead_beef] {
                let mut want = crc32fast::Hasher::new_with_initial(start);
                want.update(&data[..len]);
                assert_eq!(extend(start, &data[..len]), want.finalize(), "len {len}");
            }
        }
    }

    #[test]
    fn the_check_value() {
        assert_eq!(hash(b"123456789"), 0xcbf4_3926);
    }
}
