//! `/.guestinit/shares` (`parse::shares`), read by the init, on any bytes:
//! it agrees with a model of NUL-ended records and what it reads writes
//! back as the same.
#![no_main]

// Shared with the property tests; this target uses one of its properties.
#[allow(dead_code)]
#[path = "../../tests/props/parsers.rs"]
mod props;

libfuzzer_sys::fuzz_target!(|data: &[u8]| props::shares(data));
