//! The init's parse of the kernel command line's keys (`proto::boot`) on
//! any bytes: a user's `--append` is in the line.
#![no_main]

// Shared with the property tests; this target uses one of its properties.
#[allow(dead_code)]
#[path = "../../tests/props/boot.rs"]
mod props;

libfuzzer_sys::fuzz_target!(|data: &[u8]| props::parse_any(data));
