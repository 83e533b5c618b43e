//! `/.guestinit/collect` (`parse::collect`), read by the init, on any
//! bytes: it agrees with a model of NUL-ended key and value pairs.
#![no_main]

// Shared with the property tests; this target uses one of its properties.
#[allow(dead_code)]
#[path = "../../tests/props/collect.rs"]
mod props;

libfuzzer_sys::fuzz_target!(|data: &[u8]| props::request_bytes(data));
