//! Target 5: the /args splitter, on the bytes as a file and as an argv.
#![no_main]

// Shared with the property tests; this target uses one of its properties.
#[allow(dead_code)]
#[path = "../../tests/props/parsers.rs"]
mod props;

libfuzzer_sys::fuzz_target!(|data: &[u8]| props::args_any(data));
