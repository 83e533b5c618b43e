//! Target: the superblock magic detector on a disk image's first bytes,
//! against direct comparisons.
#![no_main]

// Shared with the property tests; this target uses one of its properties.
#[allow(dead_code)]
#[path = "../../tests/props/parsers.rs"]
mod props;

libfuzzer_sys::fuzz_target!(|data: &[u8]| props::superblock(data));
