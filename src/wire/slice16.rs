//! CRC-32 (IEEE) by slicing-by-16, the algorithm crc32fast's portable path
//! runs, with its 16 KiB table built at first use in .bss instead of shipped
//! in .rodata: the init encodes with this and is 16 KiB smaller on disk.
//! Resident cost is the same (the table's pages are touched either way).
//! The host decodes with crc32fast; the codec props cross-check the two.

use core::sync::atomic::{AtomicBool, AtomicU32, Ordering};

/// The CRC-32 polynomial, bit-reflected.
const POLY: u32 = 0xedb8_8320;

/// `TABLE[k][b]`: the CRC of byte `b` followed by `k` zero bytes.
/// Atomics (plain loads and stores on x86) so that racing first users, on a
/// threaded host test, each fill in the same values without a data race.
static TABLE: Table = [const { [const { AtomicU32::new(0) }; 256] }; 16];
static READY: AtomicBool = AtomicBool::new(false);

type Table = [[AtomicU32; 256]; 16];

fn table() -> &'static Table {
    if !READY.load(Ordering::Acquire) {
        fill();
        READY.store(true, Ordering::Release);
    }
    &TABLE
}

fn fill() {
    for (b, cell) in TABLE[0].iter().enumerate() {
        let mut crc = b as u32;
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ POLY
            } else {
                crc >> 1
            };
        }
        cell.store(crc, Ordering::Relaxed);
    }
    // One more zero byte after row k - 1: a shift and a lookup in row 0.
    for (row, next) in TABLE.iter().zip(&TABLE[1..]) {
        for (cell, next) in row.iter().zip(next) {
            let prev = cell.load(Ordering::Relaxed);
            let low = TABLE[0][usize::from(prev as u8)].load(Ordering::Relaxed);
            next.store((prev >> 8) ^ low, Ordering::Relaxed);
        }
    }
}

/// The CRC-32 of `bytes`.
pub fn hash(bytes: &[u8]) -> u32 {
    extend(0, bytes)
}

/// The CRC-32 of `crc`'s bytes followed by `bytes`.
pub fn extend(crc: u32, bytes: &[u8]) -> u32 {
    let t = table();
    let mut crc = !crc;
    let mut blocks = bytes.chunks_exact(16);
    for block in &mut blocks {
        let block: &[u8; 16] = block.try_into().expect("chunks of 16");
        crc = fold_16(t, crc, block);
    }
    for &b in blocks.remainder() {
        crc = (crc >> 8) ^ t[0][usize::from(crc as u8 ^ b)].load(Ordering::Relaxed);
    }
    !crc
}

/// 16 bytes into `crc`: one lookup per byte, each in the row for the
/// zero bytes that follow it in the block. Written out, not looped: with
/// constant rows the compiler drops every bounds check (2x on the host).
#[inline(always)]
fn fold_16(t: &Table, crc: u32, b: &[u8; 16]) -> u32 {
    let w = (u32::from_le_bytes([b[0], b[1], b[2], b[3]]) ^ crc).to_le_bytes();
    let at = |row: usize, byte: u8| t[row][usize::from(byte)].load(Ordering::Relaxed);
    at(15, w[0])
        ^ at(14, w[1])
        ^ at(13, w[2])
        ^ at(12, w[3])
        ^ at(11, b[4])
        ^ at(10, b[5])
        ^ at(9, b[6])
        ^ at(8, b[7])
        ^ at(7, b[8])
        ^ at(6, b[9])
        ^ at(5, b[10])
        ^ at(4, b[11])
        ^ at(3, b[12])
        ^ at(2, b[13])
        ^ at(1, b[14])
        ^ at(0, b[15])
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
