//! Target 1: the streaming decoder on arbitrary bytes, any buffer and chunking.
#![no_main]

// Shared with the property tests; this target uses one of its properties.
#[allow(dead_code)]
#[path = "../../tests/props/codec.rs"]
mod props;

libfuzzer_sys::fuzz_target!(|data: &[u8]| props::decode_bytes(data));
