//! What the host reads of the kernel's link map (System.map) to spare the
//! guest a scan of /proc/kallsyms: `page_offset_base`'s offset from
//! `_text`, which KASLR moves both by the same amount.

use std::fs;
use std::path::Path;

/// The address of `symbol` in a System.map's text.
fn address(map: &str, symbol: &str) -> Option<u64> {
    map.lines().find_map(|line| {
        let mut words = line.split_whitespace();
        let (addr, _kind, name) = (words.next()?, words.next()?, words.next()?);
        (name == symbol).then(|| u64::from_str_radix(addr, 16).ok())?
    })
}

/// `page_offset_base - _text` in the map's text.
fn page_offset_base_offset(map: &str) -> Option<u64> {
    address(map, "page_offset_base")?.checked_sub(address(map, "_text")?)
}

/// `page_offset_base - _text` from the System.map at `path`, when it is a
/// real map (Debian's is a stub without the symbols).
pub fn map_offset(path: &Path) -> Option<u64> {
    page_offset_base_offset(&fs::read_to_string(path).ok()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_offset_is_taken_from_the_map() {
        let map = "ffffffff81000000 T _text\n\
                   ffffffff81000000 T startup_64\n\
                   ffffffff82a1c3d8 D page_offset_base\n";
        assert_eq!(page_offset_base_offset(map), Some(0x1a1c3d8));
        assert_eq!(page_offset_base_offset("ffffffff81000000 T _text\n"), None);
    }
}
