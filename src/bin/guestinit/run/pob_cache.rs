//! `page_offset_base - _text` learned from an earlier run's KADR, for
//! kernels whose System.map is a stub (Debian's): the next boot of the same
//! image gets it on the command line, and the guest reads /proc/kallsyms only
//! up to `_text` instead of scanning deep for the symbol before SRDY.
//!
//! Safe to reuse: KASLR slides the whole image by one delta, so a symbol's
//! offset from `_text` is fixed by the build. The key is the image file's
//! identity (device, inode, size, modification and change times), so a
//! rebuilt or replaced file misses; hashing the image itself cost every run
//! ~30 ms before QEMU could start.

use std::fs;
use std::path::Path;

use guestinit::wire::msg::KernelAddrs;

use crate::cache::{self, Entry};

/// One kernel image's entry: `<cache>/pob/<sha256 of its identity>`.
pub struct PobCache {
    entry: Entry,
}

impl PobCache {
    /// The entry for `kernel`; none without a cache directory or when the
    /// image cannot be read (the run then just scans, as without a cache).
    pub fn for_kernel(kernel: &Path) -> Option<PobCache> {
        let key = cache::identity(&fs::metadata(kernel).ok()?);
        Some(PobCache {
            entry: Entry::new("pob", &key)?,
        })
    }

    /// The offset an earlier run stored.
    pub fn load(&self) -> Option<u64> {
        parse(&self.entry.load()?)
    }

    /// Stores the offset KADR's addresses imply, if they carry one. Best
    /// effort: a cache that cannot be written costs the next run a scan.
    pub fn store(&self, addrs: &KernelAddrs) {
        if let Some(offset) = offset_of(addrs) {
            self.entry.store(&format!("{offset:x}\n"));
        }
    }
}

/// `page_offset_base - _text` from a KADR, when the guest found both and
/// the variable lies past `_text` in the image, as it does on x86_64.
fn offset_of(addrs: &KernelAddrs) -> Option<u64> {
    let text = addrs.text?;
    (addrs.page_offset_base != 0)
        .then(|| addrs.page_offset_base.checked_sub(text))
        .flatten()
}

/// An entry's text: the offset in hex, on one line.
fn parse(text: &str) -> Option<u64> {
    u64::from_str_radix(text.trim(), 16).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addrs(page_offset_base: u64, text: Option<u64>) -> KernelAddrs {
        KernelAddrs {
            phys_base: Some(0x2e00000),
            page_offset_base,
            text,
        }
    }

    #[test]
    fn the_offset_is_the_distance_from_text() {
        let kadr = addrs(0xffffffffa3a1c3d8, Some(0xffffffffa2000000));
        assert_eq!(offset_of(&kadr), Some(0x1a1c3d8));
        assert_eq!(offset_of(&addrs(0, Some(0xffffffffa2000000))), None);
        assert_eq!(offset_of(&addrs(0xffffffffa3a1c3d8, None)), None);
        assert_eq!(offset_of(&addrs(0x1000, Some(0x2000))), None);
    }

    #[test]
    fn entries_parse_as_hex_or_not_at_all() {
        assert_eq!(parse("1a1c3d8\n"), Some(0x1a1c3d8));
        assert_eq!(parse("zz"), None);
        assert_eq!(parse(""), None);
    }

    #[test]
    fn a_stored_offset_loads_for_the_same_image_only() {
        let dir = std::env::temp_dir().join(format!("guestinit-pob-{}", std::process::id()));
        let entry = |key: &[u8]| PobCache {
            entry: Entry::in_dir(&dir, "pob", key),
        };
        let (one, other) = (entry(b"kernel image one"), entry(b"kernel image two"));
        assert_eq!(one.load(), None);
        one.store(&addrs(0xffffffffa3a1c3d8, Some(0xffffffffa2000000)));
        assert_eq!(one.load(), Some(0x1a1c3d8));
        assert_eq!(other.load(), None);
        fs::remove_dir_all(&dir).unwrap();
    }
}
